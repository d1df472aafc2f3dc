// Does the Secret open the registry? Each new password is checked once (so
// after every refresh); a failed check is repeated on later passes with
// backoff and never cached for good. The answer is the Verified condition.
import { ConditionType, Reason } from "../api/conditions.js";
import type { ECRPullSecret } from "../api/index.js";
import type { VerifyResult } from "../aws/verify.js";
import type { Cached } from "../kube/types.js";
import type { EventRecorder } from "../observability/events.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { VerifyTarget } from "./content.js";
import { type ConditionInput, verifiedCondition } from "./status.js";

export type VerifyRegistry = (
  resource: string,
  url: string,
  username: string,
  password: string,
) => Promise<VerifyResult>;

/** First retry of a failed registry check; doubles per failure up to the cap. */
export const VERIFY_RETRY_BASE_MS = 5_000;
export const VERIFY_RETRY_MAX_MS = 5 * 60_000;

/** What the last registry check of a resource found, and when to check again. */
interface CheckMemory {
  password: string;
  result: VerifyResult;
  /** Consecutive failed checks of this password (0 after a success). */
  failures: number;
  /** Epoch ms before which a failed check is not repeated. */
  retryAt: number;
}

export interface CheckOutcome {
  condition?: ConditionInput;
  /** A failed check wants another pass after this long. */
  retryAfterMs?: number;
}

export class RegistryChecks {
  private readonly memory = new Map<string, CheckMemory>();

  constructor(
    private readonly verify: VerifyRegistry | undefined,
    private readonly events: Pick<EventRecorder, "record">,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async check(
    resource: Cached<ECRPullSecret>,
    auth: VerifyTarget | undefined,
  ): Promise<CheckOutcome> {
    if (!this.verify || !auth) return {};
    const name = resource.metadata.name;
    const previous = this.memory.get(name);
    if (auth.reused && !previous) {
      // A token reused across a restart passed its check when it was written;
      // one that failed then is checked again now.
      const before = resource.status?.conditions?.find((c) => c.type === ConditionType.Verified);
      if (before?.status === "True") {
        return this.remember(name, auth, { ok: true, message: before.message }, 0, 0, 0);
      }
    }
    const now = this.now();
    const samePassword = previous?.password === auth.password;
    if (previous && samePassword) {
      if (previous.result.ok) return { condition: verifiedCondition(previous.result) };
      if (now < previous.retryAt) {
        return {
          condition: verifiedCondition(previous.result),
          retryAfterMs: previous.retryAt - now,
        };
      }
    }
    const result = await this.verify(name, auth.url, auth.username, auth.password);
    const failures = result.ok ? 0 : (samePassword ? (previous?.failures ?? 0) : 0) + 1;
    const retryAfterMs = result.ok
      ? 0
      : Math.min(VERIFY_RETRY_BASE_MS * 2 ** (failures - 1), VERIFY_RETRY_MAX_MS);
    const log = this.log.child({ resource: name });
    if (!result.ok) {
      log.warn(
        { url: auth.url, err: result.message, retryInMs: retryAfterMs },
        "registry check failed",
      );
      const target = { name, uid: resource.metadata?.uid };
      if (failures === 1) {
        this.events.record(target, "Warning", Reason.VerificationFailed, result.message);
      }
    } else if (previous && !previous.result.ok) {
      log.info({ url: auth.url }, "registry check passes again");
    }
    return this.remember(name, auth, result, failures, retryAfterMs, now);
  }

  forget(name: string): void {
    this.memory.delete(name);
  }

  private remember(
    name: string,
    auth: VerifyTarget,
    result: VerifyResult,
    failures: number,
    retryAfterMs: number,
    checkedAt: number,
  ): CheckOutcome {
    const retryAt = checkedAt + retryAfterMs;
    this.memory.set(name, { password: auth.password, result, failures, retryAt });
    this.metrics.verified.set({ resource: name }, result.ok ? 1 : 0);
    return { condition: verifiedCondition(result), ...(retryAfterMs ? { retryAfterMs } : {}) };
  }
}
