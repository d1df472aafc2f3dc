import { describe, expect, it } from "vitest";
import { table, when } from "./status.js";

describe("status formatting", () => {
  const now = new Date("2026-11-30T08:00:00.000Z");

  it.each([
    ["2026-11-30T19:58:30.000Z", "2026-11-30T19:58:30Z (in 11h58m)"],
    ["2026-11-30T08:04:05.000Z", "2026-11-30T08:04:05Z (in 4m5s)"],
    ["2026-11-30T08:00:09.000Z", "2026-11-30T08:00:09Z (in 9s)"],
    ["2026-11-30T07:56:00.000Z", "2026-11-30T07:56:00Z (4m0s ago)"],
  ])("%s reads %s", (iso, text) => {
    expect(when(iso, now)).toBe(text);
  });

  it("shows - for no time", () => {
    expect(when(undefined, now)).toBe("-");
  });

  it("pads each column to its widest cell, three spaces apart, the last one unpadded", () => {
    expect(
      table([
        ["NAME", "READY"],
        ["team-images", "True"],
      ]),
    ).toBe("NAME          READY\nteam-images   True\n");
  });
});
