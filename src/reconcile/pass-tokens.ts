// The tokens of a pass, of four kinds: the resource's own (one per source;
// after a restart or a failover, taken up first from the operator's token
// records, never read back from a tenant's Secret); carried (a registry whose
// source has no token keeps the entry last recorded for it); per-role (one
// per role and region, spec.serviceAccountRoles); or none (roles with
// `unannotated: None` leave the resource no Secret, and so no credentials, of
// its own).
import { type ECRPullSecret, parseDuration } from "../api/index.js";
import {
  type OperatorDefaults,
  type RegistryTarget,
  resolveRegistries,
  tokenSources,
} from "../aws/registries.js";
import { type TokenCache, type TokenState, tokenSourceKey } from "../aws/token-cache.js";
import { operatorError } from "../errors.js";
import type { Cached } from "../kube/types.js";
import type { Cluster } from "./cluster.js";
import { type SecretContent, secretContent } from "./content.js";
import { desiredPassSecrets, type PassSecrets } from "./outputs.js";
import { type RoleAdmitter, type RolePass, rolePass, wantsOwnSecret } from "./role-secrets.js";
import type { TokenRecords } from "./token-records.js";

/** The token cache as a pass uses it. */
export type Tokens = Pick<TokenCache, "get" | "release" | "peek" | "seed">;

/** What a resource's spec resolves to: its registries and its refresh point. */
export interface ResolvedSpec {
  targets: RegistryTarget[];
  /** spec.refreshBefore in milliseconds; absent: the token cache's default lead. */
  refreshBeforeMs?: number;
}

/** Resolves the spec's registries and refresh point; throws InvalidSpec for what the schema let through. */
export function resolveSpec(resource: ECRPullSecret, defaults: OperatorDefaults): ResolvedSpec {
  const targets = resolveRegistries(resource.spec, defaults);
  const refreshBefore = resource.spec.refreshBefore;
  return { targets, ...(refreshBefore ? { refreshBeforeMs: parseDuration(refreshBefore) } : {}) };
}

/** The resource's own tokens, one per source. */
export interface OwnTokens {
  /** Whether the resource has a Secret (and credentials) of its own. */
  used: boolean;
  /** Token cache keys of the resource's own sources. */
  sourceKeys: string[];
  tokens: TokenState[];
  /** The first source without a token, if any. */
  missing: TokenState | undefined;
}

/**
 * The resource's own token sources and their states (each new token
 * recorded); none when per-ServiceAccount roles with `unannotated: None`
 * leave the resource no Secret of its own.
 */
export async function ownTokens(
  tokens: Tokens,
  records: TokenRecords | undefined,
  resource: Cached<ECRPullSecret>,
  resolved: ResolvedSpec,
): Promise<OwnTokens> {
  const used = wantsOwnSecret(resource.spec);
  if (!used) return { used, sourceKeys: [], tokens: [], missing: undefined };
  const name = resource.metadata.name;
  const sources = tokenSources(resolved.targets);
  const states = await Promise.all(
    [...sources.values()].map(async (source) => {
      const recorded = records && !tokens.peek(source)?.token && records.get(source);
      if (recorded) tokens.seed(source, recorded);
      const state = await tokens.get(name, source, resolved.refreshBeforeMs);
      if (records && state.token && !state.token.reused) await records.put(source, state.token);
      return state;
    }),
  );
  return {
    used,
    sourceKeys: [...sources.keys()],
    tokens: states,
    missing: states.find((s) => !s.token),
  };
}

/**
 * What the Secrets keep for registries whose source has no token, by host:
 * the last token the operator recorded for that source (expired or not),
 * never what a Secret in a tenant's namespace holds.
 */
function carriedEntries(
  records: TokenRecords | undefined,
  targets: readonly RegistryTarget[],
  states: ReadonlyMap<string, TokenState>,
): Map<string, { username: string; password: string }> {
  const out = new Map<string, { username: string; password: string }>();
  for (const t of targets) {
    if (!t.host || states.get(tokenSourceKey(t.source))?.token) continue;
    const held = records?.get(t.source, { expired: true });
    if (held) out.set(t.host, { username: held.username, password: held.password });
  }
  return out;
}

/** The resource's own Secrets of a pass, and what they are made of. */
export interface OwnContent {
  /** Token state by token cache key. */
  states: Map<string, TokenState>;
  /** The one content of every namespace and format; absent when the resource has no Secret of its own. */
  content: SecretContent | undefined;
  outputs: PassSecrets | undefined;
}

/**
 * The one Secret content of the resource's own tokens, for every namespace
 * and format; a registry whose source has no token keeps the entry last
 * recorded for it.
 */
export function ownContent(
  records: TokenRecords | undefined,
  resource: Cached<ECRPullSecret>,
  resolved: ResolvedSpec,
  own: OwnTokens,
): OwnContent {
  const states = new Map(own.tokens.map((s) => [s.key, s]));
  if (!own.used) return { states, content: undefined, outputs: undefined };
  const carried = own.missing ? carriedEntries(records, resolved.targets, states) : undefined;
  const content = secretContent(resolved.targets, states, resource.spec.hostVariants, carried);
  const outputs = desiredPassSecrets(resource.metadata.name, resource.spec, content);
  return { states, content, outputs };
}

/** What the per-ServiceAccount part of a pass needs besides the resource. */
export interface RoleTokensInput {
  tokens: Tokens;
  cluster: Cluster;
  defaults: OperatorDefaults;
  /** Absent in an install without a Kubernetes client for TokenRequests: CredentialsInvalid. */
  admissions: RoleAdmitter | undefined;
}

/**
 * The per-ServiceAccount part of a pass (spec.serviceAccountRoles): the
 * roles' Secrets for the wanted namespaces, and their tokens.
 */
export async function roleTokens(
  input: RoleTokensInput,
  resource: Cached<ECRPullSecret>,
  resolved: ResolvedSpec,
  wanted: readonly string[],
): Promise<RolePass> {
  const name = resource.metadata.name;
  const { admissions, tokens } = input;
  if (!admissions) {
    throw operatorError("CredentialsInvalid", "noKubeClient", {
      source: "the ServiceAccounts of spec.serviceAccountRoles",
    });
  }
  return await rolePass({
    resource,
    wanted,
    defaults: input.defaults,
    ...(resolved.refreshBeforeMs !== undefined
      ? { refreshBeforeMs: resolved.refreshBeforeMs }
      : {}),
    cluster: input.cluster,
    admissions,
    getToken: (source, refreshBeforeMs) => tokens.get(name, source, refreshBeforeMs),
  });
}

/** The registries of the role Secrets, for status when the resource has no Secret of its own. */
export function roleRegistries(perRole: RolePass | undefined): string[] {
  const hosts = new Set<string>();
  for (const secrets of perRole?.secrets.values() ?? []) {
    for (const secret of secrets.values()) for (const h of secret.registries) hosts.add(h);
  }
  return [...hosts].sort();
}
