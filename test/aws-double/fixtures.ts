// Shared by the double's own unit tests (and the integration tests' trust
// policies): one signer, a double started once per test file and reset
// before each test, and the trust policy of a chained role.
import { afterAll, beforeAll, beforeEach } from "vitest";
import { AwsDouble } from "./aws-double.js";
import type { AwsDoubleOptions, IdentityInit, TrustPolicy } from "./types.js";

/** The account the unit tests' signer belongs to. */
export const ALICE_ACCOUNT = "123456789012";

/** An IAM user with long-lived keys: the signer of most unit tests' calls. */
export const alice = {
  accessKeyId: "AKIAALICE0000000001",
  secretAccessKey: "alice-secret-key",
  accountId: ALICE_ACCOUNT,
  arn: `arn:aws:iam::${ALICE_ACCOUNT}:user/alice`,
} satisfies IdentityInit;

/**
 * A double built from `options`, started before the file's tests (its URL is
 * `aws.url` from then on), closed after them, and with its faults and call
 * log cleared before each test. Call at a test file's top level or inside a
 * describe; the hooks are registered there.
 */
export function startDoubleForTests(options: AwsDoubleOptions = {}): AwsDouble {
  const aws = new AwsDouble(options);
  beforeAll(async () => {
    await aws.start();
  });
  afterAll(async () => {
    await aws.close();
  });
  beforeEach(() => {
    aws.clearFaults();
    aws.resetCalls();
  });
  return aws;
}

/**
 * The trust policy of a role chained from `principalArn`: AssumeRole (with
 * session tags) only with `externalId` and exactly the request tags `tags`
 * (tag key → value).
 */
export function chainedRoleTrust(
  principalArn: string,
  externalId: string,
  tags: Record<string, string>,
): TrustPolicy {
  const requestTags = Object.fromEntries(
    Object.entries(tags).map(([key, value]) => [`aws:RequestTag/${key}`, value]),
  );
  return {
    Statement: [
      {
        Effect: "Allow",
        Principal: { AWS: principalArn },
        Action: ["sts:AssumeRole", "sts:TagSession"],
        Condition: { StringEquals: { "sts:ExternalId": externalId, ...requestTags } },
      },
    ],
  };
}
