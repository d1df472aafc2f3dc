import { operatorError } from "../errors.js";

// Namespace globs: `*` matches any run of characters (also none), `?` exactly
// one; every other character is literal and the whole name must match.

const SURROGATE = /[\uD800-\uDFFF]/;

/** True when `s` contains a wildcard, i.e. is a pattern rather than a plain name. */
export function isGlob(s: string): boolean {
  return s.includes("*") || s.includes("?");
}

function checkGlob(glob: string): void {
  if (glob.length === 0) {
    throw operatorError("InvalidSpec", "glob", { glob, reason: "the glob is empty" });
  }
}

/**
 * The anchored RegExp equivalent of `glob`. Runs of `*` are collapsed so the
 * expression stays small; matching itself goes through `matchesGlob`, which
 * cannot backtrack exponentially.
 */
export function globToRegExp(glob: string): RegExp {
  checkGlob(glob);
  let source = "";
  let previous = "";
  for (const ch of glob) {
    if (ch === "*") {
      if (previous !== "*") source += ".*";
    } else if (ch === "?") {
      source += ".";
    } else {
      // Only syntax characters: the `u` flag rejects needless escapes like `\-`.
      source += ch.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
    }
    previous = ch;
  }
  // `s`: a wildcard matches any character; `u`: `?` is one code point.
  return new RegExp(`^${source}$`, "su");
}

/**
 * Whether `name` matches `glob`, in O(|glob|·|name|) time: the classic
 * wildcard match that backtracks only to the most recent `*`.
 */
export function matchesGlob(glob: string, name: string): boolean {
  checkGlob(glob);
  if (!isGlob(glob)) return glob === name;
  // Code points, so `?` is one character even outside the BMP; without
  // surrogates (every namespace name) the strings index as they are, and a
  // match allocates nothing: it runs for every namespace on every pass.
  const astral = SURROGATE.test(glob) || SURROGATE.test(name);
  const g = astral ? Array.from(glob) : glob;
  const n = astral ? Array.from(name) : name;
  let gi = 0;
  let ni = 0;
  let star = -1; // index in g of the last `*` seen
  let resume = 0; // index in n where that `*` stopped matching
  while (ni < n.length) {
    const c = g[gi];
    if (c === "*") {
      star = gi++;
      resume = ni;
    } else if (c !== undefined && (c === "?" || c === n[ni])) {
      gi++;
      ni++;
    } else if (star >= 0) {
      gi = star + 1;
      ni = ++resume;
    } else {
      return false;
    }
  }
  while (g[gi] === "*") gi++;
  return gi === g.length;
}

/** Whether `name` matches at least one of `globs` (plain names match themselves). */
export function matchesAny(globs: readonly string[] | undefined, name: string): boolean {
  return globs?.some((glob) => matchesGlob(glob, name)) ?? false;
}
