// What cleanup may remove: for a live pass, all but what the pass keeps (its
// targets, its outputs, its roles' Secrets, and a Secret that Pods still name,
// refreshed while it is kept); for a deleted resource, everything (under its
// deletionPolicy). cleanup.ts does the removing.
import type { DeletionPolicy, ECRPullSecret } from "../api/index.js";
import type { Cached } from "../kube/types.js";
import type { Notice } from "../observability/events.js";
import type { CleanupScope } from "./cleanup.js";
import type { Cluster } from "./cluster.js";
import type { DesiredSecret } from "./desired.js";
import { type PassSecrets, specFieldOf } from "./outputs.js";
import type { RolePass } from "./role-secrets.js";
import { syncSecret } from "./secrets.js";

/** What every cleanup scope is made of. */
interface ScopeOf {
  resource: Cached<ECRPullSecret>;
  policy: DeletionPolicy;
  /** Tells the resource's Events what cleanup did not do, or did instead of deleting. */
  notify: (notice: Notice) => void;
  concurrency: number;
}

/** The scope of a deleted resource's cleanup: nothing is kept. */
export function finalizeCleanupScope(of: ScopeOf): CleanupScope {
  return {
    owner: of.resource.metadata.name,
    policy: of.policy,
    keepNamespaces: new Set(),
    notice: (type, reason, message) => of.notify({ type, reason, message }),
    concurrency: of.concurrency,
  };
}

/** What a live pass hands its cleanup. */
export interface PassKeeps extends ScopeOf {
  cluster: Cluster;
  /** The target namespaces this install may serve. */
  wanted: readonly string[];
  outputs: PassSecrets | undefined;
  perRole: RolePass | undefined;
}

/**
 * The scope of a live pass's cleanup: the pass's targets, outputs and role
 * Secrets stay; a Secret a Pod still names stays too, refreshed with this
 * pass's content.
 */
export function passCleanupScope(pass: PassKeeps): CleanupScope {
  const { outputs, perRole, resource } = pass;
  const keep = new Set(pass.wanted);
  return {
    ...finalizeCleanupScope(pass),
    keepNamespaces: keep,
    ...(outputs ? { keepSecret: (ns: string, n: string) => outputs.keeps(ns, n, keep) } : {}),
    ...(perRole
      ? {
          keepAlso: (ns: string, secret: string) => perRole.secrets.get(ns)?.has(secret) === true,
        }
      : {}),
    inUse: {
      desired: (ns: string, n: string) => keptSecretContent(outputs, perRole, ns, n),
      sync: (desired: DesiredSecret) =>
        syncSecret(pass.cluster, resource, desired, specFieldOf(outputs, desired)),
    },
  };
}

/**
 * What a Secret cleanup keeps for its Pods holds now: a role's Secret of this
 * pass (its name names the role) built for that namespace, else the pass's
 * pull Secret under the kept name (an old secretName); cleanup writes it only
 * when the kept Secret held the same sources' tokens.
 */
function keptSecretContent(
  outputs: PassSecrets | undefined,
  perRole: RolePass | undefined,
  namespace: string,
  name: string,
): DesiredSecret | undefined {
  for (const secrets of perRole?.secrets.values() ?? []) {
    const role = secrets.get(name);
    if (role) return role.build(namespace);
  }
  const pull = outputs?.inNamespace(namespace)[0];
  return pull && { ...pull, metadata: { ...pull.metadata, name } };
}
