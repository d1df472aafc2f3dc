// The metadata the operator writes on objects: its name as field manager and
// managed-by value, its finalizer, its label keys and its annotation keys,
// each defined once. Condition types and reasons are in conditions.ts.

export const OPERATOR_NAME = "ecr-creds-refresher";
export const FIELD_MANAGER = OPERATOR_NAME;
export const FINALIZER = "ecrcreds.io/cleanup";

export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
/** The prefix of every label and annotation key of the operator's own. */
export const KEY_PREFIX = "ecrcreds.io/";
/** Marks the operator's token records, Secrets in its own namespace (token-records.ts). */
export const LABEL_TOKEN_RECORD = "ecrcreds.io/token-record";
/** The label by which Argo CD finds its repository credentials Secrets. */
export const LABEL_ARGOCD_SECRET_TYPE = "argocd.argoproj.io/secret-type";
/** Names the ECRPullSecret that owns a Secret. */
export const LABEL_OWNER = "ecrcreds.io/owner";
export const ANNOTATION_EXPIRES_AT = "ecrcreds.io/token-expires-at";
/** When the token was fetched: with the expiry, a restarted operator reuses it. */
export const ANNOTATION_FETCHED_AT = "ecrcreds.io/token-fetched-at";
/** The registry hosts the Secret holds, comma-separated (no credentials). */
export const ANNOTATION_REGISTRIES = "ecrcreds.io/registries";
/**
 * host=digest pairs naming the credentials source (a digest of it, never a
 * credential) each host's token came from: a restarted operator reuses a
 * token only for the source that fetched it, not after credentials changed.
 */
export const ANNOTATION_TOKEN_SOURCES = "ecrcreds.io/token-sources";
/**
 * The secretTemplate keys applied to a Secret (`label:k,annotation:k`), so
 * that a key later dropped from the template is dropped from the Secret.
 */
export const ANNOTATION_SECRET_TEMPLATE_KEYS = "ecrcreds.io/secret-template-keys";
/** ServiceAccount annotation: the Secret names this operator added (so it removes only those). */
export const ANNOTATION_ADDED_PULL_SECRETS = "ecrcreds.io/added-pull-secrets";
/** ServiceAccount annotation: the names this operator added to its `secrets` list (Tekton reads it). */
export const ANNOTATION_ADDED_SECRETS = "ecrcreds.io/added-secrets";

/**
 * ServiceAccount annotation naming the IAM role its pulls use: the key the
 * kubelet's AWS credential provider reads for KEP-4412
 * (kubernetes/cloud-provider-aws cmd/ecr-credential-provider), so a
 * ServiceAccount moves to node-side KEP-4412 unchanged.
 */
export const ANNOTATION_ECR_ROLE_ARN = "eks.amazonaws.com/ecr-role-arn";
/**
 * The IRSA annotation many ServiceAccounts already carry: accepted as the
 * pull role too, when the ECR-specific key above is not set (that one wins).
 */
export const ANNOTATION_ROLE_ARN = "eks.amazonaws.com/role-arn";
/** The ServiceAccount annotations naming a pull role, the one that wins first. */
export const ROLE_ARN_ANNOTATIONS = [ANNOTATION_ECR_ROLE_ARN, ANNOTATION_ROLE_ARN] as const;

export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${OPERATOR_NAME}`;

// --- Ownership: what the operator wrote, and where --------------------------
// Labels say whose a Secret is, but anyone can copy them (kubectl get -o yaml
// | kubectl apply -n other -f -). These marks say where the operator wrote a
// Secret: a copy in another place carries the first place's mark, so cleanup
// leaves it alone; and they say whether it created or adopted it, so cleanup
// deletes what it created and only releases what it adopted.

/** `<namespace>/<name>` of a Secret the operator created there: cleanup may delete it. */
export const ANNOTATION_WRITTEN_IN = "ecrcreds.io/written-in";
/** `<namespace>/<name>` of a Secret the operator adopted there (adoptExisting): cleanup releases it. */
export const ANNOTATION_ADOPTED = "ecrcreds.io/adopted";
/** On an adopted Secret: the auths keys the operator put into it, comma-separated (release removes only these). */
export const ANNOTATION_ADOPTED_AUTHS = "ecrcreds.io/adopted-auths";
/** On an adopted Secret: a digest of the operator's entries as last merged in (judged without reading data). */
export const ANNOTATION_ADOPTED_DIGEST = "ecrcreds.io/adopted-digest";
/**
 * On an adopted Secret: the digest (valueDigest) of the whole
 * `.dockerconfigjson` as the operator last wrote it. The annotation alone is
 * anyone's to edit; the data's own digest, which the caches keep, must match
 * it too, so an edit of the data (our entry overwritten by another tool or a
 * person) is merged over again.
 */
export const ANNOTATION_ADOPTED_DATA_DIGEST = "ecrcreds.io/adopted-data-digest";
