import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isOperatorError } from "../errors.js";
import { DURATION_PATTERN } from "./schema.js";
import { parseDuration } from "./validate.js";

describe("parseDuration", () => {
  it.each([
    ["4h", 4 * 3_600_000],
    ["90m", 90 * 60_000],
    ["1h30m", 90 * 60_000],
    ["1.5h", 90 * 60_000],
    [".5h", 30 * 60_000],
    ["1.h", 3_600_000],
    ["250ms", 250],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["2000000ns", 2],
    ["0", 0],
    ["-0", 0],
    ["-90s", -90_000],
    ["+1m", 60_000],
    ["0s", 0],
    ["1h1h", 7_200_000],
  ])("parses %s", (s, ms) => {
    expect(parseDuration(s)).toBeCloseTo(ms, 9);
  });

  it.each([
    "",
    "-",
    "4",
    "h",
    "1x",
    "1.5",
    "4 h",
    " 4h",
    "4h ",
    ".h",
    "1..5h",
    "1e3s",
    "--1s",
    "9999999h",
  ])("rejects %j with InvalidDuration", (s) => {
    try {
      parseDuration(s);
      expect.unreachable();
    } catch (e) {
      expect(isOperatorError(e, "InvalidSpec")).toBe(true);
      expect((e as { form?: string }).form).toBe("duration");
      expect((e as Error).message).toMatch(/^failed to parse duration /);
    }
  });

  const unit = fc.constantFrom(
    ["ns", 1e-6],
    ["us", 1e-3],
    ["ms", 1],
    ["s", 1e3],
    ["m", 6e4],
    ["h", 3.6e6],
  );
  const segment = fc.tuple(fc.nat({ max: 10_000 }), unit);

  it("sums the segments of any duration the schema's pattern accepts", () => {
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), (segments) => {
        const s = segments.map(([n, [u]]) => `${n}${u}`).join("");
        expect(new RegExp(DURATION_PATTERN).test(s)).toBe(true);
        const want = segments.reduce((sum, [n, [, per]]) => sum + n * per, 0);
        expect(parseDuration(s)).toBeCloseTo(want, 6);
        expect(parseDuration(`-${s}`)).toBeCloseTo(-want, 6);
      }),
    );
  });

  it("never throws anything but InvalidDuration", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (s) => {
        try {
          expect(Number.isFinite(parseDuration(s))).toBe(true);
        } catch (e) {
          expect(isOperatorError(e, "InvalidSpec")).toBe(true);
          expect((e as { form?: string }).form).toBe("duration");
        }
      }),
    );
  });
});
