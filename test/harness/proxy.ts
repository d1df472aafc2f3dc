// A corporate proxy for tests, in a few lines of node:http and node:net:
// CONNECT tunnels (what https:// traffic uses) and absolute-URI forwarding
// (plain http://), and, on a second port, SOCKS5 CONNECT (RFC 1928, no
// authentication). It has its own name table, so a test can give the AWS
// double a host name that only the proxy resolves: reachable through the
// proxy and from nowhere else. Every request lands in `log`.
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import { connect, createServer as createTcpServer, type Socket } from "node:net";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { AwsDouble } from "../aws-double/index.js";
import type { AwsDoubleOptions } from "../aws-double/types.js";
import { selfSignedCertificate } from "../registry-double/self-signed.js";

export interface ProxyLogEntry {
  /** CONNECT, SOCKS5 (a SOCKS5 CONNECT), or the forwarded request's method. */
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
  private socks: import("node:net").Server | undefined;
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

  /** Starts the SOCKS5 side; returns its socks5:// URL. */
  async startSocks(): Promise<string> {
    const server = createTcpServer((client) => {
      this.sockets.add(client);
      client.once("close", () => this.sockets.delete(client));
      client.on("error", () => client.destroy());
      this.socksHandshake(client);
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    this.socks = server;
    const addr = server.address();
    return `socks5://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
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
    const socks = this.socks;
    this.socks = undefined;
    if (socks) await new Promise<void>((ok) => socks.close(() => ok()));
  }

  /**
   * RFC 1928: the greeting (we pick method 0, no authentication), then one
   * CONNECT request to an IPv4 address (ATYP 1), a domain name (3) or an IPv6
   * address (4); reply 0 (succeeded) or 4 (host unreachable), then relay.
   */
  private socksHandshake(client: Socket): void {
    let buffered = Buffer.alloc(0);
    let greeted = false;
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!greeted) {
        if (buffered.length < 2 || buffered.length < 2 + (buffered[1] ?? 0)) return;
        if (buffered[0] !== 5) return void client.destroy();
        buffered = buffered.subarray(2 + (buffered[1] ?? 0));
        greeted = true;
        client.write(Buffer.from([5, 0]));
      }
      if (buffered.length < 5) return;
      const atyp = buffered[3];
      const addrLen = atyp === 1 ? 4 : atyp === 4 ? 16 : 1 + (buffered[4] ?? 0);
      if (buffered.length < 4 + addrLen + 2) return;
      client.off("data", onData);
      const addr = buffered.subarray(4, 4 + addrLen);
      const host =
        atyp === 1
          ? [...addr].join(".")
          : atyp === 4
            ? (addr.toString("hex").match(/.{4}/g) ?? []).join(":")
            : addr.subarray(1).toString("utf8");
      const port = buffered.readUInt16BE(4 + addrLen);
      const rest = buffered.subarray(4 + addrLen + 2);
      const to = buffered[1] === 1 ? this.resolve(host, port) : undefined;
      this.log.push({
        method: "SOCKS5",
        target: `${host}:${port}`,
        upstream: to ? `${to.host}:${to.port}` : undefined,
        time: Date.now(),
      });
      const reply = (code: number) => Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
      if (!to) return void client.end(reply(4));
      this.relay(client, to, reply(0), rest);
    };
    client.on("data", onData);
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
    this.relay(client, to, "HTTP/1.1 200 Connection Established\r\n\r\n", head);
  }

  /** Connects to `to`, answers the client with `answer`, sends on `head`, then pipes both ways. */
  private relay(
    client: Socket,
    to: { host: string; port: number },
    answer: string | Buffer,
    head: Buffer,
  ): void {
    const upstream = connect(to.port, to.host, () => {
      client.write(answer);
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
