// moto's server as a second, third-party AWS endpoint: the operator reaches it
// through the SDK's standard AWS_ENDPOINT_URL and writes a Secret built from
// what moto returned. moto's ECR tokens are already expired when they arrive
// (it dates them 2015): the operator must say so in Ready and ask again no
// faster than its refresh floor. Needs .cache/venv (`bash scripts/setup.sh`).
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  dockerConfigOf,
  getResource,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { type Moto, startMoto } from "../harness/moto.js";
import { type Stack, startStack } from "../harness/stack.js";
import { waitForReason } from "../harness/state.js";

const OPS = "awsmoto-ops";
const NS = "awsmoto-app";
const FLOOR_MS = 1_000;
// moto accepts any keys; these are moto's documented test values.
const KEYS = { accessKeyId: "testing", secretAccessKey: "testing" };

let stack: Stack;
let k: TestKube;
let moto: Moto;

beforeAll(async () => {
  // moto is this file's AWS: the stack's double stays unused.
  stack = await startStack({ ops: OPS, namespaces: [NS], credentials: false, awsEndpoint: false });
  k = stack.k;
  stack.resources.push("awsmoto");
  moto = await startMoto();
  stack.onStop(() => moto.stop());
  process.env.AWS_ENDPOINT_URL = moto.url;
  await stack.putKeys("moto-keys", KEYS);
  await stack.startOperator({ as: false, config: { minRefreshIntervalMs: FLOOR_MS } });
});

afterAll(async () => {
  await stack?.stop();
});

describe("moto", () => {
  it("writes a Secret from moto's token, reports it expired on arrival, and asks no faster than the floor", async () => {
    // No registries: the Secret's host comes from the proxyEndpoint moto answers.
    await applyResource(k, "awsmoto", {
      secretName: "ecr-moto",
      namespaces: [NS],
      serviceAccounts: [],
      credentials: { secretRef: { namespace: OPS, name: "moto-keys" } },
    });
    const secret = await waitFor("the Secret built from moto's token", () =>
      readSecret(k, NS, "ecr-moto"),
    );

    // What moto says, asked directly with the SDK, bypassing the operator.
    const ecr = new ECRClient({
      region: "us-east-1",
      endpoint: moto.directUrl,
      credentials: KEYS,
    });
    const direct = (await ecr.send(new GetAuthorizationTokenCommand({}))).authorizationData?.[0];
    ecr.destroy();
    const [username, password] = Buffer.from(direct?.authorizationToken ?? "", "base64")
      .toString("utf8")
      .split(":");
    const host = new URL(direct?.proxyEndpoint ?? "").host;
    expect(host).toMatch(/^\d{12}\.dkr\.ecr\.us-east-1\.amazonaws\.com$/);
    const auths = dockerConfigOf(secret).auths;
    expect(Object.keys(auths)).toEqual([host]);
    expect(auths[host]?.username).toBe(username);
    expect(auths[host]?.password).toBe(password);
    expect(Buffer.from(auths[host]?.auth ?? "", "base64").toString()).toBe(
      `${username}:${password}`,
    );
    expect(secret.metadata?.annotations?.["ecrcreds.io/token-expires-at"]).toBe(
      direct?.expiresAt?.toISOString(),
    );

    const ready = readyCondition(await waitForReason(k, "awsmoto", "TokenExpiredOnArrival"));
    expect(ready?.status).toBe("False");
    expect(ready?.message).toContain("expire");

    // The operator keeps asking, but no faster than the floor.
    const from = Date.now();
    const tokenCalls = (to = Date.now()) =>
      moto.calls(
        (c) => c.action.endsWith(".GetAuthorizationToken") && c.time >= from && c.time <= to,
      );
    const gapsOf = (times: number[]) => times.slice(1).map((t, i) => t - (times[i] ?? 0));
    await consistently(
      "GetAuthorizationToken calls no closer together than the floor",
      () => {
        const close = gapsOf(tokenCalls().map((c) => c.time)).filter((g) => g < FLOOR_MS - 50);
        return close.length === 0 ? true : `gaps of ${close.join(", ")} ms`;
      },
      { forMs: 4_500 },
    );
    const to = Date.now();
    const calls = tokenCalls(to);
    const times = calls.map((c) => c.time);
    const gaps = gapsOf(times);
    console.log(
      `moto: ${calls.length} GetAuthorizationToken calls in ${to - from} ms (floor ${FLOOR_MS} ms); gaps ${gaps.join(", ")} ms`,
    );
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.length).toBeLessThanOrEqual(Math.floor((to - from) / FLOOR_MS) + 1);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(FLOOR_MS - 50);
    expect(calls.every((c) => c.status === 200)).toBe(true);
    // And it still reports the same, with the Secret still moto's.
    expect(readyCondition(await getResource(k, "awsmoto"))?.reason).toBe("TokenExpiredOnArrival");
    const again = await readSecret(k, NS, "ecr-moto");
    expect(dockerConfigOf(again ?? secret).auths[host]?.password).toBe(password);
  });
});
