// Tenants serve themselves (issue 31), end to end on the real control plane:
// tenants authenticated as ServiceAccounts bound to `admin` in their own
// namespace only (not cluster-admin) create ECRPullSecretClaims over one
// ClusterECRCredentialSource an administrator offers; one token serves them
// all; a namespace the source does not allow gets nothing and costs no AWS
// call; an ECRPullSecret and a claim wanting one Secret do not fight over it.
import { spawnSync } from "node:child_process";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runStatus } from "../../src/cli/status.js";
import type { AwsDouble } from "../aws-double/index.js";
import type { Rendered } from "../harness/chart.js";
import { consistently, waitFor } from "../harness/controlplane.js";
import {
  applyResource,
  getResource,
  kubeletFailsPull,
  mergePatch,
  readSecret,
  readyCondition,
  type TestKube,
} from "../harness/kube.js";
import { type InProcessOperator, testConfig } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, readPassword } from "../harness/state.js";
import {
  applyUserRoles,
  claimReady,
  createClaim,
  createSource,
  deleteClaims,
  deleteSource,
  deleteUserRoles,
  getClaim,
  installTenantCrds,
  type Tenant,
  tenantOf,
  waitForClaim,
} from "../harness/tenant.js";

const ACCOUNT = "444455556666";
const HOST = ecrHost(ACCOUNT);
const OPS = "tcl-ops";
const SHARED = iamUser("tcl", 1, ACCOUNT, "tcl-shared");
const LONELY = iamUser("tcl", 2, ACCOUNT, "tcl-lonely");
const TEAMS = Array.from({ length: 20 }, (_, i) => `tcl-team-${String(i + 1).padStart(2, "0")}`);
const OUTSIDER = "tcl-outsider";
const FIRST_ADMIN = "tcl-both-a";
const FIRST_CLAIM = "tcl-both-b";
/** Token lifetime: long enough for 20 tenants' first sync, short enough to see a refresh. */
const LIFETIME_MS = 30_000;

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let roles: Rendered[] = [];
let op: InProcessOperator;
const tenants = new Map<string, Tenant>();

const claimSpec = (source: string, secretName = "ecr-pull") => ({
  secretName,
  sourceRef: { name: source },
});

/** The double's GetAuthorizationToken calls made with `keys`. */
const ecrCalls = (keys: { accessKeyId: string }, since = 0) =>
  aws.calls(
    (c) =>
      c.service === "ecr" &&
      c.action === "GetAuthorizationToken" &&
      c.accessKeyId === keys.accessKeyId &&
      c.time >= since,
  );

/** An ECRPullSecret's credentials equal to the offered source's: the same token serves both. */
const sameCredentials = {
  credentials: { secretRef: { name: "shared-keys", namespace: OPS } },
  registries: [{ accountId: ACCOUNT }],
};

const issuedTo = (user: string) =>
  aws.issued().filter((t) => t.principalArn.endsWith(`:user/${user}`));

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: [...TEAMS, OUTSIDER, FIRST_ADMIN, FIRST_CLAIM],
    identities: [SHARED, LONELY],
    tokenLifetimeMs: LIFETIME_MS,
  });
  ({ k, aws } = stack);
  await installTenantCrds(k);
  roles = await applyUserRoles(k, "tcl", OPS);
  await stack.putKeys("shared-keys", SHARED);
  await stack.putKeys("lonely-keys", LONELY);
  const offered = {
    credentials: { secretRef: { name: "shared-keys", namespace: OPS } },
    region: "us-east-1",
    registries: [{ accountId: ACCOUNT }],
    conditions: [{ namespaces: ["tcl-team-*", "tcl-both-*"] }],
  };
  expect(await createSource(k, "tcl-shared", offered)).toBeUndefined();
  expect(
    await createSource(k, "tcl-lonely", {
      ...offered,
      credentials: { secretRef: { name: "lonely-keys", namespace: OPS } },
      conditions: [{ namespaces: ["tcl-nobody"] }],
    }),
  ).toBeUndefined();
  for (const ns of [...TEAMS, OUTSIDER, FIRST_ADMIN, FIRST_CLAIM]) {
    tenants.set(ns, await tenantOf(k, ns));
  }
  // The aggregation controller has folded the claims role into admin.
  const probe = tenants.get(OUTSIDER)?.kube as TestKube;
  await waitFor(
    "the tenants' aggregated right to create claims",
    async () =>
      (await createClaim(probe, OUTSIDER, "probe", claimSpec("tcl-shared"), true)) === undefined
        ? true
        : undefined,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  stack.resources.push("tcl-admin-a", "tcl-admin-b");
  op = await stack.startOperator();
});

afterAll(async () => {
  // While the operator runs: its finalizers go with its cleanup.
  await deleteClaims(k, [...TEAMS, OUTSIDER, FIRST_ADMIN, FIRST_CLAIM]);
  await stack?.stop();
  for (const name of ["tcl-shared", "tcl-lonely"]) await deleteSource(k, name);
  await deleteUserRoles(k, roles);
});

const tenantOfNs = (ns: string): Tenant => {
  const t = tenants.get(ns);
  if (!t) throw new Error(`no tenant for ${ns}`);
  return t;
};
const tenant = (ns: string): TestKube => tenantOfNs(ns).kube;

describe("twenty teams on one offered source", () => {
  it("every namespace gets the issued password, with one GetAuthorizationToken for all at first sync and one per refresh", async () => {
    const refused = await Promise.all(
      TEAMS.map((ns) => createClaim(tenant(ns), ns, "pulls", claimSpec("tcl-shared"))),
    );
    expect(refused.filter(Boolean)).toEqual([]);
    for (const ns of TEAMS) await waitForClaim(k, ns, "pulls", "True");
    const first = issuedTo("tcl-shared");
    expect(first).toHaveLength(1);
    expect(ecrCalls(SHARED)).toHaveLength(1);
    for (const ns of TEAMS) {
      expect(await readPassword(k, ns, "ecr-pull", HOST), ns).toBe(first[0]?.password);
    }

    // The source's token is refreshed once for everyone, and every namespace follows.
    const second = await waitFor(
      "the shared token's refresh",
      () => {
        const tokens = issuedTo("tcl-shared");
        return tokens.length >= 2 ? tokens[1] : undefined;
      },
      { timeoutMs: LIFETIME_MS },
    );
    await waitFor(
      "every namespace to hold the refreshed password",
      async () => {
        const newest = issuedTo("tcl-shared").at(-1)?.password;
        for (const ns of TEAMS) {
          if ((await readPassword(k, ns, "ecr-pull", HOST)) !== newest) return undefined;
        }
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    const tokens = issuedTo("tcl-shared");
    console.log(
      `${TEAMS.length} claims on one source: ${ecrCalls(SHARED).length} GetAuthorizationToken calls for ${tokens.length} tokens (first sync: 1)`,
    );
    expect(tokens.map((t) => t.password)).toContain(second.password);
    // One call per token, whatever the number of namespaces: 20 teams, not 20 calls.
    expect(ecrCalls(SHARED)).toHaveLength(tokens.length);
    expect(tokens.length).toBeLessThanOrEqual(3);

    // The administrator sees on the source what its claims see.
    const source = (await k.custom.getClusterCustomObject({
      group: "ecrcreds.io",
      version: "v1alpha1",
      plural: "clusterecrcredentialsources",
      name: "tcl-shared",
    })) as { status?: { conditions?: Array<{ type: string; status: string; reason: string }> } };
    expect(source.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "True",
      reason: "Synced",
    });

    // The metrics name each claim by its owner value, and its info series gives its namespace.
    const text = await op.metrics.registry.metrics();
    for (const ns of TEAMS) {
      expect(text).toContain(`ecr_creds_refresher_ready{resource="claim_${ns}_pulls"} 1`);
      expect(text).toContain(
        `ecr_creds_refresher_claim_info{resource="claim_${ns}_pulls",namespace="${ns}",claim="pulls",source="tcl-shared"} 1`,
      );
    }
  });
});

describe("a namespace the source does not allow", () => {
  it("is refused with the reason naming the source and the namespace, nothing written, no AWS call", async () => {
    const t = tenant(OUTSIDER);
    expect(await createClaim(t, OUTSIDER, "pulls", claimSpec("tcl-lonely"))).toBeUndefined();
    expect(
      await createClaim(t, OUTSIDER, "shared", claimSpec("tcl-shared", "ecr-shared")),
    ).toBeUndefined();
    const lonely = await waitForClaim(k, OUTSIDER, "pulls", "False", "SourceNotAllowed");
    expect(claimReady(lonely)?.message).toContain(
      "failed to use ClusterECRCredentialSource tcl-lonely in namespace tcl-outsider",
    );
    const shared = await waitForClaim(k, OUTSIDER, "shared", "False", "SourceNotAllowed");
    expect(claimReady(shared)?.message).toContain("ClusterECRCredentialSource tcl-shared");
    await consistently(
      "nothing written in the outsider's namespace and no call with the lonely source's keys",
      async () => {
        for (const name of ["ecr-pull", "ecr-shared"]) {
          if (await readSecret(k, OUTSIDER, name)) return `Secret ${name} was written`;
        }
        return ecrCalls(LONELY).length === 0 ? true : "the lonely source's keys were used";
      },
      { forMs: 3_000 },
    );
    // The tenant can read why: on the claim, and in an Event in its own namespace.
    const seen = await getClaim(tenant(OUTSIDER), OUTSIDER, "pulls");
    expect(claimReady(seen)?.reason).toBe("SourceNotAllowed");
    const event = await waitFor("a SourceNotAllowed Event on the claim", async () => {
      const list = await tenant(OUTSIDER).core.listNamespacedEvent({ namespace: OUTSIDER });
      return list.items.find(
        (e) => e.reason === "SourceNotAllowed" && e.involvedObject.name === "pulls",
      );
    });
    expect(event.involvedObject.kind).toBe("ECRPullSecretClaim");
    expect(event.type).toBe("Warning");
  });
});

describe("an ECRPullSecret and a claim wanting the same Secret", () => {
  it("the first keeps it, the second reports the conflict, and neither flaps", async () => {
    // Tokens that outlive the test, so that no refresh rewrites a Secret while it is watched.
    aws.tokenLifetimeMs = 10 * 60_000;
    const before = issuedTo("tcl-shared").length;
    await waitFor(
      "a token that outlives the test",
      () => (issuedTo("tcl-shared").length > before ? true : undefined),
      { timeoutMs: LIFETIME_MS },
    );
    // An administrator's resource first in one namespace, a tenant's claim first in the other.
    await applyResource(k, "tcl-admin-a", {
      secretName: "ecr-pull",
      namespaces: [FIRST_ADMIN],
      ...sameCredentials,
    });
    await waitFor("the admin's Secret", () => readSecret(k, FIRST_ADMIN, "ecr-pull"));
    expect(
      await createClaim(tenant(FIRST_CLAIM), FIRST_CLAIM, "pulls", claimSpec("tcl-shared")),
    ).toBeUndefined();
    await waitForClaim(k, FIRST_CLAIM, "pulls", "True");

    expect(
      await createClaim(tenant(FIRST_ADMIN), FIRST_ADMIN, "pulls", claimSpec("tcl-shared")),
    ).toBeUndefined();
    await applyResource(k, "tcl-admin-b", {
      secretName: "ecr-pull",
      namespaces: [FIRST_CLAIM],
      ...sameCredentials,
    });
    const claim = await waitFor("the second-comer claim to report the conflict", async () => {
      const c = await getClaim(k, FIRST_ADMIN, "pulls");
      return c?.status?.failures?.some((f) => f.reason === "SecretConflict") ? c : undefined;
    });
    expect(claimReady(claim)?.status).toBe("False");
    expect(claim.status?.failures?.[0]?.message).toContain(
      "it belongs to ECRPullSecret tcl-admin-a",
    );
    // A second claim on the same Secret in the same namespace: the same rule between claims.
    expect(
      await createClaim(tenant(FIRST_CLAIM), FIRST_CLAIM, "pulls-2", claimSpec("tcl-shared")),
    ).toBeUndefined();
    const second = await waitFor("the second claim to report the conflict", async () => {
      const c = await getClaim(k, FIRST_CLAIM, "pulls-2");
      return c?.status?.failures?.some((f) => f.reason === "SecretConflict") ? c : undefined;
    });
    // The message names the claim that holds the Secret, not its owner value.
    const owned = `it belongs to ECRPullSecretClaim ${FIRST_CLAIM}/pulls;`;
    expect(second.status?.failures?.[0]?.message).toContain(owned);
    const resource = await waitFor(
      "the second-comer ECRPullSecret to report the conflict",
      async () => {
        const r = await getResource(k, "tcl-admin-b");
        return r?.status?.failures?.some((f) => f.reason === "SecretConflict") ? r : undefined;
      },
    );
    expect(readyCondition(resource)?.status).toBe("False");
    expect(resource.status?.failures?.[0]?.message).toContain(owned);

    const held = new Map<string, { rv?: string; owner?: string }>();
    for (const ns of [FIRST_ADMIN, FIRST_CLAIM]) {
      const s = await readSecret(k, ns, "ecr-pull");
      held.set(ns, {
        rv: s?.metadata?.resourceVersion,
        owner: s?.metadata?.labels?.["ecrcreds.io/owner"],
      });
    }
    expect(held.get(FIRST_ADMIN)?.owner).toBe("tcl-admin-a");
    expect(held.get(FIRST_CLAIM)?.owner).toBe(`claim_${FIRST_CLAIM}_pulls`);
    await consistently(
      "each Secret kept by its first owner, unwritten",
      async () => {
        for (const ns of [FIRST_ADMIN, FIRST_CLAIM]) {
          const s = await readSecret(k, ns, "ecr-pull");
          if (s?.metadata?.resourceVersion !== held.get(ns)?.rv) return `${ns}'s Secret changed`;
        }
        return true;
      },
      { forMs: 10_000, intervalMs: 250 },
    );
  });
});

describe("the README's workflow for teams, as the tenant", () => {
  it("kubectl get ecrclaim and status --namespace show the tenant its claim, with the tenant's rights alone", async () => {
    const ns = TEAMS[0] as string;
    const { kubeconfigPath } = tenantOfNs(ns);
    const got = spawnSync(
      "kubectl",
      ["--kubeconfig", kubeconfigPath, "get", "ecrclaim", "-n", ns],
      {
        encoding: "utf8",
      },
    );
    expect(got.stderr).toBe("");
    const [header, row] = got.stdout.trim().split("\n");
    expect(header?.split(/\s+/)).toEqual([
      "NAME",
      "READY",
      "SECRET",
      "SOURCE",
      "NAMESPACES",
      "EXPIRES",
      "AGE",
    ]);
    expect(row?.split(/\s+/).slice(0, 5)).toEqual([
      "pulls",
      "True",
      "ecr-pull",
      "tcl-shared",
      "1/1",
    ]);

    let out = "";
    let err = "";
    const sink = (write: (s: string) => void) =>
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          write(chunk.toString("utf8"));
          cb();
        },
      });
    const code = await runStatus(
      testConfig(kubeconfigPath),
      { namespace: ns },
      sink((s) => {
        out += s;
      }),
      sink((s) => {
        err += s;
      }),
    );
    console.log(`status --namespace ${ns} as the tenant:\n${out}`);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain(`namespace ${ns} is served by:`);
    expect(out).toMatch(/ECRPullSecretClaim\/pulls +True Synced +ecr-pull +expires /);
  });
});

describe("a tenant's Pod that cannot pull", () => {
  it("is diagnosed and counted on the claim, the Warning in the tenant's namespace naming the claim", async () => {
    const ns = TEAMS[3] as string;
    const image = `${HOST}/app:1`;
    await waitForClaim(k, ns, "pulls", "True");
    // Its own imagePullSecrets: admission adds none of the ServiceAccount's.
    const spec = {
      imagePullSecrets: [{ name: "their-own" }],
      containers: [{ name: "web", image }],
    };
    await tenant(ns).core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: "own-secrets" }, spec },
    });
    await kubeletFailsPull(k, { namespace: ns, name: "own-secrets" }, image);
    const claim = await waitFor("the claim's status.uncoveredPods", async () => {
      const c = await getClaim(k, ns, "pulls");
      return c?.status?.uncoveredPods?.count === 1 ? c : undefined;
    });
    expect(claim.status?.uncoveredPods).toEqual({
      count: 1,
      pods: [{ namespace: ns, name: "own-secrets", image, reason: "ImagePullBackOff" }],
    });
    const selector = "involvedObject.kind=ECRPullSecretClaim,involvedObject.name=pulls";
    const warnings = await waitFor("the Warning on the claim, in its namespace", async () => {
      const list = await k.core.listNamespacedEvent({ namespace: ns, fieldSelector: selector });
      const found = list.items.filter((e) => e.reason === "PodMissingPullSecret");
      return found.length > 0 ? found : undefined;
    });
    expect(warnings[0]?.message).toContain(
      `without the pull Secret ecr-pull of ECRPullSecretClaim ${ns}/pulls:`,
    );
    await k.core.deleteNamespacedPod({ namespace: ns, name: "own-secrets", gracePeriodSeconds: 0 });
    await waitFor("the claim's uncoveredPods back to 0", async () =>
      (await getClaim(k, ns, "pulls"))?.status?.uncoveredPods?.count === 0 ? true : undefined,
    );
  });
});

describe("a tenant deletes its claim", () => {
  it("its Secret and its ServiceAccount entry go with it (deletionPolicy Delete), and the claim is gone", async () => {
    const ns = TEAMS[1] as string;
    const sa = await k.core.readNamespacedServiceAccount({ namespace: ns, name: "default" });
    expect(sa.imagePullSecrets?.map((r) => r.name)).toContain("ecr-pull");
    await tenant(ns).custom.deleteNamespacedCustomObject({
      group: "ecrcreds.io",
      version: "v1alpha1",
      plural: "ecrpullsecretclaims",
      namespace: ns,
      name: "pulls",
    });
    await waitFor("the claim gone (its finalizer removed)", async () =>
      (await getClaim(k, ns, "pulls")) === undefined ? true : undefined,
    );
    expect(await readSecret(k, ns, "ecr-pull")).toBeUndefined();
    const after = await k.core.readNamespacedServiceAccount({ namespace: ns, name: "default" });
    expect(after.imagePullSecrets ?? []).toEqual([]);
    // The other teams keep theirs.
    expect(await readSecret(k, TEAMS[2] as string, "ecr-pull")).toBeDefined();
  });
});

describe("an administrator withdraws a namespace from the source", () => {
  it("that claim turns SourceNotAllowed and its Secret and ServiceAccount entry go at once; the others keep theirs", async () => {
    const withdrawn = TEAMS[3] as string;
    const kept = TEAMS[4] as string;
    expect(await readSecret(k, withdrawn, "ecr-pull")).toBeDefined();
    const patch = (namespaces: string[]) =>
      k.custom.patchClusterCustomObject(
        {
          group: "ecrcreds.io",
          version: "v1alpha1",
          plural: "clusterecrcredentialsources",
          name: "tcl-shared",
          body: { spec: { conditions: [{ namespaces }] } },
        },
        mergePatch,
      );
    await patch([...TEAMS.filter((ns) => ns !== withdrawn), "tcl-both-*"]);
    try {
      const claim = await waitForClaim(k, withdrawn, "pulls", "False", "SourceNotAllowed");
      expect(claimReady(claim)?.message).toContain(`in namespace ${withdrawn}`);
      await waitFor("the withdrawn namespace's Secret deleted", async () =>
        (await readSecret(k, withdrawn, "ecr-pull")) === undefined ? true : undefined,
      );
      const sa = await k.core.readNamespacedServiceAccount({
        namespace: withdrawn,
        name: "default",
      });
      expect(sa.imagePullSecrets ?? []).toEqual([]);
      expect(await readSecret(k, kept, "ecr-pull")).toBeDefined();
    } finally {
      await patch(["tcl-team-*", "tcl-both-*"]);
    }
    await waitForClaim(k, withdrawn, "pulls", "True");
    expect(await readSecret(k, withdrawn, "ecr-pull")).toBeDefined();
  });
});
