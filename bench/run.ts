// `npm run bench`: the operator's cost on a local control plane and the AWS
// double, measured side by side with what the API server allows in the same
// run. Prints a table, then one JSON object as the last line. See
// docs/performance.md for what each figure means.
//
// The operator runs from the built executable as its own process, under its
// own ServiceAccount, so the API server's audit log tells its writes apart.
// Each scenario is a file of bench/scenarios/ whose `run(ctx)` resolves with
// its rows; this file picks them by `--only` and prints what they found.
import { cpus } from "node:os";
import {
  type BenchContext,
  createTargets,
  IMAGE_NODE_FLAGS,
  operatorDefault,
  progress,
  setUp,
} from "./context.js";
import { metricSum, type OperatorProcess, round, sleep } from "./lib.js";
import { type BenchOptions, parseOptions, USAGE } from "./options.js";
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
