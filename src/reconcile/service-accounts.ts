// Merging the Secret into ServiceAccounts' imagePullSecrets, and on request
// into their `secrets` (Tekton reads registry credentials there), and taking
// it out again, without losing what anyone else put there: one patch per
// ServiceAccount guarded by resourceVersion, redone on top of the other
// writer's change on a conflict.
import type { DeletionPolicy, ECRPullSecret } from "../api/index.js";
import { operatorError } from "../errors.js";
import { isNotFound } from "../kube/client.js";
import { retryOnConflict } from "../kube/retry.js";
import type { Cluster } from "./cluster.js";
import {
  planServiceAccount,
  planServiceAccountSecrets,
  type ReferenceListChange,
  type ServiceAccountChange,
  type ServiceAccountView,
  serviceAccountPatch,
  targetsServiceAccount,
} from "./desired.js";

/** The Secret name a resource wants in each list of one ServiceAccount; undefined: none. */
export interface Wanted {
  imagePullSecrets?: string;
  secrets?: string;
}

interface Plan {
  pull?: ServiceAccountChange;
  secrets?: ReferenceListChange;
}

export class ServiceAccounts {
  /** Cached ServiceAccounts whose plan came out empty, and for which (owner, wants, policy). */
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

  /**
   * Merges the Secret into the namespace's targeted ServiceAccounts (and out
   * of the others); `want` overrides which Secret each one gets (per-ServiceAccount roles).
   */
  async sync(
    resource: ECRPullSecret,
    namespace: string,
    policy: DeletionPolicy,
    want?: (sa: string) => string | undefined,
  ): Promise<void> {
    const owner = resource.metadata?.name ?? "";
    for (const sa of [...this.cluster.serviceAccounts(namespace)]) {
      const name = sa.metadata?.name ?? "";
      const wants = want ? inFields(resource, want(name)) : wanted(resource, sa);
      await this.patch(sa, owner, wants, policy === "Delete");
    }
  }

  /** Applies the plan of both lists with optimistic concurrency, re-reading on conflict. */
  async patch(
    cached: ServiceAccountView,
    owner: string,
    want: Wanted,
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
        const plan = sa && this.plan(sa, owner, want, removeStale);
        if (!sa || !plan) return;
        try {
          const rv = sa.metadata?.resourceVersion;
          await this.cluster.patchServiceAccount(
            key,
            serviceAccountPatch(plan.pull, rv, plan.secrets),
          );
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      },
    );
  }

  /**
   * The plans of both lists, remembering per cached object which plans came
   * out empty: the caches replace an object whenever it changes, so a settled
   * ServiceAccount is not parsed again on every pass.
   */
  private plan(
    sa: ServiceAccountView,
    owner: string,
    want: Wanted,
    removeStale: boolean,
  ): Plan | undefined {
    const key = `${owner}/${want.imagePullSecrets ?? ""}/${want.secrets ?? ""}/${removeStale}`;
    if (this.settled.get(sa) === key) return undefined;
    const pull = planServiceAccount(sa, owner, want.imagePullSecrets, removeStale);
    const secrets = planServiceAccountSecrets(sa, owner, want.secrets, removeStale);
    if (!pull && !secrets) {
      this.settled.set(sa, key);
      return undefined;
    }
    return { ...(pull ? { pull } : {}), ...(secrets ? { secrets } : {}) };
  }
}

/** The Secret name the resource wants in each list of this ServiceAccount. */
function wanted(resource: ECRPullSecret, sa: ServiceAccountView): Wanted {
  if (!targetsServiceAccount(resource.spec.serviceAccounts, sa.metadata?.name ?? "")) return {};
  return inFields(resource, resource.spec.secretName);
}

/** `name` (none: undefined) in each list that spec.serviceAccountFields names. */
function inFields(resource: ECRPullSecret, name: string | undefined): Wanted {
  if (name === undefined) return {};
  const fields = resource.spec.serviceAccountFields ?? ["imagePullSecrets"];
  return {
    ...(fields.includes("imagePullSecrets") ? { imagePullSecrets: name } : {}),
    ...(fields.includes("secrets") ? { secrets: name } : {}),
  };
}
