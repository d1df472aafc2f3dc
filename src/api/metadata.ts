// The metadata the operator writes on objects: its name as field manager and
// managed-by value, its finalizer, its label keys and its annotation keys,
// each defined once. Condition types and reasons are in conditions.ts.

export const OPERATOR_NAME = "ecr-creds-refresher";
export const FIELD_MANAGER = OPERATOR_NAME;
export const FINALIZER = "ecrcreds.io/cleanup";

export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
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
/** ServiceAccount annotation: the Secret names this operator added (so it removes only those). */
export const ANNOTATION_ADDED_PULL_SECRETS = "ecrcreds.io/added-pull-secrets";

export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${OPERATOR_NAME}`;
