// Every ECR registry host AWS documents, from one table: the CRD's pattern and
// CEL rule (schema.ts), the parser and the region inference
// (src/aws/registry-host.ts) all read PARTITIONS, so a host the API server
// admits is a host the operator can parse, and the partition it infers is the
// one the AWS SDK signs for. It sits with the schema, the lowest floor that
// needs it; src/aws/registry-host.ts parses with it.
//
//   private:     <account>.dkr.ecr[-fips].<region>.<domain>
//   dual-stack:  <account>.dkr-ecr[-fips].<region>.<dual-stack domain>
//   ECR Public:  public.ecr.aws, dual-stack ecr-public.aws.com
//
// The domains are the AWS SDK's partition DNS suffixes (its partitions.json:
// dnsSuffix, and dualStackDnsSuffix with ECR's "on." in place of "api.").
// Region patterns are the SDK's `regionRegex` per partition; they do not
// overlap, so a region names exactly one partition.
// This file keeps to syntax Node can run by stripping types and imports
// nothing: scripts/gen-api.ts loads it through schema.ts without a build.

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
