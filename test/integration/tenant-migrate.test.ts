// `migrate` on a cluster shared with tenants (issue 28, kind 4): a namespace
// admin can create a Deployment that copies the old operator's image, labels
// and variables, pointing AWS_CREDENTIALS_SECRET_* at another team's keys. The
// plan reads only the Deployment the administrator names, or one provably the
// old operator's (its look and a ServiceAccount with its cluster-wide rights,
// which no tenant can grant); two of those are an error asking which.
import { AppsV1Api, type V1Deployment } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateOutput } from "../harness/cli.js";
import { waitFor } from "../harness/controlplane.js";
import { bindClusterRole, serviceAccountSubject, type TestKube } from "../harness/kube.js";
import { type Stack, startStack } from "../harness/stack.js";
import { type Tenant, tenantOf } from "../harness/tenant.js";

const OPS = "tm-ops";
// First by name, as the example: the old code took the first (running) one.
const TENANT = "aaa-decoy";
const TEAM_B = "tm-team-b";
const HOST = "209202477790.dkr.ecr.us-east-1.amazonaws.com";
const OLD_IMAGE = "dejanualex/ecr-creds-refresher:0.2.3";
const OLD_ROLE = "tm-old-operator";

let stack: Stack;
let k: TestKube;
let apps: AppsV1Api;
let tenant: Tenant;
let migratorKubeconfig = "";

/** A Deployment as the old operator's chart renders it (image, labels, the four variables). */
function oldOperator(
  name: string,
  serviceAccountName: string,
  env: Record<string, string>,
  replicas: number,
): V1Deployment {
  const labels = { "app.kubernetes.io/name": "ecr-creds-refresher", app: "ecr-creds-refresher" };
  return {
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: { "app.kubernetes.io/name": "ecr-creds-refresher" } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName,
          containers: [
            {
              name: "operator",
              image: OLD_IMAGE,
              env: Object.entries(env).map(([n, value]) => ({ name: n, value })),
            },
          ],
        },
      },
    },
  };
}

async function migrate(...args: string[]) {
  return await migrateOutput(migratorKubeconfig, args);
}

const REAL_ENV = {
  AWS_REGION: "us-east-1",
  REGISTRY: HOST,
  AWS_CREDENTIALS_SECRET_NAME: "aws-creds",
  AWS_CREDENTIALS_SECRET_NAMESPACE: OPS,
};

beforeAll(async () => {
  // No operator and no AWS: `migrate` reads Deployments and RBAC only.
  stack = await startStack({
    ops: OPS,
    namespaces: [TENANT, TEAM_B],
    credentials: false,
    awsEndpoint: false,
  });
  k = stack.k;
  apps = k.kc.makeApiClient(AppsV1Api);
  // Earlier files' namespaces may still be terminating with their look-alikes.
  await waitFor(
    "no old-operator Deployment outside this file's namespaces",
    async () => {
      const all = await apps.listDeploymentForAllNamespaces();
      const others = all.items.filter(
        (d) =>
          ![OPS, TENANT].includes(d.metadata?.namespace ?? "") &&
          d.spec?.template.spec?.containers.some((c) => c.image?.includes("dejanualex/")),
      );
      return others.length === 0 ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );

  // The administrator's side: the old operator, its ServiceAccount bound to
  // the old chart's ClusterRole, and a migrator with cluster-admin.
  await k.rbac.createClusterRole({
    body: {
      metadata: { name: OLD_ROLE },
      rules: [
        {
          apiGroups: ["alchemy.com"],
          resources: ["ecrpullsecrets"],
          verbs: ["get", "list", "watch", "patch", "update"],
        },
      ],
    },
  });
  await k.core.createNamespacedServiceAccount({
    namespace: OPS,
    body: { metadata: { name: "ecr-operator" } },
  });
  await bindClusterRole(k, OLD_ROLE, OLD_ROLE, [serviceAccountSubject(OPS, "ecr-operator")]);
  await apps.createNamespacedDeployment({
    namespace: OPS,
    body: oldOperator("ecr-creds-refresher", "ecr-operator", REAL_ENV, 0),
  });
  migratorKubeconfig = await stack.serviceAccountKubeconfig("migrator");

  // The tenant's side, through its own client only: a decoy in its namespace
  // with the old operator's image, labels and variables, one replica, and
  // another team's keys.
  tenant = await tenantOf(k, TENANT);
  const tenantApps = tenant.kube.kc.makeApiClient(AppsV1Api);
  await waitFor("the tenant's decoy Deployment", async () =>
    tenantApps.createNamespacedDeployment({
      namespace: TENANT,
      body: oldOperator(
        "ecr-creds-refresher",
        "default",
        {
          AWS_REGION: "us-east-1",
          REGISTRY: HOST,
          AWS_CREDENTIALS_SECRET_NAME: "team-b-keys",
          AWS_CREDENTIALS_SECRET_NAMESPACE: TEAM_B,
        },
        1,
      ),
    }),
  );
});

afterAll(async () => {
  await k.rbac.deleteClusterRoleBinding({ name: OLD_ROLE }).catch(() => undefined);
  await k.rbac.deleteClusterRole({ name: OLD_ROLE }).catch(() => undefined);
  await stack?.stop();
});

describe("migrate with a tenant's decoy of the old operator", () => {
  it("never reads the decoy: the plan names the real old operator and its credentials", async () => {
    const { code, out, err } = await migrate();
    expect(err).toBe("");
    expect(code).toBe(0);
    const lines = out.split("\n");
    expect(lines.filter((l) => l.startsWith("old operator:"))).toEqual([
      `old operator: Deployment ${OPS}/ecr-creds-refresher, replicas 0 (AWS_REGION=us-east-1 REGISTRY=${HOST} AWS_CREDENTIALS_SECRET_NAME=aws-creds AWS_CREDENTIALS_SECRET_NAMESPACE=${OPS})`,
    ]);
    expect(lines).toContain(
      `credentials: Secret ${OPS}/aws-creds (AWS_CREDENTIALS_SECRET_NAME/_NAMESPACE of Deployment ${OPS}/ecr-creds-refresher)`,
    );
    expect(lines).toContain(
      `note: Deployment ${TENANT}/ecr-creds-refresher is not read: its ServiceAccount default may not watch ecrpullsecrets.alchemy.com cluster-wide, as the old operator's must, so its look may be copied (name it with --old-deployment if it is the old operator)`,
    );
    // Not the other team's keys, and the decoy's replica does not hold migrate up.
    expect(out).not.toContain("team-b-keys");
    expect(out).not.toContain("still running");
  });

  it("refuses two provable old operators with the ambiguity error; --old-deployment chooses", async () => {
    await apps.createNamespacedDeployment({
      namespace: OPS,
      body: oldOperator(
        "ecr-creds-refresher-2",
        "ecr-operator",
        { ...REAL_ENV, AWS_CREDENTIALS_SECRET_NAME: "other-keys" },
        0,
      ),
    });
    try {
      const ambiguous = await migrate();
      expect(ambiguous.err).toBe("");
      expect(ambiguous.code).toBe(1);
      const lines = ambiguous.out.split("\n");
      expect(lines).toContain(
        `problem: 2 Deployments are provably the old operator's (${OPS}/ecr-creds-refresher, ${OPS}/ecr-creds-refresher-2): name the one whose settings to use with --old-deployment NAMESPACE/NAME`,
      );
      expect(lines).toContain("credentials: none: the new operator's default source");
      expect(ambiguous.out).not.toContain("team-b-keys");
      // --apply stops on it before writing anything.
      const applied = await migrate("--apply");
      expect(applied.code).toBe(1);
      expect(applied.err).toBe(
        "failed to migrate: 1 problems in the plan (above); fix them and run again\n",
      );

      const chosen = await migrate(`--old-deployment=${OPS}/ecr-creds-refresher-2`);
      expect(chosen.err).toBe("");
      expect(chosen.code).toBe(0);
      expect(chosen.out.split("\n")).toContain(
        `credentials: Secret ${OPS}/other-keys (AWS_CREDENTIALS_SECRET_NAME/_NAMESPACE of Deployment ${OPS}/ecr-creds-refresher-2)`,
      );
    } finally {
      await apps.deleteNamespacedDeployment({ namespace: OPS, name: "ecr-creds-refresher-2" });
    }
  });
});
