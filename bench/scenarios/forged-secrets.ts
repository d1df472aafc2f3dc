// Scenario `--only forged` (issue 28, kind 2): a tenant who may write Secrets
// in one namespace puts the operator's managed-by label on 200 Opaque Secrets
// of 900 KiB. The operator's cache keeps digests of values, never payloads,
// and lists by watching, so its memory grows by bytes per forged Secret and a
// restart over them does not hold a list answer of 180 MB. Measured on the
// operator process as the image runs it (the Dockerfile's Node flags).
import { readFile } from "node:fs/promises";
import { cpus } from "node:os";
import { applyResource, readyCondition, waitFor } from "../../test/harness/kube.js";
import { ACCOUNT, type BenchContext, NAMESPACES, progress, SECRETS } from "../context.js";
import { type OperatorProcess, sleep } from "../lib.js";
import type { Figures, Row } from "../report.js";

const FORGED = 200;
const FORGED_KIB = 900;
const TENANT = "forged-tenant";
const RESOURCE = "bench-forged";
const SECRET = "ecr-forged";
const RSS_GROWTH_TARGET_MB = 20;
const NEW_NAMESPACE_TARGET_MS = 2_000;

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

/** Runs the scenario; its figures hold the RSS growth to ≤ 20 MB and the new namespaces to ≤ 2 s. */
export async function run(ctx: BenchContext): Promise<Figures> {
  const op = await startServing(ctx);
  await sleep(3_000);
  const before = await rssMb(op.pid);
  let peak = before;
  const sampler = setInterval(() => {
    void rssMb(op.pid).then((v) => {
      if (v > peak) peak = v;
    });
  }, 100);
  let latencies: number[];
  try {
    latencies = await forge(ctx);
    await sleep(3_000);
  } finally {
    clearInterval(sampler);
  }
  const after = await rssMb(op.pid);
  await op.stop();
  // A restart over them: the peak of a fresh process listing them.
  progress("forged: restarting the operator over them");
  const restarted = await ctx.startOperator();
  await restarted.waitForLine('"msg":"caches synced"', 60_000);
  await sleep(3_000);
  const restartPeak = (await restarted.memory()).peakMb;
  await restarted.stop();
  return figures({ before, after, peak, restartPeak, worst: Math.max(...latencies) });
}

/** The tenant's namespace and an operator serving it (and the new namespaces) with one resource. */
async function startServing(ctx: BenchContext): Promise<OperatorProcess> {
  const { k } = ctx;
  await ctx.admin.create(NAMESPACES, { metadata: { name: TENANT } });
  const op = await ctx.startOperator();
  await applyResource(k, RESOURCE, {
    secretName: SECRET,
    namespaces: [TENANT, "forged-new-*"],
    serviceAccounts: [],
    registries: [{ accountId: ACCOUNT }],
  });
  await waitFor(
    `${RESOURCE} Ready`,
    async () => {
      const r = (await k.custom.getClusterCustomObject({
        group: "ecrcreds.io",
        version: "v1alpha1",
        plural: "ecrpullsecrets",
        name: RESOURCE,
      })) as Parameters<typeof readyCondition>[0];
      return readyCondition(r)?.status === "True" ? true : undefined;
    },
    { timeoutMs: 60_000 },
  );
  return op;
}

/**
 * Writes the forged Secrets as the tenant would; every 50th, a new namespace
 * the resource selects. Resolves with each new namespace's ms from its
 * creation to its Secret.
 */
async function forge(ctx: BenchContext): Promise<number[]> {
  const { admin } = ctx;
  const payload = "A".repeat(FORGED_KIB * 1024);
  const latencies: number[] = [];
  progress(`forged: ${FORGED} labelled Secrets of ${FORGED_KIB} KiB in ${TENANT}`);
  for (let i = 0; i < FORGED; i++) {
    await admin.create(SECRETS, {
      metadata: {
        name: `forged-${i}`,
        namespace: TENANT,
        labels: {
          "app.kubernetes.io/managed-by": "ecr-creds-refresher",
          "ecrcreds.io/owner": RESOURCE,
        },
      },
      type: "Opaque",
      data: { blob: payload },
    });
    if (i % 50 === 25) {
      const ns = `forged-new-${i}`;
      const created = Date.now();
      await admin.create(NAMESPACES, { metadata: { name: ns } });
      await waitFor(
        `${ns} served`,
        async () => {
          try {
            await admin.get(SECRETS, { namespace: ns, name: SECRET });
            return true;
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 30_000, intervalMs: 20 },
      );
      latencies.push(Date.now() - created);
    }
  }
  return latencies;
}

/** The scenario's rows and JSON fields from its RSS readings (MB) and worst new-namespace latency (ms). */
function figures(m: {
  before: number;
  after: number;
  peak: number;
  restartPeak: number;
  worst: number;
}): Figures {
  const growth = m.peak - m.before;
  const result = {
    scenario: "forged",
    forged_secrets: FORGED,
    forged_kib: FORGED_KIB,
    rss_before_mb: round(m.before),
    rss_after_mb: round(m.after),
    rss_peak_mb: round(m.peak),
    rss_growth_forged_mb: round(growth),
    restart_peak_rss_mb: round(m.restartPeak),
    new_namespace_max_ms: m.worst,
    node: process.version,
    cpus: cpus().length,
  };
  const rows: Row[] = [
    {
      what: `RSS growth with ${FORGED} × ${FORGED_KIB} KiB forged labelled Secrets (peak − before)`,
      value: `${round(growth)} MB (${round(m.before)} → peak ${round(m.peak)}, ${round(m.after)} after)`,
      target: `≤ ${RSS_GROWTH_TARGET_MB} MB`,
      met: growth <= RSS_GROWTH_TARGET_MB,
    },
    {
      what: "  new namespaces served meanwhile (worst of 4)",
      value: `${m.worst} ms`,
      target: `≤ ${NEW_NAMESPACE_TARGET_MS} ms`,
      met: m.worst <= NEW_NAMESPACE_TARGET_MS,
    },
    { what: "  peak RSS of a restart over them", value: `${round(m.restartPeak)} MB` },
  ];
  return { rows, notes: [], result };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
