// The Kubernetes objects the operator reads and writes, as the API server's
// JSON has them: only the fields the operator touches. Timestamps are the
// RFC 3339 strings the server sends.

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  managedFields?: unknown[];
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface KubernetesObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

/** The metadata of an object the API server has stored: it always has a name. */
export interface StoredMeta extends ObjectMeta {
  name: string;
}

/**
 * An object as the API server returns it (a GET, a list's item, a watch
 * event, a write's answer): the server stores none without a name, so its
 * type says so and no reader needs a fallback for a missing name. Objects the
 * operator builds before writing them (generateName, a body) are not Named.
 */
export type Named<T extends KubernetesObject> = T & { metadata: StoredMeta };

/** A namespaced object as the API server returns it: a namespace too. */
export type NamespacedNamed<T extends KubernetesObject> = Named<T> & {
  metadata: { namespace: string };
};

/**
 * An object as an informer caches it: the slice of it the operator reads (a
 * view type), plus the metadata every cached object has, its name included.
 */
export type Cached<T> = Named<T & KubernetesObject>;

export interface ObjectList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: ListMeta;
  items: T[];
}

export interface Secret extends KubernetesObject {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  immutable?: boolean;
}

export interface ServiceAccount extends KubernetesObject {
  imagePullSecrets?: Array<{ name?: string }>;
}

export interface Lease extends KubernetesObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** A core/v1 Event. */
export interface Event extends KubernetesObject {
  involvedObject: {
    apiVersion?: string;
    kind?: string;
    name?: string;
    namespace?: string;
    uid?: string;
  };
  type?: string;
  reason?: string;
  message?: string;
  source?: { component?: string; host?: string };
  reportingComponent?: string;
  reportingInstance?: string;
  firstTimestamp?: string;
  lastTimestamp?: string;
  count?: number;
}

/** The body of a failed request: metav1.Status. */
export interface Status extends KubernetesObject {
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: unknown;
}
