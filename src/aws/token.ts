// ECR (or ECR Public) GetAuthorizationToken calls through the AWS SDK.
// Endpoints come from the SDK's standard settings (AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_ECR_PUBLIC, AWS_ENDPOINT_URL_STS,
// AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT); proxies from the
// standard variables (src/proxy.ts).
//
// One SDK client per token source lives across fetches: the SDK learns this
// host's clock offset from AWS's answers (systemClockOffset) and keeps it in
// the client, so a skewed clock is corrected once, not on every fetch. The
// token cache owns retries and their backoff; the SDK retries only the one
// request it has just re-signed with a corrected clock.
import type * as https from "node:https";
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import {
  ECRPUBLICClient,
  GetAuthorizationTokenCommand as GetPublicAuthorizationTokenCommand,
} from "@aws-sdk/client-ecr-public";
import type {
  AwsCredentialIdentity,
  AwsCredentialIdentityProvider,
  RetryErrorInfo,
  RetryStrategyV2,
  RetryToken,
} from "@smithy/types";
import { PUBLIC_REGISTRY_TOKEN_REGION } from "../api/registry-hosts.js";
import { OutboundAgent } from "../kube/proxy.js";
import { decodeAuthorizationToken } from "./authorization-token.js";
import { awsErrorCode } from "./errors.js";

export type EcrService = "ecr" | "ecr-public";

export interface RegistryToken {
  username: string;
  password: string;
  expiresAt: Date;
  fetchedAt: Date;
  /** The caller's own registry (ECR only): https://<account>.dkr.ecr.<region>.amazonaws.com */
  proxyEndpoint?: string;
  /** Taken up from the operator's token record after a restart, not fetched. */
  reused?: boolean;
  /** The credentials still work but will not for long (a certificate near its end): what to check. */
  credentialsWarning?: string;
}

export interface FetchOptions {
  /** Per-call deadline: a hung endpoint must not hold the refresh forever. */
  timeoutMs: number;
  /** Reported with the duration in seconds and the error code (or "" on success). */
  observe?: (service: EcrService, region: string, seconds: number, errorCode: string) => void;
}

const retryToken = (count: number): RetryToken => ({
  getRetryCount: () => count,
  getRetryDelay: () => 0,
});

/**
 * Retries a request once, at once, when the SDK has just corrected its clock
 * from AWS's answer (it marks the error `clockSkewCorrected`); nothing else.
 */
export const retryCorrectedClockOnce: RetryStrategyV2 = {
  acquireInitialRetryToken: async () => retryToken(0),
  refreshRetryTokenForRetry: async (token: RetryToken, info: RetryErrorInfo) => {
    const corrected = (info.error as { $metadata?: { clockSkewCorrected?: boolean } } | undefined)
      ?.$metadata?.clockSkewCorrected;
    if (token.getRetryCount() === 0 && corrected === true) return retryToken(1);
    // Refusing to retry is throwing; the SDK then throws the request's own error.
    throw info.error;
  },
  recordSuccess: () => undefined,
};

/**
 * SDK client settings every AWS call of the operator shares: the deadline,
 * the proxy-aware agent, one retry after a clock correction only.
 */
export function awsClientConfig(timeoutMs: number) {
  // The SDK types want an https.Agent, which it only uses as a pooling
  // http.Agent; http:// is for endpoint overrides (AWS_ENDPOINT_URL).
  const agent = (protocol: "http:" | "https:") =>
    new OutboundAgent({ keepAlive: true, protocol }) as unknown as https.Agent;
  return {
    maxAttempts: 2,
    retryStrategy: retryCorrectedClockOnce,
    // Without throwOnRequestTimeout the SDK only warns and keeps waiting on a
    // hung endpoint.
    requestHandler: {
      requestTimeout: timeoutMs,
      connectionTimeout: timeoutMs,
      throwOnRequestTimeout: true,
      httpAgent: agent("http:"),
      httpsAgent: agent("https:"),
    },
  };
}

type Client = ECRClient | ECRPUBLICClient;

interface Held {
  client: Client;
  service: EcrService;
  region: string;
  /** This fetch's credentials; fetched once per fetch however often the SDK asks. */
  identity: (props?: Record<string, unknown>) => Promise<AwsCredentialIdentity>;
}

/** The long-lived SDK clients, one per token source key. */
export class TokenClients {
  private readonly held = new Map<string, Held>();

  constructor(private readonly opts: FetchOptions) {}

  /** Fetches a token for a source with these credentials (read anew for every fetch). */
  async fetch(
    key: string,
    service: EcrService,
    region: string,
    credentials: AwsCredentialIdentityProvider,
  ): Promise<RegistryToken> {
    const held = this.clientFor(key, service, region);
    let identity: Promise<AwsCredentialIdentity> | undefined;
    held.identity = (props) => {
      identity ??= credentials(props);
      return identity;
    };
    const started = performance.now();
    const done = (code: string) =>
      this.opts.observe?.(service, region, (performance.now() - started) / 1000, code);
    try {
      let token: string | undefined;
      let expiresAt: Date | undefined;
      let proxyEndpoint: string | undefined;
      if (held.client instanceof ECRClient) {
        const out = await held.client.send(new GetAuthorizationTokenCommand({}));
        const data = out.authorizationData?.[0];
        token = data?.authorizationToken;
        expiresAt = data?.expiresAt;
        proxyEndpoint = data?.proxyEndpoint;
      } else {
        const out = await held.client.send(new GetPublicAuthorizationTokenCommand({}));
        token = out.authorizationData?.authorizationToken;
        expiresAt = out.authorizationData?.expiresAt;
      }
      if (!token || !expiresAt) {
        throw Object.assign(new Error("the response carried no authorization data"), {
          name: "EmptyAuthorizationData",
        });
      }
      const { username, password } = decodeAuthorizationToken(token);
      done("");
      return { username, password, expiresAt, fetchedAt: new Date(), proxyEndpoint };
    } catch (err) {
      done(awsErrorCode(err));
      throw err;
    }
  }

  /** The offset (AWS's clock minus this host's, ms) a source's client has learnt; 0 before any answer. */
  clockOffsetMs(key: string): number {
    return this.held.get(key)?.client.config.systemClockOffset ?? 0;
  }

  /** Drops the client of a source no resource uses any more. */
  forget(key: string): void {
    this.held.get(key)?.client.destroy();
    this.held.delete(key);
  }

  close(): void {
    for (const key of [...this.held.keys()]) this.forget(key);
  }

  private clientFor(key: string, service: EcrService, region: string): Held {
    const existing = this.held.get(key);
    if (existing && existing.service === service && existing.region === region) return existing;
    if (existing) this.forget(key);
    const held = { service, region } as Held;
    // The SDK would keep the first identity for good (static keys carry no
    // expiry): marked as already memoized, it asks this function on every
    // request, which answers this fetch's credentials, so rotated keys take
    // effect on the next fetch without a new client.
    const credentials = Object.assign((props?: Record<string, unknown>) => held.identity(props), {
      memoized: true,
    });
    const config = { ...awsClientConfig(this.opts.timeoutMs), credentials };
    held.client =
      service === "ecr"
        ? new ECRClient({ ...config, region })
        : new ECRPUBLICClient({ ...config, region: PUBLIC_REGISTRY_TOKEN_REGION });
    this.held.set(key, held);
    return held;
  }
}

/** One fetch with a client of its own (the `check` command). */
export async function fetchToken(
  service: EcrService,
  region: string,
  credentials: AwsCredentialIdentityProvider,
  opts: FetchOptions,
): Promise<RegistryToken> {
  const clients = new TokenClients(opts);
  try {
    return await clients.fetch("once", service, region, credentials);
  } finally {
    clients.close();
  }
}
