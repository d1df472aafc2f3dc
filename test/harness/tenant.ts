// A tenant of a shared cluster, as the threat model has it: a ServiceAccount
// bound to the built-in `admin` ClusterRole in its own namespace only (a
// RoleBinding, not a ClusterRoleBinding), so every request it makes goes
// through RBAC the way a namespace admin's would. Tests that show what a
// tenant can or cannot do to the operator act only through this client.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
