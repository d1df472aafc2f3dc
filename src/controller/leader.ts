// Leader election on a coordination.k8s.io/v1 Lease, with client-go's
// defaults: 15 s lease, 10 s renew deadline, 2 s retry. Writes to the Lease
// use its resourceVersion, so two replicas can never both think they won.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { V1Lease } from "@kubernetes/client-node";
import { isConflict, isNotFound, type KubeClient } from "../kube/client.js";
import { errorField, type Logger } from "../observability/logger.js";

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

export class LeaderElector {
  readonly identity: string;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private lastRenew = 0;
  private stopped = false;
  /** When we first saw the current holder's record unchanged (for expiry by our own clock). */
  private observed: { record: string; at: number } | undefined;

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly opts: LeaderOptions,
  ) {
    this.identity = opts.identity ?? `${hostname()}_${randomBytes(4).toString("hex")}`;
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.retryMs);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      this.log.warn(
        { lease: this.opts.name, err: errorField(err) },
        "failed to update leader lease",
      );
    }
    const now = Date.now();
    if (ok) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        this.log.info({ lease: this.opts.name, identity: this.identity }, "became leader");
        this.opts.onStartedLeading();
      }
    } else if (this.leading && now - this.lastRenew > this.renewDeadlineMs) {
      this.leading = false;
      this.stopped = true;
      this.opts.onStoppedLeading();
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
      renewTime: now,
    };
    let lease: V1Lease;
    try {
      lease = await this.kube.request("get", "leases", () =>
        this.kube.coordination.readNamespacedLease({ namespace, name }),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.kube.request("create", "leases", () =>
          this.kube.coordination.createNamespacedLease({
            namespace,
            body: {
              metadata: { name, namespace },
              spec: { ...spec, acquireTime: now, leaseTransitions: 0 },
            },
          }),
        );
        return true;
      } catch (createErr) {
        if (isConflict(createErr)) return false;
        throw createErr;
      }
    }
    const holder = lease.spec?.holderIdentity;
    if (holder && holder !== this.identity) {
      // Expiry is judged by our own clock: the holder's record must stay
      // unchanged for a whole lease duration (clocks may differ across nodes).
      const record = `${holder}|${String(lease.spec?.renewTime?.valueOf() ?? "")}|${lease.metadata?.resourceVersion}`;
      if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
      const duration = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
      if (Date.now() - this.observed.at < duration) return false;
    }
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.identity ? 0 : 1);
    try {
      await this.kube.request("update", "leases", () =>
        this.kube.coordination.replaceNamespacedLease({
          namespace,
          name,
          body: {
            metadata: { ...lease.metadata, name, namespace },
            spec: {
              ...spec,
              acquireTime: holder === this.identity ? lease.spec?.acquireTime : now,
              leaseTransitions: transitions,
            },
          },
        }),
      );
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
    if (!this.leading) return;
    this.leading = false;
    const { namespace, name } = this.opts;
    try {
      const lease = await this.kube.coordination.readNamespacedLease({ namespace, name });
      if (lease.spec?.holderIdentity !== this.identity) return;
      await this.kube.coordination.replaceNamespacedLease({
        namespace,
        name,
        body: {
          metadata: lease.metadata,
          spec: {
            ...lease.spec,
            holderIdentity: undefined,
            leaseDurationSeconds: 1,
            renewTime: new Date(),
          },
        },
      });
    } catch (err) {
      this.log.warn({ lease: name, err: errorField(err) }, "failed to release leader lease");
    }
  }
}
