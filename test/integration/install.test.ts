import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { CoordinationV1Api, type KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AwsDouble } from "../aws-double/index.js";
import {
  apiCalls,
  applyChart,
  deleteChartRbac,
  flattenRules,
  helmTemplate as helmTemplateOf,
  operatorInvocation,
  type Rendered,
  type RenderedContainer,
  renderedOne,
  serverSideApply,
  serviceAccountMay,
} from "../harness/chart.js";
import { freePort, repoRoot } from "../harness/controlplane.js";
import {
  applyResource,
  auditEvents,
  deleteResource,
  dockerConfigOf,
  getResource,
  kubeconfigWithToken,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { type OperatorProcess, runOperatorCommand } from "../harness/operator.js";
import { clusterNeeds } from "../harness/rbac.js";
import { type Stack, startStack } from "../harness/stack.js";
import { ecrHost, readPassword } from "../harness/state.js";

const cp = inject("controlPlane");
const NS = "inst-system";
const RELEASE = "inst";
const FULL = "inst-ecr-creds-refresher";
const USER = `system:serviceaccount:${NS}:${FULL}`;
const ACCOUNT = "444455556666";
const HOST = ecrHost(ACCOUNT);
const KEYS = {
  AWS_ACCESS_KEY_ID: "AKIAINSTALL000000001",
  AWS_SECRET_ACCESS_KEY: "install-secret-key-000000000000000000001",
};
const namespaces = ["inst-a", "inst-b", "inst-o1", "inst-o2"];
const LATE = "inst-late";

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let objects: Rendered[];
let saKubeconfig: string;
let op: OperatorProcess | undefined;
let healthPort: number;
let metricsPort: number;
let operatorArgs: string[];
let operatorEnv: Record<string, string>;
/** Request counts by "verb resource code", scraped from the operator's /metrics before it stopped. */
let requests = new Map<string, number>();
let since = 0;

const helmTemplate = (args: string[]) => helmTemplateOf(RELEASE, NS, args);
const rendered = (kind: string, namespace?: string) => renderedOne(objects, kind, namespace);
const apply = (obj: KubernetesObject) => serverSideApply(k, obj);

async function putKeys(name: string, keys: Record<string, string>): Promise<void> {
  await apply({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: NS },
    stringData: keys,
  } as KubernetesObject);
}

const passwordIn = (namespace: string, name = "ecr-pull") => readPassword(k, namespace, name, HOST);

async function get(path: string, port: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

async function scrapeRequests(): Promise<Map<string, number>> {
  const { body } = await get("/metrics", metricsPort);
  const counts = new Map<string, number>();
  for (const line of body.split("\n")) {
    const m = line.match(/^ecr_creds_refresher_kube_requests_total\{(.*)\} (\d+)/);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...(m[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    counts.set(`${labels.verb} ${labels.resource} ${labels.code}`, Number(m[2]));
  }
  return counts;
}

const operatorAudit = () => auditEvents(cp.auditLogPath, (e) => e.user.username === USER, since);

beforeAll(async () => {
  stack = await startStack({
    ops: NS,
    namespaces,
    identities: [
      {
        accessKeyId: KEYS.AWS_ACCESS_KEY_ID,
        secretAccessKey: KEYS.AWS_SECRET_ACCESS_KEY,
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/install`,
      },
    ],
    // Put by server-side apply below, as kubectl would.
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push("inst", "inst-bad", "inst-once-1", "inst-once-2", "inst-once-bad");
  // The cluster-scoped RBAC and the Events Role in "default", which stays.
  stack.onStop(() => deleteChartRbac(k, objects ?? []));
  objects = helmTemplate([
    "--set",
    "aws.region=us-east-1",
    "--set",
    "aws.credentials.secretName=aws-creds",
    "--set",
    "verifyRegistry=false",
  ]);
  await putKeys("aws-creds", KEYS);

  // Everything but the workloads: those need a kubelet.
  await applyChart(k, objects);
  saKubeconfig = await kubeconfigWithToken(k, NS, FULL, stack.dir);

  // The Deployment's own arguments and environment, with the downward API
  // resolved as the kubelet would, the probes on free loopback ports, and the
  // API server and AWS reached from outside the cluster.
  const c = rendered("Deployment").spec?.template?.spec?.containers?.[0];
  if (!c) throw new Error("the Deployment has no container");
  healthPort = await freePort();
  metricsPort = await freePort();
  const invocation = operatorInvocation(c, NS, { health: healthPort, metrics: metricsPort });
  operatorArgs = invocation.args;
  operatorEnv = { ...invocation.env, AWS_ENDPOINT_URL: aws.url, KUBECONFIG: saKubeconfig };
});

afterAll(async () => {
  await stack?.stop();
});

/** The operator holds the chart's Lease (15 s) and answers the chart's liveness and readiness probes. */
async function expectLeaseAndProbes(): Promise<void> {
  const coordination = k.kc.makeApiClient(CoordinationV1Api);
  const lease = await waitFor("the operator to take the chart's Lease", async () => {
    try {
      const l = await coordination.readNamespacedLease({ namespace: NS, name: FULL });
      return l.spec?.holderIdentity ? l : undefined;
    } catch {
      return undefined;
    }
  });
  expect(lease.spec?.leaseDurationSeconds).toBe(15);
  const c = rendered("Deployment").spec?.template?.spec?.containers?.[0];
  const live = await waitFor("the liveness probe path to answer", async () => {
    const r = await get(c?.livenessProbe.httpGet.path ?? "", healthPort).catch(() => undefined);
    return r?.status === 200 ? r : undefined;
  });
  expect(live.body).toBe("ok\n");
  const ready = await waitFor("the readiness probe path to answer 200", async () => {
    const r = await get(c?.readinessProbe.httpGet.path ?? "", healthPort).catch(() => undefined);
    return r?.status === 200 ? r : undefined;
  });
  expect(ready.body).toBe("ok\n");
}

/**
 * A namespace created now (watch on namespaces) gets the Secret once its
 * default ServiceAccount arrives (watch on serviceaccounts); a managed Secret
 * deleted by hand comes back (watch on labelled Secrets).
 */
async function expectLateNamespaceAndRepair(password: string | undefined): Promise<void> {
  await stack.namespace(LATE);
  await waitFor("the late namespace's default ServiceAccount to reference ecr-pull", async () => {
    const s = await k.core
      .readNamespacedServiceAccount({ namespace: LATE, name: "default" })
      .catch(() => undefined);
    return s?.imagePullSecrets?.some((r) => r.name === "ecr-pull") ? true : undefined;
  });
  expect(await passwordIn(LATE)).toBe(password);
  // A managed Secret deleted by hand comes back (watch on labelled Secrets).
  await k.core.deleteNamespacedSecret({ namespace: "inst-a", name: "ecr-pull" });
  await waitFor("inst-a's Secret to be written again", async () =>
    (await passwordIn("inst-a")) === password ? true : undefined,
  );
}

/**
 * A resource naming a missing credentials Secret gets a Warning Event, in
 * "default": the only namespace where the API server takes core/v1 Events
 * about a cluster-scoped object.
 */
async function expectWarningEvent(): Promise<void> {
  await applyResource(k, "inst-bad", {
    secretName: "ecr-pull-bad",
    namespaces: ["inst-a"],
    registries: [{ accountId: ACCOUNT }],
    credentials: { secretRef: { name: "no-such-secret", namespace: NS } },
  });
  const event = await waitFor("a CredentialsSecretNotFound Event", async () => {
    const list = await k.core.listNamespacedEvent({ namespace: "default" });
    return list.items.find(
      (e) => e.involvedObject.name === "inst-bad" && e.reason === "CredentialsSecretNotFound",
    );
  });
  expect(event.type).toBe("Warning");
  expect(event.involvedObject.kind).toBe("ECRPullSecret");
  expect(readyCondition(await getResource(k, "inst-bad"))?.reason).toBe(
    "CredentialsSecretNotFound",
  );
  await deleteResource(k, "inst-bad");
  await waitFor("inst-bad to be gone", async () =>
    (await getResource(k, "inst-bad")) === undefined ? true : undefined,
  );
}

describe("the chart on a real API server", () => {
  it("applies the rendered CRD, ClusterRole, Role, bindings and ServiceAccount", async () => {
    // The operator's ClusterRole, and the viewer, claims and editor roles for
    // people; the three kinds' CRDs.
    expect(objects.map((o) => o.kind).sort()).toEqual([
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRoleBinding",
      "CustomResourceDefinition",
      "CustomResourceDefinition",
      "CustomResourceDefinition",
      "Deployment",
      "Role",
      "RoleBinding",
      "Service",
      "ServiceAccount",
    ]);
    const sa = await k.core.readNamespacedServiceAccount({ namespace: NS, name: FULL });
    expect(sa.metadata?.labels?.["app.kubernetes.io/instance"]).toBe(RELEASE);
    const binding = await k.rbac.readClusterRoleBinding({ name: FULL });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: FULL, namespace: NS }]);
    const role = await k.rbac.readNamespacedRole({ namespace: NS, name: FULL });
    expect(role.rules?.map((r) => r.resources)).toEqual([["leases"], ["leases"]]);
    // Events (on Pods in their namespaces, on resources in "default") come
    // with the ClusterRole, beside the Pod watch.
    const cluster = await k.rbac.readClusterRole({ name: FULL });
    expect(
      cluster.rules
        ?.filter((r) => r.resources?.some((x) => x === "pods" || x === "events"))
        .map((r) => [r.resources, r.verbs]),
    ).toEqual([
      // delete only with podRecovery.enabled (test/integration/tenant-rbac.test.ts).
      [["pods"], ["list", "watch"]],
      [["events"], ["list", "watch", "create"]],
    ]);
    // Read untyped: the served CRD keeps the chart's CEL rules and enums.
    const crd = (await k.custom.getClusterCustomObject({
      group: "apiextensions.k8s.io",
      version: "v1",
      plural: "customresourcedefinitions",
      name: "ecrpullsecrets.ecrcreds.io",
    })) as {
      spec: {
        versions: Array<{
          schema: { openAPIV3Schema: { properties: Record<string, Record<string, unknown>> } };
        }>;
      };
    };
    const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties.spec ?? {};
    expect(Array.isArray(spec["x-kubernetes-validations"])).toBe(true);
    const props = spec.properties as Record<string, { enum?: string[] }>;
    expect(props.deletionPolicy?.enum).toEqual(["Delete", "Retain"]);
  });
});

describe("the chart on a real API server: the operator at work", () => {
  it("runs the operator with the chart's ServiceAccount: Lease, probes, Secrets, ServiceAccount merge, status, Events", async () => {
    since = Date.now() - 1000;
    // inst-b holds a dockerconfigjson Secret of the same name that the
    // resource adopts: that path reads the Secret back (get secrets).
    await k.core.createNamespacedSecret({
      namespace: "inst-b",
      body: {
        metadata: { name: "ecr-pull" },
        type: "kubernetes.io/dockerconfigjson",
        stringData: { ".dockerconfigjson": '{"auths":{}}' },
      },
    });
    op = stack.startProcess(operatorArgs, operatorEnv);

    await expectLeaseAndProbes();

    // Created after the operator started: its watch on ecrpullsecrets sees it.
    await applyResource(k, "inst", {
      secretName: "ecr-pull",
      namespaces: ["inst-a", "inst-b", "inst-late*"],
      registries: [{ accountId: ACCOUNT }],
      adoptExisting: true,
    });
    const synced = await waitFor("inst to be Ready", async () => {
      const r = await getResource(k, "inst");
      return readyCondition(r)?.status === "True" ? r : undefined;
    });
    const issued = aws.issued();
    expect(issued).toHaveLength(1);
    const password = issued[0]?.password;
    expect(await passwordIn("inst-a")).toBe(password);
    const adopted = await waitFor("inst-b's Secret adopted", async () =>
      (await passwordIn("inst-b")) === password ? readSecret(k, "inst-b", "ecr-pull") : undefined,
    );
    expect(adopted?.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("ecr-creds-refresher");
    expect(synced.status?.namespaces).toMatchObject({ desired: 2, synced: 2, failed: 0 });
    expect(synced.status?.registries).toEqual([HOST]);
    expect(synced.metadata?.finalizers).toContain("ecrcreds.io/cleanup");
    for (const ns of ["inst-a", "inst-b"]) {
      await waitForDefaultServiceAccount(k, ns);
      const sa = await waitFor(`${ns}/default to reference ecr-pull`, async () => {
        const s = await k.core.readNamespacedServiceAccount({ namespace: ns, name: "default" });
        return s.imagePullSecrets?.some((r) => r.name === "ecr-pull") ? s : undefined;
      });
      expect(sa.imagePullSecrets?.map((r) => r.name)).toEqual(["ecr-pull"]);
    }

    await expectLateNamespaceAndRepair(password);

    await expectWarningEvent();
  });

  it("runs `check --resource` with the same identity (reads the resource and the credentials Secret)", async () => {
    const r = await runOperatorCommand(["check", "--resource", "inst"], operatorEnv);
    expect(r.output).toContain(HOST);
    expect(r.output).not.toContain(KEYS.AWS_SECRET_ACCESS_KEY);
    expect(r.code).toBe(0);
  });
});

describe("the chart on a real API server: cleanup, and never refused", () => {
  it("cleans up on delete with those permissions: Secrets, ServiceAccount references, finalizer", async () => {
    await deleteResource(k, "inst");
    await waitFor("inst to be gone (finalizer removed)", async () =>
      (await getResource(k, "inst")) === undefined ? true : undefined,
    );
    for (const ns of ["inst-a", "inst-b", LATE]) {
      // inst-b's Secret was adopted: released (our entry, labels and
      // annotations removed), never deleted; the others it created.
      if (ns === "inst-b") {
        const released = await waitFor("inst-b's adopted Secret released", async () => {
          const s = await readSecret(k, ns, "ecr-pull");
          return s && !s.metadata?.labels?.["app.kubernetes.io/managed-by"] ? s : undefined;
        });
        expect(dockerConfigOf(released)).toEqual({ auths: {} });
      } else {
        await waitFor(`the Secret in ${ns} to be deleted`, async () =>
          (await readSecret(k, ns, "ecr-pull")) === undefined ? true : undefined,
        );
      }
      const sa = await k.core.readNamespacedServiceAccount({ namespace: ns, name: "default" });
      expect(sa.imagePullSecrets ?? []).toEqual([]);
    }
    // The first Lease read of a fresh install is a 404 (then create); a
    // renewal updates the Lease it holds every 2 s, without reading it first
    // (as client-go does): wait for one before taking the counts.
    requests = await waitFor("a Lease renewal in the request counts", async () => {
      const counts = await scrapeRequests();
      return (counts.get("update leases 200") ?? 0) > 0 ? counts : undefined;
    });
    // A clean stop gives the Lease up (get + update).
    expect(await op?.stop()).toBe(0);
    op = undefined;
    const coordination = k.kc.makeApiClient(CoordinationV1Api);
    const lease = await coordination.readNamespacedLease({ namespace: NS, name: FULL });
    expect(lease.spec?.holderIdentity).toBeUndefined();
  });

  it("was never refused: no 403 in the audit log or in its own request counts", async () => {
    const audit = await operatorAudit();
    expect(audit.length).toBeGreaterThan(0);
    expect(audit.filter((e) => e.responseStatus?.code === 403)).toEqual([]);
    const refused = [...requests.keys()].filter((key) => key.endsWith(" 403"));
    expect(refused).toEqual([]);
    expect(requests.size).toBeGreaterThan(0);
  });
});

// --- Least privilege ----------------------------------------------------------

const needs = () => clusterNeeds(NS, FULL);

const allowed = (verb: string, resource: string, opts?: Parameters<typeof serviceAccountMay>[4]) =>
  serviceAccountMay(k, { namespace: NS, name: FULL }, verb, resource, opts);

describe("least privilege", () => {
  it("lists every granted rule, and each is one the code calls and the run used", async () => {
    const granted = [
      ...flattenRules("cluster", rendered("ClusterRole").rules ?? []),
      ...flattenRules(NS, rendered("Role", NS).rules ?? []),
    ].sort();
    console.log(`granted:\n  ${granted.join("\n  ")}`);
    // Both directions: nothing granted that is not needed, nothing needed that is not granted.
    expect(granted).toEqual(
      needs()
        .map((n) => n.grant)
        .sort(),
    );

    const audit = await operatorAudit();
    for (const need of needs()) {
      for (const [file, call] of need.code) {
        const calls = apiCalls(await readFile(join(repoRoot, file), "utf8"));
        expect(calls.has(call), `${need.grant}: ${file} should call ${call}`).toBe(true);
      }
      if ("counter" in need.shown) {
        expect(requests.get(need.shown.counter) ?? 0, need.grant).toBeGreaterThan(0);
      } else if ("audit" in need.shown) {
        const a = need.shown.audit;
        const hit = audit.find(
          (e) =>
            e.verb === a.verb &&
            e.objectRef?.resource === a.resource &&
            e.objectRef?.subresource === a.subresource &&
            (a.namespace === undefined || e.objectRef?.namespace === a.namespace) &&
            (e.responseStatus?.code ?? 0) < 300,
        );
        expect(
          hit,
          `${need.grant}: no successful ${a.verb} ${a.resource} in the audit log`,
        ).toBeDefined();
      }
    }
  });

  it("finds no API call in src/ without a rule (a new call needs its rule in the chart)", async () => {
    const calls = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(join(repoRoot, dir), { withFileTypes: true })) {
        const path = `${dir}/${entry.name}`;
        if (entry.isDirectory()) await walk(path);
        // `migrate` runs once, by a person with their own kubeconfig (it moves
        // another operator's resources and CRD), never as the chart's identity.
        else if (
          path.endsWith(".ts") &&
          !path.endsWith(".test.ts") &&
          path !== "src/cli/migrate.ts"
        ) {
          for (const call of apiCalls(await readFile(join(repoRoot, path), "utf8")))
            calls.add(call);
        }
      }
    };
    await walk("src");
    const known = new Set(needs().flatMap((n) => n.code.map(([, call]) => call)));
    // Granted to every authenticated user by Kubernetes' own system:basic-user
    // role, not by the chart (test/integration/web-identity-rbac.test.ts checks).
    known.add("create SELF_SUBJECT_REVIEWS");
    // Granted per ServiceAccount from chart values (webIdentity.*), none by
    // default: test/integration/web-identity-rbac.test.ts proves the rule.
    known.add("createSubresource SERVICE_ACCOUNTS");
    // Granted with the chart value podRecovery.enabled only (spec.podRecovery:
    // Recreate): test/integration/tenant-rbac.test.ts proves the rule.
    known.add("delete PODS");
    // The same role lets everyone ask what they may do: the pull-failure
    // watch asks before deleting Pods under spec.podRecovery: Recreate.
    known.add("create SELF_SUBJECT_ACCESS_REVIEWS");
    const unknown = [...calls].filter((c) => !known.has(c));
    expect(unknown, "API calls with no RBAC rule in the chart").toEqual([]);
    expect(calls.size).toBeGreaterThanOrEqual(20);
  });
});

describe("least privilege: SubjectAccessReview", () => {
  it("denies what the operator does not need (SubjectAccessReview) and allows what it does", async () => {
    const denied: Array<[string, string, Parameters<typeof allowed>[2]?]> = [
      ["create", "pods", { namespace: "inst-a" }],
      ["delete", "pods", { namespace: "inst-a", name: "x" }],
      ["get", "pods", { namespace: "inst-a" }],
      ["update", "pods", { namespace: "inst-a", name: "x" }],
      ["patch", "pods", { namespace: "inst-a", name: "x", subresource: "status" }],
      ["create", "pods/exec", { namespace: NS }],
      ["get", "namespaces", { name: "inst-a" }],
      ["create", "namespaces"],
      ["delete", "namespaces", { name: "inst-a" }],
      ["patch", "namespaces", { name: "inst-a" }],
      ["update", "secrets", { namespace: "inst-a", name: "ecr-pull" }],
      ["deletecollection", "secrets", { namespace: "inst-a" }],
      ["create", "serviceaccounts", { namespace: "inst-a" }],
      ["update", "serviceaccounts", { namespace: "inst-a", name: "default" }],
      ["delete", "serviceaccounts", { namespace: "inst-a", name: "default" }],
      ["create", "serviceaccounts", { namespace: NS, subresource: "token", name: FULL }],
      ["get", "configmaps", { namespace: NS }],
      ["create", "ecrpullsecrets", { group: "ecrcreds.io" }],
      ["delete", "ecrpullsecrets", { group: "ecrcreds.io", name: "x" }],
      ["update", "ecrpullsecrets", { group: "ecrcreds.io", name: "x" }],
      ["update", "ecrpullsecrets", { group: "ecrcreds.io", name: "x", subresource: "status" }],
      ["patch", "events", { namespace: "default" }],
      ["create", "leases", { group: "coordination.k8s.io", namespace: "kube-system" }],
      ["get", "leases", { group: "coordination.k8s.io", namespace: NS, name: "someone-else" }],
      ["update", "leases", { group: "coordination.k8s.io", namespace: NS, name: "someone-else" }],
      ["delete", "leases", { group: "coordination.k8s.io", namespace: NS, name: FULL }],
      ["create", "clusterrolebindings", { group: "rbac.authorization.k8s.io" }],
      ["escalate", "clusterroles", { group: "rbac.authorization.k8s.io" }],
      ["patch", "customresourcedefinitions", { group: "apiextensions.k8s.io" }],
    ];
    const wronglyAllowed: string[] = [];
    for (const [verb, resource, opts] of denied) {
      if (await allowed(verb, resource, opts))
        wronglyAllowed.push(`${verb} ${resource} ${JSON.stringify(opts ?? {})}`);
    }
    expect(wronglyAllowed).toEqual([]);
    // The reviews can say yes: the operator's own needs are allowed.
    expect(await allowed("list", "secrets")).toBe(true);
    expect(
      await allowed("patch", "serviceaccounts", { namespace: "inst-a", name: "default" }),
    ).toBe(true);
    expect(
      await allowed("update", "leases", {
        group: "coordination.k8s.io",
        namespace: NS,
        name: FULL,
      }),
    ).toBe(true);
    expect(await allowed("create", "events", { namespace: "default" })).toBe(true);
    expect(await allowed("create", "events", { namespace: "inst-a" })).toBe(true);
  });
});

// --- once ------------------------------------------------------------------------

/** The CronJob's arguments, with the chart's identity. */
function onceArgs(): string[] {
  const cron = helmTemplate(["--set", "mode=cronjob"]).find((o) => o.kind === "CronJob") as
    | {
        spec: {
          jobTemplate: { spec: { template: { spec: { containers: RenderedContainer[] } } } };
        };
      }
    | undefined;
  const args = cron?.spec.jobTemplate.spec.template.spec.containers[0]?.args ?? [];
  expect(args[0]).toBe("once");
  // A floor low enough for the test's short-lived tokens.
  return [...args, "--min-refresh-interval=200ms"];
}

describe("once (the CronJob mode) against the control plane", () => {
  let short: AwsDouble;
  let onceEnv: Record<string, string>;
  beforeAll(async () => {
    // Tokens that reach their refresh point within seconds.
    short = new AwsDouble({ tokenLifetimeMs: 8_000 });
    await short.start();
    short.addIdentity({
      accessKeyId: KEYS.AWS_ACCESS_KEY_ID,
      secretAccessKey: KEYS.AWS_SECRET_ACCESS_KEY,
      accountId: ACCOUNT,
      arn: `arn:aws:iam::${ACCOUNT}:user/install`,
    });
    onceEnv = { ...operatorEnv, AWS_ENDPOINT_URL: short.url, LOG_LEVEL: "warn" };
    await applyResource(k, "inst-once-1", {
      secretName: "ecr-pull",
      namespaces: ["inst-o1"],
      registries: [{ accountId: ACCOUNT }],
    });
    await applyResource(k, "inst-once-2", {
      secretName: "ecr-pull-2",
      namespaces: ["inst-o1", "inst-o2"],
      registries: [{ accountId: ACCOUNT }],
    });
  });

  afterAll(async () => {
    await short?.close();
  });

  it("creates the Secrets of every resource in one pass and exits 0", async () => {
    const r = await runOperatorCommand(onceArgs(), onceEnv);
    expect(r.code, r.output).toBe(0);
    const issued = short.issued();
    expect(issued).toHaveLength(1);
    const password = issued[0]?.password;
    expect(await passwordIn("inst-o1", "ecr-pull")).toBe(password);
    expect(await passwordIn("inst-o1", "ecr-pull-2")).toBe(password);
    expect(await passwordIn("inst-o2", "ecr-pull-2")).toBe(password);
    for (const name of ["inst-once-1", "inst-once-2"]) {
      expect(readyCondition(await getResource(k, name))?.status).toBe("True");
    }
  });

  it("refreshes them on a later run once the token is past half its life, and exits 0", async () => {
    const first = short.issued()[0];
    if (!first) throw new Error("no token issued by the first run");
    // Waiting on the token's own clock: past its refresh point (half the
    // lifetime plus the 10% jitter), not for things to settle.
    const due = first.expiresAt.getTime() - 8_000 * 0.5 * 0.9;
    await waitFor(
      "the token to pass its refresh point",
      () => (Date.now() > due ? true : undefined),
      {
        timeoutMs: 15_000,
      },
    );
    const r = await runOperatorCommand(onceArgs(), onceEnv);
    expect(r.code, r.output).toBe(0);
    const issued = short.issued();
    expect(issued).toHaveLength(2);
    const fresh = issued[1]?.password;
    expect(fresh).not.toBe(first.password);
    expect(await passwordIn("inst-o1", "ecr-pull")).toBe(fresh);
    expect(await passwordIn("inst-o1", "ecr-pull-2")).toBe(fresh);
    expect(await passwordIn("inst-o2", "ecr-pull-2")).toBe(fresh);
  });

  it("exits non-zero and names the resource and the reason when AWS refuses its keys", async () => {
    await putKeys("refused-creds", {
      AWS_ACCESS_KEY_ID: "AKIAUNKNOWN000000000",
      AWS_SECRET_ACCESS_KEY: "refused-secret-key-0000000000000000000000",
    });
    await applyResource(k, "inst-once-bad", {
      secretName: "ecr-pull-bad",
      namespaces: ["inst-o2"],
      registries: [{ accountId: ACCOUNT }],
      credentials: { secretRef: { name: "refused-creds", namespace: NS } },
    });
    const r = await runOperatorCommand(onceArgs(), onceEnv);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/ 1 of \d+ ECRPullSecrets failed/);
    expect(r.output).toMatch(
      /inst-once-bad: CredentialsInvalid: failed to get an ECR token in us-east-1: AWS refused/,
    );
    expect(r.output).not.toContain("refused-secret-key");
    expect(await readSecret(k, "inst-o2", "ecr-pull-bad")).toBeUndefined();
    // The others were still served in that pass.
    expect(readyCondition(await getResource(k, "inst-once-2"))?.status).toBe("True");
  });
});
