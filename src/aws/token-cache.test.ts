// The shared token cache with fake fetchers and fake timers: single flight,
// the refresh clock, the floor, backoff, seeding and invalidation.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Reason } from "../api/conditions.js";
import { operatorError } from "../errors.js";
import { credentialsSecretOf } from "./credential-source.js";
import { AwsQuota } from "./quota.js";
import type { RegistryToken } from "./token.js";
import {
  refreshLead,
  TokenCache,
  type TokenCacheOptions,
  type TokenSource,
  throttlingBackoffMs,
} from "./token-cache.js";

const SOURCE: TokenSource = {
  credentials: { kind: "secretKeys", secretRef: { namespace: "ops", name: "keys" } },
  service: "ecr",
  region: "us-east-1",
};
const OTHER: TokenSource = { ...SOURCE, region: "eu-west-1" };

let issued = 0;
function token(lifetimeMs: number, now = Date.now()): RegistryToken {
  issued++;
  return {
    username: "AWS",
    password: `pw-${issued}`,
    expiresAt: new Date(now + lifetimeMs),
    fetchedAt: new Date(now),
  };
}

interface Harness {
  cache: TokenCache;
  /** Epoch ms of every fetch call. */
  fetchTimes: number[];
  changes: string[][];
  results: string[];
}

function makeCache(
  fetch: (source: TokenSource) => Promise<RegistryToken>,
  opts: Partial<TokenCacheOptions> = {},
): Harness {
  const fetchTimes: number[] = [];
  const changes: string[][] = [];
  const results: string[] = [];
  const cache = new TokenCache({
    fetch: (source) => {
      fetchTimes.push(Date.now());
      return fetch(source);
    },
    onChange: (subscribers) => changes.push(subscribers),
    onFetched: (result) => results.push(result),
    minRefreshIntervalMs: 1_000,
    backoffBaseMs: 500,
    backoffMaxMs: 8_000,
    jitter: 0,
    ...opts,
  });
  return { cache, fetchTimes, changes, results };
}

const throttled = () =>
  operatorError("TokenRefreshFailed", "aws", {
    step: "get an ECR token in us-east-1",
    source: "the keys in Secret ops/aws",
    detail: "ThrottlingException",
  });

/** What classifyAwsError makes of an SDK ThrottlingException. */
const awsThrottled = () =>
  operatorError("TokenRefreshFailed", "throttled", {
    step: "get an ECR token in us-east-1",
    source: "the keys in Secret ops/aws",
    detail: "ThrottlingException (HTTP 400): Rate exceeded",
  });

beforeEach(() => {
  vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("TokenCache: one fetch shared, and the refresh clock", () => {
  it("fetches once for concurrent callers of one source and shares the token", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const h = makeCache(async () => {
      await gate;
      return token(60_000);
    });
    const pending = ["a", "b", "c", "d"].map((s) => h.cache.get(s, SOURCE));
    release();
    const states = await Promise.all(pending);
    expect(h.fetchTimes).toHaveLength(1);
    expect(new Set(states.map((s) => s.token?.password)).size).toBe(1);
    expect(h.cache.size).toBe(1);
    // A later caller is served from the cache.
    const later = await h.cache.get("e", SOURCE);
    expect(later.token?.password).toBe(states[0]?.token?.password);
    expect(h.fetchTimes).toHaveLength(1);
    // Another region is another source.
    await h.cache.get("a", OTHER);
    expect(h.fetchTimes).toHaveLength(2);
    expect(h.cache.size).toBe(2);
    h.cache.close();
  });

  it("refreshes on one timer at half the lifetime and tells every subscriber", async () => {
    const h = makeCache(async () => token(100_000));
    const t0 = Date.now();
    await h.cache.get("a", SOURCE);
    await h.cache.get("b", SOURCE);
    expect(h.cache.peek(SOURCE)?.nextRefreshAt?.getTime()).toBe(t0 + 50_000);
    await vi.advanceTimersByTimeAsync(49_999);
    expect(h.fetchTimes).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.fetchTimes).toEqual([t0, t0 + 50_000]);
    expect(h.changes.at(-1)?.sort()).toEqual(["a", "b"]);
    h.cache.close();
  });

  it("refreshes earlier for a subscriber that asks for it, and spreads with jitter", async () => {
    const h = makeCache(async () => token(100_000), { jitter: 0.1 });
    const t0 = Date.now();
    await h.cache.get("a", SOURCE);
    await h.cache.get("b", SOURCE, 80_000);
    const at = h.cache.peek(SOURCE)?.nextRefreshAt?.getTime() ?? 0;
    // refreshBefore 80 s, minus up to 10% of the 20 s before it (deterministic
    // per token): never before the token was fetched.
    expect(at).toBeLessThanOrEqual(t0 + 20_000);
    expect(at).toBeGreaterThanOrEqual(t0 + 20_000 - 2_000);
    h.cache.close();
  });

  it("caps a refreshBefore not shorter than the token's life at half of it: one fetch per half-life", async () => {
    // Tokens of 15 min, a spec asking for 1 h: without the cap the refresh
    // point falls before the fetch and the cache fetches at every floor.
    const h = makeCache(async () => token(15 * 60_000), { jitter: 0.1 });
    const t0 = Date.now();
    await h.cache.get("a", SOURCE, 3_600_000);
    await vi.advanceTimersByTimeAsync(30 * 60_000);
    expect(h.fetchTimes.length).toBe(5);
    for (const [i, at] of h.fetchTimes.slice(1).entries()) {
      const gap = at - (h.fetchTimes[i] ?? 0);
      expect(gap).toBeGreaterThanOrEqual(7.5 * 60_000 * 0.9);
      expect(gap).toBeLessThanOrEqual(7.5 * 60_000);
    }
    expect(h.fetchTimes[0]).toBe(t0);
    expect(refreshLead(3_600_000, 15 * 60_000)).toEqual({ leadMs: 7.5 * 60_000, capped: true });
    expect(refreshLead(14 * 60_000, 15 * 60_000)).toEqual({ leadMs: 14 * 60_000, capped: false });
    expect(refreshLead(undefined, 15 * 60_000)).toEqual({ leadMs: 7.5 * 60_000, capped: false });
    h.cache.close();
  });
});

describe("TokenCache: a token that fails, arrives expired or never comes back", () => {
  it("holds the floor when tokens arrive already expired, and keeps the good one", async () => {
    let expired = false;
    const h = makeCache(async () => (expired ? token(-3_600_000) : token(60_000)));
    const first = await h.cache.get("a", SOURCE);
    await vi.advanceTimersByTimeAsync(5_000);
    expired = true;
    const t0 = Date.now();
    h.cache.invalidate(() => true);
    await vi.advanceTimersByTimeAsync(0);
    // Hammer it as a busy reconcile loop would, for 10 s.
    for (let i = 0; i < 1_000; i++) {
      const state = await h.cache.get("a", SOURCE);
      expect(state.token?.password).toBe(first.token?.password);
      await vi.advanceTimersByTimeAsync(10);
    }
    const during = h.fetchTimes.filter((t) => t >= t0);
    expect(during.length).toBeLessThanOrEqual(11);
    expect(during.length).toBeGreaterThanOrEqual(9);
    for (let i = 1; i < during.length; i++)
      expect((during[i] ?? 0) - (during[i - 1] ?? 0)).toBeGreaterThanOrEqual(1_000);
    const state = h.cache.peek(SOURCE);
    expect(state?.expiredOnArrival).toBe(true);
    expect(state?.error?.reason).toBe(Reason.TokenExpiredOnArrival);
    expect(h.results).toContain("expired");
    h.cache.close();
  });

  it("does not loop on a nonsense expiry far in the future", async () => {
    const h = makeCache(async () => token(10 * 365 * 86_400_000));
    await h.cache.get("a", SOURCE);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.fetchTimes).toHaveLength(1);
    h.cache.close();
  });

  it("retries a failed fetch with capped exponential backoff, keeps the old token, resets on success", async () => {
    let failing = false;
    const h = makeCache(async () => {
      if (failing) throw throttled();
      return token(4_000);
    });
    const good = await h.cache.get("a", SOURCE);
    failing = true;
    // The clock fires at 2 s; from then on every attempt fails.
    await vi.advanceTimersByTimeAsync(2_000);
    const firstFailure = Date.now();
    expect(h.fetchTimes.at(-1)).toBe(firstFailure);
    await vi.advanceTimersByTimeAsync(500 + 1_000 + 2_000 + 4_000 + 8_000 + 8_000);
    const attempts = h.fetchTimes.filter((t) => t >= firstFailure);
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0));
    expect(gaps).toEqual([500, 1_000, 2_000, 4_000, 8_000, 8_000]);
    // Callers meanwhile get the previous token and the error; no extra fetch.
    const before = h.fetchTimes.length;
    const state = await h.cache.get("a", SOURCE);
    expect(h.fetchTimes.length).toBe(before);
    expect(state.token?.password).toBe(good.token?.password);
    expect(state.error?.reason).toBe(Reason.TokenRefreshFailed);
    // Success resets the backoff: the next failure waits the base again.
    failing = false;
    await vi.advanceTimersByTimeAsync(8_000);
    expect(h.cache.peek(SOURCE)?.error).toBeUndefined();
    const recovered = h.fetchTimes.at(-1) ?? 0;
    failing = true;
    await vi.advanceTimersByTimeAsync(2_000 + 500);
    expect(h.fetchTimes.slice(-2)).toEqual([recovered + 2_000, recovered + 2_500]);
    expect(h.results.filter((r) => r === "failure").length).toBeGreaterThanOrEqual(8);
    h.cache.close();
  });
});

describe("TokenCache: seeding, invalidation and release", () => {
  it("adopts a seeded token without fetching, and only when it is still good and new", async () => {
    const h = makeCache(async () => token(60_000));
    const now = Date.now();
    const seeded: RegistryToken = {
      username: "AWS",
      password: "seeded",
      expiresAt: new Date(now + 30_000),
      fetchedAt: new Date(now - 10_000),
      reused: true,
    };
    h.cache.seed(SOURCE, seeded);
    h.cache.seed(SOURCE, { ...seeded, password: "second" });
    h.cache.seed(OTHER, { ...seeded, expiresAt: new Date(now - 1) });
    const state = await h.cache.get("a", SOURCE);
    expect(state.token?.password).toBe("seeded");
    expect(h.fetchTimes).toHaveLength(0);
    expect(h.cache.peek(OTHER)).toBeUndefined();
    // Its clock runs from the seeded token: half of its 40 s lifetime, 10 s from now.
    expect(state.nextRefreshAt?.getTime()).toBe(now + 10_000);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.fetchTimes).toEqual([now + 10_000]);
    h.cache.close();
  });

  it("refetches at once on invalidate, ignoring backoff and the floor, for matching sources only", async () => {
    let failing = true;
    const h = makeCache(async () => {
      if (failing) throw throttled();
      return token(60_000);
    });
    await h.cache.get("a", SOURCE);
    await h.cache.get("b", OTHER);
    expect(h.fetchTimes).toHaveLength(2);
    failing = false;
    const told = h.cache.invalidate((c) => credentialsSecretOf(c)?.name === "keys");
    expect(told.sort()).toEqual(["a", "b"]);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.fetchTimes).toHaveLength(4);
    expect(h.cache.peek(SOURCE)?.token).toBeDefined();
    expect(h.cache.invalidate((c) => credentialsSecretOf(c)?.name === "nothing")).toEqual([]);
    h.cache.close();
  });

  it("drops a source when its last subscriber releases it", async () => {
    const h = makeCache(async () => token(60_000));
    await h.cache.get("a", SOURCE);
    await h.cache.get("b", SOURCE);
    h.cache.release("a");
    expect(h.cache.size).toBe(1);
    h.cache.release("b");
    expect(h.cache.size).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.fetchTimes).toHaveLength(1);
  });
});

describe("TokenCache: AWS's throttling and the quota", () => {
  it("rides out ThrottlingException while the held token is good: no error, no failure, the SDK's back-off", async () => {
    let throttling = false;
    const h = makeCache(async () => {
      if (throttling) throw awsThrottled();
      return token(100_000);
    });
    const good = await h.cache.get("a", SOURCE);
    throttling = true;
    const changes = h.changes.length;
    // Due at 50 s; then throttled: retries at the SDK's throttling back-off
    // (random, at most 0.5 s, 1 s, 2 s, 4 s ...), every one of them quietly.
    await vi.advanceTimersByTimeAsync(50_000);
    const firstThrottle = Date.now();
    await vi.advanceTimersByTimeAsync(500 + 1_000 + 2_000 + 4_000);
    const attempts = h.fetchTimes.filter((t) => t >= firstThrottle);
    expect(attempts.length).toBeGreaterThanOrEqual(5);
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0));
    for (const [i, gap] of gaps.slice(0, 4).entries())
      expect(gap).toBeLessThanOrEqual(500 * 2 ** i);
    const state = await h.cache.get("a", SOURCE);
    expect(state.error).toBeUndefined();
    expect(state.token?.password).toBe(good.token?.password);
    expect(h.results.filter((r) => r === "failure")).toEqual([]);
    expect(h.results.filter((r) => r === "throttled").length).toBe(attempts.length);
    // Nothing changed for the subscribers: no pass is enqueued per throttle.
    expect(h.changes.length).toBe(changes);
    throttling = false;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(h.cache.peek(SOURCE)?.token?.password).not.toBe(good.token?.password);
    expect(h.results.at(-1)).toBe("success");
    h.cache.close();
  });

  it("reports ThrottlingException as a failure when no good token is held", async () => {
    const h = makeCache(async () => {
      throw awsThrottled();
    });
    const state = await h.cache.get("a", SOURCE);
    expect(state.error?.reason).toBe(Reason.TokenRefreshFailed);
    expect(state.error?.message).toContain("AWS throttled the call");
    expect(h.results).toEqual(["failure"]);
    h.cache.close();
  });

  it("computes the SDK's throttling back-off: full jitter under 500 ms × 2^attempt, capped at 20 s", () => {
    expect(throttlingBackoffMs(0, () => 1)).toBe(500);
    expect(throttlingBackoffMs(3, () => 0.5)).toBe(2_000);
    expect(throttlingBackoffMs(10, () => 1)).toBe(20_000);
    expect(throttlingBackoffMs(10, () => 0)).toBe(0);
  });

  it("sends fetches through the quota: 200 sources due at once go out at its rate", async () => {
    const quota = new AwsQuota({ qps: 10, burst: 50 });
    const h = makeCache(async () => token(3_600_000), { quota, jitter: 0.1 });
    const sources = Array.from({ length: 200 }, (_, i) => ({
      ...SOURCE,
      credentials: {
        kind: "secretKeys" as const,
        secretRef: { namespace: "ops", name: `keys-${i}` },
      },
    }));
    const t0 = Date.now();
    const all = Promise.all(sources.map((s, i) => h.cache.get(`r${i}`, s)));
    await vi.advanceTimersByTimeAsync(20_000);
    await all;
    // 50 at once, then 150 at 10/s: 15 s; never more than 10 in a second after the burst.
    expect(h.fetchTimes).toHaveLength(200);
    expect((h.fetchTimes.at(-1) ?? 0) - t0).toBeGreaterThanOrEqual(14_800);
    expect((h.fetchTimes.at(-1) ?? 0) - t0).toBeLessThanOrEqual(15_200);
    for (let s = 1; s < 15; s++) {
      const inSecond = h.fetchTimes.filter((t) => t > t0 + s * 1_000 && t <= t0 + (s + 1) * 1_000);
      expect(inSecond.length).toBeLessThanOrEqual(10);
    }
    // Their refreshes are spread by jitter, not bunched at one instant.
    const due = sources.map((s) => h.cache.peek(s)?.nextRefreshAt?.getTime() ?? 0);
    expect(Math.max(...due) - Math.min(...due)).toBeGreaterThan(60_000);
    h.cache.close();
  });
});
