// The image installs `dependencies` only (npm ci --omit=dev): production code
// that imports a development dependency would load in the tests and fail in
// the cluster. And the Kubernetes client is the operator's own: the
// generated one costs about 80 MB of memory just to load
// (docs/performance.md), so it stays a test tool.
import { readdir, readFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./harness/controlplane.js";

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(repoRoot, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await sourceFiles(path)));
    else if (path.endsWith(".ts") && !path.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

/** The packages a file loads at run time (type-only imports are erased). */
function runtimeImports(text: string): string[] {
  const names: string[] = [];
  for (const m of text.matchAll(/^import\s+(?!type\s)[^;]*?from\s+"([^"]+)"/gms)) {
    const spec = m[1] ?? "";
    if (spec.startsWith(".") || spec.startsWith("node:") || builtinModules.includes(spec)) continue;
    names.push(
      spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? ""),
    );
  }
  return names;
}

describe("production dependencies", () => {
  it("src/ loads only packages listed in dependencies, and not @kubernetes/client-node", async () => {
    const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const used = new Map<string, string[]>();
    for (const file of await sourceFiles("src")) {
      for (const name of runtimeImports(await readFile(join(repoRoot, file), "utf8")))
        used.set(name, [...(used.get(name) ?? []), file]);
    }
    const undeclared = [...used.keys()].filter((name) => !(name in pkg.dependencies));
    expect(undeclared, JSON.stringify(Object.fromEntries(used))).toEqual([]);
    expect(Object.keys(pkg.dependencies)).not.toContain("@kubernetes/client-node");
    // The scan sees the imports it must: the AWS SDK, pino, prom-client, js-yaml.
    expect([...used.keys()].sort()).toEqual(Object.keys(pkg.dependencies).sort());
  });
});
