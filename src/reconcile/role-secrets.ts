// Pull rights per ServiceAccount (spec.serviceAccountRoles): the Secrets of
// the roles that target ServiceAccounts name in their
// eks.amazonaws.com/ecr-role-arn annotation, and which ServiceAccount
// references which Secret. One token per (role, region), fetched as the first
// admitted ServiceAccount with that role and shared by the others; each
// ServiceAccount is attached to its role's Secret only once the role's trust
// policy admitted its own token (RoleAdmissions), so IAM, not the operator,
// decides who may pull what.
import type { ECRPullSecret, NamespaceFailure } from "../api/index.js";
import { DEFAULT_WEB_IDENTITY_AUDIENCE } from "../api/schema.js";
import type { ServiceAccountRef } from "../aws/credentials.js";
import {
  type OperatorDefaults,
  type RegistryTarget,
  resolveRegistries,
  tokenSources,
} from "../aws/registries.js";
import type { Admission } from "../aws/role-admissions.js";
import type { TokenSource, TokenState } from "../aws/token-cache.js";
import { operatorError } from "../errors.js";
import type { Cached } from "../kube/types.js";
import type { Cluster } from "./cluster.js";
import { type SecretContent, secretContent } from "./content.js";
import { type DesiredSecret, desiredSecrets, targetsServiceAccount } from "./desired.js";
import { planServiceAccountRoles } from "./service-account-roles.js";

export interface RoleAdmitter {
  admit(
    sa: ServiceAccountRef,
    roleArn: string,
    audience: string,
    region: string,
  ): Promise<Admission>;
}

/** What the per-ServiceAccount part of a pass wants. */
export interface RolePass {
  /** Namespace → ServiceAccount name → the Secret it should reference (undefined: none). */
  want: Map<string, Map<string, string | undefined>>;
  /** Namespace → role Secret name → that Secret (one builder per role, shared by namespaces). */
  secrets: Map<string, Map<string, RoleSecret>>;
  /** Token states of the roles' sources (for status and expiry). */
  tokens: TokenState[];
  /** Every token source in use (so the cache keeps them). */
  sources: Map<string, TokenSource>;
  /** ServiceAccounts the role refused, or with an unusable annotation, by namespace. */
  failures: NamespaceFailure[];
}

/** One role's Secret: its registries, and the Secret in a namespace. */
export interface RoleSecret {
  registries: readonly string[];
  build: (namespace: string) => DesiredSecret;
}

/**
 * Whether the resource keeps a Secret (and credentials) of its own: always,
 * unless per-ServiceAccount roles leave unannotated ServiceAccounts none.
 */
export function wantsOwnSecret(spec: ECRPullSecret["spec"]): boolean {
  return (spec.serviceAccountRoles?.unannotated ?? "Default") === "Default";
}

export interface RolePassInput {
  resource: Cached<ECRPullSecret>;
  wanted: readonly string[];
  defaults: OperatorDefaults;
  refreshBeforeMs?: number;
  cluster: Cluster;
  admissions: RoleAdmitter;
  getToken: (source: TokenSource, refreshBeforeMs?: number) => Promise<TokenState>;
}

/** Plans the per-ServiceAccount Secrets of a pass and fetches their tokens. */
export async function rolePass(input: RolePassInput): Promise<RolePass> {
  const { resource, wanted, defaults, cluster } = input;
  const spec = resource.spec;
  const roles = spec.serviceAccountRoles ?? {};
  const unannotated = roles.unannotated ?? "Default";
  const audience = roles.audience ?? DEFAULT_WEB_IDENTITY_AUDIENCE;
  const region = spec.region ?? defaults.region ?? "us-east-1";
  const pass: RolePass = {
    want: new Map(),
    secrets: new Map(),
    tokens: [],
    sources: new Map(),
    failures: [],
  };

  // Which ServiceAccount names which role, namespace by namespace.
  const plans = new Map<string, ReturnType<typeof planServiceAccountRoles>>();
  const members = new Map<string, ServiceAccountRef[]>();
  for (const namespace of wanted) {
    const targeted = [...cluster.serviceAccounts(namespace)].filter((sa) =>
      targetsServiceAccount(spec.serviceAccounts, sa.metadata.name),
    );
    const plan = planServiceAccountRoles(targeted, spec.secretName, unannotated);
    plans.set(namespace, plan);
    for (const [roleArn, names] of plan.roles) {
      const list = members.get(roleArn) ?? [];
      for (const name of names) list.push({ namespace, name });
      members.set(roleArn, list);
    }
    for (const bad of plan.invalid) {
      const err = operatorError("InvalidSpec", "roleAnnotation", {
        namespace,
        name: bad.serviceAccount,
        value: bad.value,
        annotation: bad.annotation,
      });
      pass.failures.push({ namespace, reason: err.code, message: err.message });
    }
  }

  // IAM's answer for every ServiceAccount, and one token per (role, region):
  // the roles at once, as the resource's own sources are fetched.
  const admitted = new Set<string>();
  const roleSecrets = new Map<string, (secretName: string) => RoleSecret>();
  const perRole = await Promise.all(
    [...members].map(([roleArn, list]) => roleTokens(input, roleArn, list, audience, region)),
  );
  for (const r of perRole) {
    for (const [key, source] of r.sources) pass.sources.set(key, source);
    pass.tokens.push(...r.tokens);
    pass.failures.push(...r.failures);
    if (!r.content) continue;
    for (const sa of r.admitted) admitted.add(`${sa.namespace}/${sa.name}|${r.roleArn}`);
    const content = r.content;
    roleSecrets.set(r.roleArn, (secretName) => ({
      registries: content.registries,
      build: desiredSecrets({
        ...content,
        owner: resource.metadata.name,
        secretName,
        ...(spec.secretTemplate ? { template: spec.secretTemplate } : {}),
      }),
    }));
  }

  // Per namespace: the role Secrets its admitted ServiceAccounts use, and who references what.
  for (const [namespace, plan] of plans) {
    const want = new Map<string, string | undefined>();
    const secrets = new Map<string, RoleSecret>();
    for (const [saName, secretName] of plan.want) {
      const roleArn = secretName === undefined ? undefined : plan.secrets.get(secretName);
      if (roleArn === undefined) {
        want.set(saName, secretName);
        continue;
      }
      const secret = roleSecrets.get(roleArn);
      if (secret && admitted.has(`${namespace}/${saName}|${roleArn}`) && secretName) {
        want.set(saName, secretName);
        if (!secrets.has(secretName)) secrets.set(secretName, secret(secretName));
      } else {
        want.set(saName, undefined);
      }
    }
    pass.want.set(namespace, want);
    pass.secrets.set(namespace, secrets);
  }
  return pass;
}

/** One role's admissions and tokens: what rolePass merges. */
interface RoleTokens {
  roleArn: string;
  admitted: ServiceAccountRef[];
  sources: Map<string, TokenSource>;
  tokens: TokenState[];
  failures: NamespaceFailure[];
  /** Its Secret's content; undefined when no ServiceAccount was admitted or a token is missing. */
  content?: SecretContent;
}

/**
 * Asks IAM about each ServiceAccount naming `roleArn`, then fetches the
 * role's tokens as the first one admitted.
 */
async function roleTokens(
  input: RolePassInput,
  roleArn: string,
  list: readonly ServiceAccountRef[],
  audience: string,
  region: string,
): Promise<RoleTokens> {
  const r: RoleTokens = { roleArn, admitted: [], sources: new Map(), tokens: [], failures: [] };
  const answers = await Promise.all(
    list.map(
      async (sa) => [sa, await input.admissions.admit(sa, roleArn, audience, region)] as const,
    ),
  );
  for (const [sa, answer] of answers) {
    if (answer.ok) r.admitted.push(sa);
    else if (answer.error) {
      r.failures.push({
        namespace: sa.namespace,
        reason: answer.error.code,
        message: answer.error.message,
      });
    }
  }
  const representative = r.admitted[0];
  if (!representative) return r;
  const targets = roleTargets(input.resource, roleArn, representative, audience, input.defaults);
  r.sources = tokenSources(targets);
  const states = new Map<string, TokenState>();
  await Promise.all(
    [...r.sources].map(async ([key, source]) => {
      states.set(key, await input.getToken(source, input.refreshBeforeMs));
    }),
  );
  r.tokens = [...states.values()];
  const missing = r.tokens.find((s) => !s.token);
  if (missing) {
    const err =
      missing.error ??
      operatorError("TokenRefreshFailed", "noToken", { source: `role ${roleArn}` });
    for (const sa of list) {
      r.failures.push({ namespace: sa.namespace, reason: err.code, message: err.message });
    }
    r.admitted = [];
    return r;
  }
  r.content = secretContent(targets, states);
  return r;
}

/** The resource's registries, fetched with web identity of `sa` for `roleArn`. */
function roleTargets(
  resource: ECRPullSecret,
  roleArn: string,
  sa: ServiceAccountRef,
  audience: string,
  defaults: OperatorDefaults,
): RegistryTarget[] {
  const spec = resource.spec;
  return resolveRegistries(
    {
      ...spec,
      credentials: { webIdentity: { roleArn, serviceAccount: sa, audience } },
      // The ServiceAccount's role replaces every other identity of the resource.
      ...(spec.registries
        ? { registries: spec.registries.map(({ credentials: _ignored, ...entry }) => entry) }
        : {}),
    },
    { ...defaults, credentialsSecret: undefined },
  );
}
