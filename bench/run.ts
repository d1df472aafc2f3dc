// `npm run bench`: the operator's cost on a local control plane and the AWS
// double, measured side by side with what the API server allows in the same
// run. Prints a table, then one JSON object as the last line. See
// docs/performance.md for what each figure means.
//
// The operator runs from the built executable as its own process, under its
// own ServiceAccount, so the API server's audit log tells its writes apart.
// Each scenario is a file of bench/scenarios/ whose `run(ctx)` resolves with
// its rows; this file reads the command line (`--help`), picks the scenarios
// by `--only` and prints what they found.
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import {
  type BenchContext,
  createTargets,
  IMAGE_NODE_FLAGS,
  operatorDefault,
  progress,
  setUp,
} from "./context.js";
import { metricSum, type OperatorProcess, round, sleep } from "./lib.js";
import { type BenchOptions, SCENARIOS, type Scenario } from "./options.js";
import { add, type Figures, figures, print, type Result } from "./report.js";
import * as coldStart from "./scenarios/cold-start.js";
import * as fanout from "./scenarios/fanout.js";
import * as forged from "./scenarios/forged-secrets.js";
import * as memory from "./scenarios/memory.js";
import * as newNamespaces from "./scenarios/new-namespaces.js";
import * as outputs from "./scenarios/outputs.js";
import * as refresh from "./scenarios/refresh.js";
import * as rest from "./scenarios/rest.js";
import * as runningPods from "./scenarios/running-pods.js";
import * as sources from "./scenarios/sources.js";
import * as tenants from "./scenarios/tenants.js";

const USAGE = `usage: npm run bench -- [--n 1000] [--qps Q --burst B --write-concurrency W]
  [--idle-seconds 60] [--new-namespaces 200] [--new-namespace-interval-ms 250]
  [--unrelated-secrets 20000] [--running-pods 2000] [--only SCENARIO] [--sources 500] [--aws-latency-ms 100]
  [--rounds R] [--cpu-prof DIR] [--heap-snapshot DIR] [--echo]
scenarios (--only): all (default), fanout, outputs (one resource with every output: AWS calls per refresh), unthrottled (fan-out and floor at --kube-api-qps 0),
  idle-cpu (fan-out, then CPU at rest), sources (--sources resources with their own
  credentials against the AWS quota double: first sync, simultaneous refresh), coldstart
  (sources, then the operator restarted), forged (200 labelled Secrets of 900 KiB written by
  a tenant: the operator's RSS growth and new-namespace latency meanwhile), tenants (1,000
  ECRPullSecretClaims on one ClusterECRCredentialSource: time to all synced against the floor,
  AWS calls, peak RSS)
--rounds R: floor and fan-out R times, the least of each taken and the median of the rounds'
  own ratios (fanout and unthrottled only; default 15 for unthrottled, else 1)
`;

const FLAGS = {
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
} as const;

const num = (v: string | undefined, what: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`failed to read --${what}: ${v} is not a number`);
  return n;
};

/**
 * Reads the command line; `"help"` when `--help` asks for the usage. Flags
 * left out take the operator's own defaults (`operatorDefault(flag)`, from
 * its settings table). Throws on a value that is not a number, an unknown
 * scenario, or `--rounds` where the scenario does not repeat.
 */
function parseOptions(
  args: string[],
  operatorDefault: (flag: string) => number,
): BenchOptions | "help" {
  const { values: opt } = parseArgs({ args, options: FLAGS, allowPositionals: false });
  if (opt.help) return "help";
  const only = opt.only as Scenario;
  if (!SCENARIOS.includes(only))
    throw new Error(`failed to read --only: ${only} is not one of ${SCENARIOS.join(", ")}`);
  const n = num(opt.n, "n");
  const rounds = opt.rounds ? num(opt.rounds, "rounds") : only === "unthrottled" ? 15 : 1;
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`failed to read --rounds: ${opt.rounds} is not a whole number of 1 or more`);
  if (rounds > 1 && only !== "fanout" && only !== "unthrottled")
    throw new Error(
      `failed to use --rounds ${rounds} with --only ${only}: only the fanout and unthrottled scenarios repeat their fan-out`,
    );
  const large = n >= 10_000;
  return {
    n,
    qps:
      only === "unthrottled" ? 0 : opt.qps ? num(opt.qps, "qps") : operatorDefault("kube-api-qps"),
    burst: opt.burst ? num(opt.burst, "burst") : operatorDefault("kube-api-burst"),
    writeConcurrency: opt["write-concurrency"]
      ? num(opt["write-concurrency"], "write-concurrency")
      : operatorDefault("write-concurrency"),
    idleSeconds: num(opt["idle-seconds"], "idle-seconds"),
    newNamespaces: num(opt["new-namespaces"], "new-namespaces"),
    newNamespaceIntervalMs: num(opt["new-namespace-interval-ms"], "new-namespace-interval-ms"),
    unrelatedSecrets: num(opt["unrelated-secrets"], "unrelated-secrets"),
    runningPods: num(opt["running-pods"], "running-pods"),
    only,
    all: only === "all",
    watchingFloor: only === "unthrottled",
    sources: num(opt.sources, "sources"),
    rounds,
    ratioTarget: only === "unthrottled" ? 1.2 : large ? 1.05 : 1.5,
    large,
    rssTargetMb: large ? 160 : 150,
    newNsP99TargetMs: large ? 300 : 1000,
    awsLatencyMs: num(opt["aws-latency-ms"], "aws-latency-ms"),
    cpuProf: opt["cpu-prof"],
    heapSnapshot: opt["heap-snapshot"],
    echo: opt.echo,
    operatorNodeOptions: opt["operator-node-options"],
    operatorEnv: opt["operator-env"] ?? [],
  };
}

const opts = parseOptions(process.argv.slice(2), operatorDefault);
if (opts === "help") {
  process.stdout.write(USAGE);
  process.exit(0);
}

const cleanups: Array<() => Promise<unknown>> = [];
let exitCode = 0;
try {
  await main(opts);
} catch (err) {
  exitCode = 1;
  process.stderr.write(
    `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`,
  );
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
}
process.exit(exitCode);

async function main(opts: BenchOptions): Promise<void> {
  progress(
    `n=${opts.n} qps=${opts.qps} burst=${opts.burst} write-concurrency=${opts.writeConcurrency} on ${cpus().length} cpus; operator node flags (the image's): ${IMAGE_NODE_FLAGS.join(" ") || "none"}`,
  );
  const ctx = await setUp(opts, cleanups);
  if (opts.only === "forged") return show(ctx, await forged.run(ctx));
  if (opts.only === "tenants") return show(ctx, await tenants.run(ctx));
  if (opts.only === "sources" || opts.only === "coldstart") {
    return show(ctx, await sources.run(ctx));
  }
  const rssBase = opts.all ? await memory.measureBase(ctx) : undefined;
  const targets = await createTargets(ctx, opts.all ? opts.unrelatedSecrets : 0);
  if (opts.only === "outputs") {
    const op = await ctx.startOperator();
    const out = await outputs.run(ctx, targets.slice(0, 100));
    await op.stop();
    return show(ctx, out, { n: opts.n, node: process.version, cpus: cpus().length });
  }
  const fan = await fanout.run(ctx, targets);
  const out = figures(fanoutResult(opts, fan.figures.result, rssBase));
  add(out, { ...fan.figures, result: {} });
  let op = fan.fanOut.op;
  if (opts.all) op = await afterFanout(ctx, targets, fan.fanOut, rssBase, out);
  if (opts.only === "idle-cpu") add(out, await rest.runIdleCpu(ctx, op));
  await finish(ctx, op, out);
  show(ctx, out);
}

/**
 * The JSON line of the scenarios with a fan-out: its fields, every field of
 * `all` (null until measured, so the line has one shape), and the run's
 * settings.
 */
function fanoutResult(opts: BenchOptions, fan: Result, rssBase: number | undefined): Result {
  return {
    ...fan,
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
    n: opts.n,
    qps: opts.qps,
    burst: opts.burst,
    write_concurrency: opts.writeConcurrency,
    scenario: opts.only,
  };
}

/** The phases of `all` after the fan-out, in order; resolves with the operator then running. */
async function afterFanout(
  ctx: BenchContext,
  targets: string[],
  fan: fanout.FanOut,
  rssBase: number | undefined,
  out: Figures,
): Promise<OperatorProcess> {
  add(out, await refresh.run(ctx, targets, fan));
  add(out, await rest.run(ctx, fan.op));
  add(out, await newNamespaces.run(ctx, fan.op));
  add(out, await memory.run(ctx, fan.op, rssBase));
  add(out, await runningPods.run(ctx, fan.op));
  const cold = await coldStart.run(ctx, fan.op, targets);
  add(out, cold.figures);
  add(out, await outputs.run(ctx, targets.slice(0, 100)));
  return cold.op;
}

/** The closing notes (the operator's API requests, memory by phase, profiles), then the operator stopped. */
async function finish(ctx: BenchContext, op: OperatorProcess, out: Figures): Promise<void> {
  const { opts } = ctx;
  const metrics = await ctx.metricsOf(op);
  const requests = ["list", "get", "create", "patch", "delete"]
    .map(
      (v) => `${v} ${metricSum(metrics, "ecr_creds_refresher_kube_requests_total", { verb: v })}`,
    )
    .join(", ");
  out.notes.push(
    `operator API requests (${opts.all ? "the restarted operator's: cold start, every output" : "all phases"}): ${requests}`,
  );
  out.notes.push(`operator memory by phase: ${ctx.memory.phases.join(", ")}`);
  if (opts.heapSnapshot) {
    op.signal("SIGUSR2");
    await sleep(5_000);
  }
  await op.stop();
  if (opts.cpuProf) out.notes.push(`CPU profiles (${ctx.started()}) in ${opts.cpuProf}`);
}

/** Prints the figures under a line of the run's settings (`about`: n, node and cpus, the figures' own fields unless given). */
function show(ctx: BenchContext, out: Figures, about: Result = out.result): void {
  const { opts } = ctx;
  print(
    `ecr-creds-refresher benchmark: ${about.n !== undefined ? `n=${about.n}` : `sources=${opts.sources}`}, node ${about.node}, ${about.cpus} cpus, qps=${opts.qps} burst=${opts.burst} write-concurrency=${opts.writeConcurrency}, operator node flags: ${IMAGE_NODE_FLAGS.join(" ") || "none"}`,
    out,
  );
}
