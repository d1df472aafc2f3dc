import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
import { applyResource, auditWrites, type TestKube } from "../harness/kube.js";
import { runOperatorCommand } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const OPS = "awschk-ops";
const ACCOUNT = "240000000001";
const CHECKER_USER = `system:serviceaccount:${OPS}:checker`;
const GOOD = {
  accessKeyId: "AKIACHK0000000000001",
  secretAccessKey: "awschk-good-secret-000000000000000000001",
  arn: `arn:aws:iam::${ACCOUNT}:user/checker`,
};
const UNKNOWN = {
  accessKeyId: "AKIACHK0000000000009",
  secretAccessKey: "awschk-unknown-secret-0000000000000000009",
};

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let kubeconfig: string;
let env: Record<string, string>;

const putKeys = (name: string, id: { accessKeyId: string; secretAccessKey: string }) =>
  stack.putKeys(name, id);

function check(...flags: string[]) {
  return runOperatorCommand(["check", `--kubeconfig=${kubeconfig}`, ...flags], env, 30_000);
}

/** Nothing secret in the output: no issued password, no key. */
function expectNoSecrets(output: string): void {
  for (const t of aws.issued()) expect(output).not.toContain(t.password);
  expect(output).not.toContain(GOOD.secretAccessKey);
  expect(output).not.toContain(UNKNOWN.secretAccessKey);
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    identities: [{ ...GOOD, accountId: ACCOUNT }],
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push("awschk");
  await putKeys("keys-good", GOOD);
  await putKeys("keys-refused", UNKNOWN);
  // check runs as its own ServiceAccount, so the audit log can show it wrote nothing.
  kubeconfig = await stack.serviceAccountKubeconfig("checker");
  env = await stack.isolatedAwsEnv();
});

afterAll(async () => {
  await stack?.stop();
});

describe("check", () => {
  it("prints the registries, the identity and the expiry, exits 0, writes nothing", async () => {
    const since = Date.now();
    const { code, output } = await check(
      "--region=us-east-1",
      "--credentials-secret-name=keys-good",
      `--credentials-secret-namespace=${OPS}`,
    );
    expect(code, output).toBe(0);
    const issued = aws.issued().filter((t) => t.principalArn === GOOD.arn && t.issuedAt >= since);
    expect(issued).toHaveLength(1);
    const token = issued[0] as NonNullable<(typeof issued)[0]>;
    expect(output).toContain(`${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`);
    expect(output).toContain(`identity: ${GOOD.arn}`);
    expect(output).toContain(`expires:  ${token.expiresAt.toISOString()}`);
    expect(output).toContain(`Secret ${OPS}/keys-good`);
    expectNoSecrets(output);
    if (cp.auditLogPath) {
      expect(
        await auditWrites(cp.auditLogPath, (e) => e.user.username === CHECKER_USER, since),
      ).toEqual([]);
    }
  });

  it("checks a resource's registries, in two regions", async () => {
    await applyResource(k, "awschk", {
      secretName: "ecr-pull",
      namespaces: ["awschk-nowhere"],
      region: "us-east-1",
      credentials: { secretRef: { namespace: OPS, name: "keys-good" } },
      registries: [
        { accountId: ACCOUNT },
        { host: "240000000002.dkr.ecr.eu-west-1.amazonaws.com" },
      ],
    });
    const since = Date.now();
    const { code, output } = await check("--resource=awschk");
    expect(code, output).toBe(0);
    expect(output).toContain(`${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`);
    expect(output).toContain("240000000002.dkr.ecr.eu-west-1.amazonaws.com");
    const tokens = aws.issued().filter((t) => t.issuedAt >= since);
    expect(tokens.map((t) => t.region).sort()).toEqual(["eu-west-1", "us-east-1"]);
    for (const t of tokens) expect(output).toContain(t.expiresAt.toISOString());
    expectNoSecrets(output);
  });

  it("exits non-zero with the reason when AWS refuses the keys", async () => {
    const { code, output } = await check(
      "--region=us-east-1",
      "--credentials-secret-name=keys-refused",
      `--credentials-secret-namespace=${OPS}`,
    );
    expect(code).not.toBe(0);
    expect(output).toContain("check failed: CredentialsInvalid");
    expect(output).toContain(`Secret ${OPS}/keys-refused`);
    expect(output).toContain("refused");
    expect(output).not.toContain("ok: the credentials work");
    expectNoSecrets(output);
  });
});
