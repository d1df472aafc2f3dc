// The Helm chart as a test sees it: rendered with the helm binary the set-up
// builds, applied to the real control plane (all but the workloads, which
// need a kubelet), and its RBAC read as flat grants to compare with what the
// code calls.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import {
  AuthorizationV1Api,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from "@kubernetes/client-node";
import { loadAll } from "js-yaml";
import { repoRoot } from "./controlplane.js";
import { installCrd, type TestKube } from "./kube.js";

export const chartDir = join(repoRoot, "deploy/helm/ecr-creds-refresher");

export interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface RenderedContainer {
  args: string[];
  env: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  livenessProbe: { httpGet: { path: string } };
  readinessProbe: { httpGet: { path: string } };
}

export interface Rendered extends KubernetesObject {
  rules?: Rule[];
  roleRef?: { name: string };
  spec?: { template?: { spec?: { containers?: RenderedContainer[] } } };
}

/** `helm template RELEASE chart --namespace NAMESPACE --include-crds ARGS`, parsed. */
export function helmTemplate(release: string, namespace: string, args: string[]): Rendered[] {
  const r = spawnSync(
    join(repoRoot, ".cache/helm/helm"),
    ["template", release, chartDir, "--namespace", namespace, "--include-crds", ...args],
    { encoding: "utf8", env: { ...process.env, HELM_NAMESPACE: "", KUBECONFIG: "" } },
  );
  if (r.status !== 0) throw new Error(`failed to render the chart: ${r.stderr}${r.error ?? ""}`);
  return (loadAll(r.stdout) as Array<Rendered | null>).filter((o): o is Rendered => o !== null);
}

/** The one rendered object of `kind` (in `namespace`, when given). */
export function renderedOne(objects: Rendered[], kind: string, namespace?: string): Rendered {
  const o = objects.find(
    (x) => x.kind === kind && (namespace === undefined || x.metadata?.namespace === namespace),
  );
  if (!o) throw new Error(`the chart rendered no ${kind}${namespace ? ` in ${namespace}` : ""}`);
  return o;
}

/** Server-side apply, as `kubectl apply --server-side` would. */
export async function serverSideApply(k: TestKube, obj: KubernetesObject): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(k.kc);
  await api.patch(obj, undefined, undefined, "install-test", true, PatchStrategy.ServerSideApply);
}

/**
 * Applies everything the chart rendered but the workloads (they need a
 * kubelet). The CRD goes in untyped, as the harness installs it: the typed
 * client would drop its enums, defaults and CEL rules for later test files.
 */
export async function applyChart(k: TestKube, objects: Rendered[]): Promise<void> {
  for (const o of objects) {
    if (["Deployment", "CronJob", "Service"].includes(o.kind ?? "")) continue;
    if (o.kind === "CustomResourceDefinition") await installCrd(k);
    else await serverSideApply(k, o);
  }
}

/** Deletes the cluster-scoped and namespaced RBAC objects the chart rendered. */
export async function deleteChartRbac(k: TestKube, objects: Rendered[]): Promise<void> {
  for (const o of objects) {
    const name = o.metadata?.name ?? "";
    const namespace = o.metadata?.namespace ?? "";
    const gone = () => undefined;
    if (o.kind === "ClusterRole") await k.rbac.deleteClusterRole({ name }).catch(gone);
    if (o.kind === "ClusterRoleBinding")
      await k.rbac.deleteClusterRoleBinding({ name }).catch(gone);
    if (o.kind === "Role") await k.rbac.deleteNamespacedRole({ namespace, name }).catch(gone);
    if (o.kind === "RoleBinding")
      await k.rbac.deleteNamespacedRoleBinding({ namespace, name }).catch(gone);
  }
}

/**
 * The operator's container as the kubelet would start it: the chart's args
 * with the probes on the given loopback ports, and its env with the downward
 * API resolved (`metadata.namespace` is the release namespace).
 */
export function operatorInvocation(
  container: RenderedContainer,
  releaseNamespace: string,
  ports: { health: number; metrics: number },
): { args: string[]; env: Record<string, string> } {
  const args = container.args.map((a) =>
    a.startsWith("--health-probe-bind-address=")
      ? `--health-probe-bind-address=127.0.0.1:${ports.health}`
      : a.startsWith("--metrics-bind-address=")
        ? `--metrics-bind-address=127.0.0.1:${ports.metrics}`
        : a,
  );
  const env: Record<string, string> = {};
  for (const e of container.env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace")
      env[e.name] = releaseNamespace;
    else throw new Error(`unexpected env source for ${e.name}`);
  }
  return { args, env };
}

/** Each rule as "SCOPE GROUP RESOURCE[/NAME] VERB" lines, one per combination. */
export function flattenRules(scope: string, rules: Rule[]): string[] {
  const out: string[] = [];
  for (const r of rules)
    for (const g of r.apiGroups)
      for (const res of r.resources)
        for (const v of r.verbs) {
          const names = r.resourceNames?.length ? r.resourceNames : [undefined];
          for (const n of names) out.push(`${scope} ${g || "core"} ${res}${n ? `/${n}` : ""} ${v}`);
        }
  return out;
}

/**
 * The API calls in a source file, as "verb TYPE" (`kube.patch<…>(SECRETS, …)`
 * is "patch SECRETS", with "/status" for a status patch) and "watch TYPE" for
 * an informer's `path: resourcePath(TYPE…)`.
 */
export function apiCalls(text: string): Set<string> {
  const calls = new Set<string>();
  for (const m of text.matchAll(
    /(?:\bkube|\bk|kubeClient\(\))\.(get|list|createSubresource|create|replace|patch|delete)(?:<[^()]*?>)?\(/g,
  )) {
    let depth = 1;
    let i = (m.index ?? 0) + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === "(") depth++;
      else if (text[i] === ")") depth--;
    }
    const args = text.slice(start, i - 1);
    const type = /^\s*([A-Z_]+)\b/.exec(args)?.[1] ?? `?${args.slice(0, 20)}`;
    const status = m[1] === "patch" && /"status"\s*,?\s*$/.test(args) ? "/status" : "";
    calls.add(`${m[1]} ${type}${status}`);
  }
  for (const m of text.matchAll(/path: resourcePath\(([A-Z_]+)/g)) calls.add(`watch ${m[1]}`);
  return calls;
}

/** Whether a ServiceAccount may do `verb` on `resource`, by SubjectAccessReview. */
export async function serviceAccountMay(
  k: TestKube,
  sa: { namespace: string; name: string },
  verb: string,
  resource: string,
  opts: { group?: string; namespace?: string; name?: string; subresource?: string } = {},
): Promise<boolean> {
  const authz = k.kc.makeApiClient(AuthorizationV1Api);
  const review = await authz.createSubjectAccessReview({
    body: {
      spec: {
        user: `system:serviceaccount:${sa.namespace}:${sa.name}`,
        groups: [
          "system:serviceaccounts",
          `system:serviceaccounts:${sa.namespace}`,
          "system:authenticated",
        ],
        resourceAttributes: { verb, resource, group: opts.group ?? "", ...opts },
      },
    },
  });
  return review.status?.allowed === true;
}
