// Events on ECRPullSecrets, rate-limited so that a failing loop cannot flood
// the API server: the same (resource, reason, message) at most once per
// `repeatAfterMs`, and at most `burst` Events per resource, refilled slowly,
// as client-go's event recorder does.

import { API_VERSION, KIND } from "../api/index.js";
import { OPERATOR_NAME } from "../api/metadata.js";
import { EVENTS, type KubeClient } from "../kube/client.js";
import type { Event } from "../kube/types.js";
import type { Logger } from "./logger.js";

export interface EventTarget {
  name: string;
  uid?: string;
}

/**
 * The API server accepts core/v1 Events about a cluster-scoped object (an
 * ECRPullSecret) only in "default" (or no namespace): any other namespace is
 * refused with 422, so this is not a setting.
 */
export const EVENTS_NAMESPACE = "default";

export interface EventRecorderOptions {
  repeatAfterMs: number;
  burst: number;
  refillMs: number;
}

const defaults: EventRecorderOptions = {
  repeatAfterMs: 10 * 60_000,
  burst: 10,
  refillMs: 30_000,
};

export class EventRecorder {
  private readonly opts: EventRecorderOptions;
  private readonly lastSent = new Map<string, number>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Events dropped by the rate limit (for tests and metrics). */
  dropped = 0;

  constructor(
    private readonly kube: KubeClient | undefined,
    private readonly log: Logger,
    opts: Partial<EventRecorderOptions> = {},
  ) {
    this.opts = { ...defaults, ...opts };
  }

  /** Records an Event; never throws and never blocks the reconcile for long. */
  record(target: EventTarget, type: "Normal" | "Warning", reason: string, message: string): void {
    const now = Date.now();
    const key = `${target.name}\u0000${reason}\u0000${message}`;
    const last = this.lastSent.get(key);
    if (last !== undefined && now - last < this.opts.repeatAfterMs) return;
    const bucket = this.buckets.get(target.name) ?? { tokens: this.opts.burst, at: now };
    bucket.tokens = Math.min(
      this.opts.burst,
      bucket.tokens + (now - bucket.at) / this.opts.refillMs,
    );
    bucket.at = now;
    this.buckets.set(target.name, bucket);
    if (bucket.tokens < 1) {
      this.dropped++;
      return;
    }
    bucket.tokens -= 1;
    this.lastSent.set(key, now);
    if (this.lastSent.size > 10_000) this.lastSent.clear();
    if (!this.kube) return;
    const kube = this.kube;
    const time = new Date().toISOString();
    const body: Event = {
      metadata: { generateName: `${target.name}.`, namespace: EVENTS_NAMESPACE },
      involvedObject: { apiVersion: API_VERSION, kind: KIND, name: target.name, uid: target.uid },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: OPERATOR_NAME },
      reportingComponent: OPERATOR_NAME,
      reportingInstance: process.env.HOSTNAME ?? OPERATOR_NAME,
      firstTimestamp: time,
      lastTimestamp: time,
      count: 1,
    };
    kube.create(EVENTS, body).catch((err: unknown) => {
      // A lost Event must be seen: a warning, not a debug line.
      this.log.warn({ resource: target.name, reason, err: String(err) }, "failed to record event");
    });
  }

  forget(name: string): void {
    this.buckets.delete(name);
    for (const key of this.lastSent.keys())
      if (key.startsWith(`${name}\u0000`)) this.lastSent.delete(key);
  }
}
