// What a resource made and no longer wants: its Secrets that are no output of
// the pass (a namespace left, a name or format changed, the resource went),
// and its ServiceAccount references outside the kept namespaces. Only what it
// wrote where it wrote it: a copy of its Secret elsewhere (labels can be
// copied; the marks of adoption.ts say where it wrote) is left alone, an
// adopted Secret is released rather than deleted, and a Secret that a Pod
// still names is kept, and refreshed, until none does.

import { Reason } from "../api/conditions.js";
import type { DeletionPolicy, KeptSecret } from "../api/index.js";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_ADDED_SECRETS,
  ANNOTATION_ADOPTED,
  ANNOTATION_TOKEN_SOURCES,
  ANNOTATION_WRITTEN_IN,
} from "../api/metadata.js";
import { originOf } from "./adoption.js";
import type { Cluster } from "./cluster.js";
import {
  type DesiredSecret,
  isOwnedBy,
  ownerLabelValue,
  parseAddedRefs,
  type SecretView,
  type ServiceAccountView,
} from "./desired.js";
import { pool } from "./pool.js";
import { deleteOwnedSecret, releaseAdoptedSecret } from "./secrets.js";
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
  /**
   * The resource is live (not being finalized): a Secret a Pod still names
   * is kept, and brought to `inUse` when that gives its content.
   */
  inUse?: {
    /** What a kept Secret should hold now (this pass's content under its name); undefined: nothing. */
    desired: (namespace: string, name: string) => DesiredSecret | undefined;
    /** Writes a kept Secret's content (syncSecret). */
    sync: (desired: DesiredSecret) => Promise<unknown>;
  };
  /** Tells the resource's Events what cleanup did not do, or did instead of deleting. */
  notice?: (type: "Normal" | "Warning", reason: string, message: string) => void;
  concurrency: number;
}

/** What cleanup left in place on purpose. */
export interface CleanupResult {
  /** Secrets kept because Pods still name them. */
  kept: KeptSecret[];
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
): Promise<CleanupResult> {
  if (scope.policy !== "Delete") return { kept: [] };
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
    const annotations = sa.metadata.annotations;
    if (!annotations || skip(sa.metadata.namespace)) continue;
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
    const namespace = s.metadata.namespace;
    const name = s.metadata.name;
    const kept =
      scope.keepSecret?.(namespace, name) === true ||
      (keepNamespaces.has(namespace) && scope.keepAlso?.(namespace, name) === true);
    if (kept || terminating.has(namespace)) continue;
    const origin = originOf(s);
    if (origin === "copy") {
      // Our labels, but written somewhere else: someone's copy, not ours to remove.
      scope.notice?.(
        "Warning",
        Reason.SecretCopyLeftAlone,
        `Secret ${namespace}/${name} carries the labels of ECRPullSecret ${owner} but is a copy of ${copiedFrom(s)}, which this operator did not write there; left alone: delete it, or remove its labels app.kubernetes.io/managed-by and ecrcreds.io/owner, if nothing needs it`,
      );
      continue;
    }
    if (origin === "unmarked") {
      // Our labels and no mark: anyone may label a Secret, and what this
      // operator creates carries the mark from its first write (those it
      // wrote before the marks existed got it at their next refresh).
      scope.notice?.(
        "Warning",
        Reason.SecretCopyLeftAlone,
        `Secret ${namespace}/${name} carries the labels of ECRPullSecret ${owner} but not the ecrcreds.io/written-in mark this operator puts on what it creates; left alone: delete it, or remove its labels app.kubernetes.io/managed-by and ecrcreds.io/owner, if nothing needs it`,
      );
      continue;
    }
    stale.push(s);
  }
  const kept = scope.inUse ? await keptInUse(cluster, stale, scope) : [];
  const keptPlaces = new Set(kept.map((k) => `${k.namespace}/${k.name}`));
  const remove = stale.filter((s) => !keptPlaces.has(`${s.metadata.namespace}/${s.metadata.name}`));
  await pool(remove, scope.concurrency, async (s) => {
    if (originOf(s) !== "adopted") return await deleteOwnedSecret(cluster, s, owner);
    if (await releaseAdoptedSecret(cluster, s, owner)) {
      scope.notice?.(
        "Normal",
        Reason.SecretReleased,
        `released adopted Secret ${s.metadata.namespace}/${s.metadata.name}: removed this operator's registry entries, labels and annotations, kept everything else`,
      );
    }
  });
  return { kept };
}

/** Where a copy says it was written (its mark). */
function copiedFrom(s: SecretView): string {
  const a = s.metadata.annotations;
  return a?.[ANNOTATION_ADOPTED] ?? a?.[ANNOTATION_WRITTEN_IN] ?? "another Secret";
}

/**
 * The stale Secrets that Pods in their namespace still name in
 * imagePullSecrets (one Pod list per namespace that has any), brought to the
 * pass's content when they hold the same sources' tokens; Pods that may no
 * longer pull (Succeeded, Failed) do not count.
 */
async function keptInUse(
  cluster: Cluster,
  stale: readonly SecretView[],
  scope: CleanupScope,
): Promise<KeptSecret[]> {
  const byNamespace = new Map<string, SecretView[]>();
  for (const s of stale) {
    const namespace = s.metadata.namespace;
    byNamespace.set(namespace, [...(byNamespace.get(namespace) ?? []), s]);
  }
  const kept: KeptSecret[] = [];
  await pool([...byNamespace], scope.concurrency, async ([namespace, secrets]) => {
    const users = await cluster.pullSecretUsers(namespace);
    if (!users) return;
    for (const s of secrets) {
      const name = s.metadata.name;
      const pods = users.get(name);
      if (!pods || pods.length === 0) continue;
      const shown = [...pods].sort().slice(0, 3).join(", ");
      const more = pods.length > 3 ? ` and ${pods.length - 3} more` : "";
      kept.push({
        namespace,
        name,
        pods: pods.length,
        message: `kept and refreshed while Pods name it in imagePullSecrets (${shown}${more}); removed once none does`,
      });
      scope.notice?.(
        "Normal",
        Reason.SecretKeptInUse,
        `Secret ${namespace}/${name} is no longer wanted, but Pods there still name it in imagePullSecrets (${shown}${more}): kept and refreshed until none does`,
      );
      const desired = scope.inUse?.desired(namespace, name);
      const sameSources =
        desired !== undefined &&
        s.metadata.annotations?.[ANNOTATION_TOKEN_SOURCES] ===
          desired.metadata.annotations[ANNOTATION_TOKEN_SOURCES];
      if (desired && sameSources && s.type === desired.type) await scope.inUse?.sync(desired);
    }
  });
  return kept;
}
