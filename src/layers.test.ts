// The floors of src/, held by a test over the import graph: a folder imports
// only from its own floor or lower ones, so data flows one way and the
// generic layers stay generic. docs/architecture.md draws the same picture.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";

/** Floors, lowest first. One floor may hold several folders (which may import each other). */
const FLOORS: ReadonlyArray<readonly string[]> = [
  ["kube"], // the Kubernetes client, informers, retry: knows nothing of this operator
  ["api", "errors.ts"], // the resource's types and schema, its names, the error catalogue
  ["observability"], // metrics, health, Events, logging
  ["aws"], // credentials, the token fetch pipeline, the token cache, the registry check
  ["reconcile"], // desired state (pure) and the reconciler that applies it
  ["controller"], // informers, work queue, leader election, wiring
  ["cli"], // the commands: the entry point, never a library
];

const srcDir = dirname(new URL(import.meta.url).pathname);

/** The floor of a file or folder under src/ ("kube/client.ts" → 0). */
function floorOf(path: string): number {
  const top = path.split("/")[0] ?? path;
  const floor = FLOORS.findIndex((names) => names.includes(top));
  if (floor < 0) throw new Error(`src/${path} is on no floor: add its folder to FLOORS`);
  return floor;
}

interface Import {
  from: string;
  to: string;
}

/** Every import (static, re-export or dynamic) between two files of src/, shipped code only. */
function imports(): Import[] {
  const out: Import[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith(".ts") && !/\.(test|fake)\.ts$/.test(e.name)) {
        const text = readFileSync(path, "utf8");
        const specifiers = [
          ...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gms),
          ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
        ].map((m) => m[1] ?? "");
        for (const s of specifiers.filter((s) => s.startsWith("."))) {
          const to = relative(srcDir, join(dirname(path), s)).replace(/\.js$/, ".ts");
          out.push({ from: relative(srcDir, path), to });
        }
      }
    }
  };
  walk(srcDir);
  return out;
}

describe("the floors of src/", () => {
  const all = imports();

  it("reads the import graph (a broken parser would make every check below pass)", () => {
    expect(all.length).toBeGreaterThan(100);
    expect(all).toContainEqual({ from: "controller/controller.ts", to: "reconcile/reconciler.ts" });
  });

  it("has no import from a lower floor to a higher one", () => {
    const upward = all.filter((i) => floorOf(i.to) > floorOf(i.from));
    expect(upward.map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it("keeps kube/ to itself: it imports nothing else of the operator", () => {
    const out = all.filter((i) => i.from.startsWith("kube/") && !i.to.startsWith("kube/"));
    expect(out.map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it("keeps aws/ and kube/ below reconcile/, controller/ and cli/", () => {
    const above = ["reconcile/", "controller/", "cli/"];
    const bad = all.filter(
      (i) =>
        (i.from.startsWith("aws/") || i.from.startsWith("kube/")) &&
        above.some((a) => i.to.startsWith(a)),
    );
    expect(bad.map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it("lets no file import cli/ but cli/ itself: the entry point is not a library", () => {
    const bad = all.filter((i) => i.to.startsWith("cli/") && !i.from.startsWith("cli/"));
    expect(bad.map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it("keeps the ECRPullSecret resource out of the generic kube/ client", () => {
    const dir = join(srcDir, "kube");
    const mentions = readdirSync(dir)
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
      .filter((f) =>
        /ECRPullSecret|ecrcreds|ecrpullsecret/i.test(readFileSync(join(dir, f), "utf8")),
      );
    expect(mentions).toEqual([]);
  });
});
