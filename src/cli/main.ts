// The one executable: run, once, check, status, demo. An entry point only:
// what it assembles comes from src/controller/from-settings.ts.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConditionType } from "../api/conditions.js";
import type { ECRPullSecret } from "../api/index.js";
import { kubeConnection, makeController, makeKubeClient } from "../controller/from-settings.js";
import { LEADER_RETRY_PERIOD_MS, LeaderElector } from "../controller/leader.js";
import {
  checkProxySettings,
  parseProxyUrl,
  proxySettingsFromEnv,
  redactProxy,
} from "../kube/proxy.js";
import { serveHealth } from "../observability/health.js";
import { createLogger, errorField, type Logger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { runCheck } from "./check.js";
import { ConfigError, helpText, type OperatorConfig, parseCommandLine } from "./config.js";
import { runMigrate } from "./migrate.js";
import { runStatus } from "./status.js";

async function run(config: OperatorConfig, log: Logger): Promise<number> {
  const metrics = new Metrics();
  const connection = kubeConnection(config);
  // The Lease's client is not fenced: it must be able to release the Lease.
  // When the server throttles it, the controller's requests give way, and it
  // tries again within a retry period whatever Retry-After says: API Priority
  // and Fairness raises that to 32 s under load, past the renew deadline.
  const kube = makeKubeClient(config, metrics, {
    connection,
    maxRetryAfterMs: LEADER_RETRY_PERIOD_MS,
    onRetry: (_method, _path, reason) => {
      if (reason === "HTTP 429") leader?.throttled();
    },
  });
  const leaseNamespace = config.leaderElectionNamespace ?? connection.namespace ?? "default";
  let leader: LeaderElector | undefined;
  if (config.leaderElect) {
    leader = new LeaderElector(kube, log, {
      namespace: leaseNamespace,
      name: config.leaderElectionId,
      onStartedLeading: () => onStartedLeading(),
      onStoppedLeading: () => onStoppedLeading(),
      onError: (reason) => metrics.leaderElectionErrors.inc({ reason }),
    });
  }
  // Every write of the controller goes through the elector's fence.
  const controller = makeController(
    config,
    log,
    metrics,
    makeKubeClient(config, metrics, { connection, fence: leader?.fence }),
  );
  let leading = !config.leaderElect;
  const servers: Server[] = [];
  // Ready once the caches have synced, leader or standby alike: a standby is
  // a working replica, and taking it out of the Service would gain nothing.
  // A replica that may not touch the Lease at all (RBAC, a missing
  // namespace) can never lead, so it is not ready, and says why in its log.
  const checks = {
    healthy: () => true,
    ready: () => controller.synced && !leader?.blockedReason,
  };
  if (config.metricsAddress !== "0")
    servers.push(await serveHealth(config.metricsAddress, metrics, checks));
  if (config.healthAddress !== "0" && config.healthAddress !== config.metricsAddress) {
    servers.push(await serveHealth(config.healthAddress, undefined, checks));
  }

  let onStartedLeading = () => {};
  let onStoppedLeading = () => {};
  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string, code: number) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "shutting down");
      void (async () => {
        // Workers finish the pass they are in and take no more; only then is
        // the Lease given up, so a successor never overlaps our writes.
        try {
          await controller.stop();
          await leader?.release();
        } catch (err) {
          log.error({ err: errorField(err) }, "failed to shut down cleanly");
        }
        for (const s of servers) {
          s.close();
          s.closeAllConnections();
        }
        log.info({ signal, code }, "stopped");
        // Whatever still holds the event loop (a pooled connection, a hung
        // call) must not keep a terminated Pod alive; unref'd, so a clean exit
        // does not wait for it.
        setTimeout(() => process.exit(code), 5_000).unref();
        resolve(code);
      })();
    };
    process.once("SIGTERM", () => stop("SIGTERM", 0));
    process.once("SIGINT", () => stop("SIGINT", 0));
    onStartedLeading = () => {
      leading = true;
      metrics.isLeader.set(1);
      controller.startWorkers();
    };
    // A replica that loses the lease stops writing at once: the elector's
    // fence already refuses every write and has cancelled those in flight.
    // It then exits within a second, so no pass carries on without the
    // Lease, and the Deployment restarts it as a standby (controller-runtime
    // does the same).
    onStoppedLeading = () => {
      metrics.isLeader.set(0);
      log.error("lost the leader lease; exiting so no write happens without it");
      setTimeout(() => process.exit(1), 1_000);
      stop("lease-lost", 1);
    };
  });

  log.info(
    {
      leaderElect: config.leaderElect,
      leaseNamespace: config.leaderElect ? leaseNamespace : undefined,
      region: config.region,
      registry: config.registry,
    },
    "starting ecr-creds-refresher",
  );
  // SIGTERM while the caches are still syncing (the API server unreachable)
  // must end the process too.
  const synced = await Promise.race([
    controller.startInformers().then(() => true as const),
    stopped,
  ]);
  if (synced !== true) return synced;
  if (stopping) return await stopped;
  log.info("caches synced");
  if (leader) leader.start();
  else if (leading) {
    // Without election this replica is the one writer: the no-leader alert
    // reads the same gauge either way.
    metrics.isLeader.set(1);
    controller.startWorkers();
  }
  return await stopped;
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
