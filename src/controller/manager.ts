// The run loop of `run`, after controller-runtime's manager: it serves
// /metrics and the probes, starts what every replica runs (the informers),
// takes part in leader election, starts what only the leader runs (the
// workers) once it holds the Lease, and shuts down in order: what runs
// finishes its pass, then the Lease is given up, then the endpoints close.
//
// A replica that loses the Lease stops writing at once (the elector's fence
// refuses every write and cancels those in flight), and the process exits
// within a second, so no pass carries on without the Lease; the Deployment
// restarts it as a standby (controller-runtime does the same).
import type { Server } from "node:http";
import type { KubeClient, KubeClientOptions } from "../kube/client.js";
import { closeServers, serveEndpoints } from "../observability/health.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { LEADER_RETRY_PERIOD_MS, LeaderElector, type LeaderOptions } from "./leader.js";

/** Something the manager starts and stops (controller-runtime's Runnable). */
export interface Runnable {
  /** Starts it; resolves once it runs (the informers: once each has listed). */
  start(): Promise<void> | void;
  /** Lets it finish what it is doing, then stops it; resolves once it has. */
  stop(): Promise<void>;
  /** Runs only on the replica that holds the Lease (every replica: false or absent). */
  readonly needLeaderElection?: boolean;
}

/** How the manager makes a client of the API server: its Lease's, and the one it hands out. */
export type NewClient = (
  opts: Pick<KubeClientOptions, "fence" | "onRetry" | "maxRetryAfterMs">,
) => KubeClient;

export interface ManagerOptions {
  /** host:port of /metrics and the probes ("0": none). */
  metricsAddress: string;
  /** host:port of the probes alone, unless it is `metricsAddress` ("0": none). */
  healthAddress: string;
  /** Elect a leader through this Lease; absent: this replica is the one writer. */
  leaderElection?: Omit<LeaderOptions, "onStartedLeading" | "onStoppedLeading" | "onError">;
  newClient: NewClient;
  /**
   * Ends the process with this code: one second after the Lease is lost, and
   * five seconds after any stop if something (a pooled connection, a hung
   * call) still holds the event loop then.
   */
  exit: (code: number) => void;
}

export class Manager {
  /**
   * The client for everything but the Lease: with leader election every
   * write asks the elector's fence first.
   */
  readonly client: KubeClient;
  private readonly elector: LeaderElector | undefined;
  private readonly runnables: Runnable[] = [];
  private readonly started = new Set<Runnable>();
  private readonly readyChecks: Array<() => boolean> = [];
  private servers: Server[] = [];
  private readonly stopped = Promise.withResolvers<number>();
  /** Why the manager is stopping (a signal's name, `lease-lost`); unset while it runs. */
  private stopReason: string | undefined;

  constructor(
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly opts: ManagerOptions,
  ) {
    if (opts.leaderElection) {
      // The Lease's client is not fenced: it must be able to release the
      // Lease. When the server throttles it, the other client's requests give
      // way, and it tries again within a retry period whatever Retry-After
      // says: API Priority and Fairness raises that to 32 s under load, past
      // the renew deadline.
      const leaseClient = opts.newClient({
        maxRetryAfterMs: LEADER_RETRY_PERIOD_MS,
        onRetry: (_method, _path, reason) => {
          if (reason === "HTTP 429") this.elector?.throttled();
        },
      });
      this.elector = new LeaderElector(leaseClient, log, {
        ...opts.leaderElection,
        onStartedLeading: () => this.lead(),
        onStoppedLeading: () => this.leaseLost(),
        onError: (reason) => metrics.leaderElectionErrors.inc({ reason }),
      });
    }
    this.client = opts.newClient({ fence: this.elector?.fence });
  }

  /** Adds a runnable; those of every replica start in the order added, and stop in reverse. */
  add(runnable: Runnable): void {
    this.runnables.push(runnable);
  }

  /** A condition of /readyz, beside the Lease being within reach. */
  addReadyzCheck(check: () => boolean): void {
    this.readyChecks.push(check);
  }

  /** What /readyz answers: every check holds, and the Lease is not out of reach (403, 404). */
  get ready(): boolean {
    return this.readyChecks.every((check) => check()) && !this.elector?.blockedReason;
  }

  /**
   * Serves the endpoints, starts every replica's runnables, and once they
   * run enters leader election (or leads at once without it). Resolves with
   * the exit code once stopped: 0 after `signal` aborts (its reason names
   * it in the log), 1 after the Lease was lost or a leader's runnable failed
   * to start. Rejects when an endpoint cannot listen or a runnable of every
   * replica fails to start.
   */
  async start(signal: AbortSignal): Promise<number> {
    // Ready once the caches have synced, leader or standby alike: a standby
    // is a working replica, and taking it out of the Service would gain
    // nothing. A replica that may not touch the Lease at all (RBAC, a
    // missing namespace) can never lead, so it is not ready, and says why
    // in its log.
    this.servers = await serveEndpoints(
      this.opts.metricsAddress,
      this.opts.healthAddress,
      this.metrics,
      { healthy: () => true, ready: () => this.ready },
    );
    const onAbort = () => this.stop(String(signal.reason), 0);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    // A stop while the caches are still syncing (the API server
    // unreachable) must end the run too.
    const synced = await Promise.race([
      this.startEach((r) => !r.needLeaderElection).then(() => true as const),
      this.stopped.promise,
    ]);
    if (synced !== true || this.stopReason !== undefined) return await this.stopped.promise;
    this.log.info("caches synced");
    if (this.elector) this.elector.start();
    else this.lead();
    return await this.stopped.promise;
  }

  /** Starts the runnables `which` selects, one after another. */
  private async startEach(which: (r: Runnable) => boolean): Promise<void> {
    for (const r of this.runnables.filter(which)) {
      if (this.stopReason !== undefined) return;
      this.started.add(r);
      await r.start();
    }
  }

  /** This replica writes from now on: the leader's runnables start. */
  private lead(): void {
    if (this.stopReason !== undefined) return;
    // Set with or without election: the no-leader alert reads this gauge.
    this.metrics.isLeader.set(1);
    void this.startEach((r) => r.needLeaderElection === true).catch((err: unknown) => {
      this.log.error({ err: errorField(err) }, "failed to start");
      this.stop("failed-start", 1);
    });
  }

  /**
   * The elector lost the Lease (its fence already refuses every write): the
   * process ends within a second, however long the stop takes.
   */
  private leaseLost(): void {
    this.metrics.isLeader.set(0);
    this.log.error("lost the leader lease; exiting so no write happens without it");
    setTimeout(() => this.opts.exit(1), 1_000);
    this.stop("lease-lost", 1);
  }

  /** Shuts down once (later calls do nothing); start() then resolves with `code`. */
  private stop(reason: string, code: number): void {
    if (this.stopReason !== undefined) return;
    this.stopReason = reason;
    this.log.info({ signal: reason }, "shutting down");
    void this.shutDown(reason, code).then(this.stopped.resolve);
  }

  private async shutDown(signal: string, code: number): Promise<number> {
    // The runnables finish the pass they are in and take no more; only then
    // is the Lease given up, so a successor never overlaps our writes.
    try {
      for (const r of this.runnables.toReversed()) if (this.started.has(r)) await r.stop();
      await this.elector?.release();
    } catch (err) {
      this.log.error({ err: errorField(err) }, "failed to shut down cleanly");
    }
    closeServers(this.servers);
    this.log.info({ signal, code }, "stopped");
    // Whatever still holds the event loop must not keep a terminated Pod
    // alive; unref'd, so a clean exit does not wait for it.
    setTimeout(() => this.opts.exit(code), 5_000).unref();
    return code;
  }
}
