// AWS's per-(account, region) quota of GetAuthorizationToken calls.
import { ServiceError } from "./protocol.js";
import type { QuotaInit } from "./types.js";

/** One token bucket per (service, account, region). */
export class QuotaBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * Spends one call of `key`'s bucket under `quota` (none: no limit);
   * throws ServiceError "throttling" when the bucket is empty.
   */
  take(quota: QuotaInit | undefined, key: string): void {
    if (quota === undefined) return;
    const now = performance.now();
    const bucket = this.buckets.get(key) ?? { tokens: quota.burst, at: now };
    bucket.tokens = Math.min(
      quota.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * quota.ratePerSecond,
    );
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) throw new ServiceError("throttling", "Rate exceeded");
    bucket.tokens -= 1;
  }
}
