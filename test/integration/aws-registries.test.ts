// Registries and the shared token cache, end to end: several accounts and
// regions in one Secret with one token fetch per (credentials, region), an
// entry with its own role, FIPS / dual-stack / China / ECR Public hosts,
// forty namespaces over five resources on one fetch per refresh, and rotated
// keys refetched at once for the resources that use them and no other.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import type { AwsDouble } from "../aws-double/index.js";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  dockerConfigOf,
  readSecret,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { waitForReady } from "../harness/state.js";

const OPS = "awsreg-ops";
const ACCOUNT = "220000000001";
const LONG_LIFETIME_MS = 10 * 60_000;

type Keys = ReturnType<typeof iamUser>;
const keys = (n: number, user: string): Keys => iamUser("awsreg", n, ACCOUNT, user);
const MULTI = keys(1, "multi");
const XACCT = keys(2, "xacct");
const HOSTS = keys(3, "hosts");
const SHARED = keys(4, "shared");
const ROT_OLD = keys(5, "rot-old");
const ROT_NEW = keys(6, "rot-new");
const STEADY = keys(7, "steady");
const XACCT_ROLE = "arn:aws:iam::333333333333:role/pull";
const XACCT_EXTERNAL_ID = "awsreg-ext-333";

const SHARED_RESOURCES = 5;
const SHARED_PER_RESOURCE = 8;
const sharedNamespaces = Array.from({ length: SHARED_RESOURCES }, (_, r) =>
  Array.from({ length: SHARED_PER_RESOURCE }, (_, j) => `awsreg-s${r + 1}-${j + 1}`),
);
const NAMESPACES = [
  OPS,
  "awsreg-multi",
  "awsreg-xacct",
  "awsreg-hosts",
  "awsreg-rot",
  "awsreg-steady",
  ...sharedNamespaces.flat(),
];
const RESOURCES = [
  "awsreg-multi",
  "awsreg-xacct",
  "awsreg-hosts",
  "awsreg-rot",
  "awsreg-steady",
  ...sharedNamespaces.map((_, r) => `awsreg-share-${r + 1}`),
];

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;

const putKeys = (name: string, id: Keys) => stack.putKeys(name, id);

function spec(
  namespaces: string[],
  secret: string,
  registries: NonNullable<ECRPullSecret["spec"]["registries"]>,
  secretName = "ecr-pull",
): ECRPullSecret["spec"] {
  return {
    secretName,
    namespaces,
    serviceAccounts: [],
    region: "us-east-1",
    credentials: { secretRef: { namespace: OPS, name: secret } },
    registries,
  };
}

const waitReady = (name: string): Promise<ECRPullSecret> => waitForReady(k, name);

async function authsIn(namespace: string, secretName = "ecr-pull") {
  const secret = await waitFor(`Secret ${namespace}/${secretName}`, async () =>
    readSecret(k, namespace, secretName),
  );
  return dockerConfigOf(secret).auths;
}

function issuedFor(password: string | undefined) {
  return aws.issued().find((t) => t.password === password);
}

const ecrCalls = (id: Keys, since = 0) =>
  aws.calls(
    (c) =>
      (c.service === "ecr" || c.service === "ecr-public") &&
      c.action === "GetAuthorizationToken" &&
      c.accessKeyId === id.accessKeyId &&
      c.time >= since,
  );

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: NAMESPACES,
    tokenLifetimeMs: LONG_LIFETIME_MS,
    identities: [MULTI, XACCT, HOSTS, SHARED, ROT_OLD, ROT_NEW, STEADY],
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push(...RESOURCES);
  aws.addRole({
    roleArn: XACCT_ROLE,
    trustedPrincipalArns: [XACCT.arn],
    externalId: XACCT_EXTERNAL_ID,
  });
  await putKeys("keys-multi", MULTI);
  await putKeys("keys-xacct", XACCT);
  await putKeys("keys-hosts", HOSTS);
  await putKeys("keys-shared", SHARED);
  await putKeys("keys-rot", ROT_OLD);
  await putKeys("keys-steady", STEADY);
  await stack.startOperator({ as: false });
});

afterAll(async () => {
  await stack?.stop();
});

/** The password each of `namespaces` holds in its Secret ecr-shared (one list request). */
async function sharedPasswords(namespaces: readonly string[]): Promise<Map<string, string>> {
  const host = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
  const list = await k.core.listSecretForAllNamespaces({
    fieldSelector: "metadata.name=ecr-shared",
  });
  const found = new Map<string, string>();
  for (const s of list.items) {
    // Other test files may hold same-named Secrets of their own.
    if (!namespaces.includes(s.metadata?.namespace ?? "")) continue;
    const pw = dockerConfigOf(s).auths[host]?.password;
    if (pw && s.metadata?.namespace) found.set(s.metadata.namespace, pw);
  }
  return found;
}

describe("registries", () => {
  it("three accounts in one region and a host in another: four hosts in one dockerconfigjson, two token fetches", async () => {
    const east = ["220000000001", "220000000002", "220000000003"].map(
      (a) => `${a}.dkr.ecr.us-east-1.amazonaws.com`,
    );
    const west = "220000000004.dkr.ecr.eu-west-1.amazonaws.com";
    await applyResource(
      k,
      "awsreg-multi",
      spec(["awsreg-multi"], "keys-multi", [
        { accountId: "220000000001" },
        { accountId: "220000000002" },
        { accountId: "220000000003" },
        { host: west },
      ]),
    );
    const ready = await waitReady("awsreg-multi");
    const auths = await authsIn("awsreg-multi");
    expect(Object.keys(auths).sort()).toEqual([...east, west].sort());
    expect(ready.status?.registries?.slice().sort()).toEqual([...east, west].sort());

    const calls = ecrCalls(MULTI);
    expect(calls.map((c) => c.region).sort()).toEqual(["eu-west-1", "us-east-1"]);
    const eastToken = issuedFor(auths[east[0] as string]?.password);
    expect(eastToken).toMatchObject({ region: "us-east-1", principalArn: MULTI.arn });
    // One token opens every account's registry in its region.
    for (const host of east) expect(auths[host]?.password).toBe(eastToken?.password);
    expect(issuedFor(auths[west]?.password)).toMatchObject({
      region: "eu-west-1",
      principalArn: MULTI.arn,
    });
  });

  it("an entry with its own role and external ID gets its own token, issued to that role", async () => {
    const own = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
    const cross = "333333333333.dkr.ecr.eu-central-1.amazonaws.com";
    await applyResource(
      k,
      "awsreg-xacct",
      spec(["awsreg-xacct"], "keys-xacct", [
        { accountId: ACCOUNT },
        {
          accountId: "333333333333",
          region: "eu-central-1",
          credentials: { roleArn: XACCT_ROLE, externalId: XACCT_EXTERNAL_ID },
        },
      ]),
    );
    await waitReady("awsreg-xacct");
    const auths = await authsIn("awsreg-xacct");
    expect(Object.keys(auths).sort()).toEqual([cross, own].sort());
    expect(issuedFor(auths[own]?.password)).toMatchObject({
      principalArn: XACCT.arn,
      region: "us-east-1",
    });
    const crossToken = issuedFor(auths[cross]?.password);
    expect(crossToken?.principalArn).toMatch(/^arn:aws:sts::333333333333:assumed-role\/pull\//);
    expect(crossToken?.region).toBe("eu-central-1");
    // The resource's keys assumed the role with the external ID the role demands.
    expect(
      aws
        .calls({ service: "sts", action: "AssumeRole", accessKeyId: XACCT.accessKeyId })
        .map((c) => c.status),
    ).toEqual([200]);
    expect(ecrCalls(XACCT).map((c) => c.region)).toEqual(["us-east-1"]);
  });
});

describe("registries: other partitions and ECR Public", () => {
  it("FIPS, dual-stack, China partition and ECR Public hosts, one fetch per (service, region)", async () => {
    const hosts = [
      `${ACCOUNT}.dkr.ecr-fips.us-east-1.amazonaws.com`,
      `${ACCOUNT}.dkr-ecr.us-east-1.on.aws`,
      `${ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn`,
      "public.ecr.aws",
    ];
    await applyResource(
      k,
      "awsreg-hosts",
      spec(
        ["awsreg-hosts"],
        "keys-hosts",
        hosts.map((host) => ({ host })),
      ),
    );
    await waitReady("awsreg-hosts");
    const auths = await authsIn("awsreg-hosts");
    expect(Object.keys(auths).sort()).toEqual([...hosts].sort());
    const byHost = Object.fromEntries(hosts.map((h) => [h, issuedFor(auths[h]?.password)]));
    expect(byHost[hosts[0] as string]).toMatchObject({ service: "ecr", region: "us-east-1" });
    expect(auths[hosts[1] as string]?.password).toBe(auths[hosts[0] as string]?.password);
    expect(byHost[hosts[2] as string]).toMatchObject({ service: "ecr", region: "cn-north-1" });
    // ECR Public's token comes from its own API, which lives only in us-east-1.
    expect(byHost["public.ecr.aws"]).toMatchObject({ service: "ecr-public", region: "us-east-1" });
    expect(
      ecrCalls(HOSTS)
        .map((c) => `${c.service}/${c.region}`)
        .sort(),
    ).toEqual(["ecr-public/us-east-1", "ecr/cn-north-1", "ecr/us-east-1"]);
  });
});

describe("registries: one source shared by many resources", () => {
  it("forty namespaces over five resources sharing one source: one fetch per refresh in all", async () => {
    // Short tokens, so several refreshes happen while we watch.
    aws.tokenLifetimeMs = 4_000;
    const since = Date.now();
    for (const [r, nss] of sharedNamespaces.entries()) {
      await applyResource(
        k,
        `awsreg-share-${r + 1}`,
        spec(nss, "keys-shared", [{ accountId: ACCOUNT }], "ecr-shared"),
      );
    }
    const all = sharedNamespaces.flat();
    const passwordsNow = () => sharedPasswords(all);
    await waitFor("the shared Secret in all forty namespaces", async () =>
      (await passwordsNow()).size === all.length ? true : undefined,
    );
    // Watch several refreshes, one list request per sample: every Secret
    // holds a token issued to the shared source, all the while.
    const seen = new Set<string>();
    await consistently(
      "the forty Secrets on tokens issued to the shared source",
      async () => {
        // The Secrets first, then what the double issued: a token issued
        // between the two reads is then in both, never only in a Secret.
        const held = await passwordsNow();
        const issued = new Set(
          aws
            .issued()
            .filter((t) => t.principalArn === SHARED.arn)
            .map((t) => t.password),
        );
        for (const [ns, pw] of held) {
          seen.add(pw);
          if (!issued.has(pw)) return `${ns} holds a password not issued to the shared source`;
        }
        return true;
      },
      { forMs: 9_000, intervalMs: 250 },
    );
    aws.tokenLifetimeMs = LONG_LIFETIME_MS;
    const windowMs = Date.now() - since;
    const calls = ecrCalls(SHARED, since);
    const times = calls.map((c) => c.time);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    console.log(
      `shared source: ${calls.length} fetches in ${windowMs} ms for ${all.length} namespaces over ${SHARED_RESOURCES} resources; gaps ${gaps.join(", ")} ms`,
    );
    // Several refreshes happened...
    expect(calls.length).toBeGreaterThanOrEqual(4);
    // ...each one fetch for all five resources: a refresh is due at half of a
    // 4 s lifetime less at most 10% jitter, so two fetches are never closer
    // than ~1.8 s (one fetch per resource would come in bursts of five).
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(1_500);
    expect(calls.length).toBeLessThanOrEqual(Math.ceil(windowMs / 1_800) + 1);
    expect(calls.every((c) => c.status === 200)).toBe(true);
    // Every password the Secrets held was one of these fetches' tokens.
    const issuedToShared = new Set(
      aws
        .issued()
        .filter((t) => t.principalArn === SHARED.arn)
        .map((t) => t.password),
    );
    expect(issuedToShared.size).toBe(calls.length);
    for (const pw of seen) expect(issuedToShared.has(pw)).toBe(true);
    // All forty end on the newest token.
    await waitFor("all forty Secrets on the newest token", async () => {
      const newest = aws
        .issued()
        .filter((t) => t.principalArn === SHARED.arn)
        .sort((a, b) => a.issuedAt - b.issuedAt)
        .at(-1)?.password;
      const now = await passwordsNow();
      return now.size === all.length && [...now.values()].every((pw) => pw === newest)
        ? true
        : undefined;
    });
  });
});

describe("registries: rotated keys", () => {
  it("rotated keys in a credentials Secret are refetched within a second; resources on other credentials see no AWS call", async () => {
    await applyResource(
      k,
      "awsreg-rot",
      spec(["awsreg-rot"], "keys-rot", [{ accountId: ACCOUNT }]),
    );
    await applyResource(
      k,
      "awsreg-steady",
      spec(["awsreg-steady"], "keys-steady", [{ accountId: ACCOUNT }]),
    );
    await waitReady("awsreg-rot");
    await waitReady("awsreg-steady");
    const host = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
    const before = (await authsIn("awsreg-rot"))[host]?.password;
    expect(issuedFor(before)?.principalArn).toBe(ROT_OLD.arn);
    const steadyPassword = (await authsIn("awsreg-steady"))[host]?.password;

    const rotatedAt = Date.now();
    await putKeys("keys-rot", ROT_NEW);
    const fetch = await waitFor(
      "a token fetch with the rotated keys",
      () => ecrCalls(ROT_NEW, rotatedAt)[0],
      { timeoutMs: 5_000, intervalMs: 20 },
    );
    const latency = fetch.time - rotatedAt;
    console.log(`rotated keys fetched ${latency} ms after the Secret changed`);
    expect(fetch.status).toBe(200);
    expect(latency).toBeLessThan(1_000);
    const after = await waitFor("awsreg-rot's Secret to hold the new token", async () => {
      const pw = (await authsIn("awsreg-rot"))[host]?.password;
      return pw !== before ? pw : undefined;
    });
    expect(issuedFor(after)?.principalArn).toBe(ROT_NEW.arn);
    // The old keys are not used again, the other credentials not at all.
    expect(ecrCalls(ROT_OLD, rotatedAt)).toEqual([]);
    expect(ecrCalls(STEADY, rotatedAt)).toEqual([]);
    expect(ecrCalls(MULTI, rotatedAt)).toEqual([]);
    expect(ecrCalls(XACCT, rotatedAt)).toEqual([]);
    expect(ecrCalls(HOSTS, rotatedAt)).toEqual([]);
    expect((await authsIn("awsreg-steady"))[host]?.password).toBe(steadyPassword);
  });
});
