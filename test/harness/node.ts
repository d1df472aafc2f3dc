// The node world: the project's control plane plus one real node, a kubelet
// and containerd 2 (runc, the CNI bridge) built by scripts/build-node.sh,
// pulling images of a registry double that serves them under an ECR host
// name (containerd's hosts.toml sends that host to the double) and accepts
// `AWS:<password>` only while the caller's validator says the password is
// valid. Root and Linux only. Everything it changes on the machine (a
// bridge, cgroups, mounts, a few sysctls, /var/log/containers) it records
// and restores at stop().
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import {
  copyFile,
  cp as copyTree,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  rmdir,
  writeFile,
} from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { platform } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Image, oneFileImage, tarFile } from "../registry-double/image.js";
import { type PasswordValidator, RegistryDouble } from "../registry-double/registry-double.js";
import {
  type ControlPlane,
  controlPlaneBinary,
  freePort,
  issueClientCert,
  repoRoot,
  startControlPlane,
  waitFor,
} from "./controlplane.js";

const execFileAsync = promisify(execFile);

export const nodeCache = join(repoRoot, ".cache/node");
const nodeBinary = join(nodeCache, "node");
const containerdBin = join(nodeCache, "bin");
const sleeperBinary = join(nodeCache, "sleeper");
const cniBinDir = "/usr/lib/cni";

/** The registry host the node world's images are named under. */
export const ECR_HOST = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
/** The repositories the registry double serves. */
export const NODE_REPOSITORIES = ["team/app", "team/other", "team/private"];
/** The sandbox image, imported into containerd (never pulled). */
export const PAUSE_IMAGE = "localhost/ecr-node/pause:1";
export const NODE_NAME = "ecr-node";
/** The bridge of the Pod network, its gateway (the node's address) and its subnet. */
export const BRIDGE = "ecrnode0";
export const NODE_IP = "10.244.77.1";
const POD_SUBNET = "10.244.77.0/24";
/** The `kubernetes` Service's ClusterIP: in the API server's certificate, reached from Pods. */
export const KUBERNETES_SERVICE_IP = "10.96.0.1";
/** Under every cgroup hierarchy: the kubelet's cgroupRoot. */
const CGROUP_ROOT = "ecr-node";
/** Sysctls the kubelet (kernel defaults) and the bridge plugin (forwarding) set. */
const SYSCTLS = [
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
  "net/ipv4/ip_forward",
];

/** Why the node world cannot run here, or undefined when it can. */
export function nodeWorldUnavailable(): string | undefined {
  if (platform() !== "linux") return `needs Linux (this is ${platform()})`;
  if (process.getuid?.() !== 0) return "needs root (kubelet, containerd and runc)";
  for (const bin of [nodeBinary, join(containerdBin, "containerd"), sleeperBinary]) {
    if (!existsSync(bin)) return `${bin} is not built (bash scripts/build-node.sh)`;
  }
  for (const bin of ["bridge", "host-local", "loopback"]) {
    if (!existsSync(join(cniBinDir, bin))) return `CNI plugin ${cniBinDir}/${bin} is missing`;
  }
  return undefined;
}

export interface NodeWorld {
  cp: ControlPlane;
  kubeconfigPath: string;
  registry: RegistryDouble;
  /** `<ECR_HOST>/<repository>:<tag>` */
  imageRef(repository: string, tag?: string): string;
  /** The digest of the manifest every tag resolves to. */
  imageDigest: string;
  dir: string;
  /** `ctr -n k8s.io ...` against the node's containerd. */
  ctr(args: string[]): Promise<string>;
  /** Imports an OCI layout archive into the node's containerd. */
  importImage(archivePath: string): Promise<void>;
  /**
   * Makes 127.0.0.1:`port` reachable from Pods at NODE_IP:`port` (a TCP
   * relay on the bridge's address) and returns that `host:port`.
   */
  expose(port: number): Promise<string>;
  stop(): Promise<void>;
}

export interface NodeOptions {
  /** Says whether a registry password is valid now (normally the AWS double's). */
  validatePassword: PasswordValidator;
  /** Whether a valid password may pull a repository (see RegistryDoubleOptions). */
  authorizeRepository?: (password: string, repository: string) => boolean | Promise<boolean>;
  /** An existing control plane; default: a new one, stopped by stop(). */
  cp?: ControlPlane;
  /** How long to wait for another node world on this machine to stop; default 4 minutes. */
  lockTimeoutMs?: number;
  progress?: (line: string) => void;
}

/** The one program of every image here, as a one-layer image. */
export function sleeperImage(binary: Buffer, title: string): Image {
  return oneFileImage({
    file: { name: "sleeper", content: binary, mode: 0o755 },
    runConfig: {
      Entrypoint: ["/sleeper"],
      Cmd: [title],
      Labels: { "org.opencontainers.image.title": title },
    },
    gzipLevel: 1,
  });
}

/** An OCI image layout as a tar archive, the image named `name` (what `ctr images import` reads). */
export function ociArchive(image: Image, name: string): Buffer {
  const manifest = image.manifests.oci;
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.bytes.length,
        annotations: {
          "io.containerd.image.name": name,
          "org.opencontainers.image.ref.name": name,
        },
      },
    ],
  };
  const blob = (b: { digest: string; bytes: Buffer }) =>
    tarFile(`blobs/sha256/${b.digest.slice("sha256:".length)}`, b.bytes);
  return Buffer.concat([
    tarFile("oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}')),
    tarFile("index.json", Buffer.from(JSON.stringify(index))),
    blob(manifest),
    blob(image.config),
    blob(image.layer),
    Buffer.alloc(1024),
  ]);
}

interface Proc {
  name: string;
  proc?: ChildProcess;
}

function startProc(name: string, cmd: string, args: string[], logDir: string): Proc {
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: "a" });
  const proc = spawn(cmd, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CONTROLPLANE_EXIT_WITH_PARENT: "1" },
  });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  return { name, proc };
}

async function stopProc(p: Proc, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  const proc = p.proc;
  p.proc = undefined;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** Mount points at or under `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  return info
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .map((p) => p.replace(/\\040/g, " "))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Every cgroup v1 (and unified) hierarchy mounted under /sys/fs/cgroup. */
async function cgroupHierarchies(): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  return info
    .split("\n")
    .filter((line) => / - cgroup2? /.test(line))
    .map((line) => line.split(" ")[4] ?? "")
    .filter((p) => p.startsWith("/sys/fs/cgroup"));
}

/** Process ids in a cgroup and every cgroup below it. */
async function cgroupProcesses(path: string): Promise<number[]> {
  if (!existsSync(path)) return [];
  const pids = (await readFile(join(path, "cgroup.procs"), "utf8").catch(() => ""))
    .split("\n")
    .filter((l) => l !== "")
    .map(Number);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isDirectory()) pids.push(...(await cgroupProcesses(join(path, entry.name))));
  }
  return pids;
}

/**
 * Kills what is left in the node's cgroups: the containers' processes
 * outlive their shims, and a cgroup with a process in it cannot be removed.
 */
async function killCgroupProcesses(path: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = await cgroupProcesses(path);
    if (pids.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `failed to stop the node's containers: processes ${pids.join(", ")} remain in ${path}`,
      );
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function removeCgroupTree(path: string): Promise<void> {
  if (!existsSync(path)) return;
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isDirectory()) await removeCgroupTree(join(path, entry.name));
  }
  await rmdir(path);
}

/** Processes whose command line contains `needle` (the shims of this node's containerd). */
async function processesWith(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

/** A TCP relay from `host:port` to 127.0.0.1:`targetPort`. */
async function relay(host: string, port: number, targetPort: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = createConnection({ host: "127.0.0.1", port: targetPort });
    sockets.add(inbound);
    sockets.add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const done = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on("error", done).on("close", done);
    outbound.on("error", done).on("close", done);
  });
  server.on("close", () => {
    for (const s of sockets) s.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function kubeletConfig(dir: string, port: number, healthzPort: number, clientCa: string): string {
  return JSON.stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // This machine has cgroup v1 only (deprecated, still supported).
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    cgroupRoot: `/${CGROUP_ROOT}`,
    containerRuntimeEndpoint: `unix://${join(dir, "containerd.sock")}`,
    address: NODE_IP,
    port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: false },
      x509: { clientCAFile: clientCa },
    },
    authorization: { mode: "AlwaysAllow" },
    podLogsDir: join(dir, "pod-logs"),
    failSwapOn: false,
    // Disk and memory pressure must not evict the test Pods on a shared machine.
    evictionHard: {
      "memory.available": "1Mi",
      "nodefs.available": "1%",
      "imagefs.available": "1%",
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    nodeStatusUpdateFrequency: "4s",
    syncFrequency: "10s",
    fileCheckFrequency: "10s",
    registerNode: true,
    resolvConf: "/etc/resolv.conf",
  });
}

function containerdConfig(dir: string): string {
  return `version = 3
root = "${join(dir, "containerd/root")}"
state = "${join(dir, "containerd/state")}"

[grpc]
  address = "${join(dir, "containerd.sock")}"
[ttrpc]
  address = "${join(dir, "containerd.sock.ttrpc")}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${PAUSE_IMAGE}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "${join(dir, "certs.d")}"

[plugins.'io.containerd.cri.v1.runtime']
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to
  # lower /proc/self/oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["${cniBinDir}"]
    conf_dir = "${join(dir, "cni")}"

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: "ecr-node",
    plugins: [
      {
        type: "bridge",
        bridge: BRIDGE,
        isGateway: true,
        // Pods route everything through the node (the kubernetes Service, the doubles).
        isDefaultGateway: true,
        ipMasq: false,
        ipam: {
          type: "host-local",
          dataDir: join(dir, "cni-ipam"),
          ranges: [[{ subnet: POD_SUBNET, gateway: NODE_IP }]],
        },
      },
    ],
  });
}

function kubeconfigWithCert(server: string, caData: string, cert: string, key: string): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "local", cluster: { server, "certificate-authority-data": b64(caData) } }],
    users: [
      { name: "node", user: { "client-certificate-data": b64(cert), "client-key-data": b64(key) } },
    ],
    contexts: [{ name: "node", context: { cluster: "local", user: "node" } }],
    "current-context": "node",
  });
}

/**
 * One node world per machine: the bridge, its addresses, the cgroups and the
 * relay on the kubernetes Service's address are the machine's. A second one
 * (another checkout's test run) waits for the first to stop.
 */
const LOCK = "/run/ecr-node-world.lock";

async function lockMachine(progress: (line: string) => void, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    try {
      await mkdir(LOCK);
      await writeFile(join(LOCK, "pid"), String(process.pid));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number(await readFile(join(LOCK, "pid"), "utf8").catch(() => "0"));
    let alive = owner > 0;
    try {
      if (alive) process.kill(owner, 0);
    } catch {
      alive = false;
    }
    if (!alive && owner > 0) {
      // Its owner died without stopping: the lock is free (what it left
      // behind may still be in the way, and the start then says what).
      await rm(LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `failed to start the node world: another one (process ${owner}) still runs; stop it, or remove ${LOCK} if it is gone`,
      );
    }
    if (!told) progress(`waiting for the node world of process ${owner} to stop…`);
    told = true;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

async function unlockMachine(): Promise<void> {
  const owner = Number(await readFile(join(LOCK, "pid"), "utf8").catch(() => "0"));
  if (owner === process.pid) await rm(LOCK, { recursive: true, force: true });
}

/** What a starting node world has made so far, undone in reverse by stopWorld. */
interface Building {
  cp: ControlPlane;
  /** The control plane is the world's own, stopped with it. */
  ownCp: boolean;
  dir: string;
  procs: Proc[];
  undo: Array<() => Promise<void>>;
  progress: (line: string) => void;
}

/**
 * Starts the node world: takes the machine's lock, a control plane (unless
 * `o.cp`), the Pod network, cgroups, the registry double, containerd, the
 * kubelet and the controllers a node needs, and waits for the Node to be
 * Ready and untainted. Throws (having undone what it made) when anything
 * fails; see nodeWorldUnavailable for what it needs.
 */
export async function startNode(o: NodeOptions): Promise<NodeWorld> {
  const unavailable = nodeWorldUnavailable();
  if (unavailable) throw new Error(`failed to start the node world: ${unavailable}`);
  const progress = o.progress ?? (() => {});
  await lockMachine(progress, o.lockTimeoutMs ?? 240_000);
  let cp: ControlPlane;
  try {
    cp = o.cp ?? (await startControlPlane({ progress }));
  } catch (err) {
    await unlockMachine();
    throw err;
  }
  // Short: containerd's socket path must fit a sockaddr_un.
  const dir = await mkdtemp("/tmp/ecr-node-");
  const w: Building = { cp, ownCp: o.cp === undefined, dir, procs: [], undo: [], progress };
  const stop = () => stopWorld(w);
  try {
    const expose = await preparePodNetwork(w);
    await prepareCgroups(w);
    const registry = await startRegistry(w, o);
    const { ctr, importImage } = await startContainerd(w);
    await startKubelet(w);
    await waitForNodeReady(w);
    return {
      cp,
      kubeconfigPath: cp.kubeconfigPath,
      registry,
      imageRef: (repository, tag = "v1") => `${ECR_HOST}/${repository}:${tag}`,
      imageDigest: registry.image.manifests.oci.digest,
      dir,
      ctr,
      importImage,
      expose,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/**
 * Stops the processes, undoes every change in reverse, removes the world's
 * directory, its own control plane and the machine's lock; every step runs
 * even when one before it fails, and their errors come back together.
 */
async function stopWorld(w: Building): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  for (const p of [...w.procs].reverse()) await step(() => stopProc(p));
  for (const fn of [...w.undo].reverse()) await step(fn);
  // NODE_WORLD_LOGS=DIR keeps the components' logs for a look afterwards.
  const keep = process.env.NODE_WORLD_LOGS;
  if (keep) {
    await step(async () => {
      await mkdir(keep, { recursive: true });
      for (const f of await readdir(w.dir)) {
        if (f.endsWith(".log")) await copyFile(join(w.dir, f), join(keep, f));
      }
      await copyTree(join(w.dir, "pod-logs"), join(keep, "pod-logs"), { recursive: true });
    });
  }
  await step(() => rm(w.dir, { recursive: true, force: true }));
  if (w.ownCp) await step(() => w.cp.stop());
  await step(unlockMachine);
  if (errors.length > 0) throw new AggregateError(errors, "failed to stop the node world");
}

/**
 * Saves the sysctls, makes the Pod network's bridge with the node's and the
 * kubernetes Service's addresses, and relays that Service to the API
 * server; returns NodeWorld.expose.
 */
async function preparePodNetwork(w: Building): Promise<(port: number) => Promise<string>> {
  const { undo } = w;
  // Sysctls first, so that whatever changes them later is undone.
  const saved = await Promise.all(
    SYSCTLS.map(async (s) => [s, await readFile(`/proc/sys/${s}`, "utf8")] as const),
  );
  undo.push(async () => {
    for (const [s, value] of saved) await writeFile(`/proc/sys/${s}`, value);
  });
  if (!existsSync("/var/log/containers")) {
    // The kubelet links every container's log there (a fixed path).
    undo.push(() => rm("/var/log/containers", { recursive: true, force: true }));
  }

  // The Pod network: a bridge of our own, its gateway the node's address.
  await sh("ip", ["link", "add", BRIDGE, "type", "bridge"]);
  undo.push(async () => {
    await sh("ip", ["link", "del", BRIDGE]).catch(() => undefined);
  });
  await sh("ip", ["addr", "add", `${NODE_IP}/24`, "dev", BRIDGE]);
  await sh("ip", ["link", "set", BRIDGE, "up"]);
  // In-cluster clients dial the kubernetes Service (KUBERNETES_SERVICE_HOST,
  // port 443); with no kube-proxy here its ClusterIP is an address of the
  // bridge, relayed to the API server on loopback.
  await sh("ip", ["addr", "add", `${KUBERNETES_SERVICE_IP}/32`, "dev", BRIDGE]);
  const relays: Server[] = [];
  undo.push(async () => {
    for (const r of relays) await new Promise((done) => r.close(done));
  });
  relays.push(await relay(KUBERNETES_SERVICE_IP, 443, Number(new URL(w.cp.server).port)));
  return async (port: number): Promise<string> => {
    relays.push(await relay(NODE_IP, port, port));
    return `${NODE_IP}:${port}`;
  };
}

/** The kubelet's cgroupRoot must exist in every hierarchy; its processes are killed at stop. */
async function prepareCgroups(w: Building): Promise<void> {
  const hierarchies = await cgroupHierarchies();
  for (const h of hierarchies) {
    const path = join(h, CGROUP_ROOT);
    await mkdir(path, { recursive: true });
    w.undo.push(() => removeCgroupTree(path));
    if (h.endsWith("/cpuset")) {
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        await writeFile(join(path, f), await readFile(join(h, f), "utf8"));
      }
    }
  }
  // Runs before the removals above (undo runs in reverse).
  const pids = hierarchies.find((h) => h.endsWith("/pids"));
  if (pids !== undefined) w.undo.push(() => killCgroupProcesses(join(pids, CGROUP_ROOT)));
}

/**
 * The registry double behind the ECR host name, and containerd's and the
 * CNI's configuration naming it (containerd is started next).
 */
async function startRegistry(w: Building, o: NodeOptions): Promise<RegistryDouble> {
  const { dir, undo } = w;
  const registry = new RegistryDouble({
    validatePassword: o.validatePassword,
    ...(o.authorizeRepository ? { authorizeRepository: o.authorizeRepository } : {}),
    repositories: NODE_REPOSITORIES,
    tags: ["v1", "v2", "v3"],
    manifestFormat: "oci",
    image: sleeperImage(await readFile(sleeperBinary), "ecr-node test image"),
  });
  await registry.start({ host: "127.0.0.1" });
  undo.push(() => registry.close());
  const hostDir = join(dir, "certs.d", ECR_HOST);
  await mkdir(hostDir, { recursive: true });
  await writeFile(
    join(hostDir, "hosts.toml"),
    // The double as the server itself, not a mirror: a mirror falls back
    // to the real host name, and nothing here may leave the machine.
    `server = "${registry.url}"\n`,
  );
  await mkdir(join(dir, "cni"), { recursive: true });
  await writeFile(join(dir, "cni", "10-ecr-node.conflist"), cniConfig(dir));
  await writeFile(join(dir, "containerd.toml"), containerdConfig(dir));
  return registry;
}

/** containerd, with the pause image imported; returns NodeWorld.ctr and importImage. */
async function startContainerd(w: Building): Promise<Pick<NodeWorld, "ctr" | "importImage">> {
  const { dir } = w;
  // Unmount what containerd and the kubelet mounted under dir (rootfs
  // overlays, network namespaces, Secret volumes) once both are stopped.
  w.undo.push(async () => {
    for (const pid of await processesWith(join(dir, "containerd.sock"))) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const m of await mountsUnder(dir)) {
      await sh("umount", ["-l", m]).catch(() => undefined);
    }
  });
  w.progress("starting containerd…");
  const containerd = startProc(
    "containerd",
    join(containerdBin, "containerd"),
    ["--config", join(dir, "containerd.toml")],
    dir,
  );
  w.procs.push(containerd);
  const ctrArgs = ["--address", join(dir, "containerd.sock"), "-n", "k8s.io"];
  const ctr = async (args: string[]) => await sh(join(containerdBin, "ctr"), [...ctrArgs, ...args]);
  await waitFor("containerd", async () => ((await ctr(["version"])) ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  const importImage = async (archivePath: string) => {
    await ctr(["images", "import", archivePath]);
  };
  const pauseTar = join(dir, "pause.tar");
  await writeFile(
    pauseTar,
    ociArchive(sleeperImage(await readFile(sleeperBinary), "pause"), PAUSE_IMAGE),
  );
  await importImage(pauseTar);
  return { ctr, importImage };
}

/**
 * The kubelet, as system:node:<name> (the Node authorizer's identity), and
 * what a cluster has and this control plane leaves out: a scheduler, the
 * Deployment controller, the kube-root-ca.crt publisher (in-cluster clients
 * read their CA from it) and the node lifecycle controller (it lifts the
 * not-ready taint a kubelet registers its Node with).
 */
async function startKubelet(w: Building): Promise<void> {
  const { cp, dir } = w;
  const node = await issueClientCert(cp.clientCa, dir, `system:node:${NODE_NAME}`, [
    "system:nodes",
  ]);
  const kubeletKubeconfig = join(dir, "kubelet.kubeconfig");
  await writeFile(kubeletKubeconfig, kubeconfigWithCert(cp.server, cp.caData, node.cert, node.key));
  await writeFile(
    join(dir, "kubelet.json"),
    kubeletConfig(dir, await freePort(), await freePort(), cp.clientCa.certPath),
  );
  w.progress("starting kubelet…");
  const start = (name: string, binary: string, args: string[]) =>
    w.procs.push(startProc(name, binary, args, dir));
  start("kubelet", nodeBinary, [
    "kubelet",
    `--config=${join(dir, "kubelet.json")}`,
    `--kubeconfig=${kubeletKubeconfig}`,
    `--root-dir=${join(dir, "kubelet")}`,
    `--cert-dir=${join(dir, "kubelet-pki")}`,
    `--hostname-override=${NODE_NAME}`,
    `--node-ip=${NODE_IP}`,
    "--v=2",
  ]);
  start("kube-scheduler", nodeBinary, [
    "kube-scheduler",
    `--kubeconfig=${join(cp.dir, "kcm.kubeconfig")}`,
    "--leader-elect=false",
    "--secure-port=0",
    "--v=1",
  ]);
  start("kube-controller-manager-node", controlPlaneBinary, [
    "kube-controller-manager",
    `--kubeconfig=${join(cp.dir, "kcm.kubeconfig")}`,
    `--root-ca-file=${join(cp.dir, "certs", "apiserver.crt")}`,
    "--leader-elect=false",
    "--controllers=root-ca-cert-publisher,deployment,node-lifecycle-controller",
    "--secure-port=0",
    "--v=1",
  ]);
}

/** Waits (2 min at most) for the Node to be Ready and untainted; it is deleted at stop. */
async function waitForNodeReady(w: Building): Promise<void> {
  w.progress("waiting for the node to be Ready…");
  const { CoreV1Api, KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  kc.loadFromFile(w.cp.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  await waitFor(
    `node ${NODE_NAME} Ready`,
    async () => {
      const n = await core.readNode({ name: NODE_NAME });
      const ready = n.status?.conditions?.find((c) => c.type === "Ready");
      if (ready?.status !== "True") throw new Error(`Ready=${ready?.status}: ${ready?.message}`);
      const taints = n.spec?.taints ?? [];
      if (taints.length > 0) throw new Error(`tainted ${JSON.stringify(taints)}`);
      return true;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  w.progress(`node ${NODE_NAME} Ready`);
  w.undo.push(async () => {
    // The Node object goes with the world (a stopped kubelet leaves it NotReady).
    await core.deleteNode({ name: NODE_NAME }).catch(() => undefined);
  });
}
