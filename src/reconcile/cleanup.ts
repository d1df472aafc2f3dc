// What a resource made and no longer wants: its Secrets outside the kept
// namespaces (or of an old name), and its ServiceAccount references there.

import type { DeletionPolicy } from "../api/index.js";
import { ANNOTATION_ADDED_PULL_SECRETS } from "../api/metadata.js";
import type { Cluster } from "./cluster.js";
import { isOwnedBy, ownerLabelValue, parseAddedRefs } from "./desired.js";
import { pool } from "./pool.js";
import { deleteOwnedSecret } from "./secrets.js";
import type { ServiceAccounts } from "./service-accounts.js";
import { namespaceInfos } from "./targets.js";

export interface CleanupScope {
  owner: string;
  policy: DeletionPolicy;
  /** Namespaces whose Secret (of `keepSecretName`) stays: the current targets. */
  keepNamespaces: ReadonlySet<string>;
  /** The Secret name in use; undefined: none (the resource is being deleted). */
  keepSecretName: string | undefined;
  concurrency: number;
}

/**
 * Removes what the resource made and no longer wants. Under Retain nothing
 * is written at all: the Secrets, the references and the record of which
 * references are ours stay as they are. Terminating namespaces are left to
 * the namespace controller.
 */
export async function cleanup(
  cluster: Cluster,
  serviceAccounts: ServiceAccounts,
  scope: CleanupScope,
): Promise<void> {
  if (scope.policy !== "Delete") return;
  const { owner, keepNamespaces, keepSecretName } = scope;
  const ownerKey = ownerLabelValue(owner);
  const terminating = new Set(
    namespaceInfos(cluster.namespaces())
      .filter((ns) => ns.terminating)
      .map((ns) => ns.name),
  );
  const skip = (namespace: string) => keepNamespaces.has(namespace) || terminating.has(namespace);
  // References first, so no Pod is admitted with a reference to a Secret we
  // are about to delete. In a kept namespace the ServiceAccounts are handled
  // by the pass's own writes.
  const ours = `${ownerKey}/`;
  const claimed = [...cluster.serviceAccounts()].filter((sa) => {
    const annotation = sa.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS];
    // A cheap test before parsing: most ServiceAccounts name no ref of ours.
    if (!annotation?.includes(ours) || skip(sa.metadata?.namespace ?? "")) return false;
    return parseAddedRefs(annotation).some((r) => r.owner === ownerKey);
  });
  await pool(claimed, scope.concurrency, (sa) => serviceAccounts.patch(sa, owner, undefined, true));
  const stale = cluster.secrets().filter((s) => {
    const namespace = s.metadata?.namespace ?? "";
    const kept = keepNamespaces.has(namespace) && s.metadata?.name === keepSecretName;
    return isOwnedBy(s, owner) && !terminating.has(namespace) && !kept;
  });
  await pool(stale, scope.concurrency, (s) => deleteOwnedSecret(cluster, s, owner));
}
