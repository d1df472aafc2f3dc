import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  helmTemplate as helmTemplateOf,
  type Rendered,
  serverSideApply,
  serviceAccountMay,
} from "../harness/chart.js";
import {
  createNamespace,
  deleteNamespaces,
  kubeconfigWithToken,
  statusOf,
  type TestKube,
  testKube,
} from "../harness/kube.js";

const cp = inject("controlPlane");
const NS = "wir-system";
const RELEASE = "wir";
const FULL = "wir-ecr-creds-refresher";
const _USER = `system:serviceaccount:${NS}:${FULL}`;
const TEAM_A = "wir-team-a";
const TEAM_B = "wir-team-b";
const TEAM_C = "wir-team-c";
const NAMED = [
  { namespace: TEAM_A, name: "image-puller" },
  { namespace: TEAM_A, name: "builder" },
  { namespace: TEAM_B, name: "image-puller" },
];
let k: TestKube;
let dir: string;
let objects: Rendered[];
let asOperator: CoreV1Api;

const helmTemplate = (args: string[]) => helmTemplateOf(RELEASE, NS, args);
const operator = { namespace: NS, name: FULL };

const tokenRequestObjects = (all: Rendered[]) =>
  all.filter((o) => o.metadata?.name === `${FULL}-token-request`);

const allowedTokenRequest = (namespace: string, name: string) =>
  serviceAccountMay(k, operator, "create", "serviceaccounts", {
    subresource: "token",
    namespace,
    name,
  });

/** A real TokenRequest made as the chart's ServiceAccount: the HTTP status. */
async function tokenRequestAs(namespace: string, name: string): Promise<number> {
  try {
    await asOperator.createNamespacedServiceAccountToken({
      namespace,
      name,
      body: { spec: { audiences: ["sts.amazonaws.com"], expirationSeconds: 600 } },
    });
    return 201;
  } catch (err) {
    return statusOf(err);
  }
}

/** The Roles the chart renders for NAMED and its own ServiceAccount: namespace and rules. */
function expectedTokenRequestRoles() {
  const rule = (resourceNames: string[]) => [
    { apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"], resourceNames },
  ];
  return [
    [NS, rule([FULL])],
    [TEAM_A, rule(["builder", "image-puller"])],
    [TEAM_B, rule(["image-puller"])],
  ];
}

describe.skipIf(cp.existingCluster)("chart RBAC for web identity", () => {
  beforeAll(async () => {
    k = testKube(cp.kubeconfigPath);
    dir = await mkdtemp(join(tmpdir(), "wir-"));
    for (const ns of [NS, TEAM_A, TEAM_B, TEAM_C]) await createNamespace(k, ns);
    for (const { namespace, name } of [
      { namespace: NS, name: FULL },
      ...NAMED,
      { namespace: TEAM_A, name: "other" },
      { namespace: TEAM_C, name: "image-puller" },
      { namespace: NS, name: "someone-else" },
    ]) {
      await k.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
    }
    objects = helmTemplate([
      "--set",
      "webIdentity.ownServiceAccount=true",
      "--set-json",
      `webIdentity.serviceAccounts=${JSON.stringify(NAMED)}`,
    ]);
    for (const o of tokenRequestObjects(objects)) await serverSideApply(k, o);
    // The chart's ServiceAccount, as the operator runs it.
    const path = await kubeconfigWithToken(k, NS, FULL, dir);
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    asOperator = kc.makeApiClient(CoreV1Api);
  });

  afterAll(async () => {
    await deleteNamespaces(k, [NS, TEAM_A, TEAM_B, TEAM_C]);
    await rm(dir, { recursive: true, force: true });
  });

  it("renders no TokenRequest rule with the default values", () => {
    expect(tokenRequestObjects(helmTemplate([]))).toEqual([]);
  });

  it("renders one Role per namespace with exactly the named ServiceAccounts", () => {
    const roles = tokenRequestObjects(objects).filter((o) => o.kind === "Role");
    expect(
      roles
        .map((r) => [r.metadata?.namespace, r.rules])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    ).toEqual(expectedTokenRequestRoles());
  });

  it("allows TokenRequest only for the ServiceAccounts named in values (SubjectAccessReview and real requests)", async () => {
    const allowed = [{ namespace: NS, name: FULL }, ...NAMED];
    const denied = [
      { namespace: TEAM_A, name: "other" },
      { namespace: TEAM_A, name: "default" },
      { namespace: TEAM_C, name: "image-puller" },
      { namespace: NS, name: "someone-else" },
      { namespace: TEAM_B, name: "builder" },
    ];
    const review = async (list: typeof allowed) =>
      Promise.all(
        list.map(
          async (sa) =>
            `${sa.namespace}/${sa.name}=${await allowedTokenRequest(sa.namespace, sa.name)}`,
        ),
      );
    expect(await review(allowed)).toEqual(allowed.map((sa) => `${sa.namespace}/${sa.name}=true`));
    expect(await review(denied)).toEqual(denied.map((sa) => `${sa.namespace}/${sa.name}=false`));

    for (const sa of allowed)
      expect(await tokenRequestAs(sa.namespace, sa.name), `${sa.namespace}/${sa.name}`).toBe(201);
    for (const sa of denied)
      expect(await tokenRequestAs(sa.namespace, sa.name), `${sa.namespace}/${sa.name}`).toBe(403);
  });

  it("needs no rule for SelfSubjectReview (how the operator learns its own ServiceAccount)", async () => {
    // No rendered rule grants it: Kubernetes' system:basic-user does.
    const rules = objects.flatMap((o) => o.rules ?? []);
    expect(rules.filter((r) => r.resources.includes("selfsubjectreviews"))).toEqual([]);
    expect(
      await serviceAccountMay(k, operator, "create", "selfsubjectreviews", {
        group: "authentication.k8s.io",
      }),
    ).toBe(true);
  });
});
