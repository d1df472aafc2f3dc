// The informer's 410 Gone path. The real API server of the integration tests
// serves even compacted resourceVersions from its watch cache and never
// answers a watch with 410, so this speaks the watch wire format from a tiny
// HTTP endpoint to the client's real watch: an ERROR event carrying a 410
// Status, as kube-apiserver sends it, must make the informer relist.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, KubeClient, statusCode } from "./client.js";
import { Informer } from "./informer.js";
import { connectionFromKubeConfig } from "./kubeconfig.js";
import type { KubernetesObject } from "./types.js";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

async function watchEndpoint(
  answer: (n: number, url: URL, write: (line: object) => void, end: () => void) => void,
): Promise<{ kc: KubeClient; watches: URL[] }> {
  const watches: URL[] = [];
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    watches.push(url);
    res.writeHead(200, { "Content-Type": "application/json" });
    answer(
      watches.length,
      url,
      (line) => res.write(`${JSON.stringify(line)}\n`),
      () => res.end(),
    );
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const kc = new KubeClient(
    connectionFromKubeConfig({
      clusters: [{ name: "c", cluster: { server: `http://127.0.0.1:${port}` } }],
      users: [{ name: "u", user: {} }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
    { qps: 0, burst: 0 },
  );
  return { kc, watches };
}

const secret = (name: string, rv: string): KubernetesObject => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { namespace: "ns", name, resourceVersion: rv },
});

describe("Informer: relisting when the watch ends", () => {
  it("relists when the watch answers 410 Gone, and watches on from the new list", async () => {
    const { kc, watches } = await watchEndpoint((n, _url, write, end) => {
      if (n === 1) {
        write({
          type: "ERROR",
          object: {
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            message: "too old resource version: 5 (40)",
            reason: "Expired",
            code: 410,
          },
        });
        end();
      } else {
        write({ type: "ADDED", object: secret("c", "41") });
      }
    });
    let lists = 0;
    const activity: string[] = [];
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      // The first list is at 5; the relist finds the world at 40.
      list: async () => {
        lists++;
        return lists === 1
          ? { items: [secret("a", "5")], metadata: { resourceVersion: "5" } }
          : { items: [secret("b", "40")], metadata: { resourceVersion: "40" } };
      },
      onActivity: (what) => activity.push(what),
    });
    const seen: string[] = [];
    informer.on((event, obj) => seen.push(`${event} ${obj.metadata?.name}`));
    informer.start();
    await informer.synced;
    const deadline = Date.now() + 5_000;
    while (!informer.get("ns", "c") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    informer.stop();
    expect(activity).toContain("gone");
    expect(informer.lists).toBe(2);
    expect(watches.map((u) => u.searchParams.get("resourceVersion"))).toEqual(["5", "40"]);
    // The relist replaced the store: a went, b came, then c from the new watch.
    expect(seen).toEqual(["add a", "delete a", "add b", "add c"]);
    expect(
      informer
        .list()
        .map((o) => o.metadata?.name)
        .sort(),
    ).toEqual(["b", "c"]);
  });

  it("relists after a backoff when the watch connection fails", async () => {
    const { kc } = await watchEndpoint((n, _url, write) => {
      if (n === 1) server?.closeAllConnections();
      else write({ type: "ADDED", object: secret("late", "9") });
    });
    const activity: string[] = [];
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      list: async () => ({ items: [], metadata: { resourceVersion: "3" } }),
      onActivity: (what) => activity.push(what),
    });
    informer.start();
    await informer.synced;
    const deadline = Date.now() + 5_000;
    while (!informer.get("ns", "late") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    informer.stop();
    expect(activity).toContain("error");
    expect(informer.lists).toBe(2);
    expect(informer.get("ns", "late")).toBeDefined();
  });
});

describe("Informer: its own writes", () => {
  it("keeps a deleted object gone when the answer to our own write of it comes after the DELETED event", async () => {
    // Removing the last finalizer deletes the object: the watch's DELETED
    // and the PATCH's answer (the same resourceVersion) race.
    const { kc } = await watchEndpoint((_n, _url, write) => {
      write({ type: "DELETED", object: secret("gone", "7") });
    });
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      list: async () => ({ items: [secret("gone", "5")], metadata: { resourceVersion: "5" } }),
    });
    const seen: string[] = [];
    informer.on((event, obj) => seen.push(`${event} ${obj.metadata?.name}`));
    informer.start();
    await informer.synced;
    const deadline = Date.now() + 5_000;
    while (informer.get("ns", "gone") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    informer.stop();
    expect(seen).toEqual(["add gone", "delete gone"]);
    informer.observe(secret("gone", "7"));
    expect(informer.get("ns", "gone")).toBeUndefined();
    // Created again under the same name: a later version is the new object.
    informer.observe(secret("gone", "9"));
    expect(informer.get("ns", "gone")?.metadata?.resourceVersion).toBe("9");
  });

  it("takes the echo of its own write as known: not transformed, stored or told again", async () => {
    // A fan-out's every write comes back on the watch after observe() holds it.
    let send: (() => void) | undefined;
    const { kc } = await watchEndpoint((_n, _url, write) => {
      send = () => {
        write({ type: "ADDED", object: secret("mine", "7") });
        write({ type: "MODIFIED", object: secret("mine", "8") });
      };
    });
    const transformed: string[] = [];
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      list: async () => ({ items: [], metadata: { resourceVersion: "5" } }),
      transform: (obj) => {
        transformed.push(`${obj.metadata?.name}@${obj.metadata?.resourceVersion}`);
        return obj;
      },
    });
    const seen: string[] = [];
    informer.on((event, obj) => seen.push(`${event} ${obj.metadata?.resourceVersion}`));
    informer.start();
    await informer.synced;
    const deadline = Date.now() + 5_000;
    while (!send && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    informer.observe(secret("mine", "7"));
    send?.();
    while (informer.get("ns", "mine")?.metadata?.resourceVersion !== "8" && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    informer.stop();
    expect(informer.get("ns", "mine")?.metadata?.resourceVersion).toBe("8");
    expect(seen).toEqual(["update 8"]);
    expect(transformed).toEqual(["mine@7", "mine@8"]);
  });
});

describe("Informer: observe() with tellObserved", () => {
  it("with tellObserved, tells its own write once, at observe(), and not again for the echo", async () => {
    // A resource's status write: the pull-failure watch must hear of it,
    // though the watch's copy of that version is dropped as known.
    let send: (() => void) | undefined;
    const { kc } = await watchEndpoint((_n, _url, write) => {
      send = () => {
        write({ type: "MODIFIED", object: secret("mine", "7") });
        write({ type: "MODIFIED", object: secret("mine", "8") });
      };
    });
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      list: async () => ({ items: [secret("mine", "6")], metadata: { resourceVersion: "6" } }),
      tellObserved: true,
    });
    const seen: string[] = [];
    informer.on((event, obj, old) =>
      seen.push(`${event} ${old?.metadata?.resourceVersion}→${obj.metadata?.resourceVersion}`),
    );
    informer.start();
    await informer.synced;
    const deadline = Date.now() + 5_000;
    while (!send && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    informer.observe(secret("mine", "7"));
    // An older answer (a write that raced the watch) tells nothing.
    informer.observe(secret("mine", "5"));
    // A first sight by observe() is an add.
    informer.observe(secret("new", "7"));
    send?.();
    while (informer.get("ns", "mine")?.metadata?.resourceVersion !== "8" && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    informer.stop();
    expect(seen).toEqual(["add undefined→6", "update 6→7", "add undefined→7", "update 7→8"]);
  });
});

describe("Informer: after an ERROR event", () => {
  it("backs off after an ERROR event: a server answering every watch with ERROR 500 gets at most 3 watches in 2 s", async () => {
    const { kc, watches } = await watchEndpoint((_n, _url, write, end) => {
      write({
        type: "ERROR",
        object: {
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          message: "etcdserver: request timed out",
          reason: "InternalError",
          code: 500,
        },
      });
      end();
    });
    const errors: unknown[] = [];
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      list: async () => ({ items: [], metadata: { resourceVersion: "3" } }),
      onActivity: (what, err) => {
        if (what === "error") errors.push(err);
      },
    });
    informer.start();
    await informer.synced;
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 2_000));
    informer.stop();
    console.log(`ERROR 500 stand-in: ${watches.length} watches in ${Date.now() - started} ms`);
    expect(watches.length).toBeGreaterThanOrEqual(2);
    expect(watches.length).toBeLessThanOrEqual(3);
    expect(statusCode(errors[0])).toBe(500);
    expect((errors[0] as Error).message).toBe("etcdserver: request timed out");
  });
});

describe("Informer: paged lists", () => {
  it("falls back to one full list when the continue token expires mid-list", async () => {
    const { kc } = await watchEndpoint(() => undefined);
    const pages: string[] = [];
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      pageSize: 2,
      list: async ({ limit, continueToken }) => {
        pages.push(`limit=${limit} continue=${continueToken ?? ""}`);
        if (continueToken === "page-2")
          throw new ApiError(
            410,
            "The provided continue parameter is too old to display a consistent list result.",
            "Expired",
          );
        if (limit === 0)
          return {
            items: [secret("a", "9"), secret("b", "9"), secret("c", "9")],
            metadata: { resourceVersion: "9" },
          };
        return {
          items: [secret("a", "5"), secret("b", "5")],
          metadata: { resourceVersion: "5", continue: "page-2" },
        };
      },
    });
    informer.start();
    await informer.synced;
    informer.stop();
    expect(pages).toEqual(["limit=2 continue=", "limit=2 continue=page-2", "limit=0 continue="]);
    expect(informer.lists).toBe(1);
    expect(informer.lastResourceVersion).toBe("9");
    expect(
      informer
        .list()
        .map((o) => o.metadata?.name)
        .sort(),
    ).toEqual(["a", "b", "c"]);
  });

  it("pages instead when the server refuses a streaming list (422), and keeps paging", async () => {
    const urls: URL[] = [];
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      urls.push(url);
      if (url.searchParams.get("sendInitialEvents")) {
        res.writeHead(422, { "Content-Type": "application/json" });
        res.end(
          JSON.stringify({
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            reason: "Invalid",
            code: 422,
            message:
              "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
          }),
        );
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" });
    });
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    const kc = new KubeClient(
      connectionFromKubeConfig({
        clusters: [{ name: "c", cluster: { server: `http://127.0.0.1:${port}` } }],
        users: [{ name: "u", user: {} }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
      { qps: 0, burst: 0 },
    );
    let lists = 0;
    const informer = new Informer<KubernetesObject>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      streamingList: true,
      list: async () => {
        lists++;
        return { items: [secret("a", "5")], metadata: { resourceVersion: "5" } };
      },
    });
    informer.start();
    await informer.synced;
    const deadline = Date.now() + 5_000;
    while (urls.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    informer.restartWatch("5");
    while (urls.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    informer.stop();
    expect(lists).toBe(1);
    expect(informer.list().map((o) => o.metadata?.name)).toEqual(["a"]);
    expect(urls.map((u) => u.searchParams.get("sendInitialEvents"))).toEqual(["true", null, null]);
  });
});

describe("Informer: lists by watching", () => {
  it("lists by watching (sendInitialEvents): each object transformed as it comes, the store whole at the end bookmark", async () => {
    const { kc, watches } = await watchEndpoint((n, _url, write) => {
      if (n > 1) return;
      write({ type: "ADDED", object: { ...secret("a", "11"), data: { k: "x".repeat(1000) } } });
      write({ type: "ADDED", object: { ...secret("b", "12"), data: { k: "y" } } });
      write({ type: "DELETED", object: secret("b", "13") });
      write({
        type: "BOOKMARK",
        object: {
          kind: "Secret",
          apiVersion: "v1",
          metadata: { resourceVersion: "14", annotations: { "k8s.io/initial-events-end": "true" } },
        },
      });
      write({ type: "ADDED", object: secret("c", "15") });
    });
    let lists = 0;
    const transformed: string[] = [];
    const informer = new Informer<KubernetesObject & { data?: unknown }>(kc, {
      resource: "secrets",
      path: "/api/v1/secrets",
      streamingList: true,
      list: async () => {
        lists++;
        return { items: [], metadata: { resourceVersion: "1" } };
      },
      transform: (o) => {
        transformed.push(o.metadata?.name ?? "");
        return { metadata: o.metadata };
      },
    });
    const seen: string[] = [];
    informer.on((event, obj) => seen.push(`${event} ${obj.metadata?.name}`));
    informer.start();
    await informer.synced;
    expect(informer.get("ns", "a")?.data).toBeUndefined();
    const deadline = Date.now() + 5_000;
    while (!informer.get("ns", "c") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    informer.stop();
    expect(lists).toBe(0);
    expect(transformed).toEqual(["a", "b", "c"]);
    // Whole at the bookmark (b came and went before the end), then watched on.
    expect(seen).toEqual(["add a", "add c"]);
    expect(informer.lastResourceVersion).toBe("15");
    const q = watches[0]?.searchParams;
    expect([
      q?.get("sendInitialEvents"),
      q?.get("resourceVersionMatch"),
      q?.get("resourceVersion"),
    ]).toEqual(["true", "NotOlderThan", null]);
  });
});
