import type { ECRPullSecretSpec } from "../api/index.js";
import { isGlob, matchesAny } from "./glob.js";
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
  const targets: string[] = [];
  for (const ns of namespaces) {
    if (ns.terminating) continue;
    if (matchesAny(spec.excludeNamespaces, ns.name)) continue;
    if (
      matchesAny(spec.namespaces, ns.name) ||
      matchesSelector(spec.namespaceSelector, ns.labels)
    ) {
      targets.push(ns.name);
    }
  }
  // Code-unit order, not locale order: the result must not depend on the host.
  targets.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // The caches hold each name once; a list that names one twice is deduplicated in place.
  let kept = 0;
  for (const name of targets) if (kept === 0 || targets[kept - 1] !== name) targets[kept++] = name;
  targets.length = kept;
  return targets;
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

/** The targets of a resource under an install that may serve only some namespaces. */
export interface ScopedTargets {
  /** Targets within the granted namespaces (all targets when every namespace is granted). */
  targets: string[];
  /**
   * Namespaces named exactly in `spec.namespaces` (not excluded) that the
   * install may not serve: reported, never silently skipped. Globs and the
   * selector match only within the granted set, so they name none here.
   */
  notGranted: string[];
}

/**
 * `targetNamespaces` within `granted` (absent: every namespace is granted, as
 * in a cluster-wide install). Sorted and without duplicates.
 */
export function scopedTargetNamespaces(
  spec: TargetingSpec,
  namespaces: readonly NamespaceInfo[],
  granted: ReadonlySet<string> | undefined,
): ScopedTargets {
  if (!granted) return { targets: targetNamespaces(spec, namespaces), notGranted: [] };
  const targets = targetNamespaces(
    spec,
    namespaces.filter((ns) => granted.has(ns.name)),
  );
  const notGranted = new Set<string>();
  for (const name of spec.namespaces ?? []) {
    if (isGlob(name) || granted.has(name) || matchesAny(spec.excludeNamespaces, name)) continue;
    notGranted.add(name);
  }
  return { targets, notGranted: [...notGranted].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
}
