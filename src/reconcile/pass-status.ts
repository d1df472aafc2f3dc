// What a pass reports, assembled as a value for the reconciler's one status
// write: the Ready and Verified conditions, counts, expiry and kept Secrets,
// with the Events and per-resource metric series that go with them. Three
// ends of a pass report: an invalid spec, no token at all, or a pass that got
// tokens and wrote. The conditions themselves are pure (status.ts).
import { Reason } from "../api/conditions.js";
import type {
  ECRPullSecret,
  KeptSecret,
  NamespaceFailure,
  RegistryTokenStatus,
} from "../api/index.js";
import { type TokenState, tokenLifetimeMs } from "../aws/token-cache.js";
import { type OperatorError, operatorError } from "../errors.js";
import type { Cached } from "../kube/types.js";
import {
  type Notice,
  serviceAccountReverted,
  tokenRefreshed,
  warning,
} from "../observability/events.js";
import type { Logger } from "../observability/logger.js";
import type { ResourceMetrics } from "../observability/resource-metrics.js";
import { earliest, type SecretContent } from "./content.js";
import { roleRegistries } from "./pass-tokens.js";
import type { RolePass } from "./role-secrets.js";
import type { Revert } from "./service-accounts.js";
import { notReady, type PassOutcome, readyCondition, refreshBeforeCapped } from "./status.js";
import type { RegistryChecks } from "./verification.js";

/** What reporting a pass uses besides the pass itself. */
export interface StatusReporter {
  series: ResourceMetrics;
  checks: RegistryChecks;
  log: Logger;
  notify: (resource: Cached<ECRPullSecret>, notice: Notice) => void;
  /** How many namespaces this install may serve; absent: every namespace. */
  servedNamespaces: number | undefined;
}

/** An invalid spec: said in Ready and an Event. */
export function invalidSpecStatus(
  r: StatusReporter,
  resource: Cached<ECRPullSecret>,
  err: OperatorError,
): PassOutcome {
  r.log.warn({ resource: resource.metadata.name, err: err.message }, "invalid spec");
  r.notify(resource, warning(Reason.InvalidSpec, err.message));
  return { ready: notReady(Reason.InvalidSpec, err.message) };
}

/** No token for any source: nothing is written, and Ready says why (the first source's error). */
export function noTokenStatus(
  r: StatusReporter,
  resource: Cached<ECRPullSecret>,
  tokens: TokenState[],
  missing: TokenState,
): PassOutcome {
  const name = resource.metadata.name;
  const err =
    missing.error ?? operatorError("TokenRefreshFailed", "noToken", { source: missing.key });
  r.notify(resource, warning(err.code, err.message));
  r.series.ready(name, false);
  r.log.warn(
    { resource: name, reason: err.code, err: err.message },
    "no token: Secrets left as they are",
  );
  return { ready: notReady(err.code, err.message), tokens };
}

/** What the steps of a pass that got tokens found, for its status. */
export interface WrittenPass {
  /** Token states of the resource's own sources and of its roles. */
  tokens: TokenState[];
  registryStatus: RegistryTokenStatus[];
  /** The resource's own Secret content; absent when it has no Secret of its own. */
  content: SecretContent | undefined;
  perRole: RolePass | undefined;
  /** Target namespaces, granted or not. */
  desired: number;
  failures: NamespaceFailure[];
  /** Secrets the writes step wrote. */
  wrote: number;
  /** Some registry kept an old entry (its source has no token). */
  carriedOver: boolean;
  /** Secrets cleanup kept because Pods name them. */
  kept: KeptSecret[];
}

/** The status of a pass that got tokens, whether it is Ready, and when a failed registry check wants another pass. */
export interface WrittenPassStatus {
  status: PassOutcome;
  ready: boolean;
  checkRetryAfterMs: number | undefined;
}

/**
 * The Ready and Verified conditions, counts and expiry of a pass that got
 * tokens (the registry check runs here), with the Events and metric series
 * they bring.
 */
export async function writtenPassStatus(
  r: StatusReporter,
  resource: Cached<ECRPullSecret>,
  pass: WrittenPass,
): Promise<WrittenPassStatus> {
  const name = resource.metadata.name;
  const { content, perRole, desired, failures, registryStatus } = pass;
  const expiresAt = earliest([
    content?.expiresAt,
    ...(perRole?.tokens.map((s) => s.token?.expiresAt) ?? []),
  ]);
  const computed = readyCondition({
    tokens: pass.tokens,
    desired,
    failures,
    expiresAt,
    servedNamespaces: r.servedNamespaces,
    registries: registryStatus,
  });
  // A refreshBefore the tokens' real lifetime cannot honour: said in Ready and an Event.
  const capped = refreshBeforeCapped(resource.spec.refreshBefore, pass.tokens);
  const lifetimes = pass.tokens.flatMap((s) => (s.token ? [tokenLifetimeMs(s.token)] : []));
  if (lifetimes.length > 0) r.series.tokenLifetime(name, Math.min(...lifetimes));
  if (capped) r.notify(resource, warning(Reason.RefreshBeforeCapped, capped));
  if (computed.reason === Reason.CredentialsExpiringSoon)
    r.notify(resource, warning(computed.reason, computed.message));
  const ready =
    capped && computed.status === "True"
      ? { ...computed, message: `${computed.message}; ${capped}` }
      : computed;
  // The expiry gauge per registry; a refresh (a new expiry written) told apart from a rewrite.
  r.series.registryExpiry(name, registryStatus);
  if (r.series.expiryMoved(name, expiresAt) && expiresAt && pass.wrote > 0) {
    r.notify(resource, tokenRefreshed(pass.wrote, expiresAt));
    r.log.info({ resource: name, secrets: pass.wrote, expiresAt }, "token refreshed");
  }
  // Names the registry the Secrets hold an old entry for.
  if (pass.carriedOver && ready.status === "False")
    r.notify(resource, warning(ready.reason, ready.message));
  const check = await r.checks.check(resource, content?.check);
  r.series.ready(name, ready.status === "True");
  if (pass.wrote > 0)
    r.log.debug({ resource: name, secrets: pass.wrote, namespaces: desired }, "reconciled");
  const status: PassOutcome = {
    ready,
    verified: check.condition,
    tokens: pass.tokens,
    registries: content?.registries ?? roleRegistries(perRole),
    registryStatus,
    counts: { desired, synced: desired - failures.length, failures },
    keptSecrets: pass.kept,
  };
  return { status, ready: ready.status === "True", checkRetryAfterMs: check.retryAfterMs };
}

/**
 * A neighbour (a GitOps tool's self-heal) removed our ServiceAccount entry:
 * counted per resource and manager, told (`tell`: an Event on the resource)
 * and logged with who did it.
 */
export function reportRevert(r: StatusReporter, revert: Revert, tell: (n: Notice) => void): void {
  const { owner: resource, manager, removals } = revert;
  r.series.reverted(resource, manager);
  tell(serviceAccountReverted(revert));
  const serviceAccount = `${revert.namespace}/${revert.name}`;
  r.log.warn(
    { resource, serviceAccount, manager, removals },
    "ServiceAccount entry removed by someone else",
  );
}
