// Every ECR host family AWS documents, one test each, on the real API server
// and with the AWS SDK's own endpoint resolution (no AWS_ENDPOINT_URL): the
// host is accepted at apply, its region and partition are inferred, and the
// token comes from that partition's API endpoint, which the test's proxy log
// names (every AWS host name leads through the proxy to the AWS double).
// Before: the China dual-stack, European Sovereign Cloud, ISO and ECR Public
// dual-stack hosts were refused at apply.
import { ApiException } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../../src/api/index.js";
import { parseRegistryHost } from "../../src/aws/registry-host.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  dockerConfigOf,
  getResource,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { TestProxy, trustCertificate } from "../harness/proxy.js";
import { type Stack, startStack } from "../harness/stack.js";
import { selfSignedCertificate } from "../registry-double/self-signed.js";

const OPS = "hosts-ops";
const NS = "hosts-a";
const ACCOUNT = "111122223333";
const KEYS = {
  accessKeyId: "AKIAHOSTS00000000001",
  secretAccessKey: "hosts-secret-00000000000000000000000001",
};

interface Family {
  family: string;
  host: string;
  region: string;
  partition: string;
  service: "ecr" | "ecr-public";
  /** The API endpoint the token must come from. */
  endpoint: string;
}

const FAMILIES: Family[] = [
  {
    family: "standard",
    host: `${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com`,
    region: "eu-west-1",
    partition: "aws",
    service: "ecr",
    endpoint: "api.ecr.eu-west-1.amazonaws.com",
  },
  {
    family: "FIPS",
    host: `${ACCOUNT}.dkr.ecr-fips.us-east-2.amazonaws.com`,
    region: "us-east-2",
    partition: "aws",
    service: "ecr",
    endpoint: "api.ecr.us-east-2.amazonaws.com",
  },
  {
    family: "dual-stack",
    host: `${ACCOUNT}.dkr-ecr.ap-southeast-2.on.aws`,
    region: "ap-southeast-2",
    partition: "aws",
    service: "ecr",
    endpoint: "api.ecr.ap-southeast-2.amazonaws.com",
  },
  {
    family: "GovCloud FIPS",
    host: `${ACCOUNT}.dkr.ecr-fips.us-gov-west-1.amazonaws.com`,
    region: "us-gov-west-1",
    partition: "aws-us-gov",
    service: "ecr",
    endpoint: "api.ecr.us-gov-west-1.amazonaws.com",
  },
  {
    family: "China",
    host: `${ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn`,
    region: "cn-north-1",
    partition: "aws-cn",
    service: "ecr",
    endpoint: "api.ecr.cn-north-1.amazonaws.com.cn",
  },
  {
    family: "China dual-stack",
    host: `${ACCOUNT}.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn`,
    region: "cn-northwest-1",
    partition: "aws-cn",
    service: "ecr",
    endpoint: "api.ecr.cn-northwest-1.amazonaws.com.cn",
  },
  {
    family: "European Sovereign Cloud",
    host: `${ACCOUNT}.dkr.ecr.eusc-de-east-1.amazonaws.eu`,
    region: "eusc-de-east-1",
    partition: "aws-eusc",
    service: "ecr",
    endpoint: "api.ecr.eusc-de-east-1.amazonaws.eu",
  },
  {
    family: "European Sovereign Cloud dual-stack",
    host: `${ACCOUNT}.dkr-ecr.eusc-de-east-1.on.amazonwebservices.eu`,
    region: "eusc-de-east-1",
    partition: "aws-eusc",
    service: "ecr",
    endpoint: "api.ecr.eusc-de-east-1.amazonaws.eu",
  },
  {
    family: "ISO",
    host: `${ACCOUNT}.dkr.ecr.us-iso-east-1.c2s.ic.gov`,
    region: "us-iso-east-1",
    partition: "aws-iso",
    service: "ecr",
    endpoint: "api.ecr.us-iso-east-1.c2s.ic.gov",
  },
  {
    family: "ISOB",
    host: `${ACCOUNT}.dkr.ecr.us-isob-east-1.sc2s.sgov.gov`,
    region: "us-isob-east-1",
    partition: "aws-iso-b",
    service: "ecr",
    endpoint: "api.ecr.us-isob-east-1.sc2s.sgov.gov",
  },
  {
    family: "ISOE",
    host: `${ACCOUNT}.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk`,
    region: "eu-isoe-west-1",
    partition: "aws-iso-e",
    service: "ecr",
    endpoint: "api.ecr.eu-isoe-west-1.cloud.adc-e.uk",
  },
  {
    family: "ISOF dual-stack",
    host: `${ACCOUNT}.dkr-ecr.us-isof-south-1.on.aws.hci.ic.gov`,
    region: "us-isof-south-1",
    partition: "aws-iso-f",
    service: "ecr",
    endpoint: "api.ecr.us-isof-south-1.csp.hci.ic.gov",
  },
  {
    family: "ECR Public",
    host: "public.ecr.aws",
    region: "us-east-1",
    partition: "aws",
    service: "ecr-public",
    endpoint: "api.ecr-public.us-east-1.amazonaws.com",
  },
  {
    family: "ECR Public dual-stack",
    host: "ecr-public.aws.com",
    region: "us-east-1",
    partition: "aws",
    service: "ecr-public",
    endpoint: "api.ecr-public.us-east-1.amazonaws.com",
  },
];

const AWS_DOMAINS = [
  ".amazonaws.com",
  ".amazonaws.com.cn",
  ".amazonaws.eu",
  ".c2s.ic.gov",
  ".sc2s.sgov.gov",
  ".cloud.adc-e.uk",
  ".csp.hci.ic.gov",
];

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let proxy: TestProxy;
const resourceName = (i: number) => `hosts-${i}`;

beforeAll(async () => {
  // The double serves HTTPS under every family's API endpoint name, reachable
  // only through the proxy, which sends every AWS host name to it.
  const cert = selfSignedCertificate({
    dnsNames: [...new Set(FAMILIES.map((f) => f.endpoint))],
    ips: ["127.0.0.1"],
  });
  trustCertificate(cert.certPem);
  stack = await startStack({
    ops: OPS,
    namespaces: [NS],
    awsTls: cert,
    awsEndpoint: false,
    identities: [{ ...KEYS, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/hosts` }],
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push(...FAMILIES.map((_, i) => resourceName(i)));
  const awsPort = Number(new URL(aws.url).port);
  proxy = new TestProxy((host) =>
    AWS_DOMAINS.some((d) => host.endsWith(d)) ? { host: "127.0.0.1", port: awsPort } : undefined,
  );
  await proxy.start();
  stack.onStop(() => proxy.close());
  delete process.env.AWS_ENDPOINT_URL;
  process.env.HTTPS_PROXY = proxy.url;
  process.env.NO_PROXY = "127.0.0.0/8";
  // One credentials Secret per family: each family is its own token source,
  // so each fetches (and the proxy log shows where from).
  for (const i of FAMILIES.keys()) await stack.putKeys(`keys-${i}`, KEYS);
  await stack.startOperator();
});

afterAll(async () => {
  await stack?.stop();
  delete process.env.HTTPS_PROXY;
  delete process.env.NO_PROXY;
});

describe("ECR host families", () => {
  it.each(FAMILIES.map((f, i) => [f.family, i, f] as const))(
    "%s: accepted at apply, region and partition inferred, token from its endpoint",
    async (_family, i, f) => {
      const parsed = parseRegistryHost(f.host);
      expect(parsed.kind === "private" ? parsed.partition : "aws").toBe(f.partition);
      expect(parsed.kind === "private" ? parsed.region : "us-east-1").toBe(f.region);
      const proxied = proxy.log.length;
      const name = resourceName(i);
      await applyResource(k, name, {
        secretName: `ecr-${i}`,
        namespaces: [NS],
        serviceAccounts: [],
        credentials: { secretRef: { namespace: OPS, name: `keys-${i}` } },
        registries: [{ host: f.host }],
      });
      await waitFor(`${name} Ready`, async () => {
        const r = await getResource(k, name);
        return readyCondition(r)?.status === "True" ? r : undefined;
      });
      const secret = await waitFor(`Secret ${NS}/ecr-${i}`, () => readSecret(k, NS, `ecr-${i}`));
      const auths = dockerConfigOf(secret).auths;
      expect(Object.keys(auths)).toEqual([f.host]);
      const token = aws.issued().find((t) => t.password === auths[f.host]?.password);
      expect(token).toMatchObject({ service: f.service, region: f.region });
      expect(proxy.requests().slice(proxied)).toEqual([`CONNECT ${f.endpoint}:443`]);
    },
  );

  it.each([
    [`${ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com`, "China region on the .com domain"],
    [`${ACCOUNT}.dkr-ecr.cn-northwest-1.on.aws`, "China dual-stack on .on.aws"],
    [`${ACCOUNT}.dkr.ecr.eusc-de-east-1.amazonaws.com`, "Sovereign Cloud region on .com"],
    [`${ACCOUNT}.dkr.ecr.us-iso-east-1.amazonaws.com`, "ISO region on .com"],
    [`${ACCOUNT}.dkr.ecr.eu-west-1.on.aws`, "dual-stack domain without dkr-ecr"],
  ])("refuses %s at apply (%s), naming the field", async (host) => {
    const body = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: "hosts-bad" },
      spec: { secretName: "x", namespaces: [NS], registries: [{ host }] },
    };
    const err = await k.custom
      .createClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, body })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApiException);
    const message = String((err as ApiException<unknown>).body);
    expect(message).toContain("spec.registries[0].host");
    expect(message).toContain("the region and domain do not belong together");
  });
});
