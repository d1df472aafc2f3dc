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
import { createHash, verify, X509Certificate } from "node:crypto";
import { canonicalRequest, headerValue, parseAmzDate, type SignedRequest } from "./sigv4.js";

export const X509_ALGORITHMS = ["AWS4-X509-RSA-SHA256", "AWS4-X509-ECDSA-SHA256"] as const;
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

const MIN_SECONDS = 900;
const MAX_SECONDS = 43_200;

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

/** A refusal in the service's restJson1 shape. */
class Refusal extends Error {
  readonly status: number;
  readonly code: "AccessDeniedException" | "ValidationException";
  // No parameter properties: Node must be able to run this file by stripping types.
  constructor(status: number, code: Refusal["code"], message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function deny(message: string): Refusal {
  return new Refusal(403, "AccessDeniedException", message);
}

function invalid(message: string): Refusal {
  return new Refusal(400, "ValidationException", message);
}

interface SessionParams {
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
  duration: number;
}

/** Parameters: the query (as AWS's helper sends them), else the JSON body; noted in `request`. */
function readParams(req: SignedRequest, request: SessionRequest): SessionParams {
  const url = new URL(req.url, "http://double");
  let body: Record<string, unknown> = {};
  if (req.body.length > 0) {
    try {
      body = JSON.parse(req.body.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw invalid("Could not parse request body");
    }
  }
  const param = (name: string): string | undefined => {
    const q = url.searchParams.get(name);
    if (q !== null) return q;
    const b = body[name];
    return typeof b === "string" ? b : undefined;
  };
  const trustAnchorArn = param("trustAnchorArn");
  const profileArn = param("profileArn");
  const roleArn = param("roleArn");
  if (trustAnchorArn !== undefined) request.trustAnchorArn = trustAnchorArn;
  if (profileArn !== undefined) request.profileArn = profileArn;
  if (roleArn !== undefined) request.roleArn = roleArn;
  if (!profileArn || !roleArn || !trustAnchorArn) {
    throw invalid("profileArn, roleArn and trustAnchorArn are required");
  }
  const duration = body.durationSeconds ?? 3600;
  if (
    typeof duration !== "number" ||
    !Number.isInteger(duration) ||
    duration < MIN_SECONDS ||
    duration > MAX_SECONDS
  ) {
    throw invalid(
      `1 validation error detected: Value '${String(duration)}' at 'durationSeconds' failed to satisfy constraint: Member must have value between ${MIN_SECONDS} and ${MAX_SECONDS}`,
    );
  }
  return { trustAnchorArn, profileArn, roleArn, duration };
}

/**
 * The signature: algorithm, scope, date, certificate, then the key's
 * signature. Notes the certificate's serial and subject in `request`;
 * returns the leaf and the presented chain.
 */
function verifySignature(
  req: SignedRequest,
  now: number,
  maxClockSkewMs: number,
  params: SessionParams,
  request: SessionRequest,
): { leaf: X509Certificate; chain: X509Certificate[] } {
  const authorization = headerValue(req.headers, "authorization") ?? "";
  const m =
    /^(AWS4-X509-(?:RSA|ECDSA)-SHA256) Credential=(\d+)\/(\d{8})\/([a-z0-9-]+)\/rolesanywhere\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]+)$/.exec(
      authorization,
    );
  if (m === null) throw deny("Missing or malformed X.509 authorization header");
  const [, algorithm, serialDecimal, scopeDate, region, signedHeadersList, signature] =
    m as unknown as [string, string, string, string, string, string, string];
  const signedHeaders = signedHeadersList.split(";");
  for (const required of ["host", "x-amz-date", "x-amz-x509"]) {
    if (!signedHeaders.includes(required)) {
      throw deny(`Header ${required} must be signed`);
    }
  }
  if (region !== params.trustAnchorArn.split(":")[3]) {
    throw deny(`Credential should be scoped to a valid region, not '${region}'`);
  }
  const amzDate = headerValue(req.headers, "x-amz-date") ?? "";
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined || amzDate.slice(0, 8) !== scopeDate) {
    throw deny("Invalid X-Amz-Date or credential scope date");
  }
  if (Math.abs(signedAt.getTime() - now) > maxClockSkewMs) {
    throw deny("Signature expired or not yet current: request time too skewed");
  }
  const { leaf, chain } = presentedCertificates(req);
  request.serial = leaf.serialNumber.toLowerCase();
  request.subject = leaf.subject.replaceAll("\n", ",");
  if (BigInt(`0x${leaf.serialNumber}`).toString(10) !== serialDecimal) {
    throw deny("Credential does not name the serial number of the signing certificate");
  }
  const keyType = leaf.publicKey.asymmetricKeyType;
  const wanted = keyType === "rsa" ? X509_ALGORITHMS[0] : X509_ALGORITHMS[1];
  if (algorithm !== wanted) {
    throw deny(`Algorithm ${algorithm} does not match the certificate's ${keyType} key`);
  }
  const scope = `${scopeDate}/${region}/rolesanywhere/aws4_request`;
  const stringToSign = [
    algorithm,
    amzDate,
    scope,
    createHash("sha256").update(canonicalRequest(req, signedHeaders)).digest("hex"),
  ].join("\n");
  if (!signatureVerifies(stringToSign, leaf, signature)) throw deny("Signature validation failed");
  return { leaf, chain };
}

/** The certificate in X-Amz-X509 and the chain in X-Amz-X509-Chain (base64 DER). */
function presentedCertificates(req: SignedRequest): {
  leaf: X509Certificate;
  chain: X509Certificate[];
} {
  try {
    const leaf = new X509Certificate(
      Buffer.from(headerValue(req.headers, "x-amz-x509") ?? "", "base64"),
    );
    const chain: X509Certificate[] = [];
    const chainHeader = headerValue(req.headers, "x-amz-x509-chain");
    for (const part of chainHeader ? chainHeader.split(",") : []) {
      chain.push(new X509Certificate(Buffer.from(part.trim(), "base64")));
    }
    return { leaf, chain };
  } catch {
    throw deny("Could not parse the X.509 certificate or chain");
  }
}

function signatureVerifies(
  stringToSign: string,
  leaf: X509Certificate,
  signature: string,
): boolean {
  try {
    return verify(
      "sha256",
      Buffer.from(stringToSign, "utf8"),
      leaf.publicKey,
      Buffer.from(signature, "hex"),
    );
  } catch {
    return false;
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
