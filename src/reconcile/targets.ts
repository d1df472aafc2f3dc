import type { ECRPullSecretSpec } from "../api/index.js";
import { matchesAny } from "./glob.js";
import { matchesSelector } from "./selector.js";

/** The slice of a Namespace the operator reads. */
export interface NamespaceView {
  metadata?: {
    name?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  status?: { phase?: string };
}

/** What targeting needs to know about a namespace. */
export interface NamespaceInfo {
  name: string;
  labels?: Record<string, string>;
  /** Being deleted (has a deletionTimestamp): writing into it would fail or be undone. */
  terminating?: boolean;
}

export type TargetingSpec = Pick<
  ECRPullSecretSpec,
  "namespaces" | "namespaceSelector" | "excludeNamespaces"
>;

/**
 * The namespaces a resource should have its Secret in: those named or matched
 * by a glob in `namespaces`, plus those matched by `namespaceSelector`, minus
 * any matched by `excludeNamespaces` and any terminating. Only namespaces that
 * exist (are in `namespaces`) can be targets. Sorted and without duplicates.
 */
export function targetNamespaces(
  spec: TargetingSpec,
  namespaces: readonly NamespaceInfo[],
): string[] {
  const targets = new Set<string>();
  for (const ns of namespaces) {
    if (ns.terminating) continue;
    if (matchesAny(spec.excludeNamespaces, ns.name)) continue;
    if (
      matchesAny(spec.namespaces, ns.name) ||
      matchesSelector(spec.namespaceSelector, ns.labels)
    ) {
      targets.add(ns.name);
    }
  }
  // Code-unit order, not locale order: the result must not depend on the host.
  return [...targets].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Each cached namespace's view, made once per cached object (the caches replace an object that changes). */
const infos = new WeakMap<NamespaceView, NamespaceInfo>();

/** The namespaces as targeting reads them. */
export function namespaceInfos(namespaces: Iterable<NamespaceView>): NamespaceInfo[] {
  const out: NamespaceInfo[] = [];
  for (const ns of namespaces) {
    let info = infos.get(ns);
    if (!info) {
      info = {
        name: ns.metadata?.name ?? "",
        labels: ns.metadata?.labels,
        terminating: ns.status?.phase === "Terminating" || Boolean(ns.metadata?.deletionTimestamp),
      };
      infos.set(ns, info);
    }
    out.push(info);
  }
  return out;
}
