// A restarted operator has an empty token cache, but its Secrets still hold
// valid tokens: reuse them (expiry and fetch time are annotations) instead of
// fetching anew and rewriting every Secret.
import {
  ANNOTATION_EXPIRES_AT,
  ANNOTATION_FETCHED_AT,
  ANNOTATION_REGISTRIES,
  ANNOTATION_TOKEN_SOURCES,
} from "../api/metadata.js";
import { parseTokenSources, type RegistryTarget, sourceDigest } from "../aws/registries.js";
import type { TokenCache } from "../aws/token-cache.js";
import { DOCKER_CONFIG_JSON_KEY, isOwnedBy, type SecretView } from "./desired.js";
import { parseDockerConfigJson } from "./dockerconfig.js";

/** Seeds the token cache from the resource's own Secret for the targets that have no token yet. */
export function reuseTokensFromSecrets(
  tokens: Pick<TokenCache, "peek" | "seed">,
  /** The managed Secrets; listed only when some target has no token. */
  secrets: () => readonly SecretView[],
  owner: string,
  secretName: string,
  targets: readonly RegistryTarget[],
): void {
  const needed = targets.filter((t) => !tokens.peek(t.source)?.token);
  if (needed.length === 0) return;
  const secret = secrets().find((s) => s.metadata?.name === secretName && isOwnedBy(s, owner));
  const annotations = secret?.metadata?.annotations ?? {};
  const expiresAt = Date.parse(annotations[ANNOTATION_EXPIRES_AT] ?? "");
  const fetchedAt = Date.parse(annotations[ANNOTATION_FETCHED_AT] ?? "");
  const data = secret?.data?.[DOCKER_CONFIG_JSON_KEY];
  if (!data || !Number.isFinite(expiresAt) || !Number.isFinite(fetchedAt)) return;
  let auths: ReturnType<typeof parseDockerConfigJson>;
  try {
    auths = parseDockerConfigJson(Buffer.from(data, "base64").toString("utf8"));
  } catch {
    return;
  }
  const hosts = (annotations[ANNOTATION_REGISTRIES] ?? "").split(",").filter(Boolean);
  // Only a token fetched by the same source: after a change of credentials,
  // role or region the old token must not pass for the new source's.
  const digests = parseTokenSources(annotations[ANNOTATION_TOKEN_SOURCES]);
  for (const t of needed) {
    const host = t.host ?? (targets.length === 1 && hosts.length === 1 ? hosts[0] : undefined);
    const entry = host ? auths[host] : undefined;
    if (!host || !entry || digests.get(host) !== sourceDigest(t.source)) continue;
    tokens.seed(t.source, {
      username: entry.username,
      password: entry.password,
      expiresAt: new Date(expiresAt),
      fetchedAt: new Date(fetchedAt),
      proxyEndpoint: t.host ? undefined : `https://${host}`,
      reused: true,
    });
  }
}
