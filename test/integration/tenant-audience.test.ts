// TokenRequest audiences (issue 28, kind 5): the audience of a web-identity
// token comes from a resource's spec, which its author chose. The operator
// mints only sts.amazonaws.com and what the administrator allows
// (--allowed-token-audiences), and never the API server's own audience, even
// when allowed: such a token, sent to STS or any OIDC provider a role trusts,
// would open the Kubernetes API. Neither reaches AWS.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Reason } from "../../src/api/conditions.js";
import { waitFor } from "../harness/controlplane.js";
import { applyResource, getResource, readSecret, readyCondition } from "../harness/kube.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const OPS = "tau-ops";
const NS = "tau-a";
const ACCOUNT = "123456789012";
const ROLE = `arn:aws:iam::${ACCOUNT}:role/ecr-pull`;
const ALLOWED = "https://allowed.example";

let stack: Stack;

const spec = (audience: string) => ({
  secretName: "ecr-pull",
  namespaces: [NS],
  serviceAccounts: [],
  region: "us-east-1",
  registries: [{ accountId: ACCOUNT }],
  credentials: { webIdentity: { roleArn: ROLE, audience } },
});

async function notReady(name: string): Promise<string> {
  return await waitFor(
    `${name} to be not Ready with ${Reason.ServiceAccountTokenFailed}`,
    async () => {
      const c = readyCondition(await getResource(stack.k, name));
      return c?.status === "False" && c.reason === Reason.ServiceAccountTokenFailed
        ? c.message
        : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

beforeAll(async () => {
  stack = await startStack({ ops: OPS, namespaces: [NS], credentials: false });
  stack.resources.push("tau-not-allowed", "tau-api");
  // The administrator allows one extra audience, and (wrongly) the API server's own.
  await stack.startOperator({
    config: { allowedTokenAudiences: `${ALLOWED},${cp.server}` },
  });
});

afterAll(async () => {
  await stack?.stop();
});

describe.skipIf(cp.existingCluster)("TokenRequest audiences", () => {
  it("refuses an audience the administrator did not allow, naming the field, before any call to AWS", async () => {
    await applyResource(stack.k, "tau-not-allowed", spec("https://attacker.example"));
    const message = await notReady("tau-not-allowed");
    expect(message).toContain(
      `failed to request a token for ServiceAccount ${OPS}/operator: the audience "https://attacker.example" (credentials.webIdentity.audience or serviceAccountRoles.audience) is not one the administrator allows (sts.amazonaws.com, ${ALLOWED}, ${cp.server}); use sts.amazonaws.com, or have the administrator add it to --allowed-token-audiences`,
    );
    expect(await readSecret(stack.k, NS, "ecr-pull")).toBeUndefined();
  });

  it("refuses the API server's own audience even when allowed, and no such token reaches STS", async () => {
    await applyResource(stack.k, "tau-api", spec(cp.server));
    const message = await notReady("tau-api");
    expect(message).toContain(
      `failed to request a token for ServiceAccount ${OPS}/operator: the audience "${cp.server}" (credentials.webIdentity.audience or serviceAccountRoles.audience) is the API server's own, so the token would open the Kubernetes API wherever it is sent; use sts.amazonaws.com, and remove it from --allowed-token-audiences`,
    );
    expect(stack.aws.calls({ action: "AssumeRoleWithWebIdentity" })).toEqual([]);
  });
});
