// The one executable: run, once, check, status, demo. An entry point only:
// what it assembles comes from src/controller/from-settings.ts, and `run`'s
// loop is the Manager's (src/controller/manager.ts).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConditionType } from "../api/conditions.js";
import type { ECRPullSecret } from "../api/index.js";
import { leaseNamespace, makeController, makeManager } from "../controller/from-settings.js";
import {
  checkProxySettings,
  parseProxyUrl,
  proxySettingsFromEnv,
  redactProxy,
} from "../kube/proxy.js";
import { createLogger, errorField, type Logger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { runCheck } from "./check.js";
import { ConfigError, helpText, type OperatorConfig, parseCommandLine } from "./config.js";
import { runMigrate } from "./migrate.js";
import { runStatus } from "./status.js";

/**
 * `run`: the manager runs the controller (informers on every replica, workers
 * on the leader) until SIGTERM or SIGINT (exit code 0) or a lost Lease (1).
 */
async function run(config: OperatorConfig, log: Logger): Promise<number> {
  const metrics = new Metrics();
  const manager = makeManager(config, log, metrics, (code) => process.exit(code));
  // Every write of the controller goes through the manager's client, fenced
  // by the Lease.
  const controller = makeController(config, log, metrics, manager.client);
  manager.add(controller.informers);
  manager.add(controller.workers);
  manager.addReadyzCheck(() => controller.synced);
  log.info(
    {
      leaderElect: config.leaderElect,
      leaseNamespace: config.leaderElect
        ? leaseNamespace(config, manager.client.connection)
        : undefined,
      region: config.region,
      registry: config.registry,
    },
    "starting ecr-creds-refresher",
  );
  return await manager.start(terminationSignal());
}

/** Aborted by the first SIGTERM or SIGINT, with the signal's name as its reason. */
function terminationSignal(): AbortSignal {
  const stop = new AbortController();
  process.once("SIGTERM", () => stop.abort("SIGTERM"));
  process.once("SIGINT", () => stop.abort("SIGINT"));
  return stop.signal;
}

async function once(config: OperatorConfig, log: Logger): Promise<number> {
  const metrics = new Metrics({ processMetrics: false });
  const controller = makeController(config, log, metrics);
  await controller.startInformers();
  const failed = await controller.runOnce();
  await controller.stop();
  const total = controller.resources.size;
  if (failed.length > 0) {
    // The reason goes into the Job's log, so nobody has to look it up.
    // As the pass left them: its own status writes enter the cache.
    const reasons = failed.map((name) => readyReason(controller.resources.get(undefined, name)));
    log.error({ failed, total }, "some ECRPullSecrets are not ready");
    process.stderr.write(
      `ecr-creds-refresher once: ${failed.length} of ${total} ECRPullSecrets failed (see their status and Events):\n${failed
        .map((name, i) => `  ${name}: ${reasons[i]}\n`)
        .join("")}`,
    );
    return 1;
  }
  log.info({ total }, "every ECRPullSecret synced");
  return 0;
}

/** "Reason: message" of a resource's Ready condition, as its last reconcile wrote it. */
function readyReason(r: ECRPullSecret | undefined): string {
  const ready = r?.status?.conditions?.find((c) => c.type === ConditionType.Ready);
  return ready ? `${ready.reason}: ${ready.message}` : "no Ready condition";
}

/**
 * `demo`: the whole thing on a local embedded stack. It needs the source
 * checkout (the control plane build and the AWS and registry doubles live
 * there, not in the image), so it runs scripts/demo.ts with this Node.
 */
async function demo(args: string[]): Promise<number> {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const script = join(root, "scripts/demo.ts");
  if (!existsSync(script)) {
    process.stderr.write(
      "ecr-creds-refresher demo: runs from a source checkout (git clone, npm ci, npm run demo)\n",
    );
    return 2;
  }
  const child = spawn(
    process.execPath,
    ["--import", join(root, "scripts/ts-hooks.mjs"), script, ...args],
    { stdio: "inherit", cwd: root },
  );
  // Ctrl-C reaches the demo through the terminal; it stops what it started.
  process.on("SIGINT", () => {});
  return await new Promise((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "demo") return await demo(argv.slice(1));
  if (argv[0] === "migrate") return await runMigrate(argv.slice(1));
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv, process.env, {
      resource: { type: "string" },
      namespace: { type: "string" },
    });
  } catch (err) {
    process.stderr.write(
      `ecr-creds-refresher: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return 2;
  }
  if (parsed.extra.help || parsed.command === "help") {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  const { config } = parsed;
  try {
    // A mistyped HTTPS_PROXY fails here, once, not on every request.
    checkProxySettings();
  } catch (err) {
    process.stderr.write(`ecr-creds-refresher: ${(err as Error).message}\n`);
    return 2;
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const proxy = proxySettingsFromEnv();
  if (proxy.httpsProxy || proxy.httpProxy) {
    log.info(
      {
        httpsProxy: proxy.httpsProxy && redactProxy(parseProxyUrl(proxy.httpsProxy, "HTTPS_PROXY")),
        httpProxy: proxy.httpProxy && redactProxy(parseProxyUrl(proxy.httpProxy, "HTTP_PROXY")),
        noProxy: proxy.noProxy,
      },
      "outbound calls go through a proxy",
    );
  }
  try {
    switch (parsed.command) {
      case "run":
        return await run(config, log);
      case "once":
        return await once(config, log);
      case "check":
        return await runCheck(
          config,
          typeof parsed.extra.resource === "string" ? parsed.extra.resource : undefined,
        );
      case "status":
        return await runStatus(config, {
          ...(typeof parsed.extra.namespace === "string" && { namespace: parsed.extra.namespace }),
        });
      default:
        process.stderr.write(
          `ecr-creds-refresher: unknown command ${JSON.stringify(parsed.command)}; see --help\n`,
        );
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ecr-creds-refresher: ${err.message}\n`);
      return 2;
    }
    log.fatal({ err: errorField(err) }, "failed");
    return 1;
  }
}
