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

  it("refuses auth-provider plugins and names the exec plugin that replaces them (kubelogin for oidc)", async () => {
    const path = await write(
      "config",
      yaml("    auth-provider: {name: oidc}").replace(
        "    certificate-authority: certs/ca.pem\n",
        "",
      ),
    );
    expect(() => loadKubeConfig(path)).toThrow(
      /auth-provider "oidc" is not supported \(kubectl removed it too\); use an exec credential plugin instead: kubelogin/,
    );
  });

  it("says which file is not YAML, and which file is missing", async () => {
    const bad = await write("bad", "clusters: [unclosed");
    expect(() => loadKubeConfig(bad)).toThrow(`kubeconfig ${bad} is not valid YAML`);
    expect(() => loadKubeConfig(join(dir, "nope"))).toThrow(
      `failed to read kubeconfig ${join(dir, "nope")}`,
    );
  });
});

describe("kubeconfig files: namespace, impersonation, token files and $KUBECONFIG lists", () => {
  it("reads the context's namespace, impersonation, and re-reads a token file at once after a 401", async () => {
    await write("token", "first\n");
    const path = await write(
      "config",
      `clusters: [{name: local, cluster: {server: "https://k:6443"}}]
users:
- name: me
  user:
    tokenFile: token
    as: jane
    as-uid: u-1
    as-groups: [dev, ops]
    as-user-extra: {reason: [testing]}
contexts:
- {name: main, context: {cluster: local, user: me, namespace: team-ops}}
- {name: bare, context: {cluster: local, user: me}}
current-context: main
`,
    );
    const c = loadKubeConfig(path);
    expect(c.namespace).toBe("team-ops");
    expect(loadKubeConfig(path, "bare").namespace).toBeUndefined();
    expect(c.impersonate).toEqual({
      user: "jane",
      uid: "u-1",
      groups: ["dev", "ops"],
      extra: { reason: ["testing"] },
    });
    const first = await c.credentials();
    expect(first).toEqual({ authorization: "Bearer first" });
    await write("token", "rotated\n");
    expect(await c.credentials()).toEqual({ authorization: "Bearer first" });
    c.invalidate(first);
    expect(await c.credentials()).toEqual({ authorization: "Bearer rotated" });
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
});

describe("kubeconfig exec plugins", () => {
  it("runs an exec plugin, keeps its token until a fifth of its 15 s life is left, and reruns it after invalidate", async () => {
    const runs = join(dir, "runs");
    const plugin = await write(
      "plugin.sh",
      `#!/bin/sh
echo "$KUBERNETES_EXEC_INFO" >> "${runs}"
n=$(wc -l < "${runs}" | tr -d ' ')
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-%s-%s","expirationTimestamp":"%s"}}' "$MY_ENV" "$n" "$EXPIRES"
`,
    );
    await chmod(plugin, 0o755);
    vi.useFakeTimers({ toFake: ["Date"] });
    const expires = new Date(Date.now() + 15_000).toISOString();
    const path = await write(
      "config",
      `clusters: [{name: local, cluster: {server: "https://k:6443", certificate-authority-data: "${Buffer.from("CA").toString("base64")}"}}]
users:
- name: me
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./plugin.sh
      env: [{name: MY_ENV, value: hello}, {name: EXPIRES, value: "${expires}"}]
      provideClusterInfo: true
      interactiveMode: Never
contexts: [{name: main, context: {cluster: local, user: me}}]
current-context: main
`,
    );
    const c = loadKubeConfig(path);
    expect((await c.credentials()).authorization).toBe("Bearer tok-hello-1");
    vi.setSystemTime(Date.now() + 11_000);
    expect((await c.credentials()).authorization).toBe("Bearer tok-hello-1");
    // 3 s (a fifth of 15 s) before it expires: renewed.
    vi.setSystemTime(Date.now() + 1_500);
    expect((await c.credentials()).authorization).toBe("Bearer tok-hello-2");
    c.invalidate();
    expect((await c.credentials()).authorization).toBe("Bearer tok-hello-3");
    const infos = (await readFile(runs, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(infos).toHaveLength(3);
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

describe("kubeconfig exec plugins: concurrent 401s and answers refused", () => {
  it("runs the plugin once for many concurrent 401s, and a late 401 for old credentials keeps the new ones", async () => {
    const runs = join(dir, "runs");
    const plugin = await write(
      "plugin.sh",
      `#!/bin/sh
echo run >> "${runs}"
n=$(wc -l < "${runs}" | tr -d ' ')
sleep 0.2
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-%s"}}' "$n"
`,
    );
    await chmod(plugin, 0o755);
    const path = await write(
      "config",
      `clusters: [{name: local, cluster: {server: "https://k:6443"}}]
users: [{name: me, user: {exec: {command: ./plugin.sh, interactiveMode: Never}}}]
contexts: [{name: main, context: {cluster: local, user: me}}]
current-context: main
`,
    );
    const c = loadKubeConfig(path);
    const first = await c.credentials();
    // Ten requests sent with `first` all come back 401 at about the same time.
    const renewed = await Promise.all(
      Array.from({ length: 10 }, async () => {
        c.invalidate(first);
        return (await c.credentials()).authorization;
      }),
    );
    expect(new Set(renewed)).toEqual(new Set(["Bearer tok-2"]));
    c.invalidate(first);
    expect((await c.credentials()).authorization).toBe("Bearer tok-2");
    expect((await readFile(runs, "utf8")).trim().split("\n")).toHaveLength(2);
  });

  it("refuses an unreadable expirationTimestamp, shows installHint for a missing plugin, and needs a terminal for interactiveMode Always", async () => {
    const plugin = await write(
      "plugin.sh",
      `#!/bin/sh
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"tomorrow"}}'
`,
    );
    await chmod(plugin, 0o755);
    const config = (exec: string) =>
      write(
        "config",
        `clusters: [{name: local, cluster: {server: "https://k:6443"}}]
users: [{name: me, user: {exec: ${exec}}}]
contexts: [{name: main, context: {cluster: local, user: me}}]
current-context: main
`,
      );
    await expect(
      loadKubeConfig(await config("{command: ./plugin.sh, interactiveMode: Never}")).credentials(),
    ).rejects.toThrow(
      'exec plugin ./plugin.sh returned expirationTimestamp "tomorrow", which is not an RFC 3339 time',
    );
    await expect(
      loadKubeConfig(
        await config(
          '{command: kubectl-oidc_login-missing, interactiveMode: Never, installHint: "install kubelogin: brew install kubelogin"}',
        ),
      ).credentials(),
    ).rejects.toThrow(
      "exec plugin kubectl-oidc_login-missing is not installed (not found in PATH): install kubelogin: brew install kubelogin",
    );
    // Tests run without a terminal on stdin, as the operator does in a Pod.
    await expect(
      loadKubeConfig(await config("{command: ./plugin.sh, interactiveMode: Always}")).credentials(),
    ).rejects.toThrow("needs a terminal (interactiveMode: Always), but standard input is not one");
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
    expect(c.namespace).toBeUndefined();
    expect(await c.credentials()).toEqual({ authorization: "Bearer first-token" });
    await write("namespace", "ops\n");
    expect(inCluster(dir).namespace).toBe("ops");
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
