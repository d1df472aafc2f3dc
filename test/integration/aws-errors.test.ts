import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  getResource,
  putSecret as putSecretIn,
  readSecret,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import type { InProcessOperator } from "../harness/operator.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import {
  ecrHost,
  eventReasons as eventReasonsOf,
  passwordIn,
  waitForReady,
} from "../harness/state.js";

const OPS = "awserr-ops";
const ACCOUNT = "230000000001";
const ROLE = "arn:aws:iam::230000000009:role/pull";
const EXTERNAL_ID = "awserr-right-external-id";

type Keys = ReturnType<typeof iamUser>;
const keys = (n: number, user: string): Keys => iamUser("awserr", n, ACCOUNT, user);
const GOOD = keys(1, "good");
const DENIED = keys(2, "denied");
const UNKNOWN = keys(3, "unknown-to-aws");

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let op: InProcessOperator | undefined;

const stringData = (id: Keys) => ({
  AWS_ACCESS_KEY_ID: id.accessKeyId,
  AWS_SECRET_ACCESS_KEY: id.secretAccessKey,
});

async function putSecret(name: string, data: Record<string, string>): Promise<void> {
  await putSecretIn(k, OPS, name, data);
}

function spec(
  namespace: string,
  credentials: ECRPullSecret["spec"]["credentials"],
  region = "us-east-1",
): ECRPullSecret["spec"] {
  return {
    secretName: "ecr-pull",
    namespaces: [namespace],
    serviceAccounts: [],
    region,
    credentials,
    registries: [{ accountId: ACCOUNT }],
  };
}

const eventReasons = (name: string) => eventReasonsOf(k, name);

async function condition(name: string, reason: string) {
  let last = "";
  const r = await waitFor(`${name} to report ${reason}`, async () => {
    const res = await getResource(k, name);
    const ready = readyCondition(res);
    last = `${ready?.reason}: ${ready?.message}`;
    return ready?.reason === reason ? res : undefined;
  }).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; last: ${last}`);
  });
  const ready = readyCondition(r);
  expect(ready?.status).toBe("False");
  return ready as NonNullable<typeof ready>;
}

/** A Secret written by a good pass: its bytes and resourceVersion, to compare later. */
async function goodSecret(namespace: string) {
  const s = await waitFor(`Secret ${namespace}/ecr-pull`, () =>
    readSecret(k, namespace, "ecr-pull"),
  );
  const pw = passwordIn(s, ecrHost(ACCOUNT));
  expect(aws.isValidPassword(pw ?? "")).toBe(true);
  return { data: s.data, resourceVersion: s.metadata?.resourceVersion };
}

interface Case {
  name: string;
  reason: string;
  /** The credentials of the resource that worked. */
  credentials: ECRPullSecret["spec"]["credentials"];
  /** Breaks the source after a good pass. */
  breakIt: () => Promise<void>;
  /**
   * The same fault in a source of its own, broken from the start: a source
   * that once worked still holds its unexpired token, which the cache serves
   * to anyone using that source, so a new resource there would get it.
   */
  newCredentials: ECRPullSecret["spec"]["credentials"];
  prepareNew?: () => Promise<void>;
  /** What the message must name for the reader to fix it ("" or "-new" for the new resource). */
  names: (suffix: string) => string[];
}

const secretRef = (name: string) => ({ secretRef: { namespace: OPS, name } });
const cases: Case[] = [
  {
    name: "missing",
    reason: "CredentialsSecretNotFound",
    credentials: secretRef("keys-missing"),
    breakIt: () => k.core.deleteNamespacedSecret({ namespace: OPS, name: "keys-missing" }).then(),
    newCredentials: secretRef("keys-missing-new"),
    names: (x) => [`Secret ${OPS}/keys-missing${x} not found`, "spec.credentials.secretRef"],
  },
  {
    name: "nokeys",
    reason: "CredentialsSecretInvalid",
    credentials: secretRef("keys-nokeys"),
    breakIt: () => putSecret("keys-nokeys", { AWS_ACCESS_KEY_ID: GOOD.accessKeyId }),
    newCredentials: secretRef("keys-nokeys-new"),
    prepareNew: () => putSecret("keys-nokeys-new", { AWS_ACCESS_KEY_ID: GOOD.accessKeyId }),
    names: (x) => [`Secret ${OPS}/keys-nokeys${x}`, "AWS_SECRET_ACCESS_KEY"],
  },
  {
    name: "refused",
    reason: "CredentialsInvalid",
    credentials: secretRef("keys-refused"),
    breakIt: () => putSecret("keys-refused", stringData(UNKNOWN)),
    newCredentials: secretRef("keys-refused-new"),
    prepareNew: () => putSecret("keys-refused-new", stringData(UNKNOWN)),
    names: (x) => [`Secret ${OPS}/keys-refused${x}`, "refused"],
  },
  {
    name: "denied",
    reason: "AccessDenied",
    credentials: secretRef("keys-denied"),
    breakIt: () => putSecret("keys-denied", stringData(DENIED)),
    newCredentials: secretRef("keys-denied-new"),
    prepareNew: () => putSecret("keys-denied-new", stringData(DENIED)),
    names: (x) => [`Secret ${OPS}/keys-denied${x}`, "ecr:GetAuthorizationToken"],
  },
  {
    name: "role",
    reason: "RoleNotAssumable",
    credentials: { ...secretRef("keys-role"), roleArn: ROLE, externalId: EXTERNAL_ID },
    newCredentials: { ...secretRef("keys-role"), roleArn: ROLE, externalId: "awserr-wrong" },
    // A wrong external ID in the spec, as a typo would put it there.
    breakIt: async () => {
      const r = await getResource(k, "awserr-role");
      await applyResource(k, "awserr-role", {
        ...(r?.spec as ECRPullSecret["spec"]),
        credentials: { ...secretRef("keys-role"), roleArn: ROLE, externalId: "awserr-wrong" },
      });
    },
    names: () => [ROLE, "externalId"],
  },
];
const NAMESPACES = [
  OPS,
  ...cases.flatMap((c) => [`awserr-${c.name}`, `awserr-${c.name}-new`]),
  "awserr-region",
  "awserr-region-new",
];

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: NAMESPACES,
    identities: [GOOD, DENIED],
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push(...NAMESPACES.filter((ns) => ns !== OPS));
  aws.denyEcr(DENIED.accessKeyId);
  aws.addRole({ roleArn: ROLE, trustedPrincipalArns: [GOOD.arn], externalId: EXTERNAL_ID });
  for (const c of cases) await putSecret(`keys-${c.name}`, stringData(GOOD));
  await putSecret("keys-region", stringData(GOOD));
  op = await stack.startOperator({ as: false });
});

afterAll(async () => {
  await stack?.stop();
});

describe("errors that say what to do", () => {
  it("each broken source: its reason, its Event, a message naming what to fix, no Secret written or removed", async () => {
    for (const c of cases) {
      await applyResource(k, `awserr-${c.name}`, spec(`awserr-${c.name}`, c.credentials));
    }
    const before = new Map<string, Awaited<ReturnType<typeof goodSecret>>>();
    for (const c of cases) {
      await waitForReady(k, `awserr-${c.name}`);
      before.set(c.name, await goodSecret(`awserr-${c.name}`));
    }

    for (const c of cases) await c.breakIt();
    for (const c of cases) await c.prepareNew?.();
    // The same broken source from the start, for a resource that never worked.
    for (const c of cases) {
      await applyResource(
        k,
        `awserr-${c.name}-new`,
        spec(`awserr-${c.name}-new`, c.newCredentials),
      );
    }

    for (const c of cases) {
      for (const name of [`awserr-${c.name}`, `awserr-${c.name}-new`]) {
        const ready = await condition(name, c.reason);
        for (const part of c.names(name.endsWith("-new") ? "-new" : "")) {
          expect(ready.message, `${name}: ${ready.message}`).toContain(part);
        }
        expect(ready.message).not.toContain(GOOD.secretAccessKey);
        const events = await waitFor(`a ${c.reason} Event on ${name}`, async () => {
          const reasons = await eventReasons(name);
          return reasons.includes(c.reason) ? reasons : undefined;
        });
        expect(events).toContain(c.reason);
      }
      // The Secret that worked is still there, untouched; the new resource wrote none.
      const now = await readSecret(k, `awserr-${c.name}`, "ecr-pull");
      expect(now?.data, c.name).toEqual(before.get(c.name)?.data);
      expect(now?.metadata?.resourceVersion, c.name).toBe(before.get(c.name)?.resourceVersion);
      expect(await readSecret(k, `awserr-${c.name}-new`, "ecr-pull"), c.name).toBeUndefined();
    }
    // The double really was asked and really said no (not a guess by the operator).
    expect(aws.calls({ accessKeyId: UNKNOWN.accessKeyId }).map((c) => c.errorCode)).toContain(
      "UnrecognizedClientException",
    );
    expect(aws.calls({ accessKeyId: DENIED.accessKeyId }).map((c) => c.errorCode)).toContain(
      "AccessDeniedException",
    );
    expect(
      aws.calls({ service: "sts", action: "AssumeRole" }).map((c) => c.errorCode ?? "ok"),
    ).toContain("AccessDenied");
  });
});

describe("errors that say what to do: an unreachable region", () => {
  it("a region whose ECR endpoint cannot be reached: RegionUnknown, its Event, the Secret kept", async () => {
    await applyResource(k, "awserr-region", spec("awserr-region", secretRef("keys-region")));
    await waitForReady(k, "awserr-region");
    const before = await goodSecret("awserr-region");
    await op?.stop();
    op = undefined;

    // The same operator, now in an environment where the ECR endpoint's name
    // does not resolve (.invalid never does), as a mistyped region's would not.
    const p = stack.startProcess(
      stack.processArgs(stack.kubeconfigPath, [
        "--min-refresh-interval=500ms",
        "--aws-backoff-base=200ms",
        "--aws-backoff-max=2s",
        "--aws-timeout=2s",
      ]),
      await stack.isolatedAwsEnv({
        AWS_ENDPOINT_URL_ECR: "http://api.ecr.us-eest-1.region-unknown.invalid",
      }),
    );
    try {
      const r = await getResource(k, "awserr-region");
      await applyResource(k, "awserr-region", {
        ...(r?.spec as ECRPullSecret["spec"]),
        region: "us-eest-1",
      });
      await applyResource(
        k,
        "awserr-region-new",
        spec("awserr-region-new", secretRef("keys-region"), "us-eest-1"),
      );
      for (const name of ["awserr-region", "awserr-region-new"]) {
        const ready = await condition(name, "RegionUnknown");
        expect(ready.message).toContain("us-eest-1");
        expect(ready.message).toContain("spec.region");
        await waitFor(`a RegionUnknown Event on ${name}`, async () =>
          (await eventReasons(name)).includes("RegionUnknown") ? true : undefined,
        );
      }
      const now = await readSecret(k, "awserr-region", "ecr-pull");
      expect(now?.data).toEqual(before.data);
      expect(now?.metadata?.resourceVersion).toBe(before.resourceVersion);
      expect(await readSecret(k, "awserr-region-new", "ecr-pull")).toBeUndefined();
    } catch (err) {
      console.error(p.output.slice(-40).join("\n"));
      throw err;
    } finally {
      await p.stop();
    }
  });
});
