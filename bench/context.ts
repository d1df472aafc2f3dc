// What every scenario runs against: a local control plane, the AWS double,
// the operator's credentials and ServiceAccount, the API server's audit log,
// and a way to start the operator as its own process (the built executable,
// under its own ServiceAccount, so the audit log tells its writes apart).

import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { ECRPullSecret } from "../src/api/index.js";
import type * as ClientModule from "../src/kube/client.js";
import { pool } from "../src/reconcile/pool.js";
import { AwsDouble } from "../test/aws-double/index.js";
import {
  type ControlPlane,
  freePort,
  repoRoot,
  startControlPlane,
  waitFor,
} from "../test/harness/controlplane.js";
import {
  bindClusterAdmin,
  getResource,
  installCrd,
  kubeconfigForServiceAccount,
  type TestKube,
  testKube,
} from "../test/harness/kube.js";
import { installTenantCrds } from "../test/harness/tenant.js";
import { builtClient } from "./floor.js";
import { AuditTail, imageNodeFlags, metricSum, OperatorProcess, round } from "./lib.js";
import type { BenchOptions } from "./options.js";

// The bench imports the BUILT client (dist/), as the operator runs it: Node's
// type stripping cannot run src/kube/client.ts (parameter properties).
const kubeModule = await builtClient();
export const { KubeClient, loadKubeConfig, NAMESPACES, SECRETS, SERVICE_ACCOUNTS, resourcePath } =
  kubeModule;
export type KubeClient = ClientModule.KubeClient;
export const { PODS } = (await import(pathToFileURL(join(repoRoot, "dist/kube/pods.js")).href)) as {
  PODS: ClientModule.ResourceType;
};
const { settings } = (await import(pathToFileURL(join(repoRoot, "dist/cli/config.js")).href)) as {
  settings: Array<{ flag: string; default?: string }>;
};
/** The Node flags the operator's image runs with (the Dockerfile's). */
export const IMAGE_NODE_FLAGS = await imageNodeFlags();
/** The operator's default for a numeric flag, from its settings table. */
export const operatorDefault = (flag: string): number =>
  Number(settings.find((s) => s.flag === flag)?.default ?? Number.NaN);

export const ACCOUNT = "111122223333";
export const REGISTRY_HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
export const ACCESS_KEY = "AKIABENCH00000000001";
export const SECRET_KEY = "bench-secret-key-000000000000000000000001";
/** The operator's namespace: its credentials, ServiceAccount and token records. */
export const OPS = "ecrbench-ops";
export const OPERATOR_USER = `system:serviceaccount:${OPS}:operator`;
/** The fan-out's resource and the Secret it writes in every target namespace. */
export const RESOURCE = "bench";
export const SECRET_NAME = "ecr-pull";
export const HOUR = 3_600_000;
export const targetName = (i: number): string => `bench-${String(i).padStart(4, "0")}`;
export const newName = (i: number): string => `bench-new-${String(i).padStart(3, "0")}`;
/** A progress line on stderr, with the time of day. */
export const progress = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

/** Everything a scenario needs; built once by `setUp`. */
export interface BenchContext {
  opts: BenchOptions;
  cp: ControlPlane;
  k: TestKube;
  /** Pooled connections and no client-side limit, for setup and observation. */
  admin: KubeClient;
  aws: AwsDouble;
  audit: AuditTail;
  /** The operator's ServiceAccount's kubeconfig (the floor writes with it too). */
  operatorKubeconfig: string;
  /** Starts the operator (with `extraArgs` after the bench's own) and waits for its caches; stopped at the end. */
  startOperator: (extraArgs?: string[]) => Promise<OperatorProcess>;
  /** How many operator processes were started (a CPU profile each with --cpu-prof). */
  started: () => number;
  /** The operator's /metrics text. */
  metricsOf: (op: OperatorProcess) => Promise<string>;
  /** Waits until resource `name` passes `check`; resolves with it. */
  waitStatus: (
    what: string,
    name: string,
    check: (r: ECRPullSecret) => boolean,
    timeoutMs: number,
  ) => Promise<ECRPullSecret>;
  /** GetAuthorizationToken calls to the AWS double in [from, to) (epoch ms). */
  ecrCalls: (from: number, to?: number) => number;
  memory: MemoryLog;
}

/**
 * Starts the control plane and the AWS double, creates the operator's
 * namespace, credentials and ServiceAccount (cluster-admin), and tails the
 * audit log. Everything started is stopped by `cleanups`, last first.
 */
export async function setUp(
  opts: BenchOptions,
  cleanups: Array<() => Promise<unknown>>,
): Promise<BenchContext> {
  const cp = await startControlPlane({ progress: (l) => progress(`controlplane: ${l}`) });
  cleanups.push(() => cp.stop());
  const k = testKube(cp.kubeconfigPath);
  // Every CRD the chart installs, as a real cluster has them: an operator
  // whose tenant kinds are not served keeps retrying their lists.
  await installCrd(k);
  await installTenantCrds(k);
  const admin = new KubeClient(loadKubeConfig(cp.kubeconfigPath), { qps: 0, burst: 0 });
  const aws = new AwsDouble({ tokenLifetimeMs: 12 * HOUR });
  await aws.start();
  cleanups.push(() => aws.close());
  aws.addIdentity({
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET_KEY,
    accountId: ACCOUNT,
    arn: `arn:aws:iam::${ACCOUNT}:user/bench`,
  });
  await admin.create(NAMESPACES, { metadata: { name: OPS } });
  await admin.create(SECRETS, {
    metadata: { name: "aws-creds", namespace: OPS },
    stringData: { AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY },
  });
  const operatorKubeconfig = await kubeconfigForServiceAccount(k, OPS, "operator", cp.dir);
  await bindClusterAdmin(k, "ecrbench-operator", OPS, ["operator"]);
  const operators = operatorStarter(opts, operatorKubeconfig, aws, cleanups);
  const metricsOf = async (op: OperatorProcess): Promise<string> => {
    const res = await fetch(`http://${metricsAddress(op)}/metrics`);
    return await res.text();
  };
  return {
    opts,
    cp,
    k,
    admin,
    aws,
    audit: new AuditTail(cp.auditLogPath),
    operatorKubeconfig,
    ...operators,
    metricsOf,
    waitStatus: (what, name, check, timeoutMs) =>
      waitFor(
        what,
        async () => {
          const r = await getResource(k, name);
          return r && check(r) ? r : undefined;
        },
        { timeoutMs, intervalMs: 200 },
      ),
    ecrCalls: (from, to = Number.POSITIVE_INFINITY) =>
      aws.calls(
        (c) =>
          c.service === "ecr" &&
          c.action === "GetAuthorizationToken" &&
          c.time >= from &&
          c.time < to,
      ).length,
    memory: new MemoryLog(metricsOf),
  };
}

/** `startOperator` and `started` of the context: the operator with the bench's flags and the image's Node flags. */
function operatorStarter(
  opts: BenchOptions,
  kubeconfig: string,
  aws: AwsDouble,
  cleanups: Array<() => Promise<unknown>>,
): Pick<BenchContext, "startOperator" | "started"> {
  let profiles = 0;
  const startOperator = async (extraArgs: string[] = []): Promise<OperatorProcess> => {
    const nodeArgs: string[] = [...IMAGE_NODE_FLAGS];
    if (opts.cpuProf) nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${opts.cpuProf}`);
    if (opts.heapSnapshot) {
      nodeArgs.push("--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${opts.heapSnapshot}`);
    }
    profiles++;
    const op = new OperatorProcess({
      nodeArgs,
      echo: opts.echo,
      args: [
        "run",
        `--kubeconfig=${kubeconfig}`,
        `--metrics-bind-address=127.0.0.1:${await freePort()}`,
        "--health-probe-bind-address=0",
        "--region=us-east-1",
        "--credentials-secret-name=aws-creds",
        `--credentials-secret-namespace=${OPS}`,
        // The operator's own namespace: its token records are there.
        `--leader-election-namespace=${OPS}`,
        "--verify=false",
        "--log-level=info",
        `--kube-api-qps=${opts.qps}`,
        `--kube-api-burst=${opts.burst}`,
        `--write-concurrency=${opts.writeConcurrency}`,
        ...extraArgs,
      ],
      env: {
        AWS_ENDPOINT_URL: aws.url,
        AWS_EC2_METADATA_DISABLED: "true",
        ...(opts.operatorNodeOptions ? { NODE_OPTIONS: opts.operatorNodeOptions } : {}),
        ...Object.fromEntries(opts.operatorEnv.map((kv) => kv.split(/=(.*)/s, 2))),
      },
    });
    cleanups.push(() => op.stop());
    await op.waitForLine('"msg":"caches synced"', 120_000);
    return op;
  };
  return { startOperator, started: () => profiles };
}

function metricsAddress(op: OperatorProcess): string {
  const arg = (op.proc.spawnargs.find((a) => a.startsWith("--metrics-bind-address=")) ?? "").split(
    "=",
  )[1];
  return arg ?? "";
}

/** The operator's memory after each phase, for the closing note and the progress lines. */
export class MemoryLog {
  readonly phases: string[] = [];
  readonly #metricsOf: (op: OperatorProcess) => Promise<string>;

  constructor(metricsOf: (op: OperatorProcess) => Promise<string>) {
    this.#metricsOf = metricsOf;
  }

  /** Records `op`'s RSS and peak after `phase`, and prints its heap figures. */
  async sample(op: OperatorProcess, phase: string): Promise<void> {
    const m = await op.memory();
    const text = await this.#metricsOf(op);
    const mb = (name: string) => (metricSum(text, name) / 1048576).toFixed(0);
    this.phases.push(`${phase} ${m.rssMb.toFixed(0)}/${m.peakMb.toFixed(0)} MB`);
    progress(
      `operator memory after ${phase}: rss ${m.rssMb.toFixed(1)} MB, peak ${m.peakMb.toFixed(1)} MB; heap total ${mb("nodejs_heap_size_total_bytes")}, used ${mb("nodejs_heap_size_used_bytes")}, external ${mb("nodejs_external_memory_bytes")} MB`,
    );
  }
}

/** Waits until the operator has written nothing for 3 s (the audit log). */
export async function waitForQuiet(audit: AuditTail): Promise<void> {
  await waitFor(
    "3 s without a write by the operator",
    async () =>
      (await audit.since(OPERATOR_USER, Date.now() - 3_000)).length === 0 ? true : undefined,
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

/**
 * The fan-out's world: `n` target namespaces (with their default
 * ServiceAccounts, which kube-controller-manager makes) and, with
 * `unrelated`, that many ordinary Secrets in namespaces of their own that
 * the operator must not hold. Resolves with the targets' names.
 */
export async function createTargets(ctx: BenchContext, unrelated: number): Promise<string[]> {
  const { admin, opts } = ctx;
  const n = opts.n;
  const targets = Array.from({ length: n }, (_, i) => targetName(i));
  const setupStart = Date.now();
  progress(
    `creating ${n} namespaces${opts.all ? ` and ${opts.unrelatedSecrets} unrelated Secrets` : ""}`,
  );
  const creatingNamespaces = pool(targets, 32, async (name) => {
    await admin.create(NAMESPACES, { metadata: { name } });
  });
  if (unrelated > 0) await createUnrelatedSecrets(admin, unrelated);
  await creatingNamespaces;
  await waitFor(
    `the default ServiceAccount of ${n} namespaces (kube-controller-manager)`,
    async () => {
      const list = await admin.list(SERVICE_ACCOUNTS, { fieldSelector: "metadata.name=default" });
      const have = list.items.filter((sa) => sa.metadata?.namespace?.startsWith("bench-")).length;
      return have >= n ? true : undefined;
    },
    { timeoutMs: 120_000 + n * 500, intervalMs: 1000 },
  );
  progress(`setup took ${round((Date.now() - setupStart) / 1000, 1)}s`);
  return targets;
}

/** `count` Secrets of about 1 KiB (an ordinary application Secret), 1,000 to a namespace. */
async function createUnrelatedSecrets(admin: KubeClient, count: number): Promise<void> {
  const perNs = 1000;
  const noiseNs = Array.from({ length: Math.ceil(count / perNs) }, (_, i) => `noise-${i}`);
  await pool(noiseNs, 8, async (name) => {
    await admin.create(NAMESPACES, { metadata: { name } });
  });
  const filler = Buffer.alloc(768, "x").toString("base64");
  await pool(
    Array.from({ length: count }, (_, i) => i),
    64,
    async (i) => {
      await admin.create(SECRETS, {
        metadata: {
          name: `unrelated-${i}`,
          namespace: noiseNs[Math.floor(i / perNs)] as string,
          labels: { app: "noise" },
        },
        data: { payload: filler },
      });
    },
  );
}
