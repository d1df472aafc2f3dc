import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type {
  ClusterECRCredentialSource,
  ECRPullSecretClaim,
  ECRPullSecretClaimSpec,
  SourceNamespaceCondition,
} from "../api/index.js";
import { resolveRegistries, tokenSources } from "../aws/registries.js";
import { isOperatorError, type OperatorError } from "../errors.js";
import {
  claimKey,
  claimOwner,
  describeOwner,
  parseClaimKey,
  type ResolvedClaim,
  resolveClaim,
  sourceAllows,
} from "./claims.js";
import { ownerLabelValue } from "./desired.js";

const ACCOUNT = "123456789012";
const OTHER_ACCOUNT = "210987654321";
const HOST = `${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com`;

function source(
  spec: Partial<ClusterECRCredentialSource["spec"]> = {},
  name = "shared",
): ClusterECRCredentialSource {
  return {
    metadata: { name },
    spec: {
      credentials: { secretRef: { name: "aws-creds", namespace: "ecr-system" } },
      region: "eu-west-1",
      registries: [{ accountId: ACCOUNT }],
      conditions: [{ namespaces: ["team-*"] }],
      ...spec,
    },
  };
}

function claim(
  spec: Partial<ECRPullSecretClaimSpec> = {},
  namespace = "team-a",
  name = "pulls",
): ECRPullSecretClaim {
  return {
    metadata: { namespace, name },
    spec: { secretName: "ecr-pull", sourceRef: { name: "shared" }, ...spec },
  };
}

function resolved(r: ResolvedClaim | OperatorError): ResolvedClaim {
  if (isOperatorError(r)) throw new Error(`expected a resolved claim, got ${r.message}`);
  return r;
}

function refused(r: ResolvedClaim | OperatorError): OperatorError {
  if (!isOperatorError(r)) throw new Error(`expected a refusal, got ${JSON.stringify(r.spec)}`);
  return r;
}

describe("resolveClaim over a source: the source and the namespace", () => {
  it("targets exactly its own namespace, with the source's credentials, region and registries", () => {
    const r = resolved(
      resolveClaim(
        claim({ serviceAccounts: ["builder"], refreshBefore: "4h", deletionPolicy: "Retain" }),
        source(),
        {},
      ),
    );
    expect(r).toEqual({
      key: "team-a/pulls",
      owner: "claim_team-a_pulls",
      namespace: "team-a",
      spec: {
        secretName: "ecr-pull",
        namespaces: ["team-a"],
        serviceAccounts: ["builder"],
        refreshBefore: "4h",
        deletionPolicy: "Retain",
        credentials: { secretRef: { name: "aws-creds", namespace: "ecr-system" } },
        region: "eu-west-1",
        registries: [{ accountId: ACCOUNT }],
      },
    });
  });

  it("refuses a source that does not exist: SourceNotFound naming it", () => {
    const e = refused(resolveClaim(claim(), undefined, {}));
    expect(e.code).toBe("SourceNotFound");
    expect(e.message).toContain("ClusterECRCredentialSource shared");
    // A source of another name (a stale cache lookup) is no source either.
    expect(refused(resolveClaim(claim(), source({}, "other"), {})).code).toBe("SourceNotFound");
  });

  it.each<[string, SourceNamespaceCondition[] | undefined, string]>([
    ["no conditions at all", undefined, "allows no namespace yet"],
    ["an empty list", [], "allows no namespace yet"],
    ["names of others", [{ namespaces: ["team-b", "ops-*"] }], "none of the source's"],
    [
      "a selector the labels miss",
      [{ namespaceSelector: { matchLabels: { "platform/ecr": "yes" } } }],
      "none of the source's",
    ],
  ])(
    "refuses a namespace the source does not allow (%s): SourceNotAllowed naming both",
    (_, conditions, why) => {
      const r = resolveClaim(claim(), source({ conditions }), { team: "a" });
      const e = refused(r);
      expect(e.code).toBe("SourceNotAllowed");
      expect(e.message).toContain("ClusterECRCredentialSource shared");
      expect(e.message).toContain("namespace team-a");
      expect(e.message).toContain(why);
    },
  );

  it.each<[string, SourceNamespaceCondition[], Record<string, string>]>([
    ["its name", [{ namespaces: ["team-a"] }], {}],
    ["a glob", [{ namespaces: ["team-?"] }], {}],
    [
      "a selector",
      [{ namespaceSelector: { matchLabels: { "platform/ecr": "yes" } } }],
      { "platform/ecr": "yes" },
    ],
    ["an empty selector (every namespace)", [{ namespaceSelector: {} }], {}],
    ["the second entry", [{ namespaces: ["ops"] }, { namespaces: ["team-a"] }], {}],
    [
      "names or a selector in one entry",
      [{ namespaces: ["ops"], namespaceSelector: { matchLabels: { tier: "dev" } } }],
      { tier: "dev" },
    ],
  ])("admits a namespace the source allows by %s", (_, conditions, labels) => {
    expect(resolved(resolveClaim(claim(), source({ conditions }), labels)).namespace).toBe(
      "team-a",
    );
  });
});

describe("resolveClaim over a source: features and registries", () => {
  it.each([
    ["ArgoCD", "spec.argoCD", { argoCD: { repositoryTypes: ["helm" as const] } }],
    ["AdoptExisting", "spec.adoptExisting", { adoptExisting: true }],
    ["PodRecoveryRecreate", "spec.podRecovery: Recreate", { podRecovery: "Recreate" as const }],
  ])(
    "refuses %s unless the source allows it: FeatureNotAllowed naming the source and the feature",
    (feature, field, spec) => {
      const e = refused(resolveClaim(claim(spec), source(), {}));
      expect(e.code).toBe("FeatureNotAllowed");
      expect(e.message).toContain("ClusterECRCredentialSource shared");
      expect(e.message).toContain(`feature ${feature}`);
      expect(e.message).toContain(field);
      const allowed = source({ allowedFeatures: [feature as "ArgoCD"] });
      expect(isOperatorError(resolveClaim(claim(spec), allowed, {}))).toBe(false);
    },
  );

  it("keeps what the source allows: Argo CD in its default namespace, adoption, Pod recovery", () => {
    const r = resolved(
      resolveClaim(
        claim({
          argoCD: { repositoryTypes: ["oci"], namespace: "team-a" },
          adoptExisting: true,
          podRecovery: "Recreate",
        }),
        source({ allowedFeatures: ["ArgoCD", "AdoptExisting", "PodRecoveryRecreate"] }),
        {},
      ),
    );
    expect(r.spec.argoCD).toEqual({ repositoryTypes: ["oci"] });
    expect(r.spec.adoptExisting).toBe(true);
    expect(r.spec.podRecovery).toBe("Recreate");
    // None is "asked for": a claim that asks for nothing needs no feature.
    expect(
      resolved(resolveClaim(claim({ podRecovery: "None" }), source(), {})).spec.podRecovery,
    ).toBe("None");
  });

  it("serves the source's registries the claim asks for, however spelt, with their own credentials", () => {
    const perRegistry = { roleArn: "arn:aws:iam::210987654321:role/pull" };
    const s = source({
      registries: [
        { accountId: ACCOUNT },
        { accountId: OTHER_ACCOUNT, region: "us-east-1", credentials: perRegistry },
      ],
    });
    const r = resolved(
      resolveClaim(
        claim({
          registries: [
            { host: `${OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com` },
            { host: HOST },
          ],
        }),
        s,
        {},
      ),
    );
    expect(r.spec.registries).toEqual([
      { accountId: OTHER_ACCOUNT, region: "us-east-1", credentials: perRegistry },
      { accountId: ACCOUNT },
    ]);
  });

  it("refuses a registry the source does not offer: RegistryNotAllowed naming it and what is offered", () => {
    const e = refused(
      resolveClaim(claim({ registries: [{ accountId: OTHER_ACCOUNT }] }), source(), {}),
    );
    expect(e.code).toBe("RegistryNotAllowed");
    expect(e.message).toContain(`registry ${OTHER_ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com`);
    expect(e.message).toContain(`it offers ${HOST}`);
    const noList = refused(
      resolveClaim(claim({ registries: [{ host: HOST }] }), source({ registries: undefined }), {}),
    );
    expect(noList.message).toContain("only the operator's default registry");
  });

  it("checks the namespace before features and registries: a stranger learns only that it is not allowed", () => {
    const e = refused(
      resolveClaim(
        claim({ adoptExisting: true, registries: [{ accountId: OTHER_ACCOUNT }] }, "intruder"),
        source(),
        {},
      ),
    );
    expect(e.code).toBe("SourceNotAllowed");
  });
});

describe("resolveClaim with credentials of its own", () => {
  it("pins every reference to the claim's namespace, whatever a namespace said", () => {
    const r = resolved(
      resolveClaim(
        claim({
          sourceRef: undefined,
          credentials: {
            webIdentity: {
              roleArn: "arn:aws:iam::123456789012:role/team-a",
              // Refused at admission; were it ever stored, it is still ignored.
              serviceAccount: { name: "puller", namespace: "kube-system" },
            },
            roleArn: "arn:aws:iam::123456789012:role/chained",
          },
          region: "us-east-1",
          registries: [{ accountId: ACCOUNT }],
        }),
        undefined,
        {},
      ),
    );
    expect(r.spec.credentials).toEqual({
      webIdentity: {
        roleArn: "arn:aws:iam::123456789012:role/team-a",
        serviceAccount: { name: "puller", namespace: "team-a" },
      },
      roleArn: "arn:aws:iam::123456789012:role/chained",
    });
    expect(r.spec.namespaces).toEqual(["team-a"]);
    expect(r.spec.region).toBe("us-east-1");
    const keys = resolved(
      resolveClaim(
        claim({ sourceRef: undefined, credentials: { secretRef: { name: "keys" } } }),
        undefined,
        {},
      ),
    );
    expect(keys.spec.credentials).toEqual({ secretRef: { name: "keys", namespace: "team-a" } });
  });

  it.each([
    ["ArgoCD", { argoCD: {} }],
    ["AdoptExisting", { adoptExisting: true }],
    ["PodRecoveryRecreate", { podRecovery: "Recreate" as const }],
  ])("refuses %s: only a source's administrator may allow it", (feature, spec) => {
    const own = claim({ sourceRef: undefined, credentials: { secretRef: { name: "k" } }, ...spec });
    const e = refused(resolveClaim(own, undefined, {}));
    expect(e.code).toBe("FeatureNotAllowed");
    expect(e.message).toContain(feature);
    expect(e.message).toContain("the claim's own credentials");
  });
});

describe("claims share one token per source", () => {
  const namespace = fc
    .stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/)
    .map((n) => `team-${n}`);

  it("resolves every allowed claim over one source to the same token sources (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(namespace, { minLength: 2, maxLength: 20 }),
        fc.boolean(),
        (namespaces, askRegistries) => {
          const s = source({
            registries: [{ accountId: ACCOUNT }, { host: "public.ecr.aws" }],
          });
          const keys = namespaces.map((ns) => {
            const c = claim(askRegistries ? { registries: [{ host: HOST }] } : {}, ns);
            const r = resolved(resolveClaim(c, s, {}));
            expect(r.spec.namespaces).toEqual([ns]);
            return [...tokenSources(resolveRegistries(r.spec, {})).keys()].sort().join("|");
          });
          expect(new Set(keys).size).toBe(1);
        },
      ),
    );
  });

  it("agrees with sourceAllows: a claim resolves exactly where its source allows the namespace (property)", () => {
    fc.assert(
      fc.property(
        namespace,
        fc.array(fc.constantFrom("team-*", "team-a", "ops", "team-?", "*-x"), { maxLength: 3 }),
        fc.boolean(),
        (ns, globs, labelled) => {
          const s = source({
            conditions: [
              ...(globs.length > 0 ? [{ namespaces: globs }] : []),
              { namespaceSelector: { matchLabels: { "platform/ecr": "on" } } },
            ],
          });
          const labels: Record<string, string> = labelled ? { "platform/ecr": "on" } : {};
          const r = resolveClaim(claim({}, ns), s, labels);
          expect(isOperatorError(r)).toBe(!sourceAllows(s, ns, labels));
        },
      ),
    );
  });
});

describe("claim keys and owners", () => {
  const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
  const dnsName = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,100}[a-z0-9])?$/);

  it("round-trips a claim's queue key; an ECRPullSecret's name is no claim key", () => {
    fc.assert(
      fc.property(dnsLabel, dnsName, (ns, name) => {
        expect(parseClaimKey(claimKey(ns, name))).toEqual({ namespace: ns, name });
        expect(parseClaimKey(name)).toBeUndefined();
      }),
    );
  });

  it("gives each claim an owner label no other claim and no ECRPullSecret has, valid as a label value (property)", () => {
    const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
    fc.assert(
      fc.property(dnsLabel, dnsName, dnsLabel, dnsName, (ns, name, ns2, name2) => {
        const owner = ownerLabelValue(claimOwner(ns, name));
        expect(owner.length).toBeLessThanOrEqual(63);
        expect(owner).toMatch(labelValue);
        expect(owner).toContain("_");
        expect(owner).not.toContain("/");
        // ECRPullSecret names are DNS subdomains of at most 63 characters: no "_".
        expect(ownerLabelValue(name.slice(0, 63))).not.toContain("_");
        if (ns !== ns2 || name !== name2)
          expect(owner).not.toBe(ownerLabelValue(claimOwner(ns2, name2)));
      }),
    );
  });
});

describe("describeOwner", () => {
  it("names a claim by its namespace and name, anything else as an ECRPullSecret", () => {
    expect(describeOwner(claimOwner("team-a", "pulls"))).toBe("ECRPullSecretClaim team-a/pulls");
    expect(describeOwner("ecr-pull")).toBe("ECRPullSecret ecr-pull");
    expect(describeOwner("claim_a_b_c")).toBe("ECRPullSecret claim_a_b_c");
  });
});
