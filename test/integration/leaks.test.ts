// No secret leaves where it should not. The operator runs in this process with
// debug logs captured, through the AWS faults (throttling, 5xx, timeouts,
// refused keys, tokens expired on arrival), a Secret conflict and a namespace
// deleted under it, with static keys, a session token and an assumed role.
// Afterwards no issued password (plain or inside the base64 `auth`), secret
// access key or session token, of the Secret keys or of STS sessions, may
// appear in its logs, in Events, in status or in any error message. And the
// dockerconfigjson is never written into a Secret of another type, even with
// adoptExisting.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsDouble, IdentityInit } from "../aws-double/index.js";
import {
  applyResource,
  deleteNamespaces,
  dockerConfigOf,
  getResource,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";
import { ecrHost } from "../harness/state.js";

const ACCOUNT = "121212121212";
const HOST = ecrHost(ACCOUNT);
const OPS = "leaks-ops";
const ROLE = `arn:aws:iam::${ACCOUNT}:role/leaks-pull`;
const namespaces = Array.from({ length: 12 }, (_, i) => `leaks-n-${i}`);
const OPAQUE_NS = "leaks-opaque";
const ADOPT_NS = "leaks-adopt";

const keys: IdentityInit = {
  accessKeyId: "AKIALEAKS00000000001",
  secretAccessKey: "leaks/Secret+Key0000000000000000000000001",
  accountId: ACCOUNT,
  arn: `arn:aws:iam::${ACCOUNT}:user/leaks`,
};
const temporary: IdentityInit = {
  accessKeyId: "ASIALEAKS00000000002",
  secretAccessKey: "leaks/Temp+Key00000000000000000000000002",
  sessionToken: "IQoJb3JpZ2luX2VjEleaksSessionToken0000000000000000000000000000000002",
  accountId: ACCOUNT,
  arn: `arn:aws:iam::${ACCOUNT}:user/leaks-temp`,
};

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator;

async function readyReason(name: string): Promise<string | undefined> {
  return readyCondition(await getResource(k, name))?.reason;
}

async function until(name: string, reason: string): Promise<void> {
  await waitFor(`${name} Ready reason ${reason}`, async () =>
    (await readyReason(name)) === reason ? true : undefined,
  );
}

/**
 * Every secret value the AWS double knows at this moment, in the forms it
 * could leak in: the issued passwords, the `auth` field (base64 of
 * AWS:password), and the secret keys and session tokens of every identity,
 * including the STS sessions it handed out for AssumeRole.
 */
function secretsToLookFor(): string[] {
  const out = new Set<string>();
  for (const t of aws.issued()) {
    out.add(t.password);
    out.add(Buffer.from(`AWS:${t.password}`).toString("base64"));
  }
  // The double keeps STS sessions among its principals' identities; reading
  // that private map is the only way to learn their secrets, and this is a test.
  const known = (aws as unknown as { principals: { identities: Map<string, IdentityInit> } })
    .principals.identities;
  for (const id of [keys, temporary, ...known.values()]) {
    out.add(id.secretAccessKey);
    out.add(Buffer.from(id.secretAccessKey).toString("base64"));
    if (id.sessionToken) {
      out.add(id.sessionToken);
      out.add(Buffer.from(id.sessionToken).toString("base64"));
    }
  }
  return [...out].filter((s) => s.length >= 8);
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: [...namespaces, OPAQUE_NS, ADOPT_NS],
    identities: [keys, temporary],
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push("leaks-keys", "leaks-temp", "leaks-role", "leaks-opaque", "leaks-adopt");
  aws.addRole({ roleArn: ROLE, trustedPrincipalArns: [keys.arn] });
  await stack.putKeys("keys", keys);
  await stack.putKeys("temporary", temporary);
  // Events about a cluster-scoped object must live in "default": the API
  // server refuses them elsewhere (involvedObject.namespace must match).
  op = await stack.startOperator({ as: false });
});

afterAll(async () => {
  await stack?.stop();
});

/**
 * Each AWS fault, while the keys rotate (the same keys rewritten with a
 * label, so the operator refetches): the resources report it, then sync
 * again once it clears. Throttling is not among them: with a good token in
 * the Secrets it is not a failure and says nothing.
 */
async function runAwsFaultsWhileKeysRotate(): Promise<void> {
  const faults: Array<[() => { clear(): void }, string]> = [
    [() => aws.error5xx(), "TokenRefreshFailed"],
    [() => aws.hang({ service: "ecr" }), "TokenRefreshFailed"],
    [() => aws.refuse(), "CredentialsInvalid"],
    [() => aws.expiredTokens({ service: "ecr" }), "TokenExpiredOnArrival"],
  ];
  let round = 0;
  for (const [inject, reason] of faults) {
    const fault = inject();
    for (const name of ["keys", "temporary"]) {
      const s = await k.core.readNamespacedSecret({ namespace: OPS, name });
      await k.core.replaceNamespacedSecret({
        namespace: OPS,
        name,
        body: { ...s, data: { ...s.data, ROUND: Buffer.from(String(round)).toString("base64") } },
      });
    }
    round++;
    await until("leaks-keys", reason);
    fault.clear();
    await until("leaks-keys", "Synced");
    await until("leaks-temp", "Synced");
  }
}

/**
 * Someone's Opaque Secret of the resource's name stays untouched
 * (SecretConflict), while a dockerconfigjson one of that name is adopted.
 */
async function conflictAndAdoption(): Promise<void> {
  await k.core.createNamespacedSecret({
    namespace: OPAQUE_NS,
    body: {
      metadata: { name: "ecr-shared", labels: { team: "theirs" } },
      type: "Opaque",
      data: { "config.json": Buffer.from('{"theirs":true}').toString("base64") },
    },
  });
  await k.core.createNamespacedSecret({
    namespace: ADOPT_NS,
    body: {
      metadata: { name: "ecr-shared" },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": Buffer.from('{"auths":{}}').toString("base64") },
    },
  });
  const opaqueBefore = await readSecret(k, OPAQUE_NS, "ecr-shared");
  await applyResource(k, "leaks-opaque", {
    secretName: "ecr-shared",
    namespaces: [OPAQUE_NS, ADOPT_NS],
    adoptExisting: true,
    credentials: { secretRef: { name: "keys", namespace: OPS } },
    registries: [{ accountId: ACCOUNT }],
  });
  await until("leaks-opaque", "SecretConflict");
  // The dockerconfigjson Secret of the same name was adopted: adoption works,
  // so the Opaque one staying untouched is a choice, not an accident.
  const adopted = await waitFor("the dockerconfigjson Secret to be adopted", async () => {
    const s = await readSecret(k, ADOPT_NS, "ecr-shared");
    return s && dockerConfigOf(s).auths[HOST] ? s : undefined;
  });
  expect(aws.isValidPassword(dockerConfigOf(adopted).auths[HOST]?.password ?? "")).toBe(true);
  const opaque = await readSecret(k, OPAQUE_NS, "ecr-shared");
  expect(opaque?.type).toBe("Opaque");
  expect(opaque?.data).toEqual(opaqueBefore?.data);
  expect(opaque?.metadata?.labels).toEqual({ team: "theirs" });
  expect(opaque?.metadata?.resourceVersion).toBe(opaqueBefore?.metadata?.resourceVersion);
  const status = (await getResource(k, "leaks-opaque"))?.status;
  expect(status?.failures).toEqual([
    expect.objectContaining({ namespace: OPAQUE_NS, reason: "SecretConflict" }),
  ]);
}

describe("no secret leaves where it should not", () => {
  it("runs the resources through the AWS faults, a conflict and a namespace deletion", async () => {
    const common = { registries: [{ accountId: ACCOUNT }], namespaces: ["leaks-n-*"] };
    await applyResource(k, "leaks-keys", {
      secretName: "ecr-keys",
      credentials: { secretRef: { name: "keys", namespace: OPS } },
      ...common,
    });
    await applyResource(k, "leaks-temp", {
      secretName: "ecr-temp",
      credentials: { secretRef: { name: "temporary", namespace: OPS } },
      ...common,
    });
    await applyResource(k, "leaks-role", {
      secretName: "ecr-role",
      credentials: { secretRef: { name: "keys", namespace: OPS }, roleArn: ROLE },
      ...common,
    });
    for (const name of ["leaks-keys", "leaks-temp", "leaks-role"]) await until(name, "Synced");

    await runAwsFaultsWhileKeysRotate();

    // A Secret conflict and a namespace deleted while the resources use it.
    await conflictAndAdoption();

    await deleteNamespaces(k, ["leaks-n-11"]);
    await waitFor("leaks-keys to count 11 namespaces", async () => {
      const r = await getResource(k, "leaks-keys");
      return r?.status?.namespaces?.desired === 11 && readyCondition(r)?.status === "True"
        ? true
        : undefined;
    });
    // Every fault did happen and every resource holds a valid token now.
    for (const [ns, name] of [
      ["leaks-n-0", "ecr-keys"],
      ["leaks-n-0", "ecr-temp"],
      ["leaks-n-0", "ecr-role"],
    ] as const) {
      const s = await readSecret(k, ns, name);
      expect(aws.isValidPassword(dockerConfigOf(s!).auths[HOST]?.password ?? "")).toBe(true);
    }
    expect(aws.calls((c) => c.status === 0 || c.status >= 400).length).toBeGreaterThan(0);
  });

  it("put no password, secret key or session token in logs, Events, status or messages", async () => {
    const secrets = secretsToLookFor();
    // The search is not vacuous: tokens, keys, a session token and STS sessions.
    expect(aws.issued().length).toBeGreaterThanOrEqual(6);
    expect(secrets.length).toBeGreaterThanOrEqual(20);
    const logs = op.logs.join("\n");
    expect(op.logs.length).toBeGreaterThan(50);
    expect(logs).toContain('"level":"debug"'); // debug lines were on
    const ours = new Set(["leaks-keys", "leaks-temp", "leaks-role", "leaks-opaque"]);
    const events = await k.core.listNamespacedEvent({ namespace: "default" });
    events.items = events.items.filter((e) => ours.has(e.involvedObject.name ?? ""));
    const eventText = JSON.stringify(
      events.items.map((e) => ({ reason: e.reason, message: e.message })),
    );
    expect(events.items.length).toBeGreaterThan(0);
    const statuses: string[] = [];
    for (const name of ["leaks-keys", "leaks-temp", "leaks-role", "leaks-opaque"]) {
      statuses.push(JSON.stringify((await getResource(k, name))?.status));
    }
    const statusText = statuses.join("\n");
    // The messages that say what went wrong are there (so they were checked).
    for (const reason of ["CredentialsInvalid", "TokenExpiredOnArrival", "SecretConflict"]) {
      expect(`${logs}\n${eventText}`).toContain(reason);
    }
    for (const s of secrets) {
      expect(logs.includes(s), "a secret in the logs").toBe(false);
      expect(eventText.includes(s), "a secret in Events").toBe(false);
      expect(statusText.includes(s), "a secret in status").toBe(false);
    }
  });
});
