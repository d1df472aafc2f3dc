// The admin API under /_double/, for a double running in another process
// (test/aws-double/main.ts): the call log, issued tokens, principals, faults.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AwsDouble } from "./aws-double.js";
import type { AwsService, Fault, IdentityInit, OidcProviderInit, RoleInit } from "./types.js";

/**
 * Answers one admin request (JSON in, JSON out): `route` is
 * "<METHOD> /_double/<what>"; 400 on a body that is not JSON, 404 on an
 * unknown route.
 */
export function handleAdmin(
  double: AwsDouble,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  body: Buffer,
): void {
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
  const answer = ROUTES[route];
  if (answer === undefined) {
    reply(404, { message: `no such admin route: ${route}` });
    return;
  }
  reply(200, answer(double, input));
}

type Route = (double: AwsDouble, input: Record<string, unknown>) => unknown;

const ROUTES: Record<string, Route> = {
  "GET /_double/calls": (double) => double.calls(),
  "DELETE /_double/calls": (double) => {
    double.resetCalls();
    return {};
  },
  "GET /_double/issued": (double) => double.issued(),
  "POST /_double/validate-password": (double, input) => ({
    valid: double.isValidPassword(String(input.password ?? "")),
  }),
  "POST /_double/identities": (double, input) => {
    double.addIdentity(input as unknown as IdentityInit);
    return {};
  },
  "POST /_double/roles": (double, input) => {
    double.addRole(input as unknown as RoleInit);
    return {};
  },
  "POST /_double/oidc-providers": (double, input) => ({
    arn: double.addOidcProvider(input as unknown as OidcProviderInit),
  }),
  "POST /_double/faults": (double, input) => {
    const { service, action, times, ...fault } = input;
    double.inject(fault as unknown as Fault, {
      service: service as AwsService | undefined,
      action: action as string | undefined,
      times: times as number | undefined,
    });
    return {};
  },
  "DELETE /_double/faults": (double) => {
    double.clearFaults();
    return {};
  },
  "PUT /_double/token-lifetime": (double, input) => {
    double.tokenLifetimeMs = Number(input.ms);
    return { tokenLifetimeMs: double.tokenLifetimeMs };
  },
};
