// Which credentials source a resource and its registry entries resolve to
// when web identity, a role on top, an external ID and session tags mix, and
// that each difference makes a different token source.
import { describe, expect, it } from "vitest";
import { credentialsKey, describeCredentials, type WebIdentityRef } from "./credentials.js";
import { resolveRegistries } from "./registries.js";

const WEB = "arn:aws:iam::111122223333:role/web";
const CROSS = "arn:aws:iam::444455556666:role/cross";
const web = (w: Omit<WebIdentityRef, "roleArn"> & { roleArn?: string } = {}) =>
  ({ kind: "webIdentity", webIdentity: { roleArn: WEB, ...w } }) as const;

const defaults = { region: "us-east-1", credentialsSecret: { namespace: "ops", name: "aws" } };

describe("web identity credentials", () => {
  it("takes web identity from the resource instead of the operator's default Secret", () => {
    const [target] = resolveRegistries(
      {
        secretName: "s",
        credentials: {
          webIdentity: { roleArn: WEB, serviceAccount: { namespace: "ops", name: "puller" } },
          roleArn: CROSS,
          externalId: "ext-1",
          sessionTags: [{ key: "cluster", value: "eu" }],
        },
        registries: [{ accountId: "444455556666" }],
      },
      defaults,
    );
    expect(target?.source.credentials).toEqual({
      kind: "webIdentity",
      webIdentity: { roleArn: WEB, serviceAccount: { namespace: "ops", name: "puller" } },
      role: { roleArn: CROSS, externalId: "ext-1", sessionTags: { cluster: "eu" } },
    });
    expect(describeCredentials(target?.source.credentials ?? { kind: "defaultChain" })).toBe(
      `role ${CROSS} assumed with role ${WEB} assumed with the web identity of ServiceAccount ops/puller`,
    );
  });

  it("lets a registry entry's keys replace the resource's web identity, and the reverse", () => {
    const [a, b] = resolveRegistries(
      {
        secretName: "s",
        credentials: { webIdentity: { roleArn: WEB } },
        registries: [
          { accountId: "111122223333" },
          { accountId: "444455556666", credentials: { secretRef: { namespace: "x", name: "k" } } },
        ],
      },
      defaults,
    );
    expect(a?.source.credentials).toEqual({ kind: "webIdentity", webIdentity: { roleArn: WEB } });
    expect(b?.source.credentials).toEqual({
      kind: "secretKeys",
      secretRef: { namespace: "x", name: "k" },
    });
    const [c] = resolveRegistries(
      {
        secretName: "s",
        registries: [{ accountId: "111122223333", credentials: { webIdentity: { roleArn: WEB } } }],
      },
      defaults,
    );
    expect(c?.source.credentials).toEqual({ kind: "webIdentity", webIdentity: { roleArn: WEB } });
  });

  it("gives every difference its own key: ServiceAccount, audience, role, external ID, tags", () => {
    const base = web();
    const chain = { kind: "defaultChain" } as const;
    const keys = [
      base,
      web({ serviceAccount: { namespace: "a", name: "b" } }),
      web({ audience: "other" }),
      web({ roleArn: CROSS }),
      { ...base, role: { roleArn: CROSS } },
      { ...base, role: { roleArn: CROSS, externalId: "e" } },
      { ...base, role: { roleArn: CROSS, externalId: "e", sessionTags: { t: "1" } } },
      { ...base, role: { roleArn: CROSS, externalId: "e", sessionTags: { t: "2" } } },
      { kind: "secretKeys", secretRef: { namespace: "ops", name: "aws" } } as const,
      chain,
    ].map(credentialsKey);
    expect(new Set(keys).size).toBe(keys.length);
    // Tag order does not matter.
    expect(
      credentialsKey({ ...chain, role: { roleArn: CROSS, sessionTags: { a: "1", b: "2" } } }),
    ).toBe(credentialsKey({ ...chain, role: { roleArn: CROSS, sessionTags: { b: "2", a: "1" } } }));
    // The default audience spelt out is the same source.
    expect(credentialsKey(base)).toBe(credentialsKey(web({ audience: "sts.amazonaws.com" })));
  });

  it("keeps every key as it was before the kinds were a union (records and annotations hold their digests)", () => {
    const role = { roleArn: CROSS, externalId: "e", sessionTags: { b: "2", a: "1" } };
    expect(credentialsKey({ kind: "defaultChain" })).toBe("chain");
    expect(credentialsKey({ kind: "defaultChain", role })).toBe(
      `chain|role:${CROSS}|ext:e|tags:a=1&b=2`,
    );
    expect(
      credentialsKey({ kind: "secretKeys", secretRef: { namespace: "ops", name: "aws" } }),
    ).toBe("secret:ops/aws");
    expect(credentialsKey(web({ serviceAccount: { namespace: "a", name: "b" } }))).toBe(
      `web:a/b|${WEB}|aud:sts.amazonaws.com`,
    );
    expect(credentialsKey({ ...web(), role: { roleArn: CROSS } })).toBe(
      `web:self|${WEB}|aud:sts.amazonaws.com|role:${CROSS}|ext:`,
    );
  });
});
