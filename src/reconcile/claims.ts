// An ECRPullSecretClaim resolved into the spec the reconciler already serves
// (issue 31): the same shape as an ECRPullSecret's, targeting exactly the
// claim's own namespace, with the source's credentials (or the claim's own,
// each reference pinned to that namespace). Pure: no API call, no clock.
//
// Because every claim over one source carries that source's credentials,
// region and registry entries unchanged, every such claim resolves to the
// same token sources (src/aws/registries.ts), so the token cache fetches one
// token per source however many namespaces claim it.
//
// What a claim may not do is refused here, before anything is written or AWS
// is asked: a source that does not exist or does not allow the namespace, a
// feature the source does not allow, a registry the source does not offer.
import type {
  ClaimCredentialsSpec,
  ClaimFeature,
  ClaimRegistrySpec,
  ClusterECRCredentialSource,
  CredentialsSpec,
  ECRPullSecretClaim,
  ECRPullSecretSpec,
  RegistrySpec,
} from "../api/index.js";
import { normalizeHost } from "../aws/registries.js";
import { registryHost } from "../aws/registry-host.js";
import { isOperatorError, type OperatorError, operatorError } from "../errors.js";
import { matchesAny } from "./glob.js";
import { matchesSelector } from "./selector.js";

/** A claim as the reconciler serves it. */
export interface ResolvedClaim {
  /** The claim's work-queue key, `namespace/name`. */
  key: string;
  /** The owner value on its Secrets and ServiceAccount entries (see claimOwner). */
  owner: string;
  /** The claim's namespace: its only target. */
  namespace: string;
  /** The spec to serve: an ECRPullSecret's, targeting `namespace` alone. */
  spec: ECRPullSecretSpec;
}

/**
 * The work-queue key of a claim: `namespace/name`. ECRPullSecret names (DNS
 * subdomains) never hold a `/`, so the two kinds share one queue.
 */
export function claimKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** A claim's namespace and name from its queue key; undefined for an ECRPullSecret's name. */
export function parseClaimKey(key: string): { namespace: string; name: string } | undefined {
  const slash = key.indexOf("/");
  if (slash <= 0 || slash === key.length - 1) return undefined;
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * The owner a claim's Secrets and ServiceAccount entries carry in place of an
 * ECRPullSecret's name: `claim_<namespace>_<name>`. A `_` is in no
 * ECRPullSecret name and in no namespace or claim name, so the value belongs
 * to one claim and to no ECRPullSecret, and the existing ownership rules
 * (another owner's Secret is a conflict, never overwritten) hold between the
 * kinds and between claims. It is a valid label value once ownerLabelValue
 * has shortened it (src/reconcile/desired.ts), and holds no `/`, which the
 * ServiceAccount annotation uses as its separator.
 */
export function claimOwner(namespace: string, name: string): string {
  return `claim_${namespace}_${name}`;
}

/**
 * The resource an owner value names, for messages: `ECRPullSecretClaim ns/name`
 * for a claim's owner value, else `ECRPullSecret <name>`. An owner value is
 * read from a label anyone may write, so it is only ever shown, never trusted.
 */
export function describeOwner(owner: string): string {
  const claim = /^claim_([^_]+)_([^_]+)$/.exec(owner);
  return claim ? `ECRPullSecretClaim ${claim[1]}/${claim[2]}` : `ECRPullSecret ${owner}`;
}

/** Where each feature is asked for in a claim's spec. */
const FEATURE_FIELDS: ReadonlyArray<{
  feature: ClaimFeature;
  field: string;
  asked: (spec: ECRPullSecretClaim["spec"]) => boolean;
}> = [
  { feature: "ArgoCD", field: "spec.argoCD", asked: (s) => s.argoCD !== undefined },
  { feature: "AdoptExisting", field: "spec.adoptExisting", asked: (s) => s.adoptExisting === true },
  {
    feature: "PodRecoveryRecreate",
    field: "spec.podRecovery: Recreate",
    asked: (s) => s.podRecovery === "Recreate",
  },
];

/**
 * Whether a source's `conditions` let `namespace` (with `labels`) use it: any
 * entry whose names or globs match the name, or whose selector matches the
 * labels. No entry: no namespace. Throws InvalidSpec on a malformed selector.
 */
export function sourceAllows(
  source: ClusterECRCredentialSource,
  namespace: string,
  labels: Record<string, string> | undefined,
): boolean {
  return (source.spec.conditions ?? []).some(
    (c) =>
      matchesAny(c.namespaces, namespace) ||
      (c.namespaceSelector !== undefined && matchesSelector(c.namespaceSelector, labels)),
  );
}

/**
 * Resolves a claim into the spec the reconciler serves, or the error its
 * status reports (SourceNotFound, SourceNotAllowed, FeatureNotAllowed,
 * RegistryNotAllowed, InvalidSpec). `source` is the ClusterECRCredentialSource
 * its sourceRef names (undefined: none by that name, or a claim with
 * credentials of its own); `labels` are the claim namespace's labels.
 */
export function resolveClaim(
  claim: ECRPullSecretClaim,
  source: ClusterECRCredentialSource | undefined,
  labels: Record<string, string> | undefined,
): ResolvedClaim | OperatorError {
  const namespace = claim.metadata?.namespace ?? "";
  const name = claim.metadata?.name ?? "";
  const base = { key: claimKey(namespace, name), owner: claimOwner(namespace, name), namespace };
  try {
    const ref = claim.spec.sourceRef;
    if (ref === undefined) return { ...base, spec: ownCredentialsSpec(claim, namespace) };
    if (source === undefined || source.metadata?.name !== ref.name) {
      return operatorError("SourceNotFound", "missing", { source: ref.name });
    }
    return { ...base, spec: sourceSpec(claim, source, namespace, labels) };
  } catch (err) {
    if (isOperatorError(err)) return err;
    throw err;
  }
}

/** What every resolved claim keeps from its own spec: the fields that stay in its namespace. */
function localFields(claim: ECRPullSecretClaim, namespace: string): ECRPullSecretSpec {
  const c = claim.spec;
  const spec: ECRPullSecretSpec = { secretName: c.secretName, namespaces: [namespace] };
  if (c.serviceAccounts) spec.serviceAccounts = [...c.serviceAccounts];
  if (c.serviceAccountFields) spec.serviceAccountFields = [...c.serviceAccountFields];
  if (c.secretTemplate) spec.secretTemplate = c.secretTemplate;
  if (c.dockerConfigSecret) spec.dockerConfigSecret = { name: c.dockerConfigSecret.name };
  if (c.hostVariants) spec.hostVariants = [...c.hostVariants];
  if (c.refreshBefore) spec.refreshBefore = c.refreshBefore;
  if (c.deletionPolicy) spec.deletionPolicy = c.deletionPolicy;
  return spec;
}

/** A claim with credentials of its own: references pinned to its namespace, no features. */
function ownCredentialsSpec(claim: ECRPullSecretClaim, namespace: string): ECRPullSecretSpec {
  for (const f of FEATURE_FIELDS) {
    if (f.asked(claim.spec)) {
      throw operatorError("FeatureNotAllowed", "ownCredentials", {
        feature: f.feature,
        field: f.field,
      });
    }
  }
  const spec = localFields(claim, namespace);
  if (claim.spec.credentials) spec.credentials = pinned(claim.spec.credentials, namespace);
  if (claim.spec.region) spec.region = claim.spec.region;
  if (claim.spec.registries) spec.registries = claim.spec.registries.map(registryEntry);
  return spec;
}

/** A claim over a source: the source's credentials and registries, if it allows all the claim asks. */
function sourceSpec(
  claim: ECRPullSecretClaim,
  source: ClusterECRCredentialSource,
  namespace: string,
  labels: Record<string, string> | undefined,
): ECRPullSecretSpec {
  const sourceName = source.metadata?.name ?? "";
  if (!sourceAllows(source, namespace, labels)) {
    const params = { source: sourceName, namespace };
    throw (source.spec.conditions ?? []).length === 0
      ? operatorError("SourceNotAllowed", "noConditions", params)
      : operatorError("SourceNotAllowed", "namespace", params);
  }
  const allowed = new Set(source.spec.allowedFeatures ?? []);
  for (const f of FEATURE_FIELDS) {
    if (f.asked(claim.spec) && !allowed.has(f.feature)) {
      throw operatorError("FeatureNotAllowed", "source", {
        source: sourceName,
        feature: f.feature,
        field: f.field,
      });
    }
  }
  const spec = localFields(claim, namespace);
  // Taken from the source unchanged, so that every claim over it shares its token.
  if (source.spec.credentials) spec.credentials = source.spec.credentials;
  if (source.spec.region) spec.region = source.spec.region;
  const registries = offeredRegistries(claim.spec.registries, source);
  if (registries) spec.registries = registries;
  const c = claim.spec;
  // Argo CD's namespace is the default one (argocd): the claim may not choose it.
  if (c.argoCD) {
    const argoCD = { ...c.argoCD };
    delete argoCD.namespace;
    spec.argoCD = argoCD;
  }
  if (c.adoptExisting) spec.adoptExisting = true;
  if (c.podRecovery) spec.podRecovery = c.podRecovery;
  return spec;
}

/**
 * The source's registry entries the claim asks for, in the claim's order (the
 * source's own entries, per-registry credentials included); all of the
 * source's when the claim names none. Throws RegistryNotAllowed for one the
 * source does not offer.
 */
function offeredRegistries(
  wanted: readonly ClaimRegistrySpec[] | undefined,
  source: ClusterECRCredentialSource,
): RegistrySpec[] | undefined {
  const offered = source.spec.registries;
  if (!wanted || wanted.length === 0) return offered && [...offered];
  const region = source.spec.region;
  const byKey = new Map((offered ?? []).map((e) => [registryKey(e, region), e]));
  return wanted.map((w) => {
    const key = registryKey(w, region);
    const entry = byKey.get(key);
    if (entry) return entry;
    throw operatorError("RegistryNotAllowed", "notOffered", {
      source: source.metadata?.name ?? "",
      registry: key,
      offered:
        byKey.size > 0
          ? [...byKey.keys()].join(", ")
          : "only the operator's default registry: it lists no spec.registries",
    });
  });
}

/**
 * What names one registry, whichever way an entry spells it: its host
 * (an account in a region becomes its standard host). An account without any
 * region is the operator's default region's: `<account> in the default region`.
 */
function registryKey(entry: ClaimRegistrySpec | RegistrySpec, sourceRegion?: string): string {
  if (entry.host) return normalizeHost(entry.host);
  const account = entry.accountId ?? "";
  const region = entry.region ?? sourceRegion;
  if (!region) return `${account} in the default region`;
  try {
    return registryHost(account, region);
  } catch {
    // Malformed (the schema's patterns keep this out): compared as written.
    return `${account} in ${region}`;
  }
}

/** A claim's registry entry as an ECRPullSecret's (no credentials of its own). */
function registryEntry(entry: ClaimRegistrySpec): RegistrySpec {
  const out: RegistrySpec = {};
  if (entry.accountId) out.accountId = entry.accountId;
  if (entry.host) out.host = entry.host;
  if (entry.region) out.region = entry.region;
  return out;
}

/** A claim's own credentials with every reference in its namespace (whatever a `namespace` said). */
export function pinned(c: ClaimCredentialsSpec, namespace: string): CredentialsSpec {
  const out: CredentialsSpec = {};
  if (c.secretRef) out.secretRef = { name: c.secretRef.name, namespace };
  if (c.webIdentity) {
    const w = c.webIdentity;
    out.webIdentity = {
      roleArn: w.roleArn,
      serviceAccount: { name: w.serviceAccount.name, namespace },
      ...(w.audience ? { audience: w.audience } : {}),
    };
  }
  if (c.rolesAnywhere) {
    const r = c.rolesAnywhere;
    out.rolesAnywhere = {
      trustAnchorArn: r.trustAnchorArn,
      profileArn: r.profileArn,
      roleArn: r.roleArn,
      certificateSecretRef: { name: r.certificateSecretRef.name, namespace },
      ...(r.sessionDuration ? { sessionDuration: r.sessionDuration } : {}),
    };
  }
  if (c.roleArn) out.roleArn = c.roleArn;
  if (c.externalId) out.externalId = c.externalId;
  if (c.sessionTags) out.sessionTags = c.sessionTags.map((t) => ({ key: t.key, value: t.value }));
  return out;
}
