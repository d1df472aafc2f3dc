// Every AWS credential source, end to end on a real API server: keys in a
// Secret of another namespace, keys with a session token, a role assumed with
// an external ID, IRSA (web identity token file + AWS_ROLE_ARN) and EKS Pod
// Identity (the container credentials endpoint). Each must yield a Secret
// holding a password the AWS double issued to exactly that identity.
// IRSA and Pod Identity come from the operator's own environment, so those
// run the built executable as its own process (build first:
// `npx --no-install tsc -p tsconfig.build.json`).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  deleteResource,
  dockerConfigOf,
  getResource,
  readSecret,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import type { InProcessOperator, OperatorProcess } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";
import { ecrHost, waitForReady } from "../harness/state.js";

const ACCOUNT = "210000000001";
const OTHER_ACCOUNT = "210000000002";
const HOST = ecrHost(ACCOUNT);
const OPS = "awssrc-ops";
const NS = {
  static: "awssrc-static",
  session: "awssrc-session",
  role: "awssrc-role",
  irsa: "awssrc-irsa",
  pod: "awssrc-pod",
};
const RESOURCES = Object.keys(NS).map((k) => `awssrc-${k}`);

const STATIC = {
  accessKeyId: "AKIASRC0000000000001",
  secretAccessKey: "awssrc-static-secret-00000000000000000001",
  arn: `arn:aws:iam::${ACCOUNT}:user/static`,
};
const SESSION = {
  accessKeyId: "ASIASRC0000000000002",
  secretAccessKey: "awssrc-session-secret-0000000000000000002",
  sessionToken: "IQoJb3JpZ2luX2VjEawssrc-session-token-0000000000000000000000000002",
  arn: `arn:aws:sts::${ACCOUNT}:assumed-role/ci/awssrc-session`,
};
const BASE = {
  accessKeyId: "AKIASRC0000000000003",
  secretAccessKey: "awssrc-base-secret-000000000000000000003",
  arn: `arn:aws:iam::${ACCOUNT}:user/base`,
};
const PULL_ROLE = `arn:aws:iam::${OTHER_ACCOUNT}:role/ecr-pull`;
const EXTERNAL_ID = "awssrc-external-42";
const IRSA_ROLE = `arn:aws:iam::${ACCOUNT}:role/irsa-puller`;
const IRSA_JWT = "eyJhbGciOiJSUzI1NiJ9.awssrc-irsa-projected-token.c2lnbmF0dXJl";
const POD_ROLE = `arn:aws:iam::${ACCOUNT}:role/pod-identity-puller`;
const POD_TOKEN = "awssrc-pod-identity-authorization-token";

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator | undefined;
let dir: string;

function resourceSpec(
  namespace: string,
  credentials?: ECRPullSecret["spec"]["credentials"],
): ECRPullSecret["spec"] {
  return {
    secretName: "ecr-pull",
    namespaces: [namespace],
    serviceAccounts: [],
    region: "us-east-1",
    registries: [{ accountId: ACCOUNT }],
    ...(credentials ? { credentials } : {}),
  };
}

/** Waits for the Secret and returns the double's record of the token it holds. */
async function issuedTokenIn(namespace: string) {
  const secret = await waitFor(`Secret ${namespace}/ecr-pull`, async () => {
    const s = await readSecret(k, namespace, "ecr-pull");
    return s ? s : undefined;
  });
  const auths = dockerConfigOf(secret).auths;
  expect(Object.keys(auths)).toEqual([HOST]);
  const password = auths[HOST]?.password ?? "";
  const token = aws.issued().find((t) => t.password === password);
  expect(token, "the Secret holds a password the double issued").toBeDefined();
  expect(aws.isValidPassword(password)).toBe(true);
  return token as NonNullable<typeof token>;
}

const waitReady = (name: string): Promise<ECRPullSecret> => waitForReady(k, name);

/** The operator's environment: only the settings under test reach the SDK's default chain. */
const chainEnv = (extra: Record<string, string>) =>
  stack.isolatedAwsEnv({ AWS_REGION: "us-east-1", ...extra });

const operatorArgs = () =>
  stack.processArgs(stack.kubeconfigPath, [
    "--log-level=debug",
    "--min-refresh-interval=500ms",
    "--aws-backoff-base=200ms",
    "--aws-backoff-max=2s",
    "--aws-timeout=2s",
  ]);

async function withOperatorProcess(
  env: Record<string, string>,
  body: (p: OperatorProcess) => Promise<void>,
): Promise<void> {
  const p = stack.startProcess(operatorArgs(), env);
  try {
    await body(p);
  } catch (err) {
    // The operator's own account of what went wrong, without re-running.
    console.error(p.output.slice(-40).join("\n"));
    throw err;
  } finally {
    await p.stop();
  }
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: Object.values(NS),
    identities: [
      { ...STATIC, accountId: ACCOUNT },
      { ...SESSION, accountId: ACCOUNT, expiresAt: new Date(Date.now() + 3_600_000) },
      { ...BASE, accountId: ACCOUNT },
    ],
    credentials: false,
  });
  ({ k, aws, dir } = stack);
  stack.resources.push(...RESOURCES);
  aws.addRole({ roleArn: PULL_ROLE, trustedPrincipalArns: [BASE.arn], externalId: EXTERNAL_ID });
  aws.addRole({ roleArn: IRSA_ROLE, webIdentityTokens: [IRSA_JWT] });
  aws.addRole({ roleArn: POD_ROLE });
  aws.addPodIdentity({ authorizationToken: POD_TOKEN, roleArn: POD_ROLE });
});

afterAll(async () => {
  await stack?.stop();
});

describe("credential sources", () => {
  it("static keys, keys with a session token, and a role with an external ID, each from a Secret in another namespace", async () => {
    await stack.putKeys("static-keys", STATIC);
    await stack.putKeys("session-keys", SESSION);
    await stack.putKeys("base-keys", BASE);
    op = await stack.startOperator({ as: false });
    await applyResource(
      k,
      "awssrc-static",
      resourceSpec(NS.static, { secretRef: { namespace: OPS, name: "static-keys" } }),
    );
    await applyResource(
      k,
      "awssrc-session",
      resourceSpec(NS.session, { secretRef: { namespace: OPS, name: "session-keys" } }),
    );
    await applyResource(
      k,
      "awssrc-role",
      resourceSpec(NS.role, {
        secretRef: { namespace: OPS, name: "base-keys" },
        roleArn: PULL_ROLE,
        externalId: EXTERNAL_ID,
      }),
    );
    for (const name of ["awssrc-static", "awssrc-session", "awssrc-role"]) await waitReady(name);

    expect((await issuedTokenIn(NS.static)).principalArn).toBe(STATIC.arn);
    // The double accepts these keys only when the request carries their session token.
    expect((await issuedTokenIn(NS.session)).principalArn).toBe(SESSION.arn);
    const sessionCalls = aws.calls({ service: "ecr", accessKeyId: SESSION.accessKeyId });
    expect(sessionCalls.map((c) => c.status)).toEqual([200]);

    const roleToken = await issuedTokenIn(NS.role);
    expect(roleToken.principalArn).toMatch(
      new RegExp(`^arn:aws:sts::${OTHER_ACCOUNT}:assumed-role/ecr-pull/`),
    );
    expect(roleToken.accountId).toBe(OTHER_ACCOUNT);
    // The base keys assumed the role (the double checked the external ID) and
    // never asked ECR themselves.
    const assumed = aws.calls({
      service: "sts",
      action: "AssumeRole",
      accessKeyId: BASE.accessKeyId,
    });
    expect(assumed.map((c) => c.status)).toEqual([200]);
    expect(aws.calls({ service: "ecr", accessKeyId: BASE.accessKeyId })).toEqual([]);
    await op.stop();
    op = undefined;
  });
});

describe("credential sources: the SDK default chain", () => {
  it("IRSA: the SDK's default chain reads the projected token file and AWS_ROLE_ARN and calls the STS double", async () => {
    const tokenFile = join(dir, "irsa-token");
    await writeFile(tokenFile, IRSA_JWT);
    const env = await chainEnv({ AWS_ROLE_ARN: IRSA_ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile });
    const since = Date.now();
    await withOperatorProcess(env, async () => {
      await applyResource(k, "awssrc-irsa", resourceSpec(NS.irsa));
      await waitReady("awssrc-irsa");
      const token = await issuedTokenIn(NS.irsa);
      expect(token.principalArn).toMatch(
        new RegExp(`^arn:aws:sts::${ACCOUNT}:assumed-role/irsa-puller/`),
      );
      const web = aws.calls(
        (c) => c.service === "sts" && c.action === "AssumeRoleWithWebIdentity" && c.time >= since,
      );
      expect(web.length).toBeGreaterThanOrEqual(1);
      expect(web.every((c) => c.status === 200)).toBe(true);
      // Gone before the next operator starts: a restarted operator reuses the
      // tokens its Secrets hold, and the next test must see a fresh fetch.
      await deleteResource(k, "awssrc-irsa");
      await waitFor("awssrc-irsa to be deleted", async () =>
        (await getResource(k, "awssrc-irsa")) ? undefined : true,
      );
    });
  });

  it("EKS Pod Identity: the SDK's default chain gets credentials from the container credentials endpoint", async () => {
    const tokenFile = join(dir, "pod-identity-token");
    await writeFile(tokenFile, POD_TOKEN);
    // As the EKS Pod Identity webhook sets it up: a full URI and a token file.
    const env = await chainEnv({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: aws.containerCredentialsUrl,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    });
    const since = Date.now();
    await withOperatorProcess(env, async () => {
      await applyResource(k, "awssrc-pod", resourceSpec(NS.pod));
      await waitReady("awssrc-pod");
      const token = await issuedTokenIn(NS.pod);
      expect(token.principalArn).toMatch(
        new RegExp(`^arn:aws:sts::${ACCOUNT}:assumed-role/pod-identity-puller/eks-pod-identity-`),
      );
      const fetched = aws.calls(
        (c) => c.service === "container-credentials" && c.time >= since && c.status === 200,
      );
      expect(fetched.length).toBeGreaterThanOrEqual(1);
      // No web identity this time: the credentials came from the endpoint alone.
      expect(aws.calls((c) => c.action === "AssumeRoleWithWebIdentity" && c.time >= since)).toEqual(
        [],
      );
    });
  });
});
