// What a namespace that failed is (its status entry and whether it is worth
// an Event), and what the queue does after a pass (controller-runtime's
// contract): failed writes throw and back off; a ServiceAccount a neighbour
// keeps reverting waits out its own backoff; a ServiceAccount its role
// refused, or a namespace outside the granted set, is not a failed write (IAM
// or the install said no, and backing off would delay every other change of
// the resource): it is asked again after a while.
import { Reason } from "../api/conditions.js";
import type { KeptSecret, NamespaceFailure } from "../api/index.js";
import { isOperatorError, type OperatorError, operatorError } from "../errors.js";
import { apiErrorMessage } from "../kube/client.js";
import { type Notice, warning } from "../observability/events.js";
import { failedList } from "./status.js";

/** How soon a resource with ServiceAccounts its roles refused asks IAM again. */
export const ROLE_RETRY_MS = 15_000;
/** How soon a resource whose cleanup kept Secrets that Pods name lists those Pods again. */
export const KEPT_RECHECK_MS = 10_000;

/**
 * A namespace's failed write as status.failures has it: an operator error
 * under its code, anything else (an API error; a namespace going away under
 * us lands here too, and its next event settles it) as WriteFailed. A
 * conflict with someone else's Secret is also told in an Event.
 */
export function writeFailure(
  namespace: string,
  err: unknown,
  notify: (notice: Notice) => void,
): NamespaceFailure {
  if (!isOperatorError(err)) {
    return { namespace, reason: Reason.WriteFailed, message: apiErrorMessage(err) };
  }
  if (err.code === Reason.SecretConflict) notify(warning(err.code, err.message));
  return { namespace, reason: err.code, message: err.message };
}

/**
 * A namespace the resource names that this install may not serve (`served`:
 * the namespaces it may), reported with an Event.
 */
export function notGranted(
  namespace: string,
  served: ReadonlySet<string> | undefined,
  notify: (notice: Notice) => void,
): NamespaceFailure {
  const err = operatorError("NamespaceNotGranted", "outside", {
    namespace,
    served: [...(served ?? [])].sort().join(", "),
  });
  notify(warning(err.code, err.message));
  return { namespace, reason: err.code, message: err.message };
}

/** One failure per namespace: the first reason a namespace failed for. */
export function mergeFailures(
  a: readonly NamespaceFailure[],
  b: readonly NamespaceFailure[],
): NamespaceFailure[] {
  const seen = new Set<string>();
  return [...a, ...b].filter((f) => !seen.has(f.namespace) && seen.add(f.namespace));
}

/** What the queue does after a pass: run it again after `requeueAfterMs`, or only on an event. */
export interface NextPass {
  ready: boolean;
  requeueAfterMs?: number;
}

/** What a pass that wrote found, for deciding what comes next. */
export interface PassFindings {
  /** Namespaces whose writes failed. */
  writeFailures: readonly NamespaceFailure[];
  /** Every failed namespace (writes, refused roles, not granted), one entry each. */
  failures: readonly NamespaceFailure[];
  /** Target namespaces, granted or not. */
  desired: number;
  ready: boolean;
  /** A failed registry check wants another pass after this long. */
  checkRetryAfterMs: number | undefined;
  /** ServiceAccounts their role refused (or with an unusable annotation), when roles are in use. */
  perRole: { failures: readonly NamespaceFailure[] } | undefined;
  /** The soonest a reverted ServiceAccount entry may be added again. */
  reAddInMs: number | undefined;
  /** Secrets cleanup kept because Pods name them. */
  kept: readonly KeptSecret[];
}

/**
 * The pass's result, or the PartiallySynced error it ends in (to be thrown
 * once its status is written). Kept Secrets are looked at again after
 * KEPT_RECHECK_MS at the latest: no watch sees a running Pod go.
 */
export function nextPass(found: PassFindings): NextPass | OperatorError {
  const next = beforeKeptRecheck(found);
  if (isOperatorError(next) || found.kept.length === 0) return next;
  const requeueAfterMs = Math.min(next.requeueAfterMs ?? KEPT_RECHECK_MS, KEPT_RECHECK_MS);
  return { ...next, requeueAfterMs };
}

function beforeKeptRecheck(found: PassFindings): NextPass | OperatorError {
  const { writeFailures, failures, reAddInMs } = found;
  const reverted = writeFailures.filter((f) => f.reason === Reason.ServiceAccountReverted);
  if (writeFailures.length > 0 && reverted.length === writeFailures.length) {
    return { ready: false, ...(reAddInMs !== undefined ? { requeueAfterMs: reAddInMs } : {}) };
  }
  if (writeFailures.length > 0) {
    return operatorError("PartiallySynced", "namespaces", {
      failed: failures.length,
      desired: found.desired,
      first: failedList(failures),
    });
  }
  const requeueAfterMs =
    found.perRole && found.perRole.failures.length > 0
      ? Math.min(found.checkRetryAfterMs ?? ROLE_RETRY_MS, ROLE_RETRY_MS)
      : found.checkRetryAfterMs;
  return { ready: found.ready, ...(requeueAfterMs ? { requeueAfterMs } : {}) };
}

/** The value, or the InvalidSpec error that computing it threw. */
export function specOrError<T>(compute: () => T): T | OperatorError {
  try {
    return compute();
  } catch (err) {
    if (isOperatorError(err, "InvalidSpec")) return err;
    throw err;
  }
}
