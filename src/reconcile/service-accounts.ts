// Merging the Secret into ServiceAccounts' imagePullSecrets, and on request
// into their `secrets` (Tekton reads registry credentials there), and taking
// it out again, without losing what anyone else put there: one patch per
// ServiceAccount guarded by resourceVersion, redone on top of the other
// writer's change on a conflict.
import type { DeletionPolicy, ECRPullSecret } from "../api/index.js";
import { ANNOTATION_ADDED_PULL_SECRETS, FIELD_MANAGER } from "../api/metadata.js";
import { operatorError } from "../errors.js";
import { isNotFound } from "../kube/client.js";
import { retryOnConflict } from "../kube/retry.js";
import type { Cached } from "../kube/types.js";
import type { RevertedEntry } from "../observability/events.js";
import type { Cluster } from "./cluster.js";
import {
  ownerLabelValue,
  parseAddedRefs,
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

/** Removals of our entry within this window count towards backing off. */
export const REVERT_WINDOW_MS = 10 * 60_000;
/** From this many removals within the window on, re-adding backs off. */
export const REVERT_THRESHOLD = 5;
export const REVERT_BACKOFF_BASE_MS = 5_000;
export const REVERT_BACKOFF_MAX_MS = 5 * 60_000;

/** What a neighbour's removal of our entry looked like, for the Event and the metric: whose entry (`owner`) and the rest. */
export interface Revert extends RevertedEntry {
  owner: string;
}

interface RevertHistory {
  times: number[];
  /** The resourceVersion of the removal counted last: each removal counts once. */
  seenAt?: string;
  notBefore: number;
  manager: string;
}

export class ServiceAccounts {
  /** Cached ServiceAccounts whose plan came out empty, and for which (owner, wants, policy). */
  private readonly settled = new WeakMap<object, string>();
  /**
   * Per cached resource (replaced whenever it changes) and policy: what a
   * targeted and an untargeted ServiceAccount want, and their settled keys,
   * so that judging every ServiceAccount of every namespace allocates nothing.
   */
  private readonly wants = new WeakMap<
    ECRPullSecret,
    { removeStale: boolean; targeted: KeyedWant; other: KeyedWant }
  >();
  /** Per (owner, ServiceAccount): recent removals of our entry by someone else. */
  private readonly reverts = new Map<string, RevertHistory>();

  constructor(
    private readonly cluster: Cluster,
    private readonly now: () => number = Date.now,
    /** Told of each removal of our entry by someone else. */
    private readonly onRevert?: (revert: Revert) => void,
  ) {}

  /** How long until the first ServiceAccount held back for this owner may be re-added; undefined: none is. */
  nextReAddInMs(owner: string): number | undefined {
    const now = this.now();
    let soonest: number | undefined;
    for (const [key, h] of this.reverts) {
      if (!key.startsWith(`${owner}|`) || h.notBefore <= now) continue;
      soonest = Math.min(soonest ?? Number.POSITIVE_INFINITY, h.notBefore - now);
    }
    return soonest;
  }

  /** Forgets an owner's revert histories (the resource is gone). */
  forget(owner: string): void {
    for (const key of [...this.reverts.keys()])
      if (key.startsWith(`${owner}|`)) this.reverts.delete(key);
  }

  /**
   * A neighbour (a GitOps tool's self-heal) removed the entry we added: count
   * it once, and from REVERT_THRESHOLD removals within REVERT_WINDOW_MS on,
   * hold the re-add back, doubling each time up to REVERT_BACKOFF_MAX_MS.
   * Throws ServiceAccountReverted while held back.
   */
  private async holdBackReAdd(sa: ServiceAccountView, owner: string, want: string): Promise<void> {
    const namespace = sa.metadata.namespace;
    const name = sa.metadata.name;
    const key = `${owner}|${namespace}/${name}`;
    const now = this.now();
    const history = this.reverts.get(key) ?? { times: [], notBefore: 0, manager: "unknown" };
    history.times = history.times.filter((t) => now - t < REVERT_WINDOW_MS);
    if (history.seenAt !== sa.metadata.resourceVersion) {
      history.seenAt = sa.metadata.resourceVersion;
      history.times.push(now);
      history.manager = await this.remover(namespace, name);
      const over = history.times.length - REVERT_THRESHOLD;
      history.notBefore =
        over < 0 ? 0 : now + Math.min(REVERT_BACKOFF_BASE_MS * 2 ** over, REVERT_BACKOFF_MAX_MS);
      this.reverts.set(key, history);
      this.onRevert?.({
        owner,
        namespace,
        name,
        secret: want,
        manager: history.manager,
        removals: history.times.length,
        notBefore: history.notBefore,
      });
    }
    if (now < history.notBefore) {
      throw operatorError("ServiceAccountReverted", "backingOff", {
        namespace,
        name,
        secret: want,
        manager: history.manager,
        removals: history.times.length,
        until: new Date(history.notBefore).toISOString(),
      });
    }
  }

  /**
   * Who removed it: the field manager that now owns imagePullSecrets, else
   * the one that wrote the ServiceAccount last (never ourselves).
   */
  private async remover(namespace: string, name: string): Promise<string> {
    const full = await this.cluster.readServiceAccount({ namespace, name });
    const entries = (full?.metadata?.managedFields ?? []) as ManagedFieldsEntry[];
    const others = entries.filter((m) => m.manager && m.manager !== FIELD_MANAGER);
    const owning = others.find((m) => m.fieldsV1?.["f:imagePullSecrets"] !== undefined);
    if (owning?.manager) return owning.manager;
    const latest = [...others].sort((a, b) => (b.time ?? "").localeCompare(a.time ?? ""))[0];
    return latest?.manager ?? "unknown";
  }

  /** Whether every ServiceAccount of the namespace already is as the resource wants. */
  inSync(resource: Cached<ECRPullSecret>, namespace: string, policy: DeletionPolicy): boolean {
    const owner = resource.metadata.name;
    const removeStale = policy === "Delete";
    let wants = this.wants.get(resource);
    if (wants?.removeStale !== removeStale) {
      const keyed = (want: Wanted): KeyedWant => ({
        want,
        key: settledKey(owner, want, removeStale),
      });
      wants = {
        removeStale,
        targeted: keyed(inFields(resource, resource.spec.secretName)),
        other: keyed({}),
      };
      this.wants.set(resource, wants);
    }
    for (const sa of this.cluster.serviceAccounts(namespace)) {
      const targeted = targetsServiceAccount(resource.spec.serviceAccounts, sa.metadata.name);
      const { want, key } = targeted ? wants.targeted : wants.other;
      if (this.plan(sa, owner, want, removeStale, key)) return false;
    }
    return true;
  }

  /**
   * Merges the Secret into the namespace's targeted ServiceAccounts (and out
   * of the others); `want` overrides which Secret each one gets (per-ServiceAccount roles).
   */
  async sync(
    resource: Cached<ECRPullSecret>,
    namespace: string,
    policy: DeletionPolicy,
    want?: (sa: string) => string | undefined,
  ): Promise<void> {
    const owner = resource.metadata.name;
    for (const sa of [...this.cluster.serviceAccounts(namespace)]) {
      const name = sa.metadata.name;
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
    const key = { namespace: cached.metadata.namespace, name: cached.metadata.name };
    let sa: ServiceAccountView | undefined = cached;
    await retryOnConflict(
      {
        attempts: 8,
        exhausted: () => operatorError("ServiceAccountConflict", "keptChanging", key),
      },
      async (attempt) => {
        // Someone else wrote it meanwhile: their change stays, ours is redone
        // on top. A list the cache did not keep whole is read whole first.
        if (attempt > 0 || cached.truncated) sa = await this.cluster.readServiceAccount(key);
        const plan = sa && this.plan(sa, owner, want, removeStale);
        if (!sa || !plan) return;
        const pull = want.imagePullSecrets;
        if (pull && removedByOthers(sa, owner, pull)) await this.holdBackReAdd(sa, owner, pull);
        try {
          const rv = sa.metadata.resourceVersion;
          await this.cluster.patchServiceAccount(
            key,
            serviceAccountPatch(plan.pull, rv, plan.secrets, !sa.metadata.managedFields?.length),
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
    key = settledKey(owner, want, removeStale),
  ): Plan | undefined {
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

interface KeyedWant {
  want: Wanted;
  key: string;
}

/** What a settled ServiceAccount was settled for: owner, wants and policy. */
function settledKey(owner: string, want: Wanted, removeStale: boolean): string {
  return `${owner}/${want.imagePullSecrets ?? ""}/${want.secrets ?? ""}/${removeStale}`;
}

interface ManagedFieldsEntry {
  manager?: string;
  time?: string;
  fieldsV1?: Record<string, unknown>;
}

/** Our entry is gone although our annotation says we added it: someone removed it. */
function removedByOthers(sa: ServiceAccountView, owner: string, want: string): boolean {
  const listed = (sa.imagePullSecrets ?? []).some((r) => r.name === want);
  const ours = parseAddedRefs(sa.metadata.annotations?.[ANNOTATION_ADDED_PULL_SECRETS]).some(
    (r) => r.owner === ownerLabelValue(owner) && r.name === want,
  );
  return ours && !listed;
}

/** The Secret name the resource wants in each list of this ServiceAccount. */
function wanted(resource: ECRPullSecret, sa: ServiceAccountView): Wanted {
  if (!targetsServiceAccount(resource.spec.serviceAccounts, sa.metadata.name)) return {};
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
