// The floor of a fan-out: the writes the operator makes (one Secret create
// and one ServiceAccount patch per namespace), from a minimal client with
// nothing else to do. bench/run.ts runs it two ways each round:
//
// - as its own process, started fresh like the operator each round (`node
//   [the image's flags] bench/floor.ts …`): code not yet optimised, no
//   connection open but the one its first list made. The fan-out ratio is
//   taken against this floor.
// - inside the benchmark's own process, whose client has written before and
//   keeps its connections (the "warm" floor, printed beside it).
//
// As a process it prints one JSON line: {"seconds": …, "cpuSeconds": …},
// both over the writes only.
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type * as ClientModule from "../src/kube/client.js";

type KubeClient = ClientModule.KubeClient;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Wall and CPU seconds (this process, user + system) of one floor. */
export interface FloorResult {
  seconds: number;
  cpuSeconds: number;
}

/**
 * Creates Secret `name` (a dockerconfigjson for `registryHost`, a 128-character
 * password as the AWS double issues) in every namespace and patches its
 * `default` ServiceAccount to reference it, `concurrency` namespaces at once.
 */
export async function floorWrites(
  client: KubeClient,
  kube: Pick<typeof ClientModule, "SECRETS" | "SERVICE_ACCOUNTS">,
  opts: { namespaces: readonly string[]; name: string; registryHost: string; concurrency: number },
): Promise<FloorResult> {
  const { name, namespaces } = opts;
  const password = "x".repeat(128);
  const dockerConfigJson = JSON.stringify({
    auths: {
      [opts.registryHost]: {
        username: "AWS",
        password,
        auth: Buffer.from(`AWS:${password}`).toString("base64"),
      },
    },
  });
  const data = { ".dockerconfigjson": Buffer.from(dockerConfigJson).toString("base64") };
  const cpu = process.cpuUsage();
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < namespaces.length) {
      const namespace = namespaces[next++] as string;
      await client.create(kube.SECRETS, {
        metadata: { name, namespace, labels: { "bench/floor": "true" } },
        type: "kubernetes.io/dockerconfigjson",
        data,
      });
      await client.patch(
        kube.SERVICE_ACCOUNTS,
        { namespace, name: "default" },
        { metadata: { annotations: { "bench/floor": name } }, imagePullSecrets: [{ name }] },
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, namespaces.length) }, worker));
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

/** The built client (dist/), as the operator runs it. */
export async function builtClient(): Promise<typeof ClientModule> {
  return (await import(
    pathToFileURL(join(root, "dist/kube/client.js")).href
  )) as typeof ClientModule;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: "string" },
      "namespaces-file": { type: "string" },
      name: { type: "string" },
      "registry-host": { type: "string" },
      concurrency: { type: "string" },
      qps: { type: "string" },
      burst: { type: "string" },
    },
  });
  const need = (flag: keyof typeof values): string => {
    const v = values[flag];
    if (typeof v !== "string" || !v)
      throw new Error(`failed to run the floor: --${flag} is required`);
    return v;
  };
  const kube = await builtClient();
  const client = new kube.KubeClient(kube.loadKubeConfig(need("kubeconfig")), {
    qps: Number(need("qps")),
    burst: Number(need("burst")),
    fieldManager: "bench-floor",
  });
  const namespaces = JSON.parse(await readFile(need("namespaces-file"), "utf8")) as string[];
  // Connected as the operator is when a resource arrives (its informers have listed).
  await client.list(kube.NAMESPACES, { limit: 1 });
  const result = await floorWrites(client, kube, {
    namespaces,
    name: need("name"),
    registryHost: need("registry-host"),
    concurrency: Number(need("concurrency")),
  });
  // Pipes are written synchronously on Linux: the line is out before the exit.
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // The client's keep-alive connections would hold the process open.
  process.exit(0);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
