// The desired-state diff under the API server's own patch semantics: the
// reconciler sends JSON merge patches (RFC 7386), so applying secretPatch and
// serviceAccountPatch the way the server does must land exactly on the desired
// state, a second application must change nothing, and everything the
// operator does not own must come through untouched. desired.test.ts checks
// the plans themselves; this file checks the patches that carry them.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_EXPIRES_AT,
  LABEL_MANAGED_BY,
  LABEL_OWNER,
  OPERATOR_NAME,
} from "../api/metadata.js";
import {
  DOCKER_CONFIG_JSON_KEY,
  DOCKER_CONFIG_JSON_TYPE,
  desiredSecret,
  formatAddedRefs,
  ownerLabelValue,
  planServiceAccount,
  type SecretView,
  type ServiceAccountView,
  secretDiffers,
  secretPatch,
  serviceAccountPatch,
} from "./desired.js";
import { buildDockerConfigJson } from "./dockerconfig.js";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch, as the API server applies application/merge-patch+json. */
function mergePatch<T>(target: T, patch: unknown): T {
  if (!isObject(patch)) return patch as T;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k], v);
  }
  return result as T;
}

/** The server sets resourceVersion itself; the one in a patch is only a precondition. */
function withoutVersion<T extends { metadata?: { resourceVersion?: string } }>(o: T): T {
  const { resourceVersion: _, ...metadata } = o.metadata ?? {};
  return { ...o, metadata } as T;
}

const owners = fc.constantFrom("team", "other", "x".repeat(70), "y".repeat(64));
const text = fc.string({ maxLength: 10 });
const ownedLabelKeys = [LABEL_MANAGED_BY, LABEL_OWNER];
const keyed = (extra: string[]) =>
  fc.dictionary(fc.constantFrom("a", "b", "app.kubernetes.io/name", ...extra), text, {
    maxKeys: 4,
  });
const host = fc.constantFrom(
  "111122223333.dkr.ecr.us-east-1.amazonaws.com",
  "444455556666.dkr.ecr.eu-west-1.amazonaws.com",
  "public.ecr.aws",
);
const desiredInput = fc.record({
  owner: owners,
  entries: fc.uniqueArray(
    fc.record({ host, password: fc.string({ minLength: 1, maxLength: 20 }) }),
    {
      selector: (e) => e.host,
      minLength: 1,
      maxLength: 3,
    },
  ),
  expiresAt: fc.option(fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }), {
    nil: undefined,
  }),
});

const observedSecret = fc.record({
  labels: fc.option(keyed(ownedLabelKeys), { nil: undefined }),
  annotations: fc.option(keyed([ANNOTATION_EXPIRES_AT]), { nil: undefined }),
  data: fc.option(keyed([DOCKER_CONFIG_JSON_KEY]), { nil: undefined }),
});

interface DesiredInput {
  owner: string;
  entries: Array<{ host: string; password: string }>;
  expiresAt?: Date;
}

function desiredFrom(input: DesiredInput) {
  const dockerConfigJson = buildDockerConfigJson(
    input.entries.map((e) => ({ host: e.host, username: "AWS", password: e.password })),
  );
  return desiredSecret({
    owner: input.owner,
    secretName: "ecr-pull",
    namespace: "team-a",
    dockerConfigJson,
    expiresAt: input.expiresAt,
    registries: input.entries.map((e) => e.host),
  });
}

describe("secretPatch under merge-patch semantics", () => {
  it("lands on the desired Secret, keeps others' keys, and a second patch changes nothing", () => {
    fc.assert(
      fc.property(desiredInput, observedSecret, (input, o) => {
        const d = desiredFrom(input);
        const observed: SecretView = {
          type: DOCKER_CONFIG_JSON_TYPE,
          metadata: {
            name: "ecr-pull",
            namespace: "team-a",
            resourceVersion: "5",
            ...(o.labels ? { labels: o.labels } : {}),
            ...(o.annotations ? { annotations: o.annotations } : {}),
          },
          ...(o.data ? { data: o.data } : {}),
        };
        const patch = secretPatch(d, "5");
        const once = withoutVersion(mergePatch(observed, patch));
        expect(secretDiffers(d, once)).toBe(false);
        expect(once.data?.[DOCKER_CONFIG_JSON_KEY]).toBe(d.data[DOCKER_CONFIG_JSON_KEY]);
        expect(once.metadata?.labels?.[LABEL_MANAGED_BY]).toBe(OPERATOR_NAME);
        expect(once.metadata?.labels?.[LABEL_OWNER]).toBe(ownerLabelValue(input.owner));
        // What is not ours keeps its value.
        for (const [k, v] of Object.entries(o.labels ?? {}))
          if (!(k in d.metadata.labels)) expect(once.metadata?.labels?.[k]).toBe(v);
        for (const [k, v] of Object.entries(o.annotations ?? {}))
          if (!(k in d.metadata.annotations)) expect(once.metadata?.annotations?.[k]).toBe(v);
        for (const [k, v] of Object.entries(o.data ?? {}))
          if (k !== DOCKER_CONFIG_JSON_KEY) expect(once.data?.[k]).toBe(v);
        // Idempotent: patching the result again is the identity.
        expect(withoutVersion(mergePatch(once, secretPatch(d, "6")))).toEqual(once);
      }),
      { numRuns: 1000 },
    );
  });

  it("secretDiffers is true exactly when the patch would change the Secret", () => {
    fc.assert(
      fc.property(desiredInput, observedSecret, fc.boolean(), (input, o, startDesired) => {
        const d = desiredFrom(input);
        // Half the runs start from the desired Secret with others' keys mixed in,
        // so that "no difference" is reached often, not only by chance.
        const start: SecretView = {
          type: d.type,
          metadata: {
            name: "pull",
            namespace: "team-a",
            labels: o.labels,
            annotations: o.annotations,
          },
          data: o.data,
        };
        const base = startDesired ? mergePatch(start, secretPatch(d, undefined)) : start;
        const after = mergePatch(base, secretPatch(d, undefined));
        expect(secretDiffers(d, base)).toBe(!sameJson(after, base));
      }),
      { numRuns: 1000 },
    );
  });

  it("never turns a Secret of another type into ours: type is not in the patch", () => {
    fc.assert(
      fc.property(desiredInput, fc.constantFrom("Opaque", "kubernetes.io/tls"), (input, type) => {
        const d = desiredFrom(input);
        expect(
          secretDiffers(d, { type, metadata: { name: "pull", namespace: "team-a" }, data: {} }),
        ).toBe(true);
        expect(secretPatch(d, "1")).not.toHaveProperty("type");
      }),
    );
  });
});

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a as Json)) === JSON.stringify(canonical(b as Json));
}

function canonical(v: Json | undefined): Json | undefined {
  if (Array.isArray(v)) return v.map((x) => canonical(x) ?? null);
  if (isObject(v)) {
    const out: Record<string, Json> = {};
    for (const k of Object.keys(v).sort()) {
      const c = canonical(v[k] as Json);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  return v;
}

// --- ServiceAccounts ------------------------------------------------------------

const saName = fc.constantFrom("ecr-pull", "old-pull", "a", "b", "docker");
const owner = fc.constantFrom("team", "other", "third");
const saWorld = fc.record({
  entries: fc.array(saName, { maxLength: 6 }),
  refs: fc.array(fc.record({ owner, name: saName }), { maxLength: 4 }),
  otherAnnotations: fc.dictionary(fc.constantFrom("a", "kubectl.kubernetes.io/x"), text, {
    maxKeys: 2,
  }),
  owner,
  want: fc.option(saName, { nil: undefined }),
  removeStale: fc.boolean(),
});

describe("serviceAccountPatch under merge-patch semantics", () => {
  it("reaches the plan's fixpoint in one application, and a second changes nothing", () => {
    fc.assert(
      fc.property(saWorld, (w) => {
        const added = formatAddedRefs(w.refs);
        const observed: ServiceAccountView = {
          metadata: {
            name: "default",
            namespace: "team-a",
            resourceVersion: "3",
            annotations: {
              ...w.otherAnnotations,
              ...(added ? { [ANNOTATION_ADDED_PULL_SECRETS]: added } : {}),
            },
          },
          imagePullSecrets: w.entries.map((name) => ({ name })),
        };
        const change = planServiceAccount(observed, w.owner, w.want, w.removeStale);
        if (!change) return;
        const patch = serviceAccountPatch(change, "3");
        const once = withoutVersion(mergePatch(observed, patch));
        expect(once.imagePullSecrets).toEqual(change.imagePullSecrets);
        expect(planServiceAccount(once, w.owner, w.want, w.removeStale)).toBeUndefined();
        for (const [k, v] of Object.entries(w.otherAnnotations))
          expect(once.metadata?.annotations?.[k]).toBe(v);
        if (change.addedRefs === null)
          expect(once.metadata?.annotations).not.toHaveProperty(ANNOTATION_ADDED_PULL_SECRETS);
        expect(withoutVersion(mergePatch(once, patch))).toEqual(once);
      }),
      { numRuns: 2000 },
    );
  });
});
