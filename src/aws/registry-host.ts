import { operatorError } from "../errors.js";

// Every ECR registry host AWS documents, from one table: the CRD's pattern and
// CEL rule (src/api/schema.ts), the parser and the region inference below all
// read PARTITIONS, so a host the API server admits is a host the operator can
// parse, and the partition it infers is the one the AWS SDK signs for.
//
//   private:     <account>.dkr.ecr[-fips].<region>.<domain>
//   dual-stack:  <account>.dkr-ecr[-fips].<region>.<dual-stack domain>
//   ECR Public:  public.ecr.aws, dual-stack ecr-public.aws.com
//
// The domains are the AWS SDK's partition DNS suffixes (its partitions.json:
// dnsSuffix, and dualStackDnsSuffix with ECR's "on." in place of "api.").
// Region patterns are the SDK's `regionRegex` per partition; they do not
// overlap, so a region names exactly one partition.
// This file keeps to syntax Node can run by stripping types: scripts/gen-api.ts
// loads it through src/api/schema.ts without a build.

export interface PartitionSpec {
  /** The SDK's partition id, as in an ARN (`arn:<id>:...`). */
  id: string;
  /** What people call it, for messages. */
  name: string;
  /** RE2/JavaScript common subset, unanchored. */
  regionPattern: string;
  /** Standard registry hosts end in this. */
  domain: string;
  /** Dual-stack (IPv4 and IPv6) registry hosts end in this. */
  dualStackDomain: string;
  /** A region of the partition, for examples and tests. */
  exampleRegion: string;
}

export const PARTITIONS = [
  {
    id: "aws",
    name: "AWS",
    regionPattern: "(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-[0-9]",
    domain: "amazonaws.com",
    dualStackDomain: "on.aws",
    exampleRegion: "eu-west-1",
  },
  {
    id: "aws-cn",
    name: "China",
    regionPattern: "cn-[a-z]+-[0-9]",
    domain: "amazonaws.com.cn",
    dualStackDomain: "on.amazonwebservices.com.cn",
    exampleRegion: "cn-northwest-1",
  },
  {
    id: "aws-us-gov",
    name: "AWS GovCloud (US)",
    regionPattern: "us-gov-[a-z]+-[0-9]",
    domain: "amazonaws.com",
    dualStackDomain: "on.aws",
    exampleRegion: "us-gov-west-1",
  },
  {
    id: "aws-eusc",
    name: "European Sovereign Cloud",
    regionPattern: "eusc-de-[a-z]+-[0-9]",
    domain: "amazonaws.eu",
    dualStackDomain: "on.amazonwebservices.eu",
    exampleRegion: "eusc-de-east-1",
  },
  {
    id: "aws-iso",
    name: "ISO (US)",
    regionPattern: "us-iso-[a-z]+-[0-9]",
    domain: "c2s.ic.gov",
    dualStackDomain: "on.aws.ic.gov",
    exampleRegion: "us-iso-east-1",
  },
  {
    id: "aws-iso-b",
    name: "ISOB (US)",
    regionPattern: "us-isob-[a-z]+-[0-9]",
    domain: "sc2s.sgov.gov",
    dualStackDomain: "on.aws.scloud",
    exampleRegion: "us-isob-east-1",
  },
  {
    id: "aws-iso-e",
    name: "ISOE (Europe)",
    regionPattern: "eu-isoe-[a-z]+-[0-9]",
    domain: "cloud.adc-e.uk",
    dualStackDomain: "on.cloud-aws.adc-e.uk",
    exampleRegion: "eu-isoe-west-1",
  },
  {
    id: "aws-iso-f",
    name: "ISOF (US)",
    regionPattern: "us-isof-[a-z]+-[0-9]",
    domain: "csp.hci.ic.gov",
    dualStackDomain: "on.aws.hci.ic.gov",
    exampleRegion: "us-isof-south-1",
  },
] as const satisfies readonly PartitionSpec[];

export type Partition = (typeof PARTITIONS)[number]["id"];

export const PUBLIC_REGISTRY_HOST = "public.ecr.aws";
/** ECR Public's dual-stack registry host. */
export const PUBLIC_DUAL_STACK_REGISTRY_HOST = "ecr-public.aws.com";
/** ECR Public issues its tokens in us-east-1 only. */
export const PUBLIC_REGISTRY_TOKEN_REGION = "us-east-1";

const literal = (s: string): string => s.replaceAll(".", "\\.");
const unique = (xs: string[]): string[] => [...new Set(xs)];

/** Any region of any partition (unanchored). */
export const REGION_SOURCE = `(${PARTITIONS.map((p) => p.regionPattern).join("|")})`;

/** Every registry host AWS documents, and nothing else (anchored; RE2-safe). */
export const REGISTRY_HOST_SOURCE = `^(${[
  literal(PUBLIC_REGISTRY_HOST),
  literal(PUBLIC_DUAL_STACK_REGISTRY_HOST),
  ...PARTITIONS.flatMap((p) => [
    `[0-9]{12}\\.dkr\\.ecr(-fips)?\\.(${p.regionPattern})\\.${literal(p.domain)}`,
    `[0-9]{12}\\.dkr-ecr(-fips)?\\.(${p.regionPattern})\\.${literal(p.dualStackDomain)}`,
  ]),
].join("|")})$`;

/**
 * The shape of a registry host, without checking that its region and domain
 * belong together: the CRD's `pattern`; REGISTRY_HOST_SOURCE, as a CEL rule,
 * then says which domain the region needs.
 */
export const REGISTRY_HOST_SHAPE_SOURCE = `^(${literal(PUBLIC_REGISTRY_HOST)}|${literal(PUBLIC_DUAL_STACK_REGISTRY_HOST)}|[0-9]{12}\\.dkr[.-]ecr(-fips)?\\.[a-z0-9-]+\\.(${unique(
  PARTITIONS.flatMap((p) => [p.domain, p.dualStackDomain]),
)
  .map(literal)
  .join("|")}))$`;

/** One line per partition: which regions use which domains. For messages. */
export function partitionDomains(): string {
  return PARTITIONS.filter((p) => p.id !== "aws-us-gov")
    .map(
      (p) =>
        `${p.id === "aws" ? "" : `${p.name}: `}.${p.domain} (dual-stack .${p.dualStackDomain})`,
    )
    .join(", ");
}

export type RegistryHost =
  | {
      kind: "private";
      accountId: string;
      region: string;
      partition: Partition;
      fips: boolean;
      dualStack: boolean;
    }
  | { kind: "public"; dualStack: boolean };

export interface RegistryHostOptions {
  fips?: boolean;
  /** The IPv4+IPv6 endpoint `<account>.dkr-ecr.<region>.<dual-stack domain>`. */
  dualStack?: boolean;
}

const ACCOUNT_ID = /^[0-9]{12}$/;
const REGION = new RegExp(`^${REGION_SOURCE}$`);
const PARTITION_REGIONS = PARTITIONS.map((p) => ({ p, re: new RegExp(`^${p.regionPattern}$`) }));
const PRIVATE_SHAPE = /^([0-9]{12})\.(dkr\.ecr|dkr-ecr)(-fips)?\.([a-z0-9-]+)\.([a-z0-9.-]+)$/;

/** The partition of a region; undefined for a string that is no region of any. */
export function partitionSpecOf(region: string): PartitionSpec | undefined {
  return PARTITION_REGIONS.find(({ re }) => re.test(region))?.p;
}

/** The partition of a region (aws for one it does not know, as the AWS SDK does). */
export function partitionOf(region: string): Partition {
  return (partitionSpecOf(region)?.id ?? "aws") as Partition;
}

/** Parses a registry host; throws InvalidRegistryHost, saying why, on anything else. */
export function parseRegistryHost(host: string): RegistryHost {
  const bad = (reason: string) => operatorError("InvalidRegistryHost", { host, reason });
  if (host === PUBLIC_REGISTRY_HOST) return { kind: "public", dualStack: false };
  if (host === PUBLIC_DUAL_STACK_REGISTRY_HOST) return { kind: "public", dualStack: true };
  if (/[:/@]/.test(host)) throw bad("a host has no scheme, port, path or user");
  if (host !== host.toLowerCase()) throw bad("write the host in lower case");
  const m = PRIVATE_SHAPE.exec(host);
  if (m === null) throw bad("it is not an ECR registry host");
  const [, accountId = "", label, fips, region = "", domain = ""] = m;
  const spec = partitionSpecOf(region);
  const dualStack = label === "dkr-ecr";
  const domains = PARTITIONS.flatMap((p) => [p.domain, p.dualStackDomain]) as string[];
  if (!spec) {
    if (!domains.includes(domain)) throw bad("it is not an ECR registry host");
    throw bad(`${region} is not a region of any AWS partition`);
  }
  const want = dualStack ? spec.dualStackDomain : spec.domain;
  if (domain !== want) {
    if (!domains.includes(domain)) throw bad("it is not an ECR registry host");
    const other = dualStack ? spec.domain : spec.dualStackDomain;
    throw bad(
      domain === other
        ? dualStack
          ? `dual-stack (dkr-ecr) hosts in ${region} end in .${spec.dualStackDomain}`
          : `.${domain} is the dual-stack domain: write ${accountId}.dkr-ecr${fips ?? ""}.${region}.${domain}`
        : `${region} is in the ${spec.name} partition, whose registries end in .${spec.domain} (dual-stack .${spec.dualStackDomain}), not .${domain}${spec.id === "aws-cn" || domain.includes(".cn") ? " (China regions and domains go together)" : ""}`,
    );
  }
  return {
    kind: "private",
    accountId,
    region,
    partition: spec.id as Partition,
    fips: fips !== undefined,
    dualStack,
  };
}

/** The registry host of an account in a region. */
export function registryHost(
  accountId: string,
  region: string,
  opts: RegistryHostOptions = {},
): string {
  const host = `${accountId}.dkr.ecr.${region}`;
  const bad = (reason: string) => operatorError("InvalidRegistryHost", { host, reason });
  if (!ACCOUNT_ID.test(accountId)) throw bad("the account ID must be 12 digits");
  const spec = REGION.test(region) ? partitionSpecOf(region) : undefined;
  if (!spec) throw bad("the region must be one of an AWS partition's, such as us-east-1");
  const fips = opts.fips ? "-fips" : "";
  if (opts.dualStack) return `${accountId}.dkr-ecr${fips}.${region}.${spec.dualStackDomain}`;
  return `${accountId}.dkr.ecr${fips}.${region}.${spec.domain}`;
}
