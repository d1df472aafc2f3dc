import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { describe, expect, it } from "vitest";
import { AwsDouble } from "./aws-double.js";
import { alice, startDoubleForTests } from "./fixtures.js";

const aws = startDoubleForTests({ identities: [alice] });
const ecr = (options: { maxAttempts?: number; requestTimeout?: number } = {}): ECRClient =>
  new ECRClient({
    endpoint: aws.url,
    region: "us-west-2",
    credentials: alice,
    maxAttempts: options.maxAttempts ?? 1,
    // Without throwOnRequestTimeout the handler only logs a warning and keeps waiting.
    requestHandler: {
      requestTimeout: options.requestTimeout ?? 5_000,
      throwOnRequestTimeout: true,
    },
  });
const sts = (): STSClient =>
  new STSClient({ endpoint: aws.url, region: "us-east-1", credentials: alice, maxAttempts: 1 });
const getToken = (client = ecr()) => client.send(new GetAuthorizationTokenCommand({}));

describe("AWS double: faults that fail calls", () => {
  it("throttles with the exception names ECR and STS use", async () => {
    aws.throttle();
    await expect(getToken()).rejects.toMatchObject({
      name: "ThrottlingException",
      $metadata: { httpStatusCode: 400 },
    });
    await expect(sts().send(new GetCallerIdentityCommand({}))).rejects.toMatchObject({
      name: "Throttling",
      $metadata: { httpStatusCode: 400 },
    });
  });

  it("fails with 5xx: ServerException from ECR, ServiceUnavailable from STS", async () => {
    const fault = aws.error5xx({ service: "ecr" });
    await expect(getToken()).rejects.toMatchObject({
      name: "ServerException",
      $metadata: { httpStatusCode: 500 },
    });
    // Scoped to ECR: STS still answers.
    await expect(sts().send(new GetCallerIdentityCommand({}))).resolves.toBeDefined();
    fault.clear();
    await expect(getToken()).resolves.toBeDefined();

    aws.error5xx({ service: "sts", action: "GetCallerIdentity" });
    await expect(sts().send(new GetCallerIdentityCommand({}))).rejects.toMatchObject({
      name: "ServiceUnavailable",
      $metadata: { httpStatusCode: 503 },
    });
  });

  it("refuses keys on command", async () => {
    aws.refuse({ service: "ecr" });
    await expect(getToken()).rejects.toMatchObject({ name: "UnrecognizedClientException" });
    aws.refuse({ service: "sts" });
    await expect(sts().send(new GetCallerIdentityCommand({}))).rejects.toMatchObject({
      name: "InvalidClientTokenId",
    });
  });

  it("fails the next N calls then recovers; the SDK's retries get through", async () => {
    const fault = aws.failNext(2, { service: "ecr" });
    const out = await getToken(ecr({ maxAttempts: 3 }));
    expect(out.authorizationData).toHaveLength(1);
    expect(fault.remaining).toBe(0);
    expect(aws.calls().map((c) => c.status)).toEqual([500, 500, 200]);

    aws.resetCalls();
    aws.failNext(1, { fault: "throttle" });
    await expect(getToken()).rejects.toMatchObject({ name: "ThrottlingException" });
    await expect(getToken()).resolves.toBeDefined();
    expect(aws.calls().map((c) => c.errorCode ?? "ok")).toEqual(["ThrottlingException", "ok"]);
  });
});

describe("AWS double: faults in tokens and timing", () => {
  it("issues already-expired tokens on command", async () => {
    aws.expiredTokens({ service: "ecr", times: 1 });
    const out = await getToken();
    const data = out.authorizationData?.[0];
    expect(data?.expiresAt?.getTime()).toBeLessThan(Date.now());
    const password = Buffer.from(data?.authorizationToken ?? "", "base64")
      .toString()
      .slice(4);
    expect(aws.isValidPassword(password)).toBe(false);
    const next = await getToken();
    expect(next.authorizationData?.[0]?.expiresAt?.getTime()).toBeGreaterThan(Date.now());
  });

  it("delays answers", async () => {
    aws.delay(300, { service: "ecr" });
    const started = Date.now();
    await getToken();
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it("hangs until the SDK's request timeout fires, and answers once cleared", async () => {
    const fault = aws.hang({ service: "ecr" });
    const started = Date.now();
    await expect(getToken(ecr({ requestTimeout: 300 }))).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(Date.now() - started).toBeLessThan(3_000);
    // The double notices the client left and records the call with status 0.
    await expect.poll(() => aws.calls({ status: 0 })).toHaveLength(1);

    const pending = getToken(ecr({ requestTimeout: 5_000 }));
    await new Promise((r) => setTimeout(r, 200));
    expect(aws.calls({ status: 200 })).toHaveLength(0);
    fault.clear();
    await expect(pending).resolves.toBeDefined();
  });

  it("close() ends hung requests", async () => {
    const other = new AwsDouble({ identities: [alice] });
    const { url: otherUrl } = await other.start();
    other.hang();
    const client = new ECRClient({
      endpoint: otherUrl,
      region: "us-west-2",
      credentials: alice,
      maxAttempts: 1,
    });
    const pending = client.send(new GetAuthorizationTokenCommand({}));
    await new Promise((r) => setTimeout(r, 200));
    await other.close();
    await expect(pending).rejects.toBeDefined();
  });
});
