// `ecr-creds-refresher status` and `kubectl ecr-status` on a real API server:
// a healthy resource's row (Ready, namespaces, the expiry the AWS double
// issued), a failing one's (its reason, exit 1), and `--namespace N` naming
// what serves N and the Pod there that lacks the pull Secret.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runStatus, when } from "../../src/cli/status.js";
import { ensureBuilt } from "../harness/build.js";
import { captureOutput as capture } from "../harness/cli.js";
import { repoRoot } from "../harness/controlplane.js";
import {
  applyResource,
  createNamespace,
  deleteNamespaces,
  deleteResource,
  getResource,
  kubeletFailsPull,
  readyCondition,
  type TestKube,
  waitFor,
  waitForDefaultServiceAccount,
} from "../harness/kube.js";
import { testConfig } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";

const cp = inject("controlPlane");
const ACCOUNT = "444455556666";
const HOST = `${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const OPS = "st-ops";
const SERVED = "st-apps";
const FAILING = "st-nokeys";

let stack: Stack;
let k: TestKube;

async function status(opts: {
  namespace?: string;
  now: Date;
}): Promise<{ code: number; out: string; err: string }> {
  const out = capture();
  const err = capture();
  const code = await runStatus(testConfig(cp.kubeconfigPath), opts, out.stream, err.stream);
  return { code, out: out.text(), err: err.text() };
}

/** The line of `name` in a table, with its columns' padding collapsed. */
function row(text: string, name: string): string[] | undefined {
  return text
    .split("\n")
    .find((l) => l.startsWith(`${name} `))
    ?.split(/ {3,}/);
}

beforeAll(async () => {
  const built = ensureBuilt();
  stack = await startStack({
    ops: OPS,
    identities: [
      {
        accessKeyId: "AKIASTATUS0000000001",
        secretAccessKey: "status-secret-key-000000000000000000001",
        accountId: ACCOUNT,
        arn: `arn:aws:iam::${ACCOUNT}:user/${OPS}`,
      },
    ],
    tokenLifetimeMs: 10 * 60_000,
  });
  await stack.startOperator();
  k = stack.k;
  await Promise.all([createNamespace(k, SERVED), createNamespace(k, FAILING)]);
  await waitForDefaultServiceAccount(k, SERVED);
  await applyResource(k, "st-ok", {
    secretName: "ecr-st",
    namespaces: [SERVED],
    registries: [{ accountId: ACCOUNT }],
  });
  await applyResource(k, "st-bad", {
    secretName: "ecr-st-bad",
    namespaces: [FAILING],
    credentials: { secretRef: { namespace: OPS, name: "no-such-secret" } },
    registries: [{ accountId: ACCOUNT }],
  });
  await waitFor("st-ok Ready and st-bad failing", async () => {
    const [ok, bad] = [await getResource(k, "st-ok"), await getResource(k, "st-bad")];
    return readyCondition(ok)?.status === "True" &&
      readyCondition(bad)?.reason === "CredentialsSecretNotFound"
      ? true
      : undefined;
  });
  await built;
});

afterAll(async () => {
  await Promise.all([deleteResource(k, "st-ok"), deleteResource(k, "st-bad")]);
  await deleteNamespaces(k, [SERVED, FAILING, OPS]);
  await stack?.stop();
});

describe("status", () => {
  it("prints one row per resource: a healthy one, and a failing one with its reason (exit 1)", async () => {
    const ok = await getResource(k, "st-ok");
    const issued = stack.aws.issued().filter((t) => t.principalArn.endsWith(`:user/${OPS}`));
    expect(issued).toHaveLength(1);
    const expiresAt = issued[0]?.expiresAt as Date;
    expect(ok?.status?.tokenExpiresAt).toBe(expiresAt.toISOString());
    // A fixed clock: two minutes after the token was issued.
    const now = new Date(expiresAt.getTime() - 8 * 60_000);
    const r = await status({ now });
    expect(r.err).toBe("");
    expect(r.code).toBe(1);
    const lines = r.out.split("\n");
    expect(lines[0]?.split(/ {3,}/)).toEqual([
      "NAME",
      "READY",
      "REASON",
      "VERIFIED",
      "NAMESPACES",
      "EARLIEST EXPIRY",
      "NEXT REFRESH",
      "UNCOVERED PODS",
    ]);
    const stamp = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
    const next = new Date(ok?.status?.nextRefreshTime ?? "");
    const nextIn = Math.floor((next.getTime() - now.getTime()) / 1000);
    console.log(`status rows:\n${r.out}`);
    expect(row(r.out, "st-ok")).toEqual([
      "st-ok",
      "True",
      "Synced",
      "-",
      "1/1",
      `${stamp(expiresAt)} (in 8m0s)`,
      `${stamp(next)} (in ${Math.floor(nextIn / 60)}m${nextIn % 60}s)`,
      "0",
    ]);
    // The failing one: its reason, no expiry, and what its status says of
    // namespaces and the next attempt.
    const failing = await getResource(k, "st-bad");
    const counts = failing?.status?.namespaces;
    expect(row(r.out, "st-bad")).toEqual([
      "st-bad",
      "False",
      "CredentialsSecretNotFound",
      "-",
      `${counts?.synced ?? 0}/${counts?.desired ?? 0}`,
      "-",
      when(failing?.status?.nextRefreshTime, now),
      "0",
    ]);
  });
});

describe("status --namespace", () => {
  it("--namespace N: what serves N, and the Pod there that lacks the Secret", async () => {
    // The ServiceAccount admission plugin copies the ServiceAccount's pull
    // Secrets only into Pods that list none: this one lists its own.
    await k.core.createNamespacedPod({
      namespace: SERVED,
      body: {
        metadata: { name: "own-secrets" },
        spec: {
          imagePullSecrets: [{ name: "something-else" }],
          containers: [{ name: "web", image: `${HOST}/team/web:1.2` }],
        },
      },
    });
    // This one gets ecr-st from the patched default ServiceAccount.
    await waitFor("default ServiceAccount patched", async () => {
      const sa = await k.core.readNamespacedServiceAccount({ namespace: SERVED, name: "default" });
      return sa.imagePullSecrets?.some((s) => s.name === "ecr-st") ? true : undefined;
    });
    const covered = await k.core.createNamespacedPod({
      namespace: SERVED,
      body: {
        metadata: { name: "covered" },
        spec: { containers: [{ name: "web", image: `${HOST}/team/web:1.2` }] },
      },
    });
    expect(covered.spec?.imagePullSecrets).toEqual([{ name: "ecr-st" }]);
    // What a kubelet would write after a refused pull.
    await kubeletFailsPull(k, { namespace: SERVED, name: "own-secrets" }, `${HOST}/team/web:1.2`, {
      message: "Back-off pulling",
    });
    const secret = await k.core.readNamespacedSecret({ namespace: SERVED, name: "ecr-st" });
    const expires = new Date(secret.metadata?.annotations?.["ecrcreds.io/token-expires-at"] ?? "");
    const now = new Date(expires.getTime() - 3 * 3_600_000 - 60_000);
    const r = await status({ namespace: SERVED, now });
    console.log(`status --namespace ${SERVED}:\n${r.out}`);
    expect(r.err).toBe("");
    expect(r.code).toBe(1);
    const stamp = expires.toISOString().replace(/\.\d{3}Z$/, "Z");
    expect(r.out.split("\n").map((l) => l.split(/ {3,}/))).toEqual([
      [`namespace ${SERVED} is served by:`],
      ["ECRPULLSECRET", "READY", "SECRET", "IN NAMESPACE", "REGISTRIES"],
      ["st-ok", "True Synced", "ecr-st", `expires ${stamp} (in 3h01m)`, HOST],
      [""],
      ["Pods without the pull Secret (recreate them, or set spec.podRecovery: Recreate):"],
      ["POD", "PHASE", "WAITING", "ECRPULLSECRET", "MISSING SECRET", "IMAGES"],
      ["own-secrets", "Pending", "ImagePullBackOff", "st-ok", "ecr-st", `${HOST}/team/web:1.2`],
      [""],
    ]);
  });
});

describe("status: namespaces nothing serves, and the kubectl plugin", () => {
  it("a namespace nothing serves, and one that does not exist", async () => {
    const none = await status({ namespace: OPS, now: new Date() });
    expect(none).toEqual({ code: 0, out: `no ECRPullSecret serves namespace ${OPS}\n`, err: "" });
    const missing = await status({ namespace: "st-no-such-namespace", now: new Date() });
    expect(missing).toEqual({
      code: 1,
      out: "",
      err: "status failed: failed to read namespace st-no-such-namespace: it does not exist\n",
    });
  });

  it("runs as the kubectl plugin kubectl-ecr_status with -n, reading KUBECONFIG", async () => {
    // kubectl runs a plugin as an executable found on PATH, with kubectl's
    // own arguments after the plugin name and the environment unchanged.
    const plugin = spawn(join(repoRoot, "bin/kubectl-ecr_status"), ["-n", SERVED], {
      env: { ...process.env, KUBECONFIG: cp.kubeconfigPath },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    plugin.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    plugin.stderr.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    const code = await new Promise((resolve) => plugin.once("exit", resolve));
    expect(code).toBe(1);
    expect(out).toContain(`namespace ${SERVED} is served by:`);
    expect(out).toMatch(/^own-secrets +Pending +ImagePullBackOff +st-ok +ecr-st +/m);
    expect(out).not.toContain("covered ");
  });
});
