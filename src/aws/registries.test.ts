// The token-sources annotation: a restarted operator reuses a Secret's token
// only for the very source that fetched it.
import { describe, expect, it } from "vitest";
import { parseTokenSources, sourceDigest, tokenSourcesAnnotation } from "./registries.js";
import type { TokenSource } from "./token-cache.js";

const keys: TokenSource = {
  credentials: { kind: "secretKeys", secretRef: { namespace: "ops", name: "aws" } },
  service: "ecr",
  region: "us-east-1",
};
const role: TokenSource = {
  ...keys,
  credentials: {
    kind: "secretKeys",
    secretRef: { namespace: "ops", name: "aws" },
    role: { roleArn: "arn:aws:iam::111122223333:role/pull", externalId: "a" },
  },
};

describe("token sources annotation", () => {
  it("round-trips host=digest pairs, sorted by host", () => {
    const value = tokenSourcesAnnotation([
      ["b.dkr.ecr.us-east-1.amazonaws.com", keys],
      ["a.dkr.ecr.us-east-1.amazonaws.com", role],
    ]);
    expect(value.split(",").map((p) => p.split("=")[0])).toEqual([
      "a.dkr.ecr.us-east-1.amazonaws.com",
      "b.dkr.ecr.us-east-1.amazonaws.com",
    ]);
    const parsed = parseTokenSources(value);
    expect(parsed.get("a.dkr.ecr.us-east-1.amazonaws.com")).toBe(sourceDigest(role));
    expect(parsed.get("b.dkr.ecr.us-east-1.amazonaws.com")).toBe(sourceDigest(keys));
  });

  it("tells sources apart by credentials, role, external ID and region, and names no credential", () => {
    const other = [
      role,
      {
        ...role,
        credentials: {
          ...role.credentials,
          role: { roleArn: "arn:aws:iam::111122223333:role/pull", externalId: "b" },
        },
      },
      { ...keys, region: "eu-west-1" },
      {
        ...keys,
        credentials: {
          kind: "secretKeys" as const,
          secretRef: { namespace: "ops", name: "other" },
        },
      },
    ];
    const digests = new Set([keys, ...other].map(sourceDigest));
    expect(digests.size).toBe(5);
    for (const d of digests) expect(d).toMatch(/^[0-9a-f]{16}$/);
    expect(parseTokenSources(undefined).size).toBe(0);
    expect(parseTokenSources("garbage").size).toBe(0);
  });
});
