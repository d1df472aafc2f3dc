// The reconcile of one ECRPullSecret. Level-based and safe to repeat: it is
// given a name, never an event, reads the world from the caches (through
// Cluster), computes the desired state with the pure functions beside it,
// writes only what differs and ends with one status write. This file only
// orchestrates (and holds the resource's lifecycle: finalizer, finalize);
// each step's work is in the file named beside it. A pass returns what it
// found as a value; `reconcile` writes it, once, only if it changed.
//
// The result follows controller-runtime: a thrown error backs off and
// retries; `requeueAfterMs` schedules the next pass; an invalid spec is
// terminal (the status says why, and only a change of the resource brings the
// next pass).
import {
  type DeletionPolicy,
  deletionPolicy,
  type ECRPullSecret,
  type UncoveredPods,
} from "../api/index.js";
import type { OperatorDefaults } from "../aws/registries.js";
import { isOperatorError, type OperatorError } from "../errors.js";
import type { Cached } from "../kube/types.js";
import {
  type EventRecorder,
  type EventTarget,
  type Notice,
  warning,
} from "../observability/events.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { ResourceMetrics } from "../observability/resource-metrics.js";
import type { ClaimStore } from "./claim-cluster.js";
import { ClaimPasses, eventTarget } from "./claim-pass.js";
import { cleanup } from "./cleanup.js";
import { finalizeCleanupScope, passCleanupScope } from "./cleanup-scope.js";
import type { Cluster } from "./cluster.js";
import {
  mergeFailures,
  type NextPass,
  nextPass,
  notGranted,
  specOrError,
  writeFailure,
} from "./failures.js";
import { addFinalizer, hasFinalizer, removeFinalizer } from "./finalizer.js";
import {
  invalidSpecStatus,
  noTokenStatus,
  reportRevert,
  type StatusReporter,
  type WrittenPass,
  writtenPassStatus,
} from "./pass-status.js";
import {
  ownContent,
  ownTokens,
  type RoleTokensInput,
  resolveSpec,
  roleTokens,
  type Tokens,
} from "./pass-tokens.js";
import type { RoleAdmitter } from "./role-secrets.js";
import { type Revert, ServiceAccounts } from "./service-accounts.js";
import { notReady, type PassOutcome, passStatus, registryStatuses, statusEqual } from "./status.js";
import { namespaceInfos, scopedTargetNamespaces } from "./targets.js";
import type { TokenRecords } from "./token-records.js";
import { RegistryChecks, type VerifyRegistry } from "./verification.js";
import { type WriteScope, writeTargets } from "./writes.js";

export type { NextPass as ReconcileResult } from "./failures.js";
/** The Event recorder as the reconciler uses it. */
export type Events = Pick<EventRecorder, "record" | "forget">;
/** The resource as the cache holds it (named, with a resourceVersion to guard the status write). */
type Resource = Cached<ECRPullSecret>;

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
  /**
   * The tenants' ECRPullSecretClaims and the sources they use (issue 31):
   * each claim is served as the resource it resolves to (claims.ts), under
   * its owner value; absent: ECRPullSecrets only.
   */
  claims?: ClaimStore;
}

/** How a pass over a live resource ends: what it found, for the one status write, and what comes next. */
interface PassEnd {
  /** The resource as the pass last saw it: the status write is guarded by its resourceVersion. */
  resource: Resource;
  status: PassOutcome;
  /** The result, or the error the pass ends in once its status is written. */
  next: NextPass | OperatorError;
}

/**
 * Reconciles ECRPullSecrets by name, and ECRPullSecretClaims by owner value
 * or `namespace/name` (each as the resource it resolves to); what it keeps
 * of each resource goes on `forget`.
 */
export class Reconciler {
  /** The cluster, in which each claim also shows as the resource it resolves to (with opts.claims). */
  private readonly cluster: Cluster;
  /** The claims: their cluster view, refusals, series and sources' status (with opts.claims). */
  private readonly claims: ClaimPasses | undefined;
  private readonly series: ResourceMetrics;
  private readonly reporter: StatusReporter;
  private readonly roles: RoleTokensInput;
  /** What every pass's writes and cleanup share. */
  private readonly writer: Pick<WriteScope, "cluster" | "serviceAccounts" | "concurrency">;
  private readonly serviceAccounts: ServiceAccounts;
  private readonly checks: RegistryChecks;
  private readonly now: () => number;
  private readonly served: ReadonlySet<string> | undefined;

  constructor(
    base: Cluster,
    private readonly tokens: Tokens,
    private readonly events: Events,
    readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: ReconcilerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.claims = opts.claims && new ClaimPasses(base, opts.claims, metrics, this.now);
    const cluster = this.claims?.cluster ?? base;
    this.cluster = cluster;
    this.served = opts.servedNamespaces ? new Set(opts.servedNamespaces) : undefined;
    this.series = new ResourceMetrics(metrics);
    const { defaults, admissions } = opts;
    this.roles = { tokens, cluster, defaults, admissions };
    this.serviceAccounts = new ServiceAccounts(cluster, this.now, (r) => this.reverted(r));
    const { serviceAccounts } = this;
    this.writer = { cluster, serviceAccounts, concurrency: opts.writeConcurrency };
    this.checks = new RegistryChecks(opts.verify, events, metrics, log, this.now);
    const { series, checks } = this;
    const notify = (resource: Resource, notice: Notice) =>
      this.notify(eventTarget(resource), notice);
    this.reporter = { series, checks, log, notify, servedNamespaces: this.served?.size };
  }

  /**
   * One pass over the resource `key` names (an ECRPullSecret's name, or a
   * claim's owner value or `namespace/name`): its writes, then its status,
   * written once if it changed.
   */
  async reconcile(key: string): Promise<NextPass> {
    const { name, claim } = this.claims?.owner(key) ?? { name: key };
    const cached = this.cluster.resource(name);
    // Gone: either our finalizer ran its cleanup (under Retain it kept
    // everything on purpose) or someone removed the finalizer by hand to skip
    // it. The policy is unknowable now, so nothing is deleted.
    if (!cached) return this.forget(name);
    // 1. Finalize: a deleted resource gets its cleanup, then is let go.
    if (cached.metadata.deletionTimestamp) return await this.finalize(cached);
    if (claim) this.claims?.info(name, claim);
    const refused = this.claims?.refusal(name);
    const end = refused ? await this.refused(cached, refused) : await this.pass(cached);
    await this.writeStatus(end.resource, end.status);
    if (claim && !refused) await this.claims?.reportSource(name, end.status);
    if (isOperatorError(end.next)) throw end.next;
    return end.next;
  }

  /**
   * Where an Event about the resource with this queue key goes: an
   * ECRPullSecret's into "default", a claim's into its namespace, about the
   * claim. For what happens outside a pass (a failed token fetch).
   */
  eventTarget(key: string): EventTarget {
    const resource = this.cluster.resource(key);
    return resource ? eventTarget(resource) : { name: key };
  }

  /** Forgets per-resource memory (the resource is gone). */
  forget(name: string): NextPass {
    this.claims?.forget(name);
    this.tokens.release(name);
    this.checks.forget(name);
    this.serviceAccounts.forget(name);
    this.events.forget(name);
    this.series.forget(name);
    return { ready: true };
  }

  /** Steps 2 to 7 over a live resource; the status it returns is not written yet. */
  private async pass(cached: Resource): Promise<PassEnd> {
    const name = cached.metadata.name;
    const policy = deletionPolicy(cached.spec);
    // 2. Tokens: which registries, and a token for each (cached, reused or
    //    fetched), got while a new resource's finalizer goes on: both are in
    //    place before the first write, and neither waits for the other.
    const resolved = specOrError(() => resolveSpec(cached, this.opts.defaults));
    const finalized = hasFinalizer(cached) ? cached : this.withFinalizer(cached);
    if (isOperatorError(resolved)) return this.invalidSpec(await finalized, resolved);
    const [own, resource] = await Promise.all([
      ownTokens(this.tokens, this.opts.records, cached, resolved),
      finalized,
    ]);
    // Only when no source has a token is there nothing to write: one failing
    // source must not hold back the registries of the others.
    if (own.missing && !own.tokens.some((s) => s.token)) {
      this.tokens.release(name, new Set(own.sourceKeys));
      return notReadyEnd(resource, noTokenStatus(this.reporter, resource, own.tokens, own.missing));
    }

    // 3. Content: the one Secret content for every namespace and format; a
    //    registry whose source has no token keeps the entry last recorded.
    const { states, content, outputs } = ownContent(this.opts.records, resource, resolved, own);

    // 4. Targets: where (within the namespaces this install may serve), and
    //    the per-ServiceAccount roles' Secrets, tokens and references there.
    const infos = namespaceInfos(this.cluster.namespaces());
    const scoped = specOrError(() => scopedTargetNamespaces(resource.spec, infos, this.served));
    if (isOperatorError(scoped)) return this.invalidSpec(resource, scoped);
    const wanted = scoped.targets;
    const perRole = resource.spec.serviceAccountRoles
      ? await roleTokens(this.roles, resource, resolved, wanted)
      : undefined;
    this.tokens.release(name, new Set([...own.sourceKeys, ...(perRole?.sources.keys() ?? [])]));

    // 5. Writes: the Secrets and the ServiceAccounts of each namespace not yet
    //    as desired, then Argo CD's Secrets.
    const notify = (n: Notice) => this.notify(eventTarget(resource), n);
    const scope = { ...this.writer, resource, policy, outputs, wanted, perRole, notify };
    const failure = (namespace: string, err: unknown) => writeFailure(namespace, err, notify);
    const written = await writeTargets({ ...scope, failure });
    const refused = scoped.notGranted.map((ns) => notGranted(ns, this.served, notify));
    const failures = mergeFailures(written.failures, [...(perRole?.failures ?? []), ...refused]);

    // 6. Cleanup: what it made and no longer wants; what Pods still name is
    //    kept, refreshed, and looked at again after a while.
    const { kept } = await cleanup(this.cluster, this.serviceAccounts, passCleanupScope(scope));

    // 7. Status, written once by `reconcile`; then what the queue does next.
    const found: WrittenPass = {
      tokens: [...own.tokens, ...(perRole?.tokens ?? [])],
      registryStatus: own.used ? registryStatuses(resolved.targets, states) : [],
      content,
      perRole,
      desired: wanted.length + refused.length,
      failures,
      wrote: written.wrote,
      carriedOver: Boolean(own.missing),
      kept,
    };
    const reported = await writtenPassStatus(this.reporter, resource, found);
    const reAddInMs = this.serviceAccounts.nextReAddInMs(name);
    const writeFailures = written.failures;
    const next = nextPass({ ...found, ...reported, writeFailures, reAddInMs });
    return { resource, status: reported.status, next };
  }

  /** Puts the finalizer on; the resource as the patch left it (the status write is guarded by its resourceVersion). */
  private async withFinalizer(resource: Resource): Promise<Resource> {
    await addFinalizer(this.cluster, resource);
    return this.cluster.resource(resource.metadata.name) ?? resource;
  }

  /** A deleted resource: cleanup under its deletionPolicy, then the finalizer goes. */
  private async finalize(resource: Resource): Promise<NextPass> {
    const name = resource.metadata.name;
    if (hasFinalizer(resource)) {
      const policy = await this.cleanUpAll(resource);
      await removeFinalizer(this.cluster, resource);
      this.log.info(
        { resource: name, deletionPolicy: policy },
        "cleaned up after deleted resource",
      );
    }
    return this.forget(name);
  }

  /** Removes all the resource wrote, as its deletionPolicy says; returns that policy. */
  private async cleanUpAll(resource: Resource): Promise<DeletionPolicy> {
    const policy = deletionPolicy(resource.spec);
    const notify = (n: Notice) => this.notify(eventTarget(resource), n);
    const scope = finalizeCleanupScope({ ...this.writer, resource, policy, notify });
    await cleanup(this.cluster, this.serviceAccounts, scope);
    return policy;
  }

  /**
   * A claim its source does not serve (not found, not for this namespace, a
   * feature or registry it does not allow): Ready says why, with an Event;
   * nothing is written and AWS is not asked. What it wrote while it was
   * served goes, under its deletionPolicy, as a deleted resource's does:
   * access an administrator withdraws is withdrawn now, not when the last
   * token expires. A change of the claim, its source or its namespace brings
   * the next pass.
   */
  private async refused(resource: Resource, err: OperatorError): Promise<PassEnd> {
    const name = resource.metadata.name;
    this.tokens.release(name);
    this.log.info({ resource: name, reason: err.code, err: err.message }, "claim not served");
    this.notify(eventTarget(resource), warning(err.code, err.message));
    await this.cleanUpAll(resource);
    this.series.ready(name, false);
    return notReadyEnd(resource, { ready: notReady(err.code, err.message) });
  }

  /** An invalid spec ends the pass: terminal until the resource changes. */
  private invalidSpec(resource: Resource, err: OperatorError): PassEnd {
    return notReadyEnd(resource, invalidSpecStatus(this.reporter, resource, err));
  }

  /** The one status write of a pass, only when the status changed; the namespace gauges always. */
  private async writeStatus(resource: Resource, pass: PassOutcome): Promise<void> {
    const name = resource.metadata.name;
    const uncoveredPods = this.opts.uncoveredPods?.(name);
    const status = passStatus(
      resource,
      { ...pass, ...(uncoveredPods && { uncoveredPods }) },
      new Date(this.now()),
    );
    this.series.namespaces(name, status.namespaces);
    if (statusEqual(resource.status, status)) return;
    await this.cluster.patchStatus(name, status, resource.metadata.resourceVersion);
  }

  /** A neighbour (a GitOps tool's self-heal) removed our entry: say who. */
  private reverted(r: Revert): void {
    const found = this.cluster.resource(r.owner);
    const about = found ? eventTarget(found) : { name: r.owner };
    reportRevert(this.reporter, r, (n) => this.notify(about, n));
  }

  private notify(about: EventTarget, notice: Notice): void {
    this.events.record(about, notice.type, notice.reason, notice.message);
  }
}

/** A pass that ends before its writes, not Ready: only a change (or an event) brings the next. */
function notReadyEnd(resource: Resource, status: PassOutcome): PassEnd {
  return { resource, status, next: { ready: false } };
}
