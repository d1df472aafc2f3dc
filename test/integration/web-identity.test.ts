// No long-lived AWS keys: web identity from the cluster's own ServiceAccount
// tokens, on the real control plane, with the real API server as the OIDC
// issuer the STS double fetches keys from (anonymously, as IAM does, once
// discovery is opened to unauthenticated readers: docs/identity.md step 1).
// Also: credential_process (the IAM Roles Anywhere shape) through the SDK's
// chain, role chaining with an external ID and session tags, and `check`
// showing the chain. Every Secret must hold the exact password the double
// issued to the expected principal.
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1Secret } from "@kubernetes/client-node";
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Reason } from "../../src/api/conditions.js";
import type { ECRPullSecret } from "../../src/api/index.js";
import { ANNOTATION_ECR_ROLE_ARN } from "../../src/api/metadata.js";

import type { CredentialSource } from "../../src/aws/credential-source.js";
import { fetchSourceToken } from "../../src/aws/fetch.js";
import type { OperatorError } from "../../src/errors.js";
import { roleSecretName } from "../../src/reconcile/service-account-roles.js";
import { chainedRoleTrust } from "../aws-double/fixtures.js";
import type { AwsDouble } from "../aws-double/index.js";
import { checkOutput } from "../harness/cli.js";
import {
  applyResource,
  auditWrites,
  dockerConfigOf,
  getResource,
  mergePatch,
  readSecret,
  readyCondition,
  statusOf,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { testConfig } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";
import {
  allowAnonymousDiscovery,
  readIssuerDiscovery,
  registerOidcProvider,
  webIdentityTrust,
} from "../harness/web-identity.js";

const cp = inject("controlPlane");
const ACCOUNT = "170000000001";
const OTHER_ACCOUNT = "170000000002";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OTHER_HOST = `${OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OPS = "wi-ops";
const OPERATOR_SUB = `system:serviceaccount:${OPS}:operator`;
const WEB_ROLE = `arn:aws:iam::${ACCOUNT}:role/wi-pull`;
const CHAIN_BASE_ROLE = `arn:aws:iam::${ACCOUNT}:role/wi-chain-base`;
const CROSS_ROLE = `arn:aws:iam::${OTHER_ACCOUNT}:role/wi-cross-pull`;
const EXTERNAL_ID = "wi-external-17";
const RA_ROLE_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/roles-anywhere/ra-host-1`;
const NAMESPACES = Array.from({ length: 50 }, (_, i) => `wi-ns-${String(i).padStart(2, "0")}`);
const SINGLE = {
  intruder: "wi-intruder",
  audience: "wi-audience",
  chain: "wi-chain",
  chainBad: "wi-chain-bad",
  process: "wi-process",
};
const PER_SA = "wi-sa";
const ROLE_A = `arn:aws:iam::${ACCOUNT}:role/wi-role-a`;
const ROLE_B = `arn:aws:iam::${ACCOUNT}:role/wi-role-b`;
const RESOURCES = ["wi-main", ...Object.values(SINGLE), PER_SA];
const DISCOVERY_BINDING = "wi-oidc-discovery-anonymous";
/** A short ECR token lifetime, so that a refresh happens within the test. */
const TOKEN_LIFETIME_MS = 24_000;

/** On a cluster of someone else's, its issuer is not ours to open to anonymous readers. */
const skip = cp.existingCluster;

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let dir: string;
let issuer = "";
let providerArn = "";
let operatorKubeconfig = "";
const savedEnv: Record<string, string | undefined> = {};

const trustWebIdentity = (subjects: string[]) =>
  webIdentityTrust({ issuer, providerArn }, subjects);

function spec(
  namespaces: string[],
  credentials?: ECRPullSecret["spec"]["credentials"],
  registries: ECRPullSecret["spec"]["registries"] = [{ accountId: ACCOUNT }],
): ECRPullSecret["spec"] {
  return {
    secretName: "ecr-pull",
    namespaces,
    serviceAccounts: [],
    region: "us-east-1",
    registries,
    ...(credentials ? { credentials } : {}),
  };
}

async function passwordIn(namespace: string, host = HOST): Promise<string | undefined> {
  const s = await readSecret(k, namespace, "ecr-pull");
  return s ? dockerConfigOf(s).auths[host]?.password : undefined;
}

async function waitReady(name: string): Promise<ECRPullSecret> {
  return await waitFor(
    `${name} to be Ready`,
    async () => {
      const r = await getResource(k, name);
      return readyCondition(r)?.status === "True" ? r : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

async function waitNotReady(name: string, reason: string): Promise<string> {
  return await waitFor(
    `${name} to be not Ready with ${reason}`,
    async () => {
      const c = readyCondition(await getResource(k, name));
      return c?.status === "False" && c.reason === reason ? c.message : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

function issuedTo(password: string | undefined) {
  return aws.issued().find((t) => t.password === password);
}

/**
 * Registers the cluster's issuer with "IAM" the way docs/identity.md says (its
 * URL from the discovery document, the audience, the thumbprint) and the roles
 * that trust it: the web identity role, the chain's base and its cross-account role.
 */
async function registerIssuer(): Promise<void> {
  const discovery = await readIssuerDiscovery(k);
  issuer = discovery.issuer;
  expect(issuer).toBe(cp.server);
  expect(discovery.jwks_uri).toBe(`${cp.server}/openid/v1/jwks`);
  providerArn = await registerOidcProvider(aws, issuer, ACCOUNT);
  aws.addRole({ roleArn: WEB_ROLE, trustPolicy: trustWebIdentity([OPERATOR_SUB]) });
  aws.addRole({ roleArn: CHAIN_BASE_ROLE, trustPolicy: trustWebIdentity([OPERATOR_SUB]) });
  aws.addRole({
    roleArn: CROSS_ROLE,
    trustPolicy: chainedRoleTrust(CHAIN_BASE_ROLE, EXTERNAL_ID, { cluster: "wi-test" }),
  });
}

/**
 * credential_process, as IAM Roles Anywhere's signing helper is run: a
 * profile whose process prints temporary credentials of a role session; this
 * process's AWS environment is set to that profile alone (saved in savedEnv).
 */
async function useSigningHelperProfile(): Promise<void> {
  const ra = {
    accessKeyId: "ASIAWIRA000000000001",
    secretAccessKey: "wi-roles-anywhere-secret-000000000000001",
    sessionToken: "IQoJb3JpZ2luX2VjEwi-roles-anywhere-session-token-0000000001",
  };
  aws.addIdentity({
    ...ra,
    accountId: ACCOUNT,
    arn: RA_ROLE_SESSION,
    expiresAt: new Date(Date.now() + 3_600_000),
  });
  const helper = join(dir, "signing-helper.mjs");
  await writeFile(
    helper,
    `import { appendFileSync } from "node:fs";
appendFileSync(${JSON.stringify(join(dir, "helper-runs"))}, "run\\n");
process.stdout.write(JSON.stringify({
Version: 1,
AccessKeyId: ${JSON.stringify(ra.accessKeyId)},
SecretAccessKey: ${JSON.stringify(ra.secretAccessKey)},
SessionToken: ${JSON.stringify(ra.sessionToken)},
Expiration: new Date(Date.now() + 3600000).toISOString(),
}));
`,
  );
  await chmod(helper, 0o755);
  await writeFile(
    join(dir, "config"),
    `[profile roles-anywhere]\ncredential_process = ${process.execPath} ${helper}\n`,
  );
  await writeFile(join(dir, "empty"), "");
  const env: Record<string, string> = {
    AWS_ENDPOINT_URL: aws.url,
    AWS_CONFIG_FILE: join(dir, "config"),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, "empty"),
    AWS_PROFILE: "roles-anywhere",
    AWS_EC2_METADATA_DISABLED: "true",
  };
  for (const name of [
    ...Object.keys(env),
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  ]) {
    savedEnv[name] = process.env[name];
    delete process.env[name];
  }
  Object.assign(process.env, env);
}

/**
 * Where Secrets hold an AWS key or a ServiceAccount token minted for STS:
 * "namespace/name:key" for each.
 */
function credentialsIn(secrets: V1Secret[]): string[] {
  const offending: string[] = [];
  for (const s of secrets) {
    for (const [key, raw] of Object.entries(s.data ?? {})) {
      const value = Buffer.from(raw, "base64").toString("utf8");
      const where = `${s.metadata?.namespace}/${s.metadata?.name}:${key}`;
      if (/AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN/.test(key))
        offending.push(where);
      if (/\b(AKIA|ASIA)[A-Z0-9]{12,}\b/.test(value)) offending.push(where);
      if (/aws_secret_access_key|SecretAccessKey/i.test(value)) offending.push(where);
      for (const jwt of value.match(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/g) ?? []) {
        const aud = decodeJwt(jwt).aud;
        if ((Array.isArray(aud) ? aud : [aud]).includes("sts.amazonaws.com")) offending.push(where);
      }
    }
  }
  return offending;
}

const secretA = roleSecretName("ecr-pull", ROLE_A);
const secretB = roleSecretName("ecr-pull", ROLE_B);
const sub = (name: string) => `system:serviceaccount:${PER_SA}:${name}`;
const sessionOf = (role: string) =>
  `arn:aws:sts::${ACCOUNT}:assumed-role/${role.split("/").at(-1)}/ecr-creds-refresher`;
const pullSecretsOf = async (name: string) =>
  (await k.core.readNamespacedServiceAccount({ namespace: PER_SA, name })).imagePullSecrets?.map(
    (r) => r.name,
  ) ?? [];
const principalOf = async (secretName: string) => {
  const s = await readSecret(k, PER_SA, secretName);
  return s ? issuedTo(dockerConfigOf(s).auths[HOST]?.password)?.principalArn : undefined;
};
/** A Pod of the ServiceAccount: the admission plugin copies its imagePullSecrets in. */
const podPullSecrets = async (serviceAccount: string) => {
  const pod = await k.core.createNamespacedPod({
    namespace: PER_SA,
    body: {
      metadata: { generateName: `${serviceAccount}-` },
      spec: {
        serviceAccountName: serviceAccount,
        automountServiceAccountToken: false,
        containers: [{ name: "app", image: `${HOST}/app:1` }],
      },
    },
  });
  return pod.spec?.imagePullSecrets?.map((r) => r.name) ?? [];
};

beforeAll(async () => {
  if (skip) return;
  // No credentials Secret, no keys: the operator's only sources are its
  // ServiceAccount tokens and the credential_process profile (the SDK's
  // environment is set below, not by the stack).
  stack = await startStack({
    ops: OPS,
    namespaces: [...NAMESPACES, ...Object.values(SINGLE)],
    tokenLifetimeMs: TOKEN_LIFETIME_MS,
    credentials: false,
    awsEndpoint: false,
  });
  ({ k, aws, dir } = stack);
  stack.resources.push(...RESOURCES);
  await k.rbac.deleteClusterRoleBinding({ name: DISCOVERY_BINDING }).catch(() => undefined);
  await registerIssuer();
  await useSigningHelperProfile();
  operatorKubeconfig = await stack.serviceAccountKubeconfig("operator");
  await k.core.createNamespacedServiceAccount({
    namespace: OPS,
    body: { metadata: { name: "intruder" } },
  });
  await stack.startOperator({
    config: {
      credentialsSecretName: undefined,
      credentialsSecretNamespace: undefined,
      // Allowed by the administrator (not this API server's own audience), so
      // that the wrong-audience case below reaches STS and is refused there.
      allowedTokenAudiences: "https://kubernetes.default.svc",
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  if (k) await k.rbac.deleteClusterRoleBinding({ name: DISCOVERY_BINDING }).catch(() => undefined);
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe.skipIf(skip)(
  "web identity from the cluster's ServiceAccount tokens: IAM reads the issuer, one token serves many",
  () => {
    it("is RoleNotAssumable while IAM cannot read the issuer's keys anonymously", async () => {
      await applyResource(k, "wi-main", spec(NAMESPACES, { webIdentity: { roleArn: WEB_ROLE } }));
      const message = await waitNotReady("wi-main", Reason.RoleNotAssumable);
      expect(message).toContain(
        `role ${WEB_ROLE} assumed with the web identity of the operator's own ServiceAccount`,
      );
      expect(message).toContain("could not read the issuer's discovery document or keys");
      expect(aws.calls({ action: "AssumeRoleWithWebIdentity" }).at(-1)?.errorCode).toBe(
        "IDPCommunicationError",
      );
      expect(await passwordIn(NAMESPACES[0] as string)).toBeUndefined();
    });

    it("serves 50 namespaces with one TokenRequest, one STS and one ECR call per refresh, and no keys anywhere", async () => {
      // docs/identity.md step 1: let IAM read discovery and JWKS without credentials.
      await allowAnonymousDiscovery(k, DISCOVERY_BINDING);
      const webCalls = () =>
        aws.calls(
          (c) =>
            c.action === "AssumeRoleWithWebIdentity" && c.roleArn === WEB_ROLE && c.status === 200,
        );
      const principal = `arn:aws:sts::${ACCOUNT}:assumed-role/wi-pull/ecr-creds-refresher`;
      const ecrCalls = () =>
        aws.calls({
          service: "ecr",
          action: "GetAuthorizationToken",
          principalArn: principal,
          status: 200,
        });

      await waitReady("wi-main");
      const firstReadyAt = Date.now();
      const first = await passwordIn(NAMESPACES[0] as string);
      expect(issuedTo(first)).toMatchObject({ principalArn: principal, accountId: ACCOUNT });
      for (const ns of NAMESPACES) expect(await passwordIn(ns), ns).toBe(first);
      expect(webCalls().map((c) => c.subject)).toEqual([OPERATOR_SUB]);
      expect(ecrCalls()).toHaveLength(1);

      // The next refresh (at about half the token's lifetime): again one of each.
      const second = await waitFor(
        "a refreshed token in every namespace",
        async () => {
          const p = await passwordIn(NAMESPACES[49] as string);
          if (!p || p === first) return undefined;
          for (const ns of NAMESPACES) if ((await passwordIn(ns)) !== p) return undefined;
          return p;
        },
        { timeoutMs: TOKEN_LIFETIME_MS + 10_000, intervalMs: 250 },
      );
      expect(issuedTo(second)?.principalArn).toBe(principal);
      expect(webCalls()).toHaveLength(2);
      expect(ecrCalls()).toHaveLength(2);
      // ...and one TokenRequest for it (audit log), minted fresh for the exchange.
      const tokenRequests = await auditWrites(
        cp.auditLogPath,
        (e) =>
          e.verb === "create" &&
          e.objectRef?.resource === "serviceaccounts" &&
          e.objectRef?.subresource === "token" &&
          e.objectRef?.namespace === OPS &&
          e.objectRef?.name === "operator" &&
          e.user.username === OPERATOR_SUB,
        firstReadyAt,
      );
      expect(tokenRequests.map((e) => e.responseStatus?.code)).toEqual([201]);

      // No Secret in any namespace holds an AWS key, and none holds a
      // ServiceAccount token minted for STS: TokenRequest tokens are never stored.
      const all = await k.core.listSecretForAllNamespaces();
      expect(credentialsIn(all.items)).toEqual([]);
      expect(all.items.length).toBeGreaterThanOrEqual(50);
    });
  },
);

describe.skipIf(skip)(
  "web identity from the cluster's ServiceAccount tokens: refused identities",
  () => {
    it("refuses a ServiceAccount outside the trust policy: RoleNotAssumable naming it and the role", async () => {
      await applyResource(
        k,
        SINGLE.intruder,
        spec([SINGLE.intruder], {
          webIdentity: { roleArn: WEB_ROLE, serviceAccount: { namespace: OPS, name: "intruder" } },
        }),
      );
      const message = await waitNotReady(SINGLE.intruder, Reason.RoleNotAssumable);
      expect(message).toContain(
        `role ${WEB_ROLE} assumed with the web identity of ServiceAccount ${OPS}/intruder`,
      );
      expect(message).toContain("Not authorized to perform sts:AssumeRoleWithWebIdentity");
      expect(
        aws.calls({ action: "AssumeRoleWithWebIdentity", errorCode: "AccessDenied" }).at(-1)
          ?.subject,
      ).toBe(`system:serviceaccount:${OPS}:intruder`);
      expect(await readSecret(k, SINGLE.intruder, "ecr-pull")).toBeUndefined();
    });

    it("refuses a token for the wrong audience: RoleNotAssumable naming the ServiceAccount and role", async () => {
      await applyResource(
        k,
        SINGLE.audience,
        spec([SINGLE.audience], {
          webIdentity: { roleArn: WEB_ROLE, audience: "https://kubernetes.default.svc" },
        }),
      );
      const message = await waitNotReady(SINGLE.audience, Reason.RoleNotAssumable);
      expect(message).toContain(
        `role ${WEB_ROLE} assumed with the web identity of the operator's own ServiceAccount`,
      );
      expect(message).toContain("Incorrect token audience");
      expect(await readSecret(k, SINGLE.audience, "ecr-pull")).toBeUndefined();
    });

    it("refuses a forged token through the operator's source: RoleNotAssumable naming the ServiceAccount and role", async () => {
      // A token with every claim right (issuer, subject, audience, expiry) but
      // signed by a key the issuer never published.
      const forger = await generateKeyPair("RS256");
      const kid = (await exportJWK(forger.publicKey)).n?.slice(0, 16) ?? "forged";
      const now = Math.floor(Date.now() / 1000);
      const forged = await new SignJWT({})
        .setProtectedHeader({ alg: "RS256", kid })
        .setIssuer(issuer)
        .setSubject(OPERATOR_SUB)
        .setAudience("sts.amazonaws.com")
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(forger.privateKey);
      // And a real token with its subject rewritten, signature kept.
      const real = await k.core.createNamespacedServiceAccountToken({
        namespace: OPS,
        name: "intruder",
        body: { spec: { audiences: ["sts.amazonaws.com"], expirationSeconds: 600 } },
      });
      const [h, p, sig] = (real.status?.token ?? "").split(".");
      const claims = JSON.parse(Buffer.from(p as string, "base64url").toString("utf8"));
      claims.sub = OPERATOR_SUB;
      const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`;

      const ref: CredentialSource = {
        kind: "webIdentity",
        webIdentity: { roleArn: WEB_ROLE, serviceAccount: { namespace: OPS, name: "operator" } },
      };
      for (const token of [forged, tampered]) {
        // The operator's own fetch pipeline, with the token swapped in.
        const classified = await fetchSourceToken(
          { credentials: ref, service: "ecr", region: "us-east-1" },
          {
            timeoutMs: 5_000,
            readSecret: async () => null,
            requestServiceAccountToken: async (sa) => ({
              token,
              serviceAccount: sa ?? { namespace: OPS, name: "operator" },
            }),
          },
        ).then(
          () => {
            throw new Error("a forged web identity token was accepted");
          },
          (err: unknown) => err as OperatorError,
        );
        expect(classified.reason).toBe(Reason.RoleNotAssumable);
        expect(classified.message).toContain(
          `role ${WEB_ROLE} assumed with the web identity of ServiceAccount ${OPS}/operator`,
        );
        expect(classified.message).toContain("The token's signature could not be verified");
      }
    });
  },
);

describe.skipIf(skip)(
  "web identity from the cluster's ServiceAccount tokens: role chains, credential_process, a missing ServiceAccount",
  () => {
    it("chains web identity into another account's role with an external ID and session tags", async () => {
      const chained = {
        webIdentity: { roleArn: CHAIN_BASE_ROLE },
        roleArn: CROSS_ROLE,
        externalId: EXTERNAL_ID,
        sessionTags: [{ key: "cluster", value: "wi-test" }],
      };
      await applyResource(
        k,
        SINGLE.chain,
        spec([SINGLE.chain], chained, [{ accountId: OTHER_ACCOUNT }]),
      );
      await waitReady(SINGLE.chain);
      const password = await passwordIn(SINGLE.chain, OTHER_HOST);
      const crossSession = `arn:aws:sts::${OTHER_ACCOUNT}:assumed-role/wi-cross-pull/ecr-creds-refresher`;
      expect(issuedTo(password)).toMatchObject({ principalArn: crossSession });
      expect(
        aws.calls({ action: "AssumeRole", roleArn: CROSS_ROLE, status: 200 }).at(-1),
      ).toMatchObject({
        externalId: EXTERNAL_ID,
        sessionTags: { cluster: "wi-test" },
        roleSessionName: "ecr-creds-refresher",
        principalArn: `arn:aws:sts::${ACCOUNT}:assumed-role/wi-chain-base/ecr-creds-refresher`,
      });

      // A wrong external ID: the second link is refused.
      await applyResource(
        k,
        SINGLE.chainBad,
        spec([SINGLE.chainBad], { ...chained, externalId: "not-the-one" }, [
          { accountId: OTHER_ACCOUNT },
        ]),
      );
      const message = await waitNotReady(SINGLE.chainBad, Reason.RoleNotAssumable);
      expect(message).toContain(
        `role ${CROSS_ROLE} assumed with role ${CHAIN_BASE_ROLE} assumed with the web identity of the operator's own ServiceAccount`,
      );

      // `check` shows each link and the principal STS reports after it.
      const { code, text } = await checkOutput(
        testConfig(operatorKubeconfig, { region: "us-east-1" }),
        SINGLE.chain,
      );
      expect(code, text).toBe(0);
      expect(text).toContain(
        `  1. AssumeRoleWithWebIdentity ${CHAIN_BASE_ROLE} with a token of ServiceAccount ${OPS}/operator (audience sts.amazonaws.com)\n     -> arn:aws:sts::${ACCOUNT}:assumed-role/wi-chain-base/ecr-creds-refresher (account ${ACCOUNT}, role wi-chain-base, session ecr-creds-refresher)\n`,
      );
      expect(text).toContain(
        `  2. AssumeRole ${CROSS_ROLE} with external ID and with session tags cluster\n     -> ${crossSession} (account ${OTHER_ACCOUNT}, role wi-cross-pull, session ecr-creds-refresher)\n`,
      );
      expect(text).toContain(`  ${OTHER_HOST}  (token expires `);
      expect(text).toContain(`identity ${crossSession})`);
      expect(text).not.toMatch(/ASIA[A-Z0-9]{12,}|eyJ[\w-]+\.eyJ/);
    });

    it("uses a credential_process profile (IAM Roles Anywhere) through the SDK's chain", async () => {
      await applyResource(k, SINGLE.process, spec([SINGLE.process]));
      await waitReady(SINGLE.process);
      const password = await passwordIn(SINGLE.process);
      expect(issuedTo(password)).toMatchObject({
        principalArn: RA_ROLE_SESSION,
        accountId: ACCOUNT,
      });
      const runs = (await readFile(join(dir, "helper-runs"), "utf8")).trim().split("\n");
      expect(runs.length).toBeGreaterThanOrEqual(1);
    });

    it("an unknown ServiceAccount is ServiceAccountTokenFailed, not a crash", async () => {
      try {
        await k.core.readNamespacedServiceAccount({ namespace: OPS, name: "missing" });
        throw new Error("ServiceAccount missing should not exist");
      } catch (err) {
        expect(statusOf(err)).toBe(404);
      }
      await applyResource(
        k,
        SINGLE.intruder,
        spec([SINGLE.intruder], {
          webIdentity: { roleArn: WEB_ROLE, serviceAccount: { namespace: OPS, name: "missing" } },
        }),
      );
      const message = await waitNotReady(SINGLE.intruder, Reason.ServiceAccountTokenFailed);
      expect(message).toContain(`failed to request a token for ServiceAccount ${OPS}/missing`);
    });
  },
);

describe.skipIf(skip)(
  "pull rights per ServiceAccount (KEP-4412 annotation, no node configuration)",
  () => {
    beforeAll(async () => {
      aws.addRole({ roleArn: ROLE_A, trustPolicy: trustWebIdentity([sub("api"), sub("builder")]) });
      aws.addRole({ roleArn: ROLE_B, trustPolicy: trustWebIdentity([sub("builder")]) });
      await stack.namespace(PER_SA);
      const annotated = (name: string, role?: string) =>
        k.core.createNamespacedServiceAccount({
          namespace: PER_SA,
          body: {
            metadata: {
              name,
              ...(role ? { annotations: { [ANNOTATION_ECR_ROLE_ARN]: role } } : {}),
            },
          },
        });
      await annotated("api", ROLE_A);
      await annotated("builder", ROLE_B);
      await annotated("intruder", ROLE_B);
    });

    it("gives two ServiceAccounts with two roles two Secrets, each attached only to its own; the third gets the default", async () => {
      await applyResource(k, PER_SA, {
        ...spec([PER_SA], { webIdentity: { roleArn: WEB_ROLE } }),
        serviceAccounts: ["*"],
        serviceAccountRoles: { unannotated: "Default" },
      });
      await waitFor(
        "each ServiceAccount to reference its own Secret",
        async () => {
          const [api, builder, def] = await Promise.all(
            ["api", "builder", "default"].map(pullSecretsOf),
          );
          return JSON.stringify([api, builder, def]) ===
            JSON.stringify([[secretA], [secretB], ["ecr-pull"]])
            ? true
            : undefined;
        },
        { timeoutMs: 30_000 },
      );
      // Each Secret holds a password the double issued to that role's session.
      expect(await principalOf(secretA)).toBe(sessionOf(ROLE_A));
      expect(await principalOf(secretB)).toBe(sessionOf(ROLE_B));
      expect(await principalOf("ecr-pull")).toBe(sessionOf(WEB_ROLE));
      const passwords = await Promise.all(
        [secretA, secretB, "ecr-pull"].map(async (n) => {
          const s = await readSecret(k, PER_SA, n);
          return s ? dockerConfigOf(s).auths[HOST]?.password : undefined;
        }),
      );
      expect(new Set(passwords).size).toBe(3);
      // A Pod of each resolves only its own Secret, through its spec.
      expect(await podPullSecrets("api")).toEqual([secretA]);
      expect(await podPullSecrets("builder")).toEqual([secretB]);
      expect(await podPullSecrets("default")).toEqual(["ecr-pull"]);
      // Each token came from the ServiceAccount's own TokenRequest and the role's trust.
      const subjects = (role: string) =>
        aws
          .calls({ action: "AssumeRoleWithWebIdentity", roleArn: role, status: 200 })
          .map((c) => c.subject);
      expect(new Set(subjects(ROLE_A))).toEqual(new Set([sub("api")]));
      expect(new Set(subjects(ROLE_B))).toEqual(new Set([sub("builder")]));
    });

    it("refuses a ServiceAccount outside the role's trust policy: RoleNotAssumable naming it and the role", async () => {
      const failure = await waitFor("the intruder in status.failures", async () => {
        const r = await getResource(k, PER_SA);
        return r?.status?.failures?.find((f) => f.message?.includes(`${PER_SA}/intruder`));
      });
      expect(failure.reason).toBe(Reason.RoleNotAssumable);
      expect(failure.message).toContain(
        `role ${ROLE_B} assumed with the web identity of ServiceAccount ${PER_SA}/intruder`,
      );
      expect(await pullSecretsOf("intruder")).toEqual([]);
      expect(
        aws
          .calls({
            action: "AssumeRoleWithWebIdentity",
            roleArn: ROLE_B,
            errorCode: "AccessDenied",
          })
          .at(-1)?.subject,
      ).toBe(sub("intruder"));
    });
  },
);

describe.skipIf(skip)("pull rights per ServiceAccount: an annotation that changes", () => {
  it("moves a ServiceAccount whose annotation changes, and deletes the Secret no longer used", async () => {
    await k.core.deleteNamespacedServiceAccount({ namespace: PER_SA, name: "intruder" });
    const ecrCallsA = () =>
      aws.calls({
        service: "ecr",
        action: "GetAuthorizationToken",
        principalArn: sessionOf(ROLE_A),
        status: 200,
      }).length;
    const before = ecrCallsA();
    await k.core.patchNamespacedServiceAccount(
      {
        namespace: PER_SA,
        name: "builder",
        body: { metadata: { annotations: { [ANNOTATION_ECR_ROLE_ARN]: ROLE_A } } },
      },
      mergePatch,
    );
    // builder's earlier Pods name role B's Secret: it stays while they do
    // (status.keptSecrets), and goes once they are gone.
    await waitFor(
      "builder on role A's Secret, role B's Secret kept for builder's Pods",
      async () => {
        const kept = (await getResource(k, PER_SA))?.status?.keptSecrets ?? [];
        return JSON.stringify(await pullSecretsOf("builder")) === JSON.stringify([secretA]) &&
          kept.some((s) => s.namespace === PER_SA && s.name === secretB) &&
          (await readSecret(k, PER_SA, secretB)) !== undefined
          ? true
          : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const pods = await k.core.listNamespacedPod({ namespace: PER_SA });
    for (const pod of pods.items) {
      if (!pod.spec?.imagePullSecrets?.some((r) => r.name === secretB)) continue;
      await k.core.deleteNamespacedPod({ namespace: PER_SA, name: pod.metadata?.name ?? "" });
    }
    await waitFor(
      "role B's Secret gone once no Pod names it",
      async () => ((await readSecret(k, PER_SA, secretB)) === undefined ? true : undefined),
      { timeoutMs: 30_000 },
    );
    expect(await pullSecretsOf("api")).toEqual([secretA]);
    expect(await podPullSecrets("builder")).toEqual([secretA]);
    // Role A's token is shared: moving builder onto it fetched no new ECR token.
    expect(ecrCallsA()).toBe(before);
    const r = await waitReady(PER_SA);
    expect(r.status?.failures ?? [], JSON.stringify(r.status)).toEqual([]);
  });
});
