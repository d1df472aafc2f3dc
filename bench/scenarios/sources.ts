// Scenarios `--only sources` and `--only coldstart`: `--sources` resources,
// each with its own credentials Secret (IAM users of one account: one quota
// for all), against the AWS double enforcing AWS's documented
// GetAuthorizationToken quota (20/s, burst 200) and answering
// `--aws-latency-ms` late. First sync, a simultaneous refresh of all of them,
// and (coldstart) the operator restarted. The baseline is what the operator's
// own limiter allows: (sources − burst) / rate seconds.
import { cpus } from "node:os";
import { type ECRPullSecret, GROUP, PLURAL, VERSION } from "../../src/api/index.js";
import type { Secret } from "../../src/kube/types.js";
import { pool } from "../../src/reconcile/pool.js";
import { waitFor } from "../../test/harness/controlplane.js";
import { applyResource, mergePatch, readyCondition } from "../../test/harness/kube.js";
import {
  type BenchContext,
  NAMESPACES,
  OPERATOR_USER,
  OPS,
  operatorDefault,
  progress,
  SECRETS,
} from "../context.js";
import { round } from "../lib.js";
import { add, type Figures, figures, fmt } from "../report.js";
import * as coldStart from "./cold-start.js";

const ACCOUNT = "222233334444";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const TARGET = "sources-target";
const name = (i: number) => `src-${String(i).padStart(4, "0")}`;
const arn = (i: number) => `arn:aws:iam::${ACCOUNT}:user/${name(i)}`;
const keyId = (i: number) => `AKIASRC${String(i).padStart(13, "0")}`;
const secretKey = (i: number) => `sources-secret-${String(i).padStart(25, "0")}`;

/** The first sync, the simultaneous refresh and, for `coldstart`, the restart over them. */
export async function run(ctx: BenchContext): Promise<Figures> {
  const { opts } = ctx;
  const m = opts.sources;
  const tokenQps = operatorDefault("aws-token-qps");
  const tokenBurst = operatorDefault("aws-token-burst");
  const indexes = Array.from({ length: m }, (_, i) => i);
  await addSources(ctx, indexes);
  const floorS = Math.max(0, m - tokenBurst) / tokenQps;
  const out = figures({
    scenario: opts.only,
    sources: m,
    aws_latency_ms: opts.awsLatencyMs,
    limiter_floor_s: round(floorS),
    first_sync_s: null,
    first_sync_throttles: null,
    refresh_all_s: null,
    refresh_all_throttles: null,
    node: process.version,
    cpus: cpus().length,
  });
  let op = await ctx.startOperator();
  add(out, await firstSync(ctx, indexes, { floorS, tokenQps, tokenBurst }));
  add(out, await refreshAll(ctx, indexes));
  if (opts.only === "coldstart") {
    const cold = await coldStart.restart(ctx, {
      op,
      resources: m,
      verify: async () => {
        if (!(await allHold(ctx, indexes, 2)))
          throw new Error("failed to verify the cold start: a source lost its token");
      },
    });
    op = cold.op;
    add(
      out,
      coldStart.figures(
        `restart → ${m} passes done`,
        cold.seconds,
        await ctx.audit.since(OPERATOR_USER, cold.restartAt),
        tokenCalls(ctx, cold.restartAt).length,
      ),
    );
  }
  const all = ctx.aws.calls({ errorCode: "ThrottlingException" }).length;
  out.notes.push(`ThrottlingExceptions from the quota double over the whole run: ${all}`);
  await op.stop();
  return out;
}

/** The quota and latency in the AWS double, an identity and a credentials Secret per source, and the target namespace. */
async function addSources(ctx: BenchContext, indexes: number[]): Promise<void> {
  const { aws, admin, opts } = ctx;
  aws.quota = { ratePerSecond: 20, burst: 200 };
  if (opts.awsLatencyMs > 0)
    aws.inject({ kind: "delay", ms: opts.awsLatencyMs }, { service: "ecr" });
  for (const i of indexes) {
    aws.addIdentity({
      accessKeyId: keyId(i),
      secretAccessKey: secretKey(i),
      accountId: ACCOUNT,
      arn: arn(i),
    });
  }
  progress(`sources: ${indexes.length} credentials Secrets and identities (one account)`);
  await admin.create(NAMESPACES, { metadata: { name: TARGET } });
  await pool(indexes, 32, async (i) => {
    await admin.create(SECRETS, {
      metadata: { name: name(i), namespace: OPS },
      stringData: { AWS_ACCESS_KEY_ID: keyId(i), AWS_SECRET_ACCESS_KEY: secretKey(i) },
    });
  });
}

/** GetAuthorizationToken calls to the AWS double in [from, to), throttled ones included. */
const tokenCalls = (ctx: BenchContext, from: number, to = Number.POSITIVE_INFINITY) =>
  ctx.aws.calls(
    (c) =>
      c.service === "ecr" && c.action === "GetAuthorizationToken" && c.time >= from && c.time < to,
  );

/** Every resource Ready and its Secret holding the newest password issued to its identity (of at least `minTokens`). */
async function allHold(
  ctx: BenchContext,
  indexes: number[],
  minTokens: number,
): Promise<true | undefined> {
  const newest = new Map<string, { password: string; count: number }>();
  for (const t of ctx.aws.issued()) {
    const seen = newest.get(t.principalArn);
    newest.set(t.principalArn, { password: t.password, count: (seen?.count ?? 0) + 1 });
  }
  for (const i of indexes) if ((newest.get(arn(i))?.count ?? 0) < minTokens) return undefined;
  const list = (await ctx.k.custom.listClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
  })) as { items: ECRPullSecret[] };
  const ready = new Set(
    list.items.filter((r) => readyCondition(r)?.status === "True").map((r) => r.metadata?.name),
  );
  const secrets = await ctx.admin.list<Secret>(SECRETS, { namespace: TARGET });
  const byName = new Map(secrets.items.map((s) => [s.metadata?.name, s]));
  for (const i of indexes) {
    const secret = byName.get(`ecr-${name(i)}`);
    if (!ready.has(name(i)) || !secret) return undefined;
    const raw = secret.data?.[".dockerconfigjson"] ?? "";
    const config = JSON.parse(Buffer.from(raw, "base64").toString("utf8") || "{}") as {
      auths?: Record<string, { password?: string }>;
    };
    if (config.auths?.[HOST]?.password !== newest.get(arn(i))?.password) return undefined;
  }
  return true;
}

/** Every source applied at once: the seconds until all hold their first token, its AWS calls and throttles. */
async function firstSync(
  ctx: BenchContext,
  indexes: number[],
  limiter: { floorS: number; tokenQps: number; tokenBurst: number },
): Promise<Figures> {
  const m = indexes.length;
  const latency = ctx.opts.awsLatencyMs;
  progress(`sources: applying ${m} resources, one credentials Secret each`);
  const t0 = Date.now();
  await pool(indexes, 32, async (i) => {
    await applyResource(ctx.k, name(i), {
      secretName: `ecr-${name(i)}`,
      namespaces: [TARGET],
      serviceAccounts: [],
      registries: [{ accountId: ACCOUNT }],
      credentials: { secretRef: { namespace: OPS, name: name(i) } },
    });
  });
  await waitFor("every source Ready with its own token", () => allHold(ctx, indexes, 1), {
    timeoutMs: 600_000,
    intervalMs: 500,
  });
  const firstS = (Date.now() - t0) / 1000;
  const first = tokenCalls(ctx, t0);
  const throttles = first.filter((c) => c.errorCode === "ThrottlingException").length;
  progress(`first_sync_s=${round(firstS)} (${first.length} AWS calls, ${throttles} throttled)`);
  const out = figures({
    first_sync_s: round(firstS),
    first_sync_throttles: throttles,
    first_sync_aws_calls: first.length,
  });
  out.rows.push(
    {
      what: `first_sync_s (${m} sources, AWS ${latency} ms away)`,
      value: fmt(firstS),
      target: "≤ 60",
      met: firstS <= 60,
    },
    {
      what: `  limiter floor ((${m} − ${limiter.tokenBurst}) / ${limiter.tokenQps}/s)`,
      value: fmt(limiter.floorS),
    },
    {
      what: "first_sync_throttles (ThrottlingException)",
      value: String(throttles),
      target: "= 0",
      met: throttles === 0,
    },
    {
      what: "  AWS calls during the first sync",
      value: String(first.length),
      target: `= ${m}`,
      met: first.length === m,
    },
  );
  return out;
}

/** Sets `spec.refreshBefore` of every source (null: back to the default). */
async function setRefreshBefore(ctx: BenchContext, indexes: number[], value: string | null) {
  await pool(indexes, 32, async (i) => {
    await ctx.k.custom.patchClusterCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        name: name(i),
        body: { spec: { refreshBefore: value } },
      },
      mergePatch,
    );
  });
}

/**
 * Simultaneous refresh: every resource asks for a fresher token at once
 * (tokens stay at ECR's 12 h: the operator's token records believe no
 * longer life), then goes back to the default lead before the new tokens
 * come due a minute later.
 */
async function refreshAll(ctx: BenchContext, indexes: number[]): Promise<Figures> {
  const m = indexes.length;
  progress(`sources: all ${m} due at once (refreshBefore 11h59m of 12 h tokens)`);
  const t1 = Date.now();
  await setRefreshBefore(ctx, indexes, "11h59m");
  await waitFor("every source refreshed", () => allHold(ctx, indexes, 2), {
    timeoutMs: 600_000,
    intervalMs: 500,
  });
  const refreshS = (Date.now() - t1) / 1000;
  await setRefreshBefore(ctx, indexes, null);
  const refresh = tokenCalls(ctx, t1);
  const throttles = refresh.filter((c) => c.errorCode === "ThrottlingException").length;
  progress(
    `refresh_all_s=${round(refreshS)} (${refresh.length} AWS calls, ${throttles} throttled)`,
  );
  const out = figures({ refresh_all_s: round(refreshS), refresh_all_throttles: throttles });
  out.rows.push(
    { what: `refresh_all_s (${m} due at once)`, value: fmt(refreshS) },
    {
      what: "refresh_all_throttles",
      value: String(throttles),
      target: "= 0",
      met: throttles === 0,
    },
  );
  return out;
}
