// Outbound proxies for every call the operator makes (AWS, the registry
// check, the Kubernetes API out of the cluster), read the way curl and the AWS
// CLI read them:
//
//   HTTPS_PROXY / https_proxy   for https:// URLs (ALL_PROXY as a fallback)
//   HTTP_PROXY / http_proxy     for http:// URLs
//   NO_PROXY / no_proxy         comma- or space-separated; each entry one of
//     *                 no proxy at all
//     example.com       that host and every host under it
//     .example.com      the same (a leading dot or *. changes nothing)
//     10.1.2.3, ::1     that IP address
//     10.0.0.0/8        every IP address in the range
//     any of these with :port, to match that port only
//
// The lowercase variable wins when both are set. A proxy URL without a scheme
// is http://. http:// and https:// proxies tunnel with CONNECT
// (https-proxy-agent; plain http:// targets are forwarded, http-proxy-agent);
// socks5://, socks5h://, socks4:// and socks4a:// proxies go through
// socks-proxy-agent. Any other scheme is refused with a message saying so.
//
// proxy-from-env does the variable part but matches NO_PROXY only exactly or
// by a leading dot, with no bare domain suffix and no CIDR; the matching here
// is a few lines over ipaddr.js instead.
import * as http from "node:http";
import * as https from "node:https";
import { isIP } from "node:net";
import { type ConnectionOptions, checkServerIdentity } from "node:tls";
import { Agent, type AgentConnectOpts } from "agent-base";
import { HttpProxyAgent } from "http-proxy-agent";
import { HttpsProxyAgent } from "https-proxy-agent";
import ipaddr from "ipaddr.js";
import { SocksProxyAgent } from "socks-proxy-agent";

export interface ProxySettings {
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
}

function pick(env: NodeJS.ProcessEnv, name: string): string | undefined {
  return env[name.toLowerCase()] || env[name.toUpperCase()] || undefined;
}

/** The proxy settings in an environment (default: this process's). */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const all = pick(env, "all_proxy");
  const s: ProxySettings = {};
  const httpsProxy = pick(env, "https_proxy") ?? all;
  const httpProxy = pick(env, "http_proxy") ?? all;
  const noProxy = pick(env, "no_proxy");
  if (httpsProxy) s.httpsProxy = httpsProxy;
  if (httpProxy) s.httpProxy = httpProxy;
  if (noProxy) s.noProxy = noProxy;
  return s;
}

const SCHEMES = ["http:", "https:", "socks5:", "socks5h:", "socks4:", "socks4a:"];

/** A proxy setting as a URL; throws, naming the setting and what to write, when it is none. */
export function parseProxyUrl(value: string, setting: string): URL {
  const text = value.trim();
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
  } catch {
    throw new Error(
      `failed to use ${setting} ${JSON.stringify(redactProxy(text))}: it is not a URL; write http://host:port`,
    );
  }
  if (!SCHEMES.includes(url.protocol)) {
    throw new Error(
      `failed to use ${setting} ${redactProxy(url.href)}: the ${url.protocol.slice(0, -1)} scheme is not supported; use http://, https://, socks5:// or socks5h://`,
    );
  }
  return url;
}

/** A proxy URL without its password, for logs and messages. */
export function redactProxy(value: string | URL): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = "***";
    return url.href;
  } catch {
    return String(value).replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
}

/** Checks every proxy setting once (at start), so a typo fails loudly rather than per request. */
export function checkProxySettings(s: ProxySettings = proxySettingsFromEnv()): void {
  if (s.httpsProxy) parseProxyUrl(s.httpsProxy, "HTTPS_PROXY");
  if (s.httpProxy) parseProxyUrl(s.httpProxy, "HTTP_PROXY");
}

function parseIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  return ipaddr.isValid(text) ? ipaddr.process(text) : undefined;
}

/** True when NO_PROXY says to reach hostname:port directly. */
export function bypassesProxy(
  hostname: string,
  port: number,
  noProxy: string | undefined,
): boolean {
  const host = hostname
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
  const ip = parseIp(host);
  for (const raw of (noProxy ?? "").toLowerCase().split(/[\s,]+/)) {
    if (raw === "") continue;
    if (raw === "*") return true;
    if (raw.includes("/")) {
      if (!ip || !ipaddr.isValidCIDR(raw)) continue;
      const [range, bits] = ipaddr.parseCIDR(raw);
      // match() wants an address of the range's own kind.
      if (ip.kind() === range.kind() && ip.match(range as never, bits)) return true;
      continue;
    }
    let name = raw;
    let entryPort: string | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw);
    if (bracketed) {
      name = bracketed[1] ?? "";
      entryPort = bracketed[2];
    } else if (/^[^:]+:\d+$/.test(raw)) {
      [name = "", entryPort] = raw.split(":");
    }
    if (entryPort !== undefined && Number(entryPort) !== port) continue;
    const entryIp = parseIp(name);
    if (entryIp || ip) {
      if (entryIp && ip && entryIp.kind() === ip.kind() && entryIp.toString() === ip.toString())
        return true;
      continue;
    }
    const domain = name.replace(/^\*?\.?/, "").replace(/\.$/, "");
    if (domain !== "" && (host === domain || host.endsWith(`.${domain}`))) return true;
  }
  return false;
}

/** The proxy for a request to `target`, or undefined to go there directly. */
export function proxyFor(target: URL, s: ProxySettings): URL | undefined {
  const https = target.protocol === "https:";
  const value = https ? s.httpsProxy : s.httpProxy;
  if (!value) return undefined;
  const port = Number(target.port) || (https ? 443 : 80);
  if (bypassesProxy(target.hostname, port, s.noProxy)) return undefined;
  return parseProxyUrl(value, https ? "HTTPS_PROXY" : "HTTP_PROXY");
}

export interface OutboundAgentOptions {
  keepAlive?: boolean;
  /** TLS settings for the servers reached (CA, client certificate, server name), through a proxy too. */
  tls?: ConnectionOptions;
  /** Always this proxy (a kubeconfig's proxy-url); otherwise the settings decide per host. */
  proxy?: URL;
  /** Default: this process's environment, read when the agent is made. */
  settings?: ProxySettings;
  /** Told once per route the agent opens: a proxy URL (password hidden) or "direct". */
  onRoute?: (target: string, via: string) => void;
  /**
   * The one scheme this agent serves, when the caller knows it. Unset, Node's
   * ClientRequest reading `agent.protocol` (twice per request) makes
   * agent-base work it out from a `new Error().stack`.
   */
  protocol?: "http:" | "https:";
}

/**
 * An http.Agent for both http:// and https:// that sends each request
 * straight to its server or through the proxy the settings name for it, with
 * one pooled agent per route (keep-alive survives the proxy).
 */
export class OutboundAgent extends Agent {
  private readonly routes = new Map<string, http.Agent>();
  private readonly settings: ProxySettings;

  constructor(private readonly o: OutboundAgentOptions = {}) {
    super({ keepAlive: o.keepAlive ?? false });
    this.settings = o.settings ?? proxySettingsFromEnv();
    if (o.protocol) this.protocol = o.protocol;
  }

  /** The proxy a request to this URL takes; undefined: direct. */
  proxyFor(target: URL): URL | undefined {
    return this.o.proxy ?? proxyFor(target, this.settings);
  }

  override connect(_req: http.ClientRequest, opts: AgentConnectOpts): http.Agent {
    const secure = opts.secureEndpoint;
    // The TLS settings travel with the request to whichever agent makes the
    // TLS connection: https.Agent directly, or the proxy agent after CONNECT.
    if (secure && this.o.tls) Object.assign(opts, this.o.tls);
    const host = opts.host ?? "localhost";
    const target = new URL(
      `${secure ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${opts.port}`,
    );
    const proxy = this.proxyFor(target);
    const key = `${secure ? "https" : "http"}|${proxy?.href ?? ""}`;
    let route = this.routes.get(key);
    if (route === undefined) {
      route = this.route(secure, proxy);
      this.routes.set(key, route);
      this.o.onRoute?.(target.host, proxy ? redactProxy(proxy) : "direct");
    }
    return route;
  }

  private route(secure: boolean, proxy: URL | undefined): http.Agent {
    return routeAgent(secure, proxy, this.keepAlive);
  }

  override destroy(): void {
    for (const route of this.routes.values()) route.destroy();
    this.routes.clear();
    super.destroy();
  }
}

/**
 * The TLS options of a connection tunnelled to `opts.host`, checking the
 * server's certificate against that host when it is an IP address, as
 * kubectl does. The proxy agents start TLS over the tunnel without `host`
 * and set `servername` only for names (SNI takes no IP), so Node would check
 * the certificate against "localhost": a server given as
 * https://10.0.0.1:6443 (k3s' https://127.0.0.1:6443) behind a proxy-url
 * failed with "Host: localhost", and passed only when its certificate also
 * named localhost. An explicit servername (tls-server-name) or identity check
 * is left as given.
 */
export function tunnelledTls<T extends AgentConnectOpts>(opts: T): T {
  if (!opts.secureEndpoint) return opts;
  const ip = (opts.host ?? "").replace(/^\[(.*)\]$/, "$1");
  // Node's request gives an IP target servername "" (no SNI): not a name to check.
  if (!isIP(ip) || opts.servername || opts.checkServerIdentity !== undefined) return opts;
  return { ...opts, checkServerIdentity: (_name, cert) => checkServerIdentity(ip, cert) };
}

/** HTTPS through an http(s):// proxy's CONNECT tunnel, the server's IP checked as itself. */
class ConnectTunnelAgent extends HttpsProxyAgent<string> {
  override connect(req: http.ClientRequest, opts: AgentConnectOpts) {
    return super.connect(req, tunnelledTls(opts));
  }
}

/** Any scheme through a SOCKS proxy, the server's IP checked as itself. */
class SocksTunnelAgent extends SocksProxyAgent {
  override connect(req: http.ClientRequest, opts: AgentConnectOpts) {
    return super.connect(req, tunnelledTls(opts));
  }
}

/** The pooling agent of one route: straight to the server, or through `proxy`. */
function routeAgent(secure: boolean, proxy: URL | undefined, keepAlive: boolean): http.Agent {
  if (proxy === undefined)
    return secure ? new https.Agent({ keepAlive }) : new http.Agent({ keepAlive });
  if (proxy.protocol.startsWith("socks")) return new SocksTunnelAgent(proxy, { keepAlive });
  return secure
    ? new ConnectTunnelAgent(proxy.href, { keepAlive })
    : new HttpProxyAgent(proxy, { keepAlive });
}

/**
 * The agent for every request to one server (`server`'s scheme, host and
 * port): the route OutboundAgent would take to it (the fixed `proxy`, else the
 * one the settings name, else direct), chosen once instead of per request.
 * Requests carry their TLS settings (`ca`, `cert`, `key`, `servername`,
 * `rejectUnauthorized`) in their own options; through a proxy they apply to
 * the server behind the tunnel, not to the proxy.
 *
 * What it saves per request, measured on a 1,000-namespace fan-out
 * (docs/performance.md): OutboundAgent's routing (a URL, the NO_PROXY match, a
 * promise hop, a second agent's pooling) and agent-base's `agent.protocol`,
 * which, unset, it works out from a `new Error().stack` each time Node's
 * ClientRequest reads it (twice per request).
 */
export function serverAgent(
  server: URL,
  o: { keepAlive?: boolean; proxy?: URL; settings?: ProxySettings } = {},
): http.Agent {
  const proxy = o.proxy ?? proxyFor(server, o.settings ?? proxySettingsFromEnv());
  const agent = routeAgent(server.protocol === "https:", proxy, o.keepAlive ?? false);
  if (agent instanceof Agent) agent.protocol = server.protocol;
  return agent;
}
