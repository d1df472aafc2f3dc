// The status a reconcile pass reports, as a pure function of what it found,
// following Kubernetes conventions: metav1.Condition entries whose
// lastTransitionTime moves only when their status does, observedGeneration,
// and a bounded failures list.
import { ConditionType, Reason } from "../api/conditions.js";
import type {
  Condition,
  ECRPullSecret,
  ECRPullSecretStatus,
  NamespaceFailure,
} from "../api/index.js";
import type { TokenState } from "../aws/token-cache.js";
import type { VerifyResult } from "../aws/verify.js";
import { earliest } from "./content.js";

export const MAX_FAILURES = 20;

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
  if (input.tokenExpiresAt) status.tokenExpiresAt = input.tokenExpiresAt.toISOString();
  if (input.lastRefreshTime) status.lastRefreshTime = input.lastRefreshTime.toISOString();
  if (input.nextRefreshTime) status.nextRefreshTime = input.nextRefreshTime.toISOString();
  if (failures.length > 0) status.failures = failures;
  return status;
}

/** What one pass found, for its one status write. Absent parts keep their previous values. */
export interface PassOutcome {
  ready: ConditionInput;
  verified?: ConditionInput;
  tokens?: readonly TokenState[];
  registries?: string[];
  counts?: { desired: number; synced: number; failures: NamespaceFailure[] };
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
    },
    now,
  );
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
    // An absolute time, not "for 9m": the message (and so the status)
    // must not change on every retry while the failure lasts.
    return notReady(
      firstError.code,
      `${firstError.message}; the Secrets in place stay valid until ${pass.expiresAt?.toISOString() ?? "unknown"}`,
    );
  }
  if (failures.length > 0) {
    const conflicts = failures.filter((f) => f.reason === Reason.SecretConflict).length;
    return notReady(
      conflicts === failures.length ? Reason.SecretConflict : Reason.PartiallySynced,
      `${synced}/${desired} namespaces synced; failed: ${failedList(failures)}`,
    );
  }
  return {
    type: ConditionType.Ready,
    status: "True",
    reason: Reason.Synced,
    message: `${synced}/${desired} namespaces`,
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

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, x]) => x !== undefined)
          .sort(([x], [y]) => x.localeCompare(y)),
      );
    }
    return v;
  });
}
