// Where the API server is and who we are to it: a kubeconfig file (as kubectl
// reads it), or the Pod's own ServiceAccount when running in a cluster.
//
// Supported: server, certificate-authority(-data), insecure-skip-tls-verify,
// tls-server-name, proxy-url (http, https, socks5); the context's namespace; users with a token, a token file
// (re-read when it changes and after a 401), a client certificate, basic
// auth or an exec credential plugin (e.g. `aws eks get-token`, `kubelogin`),
// and impersonation (`as`, `as-uid`, `as-groups`, `as-user-extra`). The old
// auth-provider plugins are refused with an error that names the exec plugin
// that replaces them.
import { spawn } from "node:child_process";
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

/** Whom requests act as, beside who sends them (kubectl's --as and friends). */
export interface Impersonation {
  user?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface Connection {
  server: URL;
  /** The context's namespace, or in a cluster the Pod's own: the default for the Lease. */
  namespace?: string;
  impersonate?: Impersonation;
  ca?: Buffer;
  insecureSkipTLSVerify: boolean;
  tlsServerName?: string;
  /** The cluster's proxy-url: every request goes through it, whatever NO_PROXY says (as kubectl does). */
  proxyUrl?: URL;
  /** Where it came from, for error messages: a file and context, or "in-cluster". */
  source: string;
  /** The credentials to send now (re-read from a token file or an exec plugin when due). */
  credentials(): Promise<Credentials>;
  /**
   * Called after a 401 with the credentials that request sent: if they are
   * still the current ones and can be renewed (token file, exec plugin), the
   * next call fetches them anew. Many 401s for the same credentials renew
   * them once.
   */
  invalidate(used?: Credentials): void;
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
  let namespace: string | undefined;
  try {
    namespace = readFileSync(join(dir, "namespace"), "utf8").trim() || undefined;
  } catch {
    // Not mounted (automountServiceAccountToken with a custom projection): no default.
  }
  return {
    server,
    namespace,
    ca: readOrThrow(join(dir, "ca.crt"), "the in-cluster CA"),
    insecureSkipTLSVerify: false,
    source: "in-cluster",
    ...tokenFileCredentials(join(dir, "token"), "the ServiceAccount token"),
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
      // kubectl's Go transport sends the host name to a socks5 proxy, which
      // resolves it (net/http's SOCKS5 dialer, golang.org/x/net/internal/socks):
      // a bastion's private names work. socks5h:// is that, here.
      if (proxyUrl.protocol === "socks5:") proxyUrl = new URL(`socks5h:${proxyUrl.href.slice(7)}`);
    } catch (err) {
      throw new Error(`${source}: cluster "${clusterName}": ${(err as Error).message}`);
    }
  }
  const ca = bytes(cluster, "certificate-authority", clusterEntry.dir, source);

  const userName = str(ctx.user);
  const userEntry = userName ? merged.users.get(userName) : undefined;
  if (userName && !userEntry) throw new Error(`${source}: no user "${userName}"`);
  const user = userEntry?.value ?? {};
  const userSource = `${source}, user "${userName}"`;
  return {
    server,
    namespace: str(ctx.namespace),
    impersonate: impersonation(user, userSource),
    ca,
    insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"] === true,
    tlsServerName: str(cluster["tls-server-name"]),
    ...(proxyUrl ? { proxyUrl } : {}),
    source,
    ...userCredentials(user, userEntry?.dir ?? ".", server, ca, userSource),
  };
}

/** `as`, `as-uid`, `as-groups`, `as-user-extra`, as kubectl reads them. */
function impersonation(user: Record<string, unknown>, source: string): Impersonation | undefined {
  const as: Impersonation = {};
  if (str(user.as)) as.user = str(user.as);
  if (str(user["as-uid"])) as.uid = str(user["as-uid"]);
  const groups = user["as-groups"];
  if (groups !== undefined && groups !== null) {
    if (!Array.isArray(groups) || !groups.every((g) => typeof g === "string"))
      throw new Error(`${source}: as-groups must be a list of group names`);
    if (groups.length) as.groups = groups;
  }
  const extra = user["as-user-extra"];
  if (extra !== undefined && extra !== null) {
    if (typeof extra !== "object" || Array.isArray(extra))
      throw new Error(`${source}: as-user-extra must map keys to lists of values`);
    as.extra = {};
    for (const [k, v] of Object.entries(extra)) {
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
        throw new Error(`${source}: as-user-extra.${k} must be a list of strings`);
      as.extra[k] = v;
    }
  }
  if ((as.groups || as.extra || as.uid) && !as.user)
    throw new Error(`${source}: as-groups, as-uid and as-user-extra need as (the user to act as)`);
  return as.user ? as : undefined;
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
    const replacement: Record<string, string> = {
      oidc: "kubelogin (https://github.com/int128/kubelogin: `kubectl oidc-login setup` writes the exec entry)",
      azure: "kubelogin (https://github.com/Azure/kubelogin: `kubelogin convert-kubeconfig`)",
      gcp: "gke-gcloud-auth-plugin (`gcloud components install gke-gcloud-auth-plugin`)",
    };
    throw new Error(
      `${source}: auth-provider "${name}" is not supported (kubectl removed it too); use an exec credential plugin instead: ${replacement[name] ?? "the provider's exec plugin"}`,
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
    const file = tokenFileCredentials(resolvePath(tokenFile, dir), `${source} tokenFile`, {
      cert,
      key,
    });
    return file;
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

/**
 * A token file, re-read once a minute (kubelet rotates projected tokens in
 * place, as client-go's cached token source assumes) and at once after a 401
 * (someone rotated it and revoked the old one).
 */
function tokenFileCredentials(
  path: string,
  what: string,
  tls: Pick<Credentials, "cert" | "key"> = {},
): Pick<Connection, "credentials" | "invalidate"> {
  let cached: { creds: Credentials; at: number } | undefined;
  return {
    credentials: async () => {
      if (!cached || Date.now() - cached.at > 60_000) {
        const token = readOrThrow(path, what).toString("utf8").trim();
        if (!token) throw new Error(`${what} at ${path} is empty`);
        cached = { creds: { authorization: `Bearer ${token}`, ...tls }, at: Date.now() };
      }
      return cached.creds;
    },
    invalidate: (used) => {
      if (!used || used === cached?.creds) cached = undefined;
    },
  };
}

// --- exec credential plugins ------------------------------------------------------

interface ExecConfig {
  command?: string;
  args?: string[];
  env?: Array<{ name: string; value: string }>;
  apiVersion?: string;
  provideClusterInfo?: boolean;
  /** Never, IfAvailable or Always: whether the plugin may talk to the user on stdin. */
  interactiveMode?: string;
  /** Shown when the command is not installed. */
  installHint?: string;
}

interface ExecCredential {
  status?: {
    token?: string;
    clientCertificateData?: string;
    clientKeyData?: string;
    expirationTimestamp?: string;
  };
}

/** Renewed this long before it expires: a fifth of its life, at most 10 s. */
function renewalMargin(lifetimeMs: number): number {
  return Math.min(10_000, Math.max(0, lifetimeMs) / 5);
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
  // client-go insists on it for v1; kubeconfigs written for v1beta1 leave it out.
  const mode = exec.interactiveMode ?? "IfAvailable";
  if (!["Never", "IfAvailable", "Always"].includes(mode))
    throw new Error(
      `${source}: exec interactiveMode ${JSON.stringify(mode)} is not Never, IfAvailable or Always`,
    );
  let cached: { creds: Credentials; expires: number } | undefined;
  let running: Promise<Credentials> | undefined;
  const run = async (): Promise<Credentials> => {
    // As client-go: the plugin may prompt only when we have a terminal and
    // the kubeconfig allows it; a plugin that must prompt cannot run in a Pod.
    const terminal = Boolean(process.stdin.isTTY);
    const interactive = terminal && mode !== "Never";
    if (mode === "Always" && !terminal)
      throw new Error(
        `${source}: exec plugin ${exec.command} needs a terminal (interactiveMode: Always), but standard input is not one`,
      );
    const info = {
      apiVersion,
      kind: "ExecCredential",
      spec: {
        interactive,
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
    const stdout = await runPlugin(command, exec, env, interactive, source);
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
    // Without an expiry, kept until a 401. An expiry we cannot read is an
    // error (as client-go): guessing would either hammer the plugin or send
    // an expired credential.
    let expires = Number.POSITIVE_INFINITY;
    if (s.expirationTimestamp !== undefined) {
      const at = Date.parse(s.expirationTimestamp);
      if (!Number.isFinite(at) || !/^\d{4}-\d\d-\d\dT/.test(s.expirationTimestamp))
        throw new Error(
          `${source}: exec plugin ${exec.command} returned expirationTimestamp ${JSON.stringify(s.expirationTimestamp)}, which is not an RFC 3339 time`,
        );
      expires = at - renewalMargin(at - Date.now());
    }
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
    invalidate: (used) => {
      if (!used || used === cached?.creds) cached = undefined;
    },
  };
}

/** Runs the plugin: stdin only when interactive, stderr shown (a login prompt) and kept for the error. */
function runPlugin(
  command: string,
  exec: ExecConfig,
  env: NodeJS.ProcessEnv,
  interactive: boolean,
  source: string,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(command, exec.args ?? [], {
      env,
      stdio: [interactive ? "inherit" : "ignore", "pipe", "pipe"],
      timeout: 60_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (c: Buffer) => out.push(c));
    child.stderr?.on("data", (c: Buffer) => {
      err.push(c);
      process.stderr.write(c);
    });
    child.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") {
        reject(
          new Error(
            `${source}: exec plugin ${exec.command} is not installed (not found${exec.command?.includes("/") ? "" : " in PATH"})${exec.installHint ? `: ${exec.installHint.trim()}` : ""}`,
          ),
        );
      } else reject(new Error(`${source}: exec plugin ${exec.command} failed: ${e.message}`));
    });
    child.once("close", (code, signal) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString("utf8"));
        return;
      }
      const stderr = Buffer.concat(err).toString("utf8").trim();
      reject(
        new Error(
          `${source}: exec plugin ${exec.command} failed: ${(stderr || `exit ${code ?? signal}`).slice(0, 500)}`,
        ),
      );
    });
  });
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
