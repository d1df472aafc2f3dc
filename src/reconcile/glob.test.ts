import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isOperatorError } from "../errors.js";
import { globToRegExp, isGlob, matchesAny, matchesGlob } from "./glob.js";

// Names and globs over a small alphabet so that random pairs often match.
const nameChar = fc.constantFrom("a", "b", "-", "1", ".");
const name = fc.array(nameChar, { maxLength: 12 }).map((cs) => cs.join(""));
const glob = fc
  .array(fc.oneof(nameChar, fc.constantFrom("*", "?")), { minLength: 1, maxLength: 10 })
  .map((cs) => cs.join(""));

describe("matchesGlob", () => {
  it.each([
    ["team-a", "team-a", true],
    ["team-a", "team-ab", false],
    ["team-a", "xteam-a", false],
    ["apps-*", "apps-", true],
    ["apps-*", "apps-prod", true],
    ["apps-*", "app-prod", false],
    ["kube-*", "kube-system", true],
    ["*-prod", "shop-prod", true],
    ["*-prod", "shop-prod-2", false],
    ["team-?", "team-b", true],
    ["team-?", "team-", false],
    ["team-?", "team-bc", false],
    ["*", "", true],
    ["*", "anything", true],
    ["a*b*c", "abc", true],
    ["a*b*c", "aXXbYYc", true],
    ["a*b*c", "aXXbYY", false],
    ["a.b", "axb", false],
    ["a.b", "a.b", true],
    ["a+", "aa", false],
    ["(x)", "(x)", true],
  ])("%s against %s is %s", (g, n, want) => {
    expect(matchesGlob(g, n)).toBe(want);
    expect(globToRegExp(g).test(n)).toBe(want);
  });

  it("rejects an empty glob with InvalidGlob", () => {
    expect(() => matchesGlob("", "a")).toThrowError(/failed to parse namespace glob/);
    try {
      globToRegExp("");
      expect.unreachable();
    } catch (e) {
      expect(isOperatorError(e, "InvalidSpec")).toBe(true);
      expect((e as { form?: string }).form).toBe("glob");
    }
  });

  it("stays fast on patterns that make backtracking regexps explode", () => {
    const g = `${"a*".repeat(30)}b`;
    const n = "a".repeat(63);
    const start = performance.now();
    expect(matchesGlob(g, n)).toBe(false);
    expect(performance.now() - start).toBeLessThan(100);
  });

  it("agrees with its RegExp form", () => {
    fc.assert(
      fc.property(glob, name, (g, n) => {
        expect(matchesGlob(g, n)).toBe(globToRegExp(g).test(n));
      }),
      { numRuns: 2000 },
    );
  });

  it("matches a plain name only to itself", () => {
    fc.assert(
      fc.property(
        name.filter((n) => n.length > 0),
        name,
        (a, b) => {
          expect(matchesGlob(a, b)).toBe(a === b);
        },
      ),
    );
  });

  it("matches a name from which it was made by wildcarding characters", () => {
    const made = fc
      .array(fc.tuple(nameChar, fc.constantFrom("keep", "?", "*", "*+")), {
        minLength: 1,
        maxLength: 12,
      })
      .map((parts) => ({
        name: parts.map(([c]) => c).join(""),
        glob: parts
          .map(([c, how]) => (how === "keep" ? c : how === "?" ? "?" : how === "*" ? "*" : `${c}*`))
          .join(""),
      }));
    fc.assert(
      fc.property(made, ({ name: n, glob: g }) => {
        expect(matchesGlob(g, n)).toBe(true);
      }),
    );
  });

  it("treats ? as exactly one code point", () => {
    expect(matchesGlob("?", "é")).toBe(true);
    expect(matchesGlob("?", "😀")).toBe(true);
    expect(globToRegExp("?").test("😀")).toBe(true);
  });
});

describe("isGlob", () => {
  it("is true exactly when a wildcard is present", () => {
    expect(isGlob("team-a")).toBe(false);
    expect(isGlob("team-*")).toBe(true);
    expect(isGlob("team-?")).toBe(true);
    fc.assert(
      fc.property(glob, (g) => {
        expect(isGlob(g)).toBe(/[*?]/.test(g));
      }),
    );
  });
});

describe("matchesAny", () => {
  it("is the disjunction of matchesGlob", () => {
    expect(matchesAny(undefined, "a")).toBe(false);
    expect(matchesAny([], "a")).toBe(false);
    expect(matchesAny(["kube-*", "default"], "default")).toBe(true);
    fc.assert(
      fc.property(fc.array(glob, { maxLength: 4 }), name, (gs, n) => {
        expect(matchesAny(gs, n)).toBe(gs.some((g) => matchesGlob(g, n)));
      }),
    );
  });
});
