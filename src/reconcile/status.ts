// The status a reconcile pass reports, as a pure function of what it found,
// following Kubernetes conventions: metav1.Condition entries whose
// lastTransitionTime moves only when their status does, observedGeneration,
// and a bounded failures list.
import { ConditionType, Reason } from "../api/conditions.js";
import {
  type Condition,
  type ECRPullSecret,
  type ECRPullSecretStatus,
  type KeptSecret,
  MAX_FAILURES,
  type NamespaceFailure,
  parseDuration,
  type RegistryTokenStatus,
  type UncoveredPods,
} from "../api/index.js";
import { hostOfProxyEndpoint, type RegistryTarget } from "../aws/registries.js";
import {
  refreshLead,
  type TokenState,
  tokenLifetimeMs,
  tokenSourceKey,
} from "../aws/token-cache.js";
import type { VerifyResult } from "../aws/verify.js";
import { earliest } from "./content.js";

export interface ConditionInput {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export interface StatusInput {
  generation: number | undefined;
  conditions: ConditionInput[];
  registries: string[];
  tokenExpiresAt?: Date;
  lastRefreshTime?: Date;
  nextRefreshTime?: Date;
  desired: number;
  synced: number;
  failures: NamespaceFailure[];
  /** From the pull-failure watch; absent when it does not run. */
  uncoveredPods?: UncoveredPods;
  registryStatus?: RegistryTokenStatus[];
  /** Secrets cleanup kept because Pods still name them. */
  keptSecrets?: KeptSecret[];
}

export function buildStatus(
  previous: ECRPullSecretStatus | undefined,
  input: StatusInput,
  now: Date,
): ECRPullSecretStatus {
  const conditions: Condition[] = input.conditions.map((c) => {
    const before = previous?.conditions?.find((p) => p.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message.slice(0, 1024),
      observedGeneration: input.generation,
      lastTransitionTime:
        before && before.status === c.status ? before.lastTransitionTime : now.toISOString(),
    };
  });
  const failures = [...input.failures]
    .sort((a, b) => a.namespace.localeCompare(b.namespace))
    .slice(0, MAX_FAILURES);
  const status: ECRPullSecretStatus = {
    observedGeneration: input.generation,
    conditions,
    registries: [...input.registries].sort(),
    namespaces: {
      desired: input.desired,
      synced: input.synced,
      failed: input.failures.length,
      summary: `${input.synced}/${input.desired}`,
    },
  };
  if (input.registryStatus && input.registryStatus.length > 0)
    status.registryStatus = input.registryStatus;
  if (input.tokenExpiresAt) status.tokenExpiresAt = input.tokenExpiresAt.toISOString();
  if (input.lastRefreshTime) status.lastRefreshTime = input.lastRefreshTime.toISOString();
  if (input.nextRefreshTime) status.nextRefreshTime = input.nextRefreshTime.toISOString();
  if (failures.length > 0) status.failures = failures;
  if (input.uncoveredPods) {
    const { count, pods } = input.uncoveredPods;
    status.uncoveredPods = pods?.length ? { count, pods } : { count };
  }
  const kept = keptSecretsField(input.keptSecrets);
  if (kept) status.keptSecrets = kept;
  return status;
}

/** What one pass found, for its one status write. Absent parts keep their previous values. */
export interface PassOutcome {
  ready: ConditionInput;
  verified?: ConditionInput;
  tokens?: readonly TokenState[];
  registries?: string[];
  registryStatus?: RegistryTokenStatus[];
  counts?: { desired: number; synced: number; failures: NamespaceFailure[] };
  uncoveredPods?: UncoveredPods;
  /** From the pass's cleanup; absent: the previous list stays. */
  keptSecrets?: KeptSecret[];
}

/** The status a pass writes. */
export function passStatus(
  resource: ECRPullSecret,
  pass: PassOutcome,
  now: Date,
): ECRPullSecretStatus {
  const previous = resource.status;
  const tokens = pass.tokens ?? [];
  return buildStatus(
    previous,
    {
      generation: resource.metadata?.generation,
      conditions: [pass.ready, ...(pass.verified ? [pass.verified] : [])],
      registries: pass.registries ?? previous?.registries ?? [],
      tokenExpiresAt: earliest(tokens.map((t) => t.token?.expiresAt)),
      lastRefreshTime: earliest(tokens.map((t) => t.token?.fetchedAt)),
      nextRefreshTime: earliest(tokens.map((t) => t.nextRefreshAt)),
      desired: pass.counts?.desired ?? previous?.namespaces?.desired ?? 0,
      synced: pass.counts?.synced ?? previous?.namespaces?.synced ?? 0,
      failures: pass.counts?.failures ?? previous?.failures ?? [],
      ...uncoveredPodsField(previous, pass.uncoveredPods),
      registryStatus: pass.registryStatus ?? previous?.registryStatus ?? [],
      keptSecrets: pass.keptSecrets ?? previous?.keptSecrets ?? [],
    },
    now,
  );
}

/**
 * status.uncoveredPods: written once a resource has had an uncovered Pod
 * (a resource that never had one gets no field, so no write), kept as it was
 * while the Pod watch has not listed yet.
 */
function uncoveredPodsField(
  previous: ECRPullSecretStatus | undefined,
  now: UncoveredPods | undefined,
): { uncoveredPods?: UncoveredPods } {
  const value = now ?? previous?.uncoveredPods;
  if (!value || (value.count === 0 && !previous?.uncoveredPods)) return {};
  return { uncoveredPods: value };
}

/**
 * Per registry of the Secret: is its entry current (its source answered last
 * time), and if not, why. A registry whose token comes from the caller's own
 * registry (no host in the spec) is named once its token names it.
 */
export function registryStatuses(
  targets: readonly RegistryTarget[],
  states: ReadonlyMap<string, TokenState>,
): RegistryTokenStatus[] {
  const out: RegistryTokenStatus[] = [];
  for (const t of targets) {
    const state = states.get(tokenSourceKey(t.source));
    const registry = t.host ?? hostOfProxyEndpoint(state?.token?.proxyEndpoint);
    if (!registry || out.some((r) => r.registry === registry)) continue;
    const entry: RegistryTokenStatus = {
      registry,
      current: Boolean(state?.token) && !state?.error && !state?.expiredOnArrival,
    };
    if (state?.token) entry.tokenExpiresAt = state.token.expiresAt.toISOString();
    if (state?.nextRefreshAt) entry.nextRefreshTime = state.nextRefreshAt.toISOString();
    if (state?.error) {
      entry.reason = state.error.code;
      entry.message = state.error.message.slice(0, 1024);
    } else if (state?.expiredOnArrival) {
      entry.reason = Reason.TokenExpiredOnArrival;
    }
    out.push(entry);
  }
  return out;
}

/** A Ready condition that is False for this reason. */
export function notReady(reason: string, message: string): ConditionInput {
  return { type: ConditionType.Ready, status: "False", reason, message };
}

/**
 * The Ready condition of a pass that had a token for every registry: a token
 * that expired on arrival first, then a failed refresh (the Secrets in place
 * still work until they expire), then namespaces that failed, else Synced.
 */
export function readyCondition(pass: {
  tokens: readonly TokenState[];
  desired: number;
  failures: readonly NamespaceFailure[];
  expiresAt: Date | undefined;
  /** How many namespaces this install may serve; absent: every namespace. */
  servedNamespaces?: number;
  /** Per registry, to name the ones whose source fails. */
  registries?: readonly RegistryTokenStatus[];
}): ConditionInput {
  const { desired, failures } = pass;
  const synced = desired - failures.length;
  if (pass.tokens.some((s) => s.expiredOnArrival)) {
    return notReady(
      Reason.TokenExpiredOnArrival,
      "AWS returned a token that had already expired on arrival; check the clocks and the endpoint; refetching no faster than the refresh floor",
    );
  }
  const firstError = pass.tokens.find((s) => s.error)?.error;
  if (firstError) {
    // Which registries it holds back, when some others are current: the one
    // to look at is named, and the others are known to be fine.
    const registries = pass.registries ?? [];
    const failing = registries.filter((r) => !r.current && r.reason === firstError.code);
    const current = registries.filter((r) => r.current).length;
    const named =
      failing.length > 0 && current > 0
        ? `registry ${failing.map((r) => r.registry).join(", ")} keeps its previous entry (${current}/${registries.length} registries current): `
        : "";
    // An absolute time, not "for 9m": the message (and so the status)
    // must not change on every retry while the failure lasts.
    return notReady(
      firstError.code,
      `${named}${firstError.message}; the Secrets in place stay valid until ${pass.expiresAt?.toISOString() ?? "unknown"}`,
    );
  }
  if (failures.length > 0) {
    // One reason for them all (conflicts, reverted ServiceAccounts, or
    // namespaces outside the granted set) is that reason; the first one's
    // message says what to fix.
    const reason = failures[0]?.reason;
    const same = failures.every((f) => f.reason === failures[0]?.reason);
    if (same && reason === Reason.NamespaceNotGranted) {
      const more =
        failures.length > 1 ? ` (and ${failures.length - 1} more in status.failures)` : "";
      return notReady(
        reason,
        `${synced}/${desired} namespaces synced; ${failures[0]?.message}${more}`,
      );
    }
    return notReady(
      same && (reason === Reason.SecretConflict || reason === Reason.ServiceAccountReverted)
        ? reason
        : Reason.PartiallySynced,
      `${synced}/${desired} namespaces synced; failed: ${failedList(failures)}`,
    );
  }
  const scope =
    pass.servedNamespaces === undefined
      ? ""
      : ` (namespaces, globs and selectors evaluated within the ${pass.servedNamespaces} namespaces this install may serve)`;
  // Ready now, but not for long: said before it fails (a certificate near its end).
  const warning = pass.tokens.find((s) => s.token?.credentialsWarning)?.token?.credentialsWarning;
  return {
    type: ConditionType.Ready,
    status: "True",
    reason: warning ? Reason.CredentialsExpiringSoon : Reason.Synced,
    message: `${synced}/${desired} namespaces${scope}${warning ? `; ${warning}` : ""}`,
  };
}

/** The first few failed namespaces and their reasons, for a one-line message. */
export function failedList(failures: readonly NamespaceFailure[]): string {
  const shown = failures.slice(0, 5).map((f) => `${f.namespace} (${f.reason})`);
  return `${shown.join(", ")}${failures.length > 5 ? ", …" : ""}`;
}

export function verifiedCondition(result: VerifyResult): ConditionInput {
  return {
    type: ConditionType.Verified,
    status: result.ok ? "True" : "False",
    reason: result.ok ? Reason.Verified : Reason.VerificationFailed,
    message: result.message,
  };
}

/** Status equality as JSON, so an unchanged status is not written again. */
export function statusEqual(a: ECRPullSecretStatus | undefined, b: ECRPullSecretStatus): boolean {
  return canonical(a ?? {}) === canonical(b);
}

/**
 * JSON with object keys sorted by UTF-16 code unit: any fixed order will do,
 * and localeCompare would load ICU's collator for nothing.
 */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, x]) => x !== undefined)
          .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
      );
    }
    return v;
  });
}

/** A duration in whole seconds as Go prints it, without zero parts: "15m", "7m30s", "1h". */
export function shortDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const parts = `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${sec ? `${sec}s` : ""}`;
  return parts || "0s";
}

/**
 * Why spec.refreshBefore was not followed for these tokens, or undefined: a
 * lead not shorter than the token's real lifetime is capped at half of it
 * (token-cache.ts, refreshLead). Names the value, the lifetime and the fix;
 * stable while the tokens keep the same lifetime (it goes into the Ready
 * message and an Event).
 */
export function refreshBeforeCapped(
  refreshBefore: string | undefined,
  tokens: readonly TokenState[],
): string | undefined {
  if (refreshBefore === undefined) return undefined;
  const refreshBeforeMs = parseDuration(refreshBefore);
  let shortest: number | undefined;
  for (const t of tokens) {
    if (!t.token) continue;
    const lifetime = tokenLifetimeMs(t.token);
    const { capped } = refreshLead(refreshBeforeMs, lifetime);
    if (capped && (shortest === undefined || lifetime < shortest)) shortest = lifetime;
  }
  if (shortest === undefined) return undefined;
  return `spec.refreshBefore ${refreshBefore} is not shorter than the token's lifetime of ${shortDuration(shortest)}: refreshing ${shortDuration(shortest / 2)} before expiry (half the lifetime) instead; set spec.refreshBefore below ${shortDuration(shortest)} or remove it`;
}

// --- Secrets kept while Pods name them ---------------------------------------

/** status.keptSecrets: sorted by place, bounded; undefined when none is kept. */
function keptSecretsField(kept: readonly KeptSecret[] | undefined): KeptSecret[] | undefined {
  if (!kept || kept.length === 0) return undefined;
  const place = (k: KeptSecret) => `${k.namespace}/${k.name}`;
  return [...kept]
    .sort((a, b) => (place(a) < place(b) ? -1 : place(a) > place(b) ? 1 : 0))
    .slice(0, MAX_FAILURES);
}
