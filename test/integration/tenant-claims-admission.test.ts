// ECRPullSecretClaim at admission, on the real API server (issue 31): a
// tenant (a ServiceAccount bound to the built-in `admin` ClusterRole in its
// own namespace only) may create, read and delete claims there through the
// chart's aggregated ClusterRoles alone; a claim that would reach another
// namespace is refused by the CRD's CEL rules with the field named; the
// cluster-scoped kinds stay out of the tenant's reach. No operator runs here.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Rendered, serviceAccountMay } from "../harness/chart.js";
import { waitFor } from "../harness/controlplane.js";
import { createNamespace, deleteNamespaces, type TestKube, testKube } from "../harness/kube.js";
import {
  applyUserRoles,
  CLAIMS,
  createClaim as create,
  createSource,
  deleteSource,
  deleteUserRoles,
  installTenantCrds,
  messageOf,
  type Refusal,
  SOURCES,
  type Tenant,
  tenantOf,
} from "../harness/tenant.js";

const cp = inject("controlPlane");
const RELEASE = "tc";
const NS = "tc-system";
const TENANT = "tc-tenant";
const OTHER = "tc-other-team";
const ROLE = "arn:aws:iam::123456789012:role/pull";

let k: TestKube;
let tenant: Tenant;
let userRoles: Rendered[] = [];
const sources: string[] = [];

/** Creates a claim as `who` (in the tenant's namespace unless told); undefined when admitted. */
const createClaim = (
  who: TestKube,
  name: string,
  spec: object,
  opts: { namespace?: string; dryRun?: boolean } = {},
) => create(who, opts.namespace ?? TENANT, name, spec, opts.dryRun);

/** Creates a cluster-scoped object of `kind` as `who`; undefined when admitted, else the refusal. */
async function createClusterScoped(
  who: TestKube,
  plural: string,
  kind: string,
  name: string,
  spec: object,
): Promise<Refusal | undefined> {
  if (plural === SOURCES.plural) {
    const refused = await createSource(who, name, spec);
    if (!refused) sources.push(name);
    return refused;
  }
  try {
    await who.custom.createClusterCustomObject({
      group: "ecrcreds.io",
      version: "v1alpha1",
      plural,
      body: { apiVersion: "ecrcreds.io/v1alpha1", kind, metadata: { name }, spec },
    });
    return undefined;
  } catch (err) {
    return err as Refusal;
  }
}

const valid = { secretName: "ecr-pull", sourceRef: { name: "tc-shared" } };

beforeAll(async () => {
  k = testKube(cp.kubeconfigPath);
  await installTenantCrds(k);
  for (const ns of [NS, TENANT, OTHER]) await createNamespace(k, ns);
  // The chart's roles for people, and nothing else of it.
  userRoles = await applyUserRoles(k, RELEASE, NS);
  expect(userRoles.map((o) => o.metadata?.name).sort()).toEqual([
    "tc-ecr-creds-refresher-claims",
    "tc-ecr-creds-refresher-editor",
    "tc-ecr-creds-refresher-viewer",
  ]);
  tenant = await tenantOf(k, TENANT);
  // The clusterrole-aggregation controller has folded the claims role into admin.
  await waitFor(
    "the tenant's aggregated right to create claims",
    async () =>
      (await createClaim(tenant.kube, "tc-probe", valid, { dryRun: true })) === undefined
        ? true
        : undefined,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
});

afterAll(async () => {
  for (const name of sources) await deleteSource(k, name);
  await deleteUserRoles(k, userRoles);
  await deleteNamespaces(k, [NS, TENANT, OTHER]);
});

describe("a claim cannot reach another namespace", () => {
  it("refuses each field that would, at admission, naming the field", async () => {
    const cases: Array<[string, object, string]> = [
      ["spec.namespaces", { ...valid, namespaces: [OTHER] }, "spec.namespaces"],
      [
        "spec.namespaceSelector",
        { ...valid, namespaceSelector: { matchLabels: { team: "b" } } },
        "spec.namespaceSelector",
      ],
      [
        "spec.excludeNamespaces",
        { ...valid, excludeNamespaces: ["kube-*"] },
        "spec.excludeNamespaces",
      ],
      [
        "spec.credentials.secretRef.namespace",
        {
          secretName: "ecr-pull",
          credentials: { secretRef: { name: "aws-creds", namespace: OTHER } },
        },
        "credentials.secretRef.namespace",
      ],
      [
        "spec.credentials.webIdentity.serviceAccount.namespace",
        {
          secretName: "ecr-pull",
          credentials: {
            webIdentity: { roleArn: ROLE, serviceAccount: { name: "puller", namespace: OTHER } },
          },
        },
        "credentials.webIdentity.serviceAccount.namespace",
      ],
      [
        "spec.credentials.rolesAnywhere.certificateSecretRef.namespace",
        {
          secretName: "ecr-pull",
          credentials: {
            rolesAnywhere: {
              trustAnchorArn:
                "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0a1b2c3d-0000-4000-8000-000000000001",
              profileArn:
                "arn:aws:rolesanywhere:us-east-1:123456789012:profile/0a1b2c3d-0000-4000-8000-000000000002",
              roleArn: ROLE,
              certificateSecretRef: { name: "pull-cert", namespace: OTHER },
            },
          },
        },
        "credentials.rolesAnywhere.certificateSecretRef.namespace",
      ],
      [
        "spec.registries[0].credentials",
        {
          ...valid,
          registries: [
            {
              accountId: "123456789012",
              credentials: { secretRef: { name: "aws-creds", namespace: OTHER } },
            },
          ],
        },
        "registries[].credentials",
      ],
      ["spec.argoCD.namespace", { ...valid, argoCD: { namespace: OTHER } }, "argoCD.namespace"],
    ];
    for (const [path, spec, field] of cases) {
      const refused = await createClaim(tenant.kube, "tc-reach", spec);
      expect(refused?.code, path).toBe(422);
      expect(messageOf(refused), path).toContain(
        `${path}: Forbidden: ${field} is not allowed in an ECRPullSecretClaim`,
      );
    }
    const none = await k.custom.listNamespacedCustomObject({ ...CLAIMS, namespace: TENANT });
    expect((none as { items: unknown[] }).items).toEqual([]);
  });

  it("refuses both or neither of sourceRef and credentials, and credentials that start from the operator's identity", async () => {
    const both = await createClaim(tenant.kube, "tc-both", {
      ...valid,
      credentials: { secretRef: { name: "k" } },
    });
    expect(both?.code).toBe(422);
    expect(messageOf(both)).toContain("spec must set exactly one of sourceRef");
    const neither = await createClaim(tenant.kube, "tc-neither", { secretName: "ecr-pull" });
    expect(messageOf(neither)).toContain("spec must set exactly one of sourceRef");
    const roleOnly = await createClaim(tenant.kube, "tc-role", {
      secretName: "ecr-pull",
      credentials: { roleArn: ROLE },
    });
    expect(roleOnly?.code).toBe(422);
    expect(messageOf(roleOnly)).toContain(
      "credentials of an ECRPullSecretClaim must set secretRef, webIdentity or rolesAnywhere in its own namespace",
    );
    const region = await createClaim(tenant.kube, "tc-region", { ...valid, region: "us-east-1" });
    expect(messageOf(region)).toContain("spec.region goes with spec.credentials");
  });
});

describe("a tenant serves itself with the aggregated rights alone", () => {
  it("creates, reads and deletes its claim, over a source or with its own Secret", async () => {
    expect(await createClaim(tenant.kube, "tc-pulls", valid)).toBeUndefined();
    const own = { secretName: "own-pull", credentials: { secretRef: { name: "own-keys" } } };
    expect(await createClaim(tenant.kube, "tc-own", own)).toBeUndefined();
    const got = (await tenant.kube.custom.getNamespacedCustomObject({
      ...CLAIMS,
      namespace: TENANT,
      name: "tc-pulls",
    })) as { spec: Record<string, unknown> };
    // Defaults applied, nothing pruned.
    expect(got.spec).toEqual({
      secretName: "ecr-pull",
      sourceRef: { kind: "ClusterECRCredentialSource", name: "tc-shared" },
      serviceAccounts: ["default"],
      serviceAccountFields: ["imagePullSecrets"],
      deletionPolicy: "Delete",
      adoptExisting: false,
      podRecovery: "None",
    });
    const list = (await tenant.kube.custom.listNamespacedCustomObject({
      ...CLAIMS,
      namespace: TENANT,
    })) as { items: Array<{ metadata: { name: string } }> };
    expect(list.items.map((c) => c.metadata.name).sort()).toEqual(["tc-own", "tc-pulls"]);
    for (const name of ["tc-pulls", "tc-own"]) {
      await tenant.kube.custom.deleteNamespacedCustomObject({ ...CLAIMS, namespace: TENANT, name });
    }
    // Not in another team's namespace.
    const elsewhere = await createClaim(tenant.kube, "tc-pulls", valid, { namespace: OTHER });
    expect(elsewhere?.code).toBe(403);
  });

  it("may not create the cluster-scoped kinds (SubjectAccessReview, and the create itself)", async () => {
    const sa = { namespace: TENANT, name: tenant.serviceAccount };
    const may = (verb: string, resource: string, namespace?: string) =>
      serviceAccountMay(k, sa, verb, resource, {
        group: "ecrcreds.io",
        ...(namespace ? { namespace } : {}),
      });
    expect(await may("create", "ecrpullsecretclaims", TENANT)).toBe(true);
    expect(await may("delete", "ecrpullsecretclaims", TENANT)).toBe(true);
    expect(await may("create", "ecrpullsecretclaims", OTHER)).toBe(false);
    expect(await may("create", "ecrpullsecrets")).toBe(false);
    expect(await may("create", "clusterecrcredentialsources")).toBe(false);
    expect(await may("update", "clusterecrcredentialsources")).toBe(false);
    expect(await may("patch", "ecrpullsecretclaims/status", TENANT)).toBe(false);
    const ecrps = await createClusterScoped(
      tenant.kube,
      "ecrpullsecrets",
      "ECRPullSecret",
      "tc-x",
      {
        secretName: "ecr-pull",
        namespaces: [TENANT],
      },
    );
    expect(ecrps?.code).toBe(403);
    const source = await createClusterScoped(
      tenant.kube,
      SOURCES.plural,
      "ClusterECRCredentialSource",
      "tc-mine",
      { conditions: [{ namespaces: ["*"] }] },
    );
    expect(source?.code).toBe(403);
  });
});

describe("the built-in roles carry the claims rules", () => {
  it("aggregates read of claims into view, and write into edit and admin only", async () => {
    for (const role of ["view", "edit"]) {
      await k.rbac.createNamespacedRoleBinding({
        namespace: TENANT,
        body: {
          metadata: { name: `tc-${role}` },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
          subjects: [{ kind: "ServiceAccount", name: `tc-${role}`, namespace: TENANT }],
        },
      });
    }
    const may = (who: string, verb: string) =>
      serviceAccountMay(k, { namespace: TENANT, name: who }, verb, "ecrpullsecretclaims", {
        group: "ecrcreds.io",
        namespace: TENANT,
      });
    const answers = await waitFor("view and edit to carry the claims rules", async () => {
      const a = {
        viewGet: await may("tc-view", "get"),
        viewList: await may("tc-view", "list"),
        viewCreate: await may("tc-view", "create"),
        editCreate: await may("tc-edit", "create"),
        editDelete: await may("tc-edit", "delete"),
      };
      return a.viewGet && a.editCreate ? a : undefined;
    });
    expect(answers).toEqual({
      viewGet: true,
      viewList: true,
      viewCreate: false,
      editCreate: true,
      editDelete: true,
    });
  });
});

describe("an administrator offers a source", () => {
  it("admits a source with conditions and features, and refuses a conditions entry that names nothing", async () => {
    expect(
      await createClusterScoped(k, SOURCES.plural, "ClusterECRCredentialSource", "tc-shared", {
        credentials: { secretRef: { name: "aws-creds", namespace: NS } },
        region: "eu-west-1",
        registries: [{ accountId: "123456789012" }],
        conditions: [
          { namespaces: ["tc-*"] },
          { namespaceSelector: { matchLabels: { "platform.example.com/ecr": "shared" } } },
        ],
        allowedFeatures: ["ArgoCD"],
      }),
    ).toBeUndefined();
    const empty = await createClusterScoped(
      k,
      SOURCES.plural,
      "ClusterECRCredentialSource",
      "tc-empty",
      { conditions: [{}] },
    );
    expect(empty?.code).toBe(422);
    expect(messageOf(empty)).toContain(
      "conditions[] entries must set namespaces or namespaceSelector",
    );
    const feature = await createClusterScoped(
      k,
      SOURCES.plural,
      "ClusterECRCredentialSource",
      "tc-feature",
      { allowedFeatures: ["Everything"] },
    );
    expect(feature?.code).toBe(422);
    expect(messageOf(feature)).toContain("spec.allowedFeatures[0]");
  });
});
