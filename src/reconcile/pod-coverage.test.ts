import { describe, expect, it } from "vitest";
import type { Pod } from "../kube/pods.js";
import { imageRegistryHost, podView, uncoveredImages } from "./pod-coverage.js";

const HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

describe("imageRegistryHost", () => {
  it.each([
    [`${HOST}/team/web:1.2`, HOST],
    [`${HOST}/web@sha256:${"a".repeat(64)}`, HOST],
    ["public.ecr.aws/nginx/nginx:latest", "public.ecr.aws"],
    ["nginx", "docker.io"],
    ["library/nginx:1", "docker.io"],
    ["localhost/x", "localhost"],
    ["registry.local:5000/x/y", "registry.local:5000"],
    ["Registry.Example.COM/x", "registry.example.com"],
  ])("%s is pulled from %s", (image, host) => {
    expect(imageRegistryHost(image)).toBe(host);
  });
});

const pod: Pod = {
  metadata: {
    namespace: "apps",
    name: "web-7d9c-abcde",
    uid: "u-1",
    ownerReferences: [
      { apiVersion: "v1", kind: "Node", name: "n", uid: "x" },
      { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7d9c", uid: "rs", controller: true },
    ],
  },
  spec: {
    serviceAccountName: "builder",
    imagePullSecrets: [{ name: "other" }],
    initContainers: [{ name: "init", image: `${HOST}/init:1` }],
    containers: [
      { name: "web", image: `${HOST}/web:1` },
      { name: "side", image: "nginx" },
      { name: "again", image: `${HOST}/web:1` },
    ],
  },
  status: {
    phase: "Pending",
    initContainerStatuses: [{ name: "init", state: { running: {} } }],
    containerStatuses: [
      {
        name: "web",
        image: "ignored-when-the-spec-names-it",
        state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } },
      },
      { name: "side", state: { waiting: { reason: "PodInitializing" } } },
    ],
  },
};

describe("podView", () => {
  it("keeps what a pull diagnosis needs: owner, ServiceAccount, images, pull Secrets, waiting reasons", () => {
    expect(podView(pod)).toEqual({
      namespace: "apps",
      name: "web-7d9c-abcde",
      uid: "u-1",
      controller: { kind: "ReplicaSet", name: "web-7d9c" },
      serviceAccount: "builder",
      images: [`${HOST}/init:1`, `${HOST}/web:1`, "nginx"],
      pullSecrets: ["other"],
      waiting: [
        { image: `${HOST}/web:1`, reason: "ImagePullBackOff", message: "Back-off pulling image" },
        { image: "nginx", reason: "PodInitializing" },
      ],
      phase: "Pending",
    });
  });

  it("a bare Pod has no controller and the default ServiceAccount", () => {
    const v = podView({ metadata: { namespace: "a", name: "p", uid: "u" }, spec: {} });
    expect(v.controller).toBeUndefined();
    expect(v.serviceAccount).toBe("default");
    expect(v.images).toEqual([]);
    expect(v.waiting).toEqual([]);
  });
});

describe("uncoveredImages", () => {
  const resource = { name: "team", secretName: "ecr-pull", registries: [HOST] };

  it("lists the images of the resource's registries when the Pod lacks its Secret", () => {
    expect(uncoveredImages(podView(pod), resource)).toEqual([`${HOST}/init:1`, `${HOST}/web:1`]);
  });

  it("is empty when the Pod lists the Secret", () => {
    const covered = podView({
      ...pod,
      spec: { ...pod.spec, imagePullSecrets: [{ name: "other" }, { name: "ecr-pull" }] },
    });
    expect(uncoveredImages(covered, resource)).toEqual([]);
  });

  it("is empty when no image comes from the resource's registries", () => {
    const elsewhere = { ...resource, registries: ["210987654321.dkr.ecr.eu-west-1.amazonaws.com"] };
    expect(uncoveredImages(podView(pod), elsewhere)).toEqual([]);
  });
});
