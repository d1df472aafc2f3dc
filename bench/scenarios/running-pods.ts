// Phase of `all`: `--running-pods` Running Pods in a namespace of their own.
// The pull-failure watch lists Pending Pods only, so the operator holds none
// of them and its memory stays where it was.
import { pool } from "../../src/reconcile/pool.js";
import { waitFor } from "../../test/harness/controlplane.js";
import { type BenchContext, NAMESPACES, PODS, progress, SERVICE_ACCOUNTS } from "../context.js";
import { metricSum, type OperatorProcess, round, sleep } from "../lib.js";
import { type Figures, figures, fmt } from "../report.js";

/** Pods watched (0 wanted) and the operator's RSS growth (≤ 10 MB) with the Pods there; nothing with 0 Pods. */
export async function run(ctx: BenchContext, op: OperatorProcess): Promise<Figures> {
  const { admin } = ctx;
  const count = ctx.opts.runningPods;
  const out = figures();
  if (count <= 0) return out;
  const podsNs = "ecrbench-pods";
  progress(`running pods: ${count} Running Pods in ${podsNs}`);
  const before = await op.memory();
  await admin.create(NAMESPACES, { metadata: { name: podsNs } });
  await waitFor("the default ServiceAccount of the Pods' namespace", () =>
    admin.get(SERVICE_ACCOUNTS, { namespace: podsNs, name: "default" }).catch(() => undefined),
  );
  // Each Pod as the API server makes it (Pending), then Running, as a kubelet writes.
  await pool(
    Array.from({ length: count }, (_, i) => `pod-${String(i).padStart(5, "0")}`),
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
  const watched = metricSum(await ctx.metricsOf(op), "ecr_creds_refresher_watched_pods");
  const after = await op.memory();
  out.result.watched_pods = watched;
  out.result.running_pods_rss_delta_mb = round(after.rssMb - before.rssMb, 1);
  out.rows.push(
    {
      what: `watched_pods (${count} Running Pods)`,
      value: String(watched),
      target: "= 0",
      met: watched === 0,
    },
    {
      what: `rss_mb delta with ${count} Running Pods`,
      value: fmt(after.rssMb - before.rssMb, 1),
      target: "≤ 10",
      met: after.rssMb - before.rssMb <= 10,
    },
  );
  await ctx.memory.sample(op, "running pods");
  return out;
}
