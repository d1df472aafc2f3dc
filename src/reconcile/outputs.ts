// The other consumers of the one token, as pure functions: the host spellings
// each registry gets an auths key under, the config.json Secret of a target
// namespace and the Argo CD repository Secrets (the secretTemplate, on every
// Secret, is in desired.ts). All are built from the content the pull Secret
// is built from, so a format costs no AWS call; and from the same bytes, so
// every namespace of one token holds identical auth entries (what the
// kubelet's credential tracking, KEP-2535, compares). No I/O here.

import type { ArgoCDSpec, ECRPullSecretSpec } from "../api/index.js";
import { ANNOTATION_REGISTRIES, LABEL_ARGOCD_SECRET_TYPE } from "../api/metadata.js";
import { parseRegistryHost, registryHost } from "../aws/registry-host.js";
import { assertNever } from "../kube/never.js";
import { type DesiredSecret, desiredSecrets, ownerLabelValue } from "./desired.js";

export const OPAQUE_TYPE = "Opaque";
/** The Docker client's config file, as DOCKER_CONFIG/config.json. */
export const CONFIG_JSON_KEY = "config.json";
/** Argo CD reads repository Secrets by this label (argocd-repo-creds.yaml, argocd-repositories.yaml). */
export const ARGOCD_SECRET_TYPE_LABEL = LABEL_ARGOCD_SECRET_TYPE;
export const DEFAULT_ARGOCD_NAMESPACE = "argocd";

export type HostVariant = "Standard" | "DualStack";

/**
 * The auths keys of one registry host: bare hosts (no scheme, no path), as
 * Docker with the containerd store and recent containerd match them exactly.
 * With `variants`, a private registry gets each spelling asked for (FIPS
 * kept); ECR Public and China regions (no dual-stack endpoint) keep their own.
 */
export function hostSpellings(host: string, variants?: readonly HostVariant[]): string[] {
  if (variants === undefined || variants.length === 0) return [host];
  let parsed: ReturnType<typeof parseRegistryHost>;
  try {
    parsed = parseRegistryHost(host);
  } catch {
    return [host];
  }
  if (parsed.kind === "public") return [host];
  const out: string[] = [];
  for (const variant of ["Standard", "DualStack"] as const) {
    if (!variants.includes(variant)) continue;
    if (variant === "DualStack" && parsed.partition === "aws-cn") continue;
    const spelled = registryHost(parsed.accountId, parsed.region, {
      fips: parsed.fips,
      dualStack: variant === "DualStack",
    });
    if (!out.includes(spelled)) out.push(spelled);
  }
  return out.length > 0 ? out : [host];
}

/** Auths entries with every host under each spelling asked for, sharing its credentials. */
export function withHostVariants<T extends { host: string }>(
  entries: readonly T[],
  variants?: readonly HostVariant[],
): T[] {
  const out: T[] = [];
  for (const entry of entries) {
    for (const host of hostSpellings(entry.host, variants)) {
      if (!out.some((e) => e.host === host)) out.push({ ...entry, host });
    }
  }
  return out;
}

// --- config.json -----------------------------------------------------------------

/**
 * The config.json Secret of every target namespace: Opaque, one key holding
 * the very bytes of the pull Secret's `.dockerconfigjson` (a config.json with
 * only `auths` is exactly that document). `base` is the pull Secret's
 * builder; its shared labels, annotations and encoded data are reused.
 */
export function desiredConfigJsonSecrets(
  base: (namespace: string) => DesiredSecret,
  name: string,
): (namespace: string) => DesiredSecret {
  let data: Record<string, string> | undefined;
  return (namespace) => {
    const pull = base(namespace);
    data ??= { [CONFIG_JSON_KEY]: Object.values(pull.data)[0] ?? "" };
    return { metadata: { ...pull.metadata, name }, type: OPAQUE_TYPE, data };
  };
}

// --- Argo CD ---------------------------------------------------------------------

export interface ArgoCDInput {
  owner: string;
  /** The owner label value (ownerLabelValue(owner)). */
  ownerKey: string;
  spec: ArgoCDSpec;
  /** One entry per auths key, in auths order. */
  auths: readonly { host: string; username: string; password: string }[];
  /** The pull Secrets' labels and annotations (template applied). */
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Argo CD's `url` for a registry host: bare for type helm (enableOCI), oci:// for type oci. */
export function argoCDUrl(host: string, type: "helm" | "oci"): string {
  return type === "oci" ? `oci://${host}` : host;
}

/**
 * The name of the Argo CD Secret of one registry host and repository type:
 * `<owner>-<type>-<host>`, readable in `kubectl get secrets -n argocd`. An ECR
 * host is already a DNS subdomain; anything else in a host (a port's colon)
 * becomes a dash.
 */
export function argoCDSecretName(ownerKey: string, type: "helm" | "oci", host: string): string {
  const spelled = host.toLowerCase().replace(/[^a-z0-9.-]+/g, "-");
  return `${ownerKey}-${type}-${spelled}`.slice(0, 253).replace(/[^a-z0-9]+$/, "");
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

/**
 * One Secret per registry host and repository type in Argo CD's namespace,
 * labelled repo-creds (a credential template: Argo CD uses it for every
 * repository URL it prefixes) or repository, with Argo CD's own keys.
 */
export function desiredArgoCDSecrets(input: ArgoCDInput): DesiredSecret[] {
  const namespace = input.spec.namespace ?? DEFAULT_ARGOCD_NAMESPACE;
  const secretType = input.spec.secretType ?? "repo-creds";
  const types = input.spec.repositoryTypes ?? ["helm"];
  const labels = { ...input.labels, [ARGOCD_SECRET_TYPE_LABEL]: secretType };
  const out: DesiredSecret[] = [];
  for (const type of (["helm", "oci"] as const).filter((t) => types.includes(t))) {
    for (const { host, username, password } of input.auths) {
      const data: Record<string, string> = {
        url: b64(argoCDUrl(host, type)),
        type: b64(type),
        username: b64(username),
        password: b64(password),
      };
      if (type === "helm") data.enableOCI = b64("true");
      // The name Argo CD shows for a repository; credential templates have none.
      if (secretType === "repository") data.name = b64(`ecr-${type}-${host}`);
      if (input.spec.project) data.project = b64(input.spec.project);
      out.push({
        metadata: {
          name: argoCDSecretName(input.ownerKey, type, host),
          namespace,
          labels,
          annotations: { ...input.annotations, [ANNOTATION_REGISTRIES]: host },
        },
        type: OPAQUE_TYPE,
        data,
      });
    }
  }
  return out;
}

// --- Every Secret of a pass ---------------------------------------------------------

/**
 * Every output format, in the order a pass writes them: the pull Secret
 * (`spec.secretName`) and the config.json Secret in each target namespace,
 * then Argo CD's Secrets in Argo CD's namespace. The writes, the "in sync"
 * judgement and cleanup go through this list (desiredPassSecrets), and each
 * table keyed by it below is exhaustive: a new format makes tsc name every
 * place that must know it (its Secrets in formatSecrets, its spec field, the
 * data keys the Secret cache keeps in desired.ts).
 */
export const OUTPUT_FORMATS = ["pull", "configJson", "argoCD"] as const;

export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The field of the spec that asks for each format (in messages: what to change). */
export const OUTPUT_SPEC_FIELDS: Readonly<Record<OutputFormat, string>> = {
  pull: "spec.secretName",
  configJson: "spec.dockerConfigSecret.name",
  argoCD: "spec.argoCD",
};

/**
 * The spec field that asks for a Secret of the pass: its format's field, or
 * `spec.serviceAccountRoles` for a role's Secret (not one of the formats).
 */
export function specFieldOf(
  outputs: PassSecrets | undefined,
  desired: { metadata: { namespace: string; name: string } },
): string {
  const format = outputs?.formatOf(desired.metadata.namespace, desired.metadata.name);
  return format ? OUTPUT_SPEC_FIELDS[format] : "spec.serviceAccountRoles";
}

/** The Secrets one format wants this pass. */
export type FormatSecrets =
  | {
      format: OutputFormat;
      /** One Secret of this name in every target namespace. */
      placement: "targetNamespaces";
      name: string;
      build: (namespace: string) => DesiredSecret;
    }
  | {
      format: OutputFormat;
      /** Secrets at places of their own, whatever the targets (Argo CD's namespace). */
      placement: "ownNamespaces";
      secrets: readonly DesiredSecret[];
    };

/** What the outputs are built from: the pass's content (src/reconcile/content.ts). */
export interface OutputContent {
  dockerConfigJson: string;
  registries: readonly string[];
  auths: readonly { host: string; username: string; password: string }[];
  tokenSources?: string;
  expiresAt?: Date;
  fetchedAt?: Date;
}

export interface PassSecrets {
  /** Each format the spec asks for, in OUTPUT_FORMATS order. */
  formats: readonly FormatSecrets[];
  /** The Secrets of one target namespace: the pull Secret first, then the other per-namespace formats. */
  inNamespace(namespace: string): DesiredSecret[];
  /**
   * The same Secrets with an empty namespace: what every target namespace
   * gets apart from `metadata.namespace`, built once per pass so that judging
   * thousands of namespaces allocates nothing per namespace.
   */
  perNamespace: readonly DesiredSecret[];
  /** The Secrets at places of their own (Argo CD's), whatever the targets: written once per pass. */
  elsewhere: readonly DesiredSecret[];
  /** Whether a Secret is an output of the pass over these target namespaces: what cleanup keeps. */
  keeps(namespace: string, name: string, targets: ReadonlySet<string>): boolean;
  /**
   * Which format a Secret of this pass is (its spec field is
   * OUTPUT_SPEC_FIELDS[format], for messages); undefined: none of the pass's.
   * A per-namespace format is found by name alone, in any namespace.
   */
  formatOf(namespace: string, name: string): OutputFormat | undefined;
}

/** What every format is built from in one pass: the pull Secret's builder is the others' base. */
interface FormatInput {
  owner: string;
  spec: ECRPullSecretSpec;
  content: OutputContent;
  pull: (namespace: string) => DesiredSecret;
}

/** The Secrets one format wants this pass; undefined: the spec does not ask for it. */
function formatSecrets(format: OutputFormat, input: FormatInput): FormatSecrets | undefined {
  const { owner, spec, content, pull } = input;
  switch (format) {
    case "pull":
      return { format, placement: "targetNamespaces", name: spec.secretName, build: pull };
    case "configJson": {
      const name = spec.dockerConfigSecret?.name;
      if (!name) return undefined;
      const build = desiredConfigJsonSecrets(pull, name);
      return { format, placement: "targetNamespaces", name, build };
    }
    case "argoCD": {
      if (!spec.argoCD) return undefined;
      const { labels, annotations } = pull("").metadata;
      const secrets = desiredArgoCDSecrets({
        owner,
        ownerKey: ownerLabelValue(owner),
        spec: spec.argoCD,
        auths: content.auths,
        labels,
        annotations,
      });
      return { format, placement: "ownNamespaces", secrets };
    }
    default:
      return assertNever(format, "output format");
  }
}

/** Every Secret a resource wants this pass, all from the one content. */
export function desiredPassSecrets(
  owner: string,
  spec: ECRPullSecretSpec,
  content: OutputContent,
): PassSecrets {
  const pull = desiredSecrets({
    ...content,
    owner,
    secretName: spec.secretName,
    template: spec.secretTemplate,
  });
  const formats = OUTPUT_FORMATS.flatMap((format) => {
    const secrets = formatSecrets(format, { owner, spec, content, pull });
    return secrets ? [secrets] : [];
  });
  const perTarget = formats.flatMap((f) => (f.placement === "targetNamespaces" ? [f] : []));
  const elsewhere = formats.flatMap((f) => (f.placement === "ownNamespaces" ? f.secrets : []));
  const inNamespace = (namespace: string) => perTarget.map((f) => f.build(namespace));
  return {
    formats,
    inNamespace,
    perNamespace: inNamespace(""),
    elsewhere,
    keeps(namespace, name, targets) {
      if (targets.has(namespace) && perTarget.some((f) => f.name === name)) return true;
      return elsewhere.some((s) => s.metadata.namespace === namespace && s.metadata.name === name);
    },
    formatOf(namespace, name) {
      const at = (s: DesiredSecret) =>
        s.metadata.namespace === namespace && s.metadata.name === name;
      return formats.find((f) =>
        f.placement === "targetNamespaces" ? f.name === name : f.secrets.some(at),
      )?.format;
    },
  };
}
