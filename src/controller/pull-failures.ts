// The pull-failure watch: Pods that are not running yet (field selector
// status.phase=Pending, so a cluster's Running Pods never enter the cache),
// trimmed to what a diagnosis reads, and the kubelet's
// FailedToRetrieveImagePullSecret Events. A Pod waiting on a failed pull of
// an image from a managed registry is diagnosed (pod-coverage.ts) and acted
// on: a Warning on the Pod and the resource, a reconcile of its resource now
// when the Secret is missing or expired, and under `podRecovery: Recreate` the
// deletion of a controller-owned Pod that lacks the Secret, once per Pod and
// rate-limited, so that its controller recreates it with the Secret.

import { Reason } from "../api/conditions.js";
import type { ECRPullSecret, UncoveredPod } from "../api/index.js";
import { describeCredentials } from "../aws/credentials.js";
import { type OperatorDefaults, resolveRegistries } from "../aws/registries.js";
import { EVENTS, isNotFound, type KubeClient, resourcePath } from "../kube/client.js";
import type { ObjectCache } from "../kube/namespaced-informers.js";
import { PODS, type Pod } from "../kube/pods.js";
import type { Event, KubernetesObject } from "../kube/types.js";
import type { EventRecorder } from "../observability/events.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import {
  diagnosePullFailures,
  failedPullSecretNames,
  imageRegistryHost,
  imageRepository,
  type PodView,
  type PullDiagnosis,
  podView,
  RECREATING_CONTROLLERS,
  type SecretState,
  type ServingResource,
  secretState,
} from "../reconcile/pod-coverage.js";
import { targetNamespaces } from "../reconcile/targets.js";
import { perScope } from "./informers.js";

/** The kubelet's Event reason when a Pod's pull Secret cannot be read. */
export const FAILED_PULL_SECRET_REASON = "FailedToRetrieveImagePullSecret";
/** At most this many uncovered Pods per resource go into its status. */
const MAX_LISTED = 20;
/** After a missing or expired Secret was fixed, a refusal is not judged for this long. */
const REFUSAL_GRACE_MS = 10_000;

/** What the watch reads from the controller's caches. */
export interface PullFailureSources {
  resources(): Iterable<ECRPullSecret>;
  namespaceLabels(name: string): Record<string, string> | undefined;
  /** A managed Secret from the cache (labels and annotations suffice). */
  secret(namespace: string, name: string): KubernetesObject | undefined;
}

export interface PullFailureOptions {
  defaults: OperatorDefaults;
  /** Reconcile this resource now (and rewrite its status). */
  enqueue(name: string): void;
  /** Pod deletions under Recreate: this many at once, then one per `recreateIntervalMs`. */
  recreateBurst: number;
  recreateIntervalMs: number;
  now?: () => number;
  /** Namespaces this install may serve (namespaced RBAC); absent: every namespace. */
  watchNamespaces?: readonly string[];
}

/** A Pod as the cache keeps it: only what podView() reads. */
export function trimPod(pod: Pod): Pod {
  const m = pod.metadata ?? {};
  const owner = m.ownerReferences?.find((o) => o.controller === true);
  const containers = (list?: Array<{ name: string; image?: string }>) =>
    list?.map((c) => ({ name: c.name, image: c.image }));
  const statuses = (list?: NonNullable<Pod["status"]>["containerStatuses"]) =>
    list
      ?.filter((s) => s.state?.waiting)
      .map((s) => ({
        name: s.name,
        state: {
          waiting: { reason: s.state?.waiting?.reason, message: s.state?.waiting?.message },
        },
      }));
  const trimmed: Pod = {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      ...(owner && { ownerReferences: [owner] }),
    },
    spec: {
      serviceAccountName: pod.spec?.serviceAccountName,
      imagePullSecrets: pod.spec?.imagePullSecrets,
      containers: containers(pod.spec?.containers),
      initContainers: containers(pod.spec?.initContainers),
    },
    status: {
      phase: pod.status?.phase,
      containerStatuses: statuses(pod.status?.containerStatuses),
      initContainerStatuses: statuses(pod.status?.initContainerStatuses),
    },
  };
  return trimmed;
}

function trimEvent(e: Event): Event {
  return {
    metadata: {
      name: e.metadata?.name,
      namespace: e.metadata?.namespace,
      resourceVersion: e.metadata?.resourceVersion,
    },
    involvedObject: { namespace: e.involvedObject.namespace, name: e.involvedObject.name },
    message: e.message,
  };
}

type Uncovered = UncoveredPod & { resource: string; uid: string };

export class PullFailureWatch {
  /** Cluster-wide, or one informer per served namespace (namespaced RBAC). */
  readonly pods: ObjectCache<Pod>;
  readonly pullSecretEvents: ObjectCache<Event>;
  /** Uncovered Pods by Pod key ("namespace/name"). */
  private readonly uncovered = new Map<string, Uncovered[]>();
  /** Pod UIDs deleted under Recreate: at most once per Pod. */
  private readonly recreated = new Set<string>();
  /** When a missing or expired Secret was last sent to be fixed, by "namespace/name". */
  private readonly fixedAt = new Map<string, number>();
  private recreateTokens: number;
  private recreateRefilledAt: number;
  private readonly now: () => number;
  /** Pod deletions done under Recreate (for tests and logs). */
  recreations = 0;

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly events: EventRecorder,
    private readonly sources: PullFailureSources,
    private readonly opts: PullFailureOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.recreateTokens = opts.recreateBurst;
    this.recreateRefilledAt = this.now();
    const pending = "status.phase=Pending";
    this.pods = perScope<Pod>(kube, opts.watchNamespaces, (namespace) => ({
      resource: "pods",
      path: resourcePath(PODS, namespace),
      fieldSelector: pending,
      list: ({ limit, continueToken }) =>
        kube.list<Pod>(PODS, { namespace, fieldSelector: pending, limit, continueToken }),
      transform: trimPod,
      onActivity: (what, err) => {
        if (what === "error")
          log.warn({ informer: "pods", err: errorField(err) }, "watch failed; retrying");
      },
    }));
    const failed = `reason=${FAILED_PULL_SECRET_REASON}`;
    this.pullSecretEvents = perScope<Event>(kube, opts.watchNamespaces, (namespace) => ({
      resource: "events",
      path: resourcePath(EVENTS, namespace),
      fieldSelector: failed,
      list: ({ limit, continueToken }) =>
        kube.list<Event>(EVENTS, { namespace, fieldSelector: failed, limit, continueToken }),
      transform: trimEvent,
      onActivity: (what, err) => {
        if (what === "error")
          log.warn({ informer: "events", err: errorField(err) }, "watch failed; retrying");
      },
    }));
    this.pods.on((event, pod) => {
      const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
      // Gone from the cache: deleted, or no longer Pending (it runs).
      if (event === "delete") this.setUncovered(key, []);
      else this.diagnose(key, podView(pod), true);
    });
    this.pullSecretEvents.on((event, e) => {
      if (event === "delete") return;
      this.onFailedPullSecret(e);
    });
  }

  start(): void {
    this.pods.start();
    this.pullSecretEvents.start();
  }

  get synced(): Promise<void> {
    return Promise.all([this.pods.synced, this.pullSecretEvents.synced]).then(() => undefined);
  }

  get hasSynced(): boolean {
    return this.pods.hasSynced && this.pullSecretEvents.hasSynced;
  }

  stop(): void {
    this.pods.stop();
    this.pullSecretEvents.stop();
  }

  /** The uncovered Pods of a resource, for its status (at most 20, sorted) and their count. */
  uncoveredPods(resource: string): { count: number; pods: UncoveredPod[] } {
    const all: UncoveredPod[] = [];
    for (const list of this.uncovered.values())
      for (const u of list)
        if (u.resource === resource)
          all.push({ namespace: u.namespace, name: u.name, image: u.image, reason: u.reason });
    all.sort((a, b) =>
      `${a.namespace}/${a.name}/${a.image}` < `${b.namespace}/${b.name}/${b.image}` ? -1 : 1,
    );
    return { count: all.length, pods: all.slice(0, MAX_LISTED) };
  }

  /** Diagnoses every cached Pod again: after a resource's registries or Secret changed. */
  rediagnose(): void {
    for (const pod of this.pods.values()) {
      this.diagnose(`${pod.metadata?.namespace}/${pod.metadata?.name}`, podView(pod));
    }
  }

  private serving(namespace: string): Array<ServingResource & { resource: ECRPullSecret }> {
    const labels = this.sources.namespaceLabels(namespace);
    if (labels === undefined) return [];
    const out: Array<ServingResource & { resource: ECRPullSecret }> = [];
    for (const r of this.sources.resources()) {
      const name = r.metadata?.name;
      if (!name || r.metadata?.deletionTimestamp) continue;
      let serves = false;
      try {
        serves = targetNamespaces(r.spec, [{ name: namespace, labels }]).length > 0;
      } catch {
        // An invalid spec is reported by its own reconcile.
      }
      if (!serves) continue;
      out.push({
        name,
        secretName: r.spec.secretName,
        registries: r.status?.registries ?? [],
        resource: r,
      });
    }
    return out;
  }

  private stateOf(namespace: string, r: ServingResource): SecretState {
    return secretState(this.sources.secret(namespace, r.secretName), r.name, this.now());
  }

  /**
   * `podChanged`: the Pod's own state moved (a kubelet attempt), as opposed
   * to a resource changing around it; only then can a refusal be judged.
   */
  private diagnose(key: string, pod: PodView, podChanged = false): void {
    const serving = this.serving(pod.namespace);
    if (serving.length === 0) {
      this.setUncovered(key, []);
      return;
    }
    const found = diagnosePullFailures(pod, serving, (r) => this.stateOf(pod.namespace, r));
    const uncovered: Uncovered[] = [];
    for (const d of found) {
      const r = serving.find((s) => s.name === d.resource);
      if (!r) continue;
      switch (d.kind) {
        case "MissingPullSecret":
          uncovered.push({
            resource: d.resource,
            namespace: pod.namespace,
            name: pod.name,
            uid: pod.uid,
            image: d.image,
            reason: d.reason,
          });
          this.missingPullSecret(pod, d, r.resource);
          break;
        case "SecretMissing":
        case "SecretExpired":
          this.fixedAt.set(`${pod.namespace}/${d.secretName}`, this.now());
          if (this.fixedAt.size > 10_000) this.fixedAt.clear();
          this.log.info(
            { pod: key, resource: d.resource, image: d.image, diagnosis: d.kind },
            "pull failure on a missing or expired Secret; reconciling now",
          );
          this.opts.enqueue(d.resource);
          break;
        case "RegistryRefused": {
          // The waiting state may predate a Secret just fixed: the kubelet
          // has not tried with it yet. Only a later attempt can tell.
          const fixed = this.fixedAt.get(`${pod.namespace}/${d.secretName}`);
          const justFixed = fixed !== undefined && this.now() - fixed < REFUSAL_GRACE_MS;
          if (podChanged && !justFixed) this.registryRefused(pod, d, r.resource);
          break;
        }
      }
    }
    this.setUncovered(key, uncovered);
  }

  private missingPullSecret(pod: PodView, d: PullDiagnosis, r: ECRPullSecret): void {
    const recreate = r.spec.podRecovery === "Recreate";
    const owner = pod.controller;
    const recreatable = owner !== undefined && RECREATING_CONTROLLERS.has(owner.kind);
    const fix = recreatable
      ? recreate
        ? `it is being deleted so that ${owner.kind} ${owner.name} recreates it with the Secret`
        : `delete it so that ${owner.kind} ${owner.name} recreates it with the Secret, or set spec.podRecovery: Recreate on ECRPullSecret ${d.resource}`
      : `it has no controller that would recreate it: delete and create it again, or add ${d.secretName} to its imagePullSecrets`;
    const message = `Pod ${pod.namespace}/${pod.name} waits on ${d.image} (${d.reason}) without the pull Secret ${d.secretName} of ECRPullSecret ${d.resource}: it was created before ServiceAccount ${pod.serviceAccount} got the Secret, or it sets its own imagePullSecrets; ${fix}`;
    this.podEvent(pod, "Warning", Reason.PodMissingPullSecret, message);
    this.events.record(
      { name: d.resource, uid: r.metadata?.uid },
      "Warning",
      Reason.PodMissingPullSecret,
      message,
    );
    if (recreate && recreatable) void this.recreate(pod, d, r);
  }

  private registryRefused(pod: PodView, d: PullDiagnosis, r: ECRPullSecret): void {
    const host = imageRegistryHost(d.image);
    const identity = this.identity(r, host);
    const message = `registry ${host} refused ${d.image} for Pod ${pod.namespace}/${pod.name} (${d.reason}) although Secret ${d.secretName} holds a current token from ${identity}: the policy of repository ${imageRepository(d.image)} or IAM does not let that identity pull it (ecr:BatchGetImage, ecr:GetDownloadUrlForLayer); the operator cannot fix this`;
    this.podEvent(pod, "Warning", Reason.PullRefused, message);
    this.events.record(
      { name: d.resource, uid: r.metadata?.uid },
      "Warning",
      Reason.PullRefused,
      message,
    );
  }

  /** The credentials behind a registry host of the resource, in words. */
  private identity(r: ECRPullSecret, host: string): string {
    try {
      const targets = resolveRegistries(r.spec, this.opts.defaults);
      const t = targets.find((x) => x.host === host) ?? targets.find((x) => !x.host);
      if (t) return describeCredentials(t.source.credentials);
    } catch {
      // An invalid spec is reported by its own reconcile.
    }
    return "the resource's credentials";
  }

  private podEvent(pod: PodView, type: "Normal" | "Warning", reason: string, message: string) {
    this.events.record(
      { name: pod.name, uid: pod.uid, namespace: pod.namespace, kind: "Pod", apiVersion: "v1" },
      type,
      reason,
      message,
    );
  }

  private takeRecreateToken(): boolean {
    const now = this.now();
    const refill = (now - this.recreateRefilledAt) / this.opts.recreateIntervalMs;
    this.recreateTokens = Math.min(this.opts.recreateBurst, this.recreateTokens + refill);
    this.recreateRefilledAt = now;
    if (this.recreateTokens < 1) return false;
    this.recreateTokens -= 1;
    return true;
  }

  private async recreate(pod: PodView, d: PullDiagnosis, r: ECRPullSecret): Promise<void> {
    if (this.recreated.has(pod.uid)) return;
    if (!this.takeRecreateToken()) {
      // Diagnosed again at its next status change (the kubelet's back-off
      // brings one every few minutes), when the limit may allow it.
      this.log.info({ pod: `${pod.namespace}/${pod.name}` }, "Pod recreation rate-limited");
      return;
    }
    this.recreated.add(pod.uid);
    if (this.recreated.size > 10_000) this.recreated.clear();
    try {
      // The UID precondition: never a same-named successor.
      await this.kube.delete(PODS, { namespace: pod.namespace, name: pod.name }, { uid: pod.uid });
      this.recreations++;
      const message = `deleted Pod ${pod.namespace}/${pod.name}, which waited on ${d.image} without the pull Secret ${d.secretName}, so that ${pod.controller?.kind} ${pod.controller?.name} recreates it with the Secret (spec.podRecovery: Recreate)`;
      this.log.info({ pod: `${pod.namespace}/${pod.name}`, resource: d.resource }, message);
      this.podEvent(pod, "Normal", Reason.PodRecreated, message);
      this.events.record(
        { name: d.resource, uid: r.metadata?.uid },
        "Normal",
        Reason.PodRecreated,
        message,
      );
    } catch (err) {
      if (isNotFound(err)) return;
      this.log.warn(
        { pod: `${pod.namespace}/${pod.name}`, err: errorField(err) },
        "failed to delete Pod for recreation",
      );
    }
  }

  private onFailedPullSecret(e: Event): void {
    const namespace = e.involvedObject.namespace ?? e.metadata?.namespace ?? "";
    const names = failedPullSecretNames(e.message ?? "");
    for (const r of this.serving(namespace)) {
      if (!names.includes(r.secretName)) continue;
      this.log.info(
        { pod: `${namespace}/${e.involvedObject.name}`, resource: r.name },
        "kubelet could not read the pull Secret; reconciling now",
      );
      this.opts.enqueue(r.name);
    }
  }

  /** Replaces a Pod's uncovered entries; the gauge and the status follow. */
  private setUncovered(key: string, list: Uncovered[]): void {
    const before = this.uncovered.get(key) ?? [];
    const same =
      before.length === list.length &&
      before.every((b, i) => b.resource === list[i]?.resource && b.image === list[i]?.image);
    if (same) return;
    if (list.length > 0) this.uncovered.set(key, list);
    else this.uncovered.delete(key);
    const touched = new Set([...before, ...list].map((u) => `${u.resource}\u0000${u.namespace}`));
    for (const t of touched) {
      const [resource = "", namespace = ""] = t.split("\u0000");
      let count = 0;
      for (const l of this.uncovered.values())
        for (const u of l) if (u.resource === resource && u.namespace === namespace) count++;
      if (count > 0) this.metrics.uncoveredPods.set({ resource, namespace }, count);
      else this.metrics.uncoveredPods.remove({ resource, namespace });
    }
    for (const resource of new Set([...before, ...list].map((u) => u.resource)))
      this.opts.enqueue(resource);
  }
}
