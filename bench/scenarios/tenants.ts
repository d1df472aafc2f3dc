// Scenario `--only tenants` (issue 31): 1,000 tenant namespaces, each with an
// ECRPullSecretClaim over one ClusterECRCredentialSource. The claims are made
// while the operator is stopped; then a fresh operator serves them all. The
// figures: the time from its caches' sync to the last claim's Secret, against
// the floor (the same 1,000 Secret creates and ServiceAccount patches from a
// minimal client, bench/floor.ts), the GetAuthorizationToken calls (one for
// the source, not one per claim), and the operator's peak RSS.
import { cpus } from "node:os";
import { pool } from "../../src/reconcile/pool.js";
import { waitFor } from "../../test/harness/controlplane.js";
import { createClaim, createSource, installTenantCrds } from "../../test/harness/tenant.js";
import {
  ACCOUNT,
  type BenchContext,
  KubeClient,
  loadKubeConfig,
  NAMESPACES,
  OPS,
  progress,
  REGISTRY_HOST,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../context.js";
import { builtModules, floorWrites } from "../floor.js";
import { round } from "../lib.js";
import type { Figures, Row } from "../report.js";

const CLAIMS = 1_000;
const SOURCE = "bench-shared";
const SECRET = "ecr-pull";
const PREFIX = "tenant-";
const tenantName = (i: number) => `${PREFIX}${String(i).padStart(4, "0")}`;

/** Runs the scenario; its figures hold the AWS calls to one for all the claims. */
export async function run(ctx: BenchContext): Promise<Figures> {
  const namespaces = await tenantNamespaces(ctx);
  const floorS = await floor(ctx, namespaces);
  await offerAndClaim(ctx, namespaces);
  const op = await ctx.startOperator();
  const start = Date.now();
  progress(`tenants: operator up; waiting for ${CLAIMS} claims' Secrets`);
  await waitFor(
    `every tenant namespace's ${SECRET}`,
    async () => {
      const list = await ctx.admin.list(SECRETS, {
        labelSelector: "app.kubernetes.io/managed-by=ecr-creds-refresher",
      });
      const served = list.items.filter(
        (s) => s.metadata?.name === SECRET && s.metadata?.namespace?.startsWith(PREFIX),
      ).length;
      return served >= CLAIMS ? true : undefined;
    },
    { timeoutMs: 600_000, intervalMs: 250 },
  );
  const syncedS = (Date.now() - start) / 1000;
  const calls = ctx.ecrCalls(start);
  const { peakMb } = await op.memory();
  await op.stop();
  return figures({ syncedS, floorS, calls, peakMb });
}

/** 1,000 namespaces, with their default ServiceAccounts. */
async function tenantNamespaces(ctx: BenchContext): Promise<string[]> {
  const { admin } = ctx;
  const namespaces = Array.from({ length: CLAIMS }, (_, i) => tenantName(i));
  progress(`tenants: creating ${CLAIMS} namespaces`);
  await pool(namespaces, 32, async (name) => {
    await admin.create(NAMESPACES, { metadata: { name } });
  });
  await waitFor(
    `the default ServiceAccount of ${CLAIMS} namespaces`,
    async () => {
      const list = await admin.list(SERVICE_ACCOUNTS, { fieldSelector: "metadata.name=default" });
      const have = list.items.filter((sa) => sa.metadata?.namespace?.startsWith(PREFIX)).length;
      return have >= CLAIMS ? true : undefined;
    },
    { timeoutMs: 600_000, intervalMs: 1000 },
  );
  return namespaces;
}

/** The same writes from a minimal client in this process: the floor the claims are held to. */
async function floor(ctx: BenchContext, namespaces: string[]): Promise<number> {
  const modules = await builtModules();
  const client = new KubeClient(loadKubeConfig(ctx.operatorKubeconfig), {
    qps: ctx.opts.qps,
    burst: ctx.opts.burst,
    fieldManager: modules.metadata.FIELD_MANAGER,
  });
  const result = await floorWrites(client, modules, {
    namespaces,
    name: "floor-tenants",
    registryHost: REGISTRY_HOST,
    concurrency: ctx.opts.writeConcurrency,
  });
  progress(`tenants: floor ${round(result.seconds)} s`);
  return result.seconds;
}

/** The administrator's source, offered to every tenant namespace, and one claim in each. */
async function offerAndClaim(ctx: BenchContext, namespaces: string[]): Promise<void> {
  await installTenantCrds(ctx.k);
  const refused = await createSource(ctx.k, SOURCE, {
    credentials: { secretRef: { name: "aws-creds", namespace: OPS } },
    region: "us-east-1",
    registries: [{ accountId: ACCOUNT }],
    conditions: [{ namespaces: [`${PREFIX}*`] }],
  });
  if (refused) throw new Error(`failed to create source ${SOURCE}: ${refused.body}`);
  progress(`tenants: ${CLAIMS} claims over ${SOURCE}`);
  await pool(namespaces, 32, async (ns) => {
    const no = await createClaim(ctx.k, ns, "pulls", {
      secretName: SECRET,
      sourceRef: { name: SOURCE },
    });
    if (no) throw new Error(`failed to create the claim in ${ns}: ${no.body}`);
  });
}

function figures(m: { syncedS: number; floorS: number; calls: number; peakMb: number }): Figures {
  const result = {
    scenario: "tenants",
    claims: CLAIMS,
    synced_s: round(m.syncedS),
    floor_s: round(m.floorS),
    over_floor: round(m.syncedS / m.floorS),
    aws_calls: m.calls,
    peak_rss_mb: round(m.peakMb),
    node: process.version,
    cpus: cpus().length,
  };
  const rows: Row[] = [
    {
      what: `${CLAIMS} tenant claims on one source: time to all synced (fresh operator)`,
      value: `${round(m.syncedS)} s (floor ${round(m.floorS)} s, ×${round(m.syncedS / m.floorS)})`,
    },
    {
      what: "  GetAuthorizationToken calls for all of them",
      value: String(m.calls),
      target: "1",
      met: m.calls === 1,
    },
    { what: "  peak RSS", value: `${round(m.peakMb)} MB` },
  ];
  return { rows, notes: [], result };
}
