// The one Secret content of a pass, as a pure function of the resource's
// registries and their token states: the `.dockerconfigjson`, the hosts, which
// source each host's token came from, the earliest expiry and fetch time, and
// the registry a check of the credentials should ask.
import type { RegistryTarget } from "../aws/registries.js";
import { hostOfProxyEndpoint, tokenSourcesAnnotation } from "../aws/registries.js";
import { type TokenState, tokenSourceKey } from "../aws/token-cache.js";
import { registryUrl } from "../aws/verify.js";
import { buildDockerConfigJson } from "./dockerconfig.js";

/** Credentials to check against a registry (`GET /v2/`). */
export interface VerifyTarget {
  url: string;
  username: string;
  password: string;
  /** Read back from a Secret after a restart, not fetched. */
  reused: boolean;
}

export interface SecretContent {
  /** The hosts in `auths`, in the order of spec.registries. */
  registries: string[];
  dockerConfigJson: string;
  /** The ANNOTATION_TOKEN_SOURCES value. */
  tokenSources: string;
  expiresAt?: Date;
  fetchedAt?: Date;
  /** The first ECR registry, which the credentials check asks. */
  check?: VerifyTarget;
}

/** The content, given a token for every target (the caller has checked that). */
export function secretContent(
  targets: readonly RegistryTarget[],
  states: ReadonlyMap<string, TokenState>,
): SecretContent {
  const auths: Array<{ host: string; username: string; password: string }> = [];
  const hostSources: Array<[string, RegistryTarget["source"]]> = [];
  let check: VerifyTarget | undefined;
  for (const t of targets) {
    const token = states.get(tokenSourceKey(t.source))?.token;
    const host = t.host ?? hostOfProxyEndpoint(token?.proxyEndpoint);
    if (!token || !host) continue;
    if (!auths.some((a) => a.host === host)) {
      auths.push({ host, username: token.username, password: token.password });
      hostSources.push([host, t.source]);
    }
    if (!check && t.source.service === "ecr") {
      check = {
        url: registryUrl(host, t.host ? undefined : token.proxyEndpoint),
        username: token.username,
        password: token.password,
        reused: token.reused === true,
      };
    }
  }
  const all = [...states.values()];
  return {
    registries: auths.map((a) => a.host),
    dockerConfigJson: buildDockerConfigJson(auths),
    tokenSources: tokenSourcesAnnotation(hostSources),
    expiresAt: earliest(all.map((s) => s.token?.expiresAt)),
    fetchedAt: earliest(all.map((s) => s.token?.fetchedAt)),
    check,
  };
}

/** The earliest of some dates; undefined when there are none. */
export function earliest(dates: Array<Date | undefined>): Date | undefined {
  let min: Date | undefined;
  for (const d of dates) if (d && (!min || d < min)) min = d;
  return min;
}
