// Does the Secret open the registry? `GET /v2/` with the new credentials, as
// a registry client's first request. The answer becomes the Verified condition.
import * as http from "node:http";
import * as https from "node:https";
import { OutboundAgent } from "../kube/proxy.js";

/** What a registry answered to `GET /v2/` with the credentials. */
export interface VerifyResult {
  ok: boolean;
  message: string;
}

/** The registry's base URL: the token's proxyEndpoint, else https://host. */
export function registryUrl(host: string, proxyEndpoint?: string): string {
  return (proxyEndpoint ?? `https://${host}`).replace(/\/+$/, "");
}

export async function verifyRegistry(
  url: string,
  username: string,
  password: string,
  opts: { timeoutMs: number; agent?: http.Agent },
): Promise<VerifyResult> {
  const auth = Buffer.from(`${username}:${password}`).toString("base64");
  // Through the proxy HTTPS_PROXY names (and NO_PROXY spares), like every
  // other outbound call; no redirects followed, as before.
  const agent =
    opts.agent ?? new OutboundAgent({ protocol: url.startsWith("http:") ? "http:" : "https:" });
  try {
    const { status, body } = await get(`${url}/v2/`, auth, agent, opts.timeoutMs);
    if (status === 200)
      return { ok: true, message: `${url}/v2/ accepted the credentials (HTTP 200)` };
    return {
      ok: false,
      message: `${url}/v2/ answered HTTP ${status}${registryAnswer(body)}`,
    };
  } catch (err) {
    const cause = err instanceof Error ? err.message : String(err);
    return { ok: false, message: `failed to reach ${url}/v2/: ${cause}` };
  } finally {
    if (opts.agent === undefined) agent.destroy();
  }
}

function get(
  url: string,
  auth: string,
  agent: http.Agent,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  const target = new URL(url);
  const send = target.protocol === "https:" ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        agent,
        headers: { Authorization: `Basic ${auth}` },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          // The start of the answer is all a message needs.
          if (body.length < 4096) body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.on("error", (err: Error & { code?: string }) =>
      reject(
        err.name === "AbortError"
          ? new Error(`no answer in ${timeoutMs} ms`)
          : new Error(
              err.code && !err.message.includes(err.code)
                ? `${err.code}: ${err.message}`
                : err.message,
            ),
      ),
    );
    req.end();
  });
}

/**
 * The registry's own words: its `{"errors":[{code,message}]}` body as
 * "CODE: message", else the start of whatever it sent.
 */
function registryAnswer(body: string): string {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = parsed.errors?.[0];
    if (first && (typeof first.code === "string" || typeof first.message === "string")) {
      const code = typeof first.code === "string" ? ` ${first.code}` : "";
      const message = typeof first.message === "string" ? `: ${first.message}` : "";
      return `${code}${message}`.slice(0, 300);
    }
  } catch {
    // Not JSON: fall through to the raw text.
  }
  const text = body.slice(0, 200).replace(/\s+/g, " ").trim();
  return text ? `: ${text}` : "";
}
