// `status` (also `kubectl ecr-status`): one row per ECRPullSecret from its
// status, or with --namespace N what serves N (ECRPullSecrets and the
// namespace's own ECRPullSecretClaims) and which of N's Pods lack the pull
// Secret. Reads only; exits 1 when something needs attention. A tenant with
// rights in N alone may run it there: what it may not list (ECRPullSecrets,
// namespaces) is left out, not an error.
import { ConditionType } from "../api/conditions.js";
import {
  ECR_PULL_SECRETS,
  type ECRPullSecret,
  type ECRPullSecretClaim,
  PULL_SECRET_CLAIMS,
} from "../api/index.js";
import { ANNOTATION_EXPIRES_AT } from "../api/metadata.js";
import { kubeConnection } from "../controller/from-settings.js";
import { isNotFound, KubeClient, NAMESPACES, SECRETS, statusCode } from "../kube/client.js";
import { PODS, type Pod } from "../kube/pods.js";
import type { KubernetesObject, Secret } from "../kube/types.js";
import { claimOwner } from "../reconcile/claims.js";
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

/** An ECRPullSecret or an ECRPullSecretClaim: both have the same status. */
type Served = Pick<ECRPullSecret, "metadata" | "status">;

function condition(r: Served, type: string) {
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

/** One thing that serves a namespace: an ECRPullSecret or one of its claims. */
interface Server {
  /** As the tables name it: the ECRPullSecret's name, or ECRPullSecretClaim/<name>. */
  shown: string;
  /** The owner value its Secrets carry. */
  owner: string;
  secretName: string;
  resource: Served;
}

/**
 * The namespace's labels; undefined when it does not exist. A reader who may
 * not list namespaces (a tenant) gets none: only selectors need them.
 */
async function namespaceLabels(
  kube: KubeClient,
  name: string,
): Promise<Record<string, string> | undefined> {
  try {
    // A list by name: the operator's ClusterRole lists namespaces, it does not get them.
    const found = await kube.list<KubernetesObject>(NAMESPACES, {
      fieldSelector: `metadata.name=${name}`,
    });
    const ns = found.items[0];
    return ns ? (ns.metadata?.labels ?? {}) : undefined;
  } catch (e) {
    if (statusCode(e) === 403) return {};
    throw e;
  }
}

/** What serves namespace `name`: the ECRPullSecrets targeting it, then its claims. */
async function serversOf(
  kube: KubeClient,
  resources: ECRPullSecret[],
  name: string,
): Promise<Server[]> {
  const labels = await namespaceLabels(kube, name);
  if (!labels) throw new Error(`failed to read namespace ${name}: it does not exist`);
  const info = { name, labels };
  const servers: Server[] = resources
    .filter((r) => targetNamespaces(r.spec, [info]).length > 0 && r.metadata?.name)
    .map((r) => ({
      shown: r.metadata?.name ?? "",
      owner: r.metadata?.name ?? "",
      secretName: r.spec.secretName,
      resource: r,
    }));
  const claims = await listOrNone(() =>
    kube.list<ECRPullSecretClaim>(PULL_SECRET_CLAIMS, { namespace: name }),
  );
  for (const c of claims) {
    const claim = c.metadata?.name ?? "";
    servers.push({
      shown: `ECRPullSecretClaim/${claim}`,
      owner: claimOwner(name, claim),
      secretName: c.spec.secretName,
      resource: c,
    });
  }
  return servers;
}

async function namespaceView(
  kube: KubeClient,
  resources: ECRPullSecret[],
  name: string,
  now: Date,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  const serving = await serversOf(kube, resources, name);
  if (serving.length === 0) {
    out.write(`no ECRPullSecret serves namespace ${name}\n`);
    return true;
  }
  let healthy = true;
  const rows = [["ECRPULLSECRET", "READY", "SECRET", "IN NAMESPACE", "REGISTRIES"]];
  for (const s of serving) {
    const ready = condition(s.resource, ConditionType.Ready);
    const secret = await kube
      .get<Secret>(SECRETS, { namespace: name, name: s.secretName })
      .catch((e: unknown) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
    const state = secretState(secret, s.owner, now.getTime());
    const shown =
      state === "missing"
        ? "missing"
        : state === "foreign"
          ? "present, not written by this resource"
          : `expires ${when(secret?.metadata?.annotations?.[ANNOTATION_EXPIRES_AT], now)}`;
    if (state !== "current") healthy = false;
    if (ready?.status !== "True") healthy = false;
    rows.push([
      s.shown,
      ready ? `${ready.status} ${ready.reason}` : "Unknown",
      s.secretName,
      shown,
      (s.resource.status?.registries ?? []).join(",") || "-",
    ]);
  }
  out.write(`namespace ${name} is served by:\n${table(rows)}`);
  return (await podsView(kube, serving, name, out)) && healthy;
}

/** The namespace's Pods that wait on a served registry without the Secret; true when none. */
async function podsView(
  kube: KubeClient,
  serving: Server[],
  name: string,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  const pods = (await kube.list<Pod>(PODS, { namespace: name })).items.map(podView);
  const podRows = [["POD", "PHASE", "WAITING", "ECRPULLSECRET", "MISSING SECRET", "IMAGES"]];
  for (const pod of pods) {
    for (const s of serving) {
      const images = uncoveredImages(pod, {
        name: s.owner,
        secretName: s.secretName,
        registries: s.resource.status?.registries ?? [],
      });
      if (images.length === 0) continue;
      const waiting = pod.waiting.filter((w) => images.includes(w.image)).map((w) => w.reason);
      podRows.push([
        pod.name,
        pod.phase ?? "-",
        [...new Set(waiting)].join(",") || "-",
        s.shown,
        s.secretName,
        images.join(","),
      ]);
    }
  }
  if (podRows.length === 1) {
    out.write(`\nevery Pod in ${name} that pulls from these registries has the pull Secret\n`);
    return true;
  }
  out.write(
    `\nPods without the pull Secret (recreate them, or set spec.podRecovery: Recreate):\n${table(podRows)}`,
  );
  return false;
}

/** A list's items; none when the kind is not served (404) or not ours to list (403). */
async function listOrNone<T extends KubernetesObject>(
  list: () => Promise<{ items: T[] }>,
): Promise<T[]> {
  try {
    return (await list()).items;
  } catch (e) {
    const code = statusCode(e);
    if (code === 403 || code === 404) return [];
    throw e;
  }
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
    // A tenant may not list the cluster-scoped kind: its namespace view shows its claims.
    const listed =
      opts.namespace !== undefined
        ? await listOrNone(() => kube.list<ECRPullSecret>(ECR_PULL_SECRETS))
        : (await kube.list<ECRPullSecret>(ECR_PULL_SECRETS)).items;
    const resources = listed.sort((a, b) =>
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
