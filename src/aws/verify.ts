// Does the Secret open the registry? `GET /v2/` with the new credentials, as
// a registry client's first request. The answer becomes the Verified condition.

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
  opts: { timeoutMs: number },
): Promise<VerifyResult> {
  const auth = Buffer.from(`${username}:${password}`).toString("base64");
  try {
    const res = await fetch(`${url}/v2/`, {
      headers: { Authorization: `Basic ${auth}` },
      signal: AbortSignal.timeout(opts.timeoutMs),
      redirect: "manual",
    });
    const body = await res.text();
    if (res.status === 200)
      return { ok: true, message: `${url}/v2/ accepted the credentials (HTTP 200)` };
    return {
      ok: false,
      message: `${url}/v2/ answered HTTP ${res.status}${registryAnswer(body)}`,
    };
  } catch (err) {
    const cause =
      err instanceof Error
        ? err.cause instanceof Error
          ? err.cause.message
          : err.message
        : String(err);
    return { ok: false, message: `failed to reach ${url}/v2/: ${cause}` };
  }
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
