// Cleanup while something still uses it (issue 29 kind 4), on the real
// control plane: a Secret that cleanup would remove under deletionPolicy:
// Delete (an old spec.secretName, a namespace that left the targets) stays,
// and keeps being refreshed, while a Pod in its namespace names it in
// spec.imagePullSecrets; status.keptSecrets says which and why; once no Pod
// names it, it goes. The Pods are created by the namespace's tenant (a
// ServiceAccount bound to `admin` there only), as a team's workload would be.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  getResource,
  mergePatch,
  readSecret,
  statusOf,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, passwordIn, pullSecretsOf, waitForPullSecrets } from "../harness/state.js";
import { type Tenant, tenantOf } from "../harness/tenant.js";

const ACCOUNT = "292929292929";
const HOST = ecrHost(ACCOUNT);
const OPS = "fc-ops";
const registries = [{ accountId: ACCOUNT }];

let k: TestKube;
let aws: AwsDouble;
let stack: Stack;

function latestPassword(): string {
  const issued = aws.issued();
  return issued[issued.length - 1]?.password ?? "";
}

/** A Pod that names `secret` in its own imagePullSecrets (no scheduler here: it stays Pending). */
async function podNaming(tenant: Tenant, name: string, secret: string): Promise<void> {
  await tenant.kube.core.createNamespacedPod({
    namespace: tenant.namespace,
    body: {
      metadata: { name },
      spec: {
        imagePullSecrets: [{ name: secret }],
        containers: [{ name: "app", image: "registry.example.com/app:1" }],
      },
    },
  });
}

async function deletePod(tenant: Tenant, name: string): Promise<void> {
  await tenant.kube.core.deleteNamespacedPod({
    namespace: tenant.namespace,
    name,
    gracePeriodSeconds: 0,
  });
  await waitFor(`Pod ${name} gone`, async () => {
    try {
      await k.core.readNamespacedPod({ namespace: tenant.namespace, name });
      return undefined;
    } catch (err) {
      if (statusOf(err) === 404) return true;
      throw err;
    }
  });
}

/** status.keptSecrets of a resource, as `namespace/name (pods)`. */
async function kept(name: string): Promise<string[]> {
  const r = await getResource(k, name);
  return (r?.status?.keptSecrets ?? []).map((s) => `${s.namespace}/${s.name} (${s.pods})`);
}

/**
 * Waits for the Secret to hold a token issued after `since` (a refresh
 * happened while it was kept), equal to the newest the AWS double issued.
 */
async function refreshedSince(namespace: string, name: string, since: number): Promise<string> {
  return await waitFor(
    `${namespace}/${name} to be refreshed while kept`,
    async () => {
      const pw = passwordIn(await readSecret(k, namespace, name), HOST);
      const issued = aws.issued();
      const newer = issued.filter((t) => t.issuedAt >= since).map((t) => t.password);
      return pw && newer.includes(pw) && pw === latestPassword() ? pw : undefined;
    },
    { timeoutMs: 45_000 },
  );
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    identities: [iamUser("fieldcleanup", 1, ACCOUNT, OPS)],
    // Short tokens: a kept Secret is seen being refreshed within the test.
    tokenLifetimeMs: 12_000,
  });
  ({ k, aws } = stack);
  stack.resources.push("fc-rename", "fc-leave");
  await stack.startOperator();
});

afterAll(async () => {
  await stack?.stop();
});

describe("a Secret a Pod still names is kept, refreshed, and removed once no Pod names it", () => {
  it("after spec.secretName changes", async () => {
    const NS = "fc-rename";
    await stack.namespace(NS);
    await waitForDefaultServiceAccount(k, NS);
    const tenant = await tenantOf(k, NS);
    await applyResource(k, "fc-rename", { secretName: "fc-old", namespaces: [NS], registries });
    await waitForPullSecrets(k, NS, "default", ["fc-old"]);
    await podNaming(tenant, "web", "fc-old");

    await applyResource(k, "fc-rename", { secretName: "fc-new", namespaces: [NS], registries });
    await waitForPullSecrets(k, NS, "default", ["fc-new"]);
    await waitFor("status to say fc-old is kept", async () =>
      (await kept("fc-rename")).join() === `${NS}/fc-old (1)` ? true : undefined,
    );
    const status = (await getResource(k, "fc-rename"))?.status;
    expect(status?.keptSecrets).toEqual([
      {
        namespace: NS,
        name: "fc-old",
        pods: 1,
        message:
          "kept and refreshed while Pods name it in imagePullSecrets (web); removed once none does",
      },
    ]);
    const said = `Secret ${NS}/fc-old is no longer wanted, but Pods there still name it in imagePullSecrets (web): kept and refreshed until none does`;
    await waitFor("a SecretKeptInUse Event saying why", async () => {
      const events = await k.core.listNamespacedEvent({
        namespace: "default",
        fieldSelector: "involvedObject.name=fc-rename,reason=SecretKeptInUse",
      });
      return events.items.some((e) => e.message === said && e.type === "Normal") ? true : undefined;
    });
    const since = Date.now();
    const pw = await refreshedSince(NS, "fc-old", since);
    expect(passwordIn(await readSecret(k, NS, "fc-new"), HOST)).toBe(pw);
    expect(aws.isValidPassword(pw)).toBe(true);

    await deletePod(tenant, "web");
    await waitFor("fc-old removed", async () =>
      (await readSecret(k, NS, "fc-old")) ? undefined : true,
    );
    await waitFor("status to list nothing kept", async () =>
      (await kept("fc-rename")).length === 0 ? true : undefined,
    );
    expect(await readSecret(k, NS, "fc-new")).toBeDefined();
  });

  it("after a namespace leaves the targets", async () => {
    const NS = "fc-leave";
    await stack.namespace(NS, { fc: "on" });
    await waitForDefaultServiceAccount(k, NS);
    const tenant = await tenantOf(k, NS);
    await applyResource(k, "fc-leave", {
      secretName: "fc-pull",
      namespaceSelector: { matchLabels: { fc: "on" } },
      registries,
    });
    await waitForPullSecrets(k, NS, "default", ["fc-pull"]);
    await podNaming(tenant, "worker-1", "fc-pull");
    await podNaming(tenant, "worker-2", "fc-pull");

    await k.core.patchNamespace(
      { name: NS, body: { metadata: { labels: { fc: "off" } } } },
      mergePatch,
    );
    // The reference goes at once (no new Pod gets it); the Secret stays.
    await waitForPullSecrets(k, NS, "default", []);
    await waitFor("status to say fc-pull is kept", async () =>
      (await kept("fc-leave")).join() === `${NS}/fc-pull (2)` ? true : undefined,
    );
    const since = Date.now();
    await refreshedSince(NS, "fc-pull", since);

    await deletePod(tenant, "worker-1");
    // One Pod still names it.
    await waitFor("status to count one Pod", async () =>
      (await kept("fc-leave")).join() === `${NS}/fc-pull (1)` ? true : undefined,
    );
    expect(await readSecret(k, NS, "fc-pull")).toBeDefined();
    await deletePod(tenant, "worker-2");
    await waitFor("fc-pull removed", async () =>
      (await readSecret(k, NS, "fc-pull")) ? undefined : true,
    );
    expect(await kept("fc-leave")).toEqual([]);
    expect(await pullSecretsOf(k, NS, "default")).toEqual([]);
  });
});
