// A small concurrency helper: the writes of one pass go out a few at a time
// (the client's QPS limit still applies), and one failure does not stop the
// others.

/** Runs `work` over items with at most `concurrency` in flight; waits for all, then throws the first error. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, run));
  if (errors.length > 0) throw errors[0];
}
