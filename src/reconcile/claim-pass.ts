// What a pass does for a claim besides what it does for any resource
// (issue 31): the claim's info series (its namespace, name and source beside
// its owner value, so every per-resource series can be joined to the claim),
// its source's Ready condition, and where its Events go. The reconciler calls
// these; a cluster without claims has none of them.
import { API_VERSION, CLAIM_KIND } from "../api/index.js";
import type { OperatorError } from "../errors.js";
import type { Cached } from "../kube/types.js";
import type { EventTarget } from "../observability/events.js";
import type { Metrics } from "../observability/metrics.js";
import { ClaimCluster, type ClaimStore, claimOf, sourceStatus } from "./claim-cluster.js";
import { claimOwner } from "./claims.js";
import type { Cluster, ObjectKey } from "./cluster.js";
import type { PassOutcome } from "./status.js";

/** The claim side of the passes: series and the source's status. */
export class ClaimPasses {
  /** The source each served claim's info series names, to remove the series when it changes. */
  private readonly infoSources = new Map<string, string>();

  /** The cluster in which each claim also shows as the resource it resolves to. */
  readonly cluster: ClaimCluster;

  constructor(
    base: Cluster,
    private readonly store: ClaimStore,
    private readonly metrics: Metrics,
    private readonly now: () => number,
  ) {
    this.cluster = new ClaimCluster(base, store);
  }

  /**
   * The owner value a queue key names (a claim's `namespace/name` or owner
   * value), with the claim; an ECRPullSecret's name as it is.
   */
  owner(key: string): { name: string; claim?: ObjectKey } {
    const claim = claimOf(key);
    return claim ? { name: claimOwner(claim.namespace, claim.name), claim } : { name: key };
  }

  /** Why the claim with this owner value is not served (its source refuses it); undefined: served. */
  refusal(resource: string): OperatorError | undefined {
    return this.cluster.refusal(resource);
  }

  /** Sets the claim's info series (owner value `resource`), replacing one that named another source. */
  info(resource: string, claim: ObjectKey): void {
    const source = this.cluster.claim(resource)?.spec.sourceRef?.name ?? "";
    const labels = { resource, namespace: claim.namespace, claim: claim.name };
    const known = this.infoSources.get(resource);
    if (known !== undefined && known !== source) {
      this.metrics.claimInfo.remove({ ...labels, source: known });
    }
    this.infoSources.set(resource, source);
    this.metrics.claimInfo.set({ ...labels, source }, 1);
  }

  /** Removes the info series of a claim that is gone. */
  forget(resource: string): void {
    const claim = claimOf(resource);
    const source = this.infoSources.get(resource);
    if (!claim || source === undefined) return;
    const labels = { resource, namespace: claim.namespace, claim: claim.name };
    this.metrics.claimInfo.remove({ ...labels, source });
    this.infoSources.delete(resource);
  }

  /**
   * A claim's pass tells its source's Ready condition (whether the source's
   * credentials get tokens), written only when it changes: the
   * administrator sees on the source what its claims see.
   */
  async reportSource(resource: string, pass: PassOutcome): Promise<void> {
    const sourceName = this.cluster.claim(resource)?.spec.sourceRef?.name;
    const source = sourceName ? this.store.source(sourceName) : undefined;
    const tokens = pass.tokens ?? [];
    if (!source || !sourceName || tokens.length === 0) return;
    const failing = tokens.find((t) => !t.token) ?? tokens.find((t) => t.error);
    const error = failing?.error;
    const status = sourceStatus(
      source,
      failing ? { ok: false, reason: error?.code, message: error?.message } : { ok: true },
      new Date(this.now()),
    );
    if (status) await this.store.patchSourceStatus(sourceName, status);
  }
}

/**
 * A resource as its Events name it: an ECRPullSecret by name (its Events go
 * into "default"); a claim's owner value as the claim, in its namespace.
 */
export function eventTarget(resource: Cached<{ metadata?: object }>): EventTarget {
  const { name, uid } = resource.metadata;
  const claim = claimOf(name);
  if (!claim) return { name, uid };
  return { ...claim, uid, kind: CLAIM_KIND, apiVersion: API_VERSION };
}
