/** The services the double speaks, as they appear in its call log. */
export type AwsService = "ecr" | "ecr-public" | "sts" | "container-credentials" | "rolesanywhere";

/** A principal the double knows the secret of. */
export interface IdentityInit {
  accessKeyId: string;
  secretAccessKey: string;
  /** Set for temporary credentials: requests must carry it as X-Amz-Security-Token. */
  sessionToken?: string;
  accountId: string;
  arn: string;
  /** Temporary credentials stop working after this. */
  expiresAt?: Date;
}

export interface RoleInit {
  roleArn: string;
  /** Default: the account in the role ARN. */
  accountId?: string;
  /**
   * Principals allowed to AssumeRole: exact ARNs, `arn:aws:iam::<account>:root` for a
   * whole account, or `*`. A role ARN also trusts sessions of that role. Default: anyone.
   */
  trustedPrincipalArns?: string[];
  /** When set, AssumeRole must pass exactly this ExternalId. */
  externalId?: string;
  /** Web identity tokens AssumeRoleWithWebIdentity accepts for this role. */
  webIdentityTokens?: string[];
  /**
   * The role's trust policy, as IAM holds it. When set it alone decides
   * AssumeRole (principal, `sts:ExternalId`, `sts:TagSession` for session
   * tags) and AssumeRoleWithWebIdentity (the OIDC provider as `Federated`
   * principal, `<issuer>:sub` and `<issuer>:aud` conditions), and
   * trustedPrincipalArns / externalId are ignored.
   */
  trustPolicy?: TrustPolicy;
}

/** The subset of an IAM trust policy the double evaluates. */
export interface TrustPolicy {
  Version?: string;
  Statement: TrustStatement[];
}

export interface TrustStatement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal: { AWS?: string | string[]; Federated?: string | string[] } | "*";
  /** e.g. "sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "sts:TagSession". */
  Action: string | string[];
  /** Operator → condition key → value(s): StringEquals, StringLike, StringNotEquals, ... */
  Condition?: Record<string, Record<string, string | string[]>>;
}

/** An IAM OIDC identity provider: an issuer whose tokens STS accepts. */
export interface OidcProviderInit {
  /** The issuer URL, exactly the tokens' `iss` (https only). */
  url: string;
  /** Audiences accepted (IAM's client ID list), e.g. ["sts.amazonaws.com"]. */
  clientIds: string[];
  /** SHA-1 thumbprints (hex) of the top certificate of the issuer's TLS chain. */
  thumbprints: string[];
  /** The account the provider is registered in (roles of that account can trust it). */
  accountId: string;
}

/** An EKS Pod Identity association: this authorization token gets credentials for this role. */
export interface PodIdentityInit {
  authorizationToken: string;
  roleArn: string;
}

export interface CallRecord {
  service: AwsService;
  action: string;
  /** From the SigV4 credential scope; absent for unsigned requests. */
  region?: string;
  accessKeyId?: string;
  principalArn?: string;
  /** Epoch milliseconds when the answer was sent (or the client gave up). */
  time: number;
  /** HTTP status; 0 when the client disconnected before an answer. */
  status: number;
  errorCode?: string;
  /** STS: the role asked for, the session name, the external ID and session tags sent. */
  roleArn?: string;
  roleSessionName?: string;
  externalId?: string;
  sessionTags?: Record<string, string>;
  /** AssumeRoleWithWebIdentity: the verified token's `sub`. */
  subject?: string;
}

export type CallFilter = Partial<Omit<CallRecord, "time">> | ((call: CallRecord) => boolean);

export interface IssuedToken {
  service: "ecr" | "ecr-public";
  username: "AWS";
  password: string;
  expiresAt: Date;
  region: string;
  principalArn: string;
  accountId: string;
  /** Epoch milliseconds. */
  issuedAt: number;
}

export type Fault =
  /** 400 ThrottlingException (JSON) / Throttling (STS) / 429 (container credentials). */
  | { kind: "throttle" }
  /** 500 ServerException (JSON) / 503 ServiceUnavailable (STS) / 500 (container credentials). */
  | { kind: "error5xx" }
  /** Accept the request and never answer until the fault is cleared or the client leaves. */
  | { kind: "hang" }
  /** Answer normally, this much later. */
  | { kind: "delay"; ms: number }
  /** Treat every access key as unknown. */
  | { kind: "refuse" }
  /** Issue tokens and credentials that have already expired. */
  | { kind: "expiredTokens" };

export type FaultKind = Fault["kind"];

export interface FaultScope {
  /** Default: every service. */
  service?: AwsService;
  /** Default: every action, e.g. "GetAuthorizationToken", "AssumeRole". */
  action?: string;
  /** Apply to this many matching calls, then clear itself. Default: until cleared. */
  times?: number;
}

export interface FaultHandle {
  readonly fault: Fault;
  /** Matching calls still to be affected; undefined = until cleared. */
  readonly remaining: number | undefined;
  clear(): void;
}

/**
 * AWS's GetAuthorizationToken quota, enforced per (service, account of the
 * caller, region) as a token bucket: `burst` calls at once, refilled at
 * `ratePerSecond`. Past it the call is answered ThrottlingException.
 * AWS documents 20 a second sustained and 200 burst for ECR.
 */
export interface QuotaInit {
  ratePerSecond: number;
  burst: number;
}

export interface AwsDoubleOptions {
  /** Enforce a GetAuthorizationToken quota; default none. */
  quota?: QuotaInit;
  /** Lifetime of ECR tokens. Default 12 h. */
  tokenLifetimeMs?: number;
  /** Lifetime of STS and Pod Identity credentials when the caller does not ask. Default 1 h. */
  sessionLifetimeMs?: number;
  /** Allowed difference between X-Amz-Date and the double's clock. Default 15 min. */
  maxClockSkewMs?: number;
  identities?: IdentityInit[];
  roles?: RoleInit[];
  podIdentities?: PodIdentityInit[];
  oidcProviders?: OidcProviderInit[];
}

export interface StartOptions {
  /** Serve HTTPS with this certificate (as AWS does; reached through a proxy's CONNECT). */
  tls?: { certPem: string; keyPem: string };
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
}
