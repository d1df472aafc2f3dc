import { execFile, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AwsDouble } from "../aws-double/aws-double.js";
import { craneWithDockerConfig, helmPullOci } from "../harness/clients.js";
import { HELM_MEDIA_TYPES, sha256Digest } from "./image.js";
import { RegistryDouble } from "./registry-double.js";

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const nodeBinary = resolve(here, "../../node_modules/.bin/node");

const skopeo = await execFileAsync("sh", ["-c", "command -v skopeo"]).then(
  () => true,
  () => false,
);

const alice = {
  accessKeyId: "AKIAALICE0000000001",
  secretAccessKey: "alice-secret-key",
  accountId: "123456789012",
  arn: "arn:aws:iam::123456789012:user/alice",
};

const basic = (username: string, password: string): string =>
  `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

const aws = new AwsDouble({ identities: [alice] });
const registry = new RegistryDouble({
  validatePassword: (password, at) => aws.isValidPassword(password, at),
  charts: [{ name: "demo", version: "0.1.0" }],
});
let ecr: ECRClient;

/** A real ECR token from the AWS double, as the operator would fetch it. */
async function fetchPassword(): Promise<string> {
  const out = await ecr.send(new GetAuthorizationTokenCommand({}));
  const token = out.authorizationData?.[0]?.authorizationToken ?? "";
  return Buffer.from(token, "base64").toString("utf8").slice("AWS:".length);
}

beforeAll(async () => {
  const { url } = await aws.start();
  await registry.start();
  ecr = new ECRClient({ endpoint: url, region: "us-east-1", credentials: alice });
});
afterAll(async () => {
  await registry.close();
  await aws.close();
});
beforeEach(() => {
  registry.refuseAll(false);
  registry.resetAuthAttempts();
  aws.tokenLifetimeMs = 12 * 3_600_000;
});

describe("registry double: authentication", () => {
  it("answers /v2/ with a Basic challenge, then 200 for a valid ECR password", async () => {
    const anonymous = await fetch(`${registry.url}/v2/`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Basic realm="/);
    expect(await anonymous.json()).toMatchObject({ errors: [{ code: "UNAUTHORIZED" }] });

    const password = await fetchPassword();
    const ok = await fetch(`${registry.url}/v2/`, {
      headers: { authorization: basic("AWS", password) },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    expect(await ok.json()).toEqual({});
    expect(registry.authAttempts()).toEqual([
      expect.objectContaining({ username: "AWS", passwordValid: true, status: 200, path: "/v2/" }),
    ]);
  });

  it("refuses unknown and expired passwords, other usernames, and everything under refuseAll", async () => {
    const get = (authorization: string) =>
      fetch(`${registry.url}/v2/`, { headers: { authorization } });
    expect((await get(basic("AWS", "never-issued"))).status).toBe(401);

    const valid = await fetchPassword();
    expect((await get(basic("admin", valid))).status).toBe(401);

    aws.tokenLifetimeMs = 300;
    const shortLived = await fetchPassword();
    expect((await get(basic("AWS", shortLived))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 400));
    const expired = await get(basic("AWS", shortLived));
    expect(expired.status).toBe(401);
    expect(await expired.json()).toMatchObject({ errors: [{ code: "UNAUTHORIZED" }] });

    registry.refuseAll(true);
    expect((await get(basic("AWS", valid))).status).toBe(401);
    registry.refuseAll(false);
    expect((await get(basic("AWS", valid))).status).toBe(200);

    expect(registry.authAttempts().map((a) => [a.username, a.passwordValid, a.status])).toEqual([
      ["AWS", false, 401],
      ["admin", true, 401],
      ["AWS", true, 200],
      ["AWS", false, 401],
      ["AWS", true, 401],
      ["AWS", true, 200],
    ]);
  });
});

describe("registry double: the image", () => {
  it("serves the image: manifest by tag and digest, blobs with correct digests, tags", async () => {
    const headers = { authorization: basic("AWS", await fetchPassword()) };
    const byTag = await fetch(`${registry.url}/v2/demo/app/manifests/latest`, { headers });
    expect(byTag.status).toBe(200);
    expect(byTag.headers.get("content-type")).toBe(
      "application/vnd.docker.distribution.manifest.v2+json",
    );
    const manifestBytes = Buffer.from(await byTag.arrayBuffer());
    const digest = byTag.headers.get("docker-content-digest");
    expect(digest).toBe(sha256Digest(manifestBytes));

    const head = await fetch(`${registry.url}/v2/demo/app/manifests/${digest}`, {
      method: "HEAD",
      headers,
    });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(manifestBytes.length));

    const manifest = JSON.parse(manifestBytes.toString()) as {
      config: { digest: string; size: number };
      layers: { digest: string; size: number }[];
    };
    for (const descriptor of [manifest.config, ...manifest.layers]) {
      const blob = await fetch(`${registry.url}/v2/demo/app/blobs/${descriptor.digest}`, {
        headers,
      });
      const bytes = Buffer.from(await blob.arrayBuffer());
      expect(sha256Digest(bytes)).toBe(descriptor.digest);
      expect(bytes.length).toBe(descriptor.size);
    }
    const layer = registry.image.layer.bytes;
    expect(sha256Digest(gunzipSync(layer))).toBe(registry.image.layerDiffId);

    const oci = registry.image.manifests.oci;
    const byOciDigest = await fetch(`${registry.url}/v2/demo/app/manifests/${oci.digest}`, {
      headers,
    });
    expect(byOciDigest.headers.get("content-type")).toBe(
      "application/vnd.oci.image.manifest.v1+json",
    );

    const tags = await fetch(`${registry.url}/v2/demo/app/tags/list`, { headers });
    expect(await tags.json()).toEqual({ name: "demo/app", tags: ["latest"] });
    const missing = await fetch(`${registry.url}/v2/other/manifests/latest`, { headers });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ errors: [{ code: "NAME_UNKNOWN" }] });
    expect((await fetch(`${registry.url}/v2/demo/app/manifests/v9`, { headers })).status).toBe(404);
  });

  it("builds the same image on every start", () => {
    const again = new RegistryDouble({ validatePassword: () => false });
    expect(again.image.manifests.docker.digest).toBe(registry.image.manifests.docker.digest);
  });
});

describe("registry double: HTTPS and standalone", () => {
  it("serves HTTPS with a certificate for 127.0.0.1 made at start", async () => {
    const secure = new RegistryDouble({
      validatePassword: (password, at) => aws.isValidPassword(password, at),
      tls: true,
    });
    const { url } = await secure.start();
    try {
      const pem = secure.certificatePem ?? "";
      const cert = new X509Certificate(pem);
      expect(cert.verify(cert.publicKey)).toBe(true);
      expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
      const password = await fetchPassword();
      // Full verification against the certificate as the only trusted root.
      const status = await new Promise<number>((resolveStatus, reject) => {
        const req = request(
          `${url}/v2/`,
          { ca: pem, headers: { authorization: basic("AWS", password) } },
          (res) => {
            res.resume();
            resolveStatus(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      await secure.close();
    }
  });

  it("runs standalone from main.ts, checking passwords with a running AWS double", async () => {
    const child = spawn(
      nodeBinary,
      [join(here, "main.ts"), "--aws-double-url", aws.url, "--format", "oci"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      const line = await new Promise<string>((resolveLine, reject) => {
        child.stdout.once("data", (chunk: Buffer) => resolveLine(chunk.toString()));
        child.once("exit", (code) => reject(new Error(`registry main exited with ${code}`)));
      });
      const { url } = JSON.parse(line) as { url: string };
      const password = await fetchPassword();
      const res = await fetch(`${url}/v2/demo/app/manifests/latest`, {
        headers: { authorization: basic("AWS", password) },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/vnd.oci.image.manifest.v1+json");
      const refused = await fetch(`${url}/v2/`, { headers: { authorization: basic("AWS", "x") } });
      expect(refused.status).toBe(401);
    } finally {
      child.kill("SIGTERM");
    }
  });
});

describe("registry double: skopeo and Helm charts", () => {
  it.skipIf(!skopeo)(
    "lets skopeo inspect and copy with a valid password, not after expiry",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "registry-double-"));
      try {
        aws.tokenLifetimeMs = 5_000;
        const password = await fetchPassword();
        const authfile = join(dir, "auth.json");
        await writeFile(authfile, registry.authFile(password));
        const ref = `docker://${registry.host}/demo/app:latest`;
        const { stdout } = await execFileAsync("skopeo", [
          "inspect",
          "--tls-verify=false",
          "--authfile",
          authfile,
          ref,
        ]);
        const inspected = JSON.parse(stdout) as { Digest: string; Os: string; Layers: string[] };
        expect(inspected.Digest).toBe(registry.image.manifests.docker.digest);
        expect(inspected.Os).toBe("linux");
        expect(inspected.Layers).toEqual([registry.image.layer.digest]);

        await execFileAsync("skopeo", [
          "copy",
          "--src-tls-verify=false",
          "--src-authfile",
          authfile,
          ref,
          `dir:${join(dir, "copy")}`,
        ]);

        const expiresAt =
          aws
            .issued()
            .find((t) => t.password === password)
            ?.expiresAt.getTime() ?? 0;
        await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 100));
        await expect(
          execFileAsync("skopeo", ["inspect", "--tls-verify=false", "--authfile", authfile, ref]),
        ).rejects.toMatchObject({
          stderr: expect.stringMatching(/unauthorized|authentication required/i),
        });
        const attempts = registry.authAttempts();
        expect(attempts.at(-1)).toMatchObject({ passwordValid: false, status: 401 });
        expect(attempts.filter((a) => a.status === 200).every((a) => a.passwordValid)).toBe(true);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it("serves a Helm chart as an OCI artifact: helm's media types, by tag and digest", async () => {
    const headers = { authorization: basic("AWS", await fetchPassword()) };
    const chart = registry.charts.get("charts/demo");
    if (chart === undefined) throw new Error("no chart");
    const res = await fetch(`${registry.url}/v2/charts/demo/manifests/0.1.0`, { headers });
    expect(res.status).toBe(200);
    const manifest = JSON.parse(Buffer.from(await res.arrayBuffer()).toString()) as {
      config: { mediaType: string; digest: string };
      layers: { mediaType: string; digest: string }[];
    };
    expect(manifest.config.mediaType).toBe(HELM_MEDIA_TYPES.config);
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([HELM_MEDIA_TYPES.chart]);
    const byDigest = await fetch(
      `${registry.url}/v2/charts/demo/manifests/${chart.manifest.digest}`,
      { headers },
    );
    expect(byDigest.status).toBe(200);
    const tags = await fetch(`${registry.url}/v2/charts/demo/tags/list`, { headers });
    expect(await tags.json()).toEqual({ name: "charts/demo", tags: ["0.1.0"] });
    // The chart's blobs are not the image's: only its own repository serves them.
    const wrongRepo = await fetch(`${registry.url}/v2/demo/app/blobs/${chart.chart.digest}`, {
      headers,
    });
    expect(wrongRepo.status).toBe(404);
  });
});

describe("registry double: helm and crane clients", () => {
  it("lets the real helm pull oci:// the chart with a valid password only", async () => {
    const password = await fetchPassword();
    const pulled = await helmPullOci({
      url: registry.host,
      chart: "charts/demo",
      version: "0.1.0",
      username: "AWS",
      password,
    });
    expect(pulled.stderr).not.toMatch(/error/i);
    expect(pulled.code).toBe(0);
    const bytes = await readFile(join(pulled.destination, "demo-0.1.0.tgz"));
    expect(sha256Digest(bytes)).toBe(registry.charts.get("charts/demo")?.chart.digest);

    const refused = await helmPullOci({
      url: registry.host,
      chart: "charts/demo",
      version: "0.1.0",
      username: "AWS",
      password: "not-a-token",
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/401|unauthorized/i);
  });

  it("lets crane (go-containerregistry's keychain) read a manifest through DOCKER_CONFIG", async () => {
    const password = await fetchPassword();
    const ref = `${registry.host}/demo/app:latest`;
    const read = await craneWithDockerConfig(registry.authFile(password), [
      "manifest",
      "--insecure",
      ref,
    ]);
    expect(read.stderr).toBe("");
    expect(read.stdout).toBe(registry.image.manifests.docker.bytes.toString());
    const refused = await craneWithDockerConfig(registry.authFile("not-a-token"), [
      "manifest",
      "--insecure",
      ref,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/UNAUTHORIZED/);
  });
});
