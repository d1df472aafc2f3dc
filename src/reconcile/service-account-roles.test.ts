import { describe, expect, it } from "vitest";
import { ANNOTATION_ECR_ROLE_ARN, ANNOTATION_ROLE_ARN } from "../api/metadata.js";
import type { ServiceAccountView } from "./desired.js";
import { planServiceAccountRoles, roleSecretName } from "./service-account-roles.js";

const A = "arn:aws:iam::111122223333:role/team-a-pull";
const B = "arn:aws:iam::111122223333:role/team-b-pull";
const sa = (name: string, role?: string): ServiceAccountView => ({
  metadata: {
    name,
    namespace: "team-a",
    ...(role ? { annotations: { [ANNOTATION_ECR_ROLE_ARN]: role } } : {}),
  },
});

describe("per-ServiceAccount roles", () => {
  it("gives each annotated ServiceAccount its role's Secret and the others the default", () => {
    const plan = planServiceAccountRoles(
      [sa("builder", B), sa("api", A), sa("default"), sa("worker", A)],
      "ecr-pull",
      "Default",
    );
    expect(Object.fromEntries(plan.want)).toEqual({
      api: roleSecretName("ecr-pull", A),
      builder: roleSecretName("ecr-pull", B),
      default: "ecr-pull",
      worker: roleSecretName("ecr-pull", A),
    });
    expect(Object.fromEntries(plan.secrets)).toEqual({
      "ecr-pull": undefined,
      [roleSecretName("ecr-pull", A)]: A,
      [roleSecretName("ecr-pull", B)]: B,
    });
    expect(Object.fromEntries(plan.roles)).toEqual({ [A]: ["api", "worker"], [B]: ["builder"] });
  });

  it("gives unannotated ServiceAccounts nothing, and wants no default Secret, under None", () => {
    const plan = planServiceAccountRoles([sa("default"), sa("api", A)], "ecr-pull", "None");
    expect(Object.fromEntries(plan.want)).toEqual({
      default: undefined,
      api: roleSecretName("ecr-pull", A),
    });
    expect([...plan.secrets.keys()]).toEqual([roleSecretName("ecr-pull", A)]);
  });

  it("reports an annotation that is not a role ARN and attaches nothing to that ServiceAccount", () => {
    const plan = planServiceAccountRoles([sa("x", "not-an-arn")], "ecr-pull", "Default");
    expect(plan.invalid).toEqual([
      { serviceAccount: "x", value: "not-an-arn", annotation: ANNOTATION_ECR_ROLE_ARN },
    ]);
    expect(plan.want.get("x")).toBeUndefined();
  });

  it("reads the IRSA annotation eks.amazonaws.com/role-arn too; the ECR-specific one wins", () => {
    const irsa = (name: string, roles: Record<string, string>): ServiceAccountView => ({
      metadata: { name, namespace: "team-a", annotations: roles },
    });
    const plan = planServiceAccountRoles(
      [
        irsa("irsa", { [ANNOTATION_ROLE_ARN]: A }),
        irsa("both", { [ANNOTATION_ROLE_ARN]: A, [ANNOTATION_ECR_ROLE_ARN]: B }),
        irsa("blank-ecr", { [ANNOTATION_ECR_ROLE_ARN]: " ", [ANNOTATION_ROLE_ARN]: A }),
        irsa("bad-irsa", { [ANNOTATION_ROLE_ARN]: "role/x" }),
      ],
      "ecr-pull",
      "Default",
    );
    expect(Object.fromEntries(plan.want)).toEqual({
      "bad-irsa": undefined,
      "blank-ecr": roleSecretName("ecr-pull", A),
      both: roleSecretName("ecr-pull", B),
      irsa: roleSecretName("ecr-pull", A),
    });
    expect(plan.invalid).toEqual([
      { serviceAccount: "bad-irsa", value: "role/x", annotation: ANNOTATION_ROLE_ARN },
    ]);
  });

  it("names role Secrets stably, distinctly and within 253 characters", () => {
    expect(roleSecretName("ecr-pull", A)).toMatch(/^ecr-pull-[0-9a-f]{10}$/);
    expect(roleSecretName("ecr-pull", A)).toBe(roleSecretName("ecr-pull", A));
    expect(roleSecretName("ecr-pull", A)).not.toBe(roleSecretName("ecr-pull", B));
    expect(roleSecretName("a".repeat(253), A).length).toBeLessThanOrEqual(253);
  });
});
