// Fuzzing the pure parsers with what can actually reach them: every value the
// CRD's patterns let through must be handled (parsed, matched) without an
// exception, and arbitrary bytes must either decode exactly or be refused
// with the catalogued error. The tests beside each parser check its meaning;
// these check that no admitted input can crash a reconcile.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeAuthorizationToken } from "../aws/authorization-token.js";
import { parseRegistryHost, registryHost } from "../aws/registry-host.js";
import { isOperatorError } from "../errors.js";
import { matchesGlob } from "../reconcile/glob.js";
import { matchesSelector } from "../reconcile/selector.js";
import type { LabelSelectorRequirement } from "./index.js";
import { NAMESPACE_GLOB_PATTERN, NAMESPACE_NAME_PATTERN, REGISTRY_HOST_PATTERN } from "./schema.js";

/** The CEL rule on registries[].host beside the pattern (China ⇔ .amazonaws.com.cn). */
function chinaConsistent(host: string): boolean {
  return host.endsWith(".amazonaws.com.cn") === /^[0-9]{12}[.]dkr[.-]ecr(-fips)?[.]cn-/.test(host);
}

describe("registry hosts the CRD admits", () => {
  it("all parse, and the standard ones rebuild to themselves", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(new RegExp(REGISTRY_HOST_PATTERN)).filter(chinaConsistent),
        (host) => {
          const parsed = parseRegistryHost(host);
          if (parsed.kind === "public") {
            expect(host).toBe("public.ecr.aws");
            return;
          }
          expect(host.startsWith(`${parsed.accountId}.`)).toBe(true);
          expect(host).toContain(`.${parsed.region}.`);
          if (parsed.dualStack || !host.endsWith(".on.aws")) {
            expect(
              registryHost(parsed.accountId, parsed.region, {
                fips: parsed.fips,
                dualStack: parsed.dualStack,
              }),
            ).toBe(host);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("refuses anything else with InvalidRegistryHost only", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (host) => {
        try {
          parseRegistryHost(host);
          expect(host).toMatch(new RegExp(REGISTRY_HOST_PATTERN));
        } catch (e) {
          expect(isOperatorError(e, "InvalidSpec")).toBe(true);
          expect((e as { form?: string }).form).toBe("registryHost");
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("namespace globs the CRD admits", () => {
  const glob = fc.stringMatching(new RegExp(NAMESPACE_GLOB_PATTERN)).filter((g) => g.length <= 63);
  const name = fc.stringMatching(new RegExp(NAMESPACE_NAME_PATTERN)).filter((n) => n.length <= 63);

  it("match any namespace name without throwing, and * admits all", () => {
    fc.assert(
      fc.property(glob, name, (g, n) => {
        expect(typeof matchesGlob(g, n)).toBe("boolean");
        expect(matchesGlob("*", n)).toBe(true);
        // A glob matches the name it becomes when every wildcard is a letter.
        expect(matchesGlob(g, g.replaceAll("*", "").replaceAll("?", "x"))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("selectors the CRD admits", () => {
  const key = fc.constantFrom("team", "env", "ecrcreds.io/pull", "a.b/c");
  const value = fc.constantFrom("a", "b", "on", "");
  const requirement: fc.Arbitrary<LabelSelectorRequirement> = fc.oneof(
    fc.record({
      key,
      operator: fc.constantFrom("In" as const, "NotIn" as const),
      values: fc.array(value, { minLength: 1, maxLength: 3 }),
    }),
    fc.record({ key, operator: fc.constantFrom("Exists" as const, "DoesNotExist" as const) }),
  );
  const selector = fc.record(
    {
      matchLabels: fc.dictionary(key, value, { maxKeys: 3 }),
      matchExpressions: fc.array(requirement, { maxLength: 4 }),
    },
    { requiredKeys: [] },
  );

  it("evaluate against any labels without throwing", () => {
    fc.assert(
      fc.property(selector, fc.dictionary(key, value, { maxKeys: 4 }), (s, labels) => {
        expect(typeof matchesSelector(s, labels)).toBe("boolean");
      }),
      { numRuns: 2000 },
    );
  });

  it("refuse an operator the schema does not admit with InvalidSpec (selector, whatever the labels", () => {
    fc.assert(
      fc.property(
        fc
          .string({ maxLength: 10 })
          .filter((o) => !["In", "NotIn", "Exists", "DoesNotExist"].includes(o)),
        fc.dictionary(key, value, { maxKeys: 3 }),
        (operator, labels) => {
          const s = { matchExpressions: [{ key: "team", operator, values: ["a"] }] };
          expect(() => matchesSelector(s as never, labels)).toThrow(
            expect.objectContaining({ code: "InvalidSpec", form: "selector" }),
          );
        },
      ),
    );
  });
});

describe("authorization tokens from arbitrary bytes", () => {
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  function oracle(bytes: Uint8Array): { username: string; password: string } | undefined {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return undefined;
    }
    const colon = text.indexOf(":");
    if (colon <= 0 || colon === text.length - 1) return undefined;
    return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc
      .tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 16 }))
      .map(([u, p]) => new Uint8Array(Buffer.from(`${u}:${p}`))),
  );

  it("decode exactly when the bytes are UTF-8 user:password, else MalformedToken without them", () => {
    fc.assert(
      fc.property(bytes, (b) => {
        const token = Buffer.from(b).toString("base64");
        const want = oracle(b);
        try {
          expect(decodeAuthorizationToken(token)).toEqual(want);
        } catch (e) {
          if (want !== undefined) throw e;
          expect(isOperatorError(e, "TokenRefreshFailed")).toBe(true);
          if (token.length > 3) expect((e as Error).message).not.toContain(token);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
