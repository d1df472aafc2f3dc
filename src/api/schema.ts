/**
 * The ECRPullSecret resource: its names and its OpenAPI v3 schema. This file is
 * the single source; `scripts/gen-api.ts` renders the CRD YAML
 * (deploy/crds/ecrcreds.io_ecrpullsecrets.yaml) and the TypeScript types
 * (types.generated.ts) from it, and a unit test fails when they are stale.
 *
 * Format checks are `pattern`s (cheap, visible to editors and `kubectl explain`);
 * rules across fields or about meaning are CEL with a message naming the field
 * and saying what to fix. Every list and string a CEL rule walks has a maximum
 * size, so the API server can bound the rule's cost.
 */

import {
  PARTITIONS,
  partitionDomains,
  REGION_SOURCE,
  REGISTRY_HOST_SHAPE_SOURCE,
  REGISTRY_HOST_SOURCE,
} from "./registry-hosts.js";

export const GROUP = "ecrcreds.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "ECRPullSecret";
export const LIST_KIND = "ECRPullSecretList";
export const PLURAL = "ecrpullsecrets";
export const SINGULAR = "ecrpullsecret";
export const SHORT_NAMES = ["ecrps"];
export const CRD_NAME = `${PLURAL}.${GROUP}`;

/** A CEL validation rule (`x-kubernetes-validations` entry). */
export interface ValidationRule {
  rule: string;
  message: string;
  /** JSONPath-like path, relative to the schema node, that the error points at. */
  fieldPath?: string;
  reason?:
    | "FieldValueInvalid"
    | "FieldValueForbidden"
    | "FieldValueRequired"
    | "FieldValueDuplicate";
}

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps this schema uses, with wire names. */
export interface SchemaProps {
  type: "object" | "array" | "string" | "integer" | "boolean";
  description?: string;
  format?: "date-time" | "int32" | "int64";
  properties?: Record<string, SchemaProps>;
  required?: string[];
  additionalProperties?: SchemaProps;
  maxProperties?: number;
  items?: SchemaProps;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  enum?: string[];
  default?: unknown;
  "x-kubernetes-validations"?: ValidationRule[];
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
}

// --- Formats shared by several fields. `pattern`s run on Go's RE2 in the API
// server and on JavaScript RegExps in our tests: keep to their common subset.

const dns1123Label = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
/** A namespace name (DNS-1123 label). */
export const NAMESPACE_NAME_PATTERN = `^${dns1123Label}$`;
/** A Secret or ServiceAccount name (DNS-1123 subdomain). */
export const DNS1123_SUBDOMAIN_PATTERN = `^${dns1123Label}(\\.${dns1123Label})*$`;
/** A namespace name in which `*` and `?` may stand for characters. */
export const NAMESPACE_GLOB_PATTERN = "^[a-z0-9*?]([-a-z0-9*?]*[a-z0-9*?])?$";
/** An AWS region of any partition: us-east-1, cn-northwest-1, us-gov-west-1, eusc-de-east-1, us-iso-east-1, ... */
export const REGION_PATTERN = `^${REGION_SOURCE}$`;
export const ACCOUNT_ID_PATTERN = "^[0-9]{12}$";
/**
 * Every ECR registry host AWS documents (standard, FIPS, dual-stack, China,
 * European Sovereign Cloud, ISO partitions, ECR Public and its dual-stack
 * host), from the one table in `src/aws/registry-host.ts`, which parses
 * exactly these.
 */
export const REGISTRY_HOST_PATTERN = REGISTRY_HOST_SOURCE;
export const ROLE_ARN_PATTERN = `^arn:(${PARTITIONS.map((p) => p.id).join("|")}):iam::[0-9]{12}:role/[\\w+=,.@/-]{1,128}$`;
// Length goes in min/maxLength: RE2 refuses repeat counts over 1000.
export const EXTERNAL_ID_PATTERN = "^[\\w+=,.@:/-]+$";
/** A Go duration without sign, e.g. 4h, 90m, 1h30m, 1.5h. */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$";
/** DURATION_PATTERN inside a CEL string literal, where a backslash needs escaping. */
const celDurationPattern = DURATION_PATTERN.replaceAll("\\", "\\\\");
/** A label key: optional DNS subdomain prefix and `/`, then a name of up to 63 characters. */
const labelKeyPattern =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
const labelValuePattern = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/** CEL: every key of a map is a label key (qualified name); `[.]` since CEL strings take no `\.`. */
const LABEL_KEYS_RULE =
  "self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))";

/**
 * Longest `namespaces` / `excludeNamespaces` list. No CEL rule walks these
 * lists, so the API server's CEL cost budget does not bound them: it accepts
 * this CRD with maxItems up to 2^31-1. What bounds them is etcd's 1.5 MiB
 * request limit: with both lists full of 63-character names, 5,000 each pass
 * `kubectl apply --server-side` (which records every item in managedFields
 * too) and 6,000 do not (scripts/measure-namespace-cap.ts). Client-side
 * `kubectl apply` copies the object into a 256 KiB annotation and stops near
 * 3,900 such names; longer lists want server-side apply or a selector.
 */
export const MAX_NAMESPACE_ENTRIES = 5_000;
export const MAX_SERVICE_ACCOUNTS = 64;
export const MAX_REGISTRIES = 32;
export const MAX_FAILURES = 20;

/** A list of namespace names or globs, bounded as spec.namespaces is. */
export const namespaceGlobList = (description: string): SchemaProps => ({
  type: "array",
  description,
  maxItems: MAX_NAMESPACE_ENTRIES,
  "x-kubernetes-list-type": "set",
  items: {
    type: "string",
    description: "A namespace name, or a glob where * matches any characters and ? one.",
    minLength: 1,
    maxLength: 63,
    pattern: NAMESPACE_GLOB_PATTERN,
  },
});

// --- Named object schemas. `TYPE_NAMES` maps each to its TypeScript
// interface; the generator names every other object after its place.

/** The name and namespace of a Secret a resource refers to. */
const secretNameAndNamespace: Record<string, SchemaProps> = {
  name: {
    type: "string",
    description: "Name of the Secret.",
    minLength: 1,
    maxLength: 253,
    pattern: DNS1123_SUBDOMAIN_PATTERN,
  },
  namespace: {
    type: "string",
    description: "Namespace of the Secret.",
    minLength: 1,
    maxLength: 63,
    pattern: NAMESPACE_NAME_PATTERN,
  },
};

export const secretReferenceSchema: SchemaProps = {
  type: "object",
  description:
    "A Secret holding AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN.",
  required: ["name", "namespace"],
  properties: secretNameAndNamespace,
};

export const MAX_SESSION_TAGS = 50;
/** The audience a ServiceAccount token for STS carries unless told otherwise. */
export const DEFAULT_WEB_IDENTITY_AUDIENCE = "sts.amazonaws.com";

export const serviceAccountReferenceSchema: SchemaProps = {
  type: "object",
  description:
    "The ServiceAccount whose token is exchanged; default: the operator's own. The operator may mint tokens only for the ServiceAccounts its RBAC names (chart value webIdentity.serviceAccounts).",
  required: ["name", "namespace"],
  properties: {
    name: {
      type: "string",
      description: "Name of the ServiceAccount.",
      minLength: 1,
      maxLength: 253,
      pattern: DNS1123_SUBDOMAIN_PATTERN,
    },
    namespace: {
      type: "string",
      description: "Namespace of the ServiceAccount.",
      minLength: 1,
      maxLength: 63,
      pattern: NAMESPACE_NAME_PATTERN,
    },
  },
};

export const webIdentitySchema: SchemaProps = {
  type: "object",
  description:
    "Web identity from the cluster's own ServiceAccount tokens: the operator asks the API server for a short-lived token (TokenRequest; never stored) and exchanges it with sts:AssumeRoleWithWebIdentity for roleArn. Needs the cluster's service-account issuer registered as an IAM OIDC provider (docs/identity.md) and RBAC create on serviceaccounts/token for the ServiceAccount.",
  required: ["roleArn"],
  properties: {
    roleArn: {
      type: "string",
      description:
        "The IAM role whose trust policy names the cluster's OIDC provider and this ServiceAccount's subject (system:serviceaccount:<namespace>:<name>).",
      maxLength: 2048,
      pattern: ROLE_ARN_PATTERN,
    },
    serviceAccount: serviceAccountReferenceSchema,
    audience: {
      type: "string",
      description: `The token's audience; must be a client ID of the IAM OIDC provider. Default: ${DEFAULT_WEB_IDENTITY_AUDIENCE}.`,
      minLength: 1,
      maxLength: 256,
    },
  },
};

// --- IAM Roles Anywhere (issue 33): an X.509 certificate from a
// kubernetes.io/tls Secret buys temporary credentials through CreateSession.

const arnPartitions = `(${PARTITIONS.map((p) => p.id).join("|")})`;
/** arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/<uuid> */
export const TRUST_ANCHOR_ARN_PATTERN = `^arn:${arnPartitions}:rolesanywhere:${REGION_SOURCE}:[0-9]{12}:trust-anchor/[a-f0-9-]{36}$`;
/** arn:aws:rolesanywhere:us-east-1:123456789012:profile/<uuid> */
export const PROFILE_ARN_PATTERN = `^arn:${arnPartitions}:rolesanywhere:${REGION_SOURCE}:[0-9]{12}:profile/[a-f0-9-]{36}$`;

export const certificateSecretReferenceSchema: SchemaProps = {
  type: "object",
  description:
    "A kubernetes.io/tls Secret (as cert-manager's Certificate writes it): tls.crt holds the certificate and its intermediates, tls.key its RSA or ECDSA private key.",
  required: ["name", "namespace"],
  properties: secretNameAndNamespace,
};

export const rolesAnywhereSchema: SchemaProps = {
  type: "object",
  description:
    "IAM Roles Anywhere: the operator signs rolesanywhere:CreateSession with the certificate and key of a kubernetes.io/tls Secret and uses the session's credentials. No AWS keys and no public OIDC issuer; the certificate must chain to the trust anchor's CA (docs/identity.md).",
  required: ["trustAnchorArn", "profileArn", "roleArn", "certificateSecretRef"],
  properties: {
    trustAnchorArn: {
      type: "string",
      description:
        "The trust anchor whose CA issued the certificate, e.g. arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/<id>.",
      maxLength: 2048,
      pattern: TRUST_ANCHOR_ARN_PATTERN,
    },
    profileArn: {
      type: "string",
      description:
        "The Roles Anywhere profile naming roleArn, in the trust anchor's region, e.g. arn:aws:rolesanywhere:us-east-1:123456789012:profile/<id>.",
      maxLength: 2048,
      pattern: PROFILE_ARN_PATTERN,
    },
    roleArn: {
      type: "string",
      description:
        "The IAM role the session is for; its trust policy must trust rolesanywhere.amazonaws.com and the profile must list it.",
      maxLength: 2048,
      pattern: ROLE_ARN_PATTERN,
    },
    sessionDuration: {
      type: "string",
      description:
        "How long each session lasts (Go duration, 15m to 12h; the profile's own limit applies). Default: 1h. Sessions are renewed before they end.",
      maxLength: 32,
      pattern: DURATION_PATTERN,
      "x-kubernetes-validations": [
        {
          rule: `!self.matches('${celDurationPattern}') || (duration(self) >= duration('15m') && duration(self) <= duration('12h'))`,
          message: "rolesAnywhere.sessionDuration must be between 15m and 12h",
        },
      ],
    },
    certificateSecretRef: certificateSecretReferenceSchema,
  },
  "x-kubernetes-validations": [
    {
      rule: "self.trustAnchorArn.split(':')[3] == self.profileArn.split(':')[3]",
      message:
        "rolesAnywhere.profileArn must be in the region of rolesAnywhere.trustAnchorArn: CreateSession is called in the trust anchor's region",
      fieldPath: ".profileArn",
    },
  ],
};

export const sessionTagSchema: SchemaProps = {
  type: "object",
  description:
    "A session tag passed with sts:AssumeRole (the role's trust policy must allow sts:TagSession).",
  required: ["key", "value"],
  properties: {
    key: {
      type: "string",
      description: "Tag key.",
      minLength: 1,
      maxLength: 128,
      pattern: "^[\\w+=,.@:/-]+$",
    },
    value: {
      type: "string",
      description: "Tag value.",
      maxLength: 256,
      pattern: "^[\\w+=,.@:/ -]*$",
    },
  },
};

export const credentialsSchema: SchemaProps = {
  type: "object",
  description:
    "Where the AWS credentials come from. Omitted: the operator-level source (its default credentials Secret, else the AWS SDK's standard chain).",
  properties: {
    secretRef: secretReferenceSchema,
    webIdentity: webIdentitySchema,
    rolesAnywhere: rolesAnywhereSchema,
    roleArn: {
      type: "string",
      description:
        "An IAM role to assume (sts:AssumeRole) on top of the base credentials, e.g. arn:aws:iam::123456789012:role/ecr-pull.",
      maxLength: 2048,
      pattern: ROLE_ARN_PATTERN,
    },
    externalId: {
      type: "string",
      description: "The external ID the role's trust policy requires; needs roleArn.",
      minLength: 2,
      maxLength: 1224,
      pattern: EXTERNAL_ID_PATTERN,
    },
    sessionTags: {
      type: "array",
      description:
        "Session tags sent with sts:AssumeRole for roleArn (attribute-based access in the role's policies); needs roleArn.",
      maxItems: MAX_SESSION_TAGS,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["key"],
      items: sessionTagSchema,
    },
  },
  "x-kubernetes-validations": [
    {
      rule: "has(self.secretRef) || has(self.webIdentity) || has(self.rolesAnywhere) || has(self.roleArn)",
      message:
        "credentials must set secretRef, webIdentity, rolesAnywhere or roleArn; omit credentials to use the operator's default source",
    },
    {
      rule: "!has(self.secretRef) || !has(self.webIdentity)",
      message:
        "credentials.secretRef and credentials.webIdentity are two different base identities: keep one (roleArn may be assumed on top of either)",
      fieldPath: ".webIdentity",
    },
    {
      rule: "!has(self.rolesAnywhere) || (!has(self.secretRef) && !has(self.webIdentity))",
      message:
        "credentials.rolesAnywhere is a base identity of its own: remove secretRef and webIdentity (roleArn may be assumed on top)",
      fieldPath: ".rolesAnywhere",
    },
    {
      rule: "!has(self.sessionTags) || has(self.roleArn)",
      message:
        "credentials.sessionTags are only sent with AssumeRole: set credentials.roleArn or remove sessionTags",
      fieldPath: ".sessionTags",
    },
    {
      rule: "!has(self.externalId) || has(self.roleArn)",
      message:
        "credentials.externalId is only sent with AssumeRole: set credentials.roleArn or remove externalId",
      fieldPath: ".externalId",
    },
  ],
};

export const registrySchema: SchemaProps = {
  type: "object",
  description:
    "One ECR registry whose credentials go into the Secret: an account (in the resource's region unless region is set) or a full host.",
  properties: {
    accountId: {
      type: "string",
      description: "The 12-digit AWS account ID owning the registry.",
      maxLength: 12,
      pattern: ACCOUNT_ID_PATTERN,
    },
    host: {
      type: "string",
      description:
        "The registry host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com; also FIPS (dkr.ecr-fips), dual-stack (123456789012.dkr-ecr.eu-west-1.on.aws), China, European Sovereign Cloud and ISO partition hosts, public.ecr.aws and ecr-public.aws.com.",
      maxLength: 128,
      pattern: REGISTRY_HOST_SHAPE_SOURCE,
    },
    region: {
      type: "string",
      description: "The registry's region, with accountId; default: spec.region.",
      maxLength: 32,
      pattern: REGION_PATTERN,
    },
    credentials: credentialsSchema,
  },
  "x-kubernetes-validations": [
    {
      rule: "has(self.accountId) != has(self.host)",
      message: "registries[] entries must set exactly one of accountId or host",
    },
    {
      rule: "!has(self.host) || !has(self.region)",
      message:
        "registries[].region goes with accountId: a host already names its region, so remove region or use accountId",
      fieldPath: ".region",
    },
    {
      // The pattern checks the shape; this checks that region and domain
      // belong together (a China region on .amazonaws.com is no registry).
      rule: `!has(self.host) || self.host.matches('${REGISTRY_HOST_SOURCE.replaceAll("\\", "\\\\")}')`,
      message: `registries[].host: the region and domain do not belong together; ECR hosts are <account>.dkr.ecr[-fips].<region>.<domain> or dual-stack <account>.dkr-ecr[-fips].<region>.<dual-stack domain>, with ${partitionDomains()}`,
      fieldPath: ".host",
    },
  ],
};

export const labelSelectorRequirementSchema: SchemaProps = {
  type: "object",
  description: "A label selector requirement: key, operator and values.",
  required: ["key", "operator"],
  properties: {
    key: {
      type: "string",
      description: "The label key the requirement applies to.",
      minLength: 1,
      maxLength: 317,
      pattern: labelKeyPattern,
    },
    operator: {
      type: "string",
      description: "How the key relates to the values.",
      enum: ["In", "NotIn", "Exists", "DoesNotExist"],
    },
    values: {
      type: "array",
      description: "Values for In and NotIn (at least one); empty for Exists and DoesNotExist.",
      maxItems: 64,
      "x-kubernetes-list-type": "atomic",
      items: { type: "string", maxLength: 63, pattern: labelValuePattern },
    },
  },
  "x-kubernetes-validations": [
    {
      rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
      message:
        "namespaceSelector.matchExpressions[].values: operators In and NotIn need at least one value; Exists and DoesNotExist take none",
      fieldPath: ".values",
    },
  ],
};

export const labelSelectorSchema: SchemaProps = {
  type: "object",
  description:
    "A label selector (metav1.LabelSelector) over namespace labels; an empty selector matches every namespace. A tenant who may label their own namespace can opt it in and receive the Secret: select on label keys only administrators may set (a prefix an admission policy protects), or list namespaces by name.",
  properties: {
    matchLabels: {
      type: "object",
      description: "Labels a namespace must have, each with exactly this value.",
      maxProperties: 64,
      additionalProperties: { type: "string", maxLength: 63, pattern: labelValuePattern },
      "x-kubernetes-validations": [
        {
          rule: LABEL_KEYS_RULE,
          message:
            "namespaceSelector.matchLabels keys must be label keys: an optional DNS subdomain prefix and '/', then up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
        },
      ],
    },
    matchExpressions: {
      type: "array",
      description: "Requirements a namespace's labels must all meet.",
      maxItems: 32,
      "x-kubernetes-list-type": "atomic",
      items: labelSelectorRequirementSchema,
    },
  },
};

/** Label and annotation keys the operator writes itself; a template may not set them. */
export const RESERVED_KEY_RULE =
  "!self.exists(k, k == 'app.kubernetes.io/managed-by' || k.startsWith('ecrcreds.io/') || k == 'argocd.argoproj.io/secret-type')";

export const MAX_TEMPLATE_ENTRIES = 32;

export const secretTemplateSchema: SchemaProps = {
  type: "object",
  description:
    "Extra labels and annotations put on every Secret the resource writes (pull, config.json and Argo CD Secrets), for tools such as Reflector, Kyverno, backup or cost tagging. The operator's own keys (app.kubernetes.io/managed-by, ecrcreds.io/*, argocd.argoproj.io/secret-type) cannot be set here.",
  properties: {
    labels: {
      type: "object",
      description: "Labels to add; a key removed from here is removed from the Secrets.",
      maxProperties: MAX_TEMPLATE_ENTRIES,
      additionalProperties: { type: "string", maxLength: 63, pattern: labelValuePattern },
      "x-kubernetes-validations": [
        {
          rule: LABEL_KEYS_RULE,
          message:
            "secretTemplate.labels keys must be label keys: an optional DNS subdomain prefix and '/', then up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
        },
        {
          rule: RESERVED_KEY_RULE,
          message:
            "secretTemplate.labels must not set app.kubernetes.io/managed-by, ecrcreds.io/* or argocd.argoproj.io/secret-type: the operator writes those itself",
        },
      ],
    },
    annotations: {
      type: "object",
      description: "Annotations to add; a key removed from here is removed from the Secrets.",
      maxProperties: MAX_TEMPLATE_ENTRIES,
      additionalProperties: { type: "string", maxLength: 4096 },
      "x-kubernetes-validations": [
        {
          rule: LABEL_KEYS_RULE,
          message:
            "secretTemplate.annotations keys must be qualified names: an optional DNS subdomain prefix and '/', then up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
        },
        {
          rule: RESERVED_KEY_RULE,
          message:
            "secretTemplate.annotations must not set app.kubernetes.io/managed-by, ecrcreds.io/* or argocd.argoproj.io/secret-type: the operator writes those itself",
        },
      ],
    },
  },
};

export const dockerConfigSecretSchema: SchemaProps = {
  type: "object",
  description:
    "An Opaque Secret with a config.json key (the Docker client's config file: {\"auths\": ...}, byte for byte the pull Secret's .dockerconfigjson) in every target namespace, for Kaniko, BuildKit, crane and helm --registry-config: mount it and point DOCKER_CONFIG at its directory.",
  required: ["name"],
  properties: {
    name: {
      type: "string",
      description: "Name of the Secret; must differ from spec.secretName.",
      minLength: 1,
      maxLength: 253,
      pattern: DNS1123_SUBDOMAIN_PATTERN,
    },
  },
};

export const argoCDSchema: SchemaProps = {
  type: "object",
  description:
    "Argo CD repository credentials for Helm charts stored in the registries as OCI artifacts: one Secret per registry host and repository type in Argo CD's namespace, with url, type, username AWS and the current password, refreshed with the pull Secrets.",
  properties: {
    namespace: {
      type: "string",
      description: "Argo CD's namespace, where it reads repository Secrets.",
      default: "argocd",
      minLength: 1,
      maxLength: 63,
      pattern: NAMESPACE_NAME_PATTERN,
    },
    secretType: {
      type: "string",
      description:
        "The argocd.argoproj.io/secret-type label: repo-creds (a credential template, matched by URL prefix: every chart under the registry) or repository (one repository, matched by exact URL).",
      enum: ["repo-creds", "repository"],
      default: "repo-creds",
    },
    repositoryTypes: {
      type: "array",
      description:
        'Argo CD repository types to write a Secret for: helm (type helm, enableOCI "true", url <host>; Application repoURL <host>/<path> with chart <name>) and/or oci (type oci, url oci://<host>, Argo CD 3.1 and later; repoURL oci://<host>/<path>/<chart>).',
      default: ["helm"],
      minItems: 1,
      maxItems: 2,
      "x-kubernetes-list-type": "set",
      items: { type: "string", enum: ["helm", "oci"] },
    },
    project: {
      type: "string",
      description:
        "An Argo CD project to scope the credentials to (the Secret's project key); default: every project.",
      minLength: 1,
      maxLength: 253,
      pattern: DNS1123_SUBDOMAIN_PATTERN,
    },
  },
};

export const specSchema: SchemaProps = {
  type: "object",
  description: "Which Secret to keep fresh, where, and for which registries.",
  required: ["secretName"],
  properties: {
    secretName: {
      type: "string",
      description:
        "Name of the kubernetes.io/dockerconfigjson Secret written in each target namespace.",
      minLength: 1,
      maxLength: 253,
      pattern: DNS1123_SUBDOMAIN_PATTERN,
    },
    namespaces: namespaceGlobList(
      "Target namespaces by name or glob (* and ?). The target set is the union with namespaceSelector.",
    ),
    namespaceSelector: labelSelectorSchema,
    excludeNamespaces: namespaceGlobList(
      "Namespaces (names or globs) removed from the target set, whatever else matches them.",
    ),
    serviceAccounts: {
      type: "array",
      description:
        'ServiceAccounts in each target namespace whose imagePullSecrets get the Secret merged in: names, ["*"] for every ServiceAccount, [] for none.',
      maxItems: MAX_SERVICE_ACCOUNTS,
      default: ["default"],
      "x-kubernetes-list-type": "set",
      items: {
        type: "string",
        minLength: 1,
        maxLength: 253,
        pattern: `^(\\*|${DNS1123_SUBDOMAIN_PATTERN.slice(1, -1)})$`,
      },
      "x-kubernetes-validations": [
        {
          rule: "!self.exists(s, s == '*') || size(self) == 1",
          message:
            'serviceAccounts: "*" means every ServiceAccount and must be the only entry; remove the other names or the "*"',
        },
      ],
    },
    serviceAccountFields: {
      type: "array",
      description:
        "Which lists of the target ServiceAccounts get the pull Secret merged in (never replacing others' entries): imagePullSecrets (Pods admitted under them pull with it) and/or secrets (Tekton reads registry credentials from the Secrets listed there).",
      default: ["imagePullSecrets"],
      minItems: 1,
      maxItems: 2,
      "x-kubernetes-list-type": "set",
      items: { type: "string", enum: ["imagePullSecrets", "secrets"] },
    },
    secretTemplate: secretTemplateSchema,
    dockerConfigSecret: dockerConfigSecretSchema,
    argoCD: argoCDSchema,
    hostVariants: {
      type: "array",
      description:
        "Which spellings of each private registry's host get an auths key (and an Argo CD Secret): Standard (<account>.dkr.ecr.<region>.amazonaws.com) and/or DualStack (<account>.dkr-ecr.<region>.on.aws), for images referenced under either. Default: each registry as spec.registries names it. China regions have no dual-stack host and keep their standard one.",
      minItems: 1,
      maxItems: 2,
      "x-kubernetes-list-type": "set",
      items: { type: "string", enum: ["Standard", "DualStack"] },
    },
    region: {
      type: "string",
      description:
        "AWS region of the registries given by accountId; default: the operator's default region.",
      maxLength: 32,
      pattern: REGION_PATTERN,
    },
    credentials: credentialsSchema,
    registries: {
      type: "array",
      description:
        "Registries whose credentials go into the Secret's auths; default: the operator's default registry, else the caller's own registry in region.",
      maxItems: MAX_REGISTRIES,
      "x-kubernetes-list-type": "atomic",
      items: registrySchema,
    },
    refreshBefore: {
      type: "string",
      description:
        "Refresh when less than this is left of the token's lifetime (Go duration, e.g. 4h); default: half the lifetime. A value not shorter than the token's real lifetime (tokens of an assumed role's session or a test endpoint may live less than 12h) is capped at half of it, said in Ready and an Event.",
      maxLength: 64,
      pattern: DURATION_PATTERN,
      "x-kubernetes-validations": [
        // Guarded by the pattern, so that a malformed value gets only the
        // pattern's error instead of a CEL conversion error on top.
        {
          rule: `!self.matches('${celDurationPattern}') || duration(self) > duration('0s')`,
          message: "refreshBefore must be a positive duration such as 4h or 90m",
        },
        {
          rule: `!self.matches('${celDurationPattern}') || duration(self) < duration('12h')`,
          message:
            "refreshBefore must be less than 12h, the longest an ECR token lives (a value not shorter than a token's real lifetime is capped at half of it); use e.g. 4h",
        },
      ],
    },
    serviceAccountRoles: {
      type: "object",
      description:
        "Pull rights per ServiceAccount (KEP-4412 semantics without node configuration): a target ServiceAccount annotated eks.amazonaws.com/ecr-role-arn gets its own Secret, made from a token fetched as that ServiceAccount (TokenRequest, then sts:AssumeRoleWithWebIdentity with the annotated role), attached to it only; IAM's trust policy decides who may pull what. One token per (role, region), shared by every ServiceAccount with that role.",
      properties: {
        unannotated: {
          type: "string",
          description:
            "What target ServiceAccounts without the annotation get: Default, the resource's own Secret (as without serviceAccountRoles); None, nothing (and the resource's own Secret is not written).",
          enum: ["Default", "None"],
          default: "Default",
        },
        audience: {
          type: "string",
          description: `The audience of the ServiceAccount tokens; default ${DEFAULT_WEB_IDENTITY_AUDIENCE}.`,
          minLength: 1,
          maxLength: 256,
        },
      },
    },
    deletionPolicy: {
      type: "string",
      description:
        "Delete: remove the Secrets and ServiceAccount references it made when the resource or a namespace leaves; Retain: leave them.",
      enum: ["Delete", "Retain"],
      default: "Delete",
    },
    adoptExisting: {
      type: "boolean",
      description: "Take over a same-named dockerconfigjson Secret it did not create.",
      default: false,
    },
    podRecovery: {
      type: "string",
      description:
        "A Pending Pod that fails to pull an image of these registries because it lacks the Secret (admitted before its ServiceAccount was patched) always gets a Warning Event and is counted in status; Recreate also deletes it, at most once per Pod and rate-limited, when a controller (ReplicaSet, StatefulSet, Job, DaemonSet) owns it, so that its replacement carries the Secret. Bare Pods are never deleted.",
      enum: ["None", "Recreate"],
      default: "None",
    },
  },
  "x-kubernetes-validations": [
    {
      rule: "(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",
      message:
        "spec must choose target namespaces: set spec.namespaces (names or globs), spec.namespaceSelector, or both",
    },
    {
      rule: "!has(self.dockerConfigSecret) || self.dockerConfigSecret.name != self.secretName",
      message:
        "dockerConfigSecret.name must differ from spec.secretName: the two are different Secrets in the same namespaces",
      fieldPath: ".dockerConfigSecret.name",
    },
  ],
};

export const conditionSchema: SchemaProps = {
  type: "object",
  description: "A metav1.Condition.",
  required: ["type", "status", "lastTransitionTime", "reason", "message"],
  properties: {
    type: {
      type: "string",
      description: "Condition type in CamelCase, e.g. Ready or Verified.",
      maxLength: 316,
      pattern:
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    },
    status: {
      type: "string",
      description: "True, False or Unknown.",
      enum: ["True", "False", "Unknown"],
    },
    observedGeneration: {
      type: "integer",
      format: "int64",
      minimum: 0,
      description: "The metadata.generation the condition was set for.",
    },
    lastTransitionTime: {
      type: "string",
      format: "date-time",
      description: "When the status last changed.",
    },
    reason: {
      type: "string",
      description: "Why, in CamelCase.",
      minLength: 1,
      maxLength: 1024,
      pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    },
    message: { type: "string", description: "Details for people.", maxLength: 32768 },
  },
};

export const namespaceCountsSchema: SchemaProps = {
  type: "object",
  description: "How many target namespaces there are and how many have a current Secret.",
  properties: {
    desired: {
      type: "integer",
      format: "int32",
      minimum: 0,
      description: "Namespaces in the target set.",
    },
    synced: {
      type: "integer",
      format: "int32",
      minimum: 0,
      description: "Target namespaces whose Secret and ServiceAccounts are up to date.",
    },
    failed: {
      type: "integer",
      format: "int32",
      minimum: 0,
      description: "Target namespaces the last pass failed to sync.",
    },
    summary: {
      type: "string",
      description: 'synced/desired, e.g. "12/12", for the NAMESPACES printer column.',
      maxLength: 32,
    },
  },
};

export const namespaceFailureSchema: SchemaProps = {
  type: "object",
  description: "A target namespace the last pass failed to sync, and why.",
  required: ["namespace", "reason"],
  properties: {
    namespace: { type: "string", description: "The namespace.", maxLength: 63 },
    reason: { type: "string", description: "Why, in CamelCase (an error code).", maxLength: 128 },
    message: { type: "string", description: "Details for people.", maxLength: 4096 },
  },
};

export const uncoveredPodSchema: SchemaProps = {
  type: "object",
  description: "A Pending Pod failing to pull an image of these registries without the Secret.",
  required: ["namespace", "name"],
  properties: {
    namespace: { type: "string", description: "The Pod's namespace.", maxLength: 63 },
    name: { type: "string", description: "The Pod's name.", maxLength: 253 },
    image: { type: "string", description: "An image it waits on.", maxLength: 4096 },
    reason: {
      type: "string",
      description: "The kubelet's waiting reason (ErrImagePull, ImagePullBackOff).",
      maxLength: 128,
    },
    recovery: {
      type: "string",
      description:
        "What the operator does about it (recreates it under spec.podRecovery: Recreate), or why it does not and what to change (a Pod template with its own imagePullSecrets, the per-owner bound, the right to delete Pods).",
      maxLength: 1024,
    },
  },
};

export const uncoveredPodsSchema: SchemaProps = {
  type: "object",
  description:
    "Pending Pods in target namespaces that fail to pull an image of these registries because they lack the Secret.",
  properties: {
    count: {
      type: "integer",
      format: "int32",
      minimum: 0,
      description: "How many there are.",
    },
    pods: {
      type: "array",
      description: `Up to ${MAX_FAILURES} of them.`,
      maxItems: MAX_FAILURES,
      "x-kubernetes-list-type": "atomic",
      items: uncoveredPodSchema,
    },
  },
};

export const keptSecretSchema: SchemaProps = {
  type: "object",
  description:
    "A Secret cleanup would remove (an old secretName, a namespace that left the targets) that Pods in its namespace still name in imagePullSecrets: kept and refreshed until none does.",
  required: ["namespace", "name", "pods"],
  properties: {
    namespace: { type: "string", description: "The Secret's namespace.", maxLength: 63 },
    name: { type: "string", description: "The Secret's name.", maxLength: 253 },
    pods: {
      type: "integer",
      format: "int32",
      minimum: 1,
      description: "How many Pods there name it.",
    },
    message: { type: "string", description: "Why, for people.", maxLength: 1024 },
  },
};

export const registryTokenStatusSchema: SchemaProps = {
  type: "object",
  description:
    "One registry of the Secret: whether its entry is current, and if not why; a registry whose token source fails keeps its previous entry.",
  required: ["registry", "current"],
  properties: {
    registry: { type: "string", description: "The registry host (its auths key).", maxLength: 128 },
    current: {
      type: "boolean",
      description:
        "The entry holds a token of the last successful fetch and its source is not failing.",
    },
    tokenExpiresAt: {
      type: "string",
      format: "date-time",
      description: "When this registry's token in the Secrets expires.",
    },
    nextRefreshTime: {
      type: "string",
      format: "date-time",
      description: "When this registry's token source next fetches.",
    },
    reason: {
      type: "string",
      description: "Why the entry is not current (the fetch's error code).",
      maxLength: 128,
    },
    message: { type: "string", description: "Details for people.", maxLength: 1024 },
  },
};

/** A status's `observedGeneration`, as every kind of ours has it. */
export const observedGenerationSchema: SchemaProps = {
  type: "integer",
  format: "int64",
  minimum: 0,
  description: "The metadata.generation this status describes.",
};

/** A status's `conditions`: a list map keyed by type (`description` says which). */
export function conditionsSchema(description: string): SchemaProps {
  return {
    type: "array",
    description,
    maxItems: 16,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    items: conditionSchema,
  };
}

export const statusSchema: SchemaProps = {
  type: "object",
  description: "What the operator last did and saw; written only by the operator.",
  properties: {
    observedGeneration: observedGenerationSchema,
    conditions: conditionsSchema(
      "Ready (and Verified when the registry check runs), with the reason when not true.",
    ),
    registries: {
      type: "array",
      description: "The registry hosts in the Secret's auths.",
      // Each registry under up to two spellings (hostVariants), plus the default.
      maxItems: 2 * MAX_REGISTRIES + 1,
      "x-kubernetes-list-type": "atomic",
      items: { type: "string", maxLength: 128 },
    },
    registryStatus: {
      type: "array",
      description:
        "Per registry: whether its entry is current; one failing token source does not hold back the others.",
      maxItems: MAX_REGISTRIES + 1,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["registry"],
      items: registryTokenStatusSchema,
    },
    tokenExpiresAt: {
      type: "string",
      format: "date-time",
      description: "When the token in the Secrets expires.",
    },
    lastRefreshTime: {
      type: "string",
      format: "date-time",
      description: "When the token was last fetched.",
    },
    nextRefreshTime: {
      type: "string",
      format: "date-time",
      description: "When the next refresh is due.",
    },
    namespaces: namespaceCountsSchema,
    failures: {
      type: "array",
      description: `Up to ${MAX_FAILURES} namespaces the last pass failed to sync.`,
      maxItems: MAX_FAILURES,
      "x-kubernetes-list-type": "atomic",
      items: namespaceFailureSchema,
    },
    uncoveredPods: uncoveredPodsSchema,
    keptSecrets: {
      type: "array",
      description: `Up to ${MAX_FAILURES} Secrets kept only because Pods still name them.`,
      maxItems: MAX_FAILURES,
      "x-kubernetes-list-type": "atomic",
      items: keptSecretSchema,
    },
  },
};

export const ecrPullSecretSchema: SchemaProps = {
  type: "object",
  description:
    "ECRPullSecret keeps a kubernetes.io/dockerconfigjson Secret with fresh Amazon ECR credentials in every target namespace and merges it into their ServiceAccounts' imagePullSecrets.",
  required: ["spec"],
  properties: {
    apiVersion: { type: "string", description: "ecrcreds.io/v1alpha1." },
    kind: { type: "string", description: "ECRPullSecret." },
    metadata: { type: "object" },
    spec: specSchema,
    status: statusSchema,
  },
  "x-kubernetes-validations": [
    {
      // The name is the value of the owner label on every Secret it writes.
      // No fieldPath: the API server accepts none into metadata.
      rule: "size(self.metadata.name) <= 63",
      message:
        "metadata.name must be at most 63 characters: it is stored as a label value on the Secrets it writes",
    },
  ],
};

/** TypeScript interface names of the named object schemas (by identity). */
export const TYPE_NAMES: ReadonlyMap<SchemaProps, string> = new Map([
  [ecrPullSecretSchema, "ECRPullSecret"],
  [specSchema, "ECRPullSecretSpec"],
  [statusSchema, "ECRPullSecretStatus"],
  [credentialsSchema, "CredentialsSpec"],
  [secretReferenceSchema, "SecretReference"],
  [serviceAccountReferenceSchema, "ServiceAccountReference"],
  [webIdentitySchema, "WebIdentitySpec"],
  [rolesAnywhereSchema, "RolesAnywhereSpec"],
  [certificateSecretReferenceSchema, "CertificateSecretReference"],
  [sessionTagSchema, "SessionTag"],
  [registrySchema, "RegistrySpec"],
  [secretTemplateSchema, "SecretTemplate"],
  [dockerConfigSecretSchema, "DockerConfigSecretSpec"],
  [argoCDSchema, "ArgoCDSpec"],
  [labelSelectorSchema, "LabelSelector"],
  [labelSelectorRequirementSchema, "LabelSelectorRequirement"],
  [conditionSchema, "Condition"],
  [namespaceCountsSchema, "NamespaceCounts"],
  [namespaceFailureSchema, "NamespaceFailure"],
  [uncoveredPodsSchema, "UncoveredPods"],
  [uncoveredPodSchema, "UncoveredPod"],
  [registryTokenStatusSchema, "RegistryTokenStatus"],
  [keptSecretSchema, "KeptSecret"],
]);

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "date" | "boolean";
  jsonPath: string;
  description?: string;
  priority?: number;
}

export const PRINTER_COLUMNS: PrinterColumn[] = [
  {
    name: "Ready",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: "Whether every target namespace has a current Secret.",
  },
  {
    name: "Secret",
    type: "string",
    jsonPath: ".spec.secretName",
    description: "The Secret's name.",
  },
  {
    name: "Namespaces",
    type: "string",
    jsonPath: ".status.namespaces.summary",
    description: "Synced/desired target namespaces.",
  },
  {
    name: "Expires",
    // string, not date: kubectl prints a future date column as "<invalid>".
    type: "string",
    jsonPath: ".status.tokenExpiresAt",
    description: "When the token in the Secrets expires.",
  },
  {
    name: "Reason",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
    description: "Why Ready is what it is.",
    priority: 1,
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

/** The CustomResourceDefinition (apiextensions.k8s.io/v1) as a plain object. */
export function crdManifest() {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: CRD_NAME,
      labels: { "app.kubernetes.io/name": "ecr-creds-refresher" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: LIST_KIND,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: ["ecrcreds"],
      },
      scope: "Cluster",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS,
          schema: { openAPIV3Schema: ecrPullSecretSchema },
        },
      ],
    },
  };
}
