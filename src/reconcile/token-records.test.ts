import { describe, expect, it } from "vitest";
import { sourceDigest } from "../aws/registries.js";
import type { TokenSource } from "../aws/token-cache.js";
import {
  MAX_TOKEN_LIFETIME_MS,
  recordedToken,
  recordScope,
  TOKEN_RECORD_KEY,
} from "./token-records.js";

const source: TokenSource = {
  credentials: { kind: "secretKeys", secretRef: { namespace: "ops", name: "aws-creds" } },
  service: "ecr",
  region: "us-east-1",
};
const other: TokenSource = { ...source, region: "eu-west-1" };
const NOW = Date.parse("2026-12-07T12:00:00Z");

function record(body: Record<string, unknown>) {
  return { data: { [TOKEN_RECORD_KEY]: Buffer.from(JSON.stringify(body)).toString("base64") } };
}

const good = {
  source: sourceDigest(source),
  username: "AWS",
  password: "issued",
  fetchedAt: new Date(NOW - 3_600_000).toISOString(),
  expiresAt: new Date(NOW + 11 * 3_600_000).toISOString(),
};

describe("recordedToken", () => {
  it("takes up a whole record of this source as a reused token", () => {
    expect(recordedToken(record(good), source, NOW)).toEqual({
      username: "AWS",
      password: "issued",
      fetchedAt: new Date(good.fetchedAt),
      expiresAt: new Date(good.expiresAt),
      reused: true,
    });
  });

  it("believes no record of another source, outside ECR's 12 hours, from the future, or torn", () => {
    expect(recordedToken(record(good), other, NOW)).toBeUndefined();
    const longLived = { ...good, expiresAt: "2099-01-01T00:00:00Z" };
    expect(recordedToken(record(longLived), source, NOW)).toBeUndefined();
    const justOver = new Date(NOW - 3_600_000 + MAX_TOKEN_LIFETIME_MS + 6 * 60_000).toISOString();
    expect(recordedToken(record({ ...good, expiresAt: justOver }), source, NOW)).toBeUndefined();
    const future = { ...good, fetchedAt: new Date(NOW + 3_600_000).toISOString() };
    expect(recordedToken(record(future), source, NOW)).toBeUndefined();
    expect(recordedToken(record({ ...good, password: "" }), source, NOW)).toBeUndefined();
    expect(
      recordedToken({ data: { [TOKEN_RECORD_KEY]: "bm90IGpzb24=" } }, source, NOW),
    ).toBeUndefined();
    expect(recordedToken(undefined, source, NOW)).toBeUndefined();
  });

  it("believes no record made under another AWS environment (endpoint, the default chain's identity)", () => {
    const scope = recordScope({ AWS_ROLE_ARN: "arn:aws:iam::111122223333:role/a" });
    const other = recordScope({ AWS_ROLE_ARN: "arn:aws:iam::111122223333:role/b" });
    expect(scope).not.toBe(other);
    expect(recordedToken(record({ ...good, scope }), source, NOW, { scope })?.password).toBe(
      "issued",
    );
    expect(
      recordedToken(record({ ...good, scope }), source, NOW, { scope: other }),
    ).toBeUndefined();
    expect(recordedToken(record(good), source, NOW, { scope })).toBeUndefined();
  });

  it("gives an expired token only when asked for what a failing source keeps", () => {
    const expired = {
      ...good,
      fetchedAt: new Date(NOW - 13 * 3_600_000).toISOString(),
      expiresAt: new Date(NOW - 3_600_000).toISOString(),
    };
    expect(recordedToken(record(expired), source, NOW)).toBeUndefined();
    expect(recordedToken(record(expired), source, NOW, { expired: true })?.password).toBe("issued");
  });
});
