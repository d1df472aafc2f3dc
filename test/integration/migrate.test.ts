// `migrate` on the real control plane, from a cluster shaped exactly as the
// original Python (kopf) operator leaves it: its CRD (alchemy.com, short name
// ecrps), resources with kopf's finalizer, unlabelled dockerconfigjson
// Secrets of one fixed name, `default` ServiceAccounts whose imagePullSecrets
// it replaced with that name (others added theirs afterwards), and its
// Deployment with the four variables. The new operator runs in this process.
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { AppsV1Api, type V1Secret } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { MAX_NAMESPACE_ENTRIES } from "../../src/api/index.js";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  LABEL_MANAGED_BY,
  LABEL_OWNER,
} from "../../src/api/metadata.js";
import { fetchToken } from "../../src/aws/token.js";
import { KOPF_FINALIZER } from "../../src/cli/migrate-plan.js";
import { KubeClient, loadKubeConfig, SECRETS } from "../../src/kube/client.js";
import type { Secret } from "../../src/kube/types.js";
import type { AwsDouble } from "../aws-double/index.js";
import { migrateOutput } from "../harness/cli.js";
import {
  auditWrites,
  bindClusterAdmin,
  bindClusterRole,
  createNamespace,
  deleteNamespaces,
  dockerConfigOf,
  kubeconfigForServiceAccount,
  mergePatch,
  readSecret,
  serviceAccountSubject,
  statusOf,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
// The old operator's own constant: its Secret name and registry.
const ACCOUNT = "209202477790";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OLD = `aws-registry-${ACCOUNT}`;
const OPS = "mig-ops";
const ACCESS_KEY = "AKIAMIGRATE000000001";
const SECRET_KEY = "migrate-secret-key-00000000000000000001";
const MIGRATOR = `system:serviceaccount:${OPS}:migrator`;
const OLD_API = { group: "alchemy.com", version: "v1alpha1", plural: "ecrpullsecrets" };
const CRD_API = {
  group: "apiextensions.k8s.io",
  version: "v1",
  plural: "customresourcedefinitions",
};
const OLD_CRD = "ecrpullsecrets.alchemy.com";

// Adopted in place (secretName is the old fixed name), with and without
// others' entries; renamed by the user; a list too long for spec.namespaces.
const FIXED = ["mig-a", "mig-b"];
const RENAMED = ["mig-c", "mig-d"];
const LONG = ["mig-l1", "mig-l2"];
const WITH_OTHERS = new Set(["mig-b", "mig-c"]);
const ALL = [...FIXED, ...RENAMED, ...LONG];
const ABSENT = Array.from(
  { length: MAX_NAMESPACE_ENTRIES - 1 },
  (_, i) => `mig-absent-${String(i).padStart(5, "0")}`,
);

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let apps: AppsV1Api;
let admin: KubeClient;
let migratorKubeconfig: string;
let oldPassword = "";

/** The old operator's CRD, as its chart installs it. */
const oldCrd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: OLD_CRD },
  spec: {
    group: "alchemy.com",
    names: {
      kind: "ECRPullSecret",
      plural: "ecrpullsecrets",
      singular: "ecrpullsecret",
      shortNames: ["ecrps"],
    },
    scope: "Cluster",
    versions: [
      {
        name: "v1alpha1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: {
                type: "object",
                required: ["secretName"],
                properties: {
                  secretName: { type: "string", default: OLD },
                  namespaces: { type: "array", items: { type: "string" } },
                },
              },
            },
          },
        },
        additionalPrinterColumns: [
          { name: "SecretName", type: "string", jsonPath: ".spec.secretName" },
          { name: "Namespaces", type: "string", jsonPath: ".spec.namespaces" },
          { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
        ],
      },
    ],
  },
};

async function migrate(...args: string[]) {
  return await migrateOutput(migratorKubeconfig, args);
}

// A SubjectAccessReview (whether a Deployment's ServiceAccount holds the old
// operator's rights) is a question, not a write: nothing is stored.
const migratorWrites = (since: number) =>
  auditWrites(
    cp.auditLogPath,
    (e) => e.user.username === MIGRATOR && e.objectRef?.resource !== "subjectaccessreviews",
    since,
  );

async function oldResources(): Promise<string[]> {
  try {
    const list = (await k.custom.listClusterCustomObject(OLD_API)) as {
      items: Array<{ metadata: { name: string } }>;
    };
    return list.items.map((r) => r.metadata.name).sort();
  } catch (err) {
    if (statusOf(err) === 404) return [];
    throw err;
  }
}

async function pullSecretsOf(namespace: string): Promise<string[]> {
  const sa = await k.core.readNamespacedServiceAccount({ namespace, name: "default" });
  return (sa.imagePullSecrets ?? []).map((r) => r.name ?? "");
}

function passwordIn(secret: V1Secret | Secret | undefined): string | undefined {
  if (!secret?.data?.[".dockerconfigjson"]) return undefined;
  return dockerConfigOf(secret as V1Secret).auths[HOST]?.password;
}

/** The resources whose discovery entry declares the short name ecrps, as kubectl reads them. */
async function ecrpsInDiscovery(): Promise<string[]> {
  const found: string[] = [];
  const root = JSON.parse((await kubectl("get", "--raw", "/apis")).stdout) as {
    groups: Array<{ preferredVersion: { groupVersion: string } }>;
  };
  for (const g of root.groups) {
    const gv = g.preferredVersion.groupVersion;
    const list = JSON.parse((await kubectl("get", "--raw", `/apis/${gv}`)).stdout) as {
      resources: Array<{ name: string; shortNames?: string[] }>;
    };
    for (const r of list.resources) {
      if (r.shortNames?.includes("ecrps")) found.push(`${r.name}.${gv}`);
    }
  }
  return found.sort();
}

const execFileAsync = promisify(execFile);
let kubectlCache = "";
/** kubectl with a fresh discovery cache each time, so it sees the API server as it is now. */
async function kubectl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const cacheDir = await mkdtemp(join(kubectlCache, "c-"));
  return await execFileAsync("kubectl", [
    `--kubeconfig=${cp.kubeconfigPath}`,
    `--cache-dir=${cacheDir}`,
    ...args,
  ]);
}

/** A Secret's changes in one namespace, in order: its resourceVersion and password (none once deleted). */
type SecretHistory = Map<string, Array<{ rv: number; password?: string }>>;

/**
 * Every Secret change in our namespaces from now on, with its resourceVersion:
 * what a Pod's reference named at the moment it was admitted. (The API
 * server's resourceVersions are etcd revisions here, so they order events.)
 * stop() ends the watch and returns its error, if it had one.
 */
async function watchSecretHistory(): Promise<{ history: SecretHistory; stop(): unknown }> {
  const mine = new Set(ALL);
  const history: SecretHistory = new Map();
  const record = (s: Secret, deleted: boolean, rv: number) => {
    const key = `${s.metadata?.namespace}/${s.metadata?.name}`;
    const entries = history.get(key) ?? [];
    entries.push(deleted ? { rv } : { rv, password: passwordIn(s) ?? "" });
    history.set(key, entries);
  };
  const initial = await admin.list<Secret>(SECRETS);
  const listRv = Number(initial.metadata?.resourceVersion);
  for (const s of initial.items)
    if (mine.has(s.metadata?.namespace ?? "")) record(s, false, listRv);
  let watchError: unknown;
  const watch = await admin.watch(
    "/api/v1/secrets",
    { resourceVersion: initial.metadata?.resourceVersion, allowWatchBookmarks: false },
    (type, obj) => {
      const s = obj as Secret;
      if (!mine.has(s.metadata?.namespace ?? "")) return;
      record(s, type === "DELETED", Number(s.metadata?.resourceVersion));
    },
    (err) => {
      if (err) watchError = err;
    },
  );
  return {
    history,
    stop() {
      watch.abort();
      return watchError;
    },
  };
}

/** An admitted probe Pod: its namespace, resourceVersion, time and pull-secret names. */
interface ProbePod {
  namespace: string;
  rv: number;
  at: Date;
  refs: string[];
}

/**
 * Pods admitted while migrate runs: one loop per namespace, so that even a
 * short moment with a bad reference would catch some. stop() ends the loops.
 */
function startPodLoop(): { pods: ProbePod[]; stop(): Promise<void> } {
  const pods: ProbePod[] = [];
  let stopPods = false;
  const podLoop = Promise.all(
    ALL.map(async (namespace) => {
      while (!stopPods) {
        const at = new Date();
        const pod = await k.core.createNamespacedPod({
          namespace,
          body: {
            metadata: { generateName: "mig-probe-" },
            spec: {
              automountServiceAccountToken: false,
              containers: [{ name: "app", image: `${HOST}/app:1` }],
            },
          },
        });
        pods.push({
          namespace,
          rv: Number(pod.metadata?.resourceVersion),
          at,
          refs: (pod.spec?.imagePullSecrets ?? []).map((r) => r.name ?? ""),
        });
        await new Promise((r) => setTimeout(r, 20));
      }
    }),
  );
  return {
    pods,
    async stop() {
      stopPods = true;
      await podLoop;
    },
  };
}

/** Every namespace's Secret the new operator's, holding `password`; references as the user had them. */
async function expectSecretsMoved(password: string): Promise<void> {
  const owners: Record<string, string> = {};
  for (const ns of FIXED) owners[ns] = "mig-fixed";
  for (const ns of RENAMED) owners[ns] = "mig-renamed";
  for (const ns of LONG) owners[ns] = "mig-long";
  for (const ns of ALL) {
    const name = RENAMED.includes(ns) ? "ecr-pull" : OLD;
    const s = await readSecret(k, ns, name);
    expect(s?.metadata?.labels?.[LABEL_MANAGED_BY], ns).toBe("ecr-creds-refresher");
    expect(s?.metadata?.labels?.[LABEL_OWNER], ns).toBe(owners[ns]);
    expect(passwordIn(s), ns).toBe(password);
  }
  // The user's own name is served, the old Secret gone; others' entries stay.
  for (const ns of RENAMED) expect(await readSecret(k, ns, OLD), ns).toBeUndefined();
  expect(await pullSecretsOf("mig-a")).toEqual([OLD]);
  expect(await pullSecretsOf("mig-b")).toEqual([OLD, "dockerhub-pull"]);
  expect(await pullSecretsOf("mig-c")).toEqual(["dockerhub-pull", "ecr-pull"]);
  expect(await pullSecretsOf("mig-d")).toEqual(["ecr-pull"]);
  expect(await pullSecretsOf("mig-l1")).toEqual([OLD]);
  for (const ns of WITH_OTHERS) {
    expect(passwordIn(await readSecret(k, ns, "dockerhub-pull"))).toBeUndefined();
    expect((await readSecret(k, ns, "dockerhub-pull"))?.metadata?.labels).toBeUndefined();
  }
  // An adopted reference is now the new operator's: it goes with the resource.
  const saB = await k.core.readNamespacedServiceAccount({ namespace: "mig-b", name: "default" });
  expect(saB.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS]).toBe(`mig-fixed/${OLD}`);
  // No unlabelled Secret of the old operator left anywhere.
  for (const ns of ALL) {
    const list = await k.core.listNamespacedSecret({ namespace: ns });
    const unlabelled = list.items
      .filter((s) => s.type === "kubernetes.io/dockerconfigjson" && !s.metadata?.labels)
      .map((s) => s.metadata?.name);
    expect(unlabelled, ns).toEqual(WITH_OTHERS.has(ns) ? ["dockerhub-pull"] : []);
  }
}

/** The long list became a selector plus the absent names; the renamed resource's spec in full. */
async function expectResourcesRewritten(): Promise<void> {
  // The long list: a label on the namespaces that exist, a selector, the rest listed.
  const long = (await k.custom.getClusterCustomObject({
    group: "ecrcreds.io",
    version: "v1alpha1",
    plural: "ecrpullsecrets",
    name: "mig-long",
  })) as {
    spec: { namespaceSelector?: unknown; namespaces?: string[]; adoptExisting?: boolean };
  };
  expect(long.spec.namespaceSelector).toEqual({
    matchLabels: { "migrate.ecrcreds.io/mig-long": "true" },
  });
  expect(long.spec.namespaces).toEqual(ABSENT);
  expect(long.spec.adoptExisting).toBe(true);
  for (const ns of LONG) {
    const n = await k.core.readNamespace({ name: ns });
    expect(n.metadata?.labels?.["migrate.ecrcreds.io/mig-long"]).toBe("true");
  }
  const renamed = (await k.custom.getClusterCustomObject({
    group: "ecrcreds.io",
    version: "v1alpha1",
    plural: "ecrpullsecrets",
    name: "mig-renamed",
  })) as { spec: unknown };
  expect(renamed.spec).toEqual({
    secretName: "ecr-pull",
    namespaces: RENAMED,
    region: "us-east-1",
    registries: [{ host: HOST }],
    credentials: { secretRef: { name: "aws-creds", namespace: OPS } },
    // The rest are the CRD's defaults.
    serviceAccounts: ["default"],
    serviceAccountFields: ["imagePullSecrets"],
    deletionPolicy: "Delete",
    adoptExisting: false,
    podRecovery: "None",
  });
}

/** Discovery lists ecrps once, and kubectl no longer has to choose. */
async function expectKubectlSeesOnlyTheNewKind(): Promise<void> {
  expect(await ecrpsInDiscovery()).toEqual(["ecrpullsecrets.ecrcreds.io/v1alpha1"]);
  const got = await kubectl("get", "ecrps", "-o", "name");
  expect(got.stderr).toBe("");
  expect(
    got.stdout
      .split("\n")
      .filter((l) => l.includes("mig-"))
      .sort(),
  ).toEqual([
    "ecrpullsecret.ecrcreds.io/mig-fixed",
    "ecrpullsecret.ecrcreds.io/mig-long",
    "ecrpullsecret.ecrcreds.io/mig-renamed",
  ]);
}

/**
 * Each Pod, when admitted, named a Secret that existed and held a token the
 * AWS double issued and that had not expired.
 */
function expectPodsNamedValidSecrets(pods: ProbePod[], history: SecretHistory): void {
  expect(pods.length).toBeGreaterThan(ALL.length * 2);
  const bad: string[] = [];
  for (const pod of pods) {
    const ok = pod.refs.some((name) => {
      const entries = history.get(`${pod.namespace}/${name}`) ?? [];
      const atAdmission = entries.filter((e) => e.rv <= pod.rv).at(-1);
      return (
        atAdmission?.password !== undefined && aws.isValidPassword(atAdmission.password, pod.at)
      );
    });
    if (!ok) bad.push(`${pod.namespace} rv ${pod.rv}: ${pod.refs.join(",")}`);
  }
  expect(bad).toEqual([]);
}

/**
 * The old operator's rights, as its chart grants them: what proves that its
 * Deployment is the old operator's (a namespace admin cannot grant them).
 */
async function grantOldOperatorRights(): Promise<void> {
  await k.rbac.createClusterRole({
    body: {
      metadata: { name: "mig-old-operator" },
      rules: [
        {
          apiGroups: ["alchemy.com"],
          resources: ["ecrpullsecrets"],
          verbs: ["get", "list", "watch", "patch", "update"],
        },
      ],
    },
  });
  await bindClusterRole(k, "mig-old-operator", "mig-old-operator", [
    serviceAccountSubject(OPS, "ecr-operator"),
  ]);
}

/** The old operator's CRD (served before this returns) and its Deployment at 0 replicas. */
async function createOldOperator(): Promise<void> {
  await k.custom.createClusterCustomObject({ ...CRD_API, body: oldCrd });
  await waitFor("the old CRD to be served", async () => {
    try {
      await k.custom.listClusterCustomObject(OLD_API);
      return true;
    } catch {
      return undefined;
    }
  });
  await apps.createNamespacedDeployment({
    namespace: OPS,
    body: {
      metadata: { name: "ecr-creds-refresher", labels: { app: "ecr-creds-refresher" } },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: "ecr-creds-refresher" } },
        template: {
          metadata: { labels: { app: "ecr-creds-refresher" } },
          spec: {
            serviceAccountName: "ecr-operator",
            containers: [
              {
                name: "operator",
                image: "dejanualex/ecr-creds-refresher:0.2.3",
                env: [
                  { name: "AWS_REGION", value: "us-east-1" },
                  { name: "REGISTRY", value: HOST },
                  { name: "AWS_CREDENTIALS_SECRET_NAME", value: "aws-creds" },
                  { name: "AWS_CREDENTIALS_SECRET_NAMESPACE", value: OPS },
                ],
              },
            ],
          },
        },
      },
    },
  });
}

/**
 * A token the old operator would have written (issued by the AWS double), as
 * its dockerconfigjson; its password becomes oldPassword.
 */
async function oldDockerConfig(): Promise<string> {
  const old = await fetchToken(
    "ecr",
    "us-east-1",
    async () => ({ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY }),
    { timeoutMs: 5_000 },
  );
  oldPassword = old.password;
  const auth = Buffer.from(`${old.username}:${old.password}`).toString("base64");
  return JSON.stringify({
    auths: {
      [HOST]: {
        username: old.username,
        password: old.password,
        auth,
        email: "none@no@email.local",
      },
    },
  });
}

/** A namespace as the old operator left it: its Secret, named alone (or with someone's added after) on "default". */
async function createOldNamespace(ns: string, dockerconfig: string): Promise<void> {
  await createNamespace(k, ns);
  await waitForDefaultServiceAccount(k, ns);
  await k.core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: OLD },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": Buffer.from(dockerconfig).toString("base64") },
    },
  });
  // The old operator replaced the whole list with its one name.
  await k.core.patchNamespacedServiceAccount(
    { namespace: ns, name: "default", body: { imagePullSecrets: [{ name: OLD }] } },
    mergePatch,
  );
  if (WITH_OTHERS.has(ns)) {
    // Someone added theirs afterwards.
    await k.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: "dockerhub-pull" },
        type: "kubernetes.io/dockerconfigjson",
        data: {
          ".dockerconfigjson": Buffer.from(
            JSON.stringify({ auths: { "docker.io": { username: "u", password: "p" } } }),
          ).toString("base64"),
        },
      },
    });
    await k.core.patchNamespacedServiceAccount(
      {
        namespace: ns,
        name: "default",
        body: { imagePullSecrets: [{ name: OLD }, { name: "dockerhub-pull" }] },
      },
      mergePatch,
    );
  }
}

/** The old operator's three resources, each with kopf's finalizer and last-handled annotation. */
async function createOldResources(): Promise<void> {
  const oldResource = (name: string, spec: object) => ({
    apiVersion: "alchemy.com/v1alpha1",
    kind: "ECRPullSecret",
    metadata: {
      name,
      finalizers: [KOPF_FINALIZER],
      annotations: { "kopf.zalando.org/last-handled-configuration": JSON.stringify({ spec }) },
    },
    spec,
  });
  for (const [name, spec] of [
    ["mig-fixed", { secretName: OLD, namespaces: FIXED }],
    ["mig-renamed", { secretName: "ecr-pull", namespaces: RENAMED }],
    ["mig-long", { secretName: OLD, namespaces: [...LONG, ...ABSENT] }],
  ] as const) {
    await k.custom.createClusterCustomObject({ ...OLD_API, body: oldResource(name, spec) });
  }
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    identities: [
      {
        accessKeyId: ACCESS_KEY,
        secretAccessKey: SECRET_KEY,
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/${OPS}`,
      },
    ],
    tokenLifetimeMs: 30 * 60_000,
  });
  // The new operator, as its own ServiceAccount, already running when migrate starts.
  await stack.startOperator();
  ({ k, aws } = stack);
  apps = k.kc.makeApiClient(AppsV1Api);
  admin = new KubeClient(loadKubeConfig(cp.kubeconfigPath), { qps: 0, burst: 0 });
  const dir = await mkdtemp(join(tmpdir(), "mig-"));
  kubectlCache = dir;
  migratorKubeconfig = await kubeconfigForServiceAccount(k, OPS, "migrator", dir);
  await bindClusterAdmin(k, "mig-migrator", OPS, ["migrator"]);
  await grantOldOperatorRights();

  // The old operator's CRD, Deployment, Secrets, ServiceAccounts, resources.
  await createOldOperator();
  const dockerconfig = await oldDockerConfig();
  for (const ns of ALL) await createOldNamespace(ns, dockerconfig);
  await createOldResources();
});

afterAll(async () => {
  await stack?.stop();
  for (const name of await oldResources().catch(() => [])) {
    await k.custom
      .patchClusterCustomObject(
        { ...OLD_API, name, body: { metadata: { finalizers: null } } },
        mergePatch,
      )
      .catch(() => undefined);
    await k.custom.deleteClusterCustomObject({ ...OLD_API, name }).catch(() => undefined);
  }
  await k.custom.deleteClusterCustomObject({ ...CRD_API, name: OLD_CRD }).catch(() => undefined);
  for (const name of ["mig-fixed", "mig-renamed", "mig-long"]) {
    await k.custom
      .patchClusterCustomObject(
        {
          group: "ecrcreds.io",
          version: "v1alpha1",
          plural: "ecrpullsecrets",
          name,
          body: { metadata: { finalizers: null } },
        },
        mergePatch,
      )
      .catch(() => undefined);
    await k.custom
      .deleteClusterCustomObject({
        group: "ecrcreds.io",
        version: "v1alpha1",
        plural: "ecrpullsecrets",
        name,
      })
      .catch(() => undefined);
  }
  await k.rbac.deleteClusterRoleBinding({ name: "mig-migrator" }).catch(() => undefined);
  await k.rbac.deleteClusterRoleBinding({ name: "mig-old-operator" }).catch(() => undefined);
  await k.rbac.deleteClusterRole({ name: "mig-old-operator" }).catch(() => undefined);
  await deleteNamespaces(k, ALL);
});

describe("migrate from the alchemy.com operator", () => {
  it("prints the plan and writes nothing", async () => {
    const since = Date.now();
    const { code, out, err } = await migrate();
    expect(err).toBe("");
    expect(code).toBe(0);
    const lines = out.split("\n");
    expect(lines).toContain(
      `old operator: Deployment ${OPS}/ecr-creds-refresher, replicas 0 (AWS_REGION=us-east-1 REGISTRY=${HOST} AWS_CREDENTIALS_SECRET_NAME=aws-creds AWS_CREDENTIALS_SECRET_NAMESPACE=${OPS})`,
    );
    expect(lines).toContain(`old Secret name: ${OLD}`);
    expect(lines).toContain(
      `registry: ${HOST} (REGISTRY of Deployment ${OPS}/ecr-creds-refresher)`,
    );
    expect(lines).toContain(
      `credentials: Secret ${OPS}/aws-creds (AWS_CREDENTIALS_SECRET_NAME/_NAMESPACE of Deployment ${OPS}/ecr-creds-refresher)`,
    );
    expect(lines).toContain(
      "old CRD ecrpullsecrets.alchemy.com: remove its short name ecrps, so that kubectl get ecrps means ecrcreds.io only",
    );
    expect(lines).toContain(
      "ECRPullSecret mig-fixed: create ecrcreds.io/v1alpha1 ECRPullSecret mig-fixed",
    );
    expect(lines).toContain(
      `  mig-b: adopt Secret ${OLD} in place (same name, fresh token); the default ServiceAccount's reference moves to the new operator; others' entries kept: dockerhub-pull`,
    );
    expect(lines).toContain(
      `  mig-c: serve Secret ecr-pull; then remove ${OLD} from the default ServiceAccount and delete Secret ${OLD}; others' entries kept: dockerhub-pull`,
    );
    expect(lines).toContain("  label 2 namespaces migrate.ecrcreds.io/mig-long=true");
    expect(lines).toContain(
      `  mig-l1, mig-l2: adopt Secret ${OLD} in place (same name, fresh token); the default ServiceAccount's reference moves to the new operator`,
    );
    expect(lines).toContain(
      `  ${ABSENT.slice(0, 10).join(", ")} and ${ABSENT.length - 10} more: do not exist yet; served when created`,
    );
    expect(lines).toContain(
      `  then remove finalizer ${KOPF_FINALIZER} and delete alchemy.com ECRPullSecret mig-renamed`,
    );
    expect(out).toContain("nothing was written; run again with --apply");
    expect(await migratorWrites(since)).toEqual([]);
  });

  it("refuses to act while the old operator's Deployment has replicas", async () => {
    await apps.patchNamespacedDeployment(
      { namespace: OPS, name: "ecr-creds-refresher", body: { spec: { replicas: 1 } } },
      mergePatch,
    );
    const since = Date.now();
    const { code, err } = await migrate("--apply");
    expect(code).toBe(1);
    expect(err).toBe(
      `failed to migrate: the old operator still runs (Deployment ${OPS}/ecr-creds-refresher has 1 replica) and would keep rewriting its Secrets and ServiceAccounts; scale it down with kubectl -n ${OPS} scale deployment ecr-creds-refresher --replicas=0, or pass --force\n`,
    );
    expect(await migratorWrites(since)).toEqual([]);
    expect(await oldResources()).toEqual(["mig-fixed", "mig-long", "mig-renamed"]);
    await apps.patchNamespacedDeployment(
      { namespace: OPS, name: "ecr-creds-refresher", body: { spec: { replicas: 0 } } },
      mergePatch,
    );
  });
});

describe("migrate from the alchemy.com operator: --apply", () => {
  it("--apply moves every namespace to the new operator; Pods admitted meanwhile always name a valid Secret", async () => {
    // Before: both CRDs declare ecrps; kubectl has to guess.
    expect(await ecrpsInDiscovery()).toEqual([
      "ecrpullsecrets.alchemy.com/v1alpha1",
      "ecrpullsecrets.ecrcreds.io/v1alpha1",
    ]);

    const before = await kubectl("get", "ecrps", "-o", "name");
    expect(before.stderr).toContain(
      'Warning: short name "ecrps" could also match lower priority resource ecrpullsecrets.ecrcreds.io',
    );
    expect(before.stdout).toContain("ecrpullsecret.alchemy.com/mig-fixed");

    const secrets = await watchSecretHistory();

    const probes = startPodLoop();
    const pods = probes.pods;
    await waitFor("Pods admitted before migrate", async () =>
      pods.length >= ALL.length ? true : undefined,
    );

    const issuedBefore = aws.issued().length;
    // A kopf finalizer left in place would hold the deletion until this timeout.
    const result = await migrate("--apply", "--timeout=60s");
    // A few more Pods after it finished.
    const after = pods.length;
    await waitFor("Pods admitted after migrate", async () =>
      pods.length >= after + ALL.length ? true : undefined,
    );
    await probes.stop();
    const watchError = secrets.stop();
    expect(result.err).toBe("");
    expect(result.code).toBe(0);
    expect(result.out).toContain("done\n");
    expect(watchError).toBeUndefined();

    // One fresh token, the one the AWS double issued, in every namespace.
    const fresh = aws.issued().slice(issuedBefore);
    expect(fresh).toHaveLength(1);
    const password = fresh[0]?.password ?? "";
    expect(password).not.toBe(oldPassword);
    await expectSecretsMoved(password);

    await expectResourcesRewritten();

    // The old resources are gone, kopf's finalizer did not hold them.
    expect(await oldResources()).toEqual([]);

    await expectKubectlSeesOnlyTheNewKind();

    expectPodsNamedValidSecrets(pods, secrets.history);
    // The loop spanned the switch: Pods named only the old Secret, later only the new.
    const renamedRefs = pods.filter((p) => p.namespace === "mig-d").map((p) => p.refs.join(","));
    expect(renamedRefs[0]).toBe(OLD);
    expect(renamedRefs.at(-1)).toBe("ecr-pull");
  });

  it("a second --apply finds nothing to do and writes nothing", async () => {
    const since = Date.now();
    const { code, out, err } = await migrate("--apply");
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain(
      "no alchemy.com ECRPullSecrets: nothing to migrate\n\nnothing to apply\ndone\n",
    );
    expect(await migratorWrites(since)).toEqual([]);
  });

  it("--delete-old-crd deletes the old CRD once it is empty", async () => {
    const since = Date.now();
    const { code, out } = await migrate("--apply", "--delete-old-crd");
    expect(code).toBe(0);
    expect(out).toContain(`deleted CRD ${OLD_CRD}`);
    const writes = await migratorWrites(since);
    expect(writes.map((w) => [w.verb, w.objectRef?.resource, w.objectRef?.name])).toEqual([
      ["delete", "customresourcedefinitions", OLD_CRD],
    ]);
    expect(await ecrpsInDiscovery()).toEqual(["ecrpullsecrets.ecrcreds.io/v1alpha1"]);
  });
});

describe("the CRD's list cap (MAX_NAMESPACE_ENTRIES)", () => {
  const long = (n: number, prefix: string) =>
    Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(8, "0")}`.padEnd(63, "x"));
  const api = { group: "ecrcreds.io", version: "v1alpha1", plural: "ecrpullsecrets" };

  it("takes both lists full of 63-character names, and refuses one more", async () => {
    const body = (name: string, n: number) => ({
      apiVersion: "ecrcreds.io/v1alpha1",
      kind: "ECRPullSecret",
      metadata: { name },
      spec: {
        secretName: "ecr-pull",
        namespaces: long(n, "a"),
        excludeNamespaces: long(MAX_NAMESPACE_ENTRIES, "b"),
      },
    });
    try {
      await k.custom.createClusterCustomObject({
        ...api,
        body: body("mig-cap", MAX_NAMESPACE_ENTRIES),
      });
      const err = await k.custom
        .createClusterCustomObject({
          ...api,
          body: body("mig-cap-over", MAX_NAMESPACE_ENTRIES + 1),
        })
        .then(
          () => undefined,
          (e: unknown) => e as { code?: number; body?: string },
        );
      expect(err?.code).toBe(422);
      expect(err?.body).toContain(
        `spec.namespaces: Too many: ${MAX_NAMESPACE_ENTRIES + 1}: must have at most ${MAX_NAMESPACE_ENTRIES} items`,
      );
    } finally {
      for (const name of ["mig-cap", "mig-cap-over"]) {
        await k.custom
          .patchClusterCustomObject(
            { ...api, name, body: { metadata: { finalizers: null } } },
            mergePatch,
          )
          .catch(() => undefined);
        await k.custom.deleteClusterCustomObject({ ...api, name }).catch(() => undefined);
      }
    }
  });
});
