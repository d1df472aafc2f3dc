// The `.dockerconfigjson` of a kubernetes.io/dockerconfigjson Secret, built
// from the registries' credentials. Nothing here may put a token or a
// password into an error: errors reach logs, Events and status.
import { decodeAuthorizationToken, type RegistryCredentials } from "../aws/authorization-token.js";
import { operatorError } from "../errors.js";

export interface DockerConfigEntry extends RegistryCredentials {
  host: string;
}

function basicAuth({ username, password }: RegistryCredentials): string {
  return Buffer.from(`${username}:${password}`, "utf8").toString("base64");
}

/**
 * The `.dockerconfigjson` for these registries, byte-for-byte the same for the
 * same input in any order: hosts sorted, each entry's keys in a fixed order,
 * no whitespace. A host listed twice must carry the same credentials.
 */
export function buildDockerConfigJson(entries: readonly DockerConfigEntry[]): string {
  const byHost = new Map<string, RegistryCredentials>();
  for (const { host, username, password } of entries) {
    const seen = byHost.get(host);
    if (seen !== undefined && (seen.username !== username || seen.password !== password)) {
      throw operatorError("InvalidSpec", "registryListedTwice", { host });
    }
    byHost.set(host, { username, password });
  }
  const hosts = [...byHost.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const auths = Object.fromEntries(
    hosts.map((host) => {
      const c = byHost.get(host) as RegistryCredentials;
      return [host, { username: c.username, password: c.password, auth: basicAuth(c) }];
    }),
  );
  return JSON.stringify({ auths });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Reads the credentials per host out of a `.dockerconfigjson`. As in the
 * Docker CLI, an entry's `auth` wins over its `username` and `password`.
 * Throws MalformedDockerConfig without quoting the input.
 */
export function parseDockerConfigJson(s: string): Record<string, RegistryCredentials> {
  const bad = (reason: string) =>
    operatorError("TokenRefreshFailed", "malformedDockerConfig", { reason });
  let doc: unknown;
  try {
    doc = JSON.parse(s);
  } catch {
    // No cause: JSON.parse quotes the input, which holds passwords.
    throw bad("it is not valid JSON");
  }
  if (!isRecord(doc) || !isRecord(doc.auths)) throw bad('it has no "auths" object');
  const result: [string, RegistryCredentials][] = [];
  for (const [host, entry] of Object.entries(doc.auths)) {
    if (!isRecord(entry)) throw bad(`the entry for ${JSON.stringify(host)} is not an object`);
    if (typeof entry.auth === "string" && entry.auth !== "") {
      try {
        result.push([host, decodeAuthorizationToken(entry.auth)]);
      } catch {
        throw bad(`the "auth" of ${JSON.stringify(host)} is not base64 of "user:password"`);
      }
    } else if (typeof entry.username === "string" && typeof entry.password === "string") {
      result.push([host, { username: entry.username, password: entry.password }]);
    } else {
      throw bad(
        `the entry for ${JSON.stringify(host)} has neither "auth" nor "username" and "password"`,
      );
    }
  }
  return Object.fromEntries(result);
}
