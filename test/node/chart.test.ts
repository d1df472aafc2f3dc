// The operator as a user runs it: its image, built from the project's
// Dockerfile (scripts/build-image.sh), loaded into the node and installed with
// `helm install` of the project's chart. It runs as a Pod (non-root, read-only
// root filesystem, its probes answered), talks to the API server through its
// in-cluster configuration under the chart's RBAC, and the Secrets it writes
// let the kubelet pull.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chartDir } from "../harness/chart.js";
import { repoRoot } from "../harness/controlplane.js";
import { applyResource, auditWrites, readSecret, waitFor } from "../harness/kube.js";
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
function installArgs(extra: string[] = []): string[] {
  return [
    chartDir,
    "--namespace",
    OPS,
    "--set",
    `image.repository=${IMAGE.split(":")[0]}`,
    "--set",
    `image.tag=${IMAGE.split(":")[1]}`,
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

describe.skipIf(skipReason !== undefined)("the operator's image, installed by its chart", () => {
  beforeAll(async () => {
    // No-op unless src/, the Dockerfile or the lock file changed since setup.
    await execFileAsync("bash", [join(repoRoot, "scripts/build-image.sh"), IMAGE], {
      maxBuffer: 16 * 1024 * 1024,
    });
    w = await startWorld({ ops: OPS, namespaces: NAMESPACES });
    kubeconfig = w.cp.kubeconfigPath;
    await w.node.importImage(join(repoRoot, ".cache/image/operator.tar"));
    awsEndpoint = await w.node.expose(Number(new URL(w.aws.url).port));
  }, 300_000);

  afterAll(async () => {
    await stopWorld(w);
  }, 120_000);

  it("runs as a non-root Pod with a read-only root filesystem, Ready, in-cluster, under the chart's RBAC", async () => {
    if (w === undefined) throw new Error("no world");
    const world = w;
    const { k } = world.stack;
    const installStarted = Date.now();
    await runHelm(["install", RELEASE, ...installArgs()]);
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
    const name = pod.metadata?.name ?? "";
    const createdAt = new Date(pod.metadata?.creationTimestamp ?? 0).getTime();
    const startToReadyMs = (readyAt(pod) ?? 0) - createdAt;
    console.log(
      `node chart: helm install to Ready ${((Date.now() - installStarted) / 1000).toFixed(1)}s, Pod created to Ready ${(startToReadyMs / 1000).toFixed(1)}s (second resolution)`,
    );
    expect(pod.spec?.nodeName).toBe(NODE_NAME);
    expect(pod.status?.phase).toBe("Running");
    expect(pod.spec?.serviceAccountName).toBe("ecr-ecr-creds-refresher");
    const container = pod.spec?.containers[0];
    expect(container?.image).toBe(IMAGE);
    expect(container?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(container?.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.spec?.securityContext?.runAsUser).toBe(1000);
    expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    // The kubelet used the loaded image and never had to pull; the liveness
    // probe never failed, the readiness probe only before the informers synced.
    expect((await kubeletReasons(world, OPS, name)).filter((r) => r !== "Unhealthy")).toEqual([
      "MissingClusterDNS",
      "Pulled",
      "Created",
      "Started",
    ]);
    const unhealthy = (await kubeletEvents(world, OPS, name)).filter(
      (e) => e.reason === "Unhealthy",
    );
    for (const e of unhealthy) {
      // Before the informers synced (503), or before the server listened.
      expect(e.message).toMatch(
        /^Readiness probe failed: (HTTP probe failed with statuscode: 503|Get "http:\/\/10\.244\.77\.\d+:8081\/readyz": dial tcp 10\.244\.77\.\d+:8081: connect: connection refused)$/,
      );
      expect(new Date(String(e.lastTimestamp ?? e.eventTime)).getTime()).toBeLessThanOrEqual(
        readyAt(pod) ?? 0,
      );
    }

    // The chart's binding names the chart's ClusterRole, not cluster-admin.
    const binding = await k.rbac.readClusterRoleBinding({ name: "ecr-ecr-creds-refresher" });
    expect(binding.roleRef.name).toBe("ecr-ecr-creds-refresher");
    expect(binding.subjects).toEqual([
      { kind: "ServiceAccount", name: "ecr-ecr-creds-refresher", namespace: OPS },
    ]);

    // The operator in the Pod writes the Secret; the kubelet pulls with it.
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
        (a) =>
          `${a.username}:${a.password === token ? "operator's token" : a.password}:${a.status}`,
      );
    expect(pulls).toEqual(["AWS:operator's token:200"]);
    // The Secret was written by the chart's ServiceAccount: the operator's
    // in-cluster identity, not the test's.
    const writers = await auditWrites(
      world.cp.auditLogPath,
      (e) => e.objectRef?.resource === "secrets" && e.objectRef.namespace === ns,
    );
    expect([...new Set(writers.map((e) => e.user.username))]).toEqual([
      `system:serviceaccount:${OPS}:ecr-ecr-creds-refresher`,
    ]);

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
