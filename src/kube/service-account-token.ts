// ServiceAccount tokens for web identity: a TokenRequest for a named
// ServiceAccount (or the operator's own, learnt once from a
// SelfSubjectReview), short-lived and with the audience STS expects. The
// token is handed to the caller and never stored.
//
// The audience comes from a resource's spec, which its author chose: only
// sts.amazonaws.com and what the administrator allows (--allowed-token-audiences)
// are minted, and never one the API server itself accepts. A token for the
// API's own audience, sent to STS (or to whatever OIDC provider a role trusts),
// would be a credential for the cluster in someone else's hands.
import {
  apiErrorMessage,
  KubeClient,
  SELF_SUBJECT_REVIEWS,
  SERVICE_ACCOUNTS,
  statusCode,
} from "./client.js";

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

export interface ServiceAccountToken {
  token: string;
  serviceAccount: ServiceAccountRef;
  expiresAt: Date;
}

/** The API server's floor for TokenRequest lifetimes: ten minutes. */
export const TOKEN_REQUEST_SECONDS = 600;

/** The audience STS's AssumeRoleWithWebIdentity expects: always allowed. */
export const STS_AUDIENCE = "sts.amazonaws.com";

/** The spec fields an audience comes from, for messages. */
const AUDIENCE_FIELDS = "credentials.webIdentity.audience or serviceAccountRoles.audience";

export interface ServiceAccountTokensOptions {
  /** Audiences allowed beside sts.amazonaws.com (the administrator's --allowed-token-audiences). */
  allowedAudiences?: readonly string[];
}

const SA_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** `system:serviceaccount:<ns>:<name>` → the ServiceAccount, else undefined. */
export function serviceAccountOfUser(username: string): ServiceAccountRef | undefined {
  const m = SA_USER.exec(username);
  return m ? { namespace: m[1] as string, name: m[2] as string } : undefined;
}

export class ServiceAccountTokenError extends Error {
  override readonly name = "ServiceAccountTokenError";
  constructor(
    message: string,
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface TokenRequestAnswer {
  status?: { token?: string; expirationTimestamp?: string };
}

interface SelfSubjectReviewAnswer {
  status?: { userInfo?: { username?: string } };
}

export class ServiceAccountTokens {
  private self: Promise<ServiceAccountRef> | undefined;
  private readonly allowed: ReadonlySet<string>;
  /** Per audience: whether the API server accepts a token for it (asked once). */
  private readonly opensApi = new Map<string, Promise<boolean>>();

  constructor(
    private readonly kube: KubeClient,
    opts: ServiceAccountTokensOptions = {},
  ) {
    this.allowed = new Set([STS_AUDIENCE, ...(opts.allowedAudiences ?? [])]);
  }

  /** The operator's own ServiceAccount, from the identity it calls the API server with. */
  ownServiceAccount(): Promise<ServiceAccountRef> {
    this.self ??= (async () => {
      let username = "";
      try {
        const review = await this.kube.create<SelfSubjectReviewAnswer & { metadata?: object }>(
          SELF_SUBJECT_REVIEWS,
          { metadata: {} },
        );
        username = review.status?.userInfo?.username ?? "";
      } catch (err) {
        this.self = undefined;
        throw new ServiceAccountTokenError(
          `failed to learn the operator's own ServiceAccount (SelfSubjectReview): ${apiErrorMessage(err)}`,
          statusCode(err),
          { cause: err },
        );
      }
      const sa = serviceAccountOfUser(username);
      if (!sa) {
        this.self = undefined;
        throw new ServiceAccountTokenError(
          `failed to find the operator's own ServiceAccount: it calls the API server as ${JSON.stringify(username)}, not as a ServiceAccount; set credentials.webIdentity.serviceAccount`,
          0,
        );
      }
      return sa;
    })();
    return this.self;
  }

  /** A fresh token of a ServiceAccount (default: the operator's own) for `audience`. */
  async request(
    serviceAccount: ServiceAccountRef | undefined,
    audience: string,
    expirationSeconds = TOKEN_REQUEST_SECONDS,
  ): Promise<ServiceAccountToken> {
    const sa = serviceAccount ?? (await this.ownServiceAccount());
    if (!this.allowed.has(audience)) {
      throw new ServiceAccountTokenError(
        `failed to request a token for ServiceAccount ${sa.namespace}/${sa.name}: the audience ${JSON.stringify(audience)} (${AUDIENCE_FIELDS}) is not one the administrator allows (${[...this.allowed].join(", ")}); use ${STS_AUDIENCE}, or have the administrator add it to --allowed-token-audiences`,
        0,
      );
    }
    let answer: TokenRequestAnswer;
    try {
      answer = await this.kube.createSubresource<TokenRequestAnswer>(
        SERVICE_ACCOUNTS,
        sa,
        "token",
        {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { audiences: [audience], expirationSeconds },
        },
      );
    } catch (err) {
      const status = statusCode(err);
      const hint =
        status === 403
          ? `; allow create on serviceaccounts/token for ${sa.name} in ${sa.namespace} (chart value webIdentity.serviceAccounts)`
          : status === 404
            ? "; create the ServiceAccount or fix credentials.webIdentity.serviceAccount"
            : "";
      throw new ServiceAccountTokenError(
        `failed to request a token for ServiceAccount ${sa.namespace}/${sa.name}: ${apiErrorMessage(err)}${hint}`,
        status,
        { cause: err },
      );
    }
    const token = answer.status?.token;
    if (!token) {
      throw new ServiceAccountTokenError(
        `failed to request a token for ServiceAccount ${sa.namespace}/${sa.name}: the answer held no token`,
        0,
      );
    }
    if (await this.apiServerAccepts(audience, token)) {
      throw new ServiceAccountTokenError(
        `failed to request a token for ServiceAccount ${sa.namespace}/${sa.name}: the audience ${JSON.stringify(audience)} (${AUDIENCE_FIELDS}) is the API server's own, so the token would open the Kubernetes API wherever it is sent; use ${STS_AUDIENCE}, and remove it from --allowed-token-audiences`,
        0,
      );
    }
    const expires = Date.parse(answer.status?.expirationTimestamp ?? "");
    return {
      token,
      serviceAccount: sa,
      expiresAt: new Date(
        Number.isFinite(expires) ? expires : Date.now() + expirationSeconds * 1000,
      ),
    };
  }

  /**
   * Whether the API server accepts a token for `audience`: a SelfSubjectReview
   * (allowed to everyone authenticated) made with the token itself. Asked
   * once per audience; the answer does not change while the API server runs.
   */
  private apiServerAccepts(audience: string, token: string): Promise<boolean> {
    let answer = this.opensApi.get(audience);
    if (!answer) {
      const probe = new KubeClient(
        {
          ...this.kube.connection,
          impersonate: undefined,
          credentials: async () => ({ authorization: `Bearer ${token}` }),
          invalidate: () => {},
        },
        { qps: 0, burst: 0 },
      );
      answer = probe.create(SELF_SUBJECT_REVIEWS, { metadata: {} }).then(
        () => true,
        (err: unknown) => {
          if (statusCode(err) === 401) return false;
          this.opensApi.delete(audience);
          throw new ServiceAccountTokenError(
            `failed to check whether the API server accepts tokens for the audience ${JSON.stringify(audience)}: ${apiErrorMessage(err)}`,
            statusCode(err),
            { cause: err },
          );
        },
      );
      this.opensApi.set(audience, answer);
    }
    return answer;
  }
}
