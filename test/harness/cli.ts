// The CLI's commands run in this process with their output captured, so a
// test can read what a user would see.
import { Writable } from "node:stream";
import { runCheck } from "../../src/cli/check.js";
import type { OperatorConfig } from "../../src/cli/config.js";
import { runMigrate } from "../../src/cli/migrate.js";

/** A stream that keeps what is written to it, read back as UTF-8 text. */
export interface CapturedOutput {
  stream: Writable;
  /** Everything written so far. */
  text(): string;
}

/** A fresh CapturedOutput. */
export function captureOutput(): CapturedOutput {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  return { stream, text: () => chunks.join("") };
}

/**
 * `check` for `resourceName` (every resource when undefined), its standard
 * output and error interleaved in one text as a terminal shows them.
 */
export async function checkOutput(
  config: OperatorConfig,
  resourceName: string | undefined,
): Promise<{ code: number; text: string }> {
  const output = captureOutput();
  const code = await runCheck(config, resourceName, output.stream, output.stream);
  return { code, text: output.text() };
}

/**
 * `migrate` as the identity of `kubeconfig` with `args`, and no environment:
 * its exit code, standard output and standard error.
 */
export async function migrateOutput(
  kubeconfig: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const out = captureOutput();
  const err = captureOutput();
  const code = await runMigrate(
    [`--kubeconfig=${kubeconfig}`, ...args],
    {},
    {
      out: out.stream,
      err: err.stream,
    },
  );
  return { code, out: out.text(), err: err.text() };
}
