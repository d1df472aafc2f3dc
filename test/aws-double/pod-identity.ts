// The container credentials endpoint EKS Pod Identity serves to Pods.
import { randomBytes } from "node:crypto";
import { isoSeconds, type RequestContext } from "./protocol.js";
import { headerValue } from "./sigv4.js";
import { assumeRole, type DoubleState } from "./state.js";

/** Path of the endpoint; AWS_CONTAINER_CREDENTIALS_FULL_URI points here. */
export const POD_IDENTITY_PATH = "/pod-identity/credentials";

/**
 * Answers one GetCredentials request: the Authorization header is the Pod's
 * association token; the answer a fresh session of its role (JSON).
 */
export function handleContainerCredentials(state: DoubleState, ctx: RequestContext): void {
  const reply = (status: number, payload: unknown, errorCode?: string): void => {
    ctx.res.writeHead(status, { "content-type": "application/json" });
    ctx.res.end(JSON.stringify(payload));
    state.log.record(ctx, status, errorCode);
  };
  const consume = (kind: "refuse" | "throttle" | "error5xx"): boolean =>
    state.faults.consume(ctx.service, ctx.action, kind);
  const token = headerValue(ctx.signed.headers, "authorization");
  if (token === undefined || token === "") {
    reply(401, { message: "missing authorization token" }, "Unauthorized");
    return;
  }
  if (consume("refuse")) {
    reply(403, { message: "invalid authorization token" }, "Forbidden");
    return;
  }
  const role = state.principals.podRole(token);
  if (role === undefined) {
    reply(403, { message: "invalid authorization token" }, "Forbidden");
    return;
  }
  if (consume("throttle")) {
    reply(429, { message: "too many requests" }, "TooManyRequests");
    return;
  }
  if (consume("error5xx")) {
    reply(500, { message: "internal error" }, "InternalError");
    return;
  }
  const sessionName = `eks-pod-identity-${randomBytes(6).toString("hex")}`;
  const { identity } = assumeRole(state, ctx, role, sessionName, undefined);
  ctx.principalArn = identity.arn;
  reply(200, {
    AccessKeyId: identity.accessKeyId,
    SecretAccessKey: identity.secretAccessKey,
    Token: identity.sessionToken,
    AccountId: identity.accountId,
    Expiration: isoSeconds(identity.expiresAt ?? new Date()),
  });
}
