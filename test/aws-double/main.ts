/**
 * Runs the AWS double on its own, for the demo and for manual poking.
 *
 *   node test/aws-double/main.ts [--config double.json] [--host 127.0.0.1] [--port 0]
 *                                [--token-lifetime 12h] [--session-lifetime 1h]
 *
 * The config file holds AwsDoubleOptions as JSON: {identities, roles, podIdentities,
 * tokenLifetimeMs, sessionLifetimeMs}; identities' expiresAt may be an ISO string.
 * Prints one JSON line {"url", "containerCredentialsUrl"} on stdout once listening,
 * then serves until SIGINT/SIGTERM. Faults, identities and the call log are reachable
 * over HTTP under /_double/ (see admin.ts).
 */
import { readFile } from "node:fs/promises";
import { registerHooks } from "node:module";
import { parseArgs } from "node:util";
import type { AwsDoubleOptions, IdentityInit } from "./types.js";

// Plain Node strips the types but does not map our `.js` specifiers to the `.ts`
// files beside them; this hook does, so the file runs without a build step.
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (err) {
      if (specifier.startsWith(".") && specifier.endsWith(".js")) {
        return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      }
      throw err;
    }
  },
});

const { AwsDouble } = await import("./aws-double.js");

/** `90s`, `30m`, `12h`, `1d`, or plain milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (m === null)
    throw new Error(`failed to parse duration ${JSON.stringify(value)}: use e.g. 90s, 30m, 12h`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "ms"] ?? 1;
  return Number(m[1]) * unit;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      "token-lifetime": { type: "string" },
      "session-lifetime": { type: "string" },
    },
  });
  let options: AwsDoubleOptions = {};
  if (values.config !== undefined) {
    try {
      options = JSON.parse(await readFile(values.config, "utf8")) as AwsDoubleOptions;
    } catch (err) {
      throw new Error(`failed to read config ${values.config}: ${String(err)}`, { cause: err });
    }
    options.identities = options.identities?.map(
      (identity): IdentityInit =>
        identity.expiresAt === undefined
          ? identity
          : { ...identity, expiresAt: new Date(identity.expiresAt) },
    );
  }
  if (values["token-lifetime"] !== undefined) {
    options.tokenLifetimeMs = parseDuration(values["token-lifetime"]);
  }
  if (values["session-lifetime"] !== undefined) {
    options.sessionLifetimeMs = parseDuration(values["session-lifetime"]);
  }
  const double = new AwsDouble(options);
  const { url } = await double.start({ host: values.host, port: Number(values.port) });
  process.stdout.write(
    `${JSON.stringify({ url, containerCredentialsUrl: double.containerCredentialsUrl })}\n`,
  );
  const stop = (): void => {
    double.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`aws-double: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
