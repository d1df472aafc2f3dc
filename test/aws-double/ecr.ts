// ECR and ECR Public GetAuthorizationToken, in awsJson1_1.
import { randomBytes, randomUUID } from "node:crypto";
import { authenticate } from "./auth.js";
import type { Identity } from "./principals.js";
import { JSON_ERRORS, type RequestContext, ServiceError } from "./protocol.js";
import { QuotaBuckets } from "./quota.js";
import type { DoubleState } from "./state.js";
import type { IssuedToken } from "./types.js";

export const ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921";
export const ECR_PUBLIC_TARGET_PREFIX = "SpencerFrontendService";

/** The service an X-Amz-Target prefix names; undefined for any other. */
export function ecrServiceOf(targetPrefix: string | undefined): "ecr" | "ecr-public" | undefined {
  if (targetPrefix === ECR_TARGET_PREFIX) return "ecr";
  if (targetPrefix === ECR_PUBLIC_TARGET_PREFIX) return "ecr-public";
  return undefined;
}

/** ECR's and ECR Public's token endpoint, and the tokens it issued. */
export class EcrService {
  private readonly state: DoubleState;
  private readonly quota = new QuotaBuckets();
  private readonly issuedTokens = new Map<string, IssuedToken>();

  constructor(state: DoubleState) {
    this.state = state;
  }

  /** Copies of every token issued. */
  issued(): IssuedToken[] {
    return [...this.issuedTokens.values()].map((t) => ({ ...t, expiresAt: new Date(t.expiresAt) }));
  }

  /** True when the double issued this password and it has not expired at `at`. */
  isValidPassword(password: string, at: Date): boolean {
    const token = this.issuedTokens.get(password);
    return token !== undefined && token.expiresAt.getTime() > at.getTime();
  }

  /** Answers one awsJson1_1 request; a ServiceError becomes AWS's error answer. */
  async handle(ctx: RequestContext, body: Buffer): Promise<void> {
    try {
      const identity = this.admit(ctx);
      const input = parseInput(body);
      this.checkDenial(ctx, identity);
      const region = ctx.region ?? "us-east-1";
      this.quota.take(this.state.settings.quota, `${ctx.service}|${identity.accountId}|${region}`);
      this.state.faults.afterAuthentication(ctx);
      this.replyOk(ctx, {
        authorizationData: this.authorizationData(ctx, identity, region, input),
      });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      this.replyError(ctx, err);
    }
  }

  /** Answers `err` in awsJson1_1 and records the call. */
  replyError(ctx: RequestContext, err: ServiceError): void {
    const [status, code] = JSON_ERRORS[err.kind];
    ctx.res.writeHead(status, {
      "content-type": "application/x-amz-json-1.1",
      "x-amzn-requestid": randomUUID(),
      "x-amzn-errortype": `${code}:`,
    });
    ctx.res.end(JSON.stringify({ __type: code, message: err.message }));
    this.state.log.record(ctx, status, code);
  }

  /** Authentication, the region, the operation and IAM's denials, in AWS's order. */
  private admit(ctx: RequestContext): Identity {
    const signingService = ctx.service === "ecr-public" ? "ecr-public" : "ecr";
    const identity = authenticate(this.state, ctx, signingService);
    if (ctx.service === "ecr-public" && ctx.region !== "us-east-1") {
      // ECR Public only exists in us-east-1; a request scoped elsewhere is refused
      // the way a regional endpoint refuses a foreign credential scope.
      throw new ServiceError(
        "invalidSignature",
        `Credential should be scoped to a valid region, not '${ctx.region}'. `,
      );
    }
    if (ctx.action !== "GetAuthorizationToken") {
      throw new ServiceError(
        "unknownOperation",
        `Operation ${ctx.action} is not supported by the double`,
      );
    }
    return identity;
  }

  /** IAM's refusal of a denied caller (AwsDouble.denyEcr). */
  private checkDenial(ctx: RequestContext, identity: Identity): void {
    const denial = this.state.principals.ecrDenial(identity, ctx.region);
    if (denial === undefined) return;
    const prefix = ctx.service === "ecr-public" ? "ecr-public" : "ecr";
    const what = `User: ${identity.arn} is not authorized to perform: ${prefix}:GetAuthorizationToken on resource: *`;
    throw new ServiceError(
      "accessDenied",
      denial === "unallowed"
        ? `${what} because no identity-based policy allows the ${prefix}:GetAuthorizationToken action`
        : `${what} with an explicit deny in an identity-based policy`,
    );
  }

  /** ECR Public: one token; ECR: one per registry asked for (the caller's account by default). */
  private authorizationData(
    ctx: RequestContext,
    identity: Identity,
    region: string,
    input: unknown,
  ): unknown {
    if (ctx.service === "ecr-public") {
      const token = this.issue(ctx, identity, region);
      return {
        authorizationToken: Buffer.from(`AWS:${token.password}`).toString("base64"),
        expiresAt: token.expiresAt.getTime() / 1000,
      };
    }
    const registryIds = readRegistryIds(input);
    const accounts = registryIds.length > 0 ? registryIds : [identity.accountId];
    return accounts.map((accountId) => {
      const token = this.issue(ctx, identity, region);
      return {
        authorizationToken: Buffer.from(`AWS:${token.password}`).toString("base64"),
        expiresAt: token.expiresAt.getTime() / 1000,
        proxyEndpoint: this.state.settings.proxyEndpointFor(accountId, region),
      };
    });
  }

  private issue(ctx: RequestContext, identity: Identity, region: string): IssuedToken {
    const token: IssuedToken = {
      service: ctx.service === "ecr-public" ? "ecr-public" : "ecr",
      username: "AWS",
      password: randomBytes(96).toString("base64url"),
      expiresAt: this.state.faults.expiresFor(ctx, this.state.settings.tokenLifetimeMs),
      region,
      principalArn: identity.arn,
      accountId: identity.accountId,
      issuedAt: Date.now(),
    };
    this.issuedTokens.set(token.password, token);
    return token;
  }

  private replyOk(ctx: RequestContext, payload: unknown): void {
    ctx.res.writeHead(200, {
      "content-type": "application/x-amz-json-1.1",
      "x-amzn-requestid": randomUUID(),
    });
    ctx.res.end(JSON.stringify(payload));
    this.state.log.record(ctx, 200);
  }
}

function parseInput(body: Buffer): unknown {
  try {
    return body.length === 0 ? {} : JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new ServiceError("validation", `failed to parse request body: ${String(err)}`);
  }
}

function readRegistryIds(input: unknown): string[] {
  if (typeof input !== "object" || input === null) return [];
  const ids = (input as { registryIds?: unknown }).registryIds;
  return Array.isArray(ids) ? ids.filter((id): id is string => typeof id === "string") : [];
}
