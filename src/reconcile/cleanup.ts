// What a resource made and no longer wants: its Secrets that are no output of
// the pass (a namespace left, a name or format changed, the resource went),
// and its ServiceAccount references outside the kept namespaces.

import type { DeletionPolicy } from "../api/index.js";
import { ANNOTATION_ADDED_PULL_SECRETS, ANNOTATION_ADDED_SECRETS } from "../api/metadata.js";
import type { Cluster } from "./cluster.js";
import { isOwnedBy, ownerLabelValue, parseAddedRefs } from "./desired.js";
import { pool } from "./pool.js";
import { deleteOwnedSecret } from "./secrets.js";
import type { ServiceAccounts } from "./service-accounts.js";
import { namespaceInfos } from "./targets.js";

export interface CleanupScope {
  owner: string;
  policy: DeletionPolicy;
  /** Namespaces whose ServiceAccounts the pass itself handles: the current targets. */
  keepNamespaces: ReadonlySet<string>;
  /**
   * The Secrets that stay, as `namespace/name`: every output of the pass
   * (pull, config.json and Argo CD Secrets); empty when the resource is deleted.
   */
  keepSecrets: ReadonlySet<string>;
  /** Other Secrets still in use in a kept namespace (per-ServiceAccount roles). */
  keepAlso?: (namespace: string, name: string) => boolean;
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
  const { owner, keepNamespaces, keepSecrets } = scope;
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
  const claims = (annotation: string | undefined) =>
    // A cheap test before parsing: most ServiceAccounts name no ref of ours.
    annotation?.includes(ours) === true &&
    parseAddedRefs(annotation).some((r) => r.owner === ownerKey);
  const claimed = [...cluster.serviceAccounts()].filter((sa) => {
    if (skip(sa.metadata?.namespace ?? "")) return false;
    const annotations = sa.metadata?.annotations;
    return (
      claims(annotations?.[ANNOTATION_ADDED_PULL_SECRETS]) ||
      claims(annotations?.[ANNOTATION_ADDED_SECRETS])
    );
  });
  await pool(claimed, scope.concurrency, (sa) => serviceAccounts.patch(sa, owner, {}, true));
  const stale = cluster.secrets().filter((s) => {
    const namespace = s.metadata?.namespace ?? "";
    const name = s.metadata?.name ?? "";
    const kept =
      keepSecrets.has(`${namespace}/${name}`) ||
      (keepNamespaces.has(namespace) && scope.keepAlso?.(namespace, name) === true);
    return isOwnedBy(s, owner) && !terminating.has(namespace) && !kept;
  });
  await pool(stale, scope.concurrency, (s) => deleteOwnedSecret(cluster, s, owner));
}
