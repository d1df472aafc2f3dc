// IAM Roles Anywhere's CreateSession, as the service does it: the request is
// signed with the X.509 variant of SigV4 (AWS docs, "IAM Roles Anywhere
// signing process"); the double verifies the signature with the public key of
// the certificate in X-Amz-X509, the certificate's chain (X-Amz-X509-Chain)
// up to the trust anchor's CA, every certificate's validity dates, that the
// profile exists and lists the role, and answers with a session of the role
// whose keys the ECR and STS doubles accept. Refusals come in the service's
// restJson1 shape (x-amzn-ErrorType and {"message"}).
//
// Hand-written on node:crypto; its unit test runs AWS's own signing helper
// (rolesanywhere-credential-helper, built from its Go module) against it, so
// the double is checked against AWS's implementation, and the operator's
// signer against the double.
import { X509Certificate } from "node:crypto";
import {
  deny,
  Refusal,
  readParams,
  type SessionParams,
  verifySignature,
} from "./roles-anywhere-request.js";
import type { SignedRequest } from "./sigv4.js";

export { X509_ALGORITHMS } from "./roles-anywhere-request.js";
export const CREATE_SESSION_PATH = "/sessions";

export interface TrustAnchorInit {
  /** arn:aws:rolesanywhere:<region>:<account>:trust-anchor/<uuid> */
  arn: string;
  /** The CA certificate (PEM) the anchor trusts. */
  caPem: string;
}

export interface ProfileInit {
  /** arn:aws:rolesanywhere:<region>:<account>:profile/<uuid> */
  arn: string;
  /** Roles the profile lets sessions assume. */
  roleArns: string[];
  /** Longest session the profile allows (s); default 3600, at most 43200. */
  durationSeconds?: number;
}

/** What the service is told and concluded: the call record's details. */
export interface SessionRequest {
  trustAnchorArn?: string;
  profileArn?: string;
  roleArn?: string;
  /** The certificate's serial number, lower-case hex. */
  serial?: string;
  subject?: string;
}

export type SessionAnswer =
  | { ok: true; status: number; body: unknown; principalArn: string; request: SessionRequest }
  | {
      ok: false;
      status: number;
      code: "AccessDeniedException" | "ValidationException" | "ResourceNotFoundException";
      message: string;
      request: SessionRequest;
    };

/** What the AWS double provides: the role's session identity. */
export interface SessionIssuer {
  /** The role exists in the double (IAM). */
  hasRole(roleArn: string): boolean;
  /** A session of the role, valid for `seconds`: keys the ECR and STS doubles accept. */
  assume(
    roleArn: string,
    sessionName: string,
    seconds: number,
  ): {
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken: string;
    arn: string;
    assumedRoleId: string;
    expiresAt: Date;
  };
}

interface Anchor {
  arn: string;
  ca: X509Certificate;
}

export class RolesAnywhereDouble {
  private readonly anchors = new Map<string, Anchor>();
  private readonly profiles = new Map<string, ProfileInit>();
  /** How far the signing time may be from the double's clock. */
  maxClockSkewMs = 5 * 60_000;

  addTrustAnchor(init: TrustAnchorInit): void {
    this.anchors.set(init.arn, { arn: init.arn, ca: new X509Certificate(init.caPem) });
  }

  addProfile(init: ProfileInit): void {
    this.profiles.set(init.arn, { ...init, roleArns: [...init.roleArns] });
  }

  /** Answers one CreateSession request at the double's time `now`. */
  createSession(req: SignedRequest, now: number, issuer: SessionIssuer): SessionAnswer {
    const request: SessionRequest = {};
    try {
      const params = readParams(req, request);
      const { leaf, chain } = verifySignature(req, now, this.maxClockSkewMs, params, request);
      // Trust: the anchor's CA must issue the chain; every certificate valid now.
      const anchor = this.anchors.get(params.trustAnchorArn);
      if (anchor === undefined) throw deny("Untrusted signing certificate: unknown trust anchor");
      const path = [leaf, ...chain];
      for (const cert of path) {
        if (now < Date.parse(cert.validFrom)) throw deny("Certificate is not yet valid");
        if (now >= Date.parse(cert.validTo)) throw deny("Certificate is expired");
      }
      if (!chainsTo(path, anchor.ca)) throw deny("Untrusted signing certificate");
      return this.openSession(params, request, issuer);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      return { ok: false, status: err.status, code: err.code, message: err.message, request };
    }
  }

  /** The profile must list the role; the session lasts what was asked, at most the profile's. */
  private openSession(
    params: SessionParams,
    request: SessionRequest,
    issuer: SessionIssuer,
  ): SessionAnswer {
    const { roleArn, trustAnchorArn } = params;
    const profile = this.profiles.get(params.profileArn);
    if (profile === undefined) throw deny("Unable to find profile");
    if (!profile.roleArns.includes(roleArn) || !issuer.hasRole(roleArn)) {
      throw deny("Unable to assume role for arn");
    }
    const seconds = Math.min(params.duration, profile.durationSeconds ?? 3600);
    const serial = request.serial ?? "";
    // The role session is named after the certificate's serial number.
    const session = issuer.assume(roleArn, serial, seconds);
    return {
      ok: true,
      status: 201,
      principalArn: session.arn,
      request,
      body: {
        credentialSet: [
          {
            assumedRoleUser: { arn: session.arn, assumedRoleId: session.assumedRoleId },
            credentials: {
              accessKeyId: session.accessKeyId,
              secretAccessKey: session.secretAccessKey,
              sessionToken: session.sessionToken,
              expiration: session.expiresAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
            },
            packedPolicySize: 0,
            roleArn,
            sourceIdentity: request.subject,
          },
        ],
        subjectArn: `${trustAnchorArn.replace(/:trust-anchor\/.*$/, "")}:subject/${serial}`,
      },
    };
  }
}

/**
 * Whether some order of the presented certificates leads from the leaf to a
 * certificate the CA signed: each link's issuer name and signature checked.
 */
function chainsTo(path: X509Certificate[], ca: X509Certificate): boolean {
  let current = path[0];
  const rest = path.slice(1);
  for (let depth = 0; current !== undefined && depth <= path.length; depth++) {
    if (current.checkIssued(ca) && current.verify(ca.publicKey)) return true;
    const cert: X509Certificate = current;
    const next = rest.find((c) => cert.checkIssued(c) && cert.verify(c.publicKey));
    if (next === undefined) return false;
    rest.splice(rest.indexOf(next), 1);
    current = next;
  }
  return false;
}
