// The one place that talks HTTP to the API server: a pooled keep-alive
// connection, client-side QPS/burst, JSON in and out (lists gzipped), watches
// as streams of lines, and a count of every request by verb, resource and code
// for the metrics. As client-go's rest client: 429 and 5xx answers that carry
// Retry-After are waited out and retried (bounded, with jitter), idempotent
// requests are retried once on a reset connection, a 401 renews credentials
// once, and a leadership fence refuses every write once leadership is gone
// and cancels what is in flight.
//
// The operator uses a handful of endpoints (Secrets, ServiceAccounts,
// Namespaces, Events, Leases and its own resource), so this is a small client
// of its own rather than a generated one: a full generated client costs about
// 80 MB of memory just to load, more than everything else the operator holds.
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { arch, platform } from "node:os";
import { createGunzip } from "node:zlib";
import type { Connection, Credentials } from "./kubeconfig.js";
import { serverAgent } from "./proxy.js";
import { TokenBucket } from "./rate-limiter.js";
import type { KubernetesObject, ObjectList, Status } from "./types.js";

export { loadKubeConfig } from "./kubeconfig.js";

/** A kind of object the client reads or writes, and where it lives in the API. */
export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  /** The URL segment and the `resource` label of the request metrics. */
  plural: string;
  namespaced: boolean;
}

const core = (kind: string, plural: string, namespaced: boolean): ResourceType => ({
  group: "",
  version: "v1",
  kind,
  plural,
  namespaced,
});

export const SECRETS = core("Secret", "secrets", true);
export const SERVICE_ACCOUNTS = core("ServiceAccount", "serviceaccounts", true);
export const NAMESPACES = core("Namespace", "namespaces", false);
export const EVENTS = core("Event", "events", true);
export const LEASES: ResourceType = {
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
};
export const SELF_SUBJECT_REVIEWS: ResourceType = {
  group: "authentication.k8s.io",
  version: "v1",
  kind: "SelfSubjectReview",
  plural: "selfsubjectreviews",
  namespaced: false,
};

/** "May I?": what the operator's own identity may do (kubectl auth can-i). */
export const SELF_SUBJECT_ACCESS_REVIEWS: ResourceType = {
  group: "authorization.k8s.io",
  version: "v1",
  kind: "SelfSubjectAccessReview",
  plural: "selfsubjectaccessreviews",
  namespaced: false,
};

/** An object's name, and its namespace for namespaced kinds. */
export interface ObjectRef {
  namespace?: string;
  name: string;
}

/** The URL path of a collection (no name) or of one object, and optionally a subresource. */
export function resourcePath(
  type: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  let path = type.group ? `/apis/${type.group}/${type.version}` : `/api/${type.version}`;
  if (type.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${type.plural}`;
  if (name !== undefined) path += `/${encodeURIComponent(name)}`;
  if (subresource) path += `/${subresource}`;
  return path;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continueToken?: string;
}

export type Query = Record<string, string | number | boolean | undefined>;

/** A request the API server answered with an error status; `message` is the server's own. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** The Status reason, e.g. "AlreadyExists", "Conflict", "Expired". */
    readonly reason?: string,
    /** The answer's Retry-After, in seconds, when it had one (429 from API Priority and Fairness, 5xx). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/**
 * The right to write, as leader election grants it. Once `signal` aborts,
 * every write is refused and every request in flight is cancelled; `check`
 * runs before each write and throws when the right has lapsed by the clock
 * even though nobody has aborted yet (a process stopped past its lease).
 */
export interface WriteFence {
  readonly signal: AbortSignal;
  check(): void;
  /**
   * While the leader's own Lease renewal is being throttled (429), this
   * client's requests wait for it: under API Priority and Fairness both
   * share the operator's seats, and a fan-out must not starve the renewal
   * that keeps it leader. Undefined when nothing needs to wait.
   */
  gate?(): Promise<void> | undefined;
}

/** A write refused because this replica is no longer allowed to write. */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FencedError";
  }
}

/** The error a fence throws when it refuses a write. */
export function fenced(message: string): FencedError {
  return new FencedError(message);
}

/** `ecr-creds-refresher/<version> (<os>/<arch>)`, as client-go builds its User-Agent. */
export const USER_AGENT = `ecr-creds-refresher/${packageVersion()} (${platform()}/${arch()})`;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
    ) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

export interface KubeClientOptions {
  qps: number;
  burst: number;
  /** Sent with every write, so managedFields say who wrote what. */
  fieldManager?: string;
  /**
   * For a request that is not a watch: how long the connection may stay
   * silent (no bytes either way) before the request is given up. A slow but
   * flowing answer is not cut.
   */
  requestTimeoutMs?: number;
  /**
   * A watch that carries no bytes this long is cut and resumed. Longer than
   * the API server's bookmark interval (a bookmark about every 60 s), so a
   * quiet but healthy watch is never cut; TCP keep-alive covers a dead peer.
   */
  watchInactivityMs?: number;
  /** Called after every request (each attempt of a retried one), for the metrics. */
  onRequest?: (verb: string, resource: string, code: number, seconds: number) => void;
  /** Leadership: writes are refused and requests cancelled once it is gone. */
  fence?: WriteFence;
  /** How many times one request is retried after a 429/5xx with Retry-After (client-go: 10). */
  maxRetries?: number;
  /**
   * The longest wait a Retry-After may impose, in ms (default 30 000). API
   * Priority and Fairness raises its Retry-After while a priority level keeps
   * refusing, doubling up to 32 s (k8s.io/apiserver
   * pkg/util/flowcontrol/dropped_requests_tracker.go): a request that must
   * land within a deadline (a Lease renewal) caps it well below that.
   */
  maxRetryAfterMs?: number;
  /** Sent as User-Agent (default `USER_AGENT`). */
  userAgent?: string;
  /** Called before each retry, for logs and tests. */
  onRetry?: (method: string, path: string, reason: string, waitMs: number) => void;
}

/** The API server's bookmark interval, for the watch watchdog. */
export const BOOKMARK_INTERVAL_MS = 60_000;
const DEFAULT_WATCH_INACTIVITY_MS = 2 * BOOKMARK_INTERVAL_MS + 30_000;
/** A Retry-After longer than this is cut to it: a request must not sleep for minutes. */
const MAX_RETRY_AFTER_MS = 30_000;

export type WatchCallback = (type: string, object: unknown) => void;

/** The watch half of the client, which the informers need. */
export interface Watcher {
  /**
   * Streams `path`'s changes to `onEvent` until the server ends the stream,
   * the connection fails or the returned controller aborts; then calls
   * `onDone` once (with the error, if any: an `ApiError` for an HTTP error
   * status, a `TimeoutError` for a silent watch).
   */
  watch(
    path: string,
    query: Query,
    onEvent: WatchCallback,
    onDone: (err?: unknown) => void,
  ): Promise<AbortController>;
}

export class KubeClient implements Watcher {
  private readonly limiter: TokenBucket;
  private agents:
    | {
        cert: Buffer | undefined;
        key: Buffer | undefined;
        pooled: http.Agent;
        /** The options every request and every watch carry: TLS settings and agent. */
        requests: https.RequestOptions;
        watches: https.RequestOptions;
      }
    | undefined;

  constructor(
    readonly connection: Connection,
    private readonly opts: KubeClientOptions,
  ) {
    this.limiter = new TokenBucket(opts.qps, opts.burst);
  }

  get<T extends KubernetesObject>(type: ResourceType, ref: ObjectRef): Promise<T> {
    return this.call("get", type, "GET", resourcePath(type, ref.namespace, ref.name), {});
  }

  list<T extends KubernetesObject>(
    type: ResourceType,
    opts: ListOptions = {},
  ): Promise<ObjectList<T>> {
    return this.call("list", type, "GET", resourcePath(type, opts.namespace), {
      query: {
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        limit: opts.limit,
        continue: opts.continueToken,
      },
      // A page of Secrets or Namespaces is large and compresses ten to one.
      gzip: true,
    });
  }

  /** Creates `body` in its `metadata.namespace`. */
  create<T extends KubernetesObject>(type: ResourceType, body: T): Promise<T> {
    const path = resourcePath(type, body.metadata?.namespace);
    return this.call("create", type, "POST", path, {
      query: this.writeQuery(),
      body: withKind(type, body),
    });
  }

  /**
   * POSTs to a subresource of one object (`serviceaccounts/token`: a
   * TokenRequest) and returns the API server's answer.
   */
  createSubresource<T>(
    type: ResourceType,
    ref: ObjectRef,
    subresource: string,
    body: object,
  ): Promise<T> {
    const path = resourcePath(type, ref.namespace, ref.name, subresource);
    return this.call("create", type, "POST", path, {
      body,
      resource: `${type.plural}/${subresource}`,
    });
  }

  /** Replaces the object named by `body.metadata` (its resourceVersion guards the write). */
  replace<T extends KubernetesObject>(type: ResourceType, body: T): Promise<T> {
    const path = resourcePath(type, body.metadata?.namespace, body.metadata?.name ?? "");
    return this.call("update", type, "PUT", path, {
      query: this.writeQuery(),
      body: withKind(type, body),
      conditional: Boolean(body.metadata?.resourceVersion),
    });
  }

  /**
   * A JSON merge patch (RFC 7386); a `metadata.resourceVersion` in it makes
   * it conditional (409 Conflict when the object has moved on).
   */
  patch<T extends KubernetesObject>(
    type: ResourceType,
    ref: ObjectRef,
    patch: object,
    subresource?: "status",
  ): Promise<T> {
    const path = resourcePath(type, ref.namespace, ref.name, subresource);
    const rv = (patch as KubernetesObject).metadata?.resourceVersion;
    return this.call("patch", type, "PATCH", path, {
      query: this.writeQuery(),
      body: patch,
      contentType: "application/merge-patch+json",
      resource: subresource ? `${type.plural}/${subresource}` : undefined,
      conditional: Boolean(rv),
    });
  }

  /**
   * A status merge patch that applies only to the object as it was at
   * `resourceVersion`: a replica that read an older object (an old leader)
   * gets 409 Conflict instead of overwriting a newer status.
   */
  patchStatus<T extends KubernetesObject>(
    type: ResourceType,
    ref: ObjectRef,
    resourceVersion: string,
    status: unknown,
  ): Promise<T> {
    return this.patch<T>(type, ref, { metadata: { resourceVersion }, status }, "status");
  }

  /** Deletes one object; a `resourceVersion` or `uid` precondition makes it conditional. */
  async delete(
    type: ResourceType,
    ref: ObjectRef,
    preconditions?: { resourceVersion?: string; uid?: string },
  ): Promise<void> {
    const body = preconditions
      ? { apiVersion: "v1", kind: "DeleteOptions", preconditions }
      : undefined;
    await this.call("delete", type, "DELETE", resourcePath(type, ref.namespace, ref.name), {
      body,
      conditional: Boolean(preconditions?.resourceVersion),
    });
  }

  private writeQuery(): Query {
    return this.opts.fieldManager ? { fieldManager: this.opts.fieldManager } : {};
  }

  /** Throws when this replica may not write now (leadership lost or lapsed). */
  private checkFence(method: string, path: string): void {
    const fence = this.opts.fence;
    if (!fence) return;
    if (fence.signal.aborted)
      throw new FencedError(`refused ${method} ${path}: this replica is no longer the leader`);
    fence.check();
  }

  /**
   * One request under the client's rate limit, recorded for the metrics, and
   * retried as client-go retries: after a 429 or 5xx that says Retry-After
   * (up to `maxRetries` times, each wait with up to 20 % jitter so a throttled
   * fan-out does not come back in one wave), and once after a reset
   * connection when sending it twice is harmless (a read, or a write guarded
   * by a resourceVersion).
   */
  private async call<T>(
    verb: string,
    type: ResourceType,
    method: string,
    path: string,
    o: CallOptions,
  ): Promise<T> {
    const resource = o.resource ?? type.plural;
    const write = method !== "GET";
    const idempotent = !write || o.conditional === true;
    const maxRetries = this.opts.maxRetries ?? 10;
    let resets = 0;
    for (let attempt = 0; ; attempt++) {
      const gate = this.opts.fence?.gate?.();
      if (gate !== undefined) await gate;
      if (write) this.checkFence(method, path);
      await this.limiter.take();
      // Waiting for a token may have outlasted leadership.
      if (write) this.checkFence(method, path);
      const start = performance.now();
      let waitMs: number | undefined;
      let reason = "";
      try {
        const result = (await this.send(method, path, o)) as T;
        this.opts.onRequest?.(verb, resource, 200, (performance.now() - start) / 1000);
        return result;
      } catch (err) {
        this.opts.onRequest?.(verb, resource, statusCode(err), (performance.now() - start) / 1000);
        if (this.opts.fence?.signal.aborted)
          throw new FencedError(
            `cancelled ${method} ${path}: this replica is no longer the leader`,
          );
        if (
          err instanceof ApiError &&
          err.retryAfterSeconds !== undefined &&
          (err.code === 429 || (err.code >= 500 && err.code < 600)) &&
          attempt < maxRetries
        ) {
          waitMs =
            Math.min(
              err.retryAfterSeconds * 1000,
              this.opts.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS,
            ) *
            (1 + Math.random() * 0.2);
          reason = `HTTP ${err.code}`;
        } else if (idempotent && resets === 0 && isConnectionReset(err)) {
          resets++;
          waitMs = 0;
          reason = "connection reset";
        }
        if (waitMs === undefined) throw err;
      }
      this.opts.onRetry?.(method, path, reason, waitMs);
      await sleep(waitMs, this.opts.fence?.signal);
    }
  }

  /** The headers of every request: who we are, to whom we are speaking, as whom. */
  private headers(creds: Credentials): http.OutgoingHttpHeaders {
    const headers: http.OutgoingHttpHeaders = {
      Accept: "application/json",
      "User-Agent": this.opts.userAgent ?? USER_AGENT,
    };
    if (creds.authorization) headers.Authorization = creds.authorization;
    const as = this.connection.impersonate;
    if (as?.user) headers["Impersonate-User"] = as.user;
    if (as?.uid) headers["Impersonate-Uid"] = as.uid;
    if (as?.groups?.length) headers["Impersonate-Group"] = as.groups;
    for (const [key, values] of Object.entries(as?.extra ?? {}))
      headers[`Impersonate-Extra-${encodeURIComponent(key)}`] = values;
    return headers;
  }

  private async send(
    method: string,
    path: string,
    o: CallOptions,
    retried = false,
  ): Promise<unknown> {
    const creds = await this.connection.credentials();
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const headers = this.headers(creds);
    if (o.gzip) headers["Accept-Encoding"] = "gzip";
    if (payload) {
      headers["Content-Type"] = o.contentType ?? "application/json";
      headers["Content-Length"] = payload.length;
    }
    const timeoutMs = this.opts.requestTimeoutMs ?? 60_000;
    const answer = await new Promise<{ status: number; text: string; retryAfter?: string }>(
      (resolve, reject) => {
        const req = this.transport().request(
          this.url(path, o.query ?? {}),
          {
            method,
            headers,
            ...this.transportFor(creds),
            timeout: timeoutMs,
            signal: this.opts.fence?.signal,
          },
          (res) => {
            const chunks: Buffer[] = [];
            const body =
              res.headers["content-encoding"] === "gzip" ? res.pipe(createGunzip()) : res;
            res.on("error", reject);
            body.on("error", reject);
            body.on("data", (c: Buffer) => chunks.push(c));
            body.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString("utf8"),
                retryAfter: res.headers["retry-after"],
              }),
            );
          },
        );
        req.on("timeout", () =>
          req.destroy(
            new Error(`${method} ${path}: the API server sent nothing for ${timeoutMs} ms`),
          ),
        );
        req.on("error", reject);
        req.end(payload);
      },
    );
    const { status, text } = answer;
    if (status === 401 && !retried) {
      // Expired exec-plugin credentials or a rotated token file: renew once.
      // Only the credentials this request used are dropped, so a burst of
      // 401s renews them once.
      this.connection.invalidate(creds);
      return this.send(method, path, o, true);
    }
    if (status < 200 || status >= 300)
      throw errorFromResponse(status, text, method, path, answer.retryAfter);
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      // A proxy's HTML page, or a cut answer: say where, not just "Unexpected token".
      throw new Error(
        `${method} ${path}: HTTP ${status}, but the answer is not JSON: ${text.slice(0, 100)}`,
      );
    }
  }

  async watch(
    path: string,
    query: Query,
    onEvent: WatchCallback,
    onDone: (err?: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const inactivityMs = this.opts.watchInactivityMs ?? DEFAULT_WATCH_INACTIVITY_MS;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      controller.abort();
      onDone(err);
    };
    // One timer for the watch's life: data only notes the time, and the timer,
    // when it fires, waits out the rest (a busy watch's chunks each re-arming
    // a timer cost a fan-out thousands of timer operations).
    let lastData = Date.now();
    const arm = (delayMs: number) => {
      timer = setTimeout(() => {
        const silentMs = Date.now() - lastData;
        if (silentMs < inactivityMs) return arm(inactivityMs - silentMs);
        const err = new Error(`watch ${path} carried nothing for ${inactivityMs} ms`);
        err.name = "TimeoutError";
        finish(err);
      }, delayMs);
      timer.unref();
    };
    const noteData = () => {
      lastData = Date.now();
    };
    controller.signal.addEventListener("abort", () => finish(), { once: true });
    let creds: Credentials;
    try {
      creds = await this.connection.credentials();
    } catch (err) {
      finish(err);
      return controller;
    }
    arm(inactivityMs);
    const req = this.transport().request(
      this.url(path, { ...query, watch: true }),
      {
        method: "GET",
        headers: this.headers(creds),
        ...this.transportFor(creds, true),
        signal: controller.signal,
      },
      (res) => {
        if (res.statusCode !== 200) {
          this.refusedWatch(res, creds, path, finish);
          return;
        }
        noteData();
        const lines = lineSplitter((line) => {
          let event: { type?: string; object?: unknown };
          try {
            event = JSON.parse(line) as { type?: string; object?: unknown };
          } catch {
            // A torn stream: end the watch, the informer relists.
            finish(new Error(`watch ${path}: the API server sent a line that is not JSON`));
            return false;
          }
          if (finished) return false;
          onEvent(event.type ?? "", event.object);
          return true;
        });
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          noteData();
          lines(chunk);
        });
        res.on("end", () => finish());
        res.on("close", () => finish());
        res.on("error", (err) => finish(err));
      },
    );
    // A peer that vanished without a word (a NAT or firewall dropped the
    // flow) is found by TCP keep-alive probes, not by waiting for data.
    req.on("socket", (socket) => socket.setKeepAlive(true, 30_000));
    req.on("error", (err) => finish(controller.signal.aborted ? undefined : err));
    req.end();
    return controller;
  }

  /** Ends a watch the server refused with the error its answer carries (a 401 renews credentials). */
  private refusedWatch(
    res: http.IncomingMessage,
    creds: Credentials,
    path: string,
    finish: (err?: unknown) => void,
  ): void {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => {
      if (res.statusCode === 401) this.connection.invalidate(creds);
      const body = Buffer.concat(chunks).toString("utf8");
      finish(errorFromResponse(res.statusCode ?? 0, body, "GET", path, res.headers["retry-after"]));
    });
    res.on("error", finish);
  }

  private transport(): typeof https | typeof http {
    return this.connection.server.protocol === "http:" ? http : https;
  }

  private url(path: string, query: Query): URL {
    const url = new URL(this.connection.server.href.replace(/\/$/, "") + path);
    for (const [k, v] of Object.entries(query))
      if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
    return url;
  }

  /**
   * One keep-alive agent for all requests, so a fan-out reuses connections
   * instead of paying a TLS handshake per write, and one without keep-alive
   * for watches, whose connections end with the watch; with the TLS settings
   * each request carries. New ones only when the client certificate changes
   * (an exec plugin renewed it).
   */
  private transportFor(creds: Credentials, watch = false): https.RequestOptions {
    const same = (a?: Buffer, b?: Buffer) => a === b || (!!a && !!b && a.equals(b));
    let t = this.agents;
    if (t === undefined || !same(t.cert, creds.cert) || !same(t.key, creds.key)) {
      t?.pooled.destroy();
      const tls = tlsOptions(this.connection, creds);
      const pooled = newAgent(this.connection, true);
      t = this.agents = {
        cert: creds.cert,
        key: creds.key,
        pooled,
        requests: { ...tls, agent: pooled },
        watches: { ...tls, agent: newAgent(this.connection, false) },
      };
    }
    return watch ? t.watches : t.requests;
  }
}

interface CallOptions {
  query?: Query;
  body?: unknown;
  contentType?: string;
  /** The `resource` label of the metrics, when not the type's plural (a subresource). */
  resource?: string;
  /** A write guarded by a resourceVersion: sending it twice cannot apply it twice. */
  conditional?: boolean;
  /** Ask for a gzipped answer (lists). */
  gzip?: boolean;
}

/**
 * The one place a connection agent is built: to the connection's server,
 * through the kubeconfig's proxy-url, else the proxy HTTPS_PROXY / NO_PROXY
 * name for it, else direct (src/kube/proxy.ts).
 */
export function newAgent(c: Connection, keepAlive: boolean): http.Agent {
  return serverAgent(c.server, { keepAlive, ...(c.proxyUrl ? { proxy: c.proxyUrl } : {}) });
}

/** The TLS settings of every request: the connection's CA and server name, the client certificate. */
function tlsOptions(c: Connection, creds: Credentials): https.RequestOptions {
  return {
    ca: c.ca,
    cert: creds.cert,
    key: creds.key,
    rejectUnauthorized: !c.insecureSkipTLSVerify,
    ...(c.tlsServerName ? { servername: c.tlsServerName } : {}),
  };
}

/** A connection the peer cut: nothing was answered, so an idempotent request may go again. */
function isConnectionReset(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ECONNRESET" || code === "EPIPE";
}

/** Waits `ms`; rejects with a FencedError at once if `signal` aborts meanwhile. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new FencedError("this replica is no longer the leader"));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new FencedError("this replica is no longer the leader"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Fills in apiVersion and kind from the resource type when the body leaves them out. */
function withKind<T extends KubernetesObject>(type: ResourceType, body: T): T {
  return {
    apiVersion: type.group ? `${type.group}/${type.version}` : type.version,
    kind: type.kind,
    ...body,
  };
}

function errorFromResponse(
  status: number,
  text: string,
  method: string,
  path: string,
  retryAfterHeader?: string,
): ApiError {
  // Retry-After in seconds, as the API server sends it (an HTTP date is not used by it).
  const retryAfter =
    retryAfterHeader !== undefined && /^\d+$/.test(retryAfterHeader.trim())
      ? Number(retryAfterHeader.trim())
      : undefined;
  try {
    const s = JSON.parse(text) as Status;
    if (s?.kind === "Status" && s.message)
      return new ApiError(status, s.message, s.reason, retryAfter);
  } catch {
    // not a Status: fall through
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(
    status,
    `${method} ${path}: HTTP ${status}${snippet ? `: ${snippet}` : ""}`,
    undefined,
    retryAfter,
  );
}

/** The HTTP status of a failed API request (or the code of a Status object), or 0 when it never got an answer. */
export function statusCode(err: unknown): number {
  if (typeof err === "object" && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "number") return code;
  }
  return 0;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;
export const isForbidden = (err: unknown): boolean => statusCode(err) === 403;

/** The API server's own message for a failed request, without the request body. */
export function apiErrorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A chunk handler that hands each complete, non-empty line of a
 * newline-delimited stream to `onLine` (false: stop reading this chunk).
 * Only each new chunk is searched for the newline and a line is joined once:
 * appending chunks to one string and searching it would copy a large
 * object's line (a Secret of a megabyte) once per chunk.
 */
function lineSplitter(onLine: (line: string) => boolean): (chunk: string) => void {
  // The pieces of a line not yet ended.
  let pending: string[] = [];
  return (chunk) => {
    let start = 0;
    for (let nl = chunk.indexOf("\n"); nl >= 0; nl = chunk.indexOf("\n", start)) {
      pending.push(chunk.slice(start, nl));
      const line = (pending.length === 1 ? (pending[0] ?? "") : pending.join("")).trim();
      pending = [];
      start = nl + 1;
      if (line && !onLine(line)) return;
    }
    if (start < chunk.length) pending.push(chunk.slice(start));
  };
}
