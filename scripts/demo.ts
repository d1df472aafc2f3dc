// `npm run demo`: the operator doing its job on a local embedded stack, with no
// AWS account and no cluster. It starts a real control plane (etcd,
// kube-apiserver, kube-controller-manager), the AWS double issuing short-lived
// tokens, the registry double, and the operator as its own process from the
// built executable; creates a few namespaces and one ECRPullSecret; then shows
// each namespace's Secret, its expiry, its last refresh and a pull check
// against the registry with the Secret's own credentials, as tokens refresh.
//
//   npm run demo [-- --token-lifetime 2m] [--exit-after-refreshes N]
//
// On a terminal it redraws a table every second; otherwise it prints one line
// per change. Ctrl-C stops everything it started. --exit-after-refreshes N
// exits 0 once every demo Secret was refreshed N times, non-zero if any pull
// check failed.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { V1Secret } from "@kubernetes/client-node";
import { AwsDouble } from "../test/aws-double/index.js";
import {
  type ControlPlane,
  controlPlaneBinary,
  freePort,
  repoRoot,
  startControlPlane,
} from "../test/harness/controlplane.js";
import {
  applyResource,
  createNamespace,
  getResource,
  installCrd,
  putSecret,
  readSecret,
  type TestKube,
  testKube,
} from "../test/harness/kube.js";
import { RegistryDouble } from "../test/registry-double/index.js";

const RESOURCE = "demo";
const SECRET_NAME = "ecr-pull";
const SYSTEM_NAMESPACE = "ecr-demo-system";
const NAMESPACES = ["demo-team-a", "demo-team-b", "demo-apps-web"];
const REPOSITORY = "demo/app";
const ACCOUNT = "123456789012";
const KEYS = {
  accessKeyId: "AKIADEMO000000000001",
  secretAccessKey: "demo-secret-access-key-not-a-real-one-0001",
};
const operatorBin = join(repoRoot, "bin/ecr-creds-refresher");

// ---- arguments ---------------------------------------------------------------

function parseDurationFlag(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  if (!m) throw new Error(`failed to read --${flag}: ${JSON.stringify(value)}; use e.g. 90s or 2m`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * unit;
}

const { values: flags } = parseArgs({
  options: {
    "token-lifetime": { type: "string", default: "2m" },
    "exit-after-refreshes": { type: "string" },
    "refuse-pulls": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    [
      "usage: npm run demo [-- flags]",
      "  --token-lifetime D         lifetime of the tokens the AWS double issues (default 2m; the",
      "                             operator refreshes at half of it)",
      "  --exit-after-refreshes N   exit once every demo Secret was refreshed N times: 0 if every",
      "                             pull check passed, 1 if any failed",
      "  --refuse-pulls             make the registry double refuse every request, to see what a",
      "                             Secret that does not open the registry looks like",
      "",
    ].join("\n"),
  );
  process.exit(0);
}
const tokenLifetimeMs = parseDurationFlag("token-lifetime", flags["token-lifetime"] ?? "2m");
if (tokenLifetimeMs < 5_000) {
  throw new Error("failed to read --token-lifetime: use at least 5s");
}
const exitAfter =
  flags["exit-after-refreshes"] === undefined ? undefined : Number(flags["exit-after-refreshes"]);
if (exitAfter !== undefined && !(Number.isInteger(exitAfter) && exitAfter >= 0)) {
  throw new Error("failed to read --exit-after-refreshes: use a whole number, e.g. 1");
}

const tty = process.stdout.isTTY === true;
const started = Date.now();

function elapsed(): string {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}

function say(line: string): void {
  process.stdout.write(`[demo ${elapsed().padStart(6)}] ${line}\n`);
}

// ---- what it started, and stopping it ------------------------------------------

let cp: ControlPlane | undefined;
let aws: AwsDouble | undefined;
let registry: RegistryDouble | undefined;
let operator: ChildProcess | undefined;
let workDir: string | undefined;
let ticker: NodeJS.Timeout | undefined;
let stopping: Promise<void> | undefined;

async function stopOperator(): Promise<void> {
  const proc = operator;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Stops everything in reverse order of starting; safe to call more than once. */
function stopAll(keepLogs: boolean): Promise<void> {
  stopping ??= (async () => {
    if (ticker) clearInterval(ticker);
    if (tty) process.stdout.write("\n");
    say("stopping the operator, the doubles and the control plane…");
    await stopOperator();
    await registry?.close();
    await aws?.close();
    await cp?.stop();
    if (workDir && !keepLogs) await rm(workDir, { recursive: true, force: true });
    say(
      keepLogs && workDir
        ? `stopped; nothing left running (operator log kept: ${join(workDir, "operator.log")})`
        : "stopped; nothing left running",
    );
  })();
  return stopping;
}

async function finish(code: number): Promise<never> {
  await stopAll(code !== 0);
  process.exit(code);
}

process.once("SIGINT", () => void finish(0));
process.once("SIGTERM", () => void finish(143));
// Last resort if the script dies some other way: never leave the operator
// behind (the control plane's processes exit with their parent on their own).
process.on("exit", () => {
  if (operator && operator.exitCode === null && operator.signalCode === null) {
    operator.kill("SIGKILL");
  }
});

// ---- the stack -----------------------------------------------------------------

async function startControlPlaneWithProgress(): Promise<ControlPlane> {
  const building = !existsSync(controlPlaneBinary);
  let phase = building
    ? "building the control plane from the Kubernetes Go modules (first run only: takes several minutes)"
    : "starting the control plane";
  // The harness says it itself when it builds.
  if (!building) say(`${phase}…`);
  const since = Date.now();
  const spinner = "|/-\\";
  let n = 0;
  const progress = setInterval(
    () => {
      const secs = Math.round((Date.now() - since) / 1000);
      if (tty) {
        process.stdout.write(`\r${spinner[n++ % spinner.length]} ${phase}… ${secs}s   `);
      } else {
        say(`…still ${phase} (${secs}s)`);
      }
    },
    tty ? 250 : 15_000,
  );
  try {
    return await startControlPlane({
      progress: (line) => {
        phase = line.replace(/…$/, "");
        if (tty) process.stdout.write("\r\x1b[K");
        say(line);
      },
    });
  } finally {
    clearInterval(progress);
    if (tty) process.stdout.write("\r\x1b[K");
  }
}

function startOperatorProcess(
  kubeconfig: string,
  awsUrl: string,
  metricsPort: number,
  logPath: string,
): ChildProcess {
  if (!existsSync(join(repoRoot, "dist/cli/main.js"))) {
    throw new Error("failed to start the operator: dist/ is missing; run `npm run build` first");
  }
  const log = createWriteStream(logPath, { flags: "a" });
  const proc = spawn(
    process.execPath,
    [
      operatorBin,
      "run",
      `--kubeconfig=${kubeconfig}`,
      "--region=us-east-1",
      "--credentials-secret-name=aws-creds",
      `--credentials-secret-namespace=${SYSTEM_NAMESPACE}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      "--health-probe-bind-address=0",
      "--min-refresh-interval=2s",
      "--aws-backoff-base=1s",
      "--aws-backoff-max=10s",
      "--verify=true",
      "--log-format=json",
    ],
    {
      cwd: repoRoot,
      // Its own process group: Ctrl-C reaches the demo, which stops the
      // operator in order, rather than both at once.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        // Only the AWS double: the SDK's standard endpoint setting, and no
        // instance metadata lookups on a machine that happens to be in EC2.
        AWS_ENDPOINT_URL: awsUrl,
        AWS_EC2_METADATA_DISABLED: "true",
      },
    },
  );
  let pending = "";
  const onData = (chunk: Buffer): void => {
    log.write(chunk);
    pending += chunk.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) operatorLine(line);
  };
  proc.stdout?.on("data", onData);
  proc.stderr?.on("data", onData);
  proc.once("exit", (code, signal) => {
    log.end();
    if (stopping === undefined) {
      say(`the operator exited unexpectedly (${code ?? signal}); see ${logPath}`);
      void finish(1);
    }
  });
  return proc;
}

// ---- what the operator says ----------------------------------------------------

const operatorNotes: string[] = [];

/** Keeps the operator's notable log lines (JSON) for the display; never a credential. */
function operatorLine(line: string): void {
  let entry: { level?: number | string; msg?: string; [k: string]: unknown };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  // pino writes numbers, or names when configured to: read both.
  const names: Record<string, number> = {
    trace: 10,
    debug: 20,
    info: 30,
    warn: 40,
    error: 50,
    fatal: 60,
  };
  const level = typeof entry.level === "string" ? (names[entry.level] ?? 30) : (entry.level ?? 30);
  const msg = entry.msg ?? "";
  const notable =
    level >= 40 || msg === "token refreshed" || msg === "caches synced" || msg.includes("registry");
  if (!notable) return;
  const detail =
    typeof entry.err === "string"
      ? `: ${entry.err}`
      : typeof entry.secrets === "number"
        ? ` (${entry.secrets} Secrets)`
        : "";
  const note = `${level >= 50 ? "ERROR " : level >= 40 ? "WARN " : ""}${msg}${detail}`;
  operatorNotes.push(`${clock(new Date())} ${note}`);
  if (operatorNotes.length > 5) operatorNotes.shift();
  if (!tty) say(`operator: ${note}`);
}

// ---- watching the Secrets --------------------------------------------------------

interface PullCheck {
  ok: boolean;
  detail: string;
}

interface Row {
  namespace: string;
  /** Distinct tokens seen in this namespace's Secret, in order (numbered for display). */
  tokens: string[];
  tokenNumber?: number;
  expiresAt?: Date;
  refreshedAt?: Date;
  pull?: PullCheck;
  pulledToken?: number;
  lastPullAt: number;
  failedPulls: number;
}

const rows: Row[] = NAMESPACES.map((namespace) => ({
  namespace,
  tokens: [],
  lastPullAt: 0,
  failedPulls: 0,
}));
/** Token numbers shared across namespaces: one token in every Secret reads as one number. */
const tokenNumbers = new Map<string, number>();

function clock(d: Date | undefined): string {
  return d ? d.toISOString().slice(11, 19) : "-";
}

function inSeconds(d: Date | undefined): string {
  if (!d) return "-";
  const s = Math.round((d.getTime() - Date.now()) / 1000);
  return s >= 0 ? `in ${s}s` : `${-s}s ago`;
}

function credentialsOf(secret: V1Secret, host: string): { auth: string } | undefined {
  const raw = secret.data?.[".dockerconfigjson"];
  if (!raw) return undefined;
  const config = JSON.parse(Buffer.from(raw, "base64").toString("utf8")) as {
    auths?: Record<string, { auth?: string }>;
  };
  const auth = config.auths?.[host]?.auth;
  return auth ? { auth } : undefined;
}

/** What a client does first when pulling: fetch the manifest with the Secret's credentials. */
async function pullCheck(registryUrl: string, auth: string): Promise<PullCheck> {
  try {
    const res = await fetch(`${registryUrl}/v2/${REPOSITORY}/manifests/latest`, {
      headers: {
        Authorization: `Basic ${auth}`,
        Accept:
          "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
      },
      signal: AbortSignal.timeout(5_000),
    });
    const body = await res.text();
    if (res.ok) {
      const digest = res.headers.get("docker-content-digest") ?? "";
      return { ok: true, detail: `ok ${res.status} ${digest.slice(0, 19)}` };
    }
    let message = body.slice(0, 80);
    try {
      const parsed = JSON.parse(body) as { errors?: Array<{ message?: string }> };
      message = parsed.errors?.[0]?.message ?? message;
    } catch {
      // not JSON: keep the text
    }
    return { ok: false, detail: `FAILED ${res.status} ${message}` };
  } catch (err) {
    return { ok: false, detail: `FAILED ${err instanceof Error ? err.message : String(err)}` };
  }
}

async function observe(k: TestKube, reg: RegistryDouble): Promise<void> {
  await Promise.all(
    rows.map(async (row) => {
      const secret = await readSecret(k, row.namespace, SECRET_NAME);
      if (!secret) return;
      const creds = credentialsOf(secret, reg.host);
      if (!creds) return;
      const annotations = secret.metadata?.annotations ?? {};
      // Tokens are told apart by their credentials, shown only as a number.
      let number = tokenNumbers.get(creds.auth);
      if (number === undefined) {
        number = tokenNumbers.size + 1;
        tokenNumbers.set(creds.auth, number);
      }
      const expiresAt = new Date(annotations["ecrcreds.io/token-expires-at"] ?? "");
      const fetchedAt = new Date(annotations["ecrcreds.io/token-fetched-at"] ?? "");
      row.expiresAt = Number.isNaN(expiresAt.getTime()) ? undefined : expiresAt;
      row.refreshedAt = Number.isNaN(fetchedAt.getTime()) ? undefined : fetchedAt;
      if (row.tokenNumber !== number) {
        const first = row.tokenNumber === undefined;
        row.tokenNumber = number;
        row.tokens.push(creds.auth);
        if (!tty) {
          say(
            first
              ? `secret ${row.namespace}/${SECRET_NAME} appeared: token #${number}, expires ${clock(row.expiresAt)} (${inSeconds(row.expiresAt)})`
              : `secret ${row.namespace}/${SECRET_NAME} refreshed (refresh ${row.tokens.length - 1}): token #${number}, expires ${clock(row.expiresAt)} (${inSeconds(row.expiresAt)})`,
          );
        }
      }
      // Pull with each new token at once, and again every few seconds.
      if (row.pulledToken !== number || Date.now() - row.lastPullAt >= 5_000) {
        const result = await pullCheck(reg.url, creds.auth);
        const changed = row.pulledToken !== number || row.pull?.ok !== result.ok;
        row.pull = result;
        row.pulledToken = number;
        row.lastPullAt = Date.now();
        if (!result.ok) row.failedPulls++;
        if (!tty && changed) {
          say(`pull check ${row.namespace} with token #${number}: ${result.detail}`);
        }
      }
    }),
  );
}

let resourceLine = "";

async function observeResource(k: TestKube): Promise<void> {
  const r = await getResource(k, RESOURCE);
  const cond = (type: string) => r?.status?.conditions?.find((c) => c.type === type);
  const ready = cond("Ready");
  const verified = cond("Verified");
  if (!r?.status) {
    resourceLine = `ECRPullSecret/${RESOURCE}: no status yet (the operator is starting)`;
    return;
  }
  const line = `ECRPullSecret/${RESOURCE}: Ready=${ready?.status ?? "-"} (${ready?.reason ?? "-"}: ${ready?.message ?? ""}), Verified=${verified?.status ?? "-"} (${verified?.message ?? ""})`;
  if (line !== resourceLine && !tty) say(line);
  resourceLine = line;
}

function refreshesDone(): number {
  return Math.min(...rows.map((r) => Math.max(0, r.tokens.length - 1)));
}

function draw(kubeconfig: string, metricsPort: number): void {
  const header = [
    "NAMESPACE",
    "SECRET",
    "TOKEN",
    "EXPIRES",
    "LAST REFRESH",
    "REFRESHES",
    "PULL CHECK",
  ];
  const table = rows.map((r) => [
    r.namespace,
    r.tokenNumber === undefined ? "(waiting)" : SECRET_NAME,
    r.tokenNumber === undefined ? "-" : `#${r.tokenNumber}`,
    r.expiresAt ? `${clock(r.expiresAt)} (${inSeconds(r.expiresAt)})` : "-",
    r.refreshedAt ? `${clock(r.refreshedAt)} (${inSeconds(r.refreshedAt)})` : "-",
    String(Math.max(0, r.tokens.length - 1)),
    r.pull?.detail ?? "-",
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...table.map((row) => row[i]?.length ?? 0)),
  );
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  const lines = [
    `ecr-creds-refresher demo — ${new Date().toISOString().slice(11, 19)} (up ${elapsed()}, tokens live ${Math.round(tokenLifetimeMs / 1000)}s, refreshed at half)`,
    "",
    fmt(header),
    ...table.map(fmt),
    "",
    resourceLine,
    "",
    "operator:",
    ...(operatorNotes.length ? operatorNotes.map((n) => `  ${n}`) : ["  (nothing yet)"]),
    "",
    `kubectl: export KUBECONFIG=${kubeconfig}`,
    `         kubectl get ecrps; kubectl -n ${NAMESPACES[0]} get secret ${SECRET_NAME} -o yaml`,
    `metrics: curl -s http://127.0.0.1:${metricsPort}/metrics | grep ecr_creds_refresher`,
    exitAfter === undefined
      ? "Ctrl-C stops everything."
      : `exits after ${exitAfter} refresh(es) of every Secret (now ${refreshesDone()}); Ctrl-C stops everything.`,
  ];
  // Home, draw, clear what is left of the previous frame.
  process.stdout.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join("\n")}\n\x1b[J`);
}

/**
 * Starts the AWS double (the demo's identity, tokens living
 * `tokenLifetimeMs`) and the registry double that checks pulls against its
 * tokens; resolves with both.
 */
async function startDoubles(): Promise<{ awsDouble: AwsDouble; reg: RegistryDouble }> {
  const awsDouble = new AwsDouble({ tokenLifetimeMs });
  aws = awsDouble;
  await awsDouble.start();
  awsDouble.addIdentity({ ...KEYS, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/demo` });
  const reg = new RegistryDouble({
    validatePassword: (password, at) => aws?.isValidPassword(password, at) === true,
  });
  registry = reg;
  await reg.start();
  if (flags["refuse-pulls"]) reg.refuseAll(true);
  // The tokens name the registry double as their registry, so the Secrets'
  // auths point at it and a pull with them can be checked for real.
  awsDouble.proxyEndpointFor = () => reg.url;
  say(
    `AWS double at ${awsDouble.url} (tokens live ${Math.round(tokenLifetimeMs / 1000)}s); registry double at ${reg.url} serving ${REPOSITORY}:latest`,
  );
  return { awsDouble, reg };
}

/**
 * The live view's tick: reads the demo's state, draws it (on a terminal),
 * and with --exit-after ends the demo once every Secret was refreshed that
 * often and pulled with (PASS or FAIL), or on its deadline (FAIL).
 */
function liveTick(
  k: ReturnType<typeof testKube>,
  reg: RegistryDouble,
  kubeconfig: string,
  metricsPort: number,
): () => Promise<void> {
  // With nothing failing, N refreshes take about N half-lifetimes after the
  // first write; give it generous room before calling it stuck.
  const deadline =
    exitAfter === undefined ? undefined : Date.now() + 60_000 + (exitAfter + 2) * tokenLifetimeMs;
  let busy = false;
  const tick = async (): Promise<void> => {
    if (busy || stopping !== undefined) return;
    busy = true;
    try {
      await Promise.all([observe(k, reg), observeResource(k)]);
    } catch (err) {
      if (!tty)
        say(`failed to read the demo state: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      busy = false;
    }
    if (stopping !== undefined) return;
    if (tty) draw(kubeconfig, metricsPort);
    const failed = rows.reduce((n, r) => n + r.failedPulls, 0);
    if (
      exitAfter !== undefined &&
      rows.every((r) => r.tokens.length > exitAfter && r.pulledToken === r.tokenNumber)
    ) {
      const checks = rows.map((r) => `${r.namespace}: ${r.tokens.length - 1} refreshes`).join(", ");
      say(`done: ${checks}; pull checks failed: ${failed}`);
      say(
        failed === 0
          ? "RESULT: PASS (every pull check passed)"
          : `RESULT: FAIL (${failed} pull checks failed)`,
      );
      await finish(failed === 0 ? 0 : 1);
    } else if (deadline !== undefined && Date.now() > deadline) {
      say(
        `RESULT: FAIL (timed out waiting for ${exitAfter} refreshes of every Secret; refreshes so far: ${rows.map((r) => `${r.namespace}=${Math.max(0, r.tokens.length - 1)}`).join(", ")})`,
      );
      await finish(1);
    }
  };
  return tick;
}

// ---- main ----------------------------------------------------------------------------

async function main(): Promise<void> {
  say(
    `ecr-creds-refresher demo (pid ${process.pid}): a local Kubernetes control plane, an AWS double, a registry double and the operator (no AWS account or cluster needed)`,
  );
  workDir = await mkdtemp(join(tmpdir(), "ecr-demo-"));
  cp = await startControlPlaneWithProgress();
  say(`control plane data: ${cp.dir}`);
  const k = testKube(cp.kubeconfigPath);
  await installCrd(k);
  say("installed the ECRPullSecret CRD");

  const { awsDouble, reg } = await startDoubles();

  await createNamespace(k, SYSTEM_NAMESPACE);
  await putSecret(k, SYSTEM_NAMESPACE, "aws-creds", {
    AWS_ACCESS_KEY_ID: KEYS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEYS.secretAccessKey,
  });
  for (const ns of NAMESPACES) await createNamespace(k, ns);
  say(
    `created namespaces ${NAMESPACES.join(", ")} and the credentials Secret ${SYSTEM_NAMESPACE}/aws-creds`,
  );

  const metricsPort = await freePort();
  const logPath = join(workDir, "operator.log");
  operator = startOperatorProcess(cp.kubeconfigPath, awsDouble.url, metricsPort, logPath);
  say(`operator started (pid ${operator.pid}) from bin/ecr-creds-refresher; its log: ${logPath}`);

  await applyResource(k, RESOURCE, {
    secretName: SECRET_NAME,
    namespaces: ["demo-team-a", "demo-team-b", "demo-apps-*"],
  });
  say(
    `applied ECRPullSecret/${RESOURCE}: secretName ${SECRET_NAME}, namespaces demo-team-a, demo-team-b, demo-apps-*`,
  );
  say(`point kubectl at the demo cluster: export KUBECONFIG=${cp.kubeconfigPath}`);
  say(
    "  then: kubectl get ecrps; kubectl get secrets -A -l app.kubernetes.io/managed-by=ecr-creds-refresher",
  );
  say(`operator metrics: http://127.0.0.1:${metricsPort}/metrics`);
  say(
    tty
      ? "live view follows; Ctrl-C stops everything"
      : "watching the Secrets (one line per change); Ctrl-C stops everything",
  );
  if (tty) process.stdout.write("\x1b[2J");

  const tick = liveTick(k, reg, cp.kubeconfigPath, metricsPort);
  ticker = setInterval(() => void tick(), 1_000);
  await tick();
}

main().catch(async (err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  await finish(1);
});
