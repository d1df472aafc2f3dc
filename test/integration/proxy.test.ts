// Behind a corporate proxy: the AWS double answers HTTPS under a name only
// the test's proxy resolves (aws.only-through-proxy.test), and the registry
// double under another. With HTTPS_PROXY / HTTP_PROXY set the operator gets its
// token and checks the registry through the proxy (whose log shows each call),
// NO_PROXY sends the hosts it names straight to them, and a kubeconfig's
// proxy-url carries the Kubernetes client to the real API server.
// Before proxy support: no token, Ready=False RegionUnknown ("check the region").
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { load as parseYaml } from "js-yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runCheck } from "../../src/cli/check.js";
import { KubeClient, loadKubeConfig, NAMESPACES } from "../../src/kube/client.js";
import type { AwsDouble } from "../aws-double/index.js";
import { captureOutput as capture } from "../harness/cli.js";
import {
  applyResource,
  dockerConfigOf,
  getResource,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { testConfig } from "../harness/operator.js";
import { TestProxy, trustCertificate } from "../harness/proxy.js";
import { type Stack, startStack } from "../harness/stack.js";
import { selfSignedCertificate } from "../registry-double/self-signed.js";

const cp = inject("controlPlane");
const OPS = "proxy-ops";
const ACCOUNT = "230000000001";
const AWS_HOST = "aws.only-through-proxy.test";
const REGISTRY_HOST = "registry.only-through-proxy.test";
const API_HOST = "kube-apiserver.only-through-proxy.test";
const KEYS = {
  accessKeyId: "AKIAPROXY00000000001",
  secretAccessKey: "proxy-secret-000000000000000000000000001",
};
const ENV = ["AWS_ENDPOINT_URL", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"] as const;

let stack: Stack;
let k: TestKube;
let net: { aws: AwsDouble; proxy: TestProxy };
let kubeconfig: string;
let dir: string;
const apiPort = Number(new URL(cp.server || "https://127.0.0.1:0").port);

/** What `check` runs with: the stack's credentials Secret, as the operator has it. */
const checkConfig = (path: string) =>
  testConfig(path, {
    region: "us-east-1",
    credentialsSecretName: "aws-creds",
    credentialsSecretNamespace: OPS,
    verify: false,
  });

beforeAll(async () => {
  // The double serves HTTPS under a name only the proxy resolves.
  const cert = selfSignedCertificate({ dnsNames: [AWS_HOST, "localhost"], ips: ["127.0.0.1"] });
  trustCertificate(cert.certPem);
  stack = await startStack({
    ops: OPS,
    namespaces: ["proxy-a", "proxy-b"],
    awsTls: cert,
    awsEndpoint: false,
    identities: [{ ...KEYS, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/proxied` }],
  });
  ({ k, dir } = stack);
  stack.resources.push("proxy-a", "proxy-b");
  const registry = await stack.startRegistry();
  const registryPort = Number(new URL(registry.url).port);
  const awsPort = Number(new URL(stack.aws.url).port);
  const proxy = new TestProxy((host, port) => {
    if (host === AWS_HOST) return { host: "127.0.0.1", port: awsPort };
    if (host === REGISTRY_HOST && port === 80) return { host: "127.0.0.1", port: registryPort };
    if (host === API_HOST) return { host: "127.0.0.1", port: apiPort };
    return undefined;
  });
  await proxy.start();
  stack.onStop(() => proxy.close());
  net = { aws: stack.aws, proxy };
  // The caller's own registry, as GetAuthorizationToken names it: the
  // registry double, under a name only the proxy knows.
  net.aws.proxyEndpointFor = () => `http://${REGISTRY_HOST}`;
  process.env.AWS_ENDPOINT_URL = `https://${AWS_HOST}`;
  process.env.HTTPS_PROXY = net.proxy.url;
  process.env.HTTP_PROXY = net.proxy.url;
  // The API server stays direct: NO_PROXY by CIDR.
  process.env.NO_PROXY = "127.0.0.0/8";
  kubeconfig = await stack.serviceAccountKubeconfig("operator");
});

afterAll(async () => {
  await stack?.stop();
  for (const name of ENV) delete process.env[name];
});

async function waitSecret(namespace: string) {
  const secret = await waitFor(`Secret ${namespace}/ecr-pull`, () =>
    readSecret(k, namespace, "ecr-pull"),
  );
  return dockerConfigOf(secret).auths;
}

describe("HTTPS_PROXY, HTTP_PROXY and NO_PROXY", () => {
  it("fetch the token and check the registry through the proxy, the API server direct", async () => {
    const op = await stack.startOperator({ config: { verify: true } });
    await applyResource(k, "proxy-a", {
      secretName: "ecr-pull",
      namespaces: ["proxy-a"],
      serviceAccounts: [],
    });
    const r = await waitFor("proxy-a Verified", async () => {
      const got = await getResource(k, "proxy-a");
      const verified = got?.status?.conditions?.find((c) => c.type === "Verified");
      return verified?.status === "True" ? got : undefined;
    });
    expect(readyCondition(r)).toMatchObject({ status: "True", reason: "Synced" });
    const issued = net.aws.issued();
    expect(issued.map((t) => t.region)).toEqual(["us-east-1"]);
    const auths = await waitSecret("proxy-a");
    expect(Object.keys(auths)).toEqual([REGISTRY_HOST]);
    expect(auths[REGISTRY_HOST]?.password).toBe(issued[0]?.password);
    expect(r.status?.conditions?.find((c) => c.type === "Verified")?.message).toBe(
      `http://${REGISTRY_HOST}/v2/ accepted the credentials (HTTP 200)`,
    );
    // The proxy saw the ECR call (a CONNECT tunnel) and the registry check
    // (a forwarded GET), and nothing for the API server: NO_PROXY 127.0.0.0/8.
    expect([...new Set(net.proxy.requests())].sort()).toEqual([
      `CONNECT ${AWS_HOST}:443`,
      `GET ${REGISTRY_HOST}:80`,
    ]);
    expect(
      net.aws.calls({ service: "ecr", action: "GetAuthorizationToken" }).map((c) => c.status),
    ).toEqual([200]);
    await op.stop();
  });

  it("NO_PROXY sends the hosts it names (name, .suffix) straight to them", async () => {
    const before = net.proxy.log.length;
    const port = new URL(net.aws.url).port;
    const config = checkConfig(kubeconfig);
    const saved = { ...process.env };
    try {
      // localhost is spared: the double answers there directly.
      process.env.AWS_ENDPOINT_URL = `https://localhost:${port}`;
      process.env.NO_PROXY = "localhost,127.0.0.0/8";
      const out = capture();
      const err = capture();
      expect(await runCheck(config, undefined, out.stream, err.stream), err.text()).toBe(0);
      expect(out.text()).toContain("ok: the credentials work");
      expect(net.proxy.log.length).toBe(before);
      // .only-through-proxy.test is spared too, so its name is looked up
      // directly, where it does not exist: the bypass is real.
      process.env.AWS_ENDPOINT_URL = `https://${AWS_HOST}`;
      process.env.NO_PROXY = ".only-through-proxy.test,127.0.0.0/8";
      const err2 = capture();
      expect(await runCheck(config, undefined, capture().stream, err2.stream)).toBe(1);
      expect(err2.text()).toMatch(/^check failed: RegionUnknown: .*\(ENOTFOUND\)/);
      expect(net.proxy.log.length).toBe(before);
    } finally {
      for (const name of ENV) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
  });
});

describe("kubeconfig proxy-url", () => {
  it("carries the operator's Kubernetes client to the real API server", async () => {
    // The operator's kubeconfig, with the API server under a name only the
    // proxy knows; the certificate is still checked, against its real name.
    const raw = parseYaml(await readFile(kubeconfig, "utf8")) as {
      clusters: Array<{ cluster: Record<string, unknown> }>;
    };
    const cluster = raw.clusters[0]?.cluster ?? {};
    cluster.server = `https://${API_HOST}:${apiPort}`;
    cluster["tls-server-name"] = "kubernetes.default.svc";
    cluster["proxy-url"] = net.proxy.url;
    const proxied = join(dir, "proxied.kubeconfig");
    await writeFile(proxied, JSON.stringify(raw));

    const client = new KubeClient(loadKubeConfig(proxied), { qps: 0, burst: 0 });
    const list = await client.list<{ metadata?: { name?: string } }>(NAMESPACES);
    expect(list.items.map((n) => n.metadata?.name)).toContain("proxy-b");
    expect(net.proxy.requests()).toContain(`CONNECT ${API_HOST}:${apiPort}`);

    // The whole operator on it: informers, watches and writes through the proxy.
    const tunnelsBefore = net.proxy.requests().filter((r) => r.includes(API_HOST)).length;
    await stack.startOperator({ config: { kubeconfig: proxied } });
    await applyResource(k, "proxy-b", {
      secretName: "ecr-pull",
      namespaces: ["proxy-b"],
      serviceAccounts: [],
    });
    const auths = await waitSecret("proxy-b");
    expect(Object.keys(auths)).toEqual([REGISTRY_HOST]);
    expect(net.aws.isValidPassword(auths[REGISTRY_HOST]?.password ?? "")).toBe(true);
    expect(
      net.proxy.requests().filter((r) => r === `CONNECT ${API_HOST}:${apiPort}`).length,
    ).toBeGreaterThan(tunnelsBefore);
  });

  it("goes through a socks5 proxy-url, the API server's name resolved by the proxy as kubectl does", async () => {
    const socks = await net.proxy.startSocks();
    const raw = parseYaml(await readFile(kubeconfig, "utf8")) as {
      clusters: Array<{ cluster: Record<string, unknown> }>;
    };
    const cluster = raw.clusters[0]?.cluster ?? {};
    cluster.server = `https://${API_HOST}:${apiPort}`;
    cluster["tls-server-name"] = "kubernetes.default.svc";
    cluster["proxy-url"] = socks;
    const path = join(dir, "socks.kubeconfig");
    await writeFile(path, JSON.stringify(raw));

    const client = new KubeClient(loadKubeConfig(path), { qps: 0, burst: 0 });
    const list = await client.list<{ metadata?: { name?: string } }>(NAMESPACES);
    expect(list.items.map((n) => n.metadata?.name)).toContain("proxy-b");
    // The name, not an address: only the proxy can resolve it.
    expect(net.proxy.log.filter((e) => e.method === "SOCKS5").map((e) => e.target)).toEqual([
      `${API_HOST}:${apiPort}`,
    ]);
  });

  it("refuses a proxy scheme it cannot speak, naming the setting", async () => {
    const path = join(dir, "ftp.kubeconfig");
    const raw = parseYaml(await readFile(kubeconfig, "utf8")) as {
      clusters: Array<{ cluster: Record<string, unknown> }>;
    };
    (raw.clusters[0]?.cluster ?? {})["proxy-url"] = "ftp://proxy.example:2121";
    await writeFile(path, JSON.stringify(raw));
    expect(() => loadKubeConfig(path)).toThrowError(
      /cluster "local": failed to use proxy-url ftp:\/\/proxy\.example:2121\/: the ftp scheme is not supported; use http:\/\/, https:\/\/, socks5:\/\/ or socks5h:\/\//,
    );
  });
});
