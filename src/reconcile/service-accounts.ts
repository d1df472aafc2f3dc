// Merging the Secret into ServiceAccounts' imagePullSecrets (and taking it
// out again), without losing what anyone else put there: a patch guarded by
// resourceVersion, redone on top of the other writer's change on a conflict.
import type { DeletionPolicy, ECRPullSecret } from "../api/index.js";
import { operatorError } from "../errors.js";
import { isNotFound } from "../kube/client.js";
import { retryOnConflict } from "../kube/retry.js";
import type { Cluster } from "./cluster.js";
import {
  planServiceAccount,
  type ServiceAccountChange,
  type ServiceAccountView,
  serviceAccountPatch,
  targetsServiceAccount,
} from "./desired.js";

export class ServiceAccounts {
  /** Cached ServiceAccounts whose plan came out empty, and for which (owner, want, policy). */
  private readonly settled = new WeakMap<object, string>();

  constructor(private readonly cluster: Cluster) {}

  /** Whether every ServiceAccount of the namespace already is as the resource wants. */
  inSync(resource: ECRPullSecret, namespace: string, policy: DeletionPolicy): boolean {
    const owner = resource.metadata?.name ?? "";
    for (const sa of this.cluster.serviceAccounts(namespace)) {
      if (this.plan(sa, owner, wanted(resource, sa), policy === "Delete")) return false;
    }
    return true;
  }

  /** Merges the Secret into the namespace's targeted ServiceAccounts (and out of the others). */
  async sync(resource: ECRPullSecret, namespace: string, policy: DeletionPolicy): Promise<void> {
    const owner = resource.metadata?.name ?? "";
    for (const sa of [...this.cluster.serviceAccounts(namespace)]) {
      await this.patch(sa, owner, wanted(resource, sa), policy === "Delete");
    }
  }

  /** Applies planServiceAccount with optimistic concurrency, re-reading on conflict. */
  async patch(
    cached: ServiceAccountView,
    owner: string,
    want: string | undefined,
    removeStale: boolean,
  ): Promise<void> {
    const key = { namespace: cached.metadata?.namespace ?? "", name: cached.metadata?.name ?? "" };
    let sa: ServiceAccountView | undefined = cached;
    await retryOnConflict(
      {
        attempts: 8,
        exhausted: () => operatorError("ServiceAccountConflict", "keptChanging", key),
      },
      async (attempt) => {
        // Someone else wrote it meanwhile: their change stays, ours is redone on top.
        if (attempt > 0) sa = await this.cluster.readServiceAccount(key);
        const change = sa && this.plan(sa, owner, want, removeStale);
        if (!sa || !change) return;
        try {
          const patch = serviceAccountPatch(change, sa.metadata?.resourceVersion);
          await this.cluster.patchServiceAccount(key, patch);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      },
    );
  }

  /**
   * planServiceAccount, remembering per cached object which plans came out
   * empty: the caches replace an object whenever it changes, so a settled
   * ServiceAccount is not parsed again on every pass.
   */
  private plan(
    sa: ServiceAccountView,
    owner: string,
    want: string | undefined,
    removeStale: boolean,
  ): ServiceAccountChange | undefined {
    const key = `${owner}/${want ?? ""}/${removeStale}`;
    if (this.settled.get(sa) === key) return undefined;
    const change = planServiceAccount(sa, owner, want, removeStale);
    if (!change) this.settled.set(sa, key);
    return change;
  }
}

/** The Secret name the resource wants in this ServiceAccount, if any. */
function wanted(resource: ECRPullSecret, sa: ServiceAccountView): string | undefined {
  return targetsServiceAccount(resource.spec.serviceAccounts, sa.metadata?.name ?? "")
    ? resource.spec.secretName
    : undefined;
}
