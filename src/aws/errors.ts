// Turns what AWS and the network answer into the Ready condition's reasons,
// with one-line messages that name what to fix and never carry a credential.
import { Reason } from "../api/conditions.js";

/** A failure on the AWS side of a token fetch, with the condition reason it maps to. */
export class AwsSourceError extends Error {
  override readonly name = "AwsSourceError";
  constructor(
    readonly reason: Reason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

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
 * Classifies a failed token fetch. `what` says where the credentials came from
 * and `step` what was being done ("assume role X", "get an ECR token in us-east-1").
 */
export function classifyAwsError(err: unknown, what: string, step: string): AwsSourceError {
  if (err instanceof AwsSourceError) return err;
  const code = awsErrorCode(err);
  const e = (typeof err === "object" && err !== null ? err : {}) as AwsLikeError;
  const status = e.$metadata?.httpStatusCode;
  const aws = scrub(e.message ?? String(err));
  // STS answers "AccessDenied", ECR "AccessDeniedException".
  const isSts = code === "AccessDenied";

  if (code === "CredentialsProviderError") {
    // The SDK found no credentials at all (or its provider failed before any
    // AWS call): nothing was refused, something is missing.
    return new AwsSourceError(
      Reason.CredentialsInvalid,
      `failed to ${step}: no AWS credentials from ${what} (${aws}); set spec.credentials.secretRef or the operator's default credentials Secret, or give the operator IRSA (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE) or EKS Pod Identity`,
      { cause: err },
    );
  }
  if (code === "InvalidIdentityToken" || code === "InvalidIdentityTokenException") {
    return new AwsSourceError(
      Reason.RoleNotAssumable,
      `failed to ${step}: STS refused the web identity token of ${what} (${aws}); check the role's OIDC trust and the token file`,
      { cause: err },
    );
  }
  if (isClockSkewRefusal(code, e.message ?? "")) {
    const offset = measuredClockOffsetMs(err);
    const measured =
      offset === undefined
        ? ""
        : `: AWS's clock is ${describeOffset(offset)} (from the Date header of its answer)`;
    return new AwsSourceError(
      Reason.ClockSkew,
      `failed to ${step}: AWS refused the request as signed at the wrong time${measured}; ${code}: ${aws}; set this host's clock right (NTP, chrony); the keys are not at fault`,
      { cause: err },
    );
  }
  if (refusedCodes.has(code)) {
    return new AwsSourceError(
      Reason.CredentialsInvalid,
      `failed to ${step}: AWS refused ${what} (${code}); replace them with valid keys or fix the identity`,
      { cause: err },
    );
  }
  if (code === "AccessDenied" || code === "AccessDeniedException") {
    if (isSts) {
      return new AwsSourceError(
        Reason.RoleNotAssumable,
        `failed to ${step} with ${what}: access denied (${aws}); check the role's trust policy and externalId`,
        { cause: err },
      );
    }
    return new AwsSourceError(
      Reason.AccessDenied,
      `failed to ${step}: access denied for ${what} (${aws}); allow ecr:GetAuthorizationToken in its IAM policy`,
      { cause: err },
    );
  }
  if (
    code === "ENOTFOUND" ||
    code === "EAI_AGAIN" ||
    /getaddrinfo|Region is missing|Invalid region/i.test(aws)
  ) {
    return new AwsSourceError(
      Reason.RegionUnknown,
      `failed to ${step}: the AWS endpoint could not be reached (${code}); check the region (spec.region, a registry entry's region or host, or the operator's --region) and the network (HTTPS_PROXY and NO_PROXY, where AWS is reached through a proxy)`,
      { cause: err },
    );
  }
  return new AwsSourceError(
    Reason.TokenRefreshFailed,
    `failed to ${step} with ${what}: ${code}${status ? ` (HTTP ${status})` : ""}: ${aws}`,
    { cause: err },
  );
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
