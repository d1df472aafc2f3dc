// The IAM Roles Anywhere double checked against AWS's own implementation: the
// rolesanywhere-credential-helper, built from its Go module
// (scripts/build-rolesanywhere-helper.sh), run as `credential-process` against
// the double. What it signs, the double must accept, and its sessions must open
// the ECR double; what the service refuses (another CA, an expired
// certificate, a bad signature, a role the profile does not list) the double
// refuses in the service's error shape. Then the operator's own signer
// (src/aws/roles-anywhere.ts) against the same double.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createSession,
  signX509Request,
  x509IdentityFromSecret,
} from "../../src/aws/roles-anywhere.js";
import { AwsDouble } from "./aws-double.js";
import {
  type Ca,
  type Issued,
  intermediate,
  issue,
  makeCa,
  tlsSecretData,
} from "./roles-anywhere-pki.js";

const helper = join(import.meta.dirname, "../../.cache/rolesanywhere-helper/aws_signing_helper");
const ACCOUNT = "123456789012";
const REGION = "us-east-1";
const TRUST_ANCHOR = `arn:aws:rolesanywhere:${REGION}:${ACCOUNT}:trust-anchor/0a1b2c3d-0000-4000-8000-000000000001`;
const PROFILE = `arn:aws:rolesanywhere:${REGION}:${ACCOUNT}:profile/0a1b2c3d-0000-4000-8000-000000000002`;
const ROLE = `arn:aws:iam::${ACCOUNT}:role/ra-pull`;
const UNLISTED_ROLE = `arn:aws:iam::${ACCOUNT}:role/ra-other`;

interface HelperResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runHelper(args: string[]): Promise<HelperResult> {
  return new Promise((resolve) => {
    execFile(
      helper,
      ["credential-process", ...args],
      {
        timeout: 20_000,
        // Nothing of this machine's AWS setup may reach AWS's helper.
        env: {
          PATH: process.env.PATH ?? "",
          HOME: tmpdir(),
          AWS_CONFIG_FILE: "/dev/null",
          AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
        },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const aws = new AwsDouble();
let dir = "";
let ca: Ca;
let sub: Ca;
let otherCa: Ca;

const helperArgs = (leaf: Issued, chain?: Issued, role = ROLE): string[] => [
  "--certificate",
  leaf.certPath,
  "--private-key",
  leaf.keyPath,
  ...(chain ? ["--intermediates", chain.certPath] : []),
  "--trust-anchor-arn",
  TRUST_ANCHOR,
  "--profile-arn",
  PROFILE,
  "--role-arn",
  role,
  "--endpoint",
  aws.url,
  "--session-duration",
  "1800",
];

/** The ECR token the session's keys get, and who the ECR double issued it to. */
const ecrTokenWith = async (keys: {
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken: string;
}) => {
  const ecr = new ECRClient({
    endpoint: aws.url,
    region: REGION,
    maxAttempts: 1,
    credentials: {
      accessKeyId: keys.AccessKeyId,
      secretAccessKey: keys.SecretAccessKey,
      sessionToken: keys.SessionToken,
    },
  });
  try {
    const out = await ecr.send(new GetAuthorizationTokenCommand({}));
    const token = out.authorizationData?.[0]?.authorizationToken ?? "";
    const password = Buffer.from(token, "base64").toString("utf8").replace(/^AWS:/, "");
    return aws.issued().find((t) => t.password === password);
  } finally {
    ecr.destroy();
  }
};

beforeAll(async () => {
  if (!existsSync(helper)) {
    throw new Error(
      `failed to find AWS's rolesanywhere-credential-helper at ${helper}; run bash scripts/build-rolesanywhere-helper.sh`,
    );
  }
  dir = await mkdtemp(join(tmpdir(), "ra-double-"));
  ca = await makeCa(dir, "ra-root", "rsa");
  sub = await intermediate(dir, ca, "ra-intermediate", "ec");
  otherCa = await makeCa(dir, "ra-stranger", "rsa");
  await aws.start();
  aws.addRole({ roleArn: ROLE });
  aws.addRole({ roleArn: UNLISTED_ROLE });
  aws.rolesAnywhere.addTrustAnchor({ arn: TRUST_ANCHOR, caPem: ca.certPem });
  aws.rolesAnywhere.addProfile({ arn: PROFILE, roleArns: [ROLE], durationSeconds: 3600 });
});

afterAll(async () => {
  await aws.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("Roles Anywhere double against AWS's rolesanywhere-credential-helper", () => {
  for (const keyType of ["rsa", "ec"] as const) {
    it(`accepts the helper's CreateSession with an ${keyType === "rsa" ? "RSA" : "ECDSA"} certificate, and its session opens ECR as the role's session named after the serial`, async () => {
      const leaf = await issue(ca, { cn: `host-${keyType}`, keyType });
      const started = Date.now();
      const r = await runHelper(helperArgs(leaf));
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as {
        Version: number;
        AccessKeyId: string;
        SecretAccessKey: string;
        SessionToken: string;
        Expiration: string;
      };
      expect(out.Version).toBe(1);
      expect(out.AccessKeyId).toMatch(/^ASIA/);
      // 1800 s asked, the profile allows 3600.
      const expiresIn = Date.parse(out.Expiration) - started;
      expect(expiresIn).toBeGreaterThan(1790_000);
      expect(expiresIn).toBeLessThan(1810_000);
      const sessionArn = `arn:aws:sts::${ACCOUNT}:assumed-role/ra-pull/${leaf.serial}`;
      const call = aws.calls({ service: "rolesanywhere" }).at(-1);
      expect(call).toMatchObject({
        action: "CreateSession",
        status: 201,
        roleArn: ROLE,
        principalArn: sessionArn,
      });
      const token = await ecrTokenWith(out);
      expect(token?.principalArn).toBe(sessionArn);
    });
  }

  it("accepts the helper's request with an intermediate CA in X-Amz-X509-Chain", async () => {
    const leaf = await issue(sub, { cn: "host-chained", keyType: "ec" });
    const r = await runHelper(helperArgs(leaf, sub));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const token = await ecrTokenWith(JSON.parse(r.stdout));
    expect(token?.principalArn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/ra-pull/${leaf.serial}`);
    // Without the intermediate the leaf does not chain to the anchor.
    const alone = await runHelper(helperArgs(leaf));
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toContain("AccessDeniedException: Untrusted signing certificate");
  });

  it("refuses, as the service does, a certificate of another CA, an expired one, and a role the profile does not list", async () => {
    const stranger = await issue(otherCa, { cn: "host-stranger" });
    const expired = await issue(ca, {
      cn: "host-expired",
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const good = await issue(ca, { cn: "host-good" });
    const cases: Array<[HelperResult, string]> = [
      [await runHelper(helperArgs(stranger)), "Untrusted signing certificate"],
      [await runHelper(helperArgs(expired)), "Certificate is expired"],
      [
        await runHelper(helperArgs(good, undefined, UNLISTED_ROLE)),
        "Unable to assume role for arn",
      ],
    ];
    for (const [r, message] of cases) {
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(`AccessDeniedException: ${message}`);
    }
    const refused = aws.calls({ service: "rolesanywhere" }).slice(-3);
    expect(refused.map((c) => [c.status, c.errorCode])).toEqual([
      [403, "AccessDeniedException"],
      [403, "AccessDeniedException"],
      [403, "AccessDeniedException"],
    ]);
  });
});

/** The operator's source naming the double's trust anchor, profile and role. */
const source = (secret = "ra-cert") => ({
  trustAnchorArn: TRUST_ANCHOR,
  profileArn: PROFILE,
  roleArn: ROLE,
  sessionSeconds: 900,
  certificateSecret: { namespace: "ops", name: secret },
});

describe("the operator's signer (src/aws/roles-anywhere.ts) against the double", () => {
  for (const keyType of ["rsa", "ec"] as const) {
    it(`gets a session with an ${keyType === "rsa" ? "RSA" : "ECDSA"} certificate and its intermediate; STS names the role's session`, async () => {
      const leaf = await issue(sub, { cn: `operator-${keyType}`, keyType });
      const id = x509IdentityFromSecret(
        { namespace: "ops", name: "ra-cert" },
        tlsSecretData(leaf, [sub]),
      );
      expect(id.algorithm).toBe(
        keyType === "rsa" ? "AWS4-X509-RSA-SHA256" : "AWS4-X509-ECDSA-SHA256",
      );
      const session = await createSession(source(), id, { timeoutMs: 5000, endpoint: aws.url });
      const sessionArn = `arn:aws:sts::${ACCOUNT}:assumed-role/ra-pull/${leaf.serial}`;
      expect(session.assumedRoleArn).toBe(sessionArn);
      const sts = new STSClient({
        endpoint: aws.url,
        region: REGION,
        maxAttempts: 1,
        credentials: session.credentials,
      });
      const who = await sts.send(new GetCallerIdentityCommand({}));
      sts.destroy();
      expect(who.Arn).toBe(sessionArn);
      const token = await ecrTokenWith({
        AccessKeyId: session.credentials.accessKeyId,
        SecretAccessKey: session.credentials.secretAccessKey,
        SessionToken: session.credentials.sessionToken ?? "",
      });
      expect(token?.principalArn).toBe(sessionArn);
    });
  }
});

describe("the operator's signer against the double: clock skew and tampering", () => {
  it("signs on AWS's clock when this host's is 20 minutes off, after one refusal", async () => {
    const leaf = await issue(ca, { cn: "operator-skewed" });
    const id = x509IdentityFromSecret({ namespace: "ops", name: "c" }, tlsSecretData(leaf));
    const before = aws.calls({ service: "rolesanywhere" }).length;
    const session = await createSession(source(), id, {
      timeoutMs: 5000,
      endpoint: aws.url,
      now: () => Date.now() - 20 * 60_000,
    });
    expect(session.assumedRoleArn).toBe(
      `arn:aws:sts::${ACCOUNT}:assumed-role/ra-pull/${leaf.serial}`,
    );
    const calls = aws.calls({ service: "rolesanywhere" }).slice(before);
    expect(calls.map((c) => [c.status, c.errorCode])).toEqual([
      [403, "AccessDeniedException"],
      [201, undefined],
    ]);
  });

  it("gets a bad signature refused with the service's error shape", async () => {
    const leaf = await issue(ca, { cn: "operator-tampered", keyType: "ec" });
    const id = x509IdentityFromSecret({ namespace: "ops", name: "c" }, tlsSecretData(leaf));
    const url = new URL(`${aws.url}/sessions`);
    url.searchParams.set("profileArn", PROFILE);
    url.searchParams.set("roleArn", ROLE);
    url.searchParams.set("trustAnchorArn", TRUST_ANCHOR);
    const body = Buffer.from(JSON.stringify({ durationSeconds: 900 }));
    const headers = signX509Request(
      {
        method: "POST",
        url,
        headers: { "content-type": "application/json" },
        body,
        region: REGION,
        at: new Date(),
      },
      id,
    );
    // Signed for 900 s, sent asking for 3600: the signature no longer matches.
    const tampered = Buffer.from(JSON.stringify({ durationSeconds: 3600 }));
    const answer = await fetch(url, { method: "POST", headers, body: tampered });
    expect(answer.status).toBe(403);
    expect(answer.headers.get("x-amzn-errortype")).toBe(
      "AccessDeniedException:http://internal.amazon.com/coral/com.amazonaws.rolesanywhere/",
    );
    expect(await answer.json()).toEqual({ message: "Signature validation failed" });
  });
});
