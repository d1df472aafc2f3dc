// A SigV4 verifier for the AWS double. Hand-written on node:crypto on purpose:
// the double must check what the real SDK signs, and using the SDK's own signer
// to verify the SDK would prove nothing.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export const SIGV4_ALGORITHM = "AWS4-HMAC-SHA256";

/** The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header. */
export interface SigV4Authorization {
  accessKeyId: string;
  /** YYYYMMDD */
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

/** What the verifier needs to know about the request, exactly as received. */
export interface SignedRequest {
  method: string;
  /** The raw request target: path and query, still percent-encoded. */
  url: string;
  /** Header name/value pairs as received (node's `rawHeaders`, paired). */
  headers: ReadonlyArray<readonly [string, string]>;
  body: Buffer;
}

export function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

/** Parses the header; returns undefined when it is not a well-formed SigV4 header. */
export function parseAuthorization(header: string): SigV4Authorization | undefined {
  const trimmed = header.trim();
  if (!trimmed.startsWith(`${SIGV4_ALGORITHM} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of trimmed.slice(SIGV4_ALGORITHM.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) return undefined;
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get("Credential");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    return undefined;
  }
  const scope = credential.split("/");
  if (scope.length !== 5 || scope[4] !== "aws4_request") return undefined;
  const [accessKeyId, date, region, service] = scope as [string, string, string, string];
  return {
    accessKeyId,
    date,
    region,
    service,
    signedHeaders: signedHeaders.split(";"),
    signature,
  };
}

/** RFC 3986 escaping as SigV4 defines it (encodeURIComponent leaves !'()* alone). */
export function uriEscape(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, "%20"));
  } catch {
    return value;
  }
}

function canonicalPath(rawPath: string): string {
  // Non-S3 services normalise the path and escape each segment of the path the
  // client meant; the raw target is already escaped once, so decode first.
  const segments: string[] = [];
  for (const segment of rawPath.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(uriEscape(safeDecode(segment)));
  }
  const path = `/${segments.join("/")}`;
  return segments.length > 0 && rawPath.endsWith("/") ? `${path}/` : path;
}

function canonicalQuery(rawQuery: string): string {
  if (rawQuery === "") return "";
  const pairs: [string, string][] = [];
  for (const part of rawQuery.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? "" : part.slice(eq + 1);
    if (key.toLowerCase() === "x-amz-signature") continue;
    pairs.push([uriEscape(safeDecode(key)), uriEscape(safeDecode(value))]);
  }
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** The header value the signer saw: repeated headers joined by ",", spaces trimmed and collapsed. */
export function headerValue(
  headers: ReadonlyArray<readonly [string, string]>,
  name: string,
): string | undefined {
  const lower = name.toLowerCase();
  const values = headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  if (values.length === 0) return undefined;
  return values.map((v) => v.trim().replace(/\s+/g, " ")).join(",");
}

export function canonicalRequest(request: SignedRequest, signedHeaders: string[]): string {
  const q = request.url.indexOf("?");
  const rawPath = q < 0 ? request.url : request.url.slice(0, q);
  const rawQuery = q < 0 ? "" : request.url.slice(q + 1);
  const headerLines = signedHeaders
    .map((name) => `${name}:${headerValue(request.headers, name) ?? ""}\n`)
    .join("");
  const payloadHash =
    headerValue(request.headers, "x-amz-content-sha256") ?? sha256Hex(request.body);
  return [
    request.method.toUpperCase(),
    canonicalPath(rawPath),
    canonicalQuery(rawQuery),
    headerLines,
    signedHeaders.join(";"),
    payloadHash,
  ].join("\n");
}

export function signingKey(
  secretAccessKey: string,
  date: string,
  region: string,
  service: string,
): Buffer {
  const kDate = hmac(`AWS4${secretAccessKey}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, "aws4_request");
}

/** The signature the request should carry if it was signed with this secret. */
export function expectedSignature(
  request: SignedRequest,
  auth: SigV4Authorization,
  amzDate: string,
  secretAccessKey: string,
): string {
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = [
    SIGV4_ALGORITHM,
    amzDate,
    scope,
    sha256Hex(canonicalRequest(request, auth.signedHeaders)),
  ].join("\n");
  const key = signingKey(secretAccessKey, auth.date, auth.region, auth.service);
  return createHmac("sha256", key).update(stringToSign, "utf8").digest("hex");
}

export function signaturesEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/** Parses `20240101T120000Z`; undefined when malformed. */
export function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s));
}

export function formatAmzDate(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}
