/**
 * The one catalogue of coded errors for the whole operator (fastify-style).
 *
 * Each code has a message template typed by its parameters, so a caller cannot
 * forget a detail the message needs. Messages read `failed to <verb> <thing>:
 * <cause>` and end with what to fix. Add a code by adding an entry below.
 *
 * Never put secrets (tokens, passwords, access keys) into parameters: messages
 * end up in logs, Events and status conditions.
 */
export const errorCatalogue = {
  MalformedToken: (p: { reason: string }) =>
    `failed to decode the ECR authorization token: ${p.reason}; the token must be base64 of "user:password" as returned by GetAuthorizationToken`,
  MalformedDockerConfig: (p: { reason: string }) =>
    `failed to parse .dockerconfigjson: ${p.reason}; it must be {"auths": {"<host>": {"username", "password"} or {"auth": base64("user:password")}}}`,
  ConflictingRegistryCredentials: (p: { host: string }) =>
    `failed to build .dockerconfigjson: registry ${p.host} is listed twice with different credentials; list each registry once in spec.registries`,
  InvalidRegistryHost: (p: { host: string; reason: string }) =>
    `failed to parse registry host ${JSON.stringify(p.host)}: ${p.reason}; use <account>.dkr.ecr[-fips].<region>.<the region's domain> (amazonaws.com, amazonaws.com.cn, amazonaws.eu, ...), dual-stack <account>.dkr-ecr[-fips].<region>.on.aws (on.amazonwebservices.com.cn, ...), public.ecr.aws or ecr-public.aws.com`,
  InvalidDuration: (p: { value: string; reason: string }) =>
    `failed to parse duration ${JSON.stringify(p.value)}: ${p.reason}; use a Go duration such as "90m", "4h" or "1h30m"`,
  InvalidGlob: (p: { glob: string; reason: string }) =>
    `failed to parse namespace glob ${JSON.stringify(p.glob)}: ${p.reason}; use a namespace name in which * matches any run of characters and ? matches one`,
  InvalidSelector: (p: { reason: string }) =>
    `failed to evaluate namespaceSelector: ${p.reason}; fix spec.namespaceSelector`,
  CredentialsSecretNotFound: (p: { namespace: string; name: string }) =>
    `failed to read credentials Secret ${p.namespace}/${p.name}: not found; create it with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or fix credentials.secretRef`,
  CredentialsInvalid: (p: { source: string; reason: string }) =>
    `failed to load AWS credentials from ${p.source}: ${p.reason}; fix the credentials source`,
  AccessDenied: (p: { action: string; reason: string }) =>
    `failed to call ${p.action}: access denied: ${p.reason}; grant the principal this action (e.g. ecr:GetAuthorizationToken)`,
  RoleNotAssumable: (p: { roleArn: string; reason: string }) =>
    `failed to assume role ${p.roleArn}: ${p.reason}; check the role's trust policy, the externalId and the caller's sts:AssumeRole permission`,
  RegionUnknown: (p: { reason: string }) =>
    `failed to determine the AWS region: ${p.reason}; set spec.region, the registry entry's region, or the operator's default region`,
  TokenRefreshFailed: (p: { region: string; reason: string }) =>
    `failed to refresh the ECR token in ${p.region}: ${p.reason}; the Secrets in place are kept and the refresh is retried`,
  SecretConflict: (p: { namespace: string; name: string }) =>
    `failed to write Secret ${p.namespace}/${p.name}: a Secret of that name exists and was not created by this operator; rename spec.secretName, delete that Secret, or set spec.adoptExisting: true`,
} as const;

export type ErrorCode = keyof typeof errorCatalogue;
export type ErrorParams<C extends ErrorCode> = Parameters<(typeof errorCatalogue)[C]>[0];

/** An error with a stable code (for conditions, metrics, tests) and an optional cause. */
export class OperatorError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly params: ErrorParams<C>;

  constructor(code: C, params: ErrorParams<C>, options?: { cause?: unknown }) {
    // The catalogue's entries differ in parameter type; indexing by a generic
    // key loses the pairing, so restore it with one cast.
    const template = errorCatalogue[code] as (p: ErrorParams<C>) => string;
    super(template(params), options);
    this.name = "OperatorError";
    this.code = code;
    this.params = params;
  }
}

/** Shorthand for `new OperatorError(code, params, { cause })`. */
export function operatorError<C extends ErrorCode>(
  code: C,
  params: ErrorParams<C>,
  cause?: unknown,
): OperatorError<C> {
  return new OperatorError(code, params, cause === undefined ? undefined : { cause });
}

/** Narrows `e` to an OperatorError, optionally of one code. */
export function isOperatorError<C extends ErrorCode>(e: unknown, code?: C): e is OperatorError<C> {
  return e instanceof OperatorError && (code === undefined || e.code === code);
}
