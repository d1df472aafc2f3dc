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
import type { Cluster } from "./cluster.js";
import { type SecretContent, secretContent } from "./content.js";
import { targetsServiceAccount } from "./desired.js";
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
  /** Namespace → role Secret name → its content. */
  secrets: Map<string, Map<string, SecretContent>>;
  /** Token states of the roles' sources (for status and expiry). */
  tokens: TokenState[];
  /** Every token source in use (so the cache keeps them). */
  sources: Map<string, TokenSource>;
  /** ServiceAccounts the role refused, or with an unusable annotation, by namespace. */
  failures: NamespaceFailure[];
  /** Whether the resource's own Secret is wanted (unannotated: Default). */
  defaultSecret: boolean;
}

export interface RolePassInput {
  resource: ECRPullSecret;
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
    defaultSecret: unannotated === "Default",
  };

  // Which ServiceAccount names which role, namespace by namespace.
  const plans = new Map<string, ReturnType<typeof planServiceAccountRoles>>();
  const members = new Map<string, ServiceAccountRef[]>();
  for (const namespace of wanted) {
    const targeted = [...cluster.serviceAccounts(namespace)].filter((sa) =>
      targetsServiceAccount(spec.serviceAccounts, sa.metadata?.name ?? ""),
    );
    const plan = planServiceAccountRoles(targeted, spec.secretName, unannotated);
    plans.set(namespace, plan);
    for (const [roleArn, names] of plan.roles) {
      const list = members.get(roleArn) ?? [];
      for (const name of names) list.push({ namespace, name });
      members.set(roleArn, list);
    }
    for (const bad of plan.invalid) {
      pass.failures.push({
        namespace,
        reason: "InvalidSpec",
        message: `failed to read the role of ServiceAccount ${namespace}/${bad.serviceAccount}: ${JSON.stringify(bad.value)} is not an IAM role ARN; fix its eks.amazonaws.com/ecr-role-arn annotation`,
      });
    }
  }

  // IAM's answer for every ServiceAccount, and one token per (role, region).
  const admitted = new Set<string>();
  const contents = new Map<string, SecretContent>();
  for (const [roleArn, list] of members) {
    const answers = await Promise.all(
      list.map(
        async (sa) => [sa, await input.admissions.admit(sa, roleArn, audience, region)] as const,
      ),
    );
    let representative: ServiceAccountRef | undefined;
    for (const [sa, answer] of answers) {
      if (answer.ok) {
        admitted.add(`${sa.namespace}/${sa.name}|${roleArn}`);
        representative ??= sa;
      } else if (answer.error) {
        pass.failures.push({
          namespace: sa.namespace,
          reason: answer.error.code,
          message: answer.error.message,
        });
      }
    }
    if (!representative) continue;
    const targets = roleTargets(resource, roleArn, representative, audience, defaults);
    const states = new Map<string, TokenState>();
    for (const [key, source] of tokenSources(targets)) {
      pass.sources.set(key, source);
      const state = await input.getToken(source, input.refreshBeforeMs);
      states.set(key, state);
      pass.tokens.push(state);
    }
    const missing = [...states.values()].find((s) => !s.token);
    if (missing) {
      for (const sa of list) {
        pass.failures.push({
          namespace: sa.namespace,
          reason: missing.error?.code ?? "TokenRefreshFailed",
          message:
            missing.error?.message ??
            `failed to get a token for role ${roleArn}: none fetched yet; the fetch is retried`,
        });
        admitted.delete(`${sa.namespace}/${sa.name}|${roleArn}`);
      }
      continue;
    }
    contents.set(roleArn, secretContent(targets, states));
  }

  // Per namespace: the role Secrets its admitted ServiceAccounts use, and who references what.
  for (const [namespace, plan] of plans) {
    const want = new Map<string, string | undefined>();
    const secrets = new Map<string, SecretContent>();
    for (const [saName, secretName] of plan.want) {
      const roleArn = secretName === undefined ? undefined : plan.secrets.get(secretName);
      if (roleArn === undefined) {
        want.set(saName, secretName);
        continue;
      }
      const content = contents.get(roleArn);
      if (content && admitted.has(`${namespace}/${saName}|${roleArn}`) && secretName) {
        want.set(saName, secretName);
        secrets.set(secretName, content);
      } else {
        want.set(saName, undefined);
      }
    }
    pass.want.set(namespace, want);
    pass.secrets.set(namespace, secrets);
  }
  return pass;
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
