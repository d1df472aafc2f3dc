// IAM Roles Anywhere's CreateSession on the double's HTTP server (restJson1):
// RolesAnywhereDouble judges the request, the double's IAM issues the session.
import { randomUUID } from "node:crypto";
import type { RequestContext } from "./protocol.js";
import type { RolesAnywhereDouble } from "./roles-anywhere.js";
import { assumeRole, type DoubleState } from "./state.js";

/** Answers one CreateSession request and records it with the role, serial and subject. */
export function handleRolesAnywhere(
  state: DoubleState,
  rolesAnywhere: RolesAnywhereDouble,
  ctx: RequestContext,
): void {
  const answer = rolesAnywhere.createSession(ctx.signed, state.settings.now(), {
    hasRole: (roleArn) => state.principals.role(roleArn) !== undefined,
    assume: (roleArn, sessionName, seconds) => {
      const role = state.principals.role(roleArn);
      if (role === undefined) throw new Error(`failed to assume ${roleArn}: no such role`);
      const { identity } = assumeRole(state, ctx, role, sessionName, seconds * 1000);
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
    state.log.record(ctx, answer.status);
    return;
  }
  ctx.res.writeHead(answer.status, {
    "content-type": "application/json",
    "x-amzn-requestid": randomUUID(),
    "x-amzn-errortype": `${answer.code}:http://internal.amazon.com/coral/com.amazonaws.rolesanywhere/`,
  });
  ctx.res.end(JSON.stringify({ message: answer.message }));
  state.log.record(ctx, answer.status, answer.code);
}
