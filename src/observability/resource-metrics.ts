// The per-resource Prometheus series: set by each pass, removed with the
// resource. A series per (resource, registry) exists only while that registry
// is in the resource's Secrets, so an alert never fires on one that left.
import type { NamespaceCounts, RegistryTokenStatus } from "../api/index.js";
import type { Metrics } from "./metrics.js";

const NAMESPACE_STATES = ["desired", "synced", "failed"] as const;

export class ResourceMetrics {
  /** Last token expiry seen per resource (epoch ms), to tell a refresh from a rewrite. */
  private readonly lastExpiry = new Map<string, number>();
  /** The registries each resource's expiry gauge has a series for. */
  private readonly expiryRegistries = new Map<string, Set<string>>();

  constructor(private readonly metrics: Metrics) {}

  /**
   * The expiry gauge per registry (an alert names the one that lapses): set
   * for each registry with a token, removed for each registry the previous
   * pass had and this one has not.
   */
  registryExpiry(resource: string, registries: readonly RegistryTokenStatus[]): void {
    const seen = new Set<string>();
    for (const r of registries) {
      if (!r.tokenExpiresAt) continue;
      this.metrics.tokenExpiry.set(
        { resource, registry: r.registry },
        Date.parse(r.tokenExpiresAt) / 1000,
      );
      seen.add(r.registry);
    }
    for (const registry of this.expiryRegistries.get(resource) ?? [])
      if (!seen.has(registry)) this.metrics.tokenExpiry.remove({ resource, registry });
    this.expiryRegistries.set(resource, seen);
  }

  /**
   * Remembers the earliest expiry of the resource's Secrets; true when an
   * earlier pass saw another one (a refresh), false on the first sight or the
   * same expiry. An absent expiry is not remembered.
   */
  expiryMoved(resource: string, expiresAt: Date | undefined): boolean {
    const expiry = expiresAt?.getTime();
    if (expiry === undefined) return false;
    const before = this.lastExpiry.get(resource);
    this.lastExpiry.set(resource, expiry);
    return before !== undefined && before !== expiry;
  }

  /** The shortest token lifetime in the resource's Secrets, in milliseconds. */
  tokenLifetime(resource: string, lifetimeMs: number): void {
    this.metrics.tokenLifetime.set({ resource }, lifetimeMs / 1000);
  }

  /** 1 while the resource's Ready condition is True, else 0. */
  ready(resource: string, ready: boolean): void {
    this.metrics.ready.set({ resource }, ready ? 1 : 0);
  }

  /** A neighbour (`manager`, from managedFields) removed the resource's ServiceAccount entry. */
  reverted(resource: string, manager: string): void {
    this.metrics.serviceAccountReverts.inc({ resource, manager });
  }

  /** Target namespaces by state; absent counts are 0. */
  namespaces(resource: string, counts: NamespaceCounts | undefined): void {
    for (const state of NAMESPACE_STATES)
      this.metrics.namespaces.set({ resource, state }, counts?.[state] ?? 0);
  }

  /** Removes every series of a resource that is gone, and what was remembered of it. */
  forget(resource: string): void {
    this.lastExpiry.delete(resource);
    for (const registry of this.expiryRegistries.get(resource) ?? [])
      this.metrics.tokenExpiry.remove({ resource, registry });
    this.expiryRegistries.delete(resource);
    this.metrics.ready.remove({ resource });
    this.metrics.tokenLifetime.remove({ resource });
    this.metrics.verified.remove({ resource });
    for (const state of NAMESPACE_STATES) this.metrics.namespaces.remove({ resource, state });
  }
}
