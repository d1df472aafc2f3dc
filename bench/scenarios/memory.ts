// The operator's peak RSS: with none of the targets or unrelated Secrets
// (`measureBase`, before anything is created), and after the fan-out,
// refreshes, rest and new namespaces of `all` (`run`).
import { waitFor } from "../../test/harness/controlplane.js";
import {
  applyResource,
  deleteResource,
  getResource,
  readyCondition,
} from "../../test/harness/kube.js";
import { ACCOUNT, type BenchContext, progress, SECRET_NAME } from "../context.js";
import { type OperatorProcess, round, sleep } from "../lib.js";
import { type Figures, figures, fmt } from "../report.js";

/** Peak RSS (MB) of an operator with one resource and no target namespaces; it is stopped after. */
export async function measureBase(ctx: BenchContext): Promise<number> {
  progress("base memory: operator with one resource and no target namespaces");
  const base = await ctx.startOperator();
  await applyResource(ctx.k, "bench-base", {
    secretName: SECRET_NAME,
    namespaces: ["bench-none"],
    registries: [{ accountId: ACCOUNT }],
  });
  await ctx.waitStatus(
    "bench-base Ready",
    "bench-base",
    (r) => readyCondition(r)?.status === "True",
    60_000,
  );
  // Peak over startup, one token fetch and a few idle seconds.
  await sleep(5_000);
  const rssBase = (await base.memory()).peakMb;
  await deleteResource(ctx.k, "bench-base");
  await waitFor(
    "bench-base to be deleted",
    async () => ((await getResource(ctx.k, "bench-base")) ? undefined : true),
    { timeoutMs: 60_000 },
  );
  await base.stop();
  progress(`rss_base_mb=${round(rssBase, 1)}`);
  return rssBase;
}

/** The peak RSS so far against its target, and over `rssBase` (held to 30 MB below 10,000 namespaces). */
export async function run(
  ctx: BenchContext,
  op: OperatorProcess,
  rssBase: number | undefined,
): Promise<Figures> {
  const { n, newNamespaces, unrelatedSecrets, rssTargetMb, large } = ctx.opts;
  const mem = await op.memory();
  const out = figures({ rss_mb: round(mem.peakMb, 1) });
  out.rows.push(
    {
      what: `rss_mb (peak; ${n + newNamespaces} targets, ${unrelatedSecrets} unrelated Secrets)`,
      value: fmt(mem.peakMb, 1),
      target: `≤ ${rssTargetMb}`,
      met: mem.peakMb <= rssTargetMb,
    },
    { what: "rss_base_mb (peak; none of them)", value: fmt(rssBase ?? Number.NaN, 1) },
    {
      what: "rss_mb − rss_base_mb",
      value: fmt(mem.peakMb - (rssBase ?? 0), 1),
      ...(large ? {} : { target: "≤ 30", met: mem.peakMb - (rssBase ?? 0) <= 30 }),
    },
    { what: "  rss now (VmRSS)", value: fmt(mem.rssMb, 1) },
  );
  return out;
}
