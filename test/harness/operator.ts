// Runs the operator for a test: in this process (its caches and metrics can
// be inspected) or as its own process from the built executable (it can be
// killed and restarted, as in production).
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type OperatorConfig, parseCommandLine } from "../../src/cli/config.js";
import type { Controller } from "../../src/controller/controller.js";
import { makeController } from "../../src/controller/from-settings.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { repoRoot, waitFor } from "./controlplane.js";

export interface InProcessOperator {
  controller: Controller;
  metrics: Metrics;
  config: OperatorConfig;
  /** Every log line (JSON), for leak checks. */
  logs: string[];
  stop(): Promise<void>;
}

/** Settings for tests: fast retries, no probes, debug logs. */
export function testConfig(
  kubeconfig: string,
  overrides: Partial<OperatorConfig> = {},
): OperatorConfig {
  const { config } = parseCommandLine(
    [
      "run",
      `--kubeconfig=${kubeconfig}`,
      "--metrics-bind-address=0",
      "--health-probe-bind-address=0",
      "--log-level=debug",
      "--min-refresh-interval=500ms",
      "--aws-backoff-base=200ms",
      "--aws-backoff-max=2s",
      "--aws-timeout=2s",
      "--verify=false",
    ],
    {},
  );
  return { ...config, ...overrides };
}

export async function startOperator(config: OperatorConfig): Promise<InProcessOperator> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logs.push(line);
      if (process.env.OPERATOR_LOGS) process.stderr.write(chunk);
      cb();
    },
  });
  const log = createLogger({ level: config.logLevel, format: "json", destination: sink });
  const metrics = new Metrics({ processMetrics: false });
  const controller = makeController(config, log, metrics);
  await controller.startInformers();
  controller.startWorkers();
  return {
    controller,
    metrics,
    config,
    logs,
    stop: () => controller.stop(),
  };
}

export interface OperatorProcess {
  proc: ChildProcess;
  output: string[];
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export const operatorBin = join(repoRoot, "bin/ecr-creds-refresher");

/** Starts the built executable (`npm run build` first) with these arguments and environment. */
export function startOperatorProcess(
  args: string[],
  env: Record<string, string> = {},
  /** Node's own flags, e.g. the image's (bench/lib.ts imageNodeFlags). */
  nodeArgs: readonly string[] = [],
): OperatorProcess {
  const proc = spawn(process.execPath, [...nodeArgs, operatorBin, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line) output.push(line);
    if (process.env.OPERATOR_LOGS) process.stderr.write(chunk);
  };
  proc.stdout?.on("data", collect);
  proc.stderr?.on("data", collect);
  const exited = new Promise<number | string>((resolve) => {
    proc.once("exit", (code, signal) => resolve(code ?? signal ?? -1));
  });
  return {
    proc,
    output,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Runs the executable to completion and returns its exit code and output. */
export async function runOperatorCommand(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<{ code: number | string; output: string }> {
  const p = startOperatorProcess(args, env);
  const timer = setTimeout(() => p.proc.kill("SIGKILL"), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, output: p.output.join("\n") };
}

export { waitFor };
