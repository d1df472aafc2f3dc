// SigV4 authentication as AWS performs it, with AWS's refusals.
import type { Identity } from "./principals.js";
import { isoCompact, type RequestContext, ServiceError } from "./protocol.js";
import {
  expectedSignature,
  headerValue,
  parseAmzDate,
  parseAuthorization,
  signaturesEqual,
} from "./sigv4.js";
import type { DoubleState } from "./state.js";

const INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid.";
const EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired";
const SIGNATURE_MISMATCH_MESSAGE =
  "The request signature we calculated does not match the signature you provided. " +
  "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/**
 * Verifies the request's SigV4 signature for `signingService` and returns
 * the caller; notes the access key, region and principal in `ctx`. Throws
 * ServiceError the way AWS would refuse (also under the "refuse" fault).
 */
export function authenticate(
  state: DoubleState,
  ctx: RequestContext,
  signingService: string,
): Identity {
  const { headers } = ctx.signed;
  const authorization = headerValue(headers, "authorization");
  if (authorization === undefined) {
    throw new ServiceError("missingAuthentication", "Missing Authentication Token");
  }
  const auth = parseAuthorization(authorization);
  if (auth === undefined) {
    throw new ServiceError(
      "incompleteSignature",
      `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=${authorization}`,
    );
  }
  ctx.accessKeyId = auth.accessKeyId;
  ctx.region = auth.region;
  const identity = knownIdentity(state, ctx, auth.accessKeyId);
  if (!auth.signedHeaders.includes("host")) {
    throw new ServiceError(
      "incompleteSignature",
      "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    );
  }
  const amzDateHeader = headerValue(headers, "x-amz-date");
  const amzDate = amzDateHeader === undefined ? undefined : parseAmzDate(amzDateHeader);
  if (amzDateHeader === undefined || amzDate === undefined) {
    throw new ServiceError(
      "incompleteSignature",
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
  }
  checkSkew(state, amzDateHeader, amzDate);
  if (auth.date !== amzDateHeader.slice(0, 8)) {
    throw new ServiceError(
      "invalidSignature",
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.date}' != '${amzDateHeader.slice(0, 8)}', from '${amzDateHeader}'.`,
    );
  }
  if (auth.service !== signingService) {
    throw new ServiceError(
      "invalidSignature",
      `Credential should be scoped to correct service: '${signingService}'.`,
    );
  }
  const expected = expectedSignature(ctx.signed, auth, amzDateHeader, identity.secretAccessKey);
  if (!signaturesEqual(expected, auth.signature)) {
    throw new ServiceError("invalidSignature", SIGNATURE_MISMATCH_MESSAGE);
  }
  return identity;
}

/** The caller behind the access key, with its session token and expiry checked. */
function knownIdentity(state: DoubleState, ctx: RequestContext, accessKeyId: string): Identity {
  if (state.faults.consume(ctx.service, ctx.action, "refuse")) {
    throw new ServiceError("unrecognizedClient", INVALID_TOKEN_MESSAGE);
  }
  const identity = state.principals.identity(accessKeyId);
  if (identity === undefined) throw new ServiceError("unrecognizedClient", INVALID_TOKEN_MESSAGE);
  ctx.principalArn = identity.arn;
  const presentedToken = headerValue(ctx.signed.headers, "x-amz-security-token");
  if (presentedToken !== identity.sessionToken) {
    throw new ServiceError("unrecognizedClient", INVALID_TOKEN_MESSAGE);
  }
  if (identity.expiresAt !== undefined && identity.expiresAt.getTime() <= Date.now()) {
    throw new ServiceError("expiredToken", EXPIRED_TOKEN_MESSAGE);
  }
  return identity;
}

/**
 * Checked against the double's own clock, which may be set apart from this
 * machine's (clockOffsetMs), the way AWS checks against its own.
 */
function checkSkew(state: DoubleState, amzDateHeader: string, amzDate: Date): void {
  const { maxClockSkewMs } = state.settings;
  const serverNow = state.settings.now();
  const skew = amzDate.getTime() - serverNow;
  if (Math.abs(skew) <= maxClockSkewMs) return;
  const now = isoCompact(new Date(serverNow));
  const limit = isoCompact(new Date(serverNow + Math.sign(skew) * maxClockSkewMs));
  const minutes = Math.round(maxClockSkewMs / 60_000);
  throw new ServiceError(
    "invalidSignature",
    skew < 0
      ? `Signature expired: ${amzDateHeader} is now earlier than ${limit} (${now} - ${minutes} min.)`
      : `Signature not yet current: ${amzDateHeader} is still later than ${limit} (${now} + ${minutes} min.)`,
  );
}
