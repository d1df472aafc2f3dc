// A real Kubernetes control plane for tests, benchmarks and the demo: etcd,
// kube-apiserver (RBAC on, audit log on) and kube-controller-manager, each its
// own process of the binary built from tools/controlplane, on free loopback
// ports. Nothing here is a mock: tests talk to a real API server.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const controlPlaneBinary = join(repoRoot, ".cache/controlplane/controlplane");

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** Path of an admin (system:masters) kubeconfig. */
  readonly kubeconfigPath: string;
  /** Where the API server writes its audit log (one JSON event a line). */
  readonly auditLogPath: string;
  readonly dir: string;
  readonly caData: string;
  readonly adminToken: string;
  /** The CA the API server trusts for client certificates (`--client-ca-file`). */
  readonly clientCa: ClientCa;
  /** Stops the API server and starts it again on the same port and data. */
  restartApiServer(downMs?: number): Promise<void>;
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Keep data here instead of a fresh temporary folder. */
  dir?: string;
  /** Print progress lines (the first build takes minutes). */
  progress?: (line: string) => void;
}

const execFileAsync = promisify(execFile);

/** A certificate authority's files: the API server trusts certificates it signs. */
export interface ClientCa {
  certPath: string;
  keyPath: string;
}

/** Makes a self-signed CA with openssl (Node can verify certificates but not issue them). */
export async function makeClientCa(dir: string): Promise<ClientCa> {
  const ca = { certPath: join(dir, "client-ca.crt"), keyPath: join(dir, "client-ca.key") };
  await execFileAsync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    ca.keyPath,
    "-out",
    ca.certPath,
    "-days",
    "2",
    "-subj",
    "/CN=ecr-test-client-ca",
  ]);
  return ca;
}

/**
 * A client certificate signed by `ca`: the API server authenticates it as
 * user `commonName` in `groups` (the certificate's O fields).
 */
export async function issueClientCert(
  ca: ClientCa,
  dir: string,
  commonName: string,
  groups: string[] = [],
): Promise<{ certPath: string; keyPath: string; cert: string; key: string }> {
  const base = join(dir, commonName.replace(/[^\w.-]/g, "_"));
  const keyPath = `${base}.key`;
  const csrPath = `${base}.csr`;
  const certPath = `${base}.crt`;
  const subj = `${groups.map((g) => `/O=${g}`).join("")}/CN=${commonName}`;
  await execFileAsync("openssl", [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    csrPath,
    "-subj",
    subj,
  ]);
  await execFileAsync("openssl", [
    "x509",
    "-req",
    "-in",
    csrPath,
    "-CA",
    ca.certPath,
    "-CAkey",
    ca.keyPath,
    "-CAcreateserial",
    "-out",
    certPath,
    "-days",
    "1",
  ]);
  return {
    certPath,
    keyPath,
    cert: await readFile(certPath, "utf8"),
    key: await readFile(keyPath, "utf8"),
  };
}

export async function buildControlPlane(progress?: (line: string) => void): Promise<void> {
  if (!existsSync(controlPlaneBinary)) {
    progress?.("building the control plane from the Kubernetes Go modules (first time: ~10 min)…");
  }
  await execFileAsync("bash", [join(repoRoot, "scripts/build-controlplane.sh")], {
    maxBuffer: 64 * 1024 * 1024,
  });
}

export async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Polls `check` until it returns a value other than undefined, or throws at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 30_000, intervalMs = 100 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`, {
        cause: lastError,
      });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Holds that `check` stays true for `forMs` milliseconds, polling every `intervalMs`
 * (Gomega's `Consistently`): the counterpart of {@link waitFor} for "nothing changes".
 * `check` returns true while the state is as expected, or a string saying what changed.
 * Throws at the first poll that returns something other than `true` (or throws), naming `what`.
 * Use it where a test would otherwise sleep a fixed time and then assert once.
 */
export async function consistently(
  what: string,
  check: () => Promise<true | string> | true | string,
  { forMs, intervalMs = 250 }: { forMs: number; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + forMs;
  for (;;) {
    const verdict = await check();
    if (verdict !== true) {
      const held = forMs - Math.max(0, deadline - Date.now());
      throw new Error(`${what} did not hold for ${forMs} ms (broke after ${held} ms): ${verdict}`);
    }
    if (Date.now() >= deadline) return;
    await new Promise((r) =>
      setTimeout(r, Math.min(intervalMs, Math.max(1, deadline - Date.now()))),
    );
  }
}

interface Component {
  name: string;
  args: string[];
  proc?: ChildProcess;
}

function startComponent(c: Component, logDir: string): ChildProcess {
  const log = createWriteStream(join(logDir, `${c.name}.log`), { flags: "a" });
  const proc = spawn(controlPlaneBinary, [c.name, ...c.args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CONTROLPLANE_EXIT_WITH_PARENT: "1" },
  });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  c.proc = proc;
  return proc;
}

async function stopComponent(c: Component): Promise<void> {
  const proc = c.proc;
  c.proc = undefined;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

export function httpsGet(
  url: string,
  token: string,
  ca: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request(
      url,
      { headers: { Authorization: `Bearer ${token}` }, ca, timeout: 5_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolveGet({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

export function kubeconfigYaml(
  server: string,
  caData: string,
  user: string,
  token: string,
): string {
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "local",
          cluster: { server, "certificate-authority-data": Buffer.from(caData).toString("base64") },
        },
      ],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: user, context: { cluster: "local", user } }],
      "current-context": user,
    },
    null,
    2,
  );
}

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    verbs: ["get", "list", "watch"]
  - level: Metadata
`;

/** Where a control plane's pieces live and listen. */
interface Layout {
  dir: string;
  certDir: string;
  etcdPort: number;
  peerPort: number;
  server: string;
  apiPort: number;
  saKey: string;
  saPub: string;
  clientCaPath: string;
  auditLogPath: string;
  kcmKubeconfig: string;
}

/**
 * Starts etcd, kube-apiserver and kube-controller-manager (built first if
 * need be) in `opts.dir` or a new temporary directory, and waits until the
 * controller manager works. Throws, having stopped what started, when a
 * component does not come up in time.
 */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  await buildControlPlane(opts.progress);
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "ecr-controlplane-")));
  const certDir = join(dir, "certs");
  await mkdir(certDir, { recursive: true });
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const server = `https://127.0.0.1:${apiPort}`;
  const { adminToken, kcmToken, clientCa, ...keys } = await writeCredentials(dir);
  const layout: Layout = {
    dir,
    certDir,
    etcdPort,
    peerPort,
    server,
    apiPort,
    ...keys,
    clientCaPath: clientCa.certPath,
    auditLogPath: join(dir, "audit.log"),
    kcmKubeconfig: join(dir, "kcm.kubeconfig"),
  };
  const { etcd, apiserver, controllerManager } = components(layout);
  const progress = opts.progress ?? (() => {});

  let caData = "";
  const stop = async (): Promise<void> => {
    for (const c of [etcd, apiserver, controllerManager].reverse()) await stopComponent(c);
    if (!opts.dir) await rm(dir, { recursive: true, force: true });
  };

  const startApiServer = async (): Promise<void> => {
    startComponent(apiserver, dir);
    await waitFor(
      "kube-apiserver /readyz",
      async () => {
        if (!existsSync(join(certDir, "apiserver.crt"))) return undefined;
        caData = await readFile(join(certDir, "apiserver.crt"), "utf8");
        const res = await httpsGet(`${server}/readyz`, adminToken, caData);
        return res.status === 200 ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    );
  };

  try {
    progress("starting etcd…");
    startComponent(etcd, dir);
    await waitFor(
      "etcd",
      async () => {
        const res = await fetch(`http://127.0.0.1:${etcdPort}/health`);
        return res.ok ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    progress("starting kube-apiserver…");
    await startApiServer();
    await writeFile(layout.kcmKubeconfig, kubeconfigYaml(server, caData, "kcm", kcmToken));
    progress("starting kube-controller-manager…");
    startComponent(controllerManager, dir);
    await waitForControllerManager(server, adminToken, caData);
  } catch (err) {
    await stop();
    throw err;
  }

  const kubeconfigPath = join(dir, "admin.kubeconfig");
  await writeFile(kubeconfigPath, kubeconfigYaml(server, caData, "admin", adminToken));
  progress(`control plane ready at ${server}`);

  return {
    server,
    kubeconfigPath,
    auditLogPath: layout.auditLogPath,
    dir,
    caData,
    adminToken,
    clientCa,
    stop,
    startApiServer,
    stopApiServer: () => stopComponent(apiserver),
    async restartApiServer(downMs = 0) {
      await stopComponent(apiserver);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await startApiServer();
    },
  };
}

/**
 * The ServiceAccount signing keys, the static tokens (admin and the
 * controller manager), the audit policy and the client CA, written in `dir`.
 */
async function writeCredentials(dir: string) {
  const adminToken = randomBytes(24).toString("hex");
  const kcmToken = randomBytes(24).toString("hex");
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const saKey = join(dir, "sa.key");
  const saPub = join(dir, "sa.pub");
  await writeFile(saKey, privateKey.export({ type: "pkcs1", format: "pem" }));
  await writeFile(saPub, publicKey.export({ type: "spki", format: "pem" }));
  // kube-controller-manager runs every controller under its own identity
  // (--use-service-account-credentials=false), so that identity needs what
  // all of them do: the bootstrap system:kube-controller-manager role alone
  // lets neither the replicaset controller create Pods nor the namespace
  // controller empty a namespace.
  await writeFile(
    join(dir, "tokens.csv"),
    `${adminToken},admin,admin,"system:masters"\n${kcmToken},system:kube-controller-manager,kcm,"system:masters"\n`,
  );
  await writeFile(join(dir, "audit-policy.yaml"), auditPolicy);
  const clientCa = await makeClientCa(dir);
  return { adminToken, kcmToken, saKey, saPub, clientCa };
}

/** The three components' command lines. */
function components(l: Layout): Record<"etcd" | "apiserver" | "controllerManager", Component> {
  const etcd: Component = {
    name: "etcd",
    args: [
      `--data-dir=${join(l.dir, "etcd")}`,
      `--listen-client-url=http://127.0.0.1:${l.etcdPort}`,
      `--listen-peer-url=http://127.0.0.1:${l.peerPort}`,
    ],
  };
  const apiserver: Component = {
    name: "kube-apiserver",
    args: [
      `--etcd-servers=http://127.0.0.1:${l.etcdPort}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${l.apiPort}`,
      `--cert-dir=${l.certDir}`,
      `--service-account-key-file=${l.saPub}`,
      `--service-account-signing-key-file=${l.saKey}`,
      // The issuer is the API server's own URL, as on a cluster whose issuer
      // is registered with IAM: a web-identity token's `iss` is where its
      // discovery document and JWKS are fetched from (the STS double does).
      `--service-account-issuer=${l.server}`,
      `--api-audiences=${l.server}`,
      "--service-cluster-ip-range=10.96.0.0/24",
      `--token-auth-file=${join(l.dir, "tokens.csv")}`,
      `--client-ca-file=${l.clientCaPath}`,
      "--authorization-mode=Node,RBAC",
      "--endpoint-reconciler-type=none",
      `--audit-log-path=${l.auditLogPath}`,
      `--audit-policy-file=${join(l.dir, "audit-policy.yaml")}`,
      "--audit-log-maxsize=0",
      "--profiling=false",
      "--v=1",
    ],
  };
  const controllerManager: Component = {
    name: "kube-controller-manager",
    args: [
      `--kubeconfig=${l.kcmKubeconfig}`,
      `--service-account-private-key-file=${l.saKey}`,
      `--root-ca-file=${join(l.certDir, "apiserver.crt")}`,
      "--leader-elect=false",
      // replicaset: a Pod deleted under podRecovery: Recreate comes back
      // from its ReplicaSet, as on a real cluster (no scheduler: it stays Pending).
      // clusterrole-aggregation: the built-in admin, edit and view roles get
      // their rules (and the chart's aggregated ones) as on a real cluster,
      // so a tenant bound to admin has a namespace admin's rights.
      "--controllers=namespace,serviceaccount,garbagecollector,serviceaccount-token,replicaset,clusterrole-aggregation",
      "--use-service-account-credentials=false",
      "--secure-port=0",
      "--concurrent-namespace-syncs=10",
      "--v=1",
    ],
  };
  return { etcd, apiserver, controllerManager };
}

/** The controller manager is working once it has made the default namespace's ServiceAccount. */
async function waitForControllerManager(
  server: string,
  adminToken: string,
  caData: string,
): Promise<void> {
  await waitFor(
    "the default ServiceAccount",
    async () => {
      const res = await httpsGet(
        `${server}/api/v1/namespaces/default/serviceaccounts/default`,
        adminToken,
        caData,
      );
      return res.status === 200 ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 200 },
  );
}
