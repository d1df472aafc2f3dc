// The one place that talks HTTP to the API server: a pooled keep-alive
// connection, client-side QPS/burst, JSON in and out, watches as streams of
// lines, and a count of every request by verb, resource and code for the
// metrics.
//
// The operator uses a handful of endpoints (Secrets, ServiceAccounts,
// Namespaces, Events, Leases and its own resource), so this is a small client
// of its own rather than a generated one: a full generated client costs about
// 80 MB of memory just to load, more than everything else the operator holds.
import * as http from "node:http";
import * as https from "node:https";
import type { Connection, Credentials } from "./kubeconfig.js";
import { OutboundAgent } from "./proxy.js";
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
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface KubeClientOptions {
  qps: number;
  burst: number;
  /** Sent with every write, so managedFields say who wrote what. */
  fieldManager?: string;
  /** For a request that is not a watch: how long to wait for the whole answer. */
  requestTimeoutMs?: number;
  /** A watch that carries no bytes this long is cut (the server sends bookmarks about once a minute). */
  watchInactivityMs?: number;
  /** Called after every request, for the metrics. */
  onRequest?: (verb: string, resource: string, code: number, seconds: number) => void;
}

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
  private agents: { key: string; pooled: http.Agent; watches: http.Agent } | undefined;

  constructor(
    readonly connection: Connection,
    private readonly opts: KubeClientOptions,
  ) {
    this.limiter = new TokenBucket(opts.qps, opts.burst);
  }

  get<T extends KubernetesObject>(type: ResourceType, ref: ObjectRef): Promise<T> {
    return this.call("get", type, "GET", resourcePath(type, ref.namespace, ref.name));
  }

  list<T extends KubernetesObject>(
    type: ResourceType,
    opts: ListOptions = {},
  ): Promise<ObjectList<T>> {
    return this.call("list", type, "GET", resourcePath(type, opts.namespace), {
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
      limit: opts.limit,
      continue: opts.continueToken,
    });
  }

  /** Creates `body` in its `metadata.namespace`. */
  create<T extends KubernetesObject>(type: ResourceType, body: T): Promise<T> {
    const path = resourcePath(type, body.metadata?.namespace);
    return this.call("create", type, "POST", path, this.writeQuery(), withKind(type, body));
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
    return this.call(
      "create",
      type,
      "POST",
      path,
      {},
      body,
      "application/json",
      `${type.plural}/${subresource}`,
    );
  }

  /** Replaces the object named by `body.metadata` (its resourceVersion guards the write). */
  replace<T extends KubernetesObject>(type: ResourceType, body: T): Promise<T> {
    const path = resourcePath(type, body.metadata?.namespace, body.metadata?.name ?? "");
    return this.call("update", type, "PUT", path, this.writeQuery(), withKind(type, body));
  }

  /** A JSON merge patch (RFC 7386); a `metadata.resourceVersion` in it makes it conditional. */
  patch<T extends KubernetesObject>(
    type: ResourceType,
    ref: ObjectRef,
    patch: object,
    subresource?: "status",
  ): Promise<T> {
    const path = resourcePath(type, ref.namespace, ref.name, subresource);
    return this.call(
      "patch",
      type,
      "PATCH",
      path,
      this.writeQuery(),
      patch,
      "application/merge-patch+json",
      subresource ? `${type.plural}/${subresource}` : undefined,
    );
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
    await this.call(
      "delete",
      type,
      "DELETE",
      resourcePath(type, ref.namespace, ref.name),
      {},
      body,
    );
  }

  private writeQuery(): Query {
    return this.opts.fieldManager ? { fieldManager: this.opts.fieldManager } : {};
  }

  /** One request under the client's rate limit, recorded for the metrics. */
  private async call<T>(
    verb: string,
    type: ResourceType,
    method: string,
    path: string,
    query: Query = {},
    body?: unknown,
    contentType = "application/json",
    resource = type.plural,
  ): Promise<T> {
    await this.limiter.take();
    const start = performance.now();
    try {
      const result = (await this.send(method, path, query, body, contentType)) as T;
      this.opts.onRequest?.(verb, resource, 200, (performance.now() - start) / 1000);
      return result;
    } catch (err) {
      this.opts.onRequest?.(verb, resource, statusCode(err), (performance.now() - start) / 1000);
      throw err;
    }
  }

  private async send(
    method: string,
    path: string,
    query: Query,
    body: unknown,
    contentType: string,
    retried = false,
  ): Promise<unknown> {
    const creds = await this.connection.credentials();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = { Accept: "application/json" };
    if (payload) {
      headers["Content-Type"] = contentType;
      headers["Content-Length"] = payload.length;
    }
    if (creds.authorization) headers.Authorization = creds.authorization;
    const timeoutMs = this.opts.requestTimeoutMs ?? 60_000;
    const { status, text } = await new Promise<{ status: number; text: string }>(
      (resolve, reject) => {
        const req = this.transport().request(
          this.url(path, query),
          { method, headers, agent: this.agentFor(creds), timeout: timeoutMs },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("error", reject);
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString("utf8"),
              }),
            );
          },
        );
        req.on("timeout", () =>
          req.destroy(
            new Error(`${method} ${path}: no answer from the API server in ${timeoutMs} ms`),
          ),
        );
        req.on("error", reject);
        req.end(payload);
      },
    );
    if (status === 401 && !retried) {
      // Expired exec-plugin or rotated file credentials: fetch them anew once.
      this.connection.invalidate();
      return this.send(method, path, query, body, contentType, true);
    }
    if (status < 200 || status >= 300) throw errorFromResponse(status, text, method, path);
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
    const inactivityMs = this.opts.watchInactivityMs ?? 30_000;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      controller.abort();
      onDone(err);
    };
    const resetTimer = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const err = new Error(`watch ${path} carried nothing for ${inactivityMs} ms`);
        err.name = "TimeoutError";
        finish(err);
      }, inactivityMs);
      timer.unref();
    };
    controller.signal.addEventListener("abort", () => finish(), { once: true });
    let creds: Credentials;
    try {
      creds = await this.connection.credentials();
    } catch (err) {
      finish(err);
      return controller;
    }
    const headers: http.OutgoingHttpHeaders = { Accept: "application/json" };
    if (creds.authorization) headers.Authorization = creds.authorization;
    resetTimer();
    const req = this.transport().request(
      this.url(path, { ...query, watch: true }),
      { method: "GET", headers, agent: this.agentFor(creds, true), signal: controller.signal },
      (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            if (res.statusCode === 401) this.connection.invalidate();
            finish(
              errorFromResponse(
                res.statusCode ?? 0,
                Buffer.concat(chunks).toString("utf8"),
                "GET",
                path,
              ),
            );
          });
          res.on("error", finish);
          return;
        }
        resetTimer();
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          resetTimer();
          buffered += chunk;
          let nl = buffered.indexOf("\n");
          while (nl >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            nl = buffered.indexOf("\n");
            if (!line) continue;
            let event: { type?: string; object?: unknown };
            try {
              event = JSON.parse(line) as { type?: string; object?: unknown };
            } catch {
              // A torn stream: end the watch, the informer relists.
              finish(new Error(`watch ${path}: the API server sent a line that is not JSON`));
              return;
            }
            if (finished) return;
            onEvent(event.type ?? "", event.object);
          }
        });
        res.on("end", () => finish());
        res.on("close", () => finish());
        res.on("error", (err) => finish(err));
      },
    );
    req.on("error", (err) => finish(controller.signal.aborted ? undefined : err));
    req.end();
    return controller;
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
   * for watches, whose connections end with the watch. New ones only when the
   * client certificate changes (an exec plugin renewed it).
   */
  private agentFor(creds: Credentials, watch = false): http.Agent {
    const key = creds.cert ? `${creds.cert.toString("base64")}|${creds.key?.length}` : "";
    if (this.agents?.key !== key) {
      this.agents?.pooled.destroy();
      this.agents = {
        key,
        pooled: this.newAgent(creds, true),
        watches: this.newAgent(creds, false),
      };
    }
    return watch ? this.agents.watches : this.agents.pooled;
  }

  /** Direct, or through the kubeconfig's proxy-url, else the proxy HTTPS_PROXY / NO_PROXY name. */
  private newAgent(creds: Credentials, keepAlive: boolean): http.Agent {
    const c = this.connection;
    return new OutboundAgent({
      keepAlive,
      ...(c.proxyUrl ? { proxy: c.proxyUrl } : {}),
      tls: {
        ca: c.ca,
        cert: creds.cert,
        key: creds.key,
        rejectUnauthorized: !c.insecureSkipTLSVerify,
        ...(c.tlsServerName ? { servername: c.tlsServerName } : {}),
      },
    });
  }
}

/** Fills in apiVersion and kind from the resource type when the body leaves them out. */
function withKind<T extends KubernetesObject>(type: ResourceType, body: T): T {
  return {
    apiVersion: type.group ? `${type.group}/${type.version}` : type.version,
    kind: type.kind,
    ...body,
  };
}

function errorFromResponse(status: number, text: string, method: string, path: string): ApiError {
  try {
    const s = JSON.parse(text) as Status;
    if (s?.kind === "Status" && s.message) return new ApiError(status, s.message, s.reason);
  } catch {
    // not a Status: fall through
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(status, `${method} ${path}: HTTP ${status}${snippet ? `: ${snippet}` : ""}`);
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

/** The API server's own message for a failed request, without the request body. */
export function apiErrorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
