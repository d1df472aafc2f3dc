// Phase of `all` after the fan-out: the token comes due and every Secret is
// rewritten (one AWS call); then 19 more resources over the same credentials
// share the next refresh (still one AWS call, none while they are added).
import { pool } from "../../src/reconcile/pool.js";
import { waitFor } from "../../test/harness/controlplane.js";
import { applyResource, readyCondition } from "../../test/harness/kube.js";
import {
  ACCOUNT,
  type BenchContext,
  HOUR,
  OPERATOR_USER,
  progress,
  RESOURCE,
  SECRET_NAME,
  targetName,
} from "../context.js";
import { round } from "../lib.js";
import { type Figures, figures, fmt } from "../report.js";
import { type FanOut, verifyFanout } from "./fanout.js";

/** Waits for the refresh after the fan-out, then the 20 resources' shared refresh. */
export async function run(ctx: BenchContext, targets: string[], fan: FanOut): Promise<Figures> {
  const out = figures();
  const refresh = await refreshAll(ctx, targets, fan, out);
  await ctx.memory.sample(fan.op, "refresh");
  const twenty = await twentyResources(ctx, fan, refresh.tokensBefore, out);
  out.rows.push(
    {
      what: "refresh_s (token fetch → last Secret rewritten)",
      value: fmt(refresh.seconds),
      target: "≤ fanout_s",
      met: refresh.seconds <= fan.fanoutS,
    },
    {
      what: "aws_calls_per_refresh",
      value: String(refresh.calls),
      target: "= 1",
      met: refresh.calls === 1,
    },
    {
      what: "aws_calls_20_resources (one refresh)",
      value: String(twenty.calls),
      target: "= 1",
      met: twenty.calls === 1,
    },
    {
      what: "  AWS calls while adding 19 resources",
      value: String(twenty.addCalls),
      target: "= 0",
      met: twenty.addCalls === 0,
    },
    {
      what: "  AWS calls during the fan-out",
      value: String(fan.fanoutCalls),
      target: "= 1",
      met: fan.fanoutCalls === 1,
    },
  );
  await ctx.memory.sample(fan.op, "20-resource refresh");
  return out;
}

/** The tokens the AWS double issued to the bench's own identity, oldest first. */
const mine = (ctx: BenchContext) =>
  ctx.aws.issued().filter((t) => t.principalArn.endsWith(":user/bench"));

/** The first refresh: its seconds (the token's issue → the last Secret rewritten) and AWS calls. */
async function refreshAll(
  ctx: BenchContext,
  targets: string[],
  fan: FanOut,
  out: Figures,
): Promise<{ seconds: number; calls: number; tokensBefore: number }> {
  const tokensBefore = mine(ctx).length;
  progress("refresh: waiting for the token to come due");
  const token2 = await waitFor(
    "the refresh's token fetch",
    () => (mine(ctx).length > tokensBefore ? mine(ctx)[tokensBefore] : undefined),
    { timeoutMs: fan.lifetimeMs + 60_000, intervalMs: 20 },
  );
  const refreshStart = token2.issuedAt;
  if (refreshStart < fan.fanoutEnd) {
    out.notes.push(
      `the refresh began ${round((fan.fanoutEnd - refreshStart) / 1000)}s before the fan-out ended: refresh_s overlaps it`,
    );
  }
  await ctx.waitStatus(
    "every Secret to hold the refreshed token",
    RESOURCE,
    (r) =>
      r.status?.tokenExpiresAt === token2.expiresAt.toISOString() &&
      r.status?.namespaces?.synced === ctx.opts.n,
    600_000,
  );
  const refreshWrites = (await ctx.audit.since(OPERATOR_USER, refreshStart)).filter(
    (w) => w.resource === "secrets" && w.name === SECRET_NAME && w.code < 300,
  );
  const refreshEnd = Math.max(...refreshWrites.map((w) => w.completed));
  const seconds = (refreshEnd - refreshStart) / 1000;
  const calls = ctx.ecrCalls(fan.readyAt, Date.now());
  await verifyFanout(ctx.admin, targets, token2.password);
  out.result.refresh_s = round(seconds);
  out.result.aws_calls_per_refresh = calls;
  progress(
    `refresh_s=${round(seconds)} (${refreshWrites.length} Secret writes, ${calls} AWS calls)`,
  );
  return { seconds, calls, tokensBefore };
}

/** 19 more resources over the same credentials, then their shared refresh: AWS calls of each. */
async function twentyResources(
  ctx: BenchContext,
  fan: FanOut,
  tokensBefore: number,
  out: Figures,
): Promise<{ addCalls: number; calls: number }> {
  const extra = Array.from({ length: 19 }, (_, i) => ({
    name: `bench-r${String(i + 1).padStart(2, "0")}`,
    secretName: `ecr-pull-r${i + 1}`,
    namespace: targetName(i),
  }));
  const addAt = Date.now();
  progress("20 resources: adding 19 more over the same credentials");
  await pool(extra, 19, async ({ name, secretName, namespace }) => {
    await applyResource(ctx.k, name, {
      secretName,
      namespaces: [namespace],
      registries: [{ accountId: ACCOUNT }],
    });
  });
  await pool(extra, 19, async ({ name }) => {
    await ctx.waitStatus(
      `${name} Ready`,
      name,
      (r) => readyCondition(r)?.status === "True" && r.status?.namespaces?.synced === 1,
      120_000,
    );
  });
  const addedAt = Date.now();
  const addCalls = ctx.ecrCalls(addAt, addedAt);
  // The next token is the last short one: what follows is the rest measurement.
  ctx.aws.tokenLifetimeMs = 12 * HOUR;
  if (mine(ctx).length > tokensBefore + 1) {
    out.notes.push("the 20-resource refresh began before all 19 extra resources were Ready");
  }
  progress("20 resources: waiting for the shared token to come due");
  const token3 = await waitFor(
    "the 20-resource refresh's token fetch",
    () => (mine(ctx).length > tokensBefore + 1 ? mine(ctx)[tokensBefore + 1] : undefined),
    { timeoutMs: fan.lifetimeMs + 60_000, intervalMs: 20 },
  );
  await pool([RESOURCE, ...extra.map((e) => e.name)], 20, async (name) => {
    await ctx.waitStatus(
      `${name} to hold the refreshed token`,
      name,
      (r) => r.status?.tokenExpiresAt === token3.expiresAt.toISOString(),
      600_000,
    );
  });
  const calls = ctx.ecrCalls(addedAt, Date.now());
  out.result.aws_calls_20_resources = calls;
  return { addCalls, calls };
}
