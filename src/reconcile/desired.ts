// Desired state as pure functions: the Secret a resource wants in a
// namespace, whether an observed Secret already is that, and how a
// ServiceAccount's imagePullSecrets change to include (or drop) ours without
// touching anyone else's entries. No I/O here.
import { createHash } from "node:crypto";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_EXPIRES_AT,
  ANNOTATION_FETCHED_AT,
  ANNOTATION_REGISTRIES,
  ANNOTATION_TOKEN_SOURCES,
  LABEL_MANAGED_BY,
  LABEL_OWNER,
  OPERATOR_NAME,
} from "../api/metadata.js";

export const DOCKER_CONFIG_JSON_TYPE = "kubernetes.io/dockerconfigjson";
export const DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson";

/** The slice of a Secret the operator reads. */
export interface SecretView {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  type?: string;
  data?: Record<string, string>;
}

/** The slice of a ServiceAccount the operator reads. */
export interface ServiceAccountView {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  imagePullSecrets?: Array<{ name?: string }>;
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
  const labels = {
    [LABEL_MANAGED_BY]: OPERATOR_NAME,
    [LABEL_OWNER]: ownerLabelValue(input.owner),
  };
  const data = {
    [DOCKER_CONFIG_JSON_KEY]: Buffer.from(input.dockerConfigJson).toString("base64"),
  };
  return (namespace) => ({
    metadata: { name: input.secretName, namespace, labels, annotations },
    type: DOCKER_CONFIG_JSON_TYPE,
    data,
  });
}

/** Whether a Secret carries the labels of this operator and owner. */
export function isOwnedBy(secret: SecretView, owner: string): boolean {
  const labels = secret.metadata?.labels ?? {};
  return (
    labels[LABEL_MANAGED_BY] === OPERATOR_NAME && labels[LABEL_OWNER] === ownerLabelValue(owner)
  );
}

export function isManaged(secret: SecretView): boolean {
  return secret.metadata?.labels?.[LABEL_MANAGED_BY] === OPERATOR_NAME;
}

/**
 * Whether the observed Secret differs from the desired one in anything the
 * operator owns: its data key, its labels and annotations. Others' extra
 * labels, annotations and data keys are not ours to judge.
 */
export function secretDiffers(desired: DesiredSecret, observed: SecretView): boolean {
  if (observed.type !== desired.type) return true;
  for (const [k, v] of Object.entries(desired.data)) if (observed.data?.[k] !== v) return true;
  const labels = observed.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(desired.metadata.labels)) if (labels[k] !== v) return true;
  const annotations = observed.metadata?.annotations ?? {};
  for (const [k, v] of Object.entries(desired.metadata.annotations))
    if (annotations[k] !== v) return true;
  return false;
}

/** A merge patch that makes `observed` the desired Secret, guarded by its resourceVersion. */
export function secretPatch(desired: DesiredSecret, resourceVersion: string | undefined): object {
  return {
    metadata: {
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: desired.metadata.labels,
      annotations: desired.metadata.annotations,
    },
    data: desired.data,
  };
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
  const current = (sa.imagePullSecrets ?? []).flatMap((r) => (r.name ? [{ name: r.name }] : []));
  const annotation = sa.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS];
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
  const listChanged =
    list.length !== current.length || list.some((e, i) => e.name !== current[i]?.name);
  const annotationChanged = (nextAnnotation ?? undefined) !== (annotation || undefined);
  if (!listChanged && !annotationChanged) return undefined;
  return { imagePullSecrets: list, addedRefs: nextAnnotation ?? null };
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

/** The merge patch for a ServiceAccount change, guarded by resourceVersion. */
export function serviceAccountPatch(
  change: ServiceAccountChange,
  resourceVersion: string | undefined,
): object {
  return {
    metadata: {
      ...(resourceVersion ? { resourceVersion } : {}),
      annotations: { [ANNOTATION_ADDED_PULL_SECRETS]: change.addedRefs },
    },
    imagePullSecrets: change.imagePullSecrets,
  };
}

/** Which ServiceAccounts of a namespace a resource targets. */
export function targetsServiceAccount(
  serviceAccounts: readonly string[] | undefined,
  name: string,
) {
  const list = serviceAccounts ?? ["default"];
  return list.includes("*") || list.includes(name);
}
