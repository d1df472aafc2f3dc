// The leader Lease as tests see it: read it, and tell which replica process
// holds it.
import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { statusOf } from "./kube.js";
import type { OperatorProcess } from "./operator.js";

/** The Lease `namespace/name`; undefined while it does not exist. */
export async function readLease(
  leases: CoordinationV1Api,
  namespace: string,
  name: string,
): Promise<V1Lease | undefined> {
  try {
    return await leases.readNamespacedLease({ namespace, name });
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** The replica whose log says it became leader with the Lease's current holder identity. */
export function replicaHolding(
  procs: ReadonlyMap<string, OperatorProcess>,
  identity: string | undefined,
): string | undefined {
  if (!identity) return undefined;
  for (const [name, p] of procs)
    if (p.output.some((l) => l.includes('"msg":"became leader"') && l.includes(identity)))
      return name;
  return undefined;
}
