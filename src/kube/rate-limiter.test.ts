// Client-side QPS and burst: a burst goes at once, the rest at the rate, in order.
import { describe, expect, it } from "vitest";
import { TokenBucket } from "./rate-limiter.js";

describe("TokenBucket", () => {
  it("lets a burst through at once and spaces the rest at the rate, in order", async () => {
    const bucket = new TokenBucket(50, 5);
    const start = performance.now();
    const order: number[] = [];
    const times: number[] = [];
    await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        bucket.take().then(() => {
          order.push(i);
          times.push(performance.now() - start);
        }),
      ),
    );
    expect(order).toEqual(Array.from({ length: 15 }, (_, i) => i));
    // Five at once, then ten more at 50/s: about 200 ms in all.
    for (const t of times.slice(0, 5)) expect(t).toBeLessThan(15);
    expect(times.at(-1)).toBeGreaterThanOrEqual(180);
    expect(times.at(-1)).toBeLessThan(600);
  });

  it("does not limit with qps 0", async () => {
    const bucket = new TokenBucket(0, 0);
    const start = performance.now();
    await Promise.all(Array.from({ length: 1_000 }, () => bucket.take()));
    expect(performance.now() - start).toBeLessThan(100);
  });
});
