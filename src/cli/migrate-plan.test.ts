import { describe, expect, it } from "vitest";
import { oldOperatorOf } from "./migrate.js";
import {
  type ClusterFacts,
  detectOldSecretNames,
  formatPlan,
  KOPF_FINALIZER,
  type NamespaceFacts,
  type OldDeployment,
  planMigration,
  type SecretFacts,
} from "./migrate-plan.js";

const OLD = "aws-registry-209202477790";
const HOST = "209202477790.dkr.ecr.us-east-1.amazonaws.com";
const DCJ = "kubernetes.io/dockerconfigjson";

const oldSecret = (hosts = [HOST]): SecretFacts => ({ type: DCJ, managed: false, hosts });
const pullSecret = (hosts: string[]): SecretFacts => ({ type: DCJ, managed: false, hosts });

function ns(
  refs: string[] | undefined,
  secrets: Record<string, SecretFacts> = {},
  labels: Record<string, string> = {},
): NamespaceFacts {
  return { labels, secrets, ...(refs ? { defaultPullSecrets: refs } : {}) };
}

const deployment: OldDeployment = {
  namespace: "ops",
  name: "ecr-creds-refresher",
  replicas: 0,
  env: {
    AWS_REGION: "us-east-1",
    REGISTRY: HOST,
    AWS_CREDENTIALS_SECRET_NAME: "aws-creds",
    AWS_CREDENTIALS_SECRET_NAMESPACE: "ops",
  },
};

function facts(over: Partial<ClusterFacts> = {}): ClusterFacts {
  return {
    oldResources: [
      {
        name: "team-images",
        secretName: OLD,
        namespaces: ["team-a", "team-b", "team-c"],
        finalizers: [KOPF_FINALIZER],
      },
    ],
    deployments: [deployment],
    namespaces: new Map([
      ["team-a", ns([OLD], { [OLD]: oldSecret() })],
      [
        "team-b",
        ns([OLD, "dockerhub"], { [OLD]: oldSecret(), dockerhub: pullSecret(["docker.io"]) }),
      ],
    ]),
    newResources: new Map(),
    oldCrdShortNames: ["ecrps"],
    ...over,
  };
}

describe("detectOldSecretNames", () => {
  it("finds the unlabelled dockerconfigjson Secret the default ServiceAccounts reference", () => {
    expect(detectOldSecretNames(facts())).toEqual([OLD]);
  });

  it("ignores what the old operator cannot have written", () => {
    const other = "aws-registry-111122223333";
    const f = facts({
      namespaces: new Map([
        // managed by us (already adopted)
        ["team-a", ns([OLD], { [OLD]: { ...oldSecret(), managed: true } })],
        // right form, but not an ECR registry in its auths
        ["team-b", ns([other], { [other]: pullSecret(["docker.io"]) })],
        // an ECR pull Secret of another name and form
        ["team-c", ns(["ecr"], { ecr: oldSecret() })],
      ]),
    });
    expect(detectOldSecretNames(f)).toEqual([]);
  });

  it("ignores an old-looking Secret no default ServiceAccount references", () => {
    const f = facts({ namespaces: new Map([["team-a", ns([], { [OLD]: oldSecret() })]]) });
    expect(detectOldSecretNames(f)).toEqual([]);
  });
});

describe("planMigration: the Secret and the namespaces", () => {
  it("adopts the old Secret in place when secretName is the old fixed name", () => {
    const plan = planMigration(facts());
    expect(plan.oldSecretNames).toEqual([OLD]);
    expect(plan.resources).toHaveLength(1);
    const r = plan.resources[0];
    expect(r?.action).toBe("create");
    expect(r?.spec).toEqual({
      secretName: OLD,
      namespaces: ["team-a", "team-b", "team-c"],
      region: "us-east-1",
      registries: [{ host: HOST }],
      credentials: { secretRef: { name: "aws-creds", namespace: "ops" } },
      adoptExisting: true,
    });
    expect(r?.steps).toEqual([
      {
        namespace: "team-a",
        exists: true,
        secret: OLD,
        adopt: true,
        claimRef: true,
        remove: [],
        othersRefs: [],
      },
      {
        namespace: "team-b",
        exists: true,
        secret: OLD,
        adopt: true,
        claimRef: true,
        remove: [],
        othersRefs: ["dockerhub"],
      },
      {
        namespace: "team-c",
        exists: false,
        secret: OLD,
        adopt: false,
        claimRef: false,
        remove: [],
        othersRefs: [],
      },
    ]);
    expect(r?.removeFinalizers).toEqual([KOPF_FINALIZER]);
    expect(plan.oldCrd).toEqual({ present: true, removeShortName: true });
    expect(plan.problems).toEqual([]);
    expect(plan.running).toEqual([]);
  });

  it("serves a user's own secretName, then removes the old reference and Secret", () => {
    const f = facts();
    f.oldResources = [{ name: "team-images", secretName: "ecr-pull", namespaces: ["team-b"] }];
    const plan = planMigration(f);
    const r = plan.resources[0];
    expect(r?.spec.secretName).toBe("ecr-pull");
    expect(r?.spec.adoptExisting).toBeUndefined();
    expect(r?.steps).toEqual([
      {
        namespace: "team-b",
        exists: true,
        secret: "ecr-pull",
        adopt: false,
        claimRef: false,
        remove: [{ name: OLD, ref: true, secret: true }],
        othersRefs: ["dockerhub"],
      },
    ]);
    expect(r?.removeFinalizers).toEqual([]);
  });

  it("takes the old operator's defaults: namespaces [default], the old Secret's name", () => {
    const f = facts({
      oldResources: [{ name: "bare" }],
      namespaces: new Map([["default", ns([OLD], { [OLD]: oldSecret() })]]),
    });
    const r = planMigration(f).resources[0];
    expect(r?.spec.secretName).toBe(OLD);
    expect(r?.spec.namespaces).toEqual(["default"]);
  });

  it("drops entries that are not namespace names", () => {
    const f = facts({
      oldResources: [{ name: "r", secretName: OLD, namespaces: ["team-a", "Team_B", "team-a"] }],
    });
    const r = planMigration(f).resources[0];
    expect(r?.spec.namespaces).toEqual(["team-a"]);
    expect(r?.notes).toEqual(['"Team_B" is not a namespace name: dropped']);
  });
});

describe("planMigration: settings and what stops --apply", () => {
  it("reads settings from flags over the old Deployment over the shell's environment", () => {
    const flags = { region: "eu-west-1", registry: "111122223333.dkr.ecr.eu-west-1.amazonaws.com" };
    const environment = { region: "ap-south-1", credentialsSecret: { name: "k", namespace: "n" } };
    let plan = planMigration(facts(), { flags, environment });
    expect(plan.settings.region).toEqual({ value: "eu-west-1", from: "--region" });
    expect(plan.settings.registry?.value).toBe(flags.registry);
    expect(plan.settings.credentials).toEqual({
      value: "ops/aws-creds",
      from: "AWS_CREDENTIALS_SECRET_NAME/_NAMESPACE of Deployment ops/ecr-creds-refresher",
    });

    // No Deployment: the shell, then what the old Secrets hold.
    plan = planMigration(facts({ deployments: [] }), { environment });
    expect(plan.settings.region).toEqual({
      value: "ap-south-1",
      from: "AWS_REGION in this shell's environment",
    });
    expect(plan.settings.registry).toEqual({ value: HOST, from: "the auths of the old Secrets" });
    expect(plan.settings.credentials?.value).toBe("n/k");

    plan = planMigration(facts({ deployments: [] }));
    expect(plan.settings.region).toEqual({ value: "us-east-1", from: "the registry host" });
    expect(plan.settings.credentials).toBeUndefined();
    expect(plan.resources[0]?.spec.credentials).toBeUndefined();
  });

  it("uses the old operator's default credentials namespace when only the name is set", () => {
    const d = { ...deployment, env: { AWS_CREDENTIALS_SECRET_NAME: "keys" } };
    const plan = planMigration(facts({ deployments: [d] }));
    expect(plan.resources[0]?.spec.credentials).toEqual({
      secretRef: { name: "keys", namespace: "default" },
    });
  });

  it("reports a running old operator, and what stops --apply", () => {
    const plan = planMigration(
      facts({
        deployments: [{ ...deployment, replicas: 2, env: { REGISTRY: "docker.io" } }],
        oldResources: [{ name: "x".repeat(64), secretName: OLD, namespaces: ["team-a"] }],
      }),
    );
    expect(plan.running.map((d) => d.replicas)).toEqual([2]);
    expect(plan.problems).toHaveLength(2);
    expect(plan.problems[0]).toMatch(/^failed to parse registry host "docker.io"/);
    expect(plan.problems[1]).toMatch(/longer than 63 characters/);
    const text = formatPlan(plan, false);
    expect(text).toContain("replicas 2");
    expect(text).toContain("--replicas=0), or pass --force");
  });
});

describe("planMigration: long lists and several resources", () => {
  it("turns a list longer than the CRD takes into a label and a selector", () => {
    const names = ["n1", "n2", "n3", "n4", "gone"];
    const namespaces = new Map<string, NamespaceFacts>([
      ["n1", ns([OLD], { [OLD]: oldSecret() })],
      ["n2", ns([OLD], { [OLD]: oldSecret() })],
      ["n3", ns([OLD], { [OLD]: oldSecret() }, { "migrate.ecrcreds.io/big": "true" })],
      ["n4", ns(undefined)],
    ]);
    const f = facts({
      oldResources: [{ name: "big", secretName: OLD, namespaces: names }],
      namespaces,
    });
    const r = planMigration(f, { maxNamespaces: 3 }).resources[0];
    expect(r?.spec.namespaceSelector).toEqual({
      matchLabels: { "migrate.ecrcreds.io/big": "true" },
    });
    expect(r?.spec.namespaces).toEqual(["gone"]);
    expect(r?.label).toEqual({
      key: "migrate.ecrcreds.io/big",
      value: "true",
      namespaces: ["n1", "n2", "n4"],
      alreadyLabelled: 1,
    });
    expect(r?.steps.map((s) => s.namespace)).toEqual(names);
    const text = formatPlan(planMigration(f, { maxNamespaces: 3 }), false);
    expect(text).toContain("  label 3 namespaces migrate.ecrcreds.io/big=true (1 already are)\n");
    // At the cap, the list stays a list.
    const small = planMigration(f, { maxNamespaces: 5 }).resources[0];
    expect(small?.label).toBeUndefined();
    expect(small?.spec.namespaces).toEqual(names);
  });

  it("gives a namespace two resources share with one Secret name to the first", () => {
    const f = facts({
      oldResources: [
        { name: "b-second", secretName: OLD, namespaces: ["team-a", "team-b"] },
        { name: "a-first", secretName: OLD, namespaces: ["team-a"] },
      ],
    });
    const plan = planMigration(f);
    expect(plan.resources.map((r) => [r.name, r.spec.namespaces])).toEqual([
      ["a-first", ["team-a"]],
      ["b-second", ["team-b"]],
    ]);
    expect(plan.resources[1]?.notes).toEqual([
      "team-a: ECRPullSecret a-first already serves Secret aws-registry-209202477790 there: left to it",
    ]);
  });

  it("never deletes an old Secret that another new resource adopts", () => {
    const f = facts({
      oldResources: [
        { name: "keeps", secretName: OLD, namespaces: ["team-a"] },
        { name: "renames", secretName: "ecr-pull", namespaces: ["team-a"] },
      ],
    });
    const plan = planMigration(f);
    const renames = plan.resources.find((r) => r.name === "renames");
    expect(renames?.steps[0]?.remove).toEqual([]);
    expect(renames?.steps[0]?.othersRefs).toEqual([OLD]);
    expect(plan.resources.find((r) => r.name === "keeps")?.steps[0]?.adopt).toBe(true);
  });

  it("keeps an ecrcreds.io resource that exists, and plans nothing once the old ones are gone", () => {
    const existing = { secretName: OLD, namespaces: ["team-a"] };
    const plan = planMigration(facts({ newResources: new Map([["team-images", existing]]) }));
    expect(plan.resources[0]?.action).toBe("keep");
    expect(plan.resources[0]?.spec).toEqual(existing);
    expect(plan.resources[0]?.notes[0]).toMatch(/exists with another spec/);

    const after = planMigration(
      facts({ oldResources: [], oldCrdShortNames: [], newResources: new Map() }),
    );
    expect(after.resources).toEqual([]);
    expect(after.oldCrd).toEqual({ present: true, removeShortName: false });
    expect(formatPlan(after, false)).toContain("nothing to migrate");
  });
});

describe("planMigration as people read it (formatPlan)", () => {
  it("groups namespaces that see the same steps, and shortens long lists", () => {
    const many = Array.from({ length: 12 }, (_, i) => `gone-${i}`);
    const f = facts({ oldResources: [{ name: "r", secretName: OLD, namespaces: many }] });
    const text = formatPlan(planMigration(f), false);
    expect(text).toContain(
      "  gone-0, gone-1, gone-2, gone-3, gone-4, gone-5, gone-6, gone-7, gone-8, gone-9 and 2 more: do not exist yet; served when created\n",
    );
    expect(text).toContain("        - gone-2\n        - (and 9 more)\n");
  });

  it("prints each step people need to check", () => {
    const text = formatPlan(planMigration(facts()), false);
    expect(text).toContain(
      "old operator: Deployment ops/ecr-creds-refresher, replicas 0 (AWS_REGION=us-east-1",
    );
    expect(text).toContain(`old Secret name: ${OLD}`);
    expect(text).toContain("ECRPullSecret team-images: create ecrcreds.io/v1alpha1");
    expect(text).toContain(
      `  team-a: adopt Secret ${OLD} in place (same name, fresh token); the default ServiceAccount's reference moves to the new operator\n`,
    );
    expect(text).toContain(
      `  team-b: adopt Secret ${OLD} in place (same name, fresh token); the default ServiceAccount's reference moves to the new operator; others' entries kept: dockerhub\n`,
    );
    expect(text).toContain("  team-c: do not exist yet; served when created\n");
    expect(text).toContain(`then remove finalizer ${KOPF_FINALIZER} and delete`);
    expect(text).toContain("remove its short name ecrps");
    expect(text).toContain("nothing was written; run again with --apply");
  });
});

describe("oldOperatorOf", () => {
  const d = (args: string[] | undefined, env: Array<{ name: string; value?: string }>) => ({
    metadata: { namespace: "ops", name: "op" },
    spec: { replicas: 0, template: { spec: { containers: [{ args, env }] } } },
  });

  it("recognises the old operator by its variables", () => {
    expect(oldOperatorOf(d(undefined, [{ name: "REGISTRY", value: HOST }]))).toEqual({
      namespace: "ops",
      name: "op",
      replicas: 0,
      env: { REGISTRY: HOST },
    });
  });

  it("does not take this operator's own Deployment, or one without the variables", () => {
    expect(oldOperatorOf(d(["run"], [{ name: "REGISTRY", value: HOST }]))).toBeUndefined();
    expect(oldOperatorOf(d(undefined, [{ name: "OTHER", value: "x" }]))).toBeUndefined();
  });
});

describe("whose settings are read (tenants may copy the old operator's look)", () => {
  const decoy: OldDeployment = {
    namespace: "aaa",
    name: "decoy",
    replicas: 1,
    env: { AWS_CREDENTIALS_SECRET_NAME: "team-b-keys", AWS_CREDENTIALS_SECRET_NAMESPACE: "team-b" },
  };

  it("refuses two provable old operators and asks for --old-deployment", () => {
    const plan = planMigration(facts({ deployments: [decoy, deployment] }));
    expect(plan.problems).toEqual([
      "2 Deployments are provably the old operator's (aaa/decoy, ops/ecr-creds-refresher): name the one whose settings to use with --old-deployment NAMESPACE/NAME",
    ]);
    // Neither one's variables are read.
    expect(plan.settings.credentials).toBeUndefined();
    expect(plan.resources[0]?.spec.credentials).toBeUndefined();
  });

  it("reads only the Deployment the administrator named", () => {
    const plan = planMigration(facts({ deployments: [decoy, deployment], named: deployment }));
    expect(plan.problems).toEqual([]);
    expect(plan.deployments).toEqual([deployment]);
    expect(plan.running).toEqual([]);
    expect(plan.resources[0]?.spec.credentials).toEqual({
      secretRef: { name: "aws-creds", namespace: "ops" },
    });
  });

  it("never reads a look-alike that is not provably the old operator's, and says so", () => {
    const plan = planMigration(
      facts({
        deployments: [deployment],
        ignored: [{ namespace: "aaa", name: "decoy", reason: "no rights" }],
      }),
    );
    expect(plan.settings.credentials?.value).toBe("ops/aws-creds");
    expect(plan.notes).toEqual(["Deployment aaa/decoy is not read: no rights"]);
    expect(formatPlan(plan, false)).toContain("note: Deployment aaa/decoy is not read: no rights");
  });

  it("labels long lists under the prefix the administrator chose", () => {
    const names = ["team-a", "team-b", "gone"];
    const plan = planMigration(
      facts({ oldResources: [{ name: "many", secretName: OLD, namespaces: names }] }),
      { maxNamespaces: 2, labelPrefix: "ecr.platform.example.com/" },
    );
    expect(plan.resources[0]?.label?.key).toBe("ecr.platform.example.com/many");
    expect(plan.resources[0]?.spec.namespaceSelector).toEqual({
      matchLabels: { "ecr.platform.example.com/many": "true" },
    });
  });
});
