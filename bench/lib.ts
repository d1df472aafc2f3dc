// Helpers of the benchmark: the operator as its own process (with its peak
// RSS from /proc), an incremental reader of the API server's audit log and
// small statistics (the bounded-concurrency pool is src/reconcile/pool.ts).
// Plain Node type stripping runs this file: no parameter properties, no enums.
import { type ChildProcess, spawn } from "node:child_process";
import { open, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../test/harness/controlplane.js";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

// --- Audit log -----------------------------------------------------------------

/** One write request as the API server's audit log saw it (only what the benchmark reads). */
export interface AuditWrite {
  verb: string;
  user: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  code: number;
  /** Epoch ms the request arrived. */
  received: number;
  /** Epoch ms the response was complete. */
  completed: number;
}

const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

/**
 * Reads the audit log incrementally from where it stopped, keeping write
 * events only (the policy logs no get/list/watch): at tens of thousands of
 * lines, re-reading the whole file for every question would dominate.
 */
export class AuditTail {
  readonly path: string;
  readonly writes: AuditWrite[] = [];
  private offset = 0;
  private rest = "";

  constructor(path: string) {
    this.path = path;
  }

  async read(): Promise<AuditWrite[]> {
    const fh = await open(this.path, "r");
    try {
      const { size } = await fh.stat();
      while (this.offset < size) {
        const length = Math.min(size - this.offset, 8 * 1024 * 1024);
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        const text = this.rest + buf.subarray(0, bytesRead).toString("utf8");
        const lines = text.split("\n");
        this.rest = lines.pop() ?? "";
        for (const line of lines) this.parse(line);
      }
    } finally {
      await fh.close();
    }
    return this.writes;
  }

  private parse(line: string): void {
    if (!line) return;
    const e = JSON.parse(line) as {
      verb: string;
      user?: { username?: string };
      objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
      responseStatus?: { code?: number };
      requestReceivedTimestamp: string;
      stageTimestamp: string;
    };
    if (!WRITE_VERBS.has(e.verb)) return;
    this.writes.push({
      verb: e.verb,
      user: e.user?.username ?? "",
      resource: e.objectRef?.resource ?? "",
      subresource: e.objectRef?.subresource ?? "",
      namespace: e.objectRef?.namespace ?? "",
      name: e.objectRef?.name ?? "",
      code: e.responseStatus?.code ?? 0,
      received: Date.parse(e.requestReceivedTimestamp),
      completed: Date.parse(e.stageTimestamp),
    });
  }

  /** Writes by `user` received in [from, to). */
  async since(user: string, from: number, to = Number.POSITIVE_INFINITY): Promise<AuditWrite[]> {
    await this.read();
    return this.writes.filter((w) => w.user === user && w.received >= from && w.received < to);
  }
}

export const describeWrite = (w: AuditWrite): string =>
  `${w.verb} ${w.resource}${w.subresource ? `/${w.subresource}` : ""} ${w.namespace ? `${w.namespace}/` : ""}${w.name} (${w.code})`;

// --- The operator process ---------------------------------------------------

export interface OperatorProcessOptions {
  args: string[];
  env: Record<string, string>;
  /** Node flags before the script, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** Echo the operator's output to stderr. */
  echo?: boolean;
}

/** The built executable (bin/ecr-creds-refresher) as its own process, as in production. */
export class OperatorProcess {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | string>;
  /** The last lines of output (bounded). */
  readonly lines: string[] = [];
  private readonly listeners: Array<(line: string) => void> = [];

  constructor(opts: OperatorProcessOptions) {
    this.proc = spawn(
      process.execPath,
      [...(opts.nodeArgs ?? []), join(repoRoot, "bin/ecr-creds-refresher"), ...opts.args],
      { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line) continue;
        this.lines.push(line);
        if (this.lines.length > 2000) this.lines.splice(0, 1000);
        for (const l of this.listeners) l(line);
      }
      if (opts.echo) process.stderr.write(chunk);
    };
    this.proc.stdout?.on("data", collect);
    this.proc.stderr?.on("data", collect);
    this.exited = new Promise((resolve) => {
      this.proc.once("exit", (code, signal) => resolve(code ?? signal ?? -1));
    });
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  /** Resolves when a log line contains `text` (e.g. '"msg":"caches synced"'). */
  waitForLine(text: string, timeoutMs: number): Promise<string> {
    const seen = this.lines.find((l) => l.includes(text));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for the operator to log ${text}; last output:\n${this.lines.slice(-20).join("\n")}`,
          ),
        );
      }, timeoutMs);
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(
          new Error(
            `the operator exited (${code}) before logging ${text}; last output:\n${this.lines.slice(-20).join("\n")}`,
          ),
        );
      });
      this.listeners.push((line) => {
        if (line.includes(text)) {
          clearTimeout(timer);
          resolve(line);
        }
      });
    });
  }

  /** Peak resident set size (VmHWM) and current (VmRSS), in MiB. */
  async memory(): Promise<{ peakMb: number; rssMb: number }> {
    const status = await readFile(`/proc/${this.pid}/status`, "utf8");
    const kb = (field: string): number => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
      if (!m) throw new Error(`failed to read ${field} of the operator (pid ${this.pid})`);
      return Number(m[1]);
    };
    return { peakMb: kb("VmHWM") / 1024, rssMb: kb("VmRSS") / 1024 };
  }

  /** CPU seconds (user + system) the process has used so far (/proc/<pid>/stat, 100 ticks a second). */
  async cpuSeconds(): Promise<number> {
    return await processCpuSeconds(this.pid);
  }

  /**
   * Resolves once the process has used at most `quietCpuSeconds` of CPU over
   * one `windowMs` window (polled from /proc, whose figure moves in 10 ms
   * ticks), with the seconds and CPU seconds spent waiting; throws after
   * `timeoutMs`. A resource usually meets an operator that has run for a
   * while, so a fan-out is measured from rest, not over the tail of the
   * start (the first collections of the listed caches, code compiled late).
   */
  async waitForRest(
    opts: { windowMs?: number; quietCpuSeconds?: number; timeoutMs?: number } = {},
  ): Promise<{ seconds: number; cpuSeconds: number }> {
    const windowMs = opts.windowMs ?? 500;
    const quiet = opts.quietCpuSeconds ?? 0.02;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const start = Date.now();
    const cpuStart = await this.cpuSeconds();
    let before = cpuStart;
    for (;;) {
      await sleep(windowMs);
      const now = await this.cpuSeconds();
      if (now - before <= quiet)
        return { seconds: (Date.now() - start) / 1000, cpuSeconds: now - cpuStart };
      if (Date.now() - start > timeoutMs) {
        throw new Error(
          `the operator did not come to rest within ${timeoutMs} ms: ${(now - before).toFixed(2)} CPU-s in its last ${windowMs} ms (at most ${quiet} wanted)`,
        );
      }
      before = now;
    }
  }

  /** Sends a signal (SIGUSR2 writes a heap snapshot when started with --heapsnapshot-signal). */
  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  async stop(): Promise<number | string> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 20_000);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

/** Sums a Prometheus counter's samples whose labels all match. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const part of (m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g))
      got[part[1] as string] = part[2] as string;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/**
 * The Node flags the image starts the operator with (the Dockerfile's
 * ENTRYPOINT between `node` and the executable), so the benchmark measures
 * the operator as it runs in production.
 */
export async function imageNodeFlags(): Promise<string[]> {
  const dockerfile = await readFile(join(repoRoot, "Dockerfile"), "utf8");
  const line = dockerfile
    .split("\n")
    .filter((l) => l.startsWith("ENTRYPOINT "))
    .at(-1);
  if (!line) throw new Error("the Dockerfile has no ENTRYPOINT");
  const argv = JSON.parse(line.slice("ENTRYPOINT ".length)) as string[];
  const bin = argv.indexOf("bin/ecr-creds-refresher");
  if (argv[0] !== "node" || bin < 0)
    throw new Error(
      `unexpected Dockerfile ENTRYPOINT ${line}: expected node [flags] bin/ecr-creds-refresher`,
    );
  return argv.slice(1, bin);
}

/** CPU seconds (user + system) process `pid` has used so far (/proc/<pid>/stat, 100 ticks a second). */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU seconds used so far by each running process started from `binary`
 * (its /proc/<pid>/cmdline's first word), by its first argument: the control
 * plane's etcd, kube-apiserver and kube-controller-manager. Processes that
 * exit between two readings drop out, so take differences over a window in
 * which none starts or stops.
 */
export async function binaryCpuSeconds(binary: string): Promise<Record<string, number>> {
  const used: Record<string, number> = {};
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const [command, component = ""] = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split(
        "\0",
      );
      if (command !== binary) continue;
      used[component] = (used[component] ?? 0) + (await processCpuSeconds(Number(entry)));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return used;
}

/** `after − before` per component, and their sum, as "4.1 s (kube-apiserver 3.0, etcd 0.9, …)". */
export function cpuDelta(
  before: Record<string, number>,
  after: Record<string, number>,
): { total: number; text: string } {
  const parts = Object.keys(after)
    .sort()
    .map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)] as const);
  const total = parts.reduce((sum, [, v]) => sum + v, 0);
  return {
    total,
    text: `${round(total)} s (${parts.map(([k, v]) => `${k} ${round(v)}`).join(", ")})`,
  };
}

/** The machine's CPU time so far, in seconds summed over its cores. */
export interface MachineCpu {
  /** user, nice, system, irq and softirq: work done by this machine. */
  busy: number;
  /** idle and iowait. */
  idle: number;
  /** Time the hypervisor gave this machine's virtual cores to someone else. */
  steal: number;
}

/** Reads /proc/stat's `cpu` line (user nice system idle iowait irq softirq steal …, 100 ticks a second; proc(5)). */
export async function machineCpu(): Promise<MachineCpu> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n", 1)[0] ?? "";
  const ticks = line.split(/\s+/).slice(1).map(Number);
  const s = (...at: number[]) => at.reduce((sum, i) => sum + (ticks[i] ?? 0), 0) / 100;
  return { busy: s(0, 1, 2, 5, 6), idle: s(3, 4), steal: s(7) };
}

/**
 * The share of the machine's CPU time between two readings that was stolen
 * by the hypervisor, and the share that was idle (0–1 each): a round whose
 * steal is high ran on a noisy host, and its times say more about the host.
 */
export function machineShares(from: MachineCpu, to: MachineCpu): { steal: number; idle: number } {
  const busy = to.busy - from.busy;
  const idle = to.idle - from.idle;
  const steal = to.steal - from.steal;
  const total = busy + idle + steal;
  return total > 0 ? { steal: steal / total, idle: idle / total } : { steal: 0, idle: 0 };
}
