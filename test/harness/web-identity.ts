// The cluster's API server as the OIDC issuer the AWS double trusts, the way
// docs/identity.md sets it up: IAM reads the discovery document and keys
// without credentials (step 1), the issuer is registered as an OIDC provider,
// and roles trust ServiceAccounts by their `sub`.
import { WellKnownApi } from "@kubernetes/client-node";
import { type AwsDouble, issuerThumbprint } from "../aws-double/index.js";
import { bindClusterRole, type TestKube } from "./kube.js";

/** The parts of the issuer's discovery document the tests read. */
export interface IssuerDiscovery {
  /** The issuer URL (`https://…`), as tokens carry it in `iss`. */
  issuer: string;
  /** Where the issuer's signing keys are served. */
  jwks_uri: string;
}

/** The issuer as registered with the double: its URL and its provider's ARN. */
export interface RegisteredIssuer {
  issuer: string;
  providerArn: string;
}

/** The issuer's OpenID discovery document, read with the test's admin client. */
export async function readIssuerDiscovery(k: TestKube): Promise<IssuerDiscovery> {
  const raw: unknown = await k.kc
    .makeApiClient(WellKnownApi)
    .getServiceAccountIssuerOpenIDConfiguration();
  // The client returns the document as text or already parsed, by version.
  return (typeof raw === "string" ? JSON.parse(raw) : raw) as IssuerDiscovery;
}

/**
 * Registers `issuer` with the double as IAM's OIDC provider in `accountId`
 * (audience sts.amazonaws.com, the thumbprint of its serving certificate).
 * Returns the provider's ARN, for trust policies' `Federated` principal.
 */
export async function registerOidcProvider(
  aws: AwsDouble,
  issuer: string,
  accountId: string,
): Promise<string> {
  return aws.addOidcProvider({
    url: issuer,
    clientIds: ["sts.amazonaws.com"],
    thumbprints: [await issuerThumbprint(issuer)],
    accountId,
  });
}

/**
 * Reads the cluster's issuer from its discovery document and registers it
 * with the double (see registerOidcProvider).
 */
export async function registerClusterIssuer(
  k: TestKube,
  aws: AwsDouble,
  accountId: string,
): Promise<RegisteredIssuer> {
  const { issuer } = await readIssuerDiscovery(k);
  return { issuer, providerArn: await registerOidcProvider(aws, issuer, accountId) };
}

/**
 * docs/identity.md step 1: a ClusterRoleBinding named `binding` that lets
 * unauthenticated readers (IAM) fetch the discovery document and keys.
 * Fails with the API's 409 when the binding already exists.
 */
export async function allowAnonymousDiscovery(k: TestKube, binding: string): Promise<void> {
  await bindClusterRole(k, binding, "system:service-account-issuer-discovery", [
    { apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "system:unauthenticated" },
  ]);
}

/** The `sub` claim of a ServiceAccount's token. */
export function serviceAccountSub(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

/**
 * A trust policy letting tokens of `issuer` with audience sts.amazonaws.com
 * and one of `subjects` (see serviceAccountSub) assume the role.
 */
export function webIdentityTrust({ issuer, providerArn }: RegisteredIssuer, subjects: string[]) {
  const host = issuer.slice("https://".length);
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow" as const,
        Principal: { Federated: providerArn },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          StringEquals: { [`${host}:aud`]: "sts.amazonaws.com", [`${host}:sub`]: subjects },
        },
      },
    ],
  };
}
