// The real clients the output formats are proven with, each built from its own
// Go module by scripts/setup.sh: the kubelet's keyring (tools/keyring), Helm
// (tools/helm) and crane (tools/crane, go-containerregistry's keychain, the one
// Kaniko uses). Every run gets its own HOME-like directories so nothing on the
// test machine (a ~/.docker/config.json, a Helm registry login) leaks in.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./controlplane.js";

export const keyringBinary = join(repoRoot, ".cache/keyring/keyring");
export const helmBinary = join(repoRoot, ".cache/helm/helm");
export const craneBinary = join(repoRoot, ".cache/crane/crane");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(binary: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  if (!existsSync(binary)) {
    throw new Error(`failed to run ${binary}: not built; run bash scripts/setup.sh`);
  }
  return new Promise((resolve) => {
    execFile(
      binary,
      args,
      { env: { PATH: process.env.PATH ?? "", ...env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function scratchHome(): Promise<string> {
  return mkdtemp(join(tmpdir(), "ecr-client-"));
}

export interface KeyringCredential {
  username: string;
  password: string;
  /** The kubelet's credential hash (KEP-2535). */
  hash?: string;
  secret?: { namespace: string; name: string; uid?: string };
}

export interface KeyringAnswer {
  pod: string;
  image: string;
  repository: string;
  pullSecrets: { namespace: string; name: string; uid?: string }[];
  missingPullSecrets: string[];
  credentials: KeyringCredential[];
}

/** What the kubelet would send to pull `image` for the Pod, read from the API server. */
export async function kubeletCredentials(o: {
  kubeconfig: string;
  namespace: string;
  pod: string;
  image: string;
}): Promise<KeyringAnswer> {
  const args = ["--kubeconfig", o.kubeconfig, "--namespace", o.namespace, "--pod", o.pod];
  const result = await run(keyringBinary, [...args, "--image", o.image], {
    HOME: await scratchHome(),
  });
  if (result.code !== 0) throw new Error(`failed to run keyring: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as KeyringAnswer;
}

/**
 * `helm pull oci://<url>/<chart> --version <version>` with the given
 * credentials over plain HTTP (the registry double), into a fresh directory.
 */
export async function helmPullOci(o: {
  url: string;
  chart: string;
  version: string;
  username: string;
  password: string;
}): Promise<RunResult & { destination: string }> {
  const home = await scratchHome();
  const ref = `oci://${o.url.replace(/^oci:\/\//, "")}/${o.chart}`;
  const result = await run(
    helmBinary,
    [
      "pull",
      ref,
      "--version",
      o.version,
      "--username",
      o.username,
      "--password",
      o.password,
      "--plain-http",
      "--destination",
      home,
    ],
    {
      HOME: home,
      HELM_CACHE_HOME: join(home, "cache"),
      HELM_CONFIG_HOME: join(home, "config"),
      HELM_DATA_HOME: join(home, "data"),
      HELM_REGISTRY_CONFIG: join(home, "registry.json"),
    },
  );
  return { ...result, destination: home };
}

/** `crane <args>` with DOCKER_CONFIG pointing at a directory holding `configJson`. */
export async function craneWithDockerConfig(
  configJson: string,
  args: string[],
): Promise<RunResult> {
  const home = await scratchHome();
  const dockerConfig = join(home, "docker");
  await mkdir(dockerConfig);
  await writeFile(join(dockerConfig, "config.json"), configJson);
  return run(craneBinary, args, { HOME: home, DOCKER_CONFIG: dockerConfig });
}
