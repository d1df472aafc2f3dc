// The namespace-scoped install (rbac.scope=namespaced) serves claims (issue
// 31): the chart's Roles applied, the operator running in this process with a
// token of the chart's ServiceAccount and the Deployment's own arguments and
// environment, so RBAC is enforced on every call. A tenant's claim in a
// served namespace gets its Secret; one in a namespace the install does not
// serve is never seen.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OperatorConfig, parseCommandLine } from "../../src/cli/config.js";
import { makeController } from "../../src/controller/from-settings.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyChart,
  deleteChartRbac,
  helmTemplate,
  operatorInvocation,
  type Rendered,
  renderedOne,
} from "../harness/chart.js";
import { consistently, waitFor } from "../harness/controlplane.js";
import { kubeconfigForServiceAccount, readSecret, type TestKube } from "../harness/kube.js";
import { type InProcessOperator, startOperator } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, readPassword } from "../harness/state.js";
import {
  applyUserRoles,
  createClaim,
  createSource,
  deleteClaims,
  deleteSource,
  deleteUserRoles,
  getClaim,
  installTenantCrds,
  type Tenant,
  tenantOf,
  waitForClaim,
} from "../harness/tenant.js";

const NS = "tcn-system";
const RELEASE = "tcn";
const FULL = "tcn-ecr-creds-refresher";
const ACCOUNT = "666677778888";
const HOST = ecrHost(ACCOUNT);
const KEYS = iamUser("tcn", 1, ACCOUNT, "tcn-namespaced");
const SERVED = "tcn-a";
/** Allowed by the source, not served by this install. */
const UNSERVED = "tcn-b";

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let objects: Rendered[] = [];
let roles: Rendered[] = [];
let op: InProcessOperator | undefined;
let config: OperatorConfig;
const tenants = new Map<string, Tenant>();

beforeAll(async () => {
  stack = await startStack({
    ops: NS,
    namespaces: [SERVED, UNSERVED],
    identities: [KEYS],
    credentials: false,
  });
  ({ k, aws } = stack);
  await stack.putKeys("aws-creds", KEYS);
  await installTenantCrds(k);
  roles = await applyUserRoles(k, RELEASE, NS);
  objects = helmTemplate(RELEASE, NS, [
    "--set",
    "aws.region=us-east-1",
    "--set",
    "aws.credentials.secretName=aws-creds",
    "--set",
    "verifyRegistry=false",
    "--set",
    "rbac.scope=namespaced",
    "--set",
    `rbac.namespaces={${SERVED}}`,
  ]);
  stack.onStop(() => deleteChartRbac(k, objects));
  await applyChart(k, objects);
  expect(
    await createSource(k, "tcn-source", {
      credentials: { secretRef: { name: "aws-creds", namespace: NS } },
      region: "us-east-1",
      registries: [{ accountId: ACCOUNT }],
      conditions: [{ namespaces: ["tcn-*"] }],
    }),
  ).toBeUndefined();
  for (const ns of [SERVED, UNSERVED]) tenants.set(ns, await tenantOf(k, ns));
  const probe = tenants.get(SERVED)?.kube as TestKube;
  await waitFor(
    "the tenant's aggregated right to create claims",
    async () =>
      (await createClaim(
        probe,
        SERVED,
        "probe",
        { secretName: "x", sourceRef: { name: "s" } },
        true,
      ))
        ? undefined
        : true,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  // The Deployment's own arguments and environment, as the chart's ServiceAccount.
  const c = renderedOne(objects, "Deployment").spec?.template?.spec?.containers?.[0];
  if (!c) throw new Error("the Deployment has no container");
  const invocation = operatorInvocation(c, NS, { health: 0, metrics: 0 });
  const kubeconfig = await kubeconfigForServiceAccount(k, NS, FULL, stack.dir);
  ({ config } = parseCommandLine(
    [...invocation.args, `--kubeconfig=${kubeconfig}`, "--min-refresh-interval=500ms"],
    invocation.env,
  ));
  op = await startOperator(config);
});

afterAll(async () => {
  // With no operator left running (the once test stops it), nobody cleans up: drop the finalizers soon.
  await deleteClaims(k, [SERVED, UNSERVED], op ? 20_000 : 1_000);
  await op?.stop();
  await stack?.stop();
  await deleteSource(k, "tcn-source");
  await deleteUserRoles(k, roles);
});

describe("rbac.scope=namespaced serves claims", () => {
  it("writes a served namespace's claim with the chart's Roles alone, and never sees an unserved one", async () => {
    for (const ns of [SERVED, UNSERVED]) {
      const t = tenants.get(ns)?.kube as TestKube;
      expect(
        await createClaim(t, ns, "pulls", {
          secretName: "ecr-pull",
          sourceRef: { name: "tcn-source" },
        }),
      ).toBeUndefined();
    }
    await waitForClaim(k, SERVED, "pulls", "True");
    const issued = aws.issued().filter((t) => t.principalArn.endsWith(":user/tcn-namespaced"));
    expect(issued).toHaveLength(1);
    expect(await readPassword(k, SERVED, "ecr-pull", HOST)).toBe(issued[0]?.password);
    const sa = await waitFor("the default ServiceAccount to name the Secret", async () => {
      const s = await k.core.readNamespacedServiceAccount({ namespace: SERVED, name: "default" });
      return s.imagePullSecrets?.some((r) => r.name === "ecr-pull") ? s : undefined;
    });
    expect(sa.imagePullSecrets?.map((r) => r.name)).toEqual(["ecr-pull"]);
    await consistently(
      "the unserved namespace's claim untouched",
      async () => {
        if (await readSecret(k, UNSERVED, "ecr-pull")) return "a Secret was written";
        const c = await getClaim(k, UNSERVED, "pulls");
        return c?.status || c?.metadata?.finalizers?.length ? "the claim was touched" : true;
      },
      { forMs: 3_000 },
    );
    const logs = op?.logs ?? [];
    expect(logs.filter((l) => l.includes('"level":"warn"') && l.includes("403"))).toEqual([]);
  });
});

describe("once (the CronJob mode) serves claims", () => {
  it("one pass over every claim writes a new claim's Secret and reports nothing failed", async () => {
    await op?.stop();
    op = undefined;
    const t = tenants.get(SERVED)?.kube as TestKube;
    const spec = { secretName: "ecr-once", sourceRef: { name: "tcn-source" } };
    expect(await createClaim(t, SERVED, "once", spec)).toBeUndefined();
    const log = createLogger({ level: "warn", format: "json" });
    const controller = makeController(config, log, new Metrics({ processMetrics: false }));
    await controller.startInformers();
    try {
      expect(await controller.runOnce()).toEqual([]);
    } finally {
      await controller.stop();
    }
    expect(await readPassword(k, SERVED, "ecr-once", HOST)).toBeDefined();
    const claim = await getClaim(k, SERVED, "once");
    expect(claim?.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
  });
});
