// Keeps the operator's GetAuthorizationToken calls under a share of AWS's
// quota. AWS counts those calls per account and region (documented: 20 a
// second sustained, 200 burst, for ECR; ECR Public has its own); past it,
// every caller in the account — the operator, CI, kubelets' credential
// helpers — gets ThrottlingException. Whatever number of sources refresh at
// once, the operator takes at most `qps` calls a second (after a burst of
// `burst`) from each account's quota in each region.
//
// Which account a call is charged to is the account of the principal that
// makes it, not of the registry it opens. Before the call the operator knows
// it only in some cases, and so keys the limiter by what it knows:
//
//   1. a role (`roleArn`, else the web identity's role): the call is made as
//      that role, so the account is the one in the role ARN — known before
//      the first call;
//   2. otherwise (keys in a Secret, the SDK chain) the account of the keys is
//      known only once a token has come back: its `proxyEndpoint` is the
//      caller's own registry, `<account>.dkr.ecr.<region>.amazonaws.com`, so
//      from the second call on, the identity the last token named is used;
//   3. before that, and whenever the endpoint does not name an account (an
//      emulator, a test double), the account is unknown: every such source
//      of a region shares one bucket, as if they were all one account. That
//      is the safe guess — it can only make a first sync slower (500 unknown
//      sources at 10/s after a burst of 50: 45 s), never throttle.
//
// A call of unknown account may be charged to any account, so no account's
// bucket may ignore it: it takes a token from the region's unknown bucket and
// then from every known account's bucket of the region, and an account's
// bucket, when first needed, starts as a copy of the unknown bucket (what the
// unknown calls have already spent). Each account's bucket thus sees every
// call that can be charged to it, and no account gets a second burst when its
// sources move from "unknown" to their learnt account.
//
// The registry account of a spec (`accountId`, a host) is deliberately not
// used: a token for a cross-account registry is still charged to the caller.

import { assertNever } from "../kube/never.js";
import { TokenBucket } from "../kube/rate-limiter.js";
import { type CredentialSource, credentialsKey } from "./credential-source.js";
import type { RegistryToken } from "./token.js";
import type { TokenSource } from "./token-cache.js";

export interface QuotaOptions {
  /** Calls a second per (service, account, region); 0 = no limit. */
  qps: number;
  /** Calls at once above the rate. */
  burst: number;
}

/** The account in a role ARN (`arn:<partition>:iam::<account>:role/...`). */
export function accountOfRoleArn(arn: string): string | undefined {
  return /^arn:[a-z-]+:iam::([0-9]{12}):role\//.exec(arn)?.[1];
}

/** The account a token's proxyEndpoint names (`https://<account>.dkr.ecr...`). */
export function accountOfProxyEndpoint(endpoint: string | undefined): string | undefined {
  return endpoint ? /^(?:https?:\/\/)?([0-9]{12})\.dkr[.-]ecr/.exec(endpoint)?.[1] : undefined;
}

/**
 * The role the call is made as, if the source names one: the role on top,
 * else the web identity's. Roles Anywhere's role would name the account too,
 * but its calls have always been keyed as of an unknown account until a token
 * names it: kept so (a change of the quota's behaviour is not this one's).
 */
function roleOf(c: CredentialSource): string | undefined {
  if (c.role) return c.role.roleArn;
  switch (c.kind) {
    case "webIdentity":
      return c.webIdentity.roleArn;
    case "secretKeys":
    case "rolesAnywhere":
    case "defaultChain":
      return undefined;
    default:
      return assertNever(c, "credential source");
  }
}

export class AwsQuota {
  /** `service|region` → that scope's buckets: the unknown account's and each known account's. */
  private readonly scopes = new Map<
    string,
    { unknown?: TokenBucket; accounts: Map<string, TokenBucket> }
  >();
  /** Credentials → the account the last token of them named. */
  private readonly learnt = new Map<string, string>();

  constructor(private readonly opts: QuotaOptions) {}

  /** The account a call of this source is charged to, if known before the call. */
  private accountOf(source: TokenSource): string | undefined {
    const role = roleOf(source.credentials);
    return (
      (role ? accountOfRoleArn(role) : undefined) ??
      this.learnt.get(credentialsKey(source.credentials))
    );
  }

  /** The bucket a call of this source is charged to: `service|account|region`. */
  keyOf(source: TokenSource): string {
    return `${source.service}|${this.accountOf(source) ?? "unknown"}|${source.region}`;
  }

  /**
   * Waits until a call of this source fits under the limit: its account's
   * bucket; for an unknown account, the unknown bucket and then every known
   * account's bucket of the same service and region.
   */
  async take(source: TokenSource): Promise<void> {
    if (this.opts.qps <= 0) return;
    const scopeKey = `${source.service}|${source.region}`;
    let scope = this.scopes.get(scopeKey);
    if (!scope) {
      scope = { accounts: new Map() };
      this.scopes.set(scopeKey, scope);
    }
    const account = this.accountOf(source);
    if (account !== undefined) {
      let bucket = scope.accounts.get(account);
      if (!bucket) {
        bucket = scope.unknown?.copy() ?? new TokenBucket(this.opts.qps, this.opts.burst);
        scope.accounts.set(account, bucket);
      }
      await bucket.take();
      return;
    }
    scope.unknown ??= new TokenBucket(this.opts.qps, this.opts.burst);
    await scope.unknown.take();
    // The accounts known once this call is let through: any of them may pay for it.
    await Promise.all([...scope.accounts.values()].map((b) => b.take()));
  }

  /** Remembers the account a token named, for the next calls of the same credentials. */
  learn(source: TokenSource, token: RegistryToken): void {
    if (roleOf(source.credentials)) return;
    const account = accountOfProxyEndpoint(token.proxyEndpoint);
    if (account) this.learnt.set(credentialsKey(source.credentials), account);
  }
}
