// Which Pods a resource's Secret should cover and does not: pure functions
// of a trimmed Pod and the resource's Secret name and registry hosts. The
// pull-failure watch and `status --namespace` share them.
import type { Pod } from "../kube/pods.js";

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
