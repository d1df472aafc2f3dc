// Scenarios `--only fanout` and `--only unthrottled`, and the first phase of
// `all` and `idle-cpu`: one resource over every target namespace, its time
// from the apply to the last Secret and ServiceAccount write (the audit log),
// against the floor, the same writes from a minimal client (bench/floor.ts).
//
// Each round: the floor (operator stopped), then a fresh operator's fan-out.
// Between rounds the resource is deleted, the operator cleans up and stops,
// so every round starts alike. Noise on a shared machine only ever adds time,
// so the figure is the least fan-out over the least floor (as Python's timeit
// takes the minimum); every round is printed.
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Secret, ServiceAccount } from "../../src/kube/types.js";
import { controlPlaneBinary, repoRoot, waitFor } from "../../test/harness/controlplane.js";
import {
  applyResource,
  deleteResource,
  getResource,
  readyCondition,
} from "../../test/harness/kube.js";
import {
  ACCOUNT,
  type BenchContext,
  HOUR,
  IMAGE_NODE_FLAGS,
  KubeClient,
  loadKubeConfig,
  OPERATOR_USER,
  progress,
  REGISTRY_HOST,
  RESOURCE,
  SECRET_NAME,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../context.js";
import { type Built, builtModules, type FloorResult, floorWrites } from "../floor.js";
import {
  type AuditWrite,
  binaryCpuSeconds,
  cpuDelta,
  machineCpu,
  machineShares,
  type OperatorProcess,
  percentile,
  round,
} from "../lib.js";
import { type Figures, fmt, type Result, type Row } from "../report.js";

/** One round's seconds, its writes, and the floors beside it. */
interface Round {
  floorS: number;
  floorCpuS: number;
  warmFloorS: number;
  /** NaN when the scenario has no watching floor. */
  watchingFloorS: number;
  fanoutS: number;
  fanoutCpuS: number;
  writes: number;
}

/** Where the last round's fan-out left off, for the phases after it. */
export interface FanOut {
  /** The last round's operator, still running. */
  op: OperatorProcess;
  /** The least fan-out's seconds. */
  fanoutS: number;
  /** The lifetime of the tokens the AWS double issues from the fan-out on (ms). */
  lifetimeMs: number;
  /** Epoch ms the last round's resource was Ready. */
  readyAt: number;
  /** Epoch ms of the last round's last fan-out write. */
  fanoutEnd: number;
  /** GetAuthorizationToken calls during the last round's fan-out. */
  fanoutCalls: number;
}

/** The floors' shared inputs: the targets' file, the built modules and the warm floor's client. */
interface FloorEnv {
  namespacesFile: string;
  modules: Built;
  client: KubeClient;
}

/**
 * Runs `opts.rounds` rounds of floor and fan-out over `targets`; resolves
 * with the rows and JSON fields of the fan-out and the last round's state.
 */
export async function run(
  ctx: BenchContext,
  targets: string[],
): Promise<{ figures: Figures; fanOut: FanOut }> {
  const { opts } = ctx;
  const namespacesFile = join(ctx.cp.dir, "floor-namespaces.json");
  await writeFile(namespacesFile, JSON.stringify(targets));
  const modules = await builtModules();
  const client = new KubeClient(loadKubeConfig(ctx.operatorKubeconfig), {
    qps: opts.qps,
    burst: opts.burst,
    fieldManager: modules.metadata.FIELD_MANAGER,
  });
  const env: FloorEnv = { namespacesFile, modules, client };
  const rounds: Round[] = [];
  let last: (Omit<FanOut, "fanoutS"> & { round: Round }) | undefined;
  for (let roundNo = 0; roundNo < opts.rounds; roundNo++) {
    const tag = opts.rounds > 1 ? `round ${roundNo + 1}/${opts.rounds}: ` : "";
    const floor = await floors(ctx, env, targets, roundNo, tag);
    last = await fanOutOnce(ctx, targets, tag, floor);
    rounds.push(last.round);
    if (roundNo < opts.rounds - 1) await undoFanout(ctx, last.op);
  }
  if (!last) throw new Error("no operator after the fan-out rounds");
  const { round: _, ...state } = last;
  const fanoutS = Math.min(...rounds.map((r) => r.fanoutS));
  return {
    figures: { rows: rows(ctx, rounds), notes: [], result: result(ctx, rounds) },
    fanOut: { ...state, fanoutS },
  };
}

/** One round's floors: warm (this process), fresh (a process of its own) and, unthrottled, watching. */
async function floors(
  ctx: BenchContext,
  env: FloorEnv,
  targets: string[],
  roundNo: number,
  tag: string,
): Promise<Omit<Round, "fanoutS" | "fanoutCpuS" | "writes">> {
  const n = ctx.opts.n;
  progress(`${tag}floor: ${n} Secret creates + ${n} ServiceAccount patches, minimal client`);
  // The warm floor: this process's client, which has written before and
  // keeps its connections open; printed for comparison.
  const warm = await floorWrites(env.client, env.modules, {
    namespaces: targets,
    name: roundNo === 0 ? "floor-warm" : `floor-warm-${roundNo}`,
    registryHost: REGISTRY_HOST,
    concurrency: ctx.opts.writeConcurrency,
  });
  // The floor: a minimal client in a process of its own, started fresh as
  // the operator is (see bench/floor.ts). Its control plane CPU is the same
  // writes' cost to the API server and etcd.
  const floorServerStart = await binaryCpuSeconds(controlPlaneBinary);
  const floorMachineStart = await machineCpu();
  const fresh = await floorProcess(ctx, {
    namespacesFile: env.namespacesFile,
    name: roundNo === 0 ? "floor-pull" : `floor-pull-${roundNo}`,
  });
  const floorMachine = machineShares(floorMachineStart, await machineCpu());
  const floorServer = cpuDelta(floorServerStart, await binaryCpuSeconds(controlPlaneBinary));
  progress(
    `${tag}floor_s=${round(fresh.seconds)} (fresh process; client CPU ${round(fresh.cpuSeconds)} s, control plane CPU ${floorServer.text}; ${sharesText(floorMachine)}); warm in-process floor ${round(warm.seconds)} s (client CPU ${round(warm.cpuSeconds)} s)`,
  );
  // The watching floor (unthrottled only): the same writes from a client
  // that also watches them, as every controller with a cache must. What
  // the fan-out takes beyond it is the operator's own.
  let watching: FloorResult | undefined;
  if (ctx.opts.watchingFloor) {
    const serverStart = await binaryCpuSeconds(controlPlaneBinary);
    watching = await floorProcess(ctx, {
      namespacesFile: env.namespacesFile,
      name: `floor-watch-${roundNo}`,
      watch: true,
    });
    const server = cpuDelta(serverStart, await binaryCpuSeconds(controlPlaneBinary));
    progress(
      `${tag}watching floor_s=${round(watching.seconds)} (fresh process; client CPU ${round(watching.cpuSeconds)} s, ${watching.watchEvents} watch events; control plane CPU ${server.text})`,
    );
  }
  return {
    floorS: fresh.seconds,
    floorCpuS: fresh.cpuSeconds,
    warmFloorS: warm.seconds,
    watchingFloorS: watching?.seconds ?? Number.NaN,
  };
}

/** A fresh operator at rest, then the resource applied over every target: the fan-out, checked. */
async function fanOutOnce(
  ctx: BenchContext,
  targets: string[],
  tag: string,
  floor: Omit<Round, "fanoutS" | "fanoutCpuS" | "writes">,
): Promise<Omit<FanOut, "fanoutS"> & { round: Round }> {
  const { opts, aws } = ctx;
  const op = await ctx.startOperator();
  await ctx.memory.sample(op, "start");
  // The profiler's sampling thread alone costs about 0.04 CPU-s a window.
  const rest = await op.waitForRest(opts.cpuProf ? { quietCpuSeconds: 0.06 } : {});
  progress(
    `${tag}operator at rest ${round(rest.seconds)} s after its caches synced (${round(rest.cpuSeconds)} CPU-s meanwhile)`,
  );
  // A refresh must come due after the fan-out is done: the first token lives long
  // enough that half its lifetime (minus at most 10% jitter) clears a generous
  // estimate of the fan-out; the token of the first refresh as well (for the
  // 20-resource refresh); after that, 12 h so the rest measurement sees no refresh.
  const expectedS = Math.max(20, 3 * floor.floorS + 15);
  const lifetimeMs = opts.all ? Math.round((expectedS / 0.45) * 1000) : 12 * HOUR;
  aws.tokenLifetimeMs = lifetimeMs;
  progress(
    `${tag}fan-out: applying ${RESOURCE} over ${opts.n} namespaces (token lifetime ${round(lifetimeMs / 1000, 0)}s)`,
  );
  // The CPU readings come first: the fan-out's clock starts at the apply.
  const fanoutCpuStart = await op.cpuSeconds();
  const fanoutServerStart = await binaryCpuSeconds(controlPlaneBinary);
  const fanoutMachineStart = await machineCpu();
  const applyAt = Date.now();
  await applyResource(ctx.k, RESOURCE, {
    secretName: SECRET_NAME,
    namespaces: ["bench-*"],
    registries: [{ accountId: ACCOUNT }],
  });
  const appliedMs = Date.now() - applyAt;
  const r1 = await ctx.waitStatus(
    `${RESOURCE} Ready over ${opts.n} namespaces`,
    RESOURCE,
    (r) => readyCondition(r)?.status === "True" && r.status?.namespaces?.synced === opts.n,
    600_000,
  );
  const readyAt = Date.now();
  const fanoutMachine = machineShares(fanoutMachineStart, await machineCpu());
  const fanoutCpuS = (await op.cpuSeconds()) - fanoutCpuStart;
  const fanoutServer = cpuDelta(fanoutServerStart, await binaryCpuSeconds(controlPlaneBinary));
  const writes = await fanoutWrites(ctx, applyAt);
  const fanoutS = (writes.end - applyAt) / 1000;
  const token1 = aws.issued().at(-1);
  await verifyFanout(ctx.admin, targets, token1?.password ?? "");
  const fanoutCalls = ctx.ecrCalls(applyAt, readyAt);
  progress(
    `${tag}fanout_s=${round(fanoutS)} ratio=${round(fanoutS / floor.floorS)} (${writes.count} writes, ${fanoutCalls} AWS calls; applied in ${appliedMs} ms, first request at ${writes.firstRequest - applyAt} ms, token at ${(token1?.issuedAt ?? Number.NaN) - applyAt} ms, first write at ${writes.firstWrite - applyAt} ms; operator CPU ${round(fanoutCpuS)} s, control plane CPU ${fanoutServer.text}; ${sharesText(fanoutMachine)}); ${r1.status?.conditions?.[0]?.message}`,
  );
  await ctx.memory.sample(op, "fan-out");
  return {
    op,
    lifetimeMs,
    readyAt,
    fanoutEnd: writes.end,
    fanoutCalls,
    round: { ...floor, fanoutS, fanoutCpuS, writes: writes.count },
  };
}

/**
 * The operator's fan-out writes since `applyAt` in the audit log: how many,
 * the first and last one's completion and its first request's arrival (its
 * finalizer), epoch ms. Throws unless every target has its Secret and
 * ServiceAccount write.
 */
async function fanoutWrites(
  ctx: BenchContext,
  applyAt: number,
): Promise<{ count: number; end: number; firstWrite: number; firstRequest: number }> {
  const n = ctx.opts.n;
  const operatorWrites = await ctx.audit.since(OPERATOR_USER, applyAt);
  const fanWrites = operatorWrites.filter((w) => isTargetWrite(w, "create") && w.code < 300);
  const namespacesOf = (resource: string) =>
    new Set(fanWrites.filter((w) => w.resource === resource).map((w) => w.namespace));
  const secretsWritten = namespacesOf("secrets");
  const sasPatched = namespacesOf("serviceaccounts");
  if (secretsWritten.size < n || sasPatched.size < n) {
    throw new Error(
      `failed to see the fan-out in the audit log: ${secretsWritten.size} Secrets and ${sasPatched.size} ServiceAccounts of ${n}`,
    );
  }
  return {
    count: fanWrites.length,
    end: Math.max(...fanWrites.map((w) => w.completed)),
    firstWrite: Math.min(...fanWrites.map((w) => w.completed)),
    firstRequest: Math.min(...operatorWrites.map((w: AuditWrite) => w.received)),
  };
}

/** Undoes the fan-out through the operator itself (the resource deleted, its Secrets cleaned up), then stops it. */
async function undoFanout(ctx: BenchContext, op: OperatorProcess): Promise<void> {
  const n = ctx.opts.n;
  await deleteResource(ctx.k, RESOURCE);
  await waitFor(
    `${RESOURCE} to be deleted and its ${n} Secrets cleaned up`,
    async () => {
      if (await getResource(ctx.k, RESOURCE)) return undefined;
      const left = await ctx.admin.list(SECRETS, {
        labelSelector: `ecrcreds.io/owner=${RESOURCE}`,
        limit: 1,
      });
      return left.items.length === 0 ? true : undefined;
    },
    { timeoutMs: 120_000 + n * 100, intervalMs: 250 },
  );
  await op.stop();
}

const least = (rounds: Round[], f: (r: Round) => number) => Math.min(...rounds.map(f));

/**
 * Each round's own ratio, its floor and fan-out taken seconds apart: the
 * machine's speed drifts between rounds (docs/performance.md, "Noise"), and
 * a round's pair shares most of its drift. The median of those is printed
 * beside the least/least figure, for comparison.
 */
function roundMedian(rounds: Round[], f: (r: Round) => number) {
  const ratios = rounds.map((r) => r.fanoutS / f(r));
  return { median: percentile(ratios, 50), text: ratios.map((x) => fmt(x)).join(", ") };
}

/** The fan-out's rows: least of the rounds, each round listed when there are several. */
function rows(ctx: BenchContext, rounds: Round[]): Row[] {
  const { rounds: count, ratioTarget, watchingFloor } = ctx.opts;
  const fanoutS = least(rounds, (r) => r.fanoutS);
  const floorS = least(rounds, (r) => r.floorS);
  const warmFloorS = least(rounds, (r) => r.warmFloorS);
  const each = (f: (r: Round) => number) =>
    count > 1 ? ` (least of ${rounds.map((r) => fmt(f(r))).join(", ")})` : "";
  const out: Row[] = [
    {
      what: `fanout_s (apply → last Secret/SA write)${each((r) => r.fanoutS)}`,
      value: fmt(fanoutS),
    },
    {
      what: `floor_s (minimal client, fresh process, same settings)${each((r) => r.floorS)}`,
      value: fmt(floorS),
    },
    {
      what: "fanout_ratio",
      value: fmt(fanoutS / floorS),
      target: `≤ ${ratioTarget}`,
      met: fanoutS / floorS <= ratioTarget,
    },
    {
      what: `  writes during fan-out (Secrets+SAs)${count > 1 ? ` (most of ${rounds.map((r) => r.writes).join(", ")})` : ""}`,
      value: String(Math.max(...rounds.map((r) => r.writes))),
    },
    {
      what: `fanout_cpu_s (operator, apply → Ready)${each((r) => r.fanoutCpuS)}`,
      value: fmt(least(rounds, (r) => r.fanoutCpuS)),
    },
    {
      what: `floor_cpu_s (minimal client)${each((r) => r.floorCpuS)}`,
      value: fmt(least(rounds, (r) => r.floorCpuS)),
    },
    {
      what: `floor_warm_s (the bench's own client, warm)${each((r) => r.warmFloorS)}`,
      value: fmt(warmFloorS),
    },
    { what: "fanout_ratio_warm_floor (for comparison)", value: fmt(fanoutS / warmFloorS) },
  ];
  const perRound = roundMedian(rounds, (r) => r.floorS);
  if (count > 1) {
    // Held to the same target: least/least alone, over many rounds, compares
    // the luckiest fan-out with the luckiest floor.
    out.push({
      what: `fanout_ratio_round_median (median of ${perRound.text})`,
      value: fmt(perRound.median),
      target: `≤ ${ratioTarget}`,
      met: perRound.median <= ratioTarget,
    });
  }
  if (watchingFloor) out.push(...watchingRows(rounds, count, each));
  return out;
}

/** The watching floor's rows (unthrottled only). */
function watchingRows(
  rounds: Round[],
  count: number,
  each: (f: (r: Round) => number) => string,
): Row[] {
  const fanoutS = least(rounds, (r) => r.fanoutS);
  const watchingFloorS = least(rounds, (r) => r.watchingFloorS);
  const out: Row[] = [
    {
      what: `floor_watching_s (minimal client that watches its writes)${each((r) => r.watchingFloorS)}`,
      value: fmt(watchingFloorS),
    },
    {
      what: "fanout_ratio_watching_floor (the operator's own share)",
      value: fmt(fanoutS / watchingFloorS),
    },
  ];
  if (count > 1) {
    const perRound = roundMedian(rounds, (r) => r.watchingFloorS);
    out.push({
      what: `fanout_ratio_watching_floor_round_median (median of ${perRound.text})`,
      value: fmt(perRound.median),
    });
  }
  return out;
}

/** The fan-out's fields of the JSON line (null where the scenario does not measure one). */
function result(ctx: BenchContext, rounds: Round[]): Result {
  const { rounds: count, watchingFloor } = ctx.opts;
  const fanoutS = least(rounds, (r) => r.fanoutS);
  const floorS = least(rounds, (r) => r.floorS);
  const warmFloorS = least(rounds, (r) => r.warmFloorS);
  const watchingFloorS = least(rounds, (r) => r.watchingFloorS);
  return {
    fanout_s: round(fanoutS),
    floor_s: round(floorS),
    fanout_ratio: round(fanoutS / floorS),
    fanout_cpu_s: round(least(rounds, (r) => r.fanoutCpuS)),
    floor_cpu_s: round(least(rounds, (r) => r.floorCpuS)),
    floor_warm_s: round(warmFloorS),
    fanout_ratio_warm_floor: round(fanoutS / warmFloorS),
    floor_watching_s: watchingFloor ? round(watchingFloorS) : null,
    fanout_ratio_watching_floor: watchingFloor ? round(fanoutS / watchingFloorS) : null,
    fanout_ratio_round_median:
      count > 1 ? round(roundMedian(rounds, (r) => r.floorS).median) : null,
    fanout_ratio_watching_floor_round_median:
      watchingFloor && count > 1
        ? round(roundMedian(rounds, (r) => r.watchingFloorS).median)
        : null,
  };
}

/** A write the fan-out makes in a target namespace: its Secret or the default ServiceAccount. */
function isTargetWrite(
  w: { resource: string; verb: string; name: string; namespace: string },
  secretVerb: string,
): boolean {
  if (!/^bench-\d{4}$/.test(w.namespace)) return false;
  if (w.resource === "secrets") return w.name === SECRET_NAME && w.verb === secretVerb;
  return w.resource === "serviceaccounts" && w.name === "default" && w.verb === "patch";
}

/**
 * The floor: what the API server allows for the same writes, from a minimal
 * client in a process of its own started fresh (bench/floor.ts), with the
 * operator's Node flags, QPS, burst, write concurrency and identity.
 * Resolves with its wall and CPU seconds over the writes.
 */
async function floorProcess(
  ctx: BenchContext,
  opts: {
    namespacesFile: string;
    name: string;
    /** The watching floor: it also watches what it writes (bench/floor.ts --watch). */
    watch?: boolean;
  },
): Promise<FloorResult> {
  const { cpuProf, writeConcurrency, qps, burst } = ctx.opts;
  const child = spawn(
    process.execPath,
    [
      ...IMAGE_NODE_FLAGS,
      // Profiled beside the operator, to compare the two (file name floor-*.cpuprofile).
      ...(cpuProf
        ? ["--cpu-prof", `--cpu-prof-dir=${cpuProf}`, `--cpu-prof-name=${opts.name}.cpuprofile`]
        : []),
      "--import",
      join(repoRoot, "scripts/ts-hooks.mjs"),
      join(repoRoot, "bench/floor.ts"),
      `--kubeconfig=${ctx.operatorKubeconfig}`,
      `--namespaces-file=${opts.namespacesFile}`,
      `--name=${opts.name}`,
      `--registry-host=${REGISTRY_HOST}`,
      `--concurrency=${writeConcurrency}`,
      `--qps=${qps}`,
      `--burst=${burst}`,
      ...(opts.watch ? ["--watch"] : []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString("utf8");
  });
  const code = await new Promise<number | string>((resolve) =>
    child.once("exit", (c, signal) => resolve(c ?? signal ?? -1)),
  );
  const line = out.trim().split("\n").at(-1) ?? "";
  if (code !== 0 || !line.startsWith("{")) {
    throw new Error(`failed to run the floor process (exit ${code}): ${err.trim() || out.trim()}`);
  }
  return JSON.parse(line) as FloorResult;
}

/** The machine's stolen and idle CPU over a window, as printed beside each round. */
function sharesText(shares: { steal: number; idle: number }): string {
  const pct = (x: number) => `${round(x * 100, 1)} %`;
  return `machine: ${pct(shares.steal)} stolen, ${pct(shares.idle)} idle`;
}

/** Checks every target's Secret holds `password` and its default ServiceAccount references it. */
export async function verifyFanout(
  admin: KubeClient,
  targets: string[],
  password: string,
): Promise<void> {
  const secrets = await admin.list<Secret>(SECRETS, {
    labelSelector: `ecrcreds.io/owner=${RESOURCE}`,
  });
  const good = new Set(
    secrets.items
      .filter((s) => {
        const raw = s.data?.[".dockerconfigjson"];
        return raw && Buffer.from(raw, "base64").toString("utf8").includes(password);
      })
      .map((s) => s.metadata?.namespace),
  );
  const sas = await admin.list<ServiceAccount>(SERVICE_ACCOUNTS, {
    fieldSelector: "metadata.name=default",
  });
  const referenced = new Set(
    sas.items
      .filter((sa) => sa.imagePullSecrets?.some((r) => r.name === SECRET_NAME))
      .map((sa) => sa.metadata?.namespace),
  );
  const missing = targets.filter((ns) => !good.has(ns) || !referenced.has(ns));
  if (missing.length > 0 || !password) {
    throw new Error(
      `failed to verify the fan-out: ${missing.length} namespaces lack the Secret with the issued password or the ServiceAccount reference (first: ${missing.slice(0, 3).join(", ")})`,
    );
  }
}
