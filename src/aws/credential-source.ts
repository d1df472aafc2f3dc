// What a credentials source is: one base identity (keys in a Secret, web
// identity from a ServiceAccount token, IAM Roles Anywhere with a
// certificate, or the AWS SDK's default chain) and, on top of it, an optional
// role assumed through STS. registries.ts builds it from a spec, once; every
// place that acts on the kind switches over it exhaustively (assertNever), so
// a new kind makes tsc list each place that must handle it: its key here, its
// wording here, the Secret it reads here, its credentials in credentials.ts,
// the account it is charged to in quota.ts (and, when the base identity is
// made of something in the cluster, the watch in controller/credential-watchers.ts).
import { DEFAULT_WEB_IDENTITY_AUDIENCE } from "../api/schema.js";
import { assertNever } from "../kube/never.js";
import type { ServiceAccountRef } from "../kube/service-account-token.js";
import {
  DEFAULT_SESSION_SECONDS,
  describeSecret,
  type RolesAnywhereRef,
} from "./roles-anywhere.js";

export interface SecretRef {
  namespace: string;
  name: string;
}

/** Web identity from a ServiceAccount token of this cluster. */
export interface WebIdentityRef {
  roleArn: string;
  /** Whose token; absent: the operator's own ServiceAccount. */
  serviceAccount?: ServiceAccountRef;
  /** Default DEFAULT_WEB_IDENTITY_AUDIENCE. */
  audience?: string;
}

/** A role assumed on top of the base identity (STS AssumeRole). */
export interface AssumedRole {
  roleArn: string;
  externalId?: string;
  /** Sent with the AssumeRole; key → value. */
  sessionTags?: Record<string, string>;
}

interface OptionalRole {
  /** A role assumed with the base identity's credentials; absent: the base identity fetches. */
  role?: AssumedRole;
}

/** Static keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) in a Secret. */
export interface SecretKeysSource extends OptionalRole {
  kind: "secretKeys";
  secretRef: SecretRef;
}

/** AssumeRoleWithWebIdentity with a ServiceAccount token the operator requests. */
export interface WebIdentitySource extends OptionalRole {
  kind: "webIdentity";
  webIdentity: WebIdentityRef;
}

/** IAM Roles Anywhere CreateSession with the certificate of a kubernetes.io/tls Secret. */
export interface RolesAnywhereSource extends OptionalRole {
  kind: "rolesAnywhere";
  rolesAnywhere: RolesAnywhereRef;
}

/** The AWS SDK's default chain (environment, shared config, IRSA, Pod Identity, IMDS). */
export interface DefaultChainSource extends OptionalRole {
  kind: "defaultChain";
}

/** One credentials source, as a resource, a registry entry or the operator's defaults name it. */
export type CredentialSource =
  | SecretKeysSource
  | WebIdentitySource
  | RolesAnywhereSource
  | DefaultChainSource;

/** Which base identity a source has. */
export type CredentialSourceKind = CredentialSource["kind"];

function baseKey(source: CredentialSource): string {
  switch (source.kind) {
    case "secretKeys":
      return `secret:${source.secretRef.namespace}/${source.secretRef.name}`;
    case "webIdentity": {
      const w = source.webIdentity;
      const sa = w.serviceAccount
        ? `${w.serviceAccount.namespace}/${w.serviceAccount.name}`
        : "self";
      return `web:${sa}|${w.roleArn}|aud:${w.audience ?? DEFAULT_WEB_IDENTITY_AUDIENCE}`;
    }
    case "rolesAnywhere": {
      const r = source.rolesAnywhere;
      const s = r.certificateSecret;
      return `ra:${s.namespace}/${s.name}|${r.trustAnchorArn}|${r.profileArn}|${r.roleArn}|${r.sessionSeconds ?? DEFAULT_SESSION_SECONDS}`;
    }
    case "defaultChain":
      return "chain";
    default:
      return assertNever(source, "credential source");
  }
}

/**
 * A stable key for a credentials source: equal keys share tokens. Token
 * records and the token-sources annotation hold digests of it, so a
 * source's key never changes between versions.
 */
export function credentialsKey(source: CredentialSource): string {
  const role = source.role;
  if (!role) return baseKey(source);
  const tags = Object.entries(role.sessionTags ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  return `${baseKey(source)}|role:${role.roleArn}|ext:${role.externalId ?? ""}${tags ? `|tags:${tags}` : ""}`;
}

/** The web identity's ServiceAccount in words ("the operator's own" when unnamed). */
export function describeServiceAccount(sa: ServiceAccountRef | undefined): string {
  return sa ? `ServiceAccount ${sa.namespace}/${sa.name}` : "the operator's own ServiceAccount";
}

function describeBase(source: CredentialSource): string {
  switch (source.kind) {
    case "secretKeys":
      return `the keys in Secret ${source.secretRef.namespace}/${source.secretRef.name}`;
    case "webIdentity":
      return `role ${source.webIdentity.roleArn} assumed with the web identity of ${describeServiceAccount(source.webIdentity.serviceAccount)}`;
    case "rolesAnywhere":
      return `role ${source.rolesAnywhere.roleArn} through IAM Roles Anywhere with the certificate in ${describeSecret(source.rolesAnywhere.certificateSecret)}`;
    case "defaultChain":
      return "the AWS SDK's default credential chain";
    default:
      return assertNever(source, "credential source");
  }
}

/** Human wording of a source for messages: never contains a key. */
export function describeCredentials(source: CredentialSource): string {
  const base = describeBase(source);
  return source.role ? `role ${source.role.roleArn} assumed with ${base}` : base;
}

/**
 * The Secret a source reads its base identity from (keys, or a Roles
 * Anywhere certificate), which the operator watches so that a rotation
 * refetches at once; undefined: none.
 */
export function credentialsSecretOf(source: CredentialSource): SecretRef | undefined {
  switch (source.kind) {
    case "secretKeys":
      return source.secretRef;
    case "rolesAnywhere":
      return source.rolesAnywhere.certificateSecret;
    case "webIdentity":
    case "defaultChain":
      return undefined;
    default:
      return assertNever(source, "credential source");
  }
}
