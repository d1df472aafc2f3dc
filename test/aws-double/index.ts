export {
  AwsDouble,
  ECR_PUBLIC_TARGET_PREFIX,
  ECR_TARGET_PREFIX,
  POD_IDENTITY_PATH,
} from "./aws-double.js";
export {
  type ProfileInit,
  RolesAnywhereDouble,
  type TrustAnchorInit,
} from "./roles-anywhere.js";
export type * from "./types.js";
export { issuerThumbprint } from "./web-identity.js";
