import { describe, expect, it } from "vitest";
import type {
  ClusterECRCredentialSource,
  ECRPullSecretClaim,
  ECRPullSecretStatus,
} from "../api/index.js";
import type { Cached } from "../kube/types.js";
import { ClaimCluster, type ClaimStore, claimOf, sourceStatus } from "./claim-cluster.js";
import { FakeCluster } from "./cluster.fake.js";
import type { ObjectKey } from "./cluster.js";

const source: ClusterECRCredentialSource = {
  metadata: { name: "shared" },
  spec: {
    credentials: { secretRef: { name: "aws-creds", namespace: "ops" } },
    region: "eu-west-1",
    conditions: [{ namespaceSelector: { matchLabels: { ecr: "on" } } }],
  },
};

function claim(namespace: string, name: string): Cached<ECRPullSecretClaim> {
  return {
    metadata: {
      namespace,
      name,
      uid: `uid-${name}`,
      generation: 3,
      resourceVersion: "42",
      finalizers: ["ecrcreds.io/cleanup"],
    },
    spec: { secretName: "ecr-pull", sourceRef: { name: "shared" }, deletionPolicy: "Retain" },
  } as Cached<ECRPullSecretClaim>;
}

function world() {
  const base = new FakeCluster();
  base.addNamespace("team-a", { ecr: "on" });
  base.addNamespace("team-b");
  base.addResource({ metadata: { name: "admins" }, spec: { secretName: "x", namespaces: ["a"] } });
  const claims = new Map([
    ["team-a/pulls", claim("team-a", "pulls")],
    ["team-b/pulls", claim("team-b", "pulls")],
  ]);
  const writes: string[] = [];
  const store: ClaimStore = {
    claim: (k: ObjectKey) => claims.get(`${k.namespace}/${k.name}`),
    source: (name) => (name === "shared" ? source : undefined),
    claims: () => claims.values(),
    patchClaimMetadata: async (k, metadata) => {
      writes.push(`metadata ${k.namespace}/${k.name} ${JSON.stringify(metadata)}`);
    },
    patchSourceStatus: async (name, status) => {
      writes.push(`source ${name} ${status.conditions?.[0]?.status}`);
    },
    patchClaimStatus: async (k, status: ECRPullSecretStatus, rv) => {
      writes.push(`status ${k.namespace}/${k.name}@${rv} ${status.conditions?.[0]?.reason}`);
    },
  };
  return { base, cluster: new ClaimCluster(base, store), writes };
}

describe("ClaimCluster", () => {
  it("shows an allowed claim as the resource it resolves to, under its owner value", () => {
    const { cluster } = world();
    const r = cluster.resource("claim_team-a_pulls");
    expect(r?.metadata).toEqual({
      name: "claim_team-a_pulls",
      uid: "uid-pulls",
      generation: 3,
      resourceVersion: "42",
      finalizers: ["ecrcreds.io/cleanup"],
    });
    expect(r?.spec).toMatchObject({
      secretName: "ecr-pull",
      namespaces: ["team-a"],
      credentials: source.spec.credentials,
      region: "eu-west-1",
      deletionPolicy: "Retain",
    });
    expect(cluster.refusal("claim_team-a_pulls")).toBeUndefined();
    // The queue key names the same claim.
    expect(cluster.resource("team-a/pulls")?.metadata.name).toBe("claim_team-a_pulls");
  });

  it("shows a refused claim targeting nothing, and says why", () => {
    const { cluster } = world();
    expect(cluster.refusal("claim_team-b_pulls")?.code).toBe("SourceNotAllowed");
    expect(cluster.resource("claim_team-b_pulls")?.spec).toEqual({
      secretName: "ecr-pull",
      namespaces: [],
      deletionPolicy: "Retain",
    });
    expect(cluster.resource("claim_team-c_pulls")).toBeUndefined();
  });

  it("sends a claim's metadata and status writes to the claim, an ECRPullSecret's to the cluster", async () => {
    const { base, cluster, writes } = world();
    await cluster.patchResourceMetadata("claim_team-a_pulls", { finalizers: [] });
    const status = { conditions: [{ reason: "Synced" }] } as ECRPullSecretStatus;
    await cluster.patchStatus("claim_team-a_pulls", status, "42");
    await cluster.patchStatus("admins", status, base.resource("admins")?.metadata.resourceVersion);
    expect(writes).toEqual([
      'metadata team-a/pulls {"finalizers":[]}',
      "status team-a/pulls@42 Synced",
    ]);
    expect(base.writes).toEqual(["patch status admins"]);
    expect(cluster.resource("admins")?.metadata.name).toBe("admins");
  });

  it("reads a claim from its owner value or its queue key, never from an ECRPullSecret's name", () => {
    expect(claimOf("claim_team-a_pulls.v2")).toEqual({ namespace: "team-a", name: "pulls.v2" });
    expect(claimOf("team-a/pulls")).toEqual({ namespace: "team-a", name: "pulls" });
    for (const name of ["admins", "claim-a", "claim_", "claim_team-a_", "claim__x"]) {
      expect(claimOf(name), name).toBeUndefined();
    }
  });
});

describe("sourceStatus", () => {
  const at = new Date("2026-12-07T19:00:00Z");
  const later = new Date("2026-12-07T19:05:00Z");
  const offered = { ...source, metadata: { name: "shared", generation: 2 } };

  it("says Ready while the source's credentials get tokens, and nothing more while that holds", () => {
    const ready = sourceStatus(offered, { ok: true }, at);
    expect(ready).toEqual({
      observedGeneration: 2,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Synced",
          message: "its credentials get ECR tokens; every claim over it shares them",
          lastTransitionTime: at.toISOString(),
          observedGeneration: 2,
        },
      ],
    });
    expect(sourceStatus({ ...offered, status: ready }, { ok: true }, later)).toBeUndefined();
  });

  it("says why not with the fetch's reason, and keeps the transition time while the status stays", () => {
    const refused = {
      ok: false,
      reason: "AccessDenied",
      message: "failed to get an ECR token: denied",
    };
    const down = sourceStatus(offered, refused, at);
    expect(down?.conditions?.[0]).toMatchObject({ status: "False", reason: "AccessDenied" });
    const other = sourceStatus(
      { ...offered, status: down },
      { ok: false, reason: "CredentialsInvalid", message: "failed to use the keys: refused" },
      later,
    );
    expect(other?.conditions?.[0]).toMatchObject({
      reason: "CredentialsInvalid",
      lastTransitionTime: at.toISOString(),
    });
  });
});
