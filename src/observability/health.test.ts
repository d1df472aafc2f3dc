import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { serveHealth } from "./health.js";
import { Metrics } from "./metrics.js";

const checks = { healthy: () => true, ready: () => false };

async function statuses(metrics: Metrics | undefined): Promise<Record<string, number>> {
  const server = await serveHealth("127.0.0.1:0", metrics, checks);
  try {
    const { port } = server.address() as AddressInfo;
    const out: Record<string, number> = {};
    for (const path of ["/metrics", "/healthz", "/readyz"]) {
      out[path] = (await fetch(`http://127.0.0.1:${port}${path}`)).status;
    }
    return out;
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("serveHealth", () => {
  it("serves /metrics beside the probes when given the metrics", async () => {
    expect(await statuses(new Metrics({ processMetrics: false }))).toEqual({
      "/metrics": 200,
      "/healthz": 200,
      "/readyz": 503,
    });
  });

  it("serves only the probes on the probe port (metrics off or elsewhere): /metrics is 404", async () => {
    expect(await statuses(undefined)).toEqual({ "/metrics": 404, "/healthz": 200, "/readyz": 503 });
  });
});
