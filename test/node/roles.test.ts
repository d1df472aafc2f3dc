// Per-ServiceAccount roles on a real node: two ServiceAccounts annotated with
// different IAM roles each get a Secret made from their own role's token; the
// registry double lets each role pull only its repositories (as ECR's
// repository policies do). A Pod of the ServiceAccount whose role may read
// team/private runs; a Pod of the other is refused by the registry (403) and
// waits in ImagePullBackOff, while it runs an image its own role may read.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANNOTATION_ECR_ROLE_ARN } from "../../src/api/metadata.js";
import { roleSecretName } from "../../src/reconcile/service-account-roles.js";
import { applyResource, waitFor } from "../harness/kube.js";
import {
  allowAnonymousDiscovery,
  registerClusterIssuer,
  serviceAccountSub,
  webIdentityTrust,
} from "../harness/web-identity.js";
import {
  ACCOUNT,
  kubeletEvents,
  podOf,
  skipReason,
  startWorld,
  stopWorld,
  type World,
  waitForDefaultSa,
  waitForPodState,
} from "./world.js";

const OPS = "node-roles-ops";
const NS = "node-roles";
const ROLE_PRIVATE = `arn:aws:iam::${ACCOUNT}:role/node-private-reader`;
const ROLE_OTHER = `arn:aws:iam::${ACCOUNT}:role/node-other-reader`;
const DISCOVERY_BINDING = "node-roles-oidc-discovery-anonymous";
/** Repositories each role's policy lets it pull. */
const POLICY: Record<string, string[]> = {
  "node-private-reader": ["team/private", "team/app"],
  "node-other-reader": ["team/other", "team/app"],
};

let w: World | undefined;

const sessionOf = (role: string) =>
  `arn:aws:sts::${ACCOUNT}:assumed-role/${role.split("/").at(-1)}/ecr-creds-refresher`;

/**
 * The world with a repository policy per role, the cluster's issuer
 * registered as an OIDC provider (docs/identity.md: IAM reads the issuer's
 * discovery document and keys without credentials), two roles trusting one
 * ServiceAccount each, and those ServiceAccounts annotated with their role.
 */
async function startRolesWorld(): Promise<void> {
  // Set at once, so that afterAll stops it even when a step below fails.
  const world = await startWorld({ ops: OPS, namespaces: [NS] });
  w = world;
  const { k } = world.stack;
  world.setRepositoryPolicy((principal, repository) => {
    const role = /assumed-role\/([^/]+)\//.exec(principal)?.[1] ?? "";
    return POLICY[role]?.includes(repository) ?? false;
  });
  // docs/identity.md: IAM reads the issuer's discovery document and keys
  // without credentials; the issuer is registered as an OIDC provider.
  await allowAnonymousDiscovery(k, DISCOVERY_BINDING);
  const issuer = await registerClusterIssuer(k, world.aws, ACCOUNT);
  const trust = (sa: string) => webIdentityTrust(issuer, [serviceAccountSub(NS, sa)]);
  world.aws.addRole({ roleArn: ROLE_PRIVATE, trustPolicy: trust("private-reader") });
  world.aws.addRole({ roleArn: ROLE_OTHER, trustPolicy: trust("other-reader") });
  for (const [name, role] of [
    ["private-reader", ROLE_PRIVATE],
    ["other-reader", ROLE_OTHER],
  ] as const) {
    await k.core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name, annotations: { [ANNOTATION_ECR_ROLE_ARN]: role } } },
    });
  }
}

describe.skipIf(skipReason !== undefined)("per-ServiceAccount roles on a real node", () => {
  beforeAll(async () => {
    await startRolesWorld();
  }, 600_000);

  afterAll(async () => {
    await w?.stack.k.rbac.deleteClusterRoleBinding({ name: DISCOVERY_BINDING }).catch(() => {});
    await stopWorld(w);
  }, 120_000);

  it("a Pod of one ServiceAccount pulls the repository its role may read; a Pod of another is refused by the registry", async () => {
    if (w === undefined) throw new Error("no world");
    const world = w;
    const { k } = world.stack;
    await waitForDefaultSa(world, NS);
    world.stack.resources.push("node-roles");
    await applyResource(k, "node-roles", {
      secretName: "ecr-pull",
      namespaces: [NS],
      serviceAccounts: ["private-reader", "other-reader"],
      region: "us-east-1",
      registries: [{ accountId: ACCOUNT }],
      serviceAccountRoles: { unannotated: "None" },
    });
    await world.stack.startOperator({ as: false });
    const secretOf = {
      "private-reader": roleSecretName("ecr-pull", ROLE_PRIVATE),
      "other-reader": roleSecretName("ecr-pull", ROLE_OTHER),
    };
    await waitFor(
      "each ServiceAccount on its role's Secret",
      async () => {
        for (const [sa, secret] of Object.entries(secretOf)) {
          const got = await k.core.readNamespacedServiceAccount({ namespace: NS, name: sa });
          if (JSON.stringify(got.imagePullSecrets?.map((r) => r.name)) !== JSON.stringify([secret]))
            return undefined;
        }
        return true;
      },
      { timeoutMs: 60_000 },
    );

    // Pods name only their ServiceAccount: admission copies its pull Secret in.
    const privateImage = world.node.imageRef("team/private");
    const otherImage = world.node.imageRef("team/other");
    const create = (name: string, sa: string, image: string) =>
      k.core.createNamespacedPod({
        namespace: NS,
        body: podOf(name, image, { serviceAccount: sa }),
      });
    await create("private-by-private", "private-reader", privateImage);
    await create("private-by-other", "other-reader", privateImage);
    await create("other-by-other", "other-reader", otherImage);
    await waitForPodState(world, NS, "private-by-private", {
      phase: "Running",
      container: "running",
    });
    await waitForPodState(world, NS, "other-by-other", { phase: "Running", container: "running" });
    await waitForPodState(world, NS, "private-by-other", {
      phase: "Pending",
      container: "ImagePullBackOff",
    });
    const failed = (await kubeletEvents(world, NS, "private-by-other")).find(
      (e) => e.reason === "Failed",
    );
    expect(failed?.message).toMatch(
      new RegExp(`^Failed to pull image "${privateImage.replace(/\./g, "\\.")}": .*403 Forbidden`),
    );

    // The registry's log: which role's token opened (or was refused) which pull.
    const principalOf = (password: string) =>
      world.aws.issued().find((t) => t.password === password)?.principalArn ?? "unknown";
    const log = new Set(
      world.node.registry
        .authAttempts()
        .filter((a) => /\/manifests\//.test(a.path))
        .map((a) => `${a.path.split("/manifests/")[0]} ${principalOf(a.password)} ${a.status}`),
    );
    expect(log).toEqual(
      new Set([
        `/v2/team/private ${sessionOf(ROLE_PRIVATE)} 200`,
        `/v2/team/private ${sessionOf(ROLE_OTHER)} 403`,
        `/v2/team/other ${sessionOf(ROLE_OTHER)} 200`,
      ]),
    );
  });
});
