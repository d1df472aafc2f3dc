// `npm run soak [-- --minutes 10]`: the soak run, outside CI's default path.
//
// A real control plane, the built operator as its own process, NAMESPACES
// namespaces served by RESOURCES ECRPullSecrets (through four credentials
// Secrets, so four token sources), ECR tokens that live 30 s, and random
// faults from the AWS double (throttling, 5xx, hung calls, refused keys, slow
// answers) for the whole run. Meanwhile every managed Secret is read
// continuously and each password in it is tried against the registry double,
// which accepts only unexpired issued passwords: the run fails if any Secret
// ever holds one it refuses. The operator's RSS is sampled from /proc at the
// start (after the first full fan-out) and at the end.
//
// Runs with Node's type stripping: no TypeScript-only syntax here or in what
// it imports from test/.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AwsDouble } from "../test/aws-double/index.js";
import { repoRoot, startControlPlane } from "../test/harness/controlplane.js";
import {
  applyResource,
  bindClusterAdmin,
  createNamespace,
  installCrd,
  kubeconfigForServiceAccount,
  testKube,
  waitFor,
} from "../test/harness/kube.js";
import { RegistryDouble } from "../test/registry-double/index.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    namespaces: { type: "string", default: "200" },
    resources: { type: "string", default: "20" },
    "token-lifetime": { type: "string", default: "30" },
  },
});
const MINUTES = Number(values.minutes);
const NAMESPACES = Number(values.namespaces);
const RESOURCES = Number(values.resources);
const LIFETIME_MS = Number(values["token-lifetime"]) * 1000;
const ACCOUNT = "135791357913";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const SOURCES = 4;

const log = (line: string) =>
  console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`);

async function rssKiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

log(
  `${MINUTES} min, ${NAMESPACES} namespaces, ${RESOURCES} resources, tokens live ${LIFETIME_MS / 1000} s`,
);
const cp = await startControlPlane({ progress: (l) => log(l) });
const k = testKube(cp.kubeconfigPath);
await installCrd(k);
const aws = new AwsDouble({ tokenLifetimeMs: LIFETIME_MS });
await aws.start();
const registry = new RegistryDouble({
  validatePassword: (password, at) => aws.isValidPassword(password, at),
});
await registry.start();

let operator: ChildProcess | undefined;
let failed = false;
try {
  await createNamespace(k, "soak-ops");
  for (let s = 0; s < SOURCES; s++) {
    const id = {
      accessKeyId: `AKIASOAK${String(s).padStart(12, "0")}`,
      secretAccessKey: `soak-secret-key-${String(s).padStart(24, "0")}`,
      accountId: ACCOUNT,
      arn: `arn:aws:iam::${ACCOUNT}:user/soak-${s}`,
    };
    aws.addIdentity(id);
    await k.core.createNamespacedSecret({
      namespace: "soak-ops",
      body: {
        metadata: { name: `creds-${s}` },
        stringData: {
          AWS_ACCESS_KEY_ID: id.accessKeyId,
          AWS_SECRET_ACCESS_KEY: id.secretAccessKey,
        },
      },
    });
  }
  const perResource = Math.ceil(NAMESPACES / RESOURCES);
  const names = Array.from({ length: NAMESPACES }, (_, i) => {
    const r = Math.floor(i / perResource);
    return `soak-${r}-${i % perResource}`;
  });
  for (let i = 0; i < names.length; i += 25) {
    await Promise.all(names.slice(i, i + 25).map((ns) => createNamespace(k, ns)));
  }
  const dir = await mkdtemp(join(tmpdir(), "soak-"));
  const kubeconfig = await kubeconfigForServiceAccount(k, "soak-ops", "operator", dir);
  await bindClusterAdmin(k, "soak-operator", "soak-ops", ["operator"]);
  const output: string[] = [];
  operator = spawn(
    process.execPath,
    [
      join(repoRoot, "bin/ecr-creds-refresher"),
      "run",
      `--kubeconfig=${kubeconfig}`,
      "--metrics-bind-address=0",
      "--health-probe-bind-address=0",
      "--log-level=info",
      "--min-refresh-interval=1s",
      "--aws-backoff-base=300ms",
      "--aws-backoff-max=3s",
      "--aws-timeout=2s",
      "--verify=false",
    ],
    {
      env: { ...process.env, AWS_ENDPOINT_URL: aws.url, AWS_REGION: "us-east-1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line) output.push(line);
    if (output.length > 2000) output.splice(0, output.length - 1000);
  };
  operator.stdout?.on("data", keep);
  operator.stderr?.on("data", keep);
  let exited: string | undefined;
  operator.once("exit", (code, signal) => {
    exited = `exit ${code ?? signal}`;
  });
  const pid = operator.pid;

  for (let r = 0; r < RESOURCES; r++) {
    await applyResource(k, `soak-${r}`, {
      secretName: "ecr-soak",
      namespaces: [`soak-${r}-*`],
      credentials: { secretRef: { name: `creds-${r % SOURCES}`, namespace: "soak-ops" } },
      registries: [{ accountId: ACCOUNT }],
    });
  }

  // One poll: every managed Secret, each password tried against the registry.
  const expired: string[] = [];
  let polls = 0;
  let checks = 0;
  const seen = new Set<string>();
  async function poll(): Promise<number> {
    const list = await k.core.listSecretForAllNamespaces({
      labelSelector: "app.kubernetes.io/managed-by=ecr-creds-refresher",
    });
    const verdicts = new Map<string, Promise<number>>();
    let count = 0;
    for (const s of list.items) {
      const raw = Buffer.from(s.data?.[".dockerconfigjson"] ?? "", "base64").toString("utf8");
      let auth = "";
      try {
        auth =
          (JSON.parse(raw) as { auths: Record<string, { auth: string }> }).auths[HOST]?.auth ?? "";
      } catch {
        expired.push(`${new Date().toISOString()} ${s.metadata?.namespace}: not JSON`);
        continue;
      }
      if (!verdicts.has(auth)) {
        verdicts.set(
          auth,
          fetch(`${registry.url}/v2/`, { headers: { authorization: `Basic ${auth}` } }).then(
            (r) => r.status,
          ),
        );
      }
      const status = await (verdicts.get(auth) as Promise<number>);
      checks++;
      seen.add(auth);
      count++;
      if (status !== 200) {
        expired.push(
          `${new Date().toISOString()} ${s.metadata?.namespace}: registry said ${status}`,
        );
      }
    }
    registry.resetAuthAttempts();
    polls++;
    return count;
  }

  await waitFor(
    `${NAMESPACES} Secrets`,
    async () => ((await poll()) >= NAMESPACES ? true : undefined),
    { timeoutMs: 180_000, intervalMs: 500 },
  );
  const rssStart = await rssKiB(pid);
  const samples: number[] = [rssStart];
  log(`fanned out; operator pid ${pid} RSS ${mib(rssStart)}`);

  // Random faults for the whole run: each lasts a few calls or a few seconds,
  // never long enough that a 30 s token must expire.
  const started = Date.now();
  const end = started + MINUTES * 60_000;
  let faults = 0;
  const faultLoop = (async () => {
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 2_000 + Math.random() * 4_000));
      const pick = Math.floor(Math.random() * 5);
      const times = 1 + Math.floor(Math.random() * 3);
      faults++;
      if (pick === 0) aws.throttle({ service: "ecr", times });
      else if (pick === 1) aws.error5xx({ service: "ecr", times });
      else if (pick === 2) aws.refuse({ service: "ecr", times });
      else if (pick === 3) aws.delay(1_500, { service: "ecr", times });
      else {
        const hang = aws.hang({ service: "ecr" });
        await new Promise((r) => setTimeout(r, 3_000));
        hang.clear();
      }
    }
  })();
  let lastSample = Date.now();
  while (Date.now() < end && !exited) {
    await poll();
    if (Date.now() - lastSample > 30_000) {
      lastSample = Date.now();
      samples.push(await rssKiB(pid));
      log(
        `${Math.round((Date.now() - started) / 1000)} s: ${polls} polls, ${checks} Secret checks, ${seen.size} tokens seen, ${expired.length} expired, RSS ${mib(samples.at(-1) ?? 0)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await faultLoop;
  aws.clearFaults();
  const rssEnd = exited ? Number.NaN : await rssKiB(pid);
  const calls = aws.calls((c) => c.service === "ecr");
  const failedCalls = calls.filter((c) => c.status !== 200).length;
  log("result:");
  log(
    `  duration ${((Date.now() - started) / 60_000).toFixed(1)} min, operator ${exited ?? `still pid ${pid}`}`,
  );
  log(
    `  ${polls} polls, ${checks} Secret checks against the registry double, ${seen.size} distinct tokens`,
  );
  log(
    `  ${faults} faults injected; ${calls.length} GetAuthorizationToken calls, ${failedCalls} failed`,
  );
  log(`  expired or refused passwords seen in Secrets: ${expired.length}`);
  for (const e of expired.slice(0, 20)) log(`    ${e}`);
  log(
    `  operator RSS start ${mib(rssStart)}, end ${mib(rssEnd)}, max ${mib(Math.max(...samples, rssEnd))}`,
  );
  failed = expired.length > 0 || exited !== undefined;
  if (exited) log(`  operator output tail:\n${output.slice(-20).join("\n")}`);
} catch (err) {
  failed = true;
  console.error(`soak failed: ${err instanceof Error ? err.stack : String(err)}`);
} finally {
  operator?.kill("SIGTERM");
  await registry.close();
  await aws.close();
  await cp.stop();
}
process.exit(failed ? 1 : 0);
