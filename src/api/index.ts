// The API: generated types and names of ECRPullSecret, ClusterECRCredentialSource
// and ECRPullSecretClaim, the CRDs, and the parsing the operator shares with
// the schema's rules.
export {
  ACCOUNT_ID_PATTERN,
  CRD_NAME,
  crdManifest,
  DNS1123_SUBDOMAIN_PATTERN,
  DURATION_PATTERN,
  EXTERNAL_ID_PATTERN,
  MAX_FAILURES,
  MAX_NAMESPACE_ENTRIES,
  MAX_REGISTRIES,
  MAX_SERVICE_ACCOUNTS,
  MAX_TEMPLATE_ENTRIES,
  NAMESPACE_GLOB_PATTERN,
  NAMESPACE_NAME_PATTERN,
  REGION_PATTERN,
  REGISTRY_HOST_PATTERN,
  ROLE_ARN_PATTERN,
  SHORT_NAMES,
} from "./schema.js";
export {
  CLAIM_CRD_NAME,
  CLAIM_FEATURES,
  CLAIM_SHORT_NAMES,
  type ClaimFeature,
  claimCrdManifest,
  crdManifests,
  SOURCE_CRD_NAME,
  SOURCE_SHORT_NAMES,
  sourceCrdManifest,
} from "./tenant-schema.js";
export * from "./types.generated.js";

import type { ResourceType } from "../kube/client.js";
import {
  CLAIM_KIND,
  CLAIM_PLURAL,
  type ECRPullSecretSpec,
  GROUP,
  KIND,
  PLURAL,
  SOURCE_KIND,
  SOURCE_PLURAL,
  VERSION,
} from "./types.generated.js";

/** Where the resource lives in the API, for the Kubernetes client. */
export const ECR_PULL_SECRETS: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: KIND,
  plural: PLURAL,
  namespaced: false,
};

/** Where the administrators' ClusterECRCredentialSources live in the API. */
export const CREDENTIAL_SOURCES: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: SOURCE_KIND,
  plural: SOURCE_PLURAL,
  namespaced: false,
};

/** Where the tenants' ECRPullSecretClaims live in the API. */
export const PULL_SECRET_CLAIMS: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: CLAIM_KIND,
  plural: CLAIM_PLURAL,
  namespaced: true,
};

/** What happens to the Secrets and references a resource made when it no longer wants them. */
export type DeletionPolicy = NonNullable<ECRPullSecretSpec["deletionPolicy"]>;

/** A resource's deletion policy, with the default filled in. */
export function deletionPolicy(spec: Pick<ECRPullSecretSpec, "deletionPolicy">): DeletionPolicy {
  return spec.deletionPolicy ?? "Delete";
}
export { parseDuration } from "./validate.js";
