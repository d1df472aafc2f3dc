import { operatorError } from "../errors.js";

// Go's time.ParseDuration, to the millisecond: what the API server's CEL
// `duration()` accepts for spec.refreshBefore, so the operator reads the same
// value the schema let through.

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 micro sign
  μs: 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** The largest duration Go can represent (2^63-1 ns), in ms, to double precision. */
const MAX_MS = 9_223_372_036_854.775;

const SEGMENT = /([0-9]*)(?:\.([0-9]*))?([^0-9.]+)/y;

/**
 * Parses a Go duration ("4h", "1h30m", "1.5h", "-90s", "0") into milliseconds,
 * possibly fractional. Throws InvalidDuration on anything Go would reject.
 */
export function parseDuration(s: string): number {
  const bad = (reason: string) => operatorError("InvalidSpec", "duration", { value: s, reason });
  let rest = s;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    sign = rest.startsWith("-") ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw bad("it is empty");
  let total = 0;
  SEGMENT.lastIndex = 0;
  while (SEGMENT.lastIndex < rest.length) {
    const at = SEGMENT.lastIndex;
    const m = SEGMENT.exec(rest);
    if (m === null) {
      throw bad(
        `expected a number and a unit (ns, us, ms, s, m, h) at ${JSON.stringify(rest.slice(at))}`,
      );
    }
    const [, whole = "", frac, unit = ""] = m;
    if (whole === "" && (frac === undefined || frac === "")) throw bad("a number is missing");
    const perUnit = UNIT_MS[unit];
    if (perUnit === undefined) {
      throw bad(`unknown unit ${JSON.stringify(unit)}; use ns, us, ms, s, m or h`);
    }
    total += Number(`${whole || "0"}.${frac || "0"}`) * perUnit;
  }
  if (!(total <= MAX_MS)) throw bad("it is longer than about 292 years");
  return sign * total;
}
