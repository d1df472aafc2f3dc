// `migrate`, the pure half: what the original Python (kopf) operator left in
// the cluster (its alchemy.com ECRPullSecrets, its Deployment's environment,
// its Secrets and ServiceAccount references) in, the plan out. No I/O here:
// src/cli/migrate.ts gathers the facts and carries the plan out.
import { dump } from "js-yaml";
import type { ECRPullSecretSpec } from "../api/index.js";
import {
  DNS1123_SUBDOMAIN_PATTERN,
  MAX_NAMESPACE_ENTRIES,
  NAMESPACE_NAME_PATTERN,
  REGION_PATTERN,
} from "../api/schema.js";
import type { OperatorDefaults } from "../aws/registries.js";
import { parseRegistryHost } from "../aws/registry-host.js";

export const OLD_GROUP = "alchemy.com";
export const OLD_VERSION = "v1alpha1";
export const OLD_PLURAL = "ecrpullsecrets";
export const OLD_CRD_NAME = `${OLD_PLURAL}.${OLD_GROUP}`;
/** The short name both CRDs declare; while both do, `kubectl get ecrps` is ambiguous. */
export const SHARED_SHORT_NAME = "ecrps";
/** kopf puts it on every resource it handles; without kopf running, deletion hangs on it. */
export const KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker";
/**
 * The form of the one Secret name the old operator wrote, whatever
 * `spec.secretName` said (a constant in its code). The name itself is read
 * from what the `default` ServiceAccounts reference, never assumed.
 */
export const OLD_SECRET_NAME_FORM = /^aws-registry-[0-9]{12}$/;
/** What the old operator served when a resource listed no namespaces. */
export const OLD_DEFAULT_NAMESPACES = ["default"];
/** The old operator's credentials Secret namespace when its variable was unset. */
export const OLD_DEFAULT_CREDENTIALS_NAMESPACE = "default";
/**
 * Default label key prefix for namespaces of a list too long for
 * `spec.namespaces`; `--namespace-label-prefix` picks one an administrator's
 * policy protects, so that a tenant who may label their own namespace cannot
 * opt into the resulting selector.
 */
export const MIGRATE_LABEL_PREFIX = "migrate.ecrcreds.io/";
/** A label key prefix: a DNS subdomain and a slash. */
export const LABEL_PREFIX_FORM =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/$/;
export const MIGRATE_LABEL_VALUE = "true";

/**
 * The old operator's image repository (its chart's image.repository), without
 * registry host, tag or digest, and the label values its chart and manifests
 * put on its Deployment and Pods (app.kubernetes.io/name, app).
 */
export const OLD_IMAGE_REPOSITORY = "dejanualex/ecr-creds-refresher";
export const OLD_APP_LABEL_VALUE = "ecr-creds-refresher";

/** The old operator's deployment variables, which keep their meaning here. */
export const OLD_ENV = {
  region: "AWS_REGION",
  registry: "REGISTRY",
  credentialsSecretName: "AWS_CREDENTIALS_SECRET_NAME",
  credentialsSecretNamespace: "AWS_CREDENTIALS_SECRET_NAMESPACE",
} as const;

const DOCKER_CONFIG_JSON_TYPE = "kubernetes.io/dockerconfigjson";
const namespaceName = new RegExp(NAMESPACE_NAME_PATTERN);
const secretNameForm = new RegExp(DNS1123_SUBDOMAIN_PATTERN);
const regionForm = new RegExp(REGION_PATTERN);

// --- Facts -----------------------------------------------------------------

export interface OldResource {
  name: string;
  secretName?: string;
  namespaces?: string[];
  finalizers?: string[];
}

export interface OldDeployment {
  namespace: string;
  name: string;
  replicas: number;
  /** The old operator's variables with literal values. */
  env: Record<string, string>;
}

/** A Deployment that looks like the old operator but is not provably it: never read. */
export interface IgnoredDeployment {
  namespace: string;
  name: string;
  /** Why it is not trusted, for people. */
  reason: string;
}

export interface SecretFacts {
  type?: string;
  /** Carries this operator's managed-by label. */
  managed: boolean;
  /** Its owner label, when managed. */
  owner?: string;
  /** Hosts in its `.dockerconfigjson` auths. */
  hosts: string[];
}

export interface NamespaceFacts {
  labels: Record<string, string>;
  /** The `default` ServiceAccount's imagePullSecrets names; undefined when it does not exist. */
  defaultPullSecrets?: string[];
  /** The namespace's dockerconfigjson Secrets by name. */
  secrets: Record<string, SecretFacts>;
}

export interface ClusterFacts {
  oldResources: OldResource[];
  /**
   * Deployments provably the old operator's: its image or labels, and a
   * ServiceAccount with the old operator's cluster-wide rights, which no
   * namespace admin can grant. Sorted by namespace/name.
   */
  deployments: OldDeployment[];
  /** The Deployment the administrator named (--old-deployment): the only one read then. */
  named?: OldDeployment;
  /** Look-alikes that are not provably the old operator's. */
  ignored?: IgnoredDeployment[];
  /** Every existing namespace. */
  namespaces: ReadonlyMap<string, NamespaceFacts>;
  /** ecrcreds.io ECRPullSecrets that already exist, by name. */
  newResources: ReadonlyMap<string, ECRPullSecretSpec>;
  /** The old CRD's declared short names; undefined when the old CRD is not installed. */
  oldCrdShortNames?: string[];
}

/** Operator-level settings from one place (flags, or the shell's environment). */
export type SettingsInput = OperatorDefaults;

export interface MigrateOptions {
  /** Given as flags: they win over everything. */
  flags?: SettingsInput;
  /** The environment of the shell running `migrate`: used when the old Deployment says nothing. */
  environment?: SettingsInput;
  /** Longest `spec.namespaces` the CRD takes; longer lists become a label and a selector. */
  maxNamespaces?: number;
  /** Prefix of the label key of such lists (default MIGRATE_LABEL_PREFIX). */
  labelPrefix?: string;
}

// --- Plan ------------------------------------------------------------------

export interface Setting {
  value: string;
  /** Where the value came from, for people. */
  from: string;
}

export interface NamespaceStep {
  namespace: string;
  exists: boolean;
  /** The Secret the new resource serves here. */
  secret: string;
  /** The old Secret has that very name: the new operator takes it over in place. */
  adopt: boolean;
  /** Record the `default` ServiceAccount's existing reference as the new resource's. */
  claimRef: boolean;
  /** Old Secrets that go once the new one is served: the reference and/or the Secret. */
  remove: Array<{ name: string; ref: boolean; secret: boolean }>;
  /** Entries others put into the `default` ServiceAccount: never touched. */
  othersRefs: string[];
}

export interface ResourcePlan {
  name: string;
  /** create: a new ecrcreds.io resource; keep: one of that name exists and is left as it is. */
  action: "create" | "keep";
  spec: ECRPullSecretSpec;
  /** Set when the list is too long for `spec.namespaces`: the namespaces to label. */
  label?: { key: string; value: string; namespaces: string[]; alreadyLabelled: number };
  steps: NamespaceStep[];
  /** kopf's finalizer, when the old resource carries it. */
  removeFinalizers: string[];
  notes: string[];
}

export interface MigrationPlan {
  deployments: OldDeployment[];
  /** Deployments of the old operator that still run (replicas > 0). */
  running: OldDeployment[];
  oldSecretNames: string[];
  settings: { region?: Setting; registry?: Setting; credentials?: Setting };
  /** Whether the old CRD exists, and whether its short name must go. */
  oldCrd: { present: boolean; removeShortName: boolean };
  resources: ResourcePlan[];
  /** Things that stop `--apply`. */
  problems: string[];
  notes: string[];
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function ecrHost(host: string): boolean {
  try {
    return parseRegistryHost(host).kind === "private";
  } catch {
    return false;
  }
}

/** Whether a Secret looks like one the old operator wrote: unlabelled dockerconfigjson for an ECR host. */
function isOldSecret(name: string, s: SecretFacts | undefined): boolean {
  return (
    s !== undefined &&
    !s.managed &&
    s.type === DOCKER_CONFIG_JSON_TYPE &&
    OLD_SECRET_NAME_FORM.test(name) &&
    s.hosts.some(ecrHost)
  );
}

function oldTargets(r: OldResource): string[] {
  return [...new Set(r.namespaces ?? OLD_DEFAULT_NAMESPACES)];
}

/**
 * The old Secret names, most referenced first: those an old resource's target
 * namespace has its `default` ServiceAccount reference, and that are
 * unlabelled dockerconfigjson Secrets of the old operator's form.
 */
export function detectOldSecretNames(facts: ClusterFacts): string[] {
  const counts = new Map<string, number>();
  const seen = new Set<string>();
  for (const r of facts.oldResources) {
    for (const ns of oldTargets(r)) {
      if (seen.has(ns)) continue;
      seen.add(ns);
      const n = facts.namespaces.get(ns);
      for (const ref of new Set(n?.defaultPullSecrets ?? [])) {
        if (isOldSecret(ref, n?.secrets[ref])) counts.set(ref, (counts.get(ref) ?? 0) + 1);
      }
    }
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || byCodeUnit(a[0], b[0]))
    .map(([name]) => name);
}

function pick(
  key: keyof typeof OLD_ENV,
  flags: SettingsInput | undefined,
  source: OldDeployment | undefined,
  environment: SettingsInput | undefined,
): Setting | undefined {
  const flag = key === "region" ? flags?.region : key === "registry" ? flags?.registry : undefined;
  if (flag) return { value: flag, from: `--${key}` };
  const env = source?.env[OLD_ENV[key]];
  if (env) return { value: env, from: `${OLD_ENV[key]} of Deployment ${deploymentName(source)}` };
  const shell =
    key === "region" ? environment?.region : key === "registry" ? environment?.registry : undefined;
  if (shell) return { value: shell, from: `${OLD_ENV[key]} in this shell's environment` };
  return undefined;
}

const deploymentName = (d: OldDeployment | undefined) => (d ? `${d.namespace}/${d.name}` : "");

function resolveSettings(
  facts: ClusterFacts,
  oldSecretNames: string[],
  opts: MigrateOptions,
): MigrationPlan["settings"] {
  // Only the Deployment the administrator named, or the one provably the old
  // operator's: its variables decide whose credentials the new resources use.
  const source = facts.named ?? (facts.deployments.length === 1 ? facts.deployments[0] : undefined);
  const settings: MigrationPlan["settings"] = {};
  const registry = pick("registry", opts.flags, source, opts.environment);
  if (registry) settings.registry = registry;
  else {
    // What the old Secrets hold is what the old operator served.
    const hosts = new Map<string, number>();
    for (const n of facts.namespaces.values()) {
      for (const name of oldSecretNames) {
        const s = n.secrets[name];
        if (!isOldSecret(name, s)) continue;
        for (const h of s?.hosts ?? []) if (ecrHost(h)) hosts.set(h, (hosts.get(h) ?? 0) + 1);
      }
    }
    const [host] = [...hosts.entries()].sort((a, b) => b[1] - a[1] || byCodeUnit(a[0], b[0]));
    if (host) settings.registry = { value: host[0], from: "the auths of the old Secrets" };
  }
  const region = pick("region", opts.flags, source, opts.environment);
  if (region) settings.region = region;
  else if (settings.registry) {
    try {
      const h = parseRegistryHost(settings.registry.value);
      if (h.kind === "private") settings.region = { value: h.region, from: "the registry host" };
    } catch {
      // reported with the registry below
    }
  }
  const flagged = opts.flags?.credentialsSecret;
  const envName = source?.env[OLD_ENV.credentialsSecretName];
  if (flagged) {
    settings.credentials = {
      value: `${flagged.namespace}/${flagged.name}`,
      from: "--credentials-secret-name/--credentials-secret-namespace",
    };
  } else if (envName) {
    const ns = source?.env[OLD_ENV.credentialsSecretNamespace] || OLD_DEFAULT_CREDENTIALS_NAMESPACE;
    settings.credentials = {
      value: `${ns}/${envName}`,
      from: `${OLD_ENV.credentialsSecretName}/_NAMESPACE of Deployment ${deploymentName(source)}`,
    };
  } else if (opts.environment?.credentialsSecret) {
    const c = opts.environment.credentialsSecret;
    settings.credentials = {
      value: `${c.namespace}/${c.name}`,
      from: `${OLD_ENV.credentialsSecretName}/_NAMESPACE in this shell's environment`,
    };
  }
  return settings;
}

function sameSpec(a: ECRPullSecretSpec, b: ECRPullSecretSpec): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== undefined)
        .sort(([a], [b]) => byCodeUnit(a, b))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}

/** The whole migration: what is created, adopted, moved, removed and deleted. */
export function planMigration(facts: ClusterFacts, opts: MigrateOptions = {}): MigrationPlan {
  const notes: string[] = [];
  const oldSecretNames = detectOldSecretNames(facts);
  const settings = resolveSettings(facts, oldSecretNames, opts);
  const problems = settingsProblems(settings);
  const oldDeployments = facts.named ? [facts.named] : facts.deployments;
  if (!facts.named && facts.deployments.length > 1) {
    problems.push(
      `${facts.deployments.length} Deployments are provably the old operator's (${facts.deployments.map(deploymentName).join(", ")}): name the one whose settings to use with --old-deployment NAMESPACE/NAME`,
    );
  }
  for (const d of facts.ignored ?? []) {
    notes.push(`Deployment ${d.namespace}/${d.name} is not read: ${d.reason}`);
  }
  const ctx: PlanContext = {
    facts,
    opts,
    settings,
    oldSecretNames,
    oldNames: new Set(oldSecretNames),
    claimed: new Map(),
  };
  // Every resource's targets are claimed before any namespace is planned: a
  // name another resource serves in a namespace is not a leftover there.
  const drafts: ResourceDraft[] = [];
  for (const r of [...facts.oldResources].sort((a, b) => byCodeUnit(a.name, b.name))) {
    const draft = planResource(r, ctx);
    if (typeof draft === "string") problems.push(draft);
    else drafts.push(draft);
  }
  const resources = drafts.map(({ plan, targets }) => {
    for (const ns of targets) plan.steps.push(planNamespace(ns, plan.spec.secretName, ctx));
    return plan;
  });
  const shortNames = facts.oldCrdShortNames;
  return {
    deployments: oldDeployments,
    running: oldDeployments.filter((d) => d.replicas > 0),
    oldSecretNames,
    settings,
    oldCrd: {
      present: shortNames !== undefined,
      removeShortName: shortNames?.includes(SHARED_SHORT_NAME) ?? false,
    },
    resources,
    problems,
    notes,
  };
}

/** What the planning of every resource and namespace shares. */
interface PlanContext {
  facts: ClusterFacts;
  opts: MigrateOptions;
  settings: MigrationPlan["settings"];
  /** The old Secret names, most referenced first, and as a set. */
  oldSecretNames: string[];
  oldNames: ReadonlySet<string>;
  /**
   * Which (namespace, Secret name) pairs are taken, and by which resource, so
   * two resources never fight over one Secret, and an old Secret that a new
   * resource adopts is never deleted as another resource's leftover.
   */
  claimed: Map<string, string>;
}

/** A resource's plan before its namespace steps, and the namespaces it serves. */
interface ResourceDraft {
  plan: ResourcePlan;
  targets: string[];
}

const pair = (ns: string, secret: string) => `${ns}\u0000${secret}`;

/** Region and registry that the new resources could not take, each with the flag that fixes it. */
function settingsProblems(settings: MigrationPlan["settings"]): string[] {
  const problems: string[] = [];
  if (settings.region && !regionForm.test(settings.region.value)) {
    problems.push(
      `region ${JSON.stringify(settings.region.value)} (${settings.region.from}) is not an AWS region; pass --region`,
    );
  }
  if (settings.registry) {
    try {
      parseRegistryHost(settings.registry.value);
    } catch (err) {
      problems.push(
        `${err instanceof Error ? err.message : String(err)} (${settings.registry.from}); pass --registry`,
      );
    }
  }
  return problems;
}

/**
 * One old resource's plan (its namespace steps still empty), claiming its
 * (namespace, Secret) pairs in `ctx.claimed`; or a problem when its Secret
 * name or its own name cannot carry over.
 */
function planResource(r: OldResource, ctx: PlanContext): ResourceDraft | string {
  const notes: string[] = [];
  const existing = ctx.facts.newResources.get(r.name);
  let secretName = existing?.secretName ?? r.secretName ?? ctx.oldSecretNames[0];
  if (!secretName) {
    return `ECRPullSecret ${r.name}: spec.secretName is empty and no old Secret was found; set spec.secretName on the old resource`;
  }
  if (!secretNameForm.test(secretName) || secretName.length > 253) {
    return `ECRPullSecret ${r.name}: spec.secretName ${JSON.stringify(secretName)} is not a valid Secret name; fix it on the old resource`;
  }
  if (r.name.length > 63) {
    return `ECRPullSecret ${r.name}: the name is longer than 63 characters, which the new resource does not take; recreate the old resource under a shorter name first`;
  }
  secretName = secretName.trim();
  const targets = claimTargets(r, secretName, ctx.claimed, notes);
  const { spec, label } = targetSpec(r.name, secretName, targets, ctx, notes);
  const { settings } = ctx;
  if (settings.region) spec.region = settings.region.value;
  if (settings.registry) spec.registries = [{ host: settings.registry.value }];
  if (settings.credentials) {
    const [namespace = "", name = ""] = settings.credentials.value.split("/");
    spec.credentials = { secretRef: { name, namespace } };
  }
  if (ctx.oldNames.has(secretName)) spec.adoptExisting = true;
  if (existing && !sameSpec(existing, spec)) {
    notes.push(
      "an ecrcreds.io ECRPullSecret of this name exists with another spec: it is kept as it is",
    );
  }
  return {
    plan: {
      name: r.name,
      action: existing ? "keep" : "create",
      spec: existing ?? spec,
      ...(label ? { label } : {}),
      steps: [],
      removeFinalizers: (r.finalizers ?? []).filter((f) => f === KOPF_FINALIZER),
      notes,
    },
    targets,
  };
}

/** The old resource's namespaces this one serves: valid names whose Secret no earlier resource claimed. */
function claimTargets(
  r: OldResource,
  secretName: string,
  claimed: Map<string, string>,
  notes: string[],
): string[] {
  const targets: string[] = [];
  for (const ns of oldTargets(r)) {
    if (!namespaceName.test(ns) || ns.length > 63) {
      notes.push(`${JSON.stringify(ns)} is not a namespace name: dropped`);
      continue;
    }
    const owner = claimed.get(pair(ns, secretName));
    if (owner !== undefined) {
      notes.push(
        `${ns}: ECRPullSecret ${owner} already serves Secret ${secretName} there: left to it`,
      );
      continue;
    }
    claimed.set(pair(ns, secretName), r.name);
    targets.push(ns);
  }
  return targets;
}

/**
 * The spec's namespaces: the list itself, or, when it is longer than
 * `spec.namespaces` takes, a label selector (with the namespaces to label)
 * and the listed namespaces that do not exist yet.
 */
function targetSpec(
  name: string,
  secretName: string,
  targets: string[],
  ctx: PlanContext,
  notes: string[],
): { spec: ECRPullSecretSpec; label?: ResourcePlan["label"] } {
  const { facts, opts } = ctx;
  const max = opts.maxNamespaces ?? MAX_NAMESPACE_ENTRIES;
  const spec: ECRPullSecretSpec = { secretName };
  if (targets.length <= max) {
    spec.namespaces = targets;
    return { spec };
  }
  const key = `${opts.labelPrefix ?? MIGRATE_LABEL_PREFIX}${name}`;
  const present = targets.filter((ns) => facts.namespaces.has(ns));
  const missing = targets.filter((ns) => !facts.namespaces.has(ns));
  const toLabel = present.filter(
    (ns) => facts.namespaces.get(ns)?.labels[key] !== MIGRATE_LABEL_VALUE,
  );
  const label = {
    key,
    value: MIGRATE_LABEL_VALUE,
    namespaces: toLabel,
    alreadyLabelled: present.length - toLabel.length,
  };
  spec.namespaceSelector = { matchLabels: { [key]: MIGRATE_LABEL_VALUE } };
  notes.push(
    `${targets.length} namespaces are more than spec.namespaces takes (${max}): the ${present.length} that exist are selected by the label ${key}=${MIGRATE_LABEL_VALUE}`,
  );
  if (missing.length > 0 && missing.length <= max) spec.namespaces = missing;
  else if (missing.length > max) {
    notes.push(
      `${missing.length} listed namespaces do not exist and are too many to list: they will not be served when created unless labelled ${key}=${MIGRATE_LABEL_VALUE}`,
    );
  }
  return { spec, label };
}

/**
 * What happens in namespace `ns` served with Secret `secret`: adopt an old
 * Secret of that name in place (and claim the `default` ServiceAccount's
 * reference), remove the other old Secrets and references no resource
 * claims there, keep everyone else's references.
 */
function planNamespace(ns: string, secret: string, ctx: PlanContext): NamespaceStep {
  const n = ctx.facts.namespaces.get(ns);
  const refs = n?.defaultPullSecrets ?? [];
  const step: NamespaceStep = {
    namespace: ns,
    exists: n !== undefined,
    secret,
    adopt: false,
    claimRef: false,
    remove: [],
    othersRefs: [],
  };
  if (!n) return step;
  step.adopt = ctx.oldNames.has(secret) && isOldSecret(secret, n.secrets[secret]);
  step.claimRef = step.adopt && refs.includes(secret);
  for (const old of ctx.oldSecretNames) {
    if (old === secret) continue;
    // Another resource serves this name here: not a leftover.
    if (ctx.claimed.has(pair(ns, old))) continue;
    const ref = refs.includes(old);
    const hasSecret = isOldSecret(old, n.secrets[old]);
    if (ref || hasSecret) step.remove.push({ name: old, ref, secret: hasSecret });
  }
  step.othersRefs = refs.filter((x) => x !== secret && !step.remove.some((rm) => rm.name === x));
  return step;
}

// --- Text ------------------------------------------------------------------

function indent(text: string, by: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `${by}${l}`)
    .join("\n");
}

/** What happens in one namespace, without its name. */
function stepText(s: NamespaceStep): string {
  if (!s.exists) return "do not exist yet; served when created";
  const parts: string[] = [];
  if (s.adopt) {
    parts.push(`adopt Secret ${s.secret} in place (same name, fresh token)`);
    if (s.claimRef) parts.push("the default ServiceAccount's reference moves to the new operator");
  } else {
    parts.push(`serve Secret ${s.secret}`);
  }
  for (const rm of s.remove) {
    const what = [
      rm.ref ? `remove ${rm.name} from the default ServiceAccount` : "",
      rm.secret ? `delete Secret ${rm.name}` : "",
    ].filter(Boolean);
    parts.push(`then ${what.join(" and ")}`);
  }
  if (s.othersRefs.length > 0) parts.push(`others' entries kept: ${s.othersRefs.join(", ")}`);
  return parts.join("; ");
}

const SHOWN = 10;

/** Names, the first few of a long list and how many more. */
function some(names: readonly string[]): string {
  if (names.length <= SHOWN) return names.join(", ");
  return `${names.slice(0, SHOWN).join(", ")} and ${names.length - SHOWN} more`;
}

/** Namespace steps grouped by what happens, in the order they first appear. */
function stepLines(steps: readonly NamespaceStep[]): string[] {
  const groups = new Map<string, string[]>();
  for (const s of steps) {
    const text = stepText(s);
    const names = groups.get(text) ?? [];
    names.push(s.namespace);
    groups.set(text, names);
  }
  return [...groups.entries()].map(([text, names]) => `${some(names)}: ${text}`);
}

/** The spec as YAML, long lists shortened for reading. */
function specText(spec: ECRPullSecretSpec): string {
  const shown: Record<string, unknown> = { ...spec };
  for (const key of ["namespaces", "excludeNamespaces"] as const) {
    const list = spec[key];
    if (list && list.length > SHOWN) {
      shown[key] = [...list.slice(0, 3), `(and ${list.length - 3} more)`];
    }
  }
  return dump({ spec: shown }, { lineWidth: -1, flowLevel: 3 });
}

/** The plan as people read it. */
export function formatPlan(plan: MigrationPlan, apply: boolean): string {
  const out: string[] = [];
  if (plan.deployments.length === 0) {
    out.push("old operator: no Deployment found");
  }
  for (const d of plan.deployments) {
    const env = Object.entries(d.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    out.push(
      `old operator: Deployment ${d.namespace}/${d.name}, replicas ${d.replicas}${env ? ` (${env})` : ""}`,
    );
  }
  if (plan.running.length > 0) {
    out.push(
      `  still running: scale it to 0 first (kubectl -n ${plan.running[0]?.namespace} scale deployment ${plan.running[0]?.name} --replicas=0), or pass --force`,
    );
  }
  out.push(
    `old Secret name: ${plan.oldSecretNames.length > 0 ? plan.oldSecretNames.join(", ") : "none found"}`,
  );
  const s = plan.settings;
  out.push(
    `region: ${s.region ? `${s.region.value} (${s.region.from})` : "none: the new operator's default"}`,
    `registry: ${s.registry ? `${s.registry.value} (${s.registry.from})` : "none: the new operator's default"}`,
    `credentials: ${s.credentials ? `Secret ${s.credentials.value} (${s.credentials.from})` : "none: the new operator's default source"}`,
  );
  if (!plan.oldCrd.present) out.push(`old CRD ${OLD_CRD_NAME}: not installed`);
  else if (plan.oldCrd.removeShortName) {
    out.push(
      `old CRD ${OLD_CRD_NAME}: remove its short name ${SHARED_SHORT_NAME}, so that kubectl get ${SHARED_SHORT_NAME} means ecrcreds.io only`,
    );
  }
  for (const n of plan.notes) out.push(`note: ${n}`);
  if (plan.resources.length === 0)
    out.push("", "no alchemy.com ECRPullSecrets: nothing to migrate");
  for (const r of plan.resources) {
    out.push("");
    out.push(
      r.action === "create"
        ? `ECRPullSecret ${r.name}: create ecrcreds.io/v1alpha1 ECRPullSecret ${r.name}`
        : `ECRPullSecret ${r.name}: ecrcreds.io/v1alpha1 ECRPullSecret ${r.name} exists; kept`,
    );
    out.push(indent(specText(r.spec), "    "));
    if (r.label) {
      out.push(
        `  label ${r.label.namespaces.length} namespaces ${r.label.key}=${r.label.value}${r.label.alreadyLabelled ? ` (${r.label.alreadyLabelled} already are)` : ""}`,
      );
    }
    for (const line of stepLines(r.steps)) out.push(`  ${line}`);
    const end = r.removeFinalizers.length
      ? `remove finalizer ${r.removeFinalizers.join(", ")} and delete`
      : "delete";
    out.push(`  then ${end} alchemy.com ECRPullSecret ${r.name}`);
    for (const n of r.notes) out.push(`  note: ${n}`);
  }
  for (const p of plan.problems) out.push(`problem: ${p}`);
  out.push("");
  const work = plan.resources.length > 0 || plan.oldCrd.removeShortName;
  out.push(
    apply
      ? work
        ? "applying"
        : "nothing to apply"
      : "nothing was written; run again with --apply to do this (--delete-old-crd also deletes the old CRD once it is empty)",
  );
  return `${out.join("\n")}\n`;
}
