// Client-side QPS and burst, as client-go's token bucket: up to `burst`
// requests at once, refilled at `qps` per second. Callers wait in order.
export class TokenBucket {
  private tokens: number;
  private last = performance.now();
  private readonly waiters: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(): Promise<void> {
    if (this.qps <= 0) return Promise.resolve();
    this.refill();
    if (this.waiters.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.schedule();
    });
  }

  /**
   * A new bucket in this one's state now (tokens left, same rate and
   * burst), with no one waiting: for a limit that takes over from this one
   * and must remember what it has already let through.
   */
  copy(): TokenBucket {
    this.refill();
    const copy = new TokenBucket(this.qps, this.burst);
    copy.tokens = this.tokens;
    return copy;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(1, ((1 - this.tokens) / this.qps) * 1000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.waiters.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.waiters.shift()?.();
      }
      if (this.waiters.length > 0) this.schedule();
    }, wait);
  }
}
