// A real kubelet pulls through the operator's Secrets: Pods in three
// namespaces, created while the operator is stopped and before any Secret
// exists, sit in ImagePullBackOff (the registry refuses them), then reach
// Running on their own once the operator has written the Secrets; the
// registry double's log shows the operator's token opened every pull.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyResource, readSecret } from "../harness/kube.js";
import { NODE_NAME } from "../harness/node.js";
import {
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

const OPS = "node-pull-ops";
const NAMESPACES = ["node-pull-a", "node-pull-b", "node-pull-c"];
const SECRET = "ecr-pull";
const REPOSITORY = "team/app";

let w: World | undefined;

describe.skipIf(skipReason !== undefined)("a kubelet pulls with the operator's Secrets", () => {
  beforeAll(async () => {
    w = await startWorld({ ops: OPS, namespaces: NAMESPACES });
  }, 600_000);

  afterAll(async () => {
    await stopWorld(w);
  }, 120_000);

  it("Pods wait in ImagePullBackOff while the operator is stopped, then run once it writes the Secrets", async () => {
    if (w === undefined) throw new Error("no world");
    const world = w;
    const { k } = world.stack;
    const image = world.node.imageRef(REPOSITORY);
    for (const ns of NAMESPACES) await waitForDefaultSa(world, ns);
    // The resource exists, the operator does not run yet: no Secret anywhere.
    world.stack.resources.push("node-pull");
    await applyResource(k, "node-pull", { secretName: SECRET, namespaces: NAMESPACES });
    await Promise.all(
      NAMESPACES.map((namespace) =>
        k.core.createNamespacedPod({
          namespace,
          body: podOf("app", image, { pullSecret: SECRET }),
        }),
      ),
    );
    for (const ns of NAMESPACES) {
      await waitForPodState(world, ns, "app", { phase: "Pending", container: "ImagePullBackOff" });
      expect(await readSecret(k, ns, SECRET)).toBeUndefined();
      const pod = await k.core.readNamespacedPod({ namespace: ns, name: "app" });
      expect(pod.spec?.nodeName).toBe(NODE_NAME);
      const failed = (await kubeletEvents(world, ns, "app")).find((e) => e.reason === "Failed");
      expect(failed?.message).toBe(
        `Failed to pull image "${image}": failed to pull and unpack image "${image}": failed to resolve image: pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials`,
      );
    }
    // Without credentials the double saw no password at all.
    expect(world.node.registry.authAttempts()).toEqual([]);

    const operatorStarted = Date.now();
    await world.stack.startOperator({ as: false });
    for (const ns of NAMESPACES) {
      await waitForPodState(world, ns, "app", { phase: "Running", container: "running" }, 120_000);
      expect(await kubeletReasons(world, ns, "app")).toEqual([
        "FailedToRetrieveImagePullSecret",
        "Pulling",
        "Failed",
        "BackOff",
        "Pulled",
        "Created",
        "Started",
      ]);
    }
    const recoveredMs = Date.now() - operatorStarted;

    // Every pull was opened by the one token the operator fetched, and the
    // Secrets hold exactly it.
    const issued = world.aws.issued().map((t) => t.password);
    expect(issued).toHaveLength(1);
    for (const ns of NAMESPACES) {
      const secret = await readSecret(k, ns, SECRET);
      expect(secret?.type).toBe("kubernetes.io/dockerconfigjson");
    }
    const manifestPulls = world.node.registry
      .authAttempts()
      .filter((a) => a.path === `/v2/${REPOSITORY}/manifests/v1`);
    expect(manifestPulls.length).toBeGreaterThanOrEqual(NAMESPACES.length);
    expect(new Set(manifestPulls.map((a) => `${a.username}:${a.password}:${a.status}`))).toEqual(
      new Set([`AWS:${issued[0]}:200`]),
    );
    console.log(
      `node pull: Pods Running ${(recoveredMs / 1000).toFixed(1)}s after the operator started`,
    );
  });
});
