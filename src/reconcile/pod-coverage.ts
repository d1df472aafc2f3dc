// Which Pods a resource's Secret should cover and does not: pure functions
// of a trimmed Pod and the resource's Secret name and registry hosts. The
// pull-failure watch and `status --namespace` share them.
import { ANNOTATION_EXPIRES_AT, LABEL_OWNER } from "../api/metadata.js";
import type { Pod } from "../kube/pods.js";
import { ownerLabelValue } from "./desired.js";

/** What a pull diagnosis needs to know about a Pod, and nothing more. */
export interface PodView {
  namespace: string;
  name: string;
  uid: string;
  /** The owner with `controller: true` (ReplicaSet, StatefulSet, Job, DaemonSet, …), if any. */
  controller?: { kind: string; name: string };
  serviceAccount: string;
  /** Every container's and init container's image, in spec order, without repeats. */
  images: string[];
  pullSecrets: string[];
  /** Containers waiting to start, with the kubelet's reason (ErrImagePull, ImagePullBackOff, …). */
  waiting: Array<{ image: string; reason: string; message?: string }>;
  phase?: string;
  /** metadata.creationTimestamp in ms (whole seconds): tells a replacement from the Pod it replaced. */
  created?: number;
}

/** Reasons a container waits on a failed pull. */
export const PULL_FAILURE_REASONS: ReadonlySet<string> = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
]);

export function podView(pod: Pod): PodView {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const imageOf = new Map(containers.map((c) => [c.name, c.image ?? ""]));
  const statuses = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  const waiting: PodView["waiting"] = [];
  for (const s of statuses) {
    const w = s.state?.waiting;
    if (!w?.reason) continue;
    const entry: PodView["waiting"][number] = {
      image: imageOf.get(s.name) || s.image || "",
      reason: w.reason,
    };
    if (w.message) entry.message = w.message;
    waiting.push(entry);
  }
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
  const view: PodView = {
    namespace: pod.metadata?.namespace ?? "",
    name: pod.metadata?.name ?? "",
    uid: pod.metadata?.uid ?? "",
    serviceAccount: pod.spec?.serviceAccountName || "default",
    images: [...new Set(containers.map((c) => c.image ?? "").filter((i) => i !== ""))],
    pullSecrets: (pod.spec?.imagePullSecrets ?? []).flatMap((s) => (s.name ? [s.name] : [])),
    waiting,
  };
  if (owner) view.controller = { kind: owner.kind, name: owner.name };
  if (pod.status?.phase) view.phase = pod.status.phase;
  const created = Date.parse(pod.metadata?.creationTimestamp ?? "");
  if (Number.isFinite(created)) view.created = created;
  return view;
}

/**
 * The registry host of an image reference, as a container runtime resolves
 * it: the first path component when it looks like a host (has a dot or a
 * port, or is localhost), else Docker Hub.
 */
export function imageRegistryHost(image: string): string {
  const slash = image.indexOf("/");
  if (slash < 0) return "docker.io";
  const first = image.slice(0, slash);
  if (first.includes(".") || first.includes(":") || first === "localhost") {
    // A port is part of the registry's address, but ECR hosts never carry one.
    return first.toLowerCase();
  }
  return "docker.io";
}

/** A resource as far as coverage goes: the Secret it writes and the hosts in it. */
export interface ServingResource {
  name: string;
  secretName: string;
  registries: readonly string[];
}

/**
 * The Pod's images from the resource's registries, when the Pod does not
 * list the resource's Secret in its imagePullSecrets; [] when it does, or
 * when none of its images comes from those registries.
 */
export function uncoveredImages(pod: PodView, r: ServingResource): string[] {
  if (pod.pullSecrets.includes(r.secretName)) return [];
  const hosts = new Set(r.registries);
  return pod.images.filter((i) => hosts.has(imageRegistryHost(i)));
}

/** The repository part of an image reference: no registry host, tag or digest. */
export function imageRepository(image: string): string {
  const slash = image.indexOf("/");
  const hasHost = slash >= 0 && imageRegistryHost(image) !== "docker.io";
  let rest = hasHost ? image.slice(slash + 1) : image;
  const at = rest.indexOf("@");
  if (at >= 0) rest = rest.slice(0, at);
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) rest = rest.slice(0, colon);
  return rest;
}

/** The managed Secret in a namespace, as the pull diagnosis needs to see it. */
export type SecretState = "current" | "missing" | "expired" | "foreign";

/**
 * The state of `secret` (undefined: not there) as resource `owner`'s pull
 * Secret at `nowMs`: written by that resource (its owner label, hashed for
 * long names), and holding a token that has not expired.
 */
export function secretState(
  secret:
    | { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } }
    | undefined,
  owner: string,
  nowMs: number,
): SecretState {
  if (!secret) return "missing";
  if (secret.metadata?.labels?.[LABEL_OWNER] !== ownerLabelValue(owner)) return "foreign";
  const expires = Date.parse(secret.metadata?.annotations?.[ANNOTATION_EXPIRES_AT] ?? "");
  return Number.isFinite(expires) && expires > nowMs ? "current" : "expired";
}

/**
 * Why a Pod waits on a failed pull of an image from a managed registry:
 * - `MissingPullSecret`: the Pod does not list the Secret (admitted before
 *   its ServiceAccount was patched, or it sets its own list);
 * - `SecretMissing` / `SecretExpired`: it lists the Secret, which is not
 *   there or holds an expired token: a reconcile fixes it;
 * - `RegistryRefused`: it lists a current Secret and the registry still says
 *   no: the repository policy or IAM, which the operator cannot fix.
 */
export interface PullDiagnosis {
  kind: "MissingPullSecret" | "SecretMissing" | "SecretExpired" | "RegistryRefused";
  resource: string;
  secretName: string;
  image: string;
  /** The kubelet's waiting reason. */
  reason: string;
  message?: string;
}

/**
 * One diagnosis per (resource, image) for each container of the Pod that
 * waits with ErrImagePull or ImagePullBackOff on an image of a serving
 * resource's registries. A Secret of that name the operator does not own
 * (`foreign`) is left to the reconcile's SecretConflict.
 */
export function diagnosePullFailures(
  pod: PodView,
  serving: readonly ServingResource[],
  secretState: (r: ServingResource) => SecretState,
): PullDiagnosis[] {
  const out: PullDiagnosis[] = [];
  const seen = new Set<string>();
  for (const w of pod.waiting) {
    if (!PULL_FAILURE_REASONS.has(w.reason)) continue;
    const host = imageRegistryHost(w.image);
    for (const r of serving) {
      if (!r.registries.includes(host)) continue;
      const key = `${r.name}\u0000${w.image}`;
      if (seen.has(key)) continue;
      seen.add(key);
      let kind: PullDiagnosis["kind"];
      if (!pod.pullSecrets.includes(r.secretName)) kind = "MissingPullSecret";
      else {
        const state = secretState(r);
        if (state === "foreign") continue;
        kind =
          state === "missing"
            ? "SecretMissing"
            : state === "expired"
              ? "SecretExpired"
              : "RegistryRefused";
      }
      const d: PullDiagnosis = {
        kind,
        resource: r.name,
        secretName: r.secretName,
        image: w.image,
        reason: w.reason,
      };
      if (w.message) d.message = w.message;
      out.push(d);
    }
  }
  return out;
}

/** Controllers that recreate a deleted Pod from their template. */
export const RECREATING_CONTROLLERS: ReadonlySet<string> = new Set([
  "ReplicaSet",
  "StatefulSet",
  "Job",
  "DaemonSet",
]);

/**
 * The Secret names of a kubelet `FailedToRetrieveImagePullSecret` Event:
 * "Unable to retrieve some image pull secrets (a, b); attempting to pull the
 * image may not succeed."
 */
export function failedPullSecretNames(message: string): string[] {
  const m = /image pull secrets \(([^)]*)\)/.exec(message);
  if (!m) return [];
  return (m[1] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/**
 * The imagePullSecrets the next Pod of the same controller would get, judged
 * from the Pod itself and its ServiceAccount's list now. The ServiceAccount
 * admission plugin copies the ServiceAccount's list only into a Pod whose
 * template sets none, so:
 * - a Pod with no list: the next one gets the ServiceAccount's list;
 * - a Pod whose every entry the ServiceAccount lists: copied from it at
 *   admission (before our entry was added), so the next one gets its list;
 * - a Pod with an entry the ServiceAccount does not list: its template sets
 *   its own list, and the next Pod gets that same list again.
 * A template list that happens to equal the ServiceAccount's is taken for a
 * copy; the per-owner guard of the pull-failure watch stops at the first
 * replacement that still lacks the Secret.
 */
export function nextPodPullSecrets(
  pod: Pick<PodView, "pullSecrets">,
  serviceAccountPullSecrets: readonly string[] | undefined,
): { from: "template" | "serviceAccount"; pullSecrets: string[] } {
  const sa = [...(serviceAccountPullSecrets ?? [])];
  if (pod.pullSecrets.length === 0) return { from: "serviceAccount", pullSecrets: sa };
  if (pod.pullSecrets.every((s) => sa.includes(s)))
    return { from: "serviceAccount", pullSecrets: sa };
  return { from: "template", pullSecrets: [...pod.pullSecrets] };
}

/** What the pull-failure watch does about a Pod that lacks the Secret. */
export type RecoveryDecision =
  | { action: "recreate" }
  | {
      action: "warn";
      /** Why it does not delete the Pod: a stable word for tests and metrics. */
      why:
        | "noController"
        | "templateSetsPullSecrets"
        | "serviceAccountLacksSecret"
        | "replacementStillUncovered"
        | "ownerLimit"
        | "notAllowed"
        | "notRequested";
      /** What the user must change, in words. */
      fix: string;
    };

/**
 * Whether deleting a Pod that lacks the Secret would bring a Pod that has it,
 * and may be done now, else what to change instead. `owner` is what the watch
 * knows of the Pod's controller: whether one of its Pods created after the
 * watch last deleted one of them still lacks the Secret, and how many of its
 * Pods were deleted in the last hour.
 */
export function recoveryDecision(input: {
  pod: PodView;
  secretName: string;
  resource: string;
  requested: boolean;
  serviceAccountPullSecrets: readonly string[] | undefined;
  owner: { replacementStillUncovered: boolean; deletedLastHour: number; perHour: number };
  /** The operator may delete Pods in the namespace (undefined: not known yet). */
  mayDelete: boolean | undefined;
}): RecoveryDecision {
  const { pod, secretName: secret, resource } = input;
  const owner = pod.controller;
  if (!owner || !RECREATING_CONTROLLERS.has(owner.kind)) {
    return {
      action: "warn",
      why: "noController",
      fix: `it has no controller that would recreate it: delete and create it again, or add ${secret} to its imagePullSecrets`,
    };
  }
  const ofOwner = `${owner.kind} ${owner.name}`;
  const next = nextPodPullSecrets(pod, input.serviceAccountPullSecrets);
  if (next.from === "template" || input.owner.replacementStillUncovered) {
    const listed = next.from === "template" ? ` (${pod.pullSecrets.join(", ")})` : "";
    return {
      action: "warn",
      why: next.from === "template" ? "templateSetsPullSecrets" : "replacementStillUncovered",
      fix: `recreating it would not help: the Pod template of ${ofOwner} sets its own imagePullSecrets${listed}, which ServiceAccount ${pod.serviceAccount}'s entries never reach; add ${secret} to the Pod template's imagePullSecrets`,
    };
  }
  if (!next.pullSecrets.includes(secret)) {
    return {
      action: "warn",
      why: "serviceAccountLacksSecret",
      fix: `recreating it would not help yet: ServiceAccount ${pod.namespace}/${pod.serviceAccount} does not list ${secret}; add ${pod.serviceAccount} to spec.serviceAccounts of ECRPullSecret ${resource} if it is not there`,
    };
  }
  if (!input.requested) {
    return {
      action: "warn",
      why: "notRequested",
      fix: `delete it so that ${ofOwner} recreates it with the Secret, or set spec.podRecovery: Recreate on ECRPullSecret ${resource}`,
    };
  }
  if (input.mayDelete === false) {
    return {
      action: "warn",
      why: "notAllowed",
      fix: `spec.podRecovery: Recreate is set but the operator may not delete Pods in ${pod.namespace}: set the chart value podRecovery.enabled=true (it grants delete on Pods), or delete it so that ${ofOwner} recreates it`,
    };
  }
  if (input.owner.deletedLastHour >= input.owner.perHour) {
    return {
      action: "warn",
      why: "ownerLimit",
      fix: `${input.owner.deletedLastHour} Pods of ${ofOwner} were deleted in the last hour, the most spec.podRecovery: Recreate deletes per owner; delete it by hand if it must go now`,
    };
  }
  return { action: "recreate" };
}
