// Out in the field (issue 29, kinds 6 and 7), on the real control plane as
// the OIDC issuer the STS double trusts (docs/identity.md):
// - kind 6: a role whose trust policy does not name the operator's own
//   ServiceAccount. RoleNotAssumable said "the web identity of the operator's
//   own ServiceAccount" without its namespace and name, exactly the `sub`
//   the user must write into the trust policy. Now it names both, and the
//   `sub` itself; the same for a per-ServiceAccount role refusing one.
// - kind 7: the IRSA annotation eks.amazonaws.com/role-arn, which many
//   ServiceAccounts already carry, is read as the pull role too; the
//   ECR-specific eks.amazonaws.com/ecr-role-arn wins when both are set.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Reason } from "../../src/api/conditions.js";
import { roleSecretName } from "../../src/reconcile/service-account-roles.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  dockerConfigOf,
  getResource,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { type Stack, startStack } from "../harness/stack.js";
import {
  allowAnonymousDiscovery,
  type RegisteredIssuer,
  registerClusterIssuer,
  serviceAccountSub as sub,
  webIdentityTrust,
} from "../harness/web-identity.js";

const cp = inject("controlPlane");
const ACCOUNT = "292900000006";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OPS = "field-id-ops";
const OWN = "field-id-own"; // the operator's own web identity, refused
const PER_SA = "field-id-sa"; // per-ServiceAccount roles from the IRSA annotation
const OWN_ROLE = `arn:aws:iam::${ACCOUNT}:role/field-id-own`;
const ROLE_A = `arn:aws:iam::${ACCOUNT}:role/field-id-a`;
const ROLE_B = `arn:aws:iam::${ACCOUNT}:role/field-id-b`;
const DISCOVERY_BINDING = "field-id-oidc-discovery-anonymous";
/** Spelled out, as users write them (the IRSA key, and the ECR-specific one). */
const IRSA_KEY = "eks.amazonaws.com/role-arn";
const ECR_KEY = "eks.amazonaws.com/ecr-role-arn";
const AWS_ENV = [
  "AWS_ENDPOINT_URL",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_ROLE_ARN",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_PROFILE",
  "AWS_EC2_METADATA_DISABLED",
];

let stack: Stack | undefined;
let k: TestKube;
let aws: AwsDouble;
let registered: RegisteredIssuer = { issuer: "", providerArn: "" };
const savedEnv: Record<string, string | undefined> = {};
const trust = (subjects: string[]) => webIdentityTrust(registered, subjects);

/**
 * The double trusting this control plane as its OIDC issuer (anyone may read
 * the discovery documents, as docs/identity.md step 1 says), the roles, an
 * environment with no AWS credentials of this process's, the annotated
 * ServiceAccounts, and the operator as its own ServiceAccount with no
 * credentials Secret (its web identity is its own).
 */
async function setUp(): Promise<void> {
  // Saved before the stack points AWS_ENDPOINT_URL at its double.
  for (const name of AWS_ENV) {
    savedEnv[name] = process.env[name];
    delete process.env[name];
  }
  stack = await startStack({ ops: OPS, namespaces: [OWN, PER_SA], credentials: false });
  ({ k, aws } = stack);
  stack.resources.push(OWN, PER_SA);
  process.env.AWS_EC2_METADATA_DISABLED = "true";
  registered = await registerClusterIssuer(k, aws, ACCOUNT);
  await allowDiscovery();
  // The operator's own role trusts someone else: the user has yet to add the operator.
  aws.addRole({ roleArn: OWN_ROLE, trustPolicy: trust([sub("elsewhere", "someone")]) });
  aws.addRole({ roleArn: ROLE_A, trustPolicy: trust([sub(PER_SA, "irsa")]) });
  aws.addRole({ roleArn: ROLE_B, trustPolicy: trust([sub(PER_SA, "both")]) });
  const annotated = (name: string, annotations: Record<string, string>) =>
    k.core.createNamespacedServiceAccount({
      namespace: PER_SA,
      body: { metadata: { name, annotations } },
    });
  await annotated("irsa", { [IRSA_KEY]: ROLE_A });
  await annotated("both", { [IRSA_KEY]: ROLE_A, [ECR_KEY]: ROLE_B });
  await annotated("outsider", { [IRSA_KEY]: ROLE_B });
  await stack.startOperator({
    config: { credentialsSecretName: undefined, credentialsSecretNamespace: undefined },
  });
}

/**
 * docs/identity.md step 1: IAM reads discovery and keys without credentials
 * (a binding left by an interrupted run is replaced; stop() deletes it).
 */
async function allowDiscovery(): Promise<void> {
  await k.rbac.deleteClusterRoleBinding({ name: DISCOVERY_BINDING }).catch(() => undefined);
  stack?.onStop(() =>
    k.rbac.deleteClusterRoleBinding({ name: DISCOVERY_BINDING }).then(
      () => undefined,
      () => undefined,
    ),
  );
  await allowAnonymousDiscovery(k, DISCOVERY_BINDING);
}

describe.skipIf(cp.existingCluster)("identity messages and annotations users already have", () => {
  beforeAll(setUp);

  afterAll(async () => {
    await stack?.stop();
    for (const [name, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it("kind 6: a refused web identity of the operator's own ServiceAccount names it and the sub to trust", async () => {
    await applyResource(k, OWN, {
      secretName: "ecr-pull",
      namespaces: [OWN],
      serviceAccounts: [],
      region: "us-east-1",
      registries: [{ accountId: ACCOUNT }],
      credentials: { webIdentity: { roleArn: OWN_ROLE } },
    });
    const ready = await waitFor("Ready=False RoleNotAssumable", async () => {
      const c = readyCondition(await getResource(k, OWN));
      return c?.status === "False" && c.reason === Reason.RoleNotAssumable ? c : undefined;
    });
    const refused = aws
      .calls({ action: "AssumeRoleWithWebIdentity", roleArn: OWN_ROLE, errorCode: "AccessDenied" })
      .at(-1);
    expect(refused?.subject).toBe(sub(OPS, "operator"));
    expect(ready.message).toBe(
      `failed to get an ECR token in us-east-1 with role ${OWN_ROLE} assumed with the web identity of the operator's own ServiceAccount ${OPS}/operator: access denied (Not authorized to perform sts:AssumeRoleWithWebIdentity); the role's trust policy must allow sub "system:serviceaccount:${OPS}:operator" (condition "<issuer>:sub") and its audience`,
    );
    expect(await readSecret(k, OWN, "ecr-pull")).toBeUndefined();
  });

  it("kind 7: reads eks.amazonaws.com/role-arn as the pull role, the ECR-specific key winning, and names the sub a refusing role must trust", async () => {
    await applyResource(k, PER_SA, {
      secretName: "ecr-pull",
      namespaces: [PER_SA],
      serviceAccounts: ["irsa", "both", "outsider"],
      region: "us-east-1",
      registries: [{ accountId: ACCOUNT }],
      serviceAccountRoles: { unannotated: "None" },
    });
    const secretA = roleSecretName("ecr-pull", ROLE_A);
    const secretB = roleSecretName("ecr-pull", ROLE_B);
    const pullSecretsOf = async (name: string) =>
      (
        await k.core.readNamespacedServiceAccount({ namespace: PER_SA, name })
      ).imagePullSecrets?.map((r) => r.name) ?? [];
    await waitFor("irsa on role A's Secret, both on role B's", async () =>
      JSON.stringify([await pullSecretsOf("irsa"), await pullSecretsOf("both")]) ===
      JSON.stringify([[secretA], [secretB]])
        ? true
        : undefined,
    );
    const sessionOf = (role: string) =>
      `arn:aws:sts::${ACCOUNT}:assumed-role/${role.split("/").at(-1)}/ecr-creds-refresher`;
    const principalOf = async (secretName: string) => {
      const s = await readSecret(k, PER_SA, secretName);
      const password = s ? dockerConfigOf(s).auths[HOST]?.password : undefined;
      return aws.issued().find((t) => t.password === password)?.principalArn;
    };
    expect(await principalOf(secretA)).toBe(sessionOf(ROLE_A));
    expect(await principalOf(secretB)).toBe(sessionOf(ROLE_B));
    // The outsider's role (from the IRSA key) does not trust it: nothing
    // attached, and the failure names the sub to add.
    expect(await pullSecretsOf("outsider")).toEqual([]);
    const failure = await waitFor("the outsider in status.failures", async () => {
      const r = await getResource(k, PER_SA);
      return r?.status?.failures?.find((f) => f.message?.includes(`${PER_SA}/outsider`));
    });
    expect(failure.reason).toBe(Reason.RoleNotAssumable);
    expect(failure.message).toBe(
      `failed to admit the ServiceAccount to its role with role ${ROLE_B} assumed with the web identity of ServiceAccount ${PER_SA}/outsider: access denied (Not authorized to perform sts:AssumeRoleWithWebIdentity); the role's trust policy must allow sub "system:serviceaccount:${PER_SA}:outsider" (condition "<issuer>:sub") and its audience`,
    );
  });
});
