// The informers the controller runs, and the trimming that keeps their caches
// to the slice of each object the operator reads. Every list and watch the
// operator makes is here (the chart's RBAC test reads this file).
import { ECR_PULL_SECRETS, type ECRPullSecret, PLURAL } from "../api/index.js";
import { MANAGED_SELECTOR } from "../api/metadata.js";
import type { SecretRef } from "../aws/credentials.js";
import {
  type KubeClient,
  NAMESPACES,
  resourcePath,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../kube/client.js";
import { Informer, type InformerOptions } from "../kube/informer.js";
import { NamespacedInformers, type ObjectCache } from "../kube/namespaced-informers.js";
import type { Cached, KubernetesObject, Secret } from "../kube/types.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Caches } from "../reconcile/cluster.js";
import {
  cachedSecret,
  cachedServiceAccount,
  type SecretView,
  type ServiceAccountView,
} from "../reconcile/desired.js";
import type { NamespaceView } from "../reconcile/targets.js";
import { TOKEN_RECORD_SELECTOR } from "../reconcile/token-records.js";
import { makeTenantCaches, type TenantCaches } from "./tenant-informers.js";

/**
 * The four informers the reconcile reads, and the tenant kinds' two
 * (tenant-informers.ts: ClusterECRCredentialSources and ECRPullSecretClaims,
 * empty while their CRDs are not installed). With `watchNamespaces` (an install
 * whose RBAC grants Secrets and ServiceAccounts only through Roles in those
 * namespaces), Secrets and ServiceAccounts are watched per namespace: a
 * cluster-wide list would be refused, and nothing outside is ever held.
 */
export function makeInformers(
  kube: KubeClient,
  log: Logger,
  watchNamespaces: readonly string[] | undefined,
  /** The operator's own namespace, where its token records are; absent: none. */
  stateNamespace: string | undefined,
): Caches & TenantCaches {
  const activity = (resource: string) => (what: string, err?: unknown) => {
    if (what === "error")
      log.warn({ informer: resource, err: errorField(err) }, "watch failed; retrying");
    else log.debug({ informer: resource, what }, "informer activity");
  };
  return {
    resources: new Informer(kube, {
      resource: PLURAL,
      path: resourcePath(ECR_PULL_SECRETS),
      list: ({ limit, continueToken }) =>
        kube.list<Cached<ECRPullSecret>>(ECR_PULL_SECRETS, { limit, continueToken }),
      onActivity: activity(PLURAL),
      transform: trimMeta,
      // A resource's own status write (its registries) changes which waiting
      // Pods it covers: the pull-failure watch must hear of it. Secrets and
      // ServiceAccounts stay quiet: their handlers would only enqueue the
      // pass that wrote them.
      tellObserved: true,
    }),
    namespaces: new Informer(kube, {
      resource: "namespaces",
      path: resourcePath(NAMESPACES),
      list: ({ limit, continueToken }) =>
        kube.list<Cached<NamespaceView>>(NAMESPACES, { limit, continueToken }),
      onActivity: activity("namespaces"),
      transform: trimNamespace,
    }),
    // Only Secrets carrying our label: memory follows what we manage, not
    // how many Secrets the cluster holds.
    secrets: perScope(kube, watchNamespaces, (namespace) => ({
      resource: "secrets",
      path: resourcePath(SECRETS, namespace),
      labelSelector: MANAGED_SELECTOR,
      list: ({ limit, continueToken }) =>
        kube.list<Cached<SecretView>>(SECRETS, {
          namespace,
          labelSelector: MANAGED_SELECTOR,
          limit,
          continueToken,
        }),
      onActivity: activity("secrets"),
      // Anyone who may write a Secret can put our label on it: keep digests
      // and our own keys, never the payload (cachedSecret), and list them one
      // at a time, so no list answer of such Secrets is held whole.
      transform: (secret) => cachedSecret(secret) as Cached<SecretView>,
      streamingList: true,
    })),
    serviceAccounts: perScope(kube, watchNamespaces, (namespace) => ({
      resource: "serviceaccounts",
      path: resourcePath(SERVICE_ACCOUNTS, namespace),
      list: ({ limit, continueToken }) =>
        kube.list<Cached<ServiceAccountView>>(SERVICE_ACCOUNTS, {
          namespace,
          limit,
          continueToken,
        }),
      onActivity: activity("serviceaccounts"),
      // Anyone who may write ServiceAccounts can make their lists and
      // annotations long: the cache keeps a bounded slice (cachedServiceAccount).
      transform: (sa) => cachedServiceAccount(sa) as Cached<ServiceAccountView>,
    })),
    // The tenants' claims and the sources an administrator offers them.
    ...makeTenantCaches(kube, log, watchNamespaces),
    // The operator's token records: in its own namespace, written only by it.
    ...(stateNamespace
      ? {
          tokenRecords: new Informer<Cached<Secret>>(kube, {
            resource: "token-records",
            path: resourcePath(SECRETS, stateNamespace),
            labelSelector: TOKEN_RECORD_SELECTOR,
            list: ({ limit, continueToken }) =>
              kube.list<Cached<Secret>>(SECRETS, {
                namespace: stateNamespace,
                labelSelector: TOKEN_RECORD_SELECTOR,
                limit,
                continueToken,
              }),
            onActivity: activity("token-records"),
            transform: trimMeta,
          }),
        }
      : {}),
  };
}

/** One cluster-wide informer (`namespace` undefined), or one per watched namespace. */
export function perScope<T extends KubernetesObject>(
  kube: KubeClient,
  watchNamespaces: readonly string[] | undefined,
  options: (namespace: string | undefined) => InformerOptions<T>,
): ObjectCache<T> {
  return watchNamespaces
    ? new NamespacedInformers<T>(kube, watchNamespaces, options)
    : new Informer<T>(kube, options(undefined));
}

/** A small informer on one credentials Secret (by name), so a rotation is seen at once. */
export function credentialsSecretInformer(kube: KubeClient, ref: SecretRef): Informer<Secret> {
  const fieldSelector = `metadata.name=${ref.name}`;
  return new Informer<Secret>(kube, {
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
}

/** Drops what the operator never reads, so the caches stay small. */
function trimMeta<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) obj.metadata.managedFields = undefined;
  return obj;
}

function trimNamespace(ns: Cached<NamespaceView>): Cached<NamespaceView> {
  return {
    metadata: {
      name: ns.metadata.name,
      labels: ns.metadata.labels,
      resourceVersion: ns.metadata.resourceVersion,
      deletionTimestamp: ns.metadata.deletionTimestamp,
    },
    status: { phase: ns.status?.phase },
  } as Cached<NamespaceView>;
}
