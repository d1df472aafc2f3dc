// Scenario `--only forged` (issue 28, kind 2): a tenant who may write Secrets
// in one namespace puts the operator's managed-by label on 200 Opaque Secrets
// of 900 KiB. The operator's cache keeps digests of values, never payloads,
// and lists by watching, so its memory grows by bytes per forged Secret and a
// restart over them does not hold a list answer of 180 MB. Measured on the
// operator process as the image runs it (the Dockerfile's Node flags).
import { readFile } from "node:fs/promises";
import { cpus } from "node:os";
import type { KubeClient, ResourceType } from "../../src/kube/client.js";
import type { AwsDouble } from "../../test/aws-double/index.js";
import { applyResource, readyCondition, type TestKube, waitFor } from "../../test/harness/kube.js";
import type { OperatorProcess } from "../lib.js";

export interface ForgedContext {
  k: TestKube;
  /** A client of the built dist/ (Node's type stripping cannot run src/kube/client.ts). */
  admin: KubeClient;
  kinds: { namespaces: ResourceType; secrets: ResourceType };
  aws: AwsDouble;
  accountId: string;
  startOperator: () => Promise<OperatorProcess>;
  progress: (line: string) => void;
}

export interface ForgedRow {
  what: string;
  value: string;
  target?: string;
  met?: boolean;
}

const FORGED = 200;
const FORGED_KIB = 900;
const TENANT = "forged-tenant";
const RESOURCE = "bench-forged";
const SECRET = "ecr-forged";
const RSS_GROWTH_TARGET_MB = 20;
const NEW_NAMESPACE_TARGET_MS = 2_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

/** Runs the scenario; returns its figures and rows (RSS growth held to ≤ 20 MB). */
export async function runForgedSecrets(
  ctx: ForgedContext,
): Promise<{ result: Record<string, number | string | null>; rows: ForgedRow[] }> {
  const { k, admin } = ctx;
  const { namespaces: NAMESPACES, secrets: SECRETS } = ctx.kinds;
  await admin.create(NAMESPACES, { metadata: { name: TENANT } });
  const op = await ctx.startOperator();
  await applyResource(k, RESOURCE, {
    secretName: SECRET,
    namespaces: [TENANT, "forged-new-*"],
    serviceAccounts: [],
    registries: [{ accountId: ctx.accountId }],
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
  await sleep(3_000);
  const before = await rssMb(op.pid);
  let peak = before;
  const sampler = setInterval(() => {
    void rssMb(op.pid).then((v) => {
      if (v > peak) peak = v;
    });
  }, 100);
  const payload = "A".repeat(FORGED_KIB * 1024);
  const latencies: number[] = [];
  ctx.progress(`forged: ${FORGED} labelled Secrets of ${FORGED_KIB} KiB in ${TENANT}`);
  try {
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
    await sleep(3_000);
  } finally {
    clearInterval(sampler);
  }
  const after = await rssMb(op.pid);
  await op.stop();
  // A restart over them: the peak of a fresh process listing them.
  ctx.progress("forged: restarting the operator over them");
  const restarted = await ctx.startOperator();
  await restarted.waitForLine('"msg":"caches synced"', 60_000);
  await sleep(3_000);
  const restartPeak = (await restarted.memory()).peakMb;
  await restarted.stop();
  const growth = peak - before;
  const worst = Math.max(...latencies);
  const result = {
    scenario: "forged",
    forged_secrets: FORGED,
    forged_kib: FORGED_KIB,
    rss_before_mb: round(before),
    rss_after_mb: round(after),
    rss_peak_mb: round(peak),
    rss_growth_forged_mb: round(growth),
    restart_peak_rss_mb: round(restartPeak),
    new_namespace_max_ms: worst,
    node: process.version,
    cpus: cpus().length,
  };
  const rows: ForgedRow[] = [
    {
      what: `RSS growth with ${FORGED} × ${FORGED_KIB} KiB forged labelled Secrets (peak − before)`,
      value: `${round(growth)} MB (${round(before)} → peak ${round(peak)}, ${round(after)} after)`,
      target: `≤ ${RSS_GROWTH_TARGET_MB} MB`,
      met: growth <= RSS_GROWTH_TARGET_MB,
    },
    {
      what: "  new namespaces served meanwhile (worst of 4)",
      value: `${worst} ms`,
      target: `≤ ${NEW_NAMESPACE_TARGET_MS} ms`,
      met: worst <= NEW_NAMESPACE_TARGET_MS,
    },
    { what: "  peak RSS of a restart over them", value: `${round(restartPeak)} MB` },
  ];
  return { result, rows };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
