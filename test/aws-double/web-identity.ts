// What STS does with a web identity token and what IAM does with a role's
// trust policy, for the AWS double. A token is checked the way AWS checks it:
// its `iss` must be a registered OIDC provider; the provider's discovery
// document and JWKS are fetched from the issuer itself, anonymously, over TLS
// whose top certificate must match a registered thumbprint; the signature,
// `iss`, `aud` (one of the provider's client IDs) and `exp` are verified with
// `jose`; then the role's trust policy is evaluated with the token's `sub` and
// `aud` as condition keys. Nothing here is hand-written cryptography.
import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { request } from "node:https";
import type { TLSSocket } from "node:tls";
import {
  createLocalJWKSet,
  decodeJwt,
  type JSONWebKeySet,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import type { OidcProviderInit, TrustPolicy, TrustStatement } from "./types.js";

/** How a web identity check failed, in STS's words. */
export type WebIdentityFailure =
  | { kind: "invalidIdentityToken"; message: string }
  | { kind: "idpCommunication"; message: string }
  | { kind: "expiredWebIdentity"; message: string };

export class WebIdentityError extends Error {
  readonly failure: WebIdentityFailure;
  constructor(failure: WebIdentityFailure) {
    super(failure.message);
    this.failure = failure;
  }
}

export interface VerifiedWebIdentity {
  provider: OidcProvider;
  claims: JWTPayload & { sub: string; iss: string };
  /** The audience that matched one of the provider's client IDs. */
  audience: string;
}

export interface OidcProvider extends OidcProviderInit {
  /** `arn:aws:iam::<account>:oidc-provider/<host[:port][/path]>`. */
  arn: string;
  /** The URL without its scheme: the prefix of the condition keys (`<host>:sub`). */
  hostPath: string;
}

const ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"];

/** `https://host:port/path/` → `host:port/path`. */
export function providerHostPath(url: string): string {
  return url.replace(/^https:\/\//, "").replace(/\/+$/, "");
}

export function makeOidcProvider(init: OidcProviderInit): OidcProvider {
  if (!init.url.startsWith("https://")) {
    throw new Error(`failed to add OIDC provider ${init.url}: IAM accepts only https issuers`);
  }
  const hostPath = providerHostPath(init.url);
  return {
    ...init,
    url: init.url.replace(/\/+$/, ""),
    thumbprints: init.thumbprints.map((t) => t.toLowerCase().replace(/:/g, "")),
    hostPath,
    arn: `arn:aws:iam::${init.accountId}:oidc-provider/${hostPath}`,
  };
}

interface FetchedDocument {
  body: string;
  /** SHA-1 of the top certificate of the chain the server presented. */
  thumbprint: string;
}

/**
 * GETs a URL anonymously, as IAM does, and reports the thumbprint of the top
 * certificate of the server's chain: TLS trust comes from the thumbprints
 * registered with the provider, not from a CA store.
 */
function fetchAnonymously(url: string, timeoutMs: number): Promise<FetchedDocument> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "GET", rejectUnauthorized: false, agent: false, timeout: timeoutMs },
      (res: IncomingMessage) => {
        const socket = res.socket as TLSSocket;
        const thumbprint = topCertificateThumbprint(socket);
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => {
          if (res.statusCode !== 200) {
            reject(new Error(`GET ${url} answered HTTP ${res.statusCode}`));
            return;
          }
          resolve({ body, thumbprint });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

function topCertificateThumbprint(socket: TLSSocket): string {
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  // Walk to the last certificate the chain reaches (a self-signed root points to itself).
  while (cert.issuerCertificate && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    if (cert.issuerCertificate.fingerprint256 === cert.fingerprint256) break;
    cert = cert.issuerCertificate;
  }
  return new X509Certificate(cert.raw).fingerprint.replace(/:/g, "").toLowerCase();
}

/**
 * The thumbprint an administrator registers for an issuer: SHA-1 of the top
 * certificate the issuer's TLS server presents (what
 * `openssl s_client -showcerts` + `openssl x509 -fingerprint -sha1` give).
 */
export async function issuerThumbprint(issuerUrl: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const req = request(
      `${issuerUrl.replace(/\/+$/, "")}/.well-known/openid-configuration`,
      { method: "HEAD", rejectUnauthorized: false, agent: false, timeout: 5_000 },
      (res) => {
        resolve(topCertificateThumbprint(res.socket as TLSSocket));
        res.resume();
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const idp = (message: string): WebIdentityError =>
  new WebIdentityError({ kind: "idpCommunication", message });
const invalid = (message: string): WebIdentityError =>
  new WebIdentityError({ kind: "invalidIdentityToken", message });

/** Fetches the issuer's discovery document and JWKS, checking the TLS thumbprint. */
async function fetchJwks(provider: OidcProvider, timeoutMs: number): Promise<JSONWebKeySet> {
  const unreachable =
    "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements";
  let discovery: { issuer?: string; jwks_uri?: string };
  let jwks: JSONWebKeySet;
  try {
    const doc = await fetchAnonymously(
      `${provider.url}/.well-known/openid-configuration`,
      timeoutMs,
    );
    if (!provider.thumbprints.includes(doc.thumbprint)) {
      throw new Error(`thumbprint ${doc.thumbprint} of the issuer's certificate is not registered`);
    }
    discovery = JSON.parse(doc.body) as typeof discovery;
    if (discovery.issuer !== provider.url) {
      throw new Error(`the discovery document names issuer ${discovery.issuer}`);
    }
    if (!discovery.jwks_uri?.startsWith("https://")) {
      throw new Error("the discovery document has no https jwks_uri");
    }
    const keys = await fetchAnonymously(discovery.jwks_uri, timeoutMs);
    if (!provider.thumbprints.includes(keys.thumbprint)) {
      throw new Error(
        `thumbprint ${keys.thumbprint} of the JWKS host's certificate is not registered`,
      );
    }
    jwks = JSON.parse(keys.body) as JSONWebKeySet;
  } catch (err) {
    throw idp(`${unreachable} (${err instanceof Error ? err.message : String(err)})`);
  }
  return jwks;
}

/**
 * Verifies a web identity token against the registered providers of an
 * account; throws WebIdentityError with STS's error for each failure.
 */
export async function verifyWebIdentityToken(
  token: string,
  providers: readonly OidcProvider[],
  timeoutMs = 5_000,
): Promise<VerifiedWebIdentity> {
  let unverified: JWTPayload;
  try {
    unverified = decodeJwt(token);
  } catch {
    throw invalid(
      "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
    );
  }
  const iss = typeof unverified.iss === "string" ? unverified.iss.replace(/\/+$/, "") : "";
  const provider = providers.find((p) => p.url === iss);
  if (provider === undefined) {
    throw invalid(
      `No OpenIDConnect provider found in your account for ${unverified.iss ?? "(no iss)"}`,
    );
  }
  const jwks = await fetchJwks(provider, timeoutMs);
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      issuer: provider.url,
      audience: provider.clientIds,
      algorithms: ALGORITHMS,
      requiredClaims: ["sub", "exp", "iat"],
    });
    const auds = typeof payload.aud === "string" ? [payload.aud] : (payload.aud ?? []);
    const audience = auds.find((a) => provider.clientIds.includes(a)) ?? "";
    return {
      provider,
      claims: payload as VerifiedWebIdentity["claims"],
      audience,
    };
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) {
      const exp = typeof unverified.exp === "number" ? new Date(unverified.exp * 1000) : undefined;
      throw new WebIdentityError({
        kind: "expiredWebIdentity",
        message: `Token expired: current date/time ${new Date().toISOString()} must be before the expiration date/time ${exp?.toISOString() ?? "(none)"}`,
      });
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.claim === "aud") throw invalid("Incorrect token audience");
      if (err.claim === "iss") throw invalid("Issuer in token does not match the provider URL");
      throw invalid(`The token's ${err.claim} claim is invalid: ${err.reason}`);
    }
    if (
      err instanceof joseErrors.JWSSignatureVerificationFailed ||
      err instanceof joseErrors.JWKSNoMatchingKey ||
      err instanceof joseErrors.JWKSMultipleMatchingKeys
    ) {
      throw invalid("The token's signature could not be verified with the provider's keys");
    }
    if (err instanceof joseErrors.JOSEError) throw invalid(`Invalid token: ${err.message}`);
    throw err;
  }
}

// ---- trust policies -------------------------------------------------------------

/** What a request brings to a trust policy. */
export interface TrustRequest {
  action: string;
  /** `{AWS: arn}` for AssumeRole, `{Federated: providerArn}` for web identity. */
  principal: { AWS?: string; Federated?: string };
  /** Condition keys: `sts:ExternalId`, `<issuer>:sub`, `<issuer>:aud`, `aws:RequestTag/K`, ... */
  context: Record<string, string | string[] | undefined>;
}

const asList = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v : [v];

/** IAM's StringLike: `*` any run of characters, `?` one character. */
function like(pattern: string, value: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(value);
}

function accountOf(arn: string): string | undefined {
  return arn.split(":")[4] || undefined;
}

function principalMatches(statement: TrustStatement, request: TrustRequest): boolean {
  const p = statement.Principal;
  if (p === "*") return true;
  if (request.principal.Federated !== undefined) {
    return asList(p.Federated).includes(request.principal.Federated);
  }
  const caller = request.principal.AWS;
  if (caller === undefined) return false;
  return asList(p.AWS).some((principal) => {
    if (principal === "*" || principal === caller) return true;
    if (principal === `arn:aws:iam::${accountOf(caller)}:root`) return true;
    // Trusting a role trusts its sessions.
    const m = /^arn:aws:iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(principal);
    return m !== null && caller.startsWith(`arn:aws:sts::${m[1]}:assumed-role/${m[2]}/`);
  });
}

const OPERATORS: Record<string, (want: string[], have: string[]) => boolean> = {
  StringEquals: (want, have) => have.length > 0 && have.every((h) => want.includes(h)),
  StringNotEquals: (want, have) => have.every((h) => !want.includes(h)),
  StringLike: (want, have) => have.length > 0 && have.every((h) => want.some((w) => like(w, h))),
  StringNotLike: (want, have) => have.every((h) => !want.some((w) => like(w, h))),
  "ForAllValues:StringEquals": (want, have) => have.every((h) => want.includes(h)),
  "ForAnyValue:StringEquals": (want, have) => have.some((h) => want.includes(h)),
};

/** Fails loudly on a policy the double would evaluate wrongly. */
export function checkTrustPolicy(policy: TrustPolicy): void {
  for (const s of policy.Statement) {
    for (const operator of Object.keys(s.Condition ?? {})) {
      if (!(operator in OPERATORS)) {
        throw new Error(
          `failed to load trust policy: condition operator ${operator} is not supported by the double`,
        );
      }
    }
  }
}

function statementMatches(statement: TrustStatement, request: TrustRequest): boolean {
  const actions = asList(statement.Action);
  if (!actions.some((a) => like(a, request.action))) return false;
  if (!principalMatches(statement, request)) return false;
  for (const [operator, keys] of Object.entries(statement.Condition ?? {})) {
    const test = OPERATORS[operator];
    if (test === undefined) return false;
    for (const [key, want] of Object.entries(keys)) {
      if (!test(asList(want), asList(request.context[key]))) return false;
    }
  }
  return true;
}

/** IAM's evaluation: an explicit Deny wins, then any Allow; nothing allows by default. */
export function trustAllows(policy: TrustPolicy, request: TrustRequest): boolean {
  const matching = policy.Statement.filter((s) => statementMatches(s, request));
  if (matching.some((s) => s.Effect === "Deny")) return false;
  return matching.some((s) => s.Effect === "Allow");
}
