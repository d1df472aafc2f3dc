// The operator's registry check on a real API server: after each refresh it
// does GET /v2/ with the new credentials against the registry double, and the
// answer becomes the Verified condition and the ecr_creds_refresher_verified
// metric. A failed check is retried on later passes, not cached for good; the
// --verify=false flag turns the check off.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import { verifyRegistry } from "../../src/aws/verify.js";
import { parseCommandLine } from "../../src/cli/config.js";
import type { AwsDouble } from "../aws-double/index.js";
import { freePort } from "../harness/controlplane.js";
import {
  applyResource,
  getResource,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { readPassword, waitForReady, waitForResource } from "../harness/state.js";
import type { RegistryDouble } from "../registry-double/index.js";

const ACCOUNT = "444455556666";
const OPS = "verify-ops";
const NAMESPACES = ["verify-a", "verify-b"];
const KEYS = [0, 1].map((i) => iamUser("verify", i + 1, ACCOUNT, `verify-${i}`));

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let registry: RegistryDouble;
let op: InProcessOperator | undefined;

function verifiedCondition(r: ECRPullSecret | undefined) {
  return r?.status?.conditions?.find((c) => c.type === "Verified");
}

async function putKeys(keys: { accessKeyId: string; secretAccessKey: string }): Promise<void> {
  await stack.putKeys("aws-creds", keys);
}

async function verifiedMetric(resource: string): Promise<number | undefined> {
  const values = (await op?.metrics.verified.get())?.values ?? [];
  return values.find((v) => v.labels.resource === resource)?.value;
}

const passwordIn = (namespace: string) => readPassword(k, namespace, "verify-pull", registry.host);

function startVerifyingOperator(verify: boolean): Promise<InProcessOperator> {
  return stack.startOperator({ as: false, config: { verify } });
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: NAMESPACES,
    identities: KEYS,
  });
  ({ k, aws } = stack);
  stack.resources.push("verify", "verify-off");
  registry = await stack.startRegistry();
  // GetAuthorizationToken names the registry double as the registry: a
  // resource without `registries` gets auths keyed by its 127.0.0.1:PORT.
  aws.proxyEndpointFor = () => registry.url;
  op = await startVerifyingOperator(true);
});

afterAll(async () => {
  await stack?.stop();
});

describe("Verified condition", () => {
  it("is True with the registry's URL once a fresh token opens the registry double", async () => {
    await applyResource(k, "verify", { secretName: "verify-pull", namespaces: ["verify-a"] });
    const r = await waitForResource(
      k,
      "verify",
      "Verified=True",
      (got) => verifiedCondition(got)?.status === "True",
    );
    const issued = aws.issued();
    expect(issued).toHaveLength(1);
    const password = issued[0]!.password;
    expect(await passwordIn("verify-a")).toBe(password);
    expect(verifiedCondition(r)).toMatchObject({
      status: "True",
      reason: "Verified",
      message: `${registry.url}/v2/ accepted the credentials (HTTP 200)`,
    });
    expect(readyCondition(r)?.status).toBe("True");
    // The check really reached the registry with the Secret's password.
    expect(
      registry
        .authAttempts()
        .filter((a) => a.path === "/v2/")
        .map((a) => [a.username, a.password, a.status]),
    ).toEqual([["AWS", password, 200]]);
    expect(await verifiedMetric("verify")).toBe(1);
  });

  it("is False with the registry's status and message when the registry refuses the new token", async () => {
    const before = await passwordIn("verify-a");
    registry.refuseAll(true);
    registry.resetAuthAttempts();
    // Rotated keys: the operator fetches a new token, writes it, and checks it.
    await putKeys(KEYS[1]!);
    const r = await waitForResource(
      k,
      "verify",
      "Verified=False",
      (got) => verifiedCondition(got)?.status === "False",
    );
    const fresh = aws.issued().find((t) => t.principalArn.endsWith("user/verify-1"));
    expect(fresh).toBeDefined();
    expect(fresh!.password).not.toBe(before);
    expect(await passwordIn("verify-a")).toBe(fresh!.password);
    expect(verifiedCondition(r)).toMatchObject({
      status: "False",
      reason: "VerificationFailed",
      message: `${registry.url}/v2/ answered HTTP 401 UNAUTHORIZED: registry refuses every request`,
    });
    // The Secret itself is in place: Ready stays True, Verified says it does not open the registry.
    expect(readyCondition(r)?.status).toBe("True");
    const checks = registry.authAttempts().filter((a) => a.path === "/v2/");
    expect(checks.length).toBeGreaterThan(0);
    // A valid token the registry refused: the check saw the registry's answer, not a stale password.
    expect(checks[0]).toMatchObject({
      password: fresh!.password,
      passwordValid: true,
      status: 401,
    });
    expect(await verifiedMetric("verify")).toBe(0);
  });
});

describe("Verified condition: retries, failures in the check's words, and --verify=false", () => {
  it("retries a failed check on later passes and turns True without a new token", async () => {
    const issuedBefore = aws.issued().length;
    const password = await passwordIn("verify-a");
    registry.refuseAll(false);
    const r = await waitFor(
      "Verified=True again",
      async () => {
        const got = await getResource(k, "verify");
        return verifiedCondition(got)?.status === "True" ? got : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(verifiedCondition(r)?.message).toBe(
      `${registry.url}/v2/ accepted the credentials (HTTP 200)`,
    );
    // Nothing changed but the registry's answer: same token, no AWS call.
    expect(aws.issued()).toHaveLength(issuedBefore);
    expect(await passwordIn("verify-a")).toBe(password);
    const checks = registry.authAttempts().filter((a) => a.path === "/v2/");
    expect(checks.at(-1)).toMatchObject({ password, status: 200 });
    expect(checks.filter((a) => a.status === 401).length).toBeGreaterThanOrEqual(1);
    expect(await verifiedMetric("verify")).toBe(1);
  });

  it("reports an expired password and an unreachable registry in the check's own words", async () => {
    const bogus = await verifyRegistry(registry.url, "AWS", "not-issued-by-aws", {
      timeoutMs: 2_000,
    });
    expect(bogus).toEqual({
      ok: false,
      message: `${registry.url}/v2/ answered HTTP 401 UNAUTHORIZED: invalid or expired credentials`,
    });
    // A port nothing listens on: a cluster with no route to the registry.
    const port = await freePort();
    const closed = await verifyRegistry(`http://127.0.0.1:${port}`, "AWS", "x", {
      timeoutMs: 2_000,
    });
    expect(closed.ok).toBe(false);
    expect(closed.message).toMatch(
      new RegExp(`^failed to reach http://127\\.0\\.0\\.1:${port}/v2/: .*ECONNREFUSED`),
    );
  });

  it("is not checked (no condition, no request) with --verify=false", async () => {
    expect(parseCommandLine(["run", "--verify=false"], {}).config.verify).toBe(false);
    expect(parseCommandLine(["run"], {}).config.verify).toBe(true);
    await op?.stop();
    op = await startVerifyingOperator(false);
    registry.resetAuthAttempts();
    await applyResource(k, "verify-off", { secretName: "verify-pull", namespaces: ["verify-b"] });
    const r = await waitForReady(k, "verify-off");
    expect(await passwordIn("verify-b")).toBeDefined();
    expect(verifiedCondition(r)).toBeUndefined();
    expect(registry.authAttempts()).toEqual([]);
    expect(await verifiedMetric("verify-off")).toBeUndefined();
  });
});
