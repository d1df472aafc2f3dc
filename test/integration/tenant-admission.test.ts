// The chart's optional ValidatingAdmissionPolicy on the real control plane
// (issue 28, kind 6): an ECRPullSecret is admitted only when its author may
// themselves do what it would have the operator do. The tenant here is given
// create on ECRPullSecrets (as a careless binding would), so that the policy,
// not RBAC, is what refuses it.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { helmTemplate, type Rendered, serverSideApply } from "../harness/chart.js";
import { waitFor } from "../harness/controlplane.js";
import {
  bindClusterRole,
  createNamespace,
  deleteNamespaces,
  putSecret,
  serviceAccountSubject,
  type TestKube,
  testKube,
} from "../harness/kube.js";
import { type Tenant, tenantOf } from "../harness/tenant.js";

const cp = inject("controlPlane");
const RELEASE = "ta";
const NS = "ta-system";
const TENANT = "ta-tenant";
const OTHER = "ta-other-team";
const WRITER = "ta-ecrps-writer";
const API = { group: "ecrcreds.io", version: "v1alpha1", plural: "ecrpullsecrets" };

let k: TestKube;
let tenant: Tenant;
let policy: Rendered[] = [];
const created: string[] = [];

interface Refusal {
  code?: number;
  body?: string;
}

/** Creates an ECRPullSecret as `who`; undefined when admitted, else the refusal. */
async function create(
  who: TestKube,
  name: string,
  spec: object,
  dryRun = false,
): Promise<Refusal | undefined> {
  try {
    await who.custom.createClusterCustomObject({
      ...API,
      body: { apiVersion: "ecrcreds.io/v1alpha1", kind: "ECRPullSecret", metadata: { name }, spec },
      ...(dryRun ? { dryRun: "All" } : {}),
    });
    if (!dryRun) created.push(name);
    return undefined;
  } catch (err) {
    return err as Refusal;
  }
}

/** The policy's message for `field`, as the API server words a denial of `name`. */
const denial = (name: string, field: string, rest: string) =>
  `ecrpullsecrets.ecrcreds.io "${name}" is forbidden: ValidatingAdmissionPolicy 'ta-ecr-creds-refresher-author-rights' with binding 'ta-ecr-creds-refresher-author-rights' denied request: ${field}: system:serviceaccount:${TENANT}:tenant-admin ${rest}`;

const othersKeys = {
  secretName: "ecr-pull",
  namespaces: [TENANT],
  credentials: { secretRef: { name: "aws-creds", namespace: OTHER } },
};

beforeAll(async () => {
  k = testKube(cp.kubeconfigPath);
  for (const ns of [NS, TENANT, OTHER]) await createNamespace(k, ns);
  await putSecret(k, OTHER, "aws-creds", { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y" });
  await putSecret(k, TENANT, "own-keys", { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y" });
  tenant = await tenantOf(k, TENANT);
  // The careless grant: create on ECRPullSecrets, cluster-wide.
  await k.rbac.createClusterRole({
    body: {
      metadata: { name: WRITER },
      rules: [
        {
          apiGroups: ["ecrcreds.io"],
          resources: ["ecrpullsecrets"],
          verbs: ["create", "get", "delete"],
        },
      ],
    },
  });
  await bindClusterRole(k, WRITER, WRITER, [serviceAccountSubject(TENANT, tenant.serviceAccount)]);
  // The chart's policy and binding, and nothing else of it.
  policy = helmTemplate(RELEASE, NS, ["--set", "admissionPolicy.enabled=true"]).filter((o) =>
    (o.kind ?? "").startsWith("ValidatingAdmissionPolicy"),
  );
  for (const o of policy) await serverSideApply(k, o);
  // The tenant may create (dry run) a harmless resource: RBAC has caught up.
  await waitFor("the tenant's create right", async () =>
    (await create(tenant.kube, "ta-probe", { secretName: "x", namespaces: [TENANT] }, true)) ===
    undefined
      ? true
      : undefined,
  );
  // The policy is in force once it refuses the other team's keys (dry run).
  await waitFor(
    "the admission policy to refuse",
    async () =>
      (await create(tenant.kube, "ta-probe", othersKeys, true))?.code === 403 ? true : undefined,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
});

afterAll(async () => {
  for (const name of created) {
    await k.custom.deleteClusterCustomObject({ ...API, name }).catch(() => undefined);
  }
  for (const o of policy) {
    const name = o.metadata?.name ?? "";
    await k.custom
      .deleteClusterCustomObject({
        group: "admissionregistration.k8s.io",
        version: "v1",
        plural:
          o.kind === "ValidatingAdmissionPolicy"
            ? "validatingadmissionpolicies"
            : "validatingadmissionpolicybindings",
        name,
      })
      .catch(() => undefined);
  }
  await k.rbac.deleteClusterRoleBinding({ name: WRITER }).catch(() => undefined);
  await k.rbac.deleteClusterRole({ name: WRITER }).catch(() => undefined);
  await deleteNamespaces(k, [NS, TENANT, OTHER]);
});

describe("the admission policy (admissionPolicy.enabled): another namespace's credentials", () => {
  it("refuses a tenant's resource naming another namespace's credentials Secret, naming the field", async () => {
    const refused = await create(tenant.kube, "ta-steal", othersKeys);
    expect(refused?.code).toBe(403);
    expect(JSON.parse(refused?.body ?? "{}").message).toBe(
      denial(
        "ta-steal",
        "spec.credentials.secretRef",
        `may not read Secret ${OTHER}/aws-creds, so may not have the operator use it; name a Secret you may read, or ask an administrator who may`,
      ),
    );
    // The same through a registry entry's own credentials.
    const perRegistry = await create(tenant.kube, "ta-steal-2", {
      secretName: "ecr-pull",
      namespaces: [TENANT],
      registries: [
        {
          accountId: "123456789012",
          credentials: { secretRef: { name: "own-keys", namespace: TENANT } },
        },
        {
          accountId: "210987654321",
          credentials: { secretRef: { name: "aws-creds", namespace: OTHER } },
        },
      ],
    });
    expect(perRegistry?.code).toBe(403);
    expect(JSON.parse(perRegistry?.body ?? "{}").message).toBe(
      denial(
        "ta-steal-2",
        "spec.registries[].credentials.secretRef",
        `may not read every Secret these name (${TENANT}/own-keys, ${OTHER}/aws-creds), so may not have the operator use them; name Secrets you may read, or ask an administrator who may`,
      ),
    );
  });

  it("accepts the same resource from an administrator", async () => {
    expect(await create(k, "ta-admin", othersKeys)).toBeUndefined();
    const got = (await k.custom.getClusterCustomObject({ ...API, name: "ta-admin" })) as {
      spec: { credentials: unknown };
    };
    expect(got.spec.credentials).toEqual(othersKeys.credentials);
  });
});

describe("the admission policy (admissionPolicy.enabled): what the tenant may use itself", () => {
  it("accepts a tenant's resource that names only what the tenant may use itself", async () => {
    expect(
      await create(tenant.kube, "ta-own", {
        secretName: "ecr-pull",
        namespaces: [TENANT],
        credentials: { secretRef: { name: "own-keys", namespace: TENANT } },
      }),
    ).toBeUndefined();
  });

  it("refuses writing into another namespace, a selector or glob, and the operator's own identity", async () => {
    const cases: Array<[object, string, string]> = [
      [
        { secretName: "ecr-pull", namespaces: [TENANT, OTHER] },
        "spec.namespaces",
        `may not create Secrets in every namespace listed (${TENANT}, ${OTHER}), so may not have the operator write them there; list only namespaces where you may`,
      ],
      [
        { secretName: "ecr-pull", namespaceSelector: { matchLabels: { team: "a" } } },
        "spec.namespaceSelector",
        "may not create Secrets in every namespace, which a selector or glob can reach; list namespaces by name instead",
      ],
      [
        { secretName: "ecr-pull", namespaces: [`${TENANT}*`] },
        "spec.namespaces (a glob)",
        "may not create Secrets in every namespace, which a selector or glob can reach; list namespaces by name instead",
      ],
      [
        {
          secretName: "ecr-pull",
          namespaces: [TENANT],
          credentials: { webIdentity: { roleArn: "arn:aws:iam::123456789012:role/pull" } },
        },
        "spec.credentials.webIdentity.serviceAccount",
        `may not create tokens (serviceaccounts/token) for ServiceAccount ${NS}/ta-ecr-creds-refresher (the operator itself, when serviceAccount is unset), so may not have the operator exchange them; name a ServiceAccount you may mint tokens for`,
      ],
    ];
    cases.push([
      // No identity of its own, a role of another team's on top: the
      // operator's default identity would be used to assume it.
      {
        secretName: "ecr-pull",
        namespaces: [TENANT],
        credentials: {
          roleArn: "arn:aws:iam::999999999999:role/other-teams-role",
          externalId: "guessed",
        },
      },
      "spec.credentials",
      `may not use the default identity of the operator (that of ServiceAccount ${NS}/ta-ecr-creds-refresher), which a resource naming no secretRef, webIdentity or rolesAnywhere gets; name credentials you may use yourself, or ask an administrator who may`,
    ]);
    for (const [spec, field, rest] of cases) {
      const refused = await create(tenant.kube, "ta-reach", spec);
      expect(refused?.code, field).toBe(403);
      expect(JSON.parse(refused?.body ?? "{}").message, field).toBe(
        denial("ta-reach", field, rest),
      );
    }
  });
});
