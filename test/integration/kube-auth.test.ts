// Every way the operator's own Kubernetes client proves who it is, against
// the real API server (started with --client-ca-file by the harness): client
// certificates as files relative to the kubeconfig and as -data, an exec
// plugin that returns a certificate, TLS checked by default (no CA: refused),
// tls-server-name, insecure-skip-tls-verify, an exec credential renewed once
// before its 15 s expiry, the in-cluster files with a TokenRequest token,
// impersonation (the impersonated identity's 403), and a rotated token file
// whose old token was revoked. The audit log names the user of each write.
import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  KubeClient,
  NAMESPACES,
  type ResourceType,
  SECRETS,
  statusCode,
} from "../../src/kube/client.js";
import { connectionFromKubeConfig, inCluster, loadKubeConfig } from "../../src/kube/kubeconfig.js";
import { consistently, httpsGet, issueClientCert } from "../harness/controlplane.js";
import {
  auditWrites,
  bindClusterAdmin,
  createNamespace,
  deleteNamespaces,
  type TestKube,
  testKube,
  waitFor,
} from "../harness/kube.js";

const cp = inject("controlPlane");
const NS = "auth-paths";
const CONFIG_MAPS: ResourceType = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};

let k: TestKube;
let dir: string;
let server: string;
let caData: string;
const started = Date.now();

/** A kubeconfig file with one cluster, user and context; paths in it are relative to `dir`. */
async function kubeconfig(
  name: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  context: Record<string, unknown> = {},
): Promise<string> {
  const path = join(dir, `${name}.kubeconfig`);
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server, ...cluster } }],
      users: [{ name: "u", user }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u", ...context } }],
      "current-context": "x",
    }),
  );
  return path;
}

const ca = () => ({ "certificate-authority-data": Buffer.from(caData).toString("base64") });

const client = (path: string) => new KubeClient(loadKubeConfig(path), { qps: 0, burst: 0 });

/** Creates a ConfigMap with `client` and returns the user the audit log recorded for it. */
async function auditedCreator(kube: KubeClient, name: string): Promise<string[]> {
  await kube.create(CONFIG_MAPS, { metadata: { namespace: NS, name } });
  const events = await waitFor(`the audit event of ConfigMap ${name}`, async () => {
    const e = await auditWrites(
      cp.auditLogPath,
      (x) => x.objectRef?.resource === "configmaps" && x.objectRef?.name === name,
      started,
    );
    return e.length > 0 ? e : undefined;
  });
  return events.map((e) => e.user.username);
}

async function serviceAccountToken(
  name: string,
  boundSecret?: { name: string; uid: string },
): Promise<string> {
  const tr = await k.core.createNamespacedServiceAccountToken({
    namespace: NS,
    name,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 3600,
        ...(boundSecret
          ? { boundObjectRef: { apiVersion: "v1", kind: "Secret", ...boundSecret } }
          : {}),
      },
    },
  });
  return tr.status?.token ?? "";
}

beforeAll(async () => {
  k = testKube(cp.kubeconfigPath);
  dir = await mkdtemp(join(tmpdir(), "kube-auth-"));
  const admin = JSON.parse(await readFile(cp.kubeconfigPath, "utf8")) as {
    clusters: Array<{ cluster: { server: string; "certificate-authority-data": string } }>;
  };
  server = admin.clusters[0]?.cluster.server ?? "";
  caData = Buffer.from(
    admin.clusters[0]?.cluster["certificate-authority-data"] ?? "",
    "base64",
  ).toString("utf8");
  await createNamespace(k, NS);
  for (const sa of ["exec-user", "in-cluster", "rotor"])
    await k.core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: sa } },
    });
  await bindClusterAdmin(k, "auth-paths-admins", NS, ["exec-user", "in-cluster", "rotor"]);
});

afterAll(async () => {
  await deleteNamespaces(k, [NS]);
  await k.rbac.deleteClusterRoleBinding({ name: "auth-paths-admins" }).catch(() => undefined);
});

describe.skipIf(cp.existingCluster)(
  "kube client authentication against the real API server",
  () => {
    it("authenticates with a client certificate as files relative to the kubeconfig and as -data; the audit log shows that user", async () => {
      const clientCa = { certPath: cp.clientCaCertPath, keyPath: cp.clientCaKeyPath };
      await issueClientCert(clientCa, dir, "ecr-cert-files", ["system:masters"]);
      const data = await issueClientCert(clientCa, dir, "ecr-cert-data", ["system:masters"]);
      const files = await kubeconfig("cert-files", ca(), {
        "client-certificate": "ecr-cert-files.crt",
        "client-key": "ecr-cert-files.key",
      });
      const inline = await kubeconfig("cert-data", ca(), {
        "client-certificate-data": Buffer.from(data.cert).toString("base64"),
        "client-key-data": Buffer.from(data.key).toString("base64"),
      });
      expect(await auditedCreator(client(files), "by-cert-files")).toEqual(["ecr-cert-files"]);
      expect(await auditedCreator(client(inline), "by-cert-data")).toEqual(["ecr-cert-data"]);
    });

    it("authenticates with a client certificate an exec plugin returns", async () => {
      const clientCa = { certPath: cp.clientCaCertPath, keyPath: cp.clientCaKeyPath };
      const cert = await issueClientCert(clientCa, dir, "ecr-exec-cert", ["system:masters"]);
      const plugin = join(dir, "cert-plugin.sh");
      const credential = JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        status: { clientCertificateData: cert.cert, clientKeyData: cert.key },
      });
      await writeFile(plugin, `#!/bin/sh\ncat <<'EOF'\n${credential}\nEOF\n`);
      await chmod(plugin, 0o755);
      const path = await kubeconfig("exec-cert", ca(), {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: "./cert-plugin.sh",
          interactiveMode: "Never",
        },
      });
      expect(await auditedCreator(client(path), "by-exec-cert")).toEqual(["ecr-exec-cert"]);
    });

    it("checks TLS by default: no CA is refused; tls-server-name right works and wrong fails; insecure-skip-tls-verify connects", async () => {
      const admin = JSON.parse(await readFile(cp.kubeconfigPath, "utf8"));
      const bearer = admin.users[0].user.token as string;
      const noCa = await kubeconfig("no-ca", {}, { token: bearer });
      const refused = await client(noCa)
        .get(NAMESPACES, { name: "default" })
        .catch((e: unknown) => e);
      expect((refused as NodeJS.ErrnoException).code).toMatch(
        /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
      );
      // We dial 127.0.0.1, which the API server's certificate names too: only
      // a checked tls-server-name can make the wrong name fail.
      const right = await kubeconfig(
        "right-name",
        { ...ca(), "tls-server-name": "kubernetes.default.svc" },
        { token: bearer },
      );
      const wrong = await kubeconfig(
        "wrong-name",
        { ...ca(), "tls-server-name": "not-the-apiserver.example.com" },
        { token: bearer },
      );
      expect((await client(right).get(NAMESPACES, { name: "default" })).metadata?.name).toBe(
        "default",
      );
      const mismatch = await client(wrong)
        .get(NAMESPACES, { name: "default" })
        .catch((e: unknown) => e);
      expect((mismatch as NodeJS.ErrnoException).code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
      expect(String(mismatch)).toContain("not-the-apiserver.example.com");
      const insecure = await kubeconfig(
        "insecure",
        { "insecure-skip-tls-verify": true },
        { token: bearer },
      );
      expect((await client(insecure).get(NAMESPACES, { name: "default" })).metadata?.name).toBe(
        "default",
      );
    });
  },
);

describe.skipIf(cp.existingCluster)(
  "kube client authentication: exec credentials that expire, and in-cluster",
  () => {
    it("renews an exec credential that expires in 15 s once, before it expires, with no request failing", async () => {
      const token = await serviceAccountToken("exec-user");
      const runs = join(dir, "exec-runs");
      const plugin = join(dir, "expiring-plugin.sh");
      await writeFile(join(dir, "exec-token"), token);
      await writeFile(
        plugin,
        `#!/bin/sh
date +%s%3N >> "${runs}"
exp=$(date -u -d "@$(( $(date +%s) + 15 ))" +%Y-%m-%dT%H:%M:%SZ)
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}' "$(cat "${join(dir, "exec-token")}")" "$exp"
`,
      );
      await chmod(plugin, 0o755);
      const path = await kubeconfig("exec-expiring", ca(), {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: "./expiring-plugin.sh",
          interactiveMode: "Never",
        },
      });
      const codes: number[] = [];
      const kube = new KubeClient(loadKubeConfig(path), {
        qps: 0,
        burst: 0,
        onRequest: (_v, _r, code) => codes.push(code),
      });
      // Past the first credential's expiry, every request answered.
      await consistently(
        "requests answered while the exec credential renews",
        async () => {
          await kube.get(NAMESPACES, { name: NS });
          return true as const;
        },
        { forMs: 16_000, intervalMs: 200 },
      );
      const times = (await readFile(runs, "utf8")).trim().split("\n").map(Number);
      const first = times[0] ?? 0;
      console.log(
        `exec plugin runs at ${times.map((t) => `${((t - first) / 1000).toFixed(1)} s`).join(", ")} (credential lives 15 s)`,
      );
      // The whole-second timestamp may make the first credential live 14-15 s;
      // a fifth of that before the end is 11-12 s after the first run.
      expect(times).toHaveLength(2);
      expect((times[1] ?? 0) - first).toBeGreaterThan(10_500);
      expect((times[1] ?? 0) - first).toBeLessThan(15_000);
      expect(new Set(codes)).toEqual(new Set([200]));
    });

    it("runs in-cluster from a TokenRequest token and the CA file, with the Pod's namespace as the default", async () => {
      const sa = join(dir, "serviceaccount");
      await import("node:fs/promises").then((fs) => fs.mkdir(sa));
      await writeFile(join(sa, "token"), await serviceAccountToken("in-cluster"));
      await writeFile(join(sa, "ca.crt"), caData);
      await writeFile(join(sa, "namespace"), NS);
      const url = new URL(server);
      const saved = { ...process.env };
      process.env.KUBERNETES_SERVICE_HOST = url.hostname;
      process.env.KUBERNETES_SERVICE_PORT = url.port;
      try {
        const connection = inCluster(sa);
        expect(connection.namespace).toBe(NS);
        const kube = new KubeClient(connection, { qps: 0, burst: 0 });
        expect(await auditedCreator(kube, "by-in-cluster")).toEqual([
          `system:serviceaccount:${NS}:in-cluster`,
        ]);
      } finally {
        process.env = saved;
      }
    });
  },
);

describe.skipIf(cp.existingCluster)(
  "kube client authentication: impersonation and rotated token files",
  () => {
    it("honours impersonation: the impersonated identity gets its own 403", async () => {
      const admin = JSON.parse(await readFile(cp.kubeconfigPath, "utf8"));
      const kube = new KubeClient(
        connectionFromKubeConfig({
          ...admin,
          users: [
            {
              name: admin.users[0].name,
              user: {
                ...admin.users[0].user,
                as: `system:serviceaccount:${NS}:nobody`,
                "as-groups": ["system:serviceaccounts", "system:authenticated"],
              },
            },
          ],
        }),
        { qps: 0, burst: 0 },
      );
      const err = await kube.list(SECRETS, { namespace: NS }).catch((e: unknown) => e);
      expect(statusCode(err)).toBe(403);
      expect((err as Error).message).toBe(
        `secrets is forbidden: User "system:serviceaccount:${NS}:nobody" cannot list resource "secrets" in API group "" in the namespace "${NS}"`,
      );
    });

    it("re-reads a rotated token file on the 401 that follows revoking the old token, and the next call succeeds", async () => {
      const bound = async (name: string) => {
        const s = await k.core.createNamespacedSecret({
          namespace: NS,
          body: { metadata: { name }, stringData: { purpose: "binds a token" } },
        });
        return { name, uid: s.metadata?.uid ?? "" };
      };
      const first = await serviceAccountToken("rotor", await bound("rotor-first"));
      const second = await serviceAccountToken("rotor", await bound("rotor-second"));
      const tokenFile = join(dir, "rotor-token");
      await writeFile(tokenFile, first);
      const kube = client(await kubeconfig("token-file", ca(), { tokenFile: "rotor-token" }));
      expect(await auditedCreator(kube, "by-first-token")).toEqual([
        `system:serviceaccount:${NS}:rotor`,
      ]);
      // Rotate: the new token in the file, the old one revoked (its bound
      // Secret deleted), as a credential rotation would.
      await writeFile(tokenFile, second);
      await k.core.deleteNamespacedSecret({ namespace: NS, name: "rotor-first" });
      await waitFor("the first token to be refused", async () => {
        const res = await httpsGet(`${server}/api/v1/namespaces/${NS}`, first, caData);
        return res.status === 401 ? true : undefined;
      });
      expect(await auditedCreator(kube, "by-second-token")).toEqual([
        `system:serviceaccount:${NS}:rotor`,
      ]);
    });
  },
);
