// One failing token source must not starve the healthy ones. Registries in
// us-east-1 and us-west-2 over the same keys, with an explicit deny on
// ecr:GetAuthorizationToken in us-west-2 only: the us-east-1 entry is written
// and refreshed on its own clock, the us-west-2 entry already in the Secret
// stays exactly as it was until AWS answers again, Ready=False names the
// registry, status lists per registry whether it is current, and the expiry
// gauge has one series per registry. No Secret ever loses an entry (polled
// throughout). Before: no Secret at all while one region was denied.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  createNamespace,
  deleteNamespaces,
  deleteResourceWithoutOperator,
  dockerConfigOf,
  getResource,
  putAwsKeys,
  readSecret,
  readyCondition,
  type TestKube,
  testKube,
  waitFor,
} from "../harness/kube.js";
import { type InProcessOperator, startOperator, testConfig } from "../harness/operator.js";

const cp = inject("controlPlane");
const OPS = "partial-ops";
const ACCOUNT = "260000000001";
const EAST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const WEST = `${ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com`;
const KEYS = {
  accessKeyId: "AKIAPARTIAL000000001",
  secretAccessKey: "partial-secret-0000000000000000000000001",
};
const ARN = `arn:aws:iam::${ACCOUNT}:user/partial`;

let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator;

beforeAll(async () => {
  k = testKube(cp.kubeconfigPath);
  // Short tokens: the healthy registry refreshes several times while we watch.
  aws = new AwsDouble({ tokenLifetimeMs: 4_000 });
  await aws.start();
  aws.addIdentity({ ...KEYS, accountId: ACCOUNT, arn: ARN });
  process.env.AWS_ENDPOINT_URL = aws.url;
  await createNamespace(k, OPS);
  for (const ns of ["partial-a", "partial-b"]) await createNamespace(k, ns);
  await putAwsKeys(k, OPS, "keys", KEYS);
  op = await startOperator(testConfig(cp.kubeconfigPath, { region: "us-east-1" }));
});

afterAll(async () => {
  await op?.stop();
  for (const name of ["partial-fresh", "partial-kept"])
    await deleteResourceWithoutOperator(k, name);
  await deleteNamespaces(k, [OPS, "partial-a", "partial-b"]);
  await aws?.close();
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
    const deniedUntil = Date.now() + 12_000;
    let polls = 0;
    // Polled throughout: both entries every time, the us-west-2 one unchanged.
    while (Date.now() < deniedUntil) {
      const auths = await authsIn("partial-b");
      expect(Object.keys(auths ?? {}).sort()).toEqual([EAST, WEST]);
      expect(auths?.[WEST]?.password).toBe(oldWest);
      eastSeen.add(auths?.[EAST]?.password ?? "");
      polls++;
      await new Promise((r) => setTimeout(r, 100));
    }
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
