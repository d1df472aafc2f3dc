// One Lease behind a fake KubeClient, for the unit tests of leader election
// and of the manager.
import { ApiError, type KubeClient } from "../kube/client.js";
import type { Lease } from "../kube/types.js";

/** One Lease, with the API server's resourceVersion and MicroTime rules. */
export class LeaseStore {
  lease: Lease | undefined;
  version = 0;
  writes: string[] = [];

  client(): KubeClient {
    const store = this;
    const fake = {
      async get() {
        if (!store.lease) throw new ApiError(404, "not found", "NotFound");
        return structuredClone(store.lease);
      },
      async create(_type: unknown, body: Lease) {
        store.check(body);
        if (store.lease) throw new ApiError(409, "exists", "AlreadyExists");
        store.writes.push(`create ${body.spec?.holderIdentity}`);
        store.lease = {
          ...body,
          metadata: { ...body.metadata, resourceVersion: String(++store.version) },
        };
        return structuredClone(store.lease);
      },
      async replace(_type: unknown, body: Lease) {
        store.check(body);
        if (body.metadata?.resourceVersion !== store.lease?.metadata?.resourceVersion)
          throw new ApiError(409, "conflict", "Conflict");
        store.writes.push(`replace ${body.spec?.holderIdentity ?? "(none)"}`);
        store.lease = {
          ...body,
          metadata: { ...body.metadata, resourceVersion: String(++store.version) },
        };
        return structuredClone(store.lease);
      },
    };
    return fake as unknown as KubeClient;
  }

  /** metav1.MicroTime: the API server wants six fractional digits. */
  private check(body: Lease): void {
    for (const t of [body.spec?.renewTime, body.spec?.acquireTime]) {
      if (t !== undefined && !/\.\d{6}Z$/.test(t)) throw new ApiError(400, `bad MicroTime ${t}`);
    }
  }
}
