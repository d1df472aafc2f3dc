// Pull rights per ServiceAccount (spec.serviceAccountRoles), as pure
// functions: which Secret each target ServiceAccount of a namespace should
// reference, and which Secrets the resource then wants there. A
// ServiceAccount annotated with a role ARN (the key the kubelet's AWS
// credential provider reads for KEP-4412, or the IRSA key) gets the Secret of that role; the
// others get the resource's own Secret or none. No I/O here.
import { createHash } from "node:crypto";
import { ROLE_ARN_ANNOTATIONS } from "../api/metadata.js";
import { ROLE_ARN_PATTERN } from "../api/schema.js";
import type { ServiceAccountView } from "./desired.js";

const roleArnPattern = new RegExp(ROLE_ARN_PATTERN);

/** The Secret of one role: the resource's secretName plus a digest of the role. */
export function roleSecretName(secretName: string, roleArn: string): string {
  const digest = createHash("sha256").update(roleArn).digest("hex").slice(0, 10);
  // A Secret name has at most 253 characters; leave room for "-" + digest.
  return `${secretName.slice(0, 242).replace(/[.-]+$/, "")}-${digest}`;
}

/**
 * The role a ServiceAccount names, or why its annotation is unusable:
 * eks.amazonaws.com/ecr-role-arn, else the IRSA key eks.amazonaws.com/role-arn.
 */
export function annotatedRole(
  sa: ServiceAccountView,
): { roleArn: string; annotation: string } | { invalid: string; annotation: string } | undefined {
  const annotations = sa.metadata?.annotations ?? {};
  const annotation = ROLE_ARN_ANNOTATIONS.find((key) => annotations[key]?.trim());
  if (annotation === undefined) return undefined;
  const roleArn = (annotations[annotation] ?? "").trim();
  if (!roleArnPattern.test(roleArn)) return { invalid: roleArn, annotation };
  return { roleArn, annotation };
}

export interface ServiceAccountRolePlan {
  /** ServiceAccount name → the Secret name it should reference (undefined: none of ours). */
  want: Map<string, string | undefined>;
  /** Secret names wanted in the namespace → their role (undefined: the resource's own Secret). */
  secrets: Map<string, string | undefined>;
  /** Role → the ServiceAccounts (names) annotated with it, sorted. */
  roles: Map<string, string[]>;
  /** ServiceAccounts whose annotation (the key that was read) is not a role ARN. */
  invalid: Array<{ serviceAccount: string; value: string; annotation: string }>;
}

/**
 * Plans one namespace. `targeted` are the ServiceAccounts the resource's
 * spec.serviceAccounts selects; `unannotated` is spec.serviceAccountRoles.unannotated.
 * The resource's own Secret is wanted whenever unannotated is Default (as
 * without serviceAccountRoles: new ServiceAccounts find it there).
 */
export function planServiceAccountRoles(
  targeted: readonly ServiceAccountView[],
  secretName: string,
  unannotated: "Default" | "None",
): ServiceAccountRolePlan {
  const plan: ServiceAccountRolePlan = {
    want: new Map(),
    secrets: new Map(),
    roles: new Map(),
    invalid: [],
  };
  if (unannotated === "Default") plan.secrets.set(secretName, undefined);
  const sorted = [...targeted].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const sa of sorted) {
    const name = sa.metadata?.name;
    if (!name) continue;
    const role = annotatedRole(sa);
    if (role === undefined) {
      plan.want.set(name, unannotated === "Default" ? secretName : undefined);
    } else if ("invalid" in role) {
      plan.invalid.push({ serviceAccount: name, value: role.invalid, annotation: role.annotation });
      plan.want.set(name, undefined);
    } else {
      const secret = roleSecretName(secretName, role.roleArn);
      plan.want.set(name, secret);
      plan.secrets.set(secret, role.roleArn);
      plan.roles.set(role.roleArn, [...(plan.roles.get(role.roleArn) ?? []), name]);
    }
  }
  return plan;
}
