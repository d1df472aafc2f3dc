// Out in the field (issue 29, kind 5): a server given as an IP address
// (`https://10.0.0.1:6443`, k3s' `https://127.0.0.1:6443`) reached through a
// proxy. The proxy agents start TLS over the tunnel without the host and set
// no servername for an IP, so Node checked the certificate against
// "localhost": every call failed with "Host: localhost. is not cert's CN"
// unless the certificate also named localhost (the control plane's does,
// which is why the older proxy test passed). Here every certificate names
// the IP only: the real API server behind a TLS front with such a
// certificate, through a kubeconfig proxy-url (CONNECT, then SOCKS5), and the
// AWS double served the same way through HTTPS_PROXY.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createServer as createTlsServer, type Server, connect as tlsConnect } from "node:tls";
import { load as parseYaml } from "js-yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient, loadKubeConfig, NAMESPACES } from "../../src/kube/client.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  dockerConfigOf,
  readSecret,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { startOperator, testConfig } from "../harness/operator.js";
import { TestProxy, trustCertificate } from "../harness/proxy.js";
import { type Stack, startStack } from "../harness/stack.js";
import { selfSignedCertificate } from "../registry-double/self-signed.js";

const cp = inject("controlPlane");
const OPS = "field-proxy-ops";
const NAMESPACE = "field-proxy-a";
const RESOURCE = "field-proxy";
const ACCOUNT = "292900000005";
const KEYS = {
  accessKeyId: "AKIAFIELDPROXY000001",
  secretAccessKey: "field-proxy-secret-0000000000000000000001",
};
const ENV = ["AWS_ENDPOINT_URL", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"] as const;

/** A certificate for 127.0.0.1 and nothing else: no localhost. */
const ipOnly = selfSignedCertificate({ dnsNames: [], ips: ["127.0.0.1"] });

let stack: Stack;
let k: TestKube;
let front: Server;
let frontPort = 0;
let aws: AwsDouble;
let awsPort = 0;
let proxy: TestProxy;
let socksUrl = "";
let operatorKubeconfig = "";

/** The kubeconfig of the operator's ServiceAccount, with its server at the IP-only front. */
async function kubeconfigThrough(proxyUrl: string, name: string): Promise<string> {
  const raw = parseYaml(await readFile(operatorKubeconfig, "utf8")) as {
    clusters: Array<{ cluster: Record<string, unknown> }>;
  };
  const cluster = raw.clusters[0]?.cluster ?? {};
  cluster.server = `https://127.0.0.1:${frontPort}`;
  cluster["certificate-authority-data"] = Buffer.from(ipOnly.certPem).toString("base64");
  delete cluster["certificate-authority"];
  delete cluster["tls-server-name"];
  cluster["proxy-url"] = proxyUrl;
  const path = join(stack.dir, `${name}.kubeconfig`);
  await writeFile(path, JSON.stringify(raw));
  return path;
}

/**
 * A TLS front with the IP-only certificate before the real API server: it
 * ends TLS and opens its own to the API server; the bearer token passes.
 * Returns its port; stop() closes it.
 */
async function startFront(): Promise<number> {
  const api = new URL(cp.server);
  front = createTlsServer({ cert: ipOnly.certPem, key: ipOnly.keyPem }, (client) => {
    const upstream = tlsConnect({
      host: api.hostname,
      port: Number(api.port),
      rejectUnauthorized: false,
    });
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  stack.onStop(() => new Promise<void>((ok) => front.close(() => ok())));
  await new Promise<void>((ok) => front.listen(0, "127.0.0.1", ok));
  return (front.address() as { port: number }).port;
}

beforeAll(async () => {
  // The AWS double under the same IP-only certificate, trusted by this process.
  trustCertificate(ipOnly.certPem);
  stack = await startStack({
    ops: OPS,
    namespaces: [NAMESPACE],
    awsTls: ipOnly,
    // Its endpoint is set below, by IP.
    awsEndpoint: false,
    identities: [{ ...KEYS, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/proxied` }],
  });
  ({ k, aws } = stack);
  stack.resources.push(RESOURCE);
  frontPort = await startFront();
  awsPort = Number(new URL(aws.url).port);
  // A proxy that reaches 127.0.0.1 (the front and the double) and nothing else.
  proxy = new TestProxy((host, port) => (host === "127.0.0.1" ? { host, port } : undefined));
  stack.onStop(() => proxy.close());
  await proxy.start();
  socksUrl = await proxy.startSocks();
  process.env.AWS_ENDPOINT_URL = `https://127.0.0.1:${awsPort}`;
  process.env.HTTPS_PROXY = proxy.url;
  delete process.env.HTTP_PROXY;
  delete process.env.NO_PROXY;
  operatorKubeconfig = await stack.serviceAccountKubeconfig("operator");
});

afterAll(async () => {
  await stack?.stop();
  for (const name of ENV) delete process.env[name];
});

describe("a server given as an IP address, through a proxy, with a certificate naming only the IP", () => {
  it("carries the Kubernetes client through a CONNECT proxy-url and a SOCKS5 one", async () => {
    for (const [name, via] of [
      ["connect", proxy.url],
      ["socks", socksUrl],
    ] as const) {
      const client = new KubeClient(loadKubeConfig(await kubeconfigThrough(via, name)), {
        qps: 0,
        burst: 0,
      });
      const list = await client.list<{ metadata?: { name?: string } }>(NAMESPACES);
      expect(list.items.map((n) => n.metadata?.name)).toContain(NAMESPACE);
    }
    expect(
      proxy.log.filter((e) => e.target === `127.0.0.1:${frontPort}`).map((e) => e.method),
    ).toEqual(["CONNECT", "SOCKS5"]);
  });

  it("runs the operator through it: watches, writes and the AWS call all tunnelled, every certificate checked against the IP", async () => {
    const before = proxy.log.length;
    // Not stack.startOperator: its kubeconfig is the one through the proxy.
    const op = await startOperator(
      testConfig(await kubeconfigThrough(proxy.url, "operator-connect"), {
        region: "us-east-1",
        credentialsSecretName: "aws-creds",
        credentialsSecretNamespace: OPS,
      }),
    );
    stack.onStop(() => op.stop());
    await applyResource(k, RESOURCE, {
      secretName: "ecr-pull",
      namespaces: [NAMESPACE],
      serviceAccounts: [],
      registries: [{ accountId: ACCOUNT }],
    });
    const secret = await waitFor("the Secret, written through the proxy", () =>
      readSecret(k, NAMESPACE, "ecr-pull"),
    );
    const host = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
    const auths = dockerConfigOf(secret).auths;
    expect(Object.keys(auths)).toEqual([host]);
    expect(aws.isValidPassword(auths[host]?.password ?? "")).toBe(true);
    const tunnels = new Set(proxy.log.slice(before).map((e) => `${e.method} ${e.target}`));
    expect([...tunnels].sort()).toEqual(
      [`CONNECT 127.0.0.1:${awsPort}`, `CONNECT 127.0.0.1:${frontPort}`].sort(),
    );
  });
});
