import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  GetCallerIdentityCommand,
  STSClient,
} from "@aws-sdk/client-sts";
import {
  fromContainerMetadata,
  fromHttp,
  fromTemporaryCredentials,
  fromTokenFile,
  fromWebToken,
} from "@aws-sdk/credential-providers";
import { describe, expect, it } from "vitest";
import { ALICE_ACCOUNT as ACCOUNT, alice, startDoubleForTests } from "./fixtures.js";

const OTHER_ACCOUNT = "333333333333";
const mallory = {
  accessKeyId: "AKIAMALLORY00000001",
  secretAccessKey: "mallory-secret-key",
  accountId: "999999999999",
  arn: "arn:aws:iam::999999999999:user/mallory",
};
const pullRole = `arn:aws:iam::${OTHER_ACCOUNT}:role/ecr-pull`;
const irsaRole = `arn:aws:iam::${ACCOUNT}:role/irsa`;
const podRole = `arn:aws:iam::${ACCOUNT}:role/pod-identity`;

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}
type CredentialSource = Credentials | (() => Promise<Credentials>);

const aws = startDoubleForTests({
  identities: [alice, mallory],
  roles: [
    { roleArn: pullRole, trustedPrincipalArns: [alice.arn], externalId: "ext-42" },
    { roleArn: irsaRole, webIdentityTokens: ["good-web-token"] },
    { roleArn: podRole },
  ],
  podIdentities: [{ authorizationToken: "pod-auth-token", roleArn: podRole }],
});
const sts = (credentials: CredentialSource = alice): STSClient =>
  new STSClient({ endpoint: aws.url, region: "us-east-1", credentials, maxAttempts: 1 });
const ecrWith = (credentials: CredentialSource): ECRClient =>
  new ECRClient({ endpoint: aws.url, region: "eu-central-1", credentials, maxAttempts: 1 });

describe("AWS double: STS GetCallerIdentity and AssumeRole", () => {
  it("answers GetCallerIdentity for the signer", async () => {
    const out = await sts().send(new GetCallerIdentityCommand({}));
    expect(out).toMatchObject({ Account: ACCOUNT, Arn: alice.arn });
    expect(out.UserId).toBeTruthy();
    expect(aws.calls()).toEqual([
      expect.objectContaining({
        service: "sts",
        action: "GetCallerIdentity",
        region: "us-east-1",
        status: 200,
      }),
    ]);
  });

  it("assumes a trusting role with the right external id; the session gets tokens as the role", async () => {
    const before = Date.now();
    const out = await sts().send(
      new AssumeRoleCommand({
        RoleArn: pullRole,
        RoleSessionName: "refresher",
        ExternalId: "ext-42",
      }),
    );
    const creds = out.Credentials;
    expect(creds?.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(creds?.SessionToken).toBeTruthy();
    const lifetime = (creds?.Expiration?.getTime() ?? 0) - before;
    expect(Math.abs(lifetime - 3_600_000)).toBeLessThan(5_000);
    expect(out.AssumedRoleUser?.Arn).toBe(
      `arn:aws:sts::${OTHER_ACCOUNT}:assumed-role/ecr-pull/refresher`,
    );
    expect(out.AssumedRoleUser?.AssumedRoleId).toMatch(/^AROA.*:refresher$/);

    const session = {
      accessKeyId: creds?.AccessKeyId ?? "",
      secretAccessKey: creds?.SecretAccessKey ?? "",
      sessionToken: creds?.SessionToken ?? "",
    };
    const who = await sts(session).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(out.AssumedRoleUser?.Arn);
    expect(who.Account).toBe(OTHER_ACCOUNT);

    const token = await ecrWith(session).send(new GetAuthorizationTokenCommand({}));
    expect(token.authorizationData?.[0]?.proxyEndpoint).toBe(
      `https://${OTHER_ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com`,
    );
    const password = Buffer.from(token.authorizationData?.[0]?.authorizationToken ?? "", "base64")
      .toString()
      .slice(4);
    expect(aws.issued().find((t) => t.password === password)?.principalArn).toBe(
      out.AssumedRoleUser?.Arn,
    );

    // A session without its token is not the session.
    await expect(
      ecrWith({ ...session, sessionToken: undefined }).send(new GetAuthorizationTokenCommand({})),
    ).rejects.toMatchObject({ name: "UnrecognizedClientException" });
  });

  it("denies AssumeRole on an external id mismatch, an untrusted caller or an unknown role", async () => {
    const assume = (client: STSClient, roleArn: string, externalId?: string) =>
      client.send(
        new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: "s", ExternalId: externalId }),
      );
    await expect(assume(sts(), pullRole, "wrong")).rejects.toMatchObject({
      name: "AccessDenied",
      message: `User: ${alice.arn} is not authorized to perform: sts:AssumeRole on resource: ${pullRole}`,
      $metadata: { httpStatusCode: 403 },
    });
    await expect(assume(sts(), pullRole)).rejects.toMatchObject({ name: "AccessDenied" });
    await expect(assume(sts(mallory), pullRole, "ext-42")).rejects.toMatchObject({
      name: "AccessDenied",
    });
    await expect(
      assume(sts(), `arn:aws:iam::${ACCOUNT}:role/does-not-exist`),
    ).rejects.toMatchObject({ name: "AccessDenied" });
    expect(aws.calls().map((c) => [c.status, c.errorCode])).toEqual(
      Array(4).fill([403, "AccessDenied"]),
    );
  });
});

describe("AWS double: STS refusals and nested clients", () => {
  it("refuses unknown keys, bad signatures and expired sessions like STS", async () => {
    await expect(
      sts({ ...alice, accessKeyId: "AKIANOBODY" }).send(new GetCallerIdentityCommand({})),
    ).rejects.toMatchObject({
      name: "InvalidClientTokenId",
      message: "The security token included in the request is invalid.",
    });
    await expect(
      sts({ ...alice, secretAccessKey: "tampered" }).send(new GetCallerIdentityCommand({})),
    ).rejects.toMatchObject({ name: "SignatureDoesNotMatch" });

    const out = await sts().send(
      new AssumeRoleCommand({ RoleArn: podRole, RoleSessionName: "short", DurationSeconds: 1 }),
    );
    const session = {
      accessKeyId: out.Credentials?.AccessKeyId ?? "",
      secretAccessKey: out.Credentials?.SecretAccessKey ?? "",
      sessionToken: out.Credentials?.SessionToken ?? "",
    };
    await new Promise((r) => setTimeout(r, 1_100));
    await expect(sts(session).send(new GetCallerIdentityCommand({}))).rejects.toMatchObject({
      name: "ExpiredToken",
    });
    await expect(ecrWith(session).send(new GetAuthorizationTokenCommand({}))).rejects.toMatchObject(
      {
        name: "ExpiredTokenException",
      },
    );
  });

  it("works under fromTemporaryCredentials (AssumeRole through the nested STS client)", async () => {
    const credentials = fromTemporaryCredentials({
      masterCredentials: alice,
      params: { RoleArn: pullRole, RoleSessionName: "nested", ExternalId: "ext-42" },
      clientConfig: { endpoint: aws.url, region: "us-east-1" },
    });
    const out = await ecrWith(credentials).send(new GetAuthorizationTokenCommand({}));
    expect(out.authorizationData?.[0]?.proxyEndpoint).toContain(OTHER_ACCOUNT);
    expect(aws.calls().map((c) => `${c.service}:${c.action}:${c.status}`)).toEqual([
      "sts:AssumeRole:200",
      "ecr:GetAuthorizationToken:200",
    ]);
    expect(aws.calls()[1]?.principalArn).toBe(
      `arn:aws:sts::${OTHER_ACCOUNT}:assumed-role/ecr-pull/nested`,
    );
  });

  it("is found through AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL by nested clients too", async () => {
    const saved = { sts: process.env.AWS_ENDPOINT_URL_STS, all: process.env.AWS_ENDPOINT_URL };
    process.env.AWS_ENDPOINT_URL_STS = aws.url;
    process.env.AWS_ENDPOINT_URL = aws.url;
    try {
      const credentials = fromTemporaryCredentials({
        masterCredentials: alice,
        params: { RoleArn: pullRole, RoleSessionName: "env", ExternalId: "ext-42" },
        clientConfig: { region: "us-east-1" },
      });
      const ecr = new ECRClient({ region: "eu-central-1", credentials });
      const out = await ecr.send(new GetAuthorizationTokenCommand({}));
      expect(out.authorizationData?.[0]?.proxyEndpoint).toContain(OTHER_ACCOUNT);
      expect(aws.calls().map((c) => `${c.service}:${c.action}:${c.status}`)).toEqual([
        "sts:AssumeRole:200",
        "ecr:GetAuthorizationToken:200",
      ]);
    } finally {
      for (const [key, value] of [
        ["AWS_ENDPOINT_URL_STS", saved.sts],
        ["AWS_ENDPOINT_URL", saved.all],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

describe("AWS double: AssumeRoleWithWebIdentity and container credentials", () => {
  it("answers AssumeRoleWithWebIdentity unsigned, only for an accepted token", async () => {
    const good = fromWebToken({
      roleArn: irsaRole,
      roleSessionName: "irsa",
      webIdentityToken: "good-web-token",
      clientConfig: { endpoint: aws.url, region: "us-east-1" },
    });
    const creds = await good();
    expect(creds.accessKeyId).toMatch(/^ASIA/);
    const who = await sts(creds).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/irsa/irsa`);

    const bad = fromWebToken({
      roleArn: irsaRole,
      roleSessionName: "irsa",
      webIdentityToken: "forged",
      clientConfig: { endpoint: aws.url, region: "us-east-1", maxAttempts: 1 },
    });
    await expect(bad()).rejects.toMatchObject({ name: "AccessDenied" });
    const webCalls = aws.calls({ action: "AssumeRoleWithWebIdentity" });
    expect(webCalls.map((c) => c.status)).toEqual([200, 403]);
    expect(webCalls[0]?.accessKeyId).toBeUndefined();

    // Also straight through the client and through a token file, as IRSA does.
    const direct = await new STSClient({ endpoint: aws.url, region: "us-east-1" }).send(
      new AssumeRoleWithWebIdentityCommand({
        RoleArn: irsaRole,
        RoleSessionName: "direct",
        WebIdentityToken: "good-web-token",
      }),
    );
    expect(direct.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/irsa/direct`);
    const dir = await mkdtemp(join(tmpdir(), "aws-double-"));
    try {
      await writeFile(join(dir, "token"), "good-web-token");
      const fromFile = fromTokenFile({
        webIdentityTokenFile: join(dir, "token"),
        roleArn: irsaRole,
        roleSessionName: "file",
        clientConfig: { endpoint: aws.url, region: "us-east-1" },
      });
      expect((await fromFile()).accessKeyId).toMatch(/^ASIA/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("serves Pod Identity container credentials for a known authorization token", async () => {
    const good = fromHttp({
      awsContainerCredentialsFullUri: aws.containerCredentialsUrl,
      awsContainerAuthorizationToken: "pod-auth-token",
    });
    const creds = await good();
    expect(creds.accessKeyId).toMatch(/^ASIA/);
    expect(creds.sessionToken).toBeTruthy();
    const out = await ecrWith(good).send(new GetAuthorizationTokenCommand({}));
    expect(out.authorizationData?.[0]?.proxyEndpoint).toContain(ACCOUNT);
    expect(aws.calls({ service: "ecr" })[0]?.principalArn).toMatch(
      new RegExp(`^arn:aws:sts::${ACCOUNT}:assumed-role/pod-identity/eks-pod-identity-`),
    );

    const bad = fromHttp({
      awsContainerCredentialsFullUri: aws.containerCredentialsUrl,
      awsContainerAuthorizationToken: "wrong",
      maxRetries: 0,
    });
    await expect(bad()).rejects.toThrow();
    // fromHttp does not memoize, so the ECR client fetched again: every call but the last succeeded.
    const statuses = aws.calls({ service: "container-credentials" }).map((c) => c.status);
    expect(statuses.at(-1)).toBe(403);
    expect(statuses.slice(0, -1).every((s) => s === 200)).toBe(true);

    // fromContainerMetadata reads the same variables the SDK's default chain reads.
    const saved = {
      uri: process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI,
      token: process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN,
    };
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = aws.containerCredentialsUrl;
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = "pod-auth-token";
    try {
      const viaEnv = await fromContainerMetadata()();
      expect(viaEnv.accessKeyId).toMatch(/^ASIA/);
    } finally {
      for (const [key, value] of [
        ["AWS_CONTAINER_CREDENTIALS_FULL_URI", saved.uri],
        ["AWS_CONTAINER_AUTHORIZATION_TOKEN", saved.token],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
