// The work queue's contract, as client-go's workqueue: dedupe, one worker per
// key, dirty re-add, per-key backoff, earliest addAfter wins.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runWorkers, WorkQueue } from "./queue.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("WorkQueue", () => {
  it("processes a key added many times while waiting once", async () => {
    const q = new WorkQueue();
    for (let i = 0; i < 5; i++) q.add("a");
    q.add("b");
    q.add("a");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("a");
    expect(await q.get()).toBe("b");
    expect(q.length).toBe(0);
    q.shutDown();
  });

  it("never hands one key to two workers, and re-adds a key that changed while processed", async () => {
    vi.useRealTimers();
    const q = new WorkQueue();
    let running = 0;
    let maxRunning = 0;
    const processed: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const workers = runWorkers(q, 4, async (key) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      processed.push(key);
      if (processed.length === 1) await gate;
      running--;
    });
    q.add("a");
    await new Promise((r) => setImmediate(r));
    // "a" is being processed: these mark it dirty instead of starting a second worker.
    q.add("a");
    q.add("a");
    expect(q.length).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(processed).toEqual(["a"]);
    release();
    await new Promise((r) => setTimeout(r, 20));
    expect(processed).toEqual(["a", "a"]);
    expect(maxRunning).toBe(1);
    q.shutDown();
    await workers;
  });

  it("backs off per key exponentially up to the cap, and forget resets it", () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1_000 });
    const delays = Array.from({ length: 7 }, () => q.addRateLimited("a"));
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
    expect(q.addRateLimited("b")).toBe(100);
    q.forget("a");
    expect(q.failureCount("a")).toBe(0);
    expect(q.addRateLimited("a")).toBe(100);
    q.shutDown();
  });

  it("adds a key after its delay, the earliest schedule winning", async () => {
    const q = new WorkQueue();
    q.addAfter("a", 5_000);
    q.addAfter("a", 1_000);
    q.addAfter("a", 3_000);
    await vi.advanceTimersByTimeAsync(999);
    expect(q.length).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("a");
    q.done("a");
    // The later schedules were dropped, not kept.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(q.length).toBe(0);
    q.shutDown();
  });

  it("stops handing out keys on shutdown, waiting or not", async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add("a");
    expect(await q.get()).toBeUndefined();
    const q2 = new WorkQueue();
    q2.add("a");
    q2.shutDown();
    expect(await q2.get()).toBeUndefined();
  });
});
