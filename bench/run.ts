// `npm run bench`: the operator's cost on a local control plane and the AWS
// double, measured side by side with what the API server allows in the same
// run. Prints a table, then one JSON object as the last line. See
// docs/performance.md for what each figure means.
//
// The operator runs from the built executable as its own process, under its
// own ServiceAccount, so the API server's audit log tells its writes apart.
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { type ECRPullSecret, GROUP, PLURAL, VERSION } from "../src/api/index.js";
import type * as ClientModule from "../src/kube/client.js";
import type { Secret, ServiceAccount } from "../src/kube/types.js";
import { AwsDouble } from "../test/aws-double/index.js";
import {
  controlPlaneBinary,
  freePort,
  repoRoot,
  startControlPlane,
  waitFor,
} from "../test/harness/controlplane.js";
import {
  applyResource,
  bindClusterAdmin,
  deleteResource,
  getResource,
  installCrd,
  kubeconfigForServiceAccount,
  mergePatch,
  readyCondition,
  testKube,
} from "../test/harness/kube.js";
import { builtClient, builtModules, type FloorResult, floorWrites } from "./floor.js";
import {
  AuditTail,
  type AuditWrite,
  binaryCpuSeconds,
  cpuDelta,
  describeWrite,
  imageNodeFlags,
  machineCpu,
  machineShares,
  metricSum,
  OperatorProcess,
  percentile,
  pool,
  round,
  sleep,
} from "./lib.js";
import { runForgedSecrets } from "./scenarios/forged-secrets.js";

// The bench imports the BUILT client (dist/), as the operator runs it: Node's
// type stripping cannot run src/kube/client.ts (parameter properties).
const kubeModule = await builtClient();
const { KubeClient, loadKubeConfig, NAMESPACES, SECRETS, SERVICE_ACCOUNTS, resourcePath } =
  kubeModule;
type KubeClient = ClientModule.KubeClient;
const { PODS } = (await import(pathToFileURL(join(repoRoot, "dist/kube/pods.js")).href)) as {
  PODS: ClientModule.ResourceType;
};
const { settings } = (await import(pathToFileURL(join(repoRoot, "dist/cli/config.js")).href)) as {
  settings: Array<{ flag: string; default?: string }>;
};
const IMAGE_NODE_FLAGS = await imageNodeFlags();
const operatorDefault = (flag: string): number =>
  Number(settings.find((s) => s.flag === flag)?.default ?? Number.NaN);

const { values: opt } = parseArgs({
  options: {
    n: { type: "string", default: "1000" },
    qps: { type: "string" },
    burst: { type: "string" },
    "write-concurrency": { type: "string" },
    "idle-seconds": { type: "string", default: "60" },
    "new-namespaces": { type: "string", default: "200" },
    "new-namespace-interval-ms": { type: "string", default: "250" },
    "unrelated-secrets": { type: "string", default: "20000" },
    "running-pods": { type: "string", default: "2000" },
    only: { type: "string", default: "all" },
    rounds: { type: "string" },
    sources: { type: "string", default: "500" },
    "aws-latency-ms": { type: "string", default: "100" },
    "cpu-prof": { type: "string" },
    "heap-snapshot": { type: "string" },
    echo: { type: "boolean", default: false },
    "operator-node-options": { type: "string" },
    "operator-env": { type: "string", multiple: true },
    help: { type: "boolean", default: false },
  },
  allowPositionals: false,
});
if (opt.help) {
  process.stdout.write(`usage: npm run bench -- [--n 1000] [--qps Q --burst B --write-concurrency W]
  [--idle-seconds 60] [--new-namespaces 200] [--new-namespace-interval-ms 250]
  [--unrelated-secrets 20000] [--running-pods 2000] [--only SCENARIO] [--sources 500] [--aws-latency-ms 100]
  [--rounds R] [--cpu-prof DIR] [--heap-snapshot DIR] [--echo]
scenarios (--only): all (default), fanout, outputs (one resource with every output: AWS calls per refresh), unthrottled (fan-out and floor at --kube-api-qps 0),
  idle-cpu (fan-out, then CPU at rest), sources (--sources resources with their own
  credentials against the AWS quota double: first sync, simultaneous refresh), coldstart
  (sources, then the operator restarted), forged (200 labelled Secrets of 900 KiB written by
  a tenant: the operator's RSS growth and new-namespace latency meanwhile)
--rounds R: floor and fan-out R times, the least of each taken and the median of the rounds'
  own ratios (fanout and unthrottled only; default 15 for unthrottled, else 1)
`);
  process.exit(0);
}
const num = (v: string | undefined, what: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`failed to read --${what}: ${v} is not a number`);
  return n;
};
const N = num(opt.n, "n");
const QPS =
  opt.only === "unthrottled" ? 0 : opt.qps ? num(opt.qps, "qps") : operatorDefault("kube-api-qps");
const BURST = opt.burst ? num(opt.burst, "burst") : operatorDefault("kube-api-burst");
const WRITE_CONCURRENCY = opt["write-concurrency"]
  ? num(opt["write-concurrency"], "write-concurrency")
  : operatorDefault("write-concurrency");
const IDLE_S = num(opt["idle-seconds"], "idle-seconds");
const NEW_NS = num(opt["new-namespaces"], "new-namespaces");
const NEW_NS_INTERVAL = num(opt["new-namespace-interval-ms"], "new-namespace-interval-ms");
const UNRELATED = num(opt["unrelated-secrets"], "unrelated-secrets");
const RUNNING_PODS = num(opt["running-pods"], "running-pods");
const SCENARIOS = [
  "all",
  "fanout",
  "outputs",
  "unthrottled",
  "idle-cpu",
  "sources",
  "coldstart",
  "forged",
];
const ONLY = opt.only ?? "all";
if (!SCENARIOS.includes(ONLY))
  throw new Error(`failed to read --only: ${ONLY} is not one of ${SCENARIOS.join(", ")}`);
const ALL = ONLY === "all";
/** The unthrottled scenario also runs a floor that watches its writes (bench/floor.ts --watch). */
const WATCHING_FLOOR = ONLY === "unthrottled";
const SOURCES = num(opt.sources, "sources");
/** Floor-and-fan-out rounds: seconds-long fan-outs are at the mercy of a noisy machine. */
const ROUNDS = opt.rounds ? num(opt.rounds, "rounds") : ONLY === "unthrottled" ? 15 : 1;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1)
  throw new Error(`failed to read --rounds: ${opt.rounds} is not a whole number of 1 or more`);
if (ROUNDS > 1 && ONLY !== "fanout" && ONLY !== "unthrottled")
  throw new Error(
    `failed to use --rounds ${ROUNDS} with --only ${ONLY}: only the fanout and unthrottled scenarios repeat their fan-out`,
  );
/** Issue 20's targets: unthrottled ≤ 1.2, at 10,000 namespaces ≤ 1.05, else the first ≤ 1.5. */
const RATIO_TARGET = ONLY === "unthrottled" ? 1.2 : N >= 10_000 ? 1.05 : 1.5;
/**
 * Peak RSS (MB) and new-namespace p99 (ms): issue 20's at 10,000 namespaces,
 * else the original 1,000-namespace targets (with RSS over the base ≤ 30 MB,
 * which holds only there).
 */
const LARGE = N >= 10_000;
const RSS_TARGET_MB = LARGE ? 160 : 150;
const NEW_NS_P99_TARGET_MS = LARGE ? 300 : 1000;
const AWS_LATENCY_MS = num(opt["aws-latency-ms"], "aws-latency-ms");
/** Only the every-output resource's AWS calls (over the first 100 targets, or n if fewer). */
const OUTPUTS_ONLY = ONLY === "outputs";

const ACCOUNT = "111122223333";
const REGISTRY_HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const ACCESS_KEY = "AKIABENCH00000000001";
const SECRET_KEY = "bench-secret-key-000000000000000000000001";
const OPS = "ecrbench-ops";
const OPERATOR_USER = `system:serviceaccount:${OPS}:operator`;
const RESOURCE = "bench";
const SECRET_NAME = "ecr-pull";
const HOUR = 3_600_000;
const targetName = (i: number) => `bench-${String(i).padStart(4, "0")}`;
const newName = (i: number) => `bench-new-${String(i).padStart(3, "0")}`;
const progress = (line: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

interface Row {
  what: string;
  value: string;
  target?: string;
  met?: boolean;
}
const rows: Row[] = [];
const notes: string[] = [];
const outputsResult: Record<string, number> = {};

const cleanups: Array<() => Promise<unknown>> = [];
let exitCode = 0;
try {
  await main();
} catch (err) {
  exitCode = 1;
  process.stderr.write(
    `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`,
  );
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
}
process.exit(exitCode);

async function main(): Promise<void> {
  progress(
    `n=${N} qps=${QPS} burst=${BURST} write-concurrency=${WRITE_CONCURRENCY} on ${cpus().length} cpus; operator node flags (the image's): ${IMAGE_NODE_FLAGS.join(" ") || "none"}`,
  );
  const cp = await startControlPlane({ progress: (l) => progress(`controlplane: ${l}`) });
  cleanups.push(() => cp.stop());
  const k = testKube(cp.kubeconfigPath);
  await installCrd(k);
  // Pooled connections and no client-side limit for setup and observation.
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
  const ecrCalls = (from: number, to = Number.POSITIVE_INFINITY) =>
    aws.calls(
      (c) =>
        c.service === "ecr" &&
        c.action === "GetAuthorizationToken" &&
        c.time >= from &&
        c.time < to,
    ).length;

  await admin.create(NAMESPACES, { metadata: { name: OPS } });
  await admin.create(SECRETS, {
    metadata: { name: "aws-creds", namespace: OPS },
    stringData: { AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY },
  });
  const operatorKubeconfig = await kubeconfigForServiceAccount(k, OPS, "operator", cp.dir);
  await bindClusterAdmin(k, "ecrbench-operator", OPS, ["operator"]);
  const audit = new AuditTail(cp.auditLogPath);

  let profiles = 0;
  const startOperator = async (extraArgs: string[] = []): Promise<OperatorProcess> => {
    const nodeArgs: string[] = [...IMAGE_NODE_FLAGS];
    if (opt["cpu-prof"]) nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${opt["cpu-prof"]}`);
    if (opt["heap-snapshot"]) {
      nodeArgs.push("--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${opt["heap-snapshot"]}`);
    }
    profiles++;
    const op = new OperatorProcess({
      nodeArgs,
      echo: opt.echo,
      args: [
        "run",
        `--kubeconfig=${operatorKubeconfig}`,
        `--metrics-bind-address=127.0.0.1:${await freePort()}`,
        "--health-probe-bind-address=0",
        "--region=us-east-1",
        "--credentials-secret-name=aws-creds",
        `--credentials-secret-namespace=${OPS}`,
        // The operator's own namespace: its token records are there.
        `--leader-election-namespace=${OPS}`,
        "--verify=false",
        "--log-level=info",
        `--kube-api-qps=${QPS}`,
        `--kube-api-burst=${BURST}`,
        `--write-concurrency=${WRITE_CONCURRENCY}`,
        ...extraArgs,
      ],
      env: {
        AWS_ENDPOINT_URL: aws.url,
        AWS_EC2_METADATA_DISABLED: "true",
        ...(opt["operator-node-options"] ? { NODE_OPTIONS: opt["operator-node-options"] } : {}),
        ...Object.fromEntries((opt["operator-env"] ?? []).map((kv) => kv.split(/=(.*)/s, 2))),
      },
    });
    cleanups.push(() => op.stop());
    await op.waitForLine('"msg":"caches synced"', 120_000);
    return op;
  };
  const metricsOf = async (op: OperatorProcess): Promise<string> => {
    const res = await fetch(`http://${metricsAddress(op)}/metrics`);
    return await res.text();
  };

  const waitStatus = (
    what: string,
    name: string,
    check: (r: ECRPullSecret) => boolean,
    timeoutMs: number,
  ) =>
    waitFor(
      what,
      async () => {
        const r = await getResource(k, name);
        return r && check(r) ? r : undefined;
      },
      { timeoutMs, intervalMs: 200 },
    );

  // --- Every output: the same token for every format --------------------------------
  // One resource with every output (config.json Secret, Argo CD Secrets of both
  // types, ServiceAccount secrets, both host spellings, a secretTemplate) over
  // up to 100 namespaces, under credentials of its own: its token source is
  // its alone, so the AWS double's calls by that principal are its calls.
  const outputsPhase = async (namespaces: string[]): Promise<void> => {
    const arn = `arn:aws:iam::${ACCOUNT}:user/bench-outputs`;
    const keys = { accessKeyId: "AKIABENCHOUTPUTS0001", secretAccessKey: `${SECRET_KEY}-outputs` };
    aws.addIdentity({ ...keys, accountId: ACCOUNT, arn });
    await admin.create(SECRETS, {
      metadata: { name: "aws-creds-outputs", namespace: OPS },
      stringData: {
        AWS_ACCESS_KEY_ID: keys.accessKeyId,
        AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
      },
    });
    await admin.create(NAMESPACES, { metadata: { name: "argocd" } }).catch(() => undefined);
    const calls = () =>
      aws.calls(
        (c) =>
          c.service === "ecr" && c.action === "GetAuthorizationToken" && c.principalArn === arn,
      ).length;
    // Long enough for a pass over every format of every namespace to end well
    // before the next refresh comes due (at half the lifetime).
    const lifetime = 60_000;
    const before = aws.tokenLifetimeMs;
    aws.tokenLifetimeMs = lifetime;
    const name = "bench-outputs";
    progress(
      `every output: ${name} over ${namespaces.length} namespaces, ${lifetime / 1000}s tokens`,
    );
    await applyResource(k, name, {
      secretName: "ecr-pull-outputs",
      namespaces,
      credentials: { secretRef: { name: "aws-creds-outputs", namespace: OPS } },
      registries: [{ accountId: ACCOUNT }, { accountId: "444455556666" }],
      hostVariants: ["Standard", "DualStack"],
      serviceAccountFields: ["imagePullSecrets", "secrets"],
      dockerConfigSecret: { name: "ecr-docker-config" },
      argoCD: { repositoryTypes: ["helm", "oci"] },
      secretTemplate: { labels: { "bench/outputs": "true" } },
    });
    const want = namespaces.length;
    const synced = (r: ECRPullSecret) =>
      readyCondition(r)?.status === "True" && r.status?.namespaces?.synced === want;
    let r = await waitStatus(`${name} Ready`, name, synced, 300_000);
    const atReady = calls();
    const refreshes = 2;
    for (let i = 0; i < refreshes; i++) {
      const previous = r.status?.tokenExpiresAt;
      r = await waitStatus(
        `${name} refresh ${i + 1}`,
        name,
        (x) => synced(x) && x.status?.tokenExpiresAt !== previous,
        lifetime + 120_000,
      );
    }
    const perRefresh = (calls() - atReady) / refreshes;
    aws.tokenLifetimeMs = before;
    await deleteResource(k, name);
    outputsResult.aws_calls_per_refresh_every_output = perRefresh;
    outputsResult.aws_calls_every_output_first_pass = atReady;
    rows.push(
      {
        what: `aws_calls_per_refresh_every_output (${want} ns, ${refreshes} refreshes)`,
        value: fmt(perRefresh),
        target: "= 1",
        met: perRefresh === 1,
      },
      {
        what: "  AWS calls for its first pass",
        value: String(atReady),
        target: "= 1",
        met: atReady === 1,
      },
    );
  };
  if (ONLY === "forged") {
    const forged = await runForgedSecrets({
      k,
      admin,
      kinds: { namespaces: NAMESPACES, secrets: SECRETS },
      aws,
      accountId: ACCOUNT,
      startOperator: () => startOperator(),
      progress,
    });
    rows.push(...forged.rows);
    printTable(forged.result);
    process.stdout.write(`${JSON.stringify(forged.result)}\n`);
    return;
  }
  if (ONLY === "sources" || ONLY === "coldstart") {
    const result = await runSources({ k, admin, aws, audit, startOperator, metricsOf });
    printTable(result);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }

  // --- Memory with none of the targets or unrelated Secrets -----------------------
  let rssBase: number | undefined;
  if (ALL) {
    progress("base memory: operator with one resource and no target namespaces");
    const base = await startOperator();
    await applyResource(k, "bench-base", {
      secretName: SECRET_NAME,
      namespaces: ["bench-none"],
      registries: [{ accountId: ACCOUNT }],
    });
    await waitStatus(
      "bench-base Ready",
      "bench-base",
      (r) => readyCondition(r)?.status === "True",
      60_000,
    );
    // Peak over startup, one token fetch and a few idle seconds.
    await sleep(5_000);
    rssBase = (await base.memory()).peakMb;
    await deleteResource(k, "bench-base");
    await waitFor(
      "bench-base to be deleted",
      async () => ((await getResource(k, "bench-base")) ? undefined : true),
      { timeoutMs: 60_000 },
    );
    await base.stop();
    progress(`rss_base_mb=${round(rssBase, 1)}`);
  }

  // --- Setup: N namespaces (and their default ServiceAccounts), unrelated Secrets ---
  const targets = Array.from({ length: N }, (_, i) => targetName(i));
  const setupStart = Date.now();
  progress(`creating ${N} namespaces${ALL ? ` and ${UNRELATED} unrelated Secrets` : ""}`);
  const creatingNamespaces = pool(targets, 32, async (name) => {
    await admin.create(NAMESPACES, { metadata: { name } });
  });
  if (ALL && UNRELATED > 0) {
    const perNs = 1000;
    const noiseNs = Array.from({ length: Math.ceil(UNRELATED / perNs) }, (_, i) => `noise-${i}`);
    await pool(noiseNs, 8, async (name) => {
      await admin.create(NAMESPACES, { metadata: { name } });
    });
    // ~1 KiB of data each, about an ordinary application Secret.
    const filler = Buffer.alloc(768, "x").toString("base64");
    await pool(
      Array.from({ length: UNRELATED }, (_, i) => i),
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
  await creatingNamespaces;
  await waitFor(
    `the default ServiceAccount of ${N} namespaces (kube-controller-manager)`,
    async () => {
      const list = await admin.list(SERVICE_ACCOUNTS, { fieldSelector: "metadata.name=default" });
      const have = list.items.filter((sa) => sa.metadata?.namespace?.startsWith("bench-")).length;
      return have >= N ? true : undefined;
    },
    { timeoutMs: 120_000 + N * 500, intervalMs: 1000 },
  );
  progress(`setup took ${round((Date.now() - setupStart) / 1000, 1)}s`);

  if (OUTPUTS_ONLY) {
    const op = await startOperator();
    await outputsPhase(targets.slice(0, 100));
    await op.stop();
    printTable({ n: N, node: process.version, cpus: cpus().length });
    process.stdout.write(`${JSON.stringify(outputsResult)}\n`);
    return;
  }

  // --- Floor and fan-out, ROUNDS times ----------------------------------------------
  // Each round: the floor (operator stopped), then a fresh operator's fan-out.
  // Between rounds the resource is deleted, the operator cleans up and stops,
  // so every round starts alike. Noise on a shared machine only ever adds time,
  // so the figure is the least fan-out over the least floor (as Python's
  // timeit takes the minimum); every round is printed.
  const namespacesFile = join(cp.dir, "floor-namespaces.json");
  await writeFile(namespacesFile, JSON.stringify(targets));
  const floorModules = await builtModules();
  const floorClient = new KubeClient(loadKubeConfig(operatorKubeconfig), {
    qps: QPS,
    burst: BURST,
    fieldManager: floorModules.metadata.FIELD_MANAGER,
  });
  const memoryLog: string[] = [];
  let op: OperatorProcess | undefined;
  const sampleMemory = async (phase: string) => {
    if (!op) return;
    const m = await op.memory();
    const text = await metricsOf(op);
    const mb = (name: string) => (metricSum(text, name) / 1048576).toFixed(0);
    memoryLog.push(`${phase} ${m.rssMb.toFixed(0)}/${m.peakMb.toFixed(0)} MB`);
    progress(
      `operator memory after ${phase}: rss ${m.rssMb.toFixed(1)} MB, peak ${m.peakMb.toFixed(1)} MB; heap total ${mb("nodejs_heap_size_total_bytes")}, used ${mb("nodejs_heap_size_used_bytes")}, external ${mb("nodejs_external_memory_bytes")} MB`,
    );
  };
  const rounds: Array<{
    floorS: number;
    floorCpuS: number;
    warmFloorS: number;
    /** NaN when the scenario has no watching floor. */
    watchingFloorS: number;
    fanoutS: number;
    fanoutCpuS: number;
    writes: number;
  }> = [];
  let lifetimeMs = 12 * HOUR;
  let applyAt = 0;
  let readyAt = 0;
  let fanoutEnd = 0;
  let fanoutCalls = 0;
  for (let roundNo = 0; roundNo < ROUNDS; roundNo++) {
    const tag = ROUNDS > 1 ? `round ${roundNo + 1}/${ROUNDS}: ` : "";
    progress(`${tag}floor: ${N} Secret creates + ${N} ServiceAccount patches, minimal client`);
    // The warm floor: this process's client, which has written before and
    // keeps its connections open; printed for comparison.
    const warm = await floorWrites(floorClient, floorModules, {
      namespaces: targets,
      name: roundNo === 0 ? "floor-warm" : `floor-warm-${roundNo}`,
      registryHost: REGISTRY_HOST,
      concurrency: WRITE_CONCURRENCY,
    });
    // The floor: a minimal client in a process of its own, started fresh as
    // the operator is (see bench/floor.ts). Its control plane CPU is the same
    // writes' cost to the API server and etcd.
    const floorServerStart = await binaryCpuSeconds(controlPlaneBinary);
    const floorMachineStart = await machineCpu();
    const fresh = await floorProcess({
      kubeconfig: operatorKubeconfig,
      namespacesFile,
      name: roundNo === 0 ? "floor-pull" : `floor-pull-${roundNo}`,
    });
    const floorMachine = machineShares(floorMachineStart, await machineCpu());
    const floorServer = cpuDelta(floorServerStart, await binaryCpuSeconds(controlPlaneBinary));
    const floorS = fresh.seconds;
    const floorCpuS = fresh.cpuSeconds;
    progress(
      `${tag}floor_s=${round(floorS)} (fresh process; client CPU ${round(floorCpuS)} s, control plane CPU ${floorServer.text}; ${sharesText(floorMachine)}); warm in-process floor ${round(warm.seconds)} s (client CPU ${round(warm.cpuSeconds)} s)`,
    );
    // The watching floor (unthrottled only): the same writes from a client
    // that also watches them, as every controller with a cache must. What
    // the fan-out takes beyond it is the operator's own.
    let watching: FloorResult | undefined;
    if (WATCHING_FLOOR) {
      const serverStart = await binaryCpuSeconds(controlPlaneBinary);
      watching = await floorProcess({
        kubeconfig: operatorKubeconfig,
        namespacesFile,
        name: `floor-watch-${roundNo}`,
        watch: true,
      });
      const server = cpuDelta(serverStart, await binaryCpuSeconds(controlPlaneBinary));
      progress(
        `${tag}watching floor_s=${round(watching.seconds)} (fresh process; client CPU ${round(watching.cpuSeconds)} s, ${watching.watchEvents} watch events; control plane CPU ${server.text})`,
      );
    }

    op = await startOperator();
    await sampleMemory("start");
    // The profiler's sampling thread alone costs about 0.04 CPU-s a window.
    const rest = await op.waitForRest(opt["cpu-prof"] ? { quietCpuSeconds: 0.06 } : {});
    progress(
      `${tag}operator at rest ${round(rest.seconds)} s after its caches synced (${round(rest.cpuSeconds)} CPU-s meanwhile)`,
    );
    // A refresh must come due after the fan-out is done: the first token lives long
    // enough that half its lifetime (minus at most 10% jitter) clears a generous
    // estimate of the fan-out; the token of the first refresh as well (for the
    // 20-resource refresh); after that, 12 h so the rest measurement sees no refresh.
    const expectedS = Math.max(20, 3 * floorS + 15);
    lifetimeMs = ALL ? Math.round((expectedS / 0.45) * 1000) : 12 * HOUR;
    aws.tokenLifetimeMs = lifetimeMs;
    progress(
      `${tag}fan-out: applying ${RESOURCE} over ${N} namespaces (token lifetime ${round(lifetimeMs / 1000, 0)}s)`,
    );
    // The CPU readings come first: the fan-out's clock starts at the apply.
    const fanoutCpuStart = await op.cpuSeconds();
    const fanoutServerStart = await binaryCpuSeconds(controlPlaneBinary);
    const fanoutMachineStart = await machineCpu();
    applyAt = Date.now();
    await applyResource(k, RESOURCE, {
      secretName: SECRET_NAME,
      namespaces: ["bench-*"],
      registries: [{ accountId: ACCOUNT }],
    });
    const appliedMs = Date.now() - applyAt;
    const r1 = await waitStatus(
      `${RESOURCE} Ready over ${N} namespaces`,
      RESOURCE,
      (r) => readyCondition(r)?.status === "True" && r.status?.namespaces?.synced === N,
      600_000,
    );
    readyAt = Date.now();
    const fanoutMachine = machineShares(fanoutMachineStart, await machineCpu());
    const fanoutCpuS = (await op.cpuSeconds()) - fanoutCpuStart;
    const fanoutServer = cpuDelta(fanoutServerStart, await binaryCpuSeconds(controlPlaneBinary));
    const operatorWrites = await audit.since(OPERATOR_USER, applyAt);
    const fanWrites = operatorWrites.filter((w) => isTargetWrite(w, "create") && w.code < 300);
    const secretsWritten = new Set(
      fanWrites.filter((w) => w.resource === "secrets").map((w) => w.namespace),
    );
    const sasPatched = new Set(
      fanWrites.filter((w) => w.resource === "serviceaccounts").map((w) => w.namespace),
    );
    if (secretsWritten.size < N || sasPatched.size < N) {
      throw new Error(
        `failed to see the fan-out in the audit log: ${secretsWritten.size} Secrets and ${sasPatched.size} ServiceAccounts of ${N}`,
      );
    }
    fanoutEnd = Math.max(...fanWrites.map((w) => w.completed));
    const firstWriteMs = Math.min(...fanWrites.map((w) => w.completed)) - applyAt;
    // The way to the first write: the apply's answer, the operator's first
    // request (its finalizer), the token the AWS double issued.
    const firstRequestMs = Math.min(...operatorWrites.map((w) => w.received)) - applyAt;
    const fanoutS = (fanoutEnd - applyAt) / 1000;
    const token1 = aws.issued().at(-1);
    await verifyFanout(admin, targets, token1?.password ?? "");
    fanoutCalls = ecrCalls(applyAt, readyAt);
    progress(
      `${tag}fanout_s=${round(fanoutS)} ratio=${round(fanoutS / floorS)} (${fanWrites.length} writes, ${fanoutCalls} AWS calls; applied in ${appliedMs} ms, first request at ${firstRequestMs} ms, token at ${(token1?.issuedAt ?? Number.NaN) - applyAt} ms, first write at ${firstWriteMs} ms; operator CPU ${round(fanoutCpuS)} s, control plane CPU ${fanoutServer.text}; ${sharesText(fanoutMachine)}); ${r1.status?.conditions?.[0]?.message}`,
    );
    await sampleMemory("fan-out");
    rounds.push({
      floorS,
      floorCpuS,
      warmFloorS: warm.seconds,
      watchingFloorS: watching?.seconds ?? Number.NaN,
      fanoutS,
      fanoutCpuS,
      writes: fanWrites.length,
    });
    if (roundNo < ROUNDS - 1) {
      // Undo the fan-out through the operator itself, then stop it.
      await deleteResource(k, RESOURCE);
      await waitFor(
        `${RESOURCE} to be deleted and its ${N} Secrets cleaned up`,
        async () => {
          if (await getResource(k, RESOURCE)) return undefined;
          const left = await admin.list(SECRETS, {
            labelSelector: `ecrcreds.io/owner=${RESOURCE}`,
            limit: 1,
          });
          return left.items.length === 0 ? true : undefined;
        },
        { timeoutMs: 120_000 + N * 100, intervalMs: 250 },
      );
      await op.stop();
      op = undefined;
    }
  }
  if (!op) throw new Error("no operator after the fan-out rounds");
  const least = (f: (r: (typeof rounds)[number]) => number) => Math.min(...rounds.map(f));
  const floorS = least((r) => r.floorS);
  const fanoutS = least((r) => r.fanoutS);
  const fanoutCpuS = least((r) => r.fanoutCpuS);
  const floorCpuS = least((r) => r.floorCpuS);
  const warmFloorS = least((r) => r.warmFloorS);
  const each = (f: (r: (typeof rounds)[number]) => number) =>
    ROUNDS > 1 ? ` (least of ${rounds.map((r) => fmt(f(r))).join(", ")})` : "";
  rows.push(
    {
      what: `fanout_s (apply → last Secret/SA write)${each((r) => r.fanoutS)}`,
      value: fmt(fanoutS),
    },
    {
      what: `floor_s (minimal client, fresh process, same settings)${each((r) => r.floorS)}`,
      value: fmt(floorS),
    },
    {
      what: "fanout_ratio",
      value: fmt(fanoutS / floorS),
      target: `≤ ${RATIO_TARGET}`,
      met: fanoutS / floorS <= RATIO_TARGET,
    },
    {
      what: `  writes during fan-out (Secrets+SAs)${ROUNDS > 1 ? ` (most of ${rounds.map((r) => r.writes).join(", ")})` : ""}`,
      value: String(Math.max(...rounds.map((r) => r.writes))),
    },
    {
      what: `fanout_cpu_s (operator, apply → Ready)${each((r) => r.fanoutCpuS)}`,
      value: fmt(fanoutCpuS),
    },
    { what: `floor_cpu_s (minimal client)${each((r) => r.floorCpuS)}`, value: fmt(floorCpuS) },
    {
      what: `floor_warm_s (the bench's own client, warm)${each((r) => r.warmFloorS)}`,
      value: fmt(warmFloorS),
    },
    { what: "fanout_ratio_warm_floor (for comparison)", value: fmt(fanoutS / warmFloorS) },
  );
  // Each round's own ratio, its floor and fan-out taken seconds apart: the
  // machine's speed drifts between rounds (docs/performance.md, "Noise"),
  // and a round's pair shares most of its drift. The median of those is
  // printed beside the least/least figure, for comparison.
  const roundMedian = (f: (r: (typeof rounds)[number]) => number) => {
    const ratios = rounds.map((r) => r.fanoutS / f(r));
    return { median: percentile(ratios, 50), text: ratios.map((x) => fmt(x)).join(", ") };
  };
  const perRound = roundMedian((r) => r.floorS);
  if (ROUNDS > 1) {
    // Held to the same target: least/least alone, over many rounds, compares
    // the luckiest fan-out with the luckiest floor.
    rows.push({
      what: `fanout_ratio_round_median (median of ${perRound.text})`,
      value: fmt(perRound.median),
      target: `≤ ${RATIO_TARGET}`,
      met: perRound.median <= RATIO_TARGET,
    });
  }
  const watchingFloorS = least((r) => r.watchingFloorS);
  const perRoundWatching = roundMedian((r) => r.watchingFloorS);
  if (WATCHING_FLOOR) {
    rows.push(
      {
        what: `floor_watching_s (minimal client that watches its writes)${each((r) => r.watchingFloorS)}`,
        value: fmt(watchingFloorS),
      },
      {
        what: "fanout_ratio_watching_floor (the operator's own share)",
        value: fmt(fanoutS / watchingFloorS),
      },
    );
    if (ROUNDS > 1) {
      rows.push({
        what: `fanout_ratio_watching_floor_round_median (median of ${perRoundWatching.text})`,
        value: fmt(perRoundWatching.median),
      });
    }
  }

  const result: Record<string, number | string | null> = {
    fanout_s: round(fanoutS),
    floor_s: round(floorS),
    fanout_ratio: round(fanoutS / floorS),
    fanout_cpu_s: round(fanoutCpuS),
    floor_cpu_s: round(floorCpuS),
    floor_warm_s: round(warmFloorS),
    fanout_ratio_warm_floor: round(fanoutS / warmFloorS),
    floor_watching_s: WATCHING_FLOOR ? round(watchingFloorS) : null,
    fanout_ratio_watching_floor: WATCHING_FLOOR ? round(fanoutS / watchingFloorS) : null,
    fanout_ratio_round_median: ROUNDS > 1 ? round(perRound.median) : null,
    fanout_ratio_watching_floor_round_median:
      WATCHING_FLOOR && ROUNDS > 1 ? round(perRoundWatching.median) : null,
    refresh_s: null,
    aws_calls_per_refresh: null,
    aws_calls_20_resources: null,
    idle_writes: null,
    idle_aws_calls: null,
    new_ns_p50_ms: null,
    new_ns_p99_ms: null,
    rss_mb: null,
    rss_base_mb: rssBase === undefined ? null : round(rssBase, 1),
    node: process.version,
    cpus: cpus().length,
    n: N,
    qps: QPS,
    burst: BURST,
    write_concurrency: WRITE_CONCURRENCY,
    scenario: ONLY,
  };

  if (ALL) {
    // --- Refresh -------------------------------------------------------------------
    const mine = () => aws.issued().filter((t) => t.principalArn.endsWith(":user/bench"));
    const countBefore = mine().length;
    progress("refresh: waiting for the token to come due");
    const token2 = await waitFor(
      "the refresh's token fetch",
      () => (mine().length > countBefore ? mine()[countBefore] : undefined),
      { timeoutMs: lifetimeMs + 60_000, intervalMs: 20 },
    );
    const refreshStart = token2.issuedAt;
    if (refreshStart < fanoutEnd) {
      notes.push(
        `the refresh began ${round((fanoutEnd - refreshStart) / 1000)}s before the fan-out ended: refresh_s overlaps it`,
      );
    }
    await waitStatus(
      "every Secret to hold the refreshed token",
      RESOURCE,
      (r) =>
        r.status?.tokenExpiresAt === token2.expiresAt.toISOString() &&
        r.status?.namespaces?.synced === N,
      600_000,
    );
    const refreshWrites = (await audit.since(OPERATOR_USER, refreshStart)).filter(
      (w) => w.resource === "secrets" && w.name === SECRET_NAME && w.code < 300,
    );
    const refreshEnd = Math.max(...refreshWrites.map((w) => w.completed));
    const refreshS = (refreshEnd - refreshStart) / 1000;
    const callsPerRefresh = ecrCalls(readyAt, Date.now());
    await verifyFanout(admin, targets, token2.password);
    result.refresh_s = round(refreshS);
    result.aws_calls_per_refresh = callsPerRefresh;
    progress(
      `refresh_s=${round(refreshS)} (${refreshWrites.length} Secret writes, ${callsPerRefresh} AWS calls)`,
    );

    await sampleMemory("refresh");
    // --- 20 resources over the same credentials --------------------------------------
    const extra = Array.from({ length: 19 }, (_, i) => `bench-r${String(i + 1).padStart(2, "0")}`);
    const addAt = Date.now();
    progress("20 resources: adding 19 more over the same credentials");
    await pool(extra, 19, async (name, i) => {
      await applyResource(k, name, {
        secretName: `ecr-pull-r${i + 1}`,
        namespaces: [targetName(i)],
        registries: [{ accountId: ACCOUNT }],
      });
    });
    await pool(extra, 19, async (name) => {
      await waitStatus(
        `${name} Ready`,
        name,
        (r) => readyCondition(r)?.status === "True" && r.status?.namespaces?.synced === 1,
        120_000,
      );
    });
    const addedAt = Date.now();
    const addCalls = ecrCalls(addAt, addedAt);
    // The next token is the last short one: what follows is the rest measurement.
    aws.tokenLifetimeMs = 12 * HOUR;
    const count2 = mine().length;
    if (count2 > countBefore + 1) {
      notes.push("the 20-resource refresh began before all 19 extra resources were Ready");
    }
    progress("20 resources: waiting for the shared token to come due");
    const token3 = await waitFor(
      "the 20-resource refresh's token fetch",
      () => (mine().length > countBefore + 1 ? mine()[countBefore + 1] : undefined),
      { timeoutMs: lifetimeMs + 60_000, intervalMs: 20 },
    );
    await pool([RESOURCE, ...extra], 20, async (name) => {
      await waitStatus(
        `${name} to hold the refreshed token`,
        name,
        (r) => r.status?.tokenExpiresAt === token3.expiresAt.toISOString(),
        600_000,
      );
    });
    const calls20 = ecrCalls(addedAt, Date.now());
    result.aws_calls_20_resources = calls20;
    rows.push(
      {
        what: "refresh_s (token fetch → last Secret rewritten)",
        value: fmt(refreshS),
        target: "≤ fanout_s",
        met: refreshS <= fanoutS,
      },
      {
        what: "aws_calls_per_refresh",
        value: String(callsPerRefresh),
        target: "= 1",
        met: callsPerRefresh === 1,
      },
      {
        what: "aws_calls_20_resources (one refresh)",
        value: String(calls20),
        target: "= 1",
        met: calls20 === 1,
      },
      {
        what: "  AWS calls while adding 19 resources",
        value: String(addCalls),
        target: "= 0",
        met: addCalls === 0,
      },
      {
        what: "  AWS calls during the fan-out",
        value: String(fanoutCalls),
        target: "= 1",
        met: fanoutCalls === 1,
      },
    );

    await sampleMemory("20-resource refresh");
    // --- Rest ------------------------------------------------------------------------
    progress("rest: waiting for the operator's writes to stop");
    await waitForQuiet(audit);
    const idleStart = Date.now();
    const cpuStart = await op.cpuSeconds();
    progress(`rest: counting writes and AWS calls for ${IDLE_S}s`);
    await sleep(IDLE_S * 1000);
    const idleEnd = Date.now();
    const idleCpu = await cpuAtRest(op, cpuStart, idleStart, idleEnd);
    result.cpu_s_per_idle_hour = idleCpu;
    const idleWrites = await audit.since(OPERATOR_USER, idleStart, idleEnd);
    const idleCalls = ecrCalls(idleStart, idleEnd);
    result.idle_writes = idleWrites.length;
    result.idle_aws_calls = idleCalls;
    rows.push({
      what: `cpu_s_per_idle_hour (${IDLE_S}s × ${round(3600 / IDLE_S, 1)})`,
      value: fmt(idleCpu),
      target: "≤ 5",
      met: idleCpu <= 5,
    });
    for (const w of idleWrites.slice(0, 10)) notes.push(`idle write: ${describeWrite(w)}`);
    rows.push(
      {
        what: `idle_writes (${IDLE_S}s)`,
        value: String(idleWrites.length),
        target: "= 0",
        met: idleWrites.length === 0,
      },
      {
        what: `idle_aws_calls (${IDLE_S}s)`,
        value: String(idleCalls),
        target: "= 0",
        met: idleCalls === 0,
      },
    );

    await sampleMemory("rest");
    // --- New namespaces ------------------------------------------------------------
    progress(`new namespaces: ${NEW_NS}, one every ${NEW_NS_INTERVAL} ms`);
    const latencies = await newNamespaceLatency(admin);
    const p50 = percentile(latencies.done, 50);
    const p99 = percentile(latencies.done, 99);
    result.new_ns_p50_ms = Math.round(p50);
    result.new_ns_p99_ms = Math.round(p99);
    if (latencies.missing > 0) notes.push(`${latencies.missing} new namespaces were never served`);
    rows.push(
      { what: "new_ns_p50_ms", value: String(Math.round(p50)) },
      {
        what: "new_ns_p99_ms",
        value: String(Math.round(p99)),
        target: `≤ ${NEW_NS_P99_TARGET_MS}`,
        met: p99 <= NEW_NS_P99_TARGET_MS && latencies.missing === 0,
      },
      { what: "  new namespace max ms", value: String(Math.round(Math.max(...latencies.done))) },
    );

    await sampleMemory("new namespaces");
    // --- Memory ----------------------------------------------------------------------
    const mem = await op.memory();
    result.rss_mb = round(mem.peakMb, 1);
    rows.push(
      {
        what: `rss_mb (peak; ${N + NEW_NS} targets, ${UNRELATED} unrelated Secrets)`,
        value: fmt(mem.peakMb, 1),
        target: `≤ ${RSS_TARGET_MB}`,
        met: mem.peakMb <= RSS_TARGET_MB,
      },
      { what: "rss_base_mb (peak; none of them)", value: fmt(rssBase ?? Number.NaN, 1) },
      {
        what: "rss_mb − rss_base_mb",
        value: fmt(mem.peakMb - (rssBase ?? 0), 1),
        ...(LARGE ? {} : { target: "≤ 30", met: mem.peakMb - (rssBase ?? 0) <= 30 }),
      },
      { what: "  rss now (VmRSS)", value: fmt(mem.rssMb, 1) },
    );

    // --- Running Pods: the pull-failure watch lists Pending Pods only ----------------
    if (RUNNING_PODS > 0) {
      const podsNs = "ecrbench-pods";
      progress(`running pods: ${RUNNING_PODS} Running Pods in ${podsNs}`);
      const before = await op.memory();
      await admin.create(NAMESPACES, { metadata: { name: podsNs } });
      await waitFor("the default ServiceAccount of the Pods' namespace", () =>
        admin.get(SERVICE_ACCOUNTS, { namespace: podsNs, name: "default" }).catch(() => undefined),
      );
      // Each Pod as the API server makes it (Pending), then Running, as a kubelet writes.
      await pool(
        Array.from({ length: RUNNING_PODS }, (_, i) => `pod-${String(i).padStart(5, "0")}`),
        64,
        async (name) => {
          await admin.create(PODS, {
            metadata: { name, namespace: podsNs },
            spec: { containers: [{ name: "c", image: "busybox" }] },
          });
          await admin.patch(
            PODS,
            { namespace: podsNs, name },
            { status: { phase: "Running" } },
            "status",
          );
        },
      );
      // The gauge is sampled every second; the watch drops a Pod once it runs.
      await sleep(5_000);
      const watched = metricSum(await metricsOf(op), "ecr_creds_refresher_watched_pods");
      const after = await op.memory();
      result.watched_pods = watched;
      result.running_pods_rss_delta_mb = round(after.rssMb - before.rssMb, 1);
      rows.push(
        {
          what: `watched_pods (${RUNNING_PODS} Running Pods)`,
          value: String(watched),
          target: "= 0",
          met: watched === 0,
        },
        {
          what: `rss_mb delta with ${RUNNING_PODS} Running Pods`,
          value: fmt(after.rssMb - before.rssMb, 1),
          target: "≤ 10",
          met: after.rssMb - before.rssMb <= 10,
        },
      );
      await sampleMemory("running pods");
    }
  }

  if (ALL) {
    // --- Cold start at this size: the operator restarted over all of the above -------
    // Before the every-output resource, whose 60 s tokens would rightly be
    // fetched again: every token in place here lives 12 h.
    const resources = (
      (await k.custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
      })) as { items: ECRPullSecret[] }
    ).items.length;
    const cold = await coldStart({
      audit,
      op,
      start: () => startOperator(),
      metricsOf,
      resources,
      verify: () => verifyFanout(admin, targets, aws.issued().at(-1)?.password ?? ""),
    });
    op = cold.op;
    reportColdStart(
      result,
      `restart → ${resources} passes done over ${N + NEW_NS} namespaces`,
      cold.seconds,
      await audit.since(OPERATOR_USER, cold.restartAt),
      ecrCalls(cold.restartAt),
    );
    await sampleMemory("cold start");

    await outputsPhase(targets.slice(0, 100));
    Object.assign(result, outputsResult);
  }

  if (ONLY === "idle-cpu") {
    progress("rest: waiting for the operator's writes to stop");
    await waitForQuiet(audit);
    const idleStart = Date.now();
    const cpuStart = await op.cpuSeconds();
    progress(`rest: measuring CPU for ${IDLE_S}s with ${N} namespaces served`);
    await sleep(IDLE_S * 1000);
    const idleEnd = Date.now();
    const idleCpu = await cpuAtRest(op, cpuStart, idleStart, idleEnd);
    const idleWrites = (await audit.since(OPERATOR_USER, idleStart, idleEnd)).length;
    result.cpu_s_per_idle_hour = idleCpu;
    result.idle_writes = idleWrites;
    result.idle_aws_calls = ecrCalls(idleStart, idleEnd);
    rows.push(
      {
        what: `cpu_s_per_idle_hour (${IDLE_S}s × ${round(3600 / IDLE_S, 1)})`,
        value: fmt(idleCpu),
        target: "≤ 5",
        met: idleCpu <= 5,
      },
      {
        what: `  idle writes (${IDLE_S}s)`,
        value: String(idleWrites),
        target: "= 0",
        met: idleWrites === 0,
      },
    );
  }

  const metrics = await metricsOf(op);
  notes.push(
    `operator API requests (${ALL ? "the restarted operator's: cold start, every output" : "all phases"}): ${[
      "list",
      "get",
      "create",
      "patch",
      "delete",
    ]
      .map(
        (v) => `${v} ${metricSum(metrics, "ecr_creds_refresher_kube_requests_total", { verb: v })}`,
      )
      .join(", ")}`,
  );
  notes.push(`operator memory by phase: ${memoryLog.join(", ")}`);
  if (opt["heap-snapshot"]) {
    op.signal("SIGUSR2");
    await sleep(5_000);
  }
  await op.stop();
  if (opt["cpu-prof"]) notes.push(`CPU profiles (${profiles}) in ${opt["cpu-prof"]}`);

  printTable(result);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** CPU-seconds the operator used over a rest window, scaled to an hour. */
/** Waits until the operator has written nothing for 3 s (the audit log). */
async function waitForQuiet(audit: AuditTail): Promise<void> {
  await waitFor(
    "3 s without a write by the operator",
    async () =>
      (await audit.since(OPERATOR_USER, Date.now() - 3_000)).length === 0 ? true : undefined,
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

/**
 * A cold start: waits for the operator's writes to stop, stops it and starts
 * a new one (`start`), and waits until `resources` passes are done in it
 * with an empty queue; then `verify`, and 3 s for anything the passes would
 * still write. Resolves with the new process, the seconds from the restart
 * to those passes, and the restart's time (for the writes and AWS calls).
 */
async function coldStart(opts: {
  audit: AuditTail;
  op: OperatorProcess;
  start: () => Promise<OperatorProcess>;
  metricsOf: (op: OperatorProcess) => Promise<string>;
  resources: number;
  verify: () => Promise<void>;
}): Promise<{ op: OperatorProcess; seconds: number; restartAt: number }> {
  progress("cold start: waiting for the operator's writes to stop, then restarting it");
  await waitForQuiet(opts.audit);
  await opts.op.stop();
  const restartAt = Date.now();
  const op = await opts.start();
  await waitFor(
    `${opts.resources} passes in the restarted operator`,
    async () => {
      const text = await opts.metricsOf(op);
      const passes = metricSum(text, "ecr_creds_refresher_reconcile_duration_seconds_count");
      const depth = metricSum(text, "ecr_creds_refresher_queue_depth");
      return passes >= opts.resources && depth === 0 ? true : undefined;
    },
    { timeoutMs: 600_000, intervalMs: 200 },
  );
  const seconds = (Date.now() - restartAt) / 1000;
  await opts.verify();
  await sleep(3_000);
  return { op, seconds, restartAt };
}

/** The cold start's rows and result fields: its time, and 0 writes and 0 AWS calls wanted. */
function reportColdStart(
  result: Record<string, number | string | null>,
  what: string,
  seconds: number,
  writes: readonly AuditWrite[],
  calls: number,
): void {
  for (const w of writes.slice(0, 10)) notes.push(`cold-start write: ${describeWrite(w)}`);
  result.coldstart_s = round(seconds);
  result.coldstart_writes = writes.length;
  result.coldstart_aws_calls = calls;
  rows.push(
    { what: `coldstart_s (${what})`, value: fmt(seconds) },
    {
      what: "coldstart_writes",
      value: String(writes.length),
      target: "= 0",
      met: writes.length === 0,
    },
    { what: "coldstart_aws_calls", value: String(calls), target: "= 0", met: calls === 0 },
  );
}

async function cpuAtRest(
  op: OperatorProcess,
  cpuStart: number,
  from: number,
  to: number,
): Promise<number> {
  const used = (await op.cpuSeconds()) - cpuStart;
  const perHour = (used * 3_600_000) / (to - from);
  progress(
    `cpu at rest: ${round(used, 2)} CPU-s in ${round((to - from) / 1000, 1)} s = ${round(perHour, 2)} CPU-s per hour`,
  );
  return round(perHour, 2);
}

function metricsAddress(op: OperatorProcess): string {
  const arg = (op.proc.spawnargs.find((a) => a.startsWith("--metrics-bind-address=")) ?? "").split(
    "=",
  )[1];
  return arg ?? "";
}

/** A write the fan-out makes in a target namespace: its Secret or the default ServiceAccount. */
function isTargetWrite(
  w: { resource: string; verb: string; name: string; namespace: string },
  secretVerb: string,
): boolean {
  if (!/^bench-\d{4}$/.test(w.namespace)) return false;
  if (w.resource === "secrets") return w.name === SECRET_NAME && w.verb === secretVerb;
  return w.resource === "serviceaccounts" && w.name === "default" && w.verb === "patch";
}

/**
 * The floor: what the API server allows for the same writes, from a minimal
 * client in a process of its own started fresh (bench/floor.ts), with the
 * operator's Node flags, QPS, burst, write concurrency and identity.
 * Resolves with its wall and CPU seconds over the writes.
 */
async function floorProcess(opts: {
  kubeconfig: string;
  namespacesFile: string;
  name: string;
  /** The watching floor: it also watches what it writes (bench/floor.ts --watch). */
  watch?: boolean;
}): Promise<FloorResult> {
  const child = spawn(
    process.execPath,
    [
      ...IMAGE_NODE_FLAGS,
      // Profiled beside the operator, to compare the two (file name floor-*.cpuprofile).
      ...(opt["cpu-prof"]
        ? [
            "--cpu-prof",
            `--cpu-prof-dir=${opt["cpu-prof"]}`,
            `--cpu-prof-name=${opts.name}.cpuprofile`,
          ]
        : []),
      "--import",
      join(repoRoot, "scripts/ts-hooks.mjs"),
      join(repoRoot, "bench/floor.ts"),
      `--kubeconfig=${opts.kubeconfig}`,
      `--namespaces-file=${opts.namespacesFile}`,
      `--name=${opts.name}`,
      `--registry-host=${REGISTRY_HOST}`,
      `--concurrency=${WRITE_CONCURRENCY}`,
      `--qps=${QPS}`,
      `--burst=${BURST}`,
      ...(opts.watch ? ["--watch"] : []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString("utf8");
  });
  const code = await new Promise<number | string>((resolve) =>
    child.once("exit", (c, signal) => resolve(c ?? signal ?? -1)),
  );
  const line = out.trim().split("\n").at(-1) ?? "";
  if (code !== 0 || !line.startsWith("{")) {
    throw new Error(`failed to run the floor process (exit ${code}): ${err.trim() || out.trim()}`);
  }
  return JSON.parse(line) as FloorResult;
}

/** The machine's stolen and idle CPU over a window, as printed beside each round. */
function sharesText(shares: { steal: number; idle: number }): string {
  const pct = (x: number) => `${round(x * 100, 1)} %`;
  return `machine: ${pct(shares.steal)} stolen, ${pct(shares.idle)} idle`;
}

/** Checks every target's Secret holds `password` and its default ServiceAccount references it. */
async function verifyFanout(admin: KubeClient, targets: string[], password: string): Promise<void> {
  const secrets = await admin.list<Secret>(SECRETS, {
    labelSelector: `ecrcreds.io/owner=${RESOURCE}`,
  });
  const good = new Set(
    secrets.items
      .filter((s) => {
        const raw = s.data?.[".dockerconfigjson"];
        return raw && Buffer.from(raw, "base64").toString("utf8").includes(password);
      })
      .map((s) => s.metadata?.namespace),
  );
  const sas = await admin.list<ServiceAccount>(SERVICE_ACCOUNTS, {
    fieldSelector: "metadata.name=default",
  });
  const referenced = new Set(
    sas.items
      .filter((sa) => sa.imagePullSecrets?.some((r) => r.name === SECRET_NAME))
      .map((sa) => sa.metadata?.namespace),
  );
  const missing = targets.filter((ns) => !good.has(ns) || !referenced.has(ns));
  if (missing.length > 0 || !password) {
    throw new Error(
      `failed to verify the fan-out: ${missing.length} namespaces lack the Secret with the issued password or the ServiceAccount reference (first: ${missing.slice(0, 3).join(", ")})`,
    );
  }
}

/**
 * Creates namespaces one at a time at a steady pace and measures, for each,
 * the time from its creation to both its Secret and its default
 * ServiceAccount's reference being there (seen through watches).
 */
async function newNamespaceLatency(
  admin: KubeClient,
): Promise<{ done: number[]; missing: number }> {
  const created = new Map<string, number>();
  const secretAt = new Map<string, number>();
  const saAt = new Map<string, number>();
  const rvOf = async (list: Promise<{ metadata?: { resourceVersion?: string } }>) =>
    (await list).metadata?.resourceVersion ?? "";
  const secretRv = await rvOf(
    admin.list(SECRETS, { labelSelector: `ecrcreds.io/owner=${RESOURCE}`, limit: 1 }),
  );
  const saRv = await rvOf(
    admin.list(SERVICE_ACCOUNTS, { fieldSelector: "metadata.name=default", limit: 1 }),
  );
  type Meta = {
    metadata?: { namespace?: string; name?: string };
    imagePullSecrets?: Array<{ name?: string }>;
  };
  const secretWatch = await admin.watch(
    resourcePath(SECRETS),
    { labelSelector: `ecrcreds.io/owner=${RESOURCE}`, resourceVersion: secretRv },
    (type: string, object: unknown) => {
      const obj = object as Meta;
      const ns = obj.metadata?.namespace ?? "";
      if (type !== "DELETED" && obj.metadata?.name === SECRET_NAME && !secretAt.has(ns))
        secretAt.set(ns, Date.now());
    },
    () => undefined,
  );
  const saWatch = await admin.watch(
    resourcePath(SERVICE_ACCOUNTS),
    { fieldSelector: "metadata.name=default", resourceVersion: saRv },
    (type: string, object: unknown) => {
      const obj = object as Meta;
      const ns = obj.metadata?.namespace ?? "";
      if (
        type !== "DELETED" &&
        obj.imagePullSecrets?.some((r) => r.name === SECRET_NAME) &&
        !saAt.has(ns)
      )
        saAt.set(ns, Date.now());
    },
    () => undefined,
  );
  try {
    const names = Array.from({ length: NEW_NS }, (_, i) => newName(i));
    const t0 = Date.now();
    for (const [i, name] of names.entries()) {
      const due = t0 + i * NEW_NS_INTERVAL;
      if (due > Date.now()) await sleep(due - Date.now());
      created.set(name, Date.now());
      // Not awaited: a slow create must not hold back the pace.
      void admin.create(NAMESPACES, { metadata: { name } }).catch((err: unknown) => {
        progress(`failed to create namespace ${name}: ${err instanceof Error ? err.message : err}`);
      });
    }
    await waitFor(
      "every new namespace to be served",
      () => (names.every((n) => secretAt.has(n) && saAt.has(n)) ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 100 },
    ).catch(() => undefined);
    const done: number[] = [];
    let missing = 0;
    for (const n of names) {
      const s = secretAt.get(n);
      const a = saAt.get(n);
      if (s === undefined || a === undefined) missing++;
      else done.push(Math.max(s, a) - (created.get(n) ?? 0));
    }
    return { done, missing };
  } finally {
    secretWatch.abort();
    saWatch.abort();
  }
}

function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

function printTable(result: Record<string, unknown>): void {
  const w0 = Math.max(...rows.map((r) => r.what.length), 10);
  const w1 = Math.max(...rows.map((r) => r.value.length), 8);
  const lines = [
    `ecr-creds-refresher benchmark: ${result.n !== undefined ? `n=${result.n}` : `sources=${SOURCES}`}, node ${result.node}, ${result.cpus} cpus, qps=${QPS} burst=${BURST} write-concurrency=${WRITE_CONCURRENCY}, operator node flags: ${IMAGE_NODE_FLAGS.join(" ") || "none"}`,
    "",
    `${"figure".padEnd(w0)}  ${"value".padStart(w1)}  target`,
    `${"-".repeat(w0)}  ${"-".repeat(w1)}  ------------`,
  ];
  for (const r of rows) {
    const mark = r.met === undefined ? "" : r.met ? "  met" : "  MISSED";
    lines.push(`${r.what.padEnd(w0)}  ${r.value.padStart(w1)}  ${r.target ?? ""}${mark}`);
  }
  for (const n of notes) lines.push(`note: ${n}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

interface SourcesContext {
  k: ReturnType<typeof testKube>;
  admin: KubeClient;
  aws: AwsDouble;
  audit: AuditTail;
  startOperator: (extraArgs?: string[]) => Promise<OperatorProcess>;
  metricsOf: (op: OperatorProcess) => Promise<string>;
}

/**
 * Many sources: SOURCES resources, each with its own credentials Secret (IAM
 * users of one account: one quota for all), against the AWS double enforcing
 * AWS's documented GetAuthorizationToken quota (20/s, burst 200) and
 * answering AWS_LATENCY_MS late. First sync, a simultaneous refresh of all of
 * them, and (coldstart) the operator restarted. The baseline is what the
 * operator's own limiter allows: (sources − burst) / rate seconds.
 */
async function runSources(ctx: SourcesContext): Promise<Record<string, number | string | null>> {
  const { k, admin, aws, audit } = ctx;
  const M = SOURCES;
  const account = "222233334444";
  const host = `${account}.dkr.ecr.us-east-1.amazonaws.com`;
  const target = "sources-target";
  const name = (i: number) => `src-${String(i).padStart(4, "0")}`;
  const arn = (i: number) => `arn:aws:iam::${account}:user/${name(i)}`;
  const keyId = (i: number) => `AKIASRC${String(i).padStart(13, "0")}`;
  const tokenQps = operatorDefault("aws-token-qps");
  const tokenBurst = operatorDefault("aws-token-burst");
  aws.quota = { ratePerSecond: 20, burst: 200 };
  if (AWS_LATENCY_MS > 0) aws.inject({ kind: "delay", ms: AWS_LATENCY_MS }, { service: "ecr" });
  const indexes = Array.from({ length: M }, (_, i) => i);
  for (const i of indexes) {
    aws.addIdentity({
      accessKeyId: keyId(i),
      secretAccessKey: `sources-secret-${String(i).padStart(25, "0")}`,
      accountId: account,
      arn: arn(i),
    });
  }
  progress(`sources: ${M} credentials Secrets and identities (one account)`);
  await admin.create(NAMESPACES, { metadata: { name: target } });
  await pool(indexes, 32, async (i) => {
    await admin.create(SECRETS, {
      metadata: { name: name(i), namespace: OPS },
      stringData: {
        AWS_ACCESS_KEY_ID: keyId(i),
        AWS_SECRET_ACCESS_KEY: `sources-secret-${String(i).padStart(25, "0")}`,
      },
    });
  });
  const tokenCalls = (from: number, to = Number.POSITIVE_INFINITY) =>
    aws.calls(
      (c) =>
        c.service === "ecr" &&
        c.action === "GetAuthorizationToken" &&
        c.time >= from &&
        c.time < to,
    );
  /** Every resource Ready and its Secret holding the newest password issued to its identity. */
  const allHold = async (minTokens: number): Promise<true | undefined> => {
    const newest = new Map<string, { password: string; count: number }>();
    for (const t of aws.issued()) {
      const seen = newest.get(t.principalArn);
      newest.set(t.principalArn, { password: t.password, count: (seen?.count ?? 0) + 1 });
    }
    for (const i of indexes) if ((newest.get(arn(i))?.count ?? 0) < minTokens) return undefined;
    const list = (await k.custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as { items: ECRPullSecret[] };
    const ready = new Set(
      list.items.filter((r) => readyCondition(r)?.status === "True").map((r) => r.metadata?.name),
    );
    const secrets = await admin.list<Secret>(SECRETS, { namespace: target });
    const byName = new Map(secrets.items.map((s) => [s.metadata?.name, s]));
    for (const i of indexes) {
      const secret = byName.get(`ecr-${name(i)}`);
      if (!ready.has(name(i)) || !secret) return undefined;
      const raw = secret.data?.[".dockerconfigjson"] ?? "";
      const config = JSON.parse(Buffer.from(raw, "base64").toString("utf8") || "{}") as {
        auths?: Record<string, { password?: string }>;
      };
      if (config.auths?.[host]?.password !== newest.get(arn(i))?.password) return undefined;
    }
    return true;
  };
  const floorS = Math.max(0, M - tokenBurst) / tokenQps;
  const result: Record<string, number | string | null> = {
    scenario: ONLY,
    sources: M,
    aws_latency_ms: AWS_LATENCY_MS,
    limiter_floor_s: round(floorS),
    first_sync_s: null,
    first_sync_throttles: null,
    refresh_all_s: null,
    refresh_all_throttles: null,
    node: process.version,
    cpus: cpus().length,
  };

  let op = await ctx.startOperator();
  progress(`sources: applying ${M} resources, one credentials Secret each`);
  const t0 = Date.now();
  await pool(indexes, 32, async (i) => {
    await applyResource(k, name(i), {
      secretName: `ecr-${name(i)}`,
      namespaces: [target],
      serviceAccounts: [],
      registries: [{ accountId: account }],
      credentials: { secretRef: { namespace: OPS, name: name(i) } },
    });
  });
  await waitFor("every source Ready with its own token", () => allHold(1), {
    timeoutMs: 600_000,
    intervalMs: 500,
  });
  const firstS = (Date.now() - t0) / 1000;
  const first = tokenCalls(t0);
  const firstThrottles = first.filter((c) => c.errorCode === "ThrottlingException").length;
  result.first_sync_s = round(firstS);
  result.first_sync_throttles = firstThrottles;
  result.first_sync_aws_calls = first.length;
  progress(
    `first_sync_s=${round(firstS)} (${first.length} AWS calls, ${firstThrottles} throttled)`,
  );
  rows.push(
    {
      what: `first_sync_s (${M} sources, AWS ${AWS_LATENCY_MS} ms away)`,
      value: fmt(firstS),
      target: "≤ 60",
      met: firstS <= 60,
    },
    {
      what: `  limiter floor ((${M} − ${tokenBurst}) / ${tokenQps}/s)`,
      value: fmt(floorS),
    },
    {
      what: "first_sync_throttles (ThrottlingException)",
      value: String(firstThrottles),
      target: "= 0",
      met: firstThrottles === 0,
    },
    {
      what: "  AWS calls during the first sync",
      value: String(first.length),
      target: `= ${M}`,
      met: first.length === M,
    },
  );

  // Simultaneous refresh: every resource asks for a fresher token at once
  // (tokens stay at ECR's 12 h: the operator's token records believe no
  // longer life), then goes back to the default lead before the new tokens
  // come due a minute later.
  progress(`sources: all ${M} due at once (refreshBefore 11h59m of 12 h tokens)`);
  const t1 = Date.now();
  await pool(indexes, 32, async (i) => {
    await k.custom.patchClusterCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        name: name(i),
        body: { spec: { refreshBefore: "11h59m" } },
      },
      mergePatch,
    );
  });
  await waitFor("every source refreshed", () => allHold(2), {
    timeoutMs: 600_000,
    intervalMs: 500,
  });
  const refreshS = (Date.now() - t1) / 1000;
  await pool(indexes, 32, async (i) => {
    await k.custom.patchClusterCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        name: name(i),
        body: { spec: { refreshBefore: null } },
      },
      mergePatch,
    );
  });
  const refresh = tokenCalls(t1);
  const refreshThrottles = refresh.filter((c) => c.errorCode === "ThrottlingException").length;
  result.refresh_all_s = round(refreshS);
  result.refresh_all_throttles = refreshThrottles;
  progress(
    `refresh_all_s=${round(refreshS)} (${refresh.length} AWS calls, ${refreshThrottles} throttled)`,
  );
  rows.push(
    { what: `refresh_all_s (${M} due at once)`, value: fmt(refreshS) },
    {
      what: "refresh_all_throttles",
      value: String(refreshThrottles),
      target: "= 0",
      met: refreshThrottles === 0,
    },
  );

  if (ONLY === "coldstart") {
    const cold = await coldStart({
      audit,
      op,
      start: () => ctx.startOperator(),
      metricsOf: ctx.metricsOf,
      resources: M,
      verify: async () => {
        if (!(await allHold(2)))
          throw new Error("failed to verify the cold start: a source lost its token");
      },
    });
    op = cold.op;
    reportColdStart(
      result,
      `restart → ${M} passes done`,
      cold.seconds,
      await audit.since(OPERATOR_USER, cold.restartAt),
      tokenCalls(cold.restartAt).length,
    );
  }
  const all = aws.calls({ errorCode: "ThrottlingException" }).length;
  notes.push(`ThrottlingExceptions from the quota double over the whole run: ${all}`);
  await op.stop();
  return result;
}
