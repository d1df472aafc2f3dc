// The client's wire behaviour against a small HTTP server that records what
// it is sent: paths, query, content types, bodies, Status errors as the API
// server writes them, a 401 answered by renewing credentials, and watch
// streams split across chunks. The integration tests run the same client
// against the real API server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import {
  ApiError,
  FencedError,
  isConflict,
  KubeClient,
  LEASES,
  SECRETS,
  SERVICE_ACCOUNTS,
  statusCode,
  USER_AGENT,
} from "./client.js";
import type { Connection, Credentials } from "./kubeconfig.js";

// A cluster-scoped custom resource with a status subresource, as the operator's own is.
const ECR_PULL_SECRETS = {
  group: "ecrcreds.io",
  version: "v1alpha1",
  kind: "ECRPullSecret",
  plural: "ecrpullsecrets",
  namespaced: false,
};

interface Seen {
  method: string;
  url: URL;
  headers: IncomingMessage["headers"];
  body: string;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = undefined;
});

async function apiServer(
  answer: (req: Seen, res: ServerResponse) => void,
): Promise<{ url: URL; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const s = {
        method: req.method ?? "",
        url: new URL(req.url ?? "/", "http://x"),
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(s);
      answer(s, res);
    });
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { url: new URL(`http://127.0.0.1:${port}`), seen };
}

function connection(url: URL, tokens: string[] = ["t1"]): Connection & { renewals: number } {
  let i = 0;
  const c = {
    server: url,
    insecureSkipTLSVerify: false,
    source: "test",
    renewals: 0,
    credentials: async (): Promise<Credentials> => ({
      authorization: `Bearer ${tokens[Math.min(i, tokens.length - 1)]}`,
    }),
    invalidate: () => {
      i++;
      c.renewals++;
    },
  };
  return c;
}

const json = (res: ServerResponse, code: number, body: unknown) => {
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
};

describe("KubeClient requests", () => {
  it("sends merge patches, creates and deletes to the right paths with the field manager", async () => {
    const { url, seen } = await apiServer((req, res) =>
      json(res, req.method === "POST" ? 201 : 200, {
        metadata: { name: "x", resourceVersion: "7" },
      }),
    );
    const requests: string[] = [];
    const kube = new KubeClient(connection(url), {
      qps: 0,
      burst: 0,
      fieldManager: "ecr-creds-refresher",
      onRequest: (verb, resource, code) => requests.push(`${verb} ${resource} ${code}`),
    });
    await kube.create(SECRETS, { metadata: { namespace: "team-a", name: "pull" }, type: "t" });
    const patched = await kube.patch(
      SERVICE_ACCOUNTS,
      { namespace: "team-a", name: "default" },
      { imagePullSecrets: [{ name: "pull" }] },
    );
    await kube.patch(ECR_PULL_SECRETS, { name: "prod" }, { status: { x: 1 } }, "status");
    await kube.delete(SECRETS, { namespace: "team-a", name: "pull" }, { resourceVersion: "5" });
    await kube.replace(LEASES, { metadata: { namespace: "ops", name: "leader" } });
    expect(patched.metadata?.resourceVersion).toBe("7");
    expect(seen.map((s) => `${s.method} ${s.url.pathname}`)).toEqual([
      "POST /api/v1/namespaces/team-a/secrets",
      "PATCH /api/v1/namespaces/team-a/serviceaccounts/default",
      "PATCH /apis/ecrcreds.io/v1alpha1/ecrpullsecrets/prod/status",
      "DELETE /api/v1/namespaces/team-a/secrets/pull",
      "PUT /apis/coordination.k8s.io/v1/namespaces/ops/leases/leader",
    ]);
    expect(seen.map((s) => s.url.searchParams.get("fieldManager"))).toEqual([
      "ecr-creds-refresher",
      "ecr-creds-refresher",
      "ecr-creds-refresher",
      null,
      "ecr-creds-refresher",
    ]);
    expect(seen.map((s) => s.headers["content-type"])).toEqual([
      "application/json",
      "application/merge-patch+json",
      "application/merge-patch+json",
      "application/json",
      "application/json",
    ]);
    expect(JSON.parse(seen[0]?.body ?? "")).toEqual({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { namespace: "team-a", name: "pull" },
      type: "t",
    });
    expect(JSON.parse(seen[3]?.body ?? "")).toEqual({
      apiVersion: "v1",
      kind: "DeleteOptions",
      preconditions: { resourceVersion: "5" },
    });
    expect(JSON.parse(seen[4]?.body ?? "").apiVersion).toBe("coordination.k8s.io/v1");
    expect(seen.every((s) => s.headers.authorization === "Bearer t1")).toBe(true);
    expect(requests).toEqual([
      "create secrets 200",
      "patch serviceaccounts 200",
      "patch ecrpullsecrets/status 200",
      "delete secrets 200",
      "update leases 200",
    ]);
  });

  it("lists with selectors and a continue token", async () => {
    const { url, seen } = await apiServer((_req, res) =>
      json(res, 200, { metadata: { resourceVersion: "9", continue: "next" }, items: [] }),
    );
    const kube = new KubeClient(connection(url), { qps: 0, burst: 0 });
    const page = await kube.list(SECRETS, {
      labelSelector: "ecrcreds.io/owner",
      limit: 500,
      continueToken: "abc",
    });
    expect(page.metadata?.continue).toBe("next");
    expect(seen[0]?.url.pathname).toBe("/api/v1/secrets");
    expect(Object.fromEntries(seen[0]?.url.searchParams ?? [])).toEqual({
      labelSelector: "ecrcreds.io/owner",
      limit: "500",
      continue: "abc",
    });
  });
});

describe("KubeClient errors and credentials", () => {
  it("turns a Status answer into an ApiError with the server's code, message and reason", async () => {
    const { url } = await apiServer((_req, res) =>
      json(res, 409, {
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        message: 'Operation cannot be fulfilled on secrets "pull": the object has been modified',
        reason: "Conflict",
        code: 409,
      }),
    );
    const codes: number[] = [];
    const kube = new KubeClient(connection(url), {
      qps: 0,
      burst: 0,
      onRequest: (_v, _r, code) => codes.push(code),
    });
    const err = await kube
      .patch(SECRETS, { namespace: "a", name: "pull" }, {})
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(isConflict(err)).toBe(true);
    expect((err as ApiError).reason).toBe("Conflict");
    expect((err as ApiError).message).toBe(
      'Operation cannot be fulfilled on secrets "pull": the object has been modified',
    );
    expect(codes).toEqual([409]);
  });

  it("renews credentials once after a 401 and retries", async () => {
    const { url, seen } = await apiServer((req, res) => {
      if (req.headers.authorization === "Bearer old")
        json(res, 401, { kind: "Status", message: "Unauthorized", code: 401 });
      else json(res, 200, { metadata: { name: "pull" } });
    });
    const conn = connection(url, ["old", "new"]);
    const kube = new KubeClient(conn, { qps: 0, burst: 0 });
    const s = await kube.get(SECRETS, { namespace: "a", name: "pull" });
    expect(s.metadata?.name).toBe("pull");
    expect(seen.map((r) => r.headers.authorization)).toEqual(["Bearer old", "Bearer new"]);
    expect(conn.renewals).toBe(1);
  });

  it("gives up on a request the server never answers, naming it", async () => {
    const { url } = await apiServer(() => undefined);
    const kube = new KubeClient(connection(url), { qps: 0, burst: 0, requestTimeoutMs: 200 });
    const err = await kube.get(SECRETS, { namespace: "a", name: "b" }).catch((e: unknown) => e);
    expect(String(err)).toContain(
      "GET /api/v1/namespaces/a/secrets/b: the API server sent nothing for 200 ms",
    );
    expect(statusCode(err)).toBe(0);
  });
});

describe("KubeClient retries, as client-go's rest client", () => {
  const tooMany = (res: ServerResponse, retryAfter?: string) => {
    res.writeHead(429, {
      "Content-Type": "application/json",
      ...(retryAfter ? { "Retry-After": retryAfter } : {}),
    });
    res.end(
      JSON.stringify({
        kind: "Status",
        message: "Too many requests, please try again later.",
        reason: "TooManyRequests",
        code: 429,
      }),
    );
  };

  it("waits out a 429 or 503 that says Retry-After, then succeeds; the metrics see every attempt", async () => {
    let n = 0;
    const { url, seen } = await apiServer((req, res) => {
      n++;
      if (n === 1) tooMany(res, "1");
      else if (n === 2) {
        res.writeHead(503, { "Retry-After": "1" });
        res.end("busy");
      } else json(res, req.method === "POST" ? 201 : 200, { metadata: { name: "pull" } });
    });
    const codes: number[] = [];
    const waits: number[] = [];
    const kube = new KubeClient(connection(url), {
      qps: 0,
      burst: 0,
      onRequest: (_v, _r, code) => codes.push(code),
      onRetry: (_m, _p, _reason, ms) => waits.push(ms),
    });
    const started = Date.now();
    await kube.create(SECRETS, { metadata: { namespace: "a", name: "pull" } });
    expect(seen.map((r) => r.method)).toEqual(["POST", "POST", "POST"]);
    expect(codes).toEqual([429, 503, 200]);
    // One second each, plus at most 20 % jitter.
    expect(waits.every((w) => w >= 1000 && w <= 1200)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });

  it("cuts a Retry-After to maxRetryAfterMs (APF asks up to 32 s; a Lease renewal cannot wait that)", async () => {
    let n = 0;
    const { url, seen } = await apiServer((_req, res) => {
      if (++n === 1) tooMany(res, "32");
      else json(res, 200, { metadata: { name: "lease" } });
    });
    const waits: number[] = [];
    const kube = new KubeClient(connection(url), {
      qps: 0,
      burst: 0,
      maxRetryAfterMs: 100,
      onRetry: (_m, _p, _reason, ms) => waits.push(ms),
    });
    await kube.get(SECRETS, { namespace: "a", name: "lease" });
    expect(seen).toHaveLength(2);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThanOrEqual(100);
    expect(waits[0]).toBeLessThanOrEqual(120);
  });

  it("gives up after maxRetries, and does not retry a 429 without Retry-After", async () => {
    const { url, seen } = await apiServer((req, res) =>
      tooMany(res, req.url.pathname.endsWith("/b") ? "0" : undefined),
    );
    const kube = new KubeClient(connection(url), { qps: 0, burst: 0, maxRetries: 2 });
    const bare = await kube.get(SECRETS, { namespace: "a", name: "a" }).catch((e: unknown) => e);
    expect(statusCode(bare)).toBe(429);
    expect(seen).toHaveLength(1);
    const bounded = await kube.get(SECRETS, { namespace: "a", name: "b" }).catch((e: unknown) => e);
    expect(statusCode(bounded)).toBe(429);
    expect((bounded as ApiError).retryAfterSeconds).toBe(0);
    expect(seen).toHaveLength(4);
  });

  it("retries a read and a resourceVersion-guarded write once on a reset connection, never a create", async () => {
    const cut = new Set(["GET", "PATCH", "POST"]);
    const { url, seen } = await apiServer((req, res) => {
      if (cut.delete(req.method)) {
        res.socket?.destroy();
        return;
      }
      json(res, 200, { metadata: { name: "x" } });
    });
    const kube = new KubeClient(connection(url), { qps: 0, burst: 0 });
    await kube.get(SECRETS, { namespace: "a", name: "x" });
    await kube.patch(
      SERVICE_ACCOUNTS,
      { namespace: "a", name: "default" },
      { metadata: { resourceVersion: "5" }, imagePullSecrets: [] },
    );
    const created = await kube
      .create(SECRETS, { metadata: { namespace: "a", name: "x" } })
      .catch((e: unknown) => e);
    expect((created as NodeJS.ErrnoException).code).toBe("ECONNRESET");
    expect(seen.map((r) => r.method)).toEqual(["GET", "GET", "PATCH", "PATCH", "POST"]);
  });
});

describe("KubeClient headers", () => {
  it("names itself, asks for gzip on lists and decodes it, and sends impersonation headers", async () => {
    const { url, seen } = await apiServer((req, res) => {
      const body = JSON.stringify({ metadata: { resourceVersion: "3" }, items: [{ a: 1 }] });
      if (req.headers["accept-encoding"] === "gzip") {
        res.writeHead(200, { "Content-Type": "application/json", "Content-Encoding": "gzip" });
        res.end(gzipSync(body));
      } else json(res, 200, JSON.parse(body));
    });
    const conn = {
      ...connection(url),
      impersonate: {
        user: "jane",
        uid: "u-1",
        groups: ["dev", "ops"],
        extra: { "scopes.example.com/x": ["a", "b"] },
      },
    };
    const kube = new KubeClient(conn, { qps: 0, burst: 0 });
    const list = await kube.list(SECRETS, {});
    await kube.get(SECRETS, { namespace: "a", name: "x" });
    expect(list.items).toEqual([{ a: 1 }]);
    expect(USER_AGENT).toMatch(
      /^ecr-creds-refresher\/\d+\.\d+\.\d+ \((linux|darwin|win32)\/\w+\)$/,
    );
    expect(seen.map((r) => r.headers["user-agent"])).toEqual([USER_AGENT, USER_AGENT]);
    expect(seen.map((r) => r.headers["accept-encoding"])).toEqual(["gzip", undefined]);
    expect(seen[0]?.headers["impersonate-user"]).toBe("jane");
    expect(seen[0]?.headers["impersonate-uid"]).toBe("u-1");
    expect(seen[0]?.headers["impersonate-group"]).toBe("dev, ops");
    expect(seen[0]?.headers["impersonate-extra-scopes.example.com%2fx"]).toBe("a, b");
  });
});

describe("KubeClient fence", () => {
  it("refuses writes once the fence says no, cancels requests in flight when it aborts, and still reads before", async () => {
    const { url, seen } = await apiServer((req, res) => {
      if (req.url.pathname.endsWith("/slow")) return; // never answered
      json(res, 200, { metadata: { name: "x" } });
    });
    const lost = new AbortController();
    let allowed = true;
    const kube = new KubeClient(connection(url), {
      qps: 0,
      burst: 0,
      fence: {
        signal: lost.signal,
        check: () => {
          if (!allowed) throw new FencedError("not the leader");
        },
      },
    });
    await kube.create(SECRETS, { metadata: { namespace: "a", name: "x" } });
    allowed = false;
    const refused = await kube
      .create(SECRETS, { metadata: { namespace: "a", name: "y" } })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FencedError);
    await kube.get(SECRETS, { namespace: "a", name: "x" });
    const inFlight = kube.get(SECRETS, { namespace: "a", name: "slow" }).catch((e: unknown) => e);
    for (
      const deadline = Date.now() + 5_000;
      !seen.some((r) => r.url.pathname.endsWith("/slow"));
    ) {
      if (Date.now() > deadline) throw new Error("the stand-in server never got the /slow request");
      await new Promise((r) => setTimeout(r, 10));
    }
    const abortedAt = Date.now();
    lost.abort();
    expect(await inFlight).toBeInstanceOf(FencedError);
    expect(Date.now() - abortedAt).toBeLessThan(100);
    expect(seen.map((r) => `${r.method} ${r.url.pathname.split("/").pop()}`)).toEqual([
      "POST secrets",
      "GET x",
      "GET slow",
    ]);
  });
});

describe("KubeClient watches", () => {
  it("delivers events split across chunks, in order, then ends when the server ends", async () => {
    const { url, seen } = await apiServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      const lines = [
        { type: "ADDED", object: { metadata: { name: "a", resourceVersion: "1" } } },
        { type: "MODIFIED", object: { metadata: { name: "a", resourceVersion: "2" } } },
        { type: "BOOKMARK", object: { metadata: { resourceVersion: "3" } } },
      ]
        .map((l) => `${JSON.stringify(l)}\n`)
        .join("");
      res.write(lines.slice(0, 17));
      setTimeout(() => res.write(lines.slice(17, 90)), 20);
      setTimeout(() => res.end(lines.slice(90)), 40);
    });
    const kube = new KubeClient(connection(url), { qps: 0, burst: 0 });
    const events: string[] = [];
    const done = new Promise<unknown>((resolve) => {
      void kube.watch(
        "/api/v1/secrets",
        { resourceVersion: "0", allowWatchBookmarks: true },
        (type, obj) =>
          events.push(
            `${type} ${(obj as { metadata: { resourceVersion: string } }).metadata.resourceVersion}`,
          ),
        resolve,
      );
    });
    expect(await done).toBeUndefined();
    expect(events).toEqual(["ADDED 1", "MODIFIED 2", "BOOKMARK 3"]);
    expect(Object.fromEntries(seen[0]?.url.searchParams ?? [])).toEqual({
      resourceVersion: "0",
      allowWatchBookmarks: "true",
      watch: "true",
    });
  });

  it("ends with the HTTP error of a refused watch, and with a TimeoutError when a watch goes silent", async () => {
    const { url } = await apiServer((req, res) => {
      if (req.url.searchParams.get("resourceVersion") === "old")
        json(res, 410, {
          kind: "Status",
          message: "too old resource version",
          reason: "Expired",
          code: 410,
        });
      else res.writeHead(200).flushHeaders();
    });
    const kube = new KubeClient(connection(url), { qps: 0, burst: 0, watchInactivityMs: 150 });
    const end = (rv: string) =>
      new Promise<unknown>((resolve) => {
        void kube.watch("/api/v1/secrets", { resourceVersion: rv }, () => undefined, resolve);
      });
    const gone = await end("old");
    expect(statusCode(gone)).toBe(410);
    expect((gone as ApiError).reason).toBe("Expired");
    const silent = await end("5");
    expect((silent as Error).name).toBe("TimeoutError");
  });

  it("keeps a watch that carries data open past the silence limit, and cuts it once it falls silent", async () => {
    // A bookmark every 40 ms for 600 ms (four times the 150 ms limit), then silence.
    const { url } = await apiServer((_req, res) => {
      res.writeHead(200).flushHeaders();
      let rv = 0;
      const ticker = setInterval(() => {
        rv++;
        res.write(
          `${JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: String(rv) } } })}\n`,
        );
        if (rv === 15) clearInterval(ticker);
      }, 40);
      res.on("close", () => clearInterval(ticker));
    });
    const kube = new KubeClient(connection(url), { qps: 0, burst: 0, watchInactivityMs: 150 });
    const versions: string[] = [];
    const started = Date.now();
    const ended = await new Promise<unknown>((resolve) => {
      void kube.watch(
        "/api/v1/secrets",
        { resourceVersion: "0" },
        (_type, obj) =>
          versions.push(
            String((obj as { metadata: { resourceVersion: string } }).metadata.resourceVersion),
          ),
        resolve,
      );
    });
    const lastedMs = Date.now() - started;
    expect((ended as Error).name).toBe("TimeoutError");
    expect(versions).toEqual(Array.from({ length: 15 }, (_, i) => String(i + 1)));
    // The last bookmark at ~600 ms, then 150 ms of silence.
    expect(lastedMs).toBeGreaterThanOrEqual(600 + 150 - 20);
  });
});
