// The ECRPullSecret API: generated types and names, the CRD, and the parsing
// the operator shares with the schema's rules.
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
  NAMESPACE_GLOB_PATTERN,
  NAMESPACE_NAME_PATTERN,
  REGION_PATTERN,
  REGISTRY_HOST_PATTERN,
  ROLE_ARN_PATTERN,
  SHORT_NAMES,
} from "./schema.js";
export * from "./types.generated.js";
export { parseDuration } from "./validate.js";
