// Proof that the Secret the operator writes authenticates a real client: skopeo
// pulls from the registry double with the Secret's .dockerconfigjson as its
// --authfile. With short token lifetimes it shows the whole cycle: the current
// Secret works, the Secret from before a refresh stops working once its token
// expired, and the Secret the operator refreshed works again.
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1Secret } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
import {
  applyResource,
  dockerConfigOf,
  readSecret,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import type { RegistryDouble } from "../registry-double/index.js";

const execFileAsync = promisify(execFile);
const ACCOUNT = "777788889999";
const OPS = "skopeo-ops";
const NS = "skopeo-a";
const SECRET = "skopeo-pull";
// Short enough to see a token expire within the test; the operator refreshes
// at half of it.
const TOKEN_LIFETIME_MS = 16_000;

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let registry: RegistryDouble;
let dir: string;

interface Snapshot {
  password: string;
  expiresAt: number;
  authfile: string;
}

/** The Secret as skopeo will read it: its .dockerconfigjson, byte for byte, in a file. */
async function snapshot(secret: V1Secret, name: string): Promise<Snapshot> {
  const raw = secret.data?.[".dockerconfigjson"];
  if (!raw) throw new Error(`Secret ${NS}/${SECRET} has no .dockerconfigjson`);
  const authfile = join(dir, `${name}.json`);
  await writeFile(authfile, Buffer.from(raw, "base64"));
  const password = dockerConfigOf(secret).auths[registry.host]?.password;
  if (!password) throw new Error(`Secret ${NS}/${SECRET} has no auths entry for ${registry.host}`);
  const expiresAt = Date.parse(
    secret.metadata?.annotations?.["ecrcreds.io/token-expires-at"] ?? "",
  );
  return { password, expiresAt, authfile };
}

async function currentSecret(name: string): Promise<Snapshot> {
  const secret = await waitFor(`Secret ${NS}/${SECRET}`, () => readSecret(k, NS, SECRET));
  return await snapshot(secret, name);
}

async function skopeoInspect(
  authfile: string,
): Promise<{ ok: true; digest: string } | { ok: false; stderr: string }> {
  try {
    const { stdout } = await execFileAsync(
      "skopeo",
      [
        "inspect",
        "--tls-verify=false",
        "--authfile",
        authfile,
        `docker://${registry.host}/demo/app:latest`,
      ],
      { timeout: 30_000 },
    );
    return { ok: true, digest: (JSON.parse(stdout) as { Digest: string }).Digest };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    return { ok: false, stderr };
  }
}

beforeAll(async () => {
  try {
    await execFileAsync("skopeo", ["--version"]);
  } catch (err) {
    throw new Error(`failed to run skopeo: ${String(err)}; install it with scripts/setup.sh`);
  }
  stack = await startStack({
    ops: OPS,
    namespaces: [NS],
    tokenLifetimeMs: TOKEN_LIFETIME_MS,
    identities: [iamUser("skopeo", 1, ACCOUNT, "skopeo")],
  });
  ({ k, aws, dir } = stack);
  stack.resources.push("skopeo");
  registry = await stack.startRegistry();
  // The token's proxyEndpoint is the registry double: the Secret's auths key
  // is its 127.0.0.1:PORT, which skopeo reaches over plain HTTP.
  aws.proxyEndpointFor = () => registry.url;
  await stack.startOperator({ as: false, config: { verify: true } });
});

afterAll(async () => {
  await stack?.stop();
});

describe("skopeo pulls with the operator's Secret", () => {
  it("works with the current Secret, fails with a pre-refresh Secret once expired, works after the refresh", async () => {
    await applyResource(k, "skopeo", { secretName: SECRET, namespaces: [NS] });
    const expectedDigest = registry.image.manifests.docker.digest;

    // 1. The Secret as first written opens the registry for skopeo.
    const first = await currentSecret("first");
    expect(aws.issued().map((t) => t.password)).toEqual([first.password]);
    const firstPull = await skopeoInspect(first.authfile);
    expect(firstPull).toEqual({ ok: true, digest: expectedDigest });
    const staleFrom = Date.now();

    // 2. The operator refreshes ahead of the expiry (half the lifetime).
    const refreshed = await waitFor(
      "the operator to refresh the Secret",
      async () => {
        const s = await currentSecret("refreshed");
        return s.password !== first.password ? s : undefined;
      },
      { timeoutMs: TOKEN_LIFETIME_MS * 2, intervalMs: 200 },
    );
    expect(refreshed.expiresAt).toBeGreaterThan(first.expiresAt);
    expect(Date.now()).toBeLessThan(first.expiresAt);

    // 3. Once the first token's own expiry has passed, the old Secret fails…
    await waitFor(
      "the first token to expire",
      () => (Date.now() > first.expiresAt + 500 ? true : undefined),
      { timeoutMs: TOKEN_LIFETIME_MS * 2, intervalMs: 100 },
    );
    const stalePull = await skopeoInspect(first.authfile);
    expect(stalePull.ok).toBe(false);
    expect(stalePull.ok ? "" : stalePull.stderr).toMatch(/unauthorized|401/i);

    // 4. …and the Secret in the cluster now (refreshed by the operator) works.
    const current = await currentSecret("current");
    expect(current.password).not.toBe(first.password);
    expect(current.expiresAt).toBeGreaterThan(Date.now());
    const currentPull = await skopeoInspect(current.authfile);
    expect(currentPull).toEqual({ ok: true, digest: expectedDigest });
    // A full copy fetches the blobs too, with the same credentials.
    await execFileAsync(
      "skopeo",
      [
        "copy",
        "--src-tls-verify=false",
        "--src-authfile",
        current.authfile,
        `docker://${registry.host}/demo/app:latest`,
        `dir:${join(dir, "image")}`,
      ],
      { timeout: 30_000 },
    );

    // Only the deliberately stale Secret was refused. Every other request
    // (skopeo with a current Secret, the operator's own checks) carried a
    // password the AWS double still accepted at that moment.
    const attempts = registry.authAttempts();
    const stale = attempts.filter((a) => a.password === first.password && a.time >= staleFrom);
    const fromCurrent = attempts.filter((a) => !stale.includes(a));
    expect(stale.length).toBeGreaterThan(0);
    expect(stale.every((a) => !a.passwordValid && a.status === 401)).toBe(true);
    expect(fromCurrent.length).toBeGreaterThan(0);
    expect(fromCurrent.filter((a) => !a.passwordValid)).toEqual([]);
    expect(fromCurrent.some((a) => a.password === current.password)).toBe(true);
    console.log(
      `skopeo e2e: ${aws.issued().length} tokens issued, ${attempts.length} registry requests, ${stale.length} refused (stale Secret)`,
    );
  });
});
