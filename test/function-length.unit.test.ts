// No function in the tree is over 150 lines. Biome's noExcessiveLinesPerFunction
// warns at 100 (biome.json) and the lint step fails on warnings, so a longer
// function needs a `biome-ignore` comment saying why; this test is the hard
// ceiling that no comment lifts. Counted as the editor shows it: from the line
// the function starts on to the line it ends on, `describe`/`it` callbacks
// included (a 500-line describe is as hard to read as a 500-line function).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./harness/controlplane.js";

const CEILING = 150;

interface FunctionSpan {
  /** `path:line` of the function's first line. */
  where: string;
  /** What the function is called, or the call it is the callback of. */
  name: string;
  lines: number;
}

/** Every function-like node of one file with its length in lines (1-based, inclusive). */
function functionSpans(path: string, text: string): FunctionSpan[] {
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const spans: FunctionSpan[] = [];
  const line = (pos: number) => file.getLineAndCharacterOfPosition(pos).line + 1;
  const visit = (node: ts.Node, context: string): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = line(node.getStart(file));
      const named = node.name?.getText(file);
      spans.push({
        where: `${path}:${start}`,
        name: named ?? context,
        lines: line(node.getEnd()) - start + 1,
      });
    }
    let next = context;
    if (ts.isCallExpression(node)) {
      const first = node.arguments[0];
      const label = first && ts.isStringLiteralLike(first) ? `("${first.text.slice(0, 40)}")` : "";
      next = `${node.expression.getText(file).slice(0, 30)}${label}`;
    } else if (ts.isVariableDeclaration(node) || ts.isPropertyAssignment(node)) {
      next = node.name.getText(file);
    }
    ts.forEachChild(node, (child) => visit(child, next));
  };
  visit(file, "(anonymous)");
  return spans;
}

function trackedSources(): string[] {
  const out = execFileSync(
    "git",
    ["ls-files", "--cached", "--others", "--exclude-standard", "src", "bench", "test", "scripts"],
    { cwd: repoRoot, encoding: "utf8" },
  );
  return out
    .split("\n")
    .filter((p) => p.endsWith(".ts") && !p.endsWith(".generated.ts"))
    .filter((p) => {
      try {
        readFileSync(join(repoRoot, p));
        return true;
      } catch {
        return false; // deleted in the working tree
      }
    });
}

describe("function length", () => {
  it("counts a describe callback from its first line to its last", () => {
    const text = ["describe('x', () => {", "  it('y', () => {", "  });", "});", ""].join("\n");
    const spans = functionSpans("a.ts", text);
    expect(spans.map((s) => [s.name, s.lines])).toEqual([
      ['describe("x")', 4],
      ['it("y")', 2],
    ]);
  });

  it(`holds every function in src, bench, test and scripts at ${CEILING} lines or fewer`, () => {
    const over = trackedSources()
      .flatMap((p) => functionSpans(p, readFileSync(join(repoRoot, p), "utf8")))
      .filter((s) => s.lines > CEILING)
      .map((s) => `${s.where} ${s.name}: ${s.lines} lines`);
    expect(over).toEqual([]);
  });
});
