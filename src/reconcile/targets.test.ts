import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { LabelSelector } from "../api/index.js";
import { matchesAny } from "./glob.js";
import { matchesSelector } from "./selector.js";
import {
  type NamespaceInfo,
  scopedTargetNamespaces,
  type TargetingSpec,
  targetNamespaces,
} from "./targets.js";

const cluster: NamespaceInfo[] = [
  { name: "default" },
  { name: "kube-system" },
  { name: "kube-public", labels: { "ecr-pull": "enabled" } },
  { name: "team-a" },
  { name: "team-b", labels: { "ecr-pull": "enabled" } },
  { name: "apps-prod" },
  { name: "apps-dev", terminating: true },
  { name: "apps-stage", labels: { "ecr-pull": "enabled" } },
];

describe("targetNamespaces", () => {
  it("takes the union of names, globs and selector, minus excludes and terminating ones", () => {
    const spec: TargetingSpec = {
      namespaces: ["team-a", "apps-*", "missing"],
      namespaceSelector: { matchLabels: { "ecr-pull": "enabled" } },
      excludeNamespaces: ["kube-*"],
    };
    expect(targetNamespaces(spec, cluster)).toEqual([
      "apps-prod",
      "apps-stage",
      "team-a",
      "team-b",
    ]);
  });

  it("targets nothing without namespaces or selector", () => {
    expect(targetNamespaces({}, cluster)).toEqual([]);
    expect(targetNamespaces({ namespaces: [] }, cluster)).toEqual([]);
  });

  it("targets every live namespace with an empty selector", () => {
    expect(targetNamespaces({ namespaceSelector: {} }, cluster)).toHaveLength(cluster.length - 1);
  });

  it("lets excludes win over explicit names", () => {
    expect(
      targetNamespaces({ namespaces: ["team-a"], excludeNamespaces: ["team-a"] }, cluster),
    ).toEqual([]);
  });

  it("lists each namespace once even when the input repeats it", () => {
    expect(targetNamespaces({ namespaces: ["*"] }, [{ name: "a" }, { name: "a" }])).toEqual(["a"]);
  });

  // Small alphabets so globs, names and selectors often meet.
});

// Arbitraries for the properties of targetNamespaces.
const name = fc.constantFrom("a", "b", "ab", "ba", "a-b", "b-a", "kube-a", "kube-b", "x");
const glob = fc.oneof(name, fc.constantFrom("*", "a*", "*-a", "kube-*", "?", "?-?", "b?"));
const labels = fc.dictionary(fc.constantFrom("k", "l"), fc.constantFrom("1", "2"), {
  maxKeys: 2,
});
const namespace: fc.Arbitrary<NamespaceInfo> = fc.record(
  { name, labels, terminating: fc.boolean() },
  { requiredKeys: ["name"] },
);
const namespaces = fc.uniqueArray(namespace, { selector: (n) => n.name, maxLength: 9 });
const selector: fc.Arbitrary<LabelSelector> = fc.oneof(
  fc.record({ matchLabels: labels }),
  fc.record({
    matchExpressions: fc.array(
      fc.record({
        key: fc.constantFrom("k", "l"),
        operator: fc.constantFrom("Exists" as const, "DoesNotExist" as const),
      }),
      { maxLength: 2 },
    ),
  }),
);
const spec: fc.Arbitrary<TargetingSpec> = fc.record(
  {
    namespaces: fc.array(glob, { maxLength: 3 }),
    namespaceSelector: selector,
    excludeNamespaces: fc.array(glob, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);

describe("targetNamespaces, properties", () => {
  it("never returns an excluded, terminating or unknown namespace", () => {
    fc.assert(
      fc.property(spec, namespaces, (s, nss) => {
        const byName = new Map(nss.map((n) => [n.name, n]));
        for (const t of targetNamespaces(s, nss)) {
          expect(byName.has(t)).toBe(true);
          expect(byName.get(t)?.terminating).not.toBe(true);
          expect(matchesAny(s.excludeNamespaces, t)).toBe(false);
        }
      }),
    );
  });

  it("returns exactly the live, not excluded namespaces matched by a glob or the selector", () => {
    fc.assert(
      fc.property(spec, namespaces, (s, nss) => {
        const want = nss
          .filter((n) => !n.terminating && !matchesAny(s.excludeNamespaces, n.name))
          .filter(
            (n) =>
              matchesAny(s.namespaces, n.name) || matchesSelector(s.namespaceSelector, n.labels),
          )
          .map((n) => n.name);
        expect(new Set(targetNamespaces(s, nss))).toEqual(new Set(want));
      }),
    );
  });

  it("does not depend on the order of the namespace list and returns a sorted list", () => {
    fc.assert(
      fc.property(spec, namespaces, fc.infiniteStream(fc.nat()), (s, nss, rnd) => {
        const shuffled = [...nss];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = rnd.next().value % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j] as NamespaceInfo, shuffled[i] as NamespaceInfo];
        }
        const result = targetNamespaces(s, nss);
        expect(targetNamespaces(s, shuffled)).toEqual(result);
        expect(result).toEqual([...result].sort());
      }),
    );
  });

  it("shrinks when excludes grow", () => {
    fc.assert(
      fc.property(spec, namespaces, glob, (s, nss, more) => {
        const wider = { ...s, excludeNamespaces: [...(s.excludeNamespaces ?? []), more] };
        const before = new Set(targetNamespaces(s, nss));
        for (const t of targetNamespaces(wider, nss)) expect(before.has(t)).toBe(true);
      }),
    );
  });
});

describe("scopedTargetNamespaces (an install granted some namespaces only)", () => {
  const all: NamespaceInfo[] = [
    { name: "team-a" },
    { name: "team-b", labels: { ecr: "on" } },
    { name: "team-c", labels: { ecr: "on" } },
    { name: "kube-system" },
  ];

  it("equals targetNamespaces when every namespace is granted", () => {
    const s = { namespaces: ["team-*", "missing"], excludeNamespaces: ["team-c"] };
    expect(scopedTargetNamespaces(s, all, undefined)).toEqual({
      targets: ["team-a", "team-b"],
      notGranted: [],
    });
  });

  it("matches globs and selectors only within the granted set", () => {
    const granted = new Set(["team-a", "team-b"]);
    expect(
      scopedTargetNamespaces(
        { namespaces: ["team-*"], namespaceSelector: { matchLabels: { ecr: "on" } } },
        all,
        granted,
      ),
    ).toEqual({ targets: ["team-a", "team-b"], notGranted: [] });
  });

  it("names each exact namespace outside the granted set, existing or not, unless excluded", () => {
    const granted = new Set(["team-a"]);
    expect(
      scopedTargetNamespaces(
        { namespaces: ["team-c", "team-a", "later", "kube-system"], excludeNamespaces: ["kube-*"] },
        all,
        granted,
      ),
    ).toEqual({ targets: ["team-a"], notGranted: ["later", "team-c"] });
  });
});
