// `status` (also `kubectl ecr-status`): one row per ECRPullSecret from its
// status, or with --namespace N what serves N and which of N's Pods lack the
// pull Secret. Reads only; exits 1 when something needs attention.
import { ConditionType } from "../api/conditions.js";
import { ECR_PULL_SECRETS, type ECRPullSecret } from "../api/index.js";
import { ANNOTATION_EXPIRES_AT } from "../api/metadata.js";
import { kubeConnection } from "../controller/from-settings.js";
import { isNotFound, KubeClient, NAMESPACES, SECRETS } from "../kube/client.js";
import { PODS, type Pod } from "../kube/pods.js";
import type { KubernetesObject, Secret } from "../kube/types.js";
import { podView, secretState, uncoveredImages } from "../reconcile/pod-coverage.js";
import { targetNamespaces } from "../reconcile/targets.js";
import type { OperatorConfig } from "./config.js";

export interface StatusOptions {
  namespace?: string;
  /** The clock the relative times are computed against. */
  now?: Date;
}

/** Columns padded to their widest cell, three spaces apart, as kubectl prints them. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3)))
        .join(""),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** "2026-11-30T20:00:00Z (in 11h58m)", "… (4m ago)", or "-". */
export function when(iso: string | undefined, now: Date): string {
  if (!iso) return "-";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const ms = at.getTime() - now.getTime();
  const abs = Math.abs(ms);
  const h = Math.floor(abs / 3_600_000);
  const m = Math.floor((abs % 3_600_000) / 60_000);
  const s = Math.floor((abs % 60_000) / 1000);
  const span = h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
  const stamp = at.toISOString().replace(/\.\d{3}Z$/, "Z");
  return `${stamp} (${ms >= 0 ? `in ${span}` : `${span} ago`})`;
}

function condition(r: ECRPullSecret, type: string) {
  return r.status?.conditions?.find((c) => c.type === type);
}

/** Whether a resource needs someone's attention. */
function unhealthy(r: ECRPullSecret): boolean {
  return (
    condition(r, ConditionType.Ready)?.status !== "True" ||
    condition(r, ConditionType.Verified)?.status === "False" ||
    (r.status?.uncoveredPods?.count ?? 0) > 0
  );
}

function resourceRows(resources: ECRPullSecret[], now: Date): string[][] {
  const rows = [
    [
      "NAME",
      "READY",
      "REASON",
      "VERIFIED",
      "NAMESPACES",
      "EARLIEST EXPIRY",
      "NEXT REFRESH",
      "UNCOVERED PODS",
    ],
  ];
  for (const r of resources) {
    const ready = condition(r, ConditionType.Ready);
    const ns = r.status?.namespaces;
    rows.push([
      r.metadata?.name ?? "",
      ready?.status ?? "Unknown",
      ready?.reason ?? "-",
      condition(r, ConditionType.Verified)?.status ?? "-",
      ns ? `${ns.synced ?? 0}/${ns.desired ?? 0}` : "-",
      when(r.status?.tokenExpiresAt, now),
      when(r.status?.nextRefreshTime, now),
      String(r.status?.uncoveredPods?.count ?? 0),
    ]);
  }
  return rows;
}

async function namespaceView(
  kube: KubeClient,
  resources: ECRPullSecret[],
  name: string,
  now: Date,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  // A list by name: the operator's ClusterRole lists namespaces, it does not get them.
  const found = await kube.list<KubernetesObject>(NAMESPACES, {
    fieldSelector: `metadata.name=${name}`,
  });
  const ns = found.items[0];
  if (!ns) throw new Error(`failed to read namespace ${name}: it does not exist`);
  const info = { name, labels: ns.metadata?.labels ?? {} };
  const serving = resources.filter(
    (r) => targetNamespaces(r.spec, [info]).length > 0 && r.metadata?.name,
  );
  if (serving.length === 0) {
    out.write(`no ECRPullSecret serves namespace ${name}\n`);
    return true;
  }
  let healthy = true;
  const rows = [["ECRPULLSECRET", "READY", "SECRET", "IN NAMESPACE", "REGISTRIES"]];
  for (const r of serving) {
    const ready = condition(r, ConditionType.Ready);
    const secret = await kube
      .get<Secret>(SECRETS, { namespace: name, name: r.spec.secretName })
      .catch((e: unknown) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
    const state = secretState(secret, r.metadata?.name ?? "", now.getTime());
    const shown =
      state === "missing"
        ? "missing"
        : state === "foreign"
          ? "present, not written by this resource"
          : `expires ${when(secret?.metadata?.annotations?.[ANNOTATION_EXPIRES_AT], now)}`;
    if (state !== "current") healthy = false;
    if (ready?.status !== "True") healthy = false;
    rows.push([
      r.metadata?.name ?? "",
      ready ? `${ready.status} ${ready.reason}` : "Unknown",
      r.spec.secretName,
      shown,
      (r.status?.registries ?? []).join(",") || "-",
    ]);
  }
  out.write(`namespace ${name} is served by:\n${table(rows)}`);
  const pods = (await kube.list<Pod>(PODS, { namespace: name })).items.map(podView);
  const podRows = [["POD", "PHASE", "WAITING", "ECRPULLSECRET", "MISSING SECRET", "IMAGES"]];
  for (const pod of pods) {
    for (const r of serving) {
      const images = uncoveredImages(pod, {
        name: r.metadata?.name ?? "",
        secretName: r.spec.secretName,
        registries: r.status?.registries ?? [],
      });
      if (images.length === 0) continue;
      const waiting = pod.waiting.filter((w) => images.includes(w.image)).map((w) => w.reason);
      podRows.push([
        pod.name,
        pod.phase ?? "-",
        [...new Set(waiting)].join(",") || "-",
        r.metadata?.name ?? "",
        r.spec.secretName,
        images.join(","),
      ]);
    }
  }
  if (podRows.length === 1) {
    out.write(`\nevery Pod in ${name} that pulls from these registries has the pull Secret\n`);
    return healthy;
  }
  out.write(
    `\nPods without the pull Secret (recreate them, or set spec.podRecovery: Recreate):\n${table(podRows)}`,
  );
  return false;
}

export async function runStatus(
  config: OperatorConfig,
  opts: StatusOptions = {},
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const now = opts.now ?? new Date();
  try {
    const kube = new KubeClient(kubeConnection(config), { qps: 0, burst: 0 });
    const list = await kube.list<ECRPullSecret>(ECR_PULL_SECRETS);
    const resources = list.items.sort((a, b) =>
      (a.metadata?.name ?? "") < (b.metadata?.name ?? "") ? -1 : 1,
    );
    if (opts.namespace !== undefined)
      return (await namespaceView(kube, resources, opts.namespace, now, out)) ? 0 : 1;
    if (resources.length === 0) {
      out.write("no ECRPullSecrets\n");
      return 0;
    }
    out.write(table(resourceRows(resources, now)));
    return resources.some(unhealthy) ? 1 : 0;
  } catch (e) {
    err.write(`status failed: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
