// The reconcile of one ECRPullSecret. Level-based and safe to repeat: it is
// given a name, never an event, reads the world from the caches (through
// Cluster), computes the desired state with the pure functions beside it,
// writes only what differs and ends with one status write. This file only
// orchestrates; each step's work is in the file named beside it.
//
// The result follows controller-runtime: a thrown error backs off and
// retries; `requeueAfterMs` schedules the next pass; an invalid spec is
// terminal (the status says why, and only a change of the resource brings the
// next pass).
import { Reason } from "../api/conditions.js";
import {
  type DeletionPolicy,
  deletionPolicy,
  type ECRPullSecret,
  type NamespaceFailure,
  parseDuration,
} from "../api/index.js";
import {
  type OperatorDefaults,
  type RegistryTarget,
  resolveRegistries,
  tokenSources,
} from "../aws/registries.js";
import type { TokenCache, TokenState } from "../aws/token-cache.js";
import { isOperatorError, type OperatorError, operatorError } from "../errors.js";
import { apiErrorMessage } from "../kube/client.js";
import type { EventRecorder } from "../observability/events.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { cleanup } from "./cleanup.js";
import type { Cluster } from "./cluster.js";
import { type SecretContent, secretContent } from "./content.js";
import { type DesiredSecret, desiredSecrets, isOwnedBy, secretDiffers } from "./desired.js";
import { addFinalizer, hasFinalizer, removeFinalizer } from "./finalizer.js";
import { pool } from "./pool.js";
import { syncSecret } from "./secrets.js";
import { ServiceAccounts } from "./service-accounts.js";
import {
  failedList,
  notReady,
  type PassOutcome,
  passStatus,
  readyCondition,
  statusEqual,
} from "./status.js";
import { namespaceInfos, targetNamespaces } from "./targets.js";
import { reuseTokensFromSecrets } from "./token-reuse.js";
import { RegistryChecks, type VerifyRegistry } from "./verification.js";

/** The token cache as the reconciler uses it. */
export type Tokens = Pick<TokenCache, "get" | "release" | "peek" | "seed">;
export type Events = Pick<EventRecorder, "record" | "forget">;

export interface ReconcilerOptions {
  defaults: OperatorDefaults;
  /** Writes in flight at once for one resource (the client's QPS still applies). */
  writeConcurrency: number;
  /** Checks credentials against a registry URL (GET /v2/); absent: no check. */
  verify?: VerifyRegistry;
  now?: () => number;
}

export interface ReconcileResult {
  ready: boolean;
  /** Wants another pass after this long: a failed registry check is retried. */
  requeueAfterMs?: number;
}

/** What a resource's spec resolves to: its registries and its refresh point. */
interface ResolvedSpec {
  targets: RegistryTarget[];
  refreshBeforeMs?: number;
}

export class Reconciler {
  /** Last token expiry seen per resource, to tell a refresh from a rewrite. */
  private readonly lastExpiry = new Map<string, number>();
  private readonly serviceAccounts: ServiceAccounts;
  private readonly checks: RegistryChecks;
  private readonly now: () => number;

  constructor(
    private readonly cluster: Cluster,
    private readonly tokens: Tokens,
    private readonly events: Events,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: ReconcilerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.serviceAccounts = new ServiceAccounts(cluster);
    this.checks = new RegistryChecks(opts.verify, events, metrics, log, this.now);
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    let resource = this.cluster.resource(name);
    // Gone: either our finalizer ran its cleanup (under Retain it kept
    // everything on purpose) or someone removed the finalizer by hand to skip
    // it. The policy is unknowable now, so nothing is deleted.
    if (!resource) return this.forget(name);
    const policy = deletionPolicy(resource.spec);

    // 1. Finalize: a deleted resource gets its cleanup, then is let go.
    if (resource.metadata?.deletionTimestamp) return await this.finalize(resource, policy);
    if (!hasFinalizer(resource)) {
      await addFinalizer(this.cluster, resource);
      // Its resourceVersion moved on, and the status write is guarded by it.
      resource = this.cluster.resource(name) ?? resource;
    }

    // 2. Tokens: which registries, and a token for each (cached, reused or fetched).
    const spec = specOrError(() => resolveSpec(resource, this.opts.defaults));
    if (isOperatorError(spec)) return await this.invalidSpec(resource, spec);
    const tokens = await this.tokensFor(resource, spec);
    const missing = tokens.find((s) => !s.token);
    if (missing) return await this.noToken(resource, tokens, missing);

    // 3. Content: the one Secret for every namespace.
    const content = secretContent(spec.targets, new Map(tokens.map((s) => [s.key, s])));

    // 4. Targets: where.
    const infos = namespaceInfos(this.cluster.namespaces());
    const wanted = specOrError(() => targetNamespaces(resource.spec, infos));
    if (isOperatorError(wanted)) return await this.invalidSpec(resource, wanted);

    // 5. Writes: the Secret and the ServiceAccounts of each namespace not yet as desired.
    const { wrote, failures } = await this.write(resource, policy, content, wanted);

    // 6. Cleanup: what it made and no longer wants.
    await cleanup(this.cluster, this.serviceAccounts, {
      owner: name,
      policy,
      keepNamespaces: new Set(wanted),
      keepSecretName: resource.spec.secretName,
      concurrency: this.opts.writeConcurrency,
    });

    // 7. Status, written once.
    const desired = wanted.length;
    const ready = readyCondition({ tokens, desired, failures, expiresAt: content.expiresAt });
    this.noteRefresh(resource, content.expiresAt, wrote);
    const check = await this.checks.check(resource, content.check);
    this.metrics.ready.set({ resource: name }, ready.status === "True" ? 1 : 0);
    await this.writeStatus(resource, {
      ready,
      verified: check.condition,
      tokens,
      registries: content.registries,
      counts: { desired, synced: desired - failures.length, failures },
    });
    if (wrote > 0)
      this.log.debug({ resource: name, secrets: wrote, namespaces: desired }, "reconciled");
    if (failures.length > 0) {
      const first = failedList(failures);
      throw operatorError("PartiallySynced", "namespaces", {
        failed: failures.length,
        desired,
        first,
      });
    }
    const requeueAfterMs = check.retryAfterMs;
    return { ready: ready.status === "True", ...(requeueAfterMs ? { requeueAfterMs } : {}) };
  }

  /** Forgets per-resource memory (the resource is gone). */
  forget(name: string): ReconcileResult {
    this.tokens.release(name);
    this.lastExpiry.delete(name);
    this.checks.forget(name);
    this.events.forget(name);
    this.metrics.tokenExpiry.remove({ resource: name });
    this.metrics.ready.remove({ resource: name });
    this.metrics.verified.remove({ resource: name });
    return { ready: true };
  }

  private async finalize(
    resource: ECRPullSecret,
    policy: DeletionPolicy,
  ): Promise<ReconcileResult> {
    const name = resource.metadata?.name ?? "";
    if (hasFinalizer(resource)) {
      await cleanup(this.cluster, this.serviceAccounts, {
        owner: name,
        policy,
        keepNamespaces: new Set(),
        keepSecretName: undefined,
        concurrency: this.opts.writeConcurrency,
      });
      await removeFinalizer(this.cluster, resource);
      this.log.info(
        { resource: name, deletionPolicy: policy },
        "cleaned up after deleted resource",
      );
    }
    return this.forget(name);
  }

  private async invalidSpec(resource: ECRPullSecret, err: OperatorError): Promise<ReconcileResult> {
    this.log.warn({ resource: resource.metadata?.name, err: err.message }, "invalid spec");
    await this.writeStatus(resource, { ready: notReady(Reason.InvalidSpec, err.message) });
    this.events.record(target(resource), "Warning", Reason.InvalidSpec, err.message);
    return { ready: false };
  }

  /** The token state of every source of the resource, reusing its own Secret's after a restart. */
  private async tokensFor(resource: ECRPullSecret, spec: ResolvedSpec): Promise<TokenState[]> {
    const name = resource.metadata?.name ?? "";
    const sources = tokenSources(spec.targets);
    const secrets = () => this.cluster.secrets();
    reuseTokensFromSecrets(this.tokens, secrets, name, resource.spec.secretName, spec.targets);
    const states = await Promise.all(
      [...sources.values()].map((source) => this.tokens.get(name, source, spec.refreshBeforeMs)),
    );
    this.tokens.release(name, new Set(sources.keys()));
    return states;
  }

  /** No token at all for some registry: write nothing, keep what is there. */
  private async noToken(
    resource: ECRPullSecret,
    tokens: TokenState[],
    missing: TokenState,
  ): Promise<ReconcileResult> {
    const name = resource.metadata?.name ?? "";
    const err =
      missing.error ?? operatorError("TokenRefreshFailed", "noToken", { source: missing.key });
    await this.writeStatus(resource, { ready: notReady(err.code, err.message), tokens });
    this.events.record(target(resource), "Warning", err.code, err.message);
    this.metrics.ready.set({ resource: name }, 0);
    this.log.warn(
      { resource: name, reason: err.code, err: err.message },
      "no token: Secrets left as they are",
    );
    return { ready: false };
  }

  /** Brings each wanted namespace's Secret and ServiceAccounts to the desired state. */
  private async write(
    resource: ECRPullSecret,
    policy: DeletionPolicy,
    content: SecretContent,
    wanted: string[],
  ): Promise<{ wrote: number; failures: NamespaceFailure[] }> {
    const owner = resource.metadata?.name ?? "";
    const desiredIn = desiredSecrets({ ...content, owner, secretName: resource.spec.secretName });
    // Most namespaces of most passes already are as desired (a pass runs for
    // every namespace event): find the ones that are not on the caches alone,
    // and spend requests, promises and garbage only on those.
    const outOfSync = wanted.filter((ns) => !this.inSync(resource, desiredIn(ns), policy));
    let wrote = 0;
    const failures: NamespaceFailure[] = [];
    await pool(outOfSync, this.opts.writeConcurrency, async (namespace) => {
      try {
        if (await syncSecret(this.cluster, resource, desiredIn(namespace))) wrote++;
        await this.serviceAccounts.sync(resource, namespace, policy);
      } catch (err) {
        failures.push(this.failure(resource, namespace, err));
      }
    });
    return { wrote, failures };
  }

  /** Whether a namespace's Secret and ServiceAccounts are as desired, judged on the caches. */
  private inSync(resource: ECRPullSecret, desired: DesiredSecret, policy: DeletionPolicy): boolean {
    const observed = this.cluster.secret(desired.metadata);
    const owner = resource.metadata?.name ?? "";
    if (!observed || !isOwnedBy(observed, owner) || secretDiffers(desired, observed)) return false;
    return this.serviceAccounts.inSync(resource, desired.metadata.namespace, policy);
  }

  private failure(resource: ECRPullSecret, namespace: string, err: unknown): NamespaceFailure {
    if (!isOperatorError(err)) {
      // A namespace going away under us lands here too; its next event settles it.
      return { namespace, reason: Reason.WriteFailed, message: apiErrorMessage(err) };
    }
    if (err.code === Reason.SecretConflict) {
      this.events.record(target(resource), "Warning", err.code, err.message);
    }
    return { namespace, reason: err.code, message: err.message };
  }

  /** Tells a refresh (a new expiry written) apart from a rewrite, with an Event. */
  private noteRefresh(resource: ECRPullSecret, expiresAt: Date | undefined, wrote: number): void {
    const name = resource.metadata?.name ?? "";
    const expiry = expiresAt?.getTime();
    if (expiry === undefined) return;
    this.metrics.tokenExpiry.set({ resource: name }, expiry / 1000);
    const before = this.lastExpiry.get(name);
    if (before !== undefined && before !== expiry && wrote > 0) {
      const message = `refreshed ${wrote} Secrets; token expires at ${expiresAt?.toISOString()}`;
      this.events.record(target(resource), "Normal", Reason.TokenRefreshed, message);
      this.log.info({ resource: name, secrets: wrote, expiresAt }, "token refreshed");
    }
    this.lastExpiry.set(name, expiry);
  }

  private async writeStatus(resource: ECRPullSecret, pass: PassOutcome): Promise<void> {
    const status = passStatus(resource, pass, new Date(this.now()));
    if (statusEqual(resource.status, status)) return;
    await this.cluster.patchStatus(
      resource.metadata?.name ?? "",
      status,
      resource.metadata?.resourceVersion,
    );
  }
}

function resolveSpec(resource: ECRPullSecret, defaults: OperatorDefaults): ResolvedSpec {
  const targets = resolveRegistries(resource.spec, defaults);
  const refreshBefore = resource.spec.refreshBefore;
  return { targets, ...(refreshBefore ? { refreshBeforeMs: parseDuration(refreshBefore) } : {}) };
}

/** The value, or the InvalidSpec error that computing it threw. */
function specOrError<T>(compute: () => T): T | OperatorError {
  try {
    return compute();
  } catch (err) {
    if (isOperatorError(err, "InvalidSpec")) return err;
    throw err;
  }
}

function target(resource: ECRPullSecret): { name: string; uid?: string } {
  return { name: resource.metadata?.name ?? "", uid: resource.metadata?.uid };
}
