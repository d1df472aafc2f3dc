// The core path end to end on a real API server: an ECRPullSecret becomes a
// dockerconfigjson Secret in every target namespace, merged into the default
// ServiceAccount, refreshed before expiry with one AWS call per refresh, and
// nothing is written when nothing changed.
import { mkdtemp } from "node:fs/promises";
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
  dockerConfigOf,
  getResource,
  kubeconfigForServiceAccount,
  mergePatch,
  putAwsKeys,
  readSecret,
  readyCondition,
  type TestKube,
  testKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { type InProcessOperator, startOperator, testConfig } from "../harness/operator.js";

const cp = inject("controlPlane");
const ACCOUNT = "111122223333";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OPS = "core-ops";
const OPERATOR_USER = `system:serviceaccount:${OPS}:operator`;

let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator;
let operatorKubeconfig: string;
const namespaces = ["core-a", "core-b", "core-g-1", "core-c", "core-r", "core-bad"];

async function putKeys(name: string, accessKeyId: string, secretAccessKey: string): Promise<void> {
  await putAwsKeys(k, OPS, name, { accessKeyId, secretAccessKey });
}

function passwordIn(
  secret: Awaited<ReturnType<typeof readSecret>>,
  host = HOST,
): string | undefined {
  if (!secret) return undefined;
  return dockerConfigOf(secret).auths[host]?.password;
}

beforeAll(async () => {
  k = testKube(cp.kubeconfigPath);
  aws = new AwsDouble({ tokenLifetimeMs: 10 * 60_000 });
  await aws.start();
  aws.addIdentity({
    accessKeyId: "AKIACORE000000000001",
    secretAccessKey: "core-secret-key-0000000000000000000000001",
    accountId: ACCOUNT,
    arn: `arn:aws:iam::${ACCOUNT}:user/core`,
  });
  aws.addIdentity({
    accessKeyId: "AKIACORE000000000002",
    secretAccessKey: "core-secret-key-0000000000000000000000002",
    accountId: ACCOUNT,
    arn: `arn:aws:iam::${ACCOUNT}:user/refresh`,
  });
  // The operator reaches AWS only through the SDK's standard endpoint setting.
  process.env.AWS_ENDPOINT_URL = aws.url;
  await createNamespace(k, OPS);
  await Promise.all(namespaces.map((ns) => createNamespace(k, ns)));
  await putKeys("aws-creds", "AKIACORE000000000001", "core-secret-key-0000000000000000000000001");
  // The operator runs as its own ServiceAccount, so its writes can be told
  // apart from the test's in the audit log.
  const dir = await mkdtemp(join(tmpdir(), "core-test-"));
  operatorKubeconfig = await kubeconfigForServiceAccount(k, OPS, "operator", dir);
  await bindClusterAdmin(k, "core-operator", OPS, ["operator"]);
  op = await startOperator(
    testConfig(operatorKubeconfig, {
      region: "us-east-1",
      credentialsSecretName: "aws-creds",
      credentialsSecretNamespace: OPS,
    }),
  );
});

afterAll(async () => {
  await op?.stop();
  for (const name of ["core", "core-refresh", "core-bad"]) await deleteResource(k, name);
  await deleteNamespaces(k, [...namespaces, "core-g-2", OPS]);
  await k.rbac.deleteClusterRoleBinding({ name: "core-operator" }).catch(() => undefined);
  await aws?.close();
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

    const ready = await waitFor("core to be Ready", async () => {
      const r = await getResource(k, "core");
      return readyCondition(r)?.status === "True" ? r : undefined;
    });
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
    const password = passwordIn(await readSecret(k, "core-a", "ecr-pull"));
    await waitFor("Secret in core-c", async () =>
      passwordIn(await readSecret(k, "core-c", "ecr-pull")),
    );
    expect(passwordIn(await readSecret(k, "core-c", "ecr-pull"))).toBe(password);

    const created = Date.now();
    await createNamespace(k, "core-g-2");
    await waitFor("Secret in core-g-2", async () =>
      passwordIn(await readSecret(k, "core-g-2", "ecr-pull")),
    );
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
    expect(passwordIn(await readSecret(k, "core-g-2", "ecr-pull"))).toBe(password);
    console.log(`new namespace served in ${Date.now() - created} ms`);
    // The cached token served the new namespaces: still one fetch for this source.
    expect(aws.issued().filter((t) => t.principalArn.endsWith(":user/core"))).toHaveLength(1);
  });

  it("issues no writes when reconciling an unchanged world", async () => {
    await waitFor("core status to count 5 namespaces", async () => {
      const r = await getResource(k, "core");
      return r?.status?.namespaces?.synced === 5 ? true : undefined;
    });
    await op.stop();
    const since = Date.now();
    // A fresh operator re-reads the whole world and reconciles every resource.
    op = await startOperator(op.config);
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
      (e) => e.user.username === OPERATOR_USER,
      since,
    );
    expect(
      writes.map(
        (w) =>
          `${w.verb} ${w.objectRef?.resource}/${w.objectRef?.subresource ?? ""} ${w.objectRef?.namespace ?? ""}/${w.objectRef?.name}`,
      ),
    ).toEqual([]);
    // The audit log does see this identity's writes: the check above could fail.
    const earlier = await auditWrites(cp.auditLogPath, (e) => e.user.username === OPERATOR_USER);
    expect(earlier.length).toBeGreaterThan(0);
  });

  it("refreshes before expiry with one AWS call per refresh, however many namespaces", async () => {
    await putKeys(
      "refresh-creds",
      "AKIACORE000000000002",
      "core-secret-key-0000000000000000000000002",
    );
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
    let stale = 0;
    const deadline = Date.now() + 12_000;
    while (Date.now() < deadline) {
      for (const ns of targets) {
        const pw = passwordIn(await readSecret(k, ns, "ecr-refresh"));
        if (!pw) continue;
        seen.get(ns)?.add(pw);
        if (!aws.isValidPassword(pw)) stale++;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    aws.tokenLifetimeMs = 10 * 60_000;
    const calls = aws.calls(
      (c) => c.service === "ecr" && c.accessKeyId === "AKIACORE000000000002" && c.time >= since,
    );
    const tokens = aws.issued().filter((t) => t.principalArn.endsWith(":user/refresh"));
    // Each Secret saw several tokens, none of them ever expired while in place.
    for (const ns of targets) expect(seen.get(ns)?.size ?? 0).toBeGreaterThanOrEqual(3);
    expect(stale).toBe(0);
    // One GetAuthorizationToken per refresh for six namespaces.
    expect(calls.length).toBe(tokens.length);
    expect(tokens.length).toBeLessThanOrEqual(9);
    for (const ns of targets) {
      for (const pw of seen.get(ns) ?? []) expect(tokens.some((t) => t.password === pw)).toBe(true);
    }
  });

  it("writes no Secret when AWS refuses the keys, and says so in Ready", async () => {
    await putKeys("bad-creds", "AKIAUNKNOWN000000000", "not-a-key-the-double-knows-000000000000");
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
    const events = await k.core.listNamespacedEvent({
      namespace: "default",
      fieldSelector: "involvedObject.name=core-bad",
    });
    expect(events.items.map((e) => e.reason)).toContain("CredentialsInvalid");
  });
});
