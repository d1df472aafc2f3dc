// A keyed, deduplicating work queue (no overall rate limit) with the contract of
// client-go's workqueue: a key waiting twice is processed once; a key is never
// processed by two workers at once (a change that arrives while it is being
// processed queues it again afterwards); failures come back with per-key
// exponential backoff; `addAfter` schedules a later pass.

export interface WorkQueueOptions {
  /** First retry delay after a failure. */
  baseDelayMs: number;
  /** Cap of the per-key exponential backoff. */
  maxDelayMs: number;
}

const defaults: WorkQueueOptions = { baseDelayMs: 250, maxDelayMs: 5 * 60_000 };

export class WorkQueue {
  private readonly opts: WorkQueueOptions;
  private readonly queue: string[] = [];
  private readonly waiting = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys that changed while they were being processed. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly getters: Array<(key: string) => void> = [];
  private shuttingDown = false;

  constructor(opts: Partial<WorkQueueOptions> = {}) {
    this.opts = { ...defaults, ...opts };
  }

  /** Keys waiting to be processed (the queue depth metric). */
  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    const getter = this.getters.shift();
    if (getter) {
      this.processing.add(key);
      getter(key);
      return;
    }
    this.waiting.add(key);
    this.queue.push(key);
  }

  /** Adds the key after `delayMs`; an earlier pending schedule for the key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Requeues after a failure with exponential backoff; returns the delay. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.opts.baseDelayMs * 2 ** n, this.opts.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the failure count of a key (after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves with the next key, or undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    // On shutdown, keys still waiting are abandoned: the next leader (or the
    // restarted process) relists and reconciles everything anyway.
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.waiting.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => {
      this.getters.push(resolve as (key: string) => void);
    });
  }

  /** Marks a key finished; if it changed meanwhile it goes back in the queue. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const getter of this.getters.splice(0))
      (getter as (key: string | undefined) => void)(undefined);
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }
}

/** Runs `concurrency` workers over the queue until it shuts down. */
export async function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  work: (key: string) => Promise<void>,
): Promise<void> {
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        await work(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
