// Builds dist/ for tests that run the executable, once: skipped when every
// file under src/ is older than the built entry point.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./controlplane.js";

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export async function ensureBuilt(): Promise<void> {
  const entry = join(repoRoot, "dist/cli/main.js");
  if (existsSync(entry) && statSync(entry).mtimeMs >= newestMtime(join(repoRoot, "src"))) return;
  try {
    await promisify(execFile)(
      process.execPath,
      [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
      { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    // tsc still emits on type errors elsewhere; only a missing output is fatal.
    if (!existsSync(entry)) throw new Error(`failed to build dist/: ${String(err)}`);
  }
}
