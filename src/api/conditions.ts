// The condition types of an ECRPullSecret's status and every reason the
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
  WriteFailed: "WriteFailed",
  ServiceAccountConflict: "ServiceAccountConflict",
  CredentialsSecretNotFound: "CredentialsSecretNotFound",
  CredentialsSecretInvalid: "CredentialsSecretInvalid",
  CredentialsInvalid: "CredentialsInvalid",
  AccessDenied: "AccessDenied",
  RoleNotAssumable: "RoleNotAssumable",
  RegionUnknown: "RegionUnknown",
  TokenRefreshFailed: "TokenRefreshFailed",
  TokenExpiredOnArrival: "TokenExpiredOnArrival",
  InvalidSpec: "InvalidSpec",
  TokenRefreshed: "TokenRefreshed",
  Verified: "Verified",
  VerificationFailed: "VerificationFailed",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];
