// The status a reconcile pass reports, as a pure function of what it found,
// following Kubernetes conventions: metav1.Condition entries whose
// lastTransitionTime moves only when their status does, observedGeneration,
// and a bounded failures list.
import type { Condition, ECRPullSecretStatus, NamespaceFailure } from "../api/index.js";

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
