// The reconcile as a table, in the manner of trust-manager's bundle_test.go:
// each case builds a world in a fake cluster (cluster.fake.ts), runs one
// pass (or a few) of the real Reconciler over a real TokenCache whose AWS
// fetch the case scripts, and checks the exact writes, Secrets,
// ServiceAccounts, Ready condition and result. The integration tests prove
// the same against a real API server.
import { afterEach, describe, expect, it } from "vitest";
import { ConditionType } from "../api/conditions.js";
import type { ECRPullSecret } from "../api/index.js";
import {
  ANNOTATION_ADDED_PULL_SECRETS,
  ANNOTATION_ECR_ROLE_ARN,
  FINALIZER,
} from "../api/metadata.js";
import type { RegistryToken } from "../aws/token.js";
import { TokenCache, type TokenSource } from "../aws/token-cache.js";
import type { VerifyResult } from "../aws/verify.js";
import { type ErrorCode, isOperatorError, operatorError } from "../errors.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { withCreatedMark } from "./adoption.js";
import { FakeCluster } from "./cluster.fake.js";
import { DOCKER_CONFIG_JSON_KEY, DOCKER_CONFIG_JSON_TYPE, desiredSecret } from "./desired.js";
import { buildDockerConfigJson, parseDockerConfigJson as parseAuths } from "./dockerconfig.js";
import { type ReconcileResult, Reconciler } from "./reconciler.js";
import { roleSecretName } from "./service-account-roles.js";
import { VERIFY_RETRY_BASE_MS } from "./verification.js";

const NAME = "team";
const HOST = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
const EU_HOST = "222222222222.dkr.ecr.eu-west-1.amazonaws.com";
const HOUR = 3_600_000;

function resource(spec: Partial<ECRPullSecret["spec"]> = {}, meta = {}): ECRPullSecret {
  return {
    metadata: { name: NAME, uid: "uid-1", generation: 1, finalizers: [FINALIZER], ...meta },
    spec: {
      secretName: "pull",
      namespaces: ["team-*"],
      region: "us-east-1",
      registries: [{ accountId: "111111111111" }],
      ...spec,
    },
  };
}

function token(password: string, expiresInMs = 12 * HOUR): RegistryToken {
  return {
    username: "AWS",
    password,
    expiresAt: new Date(Date.now() + expiresInMs),
    fetchedAt: new Date(),
  };
}

/** A managed Secret as an earlier pass of this resource wrote it. */
/** A Secret an earlier pass created: with the mark of where it was created. */
function ourSecret(namespace: string, password: string) {
  return withCreatedMark(
    desiredSecret({
      owner: NAME,
      secretName: "pull",
      namespace,
      dockerConfigJson: buildDockerConfigJson([{ host: HOST, username: "AWS", password }]),
      registries: [HOST],
    }),
  );
}

/** team-a with its default and builder ServiceAccounts. */
function teamA(c: FakeCluster): void {
  c.addNamespace("team-a");
  c.addServiceAccount("team-a", "default");
  c.addServiceAccount("team-a", "builder");
}

/** What a first pass over team-a writes: its Secret, its default ServiceAccount, the status. */
const FIRST_WRITES = [
  "create secret team-a/pull",
  "patch serviceaccount team-a/default",
  `patch status ${NAME}`,
];

/** Marks the ServiceAccount's `pull` entry as added by this resource, as a pass does. */
function claim(c: FakeCluster, namespace: string): void {
  c.editServiceAccount({ namespace, name: "default" }, (sa) => {
    sa.metadata = {
      ...sa.metadata,
      annotations: { [ANNOTATION_ADDED_PULL_SECRETS]: `${NAME}/pull` },
    };
  });
}

/** team-a as an earlier pass left it: our Secret, and our entry beside someone else's. */
function madeEarlier(c: FakeCluster): void {
  teamA(c);
  c.addSecret(ourSecret("team-a", "pw-old"));
  c.editServiceAccount({ namespace: "team-a", name: "default" }, (sa) => {
    sa.imagePullSecrets = [{ name: "theirs" }, { name: "pull" }];
  });
  claim(c, "team-a");
}

const accessDenied = () =>
  operatorError("AccessDenied", "ecr", {
    step: "get an ECR token in eu-west-1",
    source: "the AWS SDK's default credential chain",
    detail: "not authorized",
  });

interface Case {
  name: string;
  resource: ECRPullSecret;
  world: (c: FakeCluster) => void;
  /** The AWS side: a token, or an error, per source. */
  fetch?: (source: TokenSource) => RegistryToken | Error;
  verify?: (password: string) => VerifyResult;
  want: {
    /** Every write of the pass, in order. */
    writes: string[];
    ready?: { status: string; reason: string; message?: string };
    /** The error the pass ends in (backoff), if any. */
    thrown?: ErrorCode;
    /** The password each Secret's auths hold for HOST; null: no such Secret. */
    secrets?: Record<string, string | null>;
    pullSecrets?: Record<string, string[]>;
    events?: string[];
    fetched?: string[];
  };
  /** Further passes, for cases that play out over time. */
  later?: (h: Harness) => Promise<void>;
  /** IAM's answer for per-ServiceAccount roles; default: every ServiceAccount admitted. */
  admit?: (serviceAccount: string, roleArn: string) => boolean;
}

interface Harness {
  cluster: FakeCluster;
  reconciler: Reconciler;
  /** Moves the reconciler's clock on. */
  advance(ms: number): void;
  verifyCalls: string[];
  pass(): Promise<ReconcileResult>;
}

const ROLE_A = "arn:aws:iam::111111111111:role/team-a-api";
const SECRET_A = roleSecretName("pull", ROLE_A);

/** team-a with `builder` and `intruder` annotated with ROLE_A. */
function teamAWithRoles(c: FakeCluster): void {
  teamA(c);
  c.addServiceAccount("team-a", "intruder");
  for (const name of ["builder", "intruder"]) {
    c.editServiceAccount({ namespace: "team-a", name }, (sa) => {
      sa.metadata = { ...sa.metadata, annotations: { [ANNOTATION_ECR_ROLE_ARN]: ROLE_A } };
    });
  }
}

/** Tokens by identity: the role's web identity, else the resource's own credentials. */
const byRole = (source: TokenSource) =>
  token("webIdentity" in source.credentials ? "pw-role-a" : `pw-${source.region}`);

const cases: Case[] = [
  {
    name: "per-ServiceAccount roles: the role's Secret for admitted ServiceAccounts only, the default for the rest",
    resource: resource({ serviceAccounts: ["*"], serviceAccountRoles: { unannotated: "Default" } }),
    world: teamAWithRoles,
    fetch: byRole,
    admit: (sa) => sa !== "intruder",
    want: {
      writes: [
        "create secret team-a/pull",
        `create secret team-a/${SECRET_A}`,
        "patch serviceaccount team-a/default",
        "patch serviceaccount team-a/builder",
        `patch status ${NAME}`,
      ],
      ready: { status: "False", reason: "PartiallySynced" },
      secrets: { "team-a/pull": "pw-us-east-1", [`team-a/${SECRET_A}`]: "pw-role-a" },
      pullSecrets: {
        "team-a/default": ["pull"],
        "team-a/builder": [SECRET_A],
        "team-a/intruder": [],
      },
      fetched: ["us-east-1", "us-east-1"],
    },
  },
  {
    name: "per-ServiceAccount roles, unannotated None: no Secret and no credentials of its own",
    resource: resource({
      serviceAccounts: ["*"],
      serviceAccountRoles: { unannotated: "None" },
      secretTemplate: { labels: { team: "platform" } },
    }),
    world: teamAWithRoles,
    fetch: byRole,
    want: {
      writes: [
        `create secret team-a/${SECRET_A}`,
        "patch serviceaccount team-a/builder",
        "patch serviceaccount team-a/intruder",
        `patch status ${NAME}`,
      ],
      ready: { status: "True", reason: "Synced" },
      secrets: { "team-a/pull": null, [`team-a/${SECRET_A}`]: "pw-role-a" },
      pullSecrets: {
        "team-a/default": [],
        "team-a/builder": [SECRET_A],
        "team-a/intruder": [SECRET_A],
      },
      fetched: ["us-east-1"],
    },
    // A role's Secret is a pull Secret the resource writes: the template applies.
    later: async (h) => {
      const secret = await h.cluster.readSecret({ namespace: "team-a", name: SECRET_A });
      expect(secret?.metadata?.labels?.team).toBe("platform");
    },
  },
  {
    name: "new namespace: writes the Secret and merges it into the targeted ServiceAccount",
    resource: resource({}, { finalizers: [] }),
    world: teamA,
    want: {
      writes: [
        `patch metadata ${NAME}`,
        "create secret team-a/pull",
        "patch serviceaccount team-a/default",
        `patch status ${NAME}`,
      ],
      ready: { status: "True", reason: "Synced", message: "1/1 namespaces" },
      secrets: { "team-a/pull": "pw-us-east-1" },
      pullSecrets: { "team-a/default": ["pull"], "team-a/builder": [] },
      fetched: ["us-east-1"],
    },
  },
  {
    name: "foreign Secret: left alone, the namespace fails with SecretConflict",
    resource: resource(),
    world: (c) => {
      teamA(c);
      c.addSecret({
        metadata: { namespace: "team-a", name: "pull" },
        type: "Opaque",
        data: { x: "eA==" },
      });
    },
    want: {
      writes: ["create secret team-a/pull", `patch status ${NAME}`],
      ready: { status: "False", reason: "SecretConflict" },
      thrown: "PartiallySynced",
      pullSecrets: { "team-a/default": [] },
      events: ["Warning SecretConflict"],
    },
  },
  {
    name: "adopt: a same-named dockerconfigjson Secret is taken over with adoptExisting",
    resource: resource({ adoptExisting: true }),
    world: (c) => {
      teamA(c);
      c.addSecret({
        metadata: { namespace: "team-a", name: "pull" },
        type: DOCKER_CONFIG_JSON_TYPE,
        data: {
          [DOCKER_CONFIG_JSON_KEY]: Buffer.from(
            buildDockerConfigJson([{ host: HOST, username: "AWS", password: "old" }]),
          ).toString("base64"),
        },
      });
    },
    want: {
      writes: [
        "create secret team-a/pull",
        "patch secret team-a/pull",
        "patch serviceaccount team-a/default",
        `patch status ${NAME}`,
      ],
      ready: { status: "True", reason: "Synced" },
      secrets: { "team-a/pull": "pw-us-east-1" },
      pullSecrets: { "team-a/default": ["pull"] },
    },
  },
  {
    name: "Retain cleanup: a deleted resource leaves its Secrets and references, drops its finalizer",
    resource: resource({ deletionPolicy: "Retain" }, { deletionTimestamp: "2030-01-01T00:00:00Z" }),
    world: madeEarlier,
    want: {
      writes: [`patch metadata ${NAME}`],
      secrets: { "team-a/pull": "pw-old" },
      pullSecrets: { "team-a/default": ["theirs", "pull"] },
      fetched: [],
    },
  },
  {
    name: "Delete cleanup: a deleted resource takes back its references, then its Secrets",
    resource: resource({ deletionPolicy: "Delete" }, { deletionTimestamp: "2030-01-01T00:00:00Z" }),
    world: madeEarlier,
    want: {
      writes: [
        "patch serviceaccount team-a/default",
        "delete secret team-a/pull",
        `patch metadata ${NAME}`,
      ],
      secrets: { "team-a/pull": null },
      pullSecrets: { "team-a/default": ["theirs"] },
      fetched: [],
    },
  },
  {
    name: "Delete cleanup: a namespace that left the targets loses what the resource made there",
    resource: resource({ namespaces: ["team-a"] }),
    world: (c) => {
      teamA(c);
      c.addNamespace("team-b");
      c.addServiceAccount("team-b", "default", ["pull"]);
      claim(c, "team-b");
      c.addSecret(ourSecret("team-a", "pw-us-east-1"));
      c.addSecret(ourSecret("team-b", "pw-us-east-1"));
    },
    want: {
      writes: [
        // The Secret a pass of an hour ago wrote carries the old token.
        "patch secret team-a/pull",
        "patch serviceaccount team-a/default",
        "patch serviceaccount team-b/default",
        "delete secret team-b/pull",
        `patch status ${NAME}`,
      ],
      ready: { status: "True", reason: "Synced", message: "1/1 namespaces" },
      secrets: { "team-a/pull": "pw-us-east-1", "team-b/pull": null },
      pullSecrets: { "team-a/default": ["pull"], "team-b/default": [] },
    },
  },
  {
    name: "no token yet: nothing is written but the status, which names AWS's refusal",
    resource: resource(),
    world: teamA,
    fetch: () => accessDenied(),
    want: {
      writes: [`patch status ${NAME}`],
      ready: { status: "False", reason: "AccessDenied" },
      secrets: { "team-a/pull": null },
      pullSecrets: { "team-a/default": [] },
      events: ["Warning AccessDenied"],
    },
  },
  {
    name: "expired on arrival: the token is written (there is no better one) and Ready says why",
    resource: resource(),
    world: teamA,
    fetch: () => token("pw-expired", -60_000),
    want: {
      writes: FIRST_WRITES,
      ready: { status: "False", reason: "TokenExpiredOnArrival" },
      secrets: { "team-a/pull": "pw-expired" },
    },
  },
  {
    name: "one source failing: the healthy registry is written; Ready names the failing one",
    resource: resource({
      registries: [
        { accountId: "111111111111" },
        { accountId: "222222222222", region: "eu-west-1" },
      ],
    }),
    world: teamA,
    fetch: (s) => (s.region === "eu-west-1" ? accessDenied() : token(`pw-${s.region}`)),
    want: {
      writes: FIRST_WRITES,
      ready: { status: "False", reason: "AccessDenied" },
      secrets: { "team-a/pull": "pw-us-east-1" },
      events: ["Warning AccessDenied"],
      fetched: ["us-east-1", "eu-west-1"],
    },
    later: async (h) => {
      const s = await h.cluster.readSecret({ namespace: "team-a", name: "pull" });
      expect(Object.keys(auths(s?.data))).toEqual([HOST]);
      const r = h.cluster.resource(NAME);
      expect(r?.status?.conditions?.[0]?.message).toMatch(
        new RegExp(
          `^registry ${EU_HOST.replaceAll(".", "\\.")} keeps its previous entry \\(1/2 registries current\\): failed to `,
        ),
      );
      expect(r?.status?.registryStatus?.map((e) => [e.registry, e.current, e.reason])).toEqual([
        [HOST, true, undefined],
        [EU_HOST, false, "AccessDenied"],
      ]);
    },
  },
  {
    name: "both sources fine: one Secret holds both registries",
    resource: resource({
      registries: [
        { accountId: "111111111111" },
        { accountId: "222222222222", region: "eu-west-1" },
      ],
    }),
    world: teamA,
    want: {
      writes: FIRST_WRITES,
      ready: { status: "True", reason: "Synced" },
      secrets: { "team-a/pull": "pw-us-east-1" },
    },
    later: async (h) => {
      const s = await h.cluster.readSecret({ namespace: "team-a", name: "pull" });
      expect(Object.keys(auths(s?.data)).sort()).toEqual([HOST, EU_HOST]);
      expect(auths(s?.data)[EU_HOST]?.password).toBe("pw-eu-west-1");
    },
  },
  {
    name: "registry check backoff: a failed check is retried at 5 s, 10 s, … and not before",
    resource: resource(),
    world: teamA,
    verify: () => ({ ok: false, message: `${HOST}/v2/ answered HTTP 401` }),
    want: {
      writes: FIRST_WRITES,
      ready: { status: "True", reason: "Synced" },
      events: ["Warning VerificationFailed"],
    },
    later: async (h) => {
      expect(h.verifyCalls).toEqual(["pw-us-east-1"]);
      h.advance(1_000);
      expect(await h.pass()).toEqual({ ready: true, requeueAfterMs: VERIFY_RETRY_BASE_MS - 1_000 });
      expect(h.verifyCalls).toHaveLength(1);
      h.advance(VERIFY_RETRY_BASE_MS - 1_000);
      expect(await h.pass()).toEqual({ ready: true, requeueAfterMs: 2 * VERIFY_RETRY_BASE_MS });
      expect(h.verifyCalls).toHaveLength(2);
      const verified = h.cluster
        .resource(NAME)
        ?.status?.conditions?.find((c) => c.type === ConditionType.Verified);
      expect(verified).toMatchObject({ status: "False", reason: "VerificationFailed" });
    },
  },
  {
    name: "conflict retry: a ServiceAccount changed by someone else is re-read and both changes kept",
    resource: resource(),
    world: (c) => {
      teamA(c);
      c.conflicts.set("patch serviceaccount team-a/default", {
        times: 1,
        meanwhile: () =>
          c.editServiceAccount({ namespace: "team-a", name: "default" }, (sa) => {
            sa.imagePullSecrets = [{ name: "theirs" }];
          }),
      });
    },
    want: {
      writes: [
        "create secret team-a/pull",
        "patch serviceaccount team-a/default",
        "patch serviceaccount team-a/default",
        `patch status ${NAME}`,
      ],
      ready: { status: "True", reason: "Synced" },
      pullSecrets: { "team-a/default": ["theirs", "pull"] },
    },
  },
  {
    name: "conflict retry gives up after 8 tries: the namespace fails with ServiceAccountConflict",
    resource: resource(),
    world: (c) => {
      teamA(c);
      c.conflicts.set("patch serviceaccount team-a/default", { times: 8 });
    },
    want: {
      writes: [
        "create secret team-a/pull",
        ...Array<string>(8).fill("patch serviceaccount team-a/default"),
        `patch status ${NAME}`,
      ],
      ready: { status: "False", reason: "PartiallySynced" },
      thrown: "PartiallySynced",
      pullSecrets: { "team-a/default": [] },
    },
  },
  {
    name: "a Secret write that loses re-reads and patches the current version",
    resource: resource(),
    world: (c) => {
      teamA(c);
      c.addSecret(ourSecret("team-a", "pw-old"));
      c.conflicts.set("patch secret team-a/pull", { times: 1 });
    },
    want: {
      writes: [
        "patch secret team-a/pull",
        "patch secret team-a/pull",
        "patch serviceaccount team-a/default",
        `patch status ${NAME}`,
      ],
      ready: { status: "True", reason: "Synced" },
      secrets: { "team-a/pull": "pw-us-east-1" },
    },
  },
  {
    name: "invalid spec: terminal, reported on the status, nothing fetched or written",
    resource: resource({ refreshBefore: "soon" }),
    world: teamA,
    want: {
      writes: [`patch status ${NAME}`],
      ready: { status: "False", reason: "InvalidSpec" },
      events: ["Warning InvalidSpec"],
      fetched: [],
    },
  },
  {
    name: "every output: config.json and Argo CD Secrets from the one token, ServiceAccount secrets merged",
    resource: resource({
      dockerConfigSecret: { name: "docker-config" },
      argoCD: {},
      serviceAccountFields: ["imagePullSecrets", "secrets"],
      secretTemplate: { labels: { team: "a" } },
    }),
    world: teamA,
    want: {
      writes: [
        "create secret team-a/pull",
        "create secret team-a/docker-config",
        "patch serviceaccount team-a/default",
        `create secret argocd/team-helm-${HOST}`,
        `patch status ${NAME}`,
      ],
      ready: { status: "True", reason: "Synced" },
      secrets: { "team-a/pull": "pw-us-east-1" },
      pullSecrets: { "team-a/default": ["pull"], "team-a/builder": [] },
      fetched: ["us-east-1"],
    },
    later: async (h) => {
      const pull = await h.cluster.readSecret({ namespace: "team-a", name: "pull" });
      const config = await h.cluster.readSecret({ namespace: "team-a", name: "docker-config" });
      expect(config?.type).toBe("Opaque");
      expect(config?.data?.["config.json"]).toBe(pull?.data?.[DOCKER_CONFIG_JSON_KEY]);
      expect(config?.metadata?.labels?.team).toBe("a");
      const argo = await h.cluster.readSecret({ namespace: "argocd", name: `team-helm-${HOST}` });
      const text = (k: string) => Buffer.from(argo?.data?.[k] ?? "", "base64").toString();
      expect([text("url"), text("type"), text("username"), text("password")]).toEqual([
        HOST,
        "helm",
        "AWS",
        "pw-us-east-1",
      ]);
      const sa = [...h.cluster.serviceAccounts("team-a")].find(
        (x) => x.metadata?.name === "default",
      );
      expect(sa?.secrets).toEqual([{ name: "pull" }]);
      // Nothing more to do on a second pass.
      const before = h.cluster.writes.length;
      await h.pass();
      expect(h.cluster.writes.slice(before)).toEqual([]);
    },
  },
  {
    name: "Retain: outputs no longer asked for, and a deleted resource's, stay where they are",
    resource: resource({
      deletionPolicy: "Retain",
      dockerConfigSecret: { name: "docker-config" },
      argoCD: {},
      serviceAccountFields: ["imagePullSecrets", "secrets"],
    }),
    world: teamA,
    want: {
      writes: [
        "create secret team-a/pull",
        "create secret team-a/docker-config",
        "patch serviceaccount team-a/default",
        `create secret argocd/team-helm-${HOST}`,
        `patch status ${NAME}`,
      ],
    },
    later: async (h) => {
      const r = h.cluster.resource(NAME);
      if (!r) throw new Error("no resource");
      h.cluster.addResource({
        ...r,
        metadata: { ...r.metadata, deletionTimestamp: "2030-01-01T00:00:00Z" },
      });
      const before = h.cluster.writes.length;
      await h.pass();
      expect(h.cluster.writes.slice(before)).toEqual([`patch metadata ${NAME}`]);
      for (const [namespace, name] of [
        ["team-a", "docker-config"],
        ["argocd", `team-helm-${HOST}`],
      ] as const) {
        expect(await h.cluster.readSecret({ namespace, name }), name).toBeDefined();
      }
      const sa = [...h.cluster.serviceAccounts("team-a")].find(
        (x) => x.metadata?.name === "default",
      );
      expect(sa?.secrets).toEqual([{ name: "pull" }]);
    },
  },
  {
    name: "outputs no longer asked for: their Secrets and the secrets entry go, the pull Secret stays",
    resource: resource({
      dockerConfigSecret: { name: "docker-config" },
      argoCD: {},
      serviceAccountFields: ["imagePullSecrets", "secrets"],
    }),
    world: teamA,
    want: {
      writes: [
        "create secret team-a/pull",
        "create secret team-a/docker-config",
        "patch serviceaccount team-a/default",
        `create secret argocd/team-helm-${HOST}`,
        `patch status ${NAME}`,
      ],
    },
    later: async (h) => {
      const r = h.cluster.resource(NAME);
      if (!r) throw new Error("no resource");
      h.cluster.addResource({
        ...r,
        spec: {
          ...r.spec,
          dockerConfigSecret: undefined,
          argoCD: undefined,
          serviceAccountFields: undefined,
        },
      });
      const before = h.cluster.writes.length;
      await h.pass();
      expect(h.cluster.writes.slice(before)).toEqual([
        "patch serviceaccount team-a/default",
        "delete secret team-a/docker-config",
        `delete secret argocd/team-helm-${HOST}`,
      ]);
      const sa = [...h.cluster.serviceAccounts("team-a")].find(
        (x) => x.metadata?.name === "default",
      );
      expect(sa?.secrets ?? []).toEqual([]);
      expect(h.cluster.pullSecretsOf("team-a", "default")).toEqual(["pull"]);
      expect(await h.cluster.readSecret({ namespace: "team-a", name: "pull" })).toBeDefined();
    },
  },
];

function auths(data: Record<string, string> | undefined) {
  const json = Buffer.from(data?.[DOCKER_CONFIG_JSON_KEY] ?? "", "base64").toString("utf8");
  return parseAuths(json);
}

const caches: TokenCache[] = [];
afterEach(() => {
  for (const c of caches.splice(0)) c.close();
});

/** The real Reconciler over a fake cluster and a real token cache with a scripted AWS side. */
function setUp(c: Pick<Case, "resource" | "world" | "fetch" | "verify" | "admit">) {
  const cluster = new FakeCluster();
  c.world(cluster);
  cluster.addResource(c.resource);
  cluster.writes.length = 0;
  const fetched: string[] = [];
  const tokens = new TokenCache({
    fetch: async (source) => {
      fetched.push(source.region);
      const answer = c.fetch?.(source) ?? token(`pw-${source.region}`);
      if (answer instanceof Error) throw answer;
      return answer;
    },
    onChange: () => {},
    minRefreshIntervalMs: 60_000,
    backoffBaseMs: 1_000,
    backoffMaxMs: 60_000,
    jitter: 0,
  });
  caches.push(tokens);
  const events: string[] = [];
  const verifyCalls: string[] = [];
  let clock = Date.now();
  const verify = c.verify;
  const reconciler = new Reconciler(
    cluster,
    tokens,
    { record: (_target, type, reason) => events.push(`${type} ${reason}`), forget: () => {} },
    new Metrics({ processMetrics: false }),
    createLogger({ level: "silent", format: "json" }),
    {
      defaults: {},
      writeConcurrency: 4,
      now: () => clock,
      admissions: {
        admit: async (sa, roleArn) =>
          (c.admit ?? (() => true))(sa.name, roleArn)
            ? { ok: true }
            : {
                ok: false,
                error: operatorError("RoleNotAssumable", "accessDenied", {
                  step: "admit the ServiceAccount to its role",
                  source: `role ${roleArn} assumed with the web identity of ServiceAccount ${sa.namespace}/${sa.name}`,
                  detail: "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                }),
              },
      },
      ...(verify
        ? {
            verify: async (_r: string, _url: string, _user: string, password: string) => {
              verifyCalls.push(password);
              return verify(password);
            },
          }
        : {}),
    },
  );
  const harness: Harness = {
    cluster,
    reconciler,
    advance: (ms) => {
      clock += ms;
    },
    verifyCalls,
    pass: () => reconciler.reconcile(NAME),
  };
  return { harness, fetched, events };
}

describe("Reconciler.reconcile: the table", () => {
  it.each(cases)("$name", async (c) => {
    const { harness, fetched, events } = setUp(c);
    const { cluster } = harness;
    let thrown: unknown;
    try {
      await harness.pass();
    } catch (err) {
      thrown = err;
    }

    const { want } = c;
    expect(cluster.writes).toEqual(want.writes);
    if (want.thrown) expect(isOperatorError(thrown, want.thrown), String(thrown)).toBe(true);
    else expect(thrown).toBeUndefined();
    if (want.ready) {
      const ready = cluster
        .resource(NAME)
        ?.status?.conditions?.find((x) => x.type === ConditionType.Ready);
      expect(ready).toMatchObject(want.ready);
    }
    for (const [key, password] of Object.entries(want.secrets ?? {})) {
      const [namespace = "", name = ""] = key.split("/");
      const secret = await cluster.readSecret({ namespace, name });
      if (password === null) expect(secret, key).toBeUndefined();
      else expect(auths(secret?.data)[HOST]?.password, key).toBe(password);
    }
    for (const [key, names] of Object.entries(want.pullSecrets ?? {})) {
      const [namespace = "", name = ""] = key.split("/");
      expect(cluster.pullSecretsOf(namespace, name), key).toEqual(names);
    }
    expect(events).toEqual(want.events ?? []);
    if (want.fetched) expect(fetched).toEqual(want.fetched);
    await c.later?.(harness);
  });
});

describe("Reconciler.reconcile: a new resource", () => {
  it("gets a new resource's token while its finalizer goes on, and writes nothing before the finalizer is on", async () => {
    // The finalizer's patch is answered only once the token has been fetched:
    // a pass that waited for one before starting the other would never end.
    let fetchedToken!: () => void;
    const tokenFetched = new Promise<void>((resolve) => {
      fetchedToken = resolve;
    });
    const { harness } = setUp({
      resource: resource({}, { finalizers: [] }),
      world: teamA,
      fetch: () => {
        fetchedToken();
        return token("pw-concurrent");
      },
    });
    const { cluster } = harness;
    const patch = cluster.patchResourceMetadata.bind(cluster);
    cluster.patchResourceMetadata = async (name, metadata) => {
      await tokenFetched;
      await patch(name, metadata);
    };
    const outcome = await Promise.race([
      harness.pass(),
      new Promise((resolve) => setTimeout(() => resolve("still waiting after 2 s"), 2_000)),
    ]);
    expect(outcome).toEqual({ ready: true });
    expect(cluster.writes).toEqual([`patch metadata ${NAME}`, ...FIRST_WRITES]);
    expect(cluster.resource(NAME)?.metadata?.finalizers).toEqual([FINALIZER]);
    const secret = await cluster.readSecret({ namespace: "team-a", name: "pull" });
    expect(auths(secret?.data)[HOST]?.password).toBe("pw-concurrent");
  });
});

describe("Reconciler.reconcile: adoption", () => {
  it("adopts by merging (others' keys and auths kept), judges it in sync, and releases it on deletion", async () => {
    const OTHER = "999999999999.dkr.ecr.us-east-1.amazonaws.com";
    const { harness, events } = setUp({
      resource: resource({ adoptExisting: true }),
      world: (c) => {
        teamA(c);
        c.addSecret({
          metadata: { namespace: "team-a", name: "pull", labels: { team: "a" } },
          type: DOCKER_CONFIG_JSON_TYPE,
          data: {
            [DOCKER_CONFIG_JSON_KEY]: Buffer.from(
              buildDockerConfigJson([
                { host: HOST, username: "AWS", password: "old" },
                { host: OTHER, username: "AWS", password: "theirs" },
              ]),
            ).toString("base64"),
            notes: "a2VlcA==",
          },
        });
      },
    });
    const { cluster } = harness;
    expect(await harness.pass()).toEqual({ ready: true });
    expect(cluster.writes).toEqual([
      "create secret team-a/pull",
      "patch secret team-a/pull",
      "patch serviceaccount team-a/default",
      `patch status ${NAME}`,
    ]);
    let secret = await cluster.readSecret({ namespace: "team-a", name: "pull" });
    expect(auths(secret?.data)[HOST]?.password).toBe("pw-us-east-1");
    expect(auths(secret?.data)[OTHER]?.password).toBe("theirs");
    expect(secret?.data?.notes).toBe("a2VlcA==");
    expect(secret?.metadata?.annotations?.["ecrcreds.io/adopted"]).toBe("team-a/pull");

    const first = cluster.writes.length;
    await harness.pass();
    expect(cluster.writes.slice(first)).toEqual([]);

    const r = cluster.resource(NAME);
    if (!r) throw new Error("no resource");
    cluster.addResource({
      ...r,
      metadata: { ...r.metadata, deletionTimestamp: "2030-01-01T00:00:00Z" },
    });
    const before = cluster.writes.length;
    await harness.pass();
    expect(cluster.writes.slice(before)).toEqual([
      "patch serviceaccount team-a/default",
      "patch secret team-a/pull",
      `patch metadata ${NAME}`,
    ]);
    secret = await cluster.readSecret({ namespace: "team-a", name: "pull" });
    expect(Object.keys(auths(secret?.data))).toEqual([OTHER]);
    expect(secret?.data?.notes).toBe("a2VlcA==");
    expect(secret?.metadata?.labels).toEqual({ team: "a" });
    expect(secret?.metadata?.annotations).toEqual({});
    expect(events).toContain("Normal SecretReleased");
  });

  it("refuses to adopt a config.json or Argo CD Secret, leaving it as it was", async () => {
    const { harness, events } = setUp({
      resource: resource({ adoptExisting: true, dockerConfigSecret: { name: "docker-config" } }),
      world: (c) => {
        teamA(c);
        c.addSecret({
          metadata: { namespace: "team-a", name: "docker-config" },
          type: "Opaque",
          data: { "config.json": "e30=", other: "eA==" },
        });
      },
    });
    await expect(harness.pass()).rejects.toThrow(/PartiallySynced|failed to sync/);
    const secret = await harness.cluster.readSecret({ namespace: "team-a", name: "docker-config" });
    expect(secret?.data).toEqual({ "config.json": "e30=", other: "eA==" });
    const ready = harness.cluster
      .resource(NAME)
      ?.status?.failures?.find((f) => f.namespace === "team-a");
    expect(ready?.reason).toBe("SecretConflict");
    expect(ready?.message).toContain("spec.dockerConfigSecret.name");
    expect(events).toContain("Warning SecretConflict");
  });
});

describe("Reconciler.reconcile: cleanup of copies and of Secrets Pods still name", () => {
  it("leaves a copy of its Secret in a namespace it does not target alone, with an Event", async () => {
    const { harness, events } = setUp({ resource: resource(), world: teamA });
    const { cluster } = harness;
    await harness.pass();
    const ours = await cluster.readSecret({ namespace: "team-a", name: "pull" });
    if (!ours) throw new Error("no Secret team-a/pull");
    expect(ours.metadata?.annotations?.["ecrcreds.io/written-in"]).toBe("team-a/pull");
    cluster.addNamespace("other");
    cluster.addSecret({ ...ours, metadata: { ...ours.metadata, namespace: "other" } });
    const before = cluster.writes.length;
    await harness.pass();
    expect(cluster.writes.slice(before)).toEqual([]);
    expect(await cluster.readSecret({ namespace: "other", name: "pull" })).toBeDefined();
    expect(events).toContain("Warning SecretCopyLeftAlone");
  });

  it("keeps and refreshes an old Secret a Pod still names, says so in status, then removes it", async () => {
    const { harness, events } = setUp({ resource: resource(), world: teamA });
    const { cluster } = harness;
    await harness.pass();
    const r = cluster.resource(NAME);
    if (!r) throw new Error("no resource");
    cluster.addResource({ ...r, spec: { ...r.spec, secretName: "pull2" } });
    cluster.podsByNamespace.set("team-a", [{ name: "web", imagePullSecrets: ["pull"] }]);
    const before = cluster.writes.length;
    expect(await harness.pass()).toEqual({ ready: true, requeueAfterMs: 10_000 });
    expect(cluster.writes.slice(before)).toEqual([
      "create secret team-a/pull2",
      "patch serviceaccount team-a/default",
      `patch status ${NAME}`,
    ]);
    expect(cluster.resource(NAME)?.status?.keptSecrets).toEqual([
      {
        namespace: "team-a",
        name: "pull",
        pods: 1,
        message:
          "kept and refreshed while Pods name it in imagePullSecrets (web); removed once none does",
      },
    ]);
    expect(events).toEqual(["Normal SecretKeptInUse"]);
    cluster.podsByNamespace.set("team-a", []);
    const again = cluster.writes.length;
    expect(await harness.pass()).toEqual({ ready: true });
    expect(cluster.writes.slice(again)).toEqual([
      "delete secret team-a/pull",
      `patch status ${NAME}`,
    ]);
    expect(cluster.resource(NAME)?.status?.keptSecrets).toBeUndefined();
  });

  it("keeps a role's Secret that a Pod still names after its ServiceAccount leaves serviceAccounts", async () => {
    const roles = { serviceAccountRoles: { unannotated: "Default" as const } };
    const { harness } = setUp({
      resource: resource({ serviceAccounts: ["default", "builder"], ...roles }),
      world: teamAWithRoles,
      fetch: byRole,
    });
    const { cluster } = harness;
    await harness.pass();
    expect(cluster.pullSecretsOf("team-a", "builder")).toEqual([SECRET_A]);
    const r = cluster.resource(NAME);
    if (!r) throw new Error("no resource");
    cluster.addResource({ ...r, spec: { ...r.spec, serviceAccounts: ["default"] } });
    cluster.podsByNamespace.set("team-a", [{ name: "build-1", imagePullSecrets: [SECRET_A] }]);
    const before = cluster.writes.length;
    expect(await harness.pass()).toEqual({ ready: true, requeueAfterMs: 10_000 });
    expect(cluster.writes.slice(before)).toEqual([
      "patch serviceaccount team-a/builder",
      `patch status ${NAME}`,
    ]);
    expect(cluster.pullSecretsOf("team-a", "builder")).toEqual([]);
    expect(cluster.resource(NAME)?.status?.keptSecrets?.map((k) => k.name)).toEqual([SECRET_A]);
    cluster.podsByNamespace.set("team-a", []);
    const again = cluster.writes.length;
    expect(await harness.pass()).toEqual({ ready: true });
    expect(cluster.writes.slice(again)).toEqual([
      `delete secret team-a/${SECRET_A}`,
      `patch status ${NAME}`,
    ]);
  });
});

describe("Reconciler.reconcile: a pass writes only what changed", () => {
  it("a second pass over an unchanged world writes nothing", async () => {
    const { harness } = setUp({ resource: resource(), world: teamA });
    expect(await harness.pass()).toEqual({ ready: true });
    const first = harness.cluster.writes.length;
    expect(first).toBe(3);
    expect(await harness.pass()).toEqual({ ready: true });
    expect(harness.cluster.writes.slice(first)).toEqual([]);
  });
});

/**
 * Runs one pass (one that ends in an error too) and counts its writes of the
 * status subresource: the fake records each as "patch status <name>".
 */
async function statusWritesOf(h: Harness): Promise<number> {
  const before = h.cluster.writes.length;
  await h.pass().catch((err: unknown) => {
    if (!isOperatorError(err)) throw err;
  });
  return h.cluster.writes.slice(before).filter((w) => w === `patch status ${NAME}`).length;
}

/** Replaces the cached resource as an edit of its spec does: a new generation. */
function editSpec(h: Harness, spec: Partial<ECRPullSecret["spec"]>): void {
  const r = h.cluster.resource(NAME);
  if (!r) throw new Error("no resource");
  const generation = (r.metadata.generation ?? 1) + 1;
  h.cluster.addResource({
    ...r,
    metadata: { ...r.metadata, generation },
    spec: { ...r.spec, ...spec },
  });
}

describe("Reconciler.reconcile: one status write per pass, none when nothing changed", () => {
  it("a first pass writes the status once; a second identical pass does not write it", async () => {
    const { harness } = setUp({ resource: resource(), world: teamA });
    expect(await statusWritesOf(harness)).toBe(1);
    expect(await statusWritesOf(harness)).toBe(0);
  });

  it("a pass after a spec change writes the status once, the pass after it not at all", async () => {
    const { harness } = setUp({ resource: resource(), world: teamA });
    await harness.pass();
    editSpec(harness, { secretName: "pull2" });
    expect(await statusWritesOf(harness)).toBe(1);
    expect(harness.cluster.resource(NAME)?.status?.observedGeneration).toBe(2);
    expect(await statusWritesOf(harness)).toBe(0);
  });

  it("an invalid spec writes the status once, wherever the pass finds it; again, not at all", async () => {
    const { harness } = setUp({ resource: resource({ refreshBefore: "soon" }), world: teamA });
    expect(await statusWritesOf(harness)).toBe(1);
    expect(await statusWritesOf(harness)).toBe(0);
    // Found only at the targets, after the tokens: the pass's second exit.
    const selector = { matchExpressions: [{ key: "team", operator: "In" as const, values: [] }] };
    editSpec(harness, { refreshBefore: "1h", namespaces: [], namespaceSelector: selector });
    expect(await statusWritesOf(harness)).toBe(1);
    const ready = harness.cluster
      .resource(NAME)
      ?.status?.conditions?.find((c) => c.type === ConditionType.Ready);
    expect(ready).toMatchObject({ status: "False", reason: "InvalidSpec" });
    expect(await statusWritesOf(harness)).toBe(0);
  });

  it("a pass with no token writes the status once; the same failure again, not at all", async () => {
    const { harness } = setUp({ resource: resource(), world: teamA, fetch: () => accessDenied() });
    expect(await statusWritesOf(harness)).toBe(1);
    expect(await statusWritesOf(harness)).toBe(0);
  });

  it("a pass with a failed namespace writes the status once, then throws", async () => {
    const { harness } = setUp({
      resource: resource(),
      world: (c) => {
        teamA(c);
        c.addSecret({ metadata: { namespace: "team-a", name: "pull" }, type: "Opaque" });
      },
    });
    await expect(harness.pass()).rejects.toThrow();
    expect(harness.cluster.writes.filter((w) => w.startsWith("patch status"))).toHaveLength(1);
    expect(await statusWritesOf(harness)).toBe(0);
  });
});
