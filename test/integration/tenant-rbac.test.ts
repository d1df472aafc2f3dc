// The chart's RBAC on the real control plane, read by SubjectAccessReview
// (issue 28, kinds 5 and 6): a right the default configuration does not use
// is not granted (no Pod delete without podRecovery.enabled; TokenRequest for
// the named ServiceAccounts only), and people get ECRPullSecrets the way a
// cluster-scoped, privileged kind should be handed out: read through the
// built-in view role (the clusterrole-aggregation controller fills it), write
// only through the chart's editor role, never through a namespace's admin or
// a cluster-wide edit.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  applyChart,
  deleteChartRbac,
  helmTemplate,
  type Rendered,
  serviceAccountMay,
} from "../harness/chart.js";
import { waitFor } from "../harness/controlplane.js";
import {
  bindClusterRole,
  createNamespace,
  deleteNamespaces,
  serviceAccountSubject,
  type TestKube,
  testKube,
} from "../harness/kube.js";
import { type Tenant, tenantOf } from "../harness/tenant.js";

const cp = inject("controlPlane");
const RELEASE = "tr";
const NS = "tr-system";
const FULL = "tr-ecr-creds-refresher";
const TEAM = "tr-team-a";
const PULLER = { namespace: TEAM, name: "image-puller" };
const OPERATOR = { namespace: NS, name: FULL };
const BINDINGS = ["tr-view", "tr-edit", "tr-editor"];

let k: TestKube;
let tenant: Tenant;
let rendered: Rendered[] = [];

const render = (...set: string[]) =>
  helmTemplate(RELEASE, NS, [
    "--set",
    `webIdentity.serviceAccounts[0].namespace=${PULLER.namespace}`,
    "--set",
    `webIdentity.serviceAccounts[0].name=${PULLER.name}`,
    ...set.flatMap((s) => ["--set", s]),
  ]);

/** Polls a SubjectAccessReview until it answers `want` (RBAC caches lag a little). */
async function settles(what: string, ask: () => Promise<boolean>, want: boolean) {
  await waitFor(`${what}: ${want}`, async () => ((await ask()) === want ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  return await ask();
}

const operatorMay = (
  verb: string,
  resource: string,
  opts?: Parameters<typeof serviceAccountMay>[4],
) => serviceAccountMay(k, OPERATOR, verb, resource, opts);

beforeAll(async () => {
  k = testKube(cp.kubeconfigPath);
  for (const ns of [NS, TEAM]) await createNamespace(k, ns);
  tenant = await tenantOf(k, TEAM);
  rendered = render();
  await applyChart(k, rendered);
});

afterAll(async () => {
  await deleteChartRbac(k, rendered);
  for (const name of BINDINGS)
    await k.rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
  await deleteNamespaces(k, [NS, TEAM]);
});

describe("the operator's rights under the default values", () => {
  it("may not delete Pods, and may mint tokens only for the ServiceAccounts named in values", async () => {
    // The grants are in place: what the default configuration uses is allowed.
    expect(await settles("operator lists Pods", () => operatorMay("list", "pods"), true)).toBe(
      true,
    );
    expect(
      await settles(
        "operator mints tokens for the named ServiceAccount",
        () =>
          operatorMay("create", "serviceaccounts", {
            namespace: PULLER.namespace,
            name: PULLER.name,
            subresource: "token",
          }),
        true,
      ),
    ).toBe(true);
    // Pod recovery is off by default, and so is the right to delete Pods.
    expect(await operatorMay("delete", "pods", { namespace: TEAM })).toBe(false);
    expect(await operatorMay("delete", "pods")).toBe(false);
    // No TokenRequest for any other ServiceAccount: not the tenant's, not the
    // namespace's default, not its own (webIdentity.ownServiceAccount is off).
    for (const sa of [
      { namespace: TEAM, name: tenant.serviceAccount },
      { namespace: TEAM, name: "default" },
      { namespace: NS, name: FULL },
      { namespace: "kube-system", name: "default" },
    ]) {
      expect(
        await operatorMay("create", "serviceaccounts", { ...sa, subresource: "token" }),
        `${sa.namespace}/${sa.name}`,
      ).toBe(false);
    }
    expect(await operatorMay("create", "serviceaccounts", { subresource: "token" })).toBe(false);
  });

  it("podRecovery.enabled=true grants Pod delete, and only that", async () => {
    const before = rendered.filter((o) => o.kind === "ClusterRole" && o.metadata?.name === FULL);
    const on = render("podRecovery.enabled=true");
    await applyChart(k, on);
    try {
      expect(
        await settles(
          "operator deletes Pods",
          () => operatorMay("delete", "pods", { namespace: TEAM }),
          true,
        ),
      ).toBe(true);
      const after = on.filter((o) => o.kind === "ClusterRole" && o.metadata?.name === FULL);
      const rulesOf = (o: Rendered[]) => o[0]?.rules?.filter((r) => !r.resources.includes("pods"));
      expect(rulesOf(after)).toEqual(rulesOf(before));
    } finally {
      await applyChart(k, rendered);
    }
    expect(
      await settles(
        "operator deletes Pods once the value is off again",
        () => operatorMay("delete", "pods", { namespace: TEAM }),
        false,
      ),
    ).toBe(false);
  });
});

describe("people's rights on ECRPullSecrets", () => {
  const person = (name: string) => ({ namespace: TEAM, name });
  const bind = (name: string, role: string, sa: string) =>
    bindClusterRole(k, name, role, [serviceAccountSubject(TEAM, sa)]);
  const may = (who: { namespace: string; name: string }, verb: string) =>
    serviceAccountMay(k, who, verb, "ecrpullsecrets", { group: "ecrcreds.io" });

  it("view reads them; a namespace admin and a cluster-wide edit or admin may not create one; the chart's editor role may", async () => {
    await bind("tr-view", "view", "viewer");
    await bind("tr-edit", "edit", "editor-everywhere");
    await bind("tr-editor", `${FULL}-editor`, "platform-admin");

    expect(
      await settles("view lists ECRPullSecrets", () => may(person("viewer"), "list"), true),
    ).toBe(true);
    expect(await may(person("viewer"), "get")).toBe(true);
    expect(await may(person("viewer"), "create")).toBe(false);
    // edit (and admin) aggregate the read, never the write.
    expect(
      await settles(
        "edit lists ECRPullSecrets",
        () => may(person("editor-everywhere"), "list"),
        true,
      ),
    ).toBe(true);
    for (const verb of ["create", "update", "patch", "delete"]) {
      expect(await may(person("editor-everywhere"), verb), `edit ${verb}`).toBe(false);
    }
    // The tenant: admin of its namespace only, no cluster-scoped rights at all.
    for (const verb of ["create", "list"]) {
      expect(await may(person(tenant.serviceAccount), verb), `tenant ${verb}`).toBe(false);
    }
    expect(
      await settles("the editor role creates", () => may(person("platform-admin"), "create"), true),
    ).toBe(true);
    expect(await may(person("platform-admin"), "delete")).toBe(true);
  });
});
