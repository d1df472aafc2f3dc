// A corporate proxy for tests, in a few lines of node:http and node:net:
// CONNECT tunnels (what https:// traffic uses) and absolute-URI forwarding
// (plain http://). It has its own name table, so a test can give the AWS
// double a host name that only the proxy resolves: reachable through the
// proxy and from nowhere else. Every request lands in `log`.
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { AwsDouble } from "../aws-double/index.js";
import type { AwsDoubleOptions } from "../aws-double/types.js";
import { selfSignedCertificate } from "../registry-double/self-signed.js";

export interface ProxyLogEntry {
  /** CONNECT, or the forwarded request's method. */
  method: string;
  /** host:port as the client asked for it. */
  target: string;
  /** Where the proxy sent it; undefined when it refused (unknown name). */
  upstream?: string;
  time: number;
}

/** Maps a requested host:port to where it really is; undefined: refuse (502). */
export type ProxyResolver = (
  host: string,
  port: number,
) => { host: string; port: number } | undefined;

export class TestProxy {
  readonly log: ProxyLogEntry[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private baseUrl: string | undefined;

  constructor(private readonly resolve: ProxyResolver) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => this.forward(req, res));
    server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) =>
      this.tunnel(req, client, head),
    );
    server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    this.server = server;
    const addr = server.address();
    this.baseUrl = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
    return this.baseUrl;
  }

  get url(): string {
    if (!this.baseUrl) throw new Error("failed to read the proxy URL: not started");
    return this.baseUrl;
  }

  /** The targets asked for, in order (e.g. "CONNECT api.ecr.us-east-1.amazonaws.com:443"). */
  requests(): string[] {
    return this.log.map((e) => `${e.method} ${e.target}`);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  }

  private tunnel(req: IncomingMessage, client: Socket, head: Buffer): void {
    const target = req.url ?? "";
    const i = target.lastIndexOf(":");
    const host = target.slice(0, i).replace(/^\[(.*)\]$/, "$1");
    const port = Number(target.slice(i + 1));
    const to = this.resolve(host, port);
    this.log.push({
      method: "CONNECT",
      target,
      upstream: to ? `${to.host}:${to.port}` : undefined,
      time: Date.now(),
    });
    if (!to) {
      client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
      return;
    }
    const upstream = connect(to.port, to.host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    this.sockets.add(upstream);
    upstream.once("close", () => this.sockets.delete(upstream));
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  }

  private forward(req: IncomingMessage, res: import("node:http").ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? "");
    } catch {
      res.writeHead(400).end("absolute URL required");
      return;
    }
    const port = Number(url.port) || 80;
    const to = this.resolve(url.hostname, port);
    this.log.push({
      method: req.method ?? "GET",
      target: `${url.hostname}:${port}`,
      upstream: to ? `${to.host}:${to.port}` : undefined,
      time: Date.now(),
    });
    if (!to) {
      res.writeHead(502).end();
      return;
    }
    const out = request(
      {
        host: to.host,
        port: to.port,
        method: req.method,
        path: url.pathname + url.search,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", () => res.destroy());
    req.pipe(out);
  }
}

/**
 * Makes this test process trust a certificate, as NODE_EXTRA_CA_CERTS would
 * for the operator's own process: the in-process operator then talks TLS to
 * a double that serves it.
 */
export function trustCertificate(certPem: string): void {
  setDefaultCACertificates([...getCACertificates("default"), certPem]);
}

/** The AWS double serving HTTPS for these names, reachable only through a proxy that knows them. */
export async function awsBehindProxy(
  dnsNames: string[],
  proxied: (host: string) => boolean,
  options: AwsDoubleOptions = {},
  others: ProxyResolver = () => undefined,
): Promise<{ aws: AwsDouble; proxy: TestProxy; stop(): Promise<void> }> {
  const cert = selfSignedCertificate({ dnsNames, ips: ["127.0.0.1"] });
  trustCertificate(cert.certPem);
  const aws = new AwsDouble(options);
  await aws.start({ tls: cert });
  const port = Number(new URL(aws.url).port);
  const proxy = new TestProxy((host, p) =>
    proxied(host) ? { host: "127.0.0.1", port } : others(host, p),
  );
  await proxy.start();
  return {
    aws,
    proxy,
    async stop() {
      await proxy.close();
      await aws.close();
    },
  };
}
