// The chart's monitoring files as tests read them: the alert rules, the
// Grafana dashboard's queries, and the metric and label names a PromQL
// expression uses (so a test can hold them against a real /metrics).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { repoRoot } from "./controlplane.js";

export const chartDir = join(repoRoot, "deploy/helm/ecr-creds-refresher");
export const rulesFile = join(chartDir, "rules/ecr-creds-refresher.rules.yaml");
export const dashboardFile = join(chartDir, "dashboards/ecr-creds-refresher.json");
export const promtool = join(repoRoot, ".cache/promtool/promtool");

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations: Record<string, string>;
}

export interface RulesFile {
  groups: Array<{ name: string; rules: AlertRule[] }>;
}

export function readRules(): RulesFile {
  return load(readFileSync(rulesFile, "utf8")) as RulesFile;
}

export function alertRules(): AlertRule[] {
  return readRules().groups.flatMap((g) => g.rules);
}

interface DashboardPanel {
  type: string;
  title: string;
  description?: string;
  targets?: Array<{ expr: string; legendFormat?: string }>;
}

export interface Dashboard {
  title: string;
  uid: string;
  panels: DashboardPanel[];
  templating: { list: Array<{ name: string; definition?: string }> };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(dashboardFile, "utf8")) as Dashboard;
}

/** Every query of the dashboard: the panels' and its template variables'. */
export function dashboardQueries(d: Dashboard = readDashboard()): string[] {
  const panels = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const variables = d.templating.list
    .map((v) => v.definition)
    .filter((q): q is string => typeof q === "string")
    // label_values(SELECTOR, label) names the metric in SELECTOR.
    .map((q) => q.replace(/^label_values\((.*),\s*\w+\)$/, "$1"));
  return [...panels, ...variables];
}

/**
 * The expression as plain PromQL: Grafana's variables replaced by values
 * Prometheus accepts ($__rate_interval by a duration, other variables by a
 * regex that matches anything).
 */
export function plainPromQL(expr: string): string {
  return expr.replaceAll("$__rate_interval", "5m").replace(/\$\{?\w+\}?/g, ".*");
}

const KEYWORDS = new Set([
  // Aggregations may be followed by `by (...)` before their parenthesis.
  "sum",
  "min",
  "max",
  "avg",
  "count",
  "group",
  "stddev",
  "stdvar",
  "topk",
  "bottomk",
  "quantile",
  "count_values",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/**
 * The metric names an expression selects. String literals, label matchers,
 * grouping lists and ranges are removed first; what is left and is neither a
 * function call, a keyword nor a number is a metric name.
 */
export function metricNames(expr: string): string[] {
  const stripped = plainPromQL(expr)
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "$1")
    .replace(/\[[^\]]*\]/g, "");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][\w:]*(?!\w)(\s*\()?/g)) {
    const [token, call] = [m[0].replace(/\s*\($/, ""), m[1]];
    if (call || KEYWORDS.has(token.toLowerCase())) continue;
    names.add(token);
  }
  return [...names].sort();
}

/** Label names an expression groups by (`by (a, b)`), `le` left out. */
export function groupingLabels(expr: string): string[] {
  const labels = new Set<string>();
  for (const m of expr.matchAll(/\bby\s*\(([^)]*)\)/g))
    for (const l of (m[1] ?? "").split(",").map((s) => s.trim()))
      if (l && l !== "le") labels.add(l);
  return [...labels].sort();
}

/** The metric family a sample name belongs to (histogram series share one). */
export function familyOf(sampleName: string, families: Set<string>): string {
  for (const suffix of ["_bucket", "_count", "_sum"]) {
    if (sampleName.endsWith(suffix)) {
      const base = sampleName.slice(0, -suffix.length);
      if (families.has(base)) return base;
    }
  }
  return sampleName;
}
