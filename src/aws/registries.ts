// Which registries a resource's Secret holds and which token opens each: one
// token per (credentials, service, region), however many accounts share it —
// an ECR token opens every registry its principal can reach in the region.
import { createHash } from "node:crypto";
import type { CredentialsSpec, ECRPullSecretSpec, RolesAnywhereSpec } from "../api/index.js";
import { PUBLIC_REGISTRY_TOKEN_REGION } from "../api/registry-hosts.js";
import { parseDuration } from "../api/validate.js";
import { operatorError } from "../errors.js";
import type { CredentialsRef, RolesAnywhereRef } from "./credentials.js";
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

/** The operator-level defaults from its settings (flags or the seed's environment variables). */
export function operatorDefaults(settings: {
  region?: string;
  registry?: string;
  credentialsSecretName?: string;
  credentialsSecretNamespace?: string;
  rolesAnywhereTrustAnchorArn?: string;
  rolesAnywhereProfileArn?: string;
  rolesAnywhereRoleArn?: string;
  rolesAnywhereCertificateSecretName?: string;
  rolesAnywhereCertificateSecretNamespace?: string;
  rolesAnywhereSessionDurationMs?: number;
}): OperatorDefaults {
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

function credentialsFor(
  entry: CredentialsSpec | undefined,
  base: CredentialsSpec | undefined,
  defaults: OperatorDefaults,
): CredentialsRef {
  // The base identity (keys or web identity) comes from the entry, else the
  // resource, else the operator's default Secret.
  const hasBase = (c: CredentialsSpec | undefined) =>
    Boolean(c?.secretRef || c?.webIdentity || c?.rolesAnywhere);
  const baseSource = hasBase(entry) ? entry : hasBase(base) ? base : undefined;
  // A registry entry's own role replaces the resource's role; without one it
  // uses the resource's.
  const roleSource = entry?.roleArn ? entry : base;
  const ref: CredentialsRef = {};
  const secretRef = baseSource ? baseSource.secretRef : defaults.credentialsSecret;
  if (secretRef) ref.secretRef = { namespace: secretRef.namespace, name: secretRef.name };
  else if (baseSource?.rolesAnywhere)
    ref.rolesAnywhere = rolesAnywhereRef(baseSource.rolesAnywhere);
  else if (!baseSource && defaults.rolesAnywhere) ref.rolesAnywhere = defaults.rolesAnywhere;
  else if (baseSource?.webIdentity) {
    const w = baseSource.webIdentity;
    ref.webIdentity = { roleArn: w.roleArn };
    if (w.serviceAccount) {
      ref.webIdentity.serviceAccount = {
        namespace: w.serviceAccount.namespace,
        name: w.serviceAccount.name,
      };
    }
    if (w.audience) ref.webIdentity.audience = w.audience;
  }
  if (roleSource?.roleArn) {
    ref.roleArn = roleSource.roleArn;
    if (roleSource.externalId) ref.externalId = roleSource.externalId;
    if (roleSource.sessionTags?.length) {
      ref.sessionTags = Object.fromEntries(roleSource.sessionTags.map((t) => [t.key, t.value]));
    }
  }
  return ref;
}

/** Strips a scheme and path from a registry setting such as the seed's REGISTRY. */
export function normalizeHost(value: string): string {
  return value
    .trim()
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/.*$/, "")
    .toLowerCase();
}

function targetForHost(host: string, credentials: CredentialsRef): RegistryTarget {
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
  const base = credentialsFor(undefined, spec.credentials, defaults);
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
    const credentials = credentialsFor(entry.credentials, spec.credentials, defaults);
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
