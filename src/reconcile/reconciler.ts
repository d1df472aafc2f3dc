// The reconcile of one ECRPullSecret: read the world from the informer caches,
// compute the desired state with the pure functions beside this file, write
// only what differs, and report status. Level-based and safe to repeat: it is
// given a name, never an event.
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_EXPIRES_AT,
  ANNOTATION_FETCHED_AT,
  ANNOTATION_REGISTRIES,
  ANNOTATION_TOKEN_SOURCES,
  ConditionType,
  FINALIZER,
  LABEL_OWNER,
  Reason,
} from "../api/conditions.js";
import type { ECRPullSecret, ECRPullSecretStatus, NamespaceFailure } from "../api/index.js";
import { parseDuration } from "../api/validate.js";
import { AwsSourceError } from "../aws/errors.js";
import {
  hostOfProxyEndpoint,
  type OperatorDefaults,
  parseTokenSources,
  RegistrySpecError,
  type RegistryTarget,
  resolveRegistries,
  sourceDigest,
  tokenSources,
  tokenSourcesAnnotation,
} from "../aws/registries.js";
import { type TokenCache, type TokenState, tokenSourceKey } from "../aws/token-cache.js";
import { registryUrl } from "../aws/verify.js";
import {
  apiErrorMessage,
  ECR_PULL_SECRETS,
  isConflict,
  isNotFound,
  type KubeClient,
  SECRETS,
  SERVICE_ACCOUNTS,
} from "../kube/client.js";
import type { Informer } from "../kube/informer.js";
import type { KubernetesObject } from "../kube/types.js";
import type { EventRecorder } from "../observability/events.js";
import { errorField, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import {
  type DesiredSecret,
  DOCKER_CONFIG_JSON_KEY,
  DOCKER_CONFIG_JSON_TYPE,
  desiredSecrets,
  isManaged,
  isOwnedBy,
  ownerLabelValue,
  parseAddedRefs,
  planServiceAccount,
  type SecretView,
  type ServiceAccountChange,
  type ServiceAccountView,
  secretDiffers,
  secretPatch,
  serviceAccountPatch,
  targetsServiceAccount,
} from "./desired.js";
import { buildDockerConfigJson, parseDockerConfigJson } from "./dockerconfig.js";
import { buildStatus, type ConditionInput, statusEqual } from "./status.js";
import { type NamespaceInfo, targetNamespaces } from "./targets.js";

export interface NamespaceView {
  metadata?: {
    name?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  status?: { phase?: string };
}

type Cached<T> = T & KubernetesObject;

export interface ReconcilerCaches {
  resources: Informer<Cached<ECRPullSecret>>;
  namespaces: Informer<Cached<NamespaceView>>;
  secrets: Informer<Cached<SecretView>>;
  serviceAccounts: Informer<Cached<ServiceAccountView>>;
}

export interface ReconcilerOptions {
  defaults: OperatorDefaults;
  /** Writes in flight at once for one resource (the client's QPS still applies). */
  writeConcurrency: number;
  /** Checks credentials against a registry URL (GET /v2/); absent: no check. */
  verify?: VerifyRegistry;
}

export type VerifyRegistry = (
  resource: string,
  url: string,
  username: string,
  password: string,
) => Promise<VerifyResult>;

export interface VerifyResult {
  ok: boolean;
  message: string;
}

interface VerifyTarget {
  url: string;
  username: string;
  password: string;
  reused: boolean;
}

export interface ReconcileResult {
  /** Namespaces that failed this pass (the queue backs off and retries). */
  failed: number;
  ready: boolean;
  /** Wants another pass after this long: a failed registry check is retried. */
  retryAfterMs?: number;
}

/** What the last registry check of a resource found, and when to check again. */
interface VerifyMemory {
  password: string;
  result: VerifyResult;
  /** Consecutive failed checks of this password (0 after a success). */
  failures: number;
  /** Epoch ms before which a failed check is not repeated. */
  retryAt: number;
}

/** First retry of a failed registry check; doubles per failure up to the cap. */
export const VERIFY_RETRY_BASE_MS = 5_000;
export const VERIFY_RETRY_MAX_MS = 5 * 60_000;

class NamespaceError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class Reconciler {
  /** Last token expiry seen per resource, to tell a refresh from a rewrite. */
  private readonly lastExpiry = new Map<string, number>();
  private readonly verified = new Map<string, VerifyMemory>();
  /** Cached ServiceAccounts whose plan came out empty, and for which (owner, want, policy). */
  private readonly settled = new WeakMap<object, string>();
  private readonly infos = new WeakMap<object, NamespaceInfo>();

  constructor(
    private readonly kube: KubeClient,
    private readonly caches: ReconcilerCaches,
    private readonly tokens: TokenCache,
    private readonly events: EventRecorder,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: ReconcilerOptions,
  ) {}

  async reconcile(name: string): Promise<ReconcileResult> {
    const resource = this.caches.resources.get(undefined, name);
    if (!resource) {
      // Gone: either our finalizer ran its cleanup (under Retain it kept
      // everything on purpose) or someone removed the finalizer by hand to
      // skip it. The policy is unknowable now, so nothing is deleted.
      this.forget(name);
      return { failed: 0, ready: true };
    }
    const log = this.log.child({ resource: name });
    const policy = resource.spec.deletionPolicy ?? "Delete";
    if (resource.metadata?.deletionTimestamp) {
      if (resource.metadata.finalizers?.includes(FINALIZER)) {
        await this.cleanup(name, policy, new Set(), undefined);
        await this.removeFinalizer(resource);
        log.info({ deletionPolicy: policy }, "cleaned up after deleted resource");
      }
      this.forget(name);
      return { failed: 0, ready: true };
    }
    if (!resource.metadata?.finalizers?.includes(FINALIZER)) await this.addFinalizer(resource);

    // Which registries, which tokens.
    let targets: RegistryTarget[];
    let refreshBeforeMs: number | undefined;
    try {
      targets = resolveRegistries(resource.spec, this.opts.defaults);
      if (resource.spec.refreshBefore) refreshBeforeMs = parseDuration(resource.spec.refreshBefore);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (!(err instanceof RegistrySpecError)) log.warn({ err: errorField(err) }, "invalid spec");
      await this.writeStatus(resource, {
        ready: { status: "False", reason: Reason.InvalidSpec, message },
      });
      this.events.record(this.target(resource), "Warning", Reason.InvalidSpec, message);
      return { failed: 0, ready: false };
    }
    const sources = tokenSources(targets);
    this.reuseTokensFromSecrets(name, resource.spec.secretName, targets);
    const states = new Map<string, TokenState>();
    await Promise.all(
      [...sources].map(async ([key, source]) => {
        states.set(key, await this.tokens.get(name, source, refreshBeforeMs));
      }),
    );
    this.tokens.release(name, new Set(sources.keys()));

    const unusable = [...states.values()].find((s) => !s.token);
    if (unusable) {
      // No token at all for some registry: write nothing, keep what is there.
      const err = unusable.error ?? new AwsSourceError(Reason.TokenRefreshFailed, "no token yet");
      await this.writeStatus(resource, {
        ready: { status: "False", reason: err.reason, message: err.message },
        tokens: states,
      });
      this.events.record(this.target(resource), "Warning", err.reason, err.message);
      this.metrics.ready.set({ resource: name }, 0);
      log.warn({ reason: err.reason, err: err.message }, "no token: Secrets left as they are");
      return { failed: 0, ready: false };
    }

    // The one Secret content for every namespace.
    const auths: Array<{ host: string; username: string; password: string }> = [];
    const hostSources: Array<[string, RegistryTarget["source"]]> = [];
    let check: VerifyTarget | undefined;
    for (const t of targets) {
      const state = states.get(tokenSourceKey(t.source)) as TokenState;
      const token = state.token as NonNullable<TokenState["token"]>;
      const host = t.host ?? hostOfProxyEndpoint(token.proxyEndpoint);
      if (!host) continue;
      if (!auths.some((a) => a.host === host)) {
        auths.push({ host, username: token.username, password: token.password });
        hostSources.push([host, t.source]);
      }
      if (!check && t.source.service === "ecr") {
        check = {
          url: registryUrl(host, t.host ? undefined : token.proxyEndpoint),
          username: token.username,
          password: token.password,
          reused: token.reused === true,
        };
      }
    }
    const registries = auths.map((a) => a.host);
    const dockerConfigJson = buildDockerConfigJson(auths);
    const tokenSourcesValue = tokenSourcesAnnotation(hostSources);
    const expiresAt = minDate([...states.values()].map((s) => s.token?.expiresAt));
    const fetchedAt = minDate([...states.values()].map((s) => s.token?.fetchedAt));

    // Where.
    const wanted = targetNamespaces(resource.spec, this.namespaceInfos());
    const wantedSet = new Set(wanted);
    const secretName = resource.spec.secretName;

    let wrote = 0;
    const failures: NamespaceFailure[] = [];
    const desiredIn = desiredSecrets({
      owner: name,
      secretName,
      dockerConfigJson,
      expiresAt,
      fetchedAt,
      registries,
      tokenSources: tokenSourcesValue,
    });
    // Most namespaces of most passes already are as desired (a pass runs for
    // every namespace event): find the ones that are not on the caches alone,
    // and spend requests, promises and garbage only on those.
    const outOfSync = wanted.filter(
      (namespace) => !this.inSync(resource, desiredIn(namespace), policy),
    );
    await pool(outOfSync, this.opts.writeConcurrency, async (namespace) => {
      try {
        const written = await this.syncSecret(resource, desiredIn(namespace));
        wrote += written;
        await this.syncServiceAccounts(resource, namespace, secretName, policy);
      } catch (err) {
        if (err instanceof NamespaceError) {
          failures.push({ namespace, reason: err.reason, message: err.message });
          if (err.reason === Reason.SecretConflict) {
            this.events.record(this.target(resource), "Warning", err.reason, err.message);
          }
        } else {
          // A namespace going away under us lands here too; its next event settles it.
          failures.push({ namespace, reason: Reason.WriteFailed, message: apiErrorMessage(err) });
        }
      }
    });

    // What it made and no longer wants.
    await this.cleanup(name, policy, wantedSet, secretName);

    // Status.
    const firstError = [...states.values()].find((s) => s.error)?.error;
    const expiredOnArrival = [...states.values()].some((s) => s.expiredOnArrival);
    let ready: ConditionInput;
    const synced = wanted.length - failures.length;
    if (expiredOnArrival) {
      ready = {
        type: ConditionType.Ready,
        status: "False",
        reason: Reason.TokenExpiredOnArrival,
        message:
          "AWS returned a token that had already expired on arrival; check the clocks and the endpoint; refetching no faster than the refresh floor",
      };
    } else if (firstError) {
      // An absolute time, not "for 9m": the message (and so the status)
      // must not change on every retry while the failure lasts.
      ready = {
        type: ConditionType.Ready,
        status: "False",
        reason: firstError.reason,
        message: `${firstError.message}; the Secrets in place stay valid until ${expiresAt?.toISOString() ?? "unknown"}`,
      };
    } else if (failures.length > 0) {
      const conflicts = failures.filter((f) => f.reason === Reason.SecretConflict).length;
      ready = {
        type: ConditionType.Ready,
        status: "False",
        reason: conflicts === failures.length ? Reason.SecretConflict : Reason.PartiallySynced,
        message: `${synced}/${wanted.length} namespaces synced; failed: ${failures
          .slice(0, 5)
          .map((f) => `${f.namespace} (${f.reason})`)
          .join(", ")}${failures.length > 5 ? ", …" : ""}`,
      };
    } else {
      ready = {
        type: ConditionType.Ready,
        status: "True",
        reason: Reason.Synced,
        message: `${synced}/${wanted.length} namespaces`,
      };
    }

    const expiry = expiresAt?.getTime();
    if (expiry !== undefined) {
      this.metrics.tokenExpiry.set({ resource: name }, expiry / 1000);
      const before = this.lastExpiry.get(name);
      if (before !== undefined && before !== expiry && wrote > 0) {
        this.events.record(
          this.target(resource),
          "Normal",
          Reason.TokenRefreshed,
          `refreshed ${wrote} Secrets; token expires at ${expiresAt?.toISOString()}`,
        );
        log.info({ secrets: wrote, expiresAt }, "token refreshed");
      }
      this.lastExpiry.set(name, expiry);
    }
    const verification = await this.verify(resource, check);
    this.metrics.ready.set({ resource: name }, ready.status === "True" ? 1 : 0);
    await this.writeStatus(resource, {
      ready,
      verified: verification.condition,
      tokens: states,
      registries,
      counts: { desired: wanted.length, synced, failures },
    });
    if (wrote > 0) log.debug({ secrets: wrote, namespaces: wanted.length }, "reconciled");
    return {
      failed: failures.length,
      ready: ready.status === "True",
      ...(verification.retryAfterMs !== undefined
        ? { retryAfterMs: verification.retryAfterMs }
        : {}),
    };
  }

  /** Forgets per-resource memory (the resource is gone). */
  forget(name: string): void {
    this.tokens.release(name);
    this.lastExpiry.delete(name);
    this.verified.delete(name);
    this.events.forget(name);
    this.metrics.tokenExpiry.remove({ resource: name });
    this.metrics.ready.remove({ resource: name });
    this.metrics.verified.remove({ resource: name });
  }

  private target(resource: ECRPullSecret): { name: string; uid?: string } {
    return { name: resource.metadata?.name ?? "", uid: resource.metadata?.uid };
  }

  // --- Secrets ---------------------------------------------------------------

  /** Makes the namespace's Secret the desired one; returns 1 if it wrote. */
  private async syncSecret(resource: ECRPullSecret, desired: DesiredSecret): Promise<number> {
    const owner = resource.metadata?.name ?? "";
    const { namespace, name } = desired.metadata;
    let observed: SecretView | undefined = this.caches.secrets.get(namespace, name);
    if (observed && !isOwnedBy(observed, owner)) throw conflict(resource, namespace, observed);
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        if (!observed) {
          const created = await this.kube.create<Cached<SecretView>>(SECRETS, {
            apiVersion: "v1",
            kind: "Secret",
            ...desired,
          });
          this.caches.secrets.observe(created);
          return 1;
        }
        if (!secretDiffers(desired, observed)) return 0;
        const patched = await this.kube.patch<Cached<SecretView>>(
          SECRETS,
          { namespace, name },
          secretPatch(desired, observed?.metadata?.resourceVersion),
        );
        this.caches.secrets.observe(patched);
        return 1;
      } catch (err) {
        if (!isConflict(err) && !isNotFound(err)) throw err;
        // Created by someone else, changed since our cache saw it, or deleted:
        // read the real thing and decide again.
        observed = await this.readSecret(namespace, name);
        if (observed && !isOwnedBy(observed, owner)) {
          if (!this.adoptable(resource, observed)) throw conflict(resource, namespace, observed);
          // adoptExisting: take it over by writing our labels on it.
        }
      }
    }
    throw new NamespaceError(
      Reason.WriteFailed,
      `failed to write Secret ${namespace}/${name}: kept conflicting`,
    );
  }

  private adoptable(resource: ECRPullSecret, observed: SecretView): boolean {
    return (
      resource.spec.adoptExisting === true &&
      !isManaged(observed) &&
      observed.type === DOCKER_CONFIG_JSON_TYPE
    );
  }

  private async readSecret(namespace: string, name: string): Promise<SecretView | undefined> {
    try {
      return await this.kube.get<Cached<SecretView>>(SECRETS, { namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The cached namespaces as targeting reads them, each view made once per cached object. */
  private namespaceInfos(): NamespaceInfo[] {
    const infos: NamespaceInfo[] = [];
    for (const ns of this.caches.namespaces.values()) {
      let info = this.infos.get(ns);
      if (!info) {
        info = {
          name: ns.metadata?.name ?? "",
          labels: ns.metadata?.labels,
          terminating:
            ns.status?.phase === "Terminating" || Boolean(ns.metadata?.deletionTimestamp),
        };
        this.infos.set(ns, info);
      }
      infos.push(info);
    }
    return infos;
  }

  /** Whether a namespace's Secret and ServiceAccounts are as desired, judged on the caches. */
  private inSync(resource: ECRPullSecret, desired: DesiredSecret, policy: string): boolean {
    const owner = resource.metadata?.name ?? "";
    const { namespace, name } = desired.metadata;
    const observed = this.caches.secrets.get(namespace, name);
    if (!observed || !isOwnedBy(observed, owner) || secretDiffers(desired, observed)) return false;
    for (const sa of this.caches.serviceAccounts.valuesInNamespace(namespace)) {
      const want = targetsServiceAccount(resource.spec.serviceAccounts, sa.metadata?.name ?? "")
        ? name
        : undefined;
      if (this.plan(sa, owner, want, policy === "Delete")) return false;
    }
    return true;
  }

  // --- ServiceAccounts -------------------------------------------------------

  /**
   * planServiceAccount, remembering per cached object which plans came out
   * empty: the caches replace an object whenever it changes, so a settled
   * ServiceAccount is not parsed again on every pass.
   */
  private plan(
    sa: ServiceAccountView,
    owner: string,
    want: string | undefined,
    removeStale: boolean,
  ): ServiceAccountChange | undefined {
    const key = `${owner}/${want ?? ""}/${removeStale}`;
    if (this.settled.get(sa) === key) return undefined;
    const change = planServiceAccount(sa, owner, want, removeStale);
    if (!change) this.settled.set(sa, key);
    return change;
  }

  private async syncServiceAccounts(
    resource: ECRPullSecret,
    namespace: string,
    secretName: string,
    policy: string,
  ): Promise<void> {
    const owner = resource.metadata?.name ?? "";
    for (const sa of this.caches.serviceAccounts.listNamespace(namespace)) {
      const saName = sa.metadata?.name ?? "";
      const want = targetsServiceAccount(resource.spec.serviceAccounts, saName)
        ? secretName
        : undefined;
      await this.patchServiceAccount(sa, owner, want, policy === "Delete");
    }
  }

  /** Applies planServiceAccount with optimistic concurrency, re-reading on conflict. */
  private async patchServiceAccount(
    cached: ServiceAccountView,
    owner: string,
    want: string | undefined,
    removeStale: boolean,
  ): Promise<void> {
    const namespace = cached.metadata?.namespace ?? "";
    const name = cached.metadata?.name ?? "";
    let sa: ServiceAccountView | undefined = cached;
    for (let attempt = 0; attempt < 8 && sa; attempt++) {
      const change = this.plan(sa, owner, want, removeStale);
      if (!change) return;
      try {
        const patched = await this.kube.patch<Cached<ServiceAccountView>>(
          SERVICE_ACCOUNTS,
          { namespace, name },
          serviceAccountPatch(change, sa?.metadata?.resourceVersion),
        );
        this.caches.serviceAccounts.observe(patched);
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err)) throw err;
        // Someone else wrote it meanwhile: their change stays, ours is redone on top.
        try {
          sa = await this.kube.get<Cached<ServiceAccountView>>(SERVICE_ACCOUNTS, {
            namespace,
            name,
          });
        } catch (readErr) {
          if (isNotFound(readErr)) return;
          throw readErr;
        }
      }
    }
    if (sa) {
      throw new NamespaceError(
        Reason.ServiceAccountConflict,
        `failed to update ServiceAccount ${namespace}/${name}: it kept changing under us; retrying`,
      );
    }
  }

  // --- Cleanup ---------------------------------------------------------------

  /**
   * Removes what the resource made and no longer wants: Secrets outside
   * `keepNamespaces` or of another name, and its ServiceAccount references.
   * Under Retain nothing is written at all: the Secrets, the references and
   * the record of which references are ours stay as they are. Terminating
   * namespaces are left to the namespace controller.
   */
  private async cleanup(
    owner: string,
    policy: string,
    keepNamespaces: ReadonlySet<string>,
    keepSecretName: string | undefined,
  ): Promise<void> {
    if (policy !== "Delete") return;
    const ownerKey = ownerLabelValue(owner);
    const removeStale = true;
    const terminating = new Set(
      this.namespaceInfos()
        .filter((ns) => ns.terminating)
        .map((ns) => ns.name),
    );
    const skip = (namespace: string) => keepNamespaces.has(namespace) || terminating.has(namespace);
    // References first, so no Pod is admitted with a reference to a Secret we
    // are about to delete.
    // In a kept namespace the ServiceAccounts are handled by syncServiceAccounts.
    const ours = `${ownerKey}/`;
    const claimed = this.caches.serviceAccounts.list().filter((sa) => {
      const annotation = sa.metadata?.annotations?.[ANNOTATION_ADDED_PULL_SECRETS];
      // A cheap test before parsing: most ServiceAccounts name no ref of ours.
      if (!annotation?.includes(ours) || skip(sa.metadata?.namespace ?? "")) return false;
      return parseAddedRefs(annotation).some((r) => r.owner === ownerKey);
    });
    await pool(claimed, this.opts.writeConcurrency, (sa) =>
      this.patchServiceAccount(sa, owner, undefined, removeStale),
    );
    const stale = this.caches.secrets
      .list()
      .filter(
        (s) =>
          isOwnedBy(s, owner) &&
          !terminating.has(s.metadata?.namespace ?? "") &&
          !(keepNamespaces.has(s.metadata?.namespace ?? "") && s.metadata?.name === keepSecretName),
      );
    await pool(stale, this.opts.writeConcurrency, (s) => this.deleteOwnedSecret(s, owner));
  }

  /**
   * Deletes a Secret of ours, guarded by its resourceVersion so a Secret
   * someone took over meanwhile is not deleted; on a conflict it re-reads and
   * deletes only if it is still ours. The finalizer goes right after a
   * cleanup, so a conflict must not leave the Secret behind.
   */
  private async deleteOwnedSecret(cached: SecretView, owner: string): Promise<void> {
    const namespace = cached.metadata?.namespace ?? "";
    const name = cached.metadata?.name ?? "";
    let secret: SecretView | undefined = cached;
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!secret || !isOwnedBy(secret, owner)) return;
      try {
        await this.kube.delete(
          SECRETS,
          { namespace, name },
          { resourceVersion: secret?.metadata?.resourceVersion },
        );
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err)) throw err;
        secret = await this.readSecret(namespace, name);
      }
    }
    throw new Error(`failed to delete Secret ${namespace}/${name}: it kept changing; retrying`);
  }

  // --- Finalizer -------------------------------------------------------------

  private async addFinalizer(resource: ECRPullSecret): Promise<void> {
    const finalizers = [...(resource.metadata?.finalizers ?? []), FINALIZER];
    await this.patchResource(resource, { finalizers });
  }

  private async removeFinalizer(resource: ECRPullSecret): Promise<void> {
    const finalizers = (resource.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER);
    await this.patchResource(resource, { finalizers });
  }

  private async patchResource(resource: ECRPullSecret, metadata: object): Promise<void> {
    const name = resource.metadata?.name ?? "";
    try {
      await this.kube.patch(
        ECR_PULL_SECRETS,
        { name },
        { metadata: { ...metadata, resourceVersion: resource.metadata?.resourceVersion } },
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }

  // --- Verification ----------------------------------------------------------

  /**
   * Checks the Secret's credentials against one of its registries: once per
   * new password (so after every refresh), and a failed check again on later
   * passes with backoff, never cached for good.
   */
  private async verify(
    resource: ECRPullSecret,
    auth: VerifyTarget | undefined,
  ): Promise<{ condition?: ConditionInput; retryAfterMs?: number }> {
    if (!this.opts.verify || !auth) return {};
    const name = resource.metadata?.name ?? "";
    const previous = this.verified.get(name);
    if (auth.reused && !previous) {
      // A token reused across a restart passed its check when it was written;
      // one that failed then is checked again now.
      const before = resource.status?.conditions?.find((c) => c.type === ConditionType.Verified);
      if (before?.status === "True") {
        const result = { ok: true, message: before.message };
        this.verified.set(name, { password: auth.password, result, failures: 0, retryAt: 0 });
        this.metrics.verified.set({ resource: name }, 1);
        return { condition: verifiedCondition(result) };
      }
    }
    const now = Date.now();
    if (previous && previous.password === auth.password) {
      if (previous.result.ok) return { condition: verifiedCondition(previous.result) };
      if (now < previous.retryAt) {
        return {
          condition: verifiedCondition(previous.result),
          retryAfterMs: previous.retryAt - now,
        };
      }
    }
    const result = await this.opts.verify(name, auth.url, auth.username, auth.password);
    const samePassword = previous?.password === auth.password;
    const failures = result.ok ? 0 : (samePassword ? (previous?.failures ?? 0) : 0) + 1;
    const retryAfterMs = result.ok
      ? undefined
      : Math.min(VERIFY_RETRY_BASE_MS * 2 ** (failures - 1), VERIFY_RETRY_MAX_MS);
    this.verified.set(name, {
      password: auth.password,
      result,
      failures,
      retryAt: now + (retryAfterMs ?? 0),
    });
    this.metrics.verified.set({ resource: name }, result.ok ? 1 : 0);
    const log = this.log.child({ resource: name });
    if (!result.ok) {
      log.warn(
        { url: auth.url, err: result.message, retryInMs: retryAfterMs },
        "registry check failed",
      );
      if (failures === 1) {
        this.events.record(
          this.target(resource),
          "Warning",
          Reason.VerificationFailed,
          result.message,
        );
      }
    } else if (previous && !previous.result.ok) {
      log.info({ url: auth.url }, "registry check passes again");
    }
    return { condition: verifiedCondition(result), ...(retryAfterMs ? { retryAfterMs } : {}) };
  }

  // --- Reuse across restarts ------------------------------------------------------

  /**
   * A restarted operator has an empty token cache, but its Secrets still hold
   * valid tokens: reuse them (expiry and fetch time are annotations) instead of
   * fetching anew and rewriting every Secret.
   */
  private reuseTokensFromSecrets(
    owner: string,
    secretName: string,
    targets: RegistryTarget[],
  ): void {
    const needed = targets.filter((t) => !this.tokens.peek(t.source)?.token);
    if (needed.length === 0) return;
    const secret = this.caches.secrets
      .list()
      .find((s) => s.metadata?.name === secretName && isOwnedBy(s, owner));
    const annotations = secret?.metadata?.annotations ?? {};
    const expiresAt = Date.parse(annotations[ANNOTATION_EXPIRES_AT] ?? "");
    const fetchedAt = Date.parse(annotations[ANNOTATION_FETCHED_AT] ?? "");
    const data = secret?.data?.[DOCKER_CONFIG_JSON_KEY];
    if (!data || !Number.isFinite(expiresAt) || !Number.isFinite(fetchedAt)) return;
    let auths: ReturnType<typeof parseDockerConfigJson>;
    try {
      auths = parseDockerConfigJson(Buffer.from(data, "base64").toString("utf8"));
    } catch {
      return;
    }
    const hosts = (annotations[ANNOTATION_REGISTRIES] ?? "").split(",").filter(Boolean);
    // Only a token fetched by the same source: after a change of credentials,
    // role or region the old token must not pass for the new source's.
    const digests = parseTokenSources(annotations[ANNOTATION_TOKEN_SOURCES]);
    for (const t of needed) {
      const host = t.host ?? (targets.length === 1 && hosts.length === 1 ? hosts[0] : undefined);
      const entry = host ? auths[host] : undefined;
      if (!host || !entry || digests.get(host) !== sourceDigest(t.source)) continue;
      this.tokens.seed(t.source, {
        username: entry.username,
        password: entry.password,
        expiresAt: new Date(expiresAt),
        fetchedAt: new Date(fetchedAt),
        proxyEndpoint: t.host ? undefined : `https://${host}`,
        reused: true,
      });
    }
  }

  // --- Status ----------------------------------------------------------------

  private async writeStatus(
    resource: ECRPullSecret,
    s: {
      ready: Omit<ConditionInput, "type">;
      verified?: ConditionInput;
      tokens?: Map<string, TokenState>;
      registries?: string[];
      counts?: { desired: number; synced: number; failures: NamespaceFailure[] };
    },
  ): Promise<void> {
    const states = [...(s.tokens?.values() ?? [])];
    const previous = resource.status;
    const status: ECRPullSecretStatus = buildStatus(
      previous,
      {
        generation: resource.metadata?.generation,
        conditions: [
          { type: ConditionType.Ready, ...s.ready },
          ...(s.verified ? [s.verified] : []),
        ],
        registries: s.registries ?? previous?.registries ?? [],
        tokenExpiresAt: minDate(states.map((t) => t.token?.expiresAt)),
        lastRefreshTime: minDate(states.map((t) => t.token?.fetchedAt)),
        nextRefreshTime: minDate(states.map((t) => t.nextRefreshAt)),
        desired: s.counts?.desired ?? previous?.namespaces?.desired ?? 0,
        synced: s.counts?.synced ?? previous?.namespaces?.synced ?? 0,
        failures: s.counts?.failures ?? previous?.failures ?? [],
      },
      new Date(),
    );
    if (statusEqual(previous, status)) return;
    const name = resource.metadata?.name ?? "";
    try {
      await this.kube.patch(ECR_PULL_SECRETS, { name }, { status }, "status");
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }
}

function conflict(
  resource: ECRPullSecret,
  namespace: string,
  observed: SecretView,
): NamespaceError {
  const name = observed.metadata?.name ?? resource.spec.secretName;
  if (!isManaged(observed) && resource.spec.adoptExisting === true) {
    return new NamespaceError(
      Reason.SecretConflict,
      `failed to adopt Secret ${namespace}/${name}: it is of type ${observed.type ?? "Opaque"}, and adoptExisting only takes over ${DOCKER_CONFIG_JSON_TYPE} Secrets; rename spec.secretName or delete that Secret`,
    );
  }
  if (isManaged(observed)) {
    const other = observed.metadata?.labels?.[LABEL_OWNER] ?? "another resource";
    return new NamespaceError(
      Reason.SecretConflict,
      `failed to write Secret ${namespace}/${name}: it belongs to ECRPullSecret ${other}; give one of them another spec.secretName or exclude this namespace from one of them`,
    );
  }
  return new NamespaceError(
    Reason.SecretConflict,
    `failed to write Secret ${namespace}/${name}: it exists and was not created by this operator; rename spec.secretName, delete that Secret, or set spec.adoptExisting: true`,
  );
}

function verifiedCondition(result: VerifyResult): ConditionInput {
  return {
    type: ConditionType.Verified,
    status: result.ok ? "True" : "False",
    reason: result.ok ? Reason.Verified : Reason.VerificationFailed,
    message: result.message,
  };
}

function minDate(dates: Array<Date | undefined>): Date | undefined {
  let min: Date | undefined;
  for (const d of dates) if (d && (!min || d < min)) min = d;
  return min;
}

/** Runs `work` over items with at most `concurrency` in flight; waits for all. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, run));
  if (errors.length > 0) throw errors[0];
}
