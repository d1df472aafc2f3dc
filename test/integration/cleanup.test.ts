import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import {
  applyResource,
  auditWrites,
  deleteResource,
  getResource,
  mergePatch,
  readSecret,
  readyCondition,
  statusOf,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import {
  observed as observedNow,
  pullSecretsOf as pullSecretsIn,
  secretsOwnedBy,
  waitForOwnedSecrets,
  waitForPullSecrets as waitForPullSecretsIn,
  waitForResource,
} from "../harness/state.js";

const cp = inject("controlPlane");
const ACCOUNT = "121212121212";
const OPS = "cl-ops";
const ADDED = "ecrcreds.io/added-pull-secrets";

let k: TestKube;
let op: InProcessOperator;
let stack: Stack;
const started = Date.now();

const pullSecretsOf = (namespace: string, name: string) => pullSecretsIn(k, namespace, name);
const waitForPullSecrets = (namespace: string, sa: string, expected: string[]) =>
  waitForPullSecretsIn(k, namespace, sa, expected);
const secretsOf = (owner: string) => secretsOwnedBy(k, owner);
const waitForSecrets = (owner: string, expected: string[]) =>
  waitForOwnedSecrets(k, owner, expected);

/** Waits until the operator has reconciled the resource's current generation. */
async function observed(name: string, desired: number): Promise<ECRPullSecret> {
  return await waitForResource(
    k,
    name,
    `to report generation with ${desired} namespaces`,
    (r) =>
      observedNow(r) &&
      readyCondition(r)?.status === "True" &&
      readyCondition(r)?.observedGeneration === r.metadata?.generation &&
      r.status?.namespaces?.desired === desired,
  );
}

/** resourceVersion of each Secret, to show untouched ones stayed untouched. */
async function versions(refs: string[]): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const ref of refs) {
    const [namespace, name] = ref.split("/") as [string, string];
    out[ref] = (await readSecret(k, namespace, name))?.metadata?.resourceVersion;
  }
  return out;
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    identities: [iamUser("cleanup", 1, ACCOUNT, OPS)],
    tokenLifetimeMs: 30 * 60_000,
  });
  k = stack.k;
  stack.resources.push("cl-del", "cl-ret");
  op = await stack.startOperator();
  for (const [n, label] of [
    ["cl-d-1", "del"],
    ["cl-d-2", "del"],
    ["cl-r-1", "ret"],
    ["cl-r-2", "ret"],
  ] as const) {
    await stack.namespace(n, { cl: label });
    await k.core.createNamespacedServiceAccount({
      namespace: n,
      body: { metadata: { name: "builder" } },
    });
    await waitForDefaultServiceAccount(k, n);
    // Someone else's entry that must survive every cleanup.
    await k.core.patchNamespacedServiceAccount(
      { namespace: n, name: "default", body: { imagePullSecrets: [{ name: "keep-me" }] } },
      mergePatch,
    );
  }
});

afterAll(async () => {
  await stack?.stop();
});

/** applyResource, again on a 409: the operator writes status between our read and replace. */
async function apply(name: string, body: ECRPullSecret["spec"]): Promise<void> {
  await waitFor(`${name} applied`, async () => {
    try {
      await applyResource(k, name, body);
      return true;
    } catch (err) {
      if (statusOf(err) === 409) return undefined;
      throw err;
    }
  });
}

function spec(policy: "Delete" | "Retain", label: string, secretName: string, sas: string[]) {
  return {
    secretName,
    namespaceSelector: { matchLabels: { cl: label } },
    serviceAccounts: sas,
    deletionPolicy: policy,
    registries: [{ accountId: ACCOUNT }],
  };
}

describe("deletionPolicy: Delete", () => {
  const both = ["default", "builder"];

  it("starts with its Secrets and references in place", async () => {
    await apply("cl-del", spec("Delete", "del", "cl-del-pull", both));
    await waitForSecrets("cl-del", ["cl-d-1/cl-del-pull", "cl-d-2/cl-del-pull"]);
    for (const n of ["cl-d-1", "cl-d-2"]) {
      await waitForPullSecrets(n, "default", ["keep-me", "cl-del-pull"]);
      await waitForPullSecrets(n, "builder", ["cl-del-pull"]);
    }
  });

  it("removes them from a namespace that leaves the set, keeping others' entries", async () => {
    await k.core.patchNamespace(
      { name: "cl-d-2", body: { metadata: { labels: { cl: "gone" } } } },
      mergePatch,
    );
    await waitForSecrets("cl-del", ["cl-d-1/cl-del-pull"]);
    await waitForPullSecrets("cl-d-2", "default", ["keep-me"]);
    await waitForPullSecrets("cl-d-2", "builder", []);
    const sa = await k.core.readNamespacedServiceAccount({ namespace: "cl-d-2", name: "default" });
    expect(sa.metadata?.annotations?.[ADDED]).toBeUndefined();
  });

  it("removes the reference from a ServiceAccount that leaves the list", async () => {
    await apply("cl-del", spec("Delete", "del", "cl-del-pull", ["default"]));
    await waitForPullSecrets("cl-d-1", "builder", []);
    await observed("cl-del", 1);
    expect(await pullSecretsOf("cl-d-1", "default")).toEqual(["keep-me", "cl-del-pull"]);
  });

  it("replaces the Secret and the reference when secretName changes", async () => {
    await apply("cl-del", spec("Delete", "del", "cl-del-pull2", ["default"]));
    await waitForSecrets("cl-del", ["cl-d-1/cl-del-pull2"]);
    await waitForPullSecrets("cl-d-1", "default", ["keep-me", "cl-del-pull2"]);
    expect(await readSecret(k, "cl-d-1", "cl-del-pull")).toBeUndefined();
  });

  it("leaves no Secret with its owner label and no reference anywhere once deleted", async () => {
    // Back to everything, so the finalizer has several kinds of thing to clean.
    await k.core.patchNamespace(
      { name: "cl-d-2", body: { metadata: { labels: { cl: "del" } } } },
      mergePatch,
    );
    await apply("cl-del", spec("Delete", "del", "cl-del-pull2", both));
    await waitForSecrets("cl-del", ["cl-d-1/cl-del-pull2", "cl-d-2/cl-del-pull2"]);
    await waitForPullSecrets("cl-d-2", "builder", ["cl-del-pull2"]);

    await deleteResource(k, "cl-del");
    await waitFor("cl-del to be gone", async () =>
      (await getResource(k, "cl-del")) ? undefined : true,
    );
    expect(await secretsOf("cl-del")).toEqual([]);
    const sas = await k.core.listServiceAccountForAllNamespaces({});
    const leftovers = sas.items.filter(
      (sa) =>
        (sa.imagePullSecrets ?? []).some((r) => r.name?.startsWith("cl-del-pull")) ||
        (sa.metadata?.annotations?.[ADDED] ?? "").includes("cl-del/"),
    );
    expect(leftovers.map((sa) => `${sa.metadata?.namespace}/${sa.metadata?.name}`)).toEqual([]);
    for (const n of ["cl-d-1", "cl-d-2"]) {
      expect(await pullSecretsOf(n, "default")).toEqual(["keep-me"]);
      expect(await pullSecretsOf(n, "builder")).toEqual([]);
    }
  });
});

describe("deletionPolicy: Retain", () => {
  const both = ["default", "builder"];

  it("starts with its Secrets and references in place", async () => {
    await apply("cl-ret", spec("Retain", "ret", "cl-ret-pull", both));
    await waitForSecrets("cl-ret", ["cl-r-1/cl-ret-pull", "cl-r-2/cl-ret-pull"]);
    for (const n of ["cl-r-1", "cl-r-2"]) {
      await waitForPullSecrets(n, "default", ["keep-me", "cl-ret-pull"]);
      await waitForPullSecrets(n, "builder", ["cl-ret-pull"]);
    }
    await observed("cl-ret", 2);
  });

  it("keeps everything in a namespace that leaves the set", async () => {
    const before = await versions(["cl-r-2/cl-ret-pull"]);
    await k.core.patchNamespace(
      { name: "cl-r-2", body: { metadata: { labels: { cl: "gone" } } } },
      mergePatch,
    );
    await observed("cl-ret", 1);
    expect(await versions(["cl-r-2/cl-ret-pull"])).toEqual(before);
    expect(await pullSecretsOf("cl-r-2", "default")).toEqual(["keep-me", "cl-ret-pull"]);
    expect(await pullSecretsOf("cl-r-2", "builder")).toEqual(["cl-ret-pull"]);
  });

  it("keeps the reference on a ServiceAccount that leaves the list", async () => {
    await apply("cl-ret", spec("Retain", "ret", "cl-ret-pull", ["default"]));
    await observed("cl-ret", 1);
    expect(await pullSecretsOf("cl-r-1", "builder")).toEqual(["cl-ret-pull"]);
  });

  it("keeps the old Secret and reference when secretName changes", async () => {
    await apply("cl-ret", spec("Retain", "ret", "cl-ret-pull2", ["default"]));
    await waitForSecrets("cl-ret", [
      "cl-r-1/cl-ret-pull",
      "cl-r-1/cl-ret-pull2",
      "cl-r-2/cl-ret-pull",
    ]);
    await waitForPullSecrets("cl-r-1", "default", ["keep-me", "cl-ret-pull", "cl-ret-pull2"]);
    await observed("cl-ret", 1);
  });

  it("keeps every Secret and reference after the resource is deleted", async () => {
    const refs = ["cl-r-1/cl-ret-pull", "cl-r-1/cl-ret-pull2", "cl-r-2/cl-ret-pull"];
    const before = await versions(refs);
    await deleteResource(k, "cl-ret");
    await waitFor(
      "cl-ret to be gone, also from the operator's cache",
      async () =>
        !(await getResource(k, "cl-ret")) && !op.controller.resources.get(undefined, "cl-ret")
          ? true
          : undefined,
      { timeoutMs: 60_000 },
    ).catch(async (err: Error) => {
      // Say where it stuck: the API server's copy, the operator's, its log.
      const meta = (r: ECRPullSecret | undefined) =>
        JSON.stringify({
          resourceVersion: r?.metadata?.resourceVersion,
          deletionTimestamp: r?.metadata?.deletionTimestamp,
          finalizers: r?.metadata?.finalizers,
        });
      const logs = op.logs.filter((l) => l.includes("cl-ret") || l.includes("watch")).slice(-30);
      throw new Error(
        `${err.message}\nAPI server: ${meta(await getResource(k, "cl-ret"))}\noperator's cache: ${meta(op.controller.resources.get(undefined, "cl-ret"))}\noperator's last log lines about it or its watches:\n${logs.join("\n")}`,
      );
    });
    // A pass over the vanished resource, as its delete event causes.
    await op.controller.reconciler.reconcile("cl-ret");
    expect(await versions(refs)).toEqual(before);
    expect(await pullSecretsOf("cl-r-1", "default")).toEqual([
      "keep-me",
      "cl-ret-pull",
      "cl-ret-pull2",
    ]);
    expect(await pullSecretsOf("cl-r-1", "builder")).toEqual(["cl-ret-pull"]);
    expect(await pullSecretsOf("cl-r-2", "default")).toEqual(["keep-me", "cl-ret-pull"]);
    expect(await pullSecretsOf("cl-r-2", "builder")).toEqual(["cl-ret-pull"]);
    // Over the whole run the operator deleted nothing of cl-ret's.
    const deletes = await auditWrites(
      cp.auditLogPath,
      (e) =>
        e.user.username === stack.userOf("operator") &&
        e.verb === "delete" &&
        (e.objectRef?.namespace ?? "").startsWith("cl-r-"),
      started,
    );
    expect(deletes.map((d) => `${d.objectRef?.namespace}/${d.objectRef?.name}`)).toEqual([]);
  });
});
