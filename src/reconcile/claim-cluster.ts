// The reconciler serves an ECRPullSecretClaim as the ECRPullSecret it
// resolves to (claims.ts): this Cluster shows each claim, under its owner
// value (`claim_<namespace>_<name>`), as a resource whose spec targets the
// claim's namespace alone with its source's credentials, and sends that
// resource's metadata and status writes to the claim. Every other read and
// write goes to the cluster underneath unchanged, so the reconcile's steps
// (tokens, content, writes, cleanup, status) serve both kinds with one code.
import { ConditionType, Reason } from "../api/conditions.js";
import type {
  ClusterECRCredentialSource,
  ClusterECRCredentialSourceStatus,
  ECRPullSecret,
  ECRPullSecretClaim,
  ECRPullSecretStatus,
} from "../api/index.js";
import { API_VERSION, KIND } from "../api/index.js";
import type { OperatorError } from "../errors.js";
import type { Cached } from "../kube/types.js";
import { claimOwner, parseClaimKey, resolveClaim } from "./claims.js";
import type { Cluster, ObjectKey } from "./cluster.js";

/** What the reconciler needs of the claims and sources: their caches, and the claims' writes. */
export interface ClaimStore {
  claim(key: ObjectKey): Cached<ECRPullSecretClaim> | undefined;
  source(name: string): ClusterECRCredentialSource | undefined;
  /** Every cached claim. */
  claims(): Iterable<Cached<ECRPullSecretClaim>>;
  /** A merge patch of the claim's metadata (its finalizers); a claim already gone is not an error. */
  patchClaimMetadata(key: ObjectKey, metadata: object): Promise<void>;
  /** A source's status (its Ready condition), as a merge patch. */
  patchSourceStatus(name: string, status: ClusterECRCredentialSourceStatus): Promise<void>;
  /** The claim's status, guarded by `resourceVersion` as an ECRPullSecret's is. */
  patchClaimStatus(
    key: ObjectKey,
    status: ECRPullSecretStatus,
    resourceVersion: string | undefined,
  ): Promise<void>;
}

const OWNER_PREFIX = "claim_";

/**
 * The claim an owner value or a queue key names: `claim_<namespace>_<name>`
 * (a `_` is in neither part) or `<namespace>/<name>`; undefined for an
 * ECRPullSecret's name.
 */
export function claimOf(key: string): ObjectKey | undefined {
  if (key.startsWith(OWNER_PREFIX)) {
    const rest = key.slice(OWNER_PREFIX.length);
    const cut = rest.indexOf("_");
    if (cut <= 0 || cut === rest.length - 1) return undefined;
    return { namespace: rest.slice(0, cut), name: rest.slice(cut + 1) };
  }
  return parseClaimKey(key);
}

/** A cluster in which each claim is also the resource it resolves to. */
export class ClaimCluster implements Cluster {
  constructor(
    private readonly base: Cluster,
    private readonly store: ClaimStore,
  ) {}

  /**
   * Why a claim is not served (SourceNotFound, SourceNotAllowed,
   * FeatureNotAllowed, RegistryNotAllowed, InvalidSpec); undefined when it is,
   * or when `name` is no claim's.
   */
  refusal(name: string): OperatorError | undefined {
    const found = this.lookup(name);
    return found && "code" in found.resolved ? found.resolved : undefined;
  }

  /** The claim behind an owner value, if `name` is one. */
  claim(name: string): Cached<ECRPullSecretClaim> | undefined {
    const key = claimOf(name);
    return key && this.store.claim(key);
  }

  resource(name: string): Cached<ECRPullSecret> | undefined {
    const key = claimOf(name);
    if (!key) return this.base.resource(name);
    const found = this.lookup(name);
    if (!found) return undefined;
    const { claim, resolved } = found;
    const m = claim.metadata;
    // A claim not served gets a spec that targets nothing: its finalizer
    // still cleans up under its own deletionPolicy.
    const spec =
      "code" in resolved
        ? {
            secretName: claim.spec.secretName,
            namespaces: [],
            ...(claim.spec.deletionPolicy ? { deletionPolicy: claim.spec.deletionPolicy } : {}),
          }
        : resolved.spec;
    return {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name: claimOwner(key.namespace, key.name),
        ...(m.uid !== undefined ? { uid: m.uid } : {}),
        ...(m.generation !== undefined ? { generation: m.generation } : {}),
        ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
        ...(m.creationTimestamp !== undefined ? { creationTimestamp: m.creationTimestamp } : {}),
        ...(m.deletionTimestamp !== undefined ? { deletionTimestamp: m.deletionTimestamp } : {}),
        ...(m.finalizers !== undefined ? { finalizers: m.finalizers } : {}),
      },
      spec,
      ...(claim.status ? { status: claim.status } : {}),
    };
  }

  private lookup(name: string) {
    const key = claimOf(name);
    const claim = key && this.store.claim(key);
    if (!key || !claim) return undefined;
    const ref = claim.spec.sourceRef;
    const source = ref ? this.store.source(ref.name) : undefined;
    const labels = this.namespaceLabels(key.namespace);
    return { claim, resolved: resolveClaim(claim, source, labels) };
  }

  private namespaceLabels(namespace: string): Record<string, string> | undefined {
    for (const ns of this.base.namespaces()) {
      if (ns.metadata?.name === namespace) return ns.metadata.labels ?? {};
    }
    return undefined;
  }

  async patchResourceMetadata(name: string, metadata: object): Promise<void> {
    const key = claimOf(name);
    if (key) return await this.store.patchClaimMetadata(key, metadata);
    return await this.base.patchResourceMetadata(name, metadata);
  }

  async patchStatus(
    name: string,
    status: ECRPullSecretStatus,
    resourceVersion: string | undefined,
  ): Promise<void> {
    const key = claimOf(name);
    if (key) return await this.store.patchClaimStatus(key, status, resourceVersion);
    return await this.base.patchStatus(name, status, resourceVersion);
  }

  // --- Everything else is the cluster underneath's. --------------------------

  namespaces: Cluster["namespaces"] = () => this.base.namespaces();
  secret: Cluster["secret"] = (key) => this.base.secret(key);
  secrets: Cluster["secrets"] = () => this.base.secrets();
  serviceAccounts: Cluster["serviceAccounts"] = (namespace) => this.base.serviceAccounts(namespace);
  readSecret: Cluster["readSecret"] = (key) => this.base.readSecret(key);
  readServiceAccount: Cluster["readServiceAccount"] = (key) => this.base.readServiceAccount(key);
  pullSecretUsers: Cluster["pullSecretUsers"] = (namespace) => this.base.pullSecretUsers(namespace);
  createSecret: Cluster["createSecret"] = (secret) => this.base.createSecret(secret);
  patchSecret: Cluster["patchSecret"] = (key, patch) => this.base.patchSecret(key, patch);
  deleteSecret: Cluster["deleteSecret"] = (key, rv) => this.base.deleteSecret(key, rv);
  patchServiceAccount: Cluster["patchServiceAccount"] = (key, patch) =>
    this.base.patchServiceAccount(key, patch);
}

/** What a pass over a claim learnt of its source's tokens. */
export interface SourceTokens {
  /** A token is held for every registry of the source. */
  ok: boolean;
  /** Why not (the first failing source's error), when not. */
  reason?: string;
  message?: string;
}

/**
 * A source's status after a claim's pass: Ready True while its credentials
 * get tokens, False with the fetch's reason when they do not. Undefined when
 * the source already says so (nothing to write). `now` stamps a transition.
 */
export function sourceStatus(
  source: ClusterECRCredentialSource,
  tokens: SourceTokens,
  now: Date,
): ClusterECRCredentialSourceStatus | undefined {
  const generation = source.metadata?.generation;
  const status = tokens.ok ? "True" : "False";
  const reason = tokens.ok ? Reason.Synced : (tokens.reason ?? Reason.TokenRefreshFailed);
  const message = tokens.ok
    ? "its credentials get ECR tokens; every claim over it shares them"
    : (tokens.message ?? "no token yet");
  const before = source.status?.conditions?.find((c) => c.type === ConditionType.Ready);
  const same =
    before?.status === status &&
    before.reason === reason &&
    before.message === message &&
    source.status?.observedGeneration === generation;
  if (same) return undefined;
  const lastTransitionTime =
    before?.status === status ? before.lastTransitionTime : now.toISOString();
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions: [
      {
        type: ConditionType.Ready,
        status,
        reason,
        message,
        lastTransitionTime,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
      },
    ],
  };
}
