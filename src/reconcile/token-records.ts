// The operator's own record of the tokens it holds: one Secret per token
// source in the operator's namespace, where tenants cannot write (External
// Secrets keeps a generator's state the same way). A restarted operator, a
// new leader or `once` takes its tokens from here, so it neither calls AWS
// nor rewrites every Secret. It never takes them from the Secrets it wrote
// into tenants' namespaces: whoever may edit a Secret there could plant a
// password and an expiry in 2099 that the operator would then copy into
// every other namespace.
import { createHash } from "node:crypto";
import { LABEL_TOKEN_RECORD } from "../api/metadata.js";
import { sourceDigest } from "../aws/registries.js";
import type { RegistryToken } from "../aws/token.js";
import { type TokenSource, tokenSourceKey } from "../aws/token-cache.js";
import { type KubeClient, SECRETS, statusCode } from "../kube/client.js";
import type { Informer } from "../kube/informer.js";
import type { Cached, Secret } from "../kube/types.js";
import { errorField, type Logger } from "../observability/logger.js";

/** The data key of a record: the token as JSON. */
export const TOKEN_RECORD_KEY = "token.json";
/** The label that selects records (in the operator's namespace only). */
export const TOKEN_RECORD_SELECTOR = `${LABEL_TOKEN_RECORD}=true`;
/** GetAuthorizationToken's tokens live 12 hours (ECR API reference): a record claiming more is not believed. */
export const MAX_TOKEN_LIFETIME_MS = 12 * 3600_000;
/** Clocks of two replicas may differ by this much. */
const CLOCK_SLACK_MS = 5 * 60_000;

/** What the reconciler asks of the records. */
export interface TokenRecords {
  /**
   * The token recorded for a source, if its record is whole, names this
   * source and holds a token within ECR's bounds (fetched no later than
   * now, living at most 12 hours); with `expired`, also one past its
   * expiry (what a failing source's registry keeps in the Secrets).
   */
  get(source: TokenSource, opts?: { expired?: boolean }): RegistryToken | undefined;
  /** Records a token fetched for a source; writes only when the record holds another. */
  put(source: TokenSource, token: RegistryToken): Promise<void>;
  /** Deletes the record of a source no resource uses any more (by its token cache key). */
  drop(key: string): Promise<void>;
}

interface RecordBody {
  source: string;
  /** recordScope of the operator that fetched the token. */
  scope?: string;
  username: string;
  password: string;
  expiresAt: string;
  fetchedAt: string;
  proxyEndpoint?: string;
  /** RegistryToken.credentialsWarning: a restart still says the certificate is near its end. */
  credentialsWarning?: string;
}

/**
 * The AWS environment variables that decide, beside the source itself, whose
 * token a fetch gets and from where: the endpoints, and the identity of the
 * SDK's default chain (which a source of the chain does not name).
 */
const SCOPE_VARIABLES = [
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_ECR",
  "AWS_ENDPOINT_URL_ECR_PUBLIC",
  "AWS_ENDPOINT_URL_STS",
  "AWS_ROLE_ARN",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_ACCESS_KEY_ID",
  "AWS_PROFILE",
] as const;

/**
 * A digest of the operator's AWS environment (SCOPE_VARIABLES): a record made
 * under another (a new IRSA role, another endpoint) is not taken up, as a
 * changed source's is not.
 */
export function recordScope(env: NodeJS.ProcessEnv = process.env): string {
  const hash = createHash("sha256");
  for (const name of SCOPE_VARIABLES) hash.update(`${name}=${env[name] ?? ""}\n`);
  return hash.digest("hex").slice(0, 16);
}

/** The record Secret's name for a source: stable, and no credential in it. */
export function tokenRecordName(source: TokenSource): string {
  return tokenRecordNameOfKey(tokenSourceKey(source));
}

/** tokenRecordName by the source's token cache key (sourceDigest is a digest of that key). */
function tokenRecordNameOfKey(key: string): string {
  return `ecr-creds-refresher-token-${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
}

/**
 * Reads and checks a record's token for a source (pure). Undefined when the
 * record is not whole, names another source or (given) another scope, or
 * holds a token outside ECR's bounds at `nowMs`.
 */
export function recordedToken(
  secret: Pick<Secret, "data"> | undefined,
  source: TokenSource,
  nowMs: number,
  opts: { expired?: boolean; scope?: string } = {},
): RegistryToken | undefined {
  const raw = secret?.data?.[TOKEN_RECORD_KEY];
  if (!raw) return undefined;
  let body: Partial<RecordBody>;
  try {
    body = JSON.parse(Buffer.from(raw, "base64").toString("utf8")) as Partial<RecordBody>;
  } catch {
    return undefined;
  }
  if (body.source !== sourceDigest(source)) return undefined;
  if (opts.scope !== undefined && body.scope !== opts.scope) return undefined;
  if (typeof body.username !== "string" || typeof body.password !== "string") return undefined;
  if (!body.username || !body.password) return undefined;
  const expiresAt = Date.parse(body.expiresAt ?? "");
  const fetchedAt = Date.parse(body.fetchedAt ?? "");
  if (!Number.isFinite(expiresAt) || !Number.isFinite(fetchedAt)) return undefined;
  if (fetchedAt > nowMs + CLOCK_SLACK_MS || expiresAt <= fetchedAt) return undefined;
  if (expiresAt - fetchedAt > MAX_TOKEN_LIFETIME_MS + CLOCK_SLACK_MS) return undefined;
  if (!opts.expired && expiresAt <= nowMs) return undefined;
  return {
    username: body.username,
    password: body.password,
    expiresAt: new Date(expiresAt),
    fetchedAt: new Date(fetchedAt),
    ...(typeof body.proxyEndpoint === "string" ? { proxyEndpoint: body.proxyEndpoint } : {}),
    ...(typeof body.credentialsWarning === "string"
      ? { credentialsWarning: body.credentialsWarning }
      : {}),
    reused: true,
  };
}

/** The records as Secrets in one namespace, read from their informer, written through the (fenced) client. */
export class SecretTokenRecords implements TokenRecords {
  /** Per source: the token last written (or being written), so that concurrent passes write once. */
  private readonly written = new Map<string, string>();

  constructor(
    private readonly kube: KubeClient,
    private readonly cache: Informer<Cached<Secret>>,
    private readonly namespace: string,
    private readonly log: Logger,
    private readonly scope: string = recordScope(),
    private readonly now: () => number = Date.now,
  ) {}

  get(source: TokenSource, opts: { expired?: boolean } = {}): RegistryToken | undefined {
    return recordedToken(
      this.cache.get(this.namespace, tokenRecordName(source)),
      source,
      this.now(),
      { ...opts, scope: this.scope },
    );
  }

  async put(source: TokenSource, token: RegistryToken): Promise<void> {
    const key = tokenSourceKey(source);
    const stamp = tokenStamp(token);
    if (this.written.get(key) === stamp) return;
    const held = this.get(source, { expired: true });
    if (held && tokenStamp(held) === stamp) {
      this.written.set(key, stamp);
      return;
    }
    this.written.set(key, stamp);
    const name = tokenRecordName(source);
    const body: RecordBody = {
      source: sourceDigest(source),
      scope: this.scope,
      username: token.username,
      password: token.password,
      expiresAt: token.expiresAt.toISOString(),
      fetchedAt: token.fetchedAt.toISOString(),
      ...(token.proxyEndpoint ? { proxyEndpoint: token.proxyEndpoint } : {}),
      ...(token.credentialsWarning ? { credentialsWarning: token.credentialsWarning } : {}),
    };
    const secret: Cached<Secret> = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name,
        namespace: this.namespace,
        labels: { [LABEL_TOKEN_RECORD]: "true" },
      },
      type: "Opaque",
      data: { [TOKEN_RECORD_KEY]: Buffer.from(JSON.stringify(body)).toString("base64") },
    } as Cached<Secret>;
    const ref = { namespace: this.namespace, name };
    const patch = { metadata: { labels: secret.metadata?.labels }, data: secret.data };
    try {
      if (this.cache.get(this.namespace, name)) {
        this.cache.observe(await this.kube.patch<Cached<Secret>>(SECRETS, ref, patch));
      } else {
        try {
          this.cache.observe(await this.kube.create<Cached<Secret>>(SECRETS, secret));
        } catch (err) {
          if (statusCode(err) !== 409) throw err;
          this.cache.observe(await this.kube.patch<Cached<Secret>>(SECRETS, ref, patch));
        }
      }
    } catch (err) {
      // Not fatal: without a record a restart fetches anew (one call per source).
      this.written.delete(key);
      this.log.warn(
        { record: `${this.namespace}/${name}`, err: errorField(err) },
        "failed to write the token record; a restart will fetch this token anew",
      );
    }
  }

  async drop(key: string): Promise<void> {
    this.written.delete(key);
    const name = tokenRecordNameOfKey(key);
    const held = this.cache.get(this.namespace, name);
    if (!held) return;
    try {
      await this.kube.delete(
        SECRETS,
        { namespace: this.namespace, name },
        { resourceVersion: held.metadata?.resourceVersion },
      );
    } catch (err) {
      // Not fatal: a record of a source nobody uses is taken up by nobody.
      if (statusCode(err) !== 404 && statusCode(err) !== 409)
        this.log.warn(
          { record: `${this.namespace}/${name}`, err: errorField(err) },
          "failed to delete the token record of a source no longer used",
        );
    }
  }
}

/** Which token a record holds, without keeping its password in memory twice. */
function tokenStamp(token: RegistryToken): string {
  const digest = createHash("sha256").update(token.password).digest("base64");
  return `${token.expiresAt.getTime()}/${digest}`;
}
