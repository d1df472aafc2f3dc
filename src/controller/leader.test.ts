// The Lease logic of leader election, over a fake Lease store and a fake
// clock: acquiring, renewing, a standby that waits a whole lease duration by
// its own clock, transitions counted, stepping down when another holds the
// Lease, and a release a standby can take at once. The integration test
// (test/integration/leader.test.ts) runs two real replicas.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Lease } from "../kube/types.js";
import { createLogger } from "../observability/logger.js";
import { LeaderElector } from "./leader.js";
import { LeaseStore } from "./lease.fake.js";

const log = createLogger({ level: "silent", format: "json" });

function elector(store: LeaseStore, identity: string, events: string[]): LeaderElector {
  return new LeaderElector(store.client(), log, {
    namespace: "ops",
    name: "lock",
    identity,
    onStartedLeading: () => events.push(`${identity} leads`),
    onStoppedLeading: () => events.push(`${identity} stops`),
  });
}

beforeEach(() => {
  vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("LeaderElector", () => {
  it("creates a missing Lease with MicroTime stamps and leads", async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    elector(store, "a", events).start();
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(["a leads"]);
    expect(store.lease?.spec).toMatchObject({
      holderIdentity: "a",
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
      renewTime: "2030-01-01T00:00:00.000000Z",
    });
  });

  it("renews every retry period, keeping acquireTime and transitions", async () => {
    const store = new LeaseStore();
    elector(store, "a", []).start();
    await vi.advanceTimersByTimeAsync(4_100);
    expect(store.writes).toEqual(["create a", "replace a", "replace a"]);
    expect(store.lease?.spec).toMatchObject({
      acquireTime: "2030-01-01T00:00:00.000000Z",
      renewTime: "2030-01-01T00:00:04.000000Z",
      leaseTransitions: 0,
    });
  });

  it("waits a whole lease duration by its own clock before taking a silent holder's Lease", async () => {
    const store = new LeaseStore();
    store.lease = {
      metadata: { name: "lock", namespace: "ops", resourceVersion: "7" },
      // The holder's clock says it renewed far in the future: only our clock counts.
      spec: {
        holderIdentity: "gone",
        leaseDurationSeconds: 15,
        renewTime: "2099-01-01T00:00:00.000000Z",
        leaseTransitions: 2,
      },
    };
    const events: string[] = [];
    elector(store, "b", events).start();
    await vi.advanceTimersByTimeAsync(14_900);
    expect(events).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(events).toEqual(["b leads"]);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 3 });
  });

  it("steps down at once when the Lease names another holder", async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    elector(store, "a", events).start();
    await vi.advanceTimersByTimeAsync(0);
    const lease = store.lease as Lease;
    store.lease = {
      ...lease,
      spec: { ...lease.spec, holderIdentity: "b" },
      metadata: { ...lease.metadata, resourceVersion: "99" },
    };
    await vi.advanceTimersByTimeAsync(2_000);
    expect(events).toEqual(["a leads", "a stops"]);
  });

  it("releases the Lease on shutdown so a standby takes it without waiting", async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = elector(store, "a", events);
    a.start();
    await vi.advanceTimersByTimeAsync(0);
    await a.release();
    expect(store.lease?.spec?.holderIdentity).toBeUndefined();
    expect(store.lease?.spec?.leaseDurationSeconds).toBe(1);
    elector(store, "b", events).start();
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(["a leads", "b leads"]);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
  });
});
