import type * as http from "node:http";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { Agent } from "agent-base";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TestProxy } from "../../test/harness/proxy.js";
import { selfSignedCertificate } from "../../test/registry-double/self-signed.js";
import {
  bypassesProxy,
  checkProxySettings,
  OutboundAgent,
  parseProxyUrl,
  proxyFor,
  proxySettingsFromEnv,
  serverAgent,
} from "./proxy.js";

describe("NO_PROXY", () => {
  const noProxy =
    "internal.example, .svc, *.cluster.local, 10.0.0.0/8, 192.168.1.7, fd00::/8, ::1, registry.local:5000";
  it.each([
    ["internal.example", 443, true],
    ["api.internal.example", 443, true],
    ["notinternal.example", 443, false],
    ["kubernetes.default.svc", 443, true],
    ["svc", 443, true],
    ["a.b.cluster.local", 443, true],
    ["10.96.0.1", 443, true],
    ["11.0.0.1", 443, false],
    ["192.168.1.7", 443, true],
    ["192.168.1.8", 443, false],
    ["[fd00::1]", 443, true],
    ["::1", 443, true],
    ["::ffff:10.1.2.3", 443, true],
    ["registry.local", 5000, true],
    ["registry.local", 443, false],
    ["API.INTERNAL.EXAMPLE.", 443, true],
    ["api.ecr.us-east-1.amazonaws.com", 443, false],
  ])("%s:%d bypasses: %s", (host, port, want) => {
    expect(bypassesProxy(host, port, noProxy)).toBe(want);
  });

  it("* bypasses everything; empty bypasses nothing", () => {
    expect(bypassesProxy("anything.example", 443, "*")).toBe(true);
    expect(bypassesProxy("anything.example", 443, "")).toBe(false);
    expect(bypassesProxy("anything.example", 443, undefined)).toBe(false);
  });

  it("an IP entry does not match a host name, nor a name an IP", () => {
    expect(bypassesProxy("10.0.0.1", 443, "example.com")).toBe(false);
    expect(bypassesProxy("example.com", 443, "10.0.0.0/8")).toBe(false);
  });
});

describe("proxy settings", () => {
  it("reads both spellings, lowercase first, ALL_PROXY as the fallback", () => {
    expect(
      proxySettingsFromEnv({
        HTTPS_PROXY: "http://upper:1",
        https_proxy: "http://lower:1",
        ALL_PROXY: "socks5://all:1080",
        NO_PROXY: ".svc",
      }),
    ).toEqual({ httpsProxy: "http://lower:1", httpProxy: "socks5://all:1080", noProxy: ".svc" });
    expect(proxySettingsFromEnv({})).toEqual({});
  });

  it("picks the variable by the target's scheme and honours NO_PROXY", () => {
    const s = {
      httpsProxy: "proxy:3128",
      httpProxy: "http://plain:8080",
      noProxy: "direct.example",
    };
    expect(proxyFor(new URL("https://a.example/x"), s)?.href).toBe("http://proxy:3128/");
    expect(proxyFor(new URL("http://a.example/x"), s)?.href).toBe("http://plain:8080/");
    expect(proxyFor(new URL("https://direct.example/"), s)).toBeUndefined();
    expect(proxyFor(new URL("https://a.example/"), {})).toBeUndefined();
  });

  it("refuses schemes it cannot speak, without printing the password", () => {
    expect(() => parseProxyUrl("ftp://user:secret@proxy:2121", "HTTPS_PROXY")).toThrowError(
      "failed to use HTTPS_PROXY ftp://user:***@proxy:2121/: the ftp scheme is not supported; use http://, https://, socks5:// or socks5h://",
    );
    expect(() => checkProxySettings({ httpsProxy: "http://[bad" })).toThrowError(
      /^failed to use HTTPS_PROXY "http:\/\/\[bad": it is not a URL/,
    );
    expect(parseProxyUrl("socks5h://proxy:1080", "HTTPS_PROXY").protocol).toBe("socks5h:");
  });
});

/**
 * An https and an http server reachable only through the proxy, as
 * only-through-proxy.test; listening (and the proxy started) for the
 * describe block that calls this, closed after it.
 */
function throughProxyServers() {
  const cert = selfSignedCertificate({ dnsNames: ["only-through-proxy.test", "localhost"] });
  const seen: string[] = [];
  const ports = { https: 0, http: 0 };
  const tlsServer = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    seen.push(`https ${req.headers.host} ${req.url}`);
    res.end("tls ok");
  });
  const plainServer = createHttpServer((req, res) => {
    seen.push(`http ${req.headers.host} ${req.url}`);
    res.end("plain ok");
  });
  const servers = [tlsServer, plainServer];
  const proxy = new TestProxy((host, port) =>
    host === "only-through-proxy.test"
      ? { host: "127.0.0.1", port: port === 443 ? ports.https : ports.http }
      : undefined,
  );
  beforeAll(async () => {
    for (const s of servers) await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
    ports.https = (tlsServer.address() as AddressInfo).port;
    ports.http = (plainServer.address() as AddressInfo).port;
    await proxy.start();
  });
  afterAll(async () => {
    await proxy.close();
    for (const s of servers) await new Promise<void>((ok) => s.close(() => ok()));
  });
  return { cert, seen, ports, proxy };
}

/** GETs `url` through `agent`; `tls` rides on the request (serverAgent's way). */
async function get(url: string, agent: Agent | http.Agent, tls = {}): Promise<string> {
  const mod = url.startsWith("https") ? await import("node:https") : await import("node:http");
  return await new Promise((resolve, reject) => {
    mod
      .get(url, { agent, ...tls }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

describe("OutboundAgent", () => {
  const { cert, seen, ports, proxy } = throughProxyServers();

  it("tunnels https through CONNECT with the caller's TLS settings, reusing the tunnel", async () => {
    const routes: string[] = [];
    const agent = new OutboundAgent({
      keepAlive: true,
      tls: { ca: cert.certPem },
      settings: { httpsProxy: proxy.url },
      onRoute: (target, via) => routes.push(`${target} via ${via}`),
    });
    proxy.log.length = 0;
    expect(await get("https://only-through-proxy.test/v2/", agent)).toBe("tls ok");
    expect(await get("https://only-through-proxy.test/v2/again", agent)).toBe("tls ok");
    expect(proxy.requests()).toEqual(["CONNECT only-through-proxy.test:443"]);
    expect(routes).toEqual([`only-through-proxy.test via ${proxy.url}/`]);
    agent.destroy();
  });

  it("forwards plain http through the proxy and goes direct for NO_PROXY hosts", async () => {
    const agent = new OutboundAgent({
      settings: { httpProxy: proxy.url, httpsProxy: proxy.url, noProxy: "127.0.0.0/8" },
      tls: { ca: cert.certPem },
    });
    proxy.log.length = 0;
    seen.length = 0;
    expect(await get("http://only-through-proxy.test/plain", agent)).toBe("plain ok");
    expect(await get(`https://127.0.0.1:${ports.https}/direct`, agent)).toBe("tls ok");
    expect(proxy.requests()).toEqual(["GET only-through-proxy.test:80"]);
    expect(seen[0]).toBe("http only-through-proxy.test /plain");
    agent.destroy();
  });

  it("serverAgent takes one route per server, TLS from each request, and never reads the stack for its protocol", async () => {
    // agent-base answers `agent.protocol`, which Node reads twice per request,
    // with isSecureEndpoint() and no options: a new Error().stack each time.
    const sniff = vi.spyOn(Agent.prototype, "isSecureEndpoint");
    try {
      const through = serverAgent(new URL("https://only-through-proxy.test"), {
        keepAlive: true,
        settings: { httpsProxy: proxy.url, noProxy: "127.0.0.0/8" },
      });
      const direct = serverAgent(new URL(`https://127.0.0.1:${ports.https}`), {
        keepAlive: true,
        settings: { httpsProxy: proxy.url, noProxy: "127.0.0.0/8" },
      });
      expect((through as unknown as { protocol: string }).protocol).toBe("https:");
      const tls = { ca: cert.certPem };
      proxy.log.length = 0;
      seen.length = 0;
      for (let i = 0; i < 3; i++) {
        expect(await get(`https://only-through-proxy.test/v2/${i}`, through, tls)).toBe("tls ok");
        expect(await get(`https://127.0.0.1:${ports.https}/direct/${i}`, direct, tls)).toBe(
          "tls ok",
        );
      }
      // One tunnel for three requests; the direct ones never reached the proxy.
      expect(proxy.requests()).toEqual(["CONNECT only-through-proxy.test:443"]);
      expect(seen.filter((l) => l.includes("/direct/"))).toHaveLength(3);
      expect(sniff.mock.calls.filter(([opts]) => opts === undefined)).toEqual([]);
      through.destroy();
      direct.destroy();
    } finally {
      sniff.mockRestore();
    }
  });

  it("a fixed proxy (kubeconfig proxy-url) ignores NO_PROXY", async () => {
    const agent = new OutboundAgent({
      proxy: new URL(proxy.url),
      settings: { noProxy: "*" },
      tls: { ca: cert.certPem },
    });
    proxy.log.length = 0;
    expect(await get("https://only-through-proxy.test/fixed", agent)).toBe("tls ok");
    expect(proxy.requests()).toEqual(["CONNECT only-through-proxy.test:443"]);
    agent.destroy();
  });
});

describe("a server given as an IP address behind a proxy", () => {
  // A certificate that names the IP only (no localhost), as a k3s or kubeadm
  // API server reached by address has.
  const ipOnly = selfSignedCertificate({ dnsNames: [], ips: ["127.0.0.1"] });
  const server = createHttpsServer({ cert: ipOnly.certPem, key: ipOnly.keyPem }, (_req, res) =>
    res.end("ip ok"),
  );
  const proxy = new TestProxy((host, port) =>
    host === "127.0.0.1" ? { host: "127.0.0.1", port } : undefined,
  );
  let base = "";

  beforeAll(async () => {
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await proxy.start();
  });
  afterAll(async () => {
    await proxy.close();
    await new Promise<void>((ok) => server.close(() => ok()));
  });

  const get = (url: string, agent: http.Agent, tls: object): Promise<string> =>
    new Promise((resolve, reject) => {
      void import("node:https").then((https) =>
        https
          .get(url, { agent, ...tls }, (res) => {
            let body = "";
            res.on("data", (c: Buffer) => {
              body += c.toString();
            });
            res.on("end", () => resolve(body));
          })
          .on("error", reject),
      );
    });

  it("checks the certificate against the IP through CONNECT and SOCKS5, not against localhost", async () => {
    const socks = await proxy.startSocks();
    for (const via of [proxy.url, socks]) {
      const agent = serverAgent(new URL(base), { proxy: new URL(via) });
      expect(await get(`${base}/version`, agent, { ca: ipOnly.certPem })).toBe("ip ok");
      agent.destroy();
      const outbound = new OutboundAgent({ proxy: new URL(via), tls: { ca: ipOnly.certPem } });
      expect(await get(`${base}/version`, outbound, {})).toBe("ip ok");
      outbound.destroy();
    }
    expect(proxy.requests().filter((r) => r.startsWith("CONNECT"))).toEqual([
      `CONNECT ${new URL(base).host}`,
      `CONNECT ${new URL(base).host}`,
    ]);
  });

  it("still refuses a certificate for another IP, and honours an explicit server name", async () => {
    const agent = serverAgent(new URL(base), { proxy: new URL(proxy.url) });
    const other = selfSignedCertificate({ dnsNames: [], ips: ["127.0.0.2"] });
    const wrong = createHttpsServer({ cert: other.certPem, key: other.keyPem }, (_q, r) =>
      r.end("wrong"),
    );
    await new Promise<void>((ok) => wrong.listen(0, "127.0.0.1", ok));
    const wrongBase = `https://127.0.0.1:${(wrong.address() as AddressInfo).port}`;
    try {
      await expect(get(`${wrongBase}/`, agent, { ca: other.certPem })).rejects.toThrow(
        "IP: 127.0.0.1 is not in the cert's list: 127.0.0.2",
      );
      // tls-server-name set: checked against that name, as kubectl does.
      await expect(
        get(`${base}/`, agent, { ca: ipOnly.certPem, servername: "kubernetes.default.svc" }),
      ).rejects.toThrow("Host: kubernetes.default.svc. is not cert's CN: 127.0.0.1");
    } finally {
      agent.destroy();
      await new Promise<void>((ok) => wrong.close(() => ok()));
    }
  });
});
