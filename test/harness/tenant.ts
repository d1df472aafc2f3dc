// A tenant of a shared cluster, as the threat model has it: a ServiceAccount
// bound to the built-in `admin` ClusterRole in its own namespace only (a
// RoleBinding, not a ClusterRoleBinding), so every request it makes goes
// through RBAC the way a namespace admin's would. Tests that show what a
// tenant can or cannot do to the operator act only through this client.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import {
  claimCrdManifest,
  type ECRPullSecretClaim,
  sourceCrdManifest,
} from "../../src/api/index.js";
import { helmTemplate, type Rendered, serverSideApply } from "./chart.js";
import { waitFor } from "./controlplane.js";
import { kubeconfigForServiceAccount, statusOf, type TestKube, testKube } from "./kube.js";

export interface Tenant {
  /** The tenant's own namespace: the only one its RoleBinding covers. */
  namespace: string;
  /** The tenant ServiceAccount's name (in `namespace`). */
  serviceAccount: string;
  /** A kubeconfig file authenticating as that ServiceAccount. */
  kubeconfigPath: string;
  /** Clients authenticated as the tenant. */
  kube: TestKube;
}

/**
 * Makes `namespace`'s tenant: a ServiceAccount `tenant-admin` there, bound by a
 * RoleBinding to the built-in `admin` ClusterRole in that namespace only, and
 * clients that authenticate with its TokenRequest token (an hour).
 * `admin` is the administrator's client; the namespace must exist.
 */
export async function tenantOf(admin: TestKube, namespace: string): Promise<Tenant> {
  const serviceAccount = "tenant-admin";
  try {
    await admin.rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "tenant-admin" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
        subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace }],
      },
    });
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
  }
  const dir = await mkdtemp(join(tmpdir(), `tenant-${namespace}-`));
  const kubeconfigPath = await kubeconfigForServiceAccount(admin, namespace, serviceAccount, dir);
  return { namespace, serviceAccount, kubeconfigPath, kube: testKube(kubeconfigPath) };
}

// --- The tenant kinds (issue 31): their CRDs, the chart's roles for people,
// and claims and sources written as a tenant or an administrator would.

const GROUP_VERSION = { group: "ecrcreds.io", version: "v1alpha1" };
export const CLAIMS = { ...GROUP_VERSION, plural: "ecrpullsecretclaims" };
export const SOURCES = { ...GROUP_VERSION, plural: "clusterecrcredentialsources" };

/** An API server's refusal, as the client throws it. */
export interface Refusal {
  code?: number;
  body?: string;
}

/** The message of a refusal's Status body. */
export const messageOf = (r: Refusal | undefined): string =>
  (JSON.parse(r?.body ?? "{}") as { message?: string }).message ?? "";

/**
 * Installs (or replaces) the ClusterECRCredentialSource and ECRPullSecretClaim
 * CRDs, untyped as installCrd does (the typed client drops CEL rules), and
 * waits until both are served.
 */
export async function installTenantCrds(k: TestKube): Promise<void> {
  const coords = {
    group: "apiextensions.k8s.io",
    version: "v1",
    plural: "customresourcedefinitions",
  };
  for (const crd of [sourceCrdManifest(), claimCrdManifest()]) {
    const name = crd.metadata.name;
    try {
      const existing = (await k.custom.getClusterCustomObject({ ...coords, name })) as {
        metadata: { resourceVersion: string };
      };
      const metadata = { ...crd.metadata, resourceVersion: existing.metadata.resourceVersion };
      await k.custom.replaceClusterCustomObject({ ...coords, name, body: { ...crd, metadata } });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      await k.custom.createClusterCustomObject({ ...coords, body: crd });
    }
  }
  await waitFor(
    "the tenant kinds to be served",
    async () => {
      try {
        await k.custom.listClusterCustomObject(SOURCES);
        await k.custom.listNamespacedCustomObject({ ...CLAIMS, namespace: "default" });
        return true;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000 },
  );
}

/**
 * Applies the chart's ClusterRoles for people (viewer, claims, editor) of
 * release `release`, and nothing else of the chart; returns them, for
 * deleteUserRoles.
 */
export async function applyUserRoles(
  k: TestKube,
  release: string,
  namespace: string,
): Promise<Rendered[]> {
  const roles = helmTemplate(release, namespace, []).filter(
    (o) => o.kind === "ClusterRole" && /-(viewer|claims|editor)$/.test(o.metadata?.name ?? ""),
  );
  for (const o of roles) await serverSideApply(k, o);
  return roles;
}

export async function deleteUserRoles(k: TestKube, roles: readonly Rendered[]): Promise<void> {
  for (const o of roles) {
    await k.rbac.deleteClusterRole({ name: o.metadata?.name ?? "" }).catch(() => undefined);
  }
}

/** Creates a claim as `who`; undefined when admitted, else the refusal. */
export async function createClaim(
  who: TestKube,
  namespace: string,
  name: string,
  spec: object,
  dryRun = false,
): Promise<Refusal | undefined> {
  try {
    await who.custom.createNamespacedCustomObject({
      ...CLAIMS,
      namespace,
      body: {
        apiVersion: "ecrcreds.io/v1alpha1",
        kind: "ECRPullSecretClaim",
        metadata: { name },
        spec,
      },
      ...(dryRun ? { dryRun: "All" } : {}),
    });
    return undefined;
  } catch (err) {
    return err as Refusal;
  }
}

/** A claim as the API server has it now; undefined when it does not exist. */
export async function getClaim(
  k: TestKube,
  namespace: string,
  name: string,
): Promise<ECRPullSecretClaim | undefined> {
  try {
    return (await k.custom.getNamespacedCustomObject({
      ...CLAIMS,
      namespace,
      name,
    })) as ECRPullSecretClaim;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** A claim's Ready condition. */
export const claimReady = (c: ECRPullSecretClaim | undefined) =>
  c?.status?.conditions?.find((x) => x.type === "Ready");

/** Waits until the claim's Ready condition has `status` (and `reason`, when given). */
export async function waitForClaim(
  k: TestKube,
  namespace: string,
  name: string,
  status: "True" | "False",
  reason?: string,
  timeoutMs = 30_000,
): Promise<ECRPullSecretClaim> {
  return await waitFor(
    `claim ${namespace}/${name} Ready=${status}${reason ? ` (${reason})` : ""}`,
    async () => {
      const c = await getClaim(k, namespace, name);
      const ready = claimReady(c);
      const observed = c?.status?.observedGeneration === c?.metadata?.generation;
      return ready?.status === status && (!reason || ready.reason === reason) && observed
        ? c
        : undefined;
    },
    { timeoutMs },
  );
}

/** Creates a ClusterECRCredentialSource (as `who`); undefined when admitted, else the refusal. */
export async function createSource(
  who: TestKube,
  name: string,
  spec: object,
): Promise<Refusal | undefined> {
  try {
    await who.custom.createClusterCustomObject({
      ...SOURCES,
      body: {
        apiVersion: "ecrcreds.io/v1alpha1",
        kind: "ClusterECRCredentialSource",
        metadata: { name },
        spec,
      },
    });
    return undefined;
  } catch (err) {
    return err as Refusal;
  }
}

export async function deleteSource(k: TestKube, name: string): Promise<void> {
  await k.custom.deleteClusterCustomObject({ ...SOURCES, name }).catch(() => undefined);
}

/**
 * Deletes every claim in `namespaces` and waits for the operator's cleanup;
 * claims still held by a finalizer after `timeoutMs` (no operator ran) lose
 * it, so that their namespaces can go.
 */
export async function deleteClaims(
  k: TestKube,
  namespaces: readonly string[],
  timeoutMs = 20_000,
): Promise<void> {
  const list = async (namespace: string) =>
    (
      (await k.custom
        .listNamespacedCustomObject({ ...CLAIMS, namespace })
        .catch(() => ({ items: [] }))) as { items: ECRPullSecretClaim[] }
    ).items;
  for (const namespace of namespaces) {
    for (const c of await list(namespace)) {
      const name = c.metadata?.name ?? "";
      await k.custom
        .deleteNamespacedCustomObject({ ...CLAIMS, namespace, name })
        .catch(() => undefined);
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const namespace of namespaces) {
    for (;;) {
      const left = await list(namespace);
      if (left.length === 0) break;
      if (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      for (const c of left) {
        await k.custom
          .patchNamespacedCustomObject(
            {
              ...CLAIMS,
              namespace,
              name: c.metadata?.name ?? "",
              body: { metadata: { finalizers: null } },
            },
            setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
          )
          .catch(() => undefined);
      }
      break;
    }
  }
}
