// A quiet informer on a busy cluster: it watches Secrets with a label nobody
// uses while another client writes 50 Secrets a second. The API server's
// bookmarks (about one a minute) must keep its watch open and its
// resourceVersion fresh: one list, one watch, no relist. A silence watchdog
// shorter than the bookmark interval (30 s, as before) would cut it every
// 30 s, and resuming from the list's now old resourceVersion ends in a relist.
//
// The suite runs it for 75 s (WATCH_QUIET_SECONDS; one bookmark and more than
// two of the old watchdog's periods); the 4-minute run is the figure in
// docs/reliability.md.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  KubeClient,
  loadKubeConfig,
  resourcePath,
  SECRETS,
  type Watcher,
} from "../../src/kube/client.js";
import { Informer } from "../../src/kube/informer.js";
import type { Secret } from "../../src/kube/types.js";
import { consistently } from "../harness/controlplane.js";
import { createNamespace, deleteNamespaces, type TestKube, testKube } from "../harness/kube.js";

const cp = inject("controlPlane");
const NS = "watch-busy";
const SECONDS = Number(process.env.WATCH_QUIET_SECONDS ?? 75);
const RATE = 50;
let k: TestKube;

beforeAll(async () => {
  k = testKube(cp.kubeconfigPath);
  await createNamespace(k, NS);
});

afterAll(async () => {
  await deleteNamespaces(k, [NS]);
});

describe("a quiet informer on a busy cluster", () => {
  it(
    `lists once and watches once while another client writes ${RATE} Secrets a second`,
    async () => {
      const kube = new KubeClient(loadKubeConfig(cp.kubeconfigPath), { qps: 0, burst: 0 });
      const activity: string[] = [];
      // Records how each watch ended, for the log line.
      const ends: string[] = [];
      const watcher: Watcher = {
        watch: (path, query, onEvent, onDone) =>
          kube.watch(path, query, onEvent, (err) => {
            ends.push(
              `${((Date.now() - watchStarted) / 1000).toFixed(1)} s: ${err ? String(err) : "ended without an error (the server, or our stop)"}`,
            );
            onDone(err);
          }),
      };
      const watchStarted = Date.now();
      const informer = new Informer<Secret>(watcher, {
        resource: "secrets",
        path: resourcePath(SECRETS),
        labelSelector: "watch-quiet.test/none=1",
        list: ({ limit, continueToken }) =>
          kube.list<Secret>(SECRETS, {
            labelSelector: "watch-quiet.test/none=1",
            limit,
            continueToken,
          }),
        onActivity: (what) => activity.push(what),
      });
      informer.start();
      await informer.synced;
      const listedAt = informer.lastResourceVersion;

      // The busy neighbour: 50 writes a second (creates, then updates of the
      // same 50 Secrets), none of them matching the informer's selector.
      const writer = new KubeClient(loadKubeConfig(cp.kubeconfigPath), { qps: 0, burst: 0 });
      const begin = Date.now();
      let writes = 0;
      let failed = 0;
      const errors = new Set<string>();
      const inFlight: Promise<unknown>[] = [];
      // Batches of 5 every 100 ms, each batch due at its own time, so a late
      // wake-up is made up by the next one.
      for (let batch = 0; Date.now() - begin < SECONDS * 1000; batch++) {
        const due = begin + batch * 100;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        for (let i = 0; i < RATE / 10; i++, writes++) {
          const name = `busy-${writes % RATE}`;
          const write =
            writes < RATE
              ? writer.create(SECRETS, {
                  metadata: { namespace: NS, name },
                  stringData: { n: String(writes) },
                } as Secret)
              : writer.patch(
                  SECRETS,
                  { namespace: NS, name },
                  { stringData: { n: String(writes) } },
                );
          inFlight.push(
            write.catch((err: unknown) => {
              failed++;
              if (errors.size < 5) errors.add(String(err));
            }),
          );
        }
      }
      const writeSeconds = (Date.now() - begin) / 1000;
      await Promise.all(inFlight);
      const count = (what: string) => activity.filter((a) => a === what).length;
      // The last writes' events have had their time: still one list and no relist.
      try {
        await consistently(
          "one list, no relist, after the writes",
          () =>
            count("list") === 1 && count("gone") + count("error") === 0
              ? true
              : `${count("list")} lists, ${count("gone")} gone, ${count("error")} errors`,
          { forMs: 500, intervalMs: 100 },
        );
      } finally {
        informer.stop();
      }
      console.log(
        `quiet informer over ${writeSeconds.toFixed(0)} s of ${writes} writes (${(writes / writeSeconds).toFixed(1)}/s, ${failed} failed): ${count("list")} list, ${count("watch")} watch, ${count("gone")} gone, ${count("error")} errors; resourceVersion ${listedAt} -> ${informer.lastResourceVersion}; watches ended: ${ends.join("; ") || "none"}`,
      );
      expect([...errors]).toEqual([]);
      expect(failed).toBe(0);
      expect(writes / writeSeconds).toBeGreaterThan(RATE * 0.95);
      expect(count("list")).toBe(1);
      expect(count("watch")).toBeLessThanOrEqual(SECONDS >= 240 ? 2 : 1);
      expect(count("gone") + count("error")).toBe(0);
      // Bookmarks carried the server's progress to a watch that saw no object.
      if (SECONDS >= 65)
        expect(Number(informer.lastResourceVersion)).toBeGreaterThan(Number(listedAt));
    },
    (SECONDS + 60) * 1000,
  );
});
