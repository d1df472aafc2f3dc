import { describe, expect, it } from "vitest";
import {
  adoptedDiffers,
  adoptPatch,
  entriesDigest,
  originOf,
  releasePatch,
  withCreatedMark,
} from "./adoption.js";
import {
  cachedSecret,
  DOCKER_CONFIG_JSON_KEY,
  DOCKER_CONFIG_JSON_TYPE,
  desiredSecret,
} from "./desired.js";

const HOST = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
const OLD_HOST = "333333333333.dkr.ecr.us-east-1.amazonaws.com";
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64");
const decode = (s: string | undefined) => JSON.parse(Buffer.from(s ?? "", "base64").toString());

const desired = desiredSecret({
  owner: "team",
  secretName: "pull",
  namespace: "a",
  dockerConfigJson: JSON.stringify({ auths: { [HOST]: { username: "AWS", password: "new" } } }),
  registries: [HOST],
});

describe("originOf", () => {
  const at = (namespace: string, annotations: Record<string, string>) => ({
    metadata: { namespace, name: "pull", annotations },
  });
  it("tells created, adopted, unmarked and copies apart by the place the mark names", () => {
    expect(originOf(withCreatedMark(desired))).toBe("created");
    expect(originOf(at("a", { "ecrcreds.io/written-in": "a/pull" }))).toBe("created");
    expect(originOf(at("b", { "ecrcreds.io/written-in": "a/pull" }))).toBe("copy");
    expect(originOf(at("a", { "ecrcreds.io/adopted": "a/pull" }))).toBe("adopted");
    expect(originOf(at("b", { "ecrcreds.io/adopted": "a/pull" }))).toBe("copy");
    expect(originOf(at("a", {}))).toBe("unmarked");
    // A written-in mark next to an adopted one cannot turn an adoption into a creation.
    expect(
      originOf(at("a", { "ecrcreds.io/adopted": "a/pull", "ecrcreds.io/written-in": "a/pull" })),
    ).toBe("adopted");
  });
});

/** A Secret a team wrote before the operator adopted it. */
const theirs = {
  metadata: {
    namespace: "a",
    name: "pull",
    resourceVersion: "7",
    labels: { team: "t" },
    annotations: { note: "theirs" },
  },
  type: DOCKER_CONFIG_JSON_TYPE,
  data: {
    [DOCKER_CONFIG_JSON_KEY]: b64({
      auths: { "ghcr.io": { auth: "eDp5" }, [HOST]: { auth: "c3RhbGU=" } },
      credHelpers: { "quay.io": "quay" },
    }),
    extra: "eA==",
  },
};

describe("adoptPatch", () => {
  it("merges ours over theirs, keeps every other entry, field and key, and records what is ours", () => {
    const r = adoptPatch(desired, theirs);
    if (!("patch" in r)) throw new Error(r.reason);
    const patch = r.patch as {
      metadata: { resourceVersion: string; annotations: Record<string, string> };
      data: Record<string, string>;
    };
    expect(patch.metadata.resourceVersion).toBe("7");
    expect(Object.keys(patch.data)).toEqual([DOCKER_CONFIG_JSON_KEY]);
    expect(decode(patch.data[DOCKER_CONFIG_JSON_KEY])).toEqual({
      auths: { "ghcr.io": { auth: "eDp5" }, [HOST]: { username: "AWS", password: "new" } },
      credHelpers: { "quay.io": "quay" },
    });
    expect(patch.metadata.annotations["ecrcreds.io/adopted"]).toBe("a/pull");
    expect(patch.metadata.annotations["ecrcreds.io/adopted-auths"]).toBe(HOST);
    expect(patch.metadata.annotations["ecrcreds.io/adopted-digest"]).toBe(entriesDigest(desired));
  });

  it("drops an entry it put in earlier and no longer writes", () => {
    const adopted = {
      ...theirs,
      metadata: {
        ...theirs.metadata,
        annotations: { "ecrcreds.io/adopted": "a/pull", "ecrcreds.io/adopted-auths": OLD_HOST },
      },
      data: { [DOCKER_CONFIG_JSON_KEY]: b64({ auths: { [OLD_HOST]: {}, "ghcr.io": {} } }) },
    };
    const r = adoptPatch(desired, adopted);
    if (!("patch" in r)) throw new Error(r.reason);
    const data = (r.patch as { data: Record<string, string> }).data;
    expect(Object.keys(decode(data[DOCKER_CONFIG_JSON_KEY]).auths)).toEqual(["ghcr.io", HOST]);
  });

  it("refuses a .dockerconfigjson it cannot merge without loss, naming why but not its content", () => {
    const bad = {
      ...theirs,
      data: { [DOCKER_CONFIG_JSON_KEY]: Buffer.from("{secret").toString("base64") },
    };
    expect(adoptPatch(desired, bad)).toEqual({ reason: "it is not valid JSON" });
    const list = { ...theirs, data: { [DOCKER_CONFIG_JSON_KEY]: b64({ auths: [] }) } };
    expect(adoptPatch(desired, list)).toEqual({ reason: 'its "auths" is not an object' });
  });
});

describe("adoptedDiffers and releasePatch", () => {
  it("is judged in sync by the digests of our entries and of the data as we wrote it, not by the annotations alone", () => {
    const r = adoptPatch(desired, theirs);
    if (!("patch" in r)) throw new Error(r.reason);
    const p = r.patch as {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      data: Record<string, string>;
    };
    const observed = {
      metadata: {
        namespace: "a",
        name: "pull",
        labels: p.metadata.labels,
        annotations: p.metadata.annotations,
      },
      type: DOCKER_CONFIG_JSON_TYPE,
      data: p.data,
    };
    expect(adoptedDiffers(desired, observed)).toBe(false);
    // As the caches hold it: digests, no bytes.
    expect(adoptedDiffers(desired, cachedSecret(observed))).toBe(false);
    // Our entry overwritten, every annotation kept: merged over again.
    const edited = {
      ...observed,
      data: {
        [DOCKER_CONFIG_JSON_KEY]: b64({
          auths: { [HOST]: { username: "AWS", password: "poison" } },
        }),
      },
    };
    expect(adoptedDiffers(desired, edited)).toBe(true);
    expect(adoptedDiffers(desired, cachedSecret(edited))).toBe(true);
    const refreshed = desiredSecret({
      owner: "team",
      secretName: "pull",
      namespace: "a",
      dockerConfigJson: JSON.stringify({
        auths: { [HOST]: { username: "AWS", password: "newer" } },
      }),
      registries: [HOST],
    });
    expect(adoptedDiffers(refreshed, observed)).toBe(true);
  });

  it("releases: our entries, labels, annotations and template keys go, the rest stays", () => {
    const adopted = {
      metadata: {
        namespace: "a",
        name: "pull",
        resourceVersion: "9",
        labels: {
          team: "t",
          tmpl: "x",
          "app.kubernetes.io/managed-by": "ecr-creds-refresher",
          "ecrcreds.io/owner": "team",
        },
        annotations: {
          note: "theirs",
          "ecrcreds.io/adopted": "a/pull",
          "ecrcreds.io/adopted-auths": HOST,
          "ecrcreds.io/secret-template-keys": "label:tmpl",
        },
      },
      type: DOCKER_CONFIG_JSON_TYPE,
      data: {
        [DOCKER_CONFIG_JSON_KEY]: b64({ auths: { "ghcr.io": { auth: "eDp5" }, [HOST]: {} } }),
        extra: "eA==",
      },
    };
    expect(releasePatch(adopted)).toEqual({
      metadata: {
        resourceVersion: "9",
        labels: { "app.kubernetes.io/managed-by": null, "ecrcreds.io/owner": null, tmpl: null },
        annotations: {
          "ecrcreds.io/adopted": null,
          "ecrcreds.io/adopted-auths": null,
          "ecrcreds.io/secret-template-keys": null,
        },
      },
      data: { [DOCKER_CONFIG_JSON_KEY]: b64({ auths: { "ghcr.io": { auth: "eDp5" } } }) },
    });
  });
});
