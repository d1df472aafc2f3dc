// Which service answers a request: by path (admin, Pod Identity, Roles
// Anywhere), by X-Amz-Target (ECR, ECR Public), by form Action (STS).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EcrService } from "./ecr.js";
import { ecrServiceOf } from "./ecr.js";
import { handleContainerCredentials, POD_IDENTITY_PATH } from "./pod-identity.js";
import { type RequestContext, readBody, ServiceError } from "./protocol.js";
import { CREATE_SESSION_PATH, type RolesAnywhereDouble } from "./roles-anywhere.js";
import { handleRolesAnywhere } from "./roles-anywhere-endpoint.js";
import { headerValue, type SignedRequest } from "./sigv4.js";
import type { DoubleState } from "./state.js";
import type { StsService } from "./sts.js";
import type { AwsService } from "./types.js";

/** The services of one double, and whether it still listens. */
export interface Services {
  state: DoubleState;
  ecr: EcrService;
  sts: StsService;
  rolesAnywhere: RolesAnywhereDouble;
  /** False once the double closes: hung requests then end. */
  isOpen: () => boolean;
  /** The admin API (admin.ts), bound to the double. */
  admin: (path: string, body: Buffer) => void;
}

/**
 * Reads one request and has its service answer it, after the transport
 * faults (hang, delay); 404 JSON for anything else. Rejects only on a bug.
 */
export async function dispatch(
  services: Services,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const body = await readBody(req);
  const url = req.url ?? "/";
  const path = url.split("?")[0] ?? "/";
  const headers: [string, string][] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
  }
  const signed: SignedRequest = { method: req.method ?? "GET", url, headers, body };
  const { state } = services;
  const serve = async (
    service: AwsService,
    action: string,
    answer: (ctx: RequestContext) => Promise<void> | void,
    form?: URLSearchParams,
  ): Promise<void> => {
    const ctx: RequestContext = { service, action, req, res, signed };
    if (form !== undefined) ctx.form = form;
    if (await state.faults.beforeRequest(ctx, services.isOpen, state.log)) await answer(ctx);
  };

  if (path.startsWith("/_double/")) return services.admin(path, body);
  if (path === POD_IDENTITY_PATH) {
    return serve("container-credentials", "GetCredentials", (ctx) =>
      handleContainerCredentials(state, ctx),
    );
  }
  if (path === CREATE_SESSION_PATH && req.method === "POST") {
    return serve("rolesanywhere", "CreateSession", (ctx) =>
      handleRolesAnywhere(state, services.rolesAnywhere, ctx),
    );
  }
  const target = headerValue(headers, "x-amz-target");
  if (target !== undefined) {
    const [prefix, action = ""] = target.split(".");
    const service = ecrServiceOf(prefix);
    if (service === undefined) {
      const ctx: RequestContext = { service: "ecr", action: target, req, res, signed };
      const err = new ServiceError("unknownOperation", `Unknown target ${target}`);
      return services.ecr.replyError(ctx, err);
    }
    return serve(service, action, (ctx) => services.ecr.handle(ctx, body));
  }
  const form = new URLSearchParams(body.toString("utf8"));
  const action = form.get("Action");
  if (req.method === "POST" && action !== null) {
    return serve("sts", action, (ctx) => services.sts.handle(ctx, form), form);
  }
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ message: `no such endpoint: ${req.method} ${path}` }));
}
