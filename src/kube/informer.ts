// An informer that does not die quietly, after client-go's reflector: list
// (paged; a continue token that expired mid-list falls back to one full
// list), then watch from the list's resourceVersion with bookmarks and a
// server-side timeout randomised between 5 and 10 minutes; a watch that ends
// is resumed from the last resourceVersion it saw; `410 Gone` relists at
// once; any other ERROR event or failure backs off exponentially (800 ms
// doubling to 30 s, reset after two quiet minutes) before it relists. Every
// watch of the operator goes through this one.
//
// With `streamingList` the list itself is a watch (KEP-3157): the initial
// objects come as events and a bookmark marked `k8s.io/initial-events-end`
// closes them, so a large collection is held one object at a time.
//
// Bookmarks keep even a watch that matches nothing current: the API server
// sends one about every minute with its latest resourceVersion, so a quiet
// informer on a busy cluster resumes from a recent version and never relists.
// The client's silence watchdog (150 s) is longer than that interval, so it
// cuts only a watch whose server has gone, never a healthy quiet one.
import { ApiError, statusCode, type Watcher } from "./client.js";
import type { KubernetesObject } from "./types.js";

export type InformerEvent = "add" | "update" | "delete";
export type InformerHandler<T> = (event: InformerEvent, obj: T, old: T | undefined) => void;

export interface ListResult<T> {
  items: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

export interface InformerOptions<T> {
  /** For logs and metrics: "secrets", "namespaces", ... */
  resource: string;
  /** The collection's URL path, e.g. /api/v1/secrets. */
  path: string;
  /** Lists one page; the informer pages with `limit` and `continue`. */
  list: (page: { limit: number; continueToken?: string }) => Promise<ListResult<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  /** Reported each time the informer lists, watches or fails (for metrics and tests). */
  onActivity?: (what: "list" | "watch" | "gone" | "error", err?: unknown) => void;
  /** Server-side watch timeout; the server then ends the watch and we resume. */
  watchTimeoutSeconds?: number;
  pageSize?: number;
  maxBackoffMs?: number;
  /** Trims an object before it is stored (drop managedFields and what is never read). */
  transform?: (obj: T) => T;
  /**
   * List by watching (KEP-3157 streaming lists: `sendInitialEvents=true`),
   * as client-go's WatchListClient does: the current objects arrive as one
   * watch event each, so each is transformed before the next is read and a
   * collection of large objects never sits in memory as one list answer.
   * A server that refuses it (the WatchList gate off, as on 1.33) is listed
   * in pages instead, from then on.
   */
  streamingList?: boolean;
  /**
   * observe() tells the handlers of what it stores, as the watch would have:
   * the watch's echo of that version is dropped as known, so without this
   * the handlers never hear of the process's own writes. For caches whose
   * handlers must (a status write that changes what other parts read);
   * off where they would only rerun the pass that made the write.
   */
  tellObserved?: boolean;
}

/** The annotation on the bookmark that ends a streaming list's initial events (KEP-3157). */
const INITIAL_EVENTS_END = "k8s.io/initial-events-end";

/** How long a deletion is remembered against a late answer to our own write. */
const TOMBSTONE_MS = 120_000;

const keyOf = (obj: KubernetesObject): string =>
  `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;

export class Informer<T extends KubernetesObject> {
  private readonly store = new Map<string, T>();
  private readonly byNamespace = new Map<string, Map<string, T>>();
  private readonly handlers: InformerHandler<T>[] = [];
  private resourceVersion = "";
  private abort: AbortController | undefined;
  private stopped = false;
  private failures = 0;
  private lastFailureAt = 0;
  private syncedResolve!: () => void;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Bumped for each watch started, so callbacks of a cut watch are ignored. */
  private watchGeneration = 0;
  /**
   * Keys deleted lately, with the resourceVersion of the deletion, oldest
   * first: observe() must not bring back an object whose deletion the watch
   * delivered before the answer to our own write of it (removing a
   * finalizer deletes the object, and the two race).
   */
  private readonly deleted = new Map<string, { rv: number; at: number }>();
  /** Resolves once the first list has filled the store. */
  readonly synced: Promise<void>;
  hasSynced = false;
  /** How many times the informer listed (each relist included). */
  lists = 0;
  /** The server refused a streaming list: page from now on. */
  private streamingRefused = false;

  constructor(
    private readonly watcher: Watcher,
    private readonly opts: InformerOptions<T>,
  ) {
    this.synced = new Promise((resolve) => {
      this.syncedResolve = resolve;
    });
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(`${namespace ?? ""}/${name}`);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  /** Every cached object, without copying (do not write to the cache while iterating). */
  values(): IterableIterator<T> {
    return this.store.values();
  }

  /**
   * Records an object this process just wrote, so the next pass does not act
   * on the older copy before the watch delivers the new one. Only moves the
   * cache forward (resourceVersions are etcd revisions on every real server).
   * With `tellObserved` the handlers hear of it here, within the writer's
   * call, as they would of a watch event.
   */
  observe(obj: T): void {
    const key = keyOf(obj);
    const cached = this.store.get(key);
    const rv = Number(obj.metadata?.resourceVersion);
    const cachedRv = Number(cached?.metadata?.resourceVersion);
    if (!Number.isFinite(rv)) return;
    if (cached && Number.isFinite(cachedRv) && cachedRv >= rv) return;
    const deleted = this.deleted.get(key);
    if (!cached && deleted && deleted.rv >= rv) return;
    const stored = this.opts.transform ? this.opts.transform(obj) : obj;
    this.put(key, stored);
    if (this.opts.tellObserved) this.emit(cached ? "update" : "add", stored, cached);
  }

  /** The objects of one namespace, without copying (do not write to the cache while iterating). */
  valuesInNamespace(namespace: string): Iterable<T> {
    return this.byNamespace.get(namespace)?.values() ?? [];
  }

  /** The objects of one namespace, from an index kept beside the store. */
  listNamespace(namespace: string): T[] {
    return [...(this.byNamespace.get(namespace)?.values() ?? [])];
  }

  private put(key: string, obj: T): void {
    this.store.set(key, obj);
    const ns = obj.metadata?.namespace ?? "";
    let index = this.byNamespace.get(ns);
    if (!index) {
      index = new Map();
      this.byNamespace.set(ns, index);
    }
    index.set(obj.metadata?.name ?? "", obj);
  }

  /** Removes an object the server says is gone as of `rv` (its deletion, or a list's version). */
  private remove(key: string, obj: T, rv: string | undefined): void {
    const now = Date.now();
    // A write's answer comes within the client's request timeout (60 s).
    for (const [k, d] of this.deleted) {
      if (now - d.at < TOMBSTONE_MS) break;
      this.deleted.delete(k);
    }
    const version = Number(rv);
    this.deleted.delete(key);
    if (Number.isFinite(version)) this.deleted.set(key, { rv: version, at: now });
    this.store.delete(key);
    const ns = obj.metadata?.namespace ?? "";
    const index = this.byNamespace.get(ns);
    index?.delete(obj.metadata?.name ?? "");
    if (index?.size === 0) this.byNamespace.delete(ns);
  }

  get size(): number {
    return this.store.size;
  }

  start(): void {
    this.stopped = false;
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.watchGeneration++;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
    this.abort = undefined;
  }

  /** The resourceVersion the next watch resumes from. */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  /**
   * Cuts the current watch and watches again from `resourceVersion` (default:
   * the last one seen), as a dropped connection would. Tests use it to prove
   * that a cut watch resumes and that a version the server no longer has
   * (410 Gone) leads to a relist.
   */
  restartWatch(resourceVersion?: string): void {
    if (this.stopped || !this.hasSynced) return;
    this.watchGeneration++;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
    this.abort = undefined;
    if (resourceVersion !== undefined) this.resourceVersion = resourceVersion;
    this.resume();
  }

  /** Starts a watch; a failure to even start one relists after a backoff. */
  private resume(): void {
    this.startWatch().catch((err: unknown) => this.retry(err, () => this.relist()));
  }

  private emit(event: InformerEvent, obj: T, old: T | undefined): void {
    for (const h of this.handlers) h(event, obj, old);
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    if (this.opts.streamingList && !this.streamingRefused) {
      // A watch that fails to start relists after a backoff, as resume() does.
      await this.startWatch(new Map()).catch((err: unknown) =>
        this.retry(err, () => this.relist()),
      );
      return;
    }
    const pageSize = this.opts.pageSize ?? 500;
    try {
      let fresh = new Map<string, T>();
      let continueToken: string | undefined;
      let rv = "";
      let limit = pageSize;
      do {
        let page: ListResult<T>;
        try {
          page = await this.opts.list({ limit, continueToken });
        } catch (err) {
          // The continue token outlived etcd's compaction (a long list on a
          // busy cluster): as client-go's pager, start over with one full list.
          if (!continueToken || statusCode(err) !== 410) throw err;
          this.opts.onActivity?.("gone", err);
          fresh = new Map();
          limit = 0;
          continueToken = undefined;
          page = await this.opts.list({ limit, continueToken });
        }
        for (const raw of page.items) {
          const item = this.opts.transform ? this.opts.transform(raw) : raw;
          fresh.set(keyOf(item), item);
        }
        continueToken = page.metadata?.continue || undefined;
        rv = page.metadata?.resourceVersion ?? "";
      } while (continueToken);
      if (this.stopped) return;
      this.replaceStore(fresh, rv);
      await this.startWatch();
    } catch (err) {
      this.retry(err, () => this.relist());
    }
  }

  /** The store becomes a full list's objects, telling handlers what appeared, changed or went. */
  private replaceStore(fresh: Map<string, T>, rv: string): void {
    this.lists++;
    this.opts.onActivity?.("list");
    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.remove(key, old, rv);
        this.emit("delete", old, old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      this.put(key, obj);
      if (!old) this.emit("add", obj, undefined);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.emit("update", obj, old);
    }
    this.resourceVersion = rv;
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.syncedResolve();
    }
  }

  private retry(err: unknown, again: () => Promise<void>): void {
    if (this.stopped) return;
    this.opts.onActivity?.("error", err);
    // client-go's reflector backoff: 800 ms doubling to the cap, forgotten
    // after two minutes without a failure (a successful list does not reset
    // it, or a server that fails every watch would get a list and a watch
    // every 800 ms).
    const now = Date.now();
    if (now - this.lastFailureAt > 120_000) this.failures = 0;
    this.lastFailureAt = now;
    const delay = Math.min(800 * 2 ** this.failures, this.opts.maxBackoffMs ?? 30_000);
    this.failures++;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      again().catch((e: unknown) => this.retry(e, () => this.relist()));
    }, delay);
  }

  /**
   * Watches from the last resourceVersion; or, given `initial`, lists by
   * watching: every object the server has now arrives as an event into
   * `initial`, which replaces the store at the bookmark that ends them.
   */
  private async startWatch(initial?: Map<string, T>): Promise<void> {
    if (this.stopped) return;
    const query: Record<string, string | number | boolean> = {
      ...(initial
        ? { sendInitialEvents: true, resourceVersionMatch: "NotOlderThan" }
        : { resourceVersion: this.resourceVersion }),
      allowWatchBookmarks: true,
      // Spread the server-side timeouts so watches do not all resume at once.
      timeoutSeconds: Math.round((this.opts.watchTimeoutSeconds ?? 300) * (1 + Math.random())),
    };
    if (this.opts.labelSelector) query.labelSelector = this.opts.labelSelector;
    if (this.opts.fieldSelector) query.fieldSelector = this.opts.fieldSelector;
    let gone = false;
    let errorEvent: ApiError | undefined;
    let sawEvent = false;
    const began = Date.now();
    const generation = ++this.watchGeneration;
    const current = () => generation === this.watchGeneration && !this.stopped;
    this.opts.onActivity?.("watch");
    const controller = await this.watcher.watch(
      this.opts.path,
      query,
      (type: string, obj: unknown) => {
        if (!current()) return;
        sawEvent = true;
        if (type === "ERROR") {
          // The server ends this watch with a Status: 410 means our version is
          // too old (relist now); anything else is a failure to back off from,
          // as the reflector does, not a reason to watch again at once.
          if (statusCode(obj) === 410) gone = true;
          else errorEvent = statusError(obj);
          this.abort?.abort();
          return;
        }
        const raw = obj as T;
        const rv = raw.metadata?.resourceVersion;
        if (initial) {
          initial = this.listEvent(initial, type, raw);
          return;
        }
        if (rv) this.resourceVersion = rv;
        if (type === "BOOKMARK") return;
        const key = keyOf(raw);
        const old = this.store.get(key);
        // The echo of our own write, which observe() already holds: nothing
        // to transform, store or tell (a fan-out's every write comes back so).
        if (type !== "DELETED" && old && old.metadata?.resourceVersion === rv) return;
        const item = this.opts.transform ? this.opts.transform(raw) : raw;
        if (type === "DELETED") {
          this.remove(key, item, rv);
          this.emit("delete", item, old);
        } else {
          this.put(key, item);
          this.emit(old ? "update" : "add", item, old);
        }
      },
      (err: unknown) => {
        if (!current()) return;
        if (initial) {
          this.listEnded(errorEvent ?? err);
          return;
        }
        if (gone || statusCode(err) === 410) {
          // Our resourceVersion is too old for the server: start over.
          this.opts.onActivity?.("gone");
          void this.relist();
        } else if (errorEvent) {
          this.retry(errorEvent, () => this.relist());
        } else if (err && !isInactivity(err)) {
          // The connection failed (API server restarting, network): relist
          // after a backoff, so nothing that happened meanwhile is missed.
          this.retry(err, () => this.relist());
        } else {
          // A normal end (the server's timeout) or the client's inactivity
          // watchdog cutting a silent watch: resume from where we were.
          if (sawEvent) this.failures = 0;
          if (!sawEvent && Date.now() - began < 1_000) {
            // A server that closes every watch at once must not spin us.
            this.retry(new Error("watch closed at once"), () => this.startWatch());
          } else {
            this.resume();
          }
        }
      },
    );
    // Stopped or cut while the request was on its way: drop this watch.
    if (!current()) controller.abort();
    else this.abort = controller;
  }

  /**
   * One event of a streaming list: objects go into `initial`, not the store,
   * until the bookmark that ends the initial events replaces the store with
   * them (undefined is returned then: the watch goes on as a plain watch).
   */
  private listEvent(initial: Map<string, T>, type: string, raw: T): Map<string, T> | undefined {
    if (type === "BOOKMARK") {
      if (raw.metadata?.annotations?.[INITIAL_EVENTS_END] !== "true") return initial;
      this.replaceStore(initial, raw.metadata?.resourceVersion ?? "");
      return undefined;
    }
    if (type === "ADDED") {
      const item = this.opts.transform ? this.opts.transform(raw) : raw;
      initial.set(keyOf(item), item);
    } else if (type === "DELETED") {
      initial.delete(keyOf(raw));
    }
    return initial;
  }

  /**
   * A streaming list ended before the list was whole. A server that does not
   * know streaming lists says so (400 or 422 Invalid): page instead.
   */
  private listEnded(err: unknown): void {
    const code = statusCode(err);
    if (code === 400 || code === 422) {
      this.streamingRefused = true;
      this.opts.onActivity?.("error", err);
      void this.relist();
    } else {
      this.retry(err ?? new Error("watch list ended early"), () => this.relist());
    }
  }
}

/** The metav1.Status of an ERROR watch event as an ApiError. */
function statusError(obj: unknown): ApiError {
  const s = (obj ?? {}) as { code?: unknown; message?: unknown; reason?: unknown };
  const code = typeof s.code === "number" ? s.code : 500;
  const message = typeof s.message === "string" ? s.message : "the watch ended with an ERROR event";
  return new ApiError(code, message, typeof s.reason === "string" ? s.reason : undefined);
}

function isInactivity(err: unknown): boolean {
  return (
    typeof err === "object" && err !== null && (err as { name?: string }).name === "TimeoutError"
  );
}
