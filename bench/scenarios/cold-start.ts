// The operator restarted over everything it serves: the time until a pass
// over every resource is done with an empty queue, and the writes and AWS
// calls it makes meanwhile (none wanted: its cache and token records hold
// what it needs). A phase of `all` (`run`) and of `--only coldstart`
// (bench/scenarios/sources.ts, through `restart` and `figures`).
import { type ECRPullSecret, GROUP, PLURAL, VERSION } from "../../src/api/index.js";
import { waitFor } from "../../test/harness/controlplane.js";
import { type BenchContext, OPERATOR_USER, progress, waitForQuiet } from "../context.js";
import {
  type AuditWrite,
  describeWrite,
  metricSum,
  type OperatorProcess,
  round,
  sleep,
} from "../lib.js";
import { figures as emptyFigures, type Figures, fmt } from "../report.js";
import { verifyFanout } from "./fanout.js";

/**
 * The cold start of `all`, before the every-output resource, whose 60 s
 * tokens would rightly be fetched again: every token in place here lives
 * 12 h. Resolves with the restarted operator and the figures.
 */
export async function run(
  ctx: BenchContext,
  op: OperatorProcess,
  targets: string[],
): Promise<{ op: OperatorProcess; figures: Figures }> {
  const resources = (
    (await ctx.k.custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as { items: ECRPullSecret[] }
  ).items.length;
  const cold = await restart(ctx, {
    op,
    resources,
    verify: () => verifyFanout(ctx.admin, targets, ctx.aws.issued().at(-1)?.password ?? ""),
  });
  const out = figures(
    `restart → ${resources} passes done over ${ctx.opts.n + ctx.opts.newNamespaces} namespaces`,
    cold.seconds,
    await ctx.audit.since(OPERATOR_USER, cold.restartAt),
    ctx.ecrCalls(cold.restartAt),
  );
  await ctx.memory.sample(cold.op, "cold start");
  return { op: cold.op, figures: out };
}

/**
 * A cold start: waits for the operator's writes to stop, stops it and starts
 * a new one, and waits until `resources` passes are done in it with an
 * empty queue; then `verify`, and 3 s for anything the passes would still
 * write. Resolves with the new process, the seconds from the restart to
 * those passes, and the restart's time (for the writes and AWS calls).
 */
export async function restart(
  ctx: BenchContext,
  opts: { op: OperatorProcess; resources: number; verify: () => Promise<void> },
): Promise<{ op: OperatorProcess; seconds: number; restartAt: number }> {
  progress("cold start: waiting for the operator's writes to stop, then restarting it");
  await waitForQuiet(ctx.audit);
  await opts.op.stop();
  const restartAt = Date.now();
  const op = await ctx.startOperator();
  await waitFor(
    `${opts.resources} passes in the restarted operator`,
    async () => {
      const text = await ctx.metricsOf(op);
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

/** The cold start's rows, notes and JSON fields: its time, and 0 writes and 0 AWS calls wanted. */
export function figures(
  what: string,
  seconds: number,
  writes: readonly AuditWrite[],
  calls: number,
): Figures {
  const out = emptyFigures({
    coldstart_s: round(seconds),
    coldstart_writes: writes.length,
    coldstart_aws_calls: calls,
  });
  for (const w of writes.slice(0, 10)) out.notes.push(`cold-start write: ${describeWrite(w)}`);
  out.rows.push(
    { what: `coldstart_s (${what})`, value: fmt(seconds) },
    {
      what: "coldstart_writes",
      value: String(writes.length),
      target: "= 0",
      met: writes.length === 0,
    },
    { what: "coldstart_aws_calls", value: String(calls), target: "= 0", met: calls === 0 },
  );
  return out;
}
