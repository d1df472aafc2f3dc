// What one run of the benchmark measures: its command line (bench/run.ts
// reads it) as one typed object, with every default and every target that
// depends on the scenario or the size.

/** The scenarios `--only` picks; `all` runs every phase of one operator's life. */
export const SCENARIOS = [
  "all",
  "fanout",
  "outputs",
  "unthrottled",
  "idle-cpu",
  "sources",
  "coldstart",
  "forged",
  "tenants",
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** What one run measures and against which targets. Times in ms unless named `…S`. */
export interface BenchOptions {
  /** Target namespaces of the fan-out. */
  n: number;
  /** The operator's (and the floor's) client limits and write concurrency. */
  qps: number;
  burst: number;
  writeConcurrency: number;
  idleSeconds: number;
  newNamespaces: number;
  newNamespaceIntervalMs: number;
  unrelatedSecrets: number;
  runningPods: number;
  only: Scenario;
  /** `--only all`: every phase of one operator's life. */
  all: boolean;
  /** The unthrottled scenario also runs a floor that watches its writes (bench/floor.ts --watch). */
  watchingFloor: boolean;
  /** Resources with credentials of their own (`sources`, `coldstart`). */
  sources: number;
  /** Floor-and-fan-out rounds: seconds-long fan-outs are at the mercy of a noisy machine. */
  rounds: number;
  /** Issue 20's targets: unthrottled ≤ 1.2, at 10,000 namespaces ≤ 1.05, else the first ≤ 1.5. */
  ratioTarget: number;
  /** 10,000 namespaces or more: issue 20's memory and latency targets. */
  large: boolean;
  /**
   * Peak RSS (MB) and new-namespace p99 (ms): issue 20's at 10,000 namespaces,
   * else the original 1,000-namespace targets (with RSS over the base ≤ 30 MB,
   * which holds only there).
   */
  rssTargetMb: number;
  newNsP99TargetMs: number;
  awsLatencyMs: number;
  cpuProf?: string;
  heapSnapshot?: string;
  echo: boolean;
  operatorNodeOptions?: string;
  operatorEnv: string[];
}
