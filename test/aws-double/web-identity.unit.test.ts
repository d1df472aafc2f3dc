// The STS double's web identity checks against an OIDC issuer of the test's
// own (an HTTPS server with a self-signed certificate and a jose key pair),
// and its trust-policy evaluation of AssumeRole with external ID and session
// tags. test/integration/web-identity.test.ts does the same against the real
// API server as the issuer.
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  GetCallerIdentityCommand,
  STSClient,
} from "@aws-sdk/client-sts";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfSignedCertificate } from "../registry-double/self-signed.js";
import { AwsDouble } from "./aws-double.js";
import { chainedRoleTrust } from "./fixtures.js";
import { issuerThumbprint } from "./web-identity.js";

const ACCOUNT = "123456789012";
const ROLE = `arn:aws:iam::${ACCOUNT}:role/web-pull`;
const CHAINED = `arn:aws:iam::333333333333:role/cross-account-pull`;
const alice = {
  accessKeyId: "AKIAALICE0000000001",
  secretAccessKey: "alice-secret-key",
  accountId: ACCOUNT,
  arn: `arn:aws:iam::${ACCOUNT}:user/alice`,
};

type Key = Awaited<ReturnType<typeof generateKeyPair>>;

let issuer: Server;
let issuerUrl = "";
let key: Key;
let stranger: Key;
const aws = new AwsDouble({ identities: [alice] });
let url = "";

const sign = (
  claims: { sub?: string; aud?: string | string[]; expSeconds?: number; iss?: string },
  with_: Key = key,
): Promise<string> => {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setIssuer(claims.iss ?? issuerUrl)
    .setSubject(claims.sub ?? "system:serviceaccount:ops:operator")
    .setAudience(claims.aud ?? "sts.amazonaws.com")
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (claims.expSeconds ?? 600))
    .sign(with_.privateKey);
};
const assume = (token: string, roleArn = ROLE) =>
  new STSClient({ endpoint: url, region: "us-east-1", maxAttempts: 1 }).send(
    new AssumeRoleWithWebIdentityCommand({
      RoleArn: roleArn,
      RoleSessionName: "test",
      WebIdentityToken: token,
    }),
  );

beforeAll(async () => {
  key = await generateKeyPair("RS256");
  stranger = await generateKeyPair("RS256");
  const jwk = { ...(await exportJWK(key.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  const tls = selfSignedCertificate();
  issuer = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    res.setHeader("content-type", "application/json");
    if (req.url === "/.well-known/openid-configuration") {
      res.end(JSON.stringify({ issuer: issuerUrl, jwks_uri: `${issuerUrl}/openid/v1/jwks` }));
    } else if (req.url === "/openid/v1/jwks") {
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.statusCode = 404;
      res.end("{}");
    }
  });
  await new Promise<void>((r) => issuer.listen(0, "127.0.0.1", r));
  issuerUrl = `https://127.0.0.1:${(issuer.address() as AddressInfo).port}`;
  url = (await aws.start()).url;
  const providerArn = aws.addOidcProvider({
    url: issuerUrl,
    clientIds: ["sts.amazonaws.com"],
    thumbprints: [await issuerThumbprint(issuerUrl)],
    accountId: ACCOUNT,
  });
  const host = issuerUrl.slice("https://".length);
  aws.addRole({
    roleArn: ROLE,
    trustPolicy: {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Federated: providerArn },
          Action: "sts:AssumeRoleWithWebIdentity",
          Condition: {
            StringEquals: { [`${host}:aud`]: "sts.amazonaws.com" },
            StringLike: { [`${host}:sub`]: "system:serviceaccount:ops:*" },
          },
        },
      ],
    },
  });
  aws.addRole({
    roleArn: CHAINED,
    trustPolicy: chainedRoleTrust(ROLE, "ext-7", { team: "payments" }),
  });
});
afterAll(async () => {
  await aws.close();
  await new Promise<void>((r) => issuer.close(() => r()));
});

describe("AWS double: web identity verified against an OIDC issuer", () => {
  it("accepts a token signed by the issuer's key, for a subject the trust policy names", async () => {
    const out = await assume(await sign({}));
    expect(out.SubjectFromWebIdentityToken).toBe("system:serviceaccount:ops:operator");
    expect(out.Audience).toBe("sts.amazonaws.com");
    expect(out.Provider).toBe(issuerUrl);
    expect(out.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/web-pull/test`);
    expect(aws.calls({ action: "AssumeRoleWithWebIdentity", status: 200 }).at(-1)).toMatchObject({
      roleArn: ROLE,
      roleSessionName: "test",
      subject: "system:serviceaccount:ops:operator",
    });
  });

  it("refuses a forged token, a wrong audience, an expired token and a foreign issuer", async () => {
    await expect(assume(await sign({}, stranger))).rejects.toMatchObject({
      name: "InvalidIdentityTokenException",
      message: "The token's signature could not be verified with the provider's keys",
    });
    await expect(
      assume(await sign({ aud: "https://kubernetes.default.svc" })),
    ).rejects.toMatchObject({
      name: "InvalidIdentityTokenException",
      message: "Incorrect token audience",
    });
    await expect(assume(await sign({ expSeconds: -120 }))).rejects.toMatchObject({
      name: "ExpiredTokenException",
    });
    await expect(assume(await sign({ iss: "https://elsewhere.example" }))).rejects.toMatchObject({
      name: "InvalidIdentityTokenException",
      message: "No OpenIDConnect provider found in your account for https://elsewhere.example",
    });
    await expect(assume("not-a-jwt")).rejects.toMatchObject({
      name: "InvalidIdentityTokenException",
    });
  });

  it("refuses a subject outside the trust policy with AccessDenied", async () => {
    await expect(
      assume(await sign({ sub: "system:serviceaccount:team-a:default" })),
    ).rejects.toMatchObject({
      name: "AccessDenied",
      message: "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    });
    expect(
      aws.calls({ action: "AssumeRoleWithWebIdentity", errorCode: "AccessDenied" }).at(-1),
    ).toMatchObject({ subject: "system:serviceaccount:team-a:default" });
  });
});

describe("AWS double: web identity when the issuer's certificate does not match", () => {
  it("cannot reach the keys when the issuer's certificate does not match the thumbprint", async () => {
    const other = new AwsDouble();
    const otherUrl = (await other.start()).url;
    const arn = other.addOidcProvider({
      url: issuerUrl,
      clientIds: ["sts.amazonaws.com"],
      thumbprints: ["0000000000000000000000000000000000000000"],
      accountId: ACCOUNT,
    });
    other.addRole({
      roleArn: ROLE,
      trustPolicy: {
        Statement: [
          {
            Effect: "Allow",
            Principal: { Federated: arn },
            Action: "sts:AssumeRoleWithWebIdentity",
          },
        ],
      },
    });
    try {
      const sts = new STSClient({ endpoint: otherUrl, region: "us-east-1", maxAttempts: 1 });
      await expect(
        sts.send(
          new AssumeRoleWithWebIdentityCommand({
            RoleArn: ROLE,
            RoleSessionName: "t",
            WebIdentityToken: await sign({}),
          }),
        ),
      ).rejects.toMatchObject({ name: "IDPCommunicationErrorException" });
    } finally {
      await other.close();
    }
  });
});

describe("AWS double: trust policies on chained roles and session tags", () => {
  it("chains into another account's role only with its external ID and an allowed session tag", async () => {
    const web = await assume(await sign({}));
    const creds = {
      accessKeyId: web.Credentials?.AccessKeyId ?? "",
      secretAccessKey: web.Credentials?.SecretAccessKey ?? "",
      sessionToken: web.Credentials?.SessionToken ?? "",
    };
    const sts = new STSClient({
      endpoint: url,
      region: "us-east-1",
      credentials: creds,
      maxAttempts: 1,
    });
    const chain = (externalId: string | undefined, team: string) =>
      sts.send(
        new AssumeRoleCommand({
          RoleArn: CHAINED,
          RoleSessionName: "chained",
          ExternalId: externalId,
          Tags: [{ Key: "team", Value: team }],
        }),
      );
    await expect(chain(undefined, "payments")).rejects.toMatchObject({ name: "AccessDenied" });
    await expect(chain("ext-7", "other")).rejects.toMatchObject({ name: "AccessDenied" });
    const ok = await chain("ext-7", "payments");
    expect(ok.AssumedRoleUser?.Arn).toBe(
      "arn:aws:sts::333333333333:assumed-role/cross-account-pull/chained",
    );
    expect(aws.calls({ action: "AssumeRole", status: 200 }).at(-1)).toMatchObject({
      roleArn: CHAINED,
      externalId: "ext-7",
      sessionTags: { team: "payments" },
      principalArn: `arn:aws:sts::${ACCOUNT}:assumed-role/web-pull/test`,
    });
    const who = await new STSClient({
      endpoint: url,
      region: "us-east-1",
      maxAttempts: 1,
      credentials: {
        accessKeyId: ok.Credentials?.AccessKeyId ?? "",
        secretAccessKey: ok.Credentials?.SecretAccessKey ?? "",
        sessionToken: ok.Credentials?.SessionToken ?? "",
      },
    }).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe("arn:aws:sts::333333333333:assumed-role/cross-account-pull/chained");
  });

  it("needs sts:TagSession in the trust policy to pass session tags", async () => {
    const untagged = `arn:aws:iam::${ACCOUNT}:role/no-tags`;
    aws.addRole({
      roleArn: untagged,
      trustPolicy: {
        Statement: [{ Effect: "Allow", Principal: { AWS: alice.arn }, Action: "sts:AssumeRole" }],
      },
    });
    const sts = new STSClient({
      endpoint: url,
      region: "us-east-1",
      credentials: alice,
      maxAttempts: 1,
    });
    await expect(
      sts.send(
        new AssumeRoleCommand({
          RoleArn: untagged,
          RoleSessionName: "s",
          Tags: [{ Key: "team", Value: "x" }],
        }),
      ),
    ).rejects.toMatchObject({
      name: "AccessDenied",
      message: `User: ${alice.arn} is not authorized to perform: sts:TagSession on resource: ${untagged}`,
    });
    const ok = await sts.send(new AssumeRoleCommand({ RoleArn: untagged, RoleSessionName: "s" }));
    expect(ok.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/no-tags/s`);
  });
});
