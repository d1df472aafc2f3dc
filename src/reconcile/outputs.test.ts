import { describe, expect, it } from "vitest";
import {
  ANNOTATION_REGISTRIES,
  ANNOTATION_SECRET_TEMPLATE_KEYS,
  LABEL_MANAGED_BY,
} from "../api/metadata.js";
import {
  applyTemplate,
  DATA_KEYS_BY_FORMAT,
  desiredSecrets,
  droppedTemplateKeys,
  ownerLabelValue,
  type SecretView,
  secretDiffers,
  secretPatch,
  WRITTEN_DATA_KEYS,
} from "./desired.js";
import { buildDockerConfigJson } from "./dockerconfig.js";
import {
  ARGOCD_SECRET_TYPE_LABEL,
  CONFIG_JSON_KEY,
  desiredArgoCDSecrets,
  desiredConfigJsonSecrets,
  desiredPassSecrets,
  hostSpellings,
  OUTPUT_FORMATS,
  OUTPUT_SPEC_FIELDS,
  withHostVariants,
} from "./outputs.js";

const standard = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const dualStack = "123456789012.dkr-ecr.us-east-1.on.aws";
const decode = (s: string | undefined) => Buffer.from(s ?? "", "base64").toString("utf8");

describe("hostSpellings", () => {
  it("keeps the host as given by default", () => {
    expect(hostSpellings(dualStack)).toEqual([dualStack]);
    expect(hostSpellings(standard, [])).toEqual([standard]);
  });

  it("spells a private registry both ways on request, FIPS kept", () => {
    expect(hostSpellings(standard, ["DualStack", "Standard"])).toEqual([standard, dualStack]);
    expect(hostSpellings(dualStack, ["Standard"])).toEqual([standard]);
    expect(
      hostSpellings("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", [
        "Standard",
        "DualStack",
      ]),
    ).toEqual([
      "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
      "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws",
    ]);
  });

  it("leaves ECR Public and China (no dual-stack endpoint) as they are", () => {
    expect(hostSpellings("public.ecr.aws", ["DualStack"])).toEqual(["public.ecr.aws"]);
    const china = "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn";
    expect(hostSpellings(china, ["Standard", "DualStack"])).toEqual([china]);
    expect(hostSpellings(china, ["DualStack"])).toEqual([china]);
  });

  it("gives every spelling the same credentials, each host once", () => {
    const entries = [
      { host: standard, username: "AWS", password: "p1" },
      { host: dualStack, username: "AWS", password: "p1" },
      { host: "public.ecr.aws", username: "AWS", password: "p2" },
    ];
    expect(withHostVariants(entries, ["Standard", "DualStack"])).toEqual([
      { host: standard, username: "AWS", password: "p1" },
      { host: dualStack, username: "AWS", password: "p1" },
      { host: "public.ecr.aws", username: "AWS", password: "p2" },
    ]);
  });
});

describe("secretTemplate", () => {
  it("adds the template's labels and annotations beneath the operator's own, and records its keys", () => {
    const out = applyTemplate(
      { [LABEL_MANAGED_BY]: "ecr-creds-refresher" },
      { [ANNOTATION_REGISTRIES]: standard },
      {
        labels: { team: "a", [LABEL_MANAGED_BY]: "someone" },
        annotations: { "reflector.v1.k8s.emberstack.com/reflection-allowed": "true" },
      },
    );
    expect(out.labels).toEqual({ team: "a", [LABEL_MANAGED_BY]: "ecr-creds-refresher" });
    expect(out.annotations).toEqual({
      "reflector.v1.k8s.emberstack.com/reflection-allowed": "true",
      [ANNOTATION_REGISTRIES]: standard,
      [ANNOTATION_SECRET_TEMPLATE_KEYS]:
        "annotation:reflector.v1.k8s.emberstack.com/reflection-allowed,label:app.kubernetes.io/managed-by,label:team",
    });
  });

  it("returns the very same maps without a template (no copy per pass)", () => {
    const labels = { a: "1" };
    const annotations = { b: "2" };
    const out = applyTemplate(labels, annotations, {});
    expect(out.labels).toBe(labels);
    expect(out.annotations).toBe(annotations);
  });

  it("names the keys a Secret still carries from an earlier template", () => {
    const desired = {
      metadata: {
        name: "s",
        namespace: "n",
        labels: { team: "a" },
        annotations: { [ANNOTATION_SECRET_TEMPLATE_KEYS]: "label:team" },
      },
      type: "Opaque",
      data: {},
    };
    const observed: SecretView = {
      metadata: {
        name: "pull",
        namespace: "team-a",
        annotations: {
          [ANNOTATION_SECRET_TEMPLATE_KEYS]: "annotation:backup,label:cost,label:team",
        },
      },
    };
    expect(droppedTemplateKeys(desired, observed)).toEqual({
      labels: ["cost"],
      annotations: ["backup"],
    });
    const untemplated = { ...desired, metadata: { ...desired.metadata, annotations: {} } };
    expect(droppedTemplateKeys(untemplated, observed).annotations).toEqual([
      "backup",
      ANNOTATION_SECRET_TEMPLATE_KEYS,
    ]);
    expect(
      droppedTemplateKeys(desired, { metadata: { name: "pull", namespace: "team-a" } }),
    ).toEqual({ labels: [], annotations: [] });
  });
});

describe("a Secret written under an earlier template", () => {
  it("differs, and its patch nulls exactly the keys the template dropped", () => {
    const json = buildDockerConfigJson([{ host: standard, username: "AWS", password: "pw" }]);
    const build = (template: { labels?: Record<string, string> } | undefined) =>
      desiredSecrets({
        owner: "team",
        secretName: "ecr-pull",
        dockerConfigJson: json,
        registries: [standard],
        template,
      })("team-a");
    const earlier = build({ labels: { team: "a", cost: "x" } });
    const now = build({ labels: { team: "a" } });
    const observed: SecretView = { ...earlier, metadata: { ...earlier.metadata } };
    expect(secretDiffers(now, observed)).toBe(true);
    expect(secretPatch(now, "7", observed)).toMatchObject({
      metadata: {
        resourceVersion: "7",
        labels: { cost: null, team: "a" },
        annotations: { [ANNOTATION_SECRET_TEMPLATE_KEYS]: "label:team" },
      },
    });
    const none = build(undefined);
    expect(secretDiffers(none, observed)).toBe(true);
    expect(secretPatch(none, "7", observed)).toMatchObject({
      metadata: {
        labels: { cost: null, team: null },
        annotations: { [ANNOTATION_SECRET_TEMPLATE_KEYS]: null },
      },
    });
    expect(secretDiffers(earlier, observed)).toBe(false);
  });
});

describe("desiredConfigJsonSecrets", () => {
  it("holds the pull Secret's very bytes under config.json, Opaque, in every namespace", () => {
    const json = buildDockerConfigJson([{ host: standard, username: "AWS", password: "pw" }]);
    const pull = desiredSecrets({
      owner: "team",
      secretName: "ecr-pull",
      dockerConfigJson: json,
      registries: [standard],
    });
    const config = desiredConfigJsonSecrets(pull, "ecr-docker-config");
    const a = config("team-a");
    const b = config("team-b");
    expect(a.type).toBe("Opaque");
    expect(a.metadata).toMatchObject({ name: "ecr-docker-config", namespace: "team-a" });
    expect(decode(a.data[CONFIG_JSON_KEY])).toBe(json);
    expect(a.data[CONFIG_JSON_KEY]).toBe(pull("team-a").data[".dockerconfigjson"]);
    // One encoded copy shared by every namespace.
    expect(b.data).toBe(a.data);
    expect(a.metadata.labels).toEqual(pull("team-a").metadata.labels);
  });
});

describe("desiredArgoCDSecrets", () => {
  const auths = [
    { host: standard, username: "AWS", password: "pw-1" },
    { host: "210987654321.dkr.ecr.eu-west-1.amazonaws.com", username: "AWS", password: "pw-2" },
  ];
  const base = {
    owner: "team",
    ownerKey: ownerLabelValue("team"),
    auths,
    labels: { [LABEL_MANAGED_BY]: "ecr-creds-refresher" },
    annotations: { [ANNOTATION_REGISTRIES]: auths.map((a) => a.host).join(",") },
  };

  it("writes a helm OCI credential template per registry in argocd by default", () => {
    const secrets = desiredArgoCDSecrets({ ...base, spec: {} });
    expect(secrets.map((s) => s.metadata.name)).toEqual([
      `team-helm-${standard}`,
      "team-helm-210987654321.dkr.ecr.eu-west-1.amazonaws.com",
    ]);
    const [first] = secrets;
    expect(first?.metadata.namespace).toBe("argocd");
    expect(first?.metadata.labels[ARGOCD_SECRET_TYPE_LABEL]).toBe("repo-creds");
    expect(first?.metadata.annotations[ANNOTATION_REGISTRIES]).toBe(standard);
    expect(
      Object.fromEntries(Object.entries(first?.data ?? {}).map(([k, v]) => [k, decode(v)])),
    ).toEqual({
      url: standard,
      type: "helm",
      enableOCI: "true",
      username: "AWS",
      password: "pw-1",
    });
  });

  it("writes repository Secrets of type oci with an oci:// url and a project", () => {
    const secrets = desiredArgoCDSecrets({
      ...base,
      auths: auths.slice(0, 1),
      spec: {
        namespace: "gitops",
        secretType: "repository",
        repositoryTypes: ["oci", "helm"],
        project: "team-a",
      },
    });
    // The caches keep digests of exactly the keys the outputs write (cachedSecret).
    for (const s of secrets)
      for (const key of Object.keys(s.data)) expect(WRITTEN_DATA_KEYS.has(key), key).toBe(true);
    expect(WRITTEN_DATA_KEYS.has(CONFIG_JSON_KEY)).toBe(true);
    expect(secrets.map((s) => [s.metadata.namespace, s.metadata.name])).toEqual([
      ["gitops", `team-helm-${standard}`],
      ["gitops", `team-oci-${standard}`],
    ]);
    const oci = secrets[1];
    expect(oci?.metadata.labels[ARGOCD_SECRET_TYPE_LABEL]).toBe("repository");
    expect(decode(oci?.data.url)).toBe(`oci://${standard}`);
    expect(decode(oci?.data.type)).toBe("oci");
    expect(oci?.data.enableOCI).toBeUndefined();
    expect(decode(oci?.data.project)).toBe("team-a");
    expect(decode(oci?.data.name)).toBe(`ecr-oci-${standard}`);
  });

  it("names a Secret for a host with a port (a local registry) validly", () => {
    const [secret] = desiredArgoCDSecrets({
      ...base,
      auths: [{ host: "127.0.0.1:5000", username: "AWS", password: "pw" }],
      spec: {},
    });
    expect(secret?.metadata.name).toBe("team-helm-127.0.0.1-5000");
    expect(decode(secret?.data.url)).toBe("127.0.0.1:5000");
  });
});

describe("desiredPassSecrets", () => {
  const json = buildDockerConfigJson([{ host: standard, username: "AWS", password: "pw" }]);
  const content = {
    dockerConfigJson: json,
    registries: [standard],
    auths: [{ host: standard, username: "AWS", password: "pw" }],
  };
  const every = desiredPassSecrets(
    "team",
    {
      secretName: "ecr-pull",
      dockerConfigSecret: { name: "ecr-docker-config" },
      argoCD: { namespace: "gitops" },
    },
    content,
  );

  it("builds each format the spec asks for, in OUTPUT_FORMATS order, each writing only its own data keys", () => {
    expect(every.formats.map((f) => f.format)).toEqual([...OUTPUT_FORMATS]);
    for (const f of every.formats) {
      const secrets = f.placement === "targetNamespaces" ? [f.build("team-a")] : f.secrets;
      expect(secrets.length, f.format).toBeGreaterThan(0);
      for (const s of secrets)
        for (const key of Object.keys(s.data))
          expect(DATA_KEYS_BY_FORMAT[f.format], `${f.format}: ${key}`).toContain(key);
    }
    const pullOnly = desiredPassSecrets("team", { secretName: "ecr-pull" }, content);
    expect(pullOnly.formats.map((f) => f.format)).toEqual(["pull"]);
    expect(pullOnly.inNamespace("team-a").map((s) => s.metadata.name)).toEqual(["ecr-pull"]);
    expect(pullOnly.elsewhere).toEqual([]);
  });

  it("writes the per-namespace formats into each target, the others once, and keeps exactly those", () => {
    expect(every.inNamespace("team-a").map((s) => [s.metadata.namespace, s.metadata.name])).toEqual(
      [
        ["team-a", "ecr-pull"],
        ["team-a", "ecr-docker-config"],
      ],
    );
    expect(every.perNamespace.map((s) => s.metadata.namespace)).toEqual(["", ""]);
    expect(every.elsewhere.map((s) => s.metadata.namespace)).toEqual(["gitops"]);
    const targets = new Set(["team-a"]);
    const argo = every.elsewhere[0]?.metadata.name ?? "";
    expect(every.keeps("team-a", "ecr-pull", targets)).toBe(true);
    expect(every.keeps("team-a", "ecr-docker-config", targets)).toBe(true);
    expect(every.keeps("team-b", "ecr-pull", targets)).toBe(false);
    expect(every.keeps("gitops", argo, targets)).toBe(true);
    expect(every.keeps("gitops", "ecr-pull", targets)).toBe(false);
    expect(every.keeps("team-a", "other", targets)).toBe(false);
    // Which format a conflicting Secret is, for the spec field a message names.
    expect(every.formatOf("team-b", "ecr-docker-config")).toBe("configJson");
    expect(every.formatOf("gitops", argo)).toBe("argoCD");
    expect(every.formatOf("gitops", "unrelated")).toBeUndefined();
    expect(OUTPUT_SPEC_FIELDS[every.formatOf("team-a", "ecr-pull") ?? "pull"]).toBe(
      "spec.secretName",
    );
  });
});
