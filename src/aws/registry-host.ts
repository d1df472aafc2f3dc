import {
  PARTITIONS,
  type Partition,
  type PartitionSpec,
  PUBLIC_DUAL_STACK_REGISTRY_HOST,
  PUBLIC_REGISTRY_HOST,
  REGION_SOURCE,
} from "../api/registry-hosts.js";
import { operatorError } from "../errors.js";

// Parses and builds ECR registry hosts with the one table of host families in
// src/api/registry-hosts.ts (which the CRD's rules are made from too).

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
  const bad = (reason: string) => operatorError("InvalidSpec", "registryHost", { host, reason });
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
  const bad = (reason: string) => operatorError("InvalidSpec", "registryHost", { host, reason });
  if (!ACCOUNT_ID.test(accountId)) throw bad("the account ID must be 12 digits");
  const spec = REGION.test(region) ? partitionSpecOf(region) : undefined;
  if (!spec) throw bad("the region must be one of an AWS partition's, such as us-east-1");
  const fips = opts.fips ? "-fips" : "";
  if (opts.dualStack) return `${accountId}.dkr-ecr${fips}.${region}.${spec.dualStackDomain}`;
  return `${accountId}.dkr.ecr${fips}.${region}.${spec.domain}`;
}
