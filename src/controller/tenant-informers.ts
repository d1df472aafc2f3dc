// The informers of the tenant kinds (issue 31): ClusterECRCredentialSources
// (cluster-wide) and ECRPullSecretClaims (cluster-wide, or per watched
// namespace in a namespaced install), and the claims' writes the reconciler
// makes through ClaimStore.
//
// Both kinds are optional: a cluster whose administrator has not installed
// their CRDs yet (or an install whose RBAC does not grant them) must not keep
// the operator from serving ECRPullSecrets. Such a cache counts as synced and
// empty after the first refusal, and keeps retrying (the informer's backoff,
// at most 30 s), so the kinds are served once they exist.
import {
  type ClusterECRCredentialSource,
  type ClusterECRCredentialSourceStatus,
  CREDENTIAL_SOURCES,
  type ECRPullSecret,
  type ECRPullSecretClaim,
  type ECRPullSecretStatus,
  PULL_SECRET_CLAIMS,
} from "../api/index.js";
import { type KubeClient, resourcePath, statusCode } from "../kube/client.js";
import { Informer, type InformerHandler, type InformerOptions } from "../kube/informer.js";
import type { ObjectCache } from "../kube/namespaced-informers.js";
import type { Cached, KubernetesObject } from "../kube/types.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { ClaimStore } from "../reconcile/claim-cluster.js";
import { claimOwner, resolveClaim } from "../reconcile/claims.js";
import { type Caches, type ObjectKey, orUndefined, statusPatchBody } from "../reconcile/cluster.js";
import { perScope } from "./informers.js";

/**
 * A cache that counts as synced once its kind turns out not to be served
 * (404: no CRD; 403: no RBAC), as well as when it has listed; the inner cache
 * keeps retrying and fills (with add events) once the kind is there.
 */
export class OptionalCache<T extends KubernetesObject> {
  /** Resolves once the cache listed, or its kind was found not served. */
  readonly synced: Promise<void>;
  private absent = false;
  private markAbsent!: () => void;

  constructor(private readonly inner: ObjectCache<T>) {
    const absent = new Promise<void>((resolve) => {
      this.markAbsent = resolve;
    });
    this.synced = Promise.race([inner.synced, absent]);
  }

  /** Called with each list or watch failure: a kind not served counts as synced and empty. */
  failed(err: unknown): boolean {
    const code = statusCode(err);
    if (code !== 404 && code !== 403) return false;
    const first = !this.absent;
    this.absent = true;
    this.markAbsent();
    return first;
  }

  get hasSynced(): boolean {
    return this.inner.hasSynced || this.absent;
  }

  start(): void {
    this.inner.start();
  }

  stop(): void {
    this.inner.stop();
  }

  on(handler: InformerHandler<T>): void {
    this.inner.on(handler);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.inner.get(namespace, name);
  }

  list(): T[] {
    return this.inner.list();
  }

  listNamespace(namespace: string): T[] {
    return this.inner.listNamespace(namespace);
  }

  observe(obj: T): void {
    this.inner.observe(obj);
  }

  get size(): number {
    return this.inner.size;
  }
}

/** The tenant kinds' caches, beside the four of makeInformers. */
export interface TenantCaches {
  sources: OptionalCache<Cached<ClusterECRCredentialSource>>;
  claims: OptionalCache<Cached<ECRPullSecretClaim>>;
}

/**
 * The sources' informer (cluster-wide) and the claims' (cluster-wide, or one
 * per namespace of `watchNamespaces`).
 */
export function makeTenantCaches(
  kube: KubeClient,
  log: Logger,
  watchNamespaces: readonly string[] | undefined,
): TenantCaches {
  const optional = <T extends KubernetesObject>(
    resource: string,
    make: (onError: (err: unknown) => void) => ObjectCache<T>,
  ): OptionalCache<T> => {
    let cache: OptionalCache<T> | undefined;
    const onError = (err: unknown) => {
      if (cache?.failed(err)) {
        log.info(
          { informer: resource, err: errorField(err) },
          "kind not served (CRD not installed, or not granted): serving without it, retrying",
        );
      }
    };
    cache = new OptionalCache(make(onError));
    return cache;
  };
  const activity =
    (resource: string, onError: (err: unknown) => void) => (what: string, err?: unknown) => {
      if (what === "error") onError(err);
      else log.debug({ informer: resource, what }, "informer activity");
    };
  return {
    sources: optional(
      CREDENTIAL_SOURCES.plural,
      (onError) =>
        new Informer<Cached<ClusterECRCredentialSource>>(kube, {
          resource: CREDENTIAL_SOURCES.plural,
          path: resourcePath(CREDENTIAL_SOURCES),
          list: ({ limit, continueToken }) =>
            kube.list<Cached<ClusterECRCredentialSource>>(CREDENTIAL_SOURCES, {
              limit,
              continueToken,
            }),
          onActivity: activity(CREDENTIAL_SOURCES.plural, onError),
          transform: trimMeta,
        }),
    ),
    claims: optional(PULL_SECRET_CLAIMS.plural, (onError) =>
      perScope(
        kube,
        watchNamespaces,
        (namespace): InformerOptions<Cached<ECRPullSecretClaim>> => ({
          resource: PULL_SECRET_CLAIMS.plural,
          path: resourcePath(PULL_SECRET_CLAIMS, namespace),
          list: ({ limit, continueToken }) =>
            kube.list<Cached<ECRPullSecretClaim>>(PULL_SECRET_CLAIMS, {
              namespace,
              limit,
              continueToken,
            }),
          onActivity: activity(PULL_SECRET_CLAIMS.plural, onError),
          transform: trimMeta,
        }),
      ),
    ),
  };
}

/** The claims and sources as the reconciler reads them, and the claims' writes. */
export class KubeClaimStore implements ClaimStore {
  constructor(
    private readonly kube: KubeClient,
    private readonly caches: TenantCaches,
  ) {}

  claim(key: ObjectKey): Cached<ECRPullSecretClaim> | undefined {
    return this.caches.claims.get(key.namespace, key.name);
  }

  source(name: string): ClusterECRCredentialSource | undefined {
    return this.caches.sources.get(undefined, name);
  }

  claims(): Iterable<Cached<ECRPullSecretClaim>> {
    return this.caches.claims.list();
  }

  async patchClaimMetadata(key: ObjectKey, metadata: object): Promise<void> {
    const patched = await orUndefined(
      this.kube.patch<Cached<ECRPullSecretClaim>>(PULL_SECRET_CLAIMS, key, { metadata }),
    );
    if (patched) this.caches.claims.observe(patched);
  }

  async patchSourceStatus(name: string, status: ClusterECRCredentialSourceStatus): Promise<void> {
    const patched = await orUndefined(
      this.kube.patch<Cached<ClusterECRCredentialSource>>(
        CREDENTIAL_SOURCES,
        { name },
        { status },
        "status",
      ),
    );
    if (patched) this.caches.sources.observe(patched);
  }

  async patchClaimStatus(
    key: ObjectKey,
    status: ECRPullSecretStatus,
    resourceVersion: string | undefined,
  ): Promise<void> {
    // As an ECRPullSecret's (KubeCluster.patchStatus).
    const body = statusPatchBody(status);
    const patched = await orUndefined(
      resourceVersion
        ? this.kube.patchStatus<Cached<ECRPullSecretClaim>>(
            PULL_SECRET_CLAIMS,
            key,
            resourceVersion,
            body,
          )
        : this.kube.patch<Cached<ECRPullSecretClaim>>(
            PULL_SECRET_CLAIMS,
            key,
            { status: body },
            "status",
          ),
    );
    if (patched) this.caches.claims.observe(patched);
  }
}

function trimMeta<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) obj.metadata.managedFields = undefined;
  return obj;
}

/** The tenant caches among the controller's, if makeInformers made them. */
export function tenantCachesOf(caches: Caches): TenantCaches | undefined {
  const c = caches as Caches & Partial<TenantCaches>;
  return c.claims && c.sources ? { claims: c.claims, sources: c.sources } : undefined;
}

/** The reconciler's access to claims and sources; undefined without the tenant caches. */
export function claimStoreOf(kube: KubeClient, caches: Caches): ClaimStore | undefined {
  const tenants = tenantCachesOf(caches);
  return tenants && new KubeClaimStore(kube, tenants);
}

/** Every claim's queue key (its owner value), for a pass over everything. */
export function claimKeys(caches: Caches): string[] {
  return (tenantCachesOf(caches)?.claims.list() ?? []).map((c) =>
    claimOwner(c.metadata.namespace ?? "", c.metadata.name),
  );
}

/**
 * Each claim that is served, as the resource it resolves to (named by its
 * owner value): the credentials watchers watch what these name, as they do
 * for ECRPullSecrets, and tell their rotations to these names.
 */
export function servedClaims(caches: Caches): Array<Cached<ECRPullSecret>> {
  const tenants = tenantCachesOf(caches);
  if (!tenants) return [];
  const out: Array<Cached<ECRPullSecret>> = [];
  for (const claim of tenants.claims.list()) {
    const namespace = claim.metadata.namespace ?? "";
    const ref = claim.spec.sourceRef;
    const source = ref ? tenants.sources.get(undefined, ref.name) : undefined;
    const labels = caches.namespaces.get(undefined, namespace)?.metadata?.labels;
    const resolved = resolveClaim(claim, source, labels ?? {});
    if ("code" in resolved) continue;
    // Its uid, deletion and status (the registries it serves) are the claim's.
    const { uid, deletionTimestamp } = claim.metadata;
    const metadata = { name: resolved.owner, uid, deletionTimestamp };
    out.push({ metadata, spec: resolved.spec, ...(claim.status && { status: claim.status }) });
  }
  return out;
}
