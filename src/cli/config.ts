// The settings table: each operator-level setting a flag with environment
// variables behind it, merged over its default, which is written here and
// nowhere else (OperatorConfig in src/controller/from-settings.ts is the
// parsed result). The seed operator's variables
// (AWS_CREDENTIALS_SECRET_NAME, AWS_CREDENTIALS_SECRET_NAMESPACE, AWS_REGION,
// REGISTRY) keep working.
import { parseArgs } from "node:util";
import { PROFILE_ARN_PATTERN, ROLE_ARN_PATTERN, TRUST_ANCHOR_ARN_PATTERN } from "../api/schema.js";
import { parseDuration } from "../api/validate.js";
import type { OperatorConfig } from "../controller/from-settings.js";

// The one settings type, defined beside what is assembled from it.
export type { OperatorConfig };

interface Setting {
  flag: string;
  env?: string[];
  /** "rate": a number ≥ 0 where 0 means no limit. */
  kind: "string" | "number" | "rate" | "boolean" | "duration" | "namespaces";
  key: keyof OperatorConfig;
  help: string;
  default?: string;
}

/** Every setting, in the order `--help` lists them. */
export const settings: Setting[] = [
  {
    flag: "kubeconfig",
    env: ["KUBECONFIG"],
    kind: "string",
    key: "kubeconfig",
    help: "kubeconfig file (default: in-cluster config)",
  },
  {
    flag: "context",
    env: ["KUBE_CONTEXT"],
    kind: "string",
    key: "context",
    help: "kubeconfig context to use (default: its current-context)",
  },
  {
    flag: "region",
    env: ["ECR_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"],
    kind: "string",
    key: "region",
    help: "default AWS region of registries",
  },
  {
    flag: "registry",
    env: ["REGISTRY"],
    kind: "string",
    key: "registry",
    help: "default registry host when a resource names none",
  },
  {
    flag: "credentials-secret-name",
    env: ["AWS_CREDENTIALS_SECRET_NAME"],
    kind: "string",
    key: "credentialsSecretName",
    help: "default credentials Secret (else the AWS SDK chain)",
  },
  {
    flag: "credentials-secret-namespace",
    env: ["AWS_CREDENTIALS_SECRET_NAMESPACE"],
    kind: "string",
    key: "credentialsSecretNamespace",
    help: "namespace of the default credentials Secret",
  },
  // IAM Roles Anywhere as the operator-level source (issue 33).
  {
    flag: "roles-anywhere-trust-anchor-arn",
    env: ["ROLES_ANYWHERE_TRUST_ANCHOR_ARN"],
    kind: "string",
    key: "rolesAnywhereTrustAnchorArn",
    help: "default source: IAM Roles Anywhere with this trust anchor (with the profile, role and certificate Secret flags)",
  },
  {
    flag: "roles-anywhere-profile-arn",
    env: ["ROLES_ANYWHERE_PROFILE_ARN"],
    kind: "string",
    key: "rolesAnywhereProfileArn",
    help: "the Roles Anywhere profile of the default source",
  },
  {
    flag: "roles-anywhere-role-arn",
    env: ["ROLES_ANYWHERE_ROLE_ARN"],
    kind: "string",
    key: "rolesAnywhereRoleArn",
    help: "the IAM role of the default Roles Anywhere source",
  },
  {
    flag: "roles-anywhere-certificate-secret-name",
    env: ["ROLES_ANYWHERE_CERTIFICATE_SECRET_NAME"],
    kind: "string",
    key: "rolesAnywhereCertificateSecretName",
    help: "the kubernetes.io/tls Secret (tls.crt, tls.key) of the default Roles Anywhere source",
  },
  {
    flag: "roles-anywhere-certificate-secret-namespace",
    env: ["ROLES_ANYWHERE_CERTIFICATE_SECRET_NAMESPACE"],
    kind: "string",
    key: "rolesAnywhereCertificateSecretNamespace",
    help: "namespace of that tls Secret",
  },
  {
    flag: "roles-anywhere-session-duration",
    env: ["ROLES_ANYWHERE_SESSION_DURATION"],
    kind: "duration",
    key: "rolesAnywhereSessionDurationMs",
    help: "length of each Roles Anywhere session, 15m to 12h (default 1h)",
  },
  {
    flag: "watch-namespaces",
    env: ["WATCH_NAMESPACES"],
    kind: "namespaces",
    key: "watchNamespaces",
    help: "comma-separated namespaces this install may serve, for RBAC granted by Roles there (the chart's rbac.scope=namespaced); Secrets and ServiceAccounts are watched there alone (default: every namespace)",
  },
  {
    flag: "allowed-token-audiences",
    env: ["ALLOWED_TOKEN_AUDIENCES"],
    kind: "string",
    key: "allowedTokenAudiences",
    help: "comma-separated ServiceAccount token audiences a resource may ask for beside sts.amazonaws.com (web identity); never the API server's own, which is refused whatever this says",
  },
  {
    flag: "metrics-bind-address",
    env: ["METRICS_BIND_ADDRESS"],
    kind: "string",
    key: "metricsAddress",
    default: ":8080",
    help: "address of /metrics ('0' disables)",
  },
  {
    flag: "health-probe-bind-address",
    env: ["HEALTH_PROBE_BIND_ADDRESS"],
    kind: "string",
    key: "healthAddress",
    default: ":8081",
    help: "address of /healthz and /readyz ('0' disables)",
  },
  {
    flag: "leader-elect",
    env: ["LEADER_ELECT"],
    kind: "boolean",
    key: "leaderElect",
    default: "false",
    help: "elect a leader through a Lease (needed with more than one replica)",
  },
  {
    flag: "leader-election-namespace",
    env: ["LEADER_ELECTION_NAMESPACE", "POD_NAMESPACE"],
    kind: "string",
    key: "leaderElectionNamespace",
    help: "the operator's own namespace, where its leader Lease and its token records are (default: the kubeconfig context's namespace; in a cluster the Pod's own; else default)",
  },
  {
    flag: "leader-election-id",
    env: ["LEADER_ELECTION_ID"],
    kind: "string",
    key: "leaderElectionId",
    default: "ecr-creds-refresher",
    help: "name of the leader Lease",
  },
  {
    flag: "kube-api-qps",
    env: ["KUBE_API_QPS"],
    kind: "rate",
    key: "qps",
    default: "100",
    help: "client-side request rate to the API server (0: no client limit)",
  },
  {
    flag: "kube-api-burst",
    env: ["KUBE_API_BURST"],
    kind: "number",
    key: "burst",
    default: "200",
    help: "client-side burst above the rate (at least 1)",
  },
  {
    flag: "concurrency",
    env: ["RECONCILE_CONCURRENCY"],
    kind: "number",
    key: "concurrency",
    default: "4",
    help: "resources reconciled at once",
  },
  {
    flag: "write-concurrency",
    env: ["WRITE_CONCURRENCY"],
    kind: "number",
    key: "writeConcurrency",
    default: "32",
    help: "namespace writes in flight per resource",
  },
  {
    flag: "log-level",
    env: ["LOG_LEVEL"],
    kind: "string",
    key: "logLevel",
    default: "info",
    help: "trace, debug, info, warn or error",
  },
  {
    flag: "log-format",
    env: ["LOG_FORMAT"],
    kind: "string",
    key: "logFormat",
    default: "json",
    help: "json or text",
  },
  {
    flag: "verify",
    env: ["VERIFY_REGISTRY"],
    kind: "boolean",
    key: "verify",
    default: "true",
    help: "check new credentials against the registry (GET /v2/)",
  },
  {
    flag: "pod-watch",
    env: ["POD_WATCH"],
    kind: "boolean",
    key: "podWatch",
    default: "true",
    help: "watch Pending Pods for failed pulls from managed registries (diagnose, warn, recreate)",
  },
  {
    flag: "aws-timeout",
    env: ["AWS_CALL_TIMEOUT"],
    kind: "duration",
    key: "awsTimeoutMs",
    default: "15s",
    help: "deadline of one AWS call",
  },
  {
    flag: "min-refresh-interval",
    env: ["MIN_REFRESH_INTERVAL"],
    kind: "duration",
    key: "minRefreshIntervalMs",
    default: "10s",
    help: "floor between two token fetches of one source",
  },
  {
    flag: "aws-backoff-base",
    env: ["AWS_BACKOFF_BASE"],
    kind: "duration",
    key: "awsBackoffBaseMs",
    default: "2s",
    help: "first retry delay after a failed token fetch",
  },
  {
    flag: "aws-backoff-max",
    env: ["AWS_BACKOFF_MAX"],
    kind: "duration",
    key: "awsBackoffMaxMs",
    default: "5m",
    help: "cap of the token fetch backoff",
  },
  {
    flag: "aws-token-qps",
    env: ["AWS_TOKEN_QPS"],
    kind: "rate",
    key: "awsTokenQps",
    default: "10",
    help: "GetAuthorizationToken calls a second per AWS account and region, a share of AWS's quota of 20 (0: no limit)",
  },
  {
    flag: "aws-token-burst",
    env: ["AWS_TOKEN_BURST"],
    kind: "number",
    key: "awsTokenBurst",
    default: "50",
    help: "GetAuthorizationToken calls at once per AWS account and region, above the rate (AWS's burst: 200)",
  },
];

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

function convert(s: Setting, raw: string, from: string): string | number | boolean | string[] {
  switch (s.kind) {
    case "string":
      return raw;
    case "number": {
      const n = Number(raw);
      if (!Number.isFinite(n) || n <= 0) {
        throw new ConfigError(
          `failed to read ${from}: ${JSON.stringify(raw)} is not a positive number`,
        );
      }
      return n;
    }
    case "rate": {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n) || n < 0) {
        throw new ConfigError(
          `failed to read ${from}: ${JSON.stringify(raw)} is not a number ≥ 0 (0: no limit)`,
        );
      }
      return n;
    }
    case "boolean": {
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      throw new ConfigError(`failed to read ${from}: ${JSON.stringify(raw)} is not true or false`);
    }
    case "namespaces": {
      const names = raw
        .split(",")
        .map((n) => n.trim())
        .filter(Boolean);
      const bad = names.find((n) => !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n));
      if (bad !== undefined || names.length === 0) {
        throw new ConfigError(
          `failed to read ${from}: ${JSON.stringify(bad ?? raw)} is not a namespace name; give exact names separated by commas, e.g. team-a,team-b (no globs: RBAC grants exact namespaces)`,
        );
      }
      return [...new Set(names)].sort();
    }
    case "duration":
      try {
        return parseDuration(raw);
      } catch (err) {
        throw new ConfigError(
          `failed to read ${from}: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
  }
}

export interface ParsedCommand {
  command: string;
  config: OperatorConfig;
  /** Flags not in `settings` (command-specific), as given. */
  extra: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Parses argv (after the executable) and the environment into a config. */
export function parseCommandLine(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  extraFlags: Record<string, { type: "string" | "boolean" }> = {},
): ParsedCommand {
  const options: Record<string, { type: "string" | "boolean" }> = {
    help: { type: "boolean" },
    ...extraFlags,
  };
  for (const s of settings) options[s.flag] = { type: s.kind === "boolean" ? "string" : "string" };
  // --leader-elect alone means true.
  const args = argv.map((a) => (a === "--leader-elect" || a === "--verify" ? `${a}=true` : a));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError(`${err instanceof Error ? err.message : String(err)}; see --help`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const config: Record<string, unknown> = {};
  for (const s of settings) {
    const flagValue = values[s.flag];
    if (typeof flagValue === "string") {
      config[s.key] = convert(s, flagValue, `--${s.flag}`);
      continue;
    }
    const envName = s.env?.find((e) => env[e] !== undefined && env[e] !== "");
    if (envName) {
      config[s.key] = convert(s, env[envName] as string, envName);
      continue;
    }
    if (s.default !== undefined)
      config[s.key] = convert(s, s.default, `the default of --${s.flag}`);
  }
  const cfg = config as unknown as OperatorConfig;
  if (cfg.logFormat !== "json" && cfg.logFormat !== "text") {
    throw new ConfigError(
      `failed to read --log-format: ${JSON.stringify(cfg.logFormat)} is not json or text`,
    );
  }
  if (!["trace", "debug", "info", "warn", "error", "fatal", "silent"].includes(cfg.logLevel)) {
    throw new ConfigError(
      `failed to read --log-level: ${JSON.stringify(cfg.logLevel)} is not trace, debug, info, warn or error`,
    );
  }
  if (cfg.burst < 1) {
    // A bucket that never holds a whole token would let no request through.
    throw new ConfigError(
      `failed to read --kube-api-burst: ${cfg.burst} is below 1; the burst is how many requests may go at once, so it must be at least 1`,
    );
  }
  if (Boolean(cfg.credentialsSecretName) !== Boolean(cfg.credentialsSecretNamespace)) {
    throw new ConfigError(
      "failed to read the default credentials Secret: set both --credentials-secret-name (AWS_CREDENTIALS_SECRET_NAME) and --credentials-secret-namespace (AWS_CREDENTIALS_SECRET_NAMESPACE), or neither",
    );
  }
  checkRolesAnywhere(cfg);
  const extra: Record<string, string | boolean | undefined> = {};
  for (const k of Object.keys(extraFlags)) extra[k] = values[k];
  if (values.help) extra.help = true;
  const [command = "run", ...positionals] = parsed.positionals;
  return { command, config: cfg, extra, positionals };
}

/** The operator-level Roles Anywhere source: all of it or none, with ARNs the CRD would admit. */
function checkRolesAnywhere(cfg: OperatorConfig): void {
  const parts: Array<[string, string | undefined, string?]> = [
    [
      "--roles-anywhere-trust-anchor-arn",
      cfg.rolesAnywhereTrustAnchorArn,
      TRUST_ANCHOR_ARN_PATTERN,
    ],
    ["--roles-anywhere-profile-arn", cfg.rolesAnywhereProfileArn, PROFILE_ARN_PATTERN],
    ["--roles-anywhere-role-arn", cfg.rolesAnywhereRoleArn, ROLE_ARN_PATTERN],
    ["--roles-anywhere-certificate-secret-name", cfg.rolesAnywhereCertificateSecretName],
    ["--roles-anywhere-certificate-secret-namespace", cfg.rolesAnywhereCertificateSecretNamespace],
  ];
  const set = parts.filter(([, v]) => v);
  if (set.length === 0 && cfg.rolesAnywhereSessionDurationMs === undefined) return;
  if (set.length !== parts.length) {
    const missing = parts.filter(([, v]) => !v).map(([f]) => f);
    throw new ConfigError(
      `failed to read the default IAM Roles Anywhere source: ${missing.join(", ")} not set; set all of ${parts.map(([f]) => f).join(", ")}, or none`,
    );
  }
  for (const [flag, value, pattern] of parts) {
    if (pattern && !new RegExp(pattern).test(value ?? "")) {
      throw new ConfigError(`failed to read ${flag}: ${JSON.stringify(value)} is not such an ARN`);
    }
  }
  const ms = cfg.rolesAnywhereSessionDurationMs;
  if (ms !== undefined && (ms < 15 * 60_000 || ms > 12 * 3_600_000)) {
    throw new ConfigError(
      "failed to read --roles-anywhere-session-duration: it must be between 15m and 12h",
    );
  }
}

export function helpText(): string {
  const lines = [
    "usage: ecr-creds-refresher <command> [flags]",
    "",
    "commands:",
    "  run     run the operator (default)",
    "  once    one full pass over every ECRPullSecret, then exit (non-zero if any failed)",
    "  check   resolve credentials, fetch a token, print registries and expiry; write nothing",
    "          (--resource NAME: with that ECRPullSecret's credentials and registries)",
    "  status  one row per ECRPullSecret; --namespace N: what serves N and its Pods without the Secret",
    "  demo    the whole thing on a local embedded stack (from a source checkout; see README)",
    "  migrate move the original Python operator's alchemy.com ECRPullSecrets here (migrate --help)",
    "",
    "flags (each also read from the environment variable shown):",
  ];
  for (const s of settings) {
    const env = s.env?.length ? ` [${s.env.join(", ")}]` : "";
    const def = s.default !== undefined ? ` (default ${s.default})` : "";
    lines.push(`  --${s.flag.padEnd(30)} ${s.help}${def}${env}`);
  }
  lines.push(`  --${"help".padEnd(30)} this text`);
  return lines.join("\n");
}
