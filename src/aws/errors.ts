// Turns what AWS and the network answer into the catalogue's errors (whose
// codes are the Ready condition's reasons), with one-line messages that name
// what to fix and never carry a credential.
import { isOperatorError, type OperatorError, operatorError } from "../errors.js";

const refusedCodes = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "ExpiredTokenException",
  "InvalidAccessKeyId",
  "IncompleteSignature",
]);
/** The SDK's throttling error codes (@smithy's THROTTLING_ERROR_CODES, the ones ECR and STS use). */
const throttlingCodes = new Set([
  "ThrottlingException",
  "Throttling",
  "ThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "ProvisionedThroughputExceededException",
  "SlowDown",
]);

interface AwsLikeError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: string;
}

/** The AWS error code (exception name) of an SDK error, or the Node error code. */
export function awsErrorCode(err: unknown): string {
  if (typeof err !== "object" || err === null) return "Unknown";
  const e = err as AwsLikeError;
  if (e.name && e.name !== "Error") return e.name;
  return e.code ?? "Unknown";
}

/**
 * Classifies a failed token fetch. `source` says where the credentials came
 * from and `step` what was being done ("get an ECR token in us-east-1").
 * An error already from the catalogue passes through unchanged.
 */
export function classifyAwsError(err: unknown, source: string, step: string): OperatorError {
  if (isOperatorError(err)) return err;
  const code = awsErrorCode(err);
  const e = (typeof err === "object" && err !== null ? err : {}) as AwsLikeError;
  const status = e.$metadata?.httpStatusCode;
  const aws = scrub(e.message ?? String(err));
  const p = { step, source, detail: aws };

  if (code === "CredentialsProviderError") {
    // The SDK found no credentials at all (or its provider failed before any
    // AWS call): nothing was refused, something is missing.
    return operatorError("CredentialsInvalid", "none", p, err);
  }
  if (code === "InvalidIdentityToken" || code === "InvalidIdentityTokenException") {
    return operatorError("RoleNotAssumable", "webIdentity", p, err);
  }
  if (refusedCodes.has(code)) {
    return operatorError("CredentialsInvalid", "refused", { ...p, detail: code }, err);
  }
  // STS answers "AccessDenied", ECR "AccessDeniedException".
  if (code === "AccessDenied") return operatorError("RoleNotAssumable", "accessDenied", p, err);
  if (code === "AccessDeniedException") return operatorError("AccessDenied", "ecr", p, err);
  if (
    code === "ENOTFOUND" ||
    code === "EAI_AGAIN" ||
    /getaddrinfo|Region is missing|Invalid region/i.test(aws)
  ) {
    return operatorError("RegionUnknown", "unreachable", { step, code }, err);
  }
  const detail = `${code}${status ? ` (HTTP ${status})` : ""}: ${aws}`;
  if (throttlingCodes.has(code) || status === 429) {
    return operatorError("TokenRefreshFailed", "throttled", { ...p, detail }, err);
  }
  return operatorError("TokenRefreshFailed", "aws", { ...p, detail }, err);
}

/** Belt and braces: AWS messages carry no secrets, but never let anything key-shaped through. */
export function scrub(message: string): string {
  return message
    .replace(/\b[A-Za-z0-9+/]{40}\b/g, "[redacted]")
    .replace(/\b(AKIA|ASIA)[A-Z0-9]{12,}\b/g, "$1…")
    .slice(0, 300);
}
