// What every service of the AWS double shares: the request in hand, the
// failures named once and spelled per protocol, and small encoders.
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { SignedRequest } from "./sigv4.js";
import type { AwsService } from "./types.js";

export const HOUR_MS = 3_600_000;

/** One request as it passes through the double; what it learns ends in the call record. */
export interface RequestContext {
  service: AwsService;
  action: string;
  region?: string;
  accessKeyId?: string;
  principalArn?: string;
  req: IncomingMessage;
  res: ServerResponse;
  signed: SignedRequest;
  form?: URLSearchParams;
  roleArn?: string;
  roleSessionName?: string;
  externalId?: string;
  sessionTags?: Record<string, string>;
  subject?: string;
}

/** Failures, named by what went wrong; each protocol spells them its own way. */
export type ErrorKind =
  | "unrecognizedClient"
  | "invalidSignature"
  | "expiredToken"
  | "missingAuthentication"
  | "incompleteSignature"
  | "accessDenied"
  | "throttling"
  | "serverError"
  | "validation"
  | "unknownOperation"
  | "invalidIdentityToken"
  | "idpCommunication"
  | "expiredWebIdentity";

/** A refusal the way AWS would send it; each service encodes it in its protocol. */
export class ServiceError extends Error {
  readonly kind: ErrorKind;
  // No parameter properties: Node must be able to run this file by stripping types.
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** awsJson1_1 (ECR, ECR Public): [HTTP status, __type]. */
export const JSON_ERRORS: Record<ErrorKind, [number, string]> = {
  unrecognizedClient: [400, "UnrecognizedClientException"],
  invalidSignature: [400, "InvalidSignatureException"],
  expiredToken: [400, "ExpiredTokenException"],
  missingAuthentication: [400, "MissingAuthenticationTokenException"],
  incompleteSignature: [400, "IncompleteSignatureException"],
  accessDenied: [400, "AccessDeniedException"],
  throttling: [400, "ThrottlingException"],
  serverError: [500, "ServerException"],
  validation: [400, "ValidationException"],
  unknownOperation: [400, "UnknownOperationException"],
  invalidIdentityToken: [400, "InvalidIdentityTokenException"],
  idpCommunication: [400, "IDPCommunicationErrorException"],
  expiredWebIdentity: [400, "ExpiredTokenException"],
};

/** awsQuery (STS): [HTTP status, Error.Code]. */
export const QUERY_ERRORS: Record<ErrorKind, [number, string]> = {
  unrecognizedClient: [403, "InvalidClientTokenId"],
  invalidSignature: [403, "SignatureDoesNotMatch"],
  expiredToken: [400, "ExpiredToken"],
  missingAuthentication: [403, "MissingAuthenticationToken"],
  incompleteSignature: [403, "IncompleteSignature"],
  accessDenied: [403, "AccessDenied"],
  throttling: [400, "Throttling"],
  serverError: [503, "ServiceUnavailable"],
  validation: [400, "ValidationError"],
  unknownOperation: [400, "InvalidAction"],
  invalidIdentityToken: [400, "InvalidIdentityToken"],
  idpCommunication: [400, "IDPCommunicationError"],
  expiredWebIdentity: [400, "ExpiredTokenException"],
};

/** STS's refusal of an action on a resource. */
export function notAuthorized(callerArn: string, action: string, resource: string): ServiceError {
  return new ServiceError(
    "accessDenied",
    `User: ${callerArn} is not authorized to perform: ${action} on resource: ${resource}`,
  );
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** `prefix` and `length` random base32 characters, as AWS's key and role ids look. */
export function randomId(prefix: string, length = 16): string {
  const bytes = randomBytes(length);
  let id = prefix;
  for (const b of bytes) id += BASE32[b & 31];
  return id;
}

/** Escapes text for an XML element or attribute. */
export function xmlEscape(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** The account field of an ARN; undefined when empty. */
export function accountFromArn(arn: string): string | undefined {
  return arn.split(":")[4] || undefined;
}

/** `arn:aws:iam::1:role/path/name` → `name`. */
export function roleNameFromArn(arn: string): string | undefined {
  const resource = arn.split(":").slice(5).join(":");
  if (!resource.startsWith("role/")) return undefined;
  return resource.split("/").at(-1) || undefined;
}

/** ISO 8601 without milliseconds, as AWS writes expirations. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `YYYYMMDDTHHMMSSZ`, SigV4's date format. */
export function isoCompact(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

/** The whole request body. */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
