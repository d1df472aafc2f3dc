// The core path end to end on a real API server: an ECRPullSecret becomes a
// dockerconfigjson Secret in every target namespace, merged into the default
// ServiceAccount, refreshed before expiry with one AWS call per refresh, and
// nothing is written when nothing changed.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  auditWrites,
  dockerConfigOf,
  getResource,
  mergePatch,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, eventReasons, readPassword, waitForReady } from "../harness/state.js";

const cp = inject("controlPlane");
const ACCOUNT = "111122223333";
const HOST = ecrHost(ACCOUNT);
const OPS = "core-ops";
const CORE = iamUser("core", 1, ACCOUNT, "core");
const REFRESH = iamUser("core", 2, ACCOUNT, "refresh");

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator;
const namespaces = ["core-a", "core-b", "core-g-1", "core-c", "core-r", "core-bad"];

const password = (ns: string, name = "ecr-pull") => readPassword(k, ns, name, HOST);

beforeAll(async () => {
  // The operator runs as its own ServiceAccount, so its writes can be told
  // apart from the test's in the audit log.
  stack = await startStack({ ops: OPS, namespaces, identities: [CORE, REFRESH] });
  ({ k, aws } = stack);
  stack.resources.push("core", "core-refresh", "core-bad");
  op = await stack.startOperator();
});

afterAll(async () => {
  await stack?.stop();
});

describe("core path", () => {
  it("writes a dockerconfigjson Secret with the issued password into every listed and globbed namespace", async () => {
    // A pull secret someone else put on the default ServiceAccount stays.
    await waitForDefaultServiceAccount(k, "core-a");
    await k.core.patchNamespacedServiceAccount(
      {
        namespace: "core-a",
        name: "default",
        body: { imagePullSecrets: [{ name: "other-registry" }] },
      },
      mergePatch,
    );
    await applyResource(k, "core", {
      secretName: "ecr-pull",
      namespaces: ["core-a", "core-b", "core-g-*"],
      registries: [{ accountId: ACCOUNT }],
    });

    const ready = await waitForReady(k, "core");
    const issued = aws.issued().filter((t) => t.principalArn.endsWith(":user/core"));
    expect(issued).toHaveLength(1);
    const token = issued[0]!;
    for (const ns of ["core-a", "core-b", "core-g-1"]) {
      const secret = await readSecret(k, ns, "ecr-pull");
      expect(secret?.type).toBe("kubernetes.io/dockerconfigjson");
      const auths = dockerConfigOf(secret!).auths;
      expect(Object.keys(auths)).toEqual([HOST]);
      expect(auths[HOST]?.username).toBe("AWS");
      expect(auths[HOST]?.password).toBe(token.password);
      expect(Buffer.from(auths[HOST]!.auth, "base64").toString()).toBe(`AWS:${token.password}`);
      expect(secret?.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe(
        "ecr-creds-refresher",
      );
    }
    expect(await readSecret(k, "core-c", "ecr-pull")).toBeUndefined();
    expect(ready.status?.tokenExpiresAt).toBe(token.expiresAt.toISOString());
    expect(ready.status?.namespaces).toMatchObject({ desired: 3, synced: 3, failed: 0 });
    expect(ready.status?.registries).toEqual([HOST]);
  });

  it("merges into the default ServiceAccount and a new Pod carries both pull secrets", async () => {
    const sa = await waitFor("core-a default SA to reference ecr-pull", async () => {
      const s = await k.core.readNamespacedServiceAccount({ namespace: "core-a", name: "default" });
      return s.imagePullSecrets?.some((r) => r.name === "ecr-pull") ? s : undefined;
    });
    expect(sa.imagePullSecrets?.map((r) => r.name)).toEqual(["other-registry", "ecr-pull"]);
    const pod = await k.core.createNamespacedPod({
      namespace: "core-a",
      body: {
        metadata: { name: "probe" },
        spec: { containers: [{ name: "app", image: `${HOST}/app:1` }] },
      },
    });
    // Filled in by the API server's ServiceAccount admission, as kubelet will see it.
    expect(pod.spec?.imagePullSecrets?.map((r) => r.name)).toEqual(["other-registry", "ecr-pull"]);
    const b = await waitFor("core-b default SA", async () => {
      const s = await k.core.readNamespacedServiceAccount({ namespace: "core-b", name: "default" });
      return s.imagePullSecrets?.length ? s : undefined;
    });
    expect(b.imagePullSecrets?.map((r) => r.name)).toEqual(["ecr-pull"]);
  });

  it("adds a namespace added to the list, and one created later that matches the glob", async () => {
    await applyResource(k, "core", {
      secretName: "ecr-pull",
      namespaces: ["core-a", "core-b", "core-g-*", "core-c"],
      registries: [{ accountId: ACCOUNT }],
    });
    const first = await password("core-a");
    await waitFor("Secret in core-c", () => password("core-c"));
    expect(await password("core-c")).toBe(first);

    const created = Date.now();
    await stack.namespace("core-g-2");
    await waitFor("Secret in core-g-2", () => password("core-g-2"));
    const sa = await waitFor("core-g-2 default SA referencing ecr-pull", async () => {
      try {
        const s = await k.core.readNamespacedServiceAccount({
          namespace: "core-g-2",
          name: "default",
        });
        return s.imagePullSecrets?.some((r) => r.name === "ecr-pull") ? s : undefined;
      } catch {
        return undefined;
      }
    });
    expect(sa.imagePullSecrets?.map((r) => r.name)).toEqual(["ecr-pull"]);
    expect(await password("core-g-2")).toBe(first);
    console.log(`new namespace served in ${Date.now() - created} ms`);
    // The cached token served the new namespaces: still one fetch for this source.
    expect(aws.issued().filter((t) => t.principalArn.endsWith(":user/core"))).toHaveLength(1);
  });
});

describe("core path: steady state", () => {
  it("issues no writes when reconciling an unchanged world", async () => {
    await waitFor("core status to count 5 namespaces", async () => {
      const r = await getResource(k, "core");
      return r?.status?.namespaces?.synced === 5 ? true : undefined;
    });
    await op.stop();
    const since = Date.now();
    // A fresh operator re-reads the whole world and reconciles every resource.
    op = await stack.startOperator();
    await waitFor("a full pass of the fresh operator", async () => {
      const passes = (await op.metrics.reconcileDuration.get()).values.find(
        (v) => v.metricName?.endsWith("_count") && v.labels.result === "success",
      );
      return (passes?.value ?? 0) >= 1 && op.controller.queue.length === 0 ? true : undefined;
    });
    // And one more pass on demand, through the queue.
    op.controller.queue.add("core");
    await waitFor("the requested pass", async () => {
      const passes = (await op.metrics.reconcileDuration.get()).values.find(
        (v) => v.metricName?.endsWith("_count") && v.labels.result === "success",
      );
      return (passes?.value ?? 0) >= 2 ? true : undefined;
    });
    const writes = await auditWrites(
      cp.auditLogPath,
      (e) => e.user.username === stack.userOf("operator"),
      since,
    );
    expect(
      writes.map(
        (w) =>
          `${w.verb} ${w.objectRef?.resource}/${w.objectRef?.subresource ?? ""} ${w.objectRef?.namespace ?? ""}/${w.objectRef?.name}`,
      ),
    ).toEqual([]);
    // The audit log does see this identity's writes: the check above could fail.
    const earlier = await auditWrites(
      cp.auditLogPath,
      (e) => e.user.username === stack.userOf("operator"),
    );
    expect(earlier.length).toBeGreaterThan(0);
  });

  it("refreshes before expiry with one AWS call per refresh, however many namespaces", async () => {
    await stack.putKeys("refresh-creds", REFRESH);
    aws.tokenLifetimeMs = 4_000;
    const since = Date.now();
    await applyResource(k, "core-refresh", {
      secretName: "ecr-refresh",
      namespaces: ["core-*"],
      excludeNamespaces: ["core-bad", "core-ops"],
      credentials: { secretRef: { name: "refresh-creds", namespace: OPS } },
      registries: [{ accountId: ACCOUNT }],
    });
    const targets = ["core-a", "core-b", "core-c", "core-g-1", "core-g-2", "core-r"];
    const seen = new Map<string, Set<string>>(targets.map((ns) => [ns, new Set()]));
    // Each Secret sees several tokens, none of them ever expired while in place.
    await consistently(
      "every Secret on an unexpired token while the tokens refresh",
      async () => {
        for (const ns of targets) {
          const pw = await password(ns, "ecr-refresh");
          if (!pw) continue;
          seen.get(ns)?.add(pw);
          if (!aws.isValidPassword(pw)) return `${ns} holds an expired token`;
        }
        return true;
      },
      { forMs: 12_000, intervalMs: 200 },
    );
    aws.tokenLifetimeMs = 10 * 60_000;
    const calls = aws.calls(
      (c) => c.service === "ecr" && c.accessKeyId === REFRESH.accessKeyId && c.time >= since,
    );
    const tokens = aws.issued().filter((t) => t.principalArn.endsWith(":user/refresh"));
    for (const ns of targets) expect(seen.get(ns)?.size ?? 0).toBeGreaterThanOrEqual(3);
    // One GetAuthorizationToken per refresh for six namespaces.
    expect(calls.length).toBe(tokens.length);
    expect(tokens.length).toBeLessThanOrEqual(9);
    for (const ns of targets) {
      for (const pw of seen.get(ns) ?? []) expect(tokens.some((t) => t.password === pw)).toBe(true);
    }
  });
});

describe("core path: refused keys", () => {
  it("writes no Secret when AWS refuses the keys, and says so in Ready", async () => {
    await stack.putKeys("bad-creds", {
      accessKeyId: "AKIAUNKNOWN000000000",
      secretAccessKey: "not-a-key-the-double-knows-000000000000",
    });
    await applyResource(k, "core-bad", {
      secretName: "ecr-bad",
      namespaces: ["core-bad"],
      credentials: { secretRef: { name: "bad-creds", namespace: OPS } },
      registries: [{ accountId: ACCOUNT }],
    });
    const r = await waitFor("core-bad to report its condition", async () => {
      const res = await getResource(k, "core-bad");
      return readyCondition(res)?.status === "False" ? res : undefined;
    });
    const ready = readyCondition(r);
    expect(ready?.reason).toBe("CredentialsInvalid");
    expect(ready?.message).toContain("refused");
    expect(ready?.message).toContain(`Secret ${OPS}/bad-creds`);
    expect(await readSecret(k, "core-bad", "ecr-bad")).toBeUndefined();
    expect(await eventReasons(k, "core-bad")).toContain("CredentialsInvalid");
  });
});
