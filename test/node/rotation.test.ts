// Tokens that live 40 seconds, across three refreshes, on a real node: every
// new Pod (imagePullPolicy: Always) pulls with the token the Secret holds at
// that moment; a Pod whose container restarts from the cached image keeps
// starting without a pull (the kubelet's KEP-2535 check passes because the
// Secret rotated in place: same namespace, name and UID); and the registry
// refuses each old token once it has expired.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANNOTATION_EXPIRES_AT } from "../../src/api/metadata.js";
import { applyResource, dockerConfigOf, readSecret, waitFor } from "../harness/kube.js";
import { ECR_HOST } from "../harness/node.js";
import {
  killContainer,
  kubeletEvents,
  podOf,
  skipReason,
  startWorld,
  stopWorld,
  type World,
  waitForDefaultSa,
  waitForPodState,
} from "./world.js";

const OPS = "node-rotation-ops";
const NS = "node-rotation";
const SECRET = "ecr-pull";
const TOKEN_LIFETIME_MS = 40_000;
const MANIFEST = "/v2/team/app/manifests/v1";

let w: World | undefined;

async function secretToken(world: World): Promise<{ password: string; uid: string }> {
  const secret = await readSecret(world.stack.k, NS, SECRET);
  const password = secret ? dockerConfigOf(secret).auths[ECR_HOST]?.password : undefined;
  if (!secret || !password) throw new Error(`no token in ${NS}/${SECRET}`);
  return { password, uid: secret.metadata?.uid ?? "" };
}

/** Registry requests for the manifest since `since`, as `token index:status`. */
function manifestPulls(world: World, tokens: string[], since: number): string[] {
  return world.node.registry
    .authAttempts()
    .filter((a) => a.path === MANIFEST && a.time >= since)
    .map((a) => `T${tokens.indexOf(a.password)}:${a.status}`);
}

async function registryAnswers(world: World, password: string): Promise<number> {
  const auth = Buffer.from(`AWS:${password}`).toString("base64");
  const res = await fetch(`${world.node.registry.url}${MANIFEST}`, {
    headers: { authorization: `Basic ${auth}` },
  });
  await res.arrayBuffer();
  return res.status;
}

describe.skipIf(skipReason !== undefined)("rotation on a real node", () => {
  beforeAll(async () => {
    w = await startWorld({ ops: OPS, namespaces: [NS], tokenLifetimeMs: TOKEN_LIFETIME_MS });
  }, 600_000);

  afterAll(async () => {
    await stopWorld(w);
  }, 120_000);

  it("new Pods pull with each new token, a restarted Pod starts from its cached image, old tokens are refused after expiry", async () => {
    if (w === undefined) throw new Error("no world");
    const world = w;
    const { k } = world.stack;
    await waitForDefaultSa(world, NS);
    world.stack.resources.push("node-rotation");
    await applyResource(k, "node-rotation", { secretName: SECRET, namespaces: [NS] });
    await world.stack.startOperator({ as: false });
    const first = await waitFor(`Secret ${NS}/${SECRET}`, () => secretToken(world));
    const tokens = [first.password];
    const image = world.node.imageRef("team/app");

    // A long-running Pod, pulled once with the first token.
    const keeperStarted = Date.now();
    const keeper = await k.core.createNamespacedPod({
      namespace: NS,
      body: podOf("keeper", image, { pullSecret: SECRET, pullPolicy: "IfNotPresent" }),
    });
    await waitForPodState(world, NS, "keeper", { phase: "Running", container: "running" });
    expect(manifestPulls(world, tokens, keeperStarted)).toEqual(["T0:200"]);

    for (let round = 1; round <= 3; round++) {
      // The operator refreshes at half the lifetime, in place.
      const next = await waitFor(
        `refresh ${round}`,
        async () => {
          const t = await secretToken(world);
          return t.password !== tokens[round - 1] ? t : undefined;
        },
        { timeoutMs: TOKEN_LIFETIME_MS, intervalMs: 250 },
      );
      expect(next.uid).toBe(first.uid);
      tokens.push(next.password);
      const since = Date.now();

      // A new Pod pulls, with the new token.
      await k.core.createNamespacedPod({
        namespace: NS,
        body: podOf(`new-${round}`, image, { pullSecret: SECRET, pullPolicy: "Always" }),
      });
      await waitForPodState(world, NS, `new-${round}`, { phase: "Running", container: "running" });
      expect(manifestPulls(world, tokens, since)).toEqual([`T${round}:200`]);

      // The long-running Pod's container dies and starts again from the
      // cached image: no request reaches the registry.
      const restartFrom = Date.now();
      await killContainer(keeper.metadata?.uid ?? "");
      await waitFor(
        `keeper restart ${round}`,
        async () => {
          const p = await k.core.readNamespacedPod({ namespace: NS, name: "keeper" });
          const s = p.status?.containerStatuses?.[0];
          return s?.restartCount === round && s.state?.running ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      expect(manifestPulls(world, tokens, restartFrom)).toEqual([]);
    }
    const keeperPulled = (await kubeletEvents(world, NS, "keeper"))
      .filter((e) => e.reason === "Pulled")
      .map((e) => e.message?.replace(/ in [\d.]+m?s.*$/, ""));
    expect(keeperPulled[0]).toBe(`Successfully pulled image "${image}"`);
    expect(keeperPulled.slice(1)).toEqual([
      `Container image "${image}" already present on machine and can be accessed by the pod`,
    ]);

    // Each old token: refused by the registry once expired, not before.
    for (const [i, password] of tokens.entries()) {
      const issued = world.aws.issued().find((t) => t.password === password);
      const expiresAt = issued?.expiresAt.getTime() ?? 0;
      if (Date.now() < expiresAt) continue;
      expect(`T${i}:${await registryAnswers(world, password)}`).toBe(`T${i}:401`);
    }
    await new Promise((r) =>
      setTimeout(r, Math.max(0, (world.aws.issued()[0]?.expiresAt.getTime() ?? 0) - Date.now())),
    );
    expect(await registryAnswers(world, tokens[0] ?? "")).toBe(401);
    // The token the Secret holds now opens the registry, until the expiry it names.
    const current = await secretToken(world);
    expect(await registryAnswers(world, current.password)).toBe(200);
    const secret = await readSecret(k, NS, SECRET);
    const issued = world.aws.issued().find((t) => t.password === current.password);
    expect(Date.parse(secret?.metadata?.annotations?.[ANNOTATION_EXPIRES_AT] ?? "")).toBe(
      issued?.expiresAt.getTime(),
    );
    console.log(`node rotation: ${tokens.length} tokens, keeper restarted 3 times without a pull`);
  });
});
