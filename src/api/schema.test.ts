import { describe, expect, it } from "vitest";
import {
  ACCOUNT_ID_PATTERN,
  crdManifest,
  DNS1123_SUBDOMAIN_PATTERN,
  DURATION_PATTERN,
  EXTERNAL_ID_PATTERN,
  ecrPullSecretSchema,
  NAMESPACE_GLOB_PATTERN,
  REGION_PATTERN,
  REGISTRY_HOST_PATTERN,
  ROLE_ARN_PATTERN,
  type SchemaProps,
} from "./schema.js";
import {
  claimCrdManifest,
  clusterECRCredentialSourceSchema,
  ecrPullSecretClaimSchema,
  sourceCrdManifest,
} from "./tenant-schema.js";

/** Every schema node with its path, depth first. */
function* walk(s: SchemaProps, path = ""): Generator<[string, SchemaProps]> {
  yield [path || ".", s];
  for (const [k, p] of Object.entries(s.properties ?? {})) yield* walk(p, `${path}.${k}`);
  if (s.items) yield* walk(s.items, `${path}[]`);
  if (s.additionalProperties) yield* walk(s.additionalProperties, `${path}{}`);
}

const kinds: Array<[string, SchemaProps]> = [
  ["ECRPullSecret", ecrPullSecretSchema],
  ["ClusterECRCredentialSource", clusterECRCredentialSourceSchema],
  ["ECRPullSecretClaim", ecrPullSecretClaimSchema],
];

describe.each(kinds)("the %s schema is structural and bounded", (_, schema) => {
  const nodes = [...walk(schema)];

  it("gives every node a type and every array its items", () => {
    for (const [path, s] of nodes) {
      expect(s.type, path).toBeDefined();
      if (s.type === "array") expect(s.items, path).toBeDefined();
      if (s.type === "object" && path !== ".metadata") {
        expect(s.properties ?? s.additionalProperties, path).toBeDefined();
      }
    }
  });

  it("gives every CEL rule a message that names its field", () => {
    for (const [path, s] of nodes) {
      for (const v of s["x-kubernetes-validations"] ?? []) {
        expect(v.message.length, `${path}: ${v.rule}`).toBeGreaterThan(20);
        const field = path === "." ? "metadata" : path.split(".").at(-1)?.replace(/\W/g, "");
        expect(v.message, `${path}: ${v.rule}`).toContain(field);
      }
    }
  });

  it("bounds every list, map and string under a CEL rule", () => {
    for (const [path, s] of nodes) {
      if (!s["x-kubernetes-validations"] || path === ".") continue;
      for (const [sub, n] of walk(s, path)) {
        if (n.type === "array") expect(n.maxItems, sub).toBeDefined();
        if (n.type === "object" && n.additionalProperties)
          expect(n.maxProperties, sub).toBeDefined();
        if (n.type === "string" && !n.enum && !n.format) {
          expect(n.maxLength, sub).toBeDefined();
        }
      }
    }
  });

  it("keys map lists by required fields", () => {
    for (const [path, s] of nodes) {
      if (s["x-kubernetes-list-type"] !== "map") continue;
      for (const key of s["x-kubernetes-list-map-keys"] ?? []) {
        expect(s.items?.required, path).toContain(key);
      }
    }
  });

  it("has defaults that meet their own schema", () => {
    for (const [path, s] of nodes) {
      if (s.default === undefined) continue;
      if (s.enum) expect(s.enum, path).toContain(s.default);
      if (s.type === "array") {
        const pattern = s.items?.pattern;
        for (const d of s.default as string[]) {
          if (pattern) expect(d, path).toMatch(new RegExp(pattern));
        }
      }
    }
  });

  it("uses patterns that compile, within RE2's limits", () => {
    for (const [path, s] of nodes) {
      if (!s.pattern) continue;
      expect(() => new RegExp(s.pattern ?? ""), path).not.toThrow();
      // RE2, the API server's regexp engine, refuses repeat counts over 1000.
      for (const m of s.pattern.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
        expect(Math.max(Number(m[1]), Number(m[2] || 0)), path).toBeLessThanOrEqual(1000);
      }
    }
  });
});

describe("the CRDs", () => {
  it("is cluster-scoped with a status subresource and the agreed names", () => {
    const crd = crdManifest();
    expect(crd.spec.scope).toBe("Cluster");
    expect(crd.spec.names.shortNames).toEqual(["ecrps"]);
    expect(crd.spec.versions[0]?.subresources).toEqual({ status: {} });
    expect(crd.spec.versions[0]?.additionalPrinterColumns.map((c) => c.name)).toEqual([
      "Ready",
      "Secret",
      "Namespaces",
      "Expires",
      "Reason",
      "Age",
    ]);
  });

  it("offers sources cluster-scoped and claims namespaced, in the ecrcreds category, with their short names and columns", () => {
    const source = sourceCrdManifest();
    expect(source.spec.scope).toBe("Cluster");
    expect(source.spec.names.kind).toBe("ClusterECRCredentialSource");
    expect(source.spec.names.shortNames).toEqual(["ecrsource"]);
    expect(source.spec.names.categories).toEqual(["ecrcreds"]);
    expect(source.spec.versions[0]?.subresources).toEqual({ status: {} });
    expect(source.spec.versions[0]?.additionalPrinterColumns.map((c) => c.name)).toEqual([
      "Region",
      "Ready",
      "Age",
    ]);
    const claim = claimCrdManifest();
    expect(claim.spec.scope).toBe("Namespaced");
    expect(claim.spec.names.kind).toBe("ECRPullSecretClaim");
    expect(claim.spec.names.shortNames).toEqual(["ecrclaim"]);
    expect(claim.spec.names.categories).toEqual(["ecrcreds"]);
    expect(claim.spec.versions[0]?.subresources).toEqual({ status: {} });
    expect(claim.spec.versions[0]?.additionalPrinterColumns.map((c) => c.name)).toEqual([
      "Ready",
      "Secret",
      "Source",
      "Namespaces",
      "Expires",
      "Reason",
      "Age",
    ]);
  });

  it("refuses in a claim, by name, every field that would reach another namespace", () => {
    const spec = ecrPullSecretClaimSchema.properties?.spec;
    const rules = [...walk(spec ?? { type: "object" }, ".spec")].flatMap(([path, s]) =>
      (s["x-kubernetes-validations"] ?? [])
        .filter((v) => v.reason === "FieldValueForbidden")
        .map((v) => `${path}${v.fieldPath}`),
    );
    expect(rules.sort()).toEqual(
      [
        ".spec.namespaces",
        ".spec.namespaceSelector",
        ".spec.excludeNamespaces",
        ".spec.credentials.secretRef.namespace",
        ".spec.credentials.webIdentity.serviceAccount.namespace",
        ".spec.credentials.rolesAnywhere.certificateSecretRef.namespace",
        ".spec.registries[].credentials",
        ".spec.argoCD.namespace",
      ].sort(),
    );
  });
});

describe("schema patterns", () => {
  const cases: [string, string, string[], string[]][] = [
    [
      "secretName",
      DNS1123_SUBDOMAIN_PATTERN,
      ["ecr-pull", "a", "a.b-c.d"],
      ["", "Ecr", "-a", "a-", "a..b", "a_b"],
    ],
    [
      "namespace glob",
      NAMESPACE_GLOB_PATTERN,
      ["team-a", "apps-*", "*", "team-?", "*-prod"],
      ["", "Team", "-a", "a.b", "a/b"],
    ],
    [
      "region",
      REGION_PATTERN,
      [
        "us-east-1",
        "eu-central-1",
        "cn-north-1",
        "cn-northwest-1",
        "us-gov-west-1",
        "eusc-de-east-1",
        "us-iso-east-1",
        "eu-isoe-west-1",
        "ap-southeast-3",
        "il-central-1",
      ],
      ["us-east", "useast-1", "US-EAST-1", "us-east-12", "e-east-1"],
    ],
    [
      "accountId",
      ACCOUNT_ID_PATTERN,
      ["123456789012"],
      ["12345678901", "1234567890123", "12345678901a"],
    ],
    [
      "registry host",
      REGISTRY_HOST_PATTERN,
      [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "123456789012.dkr-ecr.eu-west-1.on.aws",
        "123456789012.dkr-ecr-fips.us-east-1.on.aws",
        "111122223333.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
        "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
        "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
        "123456789012.dkr-ecr.us-isof-south-1.on.aws.hci.ic.gov",
        "public.ecr.aws",
        "ecr-public.aws.com",
      ],
      [
        "docker.io",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io",
        "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo",
        "12345678901.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012.dkr-ecr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.eu-west-1.on.aws",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
        "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com",
        "public.ecr.aws.evil.io",
      ],
    ],
    [
      "roleArn",
      ROLE_ARN_PATTERN,
      [
        "arn:aws:iam::123456789012:role/ecr-pull",
        "arn:aws-cn:iam::123456789012:role/a/b",
        "arn:aws-us-gov:iam::123456789012:role/x+=,.@-_",
        "arn:aws-iso:iam::123456789012:role/x",
        "arn:aws-eusc:iam::123456789012:role/x",
      ],
      [
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:iam::12345:role/x",
        "arn:aws:iam::123456789012:role/",
        "arn:aws-moon:iam::123456789012:role/x",
      ],
    ],
    ["externalId", EXTERNAL_ID_PATTERN, ["ab", "x+=,.@:/-_9"], ["", "has space", "semi;colon"]],
    [
      "refreshBefore",
      DURATION_PATTERN,
      ["4h", "90m", "1h30m", "1.5h", "0s", "500ms"],
      ["4", "-1h", "1.h", ".5h", "1d", "h", "4h "],
    ],
  ];
  it.each(cases)("%s", (_, pattern, good, bad) => {
    const re = new RegExp(pattern);
    for (const g of good) expect(g, `${g} should match`).toMatch(re);
    for (const b of bad) expect(b, `${b} should not match`).not.toMatch(re);
  });
});
