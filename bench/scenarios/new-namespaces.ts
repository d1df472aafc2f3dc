// Phase of `all`: `--new-namespaces` namespaces created one at a time at a
// steady pace (`--new-namespace-interval-ms`) while the operator serves the
// targets; for each, the time from its creation to both its Secret and its
// default ServiceAccount's reference being there (seen through watches).
import { waitFor } from "../../test/harness/controlplane.js";
import {
  type BenchContext,
  NAMESPACES,
  newName,
  progress,
  RESOURCE,
  resourcePath,
  SECRET_NAME,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../context.js";
import { type OperatorProcess, percentile, sleep } from "../lib.js";
import { type Figures, figures } from "../report.js";

/** The new namespaces' p50, p99 (against `opts.newNsP99TargetMs`) and worst latency. */
export async function run(ctx: BenchContext, op: OperatorProcess): Promise<Figures> {
  const { newNamespaces, newNamespaceIntervalMs, newNsP99TargetMs } = ctx.opts;
  progress(`new namespaces: ${newNamespaces}, one every ${newNamespaceIntervalMs} ms`);
  const latencies = await newNamespaceLatency(ctx);
  const p50 = percentile(latencies.done, 50);
  const p99 = percentile(latencies.done, 99);
  const out = figures({ new_ns_p50_ms: Math.round(p50), new_ns_p99_ms: Math.round(p99) });
  if (latencies.missing > 0)
    out.notes.push(`${latencies.missing} new namespaces were never served`);
  out.rows.push(
    { what: "new_ns_p50_ms", value: String(Math.round(p50)) },
    {
      what: "new_ns_p99_ms",
      value: String(Math.round(p99)),
      target: `≤ ${newNsP99TargetMs}`,
      met: p99 <= newNsP99TargetMs && latencies.missing === 0,
    },
    { what: "  new namespace max ms", value: String(Math.round(Math.max(...latencies.done))) },
  );
  await ctx.memory.sample(op, "new namespaces");
  return out;
}

type Meta = {
  metadata?: { namespace?: string; name?: string };
  imagePullSecrets?: Array<{ name?: string }>;
};

/**
 * Watches the resource's Secrets and the default ServiceAccounts from now
 * on, recording per namespace when its Secret (`secretAt`) and its
 * ServiceAccount's reference (`saAt`) were first seen. `stop` ends both watches.
 */
async function watchServed(ctx: BenchContext): Promise<{
  secretAt: Map<string, number>;
  saAt: Map<string, number>;
  stop: () => void;
}> {
  const { admin } = ctx;
  const secretAt = new Map<string, number>();
  const saAt = new Map<string, number>();
  const rvOf = async (list: Promise<{ metadata?: { resourceVersion?: string } }>) =>
    (await list).metadata?.resourceVersion ?? "";
  const secretRv = await rvOf(
    admin.list(SECRETS, { labelSelector: `ecrcreds.io/owner=${RESOURCE}`, limit: 1 }),
  );
  const saRv = await rvOf(
    admin.list(SERVICE_ACCOUNTS, { fieldSelector: "metadata.name=default", limit: 1 }),
  );
  const secretWatch = await admin.watch(
    resourcePath(SECRETS),
    { labelSelector: `ecrcreds.io/owner=${RESOURCE}`, resourceVersion: secretRv },
    (type: string, object: unknown) => {
      const obj = object as Meta;
      const ns = obj.metadata?.namespace ?? "";
      if (type !== "DELETED" && obj.metadata?.name === SECRET_NAME && !secretAt.has(ns))
        secretAt.set(ns, Date.now());
    },
    () => undefined,
  );
  const saWatch = await admin.watch(
    resourcePath(SERVICE_ACCOUNTS),
    { fieldSelector: "metadata.name=default", resourceVersion: saRv },
    (type: string, object: unknown) => {
      const obj = object as Meta;
      const ns = obj.metadata?.namespace ?? "";
      if (
        type !== "DELETED" &&
        obj.imagePullSecrets?.some((r) => r.name === SECRET_NAME) &&
        !saAt.has(ns)
      )
        saAt.set(ns, Date.now());
    },
    () => undefined,
  );
  return {
    secretAt,
    saAt,
    stop: () => {
      secretWatch.abort();
      saWatch.abort();
    },
  };
}

/**
 * Creates the namespaces at a steady pace and resolves with each served
 * one's milliseconds from its creation to both writes being seen, and how
 * many were not served within 60 s of the last creation.
 */
async function newNamespaceLatency(
  ctx: BenchContext,
): Promise<{ done: number[]; missing: number }> {
  const { newNamespaces, newNamespaceIntervalMs } = ctx.opts;
  const created = new Map<string, number>();
  const { secretAt, saAt, stop } = await watchServed(ctx);
  try {
    const names = Array.from({ length: newNamespaces }, (_, i) => newName(i));
    const t0 = Date.now();
    for (const [i, name] of names.entries()) {
      const due = t0 + i * newNamespaceIntervalMs;
      if (due > Date.now()) await sleep(due - Date.now());
      created.set(name, Date.now());
      // Not awaited: a slow create must not hold back the pace.
      void ctx.admin.create(NAMESPACES, { metadata: { name } }).catch((err: unknown) => {
        progress(`failed to create namespace ${name}: ${err instanceof Error ? err.message : err}`);
      });
    }
    await waitFor(
      "every new namespace to be served",
      () => (names.every((n) => secretAt.has(n) && saAt.has(n)) ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 100 },
    ).catch(() => undefined);
    const done: number[] = [];
    let missing = 0;
    for (const n of names) {
      const s = secretAt.get(n);
      const a = saAt.get(n);
      if (s === undefined || a === undefined) missing++;
      else done.push(Math.max(s, a) - (created.get(n) ?? 0));
    }
    return { done, missing };
  } finally {
    stop();
  }
}
