// What people watch, from the operator run as its own process: /metrics
// scraped over HTTP and parsed (the expiry gauge is the token's expiresAt,
// the refresh counters move with successes and failures), /healthz and
// /readyz, debug logs without a credential in them, and SIGTERM exiting 0.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
import { ensureBuilt } from "../harness/build.js";
import { freePort } from "../harness/controlplane.js";
import {
  applyResource,
  getResource,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import type { OperatorProcess } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, readPassword } from "../harness/state.js";

const cp = inject("controlPlane");
const ACCOUNT = "777788889999";
const HOST = ecrHost(ACCOUNT);
const OPS = "obs-ops";
const NAMESPACES = ["obs-a", "obs-b"];
const IDENTITY = iamUser("observe", 1, ACCOUNT, "observe");
const SECRET_KEY = IDENTITY.secretAccessKey;

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let op: OperatorProcess;
let metricsUrl: string;
let healthUrl: string;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (what a scraper reads). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`failed to parse metrics line ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ""] = (l[2] ?? "").replace(/\\(.)/g, "$1");
    samples.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${metricsUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  const text = await res.text();
  return { text, samples: parseMetrics(text) };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found.reduce((sum, s) => sum + s.value, 0);
}

const issuedTokens = () => aws.issued().filter((t) => t.principalArn.endsWith(":user/observe"));

beforeAll(async () => {
  const built = ensureBuilt();
  stack = await startStack({
    ops: OPS,
    namespaces: NAMESPACES,
    identities: [IDENTITY],
  });
  ({ k, aws } = stack);
  stack.resources.push("obs");
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  healthUrl = `http://127.0.0.1:${healthPort}`;
  await built;
  op = stack.startProcess(
    [
      "run",
      `--kubeconfig=${cp.kubeconfigPath}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      `--health-probe-bind-address=127.0.0.1:${healthPort}`,
      "--log-level=debug",
      "--region=us-east-1",
      "--min-refresh-interval=500ms",
      "--aws-backoff-base=500ms",
      "--aws-backoff-max=2s",
      "--aws-timeout=2s",
      "--verify=false",
    ],
    { AWS_ENDPOINT_URL: aws.url },
  );
});

afterAll(async () => {
  await stack?.stop();
});

describe("observability", () => {
  it("answers /healthz and, once its caches synced, /readyz", async () => {
    await waitFor("/readyz 200", async () => {
      const res = await fetch(`${healthUrl}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    });
    const health = await fetch(`${healthUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok\n");
  });

  it("exports the token's expiry, the refresh counters and the rest on /metrics", async () => {
    await applyResource(k, "obs", {
      secretName: "ecr-obs",
      namespaces: NAMESPACES,
      credentials: { secretRef: { namespace: OPS, name: "aws-creds" } },
      registries: [{ accountId: ACCOUNT }],
    });
    await waitFor("obs Ready", async () =>
      readyCondition(await getResource(k, "obs"))?.status === "True" ? true : undefined,
    );
    const token = issuedTokens()[0];
    expect(issuedTokens()).toHaveLength(1);
    // Every Secret this operator manages in the cluster (other test files' too).
    const managed = async () =>
      (
        await k.core.listSecretForAllNamespaces({
          labelSelector: "app.kubernetes.io/managed-by=ecr-creds-refresher",
        })
      ).items.length;
    // Other files' namespaces may still be terminating: their Secrets go one
    // by one, so give the cluster-wide count time to settle.
    const { samples } = await waitFor(
      "the gauges to catch up",
      async () => {
        const s = await scrape();
        const count = await managed();
        return count >= 2 && value(s.samples, "ecr_creds_refresher_managed_secrets") === count
          ? s
          : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    const expiry = value(samples, "ecr_creds_refresher_token_expiry_timestamp_seconds", {
      resource: "obs",
    });
    console.log(
      `expiry gauge ${expiry} vs expiresAt ${(token?.expiresAt.getTime() ?? 0) / 1000} (${token?.expiresAt.toISOString()})`,
    );
    expect(expiry).toBeCloseTo((token?.expiresAt.getTime() ?? 0) / 1000, 3);
    expect(value(samples, "ecr_creds_refresher_token_refreshes_total", { result: "success" })).toBe(
      1,
    );
    expect(value(samples, "ecr_creds_refresher_token_refreshes_total", { result: "failure" })).toBe(
      0,
    );
    expect(
      value(samples, "ecr_creds_refresher_aws_request_duration_seconds_count", {
        service: "ecr",
        region: "us-east-1",
      }),
    ).toBe(1);
    expect(value(samples, "ecr_creds_refresher_ready", { resource: "obs" })).toBe(1);
    expect(
      value(samples, "ecr_creds_refresher_kube_requests_total", {
        verb: "create",
        resource: "secrets",
      }),
    ).toBe(2);
    expect(
      value(samples, "ecr_creds_refresher_kube_requests_total", { verb: "list" }),
    ).toBeGreaterThanOrEqual(4);
    expect(
      value(samples, "ecr_creds_refresher_reconcile_duration_seconds_count"),
    ).toBeGreaterThanOrEqual(1);
    expect(samples.some((s) => s.name === "ecr_creds_refresher_queue_depth")).toBe(true);
    // The default process metrics.
    expect(value(samples, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(value(samples, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
  });
});

describe("observability: refresh failures, logs and SIGTERM", () => {
  it("counts a failed refresh and its AWS error code, then the success that follows with the new expiry", async () => {
    const before = (await scrape()).samples;
    const oldExpiry = value(before, "ecr_creds_refresher_token_expiry_timestamp_seconds", {
      resource: "obs",
    });
    // Two 5xx answers, then AWS answers again; rotating the keys (a changed
    // credentials Secret) makes the operator refetch at once. (Throttling
    // while the Secrets hold a good token is counted apart, as "throttled".)
    aws.failNext(2, { service: "ecr", fault: "error5xx" });
    await k.core.replaceNamespacedSecret({
      namespace: OPS,
      name: "aws-creds",
      body: {
        metadata: { name: "aws-creds", namespace: OPS },
        stringData: {
          AWS_ACCESS_KEY_ID: IDENTITY.accessKeyId,
          AWS_SECRET_ACCESS_KEY: SECRET_KEY,
          ROTATED: "1",
        },
      },
    });
    const after = await waitFor(
      "a success after two failures",
      async () => {
        const { samples } = await scrape();
        return value(samples, "ecr_creds_refresher_token_refreshes_total", {
          result: "success",
        }) === 2
          ? samples
          : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(value(after, "ecr_creds_refresher_token_refreshes_total", { result: "failure" })).toBe(
      2,
    );
    expect(
      value(after, "ecr_creds_refresher_aws_errors_total", {
        service: "ecr",
        code: "ServerException",
      }),
    ).toBe(2);
    expect(issuedTokens()).toHaveLength(2);
    const fresh = issuedTokens()[1];
    await waitFor("the expiry gauge to move to the new token", async () => {
      const { samples } = await scrape();
      const gauge = value(samples, "ecr_creds_refresher_token_expiry_timestamp_seconds", {
        resource: "obs",
      });
      return gauge !== oldExpiry ? gauge : undefined;
    }).then((gauge) => expect(gauge).toBeCloseTo((fresh?.expiresAt.getTime() ?? 0) / 1000, 3));
    await waitFor("the Secrets to hold the new token", async () => {
      for (const ns of NAMESPACES)
        if ((await readPassword(k, ns, "ecr-obs", HOST)) !== fresh?.password) return undefined;
      return true;
    });
    const r = await getResource(k, "obs");
    expect(r?.status?.tokenExpiresAt).toBe(fresh?.expiresAt.toISOString());
  });

  it("logs at debug level without an issued password or secret key anywhere, and exits 0 on SIGTERM", async () => {
    const { text } = await scrape();
    const code = await op.stop("SIGTERM");
    expect(code).toBe(0);
    const events = await k.core.listNamespacedEvent({
      namespace: "default",
      fieldSelector: "involvedObject.name=obs",
    });
    const secrets = [SECRET_KEY, Buffer.from(SECRET_KEY).toString("base64")];
    for (const t of issuedTokens())
      secrets.push(t.password, Buffer.from(`AWS:${t.password}`).toString("base64"));
    const lines = [...op.output, ...events.items.map((e) => `${e.reason} ${e.message}`), text];
    expect(op.output.some((l) => l.includes('"level":"debug"'))).toBe(true);
    expect(op.output.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    expect(events.items.map((e) => e.reason)).toContain("TokenRefreshFailed");
    console.log(`leak check: ${op.output.length} log lines, ${events.items.length} Events`);
    expect(lines.filter((l) => secrets.some((s) => l.includes(s)))).toEqual([]);
  });
});
