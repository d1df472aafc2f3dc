// Where the AWS credentials of a token fetch come from: keys in a Secret, or
// the AWS SDK's default chain (environment, shared config, web identity as
// IRSA sets it up, the container endpoint as EKS Pod Identity sets it up,
// instance metadata), with an optional role assumed on top through STS. The
// SDK's own providers do all of it; nothing here signs or parses credentials.
import { fromNodeProviderChain, fromTemporaryCredentials } from "@aws-sdk/credential-providers";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { operatorError } from "../errors.js";

export interface SecretRef {
  namespace: string;
  name: string;
}

/** One credentials source, as a resource or registry entry names it. */
export interface CredentialsRef {
  /** Keys from this Secret; absent: the SDK's default chain. */
  secretRef?: SecretRef;
  roleArn?: string;
  externalId?: string;
}

/** A stable key for a credentials source: equal keys share tokens. */
export function credentialsKey(ref: CredentialsRef): string {
  const base = ref.secretRef ? `secret:${ref.secretRef.namespace}/${ref.secretRef.name}` : "chain";
  const role = ref.roleArn ? `|role:${ref.roleArn}|ext:${ref.externalId ?? ""}` : "";
  return base + role;
}

/** Human wording of a source for messages: never contains a key. */
export function describeCredentials(ref: CredentialsRef): string {
  const base = ref.secretRef
    ? `the keys in Secret ${ref.secretRef.namespace}/${ref.secretRef.name}`
    : "the AWS SDK's default credential chain";
  return ref.roleArn ? `role ${ref.roleArn} assumed with ${base}` : base;
}

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

export interface ProviderOptions {
  region: string;
  /** Looks a credentials Secret up (from the informer cache or the API); undefined when absent. */
  readSecret: (ref: SecretRef) => Promise<SecretData | null>;
  /** Deadline of each STS call. */
  timeoutMs: number;
  /** Reused default chain, so its cache of IRSA / Pod Identity credentials is shared. */
  defaultChain?: AwsCredentialIdentityProvider;
}

const sharedChain = { provider: undefined as AwsCredentialIdentityProvider | undefined };

/** The SDK's default chain, made once per process so its credential cache is shared. */
export function defaultChain(): AwsCredentialIdentityProvider {
  sharedChain.provider ??= fromNodeProviderChain();
  return sharedChain.provider;
}

/** Builds the SDK credentials provider for a source. */
export async function credentialsProvider(
  ref: CredentialsRef,
  opts: ProviderOptions,
): Promise<AwsCredentialIdentityProvider> {
  let base: AwsCredentialIdentityProvider;
  if (ref.secretRef) {
    const data = await opts.readSecret(ref.secretRef);
    if (data === null) throw operatorError("CredentialsSecretNotFound", "notFound", ref.secretRef);
    const keys = keysFromSecret(ref.secretRef, data);
    base = async () => keys;
  } else {
    base = opts.defaultChain ?? defaultChain();
  }
  if (!ref.roleArn) return base;
  return fromTemporaryCredentials({
    masterCredentials: base,
    params: {
      RoleArn: ref.roleArn,
      RoleSessionName: "ecr-creds-refresher",
      ...(ref.externalId ? { ExternalId: ref.externalId } : {}),
    },
    clientConfig: {
      region: opts.region,
      maxAttempts: 1,
      requestHandler: {
        requestTimeout: opts.timeoutMs,
        connectionTimeout: opts.timeoutMs,
        throwOnRequestTimeout: true,
      },
    },
  });
}
