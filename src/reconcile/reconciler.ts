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
  type KeptSecret,
  type NamespaceFailure,
  parseDuration,
  type RegistryTokenStatus,
  type UncoveredPods,
} from "../api/index.js";
import {
  type OperatorDefaults,
  type RegistryTarget,
  resolveRegistries,
  tokenSources,
} from "../aws/registries.js";
import {
  type TokenCache,
  type TokenState,
  tokenLifetimeMs,
  tokenSourceKey,
} from "../aws/token-cache.js";
import { isOperatorError, type OperatorError, operatorError } from "../errors.js";
import { apiErrorMessage } from "../kube/client.js";
import type { EventRecorder } from "../observability/events.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { cleanup } from "./cleanup.js";
import type { Cluster } from "./cluster.js";
import { earliest, type SecretContent, secretContent } from "./content.js";
import { type DesiredSecret, isOwnedBy, secretDiffers } from "./desired.js";
import { addFinalizer, hasFinalizer, removeFinalizer } from "./finalizer.js";
import { desiredPassSecrets, type PassSecrets } from "./outputs.js";
import { pool } from "./pool.js";
import { type RoleAdmitter, type RolePass, rolePass, wantsOwnSecret } from "./role-secrets.js";
import { syncSecret } from "./secrets.js";
import { ServiceAccounts } from "./service-accounts.js";
import {
  type ConditionInput,
  failedList,
  notReady,
  type PassOutcome,
  passStatus,
  readyCondition,
  refreshBeforeCapped,
  registryStatuses,
  statusEqual,
} from "./status.js";
import { namespaceInfos, scopedTargetNamespaces } from "./targets.js";
import type { TokenRecords } from "./token-records.js";
import { RegistryChecks, type VerifyRegistry } from "./verification.js";

/** How soon a resource with ServiceAccounts its roles refused asks IAM again. */
export const ROLE_RETRY_MS = 15_000;
/** How soon a resource whose cleanup kept Secrets that Pods name lists those Pods again. */
export const KEPT_RECHECK_MS = 10_000;

/** The token cache as the reconciler uses it. */
export type Tokens = Pick<TokenCache, "get" | "release" | "peek" | "seed">;
export type Events = Pick<EventRecorder, "record" | "forget">;

export interface ReconcilerOptions {
  defaults: OperatorDefaults;
  /** Writes in flight at once for one resource (the client's QPS still applies). */
  writeConcurrency: number;
  /** Checks credentials against a registry URL (GET /v2/); absent: no check. */
  verify?: VerifyRegistry;
  /** Asks IAM whether a ServiceAccount may use a role (spec.serviceAccountRoles). */
  admissions?: RoleAdmitter;
  /** The pull-failure watch's count of a resource's uncovered Pods, for its status. */
  uncoveredPods?: (name: string) => UncoveredPods | undefined;
  now?: () => number;
  /** The namespaces this install may serve (namespaced RBAC); absent: every namespace. */
  servedNamespaces?: readonly string[];
  /** The operator's own record of its tokens (its namespace); absent: every start fetches anew. */
  records?: TokenRecords;
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
  /** The registries each resource's expiry gauge has a series for. */
  private readonly expiryRegistries = new Map<string, Set<string>>();
  private readonly serviceAccounts: ServiceAccounts;
  private readonly checks: RegistryChecks;
  private readonly now: () => number;
  private readonly served: ReadonlySet<string> | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly tokens: Tokens,
    private readonly events: Events,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: ReconcilerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.served = opts.servedNamespaces ? new Set(opts.servedNamespaces) : undefined;
    this.serviceAccounts = new ServiceAccounts(cluster, this.now, (r) => {
      // A neighbour (a GitOps tool's self-heal) removed our entry: say who.
      this.metrics.serviceAccountReverts.inc({ resource: r.owner, manager: r.manager });
      const resource = this.cluster.resource(r.owner);
      const when =
        r.notBefore > 0
          ? `re-adding it no sooner than ${new Date(r.notBefore).toISOString()}`
          : "re-adding it";
      this.events.record(
        { name: r.owner, uid: resource?.metadata?.uid },
        "Warning",
        Reason.ServiceAccountReverted,
        `ServiceAccount ${r.namespace}/${r.name} lost its imagePullSecrets entry ${JSON.stringify(r.secret)} to field manager ${JSON.stringify(r.manager)} (${r.removals} times in 10 minutes); ${when}; make ${r.manager} leave that field to ecr-creds-refresher (docs/gitops.md)`,
      );
      this.log.warn(
        {
          resource: r.owner,
          serviceAccount: `${r.namespace}/${r.name}`,
          manager: r.manager,
          removals: r.removals,
        },
        "ServiceAccount entry removed by someone else",
      );
    });
    this.checks = new RegistryChecks(opts.verify, events, metrics, log, this.now);
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const cached = this.cluster.resource(name);
    // Gone: either our finalizer ran its cleanup (under Retain it kept
    // everything on purpose) or someone removed the finalizer by hand to skip
    // it. The policy is unknowable now, so nothing is deleted.
    if (!cached) return this.forget(name);
    let resource: ECRPullSecret = cached;
    const policy = deletionPolicy(resource.spec);

    // 1. Finalize: a deleted resource gets its cleanup, then is let go.
    if (resource.metadata?.deletionTimestamp) return await this.finalize(resource, policy);

    // 2. Tokens: which registries, and a token for each (cached, reused or
    //    fetched), got while a new resource's finalizer goes on: both are in
    //    place before the first write, and neither waits for the other.
    const spec = specOrError(() => resolveSpec(resource, this.opts.defaults));
    const finalized = hasFinalizer(resource) ? resource : this.withFinalizer(resource);
    if (isOperatorError(spec)) return await this.invalidSpec(await finalized, spec);
    const [own, current] = await Promise.all([this.ownTokens(resource, spec), finalized]);
    resource = current;
    // Only when no source has a token is there nothing to write: one failing
    // source must not hold back the registries of the others.
    if (own.missing && !own.tokens.some((s) => s.token)) {
      this.tokens.release(name, new Set(own.sourceKeys));
      return await this.noToken(resource, own.tokens, own.missing);
    }

    // 3. Content: the one Secret content for every namespace and format; a
    // registry whose source has no token keeps the entry the Secrets hold.
    const states = new Map(own.tokens.map((s) => [s.key, s]));
    const carried = own.missing ? this.carried(spec.targets, states) : undefined;
    const content = own.used
      ? secretContent(spec.targets, states, resource.spec.hostVariants, carried)
      : undefined;
    const outputs = content ? desiredPassSecrets(name, resource.spec, content) : undefined;

    // 4. Targets: where (within the namespaces this install may serve), and
    //    the per-ServiceAccount roles' Secrets, tokens and references there.
    const infos = namespaceInfos(this.cluster.namespaces());
    const scoped = specOrError(() => scopedTargetNamespaces(resource.spec, infos, this.served));
    if (isOperatorError(scoped)) return await this.invalidSpec(resource, scoped);
    const wanted = scoped.targets;
    const roles = resource.spec.serviceAccountRoles;
    const perRole = roles ? await this.rolesFor(resource, spec, wanted) : undefined;
    this.tokens.release(name, new Set([...own.sourceKeys, ...(perRole?.sources.keys() ?? [])]));

    // 5. Writes: the Secrets and the ServiceAccounts of each namespace not yet
    //    as desired, then Argo CD's Secrets.
    const written = await this.write(resource, policy, outputs, wanted, perRole);
    const notGranted = scoped.notGranted.map((ns) => this.notGranted(resource, ns));
    const failures = mergeFailures(written.failures, [...(perRole?.failures ?? []), ...notGranted]);

    // 6. Cleanup: what it made and no longer wants; what Pods still name is
    //    kept, refreshed, and looked at again after a while.
    const keep = new Set(wanted);
    const swept = await cleanup(this.cluster, this.serviceAccounts, {
      owner: name,
      policy,
      keepNamespaces: keep,
      ...(outputs ? { keepSecret: (ns: string, n: string) => outputs.keeps(ns, n, keep) } : {}),
      ...(perRole
        ? {
            keepAlso: (ns: string, secret: string) => perRole.secrets.get(ns)?.has(secret) === true,
          }
        : {}),
      inUse: {
        desired: (ns: string, n: string) => keptSecretContent(outputs, perRole, ns, n),
        sync: (desired) => syncSecret(this.cluster, resource, desired),
      },
      notice: (type, reason, message) =>
        this.events.record(target(resource), type, reason, message),
      concurrency: this.opts.writeConcurrency,
    });

    // 7. Status, written once; then what the queue does next.
    const pass = await this.report(resource, {
      tokens: [...own.tokens, ...(perRole?.tokens ?? [])],
      registryStatus: own.used ? registryStatuses(spec.targets, states) : [],
      content,
      perRole,
      desired: wanted.length + notGranted.length,
      failures,
      wrote: written.wrote,
      carriedOver: Boolean(own.missing),
      kept: swept.kept,
    });
    const result = this.result(name, written.failures, failures, pass, perRole);
    if (swept.kept.length === 0) return result;
    // No watch sees a running Pod go: look again for the kept Secrets' Pods.
    const requeueAfterMs = Math.min(result.requeueAfterMs ?? KEPT_RECHECK_MS, KEPT_RECHECK_MS);
    return { ...result, requeueAfterMs };
  }

  /** Puts the finalizer on; the resource as the patch left it (the status write is guarded by its resourceVersion). */
  private async withFinalizer(resource: ECRPullSecret): Promise<ECRPullSecret> {
    await addFinalizer(this.cluster, resource);
    return this.cluster.resource(resource.metadata?.name ?? "") ?? resource;
  }

  /**
   * The resource's own token sources and their states; none when
   * per-ServiceAccount roles with `unannotated: None` leave the resource no
   * Secret (and so no credentials) of its own.
   */
  private async ownTokens(
    resource: ECRPullSecret,
    spec: ResolvedSpec,
  ): Promise<{
    used: boolean;
    /** Token cache keys of the resource's own sources. */
    sourceKeys: string[];
    tokens: TokenState[];
    missing: TokenState | undefined;
  }> {
    const used = wantsOwnSecret(resource.spec);
    if (!used) return { used, sourceKeys: [], tokens: [], missing: undefined };
    const name = resource.metadata?.name ?? "";
    const sources = tokenSources(spec.targets);
    const records = this.opts.records;
    const tokens = await Promise.all(
      [...sources.values()].map(async (source) => {
        // After a restart or a failover, the token the operator recorded is
        // taken up first (never one read back from a tenant's Secret).
        const recorded = records && !this.tokens.peek(source)?.token && records.get(source);
        if (recorded) this.tokens.seed(source, recorded);
        const state = await this.tokens.get(name, source, spec.refreshBeforeMs);
        if (records && state.token && !state.token.reused) await records.put(source, state.token);
        return state;
      }),
    );
    return { used, sourceKeys: [...sources.keys()], tokens, missing: tokens.find((s) => !s.token) };
  }

  /** The Ready and Verified conditions, counts and expiry of a pass, written once. */
  private async report(
    resource: ECRPullSecret,
    pass: {
      tokens: TokenState[];
      registryStatus: RegistryTokenStatus[];
      content: SecretContent | undefined;
      perRole: RolePass | undefined;
      desired: number;
      failures: NamespaceFailure[];
      wrote: number;
      /** Some registry kept an old entry (its source has no token). */
      carriedOver: boolean;
      /** Secrets cleanup kept because Pods name them. */
      kept: KeptSecret[];
    },
  ): Promise<{ desired: number; ready: ConditionInput; retryAfterMs: number | undefined }> {
    const name = resource.metadata?.name ?? "";
    const { content, perRole, desired, failures, registryStatus } = pass;
    const expiresAt = earliest([
      content?.expiresAt,
      ...(perRole?.tokens.map((s) => s.token?.expiresAt) ?? []),
    ]);
    const computed = readyCondition({
      tokens: pass.tokens,
      desired,
      failures,
      expiresAt,
      servedNamespaces: this.served?.size,
      registries: registryStatus,
    });
    // A refreshBefore the tokens' real lifetime cannot honour: said in Ready and an Event.
    const capped = refreshBeforeCapped(resource.spec.refreshBefore, pass.tokens);
    const lifetimes = pass.tokens.flatMap((s) => (s.token ? [tokenLifetimeMs(s.token)] : []));
    if (lifetimes.length > 0)
      this.metrics.tokenLifetime.set({ resource: name }, Math.min(...lifetimes) / 1000);
    if (capped) this.events.record(target(resource), "Warning", Reason.RefreshBeforeCapped, capped);
    if (computed.reason === Reason.CredentialsExpiringSoon)
      this.events.record(target(resource), "Warning", computed.reason, computed.message);
    const ready =
      capped && computed.status === "True"
        ? { ...computed, message: `${computed.message}; ${capped}` }
        : computed;
    this.noteRefresh(resource, expiresAt, pass.wrote, registryStatus);
    if (pass.carriedOver && ready.status === "False") {
      // Names the registry the Secrets hold an old entry for.
      this.events.record(target(resource), "Warning", ready.reason, ready.message);
    }
    const check = await this.checks.check(resource, content?.check);
    this.metrics.ready.set({ resource: name }, ready.status === "True" ? 1 : 0);
    await this.writeStatus(resource, {
      ready,
      verified: check.condition,
      tokens: pass.tokens,
      registries: content?.registries ?? roleRegistries(perRole),
      registryStatus,
      counts: { desired, synced: desired - failures.length, failures },
      keptSecrets: pass.kept,
    });
    if (pass.wrote > 0)
      this.log.debug({ resource: name, secrets: pass.wrote, namespaces: desired }, "reconciled");
    return { desired, ready, retryAfterMs: check.retryAfterMs };
  }

  /**
   * What the queue does after a pass (controller-runtime's contract): failed
   * writes throw and back off; a ServiceAccount a neighbour keeps reverting
   * waits out its own backoff; a ServiceAccount its role refused, or a
   * namespace outside the granted set, is not a failed write (IAM or the
   * install said no, and backing off would delay every other change of the
   * resource): it is asked again after a while.
   */
  private result(
    name: string,
    writeFailures: readonly NamespaceFailure[],
    failures: readonly NamespaceFailure[],
    pass: { desired: number; ready: ConditionInput; retryAfterMs: number | undefined },
    perRole: RolePass | undefined,
  ): ReconcileResult {
    const reAddInMs = this.serviceAccounts.nextReAddInMs(name);
    const reverted = writeFailures.filter((f) => f.reason === Reason.ServiceAccountReverted);
    if (writeFailures.length > 0 && reverted.length === writeFailures.length) {
      return { ready: false, ...(reAddInMs !== undefined ? { requeueAfterMs: reAddInMs } : {}) };
    }
    if (writeFailures.length > 0) {
      throw operatorError("PartiallySynced", "namespaces", {
        failed: failures.length,
        desired: pass.desired,
        first: failedList(failures),
      });
    }
    const requeueAfterMs =
      perRole && perRole.failures.length > 0
        ? Math.min(pass.retryAfterMs ?? ROLE_RETRY_MS, ROLE_RETRY_MS)
        : pass.retryAfterMs;
    return { ready: pass.ready.status === "True", ...(requeueAfterMs ? { requeueAfterMs } : {}) };
  }

  /** Forgets per-resource memory (the resource is gone). */
  forget(name: string): ReconcileResult {
    this.tokens.release(name);
    this.lastExpiry.delete(name);
    this.checks.forget(name);
    this.serviceAccounts.forget(name);
    this.events.forget(name);
    for (const registry of this.expiryRegistries.get(name) ?? [])
      this.metrics.tokenExpiry.remove({ resource: name, registry });
    this.expiryRegistries.delete(name);
    this.metrics.ready.remove({ resource: name });
    this.metrics.tokenLifetime.remove({ resource: name });
    this.metrics.verified.remove({ resource: name });
    for (const state of ["desired", "synced", "failed"])
      this.metrics.namespaces.remove({ resource: name, state });
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
        notice: (type, reason, message) =>
          this.events.record(target(resource), type, reason, message),
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

  /** The per-ServiceAccount part of a pass (spec.serviceAccountRoles). */
  private async rolesFor(
    resource: ECRPullSecret,
    spec: ResolvedSpec,
    wanted: readonly string[],
  ): Promise<RolePass> {
    const name = resource.metadata?.name ?? "";
    const admissions = this.opts.admissions;
    if (!admissions) {
      throw operatorError("CredentialsInvalid", "noKubeClient", {
        source: "the ServiceAccounts of spec.serviceAccountRoles",
      });
    }
    return await rolePass({
      resource,
      wanted,
      defaults: this.opts.defaults,
      ...(spec.refreshBeforeMs !== undefined ? { refreshBeforeMs: spec.refreshBeforeMs } : {}),
      cluster: this.cluster,
      admissions,
      getToken: (source, refreshBeforeMs) => this.tokens.get(name, source, refreshBeforeMs),
    });
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

  /**
   * Brings each wanted namespace's Secrets (pull, config.json) and
   * ServiceAccounts to the desired state, then the Argo CD Secrets.
   */
  private async write(
    resource: ECRPullSecret,
    policy: DeletionPolicy,
    outputs: PassSecrets | undefined,
    wanted: string[],
    perRole: RolePass | undefined,
  ): Promise<{ wrote: number; failures: NamespaceFailure[] }> {
    // Most namespaces of most passes already are as desired (a pass runs for
    // every namespace event): find the ones that are not on the caches alone,
    // and spend requests, promises and garbage only on those. Per-ServiceAccount
    // roles go through the writers, which write nothing when nothing differs.
    const outOfSync =
      perRole || !outputs
        ? wanted
        : wanted.filter((ns) => !this.namespaceInSync(resource, outputs, ns, policy));
    let wrote = 0;
    const failures: NamespaceFailure[] = [];
    await pool(outOfSync, this.opts.writeConcurrency, async (namespace) => {
      try {
        for (const desired of outputs?.inNamespace(namespace) ?? []) {
          if (await syncSecret(this.cluster, resource, desired)) wrote++;
        }
        for (const secret of perRole?.secrets.get(namespace)?.values() ?? []) {
          if (await syncSecret(this.cluster, resource, secret.build(namespace))) wrote++;
        }
        const want = perRole?.want.get(namespace);
        await this.serviceAccounts.sync(
          resource,
          namespace,
          policy,
          want ? (sa) => want.get(sa) : undefined,
        );
      } catch (err) {
        failures.push(this.failure(resource, namespace, err));
      }
    });
    for (const desired of outputs?.argoCD ?? []) {
      if (this.secretInSync(resource, desired, desired.metadata.namespace)) continue;
      const namespace = desired.metadata.namespace;
      try {
        if (await syncSecret(this.cluster, resource, desired)) wrote++;
      } catch (err) {
        if (!failures.some((f) => f.namespace === namespace)) {
          failures.push(this.failure(resource, namespace, err));
        }
      }
    }
    return { wrote, failures };
  }

  /** Whether a namespace's Secrets and ServiceAccounts already are as desired, on the caches alone. */
  private namespaceInSync(
    resource: ECRPullSecret,
    outputs: PassSecrets,
    namespace: string,
    policy: DeletionPolicy,
  ): boolean {
    for (const desired of outputs.perNamespace) {
      if (!this.secretInSync(resource, desired, namespace)) return false;
    }
    return this.serviceAccounts.inSync(resource, namespace, policy);
  }

  /** Whether a Secret is ours and as desired in `namespace`, judged on the caches. */
  private secretInSync(
    resource: ECRPullSecret,
    desired: DesiredSecret,
    namespace: string,
  ): boolean {
    const observed = this.cluster.secret({ namespace, name: desired.metadata.name });
    const owner = resource.metadata?.name ?? "";
    return !!observed && isOwnedBy(observed, owner) && !secretDiffers(desired, observed);
  }

  /** A namespace the resource names that this install may not serve: reported, with an Event. */
  private notGranted(resource: ECRPullSecret, namespace: string): NamespaceFailure {
    const err = operatorError("NamespaceNotGranted", "outside", {
      namespace,
      served: [...(this.served ?? [])].sort().join(", "),
    });
    this.events.record(target(resource), "Warning", err.code, err.message);
    return { namespace, reason: err.code, message: err.message };
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

  /**
   * What the Secrets keep for registries whose source has no token: the last
   * token the operator recorded for that source (expired or not), never
   * what a Secret in a tenant's namespace holds.
   */
  private carried(
    targets: readonly RegistryTarget[],
    states: ReadonlyMap<string, TokenState>,
  ): Map<string, { username: string; password: string }> {
    const out = new Map<string, { username: string; password: string }>();
    for (const t of targets) {
      if (!t.host || states.get(tokenSourceKey(t.source))?.token) continue;
      const held = this.opts.records?.get(t.source, { expired: true });
      if (held) out.set(t.host, { username: held.username, password: held.password });
    }
    return out;
  }

  /**
   * The expiry gauge per registry (an alert names the one that lapses), and a
   * refresh (a new expiry written) told apart from a rewrite, with an Event.
   */
  private noteRefresh(
    resource: ECRPullSecret,
    expiresAt: Date | undefined,
    wrote: number,
    registries: readonly RegistryTokenStatus[],
  ): void {
    const name = resource.metadata?.name ?? "";
    const seen = new Set<string>();
    for (const r of registries) {
      if (!r.tokenExpiresAt) continue;
      this.metrics.tokenExpiry.set(
        { resource: name, registry: r.registry },
        Date.parse(r.tokenExpiresAt) / 1000,
      );
      seen.add(r.registry);
    }
    for (const registry of this.expiryRegistries.get(name) ?? [])
      if (!seen.has(registry)) this.metrics.tokenExpiry.remove({ resource: name, registry });
    this.expiryRegistries.set(name, seen);
    const expiry = expiresAt?.getTime();
    if (expiry === undefined) return;
    const before = this.lastExpiry.get(name);
    if (before !== undefined && before !== expiry && wrote > 0) {
      const message = `refreshed ${wrote} Secrets; token expires at ${expiresAt?.toISOString()}`;
      this.events.record(target(resource), "Normal", Reason.TokenRefreshed, message);
      this.log.info({ resource: name, secrets: wrote, expiresAt }, "token refreshed");
    }
    this.lastExpiry.set(name, expiry);
  }

  private async writeStatus(resource: ECRPullSecret, pass: PassOutcome): Promise<void> {
    const name = resource.metadata?.name ?? "";
    const uncoveredPods = this.opts.uncoveredPods?.(name);
    const status = passStatus(
      resource,
      { ...pass, ...(uncoveredPods && { uncoveredPods }) },
      new Date(this.now()),
    );
    const counts = status.namespaces;
    this.metrics.namespaces.set({ resource: name, state: "desired" }, counts?.desired ?? 0);
    this.metrics.namespaces.set({ resource: name, state: "synced" }, counts?.synced ?? 0);
    this.metrics.namespaces.set({ resource: name, state: "failed" }, counts?.failed ?? 0);
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

/** One failure per namespace: the first reason a namespace failed for. */
function mergeFailures(
  a: readonly NamespaceFailure[],
  b: readonly NamespaceFailure[],
): NamespaceFailure[] {
  const seen = new Set<string>();
  return [...a, ...b].filter((f) => !seen.has(f.namespace) && seen.add(f.namespace));
}

/** The registries of the role Secrets, when the resource has no Secret of its own. */
function roleRegistries(perRole: RolePass | undefined): string[] {
  const hosts = new Set<string>();
  for (const secrets of perRole?.secrets.values() ?? []) {
    for (const secret of secrets.values()) for (const h of secret.registries) hosts.add(h);
  }
  return [...hosts].sort();
}

/**
 * What a Secret cleanup keeps for its Pods holds now: a role's Secret of this
 * pass (its name names the role) built for that namespace, else the pass's
 * pull Secret under the kept name (an old secretName); cleanup writes it only
 * when the kept Secret held the same sources' tokens.
 */
function keptSecretContent(
  outputs: PassSecrets | undefined,
  perRole: RolePass | undefined,
  namespace: string,
  name: string,
): DesiredSecret | undefined {
  for (const secrets of perRole?.secrets.values() ?? []) {
    const role = secrets.get(name);
    if (role) return role.build(namespace);
  }
  const pull = outputs?.inNamespace(namespace)[0];
  return pull && { ...pull, metadata: { ...pull.metadata, name } };
}

function target(resource: ECRPullSecret): { name: string; uid?: string } {
  return { name: resource.metadata?.name ?? "", uid: resource.metadata?.uid };
}
