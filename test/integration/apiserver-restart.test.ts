// Watches that stay alive, on a control plane of this file's own (its API
// server is stopped and restarted, which the shared one must not be): the
// informer resumes a watch that ends or is cut and relists after a watch
// error (410 Gone is in src/kube/informer.test.ts: this API server's watch
// cache serves even compacted resourceVersions), and the operator reconciles a change made while it was
// cut off from the API server.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient, loadKubeConfig, resourcePath, SECRETS } from "../../src/kube/client.js";
import { Informer } from "../../src/kube/informer.js";
import type { KubernetesObject, Secret } from "../../src/kube/types.js";
import type { AwsDouble } from "../aws-double/index.js";
import { type ControlPlane, startControlPlane } from "../harness/controlplane.js";
import {
  applyResource,
  createNamespace,
  getResource,
  installCrd,
  readyCondition,
  type TestKube,
  testKube,
  waitFor,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, readPassword, waitForReady } from "../harness/state.js";

const ACCOUNT = "343434343434";
const HOST = ecrHost(ACCOUNT);

let cp: ControlPlane;
let k: TestKube;
let stack: Stack;
let aws: AwsDouble;
let op: InProcessOperator | undefined;
const informers: Informer<KubernetesObject>[] = [];

function secretInformer(namespace: string, watchTimeoutSeconds?: number) {
  const kube = new KubeClient(loadKubeConfig(cp.kubeconfigPath), { qps: 0, burst: 0 });
  const activity: string[] = [];
  const informer = new Informer<Secret>(kube, {
    resource: "secrets",
    path: resourcePath(SECRETS, namespace),
    list: ({ limit, continueToken }) =>
      kube.list<Secret>(SECRETS, { namespace, limit, continueToken }),
    onActivity: (what) => activity.push(what),
    watchTimeoutSeconds,
  });
  informers.push(informer as Informer<KubernetesObject>);
  informer.start();
  return { informer, activity };
}

async function createValueSecret(namespace: string, name: string, value: string): Promise<void> {
  await k.core.createNamespacedSecret({
    namespace,
    body: { metadata: { name }, stringData: { value } },
  });
}

const password = (ns: string) => readPassword(k, ns, "ecr-restart", HOST);

beforeAll(async () => {
  cp = await startControlPlane();
  k = testKube(cp.kubeconfigPath);
  await installCrd(k);
  stack = await startStack({
    kubeconfigPath: cp.kubeconfigPath,
    ops: "restart-ops",
    namespaces: ["restart-a"],
    identities: [iamUser("restart", 1, ACCOUNT, "restart")],
  });
  aws = stack.aws;
}, 300_000);

afterAll(async () => {
  for (const i of informers) i.stop();
  // The control plane goes with the file: nothing to delete on it first.
  await stack?.stop().catch(() => undefined);
  await cp?.stop();
});

describe("watches against a real API server", () => {
  it("resumes a watch the server ends, without relisting, and misses nothing", async () => {
    await createNamespace(k, "restart-w1");
    // The server ends each watch after 1–2 s.
    const { informer, activity } = secretInformer("restart-w1", 1);
    await informer.synced;
    await createValueSecret("restart-w1", "before", "1");
    await waitFor("the first Secret", () => informer.get("restart-w1", "before"));
    await waitFor(
      "the server to end the watch a few times",
      () => (activity.filter((a) => a === "watch").length >= 4 ? true : undefined),
      { timeoutMs: 20_000 },
    );
    await createValueSecret("restart-w1", "after", "2");
    await waitFor("a Secret made after several watch ends", () =>
      informer.get("restart-w1", "after"),
    );
    const watches = activity.filter((a) => a === "watch").length;
    console.log(`server-ended watches: ${watches} watches, ${informer.lists} list(s)`);
    expect(watches).toBeGreaterThanOrEqual(3);
    expect(informer.lists).toBe(1);
  });

  it("resumes a cut watch from its resourceVersion without relisting", async () => {
    await createNamespace(k, "restart-w2");
    const { informer, activity } = secretInformer("restart-w2");
    await informer.synced;
    await createValueSecret("restart-w2", "one", "1");
    await waitFor("Secret one", () => informer.get("restart-w2", "one"));
    // A cut connection: resume from the last version seen, no relist.
    informer.restartWatch();
    await createValueSecret("restart-w2", "two", "2");
    await waitFor("Secret two after the cut", () => informer.get("restart-w2", "two"));
    expect(informer.lists).toBe(1);
    // A change while the cut watch is down is delivered by the resumed one.
    informer.restartWatch();
    await createValueSecret("restart-w2", "meanwhile", "x");
    await waitFor("Secret meanwhile", () => informer.get("restart-w2", "meanwhile"));
    expect(informer.lists).toBe(1);
    expect(activity.filter((a) => a === "watch").length).toBeGreaterThanOrEqual(3);
    await createValueSecret("restart-w2", "three", "3");
    await waitFor("Secret three", () => informer.get("restart-w2", "three"));
    expect(
      informer
        .list()
        .map((s) => s.metadata?.name)
        .sort(),
    ).toEqual(expect.arrayContaining(["meanwhile", "one", "three", "two"]));
  });
});

describe("the operator across an API server restart", () => {
  it("keeps the operator working across an API server restart and reconciles a change made while it was away", async () => {
    op = await stack.startOperator({ as: false });
    const { informer: probe } = secretInformer("restart-a");
    await probe.synced;
    await applyResource(k, "restart", {
      secretName: "ecr-restart",
      namespaces: ["restart-a"],
      registries: [{ accountId: ACCOUNT }],
    });
    await waitForReady(k, "restart");
    const first = await password("restart-a");
    expect(first).toBe(aws.issued()[0]?.password);
    const listsBefore = op.controller.resources.lists;
    const probeListsBefore = probe.lists;

    await cp.stopApiServer();
    const logsAtStop = op.logs.length;
    await waitFor("the operator to notice the API server is gone", () =>
      op?.logs.slice(logsAtStop).some((l) => l.includes("watch failed; retrying"))
        ? true
        : undefined,
    );
    await new Promise((r) => setTimeout(r, 2_000));
    await cp.startApiServer();
    // Changed as soon as the API server answers, before the operator is back.
    await createNamespace(k, "restart-b");
    await applyResource(k, "restart", {
      secretName: "ecr-restart",
      namespaces: ["restart-a", "restart-b"],
      registries: [{ accountId: ACCOUNT }],
    });
    const relistedAtChange = op.controller.resources.lists > listsBefore;
    const changed = Date.now();
    await waitFor(
      "the Secret in restart-b",
      async () => ((await password("restart-b")) === first ? true : undefined),
      { timeoutMs: 60_000 },
    );
    const r = await waitFor("restart to count 2 namespaces", async () => {
      const res = await getResource(k, "restart");
      return res?.status?.namespaces?.synced === 2 && readyCondition(res)?.status === "True"
        ? res
        : undefined;
    });
    console.log(
      `reconciled ${Date.now() - changed} ms after the change; operator relisted ${op.controller.resources.lists - listsBefore} time(s) (already at the change: ${relistedAtChange})`,
    );
    expect(r.status?.namespaces).toMatchObject({ desired: 2, synced: 2, failed: 0 });
    // The watches came back through a relist, not by luck.
    expect(op.controller.resources.lists).toBeGreaterThan(listsBefore);
    expect(probe.lists).toBeGreaterThan(probeListsBefore);
    // And they keep working: a Secret deleted now is put back.
    await k.core.deleteNamespacedSecret({ namespace: "restart-a", name: "ecr-restart" });
    await waitFor("the deleted Secret back", async () =>
      (await password("restart-a")) === first ? true : undefined,
    );
    // Still the one token: the restart cost no AWS call.
    expect(aws.issued()).toHaveLength(1);
  });
});
