// The one AWS fetch pipeline, shared by the operator and `check`: resolve the
// source's credentials (a Secret's keys or the SDK's chain, a role on top),
// call GetAuthorizationToken, and turn any failure into a catalogue error
// whose code is the condition reason.
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import {
  credentialsProvider,
  describeCredentials,
  type SecretData,
  type SecretRef,
} from "./credentials.js";
import { classifyAwsError } from "./errors.js";
import { type FetchOptions, fetchToken, type RegistryToken } from "./token.js";
import type { TokenSource } from "./token-cache.js";

export interface SourceFetchOptions {
  /** Deadline of each AWS call. */
  timeoutMs: number;
  /** Looks a credentials Secret up; null when it does not exist. */
  readSecret: (ref: SecretRef) => Promise<SecretData | null>;
  /** Told each AWS call's duration and error code (for the metrics). */
  observe?: FetchOptions["observe"];
}

export interface SourceToken {
  token: RegistryToken;
  /** The credentials the token was fetched with (`check` asks STS who they are). */
  credentials: AwsCredentialIdentityProvider;
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
  try {
    const credentials = await credentialsProvider(source.credentials, {
      region: source.region,
      timeoutMs: opts.timeoutMs,
      readSecret: opts.readSecret,
    });
    const token = await fetchToken(source.service, source.region, credentials, {
      timeoutMs: opts.timeoutMs,
      observe: opts.observe,
    });
    return { token, credentials };
  } catch (err) {
    throw classifyAwsError(err, describeCredentials(source.credentials), fetchStep(source));
  }
}
