import { describe, expect, it } from "vitest";
import { ANNOTATION_EXPIRES_AT, LABEL_OWNER } from "../api/metadata.js";
import type { Pod } from "../kube/pods.js";
import { ownerLabelValue } from "./desired.js";
import {
  diagnosePullFailures,
  failedPullSecretNames,
  imageRegistryHost,
  imageRepository,
  nextPodPullSecrets,
  type PodView,
  podView,
  recoveryDecision,
  type SecretState,
  secretState,
  uncoveredImages,
} from "./pod-coverage.js";

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

describe("imageRepository", () => {
  it.each([
    [`${HOST}/team/web:1.2`, "team/web"],
    [`${HOST}/web@sha256:${"a".repeat(64)}`, "web"],
    [`${HOST}/web`, "web"],
    ["registry.local:5000/x/y:3", "x/y"],
    ["nginx:1", "nginx"],
  ])("%s is repository %s", (image, repo) => {
    expect(imageRepository(image)).toBe(repo);
  });
});

describe("diagnosePullFailures", () => {
  const team = { name: "team", secretName: "ecr-pull", registries: [HOST] };
  const other = {
    name: "other",
    secretName: "other-pull",
    registries: ["210987654321.dkr.ecr.eu-west-1.amazonaws.com"],
  };
  const waitingPod = (pullSecrets: string[], reason = "ImagePullBackOff") =>
    podView({
      metadata: { namespace: "apps", name: "p", uid: "u" },
      spec: {
        imagePullSecrets: pullSecrets.map((name) => ({ name })),
        containers: [
          { name: "web", image: `${HOST}/web:1` },
          { name: "hub", image: "nginx" },
        ],
      },
      status: {
        phase: "Pending",
        containerStatuses: [
          { name: "web", state: { waiting: { reason, message: "pull access denied" } } },
          { name: "hub", state: { waiting: { reason: "ErrImagePull" } } },
        ],
      },
    });
  const diagnose = (pod: ReturnType<typeof podView>, state: SecretState) =>
    diagnosePullFailures(pod, [team, other], () => state).map((d) => `${d.kind} ${d.resource}`);

  it("a Pod without the Secret: MissingPullSecret, whatever the Secret's state", () => {
    expect(diagnose(waitingPod([]), "current")).toEqual(["MissingPullSecret team"]);
    expect(diagnosePullFailures(waitingPod(["mine"]), [team], () => "missing")).toEqual([
      {
        kind: "MissingPullSecret",
        resource: "team",
        secretName: "ecr-pull",
        image: `${HOST}/web:1`,
        reason: "ImagePullBackOff",
        message: "pull access denied",
      },
    ]);
  });

  it("a Pod with the Secret: missing, expired, current (the registry refuses), foreign", () => {
    expect(diagnose(waitingPod(["ecr-pull"]), "missing")).toEqual(["SecretMissing team"]);
    expect(diagnose(waitingPod(["ecr-pull"]), "expired")).toEqual(["SecretExpired team"]);
    expect(diagnose(waitingPod(["ecr-pull"]), "current")).toEqual(["RegistryRefused team"]);
    expect(diagnose(waitingPod(["ecr-pull"]), "foreign")).toEqual([]);
  });

  it("ignores other waiting reasons and images of unmanaged registries", () => {
    expect(diagnose(waitingPod([], "ContainerCreating"), "current")).toEqual([]);
    expect(diagnosePullFailures(waitingPod([]), [other], () => "current")).toEqual([]);
  });
});

describe("failedPullSecretNames", () => {
  it("reads the kubelet's message", () => {
    expect(
      failedPullSecretNames(
        "Unable to retrieve some image pull secrets (ecr-pull, other); attempting to pull the image may not succeed.",
      ),
    ).toEqual(["ecr-pull", "other"]);
    expect(failedPullSecretNames("something else")).toEqual([]);
  });
});

describe("secretState", () => {
  const NOW = Date.parse("2026-11-30T12:00:00Z");
  const secret = (owner: string, expires: string) => ({
    metadata: {
      labels: { [LABEL_OWNER]: owner },
      annotations: { [ANNOTATION_EXPIRES_AT]: expires },
    },
  });

  it("is current, expired, foreign or missing, reading the owner label as the writer hashes it", () => {
    const long = `r-${"x".repeat(70)}`;
    expect(ownerLabelValue(long)).not.toBe(long);
    expect(secretState(secret(ownerLabelValue(long), "2026-11-30T13:00:00Z"), long, NOW)).toBe(
      "current",
    );
    expect(secretState(secret("team", "2026-11-30T11:00:00Z"), "team", NOW)).toBe("expired");
    expect(secretState(secret("team", "not a date"), "team", NOW)).toBe("expired");
    expect(secretState(secret(long, "2026-11-30T13:00:00Z"), long, NOW)).toBe("foreign");
    expect(secretState(undefined, "team", NOW)).toBe("missing");
  });
});

describe("what the next Pod of a controller would get, and whether to recreate", () => {
  const view = (pullSecrets: string[], controller = true): PodView => ({
    namespace: "apps",
    name: "web-1",
    uid: "u",
    serviceAccount: "default",
    images: [`${HOST}/web:1`],
    pullSecrets,
    waiting: [],
    ...(controller ? { controller: { kind: "ReplicaSet", name: "web-7d9c" } } : {}),
  });
  const owner = { replacementStillUncovered: false, deletedLastHour: 0, perHour: 10 };
  const decide = (o: Partial<Parameters<typeof recoveryDecision>[0]>) =>
    recoveryDecision({
      pod: view([]),
      secretName: "ecr-pull",
      resource: "team",
      requested: true,
      serviceAccountPullSecrets: ["ecr-pull"],
      owner,
      mayDelete: true,
      ...o,
    });

  it("a template's own list is what the next Pod gets; an empty or copied list, the ServiceAccount's", () => {
    expect(nextPodPullSecrets({ pullSecrets: ["mirror-cred"] }, ["ecr-pull"])).toEqual({
      from: "template",
      pullSecrets: ["mirror-cred"],
    });
    expect(nextPodPullSecrets({ pullSecrets: [] }, ["ecr-pull"])).toEqual({
      from: "serviceAccount",
      pullSecrets: ["ecr-pull"],
    });
    expect(nextPodPullSecrets({ pullSecrets: ["old"] }, ["old", "ecr-pull"])).toEqual({
      from: "serviceAccount",
      pullSecrets: ["old", "ecr-pull"],
    });
  });

  it("recreates only when that fixes it, within the bounds, and otherwise names the fix", () => {
    expect(decide({})).toEqual({ action: "recreate" });
    expect(decide({ pod: view(["mirror-cred"]) })).toEqual({
      action: "warn",
      why: "templateSetsPullSecrets",
      fix: "recreating it would not help: the Pod template of ReplicaSet web-7d9c sets its own imagePullSecrets (mirror-cred), which ServiceAccount default's entries never reach; add ecr-pull to the Pod template's imagePullSecrets",
    });
    expect(decide({ owner: { ...owner, replacementStillUncovered: true } })).toMatchObject({
      why: "replacementStillUncovered",
    });
    expect(decide({ serviceAccountPullSecrets: [] })).toMatchObject({
      why: "serviceAccountLacksSecret",
    });
    expect(decide({ mayDelete: false })).toEqual({
      action: "warn",
      why: "notAllowed",
      fix: "spec.podRecovery: Recreate is set but the operator may not delete Pods in apps: set the chart value podRecovery.enabled=true (it grants delete on Pods), or delete it so that ReplicaSet web-7d9c recreates it",
    });
    expect(decide({ owner: { ...owner, deletedLastHour: 10 } })).toMatchObject({
      why: "ownerLimit",
    });
    expect(decide({ requested: false })).toMatchObject({ why: "notRequested" });
    expect(decide({ pod: view([], false) })).toMatchObject({ why: "noController" });
  });
});
