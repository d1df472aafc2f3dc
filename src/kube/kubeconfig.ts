// Where the API server is and who we are to it: a kubeconfig file (as kubectl
// reads it), or the Pod's own ServiceAccount when running in a cluster.
//
// Supported: server, certificate-authority(-data), insecure-skip-tls-verify,
// tls-server-name, proxy-url (http, https, socks5); users with a token, a token file, a client certificate,
// basic auth or an exec credential plugin (e.g. `aws eks get-token`). The old
// auth-provider plugins are refused with an error that says to use exec.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { load as parseYaml } from "js-yaml";
import { parseProxyUrl } from "./proxy.js";

/** What a request presents to the API server. Fields are fixed for a connection's life unless `refresh`ed. */
export interface Credentials {
  /** `Authorization` header value, if any. */
  authorization?: string;
  cert?: Buffer;
  key?: Buffer;
}

export interface Connection {
  server: URL;
  ca?: Buffer;
  insecureSkipTLSVerify: boolean;
  tlsServerName?: string;
  /** The cluster's proxy-url: every request goes through it, whatever NO_PROXY says (as kubectl does). */
  proxyUrl?: URL;
  /** Where it came from, for error messages: a file and context, or "in-cluster". */
  source: string;
  /** The credentials to send now (re-read from a token file or an exec plugin when due). */
  credentials(): Promise<Credentials>;
  /** Called after a 401: credentials that can be renewed are fetched anew on the next call. */
  invalidate(): void;
}

/** The directory kubelet mounts a Pod's ServiceAccount token, CA and namespace into. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * The connection for a kubeconfig path (or a list of them), else (no path)
 * the in-cluster one when running in a Pod, else $KUBECONFIG, else
 * ~/.kube/config.
 */
export function loadKubeConfig(path?: string, context?: string): Connection {
  // A list, as $KUBECONFIG may hold (the --kubeconfig flag reads that variable).
  if (path) return fromFiles(path.split(delimiter).filter(Boolean), context);
  if (process.env.KUBERNETES_SERVICE_HOST && !context) return inCluster();
  const env = process.env.KUBECONFIG;
  const files = env ? env.split(delimiter).filter(Boolean) : [join(homedir(), ".kube", "config")];
  return fromFiles(files, context);
}

/** The Pod's own ServiceAccount: the service host from the environment, its token re-read as kubelet rotates it. */
export function inCluster(dir = SERVICE_ACCOUNT_DIR): Connection {
  const host = process.env.KUBERNETES_SERVICE_HOST ?? "";
  const port = process.env.KUBERNETES_SERVICE_PORT ?? "443";
  if (!host) throw new Error("not in a cluster: KUBERNETES_SERVICE_HOST is not set");
  const server = new URL(`https://${host.includes(":") ? `[${host}]` : host}:${port}`);
  return {
    server,
    ca: readOrThrow(join(dir, "ca.crt"), "the in-cluster CA"),
    insecureSkipTLSVerify: false,
    source: "in-cluster",
    credentials: tokenFileCredentials(join(dir, "token"), "the ServiceAccount token"),
    invalidate: () => undefined,
  };
}

// --- kubeconfig files ----------------------------------------------------------

interface Named<T> {
  name: string;
  [key: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

export interface RawKubeConfig {
  clusters?: Named<Record<string, unknown>>[];
  users?: Named<Record<string, unknown>>[];
  contexts?: Named<Record<string, unknown>>[];
  "current-context"?: string;
}

/** Entries of one kind from several files; the first file naming an entry wins, as kubectl merges. */
interface Merged {
  clusters: Map<string, { value: Record<string, unknown>; dir: string }>;
  users: Map<string, { value: Record<string, unknown>; dir: string }>;
  contexts: Map<string, { value: Record<string, unknown>; dir: string }>;
  current?: string;
}

function fromFiles(files: string[], context: string | undefined): Connection {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map() };
  let read = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      // kubectl skips missing files of a $KUBECONFIG list; a single one must exist.
      if (files.length > 1 && (err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new Error(`failed to read kubeconfig ${file}: ${(err as Error).message}`);
    }
    let raw: RawKubeConfig;
    try {
      raw = (parseYaml(text) ?? {}) as RawKubeConfig;
    } catch (err) {
      throw new Error(`kubeconfig ${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof raw !== "object" || Array.isArray(raw))
      throw new Error(`kubeconfig ${file} is not a kubeconfig: expected a mapping at the top`);
    read++;
    mergeInto(merged, raw, dirname(file));
  }
  const where = files.join(delimiter);
  if (read === 0) throw new Error(`no kubeconfig found at ${where}: pass --kubeconfig`);
  return fromMerged(merged, context, where);
}

/** A connection from a kubeconfig already in memory (paths in it resolve against `dir`). */
export function connectionFromKubeConfig(
  raw: RawKubeConfig,
  context?: string,
  dir = ".",
): Connection {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map() };
  mergeInto(merged, raw, dir);
  return fromMerged(merged, context, "(in memory)");
}

/** Adds one file's entries; an entry a file before it named already stays (kubectl's rule). */
function mergeInto(merged: Merged, raw: RawKubeConfig, dir: string): void {
  for (const [kind, field] of [
    ["clusters", "cluster"],
    ["users", "user"],
    ["contexts", "context"],
  ] as const) {
    for (const entry of raw[kind] ?? []) {
      if (!entry?.name || merged[kind].has(entry.name)) continue;
      merged[kind].set(entry.name, { value: (entry[field] ?? {}) as Record<string, unknown>, dir });
    }
  }
  merged.current ??= raw["current-context"] || undefined;
}

function fromMerged(merged: Merged, context: string | undefined, where: string): Connection {
  const contextName = context ?? merged.current;
  if (!contextName)
    throw new Error(`kubeconfig ${where} has no current-context: set one or pass a context`);
  const ctx = merged.contexts.get(contextName)?.value;
  if (!ctx) throw new Error(`kubeconfig ${where} has no context "${contextName}"`);
  const source = `kubeconfig ${where}, context "${contextName}"`;
  const clusterName = str(ctx.cluster);
  const clusterEntry = clusterName ? merged.clusters.get(clusterName) : undefined;
  if (!clusterEntry) throw new Error(`${source}: no cluster "${clusterName ?? ""}"`);
  const cluster = clusterEntry.value;
  const serverText = str(cluster.server);
  if (!serverText) throw new Error(`${source}: cluster "${clusterName}" has no server`);
  let server: URL;
  try {
    server = new URL(serverText);
  } catch {
    throw new Error(`${source}: cluster "${clusterName}" server "${serverText}" is not a URL`);
  }
  if (server.protocol !== "https:" && server.protocol !== "http:")
    throw new Error(`${source}: server "${serverText}" must be an https:// URL`);
  const proxyText = str(cluster["proxy-url"]);
  let proxyUrl: URL | undefined;
  if (proxyText) {
    try {
      proxyUrl = parseProxyUrl(proxyText, "proxy-url");
    } catch (err) {
      throw new Error(`${source}: cluster "${clusterName}": ${(err as Error).message}`);
    }
  }
  const ca = bytes(cluster, "certificate-authority", clusterEntry.dir, source);

  const userName = str(ctx.user);
  const userEntry = userName ? merged.users.get(userName) : undefined;
  if (userName && !userEntry) throw new Error(`${source}: no user "${userName}"`);
  const user = userEntry?.value ?? {};
  return {
    server,
    ca,
    insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"] === true,
    tlsServerName: str(cluster["tls-server-name"]),
    ...(proxyUrl ? { proxyUrl } : {}),
    source,
    ...userCredentials(user, userEntry?.dir ?? ".", server, ca, `${source}, user "${userName}"`),
  };
}

function userCredentials(
  user: Record<string, unknown>,
  dir: string,
  server: URL,
  ca: Buffer | undefined,
  source: string,
): Pick<Connection, "credentials" | "invalidate"> {
  const none = { invalidate: () => undefined };
  if (user["auth-provider"]) {
    const name = str((user["auth-provider"] as { name?: unknown }).name) ?? "?";
    throw new Error(
      `${source}: auth-provider "${name}" is not supported; use an exec credential plugin (kubectl's replacement for it)`,
    );
  }
  if (user.exec) return execCredentials(user.exec as ExecConfig, dir, server, ca, source);
  const cert = bytes(user, "client-certificate", dir, source);
  const key = bytes(user, "client-key", dir, source);
  if (Boolean(cert) !== Boolean(key))
    throw new Error(`${source}: a client certificate needs both client-certificate and client-key`);
  const token = str(user.token);
  if (token) {
    const fixed: Credentials = { authorization: `Bearer ${token}`, cert, key };
    return { ...none, credentials: async () => fixed };
  }
  const tokenFile = str(user.tokenFile);
  if (tokenFile) {
    const read = tokenFileCredentials(resolvePath(tokenFile, dir), `${source} tokenFile`);
    return { ...none, credentials: async () => ({ ...(await read()), cert, key }) };
  }
  const username = str(user.username);
  if (username) {
    const basic = Buffer.from(`${username}:${str(user.password) ?? ""}`).toString("base64");
    const fixed: Credentials = { authorization: `Basic ${basic}`, cert, key };
    return { ...none, credentials: async () => fixed };
  }
  const fixed: Credentials = { cert, key };
  return { ...none, credentials: async () => fixed };
}

/** A token file, re-read once a minute: kubelet rotates projected tokens in place. */
function tokenFileCredentials(path: string, what: string): () => Promise<Credentials> {
  let cached: { token: string; at: number } | undefined;
  return async () => {
    if (!cached || Date.now() - cached.at > 60_000) {
      const token = readOrThrow(path, what).toString("utf8").trim();
      if (!token) throw new Error(`${what} at ${path} is empty`);
      cached = { token, at: Date.now() };
    }
    return { authorization: `Bearer ${cached.token}` };
  };
}

// --- exec credential plugins ------------------------------------------------------

interface ExecConfig {
  command?: string;
  args?: string[];
  env?: Array<{ name: string; value: string }>;
  apiVersion?: string;
  provideClusterInfo?: boolean;
}

interface ExecCredential {
  status?: {
    token?: string;
    clientCertificateData?: string;
    clientKeyData?: string;
    expirationTimestamp?: string;
  };
}

function execCredentials(
  exec: ExecConfig,
  dir: string,
  server: URL,
  ca: Buffer | undefined,
  source: string,
): Pick<Connection, "credentials" | "invalidate"> {
  if (!exec.command) throw new Error(`${source}: exec has no command`);
  const command = exec.command.includes("/") ? resolvePath(exec.command, dir) : exec.command;
  const apiVersion = exec.apiVersion ?? "client.authentication.k8s.io/v1";
  let cached: { creds: Credentials; expires: number } | undefined;
  let running: Promise<Credentials> | undefined;
  const run = async (): Promise<Credentials> => {
    const info = {
      apiVersion,
      kind: "ExecCredential",
      spec: {
        interactive: false,
        ...(exec.provideClusterInfo
          ? {
              cluster: {
                server: server.href.replace(/\/$/, ""),
                "certificate-authority-data": ca?.toString("base64"),
              },
            }
          : {}),
      },
    };
    const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
    for (const e of exec.env ?? []) env[e.name] = e.value;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        command,
        exec.args ?? [],
        { env, timeout: 60_000, maxBuffer: 1 << 20 },
        (err, out, errOut) => {
          if (err)
            reject(
              new Error(
                `${source}: exec plugin ${exec.command} failed: ${(String(errOut).trim() || err.message).slice(0, 500)}`,
              ),
            );
          else resolve(out);
        },
      );
    });
    let parsed: ExecCredential;
    try {
      parsed = JSON.parse(stdout) as ExecCredential;
    } catch {
      throw new Error(`${source}: exec plugin ${exec.command} did not print an ExecCredential`);
    }
    const s = parsed.status ?? {};
    const creds: Credentials = {};
    if (s.token) creds.authorization = `Bearer ${s.token}`;
    if (s.clientCertificateData && s.clientKeyData) {
      creds.cert = Buffer.from(s.clientCertificateData);
      creds.key = Buffer.from(s.clientKeyData);
    }
    if (!creds.authorization && !creds.cert)
      throw new Error(
        `${source}: exec plugin ${exec.command} returned neither a token nor a certificate`,
      );
    // Renewed a little before it expires; without an expiry, kept until a 401.
    const expires = s.expirationTimestamp
      ? Date.parse(s.expirationTimestamp) - 10_000
      : Number.POSITIVE_INFINITY;
    cached = { creds, expires };
    return creds;
  };
  return {
    credentials: async () => {
      if (cached && Date.now() < cached.expires) return cached.creds;
      running ??= run().finally(() => {
        running = undefined;
      });
      return running;
    },
    invalidate: () => {
      cached = undefined;
    },
  };
}

// --- helpers -----------------------------------------------------------------------

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function resolvePath(path: string, dir: string): string {
  return isAbsolute(path) ? path : join(dir, path);
}

/** `<field>-data` (base64) or `<field>` (a file path), as kubeconfig spells both. */
function bytes(
  entry: Record<string, unknown>,
  field: string,
  dir: string,
  source: string,
): Buffer | undefined {
  const data = str(entry[`${field}-data`]);
  if (data) return Buffer.from(data, "base64");
  const path = str(entry[field]);
  return path ? readOrThrow(resolvePath(path, dir), `${source} ${field}`) : undefined;
}

function readOrThrow(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(
      `failed to read ${what} at ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}
