// One ECR (or ECR Public) GetAuthorizationToken call through the AWS SDK.
// Endpoints come from the SDK's standard settings (AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_ECR_PUBLIC, AWS_ENDPOINT_URL_STS).
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import {
  ECRPUBLICClient,
  GetAuthorizationTokenCommand as GetPublicAuthorizationTokenCommand,
} from "@aws-sdk/client-ecr-public";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { decodeAuthorizationToken } from "./authorization-token.js";

export type EcrService = "ecr" | "ecr-public";

/** ECR Public's API lives only in us-east-1. */
export const ECR_PUBLIC_REGION = "us-east-1";

export interface RegistryToken {
  username: string;
  password: string;
  expiresAt: Date;
  fetchedAt: Date;
  /** The caller's own registry (ECR only): https://<account>.dkr.ecr.<region>.amazonaws.com */
  proxyEndpoint?: string;
  /** Read back from a Secret this operator wrote before it restarted, not fetched. */
  reused?: boolean;
}

export interface FetchOptions {
  /** Per-call deadline: a hung endpoint must not hold the refresh forever. */
  timeoutMs: number;
  /** Reported with the duration in seconds and the error code (or "" on success). */
  observe?: (service: EcrService, region: string, seconds: number, errorCode: string) => void;
}

export async function fetchToken(
  service: EcrService,
  region: string,
  credentials: AwsCredentialIdentityProvider,
  opts: FetchOptions,
): Promise<RegistryToken> {
  const config = {
    region,
    credentials,
    // The token cache owns retries and their backoff; the SDK makes one attempt.
    maxAttempts: 1,
    // Without throwOnRequestTimeout the SDK only warns and keeps waiting on a
    // hung endpoint.
    requestHandler: {
      requestTimeout: opts.timeoutMs,
      connectionTimeout: opts.timeoutMs,
      throwOnRequestTimeout: true,
    },
  };
  const started = performance.now();
  const done = (code: string) =>
    opts.observe?.(service, region, (performance.now() - started) / 1000, code);
  try {
    let token: string | undefined;
    let expiresAt: Date | undefined;
    let proxyEndpoint: string | undefined;
    if (service === "ecr") {
      const client = new ECRClient(config);
      try {
        const out = await client.send(new GetAuthorizationTokenCommand({}));
        const data = out.authorizationData?.[0];
        token = data?.authorizationToken;
        expiresAt = data?.expiresAt;
        proxyEndpoint = data?.proxyEndpoint;
      } finally {
        client.destroy();
      }
    } else {
      const client = new ECRPUBLICClient({ ...config, region: ECR_PUBLIC_REGION });
      try {
        const out = await client.send(new GetPublicAuthorizationTokenCommand({}));
        token = out.authorizationData?.authorizationToken;
        expiresAt = out.authorizationData?.expiresAt;
      } finally {
        client.destroy();
      }
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
    done(typeof err === "object" && err !== null && "name" in err ? String(err.name) : "Unknown");
    throw err;
  }
}
