// The shared token cache and its refresh clock. One entry per (credentials,
// service, region): every resource, registry entry and namespace that uses the
// same source shares its token, and a new one is served without an AWS call.
// Each entry has one timer: at `refreshBefore` ahead of the token's own expiry
// (default half its lifetime, minus jitter; a `refreshBefore` not shorter than
// the lifetime is capped at half of it) it fetches a new token and tells
// the resources that use it. A failed fetch keeps the old token (the Secrets
// in place stay as they are) and retries with capped exponential backoff.
//
// AWS's quota: every fetch first waits its turn in the per-(account, region)
// limiter (quota.ts), so however many sources come due at once the calls go
// out at the configured rate. A ThrottlingException while the token held is
// still good is not a failed refresh: no error on the entry (so no failed
// condition, no Event), only a retry after the SDK's throttling back-off.
import { createHash } from "node:crypto";
import { isOperatorError, type OperatorError, operatorError } from "../errors.js";
import { type CredentialSource, credentialsKey, describeCredentials } from "./credential-source.js";
import type { AwsQuota } from "./quota.js";
import type { EcrService, RegistryToken } from "./token.js";

export interface TokenSource {
  credentials: CredentialSource;
  service: EcrService;
  region: string;
}

export const tokenSourceKey = (s: TokenSource): string =>
  `${credentialsKey(s.credentials)}|${s.service}|${s.region}`;

/** How a fetch ended; "throttled": AWS throttled it while the held token is good (not a failure). */
export type FetchResult = "success" | "failure" | "expired" | "throttled";

/**
 * The AWS SDK's standard retry back-off for throttling errors
 * (`THROTTLING_RETRY_DELAY_BASE` 500 ms, `MAXIMUM_RETRY_DELAY` 20 s, full
 * jitter). The SDK itself makes one attempt (token.ts), so that every retry
 * also waits its turn in the quota limiter.
 */
export function throttlingBackoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(20_000, 500 * 2 ** attempt));
}

/** How long a token lives: from its fetch to its expiry (0 for a nonsense pair). */
export const tokenLifetimeMs = (token: Pick<RegistryToken, "expiresAt" | "fetchedAt">): number =>
  Math.max(0, token.expiresAt.getTime() - token.fetchedAt.getTime()) || 0;

/**
 * How long before expiry a token is replaced for a subscriber wanting
 * `wantedMs` (spec.refreshBefore; undefined: half the lifetime). A lead as
 * long as the token's whole life (a spec written for 12 h tokens, served
 * tokens of 15 min by an assumed role, another partition or a test endpoint)
 * would put the refresh point before the fetch, and the cache would fetch
 * again at every floor: it is capped at half the lifetime, and `capped` says
 * so (the status and an Event report it).
 */
export function refreshLead(
  wantedMs: number | undefined,
  lifetimeMs: number,
): { leadMs: number; capped: boolean } {
  if (wantedMs === undefined) return { leadMs: lifetimeMs / 2, capped: false };
  if (wantedMs >= lifetimeMs) return { leadMs: lifetimeMs / 2, capped: true };
  return { leadMs: wantedMs, capped: false };
}

export interface TokenCacheOptions {
  /** Fetches a token; throws an OperatorError (classifyAwsError). */
  fetch: (source: TokenSource) => Promise<RegistryToken>;
  /** Called after every fetch attempt with the subscribers of that entry. */
  onChange: (subscribers: string[], key: string) => void;
  /** Told how each fetch ended (for the refresh counters). */
  onFetched?: (
    result: FetchResult,
    key: string,
    subscribers: string[],
    error?: OperatorError,
  ) => void;
  /** Told when a source loses its last subscriber and leaves the cache. */
  onDrop?: (key: string) => void;
  /** Floor between two fetches of one source, whatever the token says. */
  minRefreshIntervalMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Up to this fraction of the refresh window is taken off at random. */
  jitter: number;
  /** The per-(account, region) limiter of GetAuthorizationToken calls; none: unlimited. */
  quota?: AwsQuota;
  now?: () => number;
}

export interface TokenState {
  key: string;
  token?: RegistryToken;
  /** The last fetch failed (the token, if any, is the previous one). */
  error?: OperatorError;
  /** When this entry next fetches. */
  nextRefreshAt?: Date;
  /** The token had expired when it arrived. */
  expiredOnArrival: boolean;
}

interface Entry {
  key: string;
  source: TokenSource;
  token?: RegistryToken;
  error?: OperatorError;
  expiredOnArrival: boolean;
  failures: number;
  /** Throttled attempts in a row while the held token was good. */
  throttles: number;
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
  private closed = false;

  /** Node's timers overflow (and fire at once) beyond ~24.8 days. */
  static readonly MAX_TIMER_MS = 2 ** 31 - 1;

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
      // A source whose tokens arrive already expired must not be refetched on
      // every reconcile pass: the floor holds here as well as on the clock.
      if (entry.inflight !== undefined) await entry.inflight;
      else if (now >= this.earliestAttempt(entry)) await this.refresh(entry);
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
  invalidate(matches: (credentials: CredentialSource) => boolean): string[] {
    const told: string[] = [];
    for (const entry of this.entries.values()) {
      if (!matches(entry.source.credentials)) continue;
      entry.failures = 0;
      entry.nextAttemptAt = 0;
      entry.lastAttemptAt = 0;
      told.push(...entry.subscribers.keys());
      // A fetch already in flight may have read the old keys: fetch again after it.
      if (entry.inflight !== undefined) void entry.inflight.then(() => this.refresh(entry));
      else void this.refresh(entry);
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
      throttles: 0,
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

  /** No fetch before this: the backoff after a failure, and the floor after any attempt. */
  private earliestAttempt(entry: Entry): number {
    if (entry.lastAttemptAt === 0) return entry.nextAttemptAt;
    return Math.max(entry.nextAttemptAt, entry.lastAttemptAt + this.opts.minRefreshIntervalMs);
  }

  private drop(entry: Entry): void {
    clearTimeout(entry.timer);
    this.entries.delete(entry.key);
    this.opts.onDrop?.(entry.key);
  }

  /** When the entry's token should be replaced, for the most demanding subscriber. */
  private dueAt(entry: Entry): number {
    const token = entry.token;
    if (!token) return entry.nextAttemptAt;
    const expires = token.expiresAt.getTime();
    const lifetime = tokenLifetimeMs(token);
    let before = lifetime / 2;
    for (const wanted of entry.subscribers.values()) {
      before = Math.max(before, refreshLead(wanted, lifetime).leadMs);
    }
    // The jitter comes off the shorter of the lead and the time before it, so
    // it can never move the refresh point before the token was fetched.
    const due = expires - before - Math.min(before, lifetime - before) * entry.jitter;
    return Math.max(due, entry.lastAttemptAt + this.opts.minRefreshIntervalMs);
  }

  private schedule(entry: Entry, at: number): void {
    if (this.closed) return;
    clearTimeout(entry.timer);
    entry.timerAt = at;
    const delay = Math.max(0, at - this.now());
    // A far-off expiry (a nonsense date) would overflow the timer and fire at
    // once, in a loop: wait in steps instead.
    const step = Math.min(delay, TokenCache.MAX_TIMER_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (entry.subscribers.size === 0) this.drop(entry);
      else if (step < delay) this.schedule(entry, at);
      else void this.refresh(entry);
    }, step);
    entry.timer.unref();
  }

  private refresh(entry: Entry): Promise<void> {
    if (entry.inflight !== undefined) return entry.inflight;
    entry.inflight = (async () => {
      try {
        await this.opts.quota?.take(entry.source);
        if (this.closed) return;
        entry.lastAttemptAt = this.now();
        const token = await this.opts.fetch(entry.source);
        this.opts.quota?.learn(entry.source, token);
        entry.throttles = 0;
        const now = this.now();
        const expires = token.expiresAt.getTime();
        if (!Number.isFinite(expires) || expires <= now) {
          // Expired at receipt (skewed clocks, a broken endpoint): not a
          // usable token, and not a reason to hammer AWS either. Keep what
          // the Secrets hold and ask again no sooner than the floor.
          entry.expiredOnArrival = true;
          entry.failures = 0;
          // With nothing usable held, what AWS returned is still the best
          // there is (an emulator such as moto only ever returns expired
          // tokens): the Secret shows it and the condition says why it fails.
          const held = entry.token?.expiresAt.getTime() ?? 0;
          if (Number.isFinite(expires) && held <= now) entry.token = token;
          entry.error = operatorError("TokenExpiredOnArrival", "expired", {
            service: entry.source.service,
            region: entry.source.region,
            source: describeCredentials(entry.source.credentials),
            expiresAt: Number.isFinite(expires) ? token.expiresAt.toISOString() : "an invalid time",
            next: `asking again every ${Math.round(this.opts.minRefreshIntervalMs / 1000)}s`,
          });
          entry.nextAttemptAt = now + this.opts.minRefreshIntervalMs;
          this.schedule(entry, entry.nextAttemptAt);
          this.tell("expired", entry);
        } else {
          entry.token = token;
          entry.error = undefined;
          entry.failures = 0;
          entry.nextAttemptAt = 0;
          entry.expiredOnArrival = false;
          entry.jitter = this.jitterFor(entry.key, token);
          this.schedule(entry, this.dueAt(entry));
          this.tell("success", entry);
        }
      } catch (err) {
        const held = entry.token?.expiresAt.getTime() ?? 0;
        if (
          isOperatorError(err, "TokenRefreshFailed") &&
          err.form === "throttled" &&
          held > this.now()
        ) {
          // AWS's quota is shared with every caller in the account: wait as
          // the SDK would and ask again; the Secrets in place are still good
          // (nothing changed for the subscribers: no onChange).
          const delay = throttlingBackoffMs(entry.throttles++);
          entry.nextAttemptAt = Math.min(this.now() + delay, held);
          this.schedule(entry, entry.nextAttemptAt);
          this.tell("throttled", entry, undefined);
          return;
        }
        entry.throttles = 0;
        entry.error = err as OperatorError;
        const delay = Math.min(
          this.opts.backoffBaseMs * 2 ** entry.failures,
          this.opts.backoffMaxMs,
        );
        entry.failures++;
        entry.nextAttemptAt = this.now() + delay;
        this.schedule(entry, entry.nextAttemptAt);
        this.tell("failure", entry);
      } finally {
        entry.inflight = undefined;
      }
      if (!this.closed) this.opts.onChange([...entry.subscribers.keys()], entry.key);
    })();
    return entry.inflight;
  }

  private tell(result: FetchResult, entry: Entry, error = entry.error): void {
    if (this.closed) return;
    this.opts.onFetched?.(result, entry.key, [...entry.subscribers.keys()], error);
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
