import { operatorError } from "../errors.js";

// ECR registry hosts. Private: <account>.dkr.ecr[-fips].<region>.amazonaws.com
// (.amazonaws.com.cn in China, also .on.aws) and the dual-stack
// <account>.dkr-ecr[-fips].<region>.on.aws; public: public.ecr.aws. These are
// exactly the hosts REGISTRY_HOST_PATTERN and the CRD's host rule let through.

export const PUBLIC_REGISTRY_HOST = "public.ecr.aws";
/** ECR Public issues its tokens in us-east-1 only. */
export const PUBLIC_REGISTRY_TOKEN_REGION = "us-east-1";

export type Partition = "aws" | "aws-cn" | "aws-us-gov";

export type RegistryHost =
  | {
      kind: "private";
      accountId: string;
      region: string;
      partition: Partition;
      fips: boolean;
      dualStack: boolean;
    }
  | { kind: "public" };

export interface RegistryHostOptions {
  fips?: boolean;
  /** The IPv4+IPv6 endpoint `<account>.dkr-ecr.<region>.on.aws` (not in China). */
  dualStack?: boolean;
}

const ACCOUNT_ID = /^[0-9]{12}$/;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-[0-9]$/;
const PRIVATE_HOST =
  /^([0-9]{12})\.(dkr\.ecr|dkr-ecr)(-fips)?\.([a-z]{2}(?:-[a-z]+)+-[0-9])\.(amazonaws\.com|amazonaws\.com\.cn|on\.aws)$/;

export function partitionOf(region: string): Partition {
  if (region.startsWith("cn-")) return "aws-cn";
  if (region.startsWith("us-gov-")) return "aws-us-gov";
  return "aws";
}

/** Parses a registry host; throws InvalidRegistryHost, saying why, on anything else. */
export function parseRegistryHost(host: string): RegistryHost {
  const bad = (reason: string) => operatorError("InvalidSpec", "registryHost", { host, reason });
  if (host === PUBLIC_REGISTRY_HOST) return { kind: "public" };
  if (/[:/@]/.test(host)) throw bad("a host has no scheme, port, path or user");
  if (host !== host.toLowerCase()) throw bad("write the host in lower case");
  const m = PRIVATE_HOST.exec(host);
  if (m === null) throw bad("it is not an ECR registry host");
  const [, accountId = "", label, fips, region = "", domain] = m;
  const partition = partitionOf(region);
  const dualStack = label === "dkr-ecr";
  if (dualStack && domain !== "on.aws") throw bad("dual-stack (dkr-ecr) hosts end in .on.aws");
  if ((partition === "aws-cn") !== (domain === "amazonaws.com.cn")) {
    throw bad("China regions (cn-*) use the amazonaws.com.cn domain and other regions do not");
  }
  return { kind: "private", accountId, region, partition, fips: fips !== undefined, dualStack };
}

/** The standard registry host of an account in a region. */
export function registryHost(
  accountId: string,
  region: string,
  opts: RegistryHostOptions = {},
): string {
  const host = `${accountId}.dkr.ecr.${region}`;
  const bad = (reason: string) => operatorError("InvalidSpec", "registryHost", { host, reason });
  if (!ACCOUNT_ID.test(accountId)) throw bad("the account ID must be 12 digits");
  if (!REGION.test(region)) throw bad("the region must look like us-east-1");
  const fips = opts.fips ? "-fips" : "";
  if (opts.dualStack) {
    if (partitionOf(region) === "aws-cn")
      throw bad("dual-stack hosts in China regions are not supported");
    return `${accountId}.dkr-ecr${fips}.${region}.on.aws`;
  }
  const domain = partitionOf(region) === "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com";
  return `${accountId}.dkr.ecr${fips}.${region}.${domain}`;
}
