// Out in the field (issue 29, kind 2, and issue 28 kind 5): acting on Pods as
// if their ServiceAccount decided their pull Secrets. A Pod whose template
// sets its own imagePullSecrets never gets the ServiceAccount's entries, so
// deleting it under spec.podRecovery: Recreate brings back a Pod just as
// uncovered: before the fix the operator deleted Pod after Pod (the
// once-per-Pod guard is keyed by UID, which each replacement renews). And
// where the operator may not delete Pods (the chart grants that only with
// podRecovery.enabled) it tried anyway and said nothing in status.
//
// No kubelet here: a loop plays one, writing a failed pull into the status of
// every Pod of the test's ReplicaSets as soon as it appears, for a fixed
// window; kube-controller-manager's replicaset controller recreates deleted
// Pods as on a real cluster.
import { isDeepStrictEqual } from "node:util";
import { AppsV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  applyResource,
  auditWrites,
  bindClusterRole,
  getResource,
  kubeconfigForServiceAccount,
  kubeletFailsPull,
  mergePatch,
  serviceAccountSubject,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { type InProcessOperator, startOperator, testConfig } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const ACCOUNT = "292900000002";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const IMAGE = `${HOST}/team/web:1.2`;
const OPS = "field-pods-ops";
const OWN_LIST = "field-pods-own"; // template lists only mirror-cred
const LOOKALIKE = "field-pods-alike"; // template lists mirror-cred, so does the ServiceAccount
const NO_RIGHT = "field-pods-noright"; // the operator may not delete Pods here
const NAMESPACES = [OWN_LIST, LOOKALIKE, NO_RIGHT];
const RESOURCE = "field-pods";
const OPERATOR = "pods-operator";
/** How long the kubelet stand-in fails every new Pod's pull. */
const WINDOW_MS = 12_000;

let stack: Stack;
let k: TestKube;
let op: InProcessOperator;

/** What a kubelet writes after a failed pull of the Pod's `web` container. */
async function failPull(namespace: string, name: string) {
  await kubeletFailsPull(k, { namespace, name }, IMAGE, {
    message: `Back-off pulling "${IMAGE}"`,
  });
}

/** For `ms`, fails the pull of every Pod of these namespaces that has not failed yet. */
async function kubeletFailsEveryPull(namespaces: readonly string[], ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const namespace of namespaces) {
      const pods = await k.core.listNamespacedPod({ namespace, labelSelector: "app=web" });
      for (const p of pods.items) {
        if (p.metadata?.deletionTimestamp || p.status?.containerStatuses?.length) continue;
        await failPull(namespace, p.metadata?.name ?? "").catch(() => undefined);
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function replicaSet(namespace: string, replicas: number, pullSecrets?: string[]) {
  await k.kc.makeApiClient(AppsV1Api).createNamespacedReplicaSet({
    namespace,
    body: {
      metadata: { name: "web" },
      spec: {
        replicas,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: {
            containers: [{ name: "web", image: IMAGE }],
            ...(pullSecrets ? { imagePullSecrets: pullSecrets.map((name) => ({ name })) } : {}),
          },
        },
      },
    },
  });
  return await waitFor(`${replicas} Pods of ${namespace}/web`, async () => {
    const pods = await k.core.listNamespacedPod({ namespace, labelSelector: "app=web" });
    return pods.items.length === replicas ? pods.items : undefined;
  });
}

const podDeletions = async (namespace: string, since: number) =>
  (
    await auditWrites(
      cp.auditLogPath,
      (e) =>
        e.user.username === stack.userOf(OPERATOR) &&
        e.verb === "delete" &&
        e.objectRef?.resource === "pods" &&
        e.objectRef?.namespace === namespace,
      since,
    )
  ).map((e) => e.objectRef?.name);

const names = (pods: V1Pod[]) => pods.map((p) => p.metadata?.name ?? "").sort();

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: NAMESPACES,
    identities: [
      {
        accessKeyId: "AKIAFIELDPODS0000001",
        secretAccessKey: "field-pods-secret-key-00000000000000001",
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/field-pods`,
      },
    ],
    tokenLifetimeMs: 30 * 60_000,
  });
  k = stack.k;
  stack.resources.push(RESOURCE);
  for (const ns of NAMESPACES) await waitForDefaultServiceAccount(k, ns);
  // The chart's rights without podRecovery.enabled, plus delete on Pods in
  // the namespaces where the test wants it: everything but Pod deletion
  // cluster-wide (a stand-in for the chart's ClusterRole), delete on Pods by
  // RoleBinding in two of the three namespaces.
  const rbac = k.rbac;
  // Left by an interrupted run: replaced.
  for (const name of [`${OPS}-all-but-pod-delete`, `${OPS}-pod-delete`]) {
    await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
    await rbac.deleteClusterRole({ name }).catch(() => undefined);
  }
  await rbac.createClusterRole({
    body: {
      metadata: { name: `${OPS}-all-but-pod-delete` },
      rules: [
        {
          apiGroups: ["*"],
          resources: ["*"],
          verbs: ["get", "list", "watch", "create", "update", "patch"],
        },
        {
          apiGroups: ["", "coordination.k8s.io"],
          resources: ["secrets", "leases"],
          verbs: ["delete"],
        },
      ],
    },
  });
  await rbac.createClusterRole({
    body: {
      metadata: { name: `${OPS}-pod-delete` },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["delete"] }],
    },
  });
  const kubeconfig = await kubeconfigForServiceAccount(k, OPS, OPERATOR, stack.dir);
  await bindClusterRole(k, `${OPS}-all-but-pod-delete`, `${OPS}-all-but-pod-delete`, [
    serviceAccountSubject(OPS, OPERATOR),
  ]);
  for (const namespace of [OWN_LIST, LOOKALIKE]) {
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "operator-pod-delete" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: `${OPS}-pod-delete`,
        },
        subjects: [{ kind: "ServiceAccount", name: OPERATOR, namespace: OPS }],
      },
    });
  }
  stack.onStop(async () => {
    for (const name of [`${OPS}-all-but-pod-delete`, `${OPS}-pod-delete`]) {
      await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
      await rbac.deleteClusterRole({ name }).catch(() => undefined);
    }
  });
  op = await startOperator(
    testConfig(kubeconfig, {
      region: "us-east-1",
      leaderElectionNamespace: OPS,
      credentialsSecretName: "aws-creds",
      credentialsSecretNamespace: OPS,
    }),
  );
  stack.onStop(() => op.stop());
});

afterAll(async () => {
  await stack?.stop();
});

describe("Pods that keep their own imagePullSecrets, under podRecovery: Recreate", () => {
  it("deletes none whose template lists its own Secrets, recreates a look-alike once, deletes nothing without the right, and says why in status, Events and a metric", async () => {
    // The look-alike's ServiceAccount already lists mirror-cred: its Pods'
    // list reads as a copy of the ServiceAccount's, so one recreation is tried.
    await k.core.patchNamespacedServiceAccount(
      {
        namespace: LOOKALIKE,
        name: "default",
        body: { imagePullSecrets: [{ name: "mirror-cred" }] },
      },
      mergePatch,
    );
    const own = await replicaSet(OWN_LIST, 2, ["mirror-cred"]);
    const alike = await replicaSet(LOOKALIKE, 1, ["mirror-cred"]);
    const noRight = await replicaSet(NO_RIGHT, 1);
    await applyResource(k, RESOURCE, {
      secretName: "ecr-pull",
      namespaces: NAMESPACES,
      registries: [{ accountId: ACCOUNT }],
      podRecovery: "Recreate",
    });
    await waitFor("Ready and every default ServiceAccount patched", async () => {
      const r = await getResource(k, RESOURCE);
      if (!(r?.status?.registries ?? []).includes(HOST)) return undefined;
      for (const namespace of NAMESPACES) {
        const sa = await k.core.readNamespacedServiceAccount({ namespace, name: "default" });
        if (!sa.imagePullSecrets?.some((s) => s.name === "ecr-pull")) return undefined;
      }
      return true;
    });
    const since = Date.now();
    await kubeletFailsEveryPull(NAMESPACES, WINDOW_MS);

    // Pods deleted by the operator in the window: none of the template's own
    // list, one of the look-alike (its replacement showed it does not help),
    // none where it may not delete.
    const deleted = {
      own: await podDeletions(OWN_LIST, since),
      alike: await podDeletions(LOOKALIKE, since),
      noRight: await podDeletions(NO_RIGHT, since),
    };
    console.log(
      `Pods deleted in ${WINDOW_MS / 1000} s: own list ${deleted.own.length}, look-alike ${deleted.alike.length}, no right ${deleted.noRight.length}`,
    );
    expect(deleted.own).toEqual([]);
    expect(deleted.alike).toEqual([alike[0]?.metadata?.name]);
    expect(deleted.noRight).toEqual([]);
    const now = async (namespace: string) =>
      (await k.core.listNamespacedPod({ namespace, labelSelector: "app=web" })).items;
    expect(names(await now(OWN_LIST))).toEqual(names(own));
    expect(names(await now(NO_RIGHT))).toEqual(names(noRight));
    const [replacement] = await now(LOOKALIKE);
    expect(replacement?.metadata?.name).not.toBe(alike[0]?.metadata?.name);

    const templateFix =
      "recreating it would not help: the Pod template of ReplicaSet web sets its own imagePullSecrets (mirror-cred), which ServiceAccount default's entries never reach; add ecr-pull to the Pod template's imagePullSecrets";
    const replacementFix =
      "recreating it would not help: the Pod template of ReplicaSet web sets its own imagePullSecrets, which ServiceAccount default's entries never reach; add ecr-pull to the Pod template's imagePullSecrets";
    const rightFix = `spec.podRecovery: Recreate is set but the operator may not delete Pods in ${NO_RIGHT}: set the chart value podRecovery.enabled=true (it grants delete on Pods), or delete it so that ReplicaSet web recreates it`;
    const pod = (namespace: string, p: V1Pod | undefined, recovery: string) => ({
      namespace,
      name: p?.metadata?.name,
      image: IMAGE,
      reason: "ImagePullBackOff",
      recovery,
    });
    const expected = [
      pod(LOOKALIKE, replacement, replacementFix),
      pod(NO_RIGHT, noRight[0], rightFix),
      ...own.map((p) => pod(OWN_LIST, p, templateFix)),
    ].sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
    const status = await waitFor("status.uncoveredPods with what is done about each", async () => {
      const r = await getResource(k, RESOURCE);
      const u = r?.status?.uncoveredPods;
      return u?.count === 4 && isDeepStrictEqual(u.pods, expected) ? u : undefined;
    }).catch(async () => (await getResource(k, RESOURCE))?.status?.uncoveredPods);
    expect(status).toEqual({ count: 4, pods: expected });

    // The Warning on a Pod of the template's own list names the fix.
    const events = await k.core.listNamespacedEvent({
      namespace: OWN_LIST,
      fieldSelector: `involvedObject.name=${own[0]?.metadata?.name},reason=PodMissingPullSecret`,
    });
    expect(events.items.map((e) => e.message)).toEqual([
      `Pod ${OWN_LIST}/${own[0]?.metadata?.name} waits on ${IMAGE} (ImagePullBackOff) without the pull Secret ecr-pull of ECRPullSecret ${RESOURCE}: it was created before ServiceAccount default got the Secret, or it sets its own imagePullSecrets; ${templateFix}`,
    ]);
    // Counted once per Pod and decision.
    const counted = (await op.metrics.podRecoveries.get()).values
      .filter((v) => v.labels.resource === RESOURCE)
      .map((v) => `${v.labels.action}=${v.value}`)
      .sort();
    expect(counted).toEqual([
      "deleted=1",
      "notAllowed=1",
      "replacementStillUncovered=1",
      "templateSetsPullSecrets=2",
    ]);
  }, 90_000);
});
