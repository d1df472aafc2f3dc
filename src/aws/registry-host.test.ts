import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PARTITIONS, REGION_SOURCE } from "../api/registry-hosts.js";
import { REGISTRY_HOST_PATTERN } from "../api/schema.js";
import { isOperatorError } from "../errors.js";
import { parseRegistryHost, partitionOf, registryHost } from "./registry-host.js";

/** Private registry hosts and what they parse to, one per partition and spelling. */
const PRIVATE_HOSTS: Array<[string, Record<string, unknown>]> = [
  [
    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    {
      accountId: "123456789012",
      region: "us-east-1",
      partition: "aws",
      fips: false,
      dualStack: false,
    },
  ],
  [
    "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
    {
      accountId: "123456789012",
      region: "us-gov-west-1",
      partition: "aws-us-gov",
      fips: true,
      dualStack: false,
    },
  ],
  [
    "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
    {
      accountId: "123456789012",
      region: "cn-northwest-1",
      partition: "aws-cn",
      fips: false,
      dualStack: false,
    },
  ],
  [
    "123456789012.dkr-ecr.eu-west-1.on.aws",
    {
      accountId: "123456789012",
      region: "eu-west-1",
      partition: "aws",
      fips: false,
      dualStack: true,
    },
  ],
  [
    "123456789012.dkr-ecr-fips.us-east-2.on.aws",
    {
      accountId: "123456789012",
      region: "us-east-2",
      partition: "aws",
      fips: true,
      dualStack: true,
    },
  ],
  [
    "111122223333.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
    {
      accountId: "111122223333",
      region: "cn-northwest-1",
      partition: "aws-cn",
      fips: false,
      dualStack: true,
    },
  ],
  [
    "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
    {
      accountId: "123456789012",
      region: "eusc-de-east-1",
      partition: "aws-eusc",
      fips: false,
      dualStack: false,
    },
  ],
  [
    "123456789012.dkr-ecr.eusc-de-east-1.on.amazonwebservices.eu",
    {
      accountId: "123456789012",
      region: "eusc-de-east-1",
      partition: "aws-eusc",
      fips: false,
      dualStack: true,
    },
  ],
  [
    "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
    {
      accountId: "123456789012",
      region: "us-iso-east-1",
      partition: "aws-iso",
      fips: false,
      dualStack: false,
    },
  ],
  [
    "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
    {
      accountId: "123456789012",
      region: "us-isob-east-1",
      partition: "aws-iso-b",
      fips: false,
      dualStack: false,
    },
  ],
  [
    "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
    {
      accountId: "123456789012",
      region: "eu-isoe-west-1",
      partition: "aws-iso-e",
      fips: false,
      dualStack: false,
    },
  ],
  [
    "123456789012.dkr-ecr.us-isof-south-1.on.aws.hci.ic.gov",
    {
      accountId: "123456789012",
      region: "us-isof-south-1",
      partition: "aws-iso-f",
      fips: false,
      dualStack: true,
    },
  ],
];

/** Hosts that are no ECR registry the operator serves, and what the error says why. */
const REJECTED_HOSTS: Array<[string, string]> = [
  ["", "not an ECR"],
  ["docker.io", "not an ECR"],
  ["https://123456789012.dkr.ecr.us-east-1.amazonaws.com", "no scheme"],
  ["123456789012.dkr.ecr.us-east-1.amazonaws.com:443", "no scheme, port"],
  ["123456789012.dkr.ecr.us-east-1.amazonaws.com/repo", "path"],
  ["123456789012.DKR.ECR.us-east-1.amazonaws.com", "lower case"],
  ["123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io", "not an ECR"],
  ["1234567890.dkr.ecr.us-east-1.amazonaws.com", "not an ECR"],
  ["123456789012.dkr-ecr.us-east-1.amazonaws.com", "dual-stack"],
  ["123456789012.dkr.ecr.cn-north-1.amazonaws.com", "China"],
  ["123456789012.dkr.ecr.us-east-1.amazonaws.com.cn", "China"],
  ["123456789012.dkr-ecr.cn-north-1.on.aws", "China"],
  ["123456789012.dkr.ecr.eu-west-1.on.aws", "dual-stack"],
  ["123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com", "European Sovereign Cloud"],
  ["123456789012.dkr.ecr.us-iso-east-1.amazonaws.com", "ISO (US)"],
  ["123456789012.dkr.ecr.zz-east-1.amazonaws.com", "not a region"],
  ["public.ecr.aws.evil.io", "not an ECR"],
];

const accountId = fc.stringMatching(/^[0-9]{12}$/);
const region = fc.oneof(
  fc.constantFrom(...PARTITIONS.map((p) => p.exampleRegion), "us-east-1", "ap-southeast-4"),
  fc.stringMatching(new RegExp(`^${REGION_SOURCE}$`)),
);
const options = fc.record({ fips: fc.boolean(), dualStack: fc.boolean() });

describe("parseRegistryHost", () => {
  it.each(PRIVATE_HOSTS)("parses %s", (host, want) => {
    expect(parseRegistryHost(host)).toEqual({ kind: "private", ...want });
  });

  it("parses ECR Public and its dual-stack host", () => {
    expect(parseRegistryHost("public.ecr.aws")).toEqual({ kind: "public", dualStack: false });
    expect(parseRegistryHost("ecr-public.aws.com")).toEqual({ kind: "public", dualStack: true });
  });

  it.each(REJECTED_HOSTS)("rejects %j with InvalidRegistryHost (%s)", (host, why) => {
    try {
      parseRegistryHost(host);
      expect.unreachable();
    } catch (e) {
      expect(isOperatorError(e, "InvalidSpec")).toBe(true);
      expect((e as { form?: string }).form).toBe("registryHost");
      expect((e as Error).message).toContain(why);
      expect((e as Error).message).toMatch(/^failed to parse registry host/);
    }
  });
});

describe("parseRegistryHost and registryHost, as properties", () => {
  it("reads back what registryHost builds, and the schema accepts it", () => {
    fc.assert(
      fc.property(accountId, region, options, (a, r, o) => {
        const host = registryHost(a, r, o);
        expect(host).toMatch(new RegExp(REGISTRY_HOST_PATTERN));
        expect(parseRegistryHost(host)).toEqual({
          kind: "private",
          accountId: a,
          region: r,
          partition: partitionOf(r),
          fips: o.fips,
          dualStack: o.dualStack,
        });
      }),
    );
  });

  it("accepts only hosts the CRD's pattern accepts", () => {
    const near = fc
      .tuple(
        fc.constantFrom("123456789012", "12345678901", "abcdefghijkl"),
        fc.constantFrom("dkr.ecr", "dkr-ecr", "dkr.ecr-fips", "dkr-ecr-fips", "ecr", "api.ecr"),
        fc.constantFrom(
          "us-east-1",
          "cn-north-1",
          "us-gov-west-1",
          "eusc-de-east-1",
          "us-iso-east-1",
          "useast1",
          "us-east-10",
        ),
        fc.constantFrom(
          ...PARTITIONS.flatMap((p) => [p.domain, p.dualStackDomain]),
          "example.com",
          "aws",
        ),
      )
      .map((parts) => parts.join("."));
    fc.assert(
      fc.property(fc.oneof(near, fc.string({ maxLength: 20 })), (host) => {
        let parsed = true;
        try {
          parseRegistryHost(host);
        } catch (e) {
          expect(isOperatorError(e, "InvalidSpec")).toBe(true);
          expect((e as { form?: string }).form).toBe("registryHost");
          parsed = false;
        }
        if (parsed) expect(host).toMatch(new RegExp(REGISTRY_HOST_PATTERN));
      }),
    );
  });
});

describe("registryHost", () => {
  it("builds the standard hosts", () => {
    expect(registryHost("123456789012", "us-east-1")).toBe(
      "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    );
    expect(registryHost("123456789012", "cn-north-1")).toBe(
      "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
    );
    expect(registryHost("123456789012", "us-gov-west-1", { fips: true })).toBe(
      "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
    );
    expect(registryHost("123456789012", "eu-west-1", { dualStack: true })).toBe(
      "123456789012.dkr-ecr.eu-west-1.on.aws",
    );
    expect(registryHost("111122223333", "cn-northwest-1", { dualStack: true })).toBe(
      "111122223333.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
    );
    expect(registryHost("123456789012", "eusc-de-east-1")).toBe(
      "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
    );
  });

  it.each([
    ["12345", "us-east-1", {}],
    ["123456789012", "US-EAST-1", {}],
    ["123456789012", "zz-north-1", {}],
  ])("refuses %s in %s %j", (a, r, o) => {
    expect(() => registryHost(a, r, o)).toThrowError(/failed to parse registry host/);
  });
});
