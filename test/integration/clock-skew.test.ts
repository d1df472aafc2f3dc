// A skewed clock: the AWS double's clock runs 20 minutes ahead of this
// machine's and, like AWS, refuses requests signed more than 5 minutes away
// from its own time ("Signature expired"), answering with its own Date
// header. The operator's long-lived SDK client learns the offset from that
// answer and its one corrected retry gets the token; later fetches are right
// the first time. Where the correction cannot apply (a caching middlebox adds
// Age, so the SDK distrusts the Date header), Ready says ClockSkew with the
// offset measured from the Date header, never "replace the keys".
// Before: every call refused, Ready=False CredentialsInvalid.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
import { type Stack, startStack } from "../harness/stack.js";

const OPS = "skew-ops";
const ACCOUNT = "250000000001";
const MINUTE = 60_000;
const keys = (n: number) => ({
  accessKeyId: `AKIASKEW000000000${String(n).padStart(3, "0")}`,
  secretAccessKey: `skew-secret-${"0".repeat(27)}${n}`,
});
const FIXABLE = keys(1);
const UNFIXABLE = keys(2);

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: ["skew-a"],
    tokenLifetimeMs: 6_000,
    maxClockSkewMs: 5 * MINUTE,
    identities: [FIXABLE, UNFIXABLE].map((id, i) => ({
      ...id,
      accountId: ACCOUNT,
      arn: `arn:aws:iam::${ACCOUNT}:user/skew-${i}`,
    })),
    // Each resource names its own credentials Secret.
    credentials: false,
  });
  ({ k, aws } = stack);
  aws.clockOffsetMs = 20 * MINUTE;
  stack.resources.push("skew-fixable", "skew-unfixable");
  await stack.putKeys("fixable", FIXABLE);
  await stack.putKeys("unfixable", UNFIXABLE);
  await stack.startOperator();
});

afterAll(async () => {
  await stack?.stop();
});

const spec = (secret: string) => ({
  secretName: `ecr-${secret}`,
  namespaces: ["skew-a"],
  serviceAccounts: [],
  region: "us-east-1",
  credentials: { secretRef: { namespace: OPS, name: secret } },
  registries: [{ accountId: ACCOUNT }],
});

const callsOf = (id: { accessKeyId: string }) =>
  aws
    .calls({ service: "ecr", action: "GetAuthorizationToken", accessKeyId: id.accessKeyId })
    .map((c) => `${c.status} ${c.errorCode ?? ""}`.trim());

describe("clock skew", () => {
  it("20 minutes: the SDK corrects its clock and the one retry gets the token", async () => {
    await applyResource(k, "skew-fixable", spec("fixable"));
    const secret = await waitFor("Secret skew-a/ecr-fixable", () =>
      readSecret(k, "skew-a", "ecr-fixable"),
    );
    const host = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
    const password = dockerConfigOf(secret).auths[host]?.password;
    expect(aws.issued().find((t) => t.password === password)?.principalArn).toBe(
      `arn:aws:iam::${ACCOUNT}:user/skew-0`,
    );
    // Refused once as signed 20 minutes in AWS's past, then right.
    expect(callsOf(FIXABLE)).toEqual(["400 InvalidSignatureException", "200"]);
    const r = await getResource(k, "skew-fixable");
    expect(readyCondition(r)).toMatchObject({ status: "True", reason: "Synced" });
    // The client lives on with what it learnt: the next refreshes (6 s
    // tokens) are right the first time.
    await waitFor(
      "two more refreshes",
      async () => (callsOf(FIXABLE).length >= 4 ? true : undefined),
      {
        timeoutMs: 30_000,
      },
    );
    expect(
      callsOf(FIXABLE)
        .slice(2)
        .every((c) => c === "200"),
    ).toBe(true);
  });

  it("beyond correction: Ready=False ClockSkew with the measured offset, not CredentialsInvalid", async () => {
    // A caching middlebox's Age header: the SDK no longer trusts the Date.
    aws.responseAgeSeconds = 0;
    try {
      await applyResource(k, "skew-unfixable", spec("unfixable"));
      const ready = await waitFor("skew-unfixable Ready=False", async () => {
        const c = readyCondition(await getResource(k, "skew-unfixable"));
        return c?.status === "False" && c.reason !== "Progressing" ? c : undefined;
      });
      expect(ready.reason).toBe("ClockSkew");
      expect(ready.message).toMatch(
        /^failed to get an ECR token in us-east-1: AWS refused the request as signed at the wrong time: AWS's clock is about 20 min ahead of this host's \(from the Date header of its answer\); InvalidSignatureException: Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\); set this host's clock right \(NTP, chrony\); the keys are not at fault$/,
      );
      expect(ready.message).not.toContain("replace them");
      expect(await readSecret(k, "skew-a", "ecr-unfixable")).toBeUndefined();
      expect(callsOf(UNFIXABLE).every((c) => c === "400 InvalidSignatureException")).toBe(true);
    } finally {
      aws.responseAgeSeconds = undefined;
    }
  });
});
