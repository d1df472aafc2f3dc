// Where the AWS credentials of a token fetch come from: keys in a Secret, a
// ServiceAccount token of the cluster exchanged with AssumeRoleWithWebIdentity,
// or the AWS SDK's default chain (environment, shared config with
// credential_process, web identity as IRSA sets it up, the container endpoint
// as EKS Pod Identity sets it up, instance metadata), or IAM Roles Anywhere
// with the certificate of a kubernetes.io/tls Secret, with an optional role
// assumed on top through STS (external ID, session tags). The SDK's own
// providers do all of it but Roles Anywhere's CreateSession, which no SDK
// signs: src/aws/roles-anywhere.ts does. Which kinds of source there are is
// the union in credential-source.ts; `baseStep` here makes each kind's.
import {
  fromNodeProviderChain,
  fromTemporaryCredentials,
  fromWebToken,
} from "@aws-sdk/credential-providers";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { DEFAULT_WEB_IDENTITY_AUDIENCE } from "../api/schema.js";
import { operatorError } from "../errors.js";
import { assertNever } from "../kube/never.js";
import type { ServiceAccountRef } from "../kube/service-account-token.js";
import {
  type AssumedRole,
  type CredentialSource,
  describeServiceAccount,
  type SecretRef,
  type WebIdentityRef,
} from "./credential-source.js";
import {
  assertCertificateValid,
  createSession,
  describeCertificate,
  describeSecret,
  type RolesAnywhereRef,
  type RolesAnywhereSession,
  x509IdentityFromSecret,
} from "./roles-anywhere.js";

import { awsClientConfig } from "./token.js";

export type {
  AssumedRole,
  CredentialSource,
  CredentialSourceKind,
  SecretRef,
  WebIdentityRef,
} from "./credential-source.js";
export {
  credentialsKey,
  describeCredentials,
  describeServiceAccount,
} from "./credential-source.js";
export type { RolesAnywhereRef, ServiceAccountRef };

/** The session name of every role the operator assumes (CloudTrail shows it). */
export const ROLE_SESSION_NAME = "ecr-creds-refresher";

export const ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID";
export const SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY";
export const SESSION_TOKEN = "AWS_SESSION_TOKEN";

/** A Secret's `data` as the API returns it: base64 values. */
export type SecretData = Record<string, string> | undefined;

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeKey(
  ref: SecretRef,
  data: SecretData,
  key: string,
  required: boolean,
): string | undefined {
  const raw = data?.[key];
  const p = { secret: `Secret ${ref.namespace}/${ref.name}`, key };
  if (raw === undefined) {
    if (!required) return undefined;
    throw operatorError("CredentialsSecretInvalid", "missingKey", p);
  }
  let value: string;
  try {
    value = utf8.decode(Buffer.from(raw, "base64"));
  } catch {
    throw operatorError("CredentialsSecretInvalid", "notUtf8", p);
  }
  if (value === "") {
    if (!required) return undefined;
    throw operatorError("CredentialsSecretInvalid", "empty", p);
  }
  if (value.trim() !== value) {
    // AWS keys never contain white space; a trailing newline usually comes
    // from `kubectl create secret --from-file` of a file ending in one.
    throw operatorError("CredentialsSecretInvalid", "whitespace", p);
  }
  return value;
}

/** Reads static keys out of a credentials Secret's data, with errors that name what to fix. */
export function keysFromSecret(ref: SecretRef, data: SecretData): AwsCredentialIdentity {
  const accessKeyId = decodeKey(ref, data, ACCESS_KEY_ID, true) as string;
  const secretAccessKey = decodeKey(ref, data, SECRET_ACCESS_KEY, true) as string;
  const sessionToken = decodeKey(ref, data, SESSION_TOKEN, false);
  return sessionToken
    ? { accessKeyId, secretAccessKey, sessionToken }
    : { accessKeyId, secretAccessKey };
}

/** Mints a ServiceAccount token (TokenRequest); absent serviceAccount: the operator's own. */
export type RequestServiceAccountToken = (
  serviceAccount: ServiceAccountRef | undefined,
  audience: string,
) => Promise<{ token: string; serviceAccount: ServiceAccountRef }>;

export interface ProviderOptions {
  region: string;
  /** Looks a credentials Secret up (from the informer cache or the API); undefined when absent. */
  readSecret: (ref: SecretRef) => Promise<SecretData | null>;
  /** For web identity; without it a webIdentity source fails with a message saying so. */
  requestServiceAccountToken?: RequestServiceAccountToken;
  /** Deadline of each STS call. */
  timeoutMs: number;
  /** AWS's clock minus this host's, as measured so far (ms). */
  clockOffsetMs?: number;
  /** Reused default chain, so its cache of IRSA / Pod Identity credentials is shared. */
  defaultChain?: AwsCredentialIdentityProvider;
}

const sharedChain = { provider: undefined as AwsCredentialIdentityProvider | undefined };

/** The SDK's default chain, made once per process so its credential cache is shared. */
export function defaultChain(): AwsCredentialIdentityProvider {
  sharedChain.provider ??= fromNodeProviderChain();
  return sharedChain.provider;
}

/** One link of a credentials chain, for `check` to show. */
export interface CredentialsStep {
  /** What this link is, in words: "web identity of ServiceAccount ops/operator", "AssumeRole X". */
  description: string;
  provider: AwsCredentialIdentityProvider;
  /** Works now, but will not for long (a certificate near its end): what to check, in words. */
  warning?: string;
}

/**
 * STS clients: the proxy-aware agent, deadline and clock-corrected retry of
 * every AWS client, signed with what the source's ECR client learnt of this
 * host's clock.
 */
function stsClientConfig(opts: ProviderOptions) {
  return {
    region: opts.region,
    ...awsClientConfig(opts.timeoutMs),
    ...(opts.clockOffsetMs ? { systemClockOffset: opts.clockOffsetMs } : {}),
  };
}

/**
 * The links of a source's chain, base identity first: each step's provider
 * yields the credentials after that step. The last one is what fetches tokens.
 */
export async function credentialsSteps(
  source: CredentialSource,
  opts: ProviderOptions,
): Promise<CredentialsStep[]> {
  const base = await baseStep(source, opts);
  return source.role ? [base, assumeRoleStep(source.role, base.provider, opts)] : [base];
}

/** The base identity's link: what yields credentials before any role is assumed. */
async function baseStep(source: CredentialSource, opts: ProviderOptions): Promise<CredentialsStep> {
  switch (source.kind) {
    case "secretKeys":
      return await secretKeysStep(source.secretRef, opts);
    case "webIdentity":
      return await webIdentityStep(source.webIdentity, opts);
    case "rolesAnywhere":
      return await rolesAnywhereStep(source.rolesAnywhere, opts);
    case "defaultChain":
      return {
        description: "the AWS SDK's default credential chain",
        provider: opts.defaultChain ?? defaultChain(),
      };
    default:
      return assertNever(source, "credential source");
  }
}

/** Static keys, read from the Secret (the informer cache) at each fetch. */
async function secretKeysStep(ref: SecretRef, opts: ProviderOptions): Promise<CredentialsStep> {
  const data = await opts.readSecret(ref);
  if (data === null) throw operatorError("CredentialsSecretNotFound", "notFound", ref);
  const keys = keysFromSecret(ref, data);
  return { description: `keys in Secret ${ref.namespace}/${ref.name}`, provider: async () => keys };
}

/** AssumeRoleWithWebIdentity with a freshly minted ServiceAccount token. */
async function webIdentityStep(
  web: WebIdentityRef,
  opts: ProviderOptions,
): Promise<CredentialsStep> {
  if (!opts.requestServiceAccountToken) {
    throw operatorError("CredentialsInvalid", "noKubeClient", {
      source: describeServiceAccount(web.serviceAccount),
    });
  }
  const audience = web.audience ?? DEFAULT_WEB_IDENTITY_AUDIENCE;
  // A fresh, short-lived token for each exchange; it lives only in this call.
  const minted = await opts.requestServiceAccountToken(web.serviceAccount, audience);
  const sa = minted.serviceAccount;
  return {
    description: `AssumeRoleWithWebIdentity ${web.roleArn} with a token of ServiceAccount ${sa.namespace}/${sa.name} (audience ${audience})`,
    provider: fromWebToken({
      roleArn: web.roleArn,
      roleSessionName: ROLE_SESSION_NAME,
      webIdentityToken: minted.token,
      clientConfig: stsClientConfig(opts),
    }),
  };
}

/** The role on top: AssumeRole with the base identity's credentials. */
function assumeRoleStep(
  role: AssumedRole,
  base: AwsCredentialIdentityProvider,
  opts: ProviderOptions,
): CredentialsStep {
  const tags = Object.entries(role.sessionTags ?? {}).map(([Key, Value]) => ({ Key, Value }));
  const extras = [
    role.externalId ? "with external ID" : "",
    tags.length ? `with session tags ${tags.map((t) => t.Key).join(",")}` : "",
  ].filter(Boolean);
  return {
    description: `AssumeRole ${role.roleArn}${extras.length ? ` ${extras.join(" and ")}` : ""}`,
    provider: fromTemporaryCredentials({
      masterCredentials: base,
      params: {
        RoleArn: role.roleArn,
        RoleSessionName: ROLE_SESSION_NAME,
        ...(role.externalId ? { ExternalId: role.externalId } : {}),
        ...(tags.length ? { Tags: tags } : {}),
      },
      clientConfig: stsClientConfig(opts),
    }),
  };
}

/**
 * IAM Roles Anywhere: the certificate and key of the tls Secret (read anew
 * for every fetch, so a renewed certificate is used by the next session),
 * checked for validity before AWS is asked, then one CreateSession per fetch,
 * kept while its credentials last.
 */
async function rolesAnywhereStep(
  ra: RolesAnywhereRef,
  opts: ProviderOptions,
): Promise<CredentialsStep> {
  const ref = ra.certificateSecret;
  const data = await opts.readSecret(ref);
  if (data === null) throw operatorError("CredentialsSecretNotFound", "certificate", ref);
  const id = x509IdentityFromSecret(ref, data);
  const now = Date.now() + (opts.clockOffsetMs ?? 0);
  const state = assertCertificateValid(ref, id.certificate, now);
  const certificate = describeCertificate(id.certificate);
  // Still good, but cert-manager renews at two thirds of the lifetime: one
  // this close to its end was not renewed, and will fail when it ends.
  const warning =
    state.state === "nearExpiry"
      ? "; less than a tenth of its lifetime is left: check that it is being renewed"
      : "";
  let session: Promise<RolesAnywhereSession> | undefined;
  const base: AwsCredentialIdentityProvider = async () => {
    session ??= createSession(ra, id, {
      timeoutMs: opts.timeoutMs,
      ...(opts.clockOffsetMs ? { clockOffsetMs: opts.clockOffsetMs } : {}),
    }).catch((err: unknown) => {
      session = undefined;
      const code = (err as { name?: string }).name;
      if (code === "AccessDeniedException") {
        throw operatorError(
          "CredentialsInvalid",
          "certificateRefused",
          {
            secret: describeSecret(ref),
            certificate,
            trustAnchorArn: ra.trustAnchorArn,
            profileArn: ra.profileArn,
            roleArn: ra.roleArn,
            detail: `${code}: ${(err as Error).message}`.slice(0, 300),
          },
          err,
        );
      }
      throw err;
    });
    const s = await session;
    if (s.credentials.expiration.getTime() - Date.now() < 60_000) session = undefined;
    return s.credentials;
  };
  return {
    provider: base,
    description: `IAM Roles Anywhere CreateSession for ${ra.roleArn} with the certificate in ${describeSecret(ref)} (${certificate}${warning}), trust anchor ${ra.trustAnchorArn}, profile ${ra.profileArn}`,
    ...(warning
      ? {
          warning: `the certificate in ${describeSecret(ref)} (${certificate}) has less than a tenth of its lifetime left and was not renewed: check its issuer (cert-manager renews at two thirds); IAM Roles Anywhere refuses it once it expires`,
        }
      : {}),
  };
}
