// IAM Roles Anywhere's CreateSession request as the service reads it: the
// parameters, and the X.509 variant of SigV4 (AWS docs, "IAM Roles Anywhere
// signing process") verified with the public key of the presented
// certificate. Refusals are thrown as Refusal, in the service's terms.
import { createHash, verify, X509Certificate } from "node:crypto";
import type { SessionRequest } from "./roles-anywhere.js";
import { canonicalRequest, headerValue, parseAmzDate, type SignedRequest } from "./sigv4.js";

export const X509_ALGORITHMS = ["AWS4-X509-RSA-SHA256", "AWS4-X509-ECDSA-SHA256"] as const;
const MIN_SECONDS = 900;
const MAX_SECONDS = 43_200;

/** A refusal in the service's restJson1 shape. */
export class Refusal extends Error {
  readonly status: number;
  readonly code: "AccessDeniedException" | "ValidationException";
  // No parameter properties: Node must be able to run this file by stripping types.
  constructor(status: number, code: Refusal["code"], message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** AccessDeniedException (403): the signature, certificate or trust failed. */
export function deny(message: string): Refusal {
  return new Refusal(403, "AccessDeniedException", message);
}

/** ValidationException (400): the parameters are malformed. */
function invalid(message: string): Refusal {
  return new Refusal(400, "ValidationException", message);
}

/** CreateSession's parameters, checked present and in range. */
export interface SessionParams {
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
  duration: number;
}

/** Parameters: the query (as AWS's helper sends them), else the JSON body; noted in `request`. */
export function readParams(req: SignedRequest, request: SessionRequest): SessionParams {
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
export function verifySignature(
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
