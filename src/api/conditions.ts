// The condition types of an ECRPullSecret's (and an ECRPullSecretClaim's) status and every reason the
// operator writes, on a condition or an Event, defined once. The codes of the
// error catalogue (src/errors.ts) are these reasons.

export const ConditionType = {
  Ready: "Ready",
  Verified: "Verified",
} as const;

/** Reasons on the Ready and Verified conditions, and Event reasons. */
export const Reason = {
  Synced: "Synced",
  PartiallySynced: "PartiallySynced",
  SecretConflict: "SecretConflict",
  NamespaceNotGranted: "NamespaceNotGranted",
  WriteFailed: "WriteFailed",
  ServiceAccountConflict: "ServiceAccountConflict",
  /** Someone keeps removing our imagePullSecrets entry (a GitOps tool's self-heal): re-added with backoff. */
  ServiceAccountReverted: "ServiceAccountReverted",
  CredentialsSecretNotFound: "CredentialsSecretNotFound",
  CredentialsSecretInvalid: "CredentialsSecretInvalid",
  CredentialsInvalid: "CredentialsInvalid",
  AccessDenied: "AccessDenied",
  RoleNotAssumable: "RoleNotAssumable",
  /** The API server refused a TokenRequest for a web identity's ServiceAccount. */
  ServiceAccountTokenFailed: "ServiceAccountTokenFailed",
  RegionUnknown: "RegionUnknown",
  /** AWS refused a request as signed at the wrong time, and the SDK's correction did not help. */
  ClockSkew: "ClockSkew",
  TokenRefreshFailed: "TokenRefreshFailed",
  TokenExpiredOnArrival: "TokenExpiredOnArrival",
  /** Ready, but the credentials will not be for long: a Roles Anywhere certificate near its end, not renewed. */
  CredentialsExpiringSoon: "CredentialsExpiringSoon",
  /** spec.refreshBefore is not shorter than the tokens' real lifetime: capped at half of it (an Event). */
  RefreshBeforeCapped: "RefreshBeforeCapped",
  InvalidSpec: "InvalidSpec",
  // An ECRPullSecretClaim over a ClusterECRCredentialSource (nothing written, no AWS call).
  /** spec.sourceRef names no ClusterECRCredentialSource. */
  SourceNotFound: "SourceNotFound",
  /** The source's conditions do not allow the claim's namespace. */
  SourceNotAllowed: "SourceNotAllowed",
  /** The claim asks for argoCD, adoptExisting or podRecovery: Recreate, and its source does not allow it. */
  FeatureNotAllowed: "FeatureNotAllowed",
  /** The claim asks for a registry its source does not offer. */
  RegistryNotAllowed: "RegistryNotAllowed",
  TokenRefreshed: "TokenRefreshed",
  Verified: "Verified",
  VerificationFailed: "VerificationFailed",
  // Events of the pull-failure watch, on a Pod and on its resource.
  PodMissingPullSecret: "PodMissingPullSecret",
  PodRecreated: "PodRecreated",
  PullRefused: "PullRefused",
  // Cleanup (Events; SecretKeptInUse also in status.keptSecrets).
  /** A Secret with our labels that the operator did not write there (a copy): left alone. */
  SecretCopyLeftAlone: "SecretCopyLeftAlone",
  /** An adopted Secret given back on cleanup: our labels, annotations and auths entries removed, the rest kept. */
  SecretReleased: "SecretReleased",
  /** A Secret cleanup would remove that a Pod in its namespace still names: kept and refreshed. */
  SecretKeptInUse: "SecretKeptInUse",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];
