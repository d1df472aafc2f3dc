// client-go's retry.RetryOnConflict: optimistic concurrency means a write
// guarded by resourceVersion can lose to another writer; the answer is to
// read again and decide again, a bounded number of times.
import { isConflict } from "./client.js";

export interface RetryOnConflictOptions {
  /** Tries in all, the first included. */
  attempts: number;
  /** Which errors mean "read again and retry"; default: 409 Conflict. */
  retryOn?: (err: unknown) => boolean;
  /** The error to throw when every attempt lost. */
  exhausted: () => Error;
}

/**
 * Runs `attempt(n)` for n = 0, 1, … until it returns, throws an error that
 * `retryOn` does not accept, or the attempts run out. Each attempt after the
 * first starts by reading the object again; `attempt` does that itself, so it
 * decides again on what the server holds now.
 */
export async function retryOnConflict<T>(
  opts: RetryOnConflictOptions,
  attempt: (n: number) => Promise<T>,
): Promise<T> {
  const retryOn = opts.retryOn ?? isConflict;
  for (let n = 0; n < opts.attempts; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!retryOn(err)) throw err;
    }
  }
  throw opts.exhausted();
}
