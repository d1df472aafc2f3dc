// The finalizer that gives a deleted resource its cleanup before the API
// server lets it go.
import type { ECRPullSecret } from "../api/index.js";
import { FINALIZER } from "../api/metadata.js";
import type { Cached } from "../kube/types.js";
import type { Cluster } from "./cluster.js";

export function hasFinalizer(resource: ECRPullSecret): boolean {
  return resource.metadata?.finalizers?.includes(FINALIZER) === true;
}

export async function addFinalizer(
  cluster: Cluster,
  resource: Cached<ECRPullSecret>,
): Promise<void> {
  await setFinalizers(cluster, resource, [...(resource.metadata?.finalizers ?? []), FINALIZER]);
}

export async function removeFinalizer(
  cluster: Cluster,
  resource: Cached<ECRPullSecret>,
): Promise<void> {
  const finalizers = (resource.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER);
  await setFinalizers(cluster, resource, finalizers);
}

/** Guarded by resourceVersion: finalizers others add or remove meanwhile are not lost. */
async function setFinalizers(
  cluster: Cluster,
  resource: Cached<ECRPullSecret>,
  finalizers: string[],
): Promise<void> {
  await cluster.patchResourceMetadata(resource.metadata.name, {
    finalizers,
    resourceVersion: resource.metadata?.resourceVersion,
  });
}
