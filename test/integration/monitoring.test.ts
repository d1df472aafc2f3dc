// The chart's alerts and dashboard hold against the real thing: every metric
// their queries name is on the /metrics of a running operator process, and
// every label they group by is on its samples. A renamed metric or label
// fails here, not silently in someone's Grafana.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ensureBuilt } from "../harness/build.js";
import { freePort } from "../harness/controlplane.js";
import { applyResource, getResource, readyCondition, waitFor } from "../harness/kube.js";
import {
  alertRules,
  dashboardQueries,
  familyOf,
  groupingLabels,
  metricNames,
} from "../harness/monitoring.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const ACCOUNT = "121212343434";
const OPS = "mon-ops";
const NAMESPACES = ["mon-a", "mon-b"];
const KEY_ID = "AKIAMONITOR000000001";
const SECRET_KEY = "monitor-secret-key-0000000000000000000001";

let stack: Stack;
let metricsUrl: string;

interface Exposition {
  /** Families with a `# TYPE` line. */
  families: Set<string>;
  /** Label names seen on each family's samples. */
  labels: Map<string, Set<string>>;
  /** Value of each sample without labels. */
  plain: Map<string, number>;
}

async function scrape(): Promise<Exposition> {
  const res = await fetch(`${metricsUrl}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  const families = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) \S+$/gm)) families.add(m[1] ?? "");
  const labels = new Map<string, Set<string>>();
  const plain = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`failed to parse metrics line ${JSON.stringify(line)}`);
    const family = familyOf(m[1] ?? "", families);
    const set = labels.get(family) ?? new Set<string>();
    for (const l of (m[2] ?? "").matchAll(/(\w+)="/g)) set.add(l[1] ?? "");
    labels.set(family, set);
    if (!m[2]) plain.set(m[1] ?? "", Number(m[3]));
  }
  return { families, labels, plain };
}

beforeAll(async () => {
  const built = ensureBuilt();
  stack = await startStack({
    ops: OPS,
    namespaces: NAMESPACES,
    identities: [
      {
        accessKeyId: KEY_ID,
        secretAccessKey: SECRET_KEY,
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/monitor`,
      },
    ],
  });
  const { k, aws } = stack;
  stack.resources.push("mon");
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  await built;
  stack.startProcess(
    [
      "run",
      `--kubeconfig=${cp.kubeconfigPath}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      "--health-probe-bind-address=0",
      "--leader-elect=false",
      "--region=us-east-1",
      "--aws-timeout=2s",
      "--verify=false",
    ],
    { AWS_ENDPOINT_URL: aws.url },
  );
  await applyResource(k, "mon", {
    secretName: "ecr-mon",
    namespaces: NAMESPACES,
    credentials: { secretRef: { namespace: OPS, name: "aws-creds" } },
    registries: [{ accountId: ACCOUNT }],
  });
  await waitFor("mon Ready", async () =>
    readyCondition(await getResource(k, "mon"))?.status === "True" ? true : undefined,
  );
});

afterAll(async () => {
  await stack?.stop();
});

describe("the metrics the alerts and the dashboard name", () => {
  it("are all on a running operator's /metrics, with the labels they group by", async () => {
    const queries = [...alertRules().map((r) => r.expr), ...dashboardQueries()];
    const named = [...new Set(queries.flatMap(metricNames))].sort();
    console.log(`${queries.length} queries name ${named.length} metrics: ${named.join(", ")}`);
    expect(named.length).toBeGreaterThanOrEqual(17);
    const exposition = await waitFor("a scrape with the resource's gauges", async () => {
      const e = await scrape();
      return e.labels.get("ecr_creds_refresher_ready")?.has("resource") ? e : undefined;
    });
    const missing = named.filter((n) => !exposition.families.has(familyOf(n, exposition.families)));
    expect(missing).toEqual([]);
    // Grouping labels: on the samples of the metrics the query names, where
    // this run produced samples (a counter of errors may have none yet).
    const problems: string[] = [];
    for (const q of queries) {
      const fams = metricNames(q).map((n) => familyOf(n, exposition.families));
      const seen = fams.flatMap((f) => [...(exposition.labels.get(f) ?? [])]);
      if (seen.length === 0) continue;
      for (const l of groupingLabels(q)) if (!seen.includes(l)) problems.push(`${l} in ${q}`);
    }
    expect(problems).toEqual([]);
    // Leader election off: this one replica is the writer, so the no-leader
    // alert stays quiet.
    expect(exposition.plain.get("ecr_creds_refresher_leader")).toBe(1);
  });
});
