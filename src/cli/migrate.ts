// `migrate`: from the original Python (kopf) operator (API group alchemy.com)
// to this one. Reads what the old operator left, prints the plan
// (src/cli/migrate-plan.ts) and, with --apply, carries it out: every step is
// conditional on what it read, so a second run finds nothing left to do and
// writes nothing.
import type { ECRPullSecretSpec } from "../api/index.js";
import { CRD_NAME, ECR_PULL_SECRETS, parseDuration } from "../api/index.js";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  LABEL_MANAGED_BY,
  LABEL_OWNER,
  MANAGED_SELECTOR,
  OPERATOR_NAME,
} from "../api/metadata.js";
import { operatorDefaults } from "../aws/registries.js";
import { kubeConnection } from "../controller/from-settings.js";
import {
  isConflict,
  isNotFound,
  KubeClient,
  type ListOptions,
  NAMESPACES,
  type ResourceType,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../kube/client.js";
import { retryOnConflict } from "../kube/retry.js";
import type { KubernetesObject, ObjectMeta, Secret, ServiceAccount } from "../kube/types.js";
import { formatAddedRefs, ownerLabelValue, parseAddedRefs } from "../reconcile/desired.js";
import { pool } from "../reconcile/pool.js";
import { ConfigError, type OperatorConfig, parseCommandLine } from "./config.js";
import {
  type ClusterFacts,
  formatPlan,
  type IgnoredDeployment,
  KOPF_FINALIZER,
  LABEL_PREFIX_FORM,
  MIGRATE_LABEL_PREFIX,
  type MigrationPlan,
  type NamespaceFacts,
  type NamespaceStep,
  OLD_APP_LABEL_VALUE,
  OLD_CRD_NAME,
  OLD_ENV,
  OLD_GROUP,
  OLD_IMAGE_REPOSITORY,
  OLD_PLURAL,
  OLD_VERSION,
  type OldDeployment,
  type OldResource,
  planMigration,
  type ResourcePlan,
  type SecretFacts,
  type SettingsInput,
  SHARED_SHORT_NAME,
} from "./migrate-plan.js";

/** The field manager of migrate's writes: the audit log and managedFields tell them apart. */
export const MIGRATE_FIELD_MANAGER = `${OPERATOR_NAME}-migrate`;

export const OLD_ECR_PULL_SECRETS: ResourceType = {
  group: OLD_GROUP,
  version: OLD_VERSION,
  kind: "ECRPullSecret",
  plural: OLD_PLURAL,
  namespaced: false,
};
const DEPLOYMENTS: ResourceType = {
  group: "apps",
  version: "v1",
  kind: "Deployment",
  plural: "deployments",
  namespaced: true,
};
/** SubjectAccessReview: may another identity do something (the old operator's proof). */
const SUBJECT_ACCESS_REVIEWS: ResourceType = {
  group: "authorization.k8s.io",
  version: "v1",
  kind: "SubjectAccessReview",
  plural: "subjectaccessreviews",
  namespaced: false,
};
const CRDS: ResourceType = {
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
};

const MIGRATE_FLAGS = {
  apply: { type: "boolean" },
  "dry-run": { type: "boolean" },
  force: { type: "boolean" },
  "delete-old-crd": { type: "boolean" },
  timeout: { type: "string" },
  "old-deployment": { type: "string" },
  "namespace-label-prefix": { type: "string" },
} as const;

const DEFAULT_TIMEOUT = "5m";
const POLL_MS = 500;
const WRITE_CONCURRENCY = 16;
const ADMISSION_GRACE_MS = 1_000;

export function migrateHelp(): string {
  return [
    "usage: ecr-creds-refresher migrate [--apply [--force] [--delete-old-crd]] [flags]",
    "",
    "Moves the original Python operator's alchemy.com/v1alpha1 ECRPullSecrets to ecrcreds.io.",
    "Without --apply (or with --dry-run) it prints the plan and writes nothing. With --apply the",
    "new operator must be running: migrate creates the new resources, waits until each namespace",
    "is served, then removes the old Secrets and ServiceAccount references (never others' entries),",
    "kopf's finalizer and the old resources.",
    "",
    "  --apply                carry the plan out",
    "  --dry-run              print the plan only (the default)",
    "  --force                act although the old operator's Deployment still has replicas",
    "  --delete-old-crd       delete the CRD ecrpullsecrets.alchemy.com once it is empty",
    `  --timeout DURATION     how long to wait for the new operator per run (default ${DEFAULT_TIMEOUT})`,
    "  --old-deployment NAMESPACE/NAME",
    "                         the old operator's Deployment, whose AWS_REGION, REGISTRY and",
    "                         AWS_CREDENTIALS_SECRET_* are read; without it, only a Deployment",
    `                         provably the old operator's (image ${OLD_IMAGE_REPOSITORY} or label`,
    `                         app.kubernetes.io/name or app = ${OLD_APP_LABEL_VALUE}, and a ServiceAccount that`,
    `                         may watch ${OLD_PLURAL}.${OLD_GROUP} cluster-wide) is read`,
    "  --namespace-label-prefix PREFIX",
    "                         prefix of the namespace label a list too long for spec.namespaces",
    `                         becomes (default ${MIGRATE_LABEL_PREFIX}); pick one a policy of yours`,
    "                         protects, or tenants who may label their namespace can opt in",
    "  --region, --registry, --credentials-secret-name, --credentials-secret-namespace",
    "                         settings for the new resources, over what the old Deployment says",
    "  --kubeconfig           as for every command (else in-cluster)",
  ].join("\n");
}

// --- Reading the cluster ---------------------------------------------------

interface CrdView extends KubernetesObject {
  spec?: { names?: { shortNames?: string[] } };
  status?: { acceptedNames?: { shortNames?: string[] } };
}

interface DeploymentView extends KubernetesObject {
  spec?: {
    replicas?: number;
    template?: {
      metadata?: { labels?: Record<string, string> };
      spec?: {
        serviceAccountName?: string;
        containers?: Array<{
          image?: string;
          args?: string[];
          env?: Array<{ name: string; value?: string }>;
        }>;
      };
    };
  };
}

interface OldResourceView extends KubernetesObject {
  spec?: { secretName?: string; namespaces?: string[] };
}

interface NewResourceView extends KubernetesObject {
  spec: ECRPullSecretSpec;
}

async function listAll<T extends KubernetesObject>(
  kube: KubeClient,
  type: ResourceType,
  opts: ListOptions = {},
): Promise<T[]> {
  const items: T[] = [];
  let continueToken: string | undefined;
  do {
    const page = await kube.list<T>(type, { ...opts, limit: 500, continueToken });
    items.push(...page.items);
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return items;
}

async function getOrUndefined<T extends KubernetesObject>(
  kube: KubeClient,
  type: ResourceType,
  ref: { namespace?: string; name: string },
): Promise<T | undefined> {
  try {
    return await kube.get<T>(type, ref);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Our own commands: a Deployment running one of them is the new operator, not the old one. */
const OWN_COMMANDS = new Set(["run", "once", "check"]);

/** The repository of an image reference: no registry host, tag or digest. */
export function imageRepository(image: string): string {
  const [path = ""] = image.split("@");
  const parts = path.split("/");
  const last = parts.pop() ?? "";
  const colon = last.indexOf(":");
  parts.push(colon >= 0 ? last.slice(0, colon) : last);
  // A first part with a dot or a colon, or "localhost", is a registry host.
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0] ?? "")) parts.shift();
  return parts.join("/");
}

/**
 * Whether a Deployment looks like the old operator: a container runs its image
 * (from Docker Hub or a mirror keeping the repository's path), or the
 * Deployment or its Pods carry its name label. Anyone who may create a
 * Deployment can copy both: this only picks candidates, the proof is their
 * ServiceAccount's rights (gatherFacts).
 */
export function looksLikeOldOperator(d: DeploymentView): boolean {
  const images = (d.spec?.template?.spec?.containers ?? []).map((c) =>
    imageRepository(c.image ?? ""),
  );
  if (images.some((r) => r === OLD_IMAGE_REPOSITORY || r.endsWith(`/${OLD_IMAGE_REPOSITORY}`)))
    return true;
  const labels = [d.metadata?.labels ?? {}, d.spec?.template?.metadata?.labels ?? {}];
  return labels.some(
    (l) => l["app.kubernetes.io/name"] === OLD_APP_LABEL_VALUE || l.app === OLD_APP_LABEL_VALUE,
  );
}

/**
 * The old operator's settings in a Deployment: a container sets one of its
 * variables and does not run one of this executable's commands (the new
 * chart sets the same variables, and always passes `run`).
 */
export function oldOperatorOf(d: DeploymentView): OldDeployment | undefined {
  const names = new Set<string>(Object.values(OLD_ENV));
  for (const c of d.spec?.template?.spec?.containers ?? []) {
    if (c.args?.[0] && OWN_COMMANDS.has(c.args[0])) continue;
    const env: Record<string, string> = {};
    for (const e of c.env ?? []) if (names.has(e.name) && e.value) env[e.name] = e.value;
    if (Object.keys(env).length === 0) continue;
    return {
      namespace: d.metadata?.namespace ?? "",
      name: d.metadata?.name ?? "",
      replicas: d.spec?.replicas ?? 1,
      env,
    };
  }
  return undefined;
}

function dockerConfigHosts(s: Secret): string[] {
  const raw = s.data?.[".dockerconfigjson"];
  if (!raw) return [];
  try {
    const parsed = JSON.parse(Buffer.from(raw, "base64").toString("utf8")) as {
      auths?: Record<string, unknown>;
    };
    return Object.keys(parsed.auths ?? {});
  } catch {
    return [];
  }
}

interface Gathered {
  facts: ClusterFacts;
  newCrdInstalled: boolean;
}

interface SubjectAccessReviewAnswer extends KubernetesObject {
  status?: { allowed?: boolean };
}

/**
 * Whether a Deployment's ServiceAccount may watch the old resources
 * cluster-wide, as the old operator must: a ClusterRoleBinding only an
 * administrator can make, never a namespace admin. The proof that a Deployment
 * which looks like the old operator is its.
 */
async function hasOldOperatorRights(kube: KubeClient, d: DeploymentView): Promise<boolean> {
  const namespace = d.metadata?.namespace ?? "";
  const sa = d.spec?.template?.spec?.serviceAccountName || "default";
  let review: SubjectAccessReviewAnswer;
  try {
    review = await kube.create<SubjectAccessReviewAnswer>(SUBJECT_ACCESS_REVIEWS, {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: `system:serviceaccount:${namespace}:${sa}`,
        groups: [
          "system:serviceaccounts",
          `system:serviceaccounts:${namespace}`,
          "system:authenticated",
        ],
        resourceAttributes: { verb: "watch", group: OLD_GROUP, resource: OLD_PLURAL },
      },
    } as SubjectAccessReviewAnswer);
  } catch (err) {
    throw new Error(
      `failed to check whether Deployment ${namespace}/${d.metadata?.name} is the old operator's (SubjectAccessReview): ${err instanceof Error ? err.message : String(err)}; run migrate as an administrator who may create subjectaccessreviews, or name the old operator with --old-deployment NAMESPACE/NAME`,
      { cause: err },
    );
  }
  return review.status?.allowed === true;
}

/** `--old-deployment NAMESPACE/NAME`, read as the administrator named it. */
async function namedDeployment(
  kube: KubeClient,
  ref: { namespace: string; name: string },
): Promise<OldDeployment> {
  const d = await getOrUndefined<DeploymentView>(kube, DEPLOYMENTS, ref);
  if (!d) {
    throw new Error(
      `failed to read Deployment ${ref.namespace}/${ref.name} (--old-deployment): it does not exist; name the old operator's Deployment as NAMESPACE/NAME`,
    );
  }
  return (
    oldOperatorOf(d) ?? {
      namespace: ref.namespace,
      name: ref.name,
      replicas: d.spec?.replicas ?? 1,
      env: {},
    }
  );
}

export async function gatherFacts(
  kube: KubeClient,
  oldDeployment?: { namespace: string; name: string },
): Promise<Gathered> {
  const oldCrd = await getOrUndefined<CrdView>(kube, CRDS, { name: OLD_CRD_NAME });
  const newCrd = await getOrUndefined<CrdView>(kube, CRDS, { name: CRD_NAME });
  const oldResources: OldResource[] = oldCrd
    ? (await listAll<OldResourceView>(kube, OLD_ECR_PULL_SECRETS)).map((r) => ({
        name: r.metadata?.name ?? "",
        ...(r.spec?.secretName !== undefined ? { secretName: r.spec.secretName } : {}),
        ...(r.spec?.namespaces !== undefined ? { namespaces: r.spec.namespaces } : {}),
        finalizers: r.metadata?.finalizers ?? [],
      }))
    : [];
  const deployments: OldDeployment[] = [];
  const ignored: IgnoredDeployment[] = [];
  let named: OldDeployment | undefined;
  if (oldDeployment) named = await namedDeployment(kube, oldDeployment);
  else {
    for (const view of await listAll<DeploymentView>(kube, DEPLOYMENTS)) {
      const d = oldOperatorOf(view);
      if (!d || !looksLikeOldOperator(view)) continue;
      if (await hasOldOperatorRights(kube, view)) deployments.push(d);
      else {
        ignored.push({
          namespace: d.namespace,
          name: d.name,
          reason: `its ServiceAccount ${view.spec?.template?.spec?.serviceAccountName || "default"} may not watch ${OLD_PLURAL}.${OLD_GROUP} cluster-wide, as the old operator's must, so its look may be copied (name it with --old-deployment if it is the old operator)`,
        });
      }
    }
  }
  const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
    `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`);
  deployments.sort(byName);
  ignored.sort(byName);
  const namespaces = new Map<string, NamespaceFacts>();
  for (const ns of await listAll<KubernetesObject>(kube, NAMESPACES)) {
    namespaces.set(ns.metadata?.name ?? "", { labels: ns.metadata?.labels ?? {}, secrets: {} });
  }
  for (const sa of await listAll<ServiceAccount>(kube, SERVICE_ACCOUNTS, {
    fieldSelector: "metadata.name=default",
  })) {
    const n = namespaces.get(sa.metadata?.namespace ?? "");
    if (n) n.defaultPullSecrets = (sa.imagePullSecrets ?? []).flatMap((r) => r.name ?? []);
  }
  for (const s of await listAll<Secret>(kube, SECRETS, {
    fieldSelector: "type=kubernetes.io/dockerconfigjson",
  })) {
    const n = namespaces.get(s.metadata?.namespace ?? "");
    if (!n) continue;
    const labels = s.metadata?.labels ?? {};
    const facts: SecretFacts = {
      type: s.type,
      managed: labels[LABEL_MANAGED_BY] === OPERATOR_NAME,
      hosts: dockerConfigHosts(s),
    };
    if (labels[LABEL_OWNER]) facts.owner = labels[LABEL_OWNER];
    n.secrets[s.metadata?.name ?? ""] = facts;
  }
  const newResources = new Map<string, ECRPullSecretSpec>();
  if (newCrd) {
    for (const r of await listAll<NewResourceView>(kube, ECR_PULL_SECRETS)) {
      newResources.set(r.metadata?.name ?? "", r.spec);
    }
  }
  const facts: ClusterFacts = { oldResources, deployments, namespaces, newResources, ignored };
  if (named) facts.named = named;
  if (oldCrd) facts.oldCrdShortNames = oldCrd.spec?.names?.shortNames ?? [];
  return { facts, newCrdInstalled: newCrd !== undefined };
}

// --- Writing ---------------------------------------------------------------

/** Reads, decides and writes with the read's resourceVersion, again on a conflict. */
async function conditionally<T extends KubernetesObject>(
  kube: KubeClient,
  type: ResourceType,
  ref: { namespace?: string; name: string },
  change: (current: T) => object | undefined,
): Promise<boolean> {
  return await retryOnConflict(
    {
      attempts: 10,
      exhausted: () =>
        new Error(
          `failed to update ${type.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}: it kept changing under us; run migrate again`,
        ),
    },
    async () => {
      const current = await getOrUndefined<T>(kube, type, ref);
      if (!current) return false;
      const patch = change(current) as { metadata?: ObjectMeta } | undefined;
      if (!patch) return false;
      try {
        await kube.patch(type, ref, {
          ...patch,
          metadata: { ...patch.metadata, resourceVersion: current.metadata?.resourceVersion },
        });
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
      return true;
    },
  );
}

export interface MigrateIO {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

class Migration {
  constructor(
    private readonly kube: KubeClient,
    private readonly plan: MigrationPlan,
    private readonly io: MigrateIO,
    private readonly timeoutMs: number,
  ) {}

  private say(line: string): void {
    this.io.out.write(`${line}\n`);
  }

  async apply(deleteOldCrd: boolean): Promise<void> {
    if (this.plan.oldCrd.removeShortName) await this.removeShortName();
    for (const r of this.plan.resources) {
      if (r.label) await this.labelNamespaces(r);
      if (r.action === "create") await this.create(r);
    }
    await this.serveAndClean();
    for (const r of this.plan.resources) await this.deleteOld(r);
    if (deleteOldCrd) await this.deleteOldCrd();
  }

  /** Ends `kubectl get ecrps` meaning two things: the old CRD gives up the short name. */
  private async removeShortName(): Promise<void> {
    await conditionally<CrdView>(this.kube, CRDS, { name: OLD_CRD_NAME }, (crd) => {
      const names = crd.spec?.names?.shortNames ?? [];
      if (!names.includes(SHARED_SHORT_NAME)) return undefined;
      const rest = names.filter((n) => n !== SHARED_SHORT_NAME);
      return { spec: { names: { shortNames: rest.length > 0 ? rest : null } } };
    });
    await this.until(
      `CRD ${OLD_CRD_NAME} to give up the short name ${SHARED_SHORT_NAME}`,
      async () => {
        const crd = await getOrUndefined<CrdView>(this.kube, CRDS, { name: OLD_CRD_NAME });
        return !crd?.status?.acceptedNames?.shortNames?.includes(SHARED_SHORT_NAME);
      },
    );
    this.say(`CRD ${OLD_CRD_NAME}: short name ${SHARED_SHORT_NAME} removed`);
  }

  private async labelNamespaces(r: ResourcePlan): Promise<void> {
    const label = r.label;
    if (!label) return;
    await pool(label.namespaces, WRITE_CONCURRENCY, async (name) => {
      await this.kube.patch(
        NAMESPACES,
        { name },
        { metadata: { labels: { [label.key]: label.value } } },
      );
    });
    this.say(`labelled ${label.namespaces.length} namespaces ${label.key}=${label.value}`);
  }

  private async create(r: ResourcePlan): Promise<void> {
    try {
      await this.kube.create(ECR_PULL_SECRETS, { metadata: { name: r.name }, spec: r.spec });
      this.say(`created ecrcreds.io ECRPullSecret ${r.name}`);
    } catch (err) {
      if (!isConflict(err)) throw err;
      this.say(`ecrcreds.io ECRPullSecret ${r.name} exists; kept`);
    }
  }

  /**
   * Waits until the new operator serves each namespace (its Secret, owned by
   * the new resource, and the `default` ServiceAccount referencing it), then
   * removes the old Secret and reference there: a Pod admitted at any moment
   * names at least one Secret that exists.
   */
  private async serveAndClean(): Promise<void> {
    const pending = new Map<string, { r: ResourcePlan; step: NamespaceStep }>();
    for (const r of this.plan.resources) {
      for (const step of r.steps) {
        if (step.exists) pending.set(`${r.name}\u0000${step.namespace}`, { r, step });
      }
    }
    if (pending.size === 0) return;
    this.say(`waiting for the new operator to serve ${pending.size} namespaces`);
    const deadline = Date.now() + this.timeoutMs;
    while (pending.size > 0) {
      const owners = new Map<string, string>();
      for (const s of await listAll<Secret>(this.kube, SECRETS, {
        labelSelector: MANAGED_SELECTOR,
      })) {
        owners.set(
          `${s.metadata?.namespace}\u0000${s.metadata?.name}`,
          s.metadata?.labels?.[LABEL_OWNER] ?? "",
        );
      }
      const refs = new Map<string, string[]>();
      for (const sa of await listAll<ServiceAccount>(this.kube, SERVICE_ACCOUNTS, {
        fieldSelector: "metadata.name=default",
      })) {
        refs.set(
          sa.metadata?.namespace ?? "",
          (sa.imagePullSecrets ?? []).flatMap((x) => x.name ?? []),
        );
      }
      const served = [...pending.entries()].filter(([, { r, step }]) => {
        const owner = owners.get(`${step.namespace}\u0000${step.secret}`);
        const saRefs = refs.get(step.namespace);
        return (
          owner === ownerLabelValue(r.name) &&
          (saRefs === undefined || saRefs.includes(step.secret))
        );
      });
      const reports = new Map<string, string[]>();
      await pool(served, WRITE_CONCURRENCY, async ([key, { r, step }]) => {
        reports.set(key, await this.moveReferences(r, step));
      });
      // The ServiceAccount admission plugin reads ServiceAccounts from the API
      // server's cache: give it a moment to see the references gone before
      // the Secrets they named go, so no Pod is admitted naming only those.
      if (served.some(([, { step }]) => step.remove.some((rm) => rm.secret))) {
        await new Promise((resolve) => setTimeout(resolve, ADMISSION_GRACE_MS));
      }
      await pool(served, WRITE_CONCURRENCY, async ([key, { r, step }]) => {
        const done = [...(reports.get(key) ?? []), ...(await this.deleteOldSecrets(step))];
        this.say(
          `${step.namespace}: served (${r.name}, Secret ${step.secret})${done.length ? `; ${done.join("; ")}` : ""}`,
        );
        pending.delete(key);
      });
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        const left = [...pending.values()];
        throw new Error(
          `failed to migrate: the new operator did not serve ${left.length} namespaces within ${Math.round(this.timeoutMs / 1000)}s (${left
            .slice(0, 10)
            .map(({ r, step }) => `${step.namespace} for ${r.name}`)
            .join(
              ", ",
            )}${left.length > 10 ? ", ..." : ""}); check that ecr-creds-refresher runs and read the Ready condition (kubectl describe ecrps NAME), then run migrate --apply again`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Claims the adopted reference for the new resource and removes the old ones; says what it did. */
  private async moveReferences(r: ResourcePlan, step: NamespaceStep): Promise<string[]> {
    const ns = step.namespace;
    const done: string[] = [];
    if (step.claimRef) {
      const owner = ownerLabelValue(r.name);
      const claimed = await conditionally<ServiceAccount>(
        this.kube,
        SERVICE_ACCOUNTS,
        { namespace: ns, name: "default" },
        (sa) => {
          if (!(sa.imagePullSecrets ?? []).some((x) => x.name === step.secret)) return undefined;
          const added = parseAddedRefs(sa.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS]);
          if (added.some((a) => a.owner === owner && a.name === step.secret)) return undefined;
          return {
            metadata: {
              annotations: {
                [ANNOTATION_ADDED_PULL_SECRETS]: formatAddedRefs([
                  ...added,
                  { owner, name: step.secret },
                ]),
              },
            },
          };
        },
      );
      if (claimed) done.push(`reference ${step.secret} now the new operator's`);
    }
    for (const rm of step.remove) {
      if (!rm.ref) continue;
      const removed = await conditionally<ServiceAccount>(
        this.kube,
        SERVICE_ACCOUNTS,
        { namespace: ns, name: "default" },
        (sa) => {
          const list = sa.imagePullSecrets ?? [];
          if (!list.some((x) => x.name === rm.name)) return undefined;
          return { imagePullSecrets: list.filter((x) => x.name !== rm.name) };
        },
      );
      if (removed) done.push(`${rm.name} removed from the default ServiceAccount`);
    }
    return done;
  }

  private async deleteOldSecrets(step: NamespaceStep): Promise<string[]> {
    const ns = step.namespace;
    const done: string[] = [];
    for (const rm of step.remove) {
      if (!rm.secret) continue;
      const s = await getOrUndefined<Secret>(this.kube, SECRETS, { namespace: ns, name: rm.name });
      // Adopted or relabelled since the plan: not the old operator's any more.
      if (!s || s.metadata?.labels?.[LABEL_MANAGED_BY] === OPERATOR_NAME) continue;
      try {
        await this.kube.delete(
          SECRETS,
          { namespace: ns, name: rm.name },
          { resourceVersion: s.metadata?.resourceVersion },
        );
        done.push(`Secret ${rm.name} deleted`);
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
    }
    return done;
  }

  /** Drops kopf's finalizer (kopf is gone, nothing else would) and deletes the old resource. */
  private async deleteOld(r: ResourcePlan): Promise<void> {
    const ref = { name: r.name };
    await conditionally<KubernetesObject>(this.kube, OLD_ECR_PULL_SECRETS, ref, (old) => {
      const finalizers = old.metadata?.finalizers ?? [];
      if (!finalizers.includes(KOPF_FINALIZER)) return undefined;
      return { metadata: { finalizers: finalizers.filter((f) => f !== KOPF_FINALIZER) } };
    });
    try {
      await this.kube.delete(OLD_ECR_PULL_SECRETS, ref);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.until(`alchemy.com ECRPullSecret ${r.name} to be gone`, async () => {
      const old = await getOrUndefined<KubernetesObject>(this.kube, OLD_ECR_PULL_SECRETS, ref);
      if (old && (old.metadata?.finalizers ?? []).length > 0 && old.metadata?.deletionTimestamp) {
        const others = (old.metadata.finalizers ?? []).filter((f) => f !== KOPF_FINALIZER);
        if (others.length > 0) {
          throw new Error(
            `failed to delete alchemy.com ECRPullSecret ${r.name}: it waits for finalizers ${others.join(", ")}, which are not kopf's; remove them if nothing will`,
          );
        }
      }
      return old === undefined;
    });
    this.say(`deleted alchemy.com ECRPullSecret ${r.name}`);
  }

  private async deleteOldCrd(): Promise<void> {
    const crd = await getOrUndefined<CrdView>(this.kube, CRDS, { name: OLD_CRD_NAME });
    if (!crd) return;
    const left = await listAll<KubernetesObject>(this.kube, OLD_ECR_PULL_SECRETS);
    if (left.length > 0) {
      this.say(`CRD ${OLD_CRD_NAME} kept: ${left.length} alchemy.com ECRPullSecrets remain`);
      return;
    }
    try {
      await this.kube.delete(CRDS, { name: OLD_CRD_NAME });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.until(`CRD ${OLD_CRD_NAME} to be gone`, async () => {
      return (await getOrUndefined(this.kube, CRDS, { name: OLD_CRD_NAME })) === undefined;
    });
    this.say(`deleted CRD ${OLD_CRD_NAME}`);
  }

  private async until(what: string, done: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    while (!(await done())) {
      if (Date.now() > deadline) {
        throw new Error(`failed to migrate: timed out waiting for ${what}; run migrate again`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS / 2));
    }
  }
}

/** What `migrate`'s command line says. */
interface MigrateArgs {
  config: OperatorConfig;
  /** The settings given as flags (not from the environment): they win over the old Deployment's. */
  flags: SettingsInput;
  extra: Record<string, string | boolean | undefined>;
  timeoutMs: number;
  oldDeployment?: { namespace: string; name: string };
  labelPrefix: string;
}

/** Reads `migrate`'s command line; `"help"` for --help. Throws ConfigError saying what to fix. */
function parseMigrateArgs(args: string[], env: NodeJS.ProcessEnv): MigrateArgs | "help" {
  const argv = ["migrate", ...args];
  const parsed = parseCommandLine(argv, env, MIGRATE_FLAGS);
  if (parsed.extra.help) return "help";
  if (parsed.positionals.length > 0) {
    throw new ConfigError(
      `unexpected argument ${JSON.stringify(parsed.positionals[0])}; see migrate --help`,
    );
  }
  const extra = parsed.extra;
  // The same line again without the environment: what was given as a flag.
  const flags = operatorDefaults(parseCommandLine(argv, {}, MIGRATE_FLAGS).config);
  const timeout = typeof extra.timeout === "string" ? extra.timeout : DEFAULT_TIMEOUT;
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(timeout);
  } catch (e) {
    throw new ConfigError(
      `failed to read --timeout: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (extra.apply && extra["dry-run"])
    throw new ConfigError("--apply and --dry-run exclude each other");
  const oldDeployment = parseOldDeployment(extra["old-deployment"]);
  return {
    config: parsed.config,
    flags,
    extra,
    timeoutMs,
    ...(oldDeployment ? { oldDeployment } : {}),
    labelPrefix: parseLabelPrefix(extra["namespace-label-prefix"]),
  };
}

/** --old-deployment NAMESPACE/NAME, when given. */
function parseOldDeployment(
  named: string | boolean | undefined,
): { namespace: string; name: string } | undefined {
  if (typeof named !== "string") return undefined;
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(named);
  if (!m) {
    throw new ConfigError(
      `failed to read --old-deployment ${JSON.stringify(named)}: not NAMESPACE/NAME; name the old operator's Deployment, e.g. --old-deployment operator/ecr-creds-refresher`,
    );
  }
  return { namespace: m[1] as string, name: m[3] as string };
}

/** --namespace-label-prefix, or MIGRATE_LABEL_PREFIX. */
function parseLabelPrefix(prefix: string | boolean | undefined): string {
  if (typeof prefix !== "string") return MIGRATE_LABEL_PREFIX;
  if (!LABEL_PREFIX_FORM.test(prefix) || prefix.length > 254) {
    throw new ConfigError(
      `failed to read --namespace-label-prefix ${JSON.stringify(prefix)}: not a label key prefix; give a DNS subdomain and a slash, e.g. ecr-pull.platform.example.com/`,
    );
  }
  return prefix;
}

/** `ecr-creds-refresher migrate [flags]`; returns the exit code. */
export async function runMigrate(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: MigrateIO = { out: process.stdout, err: process.stderr },
): Promise<number> {
  let parsed: MigrateArgs | "help";
  try {
    parsed = parseMigrateArgs(args, env);
  } catch (e) {
    io.err.write(`ecr-creds-refresher migrate: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  if (parsed === "help") {
    io.out.write(`${migrateHelp()}\n`);
    return 0;
  }
  const { config, flags, extra, timeoutMs, oldDeployment, labelPrefix } = parsed;
  const apply = extra.apply === true;
  try {
    const kube = new KubeClient(kubeConnection(config), {
      qps: config.qps,
      burst: config.burst,
      fieldManager: MIGRATE_FIELD_MANAGER,
    });
    const { facts, newCrdInstalled } = await gatherFacts(kube, oldDeployment);
    const plan = planMigration(facts, {
      flags,
      environment: operatorDefaults(config),
      labelPrefix,
    });
    if (!newCrdInstalled) {
      plan.problems.push(
        `the CRD ${CRD_NAME} is not installed: install ecr-creds-refresher (the Helm chart or deploy/manifests/install.yaml) and let it run, then migrate`,
      );
    }
    io.out.write(formatPlan(plan, apply));
    if (!apply) return plan.problems.length > 0 ? 1 : 0;
    if (plan.problems.length > 0) {
      io.err.write(
        `failed to migrate: ${plan.problems.length} problems in the plan (above); fix them and run again\n`,
      );
      return 1;
    }
    if (plan.running.length > 0 && extra.force !== true) {
      const d = plan.running[0] as OldDeployment;
      io.err.write(
        `failed to migrate: the old operator still runs (Deployment ${d.namespace}/${d.name} has ${d.replicas} ${d.replicas === 1 ? "replica" : "replicas"}) and would keep rewriting its Secrets and ServiceAccounts; scale it down with kubectl -n ${d.namespace} scale deployment ${d.name} --replicas=0, or pass --force\n`,
      );
      return 1;
    }
    await new Migration(kube, plan, io, timeoutMs).apply(extra["delete-old-crd"] === true);
    io.out.write("done\n");
    return 0;
  } catch (e) {
    io.err.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
