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

/** The `sub` claim of a ServiceAccount's token: what a role's trust policy names. */
export const serviceAccountSubject = (sa: { namespace: string; name: string }): string =>
  `system:serviceaccount:${sa.namespace}:${sa.name}`;

/**
 * Classifies a failed token fetch. `source` says where the credentials came
 * from and `step` what was being done ("get an ECR token in us-east-1").
 * An error already from the catalogue passes through unchanged.
 */
export function classifyAwsError(
  err: unknown,
  source: string,
  step: string,
  /** The web identity's ServiceAccount, when its token is what the role must trust. */
  webIdentity?: { namespace: string; name: string },
): OperatorError {
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
  if (code === "ServiceAccountTokenError") {
    return operatorError(
      "ServiceAccountTokenFailed",
      "tokenRequest",
      { step, detail: e.message ?? "" },
      err,
    );
  }
  const subject = webIdentity ? serviceAccountSubject(webIdentity) : undefined;
  if (code === "InvalidIdentityToken" || code === "InvalidIdentityTokenException") {
    return operatorError("RoleNotAssumable", "webIdentity", { ...p, subject }, err);
  }
  if (code === "IDPCommunicationError" || code === "IDPCommunicationErrorException") {
    return operatorError("RoleNotAssumable", "issuerUnreadable", p, err);
  }
  if (isClockSkewRefusal(code, e.message ?? "")) {
    const offset = measuredClockOffsetMs(err);
    const measured =
      offset === undefined
        ? ""
        : `: AWS's clock is ${describeOffset(offset)} (from the Date header of its answer)`;
    return operatorError(
      "ClockSkew",
      "refused",
      { ...p, detail: `${code}: ${aws}`, offset: measured },
      err,
    );
  }
  if (refusedCodes.has(code)) {
    return operatorError("CredentialsInvalid", "refused", { ...p, detail: code }, err);
  }
  // STS answers "AccessDenied", ECR "AccessDeniedException".
  if (code === "AccessDenied")
    return operatorError("RoleNotAssumable", "accessDenied", { ...p, subject }, err);
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

/**
 * "Signature expired" / "not yet current" (ECR, STS), RequestTimeTooSkewed
 * (S3-style): the signature's time, not the key, is what AWS refused.
 */
function isClockSkewRefusal(code: string, message: string): boolean {
  if (code === "RequestTimeTooSkewed" || code === "RequestExpired") return true;
  return (
    (code === "InvalidSignatureException" || code === "SignatureDoesNotMatch") &&
    /Signature (expired|not yet current)|request time/i.test(message)
  );
}

/** AWS's clock minus this host's, from the Date header of the answer an SDK error carries. */
export function measuredClockOffsetMs(err: unknown, now = Date.now()): number | undefined {
  const response = (err as { $response?: { headers?: Record<string, string | undefined> } })
    ?.$response;
  const date = response?.headers?.date ?? response?.headers?.Date;
  const at = date ? Date.parse(date) : Number.NaN;
  return Number.isFinite(at) ? at - now : undefined;
}

/** "about 20 min ahead of this host's", "45 s behind this host's". */
export function describeOffset(offsetMs: number): string {
  const abs = Math.abs(offsetMs);
  const size =
    abs >= 120_000 ? `about ${Math.round(abs / 60_000)} min` : `${Math.round(abs / 1000)} s`;
  return `${size} ${offsetMs >= 0 ? "ahead of" : "behind"} this host's`;
}

/** Belt and braces: AWS messages carry no secrets, but never let anything key-shaped through. */
export function scrub(message: string): string {
  return message
    .replace(/\b[A-Za-z0-9+/]{40}\b/g, "[redacted]")
    .replace(/\b(AKIA|ASIA)[A-Z0-9]{12,}\b/g, "$1…")
    .slice(0, 300);
}
