// Wiring: informers → work queue → reconcile. Every change to a resource, a
// namespace, a ServiceAccount, a managed Secret, a credentials Secret or the
// token clock enqueues the names of the resources it affects (enqueue.ts,
// credential-watchers.ts, the token cache); workers take names off the queue
// and reconcile them (src/reconcile).
import type { ECRPullSecret } from "../api/index.js";
import { describeCredentials } from "../aws/credentials.js";
import { fetchSourceToken } from "../aws/fetch.js";
import { AwsQuota } from "../aws/quota.js";
import type { OperatorDefaults } from "../aws/registries.js";
import { RoleAdmissions } from "../aws/role-admissions.js";
import { type RegistryToken, TokenClients } from "../aws/token.js";
import { TokenCache, type TokenSource } from "../aws/token-cache.js";
import { isOperatorError, isTerminal } from "../errors.js";
import type { KubeClient } from "../kube/client.js";
import type { Informer } from "../kube/informer.js";
import type { ObjectCache } from "../kube/namespaced-informers.js";
import { ServiceAccountTokens } from "../kube/service-account-token.js";
import type { Cached } from "../kube/types.js";
import type { EventRecorder } from "../observability/events.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { type Caches, KubeCluster } from "../reconcile/cluster.js";
import type { SecretView, ServiceAccountView } from "../reconcile/desired.js";
import { Reconciler } from "../reconcile/reconciler.js";
import type { NamespaceView } from "../reconcile/targets.js";
import { SecretTokenRecords } from "../reconcile/token-records.js";
import type { VerifyRegistry } from "../reconcile/verification.js";
import { CredentialWatchers } from "./credential-watchers.js";
import { enqueueOnEvents } from "./enqueue.js";
import type { OperatorConfig } from "./from-settings.js";
import { makeInformers } from "./informers.js";
import type { Runnable } from "./manager.js";
import { PullFailureWatch } from "./pull-failures.js";
import { runWorkers, WorkQueue } from "./queue.js";
import { claimKeys, claimStoreOf, servedClaims, tenantCachesOf } from "./tenant-informers.js";

/**
 * The settings the controller reads as they are (`podWatch`: the watch on
 * Pending Pods, which runs with the workers), and what is resolved from the
 * others (from-settings.ts).
 */
export type ControllerOptions = Pick<
  OperatorConfig,
  | "concurrency"
  | "writeConcurrency"
  | "awsTimeoutMs"
  | "minRefreshIntervalMs"
  | "awsBackoffBaseMs"
  | "awsBackoffMaxMs"
  | "awsTokenQps"
  | "awsTokenBurst"
  | "watchNamespaces"
  | "podWatch"
> & {
  defaults: OperatorDefaults;
  verify?: VerifyRegistry;
  /**
   * The operator's own namespace: its token records live there, out of
   * tenants' reach. Absent: no records (every start fetches anew).
   */
  stateNamespace?: string;
  /** TokenRequest audiences allowed beside sts.amazonaws.com (--allowed-token-audiences). */
  allowedTokenAudiences: readonly string[];
};

export class Controller {
  readonly queue = new WorkQueue();
  readonly tokens: TokenCache;
  readonly resources: Informer<Cached<ECRPullSecret>>;
  readonly namespaces: Informer<Cached<NamespaceView>>;
  readonly secrets: ObjectCache<Cached<SecretView>>;
  readonly serviceAccounts: ObjectCache<Cached<ServiceAccountView>>;
  readonly reconciler: Reconciler;
  readonly pullFailures: PullFailureWatch;
  private readonly caches: Caches;
  private readonly credentials: CredentialWatchers;
  /** Web identity: short-lived ServiceAccount tokens, minted per exchange. */
  private readonly serviceAccountTokens: ServiceAccountTokens;
  /** One AWS SDK client per token source, alive across fetches (clock-skew correction lives in it). */
  private readonly awsClients: TokenClients;
  /** The operator's token records (its namespace); absent without one. */
  private readonly records: SecretTokenRecords | undefined;
  /** The workers' loops: resolves once every one has ended. */
  private running: Promise<void> | undefined;
  private queueGauge: NodeJS.Timeout | undefined;
  /** Whether the caches have synced and events are acted on (see enqueueOnEvents). */
  private live = false;

  constructor(
    kube: KubeClient,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    events: EventRecorder,
    private readonly opts: ControllerOptions,
  ) {
    this.serviceAccountTokens = new ServiceAccountTokens(kube, {
      allowedAudiences: opts.allowedTokenAudiences,
    });
    this.caches = makeInformers(kube, log, opts.watchNamespaces, opts.stateNamespace);
    this.records =
      this.caches.tokenRecords && opts.stateNamespace
        ? new SecretTokenRecords(kube, this.caches.tokenRecords, opts.stateNamespace, log)
        : undefined;
    ({
      resources: this.resources,
      namespaces: this.namespaces,
      secrets: this.secrets,
      serviceAccounts: this.serviceAccounts,
    } = this.caches);
    this.awsClients = new TokenClients({
      timeoutMs: opts.awsTimeoutMs,
      observe: (service, region, seconds, code) => {
        metrics.awsRequestDuration.observe({ service, region }, seconds);
        if (code) metrics.awsErrors.inc({ service, code });
      },
    });
    this.tokens = this.makeTokenCache(events);
    this.credentials = new CredentialWatchers(kube, log, {
      defaults: opts.defaults,
      // ECRPullSecrets, and the claims as what they resolve to (their sources' credentials).
      resources: () => [...this.resources.list(), ...servedClaims(this.caches)],
      invalidate: (matches) => this.tokens.invalidate(matches),
      enqueue: (names) => this.enqueue(names),
    });
    this.pullFailures = this.makePullFailureWatch(kube, events);
    this.reconciler = this.makeReconciler(kube, events);
    // A resource's registries (in its status) or spec decide which Pods it
    // covers: Pods already waiting are judged again.
    const pods = this.pullFailures;
    const rediagnose = () => {
      if (pods.hasSynced) pods.rediagnose();
    };
    this.resources.on(rediagnose);
    tenantCachesOf(this.caches)?.claims.on(rediagnose);
    enqueueOnEvents(
      this.caches,
      this.queue,
      () => this.credentials.sync(),
      () => this.live,
    );
  }

  /** The shared token cache: fetches through the AWS pipeline, tells failures on the resources. */
  private makeTokenCache(events: EventRecorder): TokenCache {
    const { opts, metrics } = this;
    return new TokenCache({
      fetch: (source) => this.fetch(source),
      // A source no resource uses any more: its client and its record go.
      onDrop: (key) => {
        this.awsClients.forget(key);
        void this.records?.drop(key);
      },
      onChange: (subscribers) => this.enqueue(subscribers),
      // Counted by the cache, which alone knows a token expired at receipt.
      onFetched: (result, _key, subscribers, error) => {
        metrics.refreshes.inc({ result });
        // Every failed attempt is told on each resource that uses the source,
        // also while its Secrets still hold a good token; the recorder's rate
        // limit keeps a failing loop from flooding the API server.
        if (!error) return;
        for (const name of subscribers) {
          // A claim's Events go into its namespace, about the claim.
          const target = this.reconciler.eventTarget(name);
          events.record(target, "Warning", error.code, error.message);
        }
      },
      minRefreshIntervalMs: opts.minRefreshIntervalMs,
      backoffBaseMs: opts.awsBackoffBaseMs,
      backoffMaxMs: opts.awsBackoffMaxMs,
      jitter: 0.1,
      quota: new AwsQuota({ qps: opts.awsTokenQps, burst: opts.awsTokenBurst }),
    });
  }

  /** The watch on Pending Pods that cannot pull, reading the controller's caches. */
  private makePullFailureWatch(kube: KubeClient, events: EventRecorder): PullFailureWatch {
    const { opts } = this;
    return new PullFailureWatch(
      kube,
      this.log,
      this.metrics,
      events,
      {
        // ECRPullSecrets, and the claims as what they resolve to (in their namespace).
        resources: () => [...this.resources.values(), ...servedClaims(this.caches)],
        namespaceLabels: (name) => {
          const ns = this.namespaces.get(undefined, name);
          return ns ? (ns.metadata?.labels ?? {}) : undefined;
        },
        secret: (namespace, name) => this.secrets.get(namespace, name),
        serviceAccountPullSecrets: (namespace, name) =>
          this.serviceAccounts
            .get(namespace, name)
            ?.imagePullSecrets?.flatMap((s) => (s.name ? [s.name] : [])),
      },
      {
        defaults: opts.defaults,
        enqueue: (name) => this.queue.add(name),
        recreateBurst: 5,
        recreateIntervalMs: 10_000,
        ...(opts.watchNamespaces ? { watchNamespaces: opts.watchNamespaces } : {}),
      },
    );
  }

  /** The reconciler, writing through `kube` and reading the controller's caches. */
  private makeReconciler(kube: KubeClient, events: EventRecorder): Reconciler {
    const { opts } = this;
    const pods = this.pullFailures;
    // The tenants' claims, served as the resources they resolve to (issue 31).
    const claims = claimStoreOf(kube, this.caches);
    return new Reconciler(
      new KubeCluster(kube, this.caches),
      this.tokens,
      events,
      this.metrics,
      this.log,
      {
        defaults: opts.defaults,
        writeConcurrency: opts.writeConcurrency,
        verify: opts.verify,
        servedNamespaces: opts.watchNamespaces,
        ...(this.records ? { records: this.records } : {}),
        ...(claims ? { claims } : {}),
        admissions: new RoleAdmissions({
          requestServiceAccountToken: (sa, audience) =>
            this.serviceAccountTokens.request(sa, audience),
          timeoutMs: opts.awsTimeoutMs,
          // A refused ServiceAccount is asked again after this (a trust policy fixed).
          refusalTtlMs: Math.max(opts.minRefreshIntervalMs, 10_000),
        }),
        // Only once the watch has listed: before that it knows of no Pod.
        uncoveredPods: (name) => (pods.hasSynced ? pods.uncoveredPods(name) : undefined),
      },
    );
  }

  private enqueue(names: Iterable<string>): void {
    for (const name of names) this.queue.add(name);
  }

  private enqueueAll(): void {
    this.enqueue(this.resources.list().map((r) => r.metadata.name));
    this.enqueue(claimKeys(this.caches));
  }

  /** The token cache's fetch: the AWS pipeline, with keys read from the watched Secrets. */
  private async fetch(source: TokenSource): Promise<RegistryToken> {
    const what = { source: describeCredentials(source.credentials), region: source.region };
    try {
      const { token } = await fetchSourceToken(source, {
        timeoutMs: this.opts.awsTimeoutMs,
        readSecret: (ref) => this.credentials.read(ref),
        requestServiceAccountToken: (sa, audience) =>
          this.serviceAccountTokens.request(sa, audience),
        // Its clients observe the AWS call metrics (see the constructor).
        clients: this.awsClients,
      });
      this.log.debug(
        { ...what, service: source.service, expiresAt: token.expiresAt },
        "fetched token",
      );
      return token;
    } catch (err) {
      // The catalogue's message only: the SDK error behind it is not for logs.
      const reason = isOperatorError(err) ? err.code : undefined;
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn({ ...what, reason, err: message }, "token fetch failed");
      throw err;
    }
  }

  /** For the Manager: the informers run on every replica, standby too (stop() ends it all). */
  readonly informers: Runnable = {
    start: () => this.startInformers(),
    stop: () => this.stop(),
  };

  /** For the Manager: the workers (and the Pod watch) run on the leader only. */
  readonly workers: Runnable = {
    needLeaderElection: true,
    start: () => this.startWorkers(),
    stop: () => this.stopWorkers(),
  };

  /** Starts the informers and waits until each has listed once. */
  async startInformers(): Promise<void> {
    const all = Object.values(this.caches);
    for (const i of all) i.start();
    await Promise.all(all.map((i) => i.synced));
    this.credentials.sync();
    // From here on an event enqueues what it concerns; what the first lists
    // brought is covered by the sync above and enqueueAll() in startWorkers.
    this.live = true;
  }

  get synced(): boolean {
    return Object.values(this.caches).every((i) => i.hasSynced);
  }

  /** Runs the workers until stop(); call after startInformers(). */
  startWorkers(): void {
    // Sampled, not only set on events: our own writes enter the cache through
    // observe() and their watch echo is (rightly) not an event.
    this.queueGauge = setInterval(() => {
      this.metrics.queueDepth.set(this.queue.length);
      this.metrics.managedSecrets.set(this.secrets.size);
      this.metrics.watchedPods.set(this.pullFailures.pods.size);
    }, 1000);
    this.queueGauge.unref();
    // Only the replica that writes diagnoses and acts on Pods.
    if (this.opts.podWatch) this.pullFailures.start();
    this.enqueueAll();
    this.running = runWorkers(this.queue, this.opts.concurrency, (name) => this.process(name));
  }

  /**
   * One pass, and what the queue does next (controller-runtime's contract):
   * a thrown error backs off, a requested delay schedules the next pass, a
   * terminal error waits for the resource to change. Never two of them.
   */
  private async process(name: string): Promise<void> {
    const start = performance.now();
    let result = "success";
    try {
      const r = await this.reconciler.reconcile(name);
      this.queue.forget(name);
      // A failed registry check asks to be retried even when nothing changes.
      if (r.requeueAfterMs !== undefined) this.queue.addAfter(name, r.requeueAfterMs);
    } catch (err) {
      if (isTerminal(err)) {
        result = "error";
        this.queue.forget(name);
        this.log.warn({ resource: name, err: errorField(err) }, "reconcile failed; not retried");
      } else if (isOperatorError(err, "PartiallySynced")) {
        // The status and Events name the namespaces; the log need not repeat them.
        result = "partial";
        this.queue.addRateLimited(name);
      } else {
        result = "error";
        const delay = this.queue.addRateLimited(name);
        this.log.warn(
          { resource: name, err: errorField(err), retryInMs: delay },
          "reconcile failed",
        );
      }
    } finally {
      this.metrics.reconcileDuration.observe({ result }, (performance.now() - start) / 1000);
    }
  }

  /** One pass over every resource and claim (the `once` command); returns the names that failed. */
  async runOnce(): Promise<string[]> {
    const failed: string[] = [];
    const names = [...this.resources.list().map((r) => r.metadata.name), ...claimKeys(this.caches)];
    for (const name of names) {
      try {
        const result = await this.reconciler.reconcile(name);
        if (!result.ready) failed.push(name);
      } catch (err) {
        if (!isOperatorError(err, "PartiallySynced"))
          this.log.error({ resource: name, err: errorField(err) }, "reconcile failed");
        failed.push(name);
      }
    }
    return failed;
  }

  /** The workers take no more names; resolves once each has finished its pass. */
  async stopWorkers(): Promise<void> {
    this.queue.shutDown();
    clearInterval(this.queueGauge);
    await this.running;
  }

  /** Stops everything: the workers as stopWorkers(), then the caches, clocks and watches. */
  async stop(): Promise<void> {
    await this.stopWorkers();
    this.tokens.close();
    this.awsClients.close();
    for (const i of Object.values(this.caches)) i.stop();
    this.pullFailures.stop();
    this.credentials.stop();
  }
}
