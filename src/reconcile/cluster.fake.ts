// An in-memory Cluster for the reconcile's table test: the caches and the
// API server in one, with the API server's rules that matter here (a create
// of an existing name is 409 AlreadyExists, a write guarded by an old
// resourceVersion is 409 Conflict, 404 for what is not there), a record of
// every write, and conflicts injected on demand. Not shipped code's
// dependency: only tests import it (tsconfig.build.json leaves *.fake.ts out).
import type { ECRPullSecret, ECRPullSecretStatus } from "../api/index.js";
import { MANAGED_SELECTOR } from "../api/metadata.js";
import { ApiError } from "../kube/client.js";
import type { Cached } from "../kube/types.js";
import type { Cluster, ObjectKey } from "./cluster.js";
import type { DesiredSecret, SecretView, ServiceAccountView } from "./desired.js";
import type { NamespaceView } from "./targets.js";

type Write =
  | "create secret"
  | "patch secret"
  | "delete secret"
  | "patch serviceaccount"
  | "patch metadata"
  | "patch status";

const [managedKey, managedValue] = MANAGED_SELECTOR.split("=") as [string, string];
const keyOf = (k: ObjectKey) => `${k.namespace}/${k.name}`;
const clone = <T>(o: T): T => structuredClone(o);

export class FakeCluster implements Cluster {
  readonly resourcesByName = new Map<string, Cached<ECRPullSecret>>();
  readonly namespaceList: NamespaceView[] = [];
  /** Every Secret on the "server"; the cache shows only the managed ones. */
  readonly secretsByKey = new Map<string, SecretView>();
  readonly serviceAccountsByKey = new Map<string, ServiceAccountView>();
  /** Every write, as "verb kind ns/name", in order. */
  readonly writes: string[] = [];
  /**
   * Writes that fail with 409 Conflict the next `times` times, keyed as in
   * `writes` ("patch serviceaccount ns/name"); `meanwhile` is the other
   * writer's change that made them lose.
   */
  readonly conflicts = new Map<string, { times: number; meanwhile?: () => void }>();
  /** Pods that may still pull, per namespace: their names and the Secrets they name. */
  readonly podsByNamespace = new Map<string, Array<{ name: string; imagePullSecrets: string[] }>>();
  private version = 100;

  // --- Building the world --------------------------------------------------

  addResource(resource: ECRPullSecret): void {
    const name = resource.metadata?.name ?? "";
    this.resourcesByName.set(name, {
      ...clone(resource),
      metadata: { ...resource.metadata, name, resourceVersion: this.rv() },
    });
  }

  addNamespace(name: string, labels?: Record<string, string>): void {
    this.namespaceList.push({ metadata: { name, ...(labels ? { labels } : {}) } });
  }

  addSecret(secret: SecretView): void {
    const s = clone(secret);
    s.metadata = { ...s.metadata, resourceVersion: this.rv() };
    this.secretsByKey.set(keyOf(this.key(s.metadata)), s);
  }

  addServiceAccount(namespace: string, name: string, imagePullSecrets: string[] = []): void {
    this.serviceAccountsByKey.set(`${namespace}/${name}`, {
      metadata: { namespace, name, resourceVersion: this.rv() },
      imagePullSecrets: imagePullSecrets.map((n) => ({ name: n })),
    });
  }

  /** Another writer changes a ServiceAccount behind the caches' back (a new resourceVersion). */
  editServiceAccount(key: ObjectKey, edit: (sa: ServiceAccountView) => void): void {
    const sa = clone(this.serviceAccountsByKey.get(keyOf(key)));
    if (!sa) throw new Error(`no ServiceAccount ${keyOf(key)}`);
    edit(sa);
    sa.metadata = { ...sa.metadata, resourceVersion: this.rv() };
    this.serviceAccountsByKey.set(keyOf(key), sa);
  }

  pullSecretsOf(namespace: string, name: string): string[] {
    const sa = this.serviceAccountsByKey.get(`${namespace}/${name}`);
    return (sa?.imagePullSecrets ?? []).map((r) => r.name ?? "");
  }

  // --- Cluster: reads --------------------------------------------------------

  resource(name: string): Cached<ECRPullSecret> | undefined {
    return this.resourcesByName.get(name);
  }

  namespaces(): Iterable<NamespaceView> {
    return this.namespaceList;
  }

  secret(key: ObjectKey): SecretView | undefined {
    const s = this.secretsByKey.get(keyOf(key));
    return s && managed(s) ? s : undefined;
  }

  secrets(): readonly SecretView[] {
    return [...this.secretsByKey.values()].filter(managed);
  }

  serviceAccounts(namespace?: string): Iterable<ServiceAccountView> {
    return [...this.serviceAccountsByKey.values()].filter(
      (sa) => namespace === undefined || sa.metadata?.namespace === namespace,
    );
  }

  async readSecret(key: ObjectKey): Promise<SecretView | undefined> {
    return clone(this.secretsByKey.get(keyOf(key)));
  }

  async readServiceAccount(key: ObjectKey): Promise<ServiceAccountView | undefined> {
    return clone(this.serviceAccountsByKey.get(keyOf(key)));
  }

  async pullSecretUsers(namespace: string): Promise<Map<string, string[]> | undefined> {
    const users = new Map<string, string[]>();
    for (const pod of this.podsByNamespace.get(namespace) ?? []) {
      for (const secret of pod.imagePullSecrets)
        users.set(secret, [...(users.get(secret) ?? []), pod.name]);
    }
    return users;
  }

  // --- Cluster: writes -------------------------------------------------------

  async createSecret(secret: DesiredSecret): Promise<void> {
    const key = this.key(secret.metadata);
    this.write("create secret", key);
    if (this.secretsByKey.has(keyOf(key)))
      throw new ApiError(409, "already exists", "AlreadyExists");
    this.addSecret(secret);
  }

  async patchSecret(key: ObjectKey, patch: object): Promise<void> {
    this.write("patch secret", key);
    const s = this.existing(this.secretsByKey, key, patch);
    const p = patch as {
      metadata?: {
        labels?: Record<string, string | null>;
        annotations?: Record<string, string | null>;
      };
      data?: Record<string, string>;
    };
    // A merge patch: null removes a key.
    const merge = (a: Record<string, string> | undefined, b?: Record<string, string | null>) => {
      const out: Record<string, string> = { ...a };
      for (const [k, v] of Object.entries(b ?? {})) {
        if (v === null) delete out[k];
        else out[k] = v;
      }
      return out;
    };
    const next: SecretView = {
      ...s,
      metadata: {
        ...s.metadata,
        labels: merge(s.metadata?.labels, p.metadata?.labels),
        annotations: merge(s.metadata?.annotations, p.metadata?.annotations),
        resourceVersion: this.rv(),
      },
      data: { ...s.data, ...p.data },
    };
    this.secretsByKey.set(keyOf(key), next);
  }

  async deleteSecret(key: ObjectKey, resourceVersion: string | undefined): Promise<void> {
    this.write("delete secret", key);
    this.existing(this.secretsByKey, key, { metadata: { resourceVersion } });
    this.secretsByKey.delete(keyOf(key));
  }

  async patchServiceAccount(key: ObjectKey, patch: object): Promise<void> {
    this.write("patch serviceaccount", key);
    const sa = this.existing(this.serviceAccountsByKey, key, patch);
    const p = patch as {
      metadata: { annotations: Record<string, string | null> };
      imagePullSecrets?: Array<{ name: string }>;
      secrets?: ServiceAccountView["secrets"];
    };
    const annotations = { ...sa.metadata?.annotations, ...p.metadata.annotations };
    for (const [k, v] of Object.entries(annotations)) if (v === null) delete annotations[k];
    // A merge patch: a list it names is replaced whole, one it leaves out stays.
    this.serviceAccountsByKey.set(keyOf(key), {
      ...sa,
      metadata: {
        ...sa.metadata,
        annotations: annotations as Record<string, string>,
        resourceVersion: this.rv(),
      },
      ...(p.imagePullSecrets ? { imagePullSecrets: p.imagePullSecrets } : {}),
      ...(p.secrets ? { secrets: p.secrets } : {}),
    });
  }

  async patchResourceMetadata(name: string, metadata: object): Promise<void> {
    this.write("patch metadata", { namespace: "", name });
    const r = this.resourcesByName.get(name);
    if (!r) return;
    const { resourceVersion, ...rest } = metadata as { resourceVersion?: string };
    if (resourceVersion && resourceVersion !== r.metadata?.resourceVersion)
      throw new ApiError(409, "conflict", "Conflict");
    this.resourcesByName.set(name, {
      ...r,
      metadata: { ...r.metadata, ...rest, resourceVersion: this.rv() },
    });
  }

  async patchStatus(
    name: string,
    status: ECRPullSecretStatus,
    resourceVersion: string | undefined,
  ): Promise<void> {
    this.write("patch status", { namespace: "", name });
    const r = this.resourcesByName.get(name);
    if (!r) return;
    if (resourceVersion && resourceVersion !== r.metadata?.resourceVersion)
      throw new ApiError(409, "conflict", "Conflict");
    this.resourcesByName.set(name, {
      ...r,
      metadata: { ...r.metadata, resourceVersion: this.rv() },
      status: clone(status),
    });
  }

  // --- The API server's rules ------------------------------------------------

  private rv(): string {
    return String(++this.version);
  }

  private key(meta: { namespace?: string; name?: string } | undefined): ObjectKey {
    return { namespace: meta?.namespace ?? "", name: meta?.name ?? "" };
  }

  private write(verb: Write, key: ObjectKey): void {
    const what = `${verb} ${key.namespace ? keyOf(key) : key.name}`;
    this.writes.push(what);
    const conflict = this.conflicts.get(what);
    if (conflict && conflict.times > 0) {
      conflict.times--;
      conflict.meanwhile?.();
      throw new ApiError(409, "the object has been modified", "Conflict");
    }
  }

  /** The stored object, or 404; 409 when the patch is guarded by another resourceVersion. */
  private existing<T extends { metadata?: { resourceVersion?: string } }>(
    store: Map<string, T>,
    key: ObjectKey,
    patch: object,
  ): T {
    const obj = store.get(keyOf(key));
    if (!obj) throw new ApiError(404, "not found", "NotFound");
    const rv = (patch as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
    if (rv && rv !== obj.metadata?.resourceVersion) throw new ApiError(409, "conflict", "Conflict");
    return obj;
  }
}

function managed(s: SecretView): boolean {
  return s.metadata?.labels?.[managedKey] === managedValue;
}
