import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { LabelSelector, LabelSelectorRequirement } from "../api/index.js";
import { isOperatorError } from "../errors.js";
import { matchesSelector } from "./selector.js";

const labels = { env: "prod", team: "a", "ecr-pull": "enabled" };

describe("matchesSelector", () => {
  it.each<[string, LabelSelector | undefined, Record<string, string> | undefined, boolean]>([
    ["undefined selector matches nothing", undefined, labels, false],
    ["empty selector matches everything", {}, labels, true],
    ["empty selector matches unlabelled", {}, undefined, true],
    ["matchLabels hit", { matchLabels: { env: "prod" } }, labels, true],
    ["matchLabels wrong value", { matchLabels: { env: "dev" } }, labels, false],
    ["matchLabels missing key", { matchLabels: { zone: "x" } }, labels, false],
    ["matchLabels all must hold", { matchLabels: { env: "prod", team: "b" } }, labels, false],
    [
      "In hit",
      { matchExpressions: [{ key: "env", operator: "In", values: ["dev", "prod"] }] },
      labels,
      true,
    ],
    [
      "In miss",
      { matchExpressions: [{ key: "env", operator: "In", values: ["dev"] }] },
      labels,
      false,
    ],
    [
      "In absent key",
      { matchExpressions: [{ key: "zone", operator: "In", values: ["x"] }] },
      labels,
      false,
    ],
    [
      "NotIn hit",
      { matchExpressions: [{ key: "env", operator: "NotIn", values: ["dev"] }] },
      labels,
      true,
    ],
    [
      "NotIn miss",
      { matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] },
      labels,
      false,
    ],
    [
      "NotIn absent key",
      { matchExpressions: [{ key: "zone", operator: "NotIn", values: ["x"] }] },
      labels,
      true,
    ],
    ["Exists", { matchExpressions: [{ key: "team", operator: "Exists" }] }, labels, true],
    ["Exists absent", { matchExpressions: [{ key: "zone", operator: "Exists" }] }, labels, false],
    [
      "DoesNotExist",
      { matchExpressions: [{ key: "zone", operator: "DoesNotExist" }] },
      labels,
      true,
    ],
    [
      "DoesNotExist present",
      { matchExpressions: [{ key: "team", operator: "DoesNotExist" }] },
      labels,
      false,
    ],
    [
      "Exists with empty values list",
      { matchExpressions: [{ key: "team", operator: "Exists", values: [] }] },
      labels,
      true,
    ],
    [
      "labels and expressions together",
      {
        matchLabels: { env: "prod" },
        matchExpressions: [{ key: "team", operator: "In", values: ["a"] }],
      },
      labels,
      true,
    ],
    [
      "no labels: DoesNotExist holds",
      { matchExpressions: [{ key: "x", operator: "DoesNotExist" }] },
      undefined,
      true,
    ],
    [
      "inherited keys are not labels",
      { matchExpressions: [{ key: "toString", operator: "Exists" }] },
      {},
      false,
    ],
  ])("%s", (_, selector, l, want) => {
    expect(matchesSelector(selector, l)).toBe(want);
  });
});

describe("matchesSelector: malformed requirements", () => {
  it.each<LabelSelectorRequirement>([
    { key: "env", operator: "In", values: [] },
    { key: "env", operator: "NotIn" },
    { key: "env", operator: "Exists", values: ["x"] },
    { key: "env", operator: "DoesNotExist", values: ["x"] },
    { key: "env", operator: "Matches" as "In", values: ["x"] },
  ])("rejects the malformed requirement %j with InvalidSelector, whatever the labels", (r) => {
    for (const l of [labels, {}, { zone: "x" }] as Record<string, string>[]) {
      try {
        matchesSelector({ matchLabels: { absent: "x" }, matchExpressions: [r] }, l);
        expect.unreachable();
      } catch (e) {
        expect(isOperatorError(e, "InvalidSpec")).toBe(true);
        expect((e as { form?: string }).form).toBe("selector");
      }
    }
  });
});

// Small alphabets so that random selectors and labels often meet.
const key = fc.constantFrom("a", "b", "c");
const value = fc.constantFrom("1", "2", "3");
const labelSet = fc.dictionary(key, value, { maxKeys: 3 });
const requirement: fc.Arbitrary<LabelSelectorRequirement> = fc.oneof(
  fc.record({
    key,
    operator: fc.constantFrom("In" as const, "NotIn" as const),
    values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ key, operator: fc.constantFrom("Exists" as const, "DoesNotExist" as const) }),
);
const selector: fc.Arbitrary<LabelSelector> = fc.record(
  { matchLabels: labelSet, matchExpressions: fc.array(requirement, { maxLength: 3 }) },
  { requiredKeys: [] },
);

describe("matchesSelector properties", () => {
  it("is the conjunction of its parts", () => {
    fc.assert(
      fc.property(selector, labelSet, (s, l) => {
        const parts = [
          ...Object.entries(s.matchLabels ?? {}).map(([k, v]) => ({ matchLabels: { [k]: v } })),
          ...(s.matchExpressions ?? []).map((r) => ({ matchExpressions: [r] })),
        ];
        expect(matchesSelector(s, l)).toBe(parts.every((p) => matchesSelector(p, l)));
      }),
    );
  });

  it("treats In and NotIn, Exists and DoesNotExist as complements", () => {
    fc.assert(
      fc.property(requirement, labelSet, (r, l) => {
        const flipped: LabelSelectorRequirement = {
          ...r,
          operator: { In: "NotIn", NotIn: "In", Exists: "DoesNotExist", DoesNotExist: "Exists" }[
            r.operator
          ] as LabelSelectorRequirement["operator"],
        };
        expect(matchesSelector({ matchExpressions: [r] }, l)).toBe(
          !matchesSelector({ matchExpressions: [flipped] }, l),
        );
      }),
    );
  });

  it("matches labels that contain its matchLabels", () => {
    fc.assert(
      fc.property(labelSet, labelSet, (want, extra) => {
        expect(matchesSelector({ matchLabels: want }, { ...extra, ...want })).toBe(true);
      }),
    );
  });
});
