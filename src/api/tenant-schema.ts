/**
 * The two kinds that let tenants serve themselves (issue 31), beside the
 * cluster-scoped ECRPullSecret of schema.ts:
 *
 * - ClusterECRCredentialSource (cluster-scoped): credentials an administrator
 *   offers, the registries they may serve, and which namespaces may use them
 *   (External Secrets' ClusterSecretStore `conditions`).
 * - ECRPullSecretClaim (namespaced): a team's pull Secret in its own
 *   namespace, over an offered source (`sourceRef`) or credentials of its own
 *   in that namespace. PersistentVolumeClaim over PersistentVolume is the
 *   analogy; docs/api.md says why these names.
 *
 * A claim reaches nothing outside its namespace: every field that would
 * (target namespaces, a `namespace` in a reference, a registry's own
 * credentials) is in the schema only so that a CEL rule can refuse it with a
 * message naming the field, instead of the API server pruning it silently
 * from a spec copied from an ECRPullSecret.
 *
 * `scripts/gen-api.ts` renders the CRDs and the TypeScript types from this
 * module, which re-exports schema.ts.
 */

import {
  API_VERSION,
  argoCDSchema,
  conditionsSchema,
  crdManifest,
  credentialsSchema,
  DNS1123_SUBDOMAIN_PATTERN,
  dockerConfigSecretSchema,
  GROUP,
  labelSelectorSchema,
  MAX_REGISTRIES,
  NAMESPACE_NAME_PATTERN,
  namespaceGlobList,
  observedGenerationSchema,
  PRINTER_COLUMNS,
  type PrinterColumn,
  REGION_PATTERN,
  registrySchema,
  rolesAnywhereSchema,
  type SchemaProps,
  secretTemplateSchema,
  specSchema,
  statusSchema,
  TYPE_NAMES,
  type ValidationRule,
  VERSION,
  webIdentitySchema,
} from "./schema.js";

export * from "./schema.js";

export const SOURCE_KIND = "ClusterECRCredentialSource";
export const SOURCE_LIST_KIND = "ClusterECRCredentialSourceList";
export const SOURCE_PLURAL = "clusterecrcredentialsources";
export const SOURCE_SINGULAR = "clusterecrcredentialsource";
export const SOURCE_SHORT_NAMES = ["ecrsource"];
export const SOURCE_CRD_NAME = `${SOURCE_PLURAL}.${GROUP}`;

export const CLAIM_KIND = "ECRPullSecretClaim";
export const CLAIM_LIST_KIND = "ECRPullSecretClaimList";
export const CLAIM_PLURAL = "ecrpullsecretclaims";
export const CLAIM_SINGULAR = "ecrpullsecretclaim";
export const CLAIM_SHORT_NAMES = ["ecrclaim"];
export const CLAIM_CRD_NAME = `${CLAIM_PLURAL}.${GROUP}`;

/** The features a source may allow its claims; none by default. */
export const CLAIM_FEATURES = ["ArgoCD", "AdoptExisting", "PodRecoveryRecreate"] as const;
export type ClaimFeature = (typeof CLAIM_FEATURES)[number];

/** Longest `conditions` list of a source. */
export const MAX_SOURCE_CONDITIONS = 32;

// --- ClusterECRCredentialSource ------------------------------------------------

export const sourceNamespaceConditionSchema: SchemaProps = {
  type: "object",
  description:
    "Namespaces that may use the source: those whose name matches one of namespaces (names or globs), and those whose labels namespaceSelector matches. A namespace may use the source if any entry of conditions matches it. A tenant who may label their own namespace can opt it into a selector: select on label keys only administrators may set, or list namespaces by name.",
  properties: {
    namespaces: namespaceGlobList(
      "Namespaces by name or glob (* and ?) whose claims may use the source.",
    ),
    namespaceSelector: labelSelectorSchema,
  },
  "x-kubernetes-validations": [
    {
      rule: "has(self.namespaces) || has(self.namespaceSelector)",
      message:
        "conditions[] entries must set namespaces or namespaceSelector; to offer the source to every namespace use namespaceSelector: {}",
    },
  ],
};

export const sourceSpecSchema: SchemaProps = {
  type: "object",
  description:
    "Credentials an administrator offers to ECRPullSecretClaims, the registries they may serve, and which namespaces may use them.",
  properties: {
    credentials: credentialsSchema,
    region: {
      type: "string",
      description:
        "AWS region of the registries given by accountId; default: the operator's default region.",
      maxLength: 32,
      pattern: REGION_PATTERN,
    },
    registries: {
      type: "array",
      description:
        "The registries claims over this source may ask for, and what a claim without spec.registries gets (all of them); default: the operator's default registry, else the caller's own registry in region.",
      maxItems: MAX_REGISTRIES,
      "x-kubernetes-list-type": "atomic",
      items: registrySchema,
    },
    conditions: {
      type: "array",
      description:
        "Which namespaces' ECRPullSecretClaims may use this source: a namespace may if any entry matches it. Absent or empty: no namespace may (an administrator opts namespaces in).",
      maxItems: MAX_SOURCE_CONDITIONS,
      "x-kubernetes-list-type": "atomic",
      items: sourceNamespaceConditionSchema,
    },
    allowedFeatures: {
      type: "array",
      description:
        "What claims over this source may also ask for, each reaching beyond the claim's own Secret: ArgoCD (spec.argoCD writes repository Secrets in Argo CD's namespace, argocd), AdoptExisting (spec.adoptExisting takes over a same-named Secret), PodRecoveryRecreate (spec.podRecovery: Recreate deletes Pods). Default: none.",
      maxItems: CLAIM_FEATURES.length,
      "x-kubernetes-list-type": "set",
      items: { type: "string", enum: [...CLAIM_FEATURES] },
    },
  },
};

export const sourceStatusSchema: SchemaProps = {
  type: "object",
  description: "What the operator last saw of the source; written only by the operator.",
  properties: {
    observedGeneration: observedGenerationSchema,
    conditions: conditionsSchema("Ready, with the reason when not true."),
  },
};

export const clusterECRCredentialSourceSchema: SchemaProps = {
  type: "object",
  description:
    "ClusterECRCredentialSource offers AWS credentials for Amazon ECR to the ECRPullSecretClaims of the namespaces its conditions allow: one token per source, shared by every claim over it.",
  required: ["spec"],
  properties: {
    apiVersion: { type: "string", description: `${API_VERSION}.` },
    kind: { type: "string", description: `${SOURCE_KIND}.` },
    metadata: { type: "object" },
    spec: sourceSpecSchema,
    status: sourceStatusSchema,
  },
};

// --- ECRPullSecretClaim ---------------------------------------------------------

const refused = (field: string, why: string, fieldPath: string): ValidationRule => ({
  rule: `!has(self.${fieldPath.slice(1)})`,
  message: `${field} is not allowed in an ECRPullSecretClaim: ${why}`,
  fieldPath,
  reason: "FieldValueForbidden",
});

/** A reference by name to an object in the claim's own namespace; a `namespace` is refused. */
function localReference(description: string, field: string, kind: string): SchemaProps {
  return {
    type: "object",
    description: `${description} In an ECRPullSecretClaim it is in the claim's own namespace.`,
    required: ["name"],
    properties: {
      name: {
        type: "string",
        description: `Name of the ${kind}.`,
        minLength: 1,
        maxLength: 253,
        pattern: DNS1123_SUBDOMAIN_PATTERN,
      },
      namespace: {
        type: "string",
        description: "Not allowed: a claim reads only its own namespace.",
        maxLength: 63,
        pattern: NAMESPACE_NAME_PATTERN,
      },
    },
    "x-kubernetes-validations": [
      refused(
        `${field}.namespace`,
        `the ${kind} is read in the claim's own namespace; remove namespace (an administrator offers credentials of other namespaces through a ClusterECRCredentialSource)`,
        ".namespace",
      ),
    ],
  };
}

export const claimSecretReferenceSchema = localReference(
  "A Secret holding AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN.",
  "credentials.secretRef",
  "Secret",
);

export const claimServiceAccountReferenceSchema = localReference(
  "The ServiceAccount whose token is exchanged (the operator may mint tokens only for the ServiceAccounts its RBAC names: chart value webIdentity.serviceAccounts).",
  "credentials.webIdentity.serviceAccount",
  "ServiceAccount",
);

export const claimCertificateSecretReferenceSchema = localReference(
  "A kubernetes.io/tls Secret with the certificate (tls.crt) and its key (tls.key).",
  "credentials.rolesAnywhere.certificateSecretRef",
  "Secret",
);

export const claimWebIdentitySchema: SchemaProps = {
  ...webIdentitySchema,
  required: ["roleArn", "serviceAccount"],
  properties: {
    ...webIdentitySchema.properties,
    serviceAccount: claimServiceAccountReferenceSchema,
  },
};

export const claimRolesAnywhereSchema: SchemaProps = {
  ...rolesAnywhereSchema,
  properties: {
    ...rolesAnywhereSchema.properties,
    certificateSecretRef: claimCertificateSecretReferenceSchema,
  },
};

export const claimCredentialsSchema: SchemaProps = {
  type: "object",
  description:
    "Credentials of the claim's own, all in its namespace: a Secret of keys, the web identity of a ServiceAccount, or a Roles Anywhere certificate; a role may be assumed on top.",
  properties: {
    ...credentialsSchema.properties,
    secretRef: claimSecretReferenceSchema,
    webIdentity: claimWebIdentitySchema,
    rolesAnywhere: claimRolesAnywhereSchema,
  },
  "x-kubernetes-validations": [
    {
      rule: "has(self.secretRef) || has(self.webIdentity) || has(self.rolesAnywhere)",
      message:
        "credentials of an ECRPullSecretClaim must set secretRef, webIdentity or rolesAnywhere in its own namespace: roleArn alone would start from the operator's own identity, which only an administrator may offer (use spec.sourceRef)",
    },
    // The ECRPullSecret's rules on combining them, except the first (a base or a role).
    ...(credentialsSchema["x-kubernetes-validations"] ?? []).slice(1),
  ],
};

export const sourceReferenceSchema: SchemaProps = {
  type: "object",
  description:
    "The ClusterECRCredentialSource whose credentials the claim uses (External Secrets' secretStoreRef shape).",
  required: ["name"],
  properties: {
    kind: {
      type: "string",
      description: "The kind of source.",
      enum: [SOURCE_KIND],
      default: SOURCE_KIND,
    },
    name: {
      type: "string",
      description: "The source's name.",
      minLength: 1,
      maxLength: 253,
      pattern: DNS1123_SUBDOMAIN_PATTERN,
    },
  },
};

export const claimRegistrySchema: SchemaProps = {
  ...registrySchema,
  description:
    "One ECR registry whose credentials go into the Secret: an account (in the region of the source or of spec.region unless region is set) or a full host. Over a source, it must be one the source lists.",
  "x-kubernetes-validations": [
    ...(registrySchema["x-kubernetes-validations"] ?? []),
    refused(
      "registries[].credentials",
      "every registry uses the claim's spec.credentials or its source's; remove credentials",
      ".credentials",
    ),
  ],
};

export const claimArgoCDSchema: SchemaProps = {
  ...argoCDSchema,
  description: `${argoCDSchema.description} In an ECRPullSecretClaim: only when its source allows the feature ArgoCD, in Argo CD's namespace argocd.`,
  properties: {
    ...argoCDSchema.properties,
    namespace: {
      type: "string",
      description: "Not allowed: Argo CD's namespace is not the claim's to choose.",
      maxLength: 63,
      pattern: NAMESPACE_NAME_PATTERN,
    },
  },
  "x-kubernetes-validations": [
    refused(
      "argoCD.namespace",
      "Argo CD's namespace is not the claim's to choose; remove namespace (a source that allows ArgoCD writes to argocd)",
      ".namespace",
    ),
  ],
};

const ecr = specSchema.properties ?? {};
// Present: the structural tests of schema.test.ts walk every node and find a missing one.
const copied = (key: string): SchemaProps => ecr[key] as SchemaProps;

export const claimSpecSchema: SchemaProps = {
  type: "object",
  description:
    "Which Secret to keep fresh in the claim's own namespace, for which registries, with whose credentials.",
  required: ["secretName"],
  properties: {
    secretName: {
      ...copied("secretName"),
      description: "Name of the kubernetes.io/dockerconfigjson Secret written in this namespace.",
    },
    sourceRef: sourceReferenceSchema,
    credentials: claimCredentialsSchema,
    region: {
      ...copied("region"),
      description:
        "With spec.credentials: AWS region of the registries given by accountId; default: the operator's default region. Over a source, the source's region applies.",
    },
    registries: {
      type: "array",
      description:
        "Registries whose credentials go into the Secret's auths. Over a source: some of the source's registries (default: all of them); with spec.credentials: any (default: the operator's default registry, else the caller's own registry in region).",
      maxItems: MAX_REGISTRIES,
      "x-kubernetes-list-type": "atomic",
      items: claimRegistrySchema,
    },
    serviceAccounts: copied("serviceAccounts"),
    serviceAccountFields: copied("serviceAccountFields"),
    secretTemplate: secretTemplateSchema,
    dockerConfigSecret: dockerConfigSecretSchema,
    hostVariants: copied("hostVariants"),
    refreshBefore: copied("refreshBefore"),
    deletionPolicy: copied("deletionPolicy"),
    argoCD: claimArgoCDSchema,
    adoptExisting: {
      ...copied("adoptExisting"),
      description: `${copied("adoptExisting").description} Only when the source allows the feature AdoptExisting.`,
    },
    podRecovery: {
      ...copied("podRecovery"),
      description: `${copied("podRecovery").description} Recreate only when the source allows the feature PodRecoveryRecreate.`,
    },
    // In the schema only to be refused by name (see the rules below).
    namespaces: namespaceGlobList("Not allowed: a claim serves its own namespace only."),
    namespaceSelector: {
      ...labelSelectorSchema,
      description: "Not allowed: a claim serves its own namespace only.",
    },
    excludeNamespaces: namespaceGlobList("Not allowed: a claim serves its own namespace only."),
  },
  "x-kubernetes-validations": [
    {
      rule: "has(self.sourceRef) != has(self.credentials)",
      message:
        "spec must set exactly one of sourceRef (credentials an administrator offers in a ClusterECRCredentialSource) or credentials (a Secret, ServiceAccount or certificate in this namespace)",
    },
    refused(
      "spec.namespaces",
      "a claim serves its own namespace only; remove it (an administrator's ECRPullSecret serves several namespaces)",
      ".namespaces",
    ),
    refused(
      "spec.namespaceSelector",
      "a claim serves its own namespace only; remove it (an administrator's ECRPullSecret serves several namespaces)",
      ".namespaceSelector",
    ),
    refused(
      "spec.excludeNamespaces",
      "a claim serves its own namespace only; remove it",
      ".excludeNamespaces",
    ),
    {
      rule: "!has(self.region) || has(self.credentials)",
      message:
        "spec.region goes with spec.credentials: over spec.sourceRef the source's region applies; remove spec.region (a registry entry may name its own region)",
      fieldPath: ".region",
    },
    {
      rule: "!has(self.dockerConfigSecret) || self.dockerConfigSecret.name != self.secretName",
      message:
        "dockerConfigSecret.name must differ from spec.secretName: the two are different Secrets in the same namespace",
      fieldPath: ".dockerConfigSecret.name",
    },
  ],
};

export const ecrPullSecretClaimSchema: SchemaProps = {
  type: "object",
  description:
    "ECRPullSecretClaim keeps a kubernetes.io/dockerconfigjson Secret with fresh Amazon ECR credentials in its own namespace and merges it into that namespace's ServiceAccounts' imagePullSecrets, with credentials an administrator offers (a ClusterECRCredentialSource) or of its own.",
  required: ["spec"],
  properties: {
    apiVersion: { type: "string", description: `${API_VERSION}.` },
    kind: { type: "string", description: `${CLAIM_KIND}.` },
    metadata: { type: "object" },
    spec: claimSpecSchema,
    status: statusSchema,
  },
};

/** TypeScript interface names of every named object schema, the ECRPullSecret's and these. */
export const ALL_TYPE_NAMES: ReadonlyMap<SchemaProps, string> = new Map([
  ...TYPE_NAMES,
  [clusterECRCredentialSourceSchema, "ClusterECRCredentialSource"],
  [sourceSpecSchema, "ClusterECRCredentialSourceSpec"],
  [sourceStatusSchema, "ClusterECRCredentialSourceStatus"],
  [sourceNamespaceConditionSchema, "SourceNamespaceCondition"],
  [ecrPullSecretClaimSchema, "ECRPullSecretClaim"],
  [claimSpecSchema, "ECRPullSecretClaimSpec"],
  [sourceReferenceSchema, "SourceReference"],
  [claimCredentialsSchema, "ClaimCredentialsSpec"],
  [claimSecretReferenceSchema, "ClaimSecretReference"],
  [claimServiceAccountReferenceSchema, "ClaimServiceAccountReference"],
  [claimCertificateSecretReferenceSchema, "ClaimCertificateSecretReference"],
  [claimWebIdentitySchema, "ClaimWebIdentitySpec"],
  [claimRolesAnywhereSchema, "ClaimRolesAnywhereSpec"],
  [claimRegistrySchema, "ClaimRegistrySpec"],
  [claimArgoCDSchema, "ClaimArgoCDSpec"],
]);

export const SOURCE_PRINTER_COLUMNS: PrinterColumn[] = [
  {
    name: "Region",
    type: "string",
    jsonPath: ".spec.region",
    description: "The region of the registries given by accountId.",
  },
  {
    name: "Ready",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: "Whether the source's credentials work.",
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

/** The ECRPullSecret's columns, with the claim's source after its Secret. */
export const CLAIM_PRINTER_COLUMNS: PrinterColumn[] = PRINTER_COLUMNS.flatMap((c) =>
  c.name === "Secret"
    ? [
        c,
        {
          name: "Source",
          type: "string" as const,
          jsonPath: ".spec.sourceRef.name",
          description: "The ClusterECRCredentialSource it uses (empty: its own credentials).",
        },
      ]
    : [c],
);

function crd(
  names: { kind: string; listKind: string; plural: string; singular: string; short: string[] },
  scope: string,
  schema: SchemaProps,
  columns: PrinterColumn[],
) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${names.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/name": "ecr-creds-refresher" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: names.listKind,
        plural: names.plural,
        singular: names.singular,
        shortNames: [...names.short],
        categories: ["ecrcreds"],
      },
      scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

/** The ClusterECRCredentialSource CRD (apiextensions.k8s.io/v1) as a plain object. */
export function sourceCrdManifest() {
  return crd(
    {
      kind: SOURCE_KIND,
      listKind: SOURCE_LIST_KIND,
      plural: SOURCE_PLURAL,
      singular: SOURCE_SINGULAR,
      short: SOURCE_SHORT_NAMES,
    },
    "Cluster",
    clusterECRCredentialSourceSchema,
    SOURCE_PRINTER_COLUMNS,
  );
}

/** The ECRPullSecretClaim CRD (apiextensions.k8s.io/v1) as a plain object. */
export function claimCrdManifest() {
  return crd(
    {
      kind: CLAIM_KIND,
      listKind: CLAIM_LIST_KIND,
      plural: CLAIM_PLURAL,
      singular: CLAIM_SINGULAR,
      short: CLAIM_SHORT_NAMES,
    },
    "Namespaced",
    ecrPullSecretClaimSchema,
    CLAIM_PRINTER_COLUMNS,
  );
}

/** Every CRD of the API, ECRPullSecret first, each with the file name it is rendered to. */
export function crdManifests(): Array<{ file: string; manifest: ReturnType<typeof crd> }> {
  return [crdManifest(), sourceCrdManifest(), claimCrdManifest()].map((manifest) => ({
    file: `${GROUP}_${manifest.spec.names.plural}.yaml`,
    manifest,
  }));
}
