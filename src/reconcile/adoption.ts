// Where the operator wrote a Secret, and what of an adopted Secret is its own,
// as pure functions. Labels say whose a Secret is, but anyone can copy them;
// the marks (metadata.ts: ANNOTATION_WRITTEN_IN, ANNOTATION_ADOPTED) name the
// one place the operator wrote, so a copy elsewhere is told apart. An adopted
// Secret holds others' data beside ours: the operator merges its auths
// entries in, keeps every other key and entry, and on cleanup gives the
// Secret back with only its own entries, labels and annotations removed.
// No I/O here; the bytes come from a GET (the caches keep digests only).
import { createHash } from "node:crypto";
import {
  ANNOTATION_ADOPTED,
  ANNOTATION_ADOPTED_AUTHS,
  ANNOTATION_ADOPTED_DATA_DIGEST,
  ANNOTATION_ADOPTED_DIGEST,
  ANNOTATION_SECRET_TEMPLATE_KEYS,
  ANNOTATION_WRITTEN_IN,
  KEY_PREFIX,
  LABEL_MANAGED_BY,
} from "../api/metadata.js";
import {
  type DesiredSecret,
  DOCKER_CONFIG_JSON_KEY,
  type SecretView,
  secretDiffers,
  secretPatch,
  valueDigest,
} from "./desired.js";

/** The mark's value for a place: `<namespace>/<name>`. */
export function placeOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * How the operator came to a Secret carrying its labels, judged by the marks
 * against where the Secret is:
 * - `created`: it created it here (cleanup may delete it);
 * - `adopted`: it adopted it here (cleanup releases it);
 * - `unmarked`: no mark: labelled by someone, or written before the marks
 *   existed (a write of ours marks it; cleanup leaves it alone);
 * - `copy`: the marks name another place: someone copied it; left alone.
 */
export type Origin = "created" | "adopted" | "unmarked" | "copy";

export function originOf(secret: SecretView): Origin {
  const m = secret.metadata;
  const here = placeOf(m?.namespace ?? "", m?.name ?? "");
  const adopted = m?.annotations?.[ANNOTATION_ADOPTED];
  const written = m?.annotations?.[ANNOTATION_WRITTEN_IN];
  if (adopted !== undefined) return adopted === here ? "adopted" : "copy";
  if (written !== undefined) return written === here ? "created" : "copy";
  return "unmarked";
}

/** The Secret to create, with the mark of the place it is created in. */
export function withCreatedMark(desired: DesiredSecret): DesiredSecret {
  const { namespace, name } = desired.metadata;
  return {
    ...desired,
    metadata: {
      ...desired.metadata,
      annotations: {
        ...desired.metadata.annotations,
        [ANNOTATION_WRITTEN_IN]: placeOf(namespace, name),
      },
    },
  };
}

/** secretPatch, also (re)writing the created mark of the place the Secret is in. */
export function createdPatch(
  desired: DesiredSecret,
  resourceVersion: string | undefined,
  observed: SecretView,
): object {
  const patch = secretPatch(desired, resourceVersion, observed) as {
    metadata: { annotations: Record<string, string | null> };
  };
  const { namespace, name } = desired.metadata;
  patch.metadata.annotations[ANNOTATION_WRITTEN_IN] = placeOf(namespace, name);
  return patch;
}

/** A short digest of our `.dockerconfigjson` value, as the adopted-digest annotation holds it. */
export function entriesDigest(desired: DesiredSecret): string {
  const value = desired.data[DOCKER_CONFIG_JSON_KEY] ?? "";
  return createHash("sha256").update(value).digest("hex").slice(0, 32);
}

/**
 * Whether an adopted Secret differs from what we want in it: our labels and
 * annotations, our entries as last merged in (by their digest: the data also
 * holds others' entries, and the caches keep no bytes), and the data as we
 * last wrote it (its digest against the one we recorded: anyone may edit the
 * annotations, so they alone prove nothing about the data).
 */
export function adoptedDiffers(desired: DesiredSecret, observed: SecretView): boolean {
  if (secretDiffers({ ...desired, data: {} }, observed)) return true;
  const annotations = observed.metadata?.annotations;
  if (annotations?.[ANNOTATION_ADOPTED_DIGEST] !== entriesDigest(desired)) return true;
  const value = observed.data?.[DOCKER_CONFIG_JSON_KEY];
  const digest =
    observed.dataDigests?.[DOCKER_CONFIG_JSON_KEY] ??
    (value !== undefined ? valueDigest(value) : undefined);
  return annotations?.[ANNOTATION_ADOPTED_DATA_DIGEST] !== digest;
}

interface DockerConfigDoc {
  auths: Record<string, unknown>;
  [key: string]: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A `.dockerconfigjson` value (base64) as a document; a reason (never its content) when it is none. */
function parseDoc(base64: string | undefined): DockerConfigDoc | string {
  if (base64 === undefined || base64 === "") return { auths: {} };
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(base64, "base64").toString("utf8"));
  } catch {
    return "it is not valid JSON";
  }
  if (!isRecord(doc)) return "it is not a JSON object";
  if (doc.auths === undefined) return { ...doc, auths: {} };
  if (!isRecord(doc.auths)) return 'its "auths" is not an object';
  return doc as DockerConfigDoc;
}

const encode = (doc: unknown) => Buffer.from(JSON.stringify(doc), "utf8").toString("base64");

/** The auths keys recorded as ours on an adopted Secret. */
export function adoptedAuths(observed: SecretView): string[] {
  const v = observed.metadata?.annotations?.[ANNOTATION_ADOPTED_AUTHS];
  return v ? v.split(",").filter((h) => h !== "") : [];
}

/**
 * The merge patch that adopts (or refreshes an adopted) Secret: our labels
 * and annotations, the adopted marks, and a `.dockerconfigjson` whose auths
 * are the Secret's own entries (minus those we put in before) with ours over
 * them; every other top-level field and data key stays. `observed` is the
 * Secret as a GET returned it (its bytes). A reason instead when its
 * `.dockerconfigjson` is not a document that can be merged without loss.
 */
export function adoptPatch(
  desired: DesiredSecret,
  observed: SecretView,
): { patch: object } | { reason: string } {
  const theirs = parseDoc(observed.data?.[DOCKER_CONFIG_JSON_KEY]);
  if (typeof theirs === "string") return { reason: theirs };
  const ours = parseDoc(desired.data[DOCKER_CONFIG_JSON_KEY]);
  if (typeof ours === "string") return { reason: `ours: ${ours}` };
  const before = new Set(adoptedAuths(observed));
  const auths: Record<string, unknown> = {};
  for (const [host, entry] of Object.entries(theirs.auths))
    if (!before.has(host) && !(host in ours.auths)) auths[host] = entry;
  Object.assign(auths, ours.auths);
  const { namespace, name } = desired.metadata;
  const patch = secretPatch(desired, observed.metadata?.resourceVersion, observed) as {
    metadata: { annotations: Record<string, string | null> };
    data: Record<string, string>;
  };
  const merged = encode({ ...theirs, auths });
  Object.assign(patch.metadata.annotations, {
    [ANNOTATION_ADOPTED]: placeOf(namespace, name),
    [ANNOTATION_ADOPTED_AUTHS]: Object.keys(ours.auths).sort().join(","),
    [ANNOTATION_ADOPTED_DIGEST]: entriesDigest(desired),
    [ANNOTATION_ADOPTED_DATA_DIGEST]: valueDigest(merged),
  });
  patch.data = { [DOCKER_CONFIG_JSON_KEY]: merged };
  return { patch };
}

/**
 * The merge patch that releases an adopted Secret: the auths entries we put
 * in go, and so do our labels, our annotations and the secretTemplate keys we
 * applied; everything else stays. `observed` is the Secret as a GET returned it.
 */
export function releasePatch(observed: SecretView): object {
  const m = observed.metadata ?? {};
  const nullsFor = (values: Record<string, string> | undefined) =>
    Object.fromEntries(
      Object.keys(values ?? {})
        .filter((k) => k === LABEL_MANAGED_BY || k.startsWith(KEY_PREFIX))
        .map((k) => [k, null]),
    );
  const labels: Record<string, null> = nullsFor(m.labels);
  const annotations: Record<string, null> = nullsFor(m.annotations);
  for (const entry of (m.annotations?.[ANNOTATION_SECRET_TEMPLATE_KEYS] ?? "").split(",")) {
    const colon = entry.indexOf(":");
    if (colon < 0) continue;
    const key = entry.slice(colon + 1);
    if (entry.startsWith("label:")) labels[key] = null;
    else annotations[key] = null;
  }
  const patch: { metadata: object; data?: Record<string, string> } = {
    metadata: { resourceVersion: m.resourceVersion, labels, annotations },
  };
  const doc = parseDoc(observed.data?.[DOCKER_CONFIG_JSON_KEY]);
  if (typeof doc !== "string") {
    const ours = new Set(adoptedAuths(observed));
    const auths = Object.fromEntries(Object.entries(doc.auths).filter(([h]) => !ours.has(h)));
    patch.data = { [DOCKER_CONFIG_JSON_KEY]: encode({ ...doc, auths }) };
  }
  return patch;
}
