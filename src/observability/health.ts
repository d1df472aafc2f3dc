// /metrics, /healthz and /readyz on one small HTTP server. The probe port
// serves /metrics only when it is also the metrics address: with metrics off
// ('0'), nothing on the probe port tells anyone what the operator serves.
import { createServer, type Server } from "node:http";
import type { Metrics } from "./metrics.js";

export interface HealthChecks {
  /** The process is alive and its loops run. */
  healthy: () => boolean;
  /** Informers have synced (a standby replica is ready too). */
  ready: () => boolean;
}

export function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  const host = i > 0 ? address.slice(0, i) : "0.0.0.0";
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(
      `failed to parse address ${JSON.stringify(address)}: use host:port, e.g. :8080`,
    );
  }
  return { host: host.replace(/^\[|\]$/g, ""), port };
}

/**
 * Serves the probes, and /metrics when `metrics` is given (undefined: 404);
 * resolves with the server once it listens.
 */
export async function serveHealth(
  address: string,
  metrics: Metrics | undefined,
  checks: HealthChecks,
): Promise<Server> {
  const { host, port } = parseAddress(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics" && metrics) {
      metrics.registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { "Content-Type": metrics.registry.contentType });
          res.end(body);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      return;
    }
    if (path === "/healthz" || path === "/readyz") {
      const ok = path === "/healthz" ? checks.healthy() : checks.ready();
      res.writeHead(ok ? 200 : 503, { "Content-Type": "text/plain" });
      res.end(ok ? "ok\n" : "not ready\n");
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/**
 * The operator's endpoints: /metrics (and the probes) on `metricsAddress`,
 * the probes alone on `healthAddress` unless it is the same address; "0"
 * turns either off. Resolves once every server listens; rejects when an
 * address cannot be parsed or bound.
 */
export async function serveEndpoints(
  metricsAddress: string,
  healthAddress: string,
  metrics: Metrics,
  checks: HealthChecks,
): Promise<Server[]> {
  const servers: Server[] = [];
  if (metricsAddress !== "0") servers.push(await serveHealth(metricsAddress, metrics, checks));
  if (healthAddress !== "0" && healthAddress !== metricsAddress)
    servers.push(await serveHealth(healthAddress, undefined, checks));
  return servers;
}

/** Stops the servers at once, open connections too (a scraper's keep-alive would hold them). */
export function closeServers(servers: readonly Server[]): void {
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
}
