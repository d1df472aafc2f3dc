// Issue 28, kinds 1 and 2: what a namespace admin writes is never the
// operator's belief about a token, and never fills its memory. Every write of
// the attacker goes through a tenant client (a ServiceAccount bound to the
// built-in `admin` ClusterRole in its own namespace only).
import { readFile } from "node:fs/promises";
import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageNodeFlags } from "../../bench/lib.js";
import type { AwsDouble } from "../aws-double/index.js";
import { ensureBuilt } from "../harness/build.js";
import {
  applyResource,
  deleteResource,
  readSecret,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { readLease, replicaHolding } from "../harness/lease.js";
import type { OperatorProcess } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, MANAGED_BY, OWNER_LABEL, passwordIn } from "../harness/state.js";
import { type Tenant, tenantOf } from "../harness/tenant.js";

const ACCOUNT = "282828282828";
const HOST = ecrHost(ACCOUNT);
const OPS = "tstate-ops";
const TARGETS = ["tstate-a", "tstate-b", "tstate-c"];
const OTHER = "tstate-other";
const SECRET = "ecr-tstate";
const LEASE = "tstate-lease";
const POISON = "poison";

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let kubeconfig: string;
let nodeFlags: string[];
const tenants = new Map<string, Tenant>();

const tenant = (ns: string): Tenant => {
  const t = tenants.get(ns);
  if (!t) throw new Error(`no tenant of ${ns}`);
  return t;
};

/** The one password the AWS double has issued in this file (so far). */
function issuedPassword(): string {
  const issued = aws.issued();
  expect(issued).toHaveLength(1);
  return issued[0]?.password ?? "";
}

const tokenCalls = () => aws.calls({ action: "GetAuthorizationToken" }).length;

/** What a tenant writes: a pull Secret with our labels, a poisoned password and an expiry in 2099. */
function poisoned(namespace: string, original?: Record<string, string>) {
  const config = JSON.stringify({
    auths: {
      [HOST]: {
        username: "AWS",
        password: POISON,
        auth: Buffer.from(`AWS:${POISON}`).toString("base64"),
      },
    },
  });
  return {
    metadata: {
      name: SECRET,
      namespace,
      labels: { [MANAGED_BY]: "ecr-creds-refresher", [OWNER_LABEL]: "tstate" },
      annotations: {
        ...original,
        "ecrcreds.io/token-expires-at": "2099-01-01T00:00:00.000Z",
        "ecrcreds.io/token-fetched-at": new Date().toISOString(),
      },
    },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": Buffer.from(config).toString("base64") },
  };
}

/** The tenant of `namespace` replaces the operator's Secret there with a poisoned one. */
async function poison(namespace: string): Promise<void> {
  const current = await readSecret(k, namespace, SECRET);
  await tenant(namespace).kube.core.replaceNamespacedSecret({
    namespace,
    name: SECRET,
    body: {
      ...poisoned(namespace, current?.metadata?.annotations),
      metadata: {
        ...poisoned(namespace, current?.metadata?.annotations).metadata,
        resourceVersion: current?.metadata?.resourceVersion,
      },
    },
  });
}

async function passwords(): Promise<Array<string | undefined>> {
  return await Promise.all(
    TARGETS.map(async (ns) => passwordIn(await readSecret(k, ns, SECRET), HOST)),
  );
}

/**
 * Polls every target until all hold `want`; fails at once if a namespace
 * other than `poisonedIn` ever holds the poison. Returns how long after the
 * start the poisoned namespace still held it (ms).
 */
async function watchRepair(want: string, poisonedIn: string, since: number): Promise<number> {
  let heldUntil = 0;
  await waitFor(
    `every target to hold the issued password again`,
    async () => {
      const now = Date.now();
      const seen = await passwords();
      TARGETS.forEach((ns, i) => {
        if (seen[i] !== POISON) return;
        expect(ns, `${ns} took up the poisoned password`).toBe(poisonedIn);
        heldUntil = now;
      });
      return seen.every((p) => p === want) ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  return Math.max(0, heldUntil - since);
}

function processArgs(extra: string[] = []): string[] {
  return stack.processArgs(kubeconfig, extra);
}

/** The operator as its image runs it: the Dockerfile's Node flags size V8's heap for it. */
function startOperator(extra: string[] = []): OperatorProcess {
  return stack.startProcess(processArgs(extra), { AWS_ENDPOINT_URL: aws.url }, nodeFlags);
}

beforeAll(async () => {
  const built = ensureBuilt();
  stack = await startStack({
    ops: OPS,
    namespaces: [...TARGETS, OTHER],
    identities: [iamUser("tstate", 1, ACCOUNT)],
    tokenLifetimeMs: 3_600_000,
  });
  ({ k, aws } = stack);
  for (const ns of [...TARGETS, OTHER]) tenants.set(ns, await tenantOf(k, ns));
  kubeconfig = await stack.serviceAccountKubeconfig("operator");
  stack.resources.push("tstate");
  await applyResource(k, "tstate", {
    secretName: SECRET,
    namespaces: [...TARGETS, "tstate-new-*"],
    serviceAccounts: [],
    registries: [{ accountId: ACCOUNT }],
  });
  nodeFlags = await imageNodeFlags();
  await built;
});

afterAll(async () => {
  await stack?.stop();
});

describe("state read back from Secrets that tenants can write", () => {
  it("after a restart over a poisoned copy (and a planted one), every namespace holds the issued password, without an AWS call", async () => {
    const first = startOperator();
    await waitFor("the first sync", async () =>
      (await passwords()).every((p) => p && p !== POISON) ? true : undefined,
    );
    const issued = issuedPassword();
    expect(await passwords()).toEqual([issued, issued, issued]);
    await first.stop();

    // While no operator runs: the copy in tstate-a is poisoned, and another
    // tenant plants one in a namespace the resource does not target.
    await poison("tstate-a");
    await tenant(OTHER).kube.core.createNamespacedSecret({
      namespace: OTHER,
      body: poisoned(OTHER),
    });
    expect(await passwords()).toEqual([POISON, issued, issued]);
    const callsBefore = tokenCalls();

    const started = Date.now();
    startOperator();
    const held = await watchRepair(issued, "tstate-a", started);
    console.log(`poisoned copy held ${held} ms after the operator started`);
    // Its first pass: the process's start, its caches' sync, one reconcile.
    expect(held).toBeLessThan(5_000);
    // The restart took the token from the operator's own record: no new call.
    expect(tokenCalls() - callsBefore).toBe(0);
    expect(aws.issued()).toHaveLength(1);
  });

  it("after a leader failover over a poisoned copy, the new leader restores it, without an AWS call", async () => {
    for (const p of stack.running()) await p.stop();
    const leases = k.kc.makeApiClient(CoordinationV1Api);
    const procs = new Map<string, OperatorProcess>();
    for (const r of ["tstate-1", "tstate-2"]) {
      procs.set(r, startOperator(["--leader-elect", `--leader-election-id=${LEASE}`]));
    }
    const leader = await waitFor("a leader", async () =>
      replicaHolding(procs, (await readLease(leases, OPS, LEASE))?.spec?.holderIdentity),
    );
    const issued = issuedPassword();
    const callsBefore = tokenCalls();
    // The leader dies without a word; within the Lease's time nobody writes,
    // and the tenant poisons its copy then.
    await procs.get(leader)?.stop("SIGKILL");
    await poison("tstate-b");
    const standby = [...procs.keys()].find((r) => r !== leader) ?? "";
    await waitFor(
      "the standby to take the Lease",
      async () =>
        replicaHolding(procs, (await readLease(leases, OPS, LEASE))?.spec?.holderIdentity) ===
        standby
          ? true
          : undefined,
      { timeoutMs: 40_000, intervalMs: 50 },
    );
    const since = Date.now();
    const held = await watchRepair(issued, "tstate-b", since);
    console.log(`poisoned copy held ${held} ms after the standby took the Lease`);
    expect(held).toBeLessThan(5_000);
    expect(tokenCalls() - callsBefore).toBe(0);
  });
});

describe("memory that any ServiceAccount writer can fill", () => {
  it("a ServiceAccount of 3,000 imagePullSecrets is cached as our entries only, yet gets ours merged and keeps all the others", async () => {
    const namespace = "tstate-a";
    const others = Array.from({ length: 3_000 }, (_, i) => ({ name: `team-pull-${i}` }));
    await tenant(namespace).kube.core.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: "builder" }, imagePullSecrets: others },
    });
    await applyResource(k, "tstate", {
      secretName: SECRET,
      namespaces: [...TARGETS, "tstate-new-*"],
      serviceAccounts: ["builder"],
      registries: [{ accountId: ACCOUNT }],
    });
    const names = await waitFor("the operator's entry in builder", async () => {
      const sa = await k.core.readNamespacedServiceAccount({ namespace, name: "builder" });
      const list = (sa.imagePullSecrets ?? []).map((r) => r.name);
      return list.includes(SECRET) ? list : undefined;
    });
    expect(names).toEqual([...others.map((o) => o.name), SECRET]);
  });
});

describe("memory that any Secret writer can fill", () => {
  it("200 forged labelled Secrets of 900 KiB grow the operator's memory by under 20 MB, and new namespaces are served meanwhile", async () => {
    const op = stack.running().at(-1);
    const pid = op?.proc.pid;
    if (!op || pid === undefined) throw new Error("no operator process runs");
    const rss = async () => {
      const status = await readFile(`/proc/${pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
    };
    // Settle, then the baseline.
    await new Promise((r) => setTimeout(r, 2_000));
    const before = await rss();
    let peak = before;
    const sampler = setInterval(() => {
      void rss().then((v) => {
        if (v > peak) peak = v;
      });
    }, 100);
    const payload = Buffer.alloc(900 * 1024, "x")
      .toString("base64")
      .slice(0, 900 * 1024);
    const namespace = "tstate-c";
    const latencies: number[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        await tenant(namespace).kube.core.createNamespacedSecret({
          namespace,
          body: {
            metadata: {
              name: `forged-${i}`,
              labels: { [MANAGED_BY]: "ecr-creds-refresher", [OWNER_LABEL]: "tstate" },
            },
            type: "Opaque",
            data: { blob: payload },
          },
        });
        if (i % 50 === 25) {
          // A new namespace, served while the forged Secrets arrive.
          const ns = `tstate-new-${i}`;
          const created = Date.now();
          await stack.namespace(ns);
          await waitFor(
            `${ns} served`,
            async () => (passwordIn(await readSecret(k, ns, SECRET), HOST) ? true : undefined),
            { timeoutMs: 10_000, intervalMs: 20 },
          );
          latencies.push(Date.now() - created);
        }
      }
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      clearInterval(sampler);
    }
    const after = await rss();
    console.log(
      `RSS ${before.toFixed(1)} MB before, ${after.toFixed(1)} MB after, peak ${peak.toFixed(1)} MB (growth ${(peak - before).toFixed(1)} MB); new namespaces served in ${latencies.join(", ")} ms`,
    );
    expect(peak - before).toBeLessThan(20);
    expect(latencies).toHaveLength(4);
    for (const ms of latencies) expect(ms).toBeLessThan(2_000);
  });
});

describe("the operator's own records", () => {
  it("keeps one token record per source in its own namespace, and deletes it when the last resource using the source goes", async () => {
    const records = async () =>
      (
        await k.core.listSecretForAllNamespaces({ labelSelector: "ecrcreds.io/token-record=true" })
      ).items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`);
    const before = await records();
    expect(before).toHaveLength(1);
    expect(before[0]?.startsWith(`${OPS}/ecr-creds-refresher-token-`)).toBe(true);
    await deleteResource(k, "tstate");
    await waitFor("the record gone", async () =>
      (await records()).length === 0 ? true : undefined,
    );
  });
});
