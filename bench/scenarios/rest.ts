// The operator at rest: once its writes have stopped, `--idle-seconds` of
// CPU, writes and AWS calls, all of which should be (next to) nothing. A
// phase of `all` (`run`) and, after the fan-out, scenario `--only idle-cpu`
// (`runIdleCpu`).
import { type BenchContext, OPERATOR_USER, progress, waitForQuiet } from "../context.js";
import { type AuditWrite, describeWrite, type OperatorProcess, round, sleep } from "../lib.js";
import { type Figures, figures, fmt, type Row } from "../report.js";

/** The rest phase of `all`: CPU per hour, writes (each noted) and AWS calls. */
export async function run(ctx: BenchContext, op: OperatorProcess): Promise<Figures> {
  const idleS = ctx.opts.idleSeconds;
  const rest = await measure(ctx, op, `rest: counting writes and AWS calls for ${idleS}s`);
  const out = figures({
    cpu_s_per_idle_hour: rest.cpuPerHour,
    idle_writes: rest.writes.length,
    idle_aws_calls: rest.calls,
  });
  out.rows.push(cpuRow(idleS, rest.cpuPerHour));
  for (const w of rest.writes.slice(0, 10)) out.notes.push(`idle write: ${describeWrite(w)}`);
  out.rows.push(
    {
      what: `idle_writes (${idleS}s)`,
      value: String(rest.writes.length),
      target: "= 0",
      met: rest.writes.length === 0,
    },
    {
      what: `idle_aws_calls (${idleS}s)`,
      value: String(rest.calls),
      target: "= 0",
      met: rest.calls === 0,
    },
  );
  await ctx.memory.sample(op, "rest");
  return out;
}

/** Scenario `idle-cpu`: CPU per hour with every target served, and the writes meanwhile. */
export async function runIdleCpu(ctx: BenchContext, op: OperatorProcess): Promise<Figures> {
  const { idleSeconds: idleS, n } = ctx.opts;
  const rest = await measure(
    ctx,
    op,
    `rest: measuring CPU for ${idleS}s with ${n} namespaces served`,
  );
  const writes = rest.writes.length;
  const out = figures({
    cpu_s_per_idle_hour: rest.cpuPerHour,
    idle_writes: writes,
    idle_aws_calls: rest.calls,
  });
  out.rows.push(cpuRow(idleS, rest.cpuPerHour), {
    what: `  idle writes (${idleS}s)`,
    value: String(writes),
    target: "= 0",
    met: writes === 0,
  });
  return out;
}

function cpuRow(idleS: number, cpuPerHour: number): Row {
  return {
    what: `cpu_s_per_idle_hour (${idleS}s × ${round(3600 / idleS, 1)})`,
    value: fmt(cpuPerHour),
    target: "≤ 5",
    met: cpuPerHour <= 5,
  };
}

/** Waits for the writes to stop, then measures a window of `--idle-seconds` (`what` printed at its start). */
async function measure(
  ctx: BenchContext,
  op: OperatorProcess,
  what: string,
): Promise<{ cpuPerHour: number; writes: AuditWrite[]; calls: number }> {
  progress("rest: waiting for the operator's writes to stop");
  await waitForQuiet(ctx.audit);
  const idleStart = Date.now();
  const cpuStart = await op.cpuSeconds();
  progress(what);
  await sleep(ctx.opts.idleSeconds * 1000);
  const idleEnd = Date.now();
  const cpuPerHour = await cpuAtRest(op, cpuStart, idleStart, idleEnd);
  const writes = await ctx.audit.since(OPERATOR_USER, idleStart, idleEnd);
  return { cpuPerHour, writes, calls: ctx.ecrCalls(idleStart, idleEnd) };
}

/** CPU-seconds the operator used over a rest window, scaled to an hour. */
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
