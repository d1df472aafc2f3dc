// What the operator made, read back from the API server: the password in a
// pull Secret, a ServiceAccount's imagePullSecrets, the Secrets a resource
// owns, a resource's conditions and Events; and waits on them.
import type { V1Secret } from "@kubernetes/client-node";
import type { ECRPullSecret } from "../../src/api/index.js";
import {
  dockerConfigOf,
  getResource,
  readSecret,
  readyCondition,
  statusOf,
  type TestKube,
  waitFor,
} from "./kube.js";

export const OWNER_LABEL = "ecrcreds.io/owner";
export const MANAGED_BY = "app.kubernetes.io/managed-by";

/** The registry host of an account's private ECR. */
export function ecrHost(accountId: string, region = "us-east-1"): string {
  return `${accountId}.dkr.ecr.${region}.amazonaws.com`;
}

/** The password a pull Secret holds for `host`. */
export function passwordIn(secret: V1Secret | undefined, host: string): string | undefined {
  return secret ? dockerConfigOf(secret).auths[host]?.password : undefined;
}

/** The password in Secret `namespace/name` for `host`, if the Secret exists. */
export async function readPassword(
  k: TestKube,
  namespace: string,
  name: string,
  host: string,
): Promise<string | undefined> {
  return passwordIn(await readSecret(k, namespace, name), host);
}

/** The names in a ServiceAccount's imagePullSecrets; undefined when it does not exist. */
export async function pullSecretsOf(
  k: TestKube,
  namespace: string,
  serviceAccount: string,
): Promise<string[] | undefined> {
  try {
    const sa = await k.core.readNamespacedServiceAccount({ namespace, name: serviceAccount });
    return (sa.imagePullSecrets ?? []).map((r) => r.name ?? "");
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** Waits until a ServiceAccount's imagePullSecrets are exactly `expected`, in order. */
export async function waitForPullSecrets(
  k: TestKube,
  namespace: string,
  serviceAccount: string,
  expected: readonly string[],
): Promise<void> {
  await waitFor(
    `${namespace}/${serviceAccount} imagePullSecrets = [${expected.join(",")}]`,
    async () =>
      (await pullSecretsOf(k, namespace, serviceAccount))?.join() === expected.join()
        ? true
        : undefined,
  );
}

/** "namespace/name" of every Secret with this resource's owner label, sorted. */
export async function secretsOwnedBy(k: TestKube, owner: string): Promise<string[]> {
  const list = await k.core.listSecretForAllNamespaces({
    labelSelector: `${OWNER_LABEL}=${owner}`,
  });
  return list.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`).sort();
}

/** Waits until the Secrets with this resource's owner label are exactly `expected` ("namespace/name"). */
export async function waitForOwnedSecrets(
  k: TestKube,
  owner: string,
  expected: readonly string[],
): Promise<void> {
  await waitFor(`${owner}'s Secrets = ${expected.join(", ")}`, async () =>
    (await secretsOwnedBy(k, owner)).join() === [...expected].sort().join() ? true : undefined,
  );
}

/** Waits until the resource exists and `match` holds; returns it. */
export async function waitForResource(
  k: TestKube,
  name: string,
  what: string,
  match: (r: ECRPullSecret) => boolean,
  timeoutMs?: number,
): Promise<ECRPullSecret> {
  return await waitFor(
    `${name}: ${what}`,
    async () => {
      const r = await getResource(k, name);
      return r && match(r) ? r : undefined;
    },
    timeoutMs === undefined ? undefined : { timeoutMs },
  );
}

/** The operator has written status for the resource's current generation. */
export function observed(r: ECRPullSecret): boolean {
  return r.status?.observedGeneration === r.metadata?.generation;
}

/** Waits until Ready is True; returns the resource. */
export async function waitForReady(
  k: TestKube,
  name: string,
  timeoutMs?: number,
): Promise<ECRPullSecret> {
  return await waitForResource(
    k,
    name,
    "Ready",
    (r) => readyCondition(r)?.status === "True",
    timeoutMs,
  );
}

/** Waits until Ready's reason is `reason` for the current generation; returns the resource. */
export async function waitForReason(
  k: TestKube,
  name: string,
  reason: string,
  timeoutMs?: number,
): Promise<ECRPullSecret> {
  return await waitForResource(
    k,
    name,
    `Ready reason ${reason}`,
    (r) => readyCondition(r)?.reason === reason && observed(r),
    timeoutMs,
  );
}

/** Reasons of the Events about a resource (they live in `default`). */
export async function eventReasons(k: TestKube, name: string): Promise<string[]> {
  const events = await k.core.listNamespacedEvent({
    namespace: "default",
    fieldSelector: `involvedObject.name=${name}`,
  });
  return events.items.map((e) => e.reason ?? "");
}
