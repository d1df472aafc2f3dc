/**
 * Runs the registry double on its own, for the demo and for manual poking.
 *
 *   node test/registry-double/main.ts --aws-double-url http://127.0.0.1:PORT
 *        [--host 127.0.0.1] [--port 0] [--tls] [--format docker|oci]
 *        [--repository demo/app]... [--tag latest]... [--accept-password PW]...
 *
 * Passwords are checked against a running AWS double (its /_double/validate-password
 * route) and/or a fixed list given with --accept-password. Prints one JSON line
 * {"url", "host"} on stdout once listening (plus "certificatePem" with --tls), then
 * serves until SIGINT/SIGTERM.
 */
import { registerHooks } from "node:module";
import { parseArgs } from "node:util";
import type { PasswordValidator } from "./registry-double.js";

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

const { RegistryDouble } = await import("./registry-double.js");

function awsDoubleValidator(awsDoubleUrl: string): PasswordValidator {
  return async (password) => {
    const res = await fetch(new URL("/_double/validate-password", awsDoubleUrl), {
      method: "POST",
      body: JSON.stringify({ password }),
    });
    if (!res.ok) {
      throw new Error(`failed to validate password with the AWS double: HTTP ${res.status}`);
    }
    return ((await res.json()) as { valid?: boolean }).valid === true;
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "aws-double-url": { type: "string" },
      "accept-password": { type: "string", multiple: true, default: [] },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      tls: { type: "boolean", default: false },
      format: { type: "string", default: "docker" },
      repository: { type: "string", multiple: true },
      tag: { type: "string", multiple: true },
    },
  });
  const format = values.format;
  if (format !== "docker" && format !== "oci") {
    throw new Error(`failed to parse --format ${format}: use docker or oci`);
  }
  const fixed = new Set(values["accept-password"]);
  const remote = values["aws-double-url"];
  if (remote === undefined && fixed.size === 0) {
    throw new Error("failed to configure passwords: give --aws-double-url or --accept-password");
  }
  const viaAws = remote === undefined ? undefined : awsDoubleValidator(remote);
  const registry = new RegistryDouble({
    validatePassword: async (password, at) =>
      fixed.has(password) || (viaAws !== undefined && (await viaAws(password, at))),
    manifestFormat: format,
    tls: values.tls,
    ...(values.repository === undefined ? {} : { repositories: values.repository }),
    ...(values.tag === undefined ? {} : { tags: values.tag }),
  });
  const address = await registry.start({ host: values.host, port: Number(values.port) });
  const certificatePem = registry.certificatePem;
  process.stdout.write(
    `${JSON.stringify(certificatePem === undefined ? address : { ...address, certificatePem })}\n`,
  );
  const stop = (): void => {
    registry.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`registry-double: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
