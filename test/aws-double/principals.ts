// IAM as the double knows it: users and sessions (by access key), roles and
// their trust, Pod Identity associations, OIDC providers and ECR denials.

import { randomBytes } from "node:crypto";
import { accountFromArn, randomId, roleNameFromArn } from "./protocol.js";
import type {
  IdentityInit,
  OidcProviderInit,
  PodIdentityInit,
  RoleInit,
  TrustPolicy,
} from "./types.js";
import { checkTrustPolicy, makeOidcProvider, type OidcProvider } from "./web-identity.js";

/** A caller the double accepts signatures of: an IAM user or a role session. */
export interface Identity extends IdentityInit {
  /** What GetCallerIdentity reports as UserId. */
  userId?: string;
  /** Tags of an assumed-role session. */
  sessionTags?: Record<string, string>;
}

/** An IAM role and who may assume it. */
export interface Role {
  roleArn: string;
  accountId: string;
  roleName: string;
  roleId: string;
  trustedPrincipalArns: string[] | undefined;
  externalId: string | undefined;
  webIdentityTokens: Set<string>;
  trustPolicy: TrustPolicy | undefined;
}

/** A role session just opened: its keys, its role and its name. */
export interface Session {
  identity: Identity;
  role: Role;
  sessionName: string;
}

/** The principals of the double's IAM. */
export class Principals {
  private readonly identities = new Map<string, Identity>();
  private readonly roles = new Map<string, Role>();
  private readonly podIdentities = new Map<string, string>();
  private readonly oidcProviders = new Map<string, OidcProvider>();
  private readonly deniedEcr = new Set<string>();

  addIdentity(identity: IdentityInit): void {
    this.identities.set(identity.accessKeyId, { ...identity });
  }

  removeIdentity(accessKeyId: string): void {
    this.identities.delete(accessKeyId);
  }

  /** The user or session an access key belongs to. */
  identity(accessKeyId: string): Identity | undefined {
    return this.identities.get(accessKeyId);
  }

  /** Adds a role; throws when `roleArn` is not a role ARN or the trust policy is malformed. */
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

  role(roleArn: string): Role | undefined {
    return this.roles.get(roleArn);
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

  /** The OIDC providers registered in one account. */
  oidcProvidersOf(accountId: string): OidcProvider[] {
    return [...this.oidcProviders.values()].filter((p) => p.accountId === accountId);
  }

  addPodIdentity(init: PodIdentityInit): void {
    this.podIdentities.set(init.authorizationToken, init.roleArn);
  }

  /** The role a Pod Identity authorization token stands for. */
  podRole(authorizationToken: string): Role | undefined {
    const roleArn = this.podIdentities.get(authorizationToken);
    return roleArn === undefined ? undefined : this.roles.get(roleArn);
  }

  /** See AwsDouble.denyEcr. */
  denyEcr(arnOrAccessKeyId: string, region?: string): void {
    this.deniedEcr.add(region ? `${arnOrAccessKeyId}|${region}` : arnOrAccessKeyId);
  }

  allowEcr(arnOrAccessKeyId: string, region?: string): void {
    this.deniedEcr.delete(region ? `${arnOrAccessKeyId}|${region}` : arnOrAccessKeyId);
  }

  /**
   * Whether ECR refuses this caller in `region`: "unallowed" when denied
   * everywhere (no policy allows it), "explicit" when denied in that region.
   */
  ecrDenial(identity: Identity, region: string | undefined): "unallowed" | "explicit" | undefined {
    const who = [identity.arn, identity.accessKeyId];
    if (who.some((w) => this.deniedEcr.has(w))) return "unallowed";
    if (who.some((w) => this.deniedEcr.has(`${w}|${region}`))) return "explicit";
    return undefined;
  }

  /** The role's simple trust (trustedPrincipalArns), for roles without a trust policy. */
  trusts(role: Role, callerArn: string): boolean {
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

  /** Opens a session of `role` whose keys the double accepts until `expiresAt`. */
  openSession(role: Role, sessionName: string, expiresAt: Date): Session {
    const identity: Identity = {
      accessKeyId: randomId("ASIA"),
      secretAccessKey: randomBytes(30).toString("base64"),
      sessionToken: `IQoJb3JpZ2luX2VjE${randomBytes(180).toString("base64")}`,
      accountId: role.accountId,
      arn: `arn:aws:sts::${role.accountId}:assumed-role/${role.roleName}/${sessionName}`,
      expiresAt,
      userId: `${role.roleId}:${sessionName}`,
    };
    this.identities.set(identity.accessKeyId, identity);
    return { identity, role, sessionName };
  }
}
