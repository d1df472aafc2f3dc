// An in-process double of the AWS endpoints the operator talks to: ECR and ECR
// Public GetAuthorizationToken (awsJson1_1), STS (awsQuery) and the container
// credentials endpoint that EKS Pod Identity uses. It speaks the real wire
// protocols and verifies real SigV4 signatures, so the unmodified AWS SDK v3
// works against it through the standard endpoint settings.
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { CREATE_SESSION_PATH, RolesAnywhereDouble } from "./roles-anywhere.js";
import {
  expectedSignature,
  headerValue,
  parseAmzDate,
  parseAuthorization,
  type SignedRequest,
  signaturesEqual,
} from "./sigv4.js";
import type {
  AwsDoubleOptions,
  AwsService,
  CallFilter,
  CallRecord,
  Fault,
  FaultHandle,
  FaultKind,
  FaultScope,
  IdentityInit,
  IssuedToken,
  OidcProviderInit,
  PodIdentityInit,
  QuotaInit,
  RoleInit,
  StartOptions,
  TrustPolicy,
} from "./types.js";
import {
  checkTrustPolicy,
  makeOidcProvider,
  type OidcProvider,
  type TrustRequest,
  trustAllows,
  verifyWebIdentityToken,
  WebIdentityError,
} from "./web-identity.js";

export const ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921";
export const ECR_PUBLIC_TARGET_PREFIX = "SpencerFrontendService";
export const POD_IDENTITY_PATH = "/pod-identity/credentials";
const STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/";
const HOUR_MS = 3_600_000;

interface Identity extends IdentityInit {
  /** What GetCallerIdentity reports as UserId. */
  userId?: string;
  /** Tags of an assumed-role session. */
  sessionTags?: Record<string, string>;
}

interface Role {
  roleArn: string;
  accountId: string;
  roleName: string;
  roleId: string;
  trustedPrincipalArns: string[] | undefined;
  externalId: string | undefined;
  webIdentityTokens: Set<string>;
  trustPolicy: TrustPolicy | undefined;
}

interface ActiveFault {
  fault: Fault;
  service: AwsService | undefined;
  action: string | undefined;
  remaining: number | undefined;
}

/** Failures, named by what went wrong; each protocol spells them its own way. */
type ErrorKind =
  | "unrecognizedClient"
  | "invalidSignature"
  | "expiredToken"
  | "missingAuthentication"
  | "incompleteSignature"
  | "accessDenied"
  | "throttling"
  | "serverError"
  | "validation"
  | "unknownOperation"
  | "invalidIdentityToken"
  | "idpCommunication"
  | "expiredWebIdentity";

class ServiceError extends Error {
  readonly kind: ErrorKind;
  // No parameter properties: Node must be able to run this file by stripping types.
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

const JSON_ERRORS: Record<ErrorKind, [number, string]> = {
  unrecognizedClient: [400, "UnrecognizedClientException"],
  invalidSignature: [400, "InvalidSignatureException"],
  expiredToken: [400, "ExpiredTokenException"],
  missingAuthentication: [400, "MissingAuthenticationTokenException"],
  incompleteSignature: [400, "IncompleteSignatureException"],
  accessDenied: [400, "AccessDeniedException"],
  throttling: [400, "ThrottlingException"],
  serverError: [500, "ServerException"],
  validation: [400, "ValidationException"],
  unknownOperation: [400, "UnknownOperationException"],
  invalidIdentityToken: [400, "InvalidIdentityTokenException"],
  idpCommunication: [400, "IDPCommunicationErrorException"],
  expiredWebIdentity: [400, "ExpiredTokenException"],
};

const QUERY_ERRORS: Record<ErrorKind, [number, string]> = {
  unrecognizedClient: [403, "InvalidClientTokenId"],
  invalidSignature: [403, "SignatureDoesNotMatch"],
  expiredToken: [400, "ExpiredToken"],
  missingAuthentication: [403, "MissingAuthenticationToken"],
  incompleteSignature: [403, "IncompleteSignature"],
  accessDenied: [403, "AccessDenied"],
  throttling: [400, "Throttling"],
  serverError: [503, "ServiceUnavailable"],
  validation: [400, "ValidationError"],
  unknownOperation: [400, "InvalidAction"],
  invalidIdentityToken: [400, "InvalidIdentityToken"],
  idpCommunication: [400, "IDPCommunicationError"],
  expiredWebIdentity: [400, "ExpiredTokenException"],
};

const INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid.";
const EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired";
const SIGNATURE_MISMATCH_MESSAGE =
  "The request signature we calculated does not match the signature you provided. " +
  "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function randomId(prefix: string, length = 16): string {
  const bytes = randomBytes(length);
  let id = prefix;
  for (const b of bytes) id += BASE32[b & 31];
  return id;
}

function xmlEscape(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

function accountFromArn(arn: string): string | undefined {
  return arn.split(":")[4] || undefined;
}

/** `arn:aws:iam::1:role/path/name` → `name`. */
function roleNameFromArn(arn: string): string | undefined {
  const resource = arn.split(":").slice(5).join(":");
  if (!resource.startsWith("role/")) return undefined;
  return resource.split("/").at(-1) || undefined;
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

interface RequestContext {
  service: AwsService;
  action: string;
  region?: string;
  accessKeyId?: string;
  principalArn?: string;
  req: IncomingMessage;
  res: ServerResponse;
  signed: SignedRequest;
  form?: URLSearchParams;
  roleArn?: string;
  roleSessionName?: string;
  externalId?: string;
  sessionTags?: Record<string, string>;
  subject?: string;
}

export class AwsDouble {
  /** Lifetime of ECR tokens issued from now on. */
  tokenLifetimeMs: number;
  /** Lifetime of STS / Pod Identity credentials when the caller does not ask for one. */
  sessionLifetimeMs: number;
  maxClockSkewMs: number;
  /** The double's clock runs this far ahead of this machine's (negative: behind). */
  clockOffsetMs = 0;
  /**
   * When set, every answer carries `Age: <n>`, as a caching middlebox adds:
   * the AWS SDK then does not trust the Date header to correct its clock.
   */
  responseAgeSeconds: number | undefined;
  /**
   * The registry URL GetAuthorizationToken names as proxyEndpoint; default the
   * real ECR host. Tests point it at the registry double so the Secret's
   * default auths key and the operator's verification reach it.
   */
  proxyEndpointFor: (accountId: string, region: string) => string = (accountId, region) =>
    `https://${accountId}.dkr.ecr.${region}.amazonaws.com`;

  /** The GetAuthorizationToken quota enforced from now on; undefined: none. */
  quota: QuotaInit | undefined;
  private readonly quotaBuckets = new Map<string, { tokens: number; at: number }>();
  private readonly identities = new Map<string, Identity>();
  private readonly roles = new Map<string, Role>();
  private readonly podIdentities = new Map<string, string>();
  private readonly oidcProviders = new Map<string, OidcProvider>();
  private readonly deniedEcr = new Set<string>();
  private readonly callLog: CallRecord[] = [];
  private readonly issuedTokens = new Map<string, IssuedToken>();
  /** IAM Roles Anywhere: trust anchors and profiles (roles are this double's). */
  readonly rolesAnywhere = new RolesAnywhereDouble();
  private faults: ActiveFault[] = [];
  /** Woken whenever the fault list changes, so hung requests re-check. */
  private faultWaiters = new Set<() => void>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  private baseUrl: string | undefined;

  constructor(options: AwsDoubleOptions = {}) {
    this.tokenLifetimeMs = options.tokenLifetimeMs ?? 12 * HOUR_MS;
    this.sessionLifetimeMs = options.sessionLifetimeMs ?? HOUR_MS;
    this.maxClockSkewMs = options.maxClockSkewMs ?? 15 * 60_000;
    this.quota = options.quota;
    for (const identity of options.identities ?? []) this.addIdentity(identity);
    for (const role of options.roles ?? []) this.addRole(role);
    for (const pod of options.podIdentities ?? []) this.addPodIdentity(pod);
    for (const provider of options.oidcProviders ?? []) this.addOidcProvider(provider);
  }

  // ---- lifecycle -------------------------------------------------------------

  /** The double's own time. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  async start(options: StartOptions = {}): Promise<{ url: string }> {
    if (this.server !== undefined) throw new Error("failed to start AWS double: already started");
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      // Every answer says the double's time, as AWS's do: it is what the
      // SDK corrects a skewed clock from.
      res.setHeader("Date", new Date(this.now()).toUTCString());
      if (this.responseAgeSeconds !== undefined)
        res.setHeader("Age", String(this.responseAgeSeconds));
      this.handle(req, res).catch((err: unknown) => {
        // A bug in the double must show up as a failed request, not a hang.
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(`failed to handle request: ${String(err)}`);
        } else {
          res.destroy();
        }
      });
    };
    const server: Server = options.tls
      ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handler)
      : createServer(handler);
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    const host = options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.baseUrl = `${options.tls ? "https" : "http"}://${host}:${port}`;
    return { url: this.baseUrl };
  }

  /** Stops listening and destroys every connection, hung ones included. */
  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    server.closeAllConnections();
    this.wakeFaultWaiters();
    await closed;
  }

  /** `http://127.0.0.1:PORT` (https with TLS); throws before start(). */
  get url(): string {
    if (this.baseUrl === undefined) throw new Error("failed to read AWS double URL: not started");
    return this.baseUrl;
  }

  /** The value for AWS_CONTAINER_CREDENTIALS_FULL_URI. */
  get containerCredentialsUrl(): string {
    return `${this.url}${POD_IDENTITY_PATH}`;
  }

  // ---- principals ------------------------------------------------------------

  addIdentity(identity: IdentityInit): void {
    this.identities.set(identity.accessKeyId, { ...identity });
  }

  removeIdentity(accessKeyId: string): void {
    this.identities.delete(accessKeyId);
  }

  addRole(init: RoleInit): void {
    const roleName = roleNameFromArn(init.roleArn);
    const accountId = init.accountId ?? accountFromArn(init.roleArn);
    if (roleName === undefined || accountId === undefined) {
      throw new Error(`failed to add role ${init.roleArn}: not an IAM role ARN`);
    }
    if (init.trustPolicy !== undefined) checkTrustPolicy(init.trustPolicy);
    this.roles.set(init.roleArn, {
      roleArn: init.roleArn,
      accountId,
      roleName,
      roleId: randomId("AROA"),
      trustedPrincipalArns: init.trustedPrincipalArns,
      externalId: init.externalId,
      webIdentityTokens: new Set(init.webIdentityTokens ?? []),
      trustPolicy: init.trustPolicy,
    });
  }

  /** Replaces a role's trust policy, as `aws iam update-assume-role-policy` does. */
  setTrustPolicy(roleArn: string, trustPolicy: TrustPolicy): void {
    const role = this.roles.get(roleArn);
    if (role === undefined) throw new Error(`failed to set trust policy: no role ${roleArn}`);
    checkTrustPolicy(trustPolicy);
    role.trustPolicy = trustPolicy;
  }

  /** Registers an OIDC identity provider, as `aws iam create-open-id-connect-provider` does. */
  addOidcProvider(init: OidcProviderInit): string {
    const provider = makeOidcProvider(init);
    this.oidcProviders.set(provider.arn, provider);
    return provider.arn;
  }

  addPodIdentity(init: PodIdentityInit): void {
    this.podIdentities.set(init.authorizationToken, init.roleArn);
  }

  /**
   * ECR and ECR Public answer AccessDeniedException to this principal (ARN or
   * access key), in every region or, like an explicit Deny with an
   * aws:RequestedRegion condition, in one.
   */
  denyEcr(arnOrAccessKeyId: string, region?: string): void {
    this.deniedEcr.add(region ? `${arnOrAccessKeyId}|${region}` : arnOrAccessKeyId);
  }

  allowEcr(arnOrAccessKeyId: string, region?: string): void {
    this.deniedEcr.delete(region ? `${arnOrAccessKeyId}|${region}` : arnOrAccessKeyId);
  }

  // ---- call log and issued tokens -----------------------------------------

  calls(filter?: CallFilter): CallRecord[] {
    if (filter === undefined) return [...this.callLog];
    if (typeof filter === "function") return this.callLog.filter(filter);
    const entries = Object.entries(filter) as [keyof CallRecord, unknown][];
    return this.callLog.filter((call) => entries.every(([k, v]) => call[k] === v));
  }

  resetCalls(): void {
    this.callLog.length = 0;
  }

  issued(): IssuedToken[] {
    return [...this.issuedTokens.values()].map((t) => ({ ...t, expiresAt: new Date(t.expiresAt) }));
  }

  /** True when the double issued this password and it has not expired at `at`. */
  isValidPassword(password: string, at: Date = new Date()): boolean {
    const token = this.issuedTokens.get(password);
    return token !== undefined && token.expiresAt.getTime() > at.getTime();
  }

  // ---- faults --------------------------------------------------------------

  inject(fault: Fault, scope: FaultScope = {}): FaultHandle {
    const active: ActiveFault = {
      fault,
      service: scope.service,
      action: scope.action,
      remaining: scope.times,
    };
    this.faults.push(active);
    this.wakeFaultWaiters();
    return {
      fault,
      get remaining() {
        return active.remaining;
      },
      clear: () => this.removeFault(active),
    };
  }

  throttle(scope?: FaultScope): FaultHandle {
    return this.inject({ kind: "throttle" }, scope);
  }

  error5xx(scope?: FaultScope): FaultHandle {
    return this.inject({ kind: "error5xx" }, scope);
  }

  hang(scope?: FaultScope): FaultHandle {
    return this.inject({ kind: "hang" }, scope);
  }

  delay(ms: number, scope?: FaultScope): FaultHandle {
    return this.inject({ kind: "delay", ms }, scope);
  }

  refuse(scope?: FaultScope): FaultHandle {
    return this.inject({ kind: "refuse" }, scope);
  }

  expiredTokens(scope?: FaultScope): FaultHandle {
    return this.inject({ kind: "expiredTokens" }, scope);
  }

  /** Fail the next `n` matching calls (5xx unless told otherwise), then answer normally. */
  failNext(
    n: number,
    scope: Omit<FaultScope, "times"> & { fault?: "throttle" | "error5xx" | "refuse" } = {},
  ): FaultHandle {
    const { fault = "error5xx", ...rest } = scope;
    return this.inject({ kind: fault }, { ...rest, times: n });
  }

  /** Clears every fault, or those of one service / kind. Hung requests are then answered. */
  clearFaults(filter: { service?: AwsService; kind?: FaultKind } = {}): void {
    this.faults = this.faults.filter(
      (f) =>
        (filter.service !== undefined && f.service !== filter.service) ||
        (filter.kind !== undefined && f.fault.kind !== filter.kind),
    );
    this.wakeFaultWaiters();
  }

  private removeFault(active: ActiveFault): void {
    this.faults = this.faults.filter((f) => f !== active);
    this.wakeFaultWaiters();
  }

  private wakeFaultWaiters(): void {
    const waiters = this.faultWaiters;
    this.faultWaiters = new Set();
    for (const wake of waiters) wake();
  }

  private matchingFault(
    service: AwsService,
    action: string,
    kind: FaultKind,
    consume: boolean,
  ): ActiveFault | undefined {
    const found = this.faults.find(
      (f) =>
        f.fault.kind === kind &&
        (f.service === undefined || f.service === service) &&
        (f.action === undefined || f.action === action) &&
        (f.remaining === undefined || f.remaining > 0),
    );
    if (found !== undefined && consume && found.remaining !== undefined) {
      found.remaining -= 1;
      if (found.remaining <= 0) this.removeFault(found);
    }
    return found;
  }

  private consumeFault(service: AwsService, action: string, kind: FaultKind): boolean {
    return this.matchingFault(service, action, kind, true) !== undefined;
  }

  // ---- request handling ------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = req.url ?? "/";
    const path = url.split("?")[0] ?? "/";
    const headers: [string, string][] = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
    }
    const signed: SignedRequest = { method: req.method ?? "GET", url, headers, body };

    if (path.startsWith("/_double/")) {
      await this.handleAdmin(req, res, path, body);
      return;
    }
    if (path === POD_IDENTITY_PATH) {
      const ctx: RequestContext = {
        service: "container-credentials",
        action: "GetCredentials",
        req,
        res,
        signed,
      };
      if (await this.applyTransportFaults(ctx)) await this.handleContainerCredentials(ctx);
      return;
    }

    if (path === CREATE_SESSION_PATH && req.method === "POST") {
      const ctx: RequestContext = {
        service: "rolesanywhere",
        action: "CreateSession",
        req,
        res,
        signed,
      };
      if (await this.applyTransportFaults(ctx)) this.handleRolesAnywhere(ctx);
      return;
    }

    const target = headerValue(headers, "x-amz-target");
    if (target !== undefined) {
      const [prefix, action = ""] = target.split(".");
      const service: AwsService | undefined =
        prefix === ECR_TARGET_PREFIX
          ? "ecr"
          : prefix === ECR_PUBLIC_TARGET_PREFIX
            ? "ecr-public"
            : undefined;
      if (service === undefined) {
        this.replyJson(
          { service: "ecr", action: target, req, res, signed },
          new ServiceError("unknownOperation", `Unknown target ${target}`),
        );
        return;
      }
      const ctx: RequestContext = { service, action, req, res, signed };
      if (await this.applyTransportFaults(ctx)) await this.handleJson(ctx, body);
      return;
    }

    const form = new URLSearchParams(body.toString("utf8"));
    const action = form.get("Action");
    if (req.method === "POST" && action !== null) {
      const ctx: RequestContext = { service: "sts", action, req, res, signed, form };
      if (await this.applyTransportFaults(ctx)) await this.handleSts(ctx, form);
      return;
    }

    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ message: `no such endpoint: ${req.method} ${path}` }));
  }

  /**
   * Hang and delay happen before anything else, like a slow network would.
   * Returns false when the client left while waiting (already recorded).
   */
  private async applyTransportFaults(ctx: RequestContext): Promise<boolean> {
    let clientGone = false;
    const onClose = (): void => {
      clientGone = !ctx.res.writableFinished;
      this.wakeFaultWaiters();
    };
    ctx.res.once("close", onClose);
    try {
      while (!clientGone && this.server !== undefined) {
        if (this.matchingFault(ctx.service, ctx.action, "hang", false) === undefined) break;
        await new Promise<void>((resolve) => this.faultWaiters.add(resolve));
      }
      const delay = this.matchingFault(ctx.service, ctx.action, "delay", true);
      if (delay !== undefined && delay.fault.kind === "delay" && !clientGone) {
        const ms = delay.fault.ms;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          ctx.res.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    } finally {
      ctx.res.off("close", onClose);
    }
    if (clientGone || ctx.res.destroyed || this.server === undefined) {
      // Record the request from the start of a hang too, so tests can count it.
      this.record(ctx, 0, "ClientClosedRequest");
      if (!ctx.res.destroyed) ctx.res.destroy();
      return false;
    }
    return true;
  }

  /** Verifies SigV4 and returns the caller; throws ServiceError the way AWS would refuse. */
  private authenticate(ctx: RequestContext, signingService: string): Identity {
    const { headers } = ctx.signed;
    const authorization = headerValue(headers, "authorization");
    if (authorization === undefined) {
      throw new ServiceError("missingAuthentication", "Missing Authentication Token");
    }
    const auth = parseAuthorization(authorization);
    if (auth === undefined) {
      throw new ServiceError(
        "incompleteSignature",
        `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=${authorization}`,
      );
    }
    ctx.accessKeyId = auth.accessKeyId;
    ctx.region = auth.region;
    if (this.consumeFault(ctx.service, ctx.action, "refuse")) {
      throw new ServiceError("unrecognizedClient", INVALID_TOKEN_MESSAGE);
    }
    const identity = this.identities.get(auth.accessKeyId);
    if (identity === undefined) throw new ServiceError("unrecognizedClient", INVALID_TOKEN_MESSAGE);
    ctx.principalArn = identity.arn;
    const presentedToken = headerValue(headers, "x-amz-security-token");
    if (presentedToken !== identity.sessionToken) {
      throw new ServiceError("unrecognizedClient", INVALID_TOKEN_MESSAGE);
    }
    if (identity.expiresAt !== undefined && identity.expiresAt.getTime() <= Date.now()) {
      throw new ServiceError("expiredToken", EXPIRED_TOKEN_MESSAGE);
    }
    if (!auth.signedHeaders.includes("host")) {
      throw new ServiceError(
        "incompleteSignature",
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
      );
    }
    const amzDateHeader = headerValue(headers, "x-amz-date");
    const amzDate = amzDateHeader === undefined ? undefined : parseAmzDate(amzDateHeader);
    if (amzDateHeader === undefined || amzDate === undefined) {
      throw new ServiceError(
        "incompleteSignature",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
      );
    }
    // Checked against the double's own clock, which may be set apart from
    // this machine's (clockOffsetMs), the way AWS checks against its own.
    const serverNow = this.now();
    const skew = amzDate.getTime() - serverNow;
    if (Math.abs(skew) > this.maxClockSkewMs) {
      const now = isoCompact(new Date(serverNow));
      const limit = isoCompact(new Date(serverNow + Math.sign(skew) * this.maxClockSkewMs));
      const minutes = Math.round(this.maxClockSkewMs / 60_000);
      throw new ServiceError(
        "invalidSignature",
        skew < 0
          ? `Signature expired: ${amzDateHeader} is now earlier than ${limit} (${now} - ${minutes} min.)`
          : `Signature not yet current: ${amzDateHeader} is still later than ${limit} (${now} + ${minutes} min.)`,
      );
    }
    if (auth.date !== amzDateHeader.slice(0, 8)) {
      throw new ServiceError(
        "invalidSignature",
        `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.date}' != '${amzDateHeader.slice(0, 8)}', from '${amzDateHeader}'.`,
      );
    }
    if (auth.service !== signingService) {
      throw new ServiceError(
        "invalidSignature",
        `Credential should be scoped to correct service: '${signingService}'.`,
      );
    }
    const expected = expectedSignature(ctx.signed, auth, amzDateHeader, identity.secretAccessKey);
    if (!signaturesEqual(expected, auth.signature)) {
      throw new ServiceError("invalidSignature", SIGNATURE_MISMATCH_MESSAGE);
    }
    return identity;
  }

  /** AWS's per-(account, region) quota of GetAuthorizationToken calls: a token bucket. */
  private applyQuota(ctx: RequestContext, identity: Identity, region: string): void {
    const quota = this.quota;
    if (quota === undefined) return;
    const key = `${ctx.service}|${identity.accountId}|${region}`;
    const now = performance.now();
    const bucket = this.quotaBuckets.get(key) ?? { tokens: quota.burst, at: now };
    bucket.tokens = Math.min(
      quota.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * quota.ratePerSecond,
    );
    bucket.at = now;
    this.quotaBuckets.set(key, bucket);
    if (bucket.tokens < 1) throw new ServiceError("throttling", "Rate exceeded");
    bucket.tokens -= 1;
  }

  /** Throttling and 5xx come after authentication, as on the real services. */
  private applyResponseFaults(ctx: RequestContext): void {
    if (this.consumeFault(ctx.service, ctx.action, "throttle")) {
      throw new ServiceError("throttling", "Rate exceeded");
    }
    if (this.consumeFault(ctx.service, ctx.action, "error5xx")) {
      throw new ServiceError(
        "serverError",
        ctx.service === "sts" ? "Service is unavailable" : "Internal server error",
      );
    }
  }

  private expiresFor(ctx: RequestContext, lifetimeMs: number): Date {
    if (this.consumeFault(ctx.service, ctx.action, "expiredTokens")) {
      return new Date(Date.now() - HOUR_MS);
    }
    return new Date(Date.now() + lifetimeMs);
  }

  // ---- ECR and ECR Public (awsJson1_1) ------------------------------------------

  private async handleJson(ctx: RequestContext, body: Buffer): Promise<void> {
    try {
      const signingService = ctx.service === "ecr-public" ? "ecr-public" : "ecr";
      const identity = this.authenticate(ctx, signingService);
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
      let input: unknown = {};
      try {
        input = body.length === 0 ? {} : JSON.parse(body.toString("utf8"));
      } catch (err) {
        throw new ServiceError("validation", `failed to parse request body: ${String(err)}`);
      }
      const denied = [identity.arn, identity.accessKeyId].some(
        (who) => this.deniedEcr.has(who) || this.deniedEcr.has(`${who}|${ctx.region}`),
      );
      if (denied) {
        const prefix = ctx.service === "ecr-public" ? "ecr-public" : "ecr";
        throw new ServiceError(
          "accessDenied",
          this.deniedEcr.has(identity.arn) || this.deniedEcr.has(identity.accessKeyId)
            ? `User: ${identity.arn} is not authorized to perform: ${prefix}:GetAuthorizationToken on resource: * because no identity-based policy allows the ${prefix}:GetAuthorizationToken action`
            : `User: ${identity.arn} is not authorized to perform: ${prefix}:GetAuthorizationToken on resource: * with an explicit deny in an identity-based policy`,
        );
      }
      const region = ctx.region ?? "us-east-1";
      this.applyQuota(ctx, identity, region);
      this.applyResponseFaults(ctx);
      if (ctx.service === "ecr-public") {
        const token = this.issueEcrToken(ctx, identity, region);
        this.replyJsonOk(ctx, {
          authorizationData: {
            authorizationToken: Buffer.from(`AWS:${token.password}`).toString("base64"),
            expiresAt: token.expiresAt.getTime() / 1000,
          },
        });
        return;
      }
      const registryIds = readRegistryIds(input);
      const accounts = registryIds.length > 0 ? registryIds : [identity.accountId];
      const authorizationData = accounts.map((accountId) => {
        const token = this.issueEcrToken(ctx, identity, region);
        return {
          authorizationToken: Buffer.from(`AWS:${token.password}`).toString("base64"),
          expiresAt: token.expiresAt.getTime() / 1000,
          proxyEndpoint: this.proxyEndpointFor(accountId, region),
        };
      });
      this.replyJsonOk(ctx, { authorizationData });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      this.replyJson(ctx, err);
    }
  }

  private issueEcrToken(ctx: RequestContext, identity: Identity, region: string): IssuedToken {
    const token: IssuedToken = {
      service: ctx.service === "ecr-public" ? "ecr-public" : "ecr",
      username: "AWS",
      password: randomBytes(96).toString("base64url"),
      expiresAt: this.expiresFor(ctx, this.tokenLifetimeMs),
      region,
      principalArn: identity.arn,
      accountId: identity.accountId,
      issuedAt: Date.now(),
    };
    this.issuedTokens.set(token.password, token);
    return token;
  }

  private replyJsonOk(ctx: RequestContext, payload: unknown): void {
    ctx.res.writeHead(200, {
      "content-type": "application/x-amz-json-1.1",
      "x-amzn-requestid": randomUUID(),
    });
    ctx.res.end(JSON.stringify(payload));
    this.record(ctx, 200);
  }

  private replyJson(ctx: RequestContext, err: ServiceError): void {
    const [status, code] = JSON_ERRORS[err.kind];
    ctx.res.writeHead(status, {
      "content-type": "application/x-amz-json-1.1",
      "x-amzn-requestid": randomUUID(),
      "x-amzn-errortype": `${code}:`,
    });
    ctx.res.end(JSON.stringify({ __type: code, message: err.message }));
    this.record(ctx, status, code);
  }

  // ---- STS (awsQuery) -----------------------------------------------------------

  private async handleSts(ctx: RequestContext, form: URLSearchParams): Promise<void> {
    try {
      let xml: string;
      switch (ctx.action) {
        case "GetCallerIdentity": {
          const identity = this.authenticate(ctx, "sts");
          this.applyResponseFaults(ctx);
          xml = stsResult(
            "GetCallerIdentity",
            `<Arn>${xmlEscape(identity.arn)}</Arn><UserId>${xmlEscape(userIdOf(identity))}</UserId><Account>${xmlEscape(identity.accountId)}</Account>`,
          );
          break;
        }
        case "AssumeRole": {
          const caller = this.authenticate(ctx, "sts");
          this.noteStsRequest(ctx, form);
          const role = this.roleFor(form, caller.arn, "sts:AssumeRole");
          const externalId = form.get("ExternalId") ?? undefined;
          const tags = ctx.sessionTags ?? {};
          if (role.trustPolicy !== undefined) {
            const request = (action: string): TrustRequest => ({
              action,
              principal: { AWS: caller.arn },
              context: {
                "sts:ExternalId": externalId,
                "aws:PrincipalArn": caller.arn,
                "aws:TagKeys": Object.keys(tags),
                ...Object.fromEntries(
                  Object.entries(tags).map(([k, v]) => [`aws:RequestTag/${k}`, v]),
                ),
              },
            });
            if (!trustAllows(role.trustPolicy, request("sts:AssumeRole"))) {
              throw notAuthorized(caller.arn, "sts:AssumeRole", role.roleArn);
            }
            // Session tags need sts:TagSession in the trust policy as well.
            if (
              Object.keys(tags).length > 0 &&
              !trustAllows(role.trustPolicy, request("sts:TagSession"))
            ) {
              throw notAuthorized(caller.arn, "sts:TagSession", role.roleArn);
            }
          } else {
            if (!this.trusts(role, caller.arn)) {
              throw notAuthorized(caller.arn, "sts:AssumeRole", role.roleArn);
            }
            if (role.externalId !== undefined && role.externalId !== externalId) {
              throw notAuthorized(caller.arn, "sts:AssumeRole", role.roleArn);
            }
          }
          this.applyResponseFaults(ctx);
          const session = this.assumeRole(ctx, role, sessionNameOf(form), durationOf(form));
          if (Object.keys(tags).length > 0) session.identity.sessionTags = tags;
          xml = stsResult(
            "AssumeRole",
            `${assumedRoleXml(session)}${credentialsXml(session.identity)}<PackedPolicySize>6</PackedPolicySize>`,
          );
          break;
        }
        case "AssumeRoleWithWebIdentity": {
          // Unsigned by design: the web identity token is the proof.
          const token = form.get("WebIdentityToken") ?? "";
          this.noteStsRequest(ctx, form);
          const role = this.roleFor(form, undefined, "sts:AssumeRoleWithWebIdentity");
          let subject = "system:serviceaccount:default:default";
          let provider = "oidc.aws-double.local";
          let audience = "sts.amazonaws.com";
          if (!role.webIdentityTokens.has(token)) {
            // A role given only a list of accepted tokens (an IRSA stand-in) refuses
            // every other token; a role with a trust policy gets STS's full checks.
            if (role.trustPolicy === undefined) {
              throw new ServiceError(
                "accessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
              );
            }
            const verified = await this.verifyWebIdentity(token, role);
            subject = verified.claims.sub;
            provider = verified.provider.url;
            audience = verified.audience;
            ctx.subject = subject;
            const allowed = trustAllows(role.trustPolicy, {
              action: "sts:AssumeRoleWithWebIdentity",
              principal: { Federated: verified.provider.arn },
              context: {
                [`${verified.provider.hostPath}:sub`]: subject,
                [`${verified.provider.hostPath}:aud`]: audience,
              },
            });
            if (!allowed) {
              throw new ServiceError(
                "accessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
              );
            }
          }
          this.applyResponseFaults(ctx);
          const session = this.assumeRole(ctx, role, sessionNameOf(form), durationOf(form));
          xml = stsResult(
            "AssumeRoleWithWebIdentity",
            `${credentialsXml(session.identity)}<SubjectFromWebIdentityToken>${xmlEscape(subject)}</SubjectFromWebIdentityToken>${assumedRoleXml(session)}<Provider>${xmlEscape(provider)}</Provider><Audience>${xmlEscape(audience)}</Audience>`,
          );
          break;
        }
        default:
          throw new ServiceError(
            "unknownOperation",
            `Could not find operation ${ctx.action} for version 2011-06-15`,
          );
      }
      ctx.res.writeHead(200, { "content-type": "text/xml", "x-amzn-requestid": randomUUID() });
      ctx.res.end(xml);
      this.record(ctx, 200);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      const [status, code] = QUERY_ERRORS[err.kind];
      const requestId = randomUUID();
      const type = status >= 500 ? "Receiver" : "Sender";
      ctx.res.writeHead(status, { "content-type": "text/xml", "x-amzn-requestid": requestId });
      ctx.res.end(
        `<ErrorResponse xmlns="${STS_NAMESPACE}">\n  <Error>\n    <Type>${type}</Type>\n    <Code>${code}</Code>\n    <Message>${xmlEscape(err.message)}</Message>\n  </Error>\n  <RequestId>${requestId}</RequestId>\n</ErrorResponse>\n`,
      );
      this.record(ctx, status, code);
    }
  }

  /** Notes the STS parameters of a request in its call record. */
  private noteStsRequest(ctx: RequestContext, form: URLSearchParams): void {
    const roleArn = form.get("RoleArn");
    if (roleArn !== null) ctx.roleArn = roleArn;
    const sessionName = form.get("RoleSessionName");
    if (sessionName !== null) ctx.roleSessionName = sessionName;
    const externalId = form.get("ExternalId");
    if (externalId !== null) ctx.externalId = externalId;
    const tags: Record<string, string> = {};
    for (let i = 1; form.has(`Tags.member.${i}.Key`); i++) {
      tags[form.get(`Tags.member.${i}.Key`) ?? ""] = form.get(`Tags.member.${i}.Value`) ?? "";
    }
    if (Object.keys(tags).length > 0) ctx.sessionTags = tags;
  }

  /** The web identity checks of STS, against the OIDC providers of the role's account. */
  private async verifyWebIdentity(token: string, role: Role) {
    const providers = [...this.oidcProviders.values()].filter(
      (p) => p.accountId === role.accountId,
    );
    try {
      return await verifyWebIdentityToken(token, providers);
    } catch (err) {
      if (err instanceof WebIdentityError) {
        throw new ServiceError(err.failure.kind, err.failure.message);
      }
      throw err;
    }
  }

  private roleFor(form: URLSearchParams, callerArn: string | undefined, action: string): Role {
    const roleArn = form.get("RoleArn");
    if (roleArn === null || roleArn.length < 20) {
      throw new ServiceError(
        "validation",
        "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null",
      );
    }
    if (form.get("RoleSessionName") === null) {
      throw new ServiceError(
        "validation",
        "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null",
      );
    }
    const role = this.roles.get(roleArn);
    if (role === undefined) {
      // STS does not reveal whether a role exists.
      if (callerArn === undefined) {
        throw new ServiceError("accessDenied", `Not authorized to perform ${action}`);
      }
      throw notAuthorized(callerArn, action, roleArn);
    }
    return role;
  }

  private trusts(role: Role, callerArn: string): boolean {
    const trusted = role.trustedPrincipalArns;
    if (trusted === undefined) return true;
    const callerAccount = accountFromArn(callerArn);
    return trusted.some((principal) => {
      if (principal === "*" || principal === callerArn) return true;
      if (principal === `arn:aws:iam::${callerAccount}:root`) return true;
      // Trusting a role trusts its sessions.
      const roleName = roleNameFromArn(principal);
      const account = accountFromArn(principal);
      return (
        roleName !== undefined &&
        callerArn.startsWith(`arn:aws:sts::${account}:assumed-role/${roleName}/`)
      );
    });
  }

  private assumeRole(
    ctx: RequestContext,
    role: Role,
    sessionName: string,
    durationMs: number | undefined,
  ): { identity: Identity; role: Role; sessionName: string } {
    const identity: Identity = {
      accessKeyId: randomId("ASIA"),
      secretAccessKey: randomBytes(30).toString("base64"),
      sessionToken: `IQoJb3JpZ2luX2VjE${randomBytes(180).toString("base64")}`,
      accountId: role.accountId,
      arn: `arn:aws:sts::${role.accountId}:assumed-role/${role.roleName}/${sessionName}`,
      expiresAt: this.expiresFor(ctx, durationMs ?? this.sessionLifetimeMs),
      userId: `${role.roleId}:${sessionName}`,
    };
    this.identities.set(identity.accessKeyId, identity);
    return { identity, role, sessionName };
  }

  // ---- IAM Roles Anywhere (restJson1) ----------------------------------------------

  private handleRolesAnywhere(ctx: RequestContext): void {
    const answer = this.rolesAnywhere.createSession(ctx.signed, this.now(), {
      hasRole: (roleArn) => this.roles.has(roleArn),
      assume: (roleArn, sessionName, seconds) => {
        const role = this.roles.get(roleArn) as Role;
        const { identity } = this.assumeRole(ctx, role, sessionName, seconds * 1000);
        return {
          accessKeyId: identity.accessKeyId,
          secretAccessKey: identity.secretAccessKey,
          sessionToken: identity.sessionToken ?? "",
          arn: identity.arn,
          assumedRoleId: identity.userId ?? "",
          expiresAt: identity.expiresAt ?? new Date(),
        };
      },
    });
    if (answer.request.roleArn !== undefined) ctx.roleArn = answer.request.roleArn;
    if (answer.request.serial !== undefined) ctx.roleSessionName = answer.request.serial;
    if (answer.request.subject !== undefined) ctx.subject = answer.request.subject;
    if (answer.ok) {
      ctx.principalArn = answer.principalArn;
      ctx.res.writeHead(answer.status, {
        "content-type": "application/json",
        "x-amzn-requestid": randomUUID(),
      });
      ctx.res.end(JSON.stringify(answer.body));
      this.record(ctx, answer.status);
      return;
    }
    ctx.res.writeHead(answer.status, {
      "content-type": "application/json",
      "x-amzn-requestid": randomUUID(),
      "x-amzn-errortype": `${answer.code}:http://internal.amazon.com/coral/com.amazonaws.rolesanywhere/`,
    });
    ctx.res.end(JSON.stringify({ message: answer.message }));
    this.record(ctx, answer.status, answer.code);
  }

  // ---- container credentials (EKS Pod Identity) -----------------------------------

  private async handleContainerCredentials(ctx: RequestContext): Promise<void> {
    const reply = (status: number, payload: unknown, errorCode?: string): void => {
      ctx.res.writeHead(status, { "content-type": "application/json" });
      ctx.res.end(JSON.stringify(payload));
      this.record(ctx, status, errorCode);
    };
    const token = headerValue(ctx.signed.headers, "authorization");
    if (token === undefined || token === "") {
      reply(401, { message: "missing authorization token" }, "Unauthorized");
      return;
    }
    if (this.consumeFault(ctx.service, ctx.action, "refuse")) {
      reply(403, { message: "invalid authorization token" }, "Forbidden");
      return;
    }
    const roleArn = this.podIdentities.get(token);
    const role = roleArn === undefined ? undefined : this.roles.get(roleArn);
    if (role === undefined) {
      reply(403, { message: "invalid authorization token" }, "Forbidden");
      return;
    }
    if (this.consumeFault(ctx.service, ctx.action, "throttle")) {
      reply(429, { message: "too many requests" }, "TooManyRequests");
      return;
    }
    if (this.consumeFault(ctx.service, ctx.action, "error5xx")) {
      reply(500, { message: "internal error" }, "InternalError");
      return;
    }
    const sessionName = `eks-pod-identity-${randomBytes(6).toString("hex")}`;
    const { identity } = this.assumeRole(ctx, role, sessionName, undefined);
    ctx.principalArn = identity.arn;
    reply(200, {
      AccessKeyId: identity.accessKeyId,
      SecretAccessKey: identity.secretAccessKey,
      Token: identity.sessionToken,
      AccountId: identity.accountId,
      Expiration: isoSeconds(identity.expiresAt ?? new Date()),
    });
  }

  // ---- admin API, for a double running in another process -----------------------

  private async handleAdmin(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    body: Buffer,
  ): Promise<void> {
    const reply = (status: number, payload: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(payload));
    };
    let input: Record<string, unknown> = {};
    try {
      if (body.length > 0) input = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
    } catch (err) {
      reply(400, { message: `failed to parse admin request: ${String(err)}` });
      return;
    }
    const route = `${req.method} ${path}`;
    switch (route) {
      case "GET /_double/calls":
        reply(200, this.calls());
        return;
      case "DELETE /_double/calls":
        this.resetCalls();
        reply(200, {});
        return;
      case "GET /_double/issued":
        reply(200, this.issued());
        return;
      case "POST /_double/validate-password":
        reply(200, { valid: this.isValidPassword(String(input.password ?? "")) });
        return;
      case "POST /_double/identities":
        this.addIdentity(input as unknown as IdentityInit);
        reply(200, {});
        return;
      case "POST /_double/roles":
        this.addRole(input as unknown as RoleInit);
        reply(200, {});
        return;
      case "POST /_double/oidc-providers":
        reply(200, { arn: this.addOidcProvider(input as unknown as OidcProviderInit) });
        return;
      case "POST /_double/faults": {
        const { service, action, times, ...fault } = input;
        this.inject(fault as unknown as Fault, {
          service: service as AwsService | undefined,
          action: action as string | undefined,
          times: times as number | undefined,
        });
        reply(200, {});
        return;
      }
      case "DELETE /_double/faults":
        this.clearFaults();
        reply(200, {});
        return;
      case "PUT /_double/token-lifetime":
        this.tokenLifetimeMs = Number(input.ms);
        reply(200, { tokenLifetimeMs: this.tokenLifetimeMs });
        return;
      default:
        reply(404, { message: `no such admin route: ${route}` });
    }
  }

  private record(ctx: RequestContext, status: number, errorCode?: string): void {
    const call: CallRecord = { service: ctx.service, action: ctx.action, time: Date.now(), status };
    if (ctx.region !== undefined) call.region = ctx.region;
    if (ctx.accessKeyId !== undefined) call.accessKeyId = ctx.accessKeyId;
    if (ctx.principalArn !== undefined) call.principalArn = ctx.principalArn;
    if (errorCode !== undefined) call.errorCode = errorCode;
    if (ctx.roleArn !== undefined) call.roleArn = ctx.roleArn;
    if (ctx.roleSessionName !== undefined) call.roleSessionName = ctx.roleSessionName;
    if (ctx.externalId !== undefined) call.externalId = ctx.externalId;
    if (ctx.sessionTags !== undefined) call.sessionTags = ctx.sessionTags;
    if (ctx.subject !== undefined) call.subject = ctx.subject;
    this.callLog.push(call);
  }
}

function isoCompact(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function readRegistryIds(input: unknown): string[] {
  if (typeof input !== "object" || input === null) return [];
  const ids = (input as { registryIds?: unknown }).registryIds;
  return Array.isArray(ids) ? ids.filter((id): id is string => typeof id === "string") : [];
}

function notAuthorized(callerArn: string, action: string, resource: string): ServiceError {
  return new ServiceError(
    "accessDenied",
    `User: ${callerArn} is not authorized to perform: ${action} on resource: ${resource}`,
  );
}

function userIdOf(identity: Identity): string {
  // IAM users report a unique id of their own; the access key stands in for it.
  return identity.userId ?? identity.accessKeyId.replace(/^AKIA/, "AIDA");
}

function sessionNameOf(form: URLSearchParams): string {
  return form.get("RoleSessionName") ?? "session";
}

function durationOf(form: URLSearchParams): number | undefined {
  const seconds = form.get("DurationSeconds");
  return seconds === null ? undefined : Number(seconds) * 1000;
}

function stsResult(action: string, inner: string): string {
  return `<${action}Response xmlns="${STS_NAMESPACE}">\n  <${action}Result>\n    ${inner}\n  </${action}Result>\n  <ResponseMetadata>\n    <RequestId>${randomUUID()}</RequestId>\n  </ResponseMetadata>\n</${action}Response>\n`;
}

function credentialsXml(identity: Identity): string {
  return `<Credentials><AccessKeyId>${identity.accessKeyId}</AccessKeyId><SecretAccessKey>${xmlEscape(identity.secretAccessKey)}</SecretAccessKey><SessionToken>${xmlEscape(identity.sessionToken ?? "")}</SessionToken><Expiration>${isoSeconds(identity.expiresAt ?? new Date())}</Expiration></Credentials>`;
}

function assumedRoleXml(session: { identity: Identity; role: Role; sessionName: string }): string {
  return `<AssumedRoleUser><AssumedRoleId>${session.role.roleId}:${xmlEscape(session.sessionName)}</AssumedRoleId><Arn>${xmlEscape(session.identity.arn)}</Arn></AssumedRoleUser>`;
}
