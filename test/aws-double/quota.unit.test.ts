// The double's GetAuthorizationToken quota: a token bucket per (service,
// account of the caller, region), ThrottlingException past it.
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AwsDouble } from "./aws-double.js";

const user = (name: string, accountId: string) => ({
  accessKeyId: `AKIA${name.toUpperCase().padEnd(16, "0")}`,
  secretAccessKey: `${name}-secret-key`,
  accountId,
  arn: `arn:aws:iam::${accountId}:user/${name}`,
});
const alice = user("alice", "111111111111");
const bob = user("bob", "111111111111");
const carol = user("carol", "222222222222");

describe("AWS double: GetAuthorizationToken quota", () => {
  const aws = new AwsDouble({
    identities: [alice, bob, carol],
    quota: { ratePerSecond: 1, burst: 5 },
  });
  let url = "";
  const getToken = (credentials: typeof alice, region = "us-east-1") =>
    new ECRClient({ endpoint: url, region, credentials, maxAttempts: 1 })
      .send(new GetAuthorizationTokenCommand({}))
      .then(
        () => "ok",
        (err: { name: string }) => err.name,
      );

  beforeAll(async () => {
    ({ url } = await aws.start());
  });
  afterAll(async () => {
    await aws.close();
  });

  it("throttles past the burst per account and region, and refills at the rate", async () => {
    // Alice and Bob share account 1111's bucket: 5 pass, the 6th is throttled.
    const first = await Promise.all([
      ...Array.from({ length: 3 }, () => getToken(alice)),
      ...Array.from({ length: 3 }, () => getToken(bob)),
    ]);
    expect(first.filter((r) => r === "ok")).toHaveLength(5);
    expect(first.filter((r) => r === "ThrottlingException")).toHaveLength(1);
    // Another account, another region: their own buckets.
    expect(await getToken(carol)).toBe("ok");
    expect(await getToken(alice, "eu-west-1")).toBe("ok");
    // One a second: after 1.1 s one more fits, the next is throttled again.
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await getToken(alice)).toBe("ok");
    const again = await Promise.all(Array.from({ length: 5 }, () => getToken(alice)));
    expect(again).toContain("ThrottlingException");
    const throttled = aws.calls({ errorCode: "ThrottlingException" });
    expect(throttled.length).toBeGreaterThanOrEqual(1);
    expect(throttled.every((c) => c.status === 400 && c.action === "GetAuthorizationToken")).toBe(
      true,
    );
    // Turned off: no limit.
    aws.quota = undefined;
    const free = await Promise.all(Array.from({ length: 20 }, () => getToken(alice)));
    expect(free.every((r) => r === "ok")).toBe(true);
  });
});
