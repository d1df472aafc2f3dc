// Which credentials source a resource and its registry entries resolve to
// when web identity, a role on top, an external ID and session tags mix, and
// that each difference makes a different token source.
import { describe, expect, it } from "vitest";
import { credentialsKey, describeCredentials } from "./credentials.js";
import { resolveRegistries } from "./registries.js";

const WEB = "arn:aws:iam::111122223333:role/web";
const CROSS = "arn:aws:iam::444455556666:role/cross";
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
      webIdentity: { roleArn: WEB, serviceAccount: { namespace: "ops", name: "puller" } },
      roleArn: CROSS,
      externalId: "ext-1",
      sessionTags: { cluster: "eu" },
    });
    expect(describeCredentials(target?.source.credentials ?? {})).toBe(
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
    expect(a?.source.credentials).toEqual({ webIdentity: { roleArn: WEB } });
    expect(b?.source.credentials).toEqual({ secretRef: { namespace: "x", name: "k" } });
    const [c] = resolveRegistries(
      {
        secretName: "s",
        registries: [{ accountId: "111122223333", credentials: { webIdentity: { roleArn: WEB } } }],
      },
      defaults,
    );
    expect(c?.source.credentials).toEqual({ webIdentity: { roleArn: WEB } });
  });

  it("gives every difference its own key: ServiceAccount, audience, role, external ID, tags", () => {
    const base = { webIdentity: { roleArn: WEB } };
    const keys = [
      base,
      { webIdentity: { roleArn: WEB, serviceAccount: { namespace: "a", name: "b" } } },
      { webIdentity: { roleArn: WEB, audience: "other" } },
      { webIdentity: { roleArn: CROSS } },
      { ...base, roleArn: CROSS },
      { ...base, roleArn: CROSS, externalId: "e" },
      { ...base, roleArn: CROSS, externalId: "e", sessionTags: { t: "1" } },
      { ...base, roleArn: CROSS, externalId: "e", sessionTags: { t: "2" } },
      { secretRef: { namespace: "ops", name: "aws" } },
      {},
    ].map(credentialsKey);
    expect(new Set(keys).size).toBe(keys.length);
    // Tag order does not matter.
    expect(credentialsKey({ roleArn: CROSS, sessionTags: { a: "1", b: "2" } })).toBe(
      credentialsKey({ roleArn: CROSS, sessionTags: { b: "2", a: "1" } }),
    );
    // The default audience spelt out is the same source.
    expect(credentialsKey(base)).toBe(
      credentialsKey({ webIdentity: { roleArn: WEB, audience: "sts.amazonaws.com" } }),
    );
  });
});
