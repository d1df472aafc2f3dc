// Wiring: informers → work queue → reconcile. Every change to a resource, a
// namespace, a ServiceAccount, a managed Secret, a credentials Secret or the
// token clock enqueues the names of the resources it affects; workers take
// names off the queue and reconcile them.
import { ANNOTATION_ADDED_PULL_SECRETS, LABEL_OWNER, MANAGED_SELECTOR } from "../api/conditions.js";
import type { ECRPullSecret } from "../api/index.js";
import { PLURAL } from "../api/index.js";
import {
  type CredentialsRef,
  credentialsProvider,
  describeCredentials,
  type SecretData,
  type SecretRef,
} from "../aws/credentials.js";
import { classifyAwsError } from "../aws/errors.js";
import { type OperatorDefaults, resolveRegistries } from "../aws/registries.js";
import { TokenClients } from "../aws/token.js";
import { TokenCache, type TokenSource, tokenSourceKey } from "../aws/token-cache.js";
import {
  ECR_PULL_SECRETS,
  type KubeClient,
  NAMESPACES,
  resourcePath,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../kube/client.js";
import { Informer } from "../kube/informer.js";
import type { KubernetesObject, Secret } from "../kube/types.js";
import type { EventRecorder } from "../observability/events.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import {
  ownerLabelValue,
  parseAddedRefs,
  type SecretView,
  type ServiceAccountView,
} from "../reconcile/desired.js";
import { type NamespaceView, Reconciler, type VerifyRegistry } from "../reconcile/reconciler.js";
import { targetNamespaces } from "../reconcile/targets.js";
import { runWorkers, WorkQueue } from "./queue.js";

export interface ControllerOptions {
  defaults: OperatorDefaults;
  concurrency: number;
  writeConcurrency: number;
  awsTimeoutMs: number;
  minRefreshIntervalMs: number;
  awsBackoffBaseMs: number;
  awsBackoffMaxMs: number;
  verify?: VerifyRegistry;
}

type Obj<T> = T & KubernetesObject;

/** Drops what the operator never reads, so the caches stay small. */
function trimMeta<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) obj.metadata.managedFields = undefined;
  return obj;
}

function trimServiceAccount(sa: Obj<ServiceAccountView>): Obj<ServiceAccountView> {
  const m = sa.metadata ?? {};
  const added = m.annotations?.[ANNOTATION_ADDED_PULL_SECRETS];
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      resourceVersion: m.resourceVersion,
      ...(added ? { annotations: { [ANNOTATION_ADDED_PULL_SECRETS]: added } } : {}),
    },
    imagePullSecrets: sa.imagePullSecrets,
  } as Obj<ServiceAccountView>;
}

/**
 * Keeps the slice of a managed Secret the reconciler reads. Every Secret of
 * one resource holds the same content, but each arrives from the API server
 * as its own copy of several kilobytes; the cache keeps one copy per owner
 * (the last value seen), so a thousand namespaces cost one token's worth of
 * memory, not a thousand.
 */
function secretTrimmer(): (secret: Obj<SecretView>) => Obj<SecretView> {
  const lastByOwner = new Map<string, Record<string, string>>();
  return (secret) => {
    const m = secret.metadata ?? {};
    let data = secret.data;
    const owner = m.labels?.[LABEL_OWNER];
    if (owner !== undefined && data) {
      const last = lastByOwner.get(owner);
      if (last && sameData(last, data)) data = last;
      else {
        // Only a hint for sharing: owners long deleted must not pile up.
        if (lastByOwner.size >= 1_000) lastByOwner.clear();
        lastByOwner.set(owner, data);
      }
    }
    return {
      metadata: {
        name: m.name,
        namespace: m.namespace,
        resourceVersion: m.resourceVersion,
        labels: m.labels,
        annotations: m.annotations,
        deletionTimestamp: m.deletionTimestamp,
      },
      type: secret.type,
      data,
    } as Obj<SecretView>;
  };
}

function sameData(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => a[k] === b[k]);
}

function trimNamespace(ns: Obj<NamespaceView>): Obj<NamespaceView> {
  return {
    metadata: {
      name: ns.metadata?.name,
      labels: ns.metadata?.labels,
      resourceVersion: (ns.metadata as { resourceVersion?: string } | undefined)?.resourceVersion,
      deletionTimestamp: ns.metadata?.deletionTimestamp,
    },
    status: { phase: ns.status?.phase },
  } as Obj<NamespaceView>;
}

export class Controller {
  readonly queue = new WorkQueue();
  readonly tokens: TokenCache;
  /** One AWS SDK client per token source, alive across fetches (clock-skew correction lives in it). */
  private readonly awsClients: TokenClients;
  readonly resources: Informer<Obj<ECRPullSecret>>;
  readonly namespaces: Informer<Obj<NamespaceView>>;
  readonly secrets: Informer<Obj<SecretView>>;
  readonly serviceAccounts: Informer<Obj<ServiceAccountView>>;
  readonly reconciler: Reconciler;
  /** One small informer per credentials Secret in use. */
  private readonly credentialSecrets = new Map<string, Informer<Secret>>();
  private workers: Promise<void> | undefined;
  private queueGauge: NodeJS.Timeout | undefined;

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly events: EventRecorder,
    private readonly opts: ControllerOptions,
  ) {
    const activity = (resource: string) => (what: string, err?: unknown) => {
      if (what === "error")
        log.warn({ informer: resource, err: errorField(err) }, "watch failed; retrying");
      else log.debug({ informer: resource, what }, "informer activity");
    };
    this.resources = new Informer(kube, {
      resource: PLURAL,
      path: resourcePath(ECR_PULL_SECRETS),
      list: ({ limit, continueToken }) =>
        kube.list<Obj<ECRPullSecret>>(ECR_PULL_SECRETS, { limit, continueToken }),
      onActivity: activity(PLURAL),
      transform: trimMeta,
    });
    this.namespaces = new Informer(kube, {
      resource: "namespaces",
      path: resourcePath(NAMESPACES),
      list: ({ limit, continueToken }) =>
        kube.list<Obj<NamespaceView>>(NAMESPACES, { limit, continueToken }),
      onActivity: activity("namespaces"),
      transform: trimNamespace,
    });
    // Only Secrets carrying our label: memory follows what we manage, not
    // how many Secrets the cluster holds.
    this.secrets = new Informer(kube, {
      resource: "secrets",
      path: resourcePath(SECRETS),
      labelSelector: MANAGED_SELECTOR,
      list: ({ limit, continueToken }) =>
        kube.list<Obj<SecretView>>(SECRETS, {
          labelSelector: MANAGED_SELECTOR,
          limit,
          continueToken,
        }),
      onActivity: activity("secrets"),
      transform: secretTrimmer(),
    });
    this.serviceAccounts = new Informer(kube, {
      resource: "serviceaccounts",
      path: resourcePath(SERVICE_ACCOUNTS),
      list: ({ limit, continueToken }) =>
        kube.list<Obj<ServiceAccountView>>(SERVICE_ACCOUNTS, { limit, continueToken }),
      onActivity: activity("serviceaccounts"),
      transform: trimServiceAccount,
    });

    this.awsClients = new TokenClients({
      timeoutMs: opts.awsTimeoutMs,
      observe: (service, region, seconds, code) => {
        this.metrics.awsRequestDuration.observe({ service, region }, seconds);
        if (code) this.metrics.awsErrors.inc({ service, code });
      },
    });
    this.tokens = new TokenCache({
      fetch: (source) => this.fetch(source),
      onDrop: (key) => this.awsClients.forget(key),
      onChange: (subscribers) => {
        for (const s of subscribers) this.queue.add(s);
      },
      // Counted by the cache, which alone knows a token expired at receipt.
      onFetched: (result, _key, subscribers, error) => {
        this.metrics.refreshes.inc({ result });
        // Every failed attempt is told on each resource that uses the source,
        // also while its Secrets still hold a good token; the recorder's rate
        // limit keeps a failing loop from flooding the API server.
        if (error) {
          for (const name of subscribers) {
            const uid = this.resources.get(undefined, name)?.metadata?.uid;
            this.events.record({ name, uid }, "Warning", error.reason, error.message);
          }
        }
      },
      minRefreshIntervalMs: opts.minRefreshIntervalMs,
      backoffBaseMs: opts.awsBackoffBaseMs,
      backoffMaxMs: opts.awsBackoffMaxMs,
      jitter: 0.1,
    });
    this.reconciler = new Reconciler(
      kube,
      {
        resources: this.resources,
        namespaces: this.namespaces,
        secrets: this.secrets,
        serviceAccounts: this.serviceAccounts,
      },
      this.tokens,
      events,
      metrics,
      log,
      {
        defaults: opts.defaults,
        writeConcurrency: opts.writeConcurrency,
        verify: opts.verify,
      },
    );
    this.wire();
  }

  private enqueueAll(): void {
    for (const r of this.resources.list()) this.queue.add(r.metadata?.name ?? "");
  }

  private wire(): void {
    this.resources.on((event, obj, old) => {
      const name = obj.metadata?.name ?? "";
      const changed =
        event !== "update" ||
        obj.metadata?.generation !== old?.metadata?.generation ||
        Boolean(obj.metadata?.deletionTimestamp) !== Boolean(old?.metadata?.deletionTimestamp) ||
        (obj.metadata?.finalizers ?? []).join() !== (old?.metadata?.finalizers ?? []).join();
      if (changed) this.queue.add(name);
      if (event !== "update" || changed) this.syncCredentialWatchers();
    });
    this.namespaces.on((event, obj, old) => {
      if (
        event === "update" &&
        JSON.stringify(obj.metadata?.labels ?? {}) ===
          JSON.stringify(old?.metadata?.labels ?? {}) &&
        obj.status?.phase === old?.status?.phase &&
        Boolean(obj.metadata?.deletionTimestamp) === Boolean(old?.metadata?.deletionTimestamp)
      ) {
        return;
      }
      // Only the resources this namespace concerns: with many resources, a
      // full pass of every one per namespace event is what delays new namespaces.
      this.enqueueConcerned(obj.metadata?.name ?? "", [obj, old]);
    });
    this.secrets.on((_event, obj) => {
      const owner = obj.metadata?.labels?.[LABEL_OWNER];
      if (!owner) return;
      for (const r of this.resources.list()) {
        const name = r.metadata?.name ?? "";
        if (ownerLabelValue(name) === owner) this.queue.add(name);
      }
    });
    this.serviceAccounts.on((event, obj, old) => {
      if (
        event === "update" &&
        JSON.stringify(obj.imagePullSecrets ?? []) ===
          JSON.stringify(old?.imagePullSecrets ?? []) &&
        obj.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS] ===
          old?.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS]
      ) {
        return;
      }
      const namespace = obj.metadata?.namespace ?? "";
      const ns = this.namespaces.get(undefined, namespace);
      const claims = [obj, old].flatMap((sa) =>
        parseAddedRefs(sa?.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS]).map(
          (r) => r.owner,
        ),
      );
      // A ServiceAccount seen before its namespace is judged by name; the
      // namespace's own event enqueues what its labels select.
      this.enqueueConcerned(namespace, [ns ?? { metadata: { name: namespace } }], claims);
    });
  }

  /**
   * Enqueues the resources that target `namespace` (as any of `views` shows it),
   * own a Secret there, or are named in `claims` (owner label values).
   */
  private enqueueConcerned(
    namespace: string,
    views: Array<NamespaceView | undefined>,
    claims: string[] = [],
  ): void {
    const infos = views.flatMap((v) =>
      v ? [{ name: namespace, labels: v.metadata?.labels, terminating: false }] : [],
    );
    const owners = new Set(
      this.secrets
        .listNamespace(namespace)
        .map((s) => s.metadata?.labels?.[LABEL_OWNER])
        .concat(claims),
    );
    for (const r of this.resources.list()) {
      const name = r.metadata?.name ?? "";
      let concerned = owners.has(ownerLabelValue(name));
      try {
        concerned ||= targetNamespaces(r.spec, infos).length > 0;
      } catch {
        // An invalid spec is reported by its own reconcile.
        concerned = true;
      }
      if (concerned) this.queue.add(name);
    }
  }

  /** Every credentials Secret in use: the operator default and each resource's. */
  private credentialRefs(): Map<string, SecretRef> {
    const refs = new Map<string, SecretRef>();
    const add = (ref: SecretRef | undefined) => {
      if (ref) refs.set(`${ref.namespace}/${ref.name}`, ref);
    };
    add(this.opts.defaults.credentialsSecret);
    for (const r of this.resources.list()) {
      try {
        for (const t of resolveRegistries(r.spec, this.opts.defaults))
          add(t.source.credentials.secretRef);
      } catch {
        // An invalid spec is reported by its reconcile.
      }
    }
    return refs;
  }

  private syncCredentialWatchers(): void {
    const wanted = this.credentialRefs();
    for (const [key, informer] of this.credentialSecrets) {
      if (!wanted.has(key)) {
        informer.stop();
        this.credentialSecrets.delete(key);
      }
    }
    for (const [key, ref] of wanted)
      if (!this.credentialSecrets.has(key)) this.watchCredentials(key, ref);
  }

  private watchCredentials(key: string, ref: SecretRef): Informer<Secret> {
    const kube = this.kube;
    const fieldSelector = `metadata.name=${ref.name}`;
    const informer = new Informer<Secret>(kube, {
      resource: "credential-secrets",
      path: resourcePath(SECRETS, ref.namespace),
      fieldSelector,
      list: ({ limit, continueToken }) =>
        kube.list<Secret>(SECRETS, {
          namespace: ref.namespace,
          fieldSelector,
          limit,
          continueToken,
        }),
      transform: trimMeta,
    });
    informer.on((event, obj, old) => {
      if (event === "update" && JSON.stringify(obj.data ?? {}) === JSON.stringify(old?.data ?? {}))
        return;
      if (!informer.hasSynced) return;
      // Rotated (or created, or deleted) keys: refetch now for every resource
      // that uses them, and for no other.
      const told = this.tokens.invalidate(
        (c: CredentialsRef) =>
          c.secretRef?.namespace === ref.namespace && c.secretRef.name === ref.name,
      );
      this.log.info(
        { secret: key, resources: told },
        "credentials Secret changed; refetching tokens",
      );
      for (const name of told) this.queue.add(name);
      // Resources that failed for want of this Secret hold no token entry yet.
      this.enqueueAll();
    });
    this.credentialSecrets.set(key, informer);
    informer.start();
    return informer;
  }

  private async readCredentialsSecret(ref: SecretRef): Promise<SecretData | null> {
    const key = `${ref.namespace}/${ref.name}`;
    const informer = this.credentialSecrets.get(key) ?? this.watchCredentials(key, ref);
    await informer.synced;
    const secret = informer.get(ref.namespace, ref.name);
    return secret ? (secret.data ?? {}) : null;
  }

  private async fetch(source: TokenSource) {
    const what = describeCredentials(source.credentials);
    const step = `get an ${source.service === "ecr" ? "ECR" : "ECR Public"} token in ${source.region}`;
    try {
      const key = tokenSourceKey(source);
      const provider = await credentialsProvider(source.credentials, {
        region: source.region,
        timeoutMs: this.opts.awsTimeoutMs,
        readSecret: (ref) => this.readCredentialsSecret(ref),
        clockOffsetMs: this.awsClients.clockOffsetMs(key),
      });
      const token = await this.awsClients.fetch(key, source.service, source.region, provider);
      this.log.debug(
        {
          source: what,
          region: source.region,
          service: source.service,
          expiresAt: token.expiresAt,
        },
        "fetched token",
      );
      return token;
    } catch (err) {
      const classified = classifyAwsError(err, what, step);
      this.log.warn(
        { source: what, region: source.region, reason: classified.reason, err: classified.message },
        "token fetch failed",
      );
      throw classified;
    }
  }

  /** Starts the informers and waits until each has listed once. */
  async startInformers(): Promise<void> {
    for (const i of [this.resources, this.namespaces, this.secrets, this.serviceAccounts])
      i.start();
    await Promise.all(
      [this.resources, this.namespaces, this.secrets, this.serviceAccounts].map((i) => i.synced),
    );
    this.syncCredentialWatchers();
  }

  get synced(): boolean {
    return [this.resources, this.namespaces, this.secrets, this.serviceAccounts].every(
      (i) => i.hasSynced,
    );
  }

  /** Runs the workers until stop(); call after startInformers(). */
  startWorkers(): void {
    // Sampled, not only set on events: our own writes enter the cache through
    // observe() and their watch echo is (rightly) not an event.
    this.queueGauge = setInterval(() => {
      this.metrics.queueDepth.set(this.queue.length);
      this.metrics.managedSecrets.set(this.secrets.size);
    }, 1000);
    this.queueGauge.unref();
    this.enqueueAll();
    this.workers = runWorkers(this.queue, this.opts.concurrency, (name) => this.process(name));
  }

  private async process(name: string): Promise<void> {
    const start = performance.now();
    let result = "success";
    try {
      const r = await this.reconciler.reconcile(name);
      if (r.failed > 0) {
        result = "partial";
        this.queue.addRateLimited(name);
      } else {
        this.queue.forget(name);
      }
      // A failed registry check asks to be retried even when nothing changes.
      if (r.retryAfterMs !== undefined) this.queue.addAfter(name, r.retryAfterMs);
    } catch (err) {
      result = "error";
      const delay = this.queue.addRateLimited(name);
      this.log.warn({ resource: name, err: errorField(err), retryInMs: delay }, "reconcile failed");
    } finally {
      this.metrics.reconcileDuration.observe({ result }, (performance.now() - start) / 1000);
    }
  }

  /** One pass over every resource (the `once` command); returns the names that failed. */
  async runOnce(): Promise<string[]> {
    const failed: string[] = [];
    for (const r of this.resources.list()) {
      const name = r.metadata?.name ?? "";
      try {
        const result = await this.reconciler.reconcile(name);
        if (!result.ready) failed.push(name);
      } catch (err) {
        this.log.error({ resource: name, err: errorField(err) }, "reconcile failed");
        failed.push(name);
      }
    }
    return failed;
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    clearInterval(this.queueGauge);
    await this.workers;
    this.tokens.close();
    this.awsClients.close();
    for (const i of [this.resources, this.namespaces, this.secrets, this.serviceAccounts]) i.stop();
    for (const i of this.credentialSecrets.values()) i.stop();
  }
}
