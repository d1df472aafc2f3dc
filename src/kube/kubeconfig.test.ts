// Reading kubeconfig files and the in-cluster configuration the way kubectl
// and client-go do: relative paths, merged $KUBECONFIG lists, rotated token
// files, exec credential plugins, and errors that say what to fix.
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inCluster, loadKubeConfig } from "./kubeconfig.js";

let dir: string;
const saved = { ...process.env };
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kubeconfig-test-"));
  delete process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBECONFIG;
});
afterEach(async () => {
  vi.useRealTimers();
  process.env = { ...saved };
  await rm(dir, { recursive: true, force: true });
});

const yaml = (user: string, extra = "") => `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: certs/ca.pem
${extra}users:
- name: me
  user:
${user}
contexts:
- name: main
  context: {cluster: local, user: me}
- name: other
  context: {cluster: local, user: nobody}
current-context: main
`;

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe("kubeconfig files", () => {
  it("reads server, a CA path relative to the file, and a bearer token", async () => {
    await import("node:fs/promises").then((fs) => fs.mkdir(join(dir, "certs")));
    await write("certs/ca.pem", "CA BYTES");
    const path = await write("config", yaml("    token: abc123"));
    const c = loadKubeConfig(path);
    expect(c.server.href).toBe("https://127.0.0.1:6443/");
    expect(c.ca?.toString()).toBe("CA BYTES");
    expect(c.insecureSkipTLSVerify).toBe(false);
    expect(await c.credentials()).toEqual({ authorization: "Bearer abc123" });
  });

  it("names the file and context when a context's user is missing", async () => {
    await import("node:fs/promises").then((fs) => fs.mkdir(join(dir, "certs")));
    await write("certs/ca.pem", "CA");
    const path = await write("config", yaml("    token: t"));
    expect(() => loadKubeConfig(path, "other")).toThrow(
      `kubeconfig ${path}, context "other": no user "nobody"`,
    );
    expect(() => loadKubeConfig(path, "absent")).toThrow(
      `kubeconfig ${path} has no context "absent"`,
    );
  });

  it("refuses auth-provider plugins and says to use exec", async () => {
    const path = await write(
      "config",
      yaml("    auth-provider: {name: oidc}").replace(
        "    certificate-authority: certs/ca.pem\n",
        "",
      ),
    );
    expect(() => loadKubeConfig(path)).toThrow(
      /auth-provider "oidc" is not supported; use an exec/,
    );
  });

  it("says which file is not YAML, and which file is missing", async () => {
    const bad = await write("bad", "clusters: [unclosed");
    expect(() => loadKubeConfig(bad)).toThrow(`kubeconfig ${bad} is not valid YAML`);
    expect(() => loadKubeConfig(join(dir, "nope"))).toThrow(
      `failed to read kubeconfig ${join(dir, "nope")}`,
    );
  });

  it("merges a $KUBECONFIG list: the first file naming an entry wins, missing files are skipped", async () => {
    const a = await write(
      "a",
      `clusters: [{name: local, cluster: {server: "https://first:1"}}]
users: [{name: me, user: {token: from-a}}]
contexts: [{name: main, context: {cluster: local, user: me}}]
`,
    );
    const b = await write(
      "b",
      `clusters: [{name: local, cluster: {server: "https://second:2"}}]
users: [{name: me, user: {token: from-b}}]
current-context: main
`,
    );
    process.env.KUBECONFIG = [join(dir, "missing"), a, b].join(delimiter);
    const c = loadKubeConfig();
    expect(c.server.host).toBe("first:1");
    expect(await c.credentials()).toEqual({ authorization: "Bearer from-a" });
  });

  it("runs an exec plugin, caches its token until it nearly expires, and reruns it after invalidate", async () => {
    const runs = join(dir, "runs");
    const plugin = await write(
      "plugin.sh",
      `#!/bin/sh
echo "$KUBERNETES_EXEC_INFO" >> "${runs}"
n=$(wc -l < "${runs}" | tr -d ' ')
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-%s-%s","expirationTimestamp":"2999-01-01T00:00:00Z"}}' "$MY_ENV" "$n"
`,
    );
    await chmod(plugin, 0o755);
    const path = await write(
      "config",
      `clusters: [{name: local, cluster: {server: "https://k:6443", certificate-authority-data: "${Buffer.from("CA").toString("base64")}"}}]
users:
- name: me
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./plugin.sh
      env: [{name: MY_ENV, value: hello}]
      provideClusterInfo: true
contexts: [{name: main, context: {cluster: local, user: me}}]
current-context: main
`,
    );
    const c = loadKubeConfig(path);
    expect((await c.credentials()).authorization).toBe("Bearer tok-hello-1");
    expect((await c.credentials()).authorization).toBe("Bearer tok-hello-1");
    c.invalidate();
    expect((await c.credentials()).authorization).toBe("Bearer tok-hello-2");
    const infos = (await readFile(runs, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(infos).toHaveLength(2);
    expect(infos[0]).toEqual({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      spec: {
        interactive: false,
        cluster: {
          server: "https://k:6443",
          "certificate-authority-data": Buffer.from("CA").toString("base64"),
        },
      },
    });
  });

  it("reports an exec plugin's failure with its stderr", async () => {
    const plugin = await write(
      "fail.sh",
      "#!/bin/sh\necho 'no SSO session: run aws sso login' >&2\nexit 3\n",
    );
    await chmod(plugin, 0o755);
    const path = await write(
      "config",
      `clusters: [{name: local, cluster: {server: "https://k:6443"}}]
users: [{name: me, user: {exec: {command: ${plugin}}}}]
contexts: [{name: main, context: {cluster: local, user: me}}]
current-context: main
`,
    );
    await expect(loadKubeConfig(path).credentials()).rejects.toThrow(
      /exec plugin .*fail\.sh failed: no SSO session: run aws sso login/,
    );
  });
});

describe("in-cluster", () => {
  it("uses the service host from the environment and re-reads a rotated token after a minute", async () => {
    await write("token", "first-token\n");
    await write("ca.crt", "CLUSTER CA");
    process.env.KUBERNETES_SERVICE_HOST = "fd00::1";
    process.env.KUBERNETES_SERVICE_PORT = "6443";
    vi.useFakeTimers({ toFake: ["Date"] });
    const c = inCluster(dir);
    expect(c.server.href).toBe("https://[fd00::1]:6443/");
    expect(c.ca?.toString()).toBe("CLUSTER CA");
    expect(await c.credentials()).toEqual({ authorization: "Bearer first-token" });
    await write("token", "rotated-token\n");
    vi.setSystemTime(Date.now() + 30_000);
    expect(await c.credentials()).toEqual({ authorization: "Bearer first-token" });
    vi.setSystemTime(Date.now() + 31_000);
    expect(await c.credentials()).toEqual({ authorization: "Bearer rotated-token" });
  });

  it("is what loadKubeConfig picks in a Pod, and names a missing CA", async () => {
    process.env.KUBERNETES_SERVICE_HOST = "10.0.0.1";
    expect(() => loadKubeConfig()).toThrow(
      "failed to read the in-cluster CA at /var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    );
    expect(() => inCluster(dir)).toThrow(
      `failed to read the in-cluster CA at ${join(dir, "ca.crt")}: ENOENT`,
    );
  });
});
