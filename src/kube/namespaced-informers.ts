// One informer per namespace behind the read side of a single informer, for
// installs whose RBAC grants Secrets and ServiceAccounts only in a list of
// namespaces (Roles, not a ClusterRole): a cluster-wide list or watch would be
// refused there. The shape of controller-runtime's multi-namespace cache.
import type { Watcher } from "./client.js";
import { Informer, type InformerHandler, type InformerOptions } from "./informer.js";
import type { KubernetesObject } from "./types.js";

/** A cache of one kind of object: one cluster-wide informer, or one per namespace. */
export type ObjectCache<T extends KubernetesObject> = Informer<T> | NamespacedInformers<T>;

/**
 * The informers of `namespaces`, each made by `optionsFor(namespace)` (its
 * `path` must be the namespaced collection, e.g. /api/v1/namespaces/a/secrets),
 * read as one cache. Objects of a namespace outside the set are never held.
 */
export class NamespacedInformers<T extends KubernetesObject> {
  private readonly informers = new Map<string, Informer<T>>();
  /** Resolves once every namespace's first list has filled its store. */
  readonly synced: Promise<void>;

  constructor(
    watcher: Watcher,
    namespaces: readonly string[],
    optionsFor: (namespace: string) => InformerOptions<T>,
  ) {
    for (const ns of namespaces) this.informers.set(ns, new Informer(watcher, optionsFor(ns)));
    this.synced = Promise.all([...this.informers.values()].map((i) => i.synced)).then(() => {});
  }

  /** The namespaces this cache watches. */
  get namespaces(): string[] {
    return [...this.informers.keys()];
  }

  get hasSynced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced);
  }

  /** Lists made so far, over every namespace. */
  get lists(): number {
    let n = 0;
    for (const i of this.informers.values()) n += i.lists;
    return n;
  }

  get size(): number {
    let n = 0;
    for (const i of this.informers.values()) n += i.size;
    return n;
  }

  on(handler: InformerHandler<T>): void {
    for (const i of this.informers.values()) i.on(handler);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.informers.get(namespace ?? "")?.get(namespace, name);
  }

  list(): T[] {
    return [...this.values()];
  }

  *values(): IterableIterator<T> {
    for (const i of this.informers.values()) yield* i.values();
  }

  observe(obj: T): void {
    this.informers.get(obj.metadata?.namespace ?? "")?.observe(obj);
  }

  valuesInNamespace(namespace: string): Iterable<T> {
    return this.informers.get(namespace)?.valuesInNamespace(namespace) ?? [];
  }

  listNamespace(namespace: string): T[] {
    return this.informers.get(namespace)?.listNamespace(namespace) ?? [];
  }

  start(): void {
    for (const i of this.informers.values()) i.start();
  }

  stop(): void {
    for (const i of this.informers.values()) i.stop();
  }
}
