/**
 * The one catalogue of the errors the operator throws (fastify-style), and so
 * of the reasons a failed pass puts on the Ready condition: an error's code is
 * that condition reason. Under each code, each way it can fail has a message
 * template typed by its parameters, so a caller cannot forget a detail the
 * message needs. Messages read `failed to <verb> <thing>: <cause>` and end with
 * what to fix where there is something to fix. A unit test (errors.test.ts)
 * holds that this list is exactly what src/ throws.
 *
 * What a reconcile does with a thrown error: InvalidSpec is terminal (the
 * status says why; nothing is retried until the resource changes); every other
 * code backs off and retries.
 *
 * Outside the catalogue, on purpose: the Kubernetes client's ApiError (the
 * API server's own answer, which a pass reports as WriteFailed) and its
 * kubeconfig errors, and the CLI's ConfigError (a usage error, exit code 2).
 *
 * Never put secrets (tokens, passwords, access keys) into parameters: messages
 * end up in logs, Events and status conditions.
 */
import type { Reason } from "./api/conditions.js";

interface StepParams {
  /** What was being done: "get an ECR token in us-east-1". */
  step: string;
  /** Where the credentials came from, in words: never a key. */
  source: string;
  /** What AWS or the network answered (scrubbed). */
  detail: string;
}

interface SecretKeyParams {
  /** "Secret ns/name". */
  secret: string;
  key: string;
}

interface ObjectParams {
  namespace: string;
  name: string;
}

const REGION_FIX =
  "check the region (spec.region, a registry entry's region or host, or the operator's --region) and the network (HTTPS_PROXY and NO_PROXY, where AWS is reached through a proxy)";

export const errorCatalogue = {
  InvalidSpec: {
    roleAnnotation: (p: { namespace: string; name: string; value: string; annotation: string }) =>
      `failed to read the role of ServiceAccount ${p.namespace}/${p.name}: ${JSON.stringify(p.value)} is not an IAM role ARN; fix its ${p.annotation} annotation (arn:aws:iam::<account>:role/<name>)`,
    duration: (p: { value: string; reason: string }) =>
      `failed to parse duration ${JSON.stringify(p.value)}: ${p.reason}; use a Go duration such as "90m", "4h" or "1h30m"`,
    glob: (p: { glob: string; reason: string }) =>
      `failed to parse namespace glob ${JSON.stringify(p.glob)}: ${p.reason}; use a namespace name in which * matches any run of characters and ? matches one`,
    selector: (p: { reason: string }) =>
      `failed to evaluate namespaceSelector: ${p.reason}; fix spec.namespaceSelector`,
    registryHost: (p: { host: string; reason: string }) =>
      `failed to parse registry host ${JSON.stringify(p.host)}: ${p.reason}; use <account>.dkr.ecr[-fips].<region>.<the region's domain> (amazonaws.com, amazonaws.com.cn, amazonaws.eu, ...), dual-stack <account>.dkr-ecr[-fips].<region>.on.aws (on.amazonwebservices.com.cn, ...), public.ecr.aws or ecr-public.aws.com`,
    noRegion: (p: { field: string }) =>
      `failed to resolve ${p.field}: no region; set spec.region or the operator's --region (AWS_REGION)`,
    registryEntry: (p: { field: string; cause: string }) =>
      `failed to resolve ${p.field}: ${p.cause}`,
    registryListedTwice: (p: { host: string }) =>
      `failed to build .dockerconfigjson: registry ${p.host} is listed twice with different credentials; list each registry once in spec.registries`,
  },
  CredentialsSecretNotFound: {
    notFound: (p: ObjectParams) =>
      `failed to read AWS credentials: Secret ${p.namespace}/${p.name} not found; create it with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or fix spec.credentials.secretRef`,
    // IAM Roles Anywhere (src/aws/roles-anywhere.ts).
    certificate: (p: ObjectParams) =>
      `failed to read the IAM Roles Anywhere certificate: Secret ${p.namespace}/${p.name} not found; create it (a cert-manager Certificate with this secretName) or fix credentials.rolesAnywhere.certificateSecretRef`,
  },
  CredentialsSecretInvalid: {
    missingKey: (p: SecretKeyParams) =>
      `failed to read AWS credentials: ${p.secret} has no key ${p.key}; add AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
    notUtf8: (p: SecretKeyParams) =>
      `failed to read AWS credentials: ${p.key} in ${p.secret} is not valid UTF-8 text; store the key as plain text (kubectl create secret generic --from-literal=${p.key}=...)`,
    empty: (p: SecretKeyParams) =>
      `failed to read AWS credentials: ${p.key} in ${p.secret} is empty; put the key's value under ${p.key}`,
    whitespace: (p: SecretKeyParams) =>
      `failed to read AWS credentials: ${p.key} in ${p.secret} has leading or trailing white space (often a trailing newline); store the key without it`,
    // IAM Roles Anywhere (src/aws/roles-anywhere.ts).
    certificate: (p: { secret: string; reason: string }) =>
      `failed to read the IAM Roles Anywhere certificate in ${p.secret}: ${p.reason}; it must be a kubernetes.io/tls Secret with the certificate and its intermediates in tls.crt and the certificate's RSA or ECDSA private key in tls.key (PEM)`,
    certificateNotValid: (p: { secret: string; certificate: string; reason: string }) =>
      `failed to use the IAM Roles Anywhere certificate in ${p.secret} (${p.certificate}): ${p.reason}; renew it (cert-manager renews before expiry: check the Certificate's status and its Issuer)`,
  },
  CredentialsInvalid: {
    none: (p: StepParams) =>
      `failed to ${p.step}: no AWS credentials from ${p.source} (${p.detail}); set spec.credentials.secretRef or the operator's default credentials Secret, or give the operator IRSA (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE) or EKS Pod Identity`,
    refused: (p: StepParams) =>
      `failed to ${p.step}: AWS refused ${p.source} (${p.detail}); replace them with valid keys or fix the identity`,
    noKubeClient: (p: { source: string }) =>
      `failed to use the web identity of ${p.source}: no Kubernetes client to request its token with; run with a kubeconfig (--kubeconfig, KUBECONFIG) or inside the cluster`,
    // IAM Roles Anywhere (src/aws/roles-anywhere.ts).
    certificateRefused: (p: {
      secret: string;
      certificate: string;
      trustAnchorArn: string;
      profileArn: string;
      roleArn: string;
      detail: string;
    }) =>
      `failed to create an IAM Roles Anywhere session for role ${p.roleArn} with the certificate in ${p.secret} (${p.certificate}): Roles Anywhere refused it (${p.detail}); the certificate must chain to the CA of trust anchor ${p.trustAnchorArn} and be valid now, profile ${p.profileArn} must list the role, and the role must trust rolesanywhere.amazonaws.com`,
  },
  // `subject`: the web identity's `sub` (system:serviceaccount:NS:NAME) when
  // that token is what the role must trust: what to write into its trust policy.
  RoleNotAssumable: {
    webIdentity: (p: StepParams & { subject?: string }) =>
      `failed to ${p.step}: STS refused the web identity token of ${p.source} (${p.detail}); check that the token's issuer is an IAM OIDC provider with this audience, the token file (IRSA), and that the token is genuine${p.subject ? `; the role's trust policy must allow sub ${JSON.stringify(p.subject)}` : ""}`,
    issuerUnreadable: (p: StepParams) =>
      `failed to ${p.step} with ${p.source}: STS could not read the issuer's discovery document or keys (${p.detail}); serve them where IAM can read them anonymously (docs/identity.md)`,
    accessDenied: (p: StepParams & { subject?: string }) =>
      `failed to ${p.step} with ${p.source}: access denied (${p.detail}); ${p.subject ? `the role's trust policy must allow sub ${JSON.stringify(p.subject)} (condition "<issuer>:sub") and its audience` : "check the role's trust policy and externalId"}`,
  },
  ServiceAccountTokenFailed: {
    tokenRequest: (p: { step: string; detail: string }) => `failed to ${p.step}: ${p.detail}`,
  },
  AccessDenied: {
    ecr: (p: StepParams) =>
      `failed to ${p.step}: access denied for ${p.source} (${p.detail}); allow ecr:GetAuthorizationToken in its IAM policy`,
  },
  ClockSkew: {
    refused: (p: StepParams & { offset: string }) =>
      `failed to ${p.step}: AWS refused the request as signed at the wrong time${p.offset}; ${p.detail}; set this host's clock right (NTP, chrony); the keys are not at fault`,
  },
  RegionUnknown: {
    unreachable: (p: { step: string; code: string }) =>
      `failed to ${p.step}: the AWS endpoint could not be reached (${p.code}); ${REGION_FIX}`,
  },
  TokenRefreshFailed: {
    aws: (p: StepParams) => `failed to ${p.step} with ${p.source}: ${p.detail}`,
    throttled: (p: StepParams) =>
      `failed to ${p.step} with ${p.source}: AWS throttled the call (${p.detail}); retried after the SDK's back-off. The quota (per account and region) is shared with every other caller in the account; lower the operator's --aws-token-qps or find the other callers`,
    malformedToken: (p: { reason: string }) =>
      `failed to decode the ECR authorization token: ${p.reason}; the token must be base64 of "user:password" as returned by GetAuthorizationToken`,
    malformedDockerConfig: (p: { reason: string }) =>
      `failed to parse .dockerconfigjson: ${p.reason}; it must be {"auths": {"<host>": {"username", "password"} or {"auth": base64("user:password")}}}`,
    noToken: (p: { source: string }) =>
      `failed to get a token from ${p.source}: none fetched yet; the fetch is retried`,
  },
  TokenExpiredOnArrival: {
    expired: (p: {
      service: string;
      region: string;
      source: string;
      expiresAt: string;
      next: string;
    }) =>
      `failed to get a usable ${p.service} token in ${p.region} with ${p.source}: AWS returned one that expires at ${p.expiresAt}, before it arrived; check the clock of this host and the AWS endpoint; ${p.next}`,
  },
  SecretConflict: {
    foreign: (p: ObjectParams) =>
      `failed to write Secret ${p.namespace}/${p.name}: it exists and was not created by this operator; rename spec.secretName, delete that Secret, or set spec.adoptExisting: true`,
    otherOwner: (p: ObjectParams & { owner: string }) =>
      `failed to write Secret ${p.namespace}/${p.name}: it belongs to ${p.owner}; give one of them another spec.secretName or exclude this namespace from one of them`,
    notAdoptable: (p: ObjectParams & { type: string; wanted: string }) =>
      `failed to adopt Secret ${p.namespace}/${p.name}: it is of type ${p.type}, and adoptExisting only takes over ${p.wanted} Secrets; rename spec.secretName or delete that Secret`,
    notAdoptableOutput: (p: ObjectParams & { field: string }) =>
      `failed to write Secret ${p.namespace}/${p.name}: it exists and was not created by this operator, and adoptExisting takes over only the pull Secret (type kubernetes.io/dockerconfigjson), never the Secret of ${p.field}; rename ${p.field} or move that Secret away`,
    notAdoptableContent: (p: ObjectParams & { reason: string }) =>
      `failed to adopt Secret ${p.namespace}/${p.name}: its .dockerconfigjson cannot be merged without losing what it holds (${p.reason}); fix or delete that Secret, or rename spec.secretName`,
  },
  NamespaceNotGranted: {
    /** `served`: the granted namespaces, comma-separated. */
    outside: (p: { namespace: string; served: string }) =>
      `failed to serve namespace ${p.namespace}: it is outside the namespaces this install may serve (${p.served}); add it to the chart value rbac.namespaces (the operator's --watch-namespaces)`,
  },
  ServiceAccountConflict: {
    keptChanging: (p: ObjectParams) =>
      `failed to update ServiceAccount ${p.namespace}/${p.name}: it kept changing under us; retrying`,
  },
  ServiceAccountReverted: {
    backingOff: (
      p: ObjectParams & { secret: string; manager: string; removals: number; until: string },
    ) =>
      `failed to keep ${JSON.stringify(p.secret)} in ServiceAccount ${p.namespace}/${p.name}'s imagePullSecrets: field manager ${JSON.stringify(p.manager)} removed it ${p.removals} times in 10 minutes; re-adding it no sooner than ${p.until}; make ${p.manager} leave that field to ecr-creds-refresher (docs/gitops.md)`,
  },
  WriteFailed: {
    secretKeptConflicting: (p: ObjectParams) =>
      `failed to write Secret ${p.namespace}/${p.name}: kept conflicting; retrying`,
    deleteKeptChanging: (p: ObjectParams) =>
      `failed to delete Secret ${p.namespace}/${p.name}: it kept changing; retrying`,
  },
  // An ECRPullSecretClaim (src/reconcile/claims.ts): refused before any write or AWS call.
  SourceNotFound: {
    missing: (p: { source: string }) =>
      `failed to use ClusterECRCredentialSource ${p.source}: it does not exist; fix spec.sourceRef.name, or ask an administrator which sources are offered to this namespace`,
  },
  SourceNotAllowed: {
    namespace: (p: { source: string; namespace: string }) =>
      `failed to use ClusterECRCredentialSource ${p.source} in namespace ${p.namespace}: none of the source's spec.conditions matches this namespace; ask the source's administrator to add it (by name, glob or label selector), or use another source`,
    noConditions: (p: { source: string; namespace: string }) =>
      `failed to use ClusterECRCredentialSource ${p.source} in namespace ${p.namespace}: the source allows no namespace yet (spec.conditions is empty); ask its administrator to add this namespace to spec.conditions`,
  },
  FeatureNotAllowed: {
    source: (p: { source: string; feature: string; field: string }) =>
      `failed to use ${p.field} over ClusterECRCredentialSource ${p.source}: the source does not allow the feature ${p.feature}; remove ${p.field}, or ask the source's administrator to add ${p.feature} to its spec.allowedFeatures`,
    ownCredentials: (p: { feature: string; field: string }) =>
      `failed to use ${p.field} with the claim's own credentials: ${p.feature} reaches beyond the claim's namespace, which only a ClusterECRCredentialSource's administrator can allow; remove ${p.field} or use spec.sourceRef`,
  },
  RegistryNotAllowed: {
    notOffered: (p: { source: string; registry: string; offered: string }) =>
      `failed to use registry ${p.registry} over ClusterECRCredentialSource ${p.source}: the source does not offer it (it offers ${p.offered}); remove it from spec.registries, or ask the source's administrator to add it`,
  },
  PartiallySynced: {
    namespaces: (p: { failed: number; desired: number; first: string }) =>
      `failed to sync ${p.failed} of ${p.desired} namespaces: ${p.first}; see status.failures, the pass is retried with backoff`,
  },
} as const satisfies Partial<Record<Reason, Record<string, (p: never) => string>>>;

type Catalogue = typeof errorCatalogue;
export type ErrorCode = keyof Catalogue;
export type ErrorForm<C extends ErrorCode> = keyof Catalogue[C] & string;
export type ErrorParams<C extends ErrorCode, F extends ErrorForm<C>> = Catalogue[C][F] extends (
  p: infer P,
) => string
  ? P
  : never;

/** An error with a stable code (a condition reason), the form of its message, and a cause. */
export class OperatorError<C extends ErrorCode = ErrorCode> extends Error {
  override readonly name = "OperatorError";
  /** The condition reason this error reports as. */
  readonly code: C;
  /** Which of the code's messages this is (for tests; never shown). */
  readonly form: string;

  constructor(code: C, form: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.form = form;
  }

  /** The condition reason: the same as the code. */
  get reason(): C {
    return this.code;
  }
}

/** Builds the catalogue's error `code`/`form` with its parameters (and an optional cause). */
export function operatorError<C extends ErrorCode, F extends ErrorForm<C>>(
  code: C,
  form: F,
  params: ErrorParams<C, F>,
  cause?: unknown,
): OperatorError<C> {
  // The catalogue's entries differ in parameter type; indexing by generic keys
  // loses the pairing, so restore it with one cast.
  const template = errorCatalogue[code][form] as (p: ErrorParams<C, F>) => string;
  return new OperatorError(code, form, template(params), cause === undefined ? {} : { cause });
}

/** Narrows `e` to an OperatorError, optionally of one code. */
export function isOperatorError<C extends ErrorCode>(e: unknown, code?: C): e is OperatorError<C> {
  return e instanceof OperatorError && (code === undefined || e.code === code);
}

/** Whether a pass that ended in `e` must wait for the resource to change rather than retry. */
export function isTerminal(e: unknown): boolean {
  return isOperatorError(e, "InvalidSpec");
}
