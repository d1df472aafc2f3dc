// The shared token cache and its refresh clock. One entry per (credentials,
// service, region): every resource, registry entry and namespace that uses the
// same source shares its token, and a new one is served without an AWS call.
// Each entry has one timer: at `refreshBefore` ahead of the token's own expiry
// (default half its lifetime, minus jitter) it fetches a new token and tells
// the resources that use it. A failed fetch keeps the old token (the Secrets
// in place stay as they are) and retries with capped exponential backoff.
import { createHash } from "node:crypto";
import { type CredentialsRef, credentialsKey } from "./credentials.js";
import type { AwsSourceError } from "./errors.js";
import type { EcrService, RegistryToken } from "./token.js";

export interface TokenSource {
  credentials: CredentialsRef;
  service: EcrService;
  region: string;
}

export const tokenSourceKey = (s: TokenSource): string =>
  `${credentialsKey(s.credentials)}|${s.service}|${s.region}`;

export interface TokenCacheOptions {
  /** Fetches a token; throws an AwsSourceError. */
  fetch: (source: TokenSource) => Promise<RegistryToken>;
  /** Called after every fetch attempt with the subscribers of that entry. */
  onChange: (subscribers: string[], key: string) => void;
  /** Floor between two fetches of one source, whatever the token says. */
  minRefreshIntervalMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Up to this fraction of the refresh window is taken off at random. */
  jitter: number;
  now?: () => number;
}

export interface TokenState {
  key: string;
  token?: RegistryToken;
  /** The last fetch failed (the token, if any, is the previous one). */
  error?: AwsSourceError;
  /** When this entry next fetches. */
  nextRefreshAt?: Date;
  /** The token had expired when it arrived. */
  expiredOnArrival: boolean;
}

interface Entry {
  key: string;
  source: TokenSource;
  token?: RegistryToken;
  error?: AwsSourceError;
  expiredOnArrival: boolean;
  failures: number;
  lastAttemptAt: number;
  nextAttemptAt: number;
  jitter: number;
  inflight?: Promise<void>;
  timer?: NodeJS.Timeout;
  timerAt?: number;
  /** Resource name → its refreshBefore in ms (undefined: half the lifetime). */
  subscribers: Map<string, number | undefined>;
}

export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  /** Fetch attempts per source key, for tests and the benchmark. */
  readonly fetches = new Map<string, number>();
  private closed = false;

  constructor(private readonly opts: TokenCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * The token of a source for one resource. Fetches only when the source has
   * no usable token and its backoff allows; otherwise answers from the cache.
   */
  async get(
    subscriber: string,
    source: TokenSource,
    refreshBeforeMs?: number,
  ): Promise<TokenState> {
    const entry = this.subscribe(subscriber, source, refreshBeforeMs);
    const now = this.now();
    const usable = entry.token && entry.token.expiresAt.getTime() > now;
    if (!usable) {
      if (entry.inflight !== undefined) await entry.inflight;
      else if (now >= entry.nextAttemptAt) await this.refresh(entry);
    } else if (
      this.dueAt(entry) <= now &&
      entry.inflight === undefined &&
      now >= entry.nextAttemptAt
    ) {
      // This subscriber wants a fresher token than the entry's clock planned.
      await this.refresh(entry);
    }
    return this.state(entry);
  }

  /** The cached state without fetching. */
  peek(source: TokenSource): TokenState | undefined {
    const entry = this.entries.get(tokenSourceKey(source));
    return entry ? this.state(entry) : undefined;
  }

  /**
   * Adopts a token read back from a Secret written before a restart, so a
   * restarted operator neither calls AWS nor rewrites every Secret. Ignored
   * when the source already has a token.
   */
  seed(source: TokenSource, token: RegistryToken): void {
    const key = tokenSourceKey(source);
    if (this.entries.get(key)?.token) return;
    if (token.expiresAt.getTime() <= this.now()) return;
    const entry = this.entries.get(key) ?? this.newEntry(key, source);
    entry.token = token;
    entry.jitter = this.jitterFor(key, token);
    entry.lastAttemptAt = token.fetchedAt.getTime();
    this.entries.set(key, entry);
    this.schedule(entry, this.dueAt(entry));
  }

  /** Forgets a resource everywhere except the sources it still uses. */
  release(subscriber: string, keep: ReadonlySet<string> = new Set()): void {
    for (const entry of this.entries.values()) {
      if (keep.has(entry.key) || !entry.subscribers.delete(subscriber)) continue;
      if (entry.subscribers.size === 0) this.drop(entry);
    }
  }

  /**
   * Refetches at once every source whose credentials match (rotated keys),
   * ignoring backoff and the floor; returns the subscribers told.
   */
  invalidate(matches: (credentials: CredentialsRef) => boolean): string[] {
    const told: string[] = [];
    for (const entry of this.entries.values()) {
      if (!matches(entry.source.credentials)) continue;
      entry.failures = 0;
      entry.nextAttemptAt = 0;
      entry.lastAttemptAt = 0;
      told.push(...entry.subscribers.keys());
      void this.refresh(entry);
    }
    return told;
  }

  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private subscribe(subscriber: string, source: TokenSource, refreshBeforeMs?: number): Entry {
    const key = tokenSourceKey(source);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = this.newEntry(key, source);
      this.entries.set(key, entry);
    }
    const before = entry.subscribers.get(subscriber);
    entry.subscribers.set(subscriber, refreshBeforeMs);
    if (entry.token && before !== refreshBeforeMs) this.schedule(entry, this.dueAt(entry));
    return entry;
  }

  private newEntry(key: string, source: TokenSource): Entry {
    return {
      key,
      source,
      expiredOnArrival: false,
      failures: 0,
      lastAttemptAt: 0,
      nextAttemptAt: 0,
      jitter: 0,
      subscribers: new Map(),
    };
  }

  /**
   * Jitter derived from the source and the token, not drawn at random: many
   * sources still spread out, and a restarted operator computes the same
   * refresh time (and so the same status) as before.
   */
  private jitterFor(key: string, token: RegistryToken): number {
    const digest = createHash("sha256").update(`${key}|${token.expiresAt.getTime()}`).digest();
    return (digest.readUInt32BE(0) / 0xffffffff) * this.opts.jitter;
  }

  private drop(entry: Entry): void {
    clearTimeout(entry.timer);
    this.entries.delete(entry.key);
  }

  /** When the entry's token should be replaced, for the most demanding subscriber. */
  private dueAt(entry: Entry): number {
    const token = entry.token;
    if (!token) return entry.nextAttemptAt;
    const expires = token.expiresAt.getTime();
    const lifetime = Math.max(0, expires - token.fetchedAt.getTime());
    let before = lifetime / 2;
    for (const wanted of entry.subscribers.values()) {
      if (wanted !== undefined) before = Math.max(before, Math.min(wanted, lifetime));
    }
    const due = expires - before - before * entry.jitter;
    return Math.max(due, entry.lastAttemptAt + this.opts.minRefreshIntervalMs);
  }

  private schedule(entry: Entry, at: number): void {
    if (this.closed) return;
    clearTimeout(entry.timer);
    entry.timerAt = at;
    entry.timer = setTimeout(
      () => {
        entry.timer = undefined;
        if (entry.subscribers.size === 0) this.drop(entry);
        else void this.refresh(entry);
      },
      Math.max(0, at - this.now()),
    );
    entry.timer.unref();
  }

  private refresh(entry: Entry): Promise<void> {
    if (entry.inflight !== undefined) return entry.inflight;
    entry.inflight = (async () => {
      entry.lastAttemptAt = this.now();
      this.fetches.set(entry.key, (this.fetches.get(entry.key) ?? 0) + 1);
      try {
        const token = await this.opts.fetch(entry.source);
        entry.token = token;
        entry.error = undefined;
        entry.failures = 0;
        entry.nextAttemptAt = 0;
        entry.expiredOnArrival = token.expiresAt.getTime() <= this.now();
        entry.jitter = this.jitterFor(entry.key, token);
        this.schedule(entry, this.dueAt(entry));
      } catch (err) {
        entry.error = err as AwsSourceError;
        const delay = Math.min(
          this.opts.backoffBaseMs * 2 ** entry.failures,
          this.opts.backoffMaxMs,
        );
        entry.failures++;
        entry.nextAttemptAt = this.now() + delay;
        this.schedule(entry, entry.nextAttemptAt);
      } finally {
        entry.inflight = undefined;
      }
      if (!this.closed) this.opts.onChange([...entry.subscribers.keys()], entry.key);
    })();
    return entry.inflight;
  }

  private state(entry: Entry): TokenState {
    return {
      key: entry.key,
      token: entry.token,
      error: entry.error,
      nextRefreshAt: entry.timerAt !== undefined ? new Date(entry.timerAt) : undefined,
      expiredOnArrival: entry.expiredOnArrival,
    };
  }
}
