// Leader election on a coordination.k8s.io/v1 Lease, with client-go's
// defaults: 15 s lease, 10 s renew deadline, 2 s retry. Writes to the Lease
// use its resourceVersion, so two replicas can never both think they won.
//
// The elector is also the fence of the operator's writes (`fence`): the
// client asks it before every write, and it answers no once the last
// successful renewal is older than the renew deadline by the monotonic clock,
// even before any timer has run (a process stopped with SIGSTOP and resumed
// past its lease wakes up with writes queued). Losing leadership aborts the
// fence's signal, which cancels every request in flight. The deadline is
// measured from when the renewal was sent, so a write allowed by the fence
// reaches the server seconds before another replica can take the Lease.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import {
  apiErrorMessage,
  FencedError,
  fenced,
  isConflict,
  isNotFound,
  type KubeClient,
  LEASES,
  statusCode,
  type WriteFence,
} from "../kube/client.js";
import type { Lease } from "../kube/types.js";
import { errorField, type Logger } from "../observability/logger.js";

/**
 * A Lease's times are metav1.MicroTime, which the API server parses with
 * exactly six fractional digits: a JavaScript ISO date (three) gets 400 Bad
 * Request, so pad it.
 */
function microTime(date: Date | string | undefined): string | undefined {
  if (date === undefined) return undefined;
  return new Date(date).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  /** Each failed attempt to read or write the Lease, by reason (Forbidden, Conflict, Timeout…), for a metric. */
  onError?: (reason: string) => void;
}

/** client-go's default retry period: how often a Lease write is tried, in ms. */
export const LEADER_RETRY_PERIOD_MS = 2_000;

export class LeaderElector {
  readonly identity: string;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;
  /** When we first saw the current holder's record unchanged (for expiry by our own clock). */
  private observed: { record: string; at: number } | undefined;
  /** How long until the current holder's lease runs out by our clock (0: unknown). */
  private holderExpiresInMs = 0;
  /** The last read of the Lease named another holder. */
  private heldByOther = false;
  private inflight: Promise<void> | undefined;
  /** The Lease as our last successful write left it (for renewing without a read). */
  private mine: Lease | undefined;
  /** When the last successful renewal was sent, by the monotonic clock. */
  private renewedAt = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private readonly lost = new AbortController();
  /**
   * Why the last attempt could not even be made as asked (the Lease is
   * forbidden to us): readiness reports it, since such a replica can never lead.
   */
  blockedReason: string | undefined;
  /** Set while a renewal of ours is being throttled: the controller's requests wait for it. */
  private renewalFirst: { promise: Promise<void>; resolve: () => void } | undefined;
  /** The right to write: aborted when leadership is lost. */
  readonly fence: WriteFence = {
    signal: this.lost.signal,
    gate: () => this.renewalFirst?.promise,
    check: () => {
      if (!this.leading) throw fenced("refused a write: this replica is not the leader");
      if (performance.now() - this.renewedAt > this.renewDeadlineMs) {
        this.loseLeadership("the lease was not renewed within the renew deadline");
        throw fenced(
          `refused a write: the leader lease was last renewed more than ${this.renewDeadlineMs} ms ago`,
        );
      }
    },
  };

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly opts: LeaderOptions,
  ) {
    this.identity = opts.identity ?? `${hostname()}_${randomBytes(4).toString("hex")}`;
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? LEADER_RETRY_PERIOD_MS;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.run();
  }

  private run(): void {
    this.inflight = this.tick().finally(() => {
      this.inflight = undefined;
      this.releaseGate();
    });
  }

  private schedule(): void {
    if (this.stopped) return;
    // A standby tries again the moment the holder's lease runs out, not up to
    // a retry period later: a dead leader is replaced within the lease duration.
    const wait =
      this.holderExpiresInMs > 0 ? Math.min(this.retryMs, this.holderExpiresInMs) : this.retryMs;
    this.timer = setTimeout(() => this.run(), wait);
  }

  /**
   * Called when the API server throttles a Lease request (the Lease client's
   * onRetry): until this renewal ends, the controller's requests hold back so
   * the renewal gets the seat it needs.
   */
  throttled(): void {
    if (!this.leading || this.renewalFirst) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.renewalFirst = { promise, resolve };
  }

  private releaseGate(): void {
    this.renewalFirst?.resolve();
    this.renewalFirst = undefined;
  }

  /** Stops leading at once: writes are refused and requests in flight cancelled. */
  private loseLeadership(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadlineTimer);
    this.log.error(
      { lease: this.opts.name, identity: this.identity, why },
      "lost the leader lease",
    );
    this.lost.abort(new FencedError(`lost the leader lease: ${why}`));
    this.releaseGate();
    this.opts.onStoppedLeading();
  }

  /** Leadership ends at the renew deadline unless a renewal moves it on. */
  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    const left = this.renewDeadlineMs - (performance.now() - this.renewedAt);
    this.deadlineTimer = setTimeout(
      () => {
        if (performance.now() - this.renewedAt >= this.renewDeadlineMs)
          this.loseLeadership("the lease was not renewed within the renew deadline");
        else this.armDeadline();
      },
      Math.max(0, left),
    );
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    // Woken up past the deadline (the process was stopped): no Lease write
    // may go out on leadership we no longer have.
    if (this.leading && performance.now() - this.renewedAt > this.renewDeadlineMs) {
      this.loseLeadership("the lease was not renewed within the renew deadline");
      return;
    }
    const sentAt = performance.now();
    let ok = false;
    let deadline: NodeJS.Timeout | undefined;
    try {
      // A request that hangs must not hold the renew loop past the deadline.
      ok = await Promise.race([
        this.tryAcquireOrRenew(),
        new Promise<boolean>((_, reject) => {
          deadline = setTimeout(
            () => reject(new Error(`no answer within ${this.renewDeadlineMs} ms`)),
            this.renewDeadlineMs,
          );
        }),
      ]);
      this.blockedReason = undefined;
    } catch (err) {
      const code = statusCode(err);
      const reason =
        code === 403
          ? "Forbidden"
          : code === 401
            ? "Unauthorized"
            : code === 404
              ? "NotFound"
              : code === 429
                ? "TooManyRequests"
                : code >= 500
                  ? "ServerError"
                  : code === 0
                    ? "Unreachable"
                    : `HTTP${code}`;
      // Forbidden (or a namespace that does not exist) will not heal by
      // retrying: a replica that can never lead must not look ready.
      this.blockedReason =
        code === 403 || code === 404
          ? `failed to take the leader Lease ${this.opts.namespace}/${this.opts.name}: ${reason}: ${apiErrorMessage(err)}`
          : undefined;
      this.opts.onError?.(reason);
      this.log.warn(
        {
          lease: this.opts.name,
          namespace: this.opts.namespace,
          reason,
          err: { message: apiErrorMessage(err) },
        },
        "failed to update leader lease",
      );
    } finally {
      clearTimeout(deadline);
    }
    if (this.stopped) return;
    if (ok) {
      this.renewedAt = sentAt;
      if (!this.leading) {
        this.leading = true;
        this.log.info({ lease: this.opts.name, identity: this.identity }, "became leader");
        this.opts.onStartedLeading();
      }
      this.armDeadline();
    } else if (this.leading && this.heldByOther) {
      // Someone else holds it now: stop at once.
      this.loseLeadership("another replica holds the lease");
      return;
    } else if (this.leading && performance.now() - this.renewedAt > this.renewDeadlineMs) {
      this.loseLeadership("the lease was not renewed within the renew deadline");
      return;
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name } = this.opts;
    const now = new Date();
    const spec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.round(this.leaseMs / 1000),
      renewTime: microTime(now),
    };
    // client-go's fast path: the leader renews the Lease it last wrote
    // without reading it first, one request instead of two (which counts
    // when the API server is throttling us); a conflict falls back to a read.
    const mine = this.mine;
    if (this.leading && mine) {
      try {
        this.mine = await this.kube.replace<Lease>(LEASES, {
          metadata: mine.metadata,
          spec: { ...mine.spec, ...spec, acquireTime: microTime(mine.spec?.acquireTime) },
        });
        return true;
      } catch (err) {
        this.mine = undefined;
        if (!isConflict(err)) throw err;
      }
    }
    let lease: Lease;
    try {
      lease = await this.kube.get<Lease>(LEASES, { namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        this.mine = await this.kube.create<Lease>(LEASES, {
          metadata: { name, namespace },
          spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch (createErr) {
        if (isConflict(createErr)) return false;
        throw createErr;
      }
    }
    const holder = lease.spec?.holderIdentity;
    this.holderExpiresInMs = 0;
    this.heldByOther = Boolean(holder) && holder !== this.identity;
    if (holder && holder !== this.identity) {
      // Expiry is judged by our own clock: the holder's record must stay
      // unchanged for a whole lease duration (clocks may differ across nodes).
      const record = `${holder}|${lease.spec?.renewTime ?? ""}|${lease.metadata?.resourceVersion}`;
      if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
      const duration = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
      const left = duration - (Date.now() - this.observed.at);
      if (left > 0) {
        this.holderExpiresInMs = left;
        return false;
      }
    }
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.identity ? 0 : 1);
    // The read may have been answered after our deadline passed (the process
    // was stopped meanwhile): a renewal now would be a write without the Lease.
    if (this.leading && performance.now() - this.renewedAt > this.renewDeadlineMs)
      throw fenced("the renew deadline passed while the Lease was being read");
    try {
      this.mine = await this.kube.replace<Lease>(LEASES, {
        metadata: { ...lease.metadata, name, namespace },
        spec: {
          ...spec,
          acquireTime: microTime(holder === this.identity ? lease.spec?.acquireTime : now),
          leaseTransitions: transitions,
        },
      });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Gives the Lease up (on a clean shutdown) so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadlineTimer);
    // A renewal still in flight must not land after the release.
    await this.inflight;
    if (!this.leading) return;
    this.leading = false;
    const { namespace, name } = this.opts;
    try {
      const lease = await this.kube.get<Lease>(LEASES, { namespace, name });
      if (lease.spec?.holderIdentity !== this.identity) return;
      await this.kube.replace<Lease>(LEASES, {
        metadata: lease.metadata,
        spec: {
          ...lease.spec,
          holderIdentity: undefined,
          leaseDurationSeconds: 1,
          acquireTime: microTime(lease.spec?.acquireTime),
          renewTime: microTime(new Date()),
        },
      });
    } catch (err) {
      this.log.warn({ lease: name, err: errorField(err) }, "failed to release leader lease");
    }
  }
}
