// An in-process double of the AWS endpoints the operator talks to: ECR and ECR
// Public GetAuthorizationToken (awsJson1_1), STS (awsQuery), the container
// credentials endpoint that EKS Pod Identity uses and IAM Roles Anywhere's
// CreateSession. It speaks the real wire protocols and verifies real SigV4
// signatures, so the unmodified AWS SDK v3 works against it through the
// standard endpoint settings.
//
// This file is the server: it owns the settings, the state and the public
// API; dispatch.ts sends each request to its service (ecr.ts, sts.ts,
// pod-identity.ts, roles-anywhere-endpoint.ts, admin.ts).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type Listening, listen } from "../harness/listen.js";
import { handleAdmin } from "./admin.js";
import { CallLog } from "./calls.js";
import { dispatch } from "./dispatch.js";
import { EcrService } from "./ecr.js";
import { Faults } from "./faults.js";
import { POD_IDENTITY_PATH } from "./pod-identity.js";
import { Principals } from "./principals.js";
import { HOUR_MS } from "./protocol.js";
import { RolesAnywhereDouble } from "./roles-anywhere.js";
import type { DoubleState } from "./state.js";
import { StsService } from "./sts.js";
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

export { ECR_PUBLIC_TARGET_PREFIX, ECR_TARGET_PREFIX } from "./ecr.js";
export { POD_IDENTITY_PATH } from "./pod-identity.js";

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
  /** IAM Roles Anywhere: trust anchors and profiles (roles are this double's). */
  readonly rolesAnywhere = new RolesAnywhereDouble();
  private readonly principals = new Principals();
  private readonly faults = new Faults();
  private readonly log = new CallLog();
  private readonly state: DoubleState = {
    settings: this,
    principals: this.principals,
    faults: this.faults,
    log: this.log,
  };
  private readonly ecr = new EcrService(this.state);
  private readonly sts = new StsService(this.state);
  private server: Pick<Listening, "close"> | undefined;
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

  /** Listens (127.0.0.1 on a free port by default, https with `tls`); throws when started twice. */
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
    const { host, port, close } = await listen(server, options);
    this.server = { close };
    this.baseUrl = `${options.tls ? "https" : "http"}://${host}:${port}`;
    return { url: this.baseUrl };
  }

  /** Stops listening and destroys every connection, hung ones included. */
  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    const closed = server.close();
    this.faults.wake();
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
    this.principals.addIdentity(identity);
  }

  removeIdentity(accessKeyId: string): void {
    this.principals.removeIdentity(accessKeyId);
  }

  /** Adds a role; throws when `roleArn` is not a role ARN or the trust policy is malformed. */
  addRole(init: RoleInit): void {
    this.principals.addRole(init);
  }

  /** Replaces a role's trust policy, as `aws iam update-assume-role-policy` does. */
  setTrustPolicy(roleArn: string, trustPolicy: TrustPolicy): void {
    this.principals.setTrustPolicy(roleArn, trustPolicy);
  }

  /** Registers an OIDC identity provider, as `aws iam create-open-id-connect-provider` does. */
  addOidcProvider(init: OidcProviderInit): string {
    return this.principals.addOidcProvider(init);
  }

  addPodIdentity(init: PodIdentityInit): void {
    this.principals.addPodIdentity(init);
  }

  /**
   * ECR and ECR Public answer AccessDeniedException to this principal (ARN or
   * access key), in every region or, like an explicit Deny with an
   * aws:RequestedRegion condition, in one.
   */
  denyEcr(arnOrAccessKeyId: string, region?: string): void {
    this.principals.denyEcr(arnOrAccessKeyId, region);
  }

  allowEcr(arnOrAccessKeyId: string, region?: string): void {
    this.principals.allowEcr(arnOrAccessKeyId, region);
  }

  // ---- call log and issued tokens -----------------------------------------

  calls(filter?: CallFilter): CallRecord[] {
    return this.log.calls(filter);
  }

  resetCalls(): void {
    this.log.reset();
  }

  issued(): IssuedToken[] {
    return this.ecr.issued();
  }

  /** True when the double issued this password and it has not expired at `at`. */
  isValidPassword(password: string, at: Date = new Date()): boolean {
    return this.ecr.isValidPassword(password, at);
  }

  // ---- faults --------------------------------------------------------------

  inject(fault: Fault, scope: FaultScope = {}): FaultHandle {
    return this.faults.inject(fault, scope);
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
    this.faults.clear(filter);
  }

  // ---- request dispatch ------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return dispatch(
      {
        state: this.state,
        ecr: this.ecr,
        sts: this.sts,
        rolesAnywhere: this.rolesAnywhere,
        isOpen: () => this.server !== undefined,
        admin: (path, body) => handleAdmin(this, req, res, path, body),
      },
      req,
      res,
    );
  }
}
