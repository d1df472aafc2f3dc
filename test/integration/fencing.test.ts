// Fencing: a replica that loses its Lease stops writing at once. Two replicas
// of the built executable, each its own ServiceAccount so the audit log tells
// their writes apart, fan one ECRPullSecret out to 200 namespaces at 10 QPS.
// Mid-pass the leader is frozen with SIGSTOP past its lease duration; the
// standby takes the Lease and starts its own pass; then the old leader is
// resumed with its writes queued. It must not write again (the audit log shows
// no write by its identity more than 1 s after the new leader took the
// Lease), it must exit within about a second, and the new leader converges
// every namespace.
import { CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ECR_PULL_SECRETS, type ECRPullSecret } from "../../src/api/index.js";
import { KubeClient, loadKubeConfig, statusCode } from "../../src/kube/client.js";
import type { AwsDouble } from "../aws-double/index.js";
import { ensureBuilt } from "../harness/build.js";
import {
  applyResource,
  auditWrites,
  getResource,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { readLease as readLeaseOf, replicaHolding as replicaHoldingOf } from "../harness/lease.js";
import type { OperatorProcess } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const ACCOUNT = "565656565656";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OPS = "fence-ops";
const LEASE = "fence-test";
const SECRET = "ecr-fence";
const FAN_OUT = 200;
const REPLICAS = ["fence-1", "fence-2"] as const;
const userOf = (replica: string) => `system:serviceaccount:${OPS}:${replica}`;
const namespaces = Array.from({ length: FAN_OUT }, (_, i) => `fence-n-${i}`);
const KEYS = {
  accessKeyId: "AKIAFENCE00000000001",
  secretAccessKey: "fence-secret-key-00000000000000000000001",
};

let stack: Stack;
let k: TestKube;
let leases: CoordinationV1Api;
let aws: AwsDouble;
const procs = new Map<string, OperatorProcess>();

const readLease = () => readLeaseOf(leases, OPS, LEASE);
const replicaHolding = (identity: string | undefined) => replicaHoldingOf(procs, identity);

/** Namespaces whose Secret holds `password` and whose default ServiceAccount references it. */
async function converged(password: string): Promise<number> {
  const [secrets, sas] = await Promise.all([
    k.core.listSecretForAllNamespaces({ fieldSelector: `metadata.name=${SECRET}` }),
    k.core.listServiceAccountForAllNamespaces({ fieldSelector: "metadata.name=default" }),
  ]);
  const good = new Set<string>();
  for (const s of secrets.items) {
    const raw = Buffer.from(s.data?.[".dockerconfigjson"] ?? "", "base64").toString("utf8");
    try {
      const auths = (JSON.parse(raw) as { auths: Record<string, { password: string }> }).auths;
      if (auths[HOST]?.password === password) good.add(s.metadata?.namespace ?? "");
    } catch {
      // not (yet) a dockerconfigjson
    }
  }
  let n = 0;
  for (const sa of sas.items) {
    const ns = sa.metadata?.namespace ?? "";
    if (good.has(ns) && sa.imagePullSecrets?.some((r) => r.name === SECRET)) n++;
  }
  return n;
}

async function secretCount(): Promise<number> {
  const list = await k.core.listSecretForAllNamespaces({
    fieldSelector: `metadata.name=${SECRET}`,
  });
  return list.items.length;
}

beforeAll(async () => {
  const built = ensureBuilt();
  stack = await startStack({
    ops: OPS,
    tokenLifetimeMs: 30 * 60_000,
    identities: [{ ...KEYS, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/fence` }],
  });
  ({ k, aws } = stack);
  leases = k.kc.makeApiClient(CoordinationV1Api);
  stack.resources.push("fence");
  for (let i = 0; i < namespaces.length; i += 25)
    await Promise.all(
      namespaces.slice(i, i + 25).map((ns) => stack.namespace(ns, { "fence-test": "yes" })),
    );
  const kubeconfigs = new Map<string, string>();
  for (const r of REPLICAS) kubeconfigs.set(r, await stack.serviceAccountKubeconfig(r));
  await built;
  for (const r of REPLICAS) {
    const args = stack.processArgs(kubeconfigs.get(r) ?? "", [
      "--leader-elect",
      `--leader-election-id=${LEASE}`,
      "--kube-api-qps=10",
      "--kube-api-burst=1",
    ]);
    procs.set(r, stack.startProcess(args, { AWS_ENDPOINT_URL: aws.url }));
  }
}, 600_000);

afterAll(async () => {
  // A frozen replica would not see SIGTERM; stop() kills with SIGKILL anyway.
  for (const p of procs.values())
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill("SIGCONT");
  await stack?.stop();
});

/**
 * Waits until the leader's pass has written some Secrets, freezes the leader
 * (SIGSTOP) and waits for the standby to take the Lease. Returns how many
 * Secrets were written at the freeze, when it was, and the Lease as taken.
 */
async function freezeLeaderMidPass(
  old: OperatorProcess,
  newLeader: string,
): Promise<{ before: number; frozenAt: number; taken: V1Lease }> {
  // Mid-pass: some Secrets written, most not.
  const before = await waitFor(
    "the leader's pass to be under way",
    async () => {
      const n = await secretCount();
      return n >= 20 ? n : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  old.proc.kill("SIGSTOP");
  const frozenAt = Date.now();
  const taken = await waitFor(
    "the standby to take the Lease",
    async () => {
      const l = await readLease();
      return replicaHolding(l?.spec?.holderIdentity) === newLeader ? l : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 100 },
  );
  return { before, frozenAt, taken };
}

/**
 * Once the new leader (which took the Lease at `lostAt`) is writing, wakes
 * the old one with its queued writes; returns its exit code (or "still
 * running" after 10 s), when it was resumed, and how long it took to exit.
 */
async function resumeOldLeader(
  old: OperatorProcess,
  newLeader: string,
  lostAt: number,
): Promise<{ code: number | string; resumedAt: number; exitMs: number }> {
  await waitFor(
    "the new leader's first write",
    async () =>
      (await auditWrites(cp.auditLogPath, (e) => e.user.username === userOf(newLeader), lostAt))
        .length > 0 || undefined,
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  const resumedAt = Date.now();
  old.proc.kill("SIGCONT");
  const code = await Promise.race([
    old.exited,
    new Promise<string>((r) => setTimeout(() => r("still running"), 10_000)),
  ]);
  return { code, resumedAt, exitMs: Date.now() - resumedAt };
}

/** Waits until every namespace holds one issued password and the resource is Ready; returns it. */
async function everyNamespaceConverged(): Promise<string> {
  const issued = () => aws.issued().map((t) => t.password);
  return await waitFor(
    "every namespace converged by the new leader",
    async () => {
      const r = await getResource(k, "fence");
      if (readyCondition(r)?.status !== "True") return undefined;
      for (const pw of issued()) if ((await converged(pw)) === FAN_OUT) return pw;
      return undefined;
    },
    { timeoutMs: 180_000, intervalMs: 1_000 },
  );
}

describe("fencing on lost leadership", () => {
  it("a leader frozen past its lease never writes again once the standby holds the Lease, exits within a second, and the new leader converges every namespace", async () => {
    const first = await waitFor("a Lease holder", async () => {
      const l = await readLease();
      return replicaHolding(l?.spec?.holderIdentity) ? l : undefined;
    });
    const oldLeader = replicaHolding(first.spec?.holderIdentity) ?? "";
    const newLeader = REPLICAS.find((r) => r !== oldLeader) ?? "";
    const old = procs.get(oldLeader) as OperatorProcess;
    await applyResource(k, "fence", {
      secretName: SECRET,
      namespaceSelector: { matchLabels: { "fence-test": "yes" } },
      registries: [{ accountId: ACCOUNT }],
    });
    const { before, frozenAt, taken } = await freezeLeaderMidPass(old, newLeader);
    const lostAt = new Date(taken.spec?.acquireTime ?? 0).getTime();
    const { code, resumedAt, exitMs } = await resumeOldLeader(old, newLeader, lostAt);
    expect(code).toBe(1);
    expect(exitMs).toBeLessThan(1_500);

    const password = await everyNamespaceConverged();
    expect(aws.isValidPassword(password)).toBe(true);
    expect((await getResource(k, "fence"))?.status?.namespaces).toMatchObject({
      desired: FAN_OUT,
      synced: FAN_OUT,
      failed: 0,
    });

    const writes = await auditWrites(
      cp.auditLogPath,
      (e) => e.user.username === userOf(oldLeader),
      frozenAt - 60_000,
    );
    const after = writes.filter((e) => Date.parse(e.requestReceivedTimestamp) > lostAt);
    const late = writes.filter((e) => Date.parse(e.requestReceivedTimestamp) > lostAt + 1_000);
    const lastWrite = Math.max(...writes.map((e) => Date.parse(e.requestReceivedTimestamp)));
    console.log(
      `fencing: ${before} Secrets written when the leader was frozen; standby took the Lease ${lostAt - frozenAt} ms after the freeze; old leader resumed ${resumedAt - lostAt} ms after losing it and exited ${exitMs} ms later (code ${code}); its last write ${lastWrite - lostAt} ms relative to the loss; writes after the loss: ${after.length}`,
    );
    expect(
      late.map(
        (e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name} ${e.responseStatus?.code}`,
      ),
    ).toEqual([]);
    // And the old leader did write before the freeze: the test watched a real pass.
    expect(writes.some((e) => e.objectRef?.resource === "secrets")).toBe(true);
    expect(procs.get(newLeader)?.proc.exitCode).toBeNull();
  });

  it("refuses a status patch made from an older copy of the resource (409), as an old leader's would be", async () => {
    const kube = new KubeClient(loadKubeConfig(cp.kubeconfigPath), { qps: 0, burst: 0 });
    const now = await kube.get<ECRPullSecret>(ECR_PULL_SECRETS, { name: "fence" });
    const rv = now.metadata?.resourceVersion ?? "";
    // A change (so the server moves the resourceVersion on), then the same
    // change from the copy before it.
    const status = { ...now.status, observedGeneration: 0 };
    const written = await kube.patchStatus<ECRPullSecret>(
      ECR_PULL_SECRETS,
      { name: "fence" },
      rv,
      status,
    );
    expect(written.metadata?.resourceVersion).not.toBe(rv);
    const stale = await kube
      .patchStatus(ECR_PULL_SECRETS, { name: "fence" }, rv, now.status)
      .catch((e: unknown) => e);
    expect(statusCode(stale)).toBe(409);
    expect((stale as Error).message).toContain("the object has been modified");
  });
});
