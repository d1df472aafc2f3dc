import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import {
  ECRPUBLICClient,
  GetAuthorizationTokenCommand as GetPublicAuthorizationTokenCommand,
} from "@aws-sdk/client-ecr-public";
import { beforeEach, describe, expect, it } from "vitest";
import { ALICE_ACCOUNT as ACCOUNT, alice, startDoubleForTests } from "./fixtures.js";

function decodePassword(token: string | undefined): string {
  const decoded = Buffer.from(token ?? "", "base64").toString("utf8");
  expect(decoded.startsWith("AWS:")).toBe(true);
  return decoded.slice("AWS:".length);
}

const aws = startDoubleForTests({ identities: [alice] });

const ecr = (
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = alice,
  region = "eu-west-1",
): ECRClient => new ECRClient({ endpoint: aws.url, region, credentials, maxAttempts: 1 });

beforeEach(() => {
  aws.tokenLifetimeMs = 12 * 3_600_000;
});

describe("AWS double: ECR tokens", () => {
  it("issues a fresh unique password per call, with the configured lifetime", async () => {
    const before = Date.now();
    const first = await ecr().send(new GetAuthorizationTokenCommand({}));
    const second = await ecr().send(new GetAuthorizationTokenCommand({}));
    const data = first.authorizationData?.[0];
    expect(data?.proxyEndpoint).toBe(`https://${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com`);
    const password = decodePassword(data?.authorizationToken);
    const other = decodePassword(second.authorizationData?.[0]?.authorizationToken);
    expect(password).not.toBe(other);

    const issued = aws.issued().find((t) => t.password === password);
    expect(issued).toMatchObject({
      service: "ecr",
      username: "AWS",
      region: "eu-west-1",
      accountId: ACCOUNT,
      principalArn: alice.arn,
    });
    // The SDK turns epoch seconds into a Date: same instant as recorded, 12 h away.
    expect(data?.expiresAt?.getTime()).toBe(issued?.expiresAt.getTime());
    const lifetime = (data?.expiresAt?.getTime() ?? 0) - before;
    expect(lifetime).toBeGreaterThan(12 * 3_600_000 - 5_000);
    expect(lifetime).toBeLessThanOrEqual(12 * 3_600_000 + 5_000);
    expect(aws.isValidPassword(password)).toBe(true);
    expect(aws.isValidPassword(password, new Date(Date.now() + 13 * 3_600_000))).toBe(false);
    expect(aws.isValidPassword("never-issued")).toBe(false);

    expect(
      aws.calls({ service: "ecr", action: "GetAuthorizationToken", status: 200 }),
    ).toHaveLength(2);
    expect(aws.calls()[0]).toMatchObject({
      region: "eu-west-1",
      accessKeyId: alice.accessKeyId,
      principalArn: alice.arn,
    });
  });

  it("uses a lifetime changed at runtime", async () => {
    aws.tokenLifetimeMs = 60_000;
    const before = Date.now();
    const out = await ecr().send(new GetAuthorizationTokenCommand({}));
    const expiresAt = out.authorizationData?.[0]?.expiresAt?.getTime() ?? 0;
    expect(expiresAt - before).toBeGreaterThan(55_000);
    expect(expiresAt - before).toBeLessThanOrEqual(65_000);
  });

  it("answers one entry per requested registry id", async () => {
    const out = await ecr().send(
      new GetAuthorizationTokenCommand({ registryIds: ["111111111111", "222222222222"] }),
    );
    expect(out.authorizationData?.map((d) => d.proxyEndpoint)).toEqual([
      "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com",
      "https://222222222222.dkr.ecr.eu-west-1.amazonaws.com",
    ]);
  });
});

describe("AWS double: ECR refusals, ECR Public and endpoint settings", () => {
  it("refuses unknown keys, bad signatures and denied principals like ECR", async () => {
    const issuedBefore = aws.issued().length;
    await expect(
      ecr({ accessKeyId: "AKIAUNKNOWN", secretAccessKey: "x" }).send(
        new GetAuthorizationTokenCommand({}),
      ),
    ).rejects.toMatchObject({
      name: "UnrecognizedClientException",
      message: "The security token included in the request is invalid.",
      $metadata: { httpStatusCode: 400 },
    });
    await expect(
      ecr({ ...alice, secretAccessKey: "tampered" }).send(new GetAuthorizationTokenCommand({})),
    ).rejects.toMatchObject({ name: "InvalidSignatureException" });
    await expect(
      ecr({ ...alice, sessionToken: "not-a-session" }).send(new GetAuthorizationTokenCommand({})),
    ).rejects.toMatchObject({ name: "UnrecognizedClientException" });

    aws.denyEcr(alice.arn);
    try {
      await expect(ecr().send(new GetAuthorizationTokenCommand({}))).rejects.toMatchObject({
        name: "AccessDeniedException",
        message: expect.stringContaining("ecr:GetAuthorizationToken"),
      });
    } finally {
      aws.allowEcr(alice.arn);
    }
    expect(aws.calls().map((c) => c.errorCode)).toEqual([
      "UnrecognizedClientException",
      "InvalidSignatureException",
      "UnrecognizedClientException",
      "AccessDeniedException",
    ]);
    expect(aws.issued()).toHaveLength(issuedBefore);
  });

  it("rejects a signature from a skewed clock", async () => {
    const skewed = new ECRClient({
      endpoint: aws.url,
      region: "us-east-1",
      credentials: alice,
      maxAttempts: 1,
      systemClockOffset: -20 * 60_000,
    });
    await expect(skewed.send(new GetAuthorizationTokenCommand({}))).rejects.toMatchObject({
      name: "InvalidSignatureException",
      message: expect.stringContaining("Signature expired"),
    });
  });

  it("serves ECR Public in us-east-1 only", async () => {
    const pub = (region: string): ECRPUBLICClient =>
      new ECRPUBLICClient({ endpoint: aws.url, region, credentials: alice, maxAttempts: 1 });
    const before = Date.now();
    const out = await pub("us-east-1").send(new GetPublicAuthorizationTokenCommand({}));
    const password = decodePassword(out.authorizationData?.authorizationToken);
    expect(aws.isValidPassword(password)).toBe(true);
    expect(aws.issued().find((t) => t.password === password)).toMatchObject({
      service: "ecr-public",
      region: "us-east-1",
    });
    const lifetime = (out.authorizationData?.expiresAt?.getTime() ?? 0) - before;
    expect(Math.abs(lifetime - 12 * 3_600_000)).toBeLessThan(5_000);

    await expect(
      pub("eu-west-1").send(new GetPublicAuthorizationTokenCommand({})),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 400 } });
    expect(aws.calls({ service: "ecr-public" }).map((c) => c.status)).toEqual([200, 400]);
  });

  it("works through AWS_ENDPOINT_URL_ECR without an endpoint in the config", async () => {
    const saved = process.env.AWS_ENDPOINT_URL_ECR;
    process.env.AWS_ENDPOINT_URL_ECR = aws.url;
    try {
      const client = new ECRClient({ region: "ap-south-1", credentials: alice });
      const out = await client.send(new GetAuthorizationTokenCommand({}));
      expect(out.authorizationData?.[0]?.proxyEndpoint).toBe(
        `https://${ACCOUNT}.dkr.ecr.ap-south-1.amazonaws.com`,
      );
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_ECR;
      else process.env.AWS_ENDPOINT_URL_ECR = saved;
    }
  });
});
