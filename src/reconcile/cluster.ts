// The reconciler's narrow view of the cluster: what it reads (from the
// informer caches, never the API server, so a pass costs no requests) and the
// few writes it makes. KubeCluster is the real one; the reconcile's table
// test (reconciler.test.ts) runs the same code over a fake. Writes throw the
// client's ApiError, so isConflict / isNotFound work on both.
import type { ECRPullSecret, ECRPullSecretStatus } from "../api/index.js";
import { ECR_PULL_SECRETS } from "../api/index.js";
import {
  isNotFound,
  type KubeClient,
  SECRETS,
  SERVICE_ACCOUNTS,
  statusCode,
} from "../kube/client.js";
import type { Informer } from "../kube/informer.js";
import type { ObjectCache } from "../kube/namespaced-informers.js";
import { PODS, type Pod } from "../kube/pods.js";
import type { Cached, ObjectList, Secret } from "../kube/types.js";
import type { DesiredSecret, SecretView, ServiceAccountView } from "./desired.js";
import type { NamespaceView } from "./targets.js";

/** A namespaced object's address. */
export interface ObjectKey {
  namespace: string;
  name: string;
}

export interface Cluster {
  // --- Reads: the caches ---------------------------------------------------
  resource(name: string): Cached<ECRPullSecret> | undefined;
  namespaces(): Iterable<NamespaceView>;
  /** A managed Secret (the cache holds only Secrets carrying our label). */
  secret(key: ObjectKey): SecretView | undefined;
  /** Every managed Secret. */
  secrets(): readonly SecretView[];
  /** The ServiceAccounts of one namespace, or of all. */
  serviceAccounts(namespace?: string): Iterable<ServiceAccountView>;

  // --- Reads: the API server, after a conflict -------------------------------
  /** The Secret as the API server has it now; undefined when it does not exist. */
  readSecret(key: ObjectKey): Promise<SecretView | undefined>;
  readServiceAccount(key: ObjectKey): Promise<ServiceAccountView | undefined>;

  // --- Reads: the API server, at cleanup ---------------------------------------
  /**
   * Which Pods of a namespace that may still pull (not Succeeded or Failed)
   * name each Secret in spec.imagePullSecrets: Secret name → Pod names.
   * Undefined when the install may not list Pods (the CronJob mode). A list
   * may be reused for a few seconds (POD_LIST_REUSE_MS).
   */
  pullSecretUsers(namespace: string): Promise<Map<string, string[]> | undefined>;

  // --- Writes (each one's result enters the cache at once) --------------------
  createSecret(secret: DesiredSecret): Promise<void>;
  /** A merge patch; guarded when it carries a resourceVersion. */
  patchSecret(key: ObjectKey, patch: object): Promise<void>;
  /** Deletes only while the Secret still has this resourceVersion. */
  deleteSecret(key: ObjectKey, resourceVersion: string | undefined): Promise<void>;
  patchServiceAccount(key: ObjectKey, patch: object): Promise<void>;
  /** A merge patch of the resource's metadata; a resource already gone is not an error. */
  patchResourceMetadata(name: string, metadata: object): Promise<void>;
  /**
   * Writes the status subresource, only onto the resource as it was at
   * `resourceVersion`: a replica working from an older copy (a leader that
   * lost its Lease) gets 409 Conflict instead of overwriting a newer status.
   * A resource already gone is not an error.
   */
  patchStatus(
    name: string,
    status: ECRPullSecretStatus,
    resourceVersion: string | undefined,
  ): Promise<void>;
}

/** The caches the controller's informers fill. */
export interface Caches {
  resources: Informer<Cached<ECRPullSecret>>;
  namespaces: Informer<Cached<NamespaceView>>;
  /** Cluster-wide, or one informer per served namespace (namespaced RBAC). */
  secrets: ObjectCache<Cached<SecretView>>;
  serviceAccounts: ObjectCache<Cached<ServiceAccountView>>;
  /** The operator's token records, in its own namespace (token-records.ts); absent: none kept. */
  tokenRecords?: Informer<Cached<Secret>>;
}

/** The cluster through the Kubernetes client and the informer caches. */
/**
 * How long one namespace's Pod list answers pullSecretUsers: passes come with
 * every event, and a namespace keeping Secrets for its Pods is listed at most
 * this often, however many passes there are.
 */
export const POD_LIST_REUSE_MS = 5_000;

export class KubeCluster implements Cluster {
  private readonly podLists = new Map<string, { at: number; users: Map<string, string[]> }>();

  constructor(
    private readonly kube: KubeClient,
    private readonly caches: Caches,
  ) {}

  resource(name: string): Cached<ECRPullSecret> | undefined {
    return this.caches.resources.get(undefined, name);
  }

  namespaces(): Iterable<NamespaceView> {
    return this.caches.namespaces.values();
  }

  secret(key: ObjectKey): SecretView | undefined {
    return this.caches.secrets.get(key.namespace, key.name);
  }

  secrets(): readonly SecretView[] {
    return this.caches.secrets.list();
  }

  serviceAccounts(namespace?: string): Iterable<ServiceAccountView> {
    return namespace === undefined
      ? this.caches.serviceAccounts.list()
      : this.caches.serviceAccounts.valuesInNamespace(namespace);
  }

  async readSecret(key: ObjectKey): Promise<SecretView | undefined> {
    return await orUndefined(this.kube.get<Cached<SecretView>>(SECRETS, key));
  }

  async readServiceAccount(key: ObjectKey): Promise<ServiceAccountView | undefined> {
    return await orUndefined(this.kube.get<Cached<ServiceAccountView>>(SERVICE_ACCOUNTS, key));
  }

  async pullSecretUsers(namespace: string): Promise<Map<string, string[]> | undefined> {
    const now = Date.now();
    const recent = this.podLists.get(namespace);
    if (recent && now - recent.at < POD_LIST_REUSE_MS) return recent.users;
    const users = await this.listPullSecretUsers(namespace);
    if (this.podLists.size >= 10_000) this.podLists.clear();
    if (users) this.podLists.set(namespace, { at: now, users });
    return users;
  }

  private async listPullSecretUsers(namespace: string): Promise<Map<string, string[]> | undefined> {
    const users = new Map<string, string[]>();
    let continueToken: string | undefined;
    do {
      let page: ObjectList<Pod>;
      try {
        page = await this.kube.list<Pod>(PODS, {
          namespace,
          fieldSelector: "status.phase!=Succeeded,status.phase!=Failed",
          limit: 500,
          continueToken,
        });
      } catch (err) {
        if (statusCode(err) === 403) return undefined;
        throw err;
      }
      for (const pod of page.items) {
        for (const ref of pod.spec?.imagePullSecrets ?? []) {
          if (!ref.name) continue;
          const pods = users.get(ref.name) ?? [];
          pods.push(pod.metadata?.name ?? "");
          users.set(ref.name, pods);
        }
      }
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
    return users;
  }

  async createSecret(secret: DesiredSecret): Promise<void> {
    const body = { apiVersion: "v1", kind: "Secret", ...secret };
    this.caches.secrets.observe(await this.kube.create<Cached<SecretView>>(SECRETS, body));
  }

  async patchSecret(key: ObjectKey, patch: object): Promise<void> {
    this.caches.secrets.observe(await this.kube.patch<Cached<SecretView>>(SECRETS, key, patch));
  }

  async deleteSecret(key: ObjectKey, resourceVersion: string | undefined): Promise<void> {
    await this.kube.delete(SECRETS, key, { resourceVersion });
  }

  async patchServiceAccount(key: ObjectKey, patch: object): Promise<void> {
    const patched = await this.kube.patch<Cached<ServiceAccountView>>(SERVICE_ACCOUNTS, key, patch);
    this.caches.serviceAccounts.observe(patched);
  }

  async patchResourceMetadata(name: string, metadata: object): Promise<void> {
    const patched = await orUndefined(
      this.kube.patch<Cached<ECRPullSecret>>(ECR_PULL_SECRETS, { name }, { metadata }),
    );
    // The status write that follows is guarded by the new resourceVersion.
    if (patched) this.caches.resources.observe(patched);
  }

  async patchStatus(
    name: string,
    status: ECRPullSecretStatus,
    resourceVersion: string | undefined,
  ): Promise<void> {
    const body = statusPatchBody(status);
    const patched = await orUndefined(
      resourceVersion
        ? this.kube.patchStatus<Cached<ECRPullSecret>>(
            ECR_PULL_SECRETS,
            { name },
            resourceVersion,
            body,
          )
        : this.kube.patch<Cached<ECRPullSecret>>(
            ECR_PULL_SECRETS,
            { name },
            { status: body },
            "status",
          ),
    );
    if (patched) this.caches.resources.observe(patched);
  }
}

/**
 * The merge-patch body of an ECRPullSecret's or a claim's status (both carry
 * ECRPullSecretStatus). A merge patch keeps fields it does not name, so lists
 * that emptied are removed explicitly (null): a Ready resource must not keep
 * showing failures that are over. Each caller names its resource type in its
 * own `kube.patch` call, where the chart's RBAC test finds it.
 */
export function statusPatchBody(status: ECRPullSecretStatus): object {
  return {
    ...status,
    failures: status.failures ?? null,
    keptSecrets: status.keptSecrets ?? null,
  };
}

/** The answer, or undefined for 404 Not Found. */
export async function orUndefined<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
