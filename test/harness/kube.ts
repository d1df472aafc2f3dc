// Test-side Kubernetes helpers: admin clients, namespaces, the CRD, a
// restricted identity for RBAC, and write counting from the audit log.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  type RbacV1Subject,
  setHeaderOptions,
  type V1CustomResourceDefinition,
  type V1Secret,
  type V1ServiceAccount,
} from "@kubernetes/client-node";
import {
  API_VERSION,
  crdManifest,
  type ECRPullSecret,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
} from "../../src/api/index.js";
import { waitFor } from "./controlplane.js";

export { waitFor };

export interface TestKube {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  rbac: RbacAuthorizationV1Api;
  ext: ApiextensionsV1Api;
}

export function testKube(kubeconfigPath: string): TestKube {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    ext: kc.makeApiClient(ApiextensionsV1Api),
  };
}

export const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export function statusOf(err: unknown): number {
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "number") {
    return err.code;
  }
  return 0;
}

/** Applies the CRD (create or replace) and waits until it is served. */
export async function installCrd(k: TestKube): Promise<void> {
  // Sent through the untyped custom-objects API (which works for any
  // cluster-scoped resource): the typed apiextensions client serializes only
  // the schema attributes its models know under their TypeScript names, and
  // would silently drop enums, defaults, list types and CEL rules.
  const crd = crdManifest() as V1CustomResourceDefinition;
  const name = crd.metadata?.name ?? "";
  const coords = {
    group: "apiextensions.k8s.io",
    version: "v1",
    plural: "customresourcedefinitions",
  };
  try {
    const existing = (await k.custom.getClusterCustomObject({
      ...coords,
      name,
    })) as V1CustomResourceDefinition;
    await k.custom.replaceClusterCustomObject({
      ...coords,
      name,
      body: {
        ...crd,
        metadata: { ...crd.metadata, resourceVersion: existing.metadata?.resourceVersion },
      },
    });
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
    await k.custom.createClusterCustomObject({ ...coords, body: crd });
  }
  await waitFor(
    "the ECRPullSecret CRD to be established",
    async () => {
      const c = await k.ext.readCustomResourceDefinition({ name });
      const established = c.status?.conditions?.some(
        (x) => x.type === "Established" && x.status === "True",
      );
      if (!established) return undefined;
      await k.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL });
      return true;
    },
    { timeoutMs: 30_000 },
  );
}

export async function createNamespace(
  k: TestKube,
  name: string,
  labels?: Record<string, string>,
): Promise<void> {
  await k.core.createNamespace({ body: { metadata: { name, labels } } });
}

/** Deletes namespaces and does not wait for them to finish terminating. */
export async function deleteNamespaces(k: TestKube, names: string[]): Promise<void> {
  await Promise.all(
    names.map(async (name) => {
      try {
        await k.core.deleteNamespace({ name });
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
    }),
  );
}

/** Waits for the `default` ServiceAccount that kube-controller-manager creates. */
export async function waitForDefaultServiceAccount(
  k: TestKube,
  namespace: string,
): Promise<V1ServiceAccount> {
  return await waitFor(`ServiceAccount ${namespace}/default`, async () => {
    try {
      return await k.core.readNamespacedServiceAccount({ namespace, name: "default" });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  });
}

export async function readSecret(
  k: TestKube,
  namespace: string,
  name: string,
): Promise<V1Secret | undefined> {
  try {
    return await k.core.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** Creates or replaces a Secret from string data (a credentials Secret, usually). */
export async function putSecret(
  k: TestKube,
  namespace: string,
  name: string,
  stringData: Record<string, string>,
): Promise<void> {
  const body = { metadata: { name, namespace }, stringData };
  try {
    await k.core.replaceNamespacedSecret({ name, namespace, body });
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
    await k.core.createNamespacedSecret({ namespace, body });
  }
}

/** A credentials Secret with AWS keys under the names the operator reads. */
export async function putAwsKeys(
  k: TestKube,
  namespace: string,
  name: string,
  keys: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
): Promise<void> {
  await putSecret(k, namespace, name, {
    AWS_ACCESS_KEY_ID: keys.accessKeyId,
    AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
    ...(keys.sessionToken ? { AWS_SESSION_TOKEN: keys.sessionToken } : {}),
  });
}

export function dockerConfigOf(secret: V1Secret): {
  auths: Record<string, { username: string; password: string; auth: string }>;
} {
  const raw = secret.data?.[".dockerconfigjson"];
  if (!raw)
    throw new Error(
      `Secret ${secret.metadata?.namespace}/${secret.metadata?.name} has no .dockerconfigjson`,
    );
  return JSON.parse(Buffer.from(raw, "base64").toString("utf8"));
}

/**
 * What must survive of a Secret the operator must not take over: type, data,
 * labels, annotations and resourceVersion (compare two with toEqual).
 */
export function secretSnapshot(s: V1Secret | undefined) {
  return {
    type: s?.type,
    data: s?.data,
    labels: s?.metadata?.labels,
    annotations: s?.metadata?.annotations,
    resourceVersion: s?.metadata?.resourceVersion,
  };
}

/**
 * What a kubelet writes after a failed pull of a Pod's `web` container
 * running `image`: the Pod Pending, the container waiting with `reason` and
 * `message` (by default the kubelet's back-off text). A 404 when the Pod is gone.
 */
export async function kubeletFailsPull(
  k: TestKube,
  pod: { namespace: string; name: string },
  image: string,
  { reason = "ImagePullBackOff", message = `Back-off pulling image "${image}"` } = {},
): Promise<void> {
  await k.core.patchNamespacedPodStatus(
    {
      ...pod,
      body: {
        status: {
          phase: "Pending",
          containerStatuses: [
            {
              name: "web",
              image,
              imageID: "",
              ready: false,
              restartCount: 0,
              state: { waiting: { reason, message } },
            },
          ],
        },
      },
    },
    mergePatch,
  );
}

export async function applyResource(
  k: TestKube,
  name: string,
  spec: ECRPullSecret["spec"],
): Promise<ECRPullSecret> {
  const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec };
  try {
    const existing = (await k.custom.getClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
    })) as ECRPullSecret;
    return (await k.custom.replaceClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
      body: { ...body, metadata: { ...existing.metadata, name } },
    })) as ECRPullSecret;
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
    return (await k.custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      body,
    })) as ECRPullSecret;
  }
}

export async function getResource(k: TestKube, name: string): Promise<ECRPullSecret | undefined> {
  try {
    return (await k.custom.getClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
    })) as ECRPullSecret;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

export async function deleteResource(k: TestKube, name: string): Promise<void> {
  try {
    await k.custom.deleteClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
    });
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
}

/**
 * Deletes an ECRPullSecret whose operator no longer runs: its finalizer, which
 * only the operator removes, is dropped by hand, so the resource is really
 * gone and no later test file's operator inherits it to clean up.
 */
export async function deleteResourceWithoutOperator(k: TestKube, name: string): Promise<void> {
  await deleteResource(k, name);
  await k.custom
    .patchClusterCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        name,
        body: { metadata: { finalizers: null } },
      },
      mergePatch,
    )
    .catch((err: unknown) => {
      if (statusOf(err) !== 404) throw err;
    });
}

export function readyCondition(r: ECRPullSecret | undefined) {
  return r?.status?.conditions?.find((c) => c.type === "Ready");
}

// --- Audit log ---------------------------------------------------------------

export interface AuditEvent {
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

/**
 * Requests in the API server's audit log since `since` (epoch ms) that pass
 * `filter`. A last line the API server is still writing is left for the next
 * read.
 */
export async function auditEvents(
  auditLogPath: string,
  filter: (e: AuditEvent) => boolean = () => true,
  since = 0,
): Promise<AuditEvent[]> {
  const text = await readFile(auditLogPath, "utf8");
  const events: AuditEvent[] = [];
  const lines = text.split("\n");
  lines.pop();
  for (const line of lines) {
    if (!line) continue;
    const e = JSON.parse(line) as AuditEvent;
    if (Date.parse(e.requestReceivedTimestamp) < since) continue;
    if (filter(e)) events.push(e);
  }
  return events;
}

const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

/** Write requests (create/update/patch/delete) in the API server's audit log since `since`. */
export async function auditWrites(
  auditLogPath: string,
  filter: (e: AuditEvent) => boolean = () => true,
  since = 0,
): Promise<AuditEvent[]> {
  return await auditEvents(auditLogPath, (e) => WRITE_VERBS.has(e.verb) && filter(e), since);
}

// --- Restricted identities ---------------------------------------------------

/**
 * A ClusterRoleBinding named `binding` of the ClusterRole `role` to
 * `subjects` (see serviceAccountSubject). Fails with the API's 409 when the
 * binding exists.
 */
export async function bindClusterRole(
  k: TestKube,
  binding: string,
  role: string,
  subjects: RbacV1Subject[],
): Promise<void> {
  await k.rbac.createClusterRoleBinding({
    body: {
      metadata: { name: binding },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects,
    },
  });
}

/** A ServiceAccount as a binding's subject. */
export function serviceAccountSubject(namespace: string, name: string): RbacV1Subject {
  return { kind: "ServiceAccount", name, namespace };
}

/**
 * Binds ServiceAccounts to cluster-admin: an identity of the operator's own,
 * so the audit log tells its requests from the test's, with every permission.
 */
export async function bindClusterAdmin(
  k: TestKube,
  binding: string,
  namespace: string,
  serviceAccounts: readonly string[],
): Promise<void> {
  await bindClusterRole(
    k,
    binding,
    "cluster-admin",
    serviceAccounts.map((name) => serviceAccountSubject(namespace, name)),
  );
}

/**
 * A kubeconfig for a ServiceAccount, with a token from the TokenRequest API:
 * requests made with it go through RBAC like the operator's in a cluster.
 */
export async function kubeconfigForServiceAccount(
  k: TestKube,
  namespace: string,
  name: string,
  dir: string,
): Promise<string> {
  try {
    await k.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
  }
  return await kubeconfigWithToken(k, namespace, name, dir);
}

/** A kubeconfig with a TokenRequest token of an existing ServiceAccount. */
export async function kubeconfigWithToken(
  k: TestKube,
  namespace: string,
  name: string,
  dir: string,
): Promise<string> {
  const tr = await k.core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = tr.status?.token ?? "";
  const cluster = k.kc.getCurrentCluster();
  const path = join(dir, `${namespace}-${name}.kubeconfig`);
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "local",
          cluster: { server: cluster?.server, "certificate-authority-data": cluster?.caData },
        },
      ],
      users: [{ name, user: { token } }],
      contexts: [{ name, context: { cluster: "local", user: name } }],
      "current-context": name,
    }),
  );
  return path;
}
