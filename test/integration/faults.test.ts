import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AwsDouble, FaultHandle } from "../aws-double/index.js";
import { ensureBuilt } from "../harness/build.js";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  auditWrites,
  deleteNamespaces,
  deleteResource,
  getResource,
  mergePatch,
  readyCondition,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import type { OperatorProcess } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const FAN_OUT = 250;
/** Stated bound: every namespace converged this long after a fault ends. */
const CONVERGE_BOUND_MS = 30_000;
const ACCOUNT = "777788889999";
const OTHER_ACCOUNT = "777788880000";
const HOSTS = [ACCOUNT, OTHER_ACCOUNT].map((a) => `${a}.dkr.ecr.us-east-1.amazonaws.com`).sort();
const OPS = "fault-ops";
const OWNER = "fault-fan";
const SECRET = "ecr-fault";
const OPERATOR_USER = `system:serviceaccount:${OPS}:operator`;
const namespaces = Array.from({ length: FAN_OUT }, (_, i) => `fault-n-${i}`);
/** Namespaces whose default ServiceAccount carries someone else's pull secret. */
const sharedSa = namespaces.filter((_, i) => i % 10 === 0);
const identities = Array.from({ length: 12 }, (_, i) => ({
  accessKeyId: `AKIAFAULT${String(i).padStart(11, "0")}`,
  secretAccessKey: `fault-secret-key-${String(i).padStart(24, "0")}`,
  accountId: ACCOUNT,
  arn: `arn:aws:iam::${ACCOUNT}:user/fault-${i}`,
}));

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let op: OperatorProcess;
/** Output of operator processes that ended (the SIGKILL test replaces one). */
const earlierOutput: string[] = [];
let operatorArgs: string[];
let keyIndex = 0;
/** Measured figures, printed at the end for docs/reliability.md. */
const results: Array<{ fault: string; convergeMs: number; note: string }> = [];

const operatorEnv = () => ({ AWS_ENDPOINT_URL: aws.url, AWS_REGION: "us-east-1" });

async function useKeys(i: number): Promise<void> {
  keyIndex = i;
  const id = identities[i];
  if (!id) throw new Error(`no identity ${i}`);
  await stack.putKeys("fault-creds", id);
}

interface SecretState {
  passwords: Map<string, string>;
  /** Namespaces whose Secret is not a complete dockerconfigjson with every registry. */
  broken: string[];
}

/** Reads every managed Secret of the fan-out in one list call and checks its shape. */
async function secretsNow(): Promise<SecretState> {
  const list = await k.core.listSecretForAllNamespaces({
    labelSelector: `ecrcreds.io/owner=${OWNER}`,
  });
  const passwords = new Map<string, string>();
  const broken: string[] = [];
  for (const s of list.items) {
    const ns = s.metadata?.namespace ?? "";
    try {
      if (s.type !== "kubernetes.io/dockerconfigjson") throw new Error("type");
      const raw = Buffer.from(s.data?.[".dockerconfigjson"] ?? "", "base64").toString("utf8");
      const auths = (JSON.parse(raw) as { auths: Record<string, { password: string }> }).auths;
      if (JSON.stringify(Object.keys(auths).sort()) !== JSON.stringify(HOSTS)) throw new Error();
      const pw = auths[HOSTS[0] as string]?.password ?? "";
      if (!pw || auths[HOSTS[1] as string]?.password !== pw) throw new Error("password");
      passwords.set(ns, pw);
    } catch {
      broken.push(ns);
    }
  }
  return { passwords, broken };
}

/** Invariants that hold at every moment: no half-written or expired Secret. */
function assertSound(state: SecretState, when: string): void {
  expect(state.broken, `half-written Secrets ${when}`).toEqual([]);
  const expired = [...state.passwords].filter(([, pw]) => !aws.isValidPassword(pw));
  expect(
    expired.map(([ns]) => ns),
    `Secrets with an expired or unknown password ${when}`,
  ).toEqual([]);
}

function principalOf(password: string): string | undefined {
  return aws.issued().find((t) => t.password === password)?.principalArn;
}

/** How many target Secrets hold a token issued to identity `i`. */
function countFrom(state: SecretState, i: number): number {
  const arn = identities[i]?.arn;
  let n = 0;
  for (const pw of state.passwords.values()) if (principalOf(pw) === arn) n++;
  return n;
}

/**
 * Waits until every namespace in `targets` holds one valid password (issued
 * to identity `fromKey` when given), every default ServiceAccount references
 * the Secret, and nobody else's entry is gone. Checks the invariants on every
 * poll. Returns the time it took.
 */
async function converged(
  targets: readonly string[],
  fromKey: number | undefined,
  boundMs = CONVERGE_BOUND_MS,
): Promise<number> {
  const started = Date.now();
  await waitFor(
    `${targets.length} namespaces to converge`,
    async () => {
      const state = await secretsNow();
      assertSound(state, "while converging");
      const pws = new Set(targets.map((ns) => state.passwords.get(ns)));
      if (pws.size !== 1 || pws.has(undefined)) return undefined;
      const pw = [...pws][0] as string;
      if (fromKey !== undefined && principalOf(pw) !== identities[fromKey]?.arn) return undefined;
      const sas = await k.core.listServiceAccountForAllNamespaces({
        fieldSelector: "metadata.name=default",
      });
      const byNs = new Map(sas.items.map((s) => [s.metadata?.namespace ?? "", s]));
      for (const ns of targets) {
        const names = (byNs.get(ns)?.imagePullSecrets ?? []).map((r) => r.name);
        if (!names.includes(SECRET)) return undefined;
        if (sharedSa.includes(ns)) expect(names, `entries of ${ns}/default`).toContain("theirs");
      }
      return true;
    },
    { timeoutMs: boundMs, intervalMs: 250 },
  );
  return Date.now() - started;
}

/** The operator process is alive and the same one as `pid`. */
function assertSameProcess(pid: number | undefined): void {
  expect(op.proc.pid).toBe(pid);
  expect(op.proc.exitCode).toBeNull();
  expect(op.proc.signalCode).toBeNull();
}

/**
 * Starts a fan-out (rotated keys make the operator fetch a new token and
 * rewrite every Secret) and resolves once it is under way: some Secrets hold
 * the new token, not all.
 */
async function startFanOut(key: number): Promise<number> {
  await useKeys(key);
  return await waitFor(
    `fan-out of key ${key} to be under way`,
    async () => {
      const n = countFrom(await secretsNow(), key);
      return n > 0 ? n : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
}

function startOperator(): OperatorProcess {
  return stack.startProcess(operatorArgs, operatorEnv());
}

beforeAll(async () => {
  // The operator runs from the built executable, as in production.
  const built = ensureBuilt();
  stack = await startStack({
    ops: OPS,
    tokenLifetimeMs: 30 * 60_000,
    identities,
    credentials: false,
  });
  ({ k, aws } = stack);
  for (let i = 0; i < namespaces.length; i += 25) {
    await Promise.all(namespaces.slice(i, i + 25).map((ns) => stack.namespace(ns)));
  }
  await waitFor(
    `default ServiceAccounts in ${FAN_OUT} namespaces`,
    async () => {
      const sas = await k.core.listServiceAccountForAllNamespaces({
        fieldSelector: "metadata.name=default",
      });
      const have = new Set(sas.items.map((s) => s.metadata?.namespace));
      return namespaces.every((ns) => have.has(ns)) ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  await Promise.all(
    sharedSa.map((namespace) =>
      k.core.patchNamespacedServiceAccount(
        { namespace, name: "default", body: { imagePullSecrets: [{ name: "theirs" }] } },
        mergePatch,
      ),
    ),
  );
  await useKeys(0);
  operatorArgs = stack.processArgs(await stack.serviceAccountKubeconfig("operator"), [
    "--log-level=debug",
    "--min-refresh-interval=500ms",
    "--aws-backoff-base=200ms",
    "--aws-backoff-max=2s",
    "--aws-timeout=2s",
    "--kube-api-qps=50",
    "--kube-api-burst=50",
  ]);
  await built;
  op = startOperator();
}, 300_000);

afterAll(async () => {
  if (!stack) return;
  await deleteResource(k, OWNER);
  await deleteResource(k, "fault-conflict");
  // Give the operator a moment to run its finalizer before it stops.
  await waitFor("fault resources gone", async () =>
    (await getResource(k, OWNER)) || (await getResource(k, "fault-conflict")) ? undefined : true,
  ).catch(() => undefined);
  await stack.stop();
  console.log(
    `fault matrix (${FAN_OUT} namespaces):\n${results
      .map((r) => `  ${r.fault}: converged ${r.convergeMs} ms after the fault ended; ${r.note}`)
      .join("\n")}`,
  );
}, 120_000);

/**
 * A second client: adds its own entry to the default ServiceAccount of each
 * of `namespaces`, then keeps rewriting them (an annotation) until stop(),
 * which resolves with how many rewrites it made.
 */
async function startBumpers(namespaces: readonly string[]): Promise<{ stop(): Promise<number> }> {
  for (const namespace of namespaces) {
    const sa = await k.core.readNamespacedServiceAccount({ namespace, name: "default" });
    await k.core.replaceNamespacedServiceAccount({
      namespace,
      name: "default",
      body: {
        ...sa,
        imagePullSecrets: [...(sa.imagePullSecrets ?? []), { name: `bumper-${namespace}` }],
      },
    });
  }
  let bumping = true;
  let bumps = 0;
  const bumpers = namespaces.map(async (namespace) => {
    while (bumping) {
      await k.core.patchNamespacedServiceAccount(
        {
          namespace,
          name: "default",
          body: { metadata: { annotations: { "fault.test/bump": String(bumps++) } } },
        },
        mergePatch,
      );
    }
  });
  return {
    async stop() {
      bumping = false;
      await Promise.all(bumpers);
      return bumps;
    },
  };
}

/** The operator process the matrix watches: every fault but the SIGKILL must leave it running. */
let pid: number | undefined;

describe(`fault matrix over a ${FAN_OUT}-namespace fan-out`, () => {
  it("fans out to every namespace (baseline)", async () => {
    pid = op.proc.pid;
    const started = Date.now();
    await applyResource(k, OWNER, {
      secretName: SECRET,
      namespaces: ["fault-n-*"],
      credentials: { secretRef: { name: "fault-creds", namespace: OPS } },
      registries: [{ accountId: ACCOUNT }, { accountId: OTHER_ACCOUNT }],
      region: "us-east-1",
    });
    await converged(namespaces, 0, 120_000);
    results.push({
      fault: "none (first fan-out)",
      convergeMs: Date.now() - started,
      note: `${FAN_OUT} Secrets created and ServiceAccounts patched`,
    });
    const r = await getResource(k, OWNER);
    expect(r?.status?.namespaces).toMatchObject({ desired: FAN_OUT, synced: FAN_OUT, failed: 0 });
    assertSameProcess(pid);
  });

  // Throttling while the Secrets hold a good token is not a failure (no
  // reason): the operator waits the SDK's back-off and asks again.
  const awsFaults: Array<[string, () => FaultHandle, string | undefined]> = [
    ["AWS throttling", () => aws.throttle({ service: "ecr" }), undefined],
    ["AWS 5xx", () => aws.error5xx({ service: "ecr" }), "TokenRefreshFailed"],
    ["AWS timeouts (hung calls)", () => aws.hang({ service: "ecr" }), "TokenRefreshFailed"],
    ["AWS refusing the keys", () => aws.refuse({ service: "ecr" }), "CredentialsInvalid"],
  ];
  for (const [what, inject, reason] of awsFaults) {
    it(`${what} mid-fan-out: Secrets kept valid, Ready says why (if it is a failure), converges after`, async () => {
      // A fan-out of a new token is under way; then the keys rotate again
      // while AWS fails, so the refetch that must follow fails.
      const first = keyIndex + 1;
      const under = await startFanOut(first);
      const fault = inject();
      await useKeys(first + 1);
      const faultStart = Date.now();
      if (reason !== undefined) {
        const r = await waitFor(`Ready=False (${reason})`, async () => {
          const res = await getResource(k, OWNER);
          return readyCondition(res)?.reason === reason ? res : undefined;
        });
        expect(readyCondition(r)?.status).toBe("False");
        expect(readyCondition(r)?.message).toMatch(/Secrets in place stay valid until \d{4}-/);
      }
      // Hold the fault for a while; the Secrets in place stay whole and valid.
      await consistently(
        `the Secrets in place whole and valid during ${what}`,
        async () => {
          assertSound(await secretsNow(), `during ${what}`);
          if (reason === undefined) {
            expect(readyCondition(await getResource(k, OWNER))?.reason).not.toBe(
              "TokenRefreshFailed",
            );
          }
          return true as const;
        },
        { forMs: Math.max(0, 3_000 - (Date.now() - faultStart)), intervalMs: 200 },
      );
      const state = await secretsNow();
      expect(state.passwords.size).toBe(FAN_OUT);
      fault.clear();
      const ms = await converged(namespaces, first + 1);
      await waitFor("Ready=True", async () =>
        readyCondition(await getResource(k, OWNER))?.status === "True" ? true : undefined,
      );
      results.push({
        fault: `${what} mid-fan-out`,
        convergeMs: ms,
        note: `fault held ${Date.now() - faultStart - ms} ms, ${under}/${FAN_OUT} Secrets had the new token when it struck; ${reason ? `Ready=False ${reason}` : "no failure"} meanwhile`,
      });
      assertSameProcess(pid);
    });
  }
});

describe(`fault matrix over a ${FAN_OUT}-namespace fan-out: the operator killed, a second writer`, () => {
  it("operator SIGKILLed mid-fan-out and restarted: no half-written Secret, converges", async () => {
    const key = keyIndex + 1;
    const under = await startFanOut(key);
    expect(op.proc.pid).toBe(pid);
    op.proc.kill("SIGKILL");
    expect(await op.exited).toBe("SIGKILL");
    const after = await secretsNow();
    assertSound(after, "right after SIGKILL");
    const partial = countFrom(after, key);
    const restarted = Date.now();
    earlierOutput.push(...op.output);
    op = startOperator();
    pid = op.proc.pid;
    // The restarted operator may keep either valid token it finds; it must
    // settle every namespace on one.
    const ms = await converged(namespaces, undefined);
    results.push({
      fault: "operator SIGKILL mid-fan-out + restart",
      convergeMs: Date.now() - restarted,
      note: `${under}→${partial}/${FAN_OUT} Secrets had the new token at the kill; converge measured from the restart (${ms} ms once polling began)`,
    });
    assertSameProcess(pid);
  });

  it("conflicts (409) on ServiceAccounts written by a second client: nobody's entry lost", async () => {
    const bumped = namespaces.slice(0, 10);
    // Someone else adds their own entry, then keeps rewriting the SAs.
    const bumpers = await startBumpers(bumped);
    const since = Date.now();
    const targets = namespaces.slice(0, 30);
    await applyResource(k, "fault-conflict", {
      secretName: "ecr-conflict",
      namespaces: targets,
      credentials: { secretRef: { name: "fault-creds", namespace: OPS } },
      registries: [{ accountId: ACCOUNT }],
    });
    // Five seconds of competing writes while the operator writes the same SAs.
    await new Promise((res) => setTimeout(res, 5_000));
    const bumps = await bumpers.stop();
    const stopped = Date.now();
    const ms = await waitFor(
      "every target SA to reference both Secrets with the bumper's entry kept",
      async () => {
        const sas = await k.core.listServiceAccountForAllNamespaces({
          fieldSelector: "metadata.name=default",
        });
        for (const ns of targets) {
          const sa = sas.items.find((s) => s.metadata?.namespace === ns);
          const names = (sa?.imagePullSecrets ?? []).map((r) => r.name);
          if (!names.includes("ecr-conflict") || !names.includes(SECRET)) return undefined;
          if (bumped.includes(ns)) expect(names).toContain(`bumper-${ns}`);
          if (sharedSa.includes(ns)) expect(names).toContain("theirs");
          expect(new Set(names).size, `duplicates in ${ns}`).toBe(names.length);
        }
        return Date.now() - stopped;
      },
      { timeoutMs: CONVERGE_BOUND_MS, intervalMs: 250 },
    );
    const conflicts = await auditWrites(
      cp.auditLogPath,
      (e) =>
        e.user.username === OPERATOR_USER &&
        e.objectRef?.resource === "serviceaccounts" &&
        e.responseStatus?.code === 409,
      since,
    );
    // The second client did make the operator's writes conflict.
    expect(conflicts.length).toBeGreaterThan(0);
    results.push({
      fault: "409 conflicts on ServiceAccounts (second client writing 10 SAs for 5 s)",
      convergeMs: ms,
      note: `${bumps} competing writes, ${conflicts.length} of the operator's SA patches answered 409`,
    });
    await converged(namespaces, undefined);
    assertSameProcess(pid);
  });
});

describe(`fault matrix over a ${FAN_OUT}-namespace fan-out: namespaces deleted, and the whole run`, () => {
  it("target namespaces deleted while being written: the rest converge, status counts right", async () => {
    const key = keyIndex + 1;
    const doomed = namespaces.slice(-10);
    await startFanOut(key);
    await deleteNamespaces(k, doomed);
    const deleted = Date.now();
    const rest = namespaces.filter((ns) => !doomed.includes(ns));
    const ms = await converged(rest, key);
    const r = await waitFor("status to count the remaining namespaces", async () => {
      const res = await getResource(k, OWNER);
      return res?.status?.namespaces?.desired === rest.length &&
        readyCondition(res)?.status === "True"
        ? res
        : undefined;
    });
    expect(r.status?.namespaces).toMatchObject({ synced: rest.length, failed: 0 });
    results.push({
      fault: "10 target namespaces deleted mid-fan-out",
      convergeMs: Date.now() - deleted,
      note: `remaining ${rest.length} converged in ${ms} ms; status desired=${rest.length}`,
    });
    assertSameProcess(pid);
  });

  it("printed no credential over the whole matrix (process output, debug level)", () => {
    const output = [...earlierOutput, ...op.output].join("\n");
    expect(output.length).toBeGreaterThan(0);
    for (const t of aws.issued()) expect(output).not.toContain(t.password);
    for (const id of identities) expect(output).not.toContain(id.secretAccessKey);
  });
});
