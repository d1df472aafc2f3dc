export {
  buildChart,
  buildImage,
  type ChartArtifact,
  HELM_MEDIA_TYPES,
  type ManifestFormat,
  MEDIA_TYPES,
  sha256Digest,
} from "./image.js";
export {
  type AuthAttempt,
  type PasswordValidator,
  type RegistryAddress,
  RegistryDouble,
  type RegistryDoubleOptions,
} from "./registry-double.js";
export { type SelfSignedCertificate, selfSignedCertificate } from "./self-signed.js";
