// One failing token source must not starve the healthy ones. Registries in
// us-east-1 and us-west-2 over the same keys, with an explicit deny on
// ecr:GetAuthorizationToken in us-west-2 only: the us-east-1 entry is written
// and refreshed on its own clock, the us-west-2 entry already in the Secret
// stays exactly as it was until AWS answers again, Ready=False names the
// registry, status lists per registry whether it is current, and the expiry
// gauge has one series per registry. No Secret ever loses an entry (polled
// throughout). Before: no Secret at all while one region was denied.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
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
import type { InProcessOperator } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const OPS = "partial-ops";
const ACCOUNT = "260000000001";
const EAST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const WEST = `${ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com`;
const KEYS = {
  accessKeyId: "AKIAPARTIAL000000001",
  secretAccessKey: "partial-secret-0000000000000000000000001",
};
const ARN = `arn:aws:iam::${ACCOUNT}:user/partial`;

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator;

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: ["partial-a", "partial-b"],
    // Short tokens: the healthy registry refreshes several times while we watch.
    tokenLifetimeMs: 4_000,
    identities: [{ ...KEYS, accountId: ACCOUNT, arn: ARN }],
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push("partial-fresh", "partial-kept");
  await stack.putKeys("keys", KEYS);
  op = await stack.startOperator();
});

afterAll(async () => {
  await stack?.stop();
});

const spec = (namespace: string) => ({
  secretName: "ecr-pull",
  namespaces: [namespace],
  serviceAccounts: [],
  credentials: { secretRef: { namespace: OPS, name: "keys" } },
  registries: [
    { accountId: ACCOUNT, region: "us-east-1" },
    { accountId: ACCOUNT, region: "us-west-2" },
  ],
});

async function authsIn(namespace: string) {
  const s = await readSecret(k, namespace, "ecr-pull");
  return s ? dockerConfigOf(s).auths : undefined;
}

const regionOf = (password: string | undefined) =>
  aws.issued().find((t) => t.password === password)?.region;

async function expiryGauge(): Promise<Map<string, number>> {
  const text = await op.metrics.registry.metrics();
  const out = new Map<string, number>();
  for (const m of text.matchAll(
    /^ecr_creds_refresher_token_expiry_timestamp_seconds\{resource="partial-kept",registry="([^"]+)"\} (\S+)$/gm,
  ))
    out.set(m[1] ?? "", Number(m[2]));
  return out;
}

describe("one failing token source", () => {
  it("denied from the start: the healthy registry is written, Ready names the denied one", async () => {
    aws.denyEcr(ARN, "us-west-2");
    try {
      await applyResource(k, "partial-fresh", spec("partial-a"));
      const auths = await waitFor("Secret partial-a/ecr-pull", () => authsIn("partial-a"));
      expect(Object.keys(auths)).toEqual([EAST]);
      expect(regionOf(auths[EAST]?.password)).toBe("us-east-1");
      const r = await waitFor("Ready=False AccessDenied", async () => {
        const got = await getResource(k, "partial-fresh");
        return readyCondition(got)?.reason === "AccessDenied" ? got : undefined;
      });
      expect(readyCondition(r)?.message).toMatch(
        new RegExp(
          `^registry ${WEST.replaceAll(".", "\\.")} keeps its previous entry \\(1/2 registries current\\): failed to get an ECR token in us-west-2: access denied for the keys in Secret ${OPS}/keys \\(User: ${ARN} is not authorized to perform: ecr:GetAuthorizationToken on resource: \\* with an explicit deny in an identity-based policy\\); allow ecr:GetAuthorizationToken in its IAM policy; the Secrets in place stay valid until `,
        ),
      );
      expect(r?.status?.registryStatus?.map((e) => [e.registry, e.current, e.reason])).toEqual([
        [EAST, true, undefined],
        [WEST, false, "AccessDenied"],
      ]);
    } finally {
      aws.allowEcr(ARN, "us-west-2");
    }
  });

  it("denied later: the old entry stays unchanged while the healthy one refreshes; both fresh after", async () => {
    await applyResource(k, "partial-kept", spec("partial-b"));
    const first = await waitFor("both entries", async () => {
      const a = await authsIn("partial-b");
      return a && Object.keys(a).length === 2 ? a : undefined;
    });
    const oldWest = first[WEST]?.password;
    expect(regionOf(oldWest)).toBe("us-west-2");

    aws.denyEcr(ARN, "us-west-2");
    const eastSeen = new Set<string>();
    let polls = 0;
    // Polled throughout: both entries every time, the us-west-2 one unchanged.
    await consistently(
      "both entries, us-west-2 unchanged, while us-west-2 is denied",
      async () => {
        const auths = await authsIn("partial-b");
        polls++;
        eastSeen.add(auths?.[EAST]?.password ?? "");
        const keys = Object.keys(auths ?? {}).sort();
        if (keys.join() !== [EAST, WEST].join()) return `entries ${keys.join(", ")}`;
        return auths?.[WEST]?.password === oldWest ? true : "the us-west-2 entry changed";
      },
      { forMs: 12_000, intervalMs: 100 },
    );
    // 4 s tokens refreshed at about half their life: several fresh us-east-1 tokens.
    expect(eastSeen.size).toBeGreaterThanOrEqual(3);
    for (const p of eastSeen) expect(regionOf(p)).toBe("us-east-1");
    const denied = await getResource(k, "partial-kept");
    expect(readyCondition(denied)).toMatchObject({ status: "False", reason: "AccessDenied" });
    expect(readyCondition(denied)?.message).toContain(`registry ${WEST} keeps its previous entry`);
    expect(denied?.status?.registryStatus?.map((e) => [e.registry, e.current])).toEqual([
      [EAST, true],
      [WEST, false],
    ]);
    // The gauge names the lapsing registry: us-west-2's expiry is its old token's.
    const gauge = await expiryGauge();
    expect([...gauge.keys()].sort()).toEqual([EAST, WEST]);
    expect(Math.round((gauge.get(WEST) ?? 0) * 1000)).toBe(
      aws
        .issued()
        .find((t) => t.password === oldWest)
        ?.expiresAt.getTime(),
    );
    expect(gauge.get(EAST) ?? 0).toBeGreaterThan(gauge.get(WEST) ?? 0);

    aws.allowEcr(ARN, "us-west-2");
    // Still polled throughout: an entry lost on the way back is a failure, not
    // something to wait out (an expect inside waitFor would be retried).
    const lost: string[][] = [];
    const healed = await waitFor("both fresh", async () => {
      const a = await authsIn("partial-b");
      const keys = Object.keys(a ?? {}).sort();
      if (keys.join() !== [EAST, WEST].join()) lost.push(keys);
      const r = await getResource(k, "partial-kept");
      return a?.[WEST]?.password !== oldWest && readyCondition(r)?.status === "True"
        ? a
        : undefined;
    });
    expect(lost).toEqual([]);
    expect(aws.isValidPassword(healed[WEST]?.password ?? "")).toBe(true);
    expect(regionOf(healed[WEST]?.password)).toBe("us-west-2");
    expect(regionOf(healed[EAST]?.password)).toBe("us-east-1");
    console.log(`partial failure: ${polls} polls, ${eastSeen.size} us-east-1 tokens while denied`);
  });
});
