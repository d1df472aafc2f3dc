// The writes step of a pass: each target namespace's Secrets (pull,
// config.json, the roles') and ServiceAccounts brought to the desired state,
// then Argo CD's Secrets. Most namespaces of most passes already are as
// desired (a pass runs for every namespace event), so the ones that are not
// are found on the caches alone, and requests, promises and garbage are spent
// only on those.
import type { DeletionPolicy, ECRPullSecret, NamespaceFailure } from "../api/index.js";
import type { Cached } from "../kube/types.js";
import type { Cluster } from "./cluster.js";
import { type DesiredSecret, isOwnedBy, secretDiffers } from "./desired.js";
import { type PassSecrets, specFieldOf } from "./outputs.js";
import { pool } from "./pool.js";
import type { RolePass } from "./role-secrets.js";
import { syncSecret } from "./secrets.js";
import type { ServiceAccounts } from "./service-accounts.js";

/** What the writes step works on. */
export interface WriteScope {
  cluster: Cluster;
  serviceAccounts: ServiceAccounts;
  resource: Cached<ECRPullSecret>;
  policy: DeletionPolicy;
  /** The resource's own Secrets; absent when it has none (roles with `unannotated: None`). */
  outputs: PassSecrets | undefined;
  /** The target namespaces this install may serve. */
  wanted: readonly string[];
  /** The per-ServiceAccount roles' Secrets and references (spec.serviceAccountRoles). */
  perRole: RolePass | undefined;
  /** Namespaces written at once. */
  concurrency: number;
  /** A namespace's failed write as status reports it (and its Event, if any). */
  failure: (namespace: string, err: unknown) => NamespaceFailure;
}

/** How many Secrets the step wrote, and the namespaces it failed in (one entry each). */
export interface Written {
  wrote: number;
  failures: NamespaceFailure[];
}

/**
 * Brings each wanted namespace's Secrets and ServiceAccounts to the desired
 * state, then the Argo CD Secrets. A failure in one namespace does not stop
 * the others. Per-ServiceAccount roles go through the writers for every
 * namespace, which write nothing when nothing differs.
 */
export async function writeTargets(scope: WriteScope): Promise<Written> {
  const { cluster, resource, policy, outputs, perRole } = scope;
  const outOfSync =
    perRole || !outputs
      ? scope.wanted
      : scope.wanted.filter((ns) => !namespaceInSync(scope, outputs, ns));
  let wrote = 0;
  const failures: NamespaceFailure[] = [];
  await pool(outOfSync, scope.concurrency, async (namespace) => {
    try {
      for (const desired of outputs?.inNamespace(namespace) ?? []) {
        if (await syncSecret(cluster, resource, desired, specFieldOf(outputs, desired))) wrote++;
      }
      for (const secret of perRole?.secrets.get(namespace)?.values() ?? []) {
        const built = secret.build(namespace);
        if (await syncSecret(cluster, resource, built, specFieldOf(outputs, built))) wrote++;
      }
      const want = perRole?.want.get(namespace);
      await scope.serviceAccounts.sync(
        resource,
        namespace,
        policy,
        want ? (sa) => want.get(sa) : undefined,
      );
    } catch (err) {
      failures.push(scope.failure(namespace, err));
    }
  });
  for (const desired of outputs?.elsewhere ?? []) {
    const namespace = desired.metadata.namespace;
    if (secretInSync(cluster, resource, desired, namespace)) continue;
    try {
      if (await syncSecret(cluster, resource, desired, specFieldOf(outputs, desired))) wrote++;
    } catch (err) {
      if (!failures.some((f) => f.namespace === namespace)) {
        failures.push(scope.failure(namespace, err));
      }
    }
  }
  return { wrote, failures };
}

/** Whether a namespace's Secrets and ServiceAccounts already are as desired, on the caches alone. */
function namespaceInSync(scope: WriteScope, outputs: PassSecrets, namespace: string): boolean {
  for (const desired of outputs.perNamespace) {
    if (!secretInSync(scope.cluster, scope.resource, desired, namespace)) return false;
  }
  return scope.serviceAccounts.inSync(scope.resource, namespace, scope.policy);
}

/** Whether a Secret is ours and as desired in `namespace`, judged on the caches. */
function secretInSync(
  cluster: Cluster,
  resource: Cached<ECRPullSecret>,
  desired: DesiredSecret,
  namespace: string,
): boolean {
  const observed = cluster.secret({ namespace, name: desired.metadata.name });
  const owner = resource.metadata.name;
  return !!observed && isOwnedBy(observed, owner) && !secretDiffers(desired, observed);
}
