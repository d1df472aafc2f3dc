// The GetAuthorizationToken limiter: which account a call is charged to
// before and after the identity is known, and the rate it holds.
import { describe, expect, it } from "vitest";
import { AwsQuota, accountOfProxyEndpoint, accountOfRoleArn } from "./quota.js";
import type { RegistryToken } from "./token.js";

const keys = (name: string) => ({
  credentials: { kind: "secretKeys" as const, secretRef: { namespace: "ops", name } },
  service: "ecr" as const,
  region: "us-east-1",
});

const tokenFor = (endpoint?: string): RegistryToken => ({
  username: "AWS",
  password: "pw",
  expiresAt: new Date(Date.now() + 60_000),
  fetchedAt: new Date(),
  ...(endpoint ? { proxyEndpoint: endpoint } : {}),
});

describe("AwsQuota: which account a call is charged to", () => {
  it("reads accounts from role ARNs and proxy endpoints, nothing else", () => {
    expect(accountOfRoleArn("arn:aws:iam::111122223333:role/pull")).toBe("111122223333");
    expect(accountOfRoleArn("arn:aws-cn:iam::111122223333:role/a/b")).toBe("111122223333");
    expect(accountOfRoleArn("arn:aws:iam::111122223333:user/me")).toBeUndefined();
    expect(accountOfProxyEndpoint("https://444455556666.dkr.ecr.eu-west-1.amazonaws.com")).toBe(
      "444455556666",
    );
    expect(accountOfProxyEndpoint("https://444455556666.dkr-ecr.eu-west-1.on.aws")).toBe(
      "444455556666",
    );
    expect(accountOfProxyEndpoint("http://127.0.0.1:5000")).toBeUndefined();
    expect(accountOfProxyEndpoint(undefined)).toBeUndefined();
  });

  it("charges a role to its ARN's account, unknown keys to one shared bucket, then to the identity a token named", () => {
    const quota = new AwsQuota({ qps: 10, burst: 50 });
    const role = {
      ...keys("a"),
      credentials: {
        ...keys("a").credentials,
        role: { roleArn: "arn:aws:iam::111122223333:role/pull" },
      },
    };
    expect(quota.keyOf(role)).toBe("ecr|111122223333|us-east-1");
    // Keys of unknown accounts share a bucket per region: the safe guess.
    expect(quota.keyOf(keys("a"))).toBe("ecr|unknown|us-east-1");
    expect(quota.keyOf(keys("b"))).toBe("ecr|unknown|us-east-1");
    expect(quota.keyOf({ ...keys("a"), region: "eu-west-1" })).toBe("ecr|unknown|eu-west-1");
    quota.learn(keys("a"), tokenFor("https://444455556666.dkr.ecr.us-east-1.amazonaws.com"));
    expect(quota.keyOf(keys("a"))).toBe("ecr|444455556666|us-east-1");
    expect(quota.keyOf(keys("b"))).toBe("ecr|unknown|us-east-1");
    // An endpoint without an account teaches nothing; a role is never re-keyed.
    quota.learn(keys("b"), tokenFor("http://127.0.0.1:5000"));
    expect(quota.keyOf(keys("b"))).toBe("ecr|unknown|us-east-1");
    quota.learn(role, tokenFor("https://999999999999.dkr.ecr.us-east-1.amazonaws.com"));
    expect(quota.keyOf(role)).toBe("ecr|111122223333|us-east-1");
    // Web identity: the call is made as its role, whatever chain keys learnt.
    const web = {
      ...keys("a"),
      credentials: {
        kind: "webIdentity" as const,
        webIdentity: { roleArn: "arn:aws:iam::777788889999:role/web" },
      },
    };
    expect(quota.keyOf(web)).toBe("ecr|777788889999|us-east-1");
    const chain = { ...keys("a"), credentials: { kind: "defaultChain" as const } };
    quota.learn(chain, tokenFor("https://222233334444.dkr.ecr.us-east-1.amazonaws.com"));
    expect(quota.keyOf(chain)).toBe("ecr|222233334444|us-east-1");
    expect(quota.keyOf(web)).toBe("ecr|777788889999|us-east-1");
    // A registry account in the spec is not the caller's: ECR Public is its own quota.
    expect(quota.keyOf({ ...keys("a"), service: "ecr-public" })).toBe(
      "ecr-public|444455556666|us-east-1",
    );
  });
});

describe("AwsQuota: the rate it holds", () => {
  it("lets a burst through at once, then holds the rate per bucket, not across buckets", async () => {
    const quota = new AwsQuota({ qps: 20, burst: 5 });
    const start = performance.now();
    const times: number[] = [];
    const other = { ...keys("x"), region: "eu-west-1" };
    const otherTimes: number[] = [];
    await Promise.all([
      ...Array.from({ length: 15 }, (_, i) =>
        quota.take(keys(`s${i}`)).then(() => times.push(performance.now() - start)),
      ),
      ...Array.from({ length: 5 }, () =>
        quota.take(other).then(() => otherTimes.push(performance.now() - start)),
      ),
    ]);
    // 5 at once, 10 more at 20/s: ~500 ms; the other region's 5 go at once.
    expect(times.slice(0, 5).every((t) => t < 50)).toBe(true);
    expect(times.at(-1)).toBeGreaterThanOrEqual(450);
    expect(otherTimes.every((t) => t < 50)).toBe(true);
  });

  it("gives no account a second burst when its sources move from unknown to their learnt account", async () => {
    const quota = new AwsQuota({ qps: 20, burst: 5 });
    const start = performance.now();
    const at = () => performance.now() - start;
    // The unknown bucket's burst: five sources of one account, not known yet.
    const first = await Promise.all(
      Array.from({ length: 5 }, (_, i) => quota.take(keys(`s${i}`)).then(at)),
    );
    expect(first.every((t) => t < 50)).toBe(true);
    // Their tokens name the account: its bucket remembers the five already spent.
    for (let i = 0; i < 5; i++) {
      quota.learn(keys(`s${i}`), tokenFor("https://444455556666.dkr.ecr.us-east-1.amazonaws.com"));
    }
    const again = await Promise.all(
      Array.from({ length: 5 }, (_, i) => quota.take(keys(`s${i}`)).then(at)),
    );
    // Five more at 20/s: ~250 ms, not at once (a fresh burst would be 10 in a moment).
    expect(again.at(-1)).toBeGreaterThanOrEqual(200);
  });

  it("holds a call of unknown account to every known account's bucket of its region, and only those", async () => {
    const quota = new AwsQuota({ qps: 20, burst: 5 });
    quota.learn(keys("known"), tokenFor("https://444455556666.dkr.ecr.us-east-1.amazonaws.com"));
    const start = performance.now();
    const at = () => performance.now() - start;
    const known = await Promise.all(
      Array.from({ length: 5 }, () => quota.take(keys("known")).then(at)),
    );
    expect(known.every((t) => t < 50)).toBe(true);
    // The account's burst is spent: an unknown source may be that account, so it waits…
    const [unknown, otherRegion, otherService] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, (_, i) => quota.take(keys(`u${i}`)).then(at))),
      // …while another region's and ECR Public's quotas are not touched.
      Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          quota.take({ ...keys(`r${i}`), region: "eu-west-1" }).then(at),
        ),
      ),
      Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          quota.take({ ...keys(`p${i}`), service: "ecr-public" as const }).then(at),
        ),
      ),
    ]);
    expect(unknown.at(-1)).toBeGreaterThanOrEqual(200);
    expect(otherRegion.every((t) => t < 50)).toBe(true);
    expect(otherService.every((t) => t < 50)).toBe(true);
  });

  it("does not limit with qps 0", async () => {
    const quota = new AwsQuota({ qps: 0, burst: 1 });
    const start = performance.now();
    await Promise.all(Array.from({ length: 500 }, () => quota.take(keys("a"))));
    expect(performance.now() - start).toBeLessThan(100);
  });
});
