// The one place that knows how the operator talks to the API server: the
// kubeconfig, a shared connection pool, client-side QPS/burst, and a count of
// every request by verb and code for the metrics.
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  type RequestContext,
} from "@kubernetes/client-node";
import { TokenBucket } from "./rate-limiter.js";

/**
 * client-node builds a new HTTP agent for every request, which means a new TLS
 * connection each time; at a thousand namespaces that dominates the cost of a
 * fan-out. Reuse one dispatcher per (cluster, user) instead.
 */
class PooledKubeConfig extends KubeConfig {
  private readonly dispatchers = new Map<string, unknown>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (fresh === undefined) return;
    const key = `${this.getCurrentCluster()?.server ?? ""}|${this.getCurrentUser()?.name ?? ""}`;
    let shared = this.dispatchers.get(key);
    if (shared === undefined) {
      shared = fresh;
      this.dispatchers.set(key, shared);
    } else {
      // The unused fresh agent has opened no connection; let it go.
      void (fresh as { close?: () => Promise<void> }).close?.();
    }
    context.setDispatcher(shared as Parameters<RequestContext["setDispatcher"]>[0]);
  }
}

/** Loads a kubeconfig file, or the in-cluster configuration when no path is given. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new PooledKubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export interface KubeClientOptions {
  qps: number;
  burst: number;
  /** Called after every request, for the metrics. */
  onRequest?: (verb: string, resource: string, code: number, seconds: number) => void;
}

export class KubeClient {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly coordination: CoordinationV1Api;
  readonly events: EventsV1Api;
  private readonly limiter: TokenBucket;

  constructor(
    readonly kubeConfig: KubeConfig,
    private readonly opts: KubeClientOptions,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.coordination = kubeConfig.makeApiClient(CoordinationV1Api);
    this.events = kubeConfig.makeApiClient(EventsV1Api);
    this.limiter = new TokenBucket(opts.qps, opts.burst);
  }

  /** Runs one API request under the client's rate limit and records its outcome. */
  async request<T>(verb: string, resource: string, fn: () => Promise<T>): Promise<T> {
    await this.limiter.take();
    const start = performance.now();
    try {
      const result = await fn();
      this.opts.onRequest?.(verb, resource, 200, (performance.now() - start) / 1000);
      return result;
    } catch (err) {
      this.opts.onRequest?.(verb, resource, statusCode(err), (performance.now() - start) / 1000);
      throw err;
    }
  }
}

/** The HTTP status of a failed API request, or 0 when it never got an answer. */
export function statusCode(err: unknown): number {
  if (err instanceof ApiException) return err.code;
  if (typeof err === "object" && err !== null) {
    const e = err as { code?: unknown; statusCode?: unknown };
    if (typeof e.statusCode === "number") return e.statusCode;
    if (typeof e.code === "number") return e.code;
  }
  return 0;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;

/** The API server's own message for a failed request, without the request body. */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === "string") {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        // not JSON: fall through to the status code
      }
    } else if (typeof body === "object" && body !== null && "message" in body) {
      return String((body as { message: unknown }).message);
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
