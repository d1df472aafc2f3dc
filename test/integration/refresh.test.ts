// The refresh clock and its failure handling on a real API server: tokens of a
// few seconds never go stale in any Secret; throttling, 5xx, a hung endpoint
// and refused keys leave the Secrets exactly as they are, say why in Ready and
// retry on the backoff; tokens that arrive expired are not refetched faster
// than the floor; and with debug logs on throughout, no credential leaks.
import type { V1Secret } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import type { AwsDouble } from "../aws-double/index.js";
import type { CallRecord, FaultHandle } from "../aws-double/types.js";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  deleteResource,
  getResource,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";
import { ecrHost, passwordIn, waitForResource } from "../harness/state.js";
import type { RegistryDouble } from "../registry-double/index.js";

const ACCOUNT = "444455556666";
const HOST = ecrHost(ACCOUNT);
const OPS = "refresh-ops";
const NAMESPACES = ["refresh-a", "refresh-b", "refresh-c"];
const RESOURCES = ["refresh-short", "refresh-faults", "refresh-expired"];

// Operator timing for this file: a 1 s floor, backoff 300 ms doubling to 2.4 s,
// a 1 s deadline per AWS call.
const FLOOR_MS = 1_000;
const BACKOFF_BASE_MS = 300;
const BACKOFF_MAX_MS = 2_400;
const AWS_TIMEOUT_MS = 1_000;

const KEYS = {
  short: { id: "AKIAREFRESH000000001", secret: "refresh-secret-key-000000000000000000001" },
  faults: { id: "AKIAREFRESH000000002", secret: "refresh-secret-key-000000000000000000002" },
  expired: { id: "AKIAREFRESH000000003", secret: "refresh-secret-key-000000000000000000003" },
};

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let registry: RegistryDouble;
let op: InProcessOperator;

const passwordOf = (secret: Awaited<ReturnType<typeof readSecret>>) => passwordIn(secret, HOST);

const waitReady = (
  name: string,
  match: (r: ECRPullSecret) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<ECRPullSecret> => waitForResource(k, name, what, match, timeoutMs);

const ecrCalls = (since: number, accessKeyId?: string): CallRecord[] =>
  aws.calls(
    (c) =>
      c.service === "ecr" &&
      c.action === "GetAuthorizationToken" &&
      c.time >= since &&
      (accessKeyId === undefined || c.accessKeyId === undefined || c.accessKeyId === accessKeyId),
  );

async function registryAccepts(password: string): Promise<boolean> {
  const res = await fetch(`${registry.url}/v2/`, {
    headers: { Authorization: `Basic ${Buffer.from(`AWS:${password}`).toString("base64")}` },
  });
  await res.arrayBuffer();
  return res.status === 200;
}

async function removeResource(name: string, namespaces: string[], secretName: string) {
  await deleteResource(k, name);
  await waitFor(`${name} and its Secrets to be gone`, async () => {
    if (await getResource(k, name)) return undefined;
    for (const ns of namespaces) if (await readSecret(k, ns, secretName)) return undefined;
    return true;
  });
}

const failedSince = (since: number, code: string) =>
  ecrCalls(since).filter((c) => c.errorCode === code).length;

/** The Events about a resource (they live in `default`). */
async function eventsOf(name: string) {
  const list = await k.core.listNamespacedEvent({
    namespace: "default",
    fieldSelector: `involvedObject.name=${name}`,
  });
  return list.items;
}

/**
 * Polls the Secrets named `secretName` in `namespaces` until stop(): each
 * must keep the resourceVersion and data it has now (`secrets`, by namespace).
 * stop() returns what changed.
 */
async function watchUnchanged(
  namespaces: string[],
  secretName: string,
): Promise<{ secrets: Map<string, V1Secret | undefined>; stop(): Promise<string[]> }> {
  const secrets = new Map<string, V1Secret | undefined>();
  const baseline = new Map<string, { rv: string; data: string }>();
  for (const ns of namespaces) {
    const s = await readSecret(k, ns, secretName);
    secrets.set(ns, s);
    baseline.set(ns, { rv: s?.metadata?.resourceVersion ?? "", data: JSON.stringify(s?.data) });
  }
  const violations: string[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const ns of namespaces) {
        const s = await readSecret(k, ns, secretName);
        const b = baseline.get(ns);
        if (!s) violations.push(`${ns}: Secret gone`);
        else if (s.metadata?.resourceVersion !== b?.rv || JSON.stringify(s.data) !== b?.data)
          violations.push(`${ns}: Secret changed`);
      }
      // A poll while faults come and go: its length is the other steps'.
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  return {
    secrets,
    async stop() {
      watching = false;
      await watcher;
      return violations;
    },
  };
}

/**
 * Throttled while the Secrets' token is good: not a failed refresh. The
 * operator retries after the SDK's back-off; Ready stays True, no Event.
 */
async function throttledWhileValid(): Promise<void> {
  const throttleStart = Date.now();
  const fault = aws.throttle({ service: "ecr" });
  await waitFor(
    "4 throttled calls",
    () => failedSince(throttleStart, "ThrottlingException") >= 4 || undefined,
  );
  const during = await getResource(k, "refresh-faults");
  expect(readyCondition(during)?.status).toBe("True");
  const throttleEvents = await eventsOf("refresh-faults");
  expect(throttleEvents.filter((e) => e.message?.includes("ThrottlingException"))).toEqual([]);
  fault.clear();
}

/**
 * 5xx, a hung endpoint, then refused keys, one after another from `faultStart`:
 * each makes Ready False saying why (the Secrets in place valid until
 * `expiresAt`) and is retried. Returns the last fault, still on.
 */
async function failuresReported(
  faultStart: number,
  expiresAt: Date | undefined,
): Promise<FaultHandle> {
  const failedSinceFault = (code: string) => failedSince(faultStart, code);
  let fault = aws.error5xx({ service: "ecr" });
  const failing5xx = await waitReady(
    "refresh-faults",
    (r) => Boolean(readyCondition(r)?.message.includes("ServerException")),
    "Ready=False on 5xx",
  );
  expect(readyCondition(failing5xx)?.reason).toBe("TokenRefreshFailed");
  expect(readyCondition(failing5xx)?.status).toBe("False");
  expect(readyCondition(failing5xx)?.message).toContain(
    `the Secrets in place stay valid until ${expiresAt?.toISOString()}`,
  );
  await waitFor(
    "2 calls answered 500",
    () => failedSinceFault("ServerException") >= 2 || undefined,
  );

  fault.clear();
  fault = aws.hang({ service: "ecr" });
  const hung = await waitReady(
    "refresh-faults",
    (r) => Boolean(readyCondition(r)?.message.match(/TimeoutError|timed? ?out/i)),
    "Ready=False on a hung endpoint",
  );
  expect(readyCondition(hung)?.reason).toBe("TokenRefreshFailed");
  expect(readyCondition(hung)?.status).toBe("False");
  await waitFor(
    "2 calls given up",
    () => failedSinceFault("ClientClosedRequest") >= 2 || undefined,
  );

  fault.clear();
  fault = aws.refuse({ service: "ecr" });
  const refused = await waitReady(
    "refresh-faults",
    (r) => readyCondition(r)?.reason === "CredentialsInvalid",
    "Ready=False CredentialsInvalid",
  );
  expect(readyCondition(refused)?.status).toBe("False");
  expect(readyCondition(refused)?.message).toContain(`Secret ${OPS}/faults-creds`);
  expect(readyCondition(refused)?.message).toContain(
    `stay valid until ${expiresAt?.toISOString()}`,
  );
  await waitFor("2 refused calls", () =>
    failedSinceFault("UnrecognizedClientException") >= 2 ? true : undefined,
  );
  return fault;
}

/** The gaps between failed retries, and what capped exponential backoff makes them. */
function retryGaps(failed: CallRecord[]) {
  return failed.slice(1).map((c, i) => {
    const expected =
      Math.min(BACKOFF_BASE_MS * 2 ** i, BACKOFF_MAX_MS) +
      // A hung call is logged when the client gives up, a deadline later.
      (c.errorCode === "ClientClosedRequest" ? AWS_TIMEOUT_MS : 0);
    return { actual: c.time - (failed[i]?.time ?? 0), expected, code: c.errorCode };
  });
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: NAMESPACES,
    identities: Object.entries(KEYS).map(([name, keys]) => ({
      accessKeyId: keys.id,
      secretAccessKey: keys.secret,
      accountId: ACCOUNT,
      arn: `arn:aws:iam::${ACCOUNT}:user/refresh-${name}`,
    })),
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push(...RESOURCES);
  registry = await stack.startRegistry();
  for (const [name, keys] of Object.entries(KEYS))
    await stack.putKeys(`${name}-creds`, { accessKeyId: keys.id, secretAccessKey: keys.secret });
  // Debug logs on for the whole file: the last test reads every line.
  op = await stack.startOperator({
    as: false,
    config: {
      logLevel: "debug",
      minRefreshIntervalMs: FLOOR_MS,
      awsBackoffBaseMs: BACKOFF_BASE_MS,
      awsBackoffMaxMs: BACKOFF_MAX_MS,
      awsTimeoutMs: AWS_TIMEOUT_MS,
    },
  });
});

// A failed test must not leave its fault on for the next one.
afterEach(() => {
  aws.clearFaults();
});

afterAll(async () => {
  await stack?.stop();
});

describe("refresh: tokens of a few seconds", () => {
  it("keeps tokens of a few seconds fresh for a minute: no Secret ever holds an expired password", async () => {
    aws.tokenLifetimeMs = 4_000;
    const since = Date.now();
    await applyResource(k, "refresh-short", {
      secretName: "ecr-short",
      namespaces: NAMESPACES,
      credentials: { secretRef: { namespace: OPS, name: "short-creds" } },
      registries: [{ accountId: ACCOUNT }],
    });
    await waitFor("the first Secrets", async () => {
      for (const ns of NAMESPACES) if (!(await readSecret(k, ns, "ecr-short"))) return undefined;
      return true;
    });
    const seen = new Set<string>();
    let reads = 0;
    let registryChecks = 0;
    await consistently(
      "every Secret holding a current password",
      async () => {
        for (const ns of NAMESPACES) {
          const pw = passwordOf(await readSecret(k, ns, "ecr-short"));
          reads++;
          if (!pw) return `${ns}: no password`;
          if (!aws.isValidPassword(pw)) return `${ns}: expired password`;
          if (!seen.has(pw)) {
            seen.add(pw);
            // A real client's view: the registry double takes only unexpired passwords.
            registryChecks++;
            if (!(await registryAccepts(pw))) return `${ns}: registry refused`;
          }
        }
        return true;
      },
      { forMs: 60_000, intervalMs: 150 },
    );
    // One more registry check of what is in place right now.
    for (const ns of NAMESPACES) {
      const pw = passwordOf(await readSecret(k, ns, "ecr-short")) ?? "";
      expect(await registryAccepts(pw)).toBe(true);
    }
    aws.tokenLifetimeMs = 10 * 60_000;
    const issued = aws.issued().filter((t) => t.principalArn.endsWith(":user/refresh-short"));
    const calls = ecrCalls(since, KEYS.short.id).filter((c) => c.status === 200);
    console.log(
      `short-lived: ${issued.length} tokens in ${((Date.now() - since) / 1000).toFixed(0)} s, ${seen.size} seen in Secrets, ${reads} Secret reads, ${registryChecks} registry checks, none stale`,
    );
    // Refreshed at about half the 4 s lifetime: ~30 tokens in a minute, all of them used.
    expect(seen.size).toBeGreaterThanOrEqual(20);
    expect(issued.length).toBeLessThanOrEqual(40);
    // One AWS call per refresh, shared by the three namespaces.
    expect(calls.length).toBe(issued.length);
    for (const pw of seen) expect(issued.some((t) => t.password === pw)).toBe(true);
    await removeResource("refresh-short", NAMESPACES, "ecr-short");
  });
});

describe("refresh: AWS failing", () => {
  it("rides out throttling, 5xx, a hung endpoint and refused keys without touching the Secrets", async () => {
    const namespaces = ["refresh-a", "refresh-b"];
    await applyResource(k, "refresh-faults", {
      secretName: "ecr-faults",
      namespaces,
      credentials: { secretRef: { namespace: OPS, name: "faults-creds" } },
      registries: [{ accountId: ACCOUNT }],
      // Tokens live 10 min; refresh when less than 9m56s is left: a few seconds in.
      refreshBefore: "9m56s",
    });
    await waitReady("refresh-faults", (r) => readyCondition(r)?.status === "True", "Ready");
    const firstToken = aws.issued().find((t) => t.principalArn.endsWith(":user/refresh-faults"));
    // Baseline: what the Secrets hold now must not change until AWS answers again.
    const watcher = await watchUnchanged(namespaces, "ecr-faults");
    for (const ns of namespaces)
      expect(passwordOf(watcher.secrets.get(ns))).toBe(firstToken?.password);
    await throttledWhileValid();

    const faultStart = Date.now();
    const fault = await failuresReported(faultStart, firstToken?.expiresAt);

    // AWS recovers: a new token within one backoff cap.
    fault.clear();
    const recoveredAt = Date.now();
    const violations = await watcher.stop();
    const recovered = await waitReady(
      "refresh-faults",
      (r) => readyCondition(r)?.status === "True",
      "Ready again",
      BACKOFF_MAX_MS + 10_000,
    );
    const firstSuccess = ecrCalls(recoveredAt).find((c) => c.status === 200);
    expect(firstSuccess).toBeDefined();
    const recoveryMs = (firstSuccess?.time ?? 0) - recoveredAt;
    const newest = aws.issued().filter((t) => t.principalArn.endsWith(":user/refresh-faults"));
    const fresh = newest.at(-1);
    await waitFor("the Secrets to hold the new token", async () => {
      for (const ns of namespaces)
        if (passwordOf(await readSecret(k, ns, "ecr-faults")) !== fresh?.password) return undefined;
      return true;
    });
    expect(recovered.status?.tokenExpiresAt).toBeDefined();

    // The retries, one after another, against capped exponential backoff.
    const attempts = ecrCalls(faultStart).filter((c) => c.time < (firstSuccess?.time ?? 0));
    const failed = attempts.filter((c) => c.status !== 200);
    expect(failed.length).toBe(attempts.length);
    const gaps = retryGaps(failed);
    console.log(
      `faults: ${failed.length} failed attempts; gaps (actual/expected ms): ${gaps.map((g) => `${g.actual}/${g.expected}`).join(" ")}; recovery ${recoveryMs} ms after the double recovered`,
    );
    for (const g of gaps) {
      expect(g.actual).toBeGreaterThanOrEqual(g.expected - 50);
      expect(g.actual).toBeLessThanOrEqual(g.expected + 700);
    }
    expect(recoveryMs).toBeLessThanOrEqual(BACKOFF_MAX_MS + 500);
    expect(violations).toEqual([]);

    // Each failure was told as an Event, rate-limited: far fewer Events than attempts.
    const events = await eventsOf("refresh-faults");
    const reasons = new Set(events.map((e) => e.reason));
    expect(reasons).toContain("TokenRefreshFailed");
    expect(reasons).toContain("CredentialsInvalid");
    const warnings = events.filter((e) => e.type === "Warning");
    expect(warnings.length).toBeLessThan(failed.length);
    await removeResource("refresh-faults", namespaces, "ecr-faults");
  });
});

describe("refresh: tokens expired on arrival, and what the logs say", () => {
  it("does not refetch faster than the floor when tokens arrive already expired", async () => {
    const fault = aws.expiredTokens({ service: "ecr" });
    const since = Date.now();
    await applyResource(k, "refresh-expired", {
      secretName: "ecr-expired",
      namespaces: ["refresh-c"],
      credentials: { secretRef: { namespace: OPS, name: "expired-creds" } },
      registries: [{ accountId: ACCOUNT }],
    });
    const r = await waitReady(
      "refresh-expired",
      (res) => readyCondition(res)?.reason === "TokenExpiredOnArrival",
      "Ready=False TokenExpiredOnArrival",
    );
    expect(readyCondition(r)?.status).toBe("False");
    expect(readyCondition(r)?.message).toContain("check the clock");
    // Watch the rate for 6 s while the reconcile loop keeps going.
    await consistently(
      "no refetch faster than the floor",
      () => {
        const calls = ecrCalls(since, KEYS.expired.id);
        const fast = calls.slice(1).find((c, i) => c.time - (calls[i]?.time ?? 0) < FLOOR_MS - 50);
        return fast ? `a call ${fast.time - since} ms in came too soon after the one before` : true;
      },
      { forMs: 6_000 },
    );
    const calls = ecrCalls(since, KEYS.expired.id);
    const elapsed = Date.now() - since;
    const gaps = calls.slice(1).map((c, i) => c.time - (calls[i]?.time ?? 0));
    console.log(
      `expired at receipt: ${calls.length} calls in ${elapsed} ms; gaps ${gaps.join(" ")} ms`,
    );
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.length).toBeLessThanOrEqual(Math.floor(elapsed / FLOOR_MS) + 1);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(FLOOR_MS - 50);
    // Still telling why, after all those attempts.
    const still = await getResource(k, "refresh-expired");
    expect(readyCondition(still)?.reason).toBe("TokenExpiredOnArrival");
    fault.clear();
    await waitReady("refresh-expired", (res) => readyCondition(res)?.status === "True", "Ready");
    const pw = passwordOf(await readSecret(k, "refresh-c", "ecr-expired")) ?? "";
    expect(aws.isValidPassword(pw)).toBe(true);
  });

  it("never printed an issued password or a secret key in a log line or an Event", async () => {
    const events = await k.core.listNamespacedEvent({ namespace: "default" });
    const ours = events.items.filter((e) => RESOURCES.includes(e.involvedObject?.name ?? ""));
    const texts = [...op.logs, ...ours.map((e) => `${e.reason} ${e.message}`)];
    const secrets: string[] = [];
    for (const t of aws.issued()) {
      secrets.push(t.password, Buffer.from(`AWS:${t.password}`).toString("base64"));
    }
    for (const keys of Object.values(KEYS))
      secrets.push(keys.secret, Buffer.from(keys.secret).toString("base64"));
    expect(secrets.length).toBeGreaterThan(40);
    // The check can fail: the logs are there and at debug level.
    expect(op.logs.length).toBeGreaterThan(50);
    expect(op.logs.some((l) => l.includes('"level":"debug"'))).toBe(true);
    expect(ours.length).toBeGreaterThan(0);
    const leaks = texts.filter((line) => secrets.some((s) => line.includes(s)));
    console.log(
      `leak check: ${op.logs.length} log lines, ${ours.length} Events, ${secrets.length} secrets`,
    );
    expect(leaks).toEqual([]);
  });
});
