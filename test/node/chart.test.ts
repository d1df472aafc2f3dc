// The operator as a user runs it: its image, built from the project's
// Dockerfile (scripts/build-image.sh), loaded into the node and installed with
// `helm install` of the project's chart. It runs as a Pod (non-root, read-only
// root filesystem, its probes answered), talks to the API server through its
// in-cluster configuration under the chart's RBAC, and the Secrets it writes
// let the kubelet pull.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { AppsV1Api, CoordinationV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chartDir } from "../harness/chart.js";
import { repoRoot } from "../harness/controlplane.js";
import {
  applyResource,
  auditWrites,
  deleteResource,
  getResource,
  readSecret,
  statusOf,
  waitFor,
} from "../harness/kube.js";
import { readLease } from "../harness/lease.js";
import { KUBERNETES_SERVICE_IP, NODE_NAME } from "../harness/node.js";
import {
  containerProcess,
  kubeletEvents,
  kubeletReasons,
  podOf,
  skipReason,
  startWorld,
  stopWorld,
  type World,
  waitForDefaultSa,
  waitForPodState,
} from "./world.js";

const execFileAsync = promisify(execFile);
const OPS = "node-chart-ops";
const NAMESPACES = ["node-chart-a"];
const RELEASE = "ecr";
const IMAGE = "localhost/ecr-creds-refresher:dev";
/** The same Dockerfile built again under a new tag (buildah reuses its cached layers). */
const IMAGE2 = "localhost/ecr-creds-refresher:dev2";
const FULLNAME = "ecr-ecr-creds-refresher";
const helm = join(repoRoot, ".cache/helm/helm");

let w: World | undefined;
let kubeconfig = "";
let awsEndpoint = "";

async function runHelm(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(helm, [...args, "--kubeconfig", kubeconfig], {
    env: { ...process.env, HELM_CACHE_HOME: join(w?.stack.dir ?? "/tmp", "helm") },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** The values a user passes: the local image, the credentials Secret, the AWS endpoint. */
function installArgs(extra: string[] = [], tag = IMAGE.split(":")[1]): string[] {
  return [
    chartDir,
    "--namespace",
    OPS,
    "--set",
    `image.repository=${IMAGE.split(":")[0]}`,
    "--set",
    `image.tag=${tag}`,
    "--set",
    "image.pullPolicy=Never",
    "--set",
    "aws.region=us-east-1",
    "--set",
    "aws.credentials.secretName=aws-creds",
    // No registry outside the machine to verify against.
    "--set",
    "verifyRegistry=false",
    "--set",
    "extraEnv[0].name=AWS_ENDPOINT_URL",
    "--set",
    `extraEnv[0].value=http://${awsEndpoint}`,
    ...extra,
  ];
}

async function operatorPods(world: World): Promise<V1Pod[]> {
  const list = await world.stack.k.core.listNamespacedPod({
    namespace: OPS,
    labelSelector: "app.kubernetes.io/name=ecr-creds-refresher",
  });
  return list.items;
}

function readyAt(pod: V1Pod): number | undefined {
  const c = pod.status?.conditions?.find((x) => x.type === "Ready" && x.status === "True");
  return c?.lastTransitionTime ? new Date(c.lastTransitionTime).getTime() : undefined;
}

/** `helm install`, then the operator's /readyz (polled every 100 ms) and its Pod Ready. */
async function installUntilReady(world: World): Promise<V1Pod> {
  const installStarted = Date.now();
  await runHelm(["install", RELEASE, ...installArgs()]);
  // The process's own answer, polled from the node every 100 ms: the
  // kubelet's readiness probe looks only every 10 s.
  const readyz = await waitFor(
    "the operator's /readyz to answer 200",
    async () => {
      const [p] = await operatorPods(world);
      const ip = p?.status?.podIP;
      if (!ip) return undefined;
      const res = await fetch(`http://${ip}:8081/readyz`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      return res.status === 200 ? Date.now() : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 100 },
  );
  const pod = await waitFor(
    "the operator's Pod Ready",
    async () => {
      const [p] = await operatorPods(world);
      if (p === undefined || readyAt(p) === undefined) {
        throw new Error(`last seen ${JSON.stringify(p?.status?.containerStatuses ?? [])}`);
      }
      return p;
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  const createdAt = new Date(pod.metadata?.creationTimestamp ?? 0).getTime();
  const startToReadyMs = (readyAt(pod) ?? 0) - createdAt;
  const startedAt = new Date(
    pod.status?.containerStatuses?.[0]?.state?.running?.startedAt ?? 0,
  ).getTime();
  console.log(
    `node chart: helm install to /readyz 200 ${((readyz - installStarted) / 1000).toFixed(1)}s, container started (to the second) to /readyz 200 ${((readyz - startedAt) / 1000).toFixed(1)}s, helm install to Ready ${((Date.now() - installStarted) / 1000).toFixed(1)}s, Pod created to Ready ${(startToReadyMs / 1000).toFixed(1)}s (to the second)`,
  );
  return pod;
}

/**
 * The kubelet used the loaded image and never had to pull; the liveness
 * probe never failed, the readiness probe only before the informers synced.
 */
async function expectCleanStart(world: World, pod: V1Pod): Promise<void> {
  const name = pod.metadata?.name ?? "";
  expect((await kubeletReasons(world, OPS, name)).filter((r) => r !== "Unhealthy")).toEqual([
    "MissingClusterDNS",
    "Pulled",
    "Created",
    "Started",
  ]);
  const unhealthy = (await kubeletEvents(world, OPS, name)).filter((e) => e.reason === "Unhealthy");
  for (const e of unhealthy) {
    // Before the informers synced (503), or before the server listened.
    expect(e.message).toMatch(
      /^Readiness probe failed: (HTTP probe failed with statuscode: 503|Get "http:\/\/10\.244\.77\.\d+:8081\/readyz": dial tcp 10\.244\.77\.\d+:8081: connect: connection refused)$/,
    );
    expect(new Date(String(e.lastTimestamp ?? e.eventTime)).getTime()).toBeLessThanOrEqual(
      readyAt(pod) ?? 0,
    );
  }
}

/**
 * The operator in the Pod writes the Secret, as the chart's ServiceAccount
 * (not the test's identity); the kubelet pulls with it.
 */
async function expectOperatorSecretPulls(world: World): Promise<void> {
  const { k } = world.stack;
  for (const ns of NAMESPACES) await waitForDefaultSa(world, ns);
  world.stack.resources.push("node-chart");
  await applyResource(k, "node-chart", { secretName: "ecr-pull", namespaces: NAMESPACES });
  const ns = NAMESPACES[0] ?? "";
  await waitFor("the operator's Secret", () => readSecret(k, ns, "ecr-pull"), {
    timeoutMs: 60_000,
  });
  await k.core.createNamespacedPod({
    namespace: ns,
    body: podOf("app", world.node.imageRef("team/app"), { pullSecret: "ecr-pull" }),
  });
  await waitForPodState(world, ns, "app", { phase: "Running", container: "running" });
  const [token] = world.aws.issued().map((t) => t.password);
  const pulls = world.node.registry
    .authAttempts()
    .filter((a) => a.path === "/v2/team/app/manifests/v1")
    .map(
      (a) => `${a.username}:${a.password === token ? "operator's token" : a.password}:${a.status}`,
    );
  expect(pulls).toEqual(["AWS:operator's token:200"]);
  const writers = await auditWrites(
    world.cp.auditLogPath,
    (e) => e.objectRef?.resource === "secrets" && e.objectRef.namespace === ns,
  );
  expect([...new Set(writers.map((e) => e.user.username))]).toEqual([
    `system:serviceaccount:${OPS}:ecr-ecr-creds-refresher`,
  ]);
}

/**
 * Looks at the Secret's token every 500 ms until stopped; stop() returns
 * every look that found it missing or expired.
 */
function watchForStaleSecret(world: World, ns: string): { stop(): Promise<string[]> } {
  const staleSeen: string[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const secret = await readSecret(world.stack.k, ns, "ecr-pull").catch(() => undefined);
      const auth = secret?.data?.[".dockerconfigjson"];
      const password = auth
        ? (
            JSON.parse(Buffer.from(auth, "base64").toString()) as {
              auths: Record<string, { password?: string }>;
            }
          ).auths["111122223333.dkr.ecr.us-east-1.amazonaws.com"]?.password
        : undefined;
      if (!password || !world.aws.isValidPassword(password)) {
        staleSeen.push(`${new Date().toISOString()} ${password ? "expired" : "missing"}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    async stop() {
      watching = false;
      await watcher;
      return staleSeen;
    },
  };
}

/** `helm upgrade` to IMAGE2 with two replicas and debug logs; returns the two new Ready Pods. */
async function upgradeToTwoReplicas(world: World): Promise<V1Pod[]> {
  await runHelm([
    "upgrade",
    RELEASE,
    ...installArgs(["--set", "replicaCount=2", "--set", "logLevel=debug"], IMAGE2.split(":")[1]),
  ]);
  return await waitFor(
    "two Ready Pods of the new image, the old one gone",
    async () => {
      const all = await operatorPods(world);
      const fresh = all.filter(
        (p) => p.spec?.containers[0]?.image === IMAGE2 && readyAt(p) !== undefined,
      );
      if (fresh.length !== 2 || all.length !== 2) {
        throw new Error(
          `last seen ${all.map((p) => `${p.spec?.containers[0]?.image}`).join(", ")}`,
        );
      }
      return fresh;
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
}

/**
 * Deletes the leader's Pod (the one whose name the Lease's holder starts
 * with) and waits for another Pod to hold the Lease: the standby, or the
 * Pod the ReplicaSet starts in the leader's place (whichever asks first
 * once the Lease is released). Returns the holders seen, how long the
 * hand-over took and the Lease's duration (ms).
 */
async function deleteLeader(world: World, pods: V1Pod[]) {
  const leaseOf = async () =>
    (await readLease(world.stack.k.kc.makeApiClient(CoordinationV1Api), OPS, FULLNAME))?.spec;
  const holderPod = (identity: string | undefined) =>
    pods.find((p) => identity?.startsWith(`${p.metadata?.name}_`))?.metadata?.name;
  const first = await waitFor("a leader among the new Pods", async () => {
    const spec = await leaseOf();
    return holderPod(spec?.holderIdentity) ? spec : undefined;
  });
  const leader = holderPod(first?.holderIdentity) ?? "";
  const other = pods.map((p) => p.metadata?.name).find((n) => n !== leader) ?? "";
  const transitions: string[] = [holderPod(first?.holderIdentity) ?? ""];
  const deletedAt = Date.now();
  await world.stack.k.core.deleteNamespacedPod({ namespace: OPS, name: leader });
  const takeoverMs = await waitFor(
    "another Pod to hold the Lease",
    async () => {
      const spec = await leaseOf();
      const names = (await operatorPods(world)).map((p) => p.metadata?.name ?? "");
      const id = spec?.holderIdentity ?? "";
      const holder = [leader, ...names].find((n) => id.startsWith(`${n}_`)) ?? (id || "(none)");
      if (transitions.at(-1) !== holder) transitions.push(holder);
      if (holder !== leader && names.includes(holder)) return Date.now() - deletedAt;
      throw new Error(`holders so far: ${transitions.join(" -> ")}`);
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  return {
    leader,
    other,
    transitions,
    takeoverMs,
    leaseMs: (first?.leaseDurationSeconds ?? 0) * 1000,
  };
}

beforeAll(async () => {
  if (skipReason !== undefined) return;
  // No-op unless src/, the Dockerfile or the lock file changed since setup.
  await execFileAsync("bash", [join(repoRoot, "scripts/build-image.sh"), IMAGE], {
    maxBuffer: 16 * 1024 * 1024,
  });
  // Tokens of a minute: the operator refreshes every 30 s, across the
  // upgrade and the leader's change.
  w = await startWorld({ ops: OPS, namespaces: NAMESPACES, tokenLifetimeMs: 60_000 });
  kubeconfig = w.cp.kubeconfigPath;
  await w.node.importImage(join(repoRoot, ".cache/image/operator.tar"));
  awsEndpoint = await w.node.expose(Number(new URL(w.aws.url).port));
}, 600_000);

afterAll(async () => {
  await stopWorld(w);
}, 120_000);

describe.skipIf(skipReason !== undefined)("the operator's image, installed by its chart", () => {
  it("runs as a non-root Pod with a read-only root filesystem, Ready, in-cluster, under the chart's RBAC", async () => {
    if (w === undefined) throw new Error("no world");
    const world = w;
    const pod = await installUntilReady(world);
    expect(pod.spec?.nodeName).toBe(NODE_NAME);
    expect(pod.status?.phase).toBe("Running");
    expect(pod.spec?.serviceAccountName).toBe("ecr-ecr-creds-refresher");
    const container = pod.spec?.containers[0];
    expect(container?.image).toBe(IMAGE);
    expect(container?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(container?.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.spec?.securityContext?.runAsUser).toBe(1000);
    expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    await expectCleanStart(world, pod);

    // The chart's binding names the chart's ClusterRole, not cluster-admin.
    const binding = await world.stack.k.rbac.readClusterRoleBinding({
      name: "ecr-ecr-creds-refresher",
    });
    expect(binding.roleRef.name).toBe("ecr-ecr-creds-refresher");
    expect(binding.subjects).toEqual([
      { kind: "ServiceAccount", name: "ecr-ecr-creds-refresher", namespace: OPS },
    ]);

    await expectOperatorSecretPulls(world);

    // The kernel's view of the operator's process: uid 1000, a read-only
    // root, the kubelet's in-cluster environment (the kubernetes Service).
    const proc = await containerProcess("bin/ecr-creds-refresher");
    expect(proc.uids).toEqual([1000, 1000, 1000, 1000]);
    expect(proc.rootMountOptions).toContain("ro");
    expect(proc.env.KUBERNETES_SERVICE_HOST).toBe(KUBERNETES_SERVICE_IP);
    expect(proc.env.KUBERNETES_SERVICE_PORT).toBe("443");
    expect(proc.env.KUBECONFIG).toBeUndefined();
  });
});

describe.skipIf(skipReason !== undefined)(
  "the operator's image: upgrade and leader hand-over",
  () => {
    it("helm upgrade to a rebuilt image with a changed value and two replicas; deleting the leader's Pod hands the Lease over within its duration, no Secret goes stale", async () => {
      if (w === undefined) throw new Error("no world");
      const world = w;
      const { k } = world.stack;
      const ns = NAMESPACES[0] ?? "";
      const archive = join(world.stack.dir, "operator-dev2.tar");
      await execFileAsync("bash", [join(repoRoot, "scripts/build-image.sh"), IMAGE2, archive], {
        maxBuffer: 16 * 1024 * 1024,
      });
      await world.node.importImage(archive);

      // Whatever happens below, the Secret's token stays valid at every look.
      const staleness = watchForStaleSecret(world, ns);
      const pods = await upgradeToTwoReplicas(world);
      for (const p of pods) {
        expect(p.spec?.containers[0]?.env?.find((e) => e.name === "LOG_LEVEL")?.value).toBe(
          "debug",
        );
      }

      const { leader, other, transitions, takeoverMs, leaseMs } = await deleteLeader(world, pods);
      console.log(
        `node chart: Lease ${transitions.join(" -> ")} in ${(takeoverMs / 1000).toFixed(1)}s (lease ${leaseMs / 1000}s)`,
      );
      const successor = transitions.at(-1) ?? "";
      expect(transitions.filter((t) => t !== "(none)")).toEqual([leader, successor]);
      console.log(
        `node chart: the Lease went to ${successor === other ? "the standby" : "the leader's replacement Pod"}`,
      );
      expect(takeoverMs).toBeLessThan(leaseMs);

      // A refresh by the new leader follows, and the Secret never went stale.
      const before = await readSecret(k, ns, "ecr-pull");
      await waitFor(
        "a refresh by the new leader",
        async () => {
          const now = await readSecret(k, ns, "ecr-pull");
          return now?.metadata?.resourceVersion !== before?.metadata?.resourceVersion
            ? true
            : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      expect(await staleness.stop()).toEqual([]);
    });
  },
);

describe.skipIf(skipReason !== undefined)(
  "the operator's image: deletion policies and uninstall",
  () => {
    it("deletionPolicy: Delete removes the resource's Secret, Retain keeps it; helm uninstall removes the chart's objects and nothing else", async () => {
      if (w === undefined) throw new Error("no world");
      const world = w;
      const { k } = world.stack;
      const ns = NAMESPACES[0] ?? "";
      world.stack.resources.push("node-chart-retain", "node-chart-kept");
      await applyResource(k, "node-chart-retain", {
        secretName: "ecr-pull-retain",
        namespaces: NAMESPACES,
        deletionPolicy: "Retain",
      });
      await applyResource(k, "node-chart-kept", {
        secretName: "ecr-pull-kept",
        namespaces: NAMESPACES,
      });
      for (const name of ["ecr-pull-retain", "ecr-pull-kept"]) {
        await waitFor(`Secret ${ns}/${name}`, () => readSecret(k, ns, name), { timeoutMs: 60_000 });
      }
      await deleteResource(k, "node-chart");
      await deleteResource(k, "node-chart-retain");
      await waitFor("Delete's Secret to go", async () =>
        (await readSecret(k, ns, "ecr-pull")) === undefined ? true : undefined,
      );
      expect((await readSecret(k, ns, "ecr-pull-retain"))?.type).toBe(
        "kubernetes.io/dockerconfigjson",
      );

      const kept = await readSecret(k, ns, "ecr-pull-kept");
      await runHelm(["uninstall", RELEASE, "--namespace", OPS, "--wait"]);
      await waitFor("the operator's Pods to go", async () =>
        (await operatorPods(world)).length === 0 ? true : undefined,
      );
      const gone = async (read: () => Promise<unknown>) =>
        await read().then(
          () => "present",
          (err: unknown) => (statusOf(err) === 404 ? "gone" : String(err)),
        );
      expect({
        deployment: await gone(() =>
          world.stack.k.kc
            .makeApiClient(AppsV1Api)
            .readNamespacedDeployment({ namespace: OPS, name: FULLNAME }),
        ),
        serviceAccount: await gone(() =>
          k.core.readNamespacedServiceAccount({ namespace: OPS, name: FULLNAME }),
        ),
        clusterRole: await gone(() => k.rbac.readClusterRole({ name: FULLNAME })),
        clusterRoleBinding: await gone(() => k.rbac.readClusterRoleBinding({ name: FULLNAME })),
      }).toEqual({
        deployment: "gone",
        serviceAccount: "gone",
        clusterRole: "gone",
        clusterRoleBinding: "gone",
      });
      // What users made and what the operator wrote for them stays as it was.
      expect((await getResource(k, "node-chart-kept"))?.metadata?.name).toBe("node-chart-kept");
      expect((await readSecret(k, ns, "ecr-pull-kept"))?.metadata?.resourceVersion).toBe(
        kept?.metadata?.resourceVersion,
      );
      expect((await readSecret(k, ns, "ecr-pull-retain"))?.type).toBe(
        "kubernetes.io/dockerconfigjson",
      );
      await waitForPodState(world, ns, "app", { phase: "Running", container: "running" });
    });
  },
);
