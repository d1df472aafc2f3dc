// IAM Roles Anywhere natively: an X.509 certificate and its private key, from
// a kubernetes.io/tls Secret (what cert-manager's Certificate writes), buy
// temporary credentials through rolesanywhere:CreateSession. Those credentials
// then feed the AWS SDK's clients like any other source's.
//
// No JavaScript library signs CreateSession, so the signer is here, small, on
// node:crypto. Its source is AWS's "IAM Roles Anywhere signing process"
// (https://docs.aws.amazon.com/rolesanywhere/latest/userguide/authentication-sign-process.html)
// and the CreateSession API
// (https://docs.aws.amazon.com/rolesanywhere/latest/userguide/authentication-create-session.html):
// SigV4's canonical request and string to sign, with
//   - the algorithm AWS4-X509-RSA-SHA256 or AWS4-X509-ECDSA-SHA256 after the key,
//   - the signature made with the private key (RSA PKCS#1 v1.5 or ECDSA, both
//     over SHA-256, ECDSA's DER-encoded) instead of an HMAC, hex-encoded,
//   - Credential=<the certificate's serial number in decimal>/<scope>,
//   - the headers X-Amz-X509 (the certificate, base64 DER) and
//     X-Amz-X509-Chain (the intermediates, base64 DER, comma-separated), signed.
// The request is shaped as AWS's own helper (aws/rolesanywhere-credential-helper)
// sends it: POST /sessions?profileArn=&roleArn=&trustAnchorArn=, a JSON body
// {"durationSeconds": n}; the answer's credentialSet[0].credentials are the
// session's keys. The Roles Anywhere double (test/aws-double/roles-anywhere.ts)
// is checked against that helper, and this signer against the double.
//
// Like every AWS call of the operator it goes through the proxy-aware agent
// (src/kube/proxy.ts), with the call's deadline, signed on AWS's clock as
// measured so far, and retried once when AWS's Date header shows this host's
// clock off by more than five minutes (the SDK's own rule).
import { createHash, createPrivateKey, type KeyObject, sign, X509Certificate } from "node:crypto";
import * as http from "node:http";
import * as https from "node:https";
import type { AwsCredentialIdentity } from "@smithy/types";
import { PARTITIONS } from "../api/registry-hosts.js";
import { operatorError } from "../errors.js";
import { OutboundAgent } from "../kube/proxy.js";

export const X509_RSA_ALGORITHM = "AWS4-X509-RSA-SHA256";
export const X509_ECDSA_ALGORITHM = "AWS4-X509-ECDSA-SHA256";
/** The SigV4 signing name of the service. */
export const ROLES_ANYWHERE_SERVICE = "rolesanywhere";
/** CreateSession's default session, as AWS's helper asks for it. */
export const DEFAULT_SESSION_SECONDS = 3600;

export interface CertificateSecretRef {
  namespace: string;
  name: string;
}

/** A rolesAnywhere source, as a resource or the operator's defaults name it. */
export interface RolesAnywhereRef {
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
  /** Default DEFAULT_SESSION_SECONDS. */
  sessionSeconds?: number;
  certificateSecret: CertificateSecretRef;
}

/** A certificate, its intermediates and its key, read from a tls Secret. */
export interface X509Identity {
  certificate: X509Certificate;
  /** Intermediates after the certificate in tls.crt (never the root). */
  chain: X509Certificate[];
  key: KeyObject;
  algorithm: typeof X509_RSA_ALGORITHM | typeof X509_ECDSA_ALGORITHM;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

/** "Secret ns/name" */
export const describeSecret = (ref: CertificateSecretRef): string =>
  `Secret ${ref.namespace}/${ref.name}`;

/** A certificate in words for messages: subject, serial, expiry. Never key material. */
export function describeCertificate(cert: X509Certificate): string {
  const subject = cert.subject.replaceAll("\n", ", ");
  return `subject ${subject}, serial ${cert.serialNumber.toLowerCase()}, valid until ${new Date(cert.validTo).toISOString()}`;
}

/**
 * Reads a kubernetes.io/tls Secret's data (base64 values): tls.crt (the
 * certificate first, then its intermediates) and tls.key (PKCS#1, SEC1 or
 * PKCS#8 PEM). Throws CredentialsSecretInvalid naming what is wrong.
 */
export function x509IdentityFromSecret(
  ref: CertificateSecretRef,
  data: Record<string, string> | undefined,
): X509Identity {
  const secret = describeSecret(ref);
  const fail = (reason: string, cause?: unknown) =>
    operatorError("CredentialsSecretInvalid", "certificate", { secret, reason }, cause);
  const crt = data?.["tls.crt"];
  const keyPem = data?.["tls.key"];
  if (!crt) throw fail("it has no tls.crt");
  if (!keyPem) throw fail("it has no tls.key");
  const blocks = Buffer.from(crt, "base64").toString("utf8").match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw fail("tls.crt holds no PEM certificate");
  let certs: X509Certificate[];
  try {
    certs = blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw fail(`tls.crt does not parse (${errorText(err)})`, err);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(Buffer.from(keyPem, "base64").toString("utf8"));
  } catch (err) {
    throw fail(`tls.key does not parse as a PEM private key (${errorText(err)})`, err);
  }
  const [certificate, ...rest] = certs as [X509Certificate, ...X509Certificate[]];
  const type = key.asymmetricKeyType;
  if (type !== "rsa" && type !== "ec") {
    throw fail(`tls.key is a ${type ?? "unknown"} key; Roles Anywhere takes RSA or ECDSA keys`);
  }
  if (!certificate.checkPrivateKey(key)) {
    throw fail("tls.key is not the private key of the first certificate in tls.crt");
  }
  // cert-manager may append the CA itself (ca.crt is its own key, but some
  // issuers put it in tls.crt too): Roles Anywhere wants intermediates only.
  const chain = rest.filter((c) => !isSelfSigned(c));
  return {
    certificate,
    chain,
    key,
    algorithm: type === "rsa" ? X509_RSA_ALGORITHM : X509_ECDSA_ALGORITHM,
  };
}

function isSelfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.verify(cert.publicKey);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export type CertificateState =
  | { state: "valid"; remainingMs: number; lifetimeMs: number }
  | { state: "nearExpiry"; remainingMs: number; lifetimeMs: number }
  | { state: "notYetValid" | "expired" };

/**
 * Where a certificate stands at `now`. Near expiry: less than a tenth of its
 * lifetime left (cert-manager renews at two thirds, so a certificate this
 * close to its end was not renewed).
 */
export function certificateState(cert: X509Certificate, now: number): CertificateState {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (now < from) return { state: "notYetValid" };
  if (now >= to) return { state: "expired" };
  const remainingMs = to - now;
  const lifetimeMs = to - from;
  return {
    state: remainingMs < lifetimeMs / 10 ? "nearExpiry" : "valid",
    remainingMs,
    lifetimeMs,
  };
}

/** Throws CredentialsSecretInvalid when the certificate is not valid at `now`. */
export function assertCertificateValid(
  ref: CertificateSecretRef,
  cert: X509Certificate,
  now: number,
): CertificateState {
  const s = certificateState(cert, now);
  if (s.state === "notYetValid" || s.state === "expired") {
    const reason =
      s.state === "expired"
        ? `it expired at ${new Date(cert.validTo).toISOString()}`
        : `it is not valid before ${new Date(cert.validFrom).toISOString()} (check this host's clock and the issuer's)`;
    throw operatorError("CredentialsSecretInvalid", "certificateNotValid", {
      secret: describeSecret(ref),
      certificate: describeCertificate(cert),
      reason,
    });
  }
  return s;
}

/** RFC 3986 escaping as SigV4 defines it (encodeURIComponent leaves !'()* alone). */
function uriEscape(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

const sha256Hex = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** 20240101T120000Z */
export function amzDate(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

export interface X509SignInput {
  method: string;
  url: URL;
  /** Headers to sign besides Host, X-Amz-Date and the X.509 ones (lower-case names). */
  headers: Record<string, string>;
  body: Buffer;
  region: string;
  /** The signing time (AWS's clock as best known). */
  at: Date;
}

/**
 * Signs a request with an X.509 identity (the Roles Anywhere signing
 * process); returns every header to send, Authorization included.
 */
export function signX509Request(input: X509SignInput, id: X509Identity): Record<string, string> {
  const date = amzDate(input.at);
  const headers: Record<string, string> = {
    ...input.headers,
    host: input.url.host,
    "x-amz-date": date,
    "x-amz-x509": id.certificate.raw.toString("base64"),
  };
  if (id.chain.length > 0) {
    headers["x-amz-x509-chain"] = id.chain.map((c) => c.raw.toString("base64")).join(",");
  }
  const names = Object.keys(headers)
    .map((n) => n.toLowerCase())
    .sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const canonicalHeaders = names
    .map((n) => `${n}:${(lower[n] ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const query = [...input.url.searchParams.entries()]
    .map(([k, v]) => [uriEscape(k), uriEscape(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const signedHeaders = names.join(";");
  const canonicalRequest = [
    input.method.toUpperCase(),
    input.url.pathname,
    query,
    canonicalHeaders,
    signedHeaders,
    sha256Hex(input.body),
  ].join("\n");
  const scope = `${date.slice(0, 8)}/${input.region}/${ROLES_ANYWHERE_SERVICE}/aws4_request`;
  const stringToSign = [id.algorithm, date, scope, sha256Hex(canonicalRequest)].join("\n");
  // RSA: PKCS#1 v1.5; EC: DER-encoded ECDSA (node's default), as the helper signs.
  const signature = sign("sha256", Buffer.from(stringToSign, "utf8"), id.key).toString("hex");
  const serial = BigInt(`0x${id.certificate.serialNumber}`).toString(10);
  headers.authorization = `${id.algorithm} Credential=${serial}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}

/** The region of an ARN (arn:partition:service:region:account:resource). */
export function arnRegion(arn: string): string {
  return arn.split(":")[3] ?? "";
}

/**
 * The CreateSession endpoint: the SDK's standard variables
 * (AWS_ENDPOINT_URL_ROLESANYWHERE, then AWS_ENDPOINT_URL) else the service's
 * host in the trust anchor's region and partition.
 */
export function rolesAnywhereEndpoint(region: string, env = process.env): string {
  const configured = env.AWS_ENDPOINT_URL_ROLESANYWHERE || env.AWS_ENDPOINT_URL;
  if (configured) return configured.replace(/\/+$/, "");
  const partition =
    PARTITIONS.find((p) => new RegExp(`^${p.regionPattern}$`).test(region)) ?? PARTITIONS[0];
  return `https://rolesanywhere.${region}.${partition?.domain ?? "amazonaws.com"}`;
}

export interface RolesAnywhereSession {
  credentials: AwsCredentialIdentity & { expiration: Date };
  /** The assumed role's ARN as Roles Anywhere reports it (assumed-role/<role>/<serial>). */
  assumedRoleArn?: string;
}

export interface CreateSessionOptions {
  timeoutMs: number;
  /** AWS's clock minus this host's (ms), as learnt so far. */
  clockOffsetMs?: number;
  /** Default: rolesAnywhereEndpoint(the trust anchor's region). */
  endpoint?: string;
  now?: () => number;
}

/**
 * An error as Roles Anywhere (restJson1) answers it, shaped like the SDK's
 * (name = the error code, $metadata, $response) so src/aws/errors.ts reads it.
 */
export function rolesAnywhereError(
  code: string,
  message: string,
  status: number,
  headers: http.IncomingHttpHeaders,
): Error {
  return Object.assign(new Error(message), {
    name: code,
    $metadata: { httpStatusCode: status },
    $response: {
      headers: Object.fromEntries(
        Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : v]),
      ),
    },
  });
}

const agents = new Map<string, http.Agent>();
function agentFor(protocol: "http:" | "https:"): http.Agent {
  let agent = agents.get(protocol);
  if (!agent) {
    agent = new OutboundAgent({ keepAlive: true, protocol });
    agents.set(protocol, agent);
  }
  return agent;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function post(
  url: URL,
  headers: Record<string, string>,
  body: Buffer,
  timeoutMs: number,
): Promise<Answer> {
  const protocol = url.protocol === "http:" ? "http:" : "https:";
  const send = protocol === "http:" ? http.request : https.request;
  return new Promise<Answer>((resolve, reject) => {
    const req = send(
      url,
      {
        method: "POST",
        headers: { ...headers, "content-length": String(body.length) },
        agent: agentFor(protocol),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () =>
      req.destroy(
        Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: "TimeoutError" }),
      ),
    );
    req.on("error", reject);
    req.end(body);
  });
}

const SKEW_LIMIT_MS = 5 * 60_000;

function errorOf(answer: Answer): Error {
  let parsed: { message?: string; Message?: string; __type?: string; code?: string } = {};
  try {
    parsed = JSON.parse(answer.body) as typeof parsed;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const header = answer.headers["x-amzn-errortype"];
  const raw = (Array.isArray(header) ? header[0] : header) ?? parsed.__type ?? parsed.code ?? "";
  const code = raw.split(":")[0]?.split("#").pop() || `HTTP${answer.status}`;
  const message = parsed.message ?? parsed.Message ?? answer.body.slice(0, 200);
  return rolesAnywhereError(code, message, answer.status, answer.headers);
}

/**
 * Calls CreateSession, signed with the identity; returns the session's
 * credentials. Throws AWS's answer as an SDK-shaped error, or the network's.
 */
export async function createSession(
  ref: RolesAnywhereRef,
  id: X509Identity,
  opts: CreateSessionOptions,
): Promise<RolesAnywhereSession> {
  const region = arnRegion(ref.trustAnchorArn);
  const url = new URL(`${opts.endpoint ?? rolesAnywhereEndpoint(region)}/sessions`);
  url.searchParams.set("profileArn", ref.profileArn);
  url.searchParams.set("roleArn", ref.roleArn);
  url.searchParams.set("trustAnchorArn", ref.trustAnchorArn);
  const body = Buffer.from(
    JSON.stringify({ durationSeconds: ref.sessionSeconds ?? DEFAULT_SESSION_SECONDS }),
  );
  const now = opts.now ?? Date.now;
  let offset = opts.clockOffsetMs ?? 0;
  for (let attempt = 0; ; attempt++) {
    const headers = signX509Request(
      {
        method: "POST",
        url,
        headers: { "content-type": "application/json" },
        body,
        region,
        at: new Date(now() + offset),
      },
      id,
    );
    const answer = await post(url, headers, body, opts.timeoutMs);
    if (answer.status >= 200 && answer.status < 300) return parseSession(answer);
    const date = answer.headers.date ? Date.parse(answer.headers.date) : Number.NaN;
    const skew = Number.isFinite(date) ? date - now() : 0;
    if (attempt === 0 && answer.status < 500 && Math.abs(skew - offset) > SKEW_LIMIT_MS) {
      // Signed at the wrong time: sign again on AWS's clock, once.
      offset = skew;
      continue;
    }
    throw errorOf(answer);
  }
}

function parseSession(answer: Answer): RolesAnywhereSession {
  const out = JSON.parse(answer.body) as {
    credentialSet?: Array<{
      credentials?: {
        accessKeyId?: string;
        secretAccessKey?: string;
        sessionToken?: string;
        expiration?: string;
      };
      assumedRoleUser?: { arn?: string };
    }>;
  };
  const set = out.credentialSet?.[0];
  const c = set?.credentials;
  if (!c?.accessKeyId || !c.secretAccessKey || !c.sessionToken || !c.expiration) {
    throw rolesAnywhereError(
      "EmptyCredentialSet",
      "CreateSession answered without credentials",
      answer.status,
      answer.headers,
    );
  }
  const session: RolesAnywhereSession = {
    credentials: {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken,
      expiration: new Date(c.expiration),
    },
  };
  if (set?.assumedRoleUser?.arn) session.assumedRoleArn = set.assumedRoleUser.arn;
  return session;
}
