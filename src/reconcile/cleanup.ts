// What a resource made and no longer wants: its Secrets that are no output of
// the pass (a namespace left, a name or format changed, the resource went),
// and its ServiceAccount references outside the kept namespaces.

import type { DeletionPolicy } from "../api/index.js";
import { ANNOTATION_ADDED_PULL_SECRETS, ANNOTATION_ADDED_SECRETS } from "../api/metadata.js";
import type { Cluster } from "./cluster.js";
import {
  isOwnedBy,
  ownerLabelValue,
  parseAddedRefs,
  type SecretView,
  type ServiceAccountView,
} from "./desired.js";
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
   * Whether a Secret stays: an output of the pass (pull, config.json and
   * Argo CD Secrets); absent when the resource is deleted (none stays).
   */
  keepSecret?: (namespace: string, name: string) => boolean;
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
  const { owner, keepNamespaces } = scope;
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
  // Plain loops over the caches: this runs on every pass, over every
  // ServiceAccount and managed Secret, and most passes find nothing.
  const claimed: ServiceAccountView[] = [];
  for (const sa of cluster.serviceAccounts()) {
    const annotations = sa.metadata?.annotations;
    if (!annotations || skip(sa.metadata?.namespace ?? "")) continue;
    if (
      claims(annotations[ANNOTATION_ADDED_PULL_SECRETS]) ||
      claims(annotations[ANNOTATION_ADDED_SECRETS])
    ) {
      claimed.push(sa);
    }
  }
  await pool(claimed, scope.concurrency, (sa) => serviceAccounts.patch(sa, owner, {}, true));
  const stale: SecretView[] = [];
  for (const s of cluster.secrets()) {
    if (!isOwnedBy(s, owner)) continue;
    const namespace = s.metadata?.namespace ?? "";
    const name = s.metadata?.name ?? "";
    const kept =
      scope.keepSecret?.(namespace, name) === true ||
      (keepNamespaces.has(namespace) && scope.keepAlso?.(namespace, name) === true);
    if (!kept && !terminating.has(namespace)) stale.push(s);
  }
  await pool(stale, scope.concurrency, (s) => deleteOwnedSecret(cluster, s, owner));
}
