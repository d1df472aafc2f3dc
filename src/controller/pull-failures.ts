// The pull-failure watch: Pods that are not running yet (field selector
// status.phase=Pending, so a cluster's Running Pods never enter the cache),
// trimmed to what a diagnosis reads, and the kubelet's
// FailedToRetrieveImagePullSecret Events. A Pod waiting on a failed pull of
// an image from a managed registry is diagnosed (pod-coverage.ts) and acted
// on: a Warning on the Pod and the resource, a reconcile of its resource now
// when the Secret is missing or expired, and under `podRecovery: Recreate` the
// deletion of a controller-owned Pod that lacks the Secret, so that its
// controller recreates it with the Secret: only when the next Pod would get
// the Secret (its template sets no imagePullSecrets of its own), only where
// the operator may delete Pods (SelfSubjectAccessReview), once per Pod,
// rate-limited, at most `recreatePerOwnerPerHour` Pods of one controller an
// hour, and never again for a controller whose replacement Pod still lacks
// the Secret. Every other case is a warning naming what to change.

import { Reason } from "../api/conditions.js";
import type { ECRPullSecret, UncoveredPod } from "../api/index.js";
import { describeCredentials } from "../aws/credentials.js";
import { type OperatorDefaults, resolveRegistries } from "../aws/registries.js";
import {
  EVENTS,
  isForbidden,
  isNotFound,
  type KubeClient,
  resourcePath,
  SELF_SUBJECT_ACCESS_REVIEWS,
} from "../kube/client.js";
import type { ObjectCache } from "../kube/namespaced-informers.js";
import { PODS, type Pod } from "../kube/pods.js";
import type { Event, KubernetesObject } from "../kube/types.js";
import type { EventRecorder, EventTarget } from "../observability/events.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { eventTarget } from "../reconcile/claim-pass.js";
import { describeOwner } from "../reconcile/claims.js";
import {
  diagnosePullFailures,
  failedPullSecretNames,
  imageRegistryHost,
  imageRepository,
  type PodView,
  type PullDiagnosis,
  podView,
  type RecoveryDecision,
  recoveryDecision,
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
/** The window of the per-owner bound on Pod deletions, and of giving up on an owner. */
const OWNER_WINDOW_MS = 3_600_000;
/** How long an answer on the right to delete Pods is believed. */
const DELETE_RIGHT_TTL_MS = 5 * 60_000;
/** Default of PullFailureOptions.recreatePerOwnerPerHour. */
export const RECREATE_PER_OWNER_PER_HOUR = 10;

/** What the watch reads from the controller's caches. */
export interface PullFailureSources {
  resources(): Iterable<ECRPullSecret>;
  namespaceLabels(name: string): Record<string, string> | undefined;
  /** A managed Secret from the cache (labels and annotations suffice). */
  secret(namespace: string, name: string): KubernetesObject | undefined;
  /** A ServiceAccount's imagePullSecrets names from the cache; undefined when not cached. */
  serviceAccountPullSecrets?(namespace: string, name: string): string[] | undefined;
}

export interface PullFailureOptions {
  defaults: OperatorDefaults;
  /** Reconcile this resource now (and rewrite its status). */
  enqueue(name: string): void;
  /** Pod deletions under Recreate: this many at once, then one per `recreateIntervalMs`. */
  recreateBurst: number;
  recreateIntervalMs: number;
  /** At most this many Pods of one controller (ownerReference) deleted an hour; default 10. */
  recreatePerOwnerPerHour?: number;
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
      creationTimestamp: m.creationTimestamp,
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
  /**
   * Per controller ("namespace/Kind/name"): when its Pods were deleted in the
   * last hour, and since when a replacement still lacking the Secret showed
   * that recreating does not help (nothing more is deleted for an hour).
   */
  private readonly owners = new Map<string, { deletions: number[]; gaveUpAt?: number }>();
  /** Whether the operator may delete Pods, per namespace, and when it asked. */
  private readonly deleteRights = new Map<string, { allowed: boolean; at: number }>();
  private readonly askingDeleteRight = new Map<string, Promise<boolean>>();
  /** What is done about each uncovered Pod (by Pod key), for the status; the last decision. */
  private readonly recoveries = new Map<string, { why: string; fix: string }>();
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
      if (event === "delete") {
        this.recoveries.delete(key);
        this.setUncovered(key, []);
      } else this.diagnose(key, podView(pod), true);
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
        if (u.resource === resource) {
          const recovery = this.recoveries.get(`${u.namespace}/${u.name}`)?.fix;
          all.push({
            namespace: u.namespace,
            name: u.name,
            image: u.image,
            reason: u.reason,
            ...(recovery ? { recovery: recovery.slice(0, 1024) } : {}),
          });
        }
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
    const decide = (mayDelete: boolean | undefined) => this.decide(pod, d, r, mayDelete);
    const decision = decide(this.deleteRight(pod.namespace));
    if (decision.action === "recreate" && this.deleteRight(pod.namespace) === undefined) {
      // First Pod to recreate in this namespace: ask whether deleting is allowed.
      void this.askDeleteRight(pod.namespace).then((allowed) =>
        this.act(pod, d, r, decide(allowed)),
      );
      return;
    }
    this.act(pod, d, r, decision);
  }

  private decide(
    pod: PodView,
    d: PullDiagnosis,
    r: ECRPullSecret,
    mayDelete: boolean | undefined,
  ): RecoveryDecision {
    return recoveryDecision({
      pod,
      secretName: d.secretName,
      resource: d.resource,
      requested: r.spec.podRecovery === "Recreate",
      serviceAccountPullSecrets: this.sources.serviceAccountPullSecrets?.(
        pod.namespace,
        pod.serviceAccount,
      ),
      owner: this.ownerState(pod),
      mayDelete,
    });
  }

  /** Warns about (and, when decided, deletes) a Pod that lacks the Secret. */
  private act(pod: PodView, d: PullDiagnosis, r: ECRPullSecret, decision: RecoveryDecision): void {
    const owner = pod.controller;
    const fix =
      decision.action === "recreate"
        ? `it is being deleted so that ${owner?.kind} ${owner?.name} recreates it with the Secret`
        : decision.fix;
    const why = decision.action === "recreate" ? "recreate" : decision.why;
    const key = `${pod.namespace}/${pod.name}`;
    const before = this.recoveries.get(key);
    // The status says what spec.podRecovery: Recreate does about each Pod, or why it holds back.
    const requested = r.spec.podRecovery === "Recreate";
    if (requested && (before?.why !== why || before.fix !== fix)) {
      this.recoveries.set(key, { why, fix });
      if (this.recoveries.size > 10_000) this.recoveries.clear();
      if (decision.action === "warn")
        this.metrics.podRecoveries.inc({ resource: d.resource, action: decision.why });
      // The status lists what is done about each Pod.
      this.opts.enqueue(d.resource);
    }
    const message = `Pod ${pod.namespace}/${pod.name} waits on ${d.image} (${d.reason}) without the pull Secret ${d.secretName} of ${describeOwner(d.resource)}: it was created before ServiceAccount ${pod.serviceAccount} got the Secret, or it sets its own imagePullSecrets; ${fix}`;
    this.podEvent(pod, "Warning", Reason.PodMissingPullSecret, message);
    this.events.record(this.about(d.resource, r), "Warning", Reason.PodMissingPullSecret, message);
    if (decision.action === "recreate") void this.recreate(pod, d, r);
  }

  /** What the watch knows of the Pod's controller, for recoveryDecision. */
  private ownerState(pod: PodView): {
    replacementStillUncovered: boolean;
    deletedLastHour: number;
    perHour: number;
  } {
    const perHour = this.opts.recreatePerOwnerPerHour ?? RECREATE_PER_OWNER_PER_HOUR;
    const key = ownerKey(pod);
    const state = key ? this.owners.get(key) : undefined;
    if (!key || !state) return { replacementStillUncovered: false, deletedLastHour: 0, perHour };
    const now = this.now();
    state.deletions = state.deletions.filter((at) => now - at < OWNER_WINDOW_MS);
    const last = state.deletions.at(-1);
    // A Pod created after one of the owner's Pods was deleted is its
    // replacement (creationTimestamp has whole seconds): it lacks the Secret
    // too, so recreating does not help; give up on this owner for the window.
    if (
      last !== undefined &&
      pod.created !== undefined &&
      pod.created >= last - 1_000 &&
      !this.recreated.has(pod.uid)
    ) {
      state.gaveUpAt ??= now;
    }
    if (state.gaveUpAt !== undefined && now - state.gaveUpAt >= OWNER_WINDOW_MS)
      state.gaveUpAt = undefined;
    return {
      replacementStillUncovered: state.gaveUpAt !== undefined,
      deletedLastHour: state.deletions.length,
      perHour,
    };
  }

  /** The cached answer on deleting Pods in a namespace; undefined: not asked, or too old. */
  private deleteRight(namespace: string): boolean | undefined {
    const known = this.deleteRights.get(namespace);
    return known && this.now() - known.at < DELETE_RIGHT_TTL_MS ? known.allowed : undefined;
  }

  /** Asks the API server whether the operator may delete Pods in `namespace` (cached; one question at a time). */
  private askDeleteRight(namespace: string): Promise<boolean> {
    let asking = this.askingDeleteRight.get(namespace);
    if (asking === undefined) {
      asking = this.reviewDeleteRight(namespace).finally(() =>
        this.askingDeleteRight.delete(namespace),
      );
      this.askingDeleteRight.set(namespace, asking);
    }
    return asking;
  }

  private async reviewDeleteRight(namespace: string): Promise<boolean> {
    let allowed = true;
    try {
      const review = await this.kube.create<
        KubernetesObject & { spec: object; status?: { allowed?: boolean } }
      >(SELF_SUBJECT_ACCESS_REVIEWS, {
        metadata: {},
        spec: { resourceAttributes: { verb: "delete", resource: "pods", namespace } },
      });
      allowed = review.status?.allowed === true;
    } catch (err) {
      // Unknown: the delete itself will tell (a 403 is remembered as "no").
      this.log.debug({ namespace, err: errorField(err) }, "could not ask about deleting Pods");
    }
    this.deleteRights.set(namespace, { allowed, at: this.now() });
    if (this.deleteRights.size > 10_000) this.deleteRights.clear();
    return allowed;
  }

  private registryRefused(pod: PodView, d: PullDiagnosis, r: ECRPullSecret): void {
    const host = imageRegistryHost(d.image);
    const identity = this.identity(r, host);
    const message = `registry ${host} refused ${d.image} for Pod ${pod.namespace}/${pod.name} (${d.reason}) although Secret ${d.secretName} holds a current token from ${identity}: the policy of repository ${imageRepository(d.image)} or IAM does not let that identity pull it (ecr:BatchGetImage, ecr:GetDownloadUrlForLayer); the operator cannot fix this`;
    this.podEvent(pod, "Warning", Reason.PullRefused, message);
    this.events.record(this.about(d.resource, r), "Warning", Reason.PullRefused, message);
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

  /** Where an Event about the resource goes: an ECRPullSecret's into "default", a claim's into its namespace. */
  private about(name: string, r: ECRPullSecret): EventTarget {
    return eventTarget({ metadata: { name, uid: r.metadata?.uid } });
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
    const owner = ownerKey(pod);
    const ownerState = owner ? this.owners.get(owner) : undefined;
    const perHour = this.opts.recreatePerOwnerPerHour ?? RECREATE_PER_OWNER_PER_HOUR;
    if (ownerState && ownerState.deletions.length >= perHour) return;
    if (!this.takeRecreateToken()) {
      // Diagnosed again at its next status change (the kubelet's back-off
      // brings one every few minutes), when the limit may allow it.
      this.log.info({ pod: `${pod.namespace}/${pod.name}` }, "Pod recreation rate-limited");
      return;
    }
    this.recreated.add(pod.uid);
    if (this.recreated.size > 10_000) this.recreated.clear();
    if (owner) {
      const state = ownerState ?? { deletions: [] };
      state.deletions.push(this.now());
      this.owners.set(owner, state);
      if (this.owners.size > 10_000) this.owners.clear();
    }
    try {
      // The UID precondition: never a same-named successor.
      await this.kube.delete(PODS, { namespace: pod.namespace, name: pod.name }, { uid: pod.uid });
      this.recreations++;
      this.metrics.podRecoveries.inc({ resource: d.resource, action: "deleted" });
      const message = `deleted Pod ${pod.namespace}/${pod.name}, which waited on ${d.image} without the pull Secret ${d.secretName}, so that ${pod.controller?.kind} ${pod.controller?.name} recreates it with the Secret (spec.podRecovery: Recreate)`;
      this.log.info({ pod: `${pod.namespace}/${pod.name}`, resource: d.resource }, message);
      this.podEvent(pod, "Normal", Reason.PodRecreated, message);
      this.events.record(this.about(d.resource, r), "Normal", Reason.PodRecreated, message);
    } catch (err) {
      if (isNotFound(err)) return;
      if (isForbidden(err)) {
        // RBAC said no after all: remembered, and said on the Pod and the resource.
        this.deleteRights.set(pod.namespace, { allowed: false, at: this.now() });
        this.act(pod, d, r, this.decide(pod, d, r, false));
        return;
      }
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

/** The Pod's controller as a key ("namespace/Kind/name"); undefined without one. */
function ownerKey(pod: PodView): string | undefined {
  return pod.controller
    ? `${pod.namespace}/${pod.controller.kind}/${pod.controller.name}`
    : undefined;
}
