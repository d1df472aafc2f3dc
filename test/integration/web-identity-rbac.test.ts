// Least privilege for web identity, provable: the chart lets the operator
// request tokens (TokenRequest) only for the ServiceAccounts named in its
// values. The rendered Roles are applied to the real control plane; then
// SubjectAccessReviews, and real TokenRequests made with a token of the
// chart's ServiceAccount, show what is allowed and what is denied.
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from "@kubernetes/client-node";
import { loadAll } from "js-yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { repoRoot } from "../harness/controlplane.js";
import {
  createNamespace,
  deleteNamespaces,
  statusOf,
  type TestKube,
  testKube,
} from "../harness/kube.js";

const cp = inject("controlPlane");
const NS = "wir-system";
const RELEASE = "wir";
const FULL = "wir-ecr-creds-refresher";
const USER = `system:serviceaccount:${NS}:${FULL}`;
const TEAM_A = "wir-team-a";
const TEAM_B = "wir-team-b";
const TEAM_C = "wir-team-c";
const NAMED = [
  { namespace: TEAM_A, name: "image-puller" },
  { namespace: TEAM_A, name: "builder" },
  { namespace: TEAM_B, name: "image-puller" },
];
const chartDir = join(repoRoot, "deploy/helm/ecr-creds-refresher");

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
type Rendered = KubernetesObject & { rules?: Rule[] };

let k: TestKube;
let dir: string;
let objects: Rendered[];
let asOperator: CoreV1Api;

function helmTemplate(args: string[]): Rendered[] {
  const r = spawnSync(
    join(repoRoot, ".cache/helm/helm"),
    ["template", RELEASE, chartDir, "--namespace", NS, ...args],
    { encoding: "utf8", env: { ...process.env, HELM_NAMESPACE: "", KUBECONFIG: "" } },
  );
  if (r.status !== 0) throw new Error(`failed to render the chart: ${r.stderr}${r.error ?? ""}`);
  return (loadAll(r.stdout) as Array<Rendered | null>).filter((o): o is Rendered => o !== null);
}

const tokenRequestObjects = (all: Rendered[]) =>
  all.filter((o) => o.metadata?.name === `${FULL}-token-request`);

async function allowedTokenRequest(namespace: string, name: string): Promise<boolean> {
  const review = await k.kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
    body: {
      spec: {
        user: USER,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${NS}`, "system:authenticated"],
        resourceAttributes: {
          verb: "create",
          resource: "serviceaccounts",
          subresource: "token",
          namespace,
          name,
        },
      },
    },
  });
  return review.status?.allowed === true;
}

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
    const api = KubernetesObjectApi.makeApiClient(k.kc);
    for (const o of tokenRequestObjects(objects)) {
      await api.patch(o, undefined, undefined, "wir-test", true, PatchStrategy.ServerSideApply);
    }
    // The chart's ServiceAccount, as the operator runs it.
    const tr = await k.core.createNamespacedServiceAccountToken({
      namespace: NS,
      name: FULL,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const cluster = k.kc.getCurrentCluster();
    const path = join(dir, "operator.kubeconfig");
    await writeFile(
      path,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          {
            name: "local",
            cluster: { server: cluster?.server, "certificate-authority-data": cluster?.caData },
          },
        ],
        users: [{ name: "op", user: { token: tr.status?.token } }],
        contexts: [{ name: "op", context: { cluster: "local", user: "op" } }],
        "current-context": "op",
      }),
    );
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
    ).toEqual([
      [
        NS,
        [
          {
            apiGroups: [""],
            resources: ["serviceaccounts/token"],
            verbs: ["create"],
            resourceNames: [FULL],
          },
        ],
      ],
      [
        TEAM_A,
        [
          {
            apiGroups: [""],
            resources: ["serviceaccounts/token"],
            verbs: ["create"],
            resourceNames: ["builder", "image-puller"],
          },
        ],
      ],
      [
        TEAM_B,
        [
          {
            apiGroups: [""],
            resources: ["serviceaccounts/token"],
            verbs: ["create"],
            resourceNames: ["image-puller"],
          },
        ],
      ],
    ]);
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
    const review = await k.kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
      body: {
        spec: {
          user: USER,
          groups: [
            "system:serviceaccounts",
            `system:serviceaccounts:${NS}`,
            "system:authenticated",
          ],
          resourceAttributes: {
            verb: "create",
            group: "authentication.k8s.io",
            resource: "selfsubjectreviews",
          },
        },
      },
    });
    expect(review.status?.allowed).toBe(true);
  });
});
