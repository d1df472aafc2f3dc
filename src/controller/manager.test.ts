// The manager's run loop over fake runnables, a fake Lease store and a fake
// clock: what starts on every replica and what only on the leader, the order
// of a shutdown (runnables in reverse, then the Lease), the exit codes, and
// a lost Lease ending the process within a second. The integration tests
// (test/integration/leader.test.ts, fencing.test.ts, lease-forbidden.test.ts)
// run the built executable.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, type KubeClient } from "../kube/client.js";
import type { Lease } from "../kube/types.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { LeaseStore } from "./lease.fake.js";
import { Manager, type Runnable } from "./manager.js";

const log = createLogger({ level: "silent", format: "json" });

/** A runnable that writes what happens to it into `events`. */
function runnable(name: string, events: string[], needLeaderElection = false): Runnable {
  return {
    needLeaderElection,
    start: () => {
      events.push(`${name} start`);
    },
    stop: async () => {
      events.push(`${name} stop`);
    },
  };
}

interface Run {
  manager: Manager;
  metrics: Metrics;
  events: string[];
  exits: number[];
  signal: AbortController;
  done: Promise<number>;
}

function startManager(client?: KubeClient, extra: Runnable[] = []): Run {
  const events: string[] = [];
  const exits: number[] = [];
  const metrics = new Metrics({ processMetrics: false });
  const manager = new Manager(log, metrics, {
    metricsAddress: "0",
    healthAddress: "0",
    ...(client && { leaderElection: { namespace: "ops", name: "lock", identity: "me" } }),
    newClient: () => client ?? ({} as KubeClient),
    exit: (code) => exits.push(code),
  });
  manager.add(runnable("informers", events));
  manager.add(runnable("workers", events, true));
  for (const r of extra) manager.add(r);
  const signal = new AbortController();
  return { manager, metrics, events, exits, signal, done: manager.start(signal.signal) };
}

const isLeader = async (metrics: Metrics) => (await metrics.isLeader.get()).values[0]?.value;

/** The Lease as another replica wrote it (a resourceVersion other than ours). */
function heldByOther(store: LeaseStore): void {
  store.lease = {
    metadata: { name: "lock", namespace: "ops", resourceVersion: "99" },
    spec: {
      holderIdentity: "other",
      leaseDurationSeconds: 15,
      renewTime: "2030-01-01T00:00:00.000000Z",
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Manager without leader election", () => {
  it("starts every runnable, leads at once, and on a signal stops them in reverse and resolves 0", async () => {
    const run = startManager();
    await vi.advanceTimersByTimeAsync(0);
    expect(run.events).toEqual(["informers start", "workers start"]);
    expect(await isLeader(run.metrics)).toBe(1);
    run.signal.abort("SIGTERM");
    expect(await run.done).toBe(0);
    expect(run.events).toEqual([
      "informers start",
      "workers start",
      "workers stop",
      "informers stop",
    ]);
    // The process is ended only if something still holds it 5 s later.
    expect(run.exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(run.exits).toEqual([0]);
  });

  it("ends a run stopped while the caches sync: nothing of the leader's starts", async () => {
    const events: string[] = [];
    const metrics = new Metrics({ processMetrics: false });
    const manager = new Manager(log, metrics, {
      metricsAddress: "0",
      healthAddress: "0",
      newClient: () => ({}) as KubeClient,
      exit: () => {},
    });
    manager.add({
      start: () => new Promise<void>(() => events.push("syncing")),
      stop: async () => {
        events.push("informers stop");
      },
    });
    manager.add(runnable("workers", events, true));
    const signal = new AbortController();
    const done = manager.start(signal.signal);
    await vi.advanceTimersByTimeAsync(0);
    signal.abort("SIGTERM");
    expect(await done).toBe(0);
    expect(events).toEqual(["syncing", "informers stop"]);
  });
});

describe("Manager with leader election", () => {
  it("starts the leader's runnables only once it holds the Lease; a standby runs the others and is ready", async () => {
    const store = new LeaseStore();
    heldByOther(store);
    const run = startManager(store.client());
    run.manager.addReadyzCheck(() => run.events.includes("informers start"));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(run.events).toEqual(["informers start"]);
    expect(run.manager.ready).toBe(true);
    // The holder went silent: a whole lease duration by our clock, then ours.
    await vi.advanceTimersByTimeAsync(6_000);
    expect(run.events).toEqual(["informers start", "workers start"]);
    expect(store.lease?.spec?.holderIdentity).toBe("me");
    expect(await isLeader(run.metrics)).toBe(1);
    run.signal.abort("SIGINT");
    expect(await run.done).toBe(0);
  });

  it("gives the Lease up on a signal only after the runnables have stopped", async () => {
    const store = new LeaseStore();
    const order: string[] = [];
    const client = store.client();
    const replace = client.replace.bind(client);
    client.replace = (async (...args: Parameters<typeof replace>) => {
      const lease = args[1] as Lease;
      if (!lease.spec?.holderIdentity) order.push("release");
      return await replace(...args);
    }) as typeof replace;
    const slow: Runnable = {
      start: () => {},
      stop: async () => {
        await new Promise((r) => setTimeout(r, 3_000));
        order.push("pass finished");
      },
    };
    const run = startManager(client, [slow]);
    await vi.advanceTimersByTimeAsync(0);
    expect(store.lease?.spec?.holderIdentity).toBe("me");
    run.signal.abort("SIGTERM");
    await vi.advanceTimersByTimeAsync(3_000);
    expect(await run.done).toBe(0);
    expect(order).toEqual(["pass finished", "release"]);
    expect(store.lease?.spec?.holderIdentity).toBeUndefined();
  });

  it("on a lost Lease stops the runnables, resolves 1 and exits 1 within a second", async () => {
    const store = new LeaseStore();
    const run = startManager(store.client());
    await vi.advanceTimersByTimeAsync(0);
    expect(run.events).toEqual(["informers start", "workers start"]);
    heldByOther(store);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await run.done).toBe(1);
    expect(run.events.slice(2)).toEqual(["workers stop", "informers stop"]);
    expect(await isLeader(run.metrics)).toBe(0);
    expect(run.exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(run.exits).toEqual([1]);
  });

  it("is not ready while the Lease is forbidden, caches synced or not", async () => {
    const forbidden = {
      get: async () => {
        throw new ApiError(403, "leases is forbidden", "Forbidden");
      },
    } as unknown as KubeClient;
    const run = startManager(forbidden);
    run.manager.addReadyzCheck(() => true);
    await vi.advanceTimersByTimeAsync(0);
    expect(run.events).toEqual(["informers start"]);
    expect(run.manager.ready).toBe(false);
    expect((await run.metrics.leaderElectionErrors.get()).values).toMatchObject([
      { labels: { reason: "Forbidden" }, value: 1 },
    ]);
    run.signal.abort("SIGTERM");
    expect(await run.done).toBe(0);
  });
});
