import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
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
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, readPassword } from "../harness/state.js";

const cp = inject("controlPlane");
const ACCOUNT = "121212121212";
const HOST = ecrHost(ACCOUNT);
const OPS = "leader-ops";
const LEASE = "leader-test";
const REPLICAS = ["replica-1", "replica-2"] as const;
const userOf = (replica: string) => `system:serviceaccount:${OPS}:${replica}`;

let stack: Stack;
let k: TestKube;
let leases: CoordinationV1Api;
let aws: AwsDouble;
const procs = new Map<string, OperatorProcess>();
let started = 0;

const readLease = () => readLeaseOf(leases, OPS, LEASE);
const replicaHolding = (identity: string | undefined) => replicaHoldingOf(procs, identity);

const secretPassword = (ns: string) => readPassword(k, ns, "ecr-leader", HOST);

beforeAll(async () => {
  const built = ensureBuilt();
  stack = await startStack({
    ops: OPS,
    namespaces: ["leader-a"],
    identities: [iamUser("leader", 1, ACCOUNT, "leader")],
  });
  ({ k, aws } = stack);
  stack.resources.push("leader");
  leases = k.kc.makeApiClient(CoordinationV1Api);
  const kubeconfigs = new Map<string, string>();
  for (const r of REPLICAS) kubeconfigs.set(r, await stack.serviceAccountKubeconfig(r));
  await built;
  started = Date.now();
  for (const r of REPLICAS) {
    procs.set(
      r,
      stack.startProcess(
        stack.processArgs(kubeconfigs.get(r) ?? "", [
          "--leader-elect",
          `--leader-election-namespace=${OPS}`,
          `--leader-election-id=${LEASE}`,
        ]),
        { AWS_ENDPOINT_URL: aws.url },
      ),
    );
  }
});

afterAll(async () => {
  await stack?.stop();
});

describe("leader election", () => {
  let leader = "";
  let standby = "";

  it("lets only the leader write", async () => {
    const lease = await waitFor("a Lease holder", async () => {
      const l = await readLease();
      return replicaHolding(l?.spec?.holderIdentity) ? l : undefined;
    }).catch((err: unknown) => {
      for (const [name, p] of procs) console.log(name, p.output.slice(0, 20).join("\n"));
      throw err;
    });
    leader = replicaHolding(lease.spec?.holderIdentity) ?? "";
    standby = REPLICAS.find((r) => r !== leader) ?? "";
    expect(lease.spec?.leaseDurationSeconds).toBe(15);
    await applyResource(k, "leader", {
      secretName: "ecr-leader",
      namespaces: ["leader-*"],
      excludeNamespaces: [OPS],
      registries: [{ accountId: ACCOUNT }],
    });
    await waitFor("leader Ready", async () =>
      readyCondition(await getResource(k, "leader"))?.status === "True" ? true : undefined,
    );
    expect(await secretPassword("leader-a")).toBe(aws.issued()[0]?.password);
    // Give the standby every chance to write too: one more change to react to.
    await stack.namespace("leader-b");
    await waitFor("a Secret in leader-b", () => secretPassword("leader-b"));
    const writes = await auditWrites(cp.auditLogPath, () => true, started);
    const ok = (e: { responseStatus?: { code?: number } }) => (e.responseStatus?.code ?? 0) < 400;
    const byLeader = writes.filter((e) => e.user.username === userOf(leader) && ok(e));
    const byStandby = writes.filter((e) => e.user.username === userOf(standby) && ok(e));
    const kinds = (es: typeof writes) =>
      [...new Set(es.map((e) => `${e.verb} ${e.objectRef?.resource}`))].sort();
    console.log(
      `leader ${leader}: ${byLeader.length} writes (${kinds(byLeader).join(", ")}); standby ${standby}: ${byStandby.length} writes`,
    );
    expect(kinds(byLeader)).toEqual(
      expect.arrayContaining(["create leases", "create secrets", "patch serviceaccounts"]),
    );
    expect(byStandby.map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name}`)).toEqual(
      [],
    );
  });

  it("hands over within 20 s when the leader is killed, and the survivor carries on", async () => {
    const p = procs.get(leader);
    const killed = Date.now();
    await p?.stop("SIGKILL");
    const lease = await waitFor(
      "the standby to take the Lease",
      async () => {
        const l = await readLease();
        return replicaHolding(l?.spec?.holderIdentity) === standby ? l : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const acquired = lease.spec?.acquireTime ? new Date(lease.spec.acquireTime).getTime() : 0;
    const handoverMs = acquired - killed;
    console.log(`handover ${handoverMs} ms after SIGKILL (lease 15 s, retry 2 s)`);
    expect(handoverMs).toBeGreaterThan(0);
    expect(handoverMs).toBeLessThan(20_000);
    // The survivor serves a namespace created after the handover.
    const since = Date.now();
    await stack.namespace("leader-c");
    await waitFor("a Secret in leader-c", () => secretPassword("leader-c"));
    expect(await secretPassword("leader-c")).toBe(await secretPassword("leader-a"));
    const writes = await auditWrites(
      cp.auditLogPath,
      (e) => e.objectRef?.namespace === "leader-c" && e.objectRef?.resource === "secrets",
      since,
    );
    expect(writes.map((e) => e.user.username)).toEqual([userOf(standby)]);
  });

  it("releases the Lease and exits 0 on SIGTERM", async () => {
    const p = procs.get(standby);
    const code = await p?.stop("SIGTERM");
    expect(code).toBe(0);
    const lease = await readLease();
    expect(lease?.spec?.holderIdentity ?? "").toBe("");
    expect(p?.output.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });
});
