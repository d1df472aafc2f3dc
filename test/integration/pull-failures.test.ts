// Pulls that heal themselves, on a real control plane with no kubelet: the
// test writes a Pod's status.containerStatuses[].state.waiting through the
// status subresource, as a kubelet would after a failed pull, and the
// operator's Pending-Pod watch diagnoses and acts. kube-controller-manager
// runs the replicaset controller, so a deleted Pod comes back from its
// ReplicaSet as on a real cluster (and stays Pending: there is no scheduler).
import { AppsV1Api, type CoreV1Event, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient, loadKubeConfig } from "../../src/kube/client.js";
import type { InformerHandler } from "../../src/kube/informer.js";
import { PODS, type Pod } from "../../src/kube/pods.js";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  auditWrites,
  createNamespace,
  deleteNamespaces,
  deleteResource,
  getResource,
  kubeletFailsPull,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const ACCOUNT = "565656787878";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const IMAGE = `${HOST}/team/web:1.2`;
const OPS = "pf-ops";
const LATE = "pf-late"; // Pods admitted before the ServiceAccount was patched
const RECREATE = "pf-recreate";
const SECRETS_NS = "pf-secret";
const MANY = "pf-many";
const BEFORE = "pf-before"; // a Pod already failing when its resource comes
const NAMESPACES = [LATE, RECREATE, SECRETS_NS, MANY, BEFORE];

let stack: Stack;
let op: InProcessOperator;
let k: TestKube;
/** When the Pod watch last brought a missing Secret back. */
let secretFixedAt = 0;

const podSpec = (extra: Partial<NonNullable<V1Pod["spec"]>> = {}) => ({
  containers: [{ name: "web", image: IMAGE }],
  ...extra,
});

/** What a kubelet writes after a failed pull of the Pod's `web` container. */
async function failPull(namespace: string, name: string, reason = "ImagePullBackOff") {
  await kubeletFailsPull(k, { namespace, name }, IMAGE, { reason });
}

async function podEvents(namespace: string, pod: string): Promise<CoreV1Event[]> {
  const list = await k.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${pod}`,
  });
  return list.items.filter((e) => e.reportingComponent === "ecr-creds-refresher");
}

async function resourceEvents(name: string, reason: string): Promise<CoreV1Event[]> {
  const list = await k.core.listNamespacedEvent({
    namespace: "default",
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items;
}

async function readyWithSecretOnDefaultSA(resource: string, namespace: string, secret: string) {
  await waitFor(`${resource} Ready and ${namespace}/default patched`, async () => {
    const r = await getResource(k, resource);
    const sa = await k.core.readNamespacedServiceAccount({ namespace, name: "default" });
    return readyCondition(r)?.status === "True" &&
      (r?.status?.registries ?? []).includes(HOST) &&
      sa.imagePullSecrets?.some((s) => s.name === secret)
      ? true
      : undefined;
  });
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    identities: [
      {
        accessKeyId: "AKIAPULLFAIL00000001",
        secretAccessKey: "pull-failure-secret-key-0000000000000001",
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/${OPS}`,
      },
    ],
    tokenLifetimeMs: 30 * 60_000,
  });
  op = await stack.startOperator();
  k = stack.k;
  await Promise.all(NAMESPACES.map((ns) => createNamespace(k, ns)));
  await Promise.all(NAMESPACES.map((ns) => waitForDefaultServiceAccount(k, ns)));
});

afterAll(async () => {
  await Promise.all(
    ["pf-late", "pf-recreate", "pf-secret", "pf-before"].map((name) => deleteResource(k, name)),
  );
  await deleteNamespaces(k, [...NAMESPACES, OPS]);
  await stack?.stop();
});

/** The Secret informer's handlers: emptied, the operator hears no Secret event. */
const handlers = () =>
  (op.controller.secrets as unknown as { handlers: Array<InformerHandler<unknown>> }).handlers;

/** Deletes pf-secret's Secret by hand, once the operator's cache has lost it too. */
async function deleteByHand(): Promise<void> {
  await k.core.deleteNamespacedSecret({ namespace: SECRETS_NS, name: "ecr-secret" });
  await waitFor("the operator's cache to lose the Secret", () =>
    op.controller.secrets.get(SECRETS_NS, "ecr-secret") ? undefined : true,
  );
  // Nothing brings it back by itself while Secret events go unheard.
  await consistently(
    "the deleted Secret still gone",
    async () =>
      (await readSecret(k, SECRETS_NS, "ecr-secret")) === undefined ? true : "it is back",
    { forMs: 1_500 },
  );
}

describe("pull-failure watch: Pods admitted without the Secret", () => {
  it("warns within 2 s about a Pod admitted before its ServiceAccount was patched, and counts it", async () => {
    // Admitted now, before any resource serves the namespace: no pull Secrets.
    const pod = await k.core.createNamespacedPod({
      namespace: LATE,
      body: { metadata: { name: "early" }, spec: podSpec() },
    });
    expect(pod.spec?.imagePullSecrets).toBeUndefined();
    await applyResource(k, "pf-late", {
      secretName: "ecr-late",
      namespaces: [LATE],
      registries: [{ accountId: ACCOUNT }],
    });
    await readyWithSecretOnDefaultSA("pf-late", LATE, "ecr-late");
    const t0 = Date.now();
    await failPull(LATE, "early");
    const warning = await waitFor(
      "the Warning on the Pod",
      async () => (await podEvents(LATE, "early")).find((e) => e.reason === "PodMissingPullSecret"),
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    const ms = Date.now() - t0;
    console.log(`Warning on the Pod ${ms} ms after its status change`);
    expect(ms).toBeLessThan(2_000);
    const message = `Pod ${LATE}/early waits on ${IMAGE} (ImagePullBackOff) without the pull Secret ecr-late of ECRPullSecret pf-late: it was created before ServiceAccount default got the Secret, or it sets its own imagePullSecrets; it has no controller that would recreate it: delete and create it again, or add ecr-late to its imagePullSecrets`;
    expect(warning).toMatchObject({
      type: "Warning",
      message,
      involvedObject: { kind: "Pod", namespace: LATE, name: "early", uid: pod.metadata?.uid },
    });
    // The same on the resource.
    const onResource = await waitFor("the Warning on the resource", async () => {
      const events = await resourceEvents("pf-late", "PodMissingPullSecret");
      return events.length > 0 ? events : undefined;
    });
    expect(onResource.map((e) => e.message)).toEqual([message]);
    // Counted in status and in the gauge.
    const r = await waitFor("status.uncoveredPods", async () => {
      const r = await getResource(k, "pf-late");
      return r?.status?.uncoveredPods?.count === 1 ? r : undefined;
    });
    expect(r.status?.uncoveredPods).toEqual({
      count: 1,
      pods: [{ namespace: LATE, name: "early", image: IMAGE, reason: "ImagePullBackOff" }],
    });
    const gauge = await op.metrics.uncoveredPods.get();
    expect(gauge.values.filter((v) => v.labels.resource === "pf-late")).toEqual([
      { labels: { resource: "pf-late", namespace: LATE }, value: 1 },
    ]);
    // Deleted: no longer counted.
    await k.core.deleteNamespacedPod({ namespace: LATE, name: "early", gracePeriodSeconds: 0 });
    await waitFor("uncoveredPods back to 0", async () => {
      const r = await getResource(k, "pf-late");
      return r?.status?.uncoveredPods?.count === 0 ? true : undefined;
    });
    const after = await op.metrics.uncoveredPods.get();
    expect(after.values.filter((v) => v.labels.resource === "pf-late")).toEqual([]);
  });

  it("judges a Pod that was failing before its resource came once the resource's registries are known, with no new Pod event", async () => {
    // Failing first: no resource serves the namespace yet, so nothing is said.
    const pod = await k.core.createNamespacedPod({
      namespace: BEFORE,
      body: { metadata: { name: "waiting" }, spec: podSpec() },
    });
    await failPull(BEFORE, "waiting");
    // The resource's first pass writes status.registries (its own write,
    // whose watch echo the cache drops as known); the Pod does not change again.
    await applyResource(k, "pf-before", {
      secretName: "ecr-before",
      namespaces: [BEFORE],
      registries: [{ accountId: ACCOUNT }],
    });
    await readyWithSecretOnDefaultSA("pf-before", BEFORE, "ecr-before");
    const warning = await waitFor(
      "the Warning on the Pod",
      async () =>
        (await podEvents(BEFORE, "waiting")).find((e) => e.reason === "PodMissingPullSecret"),
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    expect(warning).toMatchObject({
      type: "Warning",
      involvedObject: { kind: "Pod", namespace: BEFORE, name: "waiting", uid: pod.metadata?.uid },
    });
    expect(warning.message).toContain(
      `Pod ${BEFORE}/waiting waits on ${IMAGE} (ImagePullBackOff) without the pull Secret ecr-before of ECRPullSecret pf-before`,
    );
    const r = await waitFor(
      "status.uncoveredPods",
      async () => {
        const r = await getResource(k, "pf-before");
        return r?.status?.uncoveredPods?.count === 1 ? r : undefined;
      },
      { timeoutMs: 5_000 },
    );
    expect(r.status?.uncoveredPods?.pods).toEqual([
      { namespace: BEFORE, name: "waiting", image: IMAGE, reason: "ImagePullBackOff" },
    ]);
  });
});

describe("pull-failure watch: Pod recovery (podRecovery: Recreate)", () => {
  it("with Recreate, deletes a ReplicaSet's Pod once so its replacement carries the Secret, and never a bare Pod", async () => {
    await k.kc.makeApiClient(AppsV1Api).createNamespacedReplicaSet({
      namespace: RECREATE,
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "web" } },
          template: { metadata: { labels: { app: "web" } }, spec: podSpec() },
        },
      },
    });
    const first = await waitFor("the ReplicaSet's Pod", async () => {
      const pods = await k.core.listNamespacedPod({
        namespace: RECREATE,
        labelSelector: "app=web",
      });
      return pods.items[0];
    });
    expect(first.spec?.imagePullSecrets).toBeUndefined();
    const bare = await k.core.createNamespacedPod({
      namespace: RECREATE,
      body: { metadata: { name: "bare" }, spec: podSpec() },
    });
    await applyResource(k, "pf-recreate", {
      secretName: "ecr-recreate",
      namespaces: [RECREATE],
      registries: [{ accountId: ACCOUNT }],
      podRecovery: "Recreate",
    });
    await readyWithSecretOnDefaultSA("pf-recreate", RECREATE, "ecr-recreate");
    const since = Date.now();
    await failPull(RECREATE, first.metadata?.name ?? "");
    await failPull(RECREATE, "bare");
    // Twice more for the same Pod, as the kubelet's back-off would: still one deletion.
    await failPull(RECREATE, first.metadata?.name ?? "", "ErrImagePull").catch(() => undefined);
    const replacement = await waitFor(
      "the ReplicaSet's replacement Pod",
      async () => {
        const pods = await k.core.listNamespacedPod({
          namespace: RECREATE,
          labelSelector: "app=web",
        });
        return pods.items.find((p) => p.metadata?.uid !== first.metadata?.uid);
      },
      { timeoutMs: 20_000 },
    );
    expect(replacement.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "ReplicaSet",
      name: "web",
    });
    expect(replacement.spec?.imagePullSecrets).toEqual([{ name: "ecr-recreate" }]);
    // The bare Pod was warned about, and is still the same Pod.
    await waitFor("the Warning on the bare Pod", async () =>
      (await podEvents(RECREATE, "bare")).find((e) => e.reason === "PodMissingPullSecret"),
    );
    await consistently(
      "the bare Pod not deleted",
      async () => {
        const still = await k.core.readNamespacedPod({ namespace: RECREATE, name: "bare" });
        return still.metadata?.uid === bare.metadata?.uid ? true : "the bare Pod was replaced";
      },
      { forMs: 2_000 },
    );
    // Exactly one Pod deletion by the operator: the ReplicaSet's first Pod.
    const deletions = await auditWrites(
      cp.auditLogPath,
      (e) => e.user.username === stack.userOf("operator") && e.verb === "delete",
      since,
    );
    expect(
      deletions.map(
        (e) => `${e.objectRef?.resource} ${e.objectRef?.namespace}/${e.objectRef?.name}`,
      ),
    ).toEqual([`pods ${RECREATE}/${first.metadata?.name}`]);
    const events = await resourceEvents("pf-recreate", "PodRecreated");
    expect(events.map((e) => e.message)).toEqual([
      `deleted Pod ${RECREATE}/${first.metadata?.name}, which waited on ${IMAGE} without the pull Secret ecr-recreate, so that ReplicaSet web recreates it with the Secret (spec.podRecovery: Recreate)`,
    ]);
  });
});

describe("pull-failure watch: with the operator deaf to Secret events", () => {
  // The Secret informer keeps its cache but tells no one: only the Pod
  // watch (or the kubelet's Event) can bring the Secret back.
  let saved: Array<InformerHandler<unknown>> = [];

  beforeAll(async () => {
    await applyResource(k, "pf-secret", {
      secretName: "ecr-secret",
      namespaces: [SECRETS_NS],
      registries: [{ accountId: ACCOUNT }],
    });
    await readyWithSecretOnDefaultSA("pf-secret", SECRETS_NS, "ecr-secret");
    const pod = await k.core.createNamespacedPod({
      namespace: SECRETS_NS,
      body: { metadata: { name: "covered" }, spec: podSpec() },
    });
    expect(pod.spec?.imagePullSecrets).toEqual([{ name: "ecr-secret" }]);
    saved = handlers().splice(0);
  });

  afterAll(() => {
    handlers().push(...saved);
  });

  it("a Pod waiting on a managed registry's image brings a deleted Secret back within 1 s", async () => {
    const since = Date.now();
    await deleteByHand();
    const t0 = Date.now();
    await failPull(SECRETS_NS, "covered", "ErrImagePull");
    const back = await waitFor("the Secret back", () => readSecret(k, SECRETS_NS, "ecr-secret"), {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    secretFixedAt = Date.now();
    const ms = secretFixedAt - t0;
    console.log(`Secret back ${ms} ms after the Pod's status change`);
    expect(ms).toBeLessThan(1_000);
    expect(back.metadata?.labels?.["ecrcreds.io/owner"]).toBe("pf-secret");
    // The order of calls: the hand delete, the Pod's status, then the operator's create.
    const calls = await auditWrites(
      cp.auditLogPath,
      (e) =>
        e.objectRef?.namespace === SECRETS_NS &&
        ((e.objectRef.resource === "secrets" && e.objectRef.name === "ecr-secret") ||
          (e.objectRef.resource === "pods" && e.objectRef.subresource === "status")),
      since,
    );
    expect(
      calls.map(
        (e) =>
          `${e.user.username === stack.userOf("operator") ? "operator" : "test"} ${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`,
      ),
    ).toEqual(["test delete secrets", "test patch pods/status", "operator create secrets"]);
    const [, status, create] = calls;
    const gap = Date.parse(create?.stageTimestamp ?? "") - Date.parse(status?.stageTimestamp ?? "");
    console.log(`audit: create ${gap} ms after the status patch`);
    expect(gap).toBeLessThan(1_000);
  });

  it("so does the kubelet's FailedToRetrieveImagePullSecret Event for our Secret name", async () => {
    await deleteByHand();
    const t0 = Date.now();
    await k.core.createNamespacedEvent({
      namespace: SECRETS_NS,
      body: {
        metadata: { generateName: "covered." },
        involvedObject: { kind: "Pod", namespace: SECRETS_NS, name: "covered", apiVersion: "v1" },
        reason: "FailedToRetrieveImagePullSecret",
        type: "Warning",
        message:
          "Unable to retrieve some image pull secrets (ecr-secret); attempting to pull the image may not succeed.",
        source: { component: "kubelet", host: "node-1" },
      },
    });
    await waitFor("the Secret back", () => readSecret(k, SECRETS_NS, "ecr-secret"), {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    const ms = Date.now() - t0;
    console.log(`Secret back ${ms} ms after the kubelet's Event`);
    expect(ms).toBeLessThan(1_000);
  });
});

describe("pull-failure watch: refusals and the Pod cache", () => {
  it("a registry refusing a current token: a Warning naming the repository and the identity", async () => {
    // pf-secret's Secret is current and the Pod lists it: only policy or IAM is left.
    await waitFor("the Secret", () => readSecret(k, SECRETS_NS, "ecr-secret"));
    // The waiting state written before the Secret came back is no refusal:
    // the kubelet had not tried with the Secret yet.
    expect(
      (await podEvents(SECRETS_NS, "covered")).filter((e) => e.reason === "PullRefused"),
    ).toEqual([]);
    // The kubelet's next attempt comes after its back-off (10 s at least).
    const backOff = secretFixedAt + 10_500 - Date.now();
    if (backOff > 0) await new Promise((r) => setTimeout(r, backOff));
    await failPull(SECRETS_NS, "covered", "ImagePullBackOff");
    const refused = await waitFor("PullRefused", async () =>
      (await podEvents(SECRETS_NS, "covered")).find((e) => e.reason === "PullRefused"),
    );
    expect(refused.type).toBe("Warning");
    expect(refused.message).toBe(
      `registry ${HOST} refused ${IMAGE} for Pod ${SECRETS_NS}/covered (ImagePullBackOff) although Secret ecr-secret holds a current token from the keys in Secret ${OPS}/aws-creds: the policy of repository team/web or IAM does not let that identity pull it (ecr:BatchGetImage, ecr:GetDownloadUrlForLayer); the operator cannot fix this`,
    );
  });

  it("holds no Running Pod: with 2,000 of them in the cluster its Pod cache holds 0", async () => {
    const N = 2_000;
    const names = Array.from({ length: N }, (_, i) => `run-${String(i).padStart(4, "0")}`);
    const start = Date.now();
    // The operator's own client (keep-alive, no rate limit) makes them fast.
    const kube = new KubeClient(loadKubeConfig(cp.kubeconfigPath), { qps: 0, burst: 0 });
    for (let i = 0; i < N; i += 100) {
      await Promise.all(
        names.slice(i, i + 100).map(async (name) => {
          await kube.create<Pod>(PODS, {
            metadata: { name, namespace: MANY },
            spec: { containers: [{ name: "c", image: "busybox" }] },
          });
          await kube.patch(
            PODS,
            { namespace: MANY, name },
            { status: { phase: "Running" } },
            "status",
          );
        }),
      );
    }
    console.log(`${N} Running Pods made in ${Date.now() - start} ms`);
    const running = await k.core.listNamespacedPod({
      namespace: MANY,
      fieldSelector: "status.phase=Running",
    });
    expect(running.items).toHaveLength(N);
    const cache = op.controller.pullFailures.pods;
    await waitFor("the Pod cache to let the Running Pods go", () =>
      [...cache.values()].some((p) => p.metadata?.namespace === MANY) ? undefined : true,
    );
    expect([...cache.values()].filter((p) => p.metadata?.namespace === MANY)).toEqual([]);
    // A fresh start lists none of them either; a Pending one is there at once.
    await op.stop();
    op = await stack.startOperator();
    await op.controller.pullFailures.synced;
    const fresh = op.controller.pullFailures.pods;
    expect(fresh.hasSynced).toBe(true);
    expect([...fresh.values()].filter((p) => p.metadata?.namespace === MANY)).toEqual([]);
    console.log(`Pod cache after a fresh start: ${fresh.size} Pods (all namespaces)`);
    await k.core.createNamespacedPod({
      namespace: MANY,
      body: {
        metadata: { name: "pending" },
        spec: { containers: [{ name: "c", image: "busybox" }] },
      },
    });
    await waitFor("the Pending Pod in the cache", () =>
      fresh.get(MANY, "pending") ? true : undefined,
    );
    expect([...fresh.values()].filter((p) => p.metadata?.namespace === MANY)).toHaveLength(1);
  }, 600_000);
});
