// `npm run demo` run non-interactively, as a newcomer (or CI) would: it must
// bring up its own stack, show a Secret in every demo namespace, refresh it,
// pass every pull check against the registry double, exit 0, and leave no
// process behind. And it must be able to say FAIL: with the registry refusing
// every pull it exits non-zero.
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../harness/controlplane.js";

const execFileAsync = promisify(execFile);
const NAMESPACES = ["demo-team-a", "demo-team-b", "demo-apps-web"];
// Node 24 from the npm registry comes first, as under `npm run`.
const env = { ...process.env, PATH: `${join(repoRoot, "node_modules/.bin")}:${process.env.PATH}` };

interface DemoRun {
  code: number | string;
  output: string;
  lines: string[];
  ms: number;
}

function runDemo(command: string, args: string[], timeoutMs: number): Promise<DemoRun> {
  const start = Date.now();
  const proc = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  proc.stdout.on("data", (d: Buffer) => {
    output += d.toString("utf8");
  });
  proc.stderr.on("data", (d: Buffer) => {
    output += d.toString("utf8");
  });
  // No TTY here: the demo must print lines, never redraw a screen.
  const timer = setTimeout(() => proc.kill("SIGINT"), timeoutMs);
  return new Promise((resolve) => {
    proc.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? signal ?? -1,
        output,
        lines: output.split("\n"),
        ms: Date.now() - start,
      });
    });
  });
}

/** Every process still running whose pid is listed, or whose command line names `marker`. */
async function leftovers(pids: number[], markers: string[]): Promise<string[]> {
  const { stdout } = await execFileAsync("ps", ["-eo", "pid=,args="]);
  return stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => {
      const pid = Number(l.split(/\s+/, 1)[0]);
      return pids.includes(pid) || markers.some((m) => l.includes(m));
    });
}

function startedByDemo(output: string): { pids: number[]; markers: string[] } {
  const demoPid = /demo \(pid (\d+)\)/.exec(output)?.[1];
  const operatorPid = /operator started \(pid (\d+)\)/.exec(output)?.[1];
  const dataDir = /control plane data: (\S+)/.exec(output)?.[1];
  expect(demoPid, "the demo names its pid").toBeDefined();
  expect(operatorPid, "the demo names the operator's pid").toBeDefined();
  expect(dataDir, "the demo names the control plane's folder").toBeDefined();
  return {
    pids: [Number(demoPid), Number(operatorPid)],
    // etcd, kube-apiserver and kube-controller-manager all carry it in their flags.
    markers: [dataDir as string],
  };
}

describe("npm run demo", () => {
  it("exits 0 after a refresh of every demo Secret with every pull check passed, leaving nothing running", async () => {
    const run = await runDemo(
      "npm",
      ["run", "demo", "--", "--token-lifetime", "10s", "--exit-after-refreshes", "1"],
      240_000,
    );
    console.log(`npm run demo -- --exit-after-refreshes 1: ${run.ms} ms, exit ${run.code}`);
    if (run.code !== 0) console.log(run.output);
    expect(run.code).toBe(0);
    // Line-based output without a terminal: no cursor movement or screen clearing.
    expect(run.output.includes("\u001b[")).toBe(false);
    for (const ns of NAMESPACES) {
      expect(run.lines.some((l) => l.includes(`secret ${ns}/ecr-pull appeared: token #1`))).toBe(
        true,
      );
      expect(
        run.lines.some((l) => l.includes(`secret ${ns}/ecr-pull refreshed (refresh 1): token #`)),
      ).toBe(true);
    }
    const pulls = run.lines.filter((l) => l.includes("] pull check "));
    // Each namespace pulled with its first and its refreshed token.
    expect(pulls.length).toBeGreaterThanOrEqual(NAMESPACES.length * 2);
    for (const ns of NAMESPACES) {
      expect(
        pulls.filter((l) => l.includes(`pull check ${ns} with token #`)).length,
      ).toBeGreaterThanOrEqual(2);
    }
    expect(pulls.filter((l) => !/: ok 200 sha256:/.test(l))).toEqual([]);
    expect(run.output).toContain("pull checks failed: 0");
    expect(run.output).toContain("RESULT: PASS");
    expect(run.output).toMatch(/export KUBECONFIG=\S+admin\.kubeconfig/);
    expect(run.output).toContain("Verified=True");
    const { pids, markers } = startedByDemo(run.output);
    expect(await leftovers(pids, markers)).toEqual([]);
  }, 300_000);

  it("exits non-zero when the registry refuses the pulls, and still leaves nothing running", async () => {
    // The node command `npm run demo` runs after its build (built by the case above).
    const run = await runDemo(
      "node",
      [
        "--import",
        "./scripts/ts-hooks.mjs",
        "scripts/demo.ts",
        "--token-lifetime",
        "10s",
        "--refuse-pulls",
        "--exit-after-refreshes",
        "0",
      ],
      180_000,
    );
    console.log(`demo --refuse-pulls: ${run.ms} ms, exit ${run.code}`);
    expect(run.code, run.output).toBe(1);
    const pulls = run.lines.filter((l) => l.includes("] pull check "));
    expect(pulls.length).toBeGreaterThanOrEqual(NAMESPACES.length);
    expect(pulls.every((l) => l.includes("FAILED 401 registry refuses every request"))).toBe(true);
    expect(run.output).toContain("RESULT: FAIL");
    // A failed run keeps the operator's log for a look; this one was expected.
    const kept = /operator log kept: (\S+)\/operator\.log/.exec(run.output)?.[1];
    expect(kept).toBeDefined();
    expect(readFileSync(join(kept as string, "operator.log"), "utf8")).toContain(
      "registry check failed",
    );
    await rm(kept as string, { recursive: true, force: true });
    const { pids, markers } = startedByDemo(run.output);
    expect(await leftovers(pids, markers)).toEqual([]);
  }, 240_000);
});
