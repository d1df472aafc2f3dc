// The `check` command as its own process, against the AWS double: it resolves
// the credentials as the operator would, fetches a token, prints registries,
// identity and expiry and exits 0; with refused keys it exits non-zero with
// the reason. It never prints a password or key, and writes nothing to the
// cluster (build first: `npx --no-install tsc -p tsconfig.build.json`).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  auditWrites,
  bindClusterAdmin,
  createNamespace,
  deleteNamespaces,
  deleteResource,
  kubeconfigForServiceAccount,
  putAwsKeys,
  type TestKube,
  testKube,
} from "../harness/kube.js";
import { runOperatorCommand } from "../harness/operator.js";

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

let k: TestKube;
let aws: AwsDouble;
let dir: string;
let kubeconfig: string;
let env: Record<string, string>;

async function putKeys(name: string, id: { accessKeyId: string; secretAccessKey: string }) {
  await putAwsKeys(k, OPS, name, id);
}

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
  k = testKube(cp.kubeconfigPath);
  dir = await mkdtemp(join(tmpdir(), "awschk-"));
  aws = new AwsDouble({ tokenLifetimeMs: 10 * 60_000 });
  await aws.start();
  aws.addIdentity({ ...GOOD, accountId: ACCOUNT });
  await createNamespace(k, OPS);
  await putKeys("keys-good", GOOD);
  await putKeys("keys-refused", UNKNOWN);
  // check runs as its own ServiceAccount, so the audit log can show it wrote nothing.
  kubeconfig = await kubeconfigForServiceAccount(k, OPS, "checker", dir);
  await bindClusterAdmin(k, "awschk-checker", OPS, ["checker"]);
  const empty = join(dir, "empty");
  await writeFile(empty, "");
  env = {
    AWS_ENDPOINT_URL: aws.url,
    AWS_SHARED_CREDENTIALS_FILE: empty,
    AWS_CONFIG_FILE: empty,
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_ACCESS_KEY_ID: "",
    AWS_SECRET_ACCESS_KEY: "",
    AWS_SESSION_TOKEN: "",
  };
});

afterAll(async () => {
  await deleteResource(k, "awschk");
  await k.rbac.deleteClusterRoleBinding({ name: "awschk-checker" }).catch(() => undefined);
  await deleteNamespaces(k, [OPS]);
  await aws?.close();
  await rm(dir, { recursive: true, force: true });
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
