// The one AWS fetch pipeline, shared by the operator and `check`: resolve the
// source's credentials (a Secret's keys, web identity from a ServiceAccount
// token, IAM Roles Anywhere, or the SDK's chain; a role on top),
// call GetAuthorizationToken, and turn any failure into a catalogue error
// whose code is the condition reason.
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import {
  type CredentialsStep,
  credentialsSteps,
  describeCredentials,
  describeServiceAccount,
  type RequestServiceAccountToken,
  type SecretData,
  type SecretRef,
  type ServiceAccountRef,
} from "./credentials.js";
import { classifyAwsError } from "./errors.js";
import { type FetchOptions, fetchToken, type RegistryToken, type TokenClients } from "./token.js";
import { type TokenSource, tokenSourceKey } from "./token-cache.js";

export interface SourceFetchOptions {
  /** Deadline of each AWS call. */
  timeoutMs: number;
  /** Looks a credentials Secret up; null when it does not exist. */
  readSecret: (ref: SecretRef) => Promise<SecretData | null>;
  /** Told each AWS call's duration and error code (for the metrics). */
  observe?: FetchOptions["observe"];
  /** Mints ServiceAccount tokens for web identity (TokenRequest). */
  requestServiceAccountToken?: RequestServiceAccountToken;
  /**
   * The operator's long-lived SDK clients, one per source (they keep what
   * the SDK learnt of this host's clock); absent: a client for this fetch.
   */
  clients?: TokenClients;
}

export interface SourceToken {
  token: RegistryToken;
  /** The credentials the token was fetched with (`check` asks STS who they are). */
  credentials: AwsCredentialIdentityProvider;
  /** Each link of the credentials chain (`check` shows who STS says each one is). */
  steps: CredentialsStep[];
}

/** What a fetch of this source does, for messages: "get an ECR token in us-east-1". */
export function fetchStep(source: TokenSource): string {
  return `get an ${source.service === "ecr" ? "ECR" : "ECR Public"} token in ${source.region}`;
}

/** Fetches one token of a source; throws an OperatorError naming what to fix. */
export async function fetchSourceToken(
  source: TokenSource,
  opts: SourceFetchOptions,
): Promise<SourceToken> {
  // Whose token a web identity exchanged: a refusal names it (for the
  // operator's own ServiceAccount too), the `sub` its role must trust.
  let minted: ServiceAccountRef | undefined;
  const request = opts.requestServiceAccountToken;
  try {
    const key = tokenSourceKey(source);
    const steps = await credentialsSteps(source.credentials, {
      region: source.region,
      timeoutMs: opts.timeoutMs,
      readSecret: opts.readSecret,
      ...(request
        ? {
            requestServiceAccountToken: async (sa, audience) => {
              const answer = await request(sa, audience);
              minted = answer.serviceAccount;
              return answer;
            },
          }
        : {}),
      ...(opts.clients ? { clockOffsetMs: opts.clients.clockOffsetMs(key) } : {}),
    });
    const credentials = (steps.at(-1) as CredentialsStep).provider;
    const token = opts.clients
      ? await opts.clients.fetch(key, source.service, source.region, credentials)
      : await fetchToken(source.service, source.region, credentials, {
          timeoutMs: opts.timeoutMs,
          observe: opts.observe,
        });
    const warning = steps.find((s) => s.warning)?.warning;
    return {
      token: warning ? { ...token, credentialsWarning: warning } : token,
      credentials,
      steps,
    };
  } catch (err) {
    const credentials = source.credentials;
    let described = describeCredentials(credentials);
    if (minted && credentials.kind === "webIdentity" && !credentials.webIdentity.serviceAccount) {
      const own = describeServiceAccount(undefined);
      described = described.replace(own, `${own} ${minted.namespace}/${minted.name}`);
    }
    // With a role on top, an AccessDenied may be that role's: no `sub` to name then.
    const trusting = credentials.role ? undefined : minted;
    throw classifyAwsError(err, described, fetchStep(source), trusting);
  }
}
