// The SDK client of a token source against the AWS double over the wire:
// skew correction that outlives a fetch, one corrected retry and no other,
// rotated keys taking effect on the same client, and what a fetch that skew
// defeats is classified as.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AwsDouble } from "../../test/aws-double/index.js";
import { classifyAwsError } from "./errors.js";
import { TokenClients } from "./token.js";

const MINUTE = 60_000;
const A = {
  accessKeyId: "AKIATOKENTEST0000001",
  secretAccessKey: "token-test-secret-a-000000000000000001",
};
const B = {
  accessKeyId: "AKIATOKENTEST0000002",
  secretAccessKey: "token-test-secret-b-000000000000000002",
};

let aws: AwsDouble;
const saved = process.env.AWS_ENDPOINT_URL;

beforeAll(async () => {
  aws = new AwsDouble({ maxClockSkewMs: 5 * MINUTE });
  await aws.start();
  aws.addIdentity({ ...A, accountId: "123456789012", arn: "arn:aws:iam::123456789012:user/a" });
  aws.addIdentity({ ...B, accountId: "123456789012", arn: "arn:aws:iam::123456789012:user/b" });
  process.env.AWS_ENDPOINT_URL = aws.url;
});
afterAll(async () => {
  await aws.close();
  if (saved === undefined) delete process.env.AWS_ENDPOINT_URL;
  else process.env.AWS_ENDPOINT_URL = saved;
});
afterEach(() => {
  aws.resetCalls();
  aws.clockOffsetMs = 0;
  aws.responseAgeSeconds = undefined;
  aws.clearFaults();
});

const answers = () =>
  aws
    .calls({ service: "ecr" })
    .map((c) => `${c.accessKeyId} ${c.status} ${c.errorCode ?? ""}`.trim());

describe("TokenClients", () => {
  it("corrects a 20-minute skew with one retry, and keeps the correction", async () => {
    aws.clockOffsetMs = 20 * MINUTE;
    const clients = new TokenClients({ timeoutMs: 2_000 });
    try {
      const first = await clients.fetch("k", "ecr", "us-east-1", async () => A);
      expect(aws.isValidPassword(first.password)).toBe(true);
      expect(answers()).toEqual([
        `${A.accessKeyId} 400 InvalidSignatureException`,
        `${A.accessKeyId} 200`,
      ]);
      expect(Math.abs(clients.clockOffsetMs("k") - 20 * MINUTE)).toBeLessThan(2_000);
      aws.resetCalls();
      await clients.fetch("k", "ecr", "us-east-1", async () => A);
      expect(answers()).toEqual([`${A.accessKeyId} 200`]);
    } finally {
      clients.close();
    }
  });

  it("retries nothing else: a throttled call is the token cache's to retry", async () => {
    aws.throttle({ service: "ecr", times: 1 });
    const clients = new TokenClients({ timeoutMs: 2_000 });
    try {
      await expect(clients.fetch("k", "ecr", "us-east-1", async () => A)).rejects.toMatchObject({
        name: "ThrottlingException",
      });
      expect(answers()).toEqual([`${A.accessKeyId} 400 ThrottlingException`]);
    } finally {
      clients.close();
    }
  });

  it("signs each fetch with that fetch's credentials (rotated keys, same client)", async () => {
    const clients = new TokenClients({ timeoutMs: 2_000 });
    try {
      await clients.fetch("k", "ecr", "us-east-1", async () => A);
      await clients.fetch("k", "ecr", "us-east-1", async () => B);
      expect(answers()).toEqual([`${A.accessKeyId} 200`, `${B.accessKeyId} 200`]);
    } finally {
      clients.close();
    }
  });

  it("skew the SDK cannot correct is ClockSkew with the offset from the Date header", async () => {
    aws.clockOffsetMs = -20 * MINUTE;
    aws.responseAgeSeconds = 0;
    const clients = new TokenClients({ timeoutMs: 2_000 });
    try {
      const err = await clients.fetch("k", "ecr", "us-east-1", async () => A).catch((e) => e);
      const classified = classifyAwsError(err, "the keys", "get an ECR token in us-east-1");
      expect(classified.reason).toBe("ClockSkew");
      expect(classified.message).toMatch(
        /^failed to get an ECR token in us-east-1: AWS refused the request as signed at the wrong time: AWS's clock is about 20 min behind this host's \(from the Date header of its answer\); InvalidSignatureException: Signature not yet current: /,
      );
      expect(answers()).toEqual([`${A.accessKeyId} 400 InvalidSignatureException`]);
    } finally {
      clients.close();
    }
  });
});
