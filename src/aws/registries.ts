// Which registries a resource's Secret holds and which token opens each: one
// token per (credentials, service, region), however many accounts share it —
// an ECR token opens every registry its principal can reach in the region.
import { createHash } from "node:crypto";
import type { CredentialsSpec, ECRPullSecretSpec, RolesAnywhereSpec } from "../api/index.js";
import { PUBLIC_REGISTRY_TOKEN_REGION } from "../api/registry-hosts.js";
import { parseDuration } from "../api/validate.js";
import { operatorError } from "../errors.js";
import type {
  AssumedRole,
  CredentialSource,
  CredentialSourceKind,
  RolesAnywhereRef,
  WebIdentityRef,
} from "./credentials.js";
import { parseRegistryHost, registryHost } from "./registry-host.js";
import { type TokenSource, tokenSourceKey } from "./token-cache.js";

export interface OperatorDefaults {
  /** Default region (--region / AWS_REGION). */
  region?: string;
  /** Default registry host (--registry / REGISTRY, the seed's setting). */
  registry?: string;
  /** Operator-level credentials Secret (AWS_CREDENTIALS_SECRET_NAME / _NAMESPACE). */
  credentialsSecret?: { namespace: string; name: string };
  /** Operator-level IAM Roles Anywhere source (--roles-anywhere-*); the Secret wins when both are set. */
  rolesAnywhere?: RolesAnywhereRef;
}

/** The operator's settings that its defaults are made of (flags or the seed's environment variables). */
export interface DefaultsSettings {
  region?: string;
  registry?: string;
  credentialsSecretName?: string;
  credentialsSecretNamespace?: string;
  // IAM Roles Anywhere as the operator-level source (issue 33).
  rolesAnywhereTrustAnchorArn?: string;
  rolesAnywhereProfileArn?: string;
  rolesAnywhereRoleArn?: string;
  rolesAnywhereCertificateSecretName?: string;
  rolesAnywhereCertificateSecretNamespace?: string;
  rolesAnywhereSessionDurationMs?: number;
}

/** The operator-level defaults from its settings. */
export function operatorDefaults(settings: DefaultsSettings): OperatorDefaults {
  const defaults: OperatorDefaults = {};
  if (settings.region) defaults.region = settings.region;
  if (settings.registry) defaults.registry = settings.registry;
  if (settings.credentialsSecretName && settings.credentialsSecretNamespace) {
    defaults.credentialsSecret = {
      namespace: settings.credentialsSecretNamespace,
      name: settings.credentialsSecretName,
    };
  }
  const s = settings;
  if (
    s.rolesAnywhereTrustAnchorArn &&
    s.rolesAnywhereProfileArn &&
    s.rolesAnywhereRoleArn &&
    s.rolesAnywhereCertificateSecretName &&
    s.rolesAnywhereCertificateSecretNamespace
  ) {
    defaults.rolesAnywhere = {
      trustAnchorArn: s.rolesAnywhereTrustAnchorArn,
      profileArn: s.rolesAnywhereProfileArn,
      roleArn: s.rolesAnywhereRoleArn,
      certificateSecret: {
        namespace: s.rolesAnywhereCertificateSecretNamespace,
        name: s.rolesAnywhereCertificateSecretName,
      },
    };
    if (s.rolesAnywhereSessionDurationMs !== undefined) {
      defaults.rolesAnywhere.sessionSeconds = Math.round(s.rolesAnywhereSessionDurationMs / 1000);
    }
  }
  return defaults;
}

export interface RegistryTarget {
  /** The auths key; undefined: the caller's own registry, learnt from the token. */
  host?: string;
  source: TokenSource;
}

/** A rolesAnywhere spec as a credentials source (sessionDuration in seconds). */
export function rolesAnywhereRef(spec: RolesAnywhereSpec): RolesAnywhereRef {
  const ref: RolesAnywhereRef = {
    trustAnchorArn: spec.trustAnchorArn,
    profileArn: spec.profileArn,
    roleArn: spec.roleArn,
    certificateSecret: {
      namespace: spec.certificateSecretRef.namespace,
      name: spec.certificateSecretRef.name,
    },
  };
  if (spec.sessionDuration) {
    ref.sessionSeconds = Math.round(parseDuration(spec.sessionDuration) / 1000);
  }
  return ref;
}

/** The source of one kind, if a credentials spec names it. */
type FromSpec<K extends CredentialSourceKind> = (
  c: CredentialsSpec,
) => Extract<CredentialSource, { kind: K }> | undefined;

/**
 * How a credentials spec names each base identity, in order of precedence
 * (the schema lets a spec name only one). Keyed by every kind but the SDK
 * chain, which a spec names by naming none: a new kind does not compile
 * until the spec says how it is named.
 */
const BASE_IDENTITY_FROM_SPEC: {
  [K in Exclude<CredentialSourceKind, "defaultChain">]: FromSpec<K>;
} = {
  secretKeys: (c) =>
    c.secretRef && {
      kind: "secretKeys",
      secretRef: { namespace: c.secretRef.namespace, name: c.secretRef.name },
    },
  rolesAnywhere: (c) =>
    c.rolesAnywhere && { kind: "rolesAnywhere", rolesAnywhere: rolesAnywhereRef(c.rolesAnywhere) },
  webIdentity: (c) => {
    const w = c.webIdentity;
    if (!w) return undefined;
    const webIdentity: WebIdentityRef = { roleArn: w.roleArn };
    if (w.serviceAccount) {
      webIdentity.serviceAccount = {
        namespace: w.serviceAccount.namespace,
        name: w.serviceAccount.name,
      };
    }
    if (w.audience) webIdentity.audience = w.audience;
    return { kind: "webIdentity", webIdentity };
  },
};

/** A credentials spec's base identity, if it names one. */
function baseIdentityOf(c: CredentialsSpec | undefined): CredentialSource | undefined {
  if (!c) return undefined;
  for (const fromSpec of Object.values(BASE_IDENTITY_FROM_SPEC)) {
    const source = fromSpec(c);
    if (source) return source;
  }
  return undefined;
}

/** The operator's default source: its credentials Secret, else its Roles Anywhere, else the SDK chain. */
export function defaultCredentialSource(defaults: OperatorDefaults): CredentialSource {
  if (defaults.credentialsSecret) {
    const { namespace, name } = defaults.credentialsSecret;
    return { kind: "secretKeys", secretRef: { namespace, name } };
  }
  if (defaults.rolesAnywhere)
    return { kind: "rolesAnywhere", rolesAnywhere: defaults.rolesAnywhere };
  return { kind: "defaultChain" };
}

/**
 * The one place a credentials source is made from a spec. The base identity
 * comes from the registry entry, else the resource, else the operator's
 * default; a registry entry's own role replaces the resource's, and without
 * one it uses the resource's.
 */
export function credentialSource(
  entry: CredentialsSpec | undefined,
  resource: CredentialsSpec | undefined,
  defaults: OperatorDefaults,
): CredentialSource {
  const source =
    baseIdentityOf(entry) ?? baseIdentityOf(resource) ?? defaultCredentialSource(defaults);
  const roleSpec = entry?.roleArn ? entry : resource;
  if (roleSpec?.roleArn) {
    const role: AssumedRole = { roleArn: roleSpec.roleArn };
    if (roleSpec.externalId) role.externalId = roleSpec.externalId;
    if (roleSpec.sessionTags?.length) {
      role.sessionTags = Object.fromEntries(roleSpec.sessionTags.map((t) => [t.key, t.value]));
    }
    source.role = role;
  }
  return source;
}

/** Strips a scheme and path from a registry setting such as the seed's REGISTRY. */
export function normalizeHost(value: string): string {
  return value
    .trim()
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/.*$/, "")
    .toLowerCase();
}

function targetForHost(host: string, credentials: CredentialSource): RegistryTarget {
  // One token per (credentials, region) opens every registry host of the
  // region, FIPS and dual-stack ones too; which API endpoint issues it (FIPS,
  // dual-stack) follows the SDK's own settings (AWS_USE_FIPS_ENDPOINT,
  // AWS_USE_DUALSTACK_ENDPOINT), as for the AWS CLI.
  const parsed = parseRegistryHost(host);
  if (parsed.kind === "public") {
    return {
      host,
      source: { credentials, service: "ecr-public", region: PUBLIC_REGISTRY_TOKEN_REGION },
    };
  }
  return { host, source: { credentials, service: "ecr", region: parsed.region } };
}

/** Resolves a resource's registries; throws InvalidSpec naming what to fix. */
export function resolveRegistries(
  spec: ECRPullSecretSpec,
  defaults: OperatorDefaults,
): RegistryTarget[] {
  const base = credentialSource(undefined, spec.credentials, defaults);
  const region = spec.region ?? defaults.region;
  const needRegion = (where: string): string => {
    if (!region) throw operatorError("InvalidSpec", "noRegion", { field: where });
    return region;
  };
  const entries = spec.registries ?? [];
  if (entries.length === 0) {
    if (defaults.registry) return [targetForHost(normalizeHost(defaults.registry), base)];
    return [
      { source: { credentials: base, service: "ecr", region: needRegion("the default registry") } },
    ];
  }
  const targets: RegistryTarget[] = [];
  const seen = new Set<string>();
  for (const [i, entry] of entries.entries()) {
    const credentials = credentialSource(entry.credentials, spec.credentials, defaults);
    const field = `spec.registries[${i}]`;
    let target: RegistryTarget;
    if (entry.host) {
      target = withField(field, () => targetForHost(normalizeHost(entry.host ?? ""), credentials));
    } else if (entry.accountId) {
      const r = entry.region ?? needRegion(field);
      const host = withField(field, () => registryHost(entry.accountId ?? "", r));
      target = { host, source: { credentials, service: "ecr", region: r } };
    } else {
      throw operatorError("InvalidSpec", "registryEntry", {
        field,
        cause: "set accountId or host",
      });
    }
    if (target.host && seen.has(target.host)) continue;
    if (target.host) seen.add(target.host);
    targets.push(target);
  }
  return targets;
}

/** Runs a host parser, naming the registry entry whose host it could not parse. */
function withField<T>(field: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    const cause = err instanceof Error ? err.message : String(err);
    throw operatorError("InvalidSpec", "registryEntry", { field, cause }, err);
  }
}

/** The distinct token sources of a set of targets. */
export function tokenSources(targets: readonly RegistryTarget[]): Map<string, TokenSource> {
  const sources = new Map<string, TokenSource>();
  for (const t of targets) sources.set(tokenSourceKey(t.source), t.source);
  return sources;
}

/** The registry host of a token's proxyEndpoint (https://host). */
export function hostOfProxyEndpoint(endpoint: string | undefined): string | undefined {
  return endpoint ? normalizeHost(endpoint) : undefined;
}

/** A short digest of a token source: names it in a Secret without naming any credential. */
export function sourceDigest(source: TokenSource): string {
  return createHash("sha256").update(tokenSourceKey(source)).digest("hex").slice(0, 16);
}

/** The ANNOTATION_TOKEN_SOURCES value: host=digest, sorted by host. */
export function tokenSourcesAnnotation(entries: Iterable<[host: string, TokenSource]>): string {
  return [...entries]
    .map(([host, source]) => `${host}=${sourceDigest(source)}`)
    .sort()
    .join(",");
}

/** Parses ANNOTATION_TOKEN_SOURCES back into host → digest. */
export function parseTokenSources(value: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of (value ?? "").split(",")) {
    const i = pair.lastIndexOf("=");
    if (i > 0) out.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return out;
}
