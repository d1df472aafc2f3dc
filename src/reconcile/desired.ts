// Desired state as pure functions: the Secret a resource wants in a
// namespace, whether an observed Secret already is that, and how a
// ServiceAccount's imagePullSecrets change to include (or drop) ours without
// touching anyone else's entries. No I/O here.
import { createHash } from "node:crypto";
import { MAX_TEMPLATE_ENTRIES, type SecretTemplate } from "../api/index.js";
import * as metadata from "../api/metadata.js";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_ADDED_SECRETS,
  ANNOTATION_EXPIRES_AT,
  ANNOTATION_FETCHED_AT,
  ANNOTATION_REGISTRIES,
  ANNOTATION_SECRET_TEMPLATE_KEYS,
  ANNOTATION_TOKEN_SOURCES,
  FIELD_MANAGER,
  KEY_PREFIX,
  LABEL_ARGOCD_SECRET_TYPE,
  LABEL_MANAGED_BY,
  LABEL_OWNER,
  OPERATOR_NAME,
  ROLE_ARN_ANNOTATIONS,
} from "../api/metadata.js";
import type { OutputFormat } from "./outputs.js";

export const DOCKER_CONFIG_JSON_TYPE = "kubernetes.io/dockerconfigjson";
export const DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson";

/** The slice of a Secret the operator reads. */
export interface SecretView {
  /** Always there, with a name and namespace: every view is read from the API server or its cache. */
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  type?: string;
  /** The data as read by a GET (or in the fake cluster); the caches keep only `dataDigests`. */
  data?: Record<string, string>;
  /**
   * The caches' stand-in for `data`: each key's base64 value as its
   * valueDigest. Anyone who may write Secrets in a namespace can make one
   * carrying our labels, so the cache keeps bytes per Secret, never payloads.
   */
  dataDigests?: Record<string, string>;
}

/** Longest label or annotation value a cached Secret keeps whole (UTF-16 units). */
export const MAX_CACHED_VALUE = 512;
/** How many secretTemplate entries the cache keeps: as many as a template may have (labels and annotations). */
const MAX_CACHED_TEMPLATE_KEYS = 2 * MAX_TEMPLATE_ENTRIES;

/** The digests of values the operator itself made, by value (bounded). */
const desiredDigests = new Map<string, string>();
/** One string per distinct digest (bounded), so a thousand equal Secrets share it. */
const interned = new Map<string, string>();

/** A value as the caches keep it when not whole: `sha256:<64 hex>`. */
export function valueDigest(value: string): string {
  const d = `sha256:${createHash("sha256").update(value).digest("hex")}`;
  const same = interned.get(d);
  if (same !== undefined) return same;
  if (interned.size >= 4096) interned.clear();
  interned.set(d, d);
  return d;
}

/**
 * valueDigest of a value the operator made (desired state), memoized by
 * value: a pass compares every namespace's Secret without hashing again.
 * Never for observed values: those are anyone's, of any size.
 */
function desiredDigest(value: string): string {
  let d = desiredDigests.get(value);
  if (d === undefined) {
    d = valueDigest(value);
    if (desiredDigests.size >= 1024) desiredDigests.clear();
    desiredDigests.set(value, d);
  }
  return d;
}

/** A label or annotation value as the cache keeps it: whole when short, else its digest. */
export function cachedValue(value: string): string {
  return value.length <= MAX_CACHED_VALUE ? value : valueDigest(value);
}

/** Whether an observed value (whole, or as the cache keeps it) is `want`. */
function sameValue(observed: string | undefined, want: string): boolean {
  if (observed === want) return true;
  return (
    observed !== undefined && want.length > MAX_CACHED_VALUE && observed === desiredDigest(want)
  );
}

/**
 * The slice of a Secret carrying our labels that the caches keep, whoever
 * wrote it: names, type, our own labels and annotations and those its
 * secretTemplate record names (bounded in number; long values as digests),
 * and the digest of each data value the operator writes. However a forged
 * Secret is made (a megabyte value, 50,000 keys, thousands of look-alike
 * annotations), it costs a few hundred bytes here.
 */
export function cachedSecret(secret: SecretView): SecretView {
  const m = secret.metadata;
  const recorded = m.annotations?.[ANNOTATION_SECRET_TEMPLATE_KEYS];
  const templateKeys = recorded
    ? recorded.split(",", MAX_CACHED_TEMPLATE_KEYS).map((e) => e.slice(e.indexOf(":") + 1))
    : [];
  const keep = (values: Record<string, string> | undefined) => {
    if (!values) return undefined;
    let out: Record<string, string> | undefined;
    const take = (k: string) => {
      const v = values[k];
      if (v === undefined) return;
      out ??= {};
      out[k] = cachedValue(v);
    };
    for (const k of OUR_KEYS) take(k);
    for (const k of templateKeys) if (!OUR_KEYS.has(k)) take(k);
    return out;
  };
  // Only the keys the operator writes are judged (secretDiffers), so only
  // theirs are kept: a Secret of 50,000 keys costs no more than one of one.
  let dataDigests: Record<string, string> | undefined;
  if (secret.data) {
    dataDigests = {};
    for (const k of WRITTEN_DATA_KEYS) {
      const v = secret.data[k];
      if (v !== undefined) dataDigests[k] = valueDigest(v);
    }
  }
  const labels = keep(m.labels);
  const annotations = keep(m.annotations);
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      resourceVersion: m.resourceVersion,
      ...(labels ? { labels } : {}),
      ...(annotations ? { annotations } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    type: secret.type,
    ...(dataDigests ? { dataDigests } : {}),
  };
}

/** Longest reference list (imagePullSecrets, secrets) a cached ServiceAccount keeps whole. */
export const MAX_CACHED_REFERENCES = 64;
/** Longest annotation of ours a cached ServiceAccount keeps; a longer one was not written by us. */
const MAX_CACHED_ANNOTATION = 16 * 1024;

/**
 * The trackers' stand-in for managedFields: the reconciler reads only whether
 * a ServiceAccount has any (serviceAccountPatch), so every tracked one shares it.
 */
const TRACKED = Object.freeze([Object.freeze({})]) as unknown as unknown[];

/**
 * The slice of a ServiceAccount the caches keep: our annotations and the
 * role annotations (each bounded), managedFields as a flag, and its
 * reference lists, whole up to MAX_CACHED_REFERENCES entries. A longer list
 * (anyone who may write ServiceAccounts can make one) keeps only the entries
 * our annotations say we added, and the view is marked `truncated`: a write
 * then reads the whole object from the API server first.
 */
export function cachedServiceAccount(sa: ServiceAccountView): ServiceAccountView {
  const m = sa.metadata;
  const annotations: Record<string, string> = {};
  for (const key of [
    ANNOTATION_ADDED_PULL_SECRETS,
    ANNOTATION_ADDED_SECRETS,
    ...ROLE_ARN_ANNOTATIONS,
  ]) {
    const value = m.annotations?.[key];
    if (value && value.length <= MAX_CACHED_ANNOTATION) annotations[key] = value;
  }
  const ours = (key: string) => new Set(parseAddedRefs(annotations[key]).map((r) => r.name));
  let truncated = false;
  const bounded = <T extends { name?: string }>(list: T[] | undefined, key: string) => {
    if (!list || list.length <= MAX_CACHED_REFERENCES) return list;
    truncated = true;
    const names = ours(key);
    return list.filter((e) => e.name !== undefined && names.has(e.name));
  };
  const imagePullSecrets = bounded(sa.imagePullSecrets, ANNOTATION_ADDED_PULL_SECRETS);
  const secrets = bounded(sa.secrets, ANNOTATION_ADDED_SECRETS);
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      resourceVersion: m.resourceVersion,
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      ...(m.managedFields?.length ? { managedFields: TRACKED } : {}),
    },
    imagePullSecrets,
    // Tekton's list; absent on most ServiceAccounts since Kubernetes 1.24.
    ...(secrets?.length ? { secrets } : {}),
    ...(truncated ? { truncated } : {}),
  };
}

/**
 * The label and annotation keys the operator itself writes on Secrets: its
 * managed-by and Argo CD labels and every key of its own (metadata.ts), a
 * fixed set, so a Secret with thousands of look-alike `ecrcreds.io/` keys
 * costs no more.
 */
const OUR_KEYS: ReadonlySet<string> = new Set([
  LABEL_MANAGED_BY,
  LABEL_ARGOCD_SECRET_TYPE,
  ...Object.values(metadata as Record<string, unknown>).filter(
    (v): v is string => typeof v === "string" && v.startsWith(KEY_PREFIX),
  ),
]);

/**
 * The data keys each output format writes (outputs.ts; outputs.test.ts holds
 * them in step with what the builders write). Keyed by every format, so a new
 * one does not compile until its keys are here: the cache keeps digests of
 * these keys only, and a key missing here would never be judged.
 */
export const DATA_KEYS_BY_FORMAT: Readonly<Record<OutputFormat, readonly string[]>> = {
  pull: [DOCKER_CONFIG_JSON_KEY],
  configJson: ["config.json"],
  argoCD: ["url", "type", "username", "password", "enableOCI", "name", "project"],
};

/** The data keys the operator writes, of every output format. */
export const WRITTEN_DATA_KEYS: ReadonlySet<string> = new Set(
  Object.values(DATA_KEYS_BY_FORMAT).flat(),
);

/** The slice of a ServiceAccount the operator reads. */
export interface ServiceAccountView {
  /** Always there, with a name and namespace: every view is read from the API server or its cache. */
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    /** Only whether it is empty is read (see serviceAccountPatch). */
    managedFields?: unknown[];
  };
  imagePullSecrets?: Array<{ name?: string }>;
  /** ObjectReferences; Tekton reads registry credentials from the Secrets listed here. */
  secrets?: ReferenceEntry[];
  /** The cache kept only our entries of a list too long to keep whole (cachedServiceAccount). */
  truncated?: boolean;
}

/**
 * The owner label's value for a resource. Label values stop at 63 characters
 * while resource names may have 253; long names get a hashed suffix.
 */
export function ownerLabelValue(resourceName: string): string {
  if (resourceName.length <= 63) return resourceName;
  const hash = createHash("sha256").update(resourceName).digest("hex").slice(0, 10);
  return `${resourceName.slice(0, 52).replace(/[^a-z0-9]+$/, "")}-${hash}`;
}

export interface DesiredSecretInput {
  owner: string;
  secretName: string;
  namespace: string;
  dockerConfigJson: string;
  expiresAt?: Date;
  fetchedAt?: Date;
  registries: readonly string[];
  /** ANNOTATION_TOKEN_SOURCES: which source each host's token came from. */
  tokenSources?: string;
  /** spec.secretTemplate: extra labels and annotations. */
  template?: SecretTemplate;
}

export interface DesiredSecret {
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  type: string;
  data: Record<string, string>;
}

export function desiredSecret(input: DesiredSecretInput): DesiredSecret {
  return desiredSecrets(input)(input.namespace);
}

/**
 * The desired Secret of every namespace of one pass: the labels, annotations
 * and encoded data are built once and shared (read-only) by all of them, so
 * a pass over a thousand namespaces does not encode the same content a
 * thousand times.
 */
export function desiredSecrets(
  input: Omit<DesiredSecretInput, "namespace">,
): (namespace: string) => DesiredSecret {
  const annotations: Record<string, string> = {
    [ANNOTATION_REGISTRIES]: [...input.registries].sort().join(","),
  };
  if (input.expiresAt) annotations[ANNOTATION_EXPIRES_AT] = input.expiresAt.toISOString();
  if (input.fetchedAt) annotations[ANNOTATION_FETCHED_AT] = input.fetchedAt.toISOString();
  if (input.tokenSources) annotations[ANNOTATION_TOKEN_SOURCES] = input.tokenSources;
  const { labels, annotations: withTemplate } = applyTemplate(
    { [LABEL_MANAGED_BY]: OPERATOR_NAME, [LABEL_OWNER]: ownerLabelValue(input.owner) },
    annotations,
    input.template,
  );
  const data = {
    [DOCKER_CONFIG_JSON_KEY]: Buffer.from(input.dockerConfigJson).toString("base64"),
  };
  return (namespace) => ({
    metadata: { name: input.secretName, namespace, labels, annotations: withTemplate },
    type: DOCKER_CONFIG_JSON_TYPE,
    data,
  });
}

/** Whether a Secret carries the labels of this operator and owner. */
export function isOwnedBy(secret: SecretView, owner: string): boolean {
  const labels = secret.metadata.labels ?? {};
  return (
    labels[LABEL_MANAGED_BY] === OPERATOR_NAME && labels[LABEL_OWNER] === ownerLabelValue(owner)
  );
}

export function isManaged(secret: SecretView): boolean {
  return secret.metadata.labels?.[LABEL_MANAGED_BY] === OPERATOR_NAME;
}

/**
 * Whether the observed Secret differs from the desired one in anything the
 * operator owns: its data key, its labels and annotations. Others' extra
 * labels, annotations and data keys are not ours to judge.
 */
export function secretDiffers(desired: DesiredSecret, observed: SecretView): boolean {
  // Runs for every target namespace on every pass: no per-call allocation.
  if (observed.type !== desired.type) return true;
  const { data, dataDigests } = observed;
  for (const k in desired.data) {
    const want = desired.data[k] ?? "";
    if (dataDigests ? dataDigests[k] !== desiredDigest(want) : data?.[k] !== want) return true;
  }
  const labels = observed.metadata.labels ?? {};
  for (const k in desired.metadata.labels)
    if (!sameValue(labels[k], desired.metadata.labels[k] ?? "")) return true;
  const annotations = observed.metadata.annotations ?? {};
  for (const k in desired.metadata.annotations)
    if (!sameValue(annotations[k], desired.metadata.annotations[k] ?? "")) return true;
  // A template key dropped since the last write is still on the Secret.
  const recorded = annotations[ANNOTATION_SECRET_TEMPLATE_KEYS];
  return (
    recorded !== undefined &&
    recorded !== desired.metadata.annotations[ANNOTATION_SECRET_TEMPLATE_KEYS]
  );
}

/** A merge patch that makes `observed` the desired Secret, guarded by its resourceVersion. */
export function secretPatch(
  desired: DesiredSecret,
  resourceVersion: string | undefined,
  observed?: SecretView,
): object {
  const dropped = observed ? droppedTemplateKeys(desired, observed) : undefined;
  const nulls = (keys: string[] | undefined) =>
    Object.fromEntries((keys ?? []).map((k) => [k, null]));
  return {
    metadata: {
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { ...nulls(dropped?.labels), ...desired.metadata.labels },
      annotations: { ...nulls(dropped?.annotations), ...desired.metadata.annotations },
    },
    data: desired.data,
  };
}

// --- secretTemplate ---------------------------------------------------------

/** The record of which template keys were applied: `label:k` and `annotation:k`, sorted. */
export function templateKeys(template: SecretTemplate | undefined): string | undefined {
  const keys = [
    ...Object.keys(template?.labels ?? {}).map((k) => `label:${k}`),
    ...Object.keys(template?.annotations ?? {}).map((k) => `annotation:${k}`),
  ].sort();
  return keys.length > 0 ? keys.join(",") : undefined;
}

/**
 * Labels and annotations with the template's added (the operator's own win:
 * the schema forbids their keys, this keeps a hand-edited CRD honest), and
 * the record of the template's keys so that a key dropped from the template
 * is later dropped from the Secrets. Without a template: the same maps.
 */
export function applyTemplate(
  labels: Record<string, string>,
  annotations: Record<string, string>,
  template: SecretTemplate | undefined,
): { labels: Record<string, string>; annotations: Record<string, string> } {
  const keys = templateKeys(template);
  if (keys === undefined) return { labels, annotations };
  return {
    labels: { ...template?.labels, ...labels },
    annotations: {
      ...template?.annotations,
      ...annotations,
      [ANNOTATION_SECRET_TEMPLATE_KEYS]: keys,
    },
  };
}

/**
 * Template keys an observed Secret carries from an earlier template and the
 * desired one no longer has: a merge patch sets them to null.
 */
export function droppedTemplateKeys(
  desired: DesiredSecret,
  observed: SecretView,
): { labels: string[]; annotations: string[] } {
  const recorded = observed.metadata.annotations?.[ANNOTATION_SECRET_TEMPLATE_KEYS];
  const out = { labels: [] as string[], annotations: [] as string[] };
  if (!recorded) return out;
  for (const entry of recorded.split(",")) {
    const colon = entry.indexOf(":");
    const kind = entry.slice(0, colon);
    const key = entry.slice(colon + 1);
    if (kind === "label" && !(key in desired.metadata.labels)) out.labels.push(key);
    if (kind === "annotation" && !(key in desired.metadata.annotations)) out.annotations.push(key);
  }
  if (!(ANNOTATION_SECRET_TEMPLATE_KEYS in desired.metadata.annotations)) {
    out.annotations.push(ANNOTATION_SECRET_TEMPLATE_KEYS);
  }
  return out;
}

// --- ServiceAccounts -------------------------------------------------------

/** One entry this operator added to a ServiceAccount: which resource, which Secret name. */
export interface AddedRef {
  owner: string;
  name: string;
}

export function parseAddedRefs(annotation: string | undefined): AddedRef[] {
  if (!annotation) return [];
  const refs: AddedRef[] = [];
  for (const part of annotation.split(",")) {
    const slash = part.indexOf("/");
    if (slash <= 0 || slash === part.length - 1) continue;
    refs.push({ owner: part.slice(0, slash).trim(), name: part.slice(slash + 1).trim() });
  }
  return refs;
}

export function formatAddedRefs(refs: readonly AddedRef[]): string | undefined {
  if (refs.length === 0) return undefined;
  return refs
    .map((r) => `${r.owner}/${r.name}`)
    .sort()
    .join(",");
}

export interface ServiceAccountChange {
  imagePullSecrets: Array<{ name: string }>;
  /** The new value of the added-pull-secrets annotation; null removes it. */
  addedRefs: string | null;
}

/** An entry of a ServiceAccount's reference list; others' entries are kept whole. */
export interface ReferenceEntry {
  name?: string;
  [field: string]: unknown;
}

export interface ReferenceListChange {
  entries: ReferenceEntry[];
  /** The new value of the list's added-by annotation; null removes it. */
  addedRefs: string | null;
}

/**
 * How one ServiceAccount's imagePullSecrets change for one resource.
 *
 * - `want`: the Secret name the resource wants referenced here, or undefined
 *   when it wants none (the namespace or ServiceAccount left its targets).
 * - `removeStale`: under deletionPolicy Delete, names the resource added and
 *   no longer wants are removed; under Retain they stay, and so does the
 *   record that it added them (a later Delete can still take them away).
 *
 * Entries added by anyone else are never removed, nor reordered; ours appears
 * once. Returns undefined when nothing changes, so applying a plan and
 * planning again yields nothing.
 */
export function planServiceAccount(
  sa: ServiceAccountView,
  owner: string,
  want: string | undefined,
  removeStale: boolean,
): ServiceAccountChange | undefined {
  const change = planReferenceList(
    sa.imagePullSecrets ?? [],
    sa.metadata.annotations?.[ANNOTATION_ADDED_PULL_SECRETS],
    owner,
    want,
    removeStale,
  );
  if (!change) return undefined;
  return {
    imagePullSecrets: change.entries.map((e) => ({ name: e.name ?? "" })),
    addedRefs: change.addedRefs,
  };
}

/**
 * planServiceAccount's rules over any list of references a ServiceAccount
 * holds (imagePullSecrets, or `secrets`, which Tekton reads), with the
 * annotation recording which entries the operator added there.
 */
export function planReferenceList(
  entries: readonly ReferenceEntry[],
  annotation: string | undefined,
  owner: string,
  want: string | undefined,
  removeStale: boolean,
): ReferenceListChange | undefined {
  const current = entries.filter((r) => r.name);
  const refs = parseAddedRefs(annotation);
  const ownerKey = ownerLabelValue(owner);

  const others = refs.filter((r) => r.owner !== ownerKey);
  const mine = refs.filter((r) => r.owner === ownerKey);
  const nextRefs = [...others];
  let list = current;

  for (const ref of mine) {
    if (ref.name === want) continue;
    if (!removeStale) {
      // Retain: the entry stays ours, only no longer wanted.
      if (list.some((e) => e.name === ref.name)) nextRefs.push(ref);
      continue;
    }
    // Another resource that added the same name still needs it there.
    const stillClaimed = others.some((o) => o.name === ref.name);
    if (!stillClaimed) list = list.filter((e) => e.name !== ref.name);
  }
  if (want !== undefined) {
    const present = list.some((e) => e.name === want);
    // Claim the entry only if we add it (or added it before): a same-named
    // entry someone else put there stays theirs, and is never removed by us.
    if (!present) {
      list = [...list, { name: want }];
      nextRefs.push({ owner: ownerKey, name: want });
    } else if (mine.some((r) => r.name === want)) {
      nextRefs.push({ owner: ownerKey, name: want });
      // Ours exactly once: a duplicate of an entry we own (a writer that
      // re-added it from a stale copy) goes, the first one keeps its place.
      let seen = false;
      list = list.filter((e) => {
        if (e.name !== want) return true;
        if (seen) return false;
        seen = true;
        return true;
      });
    }
  }

  const nextAnnotation = formatAddedRefs(dedupeRefs(nextRefs));
  const listChanged = list.length !== current.length || list.some((e, i) => e !== current[i]);
  const annotationChanged = (nextAnnotation ?? undefined) !== (annotation || undefined);
  if (!listChanged && !annotationChanged) return undefined;
  return { entries: list, addedRefs: nextAnnotation ?? null };
}

function dedupeRefs(refs: readonly AddedRef[]): AddedRef[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    const key = `${r.owner}/${r.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The merge patch for a ServiceAccount change, guarded by resourceVersion.
 *
 * `untracked`: the ServiceAccount has no managedFields. The API server then
 * records no field manager for an update at all, ours or a neighbour's
 * (apimachinery `managedfields/internal/skipnonapplied.go`: an Update on an
 * object whose managedFields are empty is not tracked); the "default"
 * ServiceAccount the controller-manager creates is such an object, since its
 * only fields are name and namespace. So a patch that adds our entry to an
 * untracked ServiceAccount also sends one managedFields entry claiming our
 * annotations under our field manager: the API server takes a request's
 * non-empty managedFields as the starting point (`decodeLiveOrNew` in
 * `fieldmanager.go`), and from this write on every writer is recorded, so
 * when a neighbour removes our entry its manager can be named.
 */
export function serviceAccountPatch(
  change: ServiceAccountChange | undefined,
  resourceVersion: string | undefined,
  secrets?: ReferenceListChange,
  untracked = false,
): object {
  const annotations: Record<string, string | null> = {};
  if (change) annotations[ANNOTATION_ADDED_PULL_SECRETS] = change.addedRefs;
  if (secrets) annotations[ANNOTATION_ADDED_SECRETS] = secrets.addedRefs;
  const claimed = Object.keys(annotations).filter((key) => annotations[key] !== null);
  const managedFields =
    untracked && claimed.length > 0 ? [ownAnnotationsEntry(claimed)] : undefined;
  return {
    metadata: {
      ...(resourceVersion ? { resourceVersion } : {}),
      annotations,
      ...(managedFields ? { managedFields } : {}),
    },
    ...(change ? { imagePullSecrets: change.imagePullSecrets } : {}),
    ...(secrets ? { secrets: secrets.entries } : {}),
  };
}

/** A managedFields entry (FieldsV1 format) saying our field manager owns these annotations. */
function ownAnnotationsEntry(keys: readonly string[]): object {
  const owned: Record<string, object> = {};
  for (const key of keys) owned[`f:${key}`] = {};
  return {
    manager: FIELD_MANAGER,
    operation: "Update",
    apiVersion: "v1",
    fieldsType: "FieldsV1",
    fieldsV1: { "f:metadata": { "f:annotations": owned } },
  };
}

/** How one ServiceAccount's `secrets` list changes for one resource (planServiceAccount's rules). */
export function planServiceAccountSecrets(
  sa: ServiceAccountView,
  owner: string,
  want: string | undefined,
  removeStale: boolean,
): ReferenceListChange | undefined {
  const annotation = sa.metadata.annotations?.[ANNOTATION_ADDED_SECRETS];
  return planReferenceList(sa.secrets ?? [], annotation, owner, want, removeStale);
}

/** spec.serviceAccounts when absent. */
const DEFAULT_SERVICE_ACCOUNTS: readonly string[] = ["default"];

/** Which ServiceAccounts of a namespace a resource targets. */
export function targetsServiceAccount(
  serviceAccounts: readonly string[] | undefined,
  name: string,
) {
  const list = serviceAccounts ?? DEFAULT_SERVICE_ACCOUNTS;
  return list.includes("*") || list.includes(name);
}
