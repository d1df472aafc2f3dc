// Writing and deleting the managed Secrets. A Secret someone else made is
// never overwritten unless spec.adoptExisting says so, and then only merged
// into (adoption.ts); a write that loses to another writer reads the Secret
// again and decides again. Every Secret it creates carries the mark of the
// place it was created in, so cleanup can tell it from a copy.

import type { ECRPullSecret } from "../api/index.js";
import { LABEL_OWNER } from "../api/metadata.js";
import { type OperatorError, operatorError } from "../errors.js";
import { ApiError, isConflict, isNotFound } from "../kube/client.js";
import { retryOnConflict } from "../kube/retry.js";
import type { Cached } from "../kube/types.js";
import {
  adoptedDiffers,
  adoptPatch,
  createdPatch,
  originOf,
  releasePatch,
  withCreatedMark,
} from "./adoption.js";
import { describeOwner } from "./claims.js";
import type { Cluster, ObjectKey } from "./cluster.js";
import {
  type DesiredSecret,
  DOCKER_CONFIG_JSON_TYPE,
  isManaged,
  isOwnedBy,
  type SecretView,
  secretDiffers,
} from "./desired.js";

/**
 * Makes the namespace's Secret the desired one; returns whether it wrote.
 * `field` is the spec field that asks for this Secret (`specFieldOf` in
 * outputs.ts), named in a conflict's message as what to change.
 */
export async function syncSecret(
  cluster: Cluster,
  resource: Cached<ECRPullSecret>,
  desired: DesiredSecret,
  field: string,
): Promise<boolean> {
  const owner = resource.metadata.name;
  const key = { namespace: desired.metadata.namespace, name: desired.metadata.name };
  let observed = cluster.secret(key);
  return await retryOnConflict(
    {
      attempts: 5,
      // 404: deleted since the cache saw it.
      retryOn: (err) => isConflict(err) || isNotFound(err),
      exhausted: () => operatorError("WriteFailed", "secretKeptConflicting", key),
    },
    async (attempt) => {
      // Created by someone else, changed since our cache saw it, or deleted:
      // read the real thing and decide again.
      if (attempt > 0) observed = await cluster.readSecret(key);
      if (!observed) {
        await cluster.createSecret(withCreatedMark(desired));
        return true;
      }
      // adoptExisting takes a Secret over by merging ours into it (adoption.ts).
      const adopting = !isOwnedBy(observed, owner);
      if (adopting && !adoptable(resource, desired, observed)) {
        throw secretConflict(resource, desired, observed, field);
      }
      if (adopting || originOf(observed) === "adopted") {
        if (!adopting && !adoptedDiffers(desired, observed)) return false;
        await mergeInto(cluster, key, desired);
        return true;
      }
      // A copy someone put in our place is ours to write, and then marked as such.
      if (!secretDiffers(desired, observed) && originOf(observed) !== "copy") return false;
      const rv = observed.metadata.resourceVersion;
      await cluster.patchSecret(key, createdPatch(desired, rv, observed));
      return true;
    },
  );
}

/**
 * Deletes a Secret of ours, guarded by its resourceVersion so a Secret
 * someone took over meanwhile is not deleted; on a conflict it re-reads and
 * deletes only if it is still ours. The finalizer goes right after a
 * cleanup, so a conflict must not leave the Secret behind.
 */
export async function deleteOwnedSecret(
  cluster: Cluster,
  cached: SecretView,
  owner: string,
): Promise<void> {
  const key = { namespace: cached.metadata.namespace, name: cached.metadata.name };
  let secret: SecretView | undefined = cached;
  await retryOnConflict(
    { attempts: 5, exhausted: () => operatorError("WriteFailed", "deleteKeptChanging", key) },
    async (attempt) => {
      if (attempt > 0) secret = await cluster.readSecret(key);
      if (!secret || !isOwnedBy(secret, owner) || !createdHere(secret)) return;
      try {
        await cluster.deleteSecret(key, secret.metadata.resourceVersion);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  );
}

/** Whether the operator created this Secret where it is (or before the marks existed). */
export function createdHere(secret: SecretView): boolean {
  const origin = originOf(secret);
  return origin === "created" || origin === "unmarked";
}

/**
 * Merges our entries into an adopted Secret (or one being adopted), from its
 * bytes as the API server has them now (the caches keep digests only): the
 * patch is guarded by that read's resourceVersion, so a conflict re-reads.
 */
async function mergeInto(cluster: Cluster, key: ObjectKey, desired: DesiredSecret): Promise<void> {
  const current = await cluster.readSecret(key);
  if (!current) throw notFound(key);
  const merged = adoptPatch(desired, current);
  if ("reason" in merged) {
    throw operatorError("SecretConflict", "notAdoptableContent", { ...key, reason: merged.reason });
  }
  await cluster.patchSecret(key, merged.patch);
}

/**
 * Gives an adopted Secret back: reads its bytes and removes our auths
 * entries, labels and annotations, keeping everything else; only while it is
 * still ours and still adopted in this place.
 */
export async function releaseAdoptedSecret(
  cluster: Cluster,
  cached: SecretView,
  owner: string,
): Promise<boolean> {
  const key = { namespace: cached.metadata.namespace, name: cached.metadata.name };
  let released = false;
  await retryOnConflict(
    {
      attempts: 5,
      retryOn: (err) => isConflict(err) || isNotFound(err),
      exhausted: () => operatorError("WriteFailed", "deleteKeptChanging", key),
    },
    async () => {
      const secret = await cluster.readSecret(key);
      if (!secret || !isOwnedBy(secret, owner) || originOf(secret) !== "adopted") return;
      await cluster.patchSecret(key, releasePatch(secret));
      released = true;
    },
  );
  return released;
}

/** A 404 as the client throws it, for the retry to re-read. */
function notFound(key: ObjectKey): ApiError {
  return new ApiError(404, `secrets "${key.name}" not found in ${key.namespace}`, "NotFound");
}

/**
 * adoptExisting takes over only what the docs promise: the pull Secret, of
 * type kubernetes.io/dockerconfigjson (a type cannot change). The Opaque
 * outputs (config.json, Argo CD) are never adopted: their other keys are not
 * ours to judge.
 */
function adoptable(resource: ECRPullSecret, desired: DesiredSecret, observed: SecretView): boolean {
  return (
    resource.spec.adoptExisting === true &&
    !isManaged(observed) &&
    desired.type === DOCKER_CONFIG_JSON_TYPE &&
    observed.type === desired.type
  );
}

function secretConflict(
  resource: ECRPullSecret,
  desired: DesiredSecret,
  observed: SecretView,
  field: string,
): OperatorError {
  const { namespace, name } = desired.metadata;
  if (!isManaged(observed) && resource.spec.adoptExisting === true) {
    if (desired.type !== DOCKER_CONFIG_JSON_TYPE) {
      return operatorError("SecretConflict", "notAdoptableOutput", { namespace, name, field });
    }
    const type = observed.type ?? "Opaque";
    return operatorError("SecretConflict", "notAdoptable", {
      namespace,
      name,
      type,
      wanted: desired.type,
    });
  }
  if (isManaged(observed)) {
    const owner = observed.metadata.labels?.[LABEL_OWNER] ?? "another resource";
    return operatorError("SecretConflict", "otherOwner", {
      namespace,
      name,
      owner: describeOwner(owner),
    });
  }
  return operatorError("SecretConflict", "foreign", { namespace, name });
}
