// Bad input at the door: every invalid ECRPullSecret below is sent to the real
// API server (with the CRD generated from src/api/schema.ts) and must be
// refused at apply time with a message naming the offending field. What only
// the operator can judge, a credentials Secret with unusable keys, must become
// a CredentialsSecretInvalid condition naming the Secret and the key, while the
// same operator keeps serving every other resource.
import { ApiException } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  API_VERSION,
  GROUP,
  KIND,
  MAX_NAMESPACE_ENTRIES,
  PLURAL,
  VERSION,
} from "../../src/api/index.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  deleteResource,
  getResource,
  readSecret,
  readyCondition,
  type TestKube,
  testKube,
  waitFor,
} from "../harness/kube.js";
import { type Stack, startStack } from "../harness/stack.js";
import { ecrHost, passwordIn, waitForReady } from "../harness/state.js";

/** One namespace entry more than the CRD takes. */
const TOO_MANY = MAX_NAMESPACE_ENTRIES + 1;
const cp = inject("controlPlane");
const ACCOUNT = "444455556666";
const HOST = ecrHost(ACCOUNT);
const OPS = "badin-ops";

let k: TestKube;

/** The API server's message for a refused request, or undefined when it was accepted. */
async function tryCreate(
  name: string,
  spec: unknown,
  extra: Record<string, unknown> = {},
): Promise<string | undefined> {
  const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec, ...extra };
  try {
    await k.custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      body,
      // Unknown fields are refused only in Strict mode; the default (Warn)
      // prunes them and answers with a warning header. Strict is what
      // `kubectl apply --validate=strict` (kubectl's default) sends.
      fieldValidation: "Strict",
    });
    return undefined;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    expect([400, 422]).toContain(err.code);
    const parsed = JSON.parse(String(err.body)) as { message?: string };
    return parsed.message ?? "";
  }
}

const ok = { secretName: "ecr-pull", namespaces: ["badin-a"] };
const many = (n: number, f: (i: number) => unknown) => Array.from({ length: n }, (_, i) => f(i));

/** [case, spec (or a full body override), field path the message must name]. */
const cases: Array<[string, unknown, string, Record<string, unknown>?]> = [
  ["empty secretName", { ...ok, secretName: "" }, "spec.secretName"],
  ["secretName with capitals and _", { ...ok, secretName: "Ecr_Pull" }, "spec.secretName"],
  ["secretName of 254 characters", { ...ok, secretName: "a".repeat(254) }, "spec.secretName"],
  ["secretName missing", { namespaces: ["badin-a"] }, "spec.secretName"],
  ["secretName not a string", { ...ok, secretName: 42 }, "spec.secretName"],
  ["namespace with capitals", { ...ok, namespaces: ["Team-A"] }, "spec.namespaces[0]"],
  ["namespace with a slash", { ...ok, namespaces: ["ok", "a/b"] }, "spec.namespaces[1]"],
  ["namespace starting with -", { ...ok, namespaces: ["-a"] }, "spec.namespaces[0]"],
  ["empty namespace", { ...ok, namespaces: [""] }, "spec.namespaces[0]"],
  ["namespace of 64 characters", { ...ok, namespaces: ["n".repeat(64)] }, "spec.namespaces[0]"],
  ["glob with [ ]", { ...ok, namespaces: ["team-[ab]"] }, "spec.namespaces[0]"],
  ["duplicate namespace", { ...ok, namespaces: ["a", "a"] }, "spec.namespaces[1]"],
  ["exclude glob with _", { ...ok, excludeNamespaces: ["kube_*"] }, "spec.excludeNamespaces[0]"],
  ["no target namespaces", { secretName: "ecr-pull" }, "spec"],
  ["empty namespaces, no selector", { secretName: "ecr-pull", namespaces: [] }, "spec"],
  [
    "selector with unknown operator",
    {
      secretName: "x",
      namespaceSelector: {
        matchExpressions: [{ key: "team", operator: "Matches", values: ["a"] }],
      },
    },
    "spec.namespaceSelector.matchExpressions[0].operator",
  ],
  [
    "selector In without values",
    { secretName: "x", namespaceSelector: { matchExpressions: [{ key: "team", operator: "In" }] } },
    "spec.namespaceSelector.matchExpressions[0].values",
  ],
  [
    "selector Exists with values",
    {
      secretName: "x",
      namespaceSelector: { matchExpressions: [{ key: "t", operator: "Exists", values: ["a"] }] },
    },
    "spec.namespaceSelector.matchExpressions[0].values",
  ],
  [
    "selector with a bad label key",
    { secretName: "x", namespaceSelector: { matchLabels: { "bad key!": "on" } } },
    "spec.namespaceSelector.matchLabels",
  ],
  [
    "selector with a bad label value",
    { secretName: "x", namespaceSelector: { matchLabels: { team: "has space" } } },
    "spec.namespaceSelector.matchLabels.team",
  ],
  [
    "registry host not ECR",
    { ...ok, registries: [{ host: "registry.example.com" }] },
    "spec.registries[0].host",
  ],
  [
    "registry host with a short account",
    { ...ok, registries: [{ host: "123.dkr.ecr.us-east-1.amazonaws.com" }] },
    "spec.registries[0].host",
  ],
  [
    "China region on the .com domain",
    { ...ok, registries: [{ host: "123456789012.dkr.ecr.cn-north-1.amazonaws.com" }] },
    "spec.registries[0].host",
  ],
  [
    "registry host with a scheme",
    { ...ok, registries: [{ host: `https://${HOST}` }] },
    "spec.registries[0].host",
  ],
  [
    "account ID of 5 digits",
    { ...ok, registries: [{ accountId: "12345" }] },
    "spec.registries[0].accountId",
  ],
  [
    "account ID with letters",
    { ...ok, registries: [{ accountId: "1234567890ab" }] },
    "spec.registries[0].accountId",
  ],
  [
    "registry with both accountId and host",
    { ...ok, registries: [{ accountId: ACCOUNT, host: HOST }] },
    "spec.registries[0]",
  ],
  ["registry with neither", { ...ok, registries: [{}] }, "spec.registries[0]"],
  [
    "registry host with a region",
    { ...ok, registries: [{ host: HOST, region: "eu-west-1" }] },
    "spec.registries[0].region",
  ],
  ["bad region", { ...ok, region: "US-EAST-1" }, "spec.region"],
  [
    "bad registry region",
    { ...ok, registries: [{ accountId: ACCOUNT, region: "moon-1" }] },
    "spec.registries[0].region",
  ],
  [
    "role ARN with a short account",
    { ...ok, credentials: { roleArn: "arn:aws:iam::123:role/pull" } },
    "spec.credentials.roleArn",
  ],
  [
    "ARN of another service",
    { ...ok, credentials: { roleArn: "arn:aws:s3:::my-bucket" } },
    "spec.credentials.roleArn",
  ],
  [
    "role ARN of a user",
    { ...ok, credentials: { roleArn: `arn:aws:iam::${ACCOUNT}:user/pull` } },
    "spec.credentials.roleArn",
  ],
  [
    "externalId without roleArn",
    { ...ok, credentials: { secretRef: { name: "k", namespace: "ops" }, externalId: "abc" } },
    "spec.credentials.externalId",
  ],
  ["empty credentials", { ...ok, credentials: {} }, "spec.credentials"],
  [
    "keys and web identity together",
    {
      ...ok,
      credentials: {
        secretRef: { name: "k", namespace: "ops" },
        webIdentity: { roleArn: `arn:aws:iam::${ACCOUNT}:role/web` },
      },
    },
    "spec.credentials.webIdentity",
  ],
  [
    "web identity without a role",
    { ...ok, credentials: { webIdentity: {} } },
    "spec.credentials.webIdentity.roleArn",
  ],
  [
    "web identity of a ServiceAccount without a namespace",
    {
      ...ok,
      credentials: {
        webIdentity: {
          roleArn: `arn:aws:iam::${ACCOUNT}:role/web`,
          serviceAccount: { name: "sa" },
        },
      },
    },
    "spec.credentials.webIdentity.serviceAccount.namespace",
  ],
  [
    "session tags without roleArn",
    {
      ...ok,
      credentials: {
        webIdentity: { roleArn: `arn:aws:iam::${ACCOUNT}:role/web` },
        sessionTags: [{ key: "team", value: "a" }],
      },
    },
    "spec.credentials.sessionTags",
  ],
  [
    "a session tag key twice",
    {
      ...ok,
      credentials: {
        roleArn: `arn:aws:iam::${ACCOUNT}:role/pull`,
        sessionTags: [
          { key: "team", value: "a" },
          { key: "team", value: "b" },
        ],
      },
    },
    "spec.credentials.sessionTags[1]",
  ],
  [
    "credentials Secret in a bad namespace",
    { ...ok, credentials: { secretRef: { name: "k", namespace: "Bad_NS" } } },
    "spec.credentials.secretRef.namespace",
  ],
  [
    "credentials Secret without a name",
    { ...ok, credentials: { secretRef: { namespace: "ops" } } },
    "spec.credentials.secretRef.name",
  ],
  [
    "registry role ARN malformed",
    {
      ...ok,
      registries: [{ accountId: ACCOUNT, credentials: { roleArn: "arn:aws:iam::x:role/" } }],
    },
    "spec.registries[0].credentials.roleArn",
  ],
  ["negative refreshBefore", { ...ok, refreshBefore: "-4h" }, "spec.refreshBefore"],
  ["nonsense refreshBefore", { ...ok, refreshBefore: "soon" }, "spec.refreshBefore"],
  ["refreshBefore without unit", { ...ok, refreshBefore: "3600" }, "spec.refreshBefore"],
  ["zero refreshBefore", { ...ok, refreshBefore: "0s" }, "spec.refreshBefore"],
  ["refreshBefore beyond the lifetime", { ...ok, refreshBefore: "13h" }, "spec.refreshBefore"],
  ["unknown deletionPolicy", { ...ok, deletionPolicy: "Orphan" }, "spec.deletionPolicy"],
  ["adoptExisting not a boolean", { ...ok, adoptExisting: "yes" }, "spec.adoptExisting"],
  [
    `${TOO_MANY} namespaces`,
    { ...ok, namespaces: many(TOO_MANY, (i) => `badin-${i}`) },
    "spec.namespaces",
  ],
  [
    `${TOO_MANY} excluded namespaces`,
    { ...ok, excludeNamespaces: many(TOO_MANY, (i) => `x-${i}`) },
    "spec.excludeNamespaces",
  ],
  [
    "65 ServiceAccounts",
    { ...ok, serviceAccounts: many(65, (i) => `sa-${i}`) },
    "spec.serviceAccounts",
  ],
  [
    "33 registries",
    { ...ok, registries: many(33, (i) => ({ accountId: String(100000000000 + i) })) },
    "spec.registries",
  ],
  [
    "33 selector expressions",
    {
      secretName: "x",
      namespaceSelector: {
        matchExpressions: many(33, (i) => ({ key: `k${i}`, operator: "Exists" })),
      },
    },
    "spec.namespaceSelector.matchExpressions",
  ],
  [
    '"*" with other ServiceAccounts',
    { ...ok, serviceAccounts: ["*", "default"] },
    "spec.serviceAccounts",
  ],
  ["ServiceAccount with a space", { ...ok, serviceAccounts: ["my sa"] }, "spec.serviceAccounts[0]"],
  ["unknown field in spec (typo)", { ...ok, secretname: "x" }, "spec.secretname"],
  [
    "unknown field in a registry",
    { ...ok, registries: [{ accountId: ACCOUNT, acount: "x" }] },
    "spec.registries[0].acount",
  ],
  ["unknown top-level field", ok, "extra", { extra: true }],
];

beforeAll(() => {
  k = testKube(cp.kubeconfigPath);
});

afterAll(async () => {
  await Promise.all(cases.map((_, i) => deleteResource(k, `badin-case-${i}`)));
  await deleteResource(k, "badin-long-name-".padEnd(64, "x"));
});

describe("invalid ECRPullSecrets are refused at apply time", () => {
  it("has at least 30 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases.map((c, i) => [i, ...c] as const))(
    "#%i %s: refused, naming the field",
    async (i, _what, spec, field, extra) => {
      const message = await tryCreate(`badin-case-${i}`, spec, extra);
      expect(message, "the API server accepted it").toBeDefined();
      expect(message).toContain(field);
    },
  );

  it("refuses a name longer than a label value, naming metadata.name", async () => {
    const message = await tryCreate("badin-long-name-".padEnd(64, "x"), ok);
    expect(message).toContain("metadata.name");
  });

  it("accepts the valid baseline, so the cases above fail for their own fault", async () => {
    expect(await tryCreate("badin-baseline", ok)).toBeUndefined();
    await deleteResource(k, "badin-baseline");
  });
});

// --- Credentials Secrets only the operator can judge -------------------------

// Shared by the describe below: its stack, and the credentials Secrets it
// makes, each with the key at fault.
let stack: Stack;
let aws: AwsDouble;
const KEY_ID = "AKIABADIN00000000001";
const SECRET = "badin-secret-key-000000000000000000000001";
const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
const secrets: Array<[string, Record<string, string>, string]> = [
  ["missing", { AWS_ACCESS_KEY_ID: b64(KEY_ID) }, "AWS_SECRET_ACCESS_KEY"],
  ["empty", { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: b64(SECRET) }, "AWS_ACCESS_KEY_ID"],
  [
    "not-utf8",
    {
      AWS_ACCESS_KEY_ID: b64(KEY_ID),
      AWS_SECRET_ACCESS_KEY: b64(Buffer.from([0xff, 0xfe, 0x41])),
    },
    "AWS_SECRET_ACCESS_KEY",
  ],
  [
    "padded",
    { AWS_ACCESS_KEY_ID: b64(`${KEY_ID}\n`), AWS_SECRET_ACCESS_KEY: b64(SECRET) },
    "AWS_ACCESS_KEY_ID",
  ],
  [
    "padded-token",
    {
      AWS_ACCESS_KEY_ID: b64(KEY_ID),
      AWS_SECRET_ACCESS_KEY: b64(SECRET),
      AWS_SESSION_TOKEN: b64(" token"),
    },
    "AWS_SESSION_TOKEN",
  ],
];

describe("credentials Secrets with unusable keys", () => {
  beforeAll(async () => {
    stack = await startStack({
      ops: OPS,
      namespaces: ["badin-a"],
      identities: [
        {
          accessKeyId: KEY_ID,
          secretAccessKey: SECRET,
          accountId: ACCOUNT,
          arn: `arn:aws:iam::${ACCOUNT}:user/badin`,
        },
      ],
      credentials: false,
    });
    aws = stack.aws;
    stack.resources.push(...secrets.map(([n]) => `badin-creds-${n}`), "badin-good", "badin-good-2");
    await k.core.createNamespacedSecret({
      namespace: OPS,
      body: {
        metadata: { name: "good" },
        data: { AWS_ACCESS_KEY_ID: b64(KEY_ID), AWS_SECRET_ACCESS_KEY: b64(SECRET) },
      },
    });
    for (const [name, data] of secrets) {
      await k.core.createNamespacedSecret({ namespace: OPS, body: { metadata: { name }, data } });
    }
    await stack.startOperator({ as: false });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it("reports CredentialsSecretInvalid naming the Secret and key, and keeps serving others", async () => {
    await applyResource(k, "badin-good", {
      secretName: "ecr-good",
      namespaces: ["badin-a"],
      credentials: { secretRef: { name: "good", namespace: OPS } },
      registries: [{ accountId: ACCOUNT }],
    });
    for (const [name] of secrets) {
      await applyResource(k, `badin-creds-${name}`, {
        secretName: `ecr-${name}`,
        namespaces: ["badin-a"],
        credentials: { secretRef: { name, namespace: OPS } },
        registries: [{ accountId: ACCOUNT }],
      });
    }
    for (const [name, , key] of secrets) {
      const ready = await waitFor(`badin-creds-${name} to report`, async () => {
        const c = readyCondition(await getResource(k, `badin-creds-${name}`));
        return c?.status === "False" ? c : undefined;
      });
      expect(ready.reason, name).toBe("CredentialsSecretInvalid");
      expect(ready.message, name).toContain(`Secret ${OPS}/${name}`);
      expect(ready.message, name).toContain(key);
      expect(await readSecret(k, "badin-a", `ecr-${name}`), name).toBeUndefined();
    }
    // The same operator, unharmed, serves the good resource and a new one.
    await waitForReady(k, "badin-good");
    await stack.namespace("badin-b");
    await applyResource(k, "badin-good-2", {
      secretName: "ecr-good-2",
      namespaces: ["badin-b"],
      credentials: { secretRef: { name: "good", namespace: OPS } },
      registries: [{ accountId: ACCOUNT }],
    });
    const secret = await waitFor("Secret in badin-b", () => readSecret(k, "badin-b", "ecr-good-2"));
    const password = passwordIn(secret, HOST) ?? "";
    expect(aws.isValidPassword(password)).toBe(true);
    // Fixing the Secret in place heals the resource without a restart.
    await k.core.replaceNamespacedSecret({
      namespace: OPS,
      name: "padded",
      body: {
        metadata: { name: "padded" },
        data: { AWS_ACCESS_KEY_ID: b64(KEY_ID), AWS_SECRET_ACCESS_KEY: b64(SECRET) },
      },
    });
    await waitForReady(k, "badin-creds-padded");
    // No credential in any condition message.
    for (const [name] of secrets) {
      const text = JSON.stringify((await getResource(k, `badin-creds-${name}`))?.status ?? {});
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(password);
    }
  });
});
