// The informers the controller runs, and the trimming that keeps their caches
// to the slice of each object the operator reads. Every list and watch the
// operator makes is here (the chart's RBAC test reads this file).
import { ECR_PULL_SECRETS, type ECRPullSecret, PLURAL } from "../api/index.js";
import { ANNOTATION_ADDED_PULL_SECRETS, LABEL_OWNER, MANAGED_SELECTOR } from "../api/metadata.js";
import type { SecretRef } from "../aws/credentials.js";
import {
  type KubeClient,
  NAMESPACES,
  resourcePath,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../kube/client.js";
import { Informer } from "../kube/informer.js";
import type { Cached, KubernetesObject, Secret } from "../kube/types.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Caches } from "../reconcile/cluster.js";
import type { SecretView, ServiceAccountView } from "../reconcile/desired.js";
import type { NamespaceView } from "../reconcile/targets.js";

/** The four informers the reconcile reads. */
export function makeInformers(kube: KubeClient, log: Logger): Caches {
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
    secrets: new Informer(kube, {
      resource: "secrets",
      path: resourcePath(SECRETS),
      labelSelector: MANAGED_SELECTOR,
      list: ({ limit, continueToken }) =>
        kube.list<Cached<SecretView>>(SECRETS, {
          labelSelector: MANAGED_SELECTOR,
          limit,
          continueToken,
        }),
      onActivity: activity("secrets"),
      transform: secretTrimmer(),
    }),
    serviceAccounts: new Informer(kube, {
      resource: "serviceaccounts",
      path: resourcePath(SERVICE_ACCOUNTS),
      list: ({ limit, continueToken }) =>
        kube.list<Cached<ServiceAccountView>>(SERVICE_ACCOUNTS, { limit, continueToken }),
      onActivity: activity("serviceaccounts"),
      transform: trimServiceAccount,
    }),
  };
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

function trimServiceAccount(sa: Cached<ServiceAccountView>): Cached<ServiceAccountView> {
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
  } as Cached<ServiceAccountView>;
}

/**
 * Keeps the slice of a managed Secret the reconciler reads. Every Secret of
 * one resource holds the same content, but each arrives from the API server
 * as its own copy of several kilobytes; the cache keeps one copy per owner
 * (the last value seen), so a thousand namespaces cost one token's worth of
 * memory, not a thousand.
 */
function secretTrimmer(): (secret: Cached<SecretView>) => Cached<SecretView> {
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
    } as Cached<SecretView>;
  };
}

function sameData(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => a[k] === b[k]);
}

function trimNamespace(ns: Cached<NamespaceView>): Cached<NamespaceView> {
  return {
    metadata: {
      name: ns.metadata?.name,
      labels: ns.metadata?.labels,
      resourceVersion: (ns.metadata as { resourceVersion?: string } | undefined)?.resourceVersion,
      deletionTimestamp: ns.metadata?.deletionTimestamp,
    },
    status: { phase: ns.status?.phase },
  } as Cached<NamespaceView>;
}
