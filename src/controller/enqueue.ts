// From informer events to work-queue keys: each event enqueues the names of
// the resources it concerns, and no others. A reconcile re-reads the world,
// so a key says only "look again", never what happened.
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_ADDED_SECRETS,
  LABEL_OWNER,
  ROLE_ARN_ANNOTATIONS,
} from "../api/metadata.js";
import type { ObjectMeta } from "../kube/types.js";
import { claimOwner } from "../reconcile/claims.js";
import type { Caches } from "../reconcile/cluster.js";
import { ownerLabelValue, parseAddedRefs } from "../reconcile/desired.js";
import { type NamespaceView, targetNamespaces } from "../reconcile/targets.js";
import type { WorkQueue } from "./queue.js";
import { tenantCachesOf } from "./tenant-informers.js";

/**
 * Subscribes the queue to the caches' events. `onResourcesChanged` is told
 * when the set of resources or a spec changed (the credentials watchers follow).
 * Until `live()`, events are dropped: the first lists would otherwise judge
 * every object against every resource, and the controller follows them with
 * one credentials sync and a pass over every resource anyway.
 */
export function enqueueOnEvents(
  caches: Caches,
  queue: WorkQueue,
  onResourcesChanged: () => void,
  live: () => boolean,
): void {
  caches.resources.on((event, obj, old) => {
    if (!live()) return;
    const changed = needsPass(event, obj, old);
    if (changed) queue.add(obj.metadata.name);
    if (event !== "update" || changed) onResourcesChanged();
  });
  caches.namespaces.on((event, obj, old) => {
    if (!live()) return;
    if (
      event === "update" &&
      JSON.stringify(obj.metadata.labels ?? {}) === JSON.stringify(old?.metadata?.labels ?? {}) &&
      obj.status?.phase === old?.status?.phase &&
      Boolean(obj.metadata.deletionTimestamp) === Boolean(old?.metadata?.deletionTimestamp)
    ) {
      return;
    }
    // Only the resources this namespace concerns: with many resources, a
    // full pass of every one per namespace event is what delays new namespaces.
    enqueueConcerned(caches, queue, obj.metadata.name, [obj, old]);
  });
  caches.secrets.on((_event, obj) => {
    const owner = obj.metadata.labels?.[LABEL_OWNER];
    if (!owner || !live()) return;
    for (const r of caches.resources.values()) {
      const name = r.metadata.name;
      if (ownerLabelValue(name) === owner) queue.add(name);
    }
  });
  caches.serviceAccounts.on((event, obj, old) => {
    if (!live()) return;
    const annotationsOf = (sa: typeof obj | undefined) =>
      [ANNOTATION_ADDED_PULL_SECRETS, ANNOTATION_ADDED_SECRETS].map(
        (key) => sa?.metadata?.annotations?.[key],
      );
    const roleOf = (sa: typeof obj | undefined) =>
      ROLE_ARN_ANNOTATIONS.map((key) => sa?.metadata?.annotations?.[key]).join("\n");
    if (
      event === "update" &&
      JSON.stringify(obj.imagePullSecrets ?? []) === JSON.stringify(old?.imagePullSecrets ?? []) &&
      JSON.stringify(obj.secrets ?? []) === JSON.stringify(old?.secrets ?? []) &&
      JSON.stringify(annotationsOf(obj)) === JSON.stringify(annotationsOf(old)) &&
      roleOf(obj) === roleOf(old)
    ) {
      return;
    }
    const namespace = obj.metadata.namespace;
    const ns = caches.namespaces.get(undefined, namespace);
    const claims = [obj, old].flatMap((sa) =>
      annotationsOf(sa).flatMap((annotation) => parseAddedRefs(annotation).map((r) => r.owner)),
    );
    // A ServiceAccount seen before its namespace is judged by name; the
    // namespace's own event enqueues what its labels select.
    enqueueConcerned(caches, queue, namespace, [ns ?? { metadata: { name: namespace } }], claims);
  });
  enqueueClaimEvents(caches, queue, onResourcesChanged, live);
}

/**
 * Claims (issue 31): a claim's own change enqueues it; a source's change, the
 * claims over it; a namespace's (its labels may decide a source's
 * conditions), a labelled Secret's or a ServiceAccount's, the claims in that
 * namespace, which are all a claim can touch. Keys are owner values
 * (`claim_<namespace>_<name>`), as the token cache's subscribers name them.
 */
function enqueueClaimEvents(
  caches: Caches,
  queue: WorkQueue,
  onResourcesChanged: () => void,
  live: () => boolean,
): void {
  const tenants = tenantCachesOf(caches);
  if (!tenants) return;
  const { claims, sources } = tenants;
  const ownerOf = (c: { metadata: { namespace?: string; name: string } }) =>
    claimOwner(c.metadata.namespace ?? "", c.metadata.name);
  const inNamespace = (namespace: string | undefined) => {
    if (!live() || !namespace) return;
    for (const c of claims.listNamespace(namespace)) queue.add(ownerOf(c));
  };
  claims.on((event, obj, old) => {
    if (!live()) return;
    const changed = needsPass(event, obj, old);
    if (changed) queue.add(ownerOf(obj));
    // The credentials watchers follow the claims' sources.
    if (event !== "update" || changed) onResourcesChanged();
  });
  sources.on((event, obj, old) => {
    if (!live()) return;
    if (event === "update" && obj.metadata.generation === old?.metadata?.generation) return;
    for (const c of claims.list()) {
      if (c.spec.sourceRef?.name === obj.metadata.name) queue.add(ownerOf(c));
    }
    onResourcesChanged();
  });
  caches.namespaces.on((_event, obj) => inNamespace(obj.metadata.name));
  caches.secrets.on((_event, obj) => {
    if (obj.metadata.labels?.[LABEL_OWNER]) inNamespace(obj.metadata.namespace);
  });
  caches.serviceAccounts.on((event, obj, old) => {
    if (
      event === "update" &&
      JSON.stringify(obj.imagePullSecrets ?? []) === JSON.stringify(old?.imagePullSecrets ?? []) &&
      JSON.stringify(obj.secrets ?? []) === JSON.stringify(old?.secrets ?? [])
    ) {
      return;
    }
    inNamespace(obj.metadata.namespace);
  });
}

/**
 * Enqueues the resources that target `namespace` (as any of `views` shows it),
 * own a Secret there, or are named in `claims` (owner label values).
 */
function enqueueConcerned(
  caches: Caches,
  queue: WorkQueue,
  namespace: string,
  views: Array<NamespaceView | undefined>,
  claims: string[] = [],
): void {
  const infos = views.flatMap((v) =>
    v ? [{ name: namespace, labels: v.metadata?.labels, terminating: false }] : [],
  );
  const owners = new Set(
    caches.secrets
      .listNamespace(namespace)
      .map((s) => s.metadata.labels?.[LABEL_OWNER])
      .concat(claims),
  );
  for (const r of caches.resources.list()) {
    const name = r.metadata.name;
    let concerned = owners.has(ownerLabelValue(name));
    try {
      concerned ||= targetNamespaces(r.spec, infos).length > 0;
    } catch {
      // An invalid spec is reported by its own reconcile.
      concerned = true;
    }
    if (concerned) queue.add(name);
  }
}

/**
 * Whether an event of a resource or claim calls for a pass: an add or delete,
 * a new generation (a spec change), a deletion begun, or finalizers changed.
 * A status-only update (our own write) does not.
 */
function needsPass(
  event: string,
  obj: { metadata: Pick<ObjectMeta, "generation" | "deletionTimestamp" | "finalizers"> },
  old:
    | { metadata?: Pick<ObjectMeta, "generation" | "deletionTimestamp" | "finalizers"> }
    | undefined,
): boolean {
  return (
    event !== "update" ||
    obj.metadata.generation !== old?.metadata?.generation ||
    Boolean(obj.metadata.deletionTimestamp) !== Boolean(old?.metadata?.deletionTimestamp) ||
    (obj.metadata.finalizers ?? []).join() !== (old?.metadata?.finalizers ?? []).join()
  );
}
