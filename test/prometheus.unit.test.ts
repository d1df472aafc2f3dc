// The chart's alerts and dashboard against promtool (built from the Prometheus
// Go module by scripts/build-promtool.sh): the rules file passes `promtool
// check rules`, `promtool test rules` shows each alert firing and staying
// quiet, a changed threshold makes those tests fail, every dashboard query is
// valid PromQL, and every runbook link lands on a README row.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { dump, load } from "js-yaml";
import { beforeAll, describe, expect, it } from "vitest";
import {
  alertRules,
  dashboardQueries,
  plainPromQL,
  promtool,
  readDashboard,
  rulesFile,
} from "./harness/monitoring.js";

const root = join(import.meta.dirname, "..");
const rulesTests = join(root, "test/prometheus/rules.test.yaml");

function runPromtool(args: string[]): { code: number; out: string } {
  const r = spawnSync(promtool, args, { cwd: root, encoding: "utf8" });
  if (r.error) throw new Error(`failed to run promtool: ${r.error.message}`);
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

interface RulesTestFile {
  rule_files: string[];
  tests: Array<{
    name: string;
    alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }>;
  }>;
}

beforeAll(() => {
  if (!existsSync(promtool)) {
    throw new Error(
      `failed to find ${promtool}: run scripts/build-promtool.sh (scripts/setup.sh does)`,
    );
  }
});

describe("alert rules", () => {
  it("names the six alerts the chart documents, each with a severity and what to check", () => {
    const rules = alertRules();
    expect(rules.map((r) => r.alert)).toEqual([
      "ECRCredsRefresherTokenExpiringSoon",
      "ECRCredsRefresherNotReady",
      "ECRCredsRefresherRefreshFailing",
      "ECRCredsRefresherNotVerified",
      "ECRCredsRefresherUncoveredPods",
      "ECRCredsRefresherNoLeader",
    ]);
    for (const r of rules) {
      expect(["warning", "critical"], r.alert).toContain(r.labels?.severity);
      expect(Object.keys(r.annotations).sort(), r.alert).toEqual([
        "description",
        "runbook_url",
        "summary",
      ]);
    }
  });

  it("passes promtool check rules", () => {
    const r = runPromtool(["check", "rules", rulesFile]);
    expect(r.out).toContain("SUCCESS: 6 rules found");
    expect(r.code).toBe(0);
  });

  it("passes promtool test rules, with a firing and a quiet case for every alert", () => {
    const tests = load(readFileSync(rulesTests, "utf8")) as RulesTestFile;
    expect(tests.rule_files.map((f) => join(root, "test/prometheus", f))).toEqual([rulesFile]);
    for (const { alert } of alertRules()) {
      const cases = tests.tests.flatMap((t) =>
        t.alert_rule_test.filter((c) => c.alertname === alert),
      );
      expect(
        cases.some((c) => c.exp_alerts.length > 0),
        `${alert} has a firing case`,
      ).toBe(true);
      expect(
        cases.some((c) => c.exp_alerts.length === 0),
        `${alert} has a quiet case`,
      ).toBe(true);
    }
    const r = runPromtool(["test", "rules", rulesTests]);
    expect(r.out).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  it("fails those tests when an alert's threshold changes (the tests can fail)", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"));
    const changed = readFileSync(rulesFile, "utf8").replace("* 0.45, 3600)", "* 0.45, 7200)");
    expect(changed).not.toBe(readFileSync(rulesFile, "utf8"));
    writeFileSync(join(dir, "rules.yaml"), changed);
    const tests = load(readFileSync(rulesTests, "utf8")) as RulesTestFile;
    tests.rule_files = ["rules.yaml"];
    writeFileSync(join(dir, "tests.yaml"), dump(tests));
    const r = runPromtool(["test", "rules", join(dir, "tests.yaml")]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("FAILED");
    expect(r.out).toContain("alertname: ECRCredsRefresherTokenExpiringSoon");
  });

  it("links every alert to its row in the README's troubleshooting section", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const base = "https://github.com/ecr-creds-refresher/ecr-creds-refresher/blob/main/README.md#";
    for (const r of alertRules()) {
      const url = r.annotations.runbook_url ?? "";
      expect(url.startsWith(base), url).toBe(true);
      const anchor = url.slice(base.length);
      expect(readme, `README anchor ${anchor}`).toContain(`<a id="${anchor}"></a>`);
      expect(readme).toContain(`\`${r.alert}\``);
    }
  });
});

describe("dashboard", () => {
  it("has a panel for each thing the chart promises, each with a description", () => {
    const d = readDashboard();
    expect(d.uid).toBe("ecr-creds-refresher");
    const titles = d.panels.filter((p) => p.type !== "row").map((p) => p.title);
    expect(titles).toEqual([
      "Time to token expiry",
      "Ready",
      "Verified",
      "Namespaces synced vs desired",
      "Uncovered Pods",
      "Managed Secrets",
      "AWS calls",
      "AWS call latency",
      "AWS errors and token refreshes",
      "API requests by verb and code",
      "Reconcile duration",
      "Queue depth",
      "Leader",
      "Memory",
      "CPU",
    ]);
    for (const p of d.panels.filter((p) => p.type !== "row"))
      expect(p.description, p.title).toBeTruthy();
    // The README's table of panels lists every one.
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const rows = readme.split("\n").map((l) => l.split("|")[1]?.trim());
    for (const t of titles) expect(rows, t).toContain(t);
  });

  it("queries only valid PromQL (promtool check rules on each query as a recording rule)", () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(15);
    const dir = mkdtempSync(join(tmpdir(), "dashboard-"));
    const file = join(dir, "dashboard.rules.yaml");
    const rules = queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: plainPromQL(q) }));
    writeFileSync(file, dump({ groups: [{ name: "dashboard", rules }] }));
    const r = runPromtool(["check", "rules", file]);
    expect(r.out, relative(root, file)).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(r.code).toBe(0);
    // And a broken query is caught by the same check.
    writeFileSync(
      file,
      dump({ groups: [{ name: "d", rules: [{ record: "x:y", expr: "sum(" }] }] }),
    );
    expect(runPromtool(["check", "rules", file]).code).not.toBe(0);
  });
});
