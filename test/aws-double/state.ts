// What the double's services share: its settings (the AwsDouble's public
// fields, read live), its IAM, its faults and its call log.
import type { CallLog } from "./calls.js";
import type { Faults } from "./faults.js";
import type { Principals, Role, Session } from "./principals.js";
import type { RequestContext } from "./protocol.js";
import type { QuotaInit } from "./types.js";

/** The settings tests may change at any time; AwsDouble is one. */
export interface DoubleSettings {
  /** Lifetime of ECR tokens issued from now on (ms). */
  tokenLifetimeMs: number;
  /** Lifetime of role sessions when the caller does not ask for one (ms). */
  sessionLifetimeMs: number;
  /** How far a signature's date may be from the double's clock (ms). */
  maxClockSkewMs: number;
  /** The GetAuthorizationToken quota; undefined: none. */
  quota: QuotaInit | undefined;
  /** The registry URL GetAuthorizationToken names as proxyEndpoint. */
  proxyEndpointFor: (accountId: string, region: string) => string;
  /** The double's own time (ms since the epoch). */
  now(): number;
}

/** Everything a service module needs from the double. */
export interface DoubleState {
  readonly settings: DoubleSettings;
  readonly principals: Principals;
  readonly faults: Faults;
  readonly log: CallLog;
}

/**
 * Opens a session of `role` for this request: `durationMs` long (the
 * double's session lifetime by default), already expired under the
 * expiredTokens fault.
 */
export function assumeRole(
  state: DoubleState,
  ctx: RequestContext,
  role: Role,
  sessionName: string,
  durationMs: number | undefined,
): Session {
  const expiresAt = state.faults.expiresFor(ctx, durationMs ?? state.settings.sessionLifetimeMs);
  return state.principals.openSession(role, sessionName, expiresAt);
}
