// A replica that may not touch its leader Lease can never lead, so it must
// not report ready. The built executable runs with the chart's ClusterRole
// but no Role for Leases, and no --leader-election-namespace: the Lease
// namespace comes from its kubeconfig context. /readyz answers 503 while the
// Lease is forbidden (caches synced all the same), the log says why, and a
// metric counts it; granting the chart's Lease Role makes it ready and leader,
// with the Lease in the context's namespace.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../harness/build.js";
import { deleteChartRbac, helmTemplate, type Rendered, serverSideApply } from "../harness/chart.js";
import { consistently, freePort } from "../harness/controlplane.js";
import { kubeconfigForServiceAccount, type TestKube, waitFor } from "../harness/kube.js";
import type { OperatorProcess } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const OPS = "forbid-ops";
/** The chart for this ServiceAccount, in OPS; its Lease is named ecr-creds-refresher. */
const chart = () =>
  helmTemplate("ecr-creds-refresher", OPS, [
    "--set",
    "serviceAccount.create=false",
    "--set",
    "serviceAccount.name=operator",
  ]).filter((o) =>
    ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"].includes(o.kind ?? ""),
  );
let rbac: Rendered[] = [];
let stack: Stack;
let k: TestKube;
let p: OperatorProcess | undefined;
let healthPort = 0;
let metricsPort = 0;

const get = async (port: number, path: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
};

beforeAll(async () => {
  const built = ensureBuilt();
  // No AWS call is made here: no credentials Secret.
  stack = await startStack({ ops: OPS, credentials: false });
  k = stack.k;
  // Its own ServiceAccount, bound to the chart's roles only (not stack's
  // serviceAccountKubeconfig, which binds cluster-admin).
  const plain = await kubeconfigForServiceAccount(k, OPS, "operator", stack.dir);
  // The same kubeconfig with the namespace on its context, as `kubectl
  // config set-context --namespace` writes it.
  const config = JSON.parse(await readFile(plain, "utf8"));
  config.contexts[0].context.namespace = OPS;
  const kubeconfig = join(stack.dir, "with-namespace.kubeconfig");
  await writeFile(kubeconfig, JSON.stringify(config));
  // The chart's ClusterRole and its binding, without its Lease Role (granted later).
  rbac = chart();
  stack.onStop(() => deleteChartRbac(k, rbac));
  for (const o of rbac) if (o.kind?.startsWith("Cluster")) await serverSideApply(k, o);
  await built;
  healthPort = await freePort();
  metricsPort = await freePort();
  p = stack.startProcess([
    "run",
    `--kubeconfig=${kubeconfig}`,
    "--leader-elect",
    `--health-probe-bind-address=127.0.0.1:${healthPort}`,
    `--metrics-bind-address=127.0.0.1:${metricsPort}`,
    "--region=us-east-1",
    "--verify=false",
  ]);
});

afterAll(async () => {
  await stack?.stop();
});

describe("readiness and the leader Lease", () => {
  it("is not ready while the Lease is forbidden, says why in the log and a metric, and becomes ready and leader once allowed", async () => {
    const logLine = await waitFor(
      "a Forbidden leader-lease failure in the log",
      () =>
        p?.output.find(
          (l) => l.includes('"msg":"failed to update leader lease"') && l.includes("Forbidden"),
        ),
      { timeoutMs: 30_000 },
    );
    const line = JSON.parse(logLine) as {
      namespace: string;
      reason: string;
      err: { message: string };
    };
    expect(line.namespace).toBe(OPS);
    expect(line.reason).toBe("Forbidden");
    expect(line.err.message).toBe(
      `leases.coordination.k8s.io "ecr-creds-refresher" is forbidden: User "system:serviceaccount:${OPS}:operator" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "${OPS}"`,
    );
    expect(p?.output.some((l) => l.includes('"msg":"caches synced"'))).toBe(true);
    // Readiness never turns 200 while the Lease stays forbidden.
    await consistently(
      "/readyz 503 while the Lease is forbidden",
      async () => {
        const res = await get(healthPort, "/readyz");
        return res.status === 503 && res.body === "not ready\n" ? true : JSON.stringify(res);
      },
      { forMs: 3_000, intervalMs: 300 },
    );
    expect((await get(healthPort, "/healthz")).status).toBe(200);
    const metrics = (await get(metricsPort, "/metrics")).body;
    const forbidden = Number(
      /ecr_creds_refresher_leader_election_errors_total\{reason="Forbidden"\} (\d+)/.exec(
        metrics,
      )?.[1],
    );
    expect(forbidden).toBeGreaterThanOrEqual(1);

    // The chart's Lease Role, in the namespace the context named.
    for (const o of rbac) if (o.kind?.startsWith("Role")) await serverSideApply(k, o);
    await waitFor(
      "/readyz 200",
      async () => ((await get(healthPort, "/readyz")).status === 200 ? true : undefined),
      { timeoutMs: 30_000 },
    );
    expect(p?.output.some((l) => l.includes('"msg":"became leader"'))).toBe(true);
    const lease = await k.kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace: OPS, name: "ecr-creds-refresher" });
    expect(lease.spec?.holderIdentity).toBeTruthy();
  });
});
