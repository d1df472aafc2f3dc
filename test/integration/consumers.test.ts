// Every consumer of the one token, proven with the real client each consumer
// uses, on the real control plane:
// - the kubelet's own keyring (tools/keyring: k8s.io/kubernetes
//   pkg/credentialprovider) over a Pod admitted after the ServiceAccount patch;
// - helm pull oci:// with the Argo CD Secret's url, username and password,
//   refused with the pre-refresh password once its token expired;
// - crane (go-containerregistry's keychain, Kaniko's) with DOCKER_CONFIG at
//   the config.json Secret;
// - Tekton's ServiceAccount `secrets`;
// - rotation in place (same UIDs, identical auths bytes, only patches in the
//   audit log) and one GetAuthorizationToken per refresh whatever the formats.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1Secret } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import {
  craneWithDockerConfig,
  helmPullOci,
  type KeyringAnswer,
  kubeletCredentials,
} from "../harness/clients.js";
import { httpsGet } from "../harness/controlplane.js";
import {
  applyResource,
  auditWrites,
  createNamespace,
  deleteNamespaces,
  deleteResource,
  dockerConfigOf,
  getResource,
  mergePatch,
  putAwsKeys,
  readSecret,
  readyCondition,
  statusOf,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { type Stack, startStack } from "../harness/stack.js";
import { RegistryDouble } from "../registry-double/index.js";

const cp = inject("controlPlane");
const ACCOUNT = "121212121212";
const OPS = "consumers-ops";
const ARGOCD = "argocd";
const HOUR = 3_600_000;
// Short enough to see three refreshes and an expiry within a test; the
// operator refreshes at half of it.
const SHORT_LIFETIME_MS = 16_000;

let s: Stack;
let registry: RegistryDouble;
const namespaces: string[] = [];

async function namespace(name: string): Promise<string> {
  await createNamespace(s.k, name);
  namespaces.push(name);
  return name;
}

/** A second AWS identity with its own credentials Secret: its own token source. */
async function identity(name: string): Promise<{ secretRef: { name: string; namespace: string } }> {
  const keys = {
    accessKeyId: `AKIA${name
      .toUpperCase()
      .replace(/[^A-Z0-9]/g, "")
      .padEnd(16, "0")}`.slice(0, 20),
    secretAccessKey: `${name}-secret-key-000000000000000000000`,
  };
  s.aws.addIdentity({ ...keys, accountId: ACCOUNT, arn: principal(name) });
  await putAwsKeys(s.k, OPS, `aws-${name}`, keys);
  return { secretRef: { name: `aws-${name}`, namespace: OPS } };
}
const principal = (name: string) => `arn:aws:iam::${ACCOUNT}:user/${name}`;

async function secretOf(ns: string, name: string): Promise<V1Secret> {
  return await waitFor(`Secret ${ns}/${name}`, () => readSecret(s.k, ns, name));
}

const text = (secret: V1Secret, key: string): string =>
  Buffer.from(secret.data?.[key] ?? "", "base64").toString("utf8");

async function ready(name: string, check: (r: ECRPullSecret) => boolean = () => true) {
  return await waitFor(
    `${name} Ready`,
    async () => {
      const r = await getResource(s.k, name);
      return readyCondition(r)?.status === "True" && r && check(r) ? r : undefined;
    },
    { timeoutMs: 90_000 },
  );
}

beforeAll(async () => {
  s = await startStack({
    ops: OPS,
    identities: [
      {
        accessKeyId: "AKIACONSUMERS0000001",
        secretAccessKey: "consumers-secret-key-0000000000000001",
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/${OPS}`,
      },
    ],
    tokenLifetimeMs: 12 * HOUR,
  });
  await s.startOperator();
  registry = new RegistryDouble({
    validatePassword: (p, at) => s.aws.isValidPassword(p, at),
    charts: [{ name: "demo", version: "0.1.0" }],
  });
  await registry.start();
  // The caller's own registry (no spec.registries) is the registry double:
  // its auths key is 127.0.0.1:PORT, which the clients reach over HTTP.
  s.aws.proxyEndpointFor = () => registry.url;
  await namespace(ARGOCD);
});

afterAll(async () => {
  await s?.stop();
  await registry?.close();
  if (s) await deleteNamespaces(s.k, namespaces);
});

/**
 * Someone else's pull Secret "other-pull" for ghcr.io in `ns`, put on its
 * default ServiceAccount (at `resourceVersion`); returns its username and password.
 */
async function addOtherRegistrySecret(
  ns: string,
  resourceVersion: string | undefined,
): Promise<{ username: string; password: string }> {
  const other = { username: "octo", password: "other-registry-password" };
  await s.k.core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: "other-pull" },
      type: "kubernetes.io/dockerconfigjson",
      stringData: {
        ".dockerconfigjson": JSON.stringify({
          auths: {
            "ghcr.io": {
              ...other,
              auth: Buffer.from(`${other.username}:${other.password}`).toString("base64"),
            },
          },
        }),
      },
    },
  });
  await s.k.core.patchNamespacedServiceAccount(
    {
      namespace: ns,
      name: "default",
      body: {
        metadata: { resourceVersion },
        imagePullSecrets: [{ name: "other-pull" }],
      },
    },
    mergePatch,
  );
  return other;
}

describe("the kubelet's own keyring", () => {
  it("resolves each registry of a multi-registry resource to exactly the password AWS issued for it, and other registries to the Pod's other Secret", async () => {
    const ns = await namespace("kr-a");
    const sa = await waitForDefaultServiceAccount(s.k, ns);
    // Someone else's pull Secret for another registry, already on the ServiceAccount.
    const other = await addOtherRegistrySecret(ns, sa.metadata?.resourceVersion);

    const useast = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
    const euwest = "343434343434.dkr.ecr.eu-west-1.amazonaws.com";
    await applyResource(s.k, "kr", {
      secretName: "kr-pull",
      namespaces: [ns],
      credentials: await identity("kr"),
      registries: [{ accountId: ACCOUNT, region: "us-east-1" }, { host: euwest }],
      // Images are referenced under the dual-stack host too.
      hostVariants: ["Standard", "DualStack"],
    });
    await ready("kr");
    await waitFor("kr-pull on the default ServiceAccount", async () => {
      const now = await s.k.core.readNamespacedServiceAccount({ namespace: ns, name: "default" });
      const names = (now.imagePullSecrets ?? []).map((r) => r.name);
      return names.includes("kr-pull") ? names : undefined;
    });

    // Admitted after the patch: the ServiceAccount admission plugin copies
    // the ServiceAccount's imagePullSecrets into the Pod.
    await s.k.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "app" },
        spec: {
          containers: [
            { name: "a", image: `${useast}/team/app:1.0` },
            { name: "b", image: `${euwest}/team/sidecar@sha256:${"a".repeat(64)}` },
            { name: "c", image: "ghcr.io/acme/tool:2" },
          ],
        },
      },
    });
    const pod = await s.k.core.readNamespacedPod({ namespace: ns, name: "app" });
    expect(pod.spec?.imagePullSecrets).toEqual([{ name: "other-pull" }, { name: "kr-pull" }]);

    const issued = (region: string) =>
      s.aws.issued().filter((t) => t.principalArn === principal("kr") && t.region === region);
    expect(issued("us-east-1")).toHaveLength(1);
    expect(issued("eu-west-1")).toHaveLength(1);
    const ours = await secretOf(ns, "kr-pull");
    const uid = ours.metadata?.uid ?? "";
    // Bare hosts, as Docker 29 (containerd store) and containerd match them.
    expect(Object.keys(dockerConfigOf(ours).auths).sort()).toEqual(
      [
        `${ACCOUNT}.dkr-ecr.us-east-1.on.aws`,
        useast,
        "343434343434.dkr-ecr.eu-west-1.on.aws",
        euwest,
      ].sort(),
    );
    const resolve = (image: string): Promise<KeyringAnswer> =>
      kubeletCredentials({ kubeconfig: cp.kubeconfigPath, namespace: ns, pod: "app", image });

    const useastDualStack = `${ACCOUNT}.dkr-ecr.us-east-1.on.aws`;
    for (const [image, region] of [
      [`${useast}/team/app:1.0`, "us-east-1"],
      [`${useastDualStack}/team/app:1.0`, "us-east-1"],
      [`${euwest}/team/sidecar@sha256:${"a".repeat(64)}`, "eu-west-1"],
    ] as const) {
      const answer = await resolve(image);
      expect(answer.missingPullSecrets).toEqual([]);
      expect(answer.credentials).toEqual([
        {
          username: "AWS",
          password: issued(region)[0]?.password,
          hash: expect.stringMatching(/^[0-9a-f]{64}$/),
          secret: { namespace: ns, name: "kr-pull", uid },
        },
      ]);
    }
    const elsewhere = await resolve("ghcr.io/acme/tool:2");
    expect(elsewhere.credentials).toEqual([
      {
        ...other,
        hash: expect.stringMatching(/^[0-9a-f]{64}$/),
        secret: expect.objectContaining({ namespace: ns, name: "other-pull" }),
      },
    ]);

    await deleteResource(s.k, "kr");
  });
});

// "One resource with every output": its namespaces, its Argo CD Secret's
// name and when it was made, shared by the describes below (set up in the
// first, the token lifetime put back in the last).
const NAME = "every";
let a: string;
let b: string;
let argoName: string;
let createdAt: number;
const pullOf = (ns: string) => secretOf(ns, "every-pull");

describe("one resource with every output", () => {
  beforeAll(async () => {
    s.aws.tokenLifetimeMs = SHORT_LIFETIME_MS;
    a = await namespace("every-a");
    b = await namespace("every-b");
    for (const ns of [a, b]) await waitForDefaultServiceAccount(s.k, ns);
    // Tekton's build ServiceAccount, with a git Secret of its own.
    await s.k.core.createNamespacedServiceAccount({
      namespace: a,
      body: { metadata: { name: "build-bot" }, secrets: [{ name: "git-ssh" }] },
    });
    createdAt = Date.now();
    await applyResource(s.k, NAME, {
      secretName: "every-pull",
      namespaces: [a, b],
      serviceAccounts: ["default", "build-bot"],
      serviceAccountFields: ["imagePullSecrets", "secrets"],
      dockerConfigSecret: { name: "every-docker-config" },
      argoCD: { namespace: ARGOCD },
      secretTemplate: {
        labels: { team: "platform", "backup.example.com/include": "true" },
        annotations: { "reflector.v1.k8s.emberstack.com/reflection-allowed": "true" },
      },
    });
    await ready(NAME);
    argoName = `every-helm-${registry.host.replace(":", "-")}`;
  });

  it("writes an Argo CD repo-creds Secret that helm pull oci:// accepts, refused with the pre-refresh password once expired, accepted again after the refresh", async () => {
    const before = await secretOf(ARGOCD, argoName);
    expect(before.metadata?.labels?.["argocd.argoproj.io/secret-type"]).toBe("repo-creds");
    expect(text(before, "type")).toBe("helm");
    expect(text(before, "enableOCI")).toBe("true");
    expect(text(before, "url")).toBe(registry.host);
    const creds = {
      url: text(before, "url"),
      username: text(before, "username"),
      password: text(before, "password"),
    };
    expect(creds.username).toBe("AWS");
    expect(s.aws.isValidPassword(creds.password)).toBe(true);
    const pull = (c: typeof creds) => helmPullOci({ ...c, chart: "charts/demo", version: "0.1.0" });

    const first = await pull(creds);
    expect(first.stderr).toMatch(new RegExp(`^Pulled: ${registry.host}/charts/demo:0\\.1\\.0\n`));
    expect(first.code).toBe(0);
    const chart = await readFile(join(first.destination, "demo-0.1.0.tgz"));
    expect(chart.equals(registry.charts.get("charts/demo")?.chart.bytes ?? Buffer.alloc(0))).toBe(
      true,
    );

    const expiresAt = Date.parse(
      before.metadata?.annotations?.["ecrcreds.io/token-expires-at"] ?? "",
    );
    await waitFor(
      "the pre-refresh token to expire",
      async () => (Date.now() > expiresAt + 200 ? true : undefined),
      { timeoutMs: SHORT_LIFETIME_MS + 10_000, intervalMs: 200 },
    );
    const refused = await pull(creds);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/401|unauthorized/i);

    const after = await waitFor("the refreshed Argo CD Secret", async () => {
      const now = await readSecret(s.k, ARGOCD, argoName);
      return now && text(now, "password") !== creds.password ? now : undefined;
    });
    expect(after.metadata?.uid).toBe(before.metadata?.uid);
    const again = await pull({ ...creds, password: text(after, "password") });
    expect(again.stderr).toMatch(/^Pulled: /);
    expect(again.code).toBe(0);
  });
});

describe("one resource with every output: config.json, Tekton and the template", () => {
  it("writes a config.json Secret that crane (Kaniko's keychain) reads a manifest with", async () => {
    const secret = await secretOf(a, "every-docker-config");
    expect(secret.type).toBe("Opaque");
    const configJson = text(secret, "config.json");
    expect(configJson).toBe(text(await pullOf(a), ".dockerconfigjson"));
    const read = await craneWithDockerConfig(configJson, [
      "manifest",
      "--insecure",
      `${registry.host}/demo/app:latest`,
    ]);
    expect(read.stderr).toBe("");
    expect(read.stdout).toBe(registry.image.manifests.docker.bytes.toString());
  });

  it("puts the pull Secret into the ServiceAccount's secrets exactly once, beside Tekton's own entries", async () => {
    const bot = await waitFor("every-pull in build-bot's secrets", async () => {
      const sa = await s.k.core.readNamespacedServiceAccount({ namespace: a, name: "build-bot" });
      return sa.secrets?.some((r) => r.name === "every-pull") ? sa : undefined;
    });
    expect(bot.secrets).toEqual([{ name: "git-ssh" }, { name: "every-pull" }]);
    expect(bot.imagePullSecrets).toEqual([{ name: "every-pull" }]);
    const dflt = await s.k.core.readNamespacedServiceAccount({ namespace: b, name: "default" });
    expect(dflt.secrets).toEqual([{ name: "every-pull" }]);
  });

  it("puts the secretTemplate's labels and annotations on every Secret it writes, and takes a dropped key away", async () => {
    const all = [
      await pullOf(a),
      await secretOf(b, "every-docker-config"),
      await secretOf(ARGOCD, argoName),
    ];
    for (const secret of all) {
      expect(secret.metadata?.labels).toMatchObject({
        team: "platform",
        "backup.example.com/include": "true",
      });
      expect(secret.metadata?.annotations).toMatchObject({
        "reflector.v1.k8s.emberstack.com/reflection-allowed": "true",
      });
    }
    const r = await getResource(s.k, NAME);
    await applyResource(s.k, NAME, {
      ...(r?.spec as ECRPullSecret["spec"]),
      secretTemplate: { labels: { team: "platform" } },
    });
    for (const [ns, name] of [
      [a, "every-pull"],
      [b, "every-docker-config"],
      [ARGOCD, argoName],
    ] as const) {
      const secret = await waitFor(`${ns}/${name} without the dropped keys`, async () => {
        const now = await readSecret(s.k, ns, name);
        const gone =
          now?.metadata?.labels?.["backup.example.com/include"] === undefined &&
          now?.metadata?.annotations?.["reflector.v1.k8s.emberstack.com/reflection-allowed"] ===
            undefined;
        return gone ? now : undefined;
      });
      expect(secret.metadata?.labels?.team).toBe("platform");
    }
  });
});

describe("one resource with every output: rotation in place", () => {
  it("rotates in place over three refreshes: same UIDs, identical auths bytes in every namespace, only patches", async () => {
    const keys = [
      [a, "every-pull"],
      [b, "every-pull"],
      [a, "every-docker-config"],
      [b, "every-docker-config"],
      [ARGOCD, argoName],
    ] as const;
    const uids = async () =>
      Promise.all(keys.map(async ([ns, name]) => (await secretOf(ns, name)).metadata?.uid));
    const start = await uids();
    expect(new Set(start).size).toBe(keys.length);
    let expiry = (await getResource(s.k, NAME))?.status?.tokenExpiresAt;
    for (let refresh = 1; refresh <= 3; refresh++) {
      const previous = expiry;
      const r = await waitFor(
        `refresh ${refresh}`,
        async () => {
          const now = await getResource(s.k, NAME);
          return now?.status?.tokenExpiresAt !== previous && readyCondition(now)?.status === "True"
            ? now
            : undefined;
        },
        { timeoutMs: SHORT_LIFETIME_MS + 20_000 },
      );
      expiry = r.status?.tokenExpiresAt;
      // Every Secret holds this refresh's password, in identical bytes.
      const issued = s.aws.issued().find((t) => t.expiresAt.toISOString() === expiry);
      const want = issued?.password ?? "";
      const pulls = await waitFor(`both namespaces on refresh ${refresh}`, async () => {
        const both = await Promise.all([pullOf(a), pullOf(b)]);
        return both.every((p) => dockerConfigOf(p).auths[registry.host]?.password === want)
          ? both
          : undefined;
      });
      const bytes = pulls.map((p) => p.data?.[".dockerconfigjson"]);
      expect(bytes[1]).toBe(bytes[0]);
      for (const ns of [a, b]) {
        const config = await waitFor(`${ns} config.json on refresh ${refresh}`, async () => {
          const c = await readSecret(s.k, ns, "every-docker-config");
          return c?.data?.["config.json"] === bytes[0] ? c : undefined;
        });
        expect(config.data?.["config.json"]).toBe(bytes[0]);
      }
      expect(await uids()).toEqual(start);
    }
    const ours = new Set(keys.map(([ns, name]) => `${ns}/${name}`));
    const writes = await auditWrites(
      cp.auditLogPath,
      (e) =>
        e.user.username === s.userOf("operator") &&
        e.objectRef?.resource === "secrets" &&
        ours.has(`${e.objectRef.namespace}/${e.objectRef.name}`),
      createdAt,
    );
    const verbs = new Map<string, string[]>();
    for (const e of writes) {
      const key = `${e.objectRef?.namespace}/${e.objectRef?.name}`;
      verbs.set(key, [...(verbs.get(key) ?? []), e.verb]);
    }
    for (const key of ours) {
      const list = verbs.get(key) ?? [];
      // Created once; after that only patched (at least once per refresh).
      expect(list[0], key).toBe("create");
      expect(
        list.filter((v) => v === "create"),
        key,
      ).toHaveLength(1);
      expect(
        list.slice(1).every((v) => v === "patch" || v === "update"),
        key,
      ).toBe(true);
      expect(list.length, key).toBeGreaterThanOrEqual(4);
    }
  });
});

describe("one resource with every output: deletion", () => {
  afterAll(() => {
    s.aws.tokenLifetimeMs = 12 * HOUR;
  });

  it("removes every output it made when the resource is deleted (deletionPolicy Delete), leaving others' entries", async () => {
    await deleteResource(s.k, NAME);
    for (const [ns, name] of [
      [a, "every-pull"],
      [a, "every-docker-config"],
      [b, "every-docker-config"],
      [ARGOCD, argoName],
    ] as const) {
      await waitFor(`${ns}/${name} deleted`, async () =>
        (await readSecret(s.k, ns, name)) ? undefined : true,
      );
    }
    const bot = await s.k.core.readNamespacedServiceAccount({ namespace: a, name: "build-bot" });
    expect(bot.secrets).toEqual([{ name: "git-ssh" }]);
    expect(bot.imagePullSecrets ?? []).toEqual([]);
    expect(bot.metadata?.annotations?.["ecrcreds.io/added-secrets"]).toBeUndefined();
  });
});

describe("AWS calls", () => {
  it("costs one GetAuthorizationToken per refresh for a resource with every output over 100 namespaces", async () => {
    const targets = Array.from({ length: 100 }, (_, i) => `calls-${String(i).padStart(3, "0")}`);
    for (const ns of targets) await namespace(ns);
    const credentials = await identity("calls");
    const calls = () =>
      s.aws.calls(
        (c) =>
          c.service === "ecr" &&
          c.action === "GetAuthorizationToken" &&
          c.principalArn === principal("calls"),
      ).length;
    s.aws.tokenLifetimeMs = 30_000;
    try {
      await applyResource(s.k, "calls", {
        secretName: "calls-pull",
        namespaces: ["calls-*"],
        credentials,
        serviceAccountFields: ["imagePullSecrets", "secrets"],
        dockerConfigSecret: { name: "calls-docker-config" },
        argoCD: { namespace: ARGOCD, repositoryTypes: ["helm", "oci"] },
        hostVariants: ["Standard", "DualStack"],
        registries: [{ accountId: ACCOUNT }, { accountId: "565656565656" }],
        secretTemplate: { labels: { team: "calls" } },
      });
      const first = await ready("calls", (r) => r.status?.namespaces?.synced === 100);
      expect(calls()).toBe(1);
      let expiry = first.status?.tokenExpiresAt;
      for (let refresh = 1; refresh <= 2; refresh++) {
        const previous = expiry;
        const r = await ready(
          "calls",
          (now) =>
            now.status?.tokenExpiresAt !== previous && now.status?.namespaces?.synced === 100,
        );
        expiry = r.status?.tokenExpiresAt;
        expect(calls()).toBe(1 + refresh);
      }
      // Every format of every namespace came from that one token: 2 hosts x 2 spellings.
      const last = s.aws
        .issued()
        .filter((t) => t.principalArn === principal("calls"))
        .at(-1);
      const config = await secretOf("calls-099", "calls-docker-config");
      const auths = JSON.parse(text(config, "config.json")) as {
        auths: Record<string, { password: string }>;
      };
      expect(Object.keys(auths.auths).sort()).toEqual([
        `${ACCOUNT}.dkr-ecr.us-east-1.on.aws`,
        `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`,
        "565656565656.dkr-ecr.us-east-1.on.aws",
        "565656565656.dkr.ecr.us-east-1.amazonaws.com",
      ]);
      for (const entry of Object.values(auths.auths)) expect(entry.password).toBe(last?.password);
      const argo = await s.k.core.listNamespacedSecret({
        namespace: ARGOCD,
        labelSelector: "ecrcreds.io/owner=calls",
      });
      expect(argo.items).toHaveLength(8);
    } finally {
      s.aws.tokenLifetimeMs = 12 * HOUR;
      await deleteResource(s.k, "calls");
    }
  });
});

describe("the API", () => {
  it("explains the new fields (kubectl explain reads the published OpenAPI)", async () => {
    const res = await fetchOpenApi();
    const spec = res.components.schemas["io.ecrcreds.v1alpha1.ECRPullSecret"]?.properties?.spec;
    const props = spec?.properties ?? {};
    for (const field of [
      "argoCD",
      "dockerConfigSecret",
      "secretTemplate",
      "serviceAccountFields",
      "hostVariants",
    ]) {
      expect(props[field]?.description, field).toMatch(/\w{4,}/);
    }
    expect(props.argoCD?.properties?.secretType?.description).toMatch(/repo-creds/);
  });

  it("refuses a template that sets the operator's own keys, and a config.json Secret named as the pull Secret", async () => {
    const refused = async (spec: unknown): Promise<string> => {
      try {
        await applyResource(s.k, "bad-outputs", spec as ECRPullSecret["spec"]);
      } catch (err) {
        expect(statusOf(err)).toBe(422);
        return String((err as { body?: unknown }).body);
      }
      await deleteResource(s.k, "bad-outputs");
      throw new Error("accepted");
    };
    const base = { secretName: "ecr-pull", namespaces: ["x"] };
    expect(
      await refused({
        ...base,
        secretTemplate: { labels: { "app.kubernetes.io/managed-by": "me" } },
      }),
    ).toMatch(/secretTemplate.labels must not set app.kubernetes.io\/managed-by/);
    expect(
      await refused({ ...base, secretTemplate: { annotations: { "ecrcreds.io/owner": "x" } } }),
    ).toMatch(/secretTemplate.annotations must not set/);
    expect(await refused({ ...base, dockerConfigSecret: { name: "ecr-pull" } })).toMatch(
      /dockerConfigSecret.name must differ from spec.secretName/,
    );
    expect(await refused({ ...base, argoCD: { secretType: "repo" } })).toMatch(
      /spec.argoCD.secretType/,
    );
    expect(await refused({ ...base, serviceAccountFields: ["secret"] })).toMatch(
      /spec.serviceAccountFields\[0\]/,
    );
  });
});

interface OpenApiSchema {
  description?: string;
  properties?: Record<string, OpenApiSchema>;
}

async function fetchOpenApi(): Promise<{ components: { schemas: Record<string, OpenApiSchema> } }> {
  const cluster = s.k.kc.getCurrentCluster();
  const ca = Buffer.from(cluster?.caData ?? "", "base64").toString("utf8");
  const token = s.k.kc.getCurrentUser()?.token ?? "";
  const res = await httpsGet(`${cluster?.server}/openapi/v3/apis/ecrcreds.io/v1alpha1`, token, ca);
  expect(res.status).toBe(200);
  return JSON.parse(res.body) as { components: { schemas: Record<string, OpenApiSchema> } };
}
