import { createHash } from "node:crypto";
import type { V1Secret } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { pool } from "../../src/reconcile/pool.js";
import type { AwsDouble } from "../aws-double/index.js";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  auditWrites,
  getResource,
  mergePatch,
  readSecret,
  readyCondition,
  secretSnapshot,
  statusOf,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import {
  ecrHost,
  MANAGED_BY,
  OWNER_LABEL,
  passwordIn as passwordFor,
  pullSecretsOf as pullSecretsIn,
  waitForReason,
} from "../harness/state.js";

const cp = inject("controlPlane");
const ACCOUNT = "777788889999";
const HOST = ecrHost(ACCOUNT);
const OPS = "own-ops";
const registries = [{ accountId: ACCOUNT }];

let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator;
let stack: Stack;
const resources = [
  "own-race",
  "own-conflict",
  "own-opaque",
  "own-one",
  "own-two",
  "own-heal",
  "own-bulk",
  "own-share",
];

const ns = (name: string) => stack.namespace(name);
const pullSecretsOf = (namespace: string, name: string) => pullSecretsIn(k, namespace, name);
const passwordIn = (secret: V1Secret | undefined) => passwordFor(secret, HOST);

function currentPassword(): string {
  const issued = aws.issued();
  return issued[issued.length - 1]?.password ?? "";
}

const condition = (name: string, reason: string) => waitForReason(k, name, reason);

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    identities: [iamUser("owners", 1, ACCOUNT, OPS)],
    tokenLifetimeMs: 30 * 60_000,
  });
  ({ k, aws } = stack);
  stack.resources.push(...resources);
  op = await stack.startOperator();
});

afterAll(async () => {
  await stack?.stop();
});

describe("merging into ServiceAccounts", () => {
  it("loses none of a concurrent writer's entries on 50 ServiceAccounts, and adds ours once", async () => {
    await ns("own-race");
    const accounts = Array.from({ length: 50 }, (_, i) => `sa-${i}`);
    await pool(accounts, 10, async (name) => {
      await k.core.createNamespacedServiceAccount({
        namespace: "own-race",
        body: { metadata: { name }, imagePullSecrets: [{ name: "theirs-base" }] },
      });
    });

    // The second client: read-modify-write with resourceVersion, as a
    // careful tool would; each round adds its entry r and drops r-2.
    let conflicts = 0;
    let round = 0;
    let stop = false;
    const sawOurs = new Set<string>();
    const edit = async (name: string, r: number) => {
      for (;;) {
        const sa = await k.core.readNamespacedServiceAccount({ namespace: "own-race", name });
        const list = (sa.imagePullSecrets ?? []).filter((e) => e.name !== `theirs-${r - 2}`);
        if (list.some((e) => e.name === "own-race-pull")) sawOurs.add(name);
        list.push({ name: `theirs-${r}` });
        try {
          await k.core.replaceNamespacedServiceAccount({
            namespace: "own-race",
            name,
            body: { ...sa, imagePullSecrets: list },
          });
          return;
        } catch (err) {
          if (statusOf(err) !== 409) throw err;
          conflicts++;
        }
      }
    };
    const since = Date.now();
    const writer = (async () => {
      // Keep going until the operator has reached every ServiceAccount, then two more rounds.
      let extra = 2;
      while (!stop) {
        await pool(accounts, 10, (name) => edit(name, round));
        round++;
        if (round === 1) {
          await applyResource(k, "own-race", {
            secretName: "own-race-pull",
            namespaces: ["own-race"],
            serviceAccounts: ["*"],
            registries,
          });
        }
        if (sawOurs.size === accounts.length && --extra < 0) stop = true;
        if (round > 60) throw new Error("the operator never reached every ServiceAccount");
      }
    })();
    await writer;
    const last = round - 1;

    await waitFor("every ServiceAccount to hold ours and the writer's last entries", async () => {
      const list = await k.core.listNamespacedServiceAccount({ namespace: "own-race" });
      const ok = accounts.every((name) => {
        const sa = list.items.find((s) => s.metadata?.name === name);
        const names = (sa?.imagePullSecrets ?? []).map((e) => e.name);
        return names.filter((n) => n === "own-race-pull").length === 1;
      });
      return ok ? list : undefined;
    });
    const list = await k.core.listNamespacedServiceAccount({ namespace: "own-race" });
    for (const name of accounts) {
      const sa = list.items.find((s) => s.metadata?.name === name);
      const names = (sa?.imagePullSecrets ?? []).map((e) => e.name ?? "");
      expect(
        names.filter((n) => n === "own-race-pull"),
        name,
      ).toHaveLength(1);
      // Exactly what the writer left, in its order.
      expect(
        names.filter((n) => n !== "own-race-pull"),
        name,
      ).toEqual(["theirs-base", `theirs-${last - 1}`, `theirs-${last}`]);
      expect(sa?.metadata?.annotations?.["ecrcreds.io/added-pull-secrets"]).toBe(
        "own-race/own-race-pull",
      );
    }
    const operatorPatches = await auditWrites(
      cp.auditLogPath,
      (e) =>
        e.user.username === stack.userOf("operator") &&
        e.objectRef?.resource === "serviceaccounts" &&
        e.objectRef.namespace === "own-race",
      since,
    );
    const operatorConflicts = operatorPatches.filter((e) => e.responseStatus?.code === 409).length;
    console.log(
      `race: ${round} writer rounds over 50 ServiceAccounts; writer conflicts ${conflicts}, operator patches ${operatorPatches.length} (${operatorConflicts} refused with 409 and redone)`,
    );
    // The two really raced: someone's write was refused at least once.
    expect(conflicts + operatorConflicts).toBeGreaterThan(0);
  });
});

describe("Secrets it did not create", () => {
  it("leaves an unmanaged Secret byte-for-byte and reports SecretConflict with an Event", async () => {
    await ns("own-a");
    await waitForDefaultServiceAccount(k, "own-a");
    const theirs = await k.core.createNamespacedSecret({
      namespace: "own-a",
      body: {
        metadata: { name: "own-pull", labels: { app: "seed" }, annotations: { note: "theirs" } },
        type: "kubernetes.io/dockerconfigjson",
        stringData: {
          ".dockerconfigjson": JSON.stringify({
            auths: { [HOST]: { username: "AWS", password: "seed-password" } },
          }),
        },
      },
    });
    await applyResource(k, "own-conflict", {
      secretName: "own-pull",
      namespaces: ["own-a"],
      registries,
    });
    const r = await condition("own-conflict", "SecretConflict");
    expect(readyCondition(r)?.status).toBe("False");
    expect(r.status?.failures).toEqual([
      expect.objectContaining({ namespace: "own-a", reason: "SecretConflict" }),
    ]);
    expect(r.status?.failures?.[0]?.message).toContain("not created by this operator");
    const events = await waitFor("a SecretConflict Event", async () => {
      const list = await k.core.listNamespacedEvent({
        namespace: "default",
        fieldSelector: "involvedObject.name=own-conflict",
      });
      return list.items.some((e) => e.reason === "SecretConflict") ? list : undefined;
    });
    expect(events.items.find((e) => e.reason === "SecretConflict")?.type).toBe("Warning");
    expect(secretSnapshot(await readSecret(k, "own-a", "own-pull"))).toEqual(
      secretSnapshot(theirs),
    );
    expect(await pullSecretsOf("own-a", "default")).toEqual([]);
    // Not in the operator's cache either: it is not labelled as ours.
    expect(op.controller.secrets.get("own-a", "own-pull")).toBeUndefined();
  });

  it("takes it over with adoptExisting: true", async () => {
    await applyResource(k, "own-conflict", {
      secretName: "own-pull",
      namespaces: ["own-a"],
      registries,
      adoptExisting: true,
    });
    await condition("own-conflict", "Synced");
    const secret = await readSecret(k, "own-a", "own-pull");
    expect(passwordIn(secret)).toBe(currentPassword());
    expect(secret?.metadata?.labels).toEqual({
      app: "seed",
      [MANAGED_BY]: "ecr-creds-refresher",
      [OWNER_LABEL]: "own-conflict",
    });
    expect(secret?.metadata?.annotations?.note).toBe("theirs");
    expect(await pullSecretsOf("own-a", "default")).toEqual(["own-pull"]);
  });

  it("refuses to adopt a Secret that is not of type dockerconfigjson", async () => {
    await ns("own-b");
    const opaque = await k.core.createNamespacedSecret({
      namespace: "own-b",
      body: { metadata: { name: "own-opaque-pull" }, stringData: { token: "keep-me" } },
    });
    await applyResource(k, "own-opaque", {
      secretName: "own-opaque-pull",
      namespaces: ["own-b"],
      registries,
      adoptExisting: true,
    });
    const r = await condition("own-opaque", "SecretConflict");
    expect(r.status?.failures?.[0]?.message).toContain("adoptExisting only takes over");
    expect(secretSnapshot(await readSecret(k, "own-b", "own-opaque-pull"))).toEqual(
      secretSnapshot(opaque),
    );
  });
});

describe("two resources on one Secret name", () => {
  it("settle on one owner and stay there for 30 seconds without a write", async () => {
    await ns("own-duel");
    await waitForDefaultServiceAccount(k, "own-duel");
    const spec = { secretName: "own-duel-pull", namespaces: ["own-duel"], registries };
    await Promise.all([applyResource(k, "own-one", spec), applyResource(k, "own-two", spec)]);
    const settled = await waitFor("one Ready, the other in conflict", async () => {
      const [one, two] = await Promise.all([getResource(k, "own-one"), getResource(k, "own-two")]);
      const reasons = [readyCondition(one)?.reason, readyCondition(two)?.reason].sort();
      return reasons[0] === "SecretConflict" && reasons[1] === "Synced" ? { one, two } : undefined;
    });
    const winner = readyCondition(settled.one)?.reason === "Synced" ? "own-one" : "own-two";
    const loser = winner === "own-one" ? "own-two" : "own-one";
    const secret = await readSecret(k, "own-duel", "own-duel-pull");
    expect(secret?.metadata?.labels?.[OWNER_LABEL]).toBe(winner);
    await waitFor("the winner's reference on default", async () =>
      (await pullSecretsOf("own-duel", "default"))?.includes("own-duel-pull") ? true : undefined,
    );
    const loserStatus = await getResource(k, loser);
    expect(loserStatus?.status?.failures?.[0]?.message).toContain(
      `belongs to ECRPullSecret ${winner}`,
    );

    // The observation window is the point of this test, not a settling wait.
    const since = Date.now();
    const settledAs = `${winner}@${secret?.metadata?.resourceVersion}`;
    await consistently(
      "the Secret the winner's, unwritten",
      async () => {
        const s = await readSecret(k, "own-duel", "own-duel-pull");
        const now = `${s?.metadata?.labels?.[OWNER_LABEL]}@${s?.metadata?.resourceVersion}`;
        return now === settledAs ? true : `${now}, not ${settledAs}`;
      },
      { forMs: 30_000, intervalMs: 1000 },
    );
    const writes = await auditWrites(
      cp.auditLogPath,
      (e) =>
        e.user.username === stack.userOf("operator") &&
        (e.objectRef?.namespace === "own-duel" ||
          e.objectRef?.name === "own-one" ||
          e.objectRef?.name === "own-two"),
      since,
    );
    console.log(
      `two resources on one Secret: winner ${winner}; operator writes in 30 s: ${writes.length}`,
    );
    expect(writes.map((w) => `${w.verb} ${w.objectRef?.resource}/${w.objectRef?.name}`)).toEqual(
      [],
    );
    expect(readyCondition(await getResource(k, winner))?.reason).toBe("Synced");
    expect(readyCondition(await getResource(k, loser))?.reason).toBe("SecretConflict");
    expect(await pullSecretsOf("own-duel", "default")).toEqual(["own-duel-pull"]);
  });
});

describe("self-healing", () => {
  it("restores a managed Secret edited or deleted by hand, and a removed reference", async () => {
    await ns("own-h");
    await waitForDefaultServiceAccount(k, "own-h");
    await applyResource(k, "own-heal", {
      secretName: "own-heal-pull",
      namespaces: ["own-h"],
      registries,
    });
    await condition("own-heal", "Synced");
    const password = currentPassword();
    expect(passwordIn(await readSecret(k, "own-h", "own-heal-pull"))).toBe(password);

    await k.core.patchNamespacedSecret(
      {
        namespace: "own-h",
        name: "own-heal-pull",
        body: { data: { ".dockerconfigjson": Buffer.from('{"auths":{}}').toString("base64") } },
      },
      mergePatch,
    );
    await waitFor("the edited Secret restored", async () =>
      passwordIn(await readSecret(k, "own-h", "own-heal-pull")) === password ? true : undefined,
    );

    const before = await readSecret(k, "own-h", "own-heal-pull");
    await k.core.deleteNamespacedSecret({ namespace: "own-h", name: "own-heal-pull" });
    const again = await waitFor("the deleted Secret recreated", async () => {
      const s = await readSecret(k, "own-h", "own-heal-pull");
      return s && s.metadata?.uid !== before?.metadata?.uid ? s : undefined;
    });
    expect(passwordIn(again)).toBe(password);
    expect(again.metadata?.labels?.[OWNER_LABEL]).toBe("own-heal");

    await waitFor("the reference on default", async () =>
      (await pullSecretsOf("own-h", "default"))?.includes("own-heal-pull") ? true : undefined,
    );
    await k.core.patchNamespacedServiceAccount(
      { namespace: "own-h", name: "default", body: { imagePullSecrets: [{ name: "mine" }] } },
      mergePatch,
    );
    await waitFor("the removed reference restored", async () => {
      const names = await pullSecretsOf("own-h", "default");
      return names?.join() === "mine,own-heal-pull" ? true : undefined;
    });
  });
});

describe("what it caches", () => {
  it("holds none of 2,000 unrelated Secrets in its informer cache", async () => {
    await ns("own-bulk-junk");
    await ns("own-bulk");
    const junk = Array.from({ length: 2000 }, (_, i) => `junk-${i}`);
    await pool(junk, 32, async (name) => {
      await k.core.createNamespacedSecret({
        namespace: "own-bulk-junk",
        body: { metadata: { name, labels: { app: "junk" } }, stringData: { v: name } },
      });
    });
    // A managed Secret written after the junk: the watch is live and has
    // delivered everything up to here.
    await applyResource(k, "own-bulk", {
      secretName: "own-bulk-pull",
      namespaces: ["own-bulk"],
      registries,
    });
    await condition("own-bulk", "Synced");
    await waitFor("the operator's cache to hold own-bulk's Secret", () =>
      op.controller.secrets.get("own-bulk", "own-bulk-pull") ? true : undefined,
    );
    const all = await k.core.listSecretForAllNamespaces({});
    const managed = await k.core.listSecretForAllNamespaces({
      labelSelector: `${MANAGED_BY}=ecr-creds-refresher`,
    });
    const cached = op.controller.secrets.list();
    console.log(
      `cluster Secrets: ${all.items.length}; managed: ${managed.items.length}; in the operator's Secret cache: ${op.controller.secrets.size}`,
    );
    expect(all.items.length).toBeGreaterThan(2000);
    expect(cached.filter((s) => s.metadata?.namespace === "own-bulk-junk")).toEqual([]);
    expect(cached.every((s) => s.metadata?.labels?.[MANAGED_BY] === "ecr-creds-refresher")).toBe(
      true,
    );
    // Exactly the managed ones (compared until both agree: other files'
    // namespaces may still be terminating while this runs).
    const key = (s: { metadata?: { namespace?: string; name?: string } }) =>
      `${s.metadata?.namespace}/${s.metadata?.name}`;
    await waitFor("the cache to equal the managed Secrets", async () => {
      const fresh = await k.core.listSecretForAllNamespaces({
        labelSelector: `${MANAGED_BY}=ecr-creds-refresher`,
      });
      const want = fresh.items.map(key).sort();
      const got = op.controller.secrets.list().map(key).sort();
      return want.join() === got.join() && want.length > 0 ? true : undefined;
    });
  });

  it("keeps no Secret's data, only a digest of each value, one string however many namespaces hold it", async () => {
    const spread = ["own-share-a", "own-share-b", "own-share-c"];
    for (const n of spread) await ns(n);
    await applyResource(k, "own-share", {
      secretName: "own-share-pull",
      namespaces: spread,
      registries,
    });
    await condition("own-share", "Synced");
    const cached = await waitFor("the three Secrets in the operator's cache", () => {
      const found = spread.map((n) => op.controller.secrets.get(n, "own-share-pull"));
      return found.every(Boolean) ? found : undefined;
    });
    const server = await readSecret(k, "own-share-a", "own-share-pull");
    const value = server?.data?.[".dockerconfigjson"] ?? "";
    expect(value).toBeTruthy();
    // Anyone may write a Secret with our labels: the cache never holds a payload.
    expect(cached.map((s) => s?.data)).toEqual([undefined, undefined, undefined]);
    const digest = `sha256:${createHash("sha256").update(value).digest("hex")}`;
    expect(cached.map((s) => s?.dataDigests?.[".dockerconfigjson"])).toEqual([
      digest,
      digest,
      digest,
    ]);
  });
});
