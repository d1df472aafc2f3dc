import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_SECRET_TEMPLATE_KEYS,
  LABEL_MANAGED_BY,
  LABEL_OWNER,
} from "../api/metadata.js";
import {
  cachedSecret,
  cachedServiceAccount,
  type DesiredSecret,
  desiredSecret,
  formatAddedRefs,
  isOwnedBy,
  ownerLabelValue,
  parseAddedRefs,
  planReferenceList,
  planServiceAccount,
  type SecretView,
  type ServiceAccountChange,
  type ServiceAccountView,
  secretDiffers,
  secretPatch,
  serviceAccountPatch,
  targetsServiceAccount,
} from "./desired.js";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const names = (sa: ServiceAccountView) => (sa.imagePullSecrets ?? []).map((r) => r.name);

function sa(entries: string[], added?: string): ServiceAccountView {
  return {
    metadata: {
      name: "default",
      namespace: "team-a",
      resourceVersion: "1",
      ...(added ? { annotations: { [ANNOTATION_ADDED_PULL_SECRETS]: added } } : {}),
    },
    imagePullSecrets: entries.map((name) => ({ name })),
  };
}

/** What the API server makes of our merge patch (the list is replaced whole). */
function apply(view: ServiceAccountView, change: ServiceAccountChange): ServiceAccountView {
  const annotations = { ...(view.metadata?.annotations ?? {}) };
  if (change.addedRefs === null) delete annotations[ANNOTATION_ADDED_PULL_SECRETS];
  else annotations[ANNOTATION_ADDED_PULL_SECRETS] = change.addedRefs;
  return {
    metadata: { ...view.metadata, annotations },
    imagePullSecrets: change.imagePullSecrets,
  };
}

function settle(
  view: ServiceAccountView,
  owner: string,
  want: string | undefined,
  removeStale: boolean,
) {
  const change = planServiceAccount(view, owner, want, removeStale);
  return change ? apply(view, change) : view;
}

describe("planServiceAccount", () => {
  it("appends ours after others' entries and records that it added it", () => {
    const change = planServiceAccount(sa(["other"]), "team", "ecr-pull", true);
    expect(change).toEqual({
      imagePullSecrets: [{ name: "other" }, { name: "ecr-pull" }],
      addedRefs: "team/ecr-pull",
    });
  });

  it("changes nothing when ours is there and recorded", () => {
    expect(
      planServiceAccount(sa(["other", "ecr-pull"], "team/ecr-pull"), "team", "ecr-pull", true),
    ).toBeUndefined();
  });

  it("restores a reference of ours removed by hand", () => {
    const change = planServiceAccount(sa(["other"], "team/ecr-pull"), "team", "ecr-pull", true);
    expect(change?.imagePullSecrets).toEqual([{ name: "other" }, { name: "ecr-pull" }]);
    expect(change?.addedRefs).toBe("team/ecr-pull");
  });

  it("does not claim a same-named entry someone else put there, so never removes it", () => {
    expect(planServiceAccount(sa(["ecr-pull"]), "team", "ecr-pull", true)).toBeUndefined();
    expect(planServiceAccount(sa(["ecr-pull"]), "team", undefined, true)).toBeUndefined();
  });

  it("under Delete removes only the names it added and no longer wants", () => {
    const change = planServiceAccount(
      sa(["a", "old-pull", "b", "ecr-pull"], "team/ecr-pull,team/old-pull"),
      "team",
      "ecr-pull",
      true,
    );
    expect(change).toEqual({
      imagePullSecrets: [{ name: "a" }, { name: "b" }, { name: "ecr-pull" }],
      addedRefs: "team/ecr-pull",
    });
    const gone = planServiceAccount(
      sa(["a", "ecr-pull"], "team/ecr-pull"),
      "team",
      undefined,
      true,
    );
    expect(gone).toEqual({ imagePullSecrets: [{ name: "a" }], addedRefs: null });
  });

  it("keeps a name another resource also added", () => {
    const change = planServiceAccount(
      sa(["ecr-pull"], "other/ecr-pull,team/ecr-pull"),
      "team",
      undefined,
      true,
    );
    expect(change).toEqual({
      imagePullSecrets: [{ name: "ecr-pull" }],
      addedRefs: "other/ecr-pull",
    });
  });

  it("under Retain removes nothing and keeps the record of what it added", () => {
    expect(
      planServiceAccount(sa(["a", "ecr-pull"], "team/ecr-pull"), "team", undefined, false),
    ).toBeUndefined();
    const renamed = planServiceAccount(
      sa(["a", "ecr-pull"], "team/ecr-pull"),
      "team",
      "new-pull",
      false,
    );
    expect(renamed).toEqual({
      imagePullSecrets: [{ name: "a" }, { name: "ecr-pull" }, { name: "new-pull" }],
      addedRefs: "team/ecr-pull,team/new-pull",
    });
  });

  it("keeps ours exactly once when a stale writer re-added it", () => {
    const change = planServiceAccount(
      sa(["ecr-pull", "a", "ecr-pull"], "team/ecr-pull"),
      "team",
      "ecr-pull",
      true,
    );
    expect(change?.imagePullSecrets).toEqual([{ name: "ecr-pull" }, { name: "a" }]);
  });

  it("records long owner names by their label value", () => {
    const owner = `team-${"x".repeat(80)}`;
    const change = planServiceAccount(sa([]), owner, "ecr-pull", true);
    expect(change?.addedRefs).toBe(`${ownerLabelValue(owner)}/ecr-pull`);
    expect(ownerLabelValue(owner).length).toBeLessThanOrEqual(63);
  });
});

// --- Properties ----------------------------------------------------------------

const secretName: fc.Arbitrary<string> = fc.constantFrom(
  "ecr-pull",
  "old-pull",
  "new-pull",
  "a",
  "b",
  "c",
  "docker",
);
const ownerName: fc.Arbitrary<string> = fc.constantFrom("team", "other", "third");
const world = fc.record({
  entries: fc.array(secretName, { maxLength: 8 }),
  refs: fc.array(fc.record({ owner: ownerName, name: secretName }), { maxLength: 5 }),
  owner: ownerName,
  want: fc.option(secretName, { nil: undefined }),
  removeStale: fc.boolean(),
});

describe("planServiceAccount properties", () => {
  it("applying the plan and planning again changes nothing", () => {
    fc.assert(
      fc.property(world, ({ entries, refs, owner, want, removeStale }) => {
        const once = settle(sa(entries, formatAddedRefs(refs)), owner, want, removeStale);
        expect(planServiceAccount(once, owner, want, removeStale)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it("never removes an entry it did not add, nor another owner's record", () => {
    fc.assert(
      fc.property(world, ({ entries, refs, owner, want, removeStale }) => {
        const before = sa(entries, formatAddedRefs(refs));
        const after = settle(before, owner, want, removeStale);
        const ours = new Set(refs.filter((r) => r.owner === owner).map((r) => r.name));
        for (const name of entries) {
          if (!ours.has(name)) expect(names(after)).toContain(name);
        }
        // Others' entries keep their count and their order; a new one of ours goes last.
        const others = (view: ServiceAccountView) =>
          names(view).filter((n) => n !== undefined && !ours.has(n));
        const appended = want !== undefined && !ours.has(want) && !entries.includes(want);
        expect(others(after)).toEqual([...others(before), ...(appended ? [want] : [])]);
        const otherRefs = (view: ServiceAccountView) =>
          parseAddedRefs(view.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS])
            .filter((r) => r.owner !== owner)
            .map((r) => `${r.owner}/${r.name}`);
        expect(new Set(otherRefs(after))).toEqual(new Set(otherRefs(before)));
        // Retain never removes anything at all.
        if (!removeStale) for (const name of entries) expect(names(after)).toContain(name);
      }),
      { numRuns: 2000 },
    );
  });

  it("leaves the wanted name present; exactly once when it is ours", () => {
    fc.assert(
      fc.property(world, ({ entries, refs, owner, want, removeStale }) => {
        fc.pre(want !== undefined);
        const after = settle(sa(entries, formatAddedRefs(refs)), owner, want, removeStale);
        const count = names(after).filter((n) => n === want).length;
        expect(count).toBeGreaterThanOrEqual(1);
        const claimed = parseAddedRefs(
          after.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS],
        ).some((r) => r.owner === owner && r.name === want);
        if (claimed) expect(count).toBe(1);
        if (!entries.includes(want as string)) expect(claimed).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("under Delete, names it added and no one else claims are gone when not wanted", () => {
    fc.assert(
      fc.property(world, ({ entries, refs, owner, want }) => {
        const after = settle(sa(entries, formatAddedRefs(refs)), owner, want, true);
        const othersClaim = new Set(refs.filter((r) => r.owner !== owner).map((r) => r.name));
        for (const r of refs) {
          if (r.owner !== owner || r.name === want || othersClaim.has(r.name)) continue;
          expect(names(after)).not.toContain(r.name);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("serviceAccountPatch", () => {
  const adding = planServiceAccount(sa(["theirs"]), "res", "ecr-pull", true);

  it("on an untracked ServiceAccount, starts the managedFields record with our annotation", () => {
    expect(serviceAccountPatch(adding, "7", undefined, true)).toEqual({
      metadata: {
        resourceVersion: "7",
        annotations: { [ANNOTATION_ADDED_PULL_SECRETS]: "res/ecr-pull" },
        managedFields: [
          {
            manager: "ecr-creds-refresher",
            operation: "Update",
            apiVersion: "v1",
            fieldsType: "FieldsV1",
            fieldsV1: {
              "f:metadata": { "f:annotations": { [`f:${ANNOTATION_ADDED_PULL_SECRETS}`]: {} } },
            },
          },
        ],
      },
      imagePullSecrets: [{ name: "theirs" }, { name: "ecr-pull" }],
    });
  });

  it("sends no managedFields to a tracked ServiceAccount, nor when only removing", () => {
    expect(serviceAccountPatch(adding, "7")).not.toHaveProperty("metadata.managedFields");
    const removing = planServiceAccount(
      sa(["theirs", "ecr-pull"], "res/ecr-pull"),
      "res",
      undefined,
      true,
    );
    expect(removing?.addedRefs).toBeNull();
    expect(serviceAccountPatch(removing, "7", undefined, true)).not.toHaveProperty(
      "metadata.managedFields",
    );
  });
});

describe("targetsServiceAccount", () => {
  it("defaults to default, takes * for all and [] for none", () => {
    expect(targetsServiceAccount(undefined, "default")).toBe(true);
    expect(targetsServiceAccount(undefined, "builder")).toBe(false);
    expect(targetsServiceAccount(["*"], "builder")).toBe(true);
    expect(targetsServiceAccount([], "default")).toBe(false);
    expect(targetsServiceAccount(["builder"], "builder")).toBe(true);
    expect(targetsServiceAccount(["builder"], "default")).toBe(false);
  });
});

// --- Secrets -------------------------------------------------------------------

function desired(password = "pw"): DesiredSecret {
  return desiredSecret({
    owner: "team",
    secretName: "ecr-pull",
    namespace: "team-a",
    dockerConfigJson: JSON.stringify({ auths: { h: { password } } }),
    expiresAt: new Date("2030-01-01T00:00:00Z"),
    fetchedAt: new Date("2029-12-31T12:00:00Z"),
    registries: ["h"],
  });
}

/** What the API server makes of secretPatch (a JSON merge patch). */
function applySecretPatch(observed: SecretView, patch: object): SecretView {
  const p = patch as DesiredSecret;
  return {
    type: observed.type,
    metadata: {
      ...observed.metadata,
      labels: { ...observed.metadata?.labels, ...p.metadata.labels },
      annotations: { ...observed.metadata?.annotations, ...p.metadata.annotations },
    },
    data: { ...observed.data, ...p.data },
  };
}

describe("secretDiffers", () => {
  it("is false for the desired Secret itself and true after a hand edit of its data", () => {
    const d = desired();
    expect(secretDiffers(d, d)).toBe(false);
    expect(secretDiffers(d, { ...d, data: { ".dockerconfigjson": "e30=" } })).toBe(true);
    expect(secretDiffers(d, { ...d, data: {} })).toBe(true);
    expect(secretDiffers(desired("new"), d)).toBe(true);
    expect(secretDiffers(d, { ...d, type: "Opaque" })).toBe(true);
    expect(isOwnedBy(d, "team")).toBe(true);
    expect(isOwnedBy(d, "other")).toBe(false);
  });

  it("ignores others' labels, annotations and data keys, but not ours", () => {
    const d = desired();
    const decorated: SecretView = {
      ...d,
      metadata: {
        ...d.metadata,
        labels: { ...d.metadata.labels, team: "a" },
        annotations: { ...d.metadata.annotations, note: "x" },
      },
      data: { ...d.data, extra: "eA==" },
    };
    expect(secretDiffers(d, decorated)).toBe(false);
    const relabelled = {
      ...d,
      metadata: { ...d.metadata, labels: { [LABEL_MANAGED_BY]: "someone", [LABEL_OWNER]: "team" } },
    };
    expect(secretDiffers(d, relabelled)).toBe(true);
  });

  it("after the patch is applied to any Secret of that type, nothing differs", () => {
    const text = fc.string({ maxLength: 12 });
    const dict = fc.dictionary(fc.constantFrom("a", "b", ".dockerconfigjson", LABEL_OWNER), text, {
      maxKeys: 4,
    });
    fc.assert(
      fc.property(dict, dict, dict, text, (labels, annotations, data, password) => {
        const d = desired(password);
        const observed: SecretView = {
          type: d.type,
          metadata: {
            name: "ecr-pull",
            namespace: "team-a",
            resourceVersion: "7",
            labels,
            annotations,
          },
          data,
        };
        const patch = secretPatch(d, "7");
        expect((patch as { metadata: { resourceVersion?: string } }).metadata.resourceVersion).toBe(
          "7",
        );
        const once = applySecretPatch(observed, patch);
        expect(secretDiffers(d, once)).toBe(false);
        // Others' keys survive the patch.
        for (const k of Object.keys(labels)) expect(once.metadata?.labels).toHaveProperty(k);
        for (const k of Object.keys(data)) expect(once.data).toHaveProperty(k);
        // And patching again changes nothing.
        expect(applySecretPatch(once, secretPatch(d, "8"))).toEqual({
          ...once,
          metadata: { ...once.metadata },
        });
      }),
      { numRuns: 500 },
    );
  });
});

describe("secretDiffers on the caches' slice (cachedSecret)", () => {
  it("judges the caches' slice (digests, our keys) as it judges the whole Secret", () => {
    const long = "t".repeat(4096);
    const d = desired();
    const templated: DesiredSecret = {
      ...d,
      metadata: {
        ...d.metadata,
        labels: { ...d.metadata.labels, team: "a" },
        annotations: {
          ...d.metadata.annotations,
          "example.com/long": long,
          [ANNOTATION_SECRET_TEMPLATE_KEYS]: "annotation:example.com/long,label:team",
        },
      },
    };
    expect(secretDiffers(templated, cachedSecret(templated))).toBe(false);
    const poisoned = { ...templated, data: { ".dockerconfigjson": "cG9pc29u" } };
    expect(secretDiffers(templated, cachedSecret(poisoned))).toBe(true);
    const edited = {
      ...templated,
      metadata: {
        ...templated.metadata,
        annotations: { ...templated.metadata.annotations, "example.com/long": `${long}x` },
      },
    };
    expect(secretDiffers(templated, cachedSecret(edited))).toBe(true);
  });

  it("keeps a few hundred bytes of a forged megabyte Secret carrying our labels", () => {
    const d = desired();
    const forged: SecretView = {
      type: "Opaque",
      metadata: {
        ...d.metadata,
        labels: {
          ...d.metadata.labels,
          ...Object.fromEntries(range(500).map((i) => [`l${i}`, "v"])),
        },
        annotations: {
          "ecrcreds.io/token-expires-at": "x".repeat(200_000),
          [ANNOTATION_SECRET_TEMPLATE_KEYS]: range(5000)
            .map((i) => `annotation:a${i}`)
            .join(","),
          ...Object.fromEntries(range(5000).map((i) => [`a${i}`, "y".repeat(40)])),
        },
      },
      data: { ".dockerconfigjson": "A".repeat(900 * 1024), more: "B".repeat(1024) },
    };
    const kept = cachedSecret(forged);
    // Our two labels, our two annotations, 64 template entries, one digest.
    expect(JSON.stringify(kept).length).toBeLessThan(8_000);
    expect(Object.keys(kept.metadata?.annotations ?? {})).toHaveLength(2 + 64);
    expect(kept.data).toBeUndefined();
    expect(Object.keys(kept.dataDigests ?? {})).toEqual([".dockerconfigjson"]);
    expect(kept.dataDigests?.[".dockerconfigjson"]).toMatch(/^sha256:[0-9a-f]{64}$/);
    // 50,000 data keys and 480 look-alike keys of our prefix: no more kept.
    const wide: SecretView = {
      type: "Opaque",
      metadata: {
        ...d.metadata,
        annotations: Object.fromEntries(
          range(480).map((i) => [`ecrcreds.io/x${i}`, "z".repeat(500)]),
        ),
      },
      data: Object.fromEntries(range(50_000).map((i) => [`k${i}`, "eA=="])),
    };
    expect(JSON.stringify(cachedSecret(wide)).length).toBeLessThan(1_000);
  });
});

describe("cachedServiceAccount", () => {
  it("keeps a ServiceAccount's long lists as our entries only, marked truncated; short ones whole", () => {
    const long: ServiceAccountView = {
      metadata: {
        name: "default",
        namespace: "team-a",
        annotations: {
          [ANNOTATION_ADDED_PULL_SECRETS]: "team/ecr-pull",
          note: "x".repeat(100_000),
        },
      },
      imagePullSecrets: [...range(5000).map((i) => ({ name: `s${i}` })), { name: "ecr-pull" }],
    };
    const kept = cachedServiceAccount(long);
    expect(kept.imagePullSecrets).toEqual([{ name: "ecr-pull" }]);
    expect(kept.truncated).toBe(true);
    expect(kept.metadata?.annotations).toEqual({
      [ANNOTATION_ADDED_PULL_SECRETS]: "team/ecr-pull",
    });
    const short = { ...long, imagePullSecrets: [{ name: "a" }, { name: "ecr-pull" }] };
    expect(cachedServiceAccount(short).imagePullSecrets).toEqual(short.imagePullSecrets);
    expect(cachedServiceAccount(short).truncated).toBeUndefined();
  });
});

describe("planReferenceList (a ServiceAccount's secrets, as Tekton reads them)", () => {
  it("adds ours once beside others' entries, which are kept whole, and takes only ours away", () => {
    const tekton = { name: "git-ssh", namespace: "team-a" };
    const added = planReferenceList([tekton], undefined, "team", "ecr-pull", true);
    expect(added).toEqual({ entries: [tekton, { name: "ecr-pull" }], addedRefs: "team/ecr-pull" });
    if (!added) throw new Error("no change");
    expect(added.entries[0]).toBe(tekton);
    expect(planReferenceList(added.entries, "team/ecr-pull", "team", "ecr-pull", true)).toBe(
      undefined,
    );
    const removed = planReferenceList(added.entries, "team/ecr-pull", "team", undefined, true);
    expect(removed).toEqual({ entries: [tekton], addedRefs: null });
  });

  it("never claims a same-named entry someone else put there", () => {
    const theirs = { name: "ecr-pull" };
    const change = planReferenceList([theirs], undefined, "team", "ecr-pull", true);
    expect(change).toBeUndefined();
    expect(planReferenceList([theirs], undefined, "team", undefined, true)).toBeUndefined();
  });
});
