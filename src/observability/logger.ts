// Structured logs (pino): JSON by default, or plain text lines for people.
// Credentials never reach a log line: known secret-bearing fields are censored
// wherever they appear, and the code logs sources and hosts, never tokens.
import { type Logger, pino } from "pino";

export type { Logger };
export type LogFormat = "json" | "text";

/** Field names that may carry a credential, censored at any depth we log. */
export const REDACTED_KEYS = [
  "password",
  "token",
  "authorizationToken",
  "auth",
  "secretAccessKey",
  "sessionToken",
  "SecretAccessKey",
  "SessionToken",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  ".dockerconfigjson",
  "dockerConfigJson",
  "data",
  "authorization",
  "Authorization",
];

const redactPaths = REDACTED_KEYS.flatMap((k) => {
  const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
  const dot = key.startsWith("[") ? "" : ".";
  return [key, `*${dot}${key}`, `*.*${dot}${key}`];
});

export function createLogger(opts: {
  level: string;
  format: LogFormat;
  destination?: NodeJS.WritableStream;
}): Logger {
  const options = {
    level: opts.level,
    base: { app: "ecr-creds-refresher" },
    redact: { paths: redactPaths, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const out = opts.destination ?? process.stdout;
  if (opts.format === "json") return pino(options, out as pino.DestinationStream);
  return pino(options, {
    write(line: string) {
      out.write(textLine(line));
    },
  });
}

/** One JSON log line as `time level msg key=value ...`. */
export function textLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, msg, app: _app, ...rest } = rec;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${String(time)} ${String(level).toUpperCase().padEnd(5)} ${String(msg ?? "")}${fields ? ` ${fields}` : ""}\n`;
}

/** The message and code of an error, for a log field (no stack, no request bodies). */
export function errorField(err: unknown): { message: string; code?: string } {
  if (err instanceof Error) {
    const code =
      (err as { code?: unknown; reason?: unknown }).reason ?? (err as { code?: unknown }).code;
    return code === undefined
      ? { message: err.message }
      : { message: err.message, code: String(code) };
  }
  return { message: String(err) };
}
