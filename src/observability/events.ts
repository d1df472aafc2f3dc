// Events on ECRPullSecrets, rate-limited so that a failing loop cannot flood
// the API server: the same (resource, reason, message) at most once per
// `repeatAfterMs`, and at most `burst` Events per resource, refilled slowly,
// as client-go's event recorder does.

import { Reason } from "../api/conditions.js";
import { API_VERSION, KIND } from "../api/index.js";
import { OPERATOR_NAME } from "../api/metadata.js";
import { EVENTS, type KubeClient } from "../kube/client.js";
import type { Event } from "../kube/types.js";
import type { Logger } from "./logger.js";

export interface EventTarget {
  name: string;
  uid?: string;
  /** A namespaced object (a Pod): its Event goes into its namespace. Default: an ECRPullSecret. */
  namespace?: string;
  kind?: string;
  apiVersion?: string;
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
    const who = target.namespace ? `${target.namespace}/${target.name}` : target.name;
    const key = `${who}\u0000${reason}\u0000${message}`;
    const last = this.lastSent.get(key);
    if (last !== undefined && now - last < this.opts.repeatAfterMs) return;
    const bucket = this.buckets.get(who) ?? { tokens: this.opts.burst, at: now };
    bucket.tokens = Math.min(
      this.opts.burst,
      bucket.tokens + (now - bucket.at) / this.opts.refillMs,
    );
    bucket.at = now;
    this.buckets.set(who, bucket);
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
      metadata: {
        generateName: `${target.name}.`,
        namespace: target.namespace ?? EVENTS_NAMESPACE,
      },
      involvedObject: {
        apiVersion: target.apiVersion ?? API_VERSION,
        kind: target.kind ?? KIND,
        name: target.name,
        uid: target.uid,
        ...(target.namespace && { namespace: target.namespace }),
      },
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

// --- What the reconcile says in its Events -----------------------------------

/** An Event about a resource, as the reconcile words it. */
export interface Notice {
  type: "Normal" | "Warning";
  /** CamelCase; an operator error's code (a condition reason) for a Warning about it. */
  reason: string;
  message: string;
}

/** A Warning under `reason` (an error's code, or a condition's reason) with its message. */
export function warning(reason: string, message: string): Notice {
  return { type: "Warning", reason, message };
}

/** A pass wrote a new token into `secrets` Secrets. */
export function tokenRefreshed(secrets: number, expiresAt: Date): Notice {
  return {
    type: "Normal",
    reason: Reason.TokenRefreshed,
    message: `refreshed ${secrets} Secrets; token expires at ${expiresAt.toISOString()}`,
  };
}

/** A neighbour (a GitOps tool's self-heal) removed the operator's imagePullSecrets entry. */
export interface RevertedEntry {
  /** The ServiceAccount's place. */
  namespace: string;
  name: string;
  /** The entry (a Secret name) that was removed. */
  secret: string;
  /** The field manager that removed it, or "unknown". */
  manager: string;
  /** Removals within the window, this one included. */
  removals: number;
  /** No re-add before this (epoch ms); 0: re-added at once. */
  notBefore: number;
}

/** Says who removed the entry, when it comes back, and what to change so it stays. */
export function serviceAccountReverted(r: RevertedEntry): Notice {
  const when =
    r.notBefore > 0
      ? `re-adding it no sooner than ${new Date(r.notBefore).toISOString()}`
      : "re-adding it";
  return warning(
    Reason.ServiceAccountReverted,
    `ServiceAccount ${r.namespace}/${r.name} lost its imagePullSecrets entry ${JSON.stringify(r.secret)} to field manager ${JSON.stringify(r.manager)} (${r.removals} times in 10 minutes); ${when}; make ${r.manager} leave that field to ecr-creds-refresher (docs/gitops.md)`,
  );
}
