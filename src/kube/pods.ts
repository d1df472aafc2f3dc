// Pods, as the pull-failure watch and `status --namespace` read them: only
// the fields a pull diagnosis needs.
import type { ResourceType } from "./client.js";
import type { KubernetesObject, ObjectMeta } from "./types.js";

export const PODS: ResourceType = {
  group: "",
  version: "v1",
  kind: "Pod",
  plural: "pods",
  namespaced: true,
};

export interface ContainerStatus {
  name: string;
  image?: string;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: unknown;
    terminated?: unknown;
  };
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

export interface Pod extends KubernetesObject {
  metadata?: ObjectMeta & { ownerReferences?: OwnerReference[] };
  spec?: {
    serviceAccountName?: string;
    imagePullSecrets?: Array<{ name?: string }>;
    containers?: Array<{ name: string; image?: string }>;
    initContainers?: Array<{ name: string; image?: string }>;
  };
  status?: {
    phase?: string;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
  };
}
