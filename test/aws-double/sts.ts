// STS in awsQuery: GetCallerIdentity, AssumeRole (with session tags and
// external ids) and AssumeRoleWithWebIdentity (against the double's OIDC
// providers and the role's trust policy).
import { randomUUID } from "node:crypto";
import { authenticate } from "./auth.js";
import type { Identity, Role, Session } from "./principals.js";
import {
  isoSeconds,
  notAuthorized,
  QUERY_ERRORS,
  type RequestContext,
  ServiceError,
  xmlEscape,
} from "./protocol.js";
import { assumeRole, type DoubleState } from "./state.js";
import {
  type TrustRequest,
  trustAllows,
  verifyWebIdentityToken,
  WebIdentityError,
} from "./web-identity.js";

const STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/";

/** STS's three actions the operator uses. */
export class StsService {
  private readonly state: DoubleState;

  constructor(state: DoubleState) {
    this.state = state;
  }

  /** Answers one awsQuery request; a ServiceError becomes STS's ErrorResponse. */
  async handle(ctx: RequestContext, form: URLSearchParams): Promise<void> {
    try {
      const xml = await this.answer(ctx, form);
      ctx.res.writeHead(200, { "content-type": "text/xml", "x-amzn-requestid": randomUUID() });
      ctx.res.end(xml);
      this.state.log.record(ctx, 200);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      const [status, code] = QUERY_ERRORS[err.kind];
      const requestId = randomUUID();
      const type = status >= 500 ? "Receiver" : "Sender";
      ctx.res.writeHead(status, { "content-type": "text/xml", "x-amzn-requestid": requestId });
      ctx.res.end(
        `<ErrorResponse xmlns="${STS_NAMESPACE}">\n  <Error>\n    <Type>${type}</Type>\n    <Code>${code}</Code>\n    <Message>${xmlEscape(err.message)}</Message>\n  </Error>\n  <RequestId>${requestId}</RequestId>\n</ErrorResponse>\n`,
      );
      this.state.log.record(ctx, status, code);
    }
  }

  private answer(ctx: RequestContext, form: URLSearchParams): Promise<string> | string {
    switch (ctx.action) {
      case "GetCallerIdentity":
        return this.getCallerIdentity(ctx);
      case "AssumeRole":
        return this.assumeRole(ctx, form);
      case "AssumeRoleWithWebIdentity":
        return this.assumeRoleWithWebIdentity(ctx, form);
      default:
        throw new ServiceError(
          "unknownOperation",
          `Could not find operation ${ctx.action} for version 2011-06-15`,
        );
    }
  }

  private getCallerIdentity(ctx: RequestContext): string {
    const identity = authenticate(this.state, ctx, "sts");
    this.state.faults.afterAuthentication(ctx);
    return stsResult(
      "GetCallerIdentity",
      `<Arn>${xmlEscape(identity.arn)}</Arn><UserId>${xmlEscape(userIdOf(identity))}</UserId><Account>${xmlEscape(identity.accountId)}</Account>`,
    );
  }

  private assumeRole(ctx: RequestContext, form: URLSearchParams): string {
    const caller = authenticate(this.state, ctx, "sts");
    noteStsRequest(ctx, form);
    const role = this.roleFor(form, caller.arn, "sts:AssumeRole");
    const externalId = form.get("ExternalId") ?? undefined;
    const tags = ctx.sessionTags ?? {};
    this.checkAssumeRoleTrust(role, caller.arn, externalId, tags);
    this.state.faults.afterAuthentication(ctx);
    const session = assumeRole(this.state, ctx, role, sessionNameOf(form), durationOf(form));
    if (Object.keys(tags).length > 0) session.identity.sessionTags = tags;
    return stsResult(
      "AssumeRole",
      `${assumedRoleXml(session)}${credentialsXml(session.identity)}<PackedPolicySize>6</PackedPolicySize>`,
    );
  }

  /** The role's trust policy, or its simple trust and external id when it has none. */
  private checkAssumeRoleTrust(
    role: Role,
    callerArn: string,
    externalId: string | undefined,
    tags: Record<string, string>,
  ): void {
    if (role.trustPolicy === undefined) {
      if (!this.state.principals.trusts(role, callerArn)) {
        throw notAuthorized(callerArn, "sts:AssumeRole", role.roleArn);
      }
      if (role.externalId !== undefined && role.externalId !== externalId) {
        throw notAuthorized(callerArn, "sts:AssumeRole", role.roleArn);
      }
      return;
    }
    const request = (action: string): TrustRequest => ({
      action,
      principal: { AWS: callerArn },
      context: {
        "sts:ExternalId": externalId,
        "aws:PrincipalArn": callerArn,
        "aws:TagKeys": Object.keys(tags),
        ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:RequestTag/${k}`, v])),
      },
    });
    if (!trustAllows(role.trustPolicy, request("sts:AssumeRole"))) {
      throw notAuthorized(callerArn, "sts:AssumeRole", role.roleArn);
    }
    // Session tags need sts:TagSession in the trust policy as well.
    if (Object.keys(tags).length > 0 && !trustAllows(role.trustPolicy, request("sts:TagSession"))) {
      throw notAuthorized(callerArn, "sts:TagSession", role.roleArn);
    }
  }

  private async assumeRoleWithWebIdentity(
    ctx: RequestContext,
    form: URLSearchParams,
  ): Promise<string> {
    // Unsigned by design: the web identity token is the proof.
    const token = form.get("WebIdentityToken") ?? "";
    noteStsRequest(ctx, form);
    const role = this.roleFor(form, undefined, "sts:AssumeRoleWithWebIdentity");
    let subject = "system:serviceaccount:default:default";
    let provider = "oidc.aws-double.local";
    let audience = "sts.amazonaws.com";
    if (!role.webIdentityTokens.has(token)) {
      const verified = await this.checkWebIdentityTrust(ctx, role, token);
      subject = verified.claims.sub;
      provider = verified.provider.url;
      audience = verified.audience;
    }
    this.state.faults.afterAuthentication(ctx);
    const session = assumeRole(this.state, ctx, role, sessionNameOf(form), durationOf(form));
    return stsResult(
      "AssumeRoleWithWebIdentity",
      `${credentialsXml(session.identity)}<SubjectFromWebIdentityToken>${xmlEscape(subject)}</SubjectFromWebIdentityToken>${assumedRoleXml(session)}<Provider>${xmlEscape(provider)}</Provider><Audience>${xmlEscape(audience)}</Audience>`,
    );
  }

  /**
   * A role given only a list of accepted tokens (an IRSA stand-in) refuses
   * every other token; a role with a trust policy gets STS's full checks.
   */
  private async checkWebIdentityTrust(ctx: RequestContext, role: Role, token: string) {
    if (role.trustPolicy === undefined) {
      throw new ServiceError(
        "accessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
      );
    }
    const verified = await this.verifyWebIdentity(token, role);
    ctx.subject = verified.claims.sub;
    const allowed = trustAllows(role.trustPolicy, {
      action: "sts:AssumeRoleWithWebIdentity",
      principal: { Federated: verified.provider.arn },
      context: {
        [`${verified.provider.hostPath}:sub`]: verified.claims.sub,
        [`${verified.provider.hostPath}:aud`]: verified.audience,
      },
    });
    if (!allowed) {
      throw new ServiceError(
        "accessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
      );
    }
    return verified;
  }

  /** The web identity checks of STS, against the OIDC providers of the role's account. */
  private async verifyWebIdentity(token: string, role: Role) {
    try {
      return await verifyWebIdentityToken(
        token,
        this.state.principals.oidcProvidersOf(role.accountId),
      );
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
    const role = this.state.principals.role(roleArn);
    if (role === undefined) {
      // STS does not reveal whether a role exists.
      if (callerArn === undefined) {
        throw new ServiceError("accessDenied", `Not authorized to perform ${action}`);
      }
      throw notAuthorized(callerArn, action, roleArn);
    }
    return role;
  }
}

/** Notes the STS parameters of a request in its call record. */
function noteStsRequest(ctx: RequestContext, form: URLSearchParams): void {
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

function assumedRoleXml(session: Session): string {
  return `<AssumedRoleUser><AssumedRoleId>${session.role.roleId}:${xmlEscape(session.sessionName)}</AssumedRoleId><Arn>${xmlEscape(session.identity.arn)}</Arn></AssumedRoleUser>`;
}
