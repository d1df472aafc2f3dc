// The namespace-scoped install (rbac.scope=namespaced) on a real API server:
// the chart's Roles are applied, the built operator runs as its own process
// with a token of the chart's ServiceAccount and the Deployment's own
// arguments and environment, so RBAC is enforced on every call. Everything
// that works within the granted namespaces works; nothing outside them is
// readable or read; a resource that names an outside namespace says so.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
import {
  apiCalls,
  applyChart,
  deleteChartRbac,
  flattenRules,
  helmTemplate,
  operatorInvocation,
  type Rendered,
  renderedOne,
  serviceAccountMay,
} from "../harness/chart.js";
import { freePort, repoRoot } from "../harness/controlplane.js";
import {
  applyResource,
  auditEvents,
  deleteResource,
  dockerConfigOf,
  getResource,
  kubeconfigForServiceAccount,
  mergePatch,
  putSecret,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { type OperatorProcess, runOperatorCommand } from "../harness/operator.js";
import { namespacedNeeds } from "../harness/rbac.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const NS = "nsi-system";
const RELEASE = "nsi";
const FULL = "nsi-ecr-creds-refresher";
const USER = `system:serviceaccount:${NS}:${FULL}`;
const ACCOUNT = "555566667777";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const KEYS = {
  AWS_ACCESS_KEY_ID: "AKIANAMESPACED000001",
  AWS_SECRET_ACCESS_KEY: "namespaced-secret-key-00000000000000001",
};
/** Granted to the operator by the chart. */
const SERVED = ["nsi-a", "nsi-b"];
/** Exists, matches the resource's glob, and is not granted. */
const OUTSIDE = "nsi-outside";
const NOT_GRANTED = `failed to serve namespace ${OUTSIDE}: it is outside the namespaces this install may serve (nsi-a, nsi-b); add it to the chart value rbac.namespaces (the operator's --watch-namespaces)`;

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let objects: Rendered[];
let op: OperatorProcess | undefined;
let args: string[];
let env: Record<string, string>;
let since = 0;

async function passwordIn(namespace: string, name = "ecr-pull"): Promise<string | undefined> {
  const s = await readSecret(k, namespace, name);
  return s ? dockerConfigOf(s).auths[HOST]?.password : undefined;
}

async function pullSecretsOf(namespace: string): Promise<string[]> {
  const sa = await k.core.readNamespacedServiceAccount({ namespace, name: "default" });
  return (sa.imagePullSecrets ?? []).map((r) => r.name ?? "");
}

const operatorAudit = () => auditEvents(cp.auditLogPath, (e) => e.user.username === USER, since);

const may = (verb: string, resource: string, opts?: Parameters<typeof serviceAccountMay>[4]) =>
  serviceAccountMay(k, { namespace: NS, name: FULL }, verb, resource, opts);

beforeAll(async () => {
  since = Date.now() - 1000;
  stack = await startStack({
    ops: NS,
    namespaces: [...SERVED, OUTSIDE],
    // Tokens that reach their refresh point within seconds.
    tokenLifetimeMs: 12_000,
    identities: [
      {
        accessKeyId: KEYS.AWS_ACCESS_KEY_ID,
        secretAccessKey: KEYS.AWS_SECRET_ACCESS_KEY,
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/namespaced`,
      },
    ],
    // Put below under the chart's key names.
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push("nsi", "nsi-wide", "nsi-once");
  // The cluster-scoped RBAC and the Events Role in "default", which stays.
  stack.onStop(() => deleteChartRbac(k, objects ?? []));
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
    `rbac.namespaces={${SERVED.join(",")}}`,
  ]);
  await putSecret(k, NS, "aws-creds", KEYS);
  // Secrets the operator must never be able to read.
  await putSecret(k, NS, "not-ours", { token: "in-the-credentials-namespace" });
  await putSecret(k, OUTSIDE, "not-ours", { token: "outside-the-granted-set" });
  await applyChart(k, objects);

  const c = renderedOne(objects, "Deployment").spec?.template?.spec?.containers?.[0];
  if (!c) throw new Error("the Deployment has no container");
  const invocation = operatorInvocation(c, NS, {
    health: await freePort(),
    metrics: await freePort(),
  });
  // A floor low enough for the short-lived tokens of the refresh test.
  args = [...invocation.args, "--min-refresh-interval=500ms"];
  env = {
    ...invocation.env,
    AWS_ENDPOINT_URL: aws.url,
    KUBECONFIG: await kubeconfigForServiceAccount(k, NS, FULL, stack.dir),
  };
});

afterAll(async () => {
  await stack?.stop();
});

describe("rbac.scope=namespaced", () => {
  it("renders Secret and ServiceAccount rights only as Roles in the served namespaces, and the credentials Secret by name", () => {
    // The operator's ClusterRole, and the viewer and editor roles for people.
    expect(objects.map((o) => `${o.kind} ${o.metadata?.namespace ?? ""}`).sort()).toEqual([
      "ClusterRole ",
      "ClusterRole ",
      "ClusterRole ",
      "ClusterRole ",
      "ClusterRoleBinding ",
      "CustomResourceDefinition ",
      "CustomResourceDefinition ",
      "CustomResourceDefinition ",
      "Deployment nsi-system",
      "Role default",
      "Role nsi-a",
      "Role nsi-b",
      "Role nsi-system",
      "Role nsi-system",
      "Role nsi-system",
      "RoleBinding default",
      "RoleBinding nsi-a",
      "RoleBinding nsi-b",
      "RoleBinding nsi-system",
      "RoleBinding nsi-system",
      "RoleBinding nsi-system",
      "Service nsi-system",
      "ServiceAccount nsi-system",
    ]);
    const cluster = flattenRules("cluster", renderedOne(objects, "ClusterRole").rules ?? []);
    expect(cluster.filter((g) => / (secrets|serviceaccounts)\b/.test(g))).toEqual([]);
    const credentials = objects.find(
      (o) => o.kind === "Role" && o.metadata?.name === `${FULL}-credentials`,
    );
    expect(flattenRules(NS, credentials?.rules ?? [])).toEqual([
      `${NS} core secrets/aws-creds get`,
      `${NS} core secrets/aws-creds list`,
      `${NS} core secrets/aws-creds watch`,
    ]);
    const c = renderedOne(objects, "Deployment").spec?.template?.spec?.containers?.[0];
    expect(c?.env.find((e) => e.name === "WATCH_NAMESPACES")?.value).toBe("nsi-a,nsi-b");
  });

  it("grants exactly the namespaced need table, each rule one the code calls", async () => {
    const granted = objects.flatMap((o) =>
      // The operator's own ClusterRole; the viewer and editor roles are for people.
      o.kind === "ClusterRole" && o.metadata?.name === FULL
        ? flattenRules("cluster", o.rules ?? [])
        : o.kind === "Role"
          ? flattenRules(o.metadata?.namespace ?? "", o.rules ?? [])
          : [],
    );
    const needs = namespacedNeeds(NS, FULL, SERVED, [{ namespace: NS, name: "aws-creds" }]);
    // Both directions: nothing granted that is not needed, nothing needed that is not granted.
    expect(granted.sort()).toEqual(needs.map((n) => n.grant).sort());
    for (const need of needs) {
      for (const [file, call] of need.code) {
        const calls = apiCalls(await readFile(join(repoRoot, file), "utf8"));
        expect(calls.has(call), `${need.grant}: ${file} should call ${call}`).toBe(true);
      }
    }
  });

  it("denies Secrets outside the served namespaces and other Secrets of the credentials namespace (SubjectAccessReview)", async () => {
    const denied: Array<[string, string, Parameters<typeof may>[2]?]> = [
      ["list", "secrets"],
      ["watch", "secrets"],
      ["get", "secrets", { namespace: OUTSIDE, name: "not-ours" }],
      ["list", "secrets", { namespace: OUTSIDE }],
      ["watch", "secrets", { namespace: OUTSIDE }],
      ["get", "secrets", { namespace: "kube-system", name: "anything" }],
      // In its own namespace it lists, watches, writes and deletes its token
      // records (RBAC cannot narrow these to their label), but reads nothing by name.
      ["get", "secrets", { namespace: NS, name: "not-ours" }],
      ["create", "secrets", { namespace: OUTSIDE }],
      ["list", "serviceaccounts"],
      ["patch", "serviceaccounts", { namespace: OUTSIDE, name: "default" }],
    ];
    const wronglyAllowed: string[] = [];
    for (const [verb, resource, opts] of denied) {
      if (await may(verb, resource, opts))
        wronglyAllowed.push(`${verb} ${resource} ${JSON.stringify(opts ?? {})}`);
    }
    expect(wronglyAllowed).toEqual([]);
    // The reviews can say yes.
    expect(await may("get", "secrets", { namespace: NS, name: "aws-creds" })).toBe(true);
    expect(await may("watch", "secrets", { namespace: NS, name: "aws-creds" })).toBe(true);
    expect(await may("list", "secrets", { namespace: "nsi-a" })).toBe(true);
    expect(await may("patch", "serviceaccounts", { namespace: "nsi-b", name: "default" })).toBe(
      true,
    );
  });
});

describe("rbac.scope=namespaced: the operator at work", () => {
  it("serves the granted namespaces: Secrets, ServiceAccount merge, status, refresh", async () => {
    for (const ns of SERVED) await waitForDefaultServiceAccount(k, ns);
    // Someone else's entry, which the merge keeps.
    await k.core.patchNamespacedServiceAccount(
      { namespace: "nsi-b", name: "default", body: { imagePullSecrets: [{ name: "other" }] } },
      mergePatch,
    );
    op = stack.startProcess(args, env);
    // The glob matches nsi-outside too: evaluated within the granted set, it is no target.
    await applyResource(k, "nsi", {
      secretName: "ecr-pull",
      namespaces: ["nsi-*"],
      registries: [{ accountId: ACCOUNT }],
    });
    const ready = await waitFor("nsi to be Ready", async () => {
      const r = await getResource(k, "nsi");
      return readyCondition(r)?.status === "True" ? r : undefined;
    });
    expect(ready.status?.namespaces).toMatchObject({ desired: 2, synced: 2, failed: 0 });
    expect(readyCondition(ready)?.message).toBe(
      "2/2 namespaces (namespaces, globs and selectors evaluated within the 2 namespaces this install may serve)",
    );
    const first = aws.issued()[0]?.password;
    expect(first).toBeDefined();
    for (const ns of SERVED) expect(await passwordIn(ns)).toBe(first);
    expect(await readSecret(k, OUTSIDE, "ecr-pull")).toBeUndefined();
    await waitFor("nsi-b/default to hold both entries", async () =>
      (await pullSecretsOf("nsi-b")).join() === "other,ecr-pull" ? true : undefined,
    );
    expect(await pullSecretsOf("nsi-a")).toEqual(["ecr-pull"]);

    // Refresh before expiry (half of the 12 s lifetime).
    const fresh = await waitFor(
      "a refreshed token in both namespaces",
      async () => {
        const issued = aws.issued();
        const last = issued[issued.length - 1]?.password;
        if (issued.length < 2 || !last) return undefined;
        for (const ns of SERVED) if ((await passwordIn(ns)) !== last) return undefined;
        return last;
      },
      { timeoutMs: 30_000 },
    );
    expect(fresh).not.toBe(first);
  });

  it("reports a namespace named outside the granted set as NamespaceNotGranted, naming it and the chart value, and serves the rest", async () => {
    await applyResource(k, "nsi-wide", {
      secretName: "ecr-pull-wide",
      namespaces: ["nsi-a", OUTSIDE],
      registries: [{ accountId: ACCOUNT }],
    });
    const r = await waitFor("nsi-wide to report NamespaceNotGranted", async () => {
      const x = await getResource(k, "nsi-wide");
      return readyCondition(x)?.reason === "NamespaceNotGranted" ? x : undefined;
    });
    expect(readyCondition(r)?.status).toBe("False");
    expect(readyCondition(r)?.message).toBe(`1/2 namespaces synced; ${NOT_GRANTED}`);
    expect(r.status?.failures).toEqual([
      {
        namespace: OUTSIDE,
        reason: "NamespaceNotGranted",
        message: NOT_GRANTED,
      },
    ]);
    expect(r.status?.namespaces).toMatchObject({ desired: 2, synced: 1, failed: 1 });
    await waitFor("nsi-a's Secret of nsi-wide", async () =>
      (await passwordIn("nsi-a", "ecr-pull-wide")) ? true : undefined,
    );
    const event = await waitFor("a NamespaceNotGranted Event", async () => {
      const list = await k.core.listNamespacedEvent({ namespace: "default" });
      return list.items.find(
        (e) => e.involvedObject.name === "nsi-wide" && e.reason === "NamespaceNotGranted",
      );
    });
    expect(event.type).toBe("Warning");
    // Still running: no crash, no restart loop.
    expect(op?.proc.exitCode).toBeNull();
  });

  it("cleans up on delete within the granted namespaces, keeping others' entries", async () => {
    await deleteResource(k, "nsi-wide");
    await deleteResource(k, "nsi");
    for (const name of ["nsi", "nsi-wide"]) {
      await waitFor(`${name} to be gone (finalizer removed)`, async () =>
        (await getResource(k, name)) === undefined ? true : undefined,
      );
    }
    for (const ns of SERVED) {
      await waitFor(`the Secret in ${ns} to be deleted`, async () =>
        (await readSecret(k, ns, "ecr-pull")) === undefined ? true : undefined,
      );
    }
    expect(await readSecret(k, "nsi-a", "ecr-pull-wide")).toBeUndefined();
    expect(await pullSecretsOf("nsi-a")).toEqual([]);
    expect(await pullSecretsOf("nsi-b")).toEqual(["other"]);
  });
});

describe("rbac.scope=namespaced: once, and the audit log", () => {
  it("runs `once` (the CronJob mode) under the same Roles", async () => {
    await op?.stop();
    op = undefined;
    const cron = helmTemplate(RELEASE, NS, [
      "--set",
      "mode=cronjob",
      "--set",
      "rbac.scope=namespaced",
      "--set",
      `rbac.namespaces={${SERVED.join(",")}}`,
      "--set",
      "aws.credentials.secretName=aws-creds",
    ]).find((o) => o.kind === "CronJob") as unknown as {
      spec: {
        jobTemplate: {
          spec: { template: { spec: { containers: Array<{ args: string[]; env: unknown[] }> } } };
        };
      };
    };
    const container = cron.spec.jobTemplate.spec.template.spec.containers[0];
    expect(container?.args[0]).toBe("once");
    expect(container?.env).toContainEqual({ name: "WATCH_NAMESPACES", value: "nsi-a,nsi-b" });
    await applyResource(k, "nsi-once", {
      secretName: "ecr-pull-once",
      namespaces: ["nsi-b"],
      registries: [{ accountId: ACCOUNT }],
    });
    const before = aws.issued().length;
    const r = await runOperatorCommand(["once", ...(container?.args.slice(1) ?? [])], env);
    expect(r.code, r.output).toBe(0);
    // The token recorded in the operator's namespace when one is (no AWS
    // call), else one fetch: the running operator deleted its record when
    // the last resource of the source went (the test above).
    expect(aws.issued().length - before).toBeLessThanOrEqual(1);
    expect(await passwordIn("nsi-b", "ecr-pull-once")).toBe(aws.issued().at(-1)?.password);
    expect(readyCondition(await getResource(k, "nsi-once"))?.status).toBe("True");
  });

  it("asked for no Secret outside the granted namespaces and was never refused (audit log)", async () => {
    const audit = await operatorAudit();
    expect(audit.length).toBeGreaterThan(0);
    const outside = audit.filter(
      (e) =>
        e.objectRef?.resource === "secrets" &&
        !SERVED.includes(e.objectRef.namespace ?? "") &&
        !(e.objectRef.namespace === NS && e.objectRef.name === "aws-creds") &&
        // Its token records, in its own namespace.
        !(
          e.objectRef.namespace === NS && e.objectRef.name?.startsWith("ecr-creds-refresher-token-")
        ),
    );
    expect(outside.map((e) => `${e.verb} ${e.objectRef?.namespace}/${e.objectRef?.name}`)).toEqual(
      [],
    );
    expect(audit.filter((e) => e.responseStatus?.code === 403)).toEqual([]);
  });
});
