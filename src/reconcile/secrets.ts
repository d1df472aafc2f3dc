// Writing and deleting the managed Secrets. A Secret someone else made is
// never overwritten unless spec.adoptExisting says so; a write that loses to
// another writer reads the Secret again and decides again.

import type { ECRPullSecret } from "../api/index.js";
import { LABEL_OWNER } from "../api/metadata.js";
import { type OperatorError, operatorError } from "../errors.js";
import { isConflict, isNotFound } from "../kube/client.js";
import { retryOnConflict } from "../kube/retry.js";
import type { Cluster } from "./cluster.js";
import {
  type DesiredSecret,
  DOCKER_CONFIG_JSON_TYPE,
  isManaged,
  isOwnedBy,
  type SecretView,
  secretDiffers,
  secretPatch,
} from "./desired.js";

/** Makes the namespace's Secret the desired one; returns whether it wrote. */
export async function syncSecret(
  cluster: Cluster,
  resource: ECRPullSecret,
  desired: DesiredSecret,
): Promise<boolean> {
  const owner = resource.metadata?.name ?? "";
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
      // adoptExisting takes a Secret over by writing our labels on it.
      if (observed && !isOwnedBy(observed, owner) && !adoptable(resource, observed)) {
        throw secretConflict(resource, key.namespace, observed);
      }
      if (!observed) {
        await cluster.createSecret(desired);
        return true;
      }
      if (!secretDiffers(desired, observed)) return false;
      await cluster.patchSecret(key, secretPatch(desired, observed.metadata?.resourceVersion));
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
  const key = { namespace: cached.metadata?.namespace ?? "", name: cached.metadata?.name ?? "" };
  let secret: SecretView | undefined = cached;
  await retryOnConflict(
    { attempts: 5, exhausted: () => operatorError("WriteFailed", "deleteKeptChanging", key) },
    async (attempt) => {
      if (attempt > 0) secret = await cluster.readSecret(key);
      if (!secret || !isOwnedBy(secret, owner)) return;
      try {
        await cluster.deleteSecret(key, secret.metadata?.resourceVersion);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  );
}

function adoptable(resource: ECRPullSecret, observed: SecretView): boolean {
  return (
    resource.spec.adoptExisting === true &&
    !isManaged(observed) &&
    observed.type === DOCKER_CONFIG_JSON_TYPE
  );
}

function secretConflict(
  resource: ECRPullSecret,
  namespace: string,
  observed: SecretView,
): OperatorError {
  const name = observed.metadata?.name ?? resource.spec.secretName;
  if (!isManaged(observed) && resource.spec.adoptExisting === true) {
    const type = observed.type ?? "Opaque";
    return operatorError("SecretConflict", "notAdoptable", {
      namespace,
      name,
      type,
      wanted: DOCKER_CONFIG_JSON_TYPE,
    });
  }
  if (isManaged(observed)) {
    const owner = observed.metadata?.labels?.[LABEL_OWNER] ?? "another resource";
    return operatorError("SecretConflict", "otherOwner", { namespace, name, owner });
  }
  return operatorError("SecretConflict", "foreign", { namespace, name });
}
