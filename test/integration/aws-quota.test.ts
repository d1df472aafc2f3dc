// AWS's GetAuthorizationToken quota (20 a second sustained, 200 burst, per
// account and region) must never be tripped by the operator, however many
// sources it serves. 250 resources, each with its own credentials Secret (250
// IAM users of one account: the hardest case, one quota for all of them),
// against the AWS double enforcing that quota and answering 100 ms late (a
// cluster outside the region). The operator runs with many workers, so that
// its calls come as bunched as it can make them (without the limiter: ~30 a
// second, all 250 within 10 s, which the rate assertion catches). Every
// resource must end Ready with the password the double issued to its own
// identity, with 0 ThrottlingExceptions: for the first sync and for a
// simultaneous refresh of all 250 (each resource asking for a fresher token
// at once).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ECRPullSecret, GROUP, PLURAL, VERSION } from "../../src/api/index.js";
import type { AwsDouble } from "../aws-double/index.js";
import type { CallRecord } from "../aws-double/types.js";
import {
  applyResource,
  dockerConfigOf,
  mergePatch,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { type Stack, startStack } from "../harness/stack.js";

const N = 250;
const ACCOUNT = "300000000001";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OPS = "quota-ops";
const TARGET = "quota-target";
const QPS = 10;
const BURST = 50;
const WINDOW_MS = 10_000;
/**
 * At most the burst and 10 s at the rate, plus three seconds' worth of slack
 * (without the limiter: all 250 in 8.7 s, peak 250):
 * the calls are timed where the double answers them, in this same process,
 * and a busy event loop there has bunched the limiter's steady 10 a second
 * by more than a second (CI: 112 in 5 s against the limiter's 100).
 */
const PEAK = BURST + (WINDOW_MS / 1000 + 3) * QPS;

const name = (i: number) => `quota-${String(i).padStart(3, "0")}`;
const identity = (i: number) => ({
  accessKeyId: `AKIAQUOTA${String(i).padStart(11, "0")}`,
  secretAccessKey: `quota-secret-${String(i).padStart(27, "0")}`,
  accountId: ACCOUNT,
  arn: `arn:aws:iam::${ACCOUNT}:user/${name(i)}`,
});

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;

const tokenCalls = (since = 0): CallRecord[] =>
  aws.calls((c) => c.service === "ecr" && c.action === "GetAuthorizationToken" && c.time >= since);

/**
 * The most calls answered in any `windowMs`. Over 10 s rather than 1 s: the
 * double answers in the test's own process, and on a loaded machine its
 * answers bunch up behind a busy event loop.
 */
function peakIn(calls: CallRecord[], windowMs = WINDOW_MS): number {
  const times = calls.map((c) => c.time).sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while ((times[j] ?? 0) - (times[i] ?? 0) >= windowMs) i++;
    peak = Math.max(peak, j - i + 1);
  }
  return peak;
}

/**
 * Waits until every resource is Ready and each one's Secret holds the newest
 * password the double issued to its own identity; returns when that was.
 */
async function allHoldTheirNewestToken(what: string, timeoutMs: number): Promise<number> {
  return await waitFor(
    what,
    async () => {
      const list = (await k.custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
      })) as { items: ECRPullSecret[] };
      const ready = new Set(
        list.items.filter((r) => readyCondition(r)?.status === "True").map((r) => r.metadata?.name),
      );
      const secrets = await k.core.listNamespacedSecret({ namespace: TARGET });
      const byName = new Map(secrets.items.map((s) => [s.metadata?.name, s]));
      const issued = aws.issued();
      for (let i = 0; i < N; i++) {
        if (!ready.has(name(i))) return undefined;
        const secret = byName.get(`ecr-${name(i)}`);
        if (!secret) return undefined;
        const newest = issued.filter((t) => t.principalArn === identity(i).arn).at(-1);
        if (!newest || dockerConfigOf(secret).auths[HOST]?.password !== newest.password)
          return undefined;
      }
      return Date.now();
    },
    // Each poll reads 250 resources and Secrets in this process: not too often.
    { timeoutMs, intervalMs: 1_000 },
  );
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: [TARGET],
    // ECR's own: 12 h tokens (the refresh case below counts on it).
    tokenLifetimeMs: 12 * 3_600_000,
    quota: { ratePerSecond: 20, burst: 200 },
    identities: Array.from({ length: N }, (_, i) => identity(i)),
    // Each resource names its own credentials Secret.
    credentials: false,
  });
  ({ k, aws } = stack);
  aws.inject({ kind: "delay", ms: 100 }, { service: "ecr" });
  for (let i = 0; i < N; i++) stack.resources.push(name(i));
  for (let i = 0; i < N; i += 25) {
    await Promise.all(
      Array.from({ length: Math.min(25, N - i) }, (_, j) =>
        stack.putKeys(name(i + j), identity(i + j)),
      ),
    );
  }
  await stack.startOperator({
    // The cluster's admin: the audit log is not read here.
    as: false,
    config: {
      concurrency: 64,
      // The production deadline: the tests' usual 2 s is too short for 250
      // sources on a loaded machine, and a call given up is a call repeated.
      awsTimeoutMs: 15_000,
      awsTokenQps: QPS,
      awsTokenBurst: BURST,
    },
  });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

describe(`AWS quota: ${N} resources with their own credentials, one account`, () => {
  it("syncs all of them without a single ThrottlingException, at the configured share of the quota", async () => {
    const started = Date.now();
    for (let i = 0; i < N; i += 25) {
      await Promise.all(
        Array.from({ length: Math.min(25, N - i) }, (_, j) =>
          applyResource(k, name(i + j), {
            secretName: `ecr-${name(i + j)}`,
            namespaces: [TARGET],
            serviceAccounts: [],
            registries: [{ accountId: ACCOUNT }],
            credentials: { secretRef: { namespace: OPS, name: name(i + j) } },
          }),
        ),
      );
    }
    const done = await allHoldTheirNewestToken("all resources Ready with their own token", 230_000);
    const calls = tokenCalls(started);
    const throttled = calls.filter((c) => c.errorCode === "ThrottlingException");
    console.log(
      `first sync of ${N} sources: ${((done - started) / 1000).toFixed(1)} s, ${calls.length} GetAuthorizationToken calls (${calls.filter((c) => c.status === 200).length} answered 200), peak ${peakIn(calls)} per 10 s, ${throttled.length} throttled`,
    );
    expect(throttled).toEqual([]);
    // One token per identity; on a heavily loaded machine a few identities
    // have been seen fetched twice (not a quota matter: logged, see the report).
    expect(calls.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(N);
    // The limiter at work: the burst, then the rate, never AWS's 200 at once.
    expect(peakIn(calls)).toBeLessThanOrEqual(PEAK);
    expect(done - started).toBeGreaterThanOrEqual(((N - BURST) / QPS) * 1000 - 1_000);
  }, 240_000);

  it("refreshes all of them at once without a single ThrottlingException", async () => {
    const started = Date.now();
    // Every resource wants a fresher token now (12 h tokens, refresh with
    // less than 11h59m59s left): all 250 sources come due at the same moment.
    // (With 11h59m they came due 60 s after each was issued, spread over the
    // first sync's 20 s: not at once.)
    // The new tokens live 48 h, so that they are not due again at once.
    aws.tokenLifetimeMs = 48 * 3_600_000;
    for (let i = 0; i < N; i += 25) {
      await Promise.all(
        Array.from({ length: Math.min(25, N - i) }, (_, j) =>
          k.custom.patchClusterCustomObject(
            {
              group: GROUP,
              version: VERSION,
              plural: PLURAL,
              name: name(i + j),
              body: { spec: { refreshBefore: "11h59m59s" } },
            },
            mergePatch,
          ),
        ),
      );
    }
    const done = await waitFor(
      "a second token for every identity",
      async () => {
        const issued = aws.issued();
        for (let i = 0; i < N; i++)
          if (issued.filter((t) => t.principalArn === identity(i).arn).length < 2) return undefined;
        return Date.now();
      },
      { timeoutMs: 180_000, intervalMs: 500 },
    );
    await allHoldTheirNewestToken("all Secrets hold the refreshed token", 30_000);
    const calls = tokenCalls(started);
    const throttled = calls.filter((c) => c.errorCode === "ThrottlingException");
    console.log(
      `simultaneous refresh of ${N} sources: ${((done - started) / 1000).toFixed(1)} s, ${calls.length} calls (${calls.filter((c) => c.status === 200).length} answered 200), peak ${peakIn(calls)} per 10 s, ${throttled.length} throttled`,
    );
    expect(throttled).toEqual([]);
    expect(calls.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(N);
    expect(peakIn(calls)).toBeLessThanOrEqual(PEAK);
    // And the whole run, AWS never said no.
    expect(aws.calls({ errorCode: "ThrottlingException" })).toEqual([]);
  }, 240_000);
});
