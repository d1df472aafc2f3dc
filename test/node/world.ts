// What every node test file shares: whether the node world can run here (in
// CI it must: there the tests fail instead of skipping), the world itself
// (its own control plane, a node, the operator's stack), and Pod and Event
// helpers.
import { readdir, readFile } from "node:fs/promises";
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import type { AwsDouble } from "../aws-double/index.js";
import { type ControlPlane, startControlPlane } from "../harness/controlplane.js";
import { installCrd, testKube, waitFor } from "../harness/kube.js";
import { type NodeWorld, nodeWorldUnavailable, startNode } from "../harness/node.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";

export const ACCOUNT = "111122223333";

/** Undefined when the node tests run; else why they are skipped (never in CI). */
export const skipReason: string | undefined = (() => {
  const why = nodeWorldUnavailable();
  if (why === undefined || process.env.CI === "true") return undefined;
  console.log(`node tests skipped: the node world ${why}`);
  return why;
})();

export interface World {
  cp: ControlPlane;
  node: NodeWorld;
  stack: Stack;
  aws: AwsDouble;
  /**
   * Which repositories a token's principal (AwsDouble.issued()'s
   * principalArn) may pull; default: all of them.
   */
  setRepositoryPolicy(policy: (principalArn: string, repository: string) => boolean): void;
}

export async function startWorld(o: {
  ops: string;
  namespaces: string[];
  tokenLifetimeMs?: number;
}): Promise<World> {
  const cp = await startControlPlane();
  let aws: AwsDouble | undefined;
  let policy: ((principalArn: string, repository: string) => boolean) | undefined;
  try {
    await installCrd(testKube(cp.kubeconfigPath));
    const node = await startNode({
      cp,
      validatePassword: (password, at) => aws?.isValidPassword(password, at) ?? false,
      authorizeRepository: (password, repository) => {
        const principal = aws?.issued().find((t) => t.password === password)?.principalArn;
        return policy === undefined || (principal !== undefined && policy(principal, repository));
      },
    });
    const stack = await startStack({
      kubeconfigPath: cp.kubeconfigPath,
      ops: o.ops,
      namespaces: o.namespaces,
      tokenLifetimeMs: o.tokenLifetimeMs,
      identities: [iamUser("node", 1, ACCOUNT, "node")],
    });
    aws = stack.aws;
    return {
      cp,
      node,
      stack,
      aws,
      setRepositoryPolicy: (p) => {
        policy = p;
      },
    };
  } catch (err) {
    await cp.stop();
    throw err;
  }
}

export async function stopWorld(w: World | undefined): Promise<void> {
  if (w === undefined) return;
  try {
    await w.stack.stop().catch(() => undefined);
    await w.node.stop();
  } finally {
    await w.cp.stop();
  }
}

/** A Pod of one container running `image`, pulling with the named Secret. */
export function podOf(
  name: string,
  image: string,
  o: { pullSecret?: string; pullPolicy?: "Always" | "IfNotPresent"; serviceAccount?: string } = {},
): V1Pod {
  return {
    metadata: { name },
    spec: {
      ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}),
      automountServiceAccountToken: false,
      // The node's resolver: this world has no cluster DNS.
      dnsPolicy: "Default",
      terminationGracePeriodSeconds: 1,
      ...(o.pullSecret ? { imagePullSecrets: [{ name: o.pullSecret }] } : {}),
      containers: [{ name: "app", image, imagePullPolicy: o.pullPolicy ?? "Always" }],
    },
  };
}

/** The Pod's phase and its container's waiting reason (or "running"). */
export async function podState(
  w: World,
  namespace: string,
  name: string,
): Promise<{ phase: string; container: string }> {
  const pod = await w.stack.k.core.readNamespacedPod({ namespace, name });
  const state = pod.status?.containerStatuses?.[0]?.state;
  const container = state?.running
    ? "running"
    : (state?.waiting?.reason ?? (state?.terminated ? "terminated" : "none"));
  return { phase: pod.status?.phase ?? "", container };
}

/** Waits until the Pod is in exactly this state. */
export async function waitForPodState(
  w: World,
  namespace: string,
  name: string,
  want: { phase: string; container: string },
  timeoutMs = 90_000,
): Promise<void> {
  let last: { phase: string; container: string } | undefined;
  await waitFor(
    `Pod ${namespace}/${name} ${JSON.stringify(want)}`,
    async () => {
      last = await podState(w, namespace, name);
      if (last.phase === want.phase && last.container === want.container) return true;
      throw new Error(`last seen ${JSON.stringify(last)}`);
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/** The kubelet's Events about a Pod, oldest first: `reason` and the first line of the message. */
export async function kubeletEvents(
  w: World,
  namespace: string,
  pod: string,
): Promise<CoreV1Event[]> {
  const list = await w.stack.k.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${pod}`,
  });
  return list.items
    .filter((e) => e.source?.component === "kubelet" || e.reportingComponent === "kubelet")
    .sort(
      (a, b) =>
        Date.parse(String(a.firstTimestamp ?? a.eventTime ?? 0)) -
        Date.parse(String(b.firstTimestamp ?? b.eventTime ?? 0)),
    );
}

/** Distinct kubelet Event reasons about a Pod, in order of first appearance. */
export async function kubeletReasons(w: World, namespace: string, pod: string): Promise<string[]> {
  const reasons: string[] = [];
  for (const e of await kubeletEvents(w, namespace, pod)) {
    if (e.reason && !reasons.includes(e.reason)) reasons.push(e.reason);
  }
  return reasons;
}

export async function waitForDefaultSa(w: World, namespace: string): Promise<void> {
  await waitFor(`ServiceAccount ${namespace}/default`, async () => {
    await w.stack.k.core.readNamespacedServiceAccount({ namespace, name: "default" });
    return true;
  });
}

export interface ContainerProcess {
  pid: number;
  /** Real, effective, saved and filesystem uid (/proc/PID/status). */
  uids: number[];
  env: Record<string, string>;
  /** The mount options of the process's root filesystem. */
  rootMountOptions: string[];
}

/**
 * The one process on this machine whose command line contains `needle` and
 * which runs in the node's cgroups: a container's process as the kernel sees it.
 */
export async function containerProcess(needle: string): Promise<ContainerProcess> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes(needle)) continue;
    const cgroup = await readFile(`/proc/${entry}/cgroup`, "utf8").catch(() => "");
    if (cgroup.includes("/ecr-node/kubepods")) found.push(Number(entry));
  }
  if (found.length !== 1) throw new Error(`${found.length} container processes match ${needle}`);
  const pid = found[0] ?? 0;
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const uids = (/^Uid:\s+(.*)$/m.exec(status)?.[1] ?? "").split(/\s+/).map(Number);
  const env = Object.fromEntries(
    (await readFile(`/proc/${pid}/environ`, "utf8"))
      .split("\0")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  const root = (await readFile(`/proc/${pid}/mountinfo`, "utf8"))
    .split("\n")
    .map((line) => line.split(" "))
    .find((f) => f[4] === "/");
  return { pid, uids, env, rootMountOptions: (root?.[5] ?? "").split(",") };
}

/**
 * Kills the app container's process of the Pod with this UID (SIGKILL, as an
 * OOM kill would): the kubelet then restarts it.
 */
export async function killContainer(podUid: string): Promise<void> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cgroup = await readFile(`/proc/${entry}/cgroup`, "utf8").catch(() => "");
    if (!cgroup.includes(`/ecr-node/kubepods/besteffort/pod${podUid}/`)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.startsWith("/sleeper\0") && !cmdline.includes("pause")) {
      process.kill(Number(entry), "SIGKILL");
      return;
    }
  }
  throw new Error(`failed to find the container process of Pod ${podUid}`);
}
