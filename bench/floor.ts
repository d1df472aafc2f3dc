// The floor of a fan-out: the writes the operator makes (one Secret create
// and one ServiceAccount patch per namespace), from a minimal client with
// nothing else to do. The bodies are the operator's own, built by its own
// functions (dist/reconcile): the same labels, annotations and data, and the
// same guarded ServiceAccount merge patch, so the API server's share of a
// write is the same on both sides. bench/run.ts runs it two ways each round:
//
// - as its own process, started fresh like the operator each round (`node
//   [the image's flags] bench/floor.ts …`): code not yet optimised, no
//   connection open but the one its first list made. The fan-out ratio is
//   taken against this floor.
// - inside the benchmark's own process, whose client has written before and
//   keeps its connections (the "warm" floor, printed beside it).
//
// As a process it prints one JSON line: {"seconds": …, "cpuSeconds": …},
// both over the writes only. With `--watch` it is the watching floor: before
// writing it lists and watches what it writes (every ServiceAccount, its own
// Secrets) into a plain map, as any controller with a cache must, and the line
// also carries `watchEvents`, the events seen by the last write.
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type * as MetadataModule from "../src/api/metadata.js";
import type * as ClientModule from "../src/kube/client.js";
import type { NamespacedNamed, ServiceAccount } from "../src/kube/types.js";
import type * as DesiredModule from "../src/reconcile/desired.js";
import type * as DockerConfigModule from "../src/reconcile/dockerconfig.js";

type KubeClient = ClientModule.KubeClient;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Wall and CPU seconds (this process, user + system) of one floor. */
export interface FloorResult {
  seconds: number;
  cpuSeconds: number;
  /** The watching floor only: watch events (ADDED/MODIFIED) seen by the last write. */
  watchEvents?: number;
}

/** The built modules (dist/) the floor writes with, as the operator runs them. */
export interface Built {
  kube: typeof ClientModule;
  desired: typeof DesiredModule;
  dockerconfig: typeof DockerConfigModule;
  metadata: typeof MetadataModule;
}

/**
 * Every floor's ServiceAccount entries are recorded under this owner, so a
 * floor replaces the last one's entry instead of adding to the list.
 */
const FLOOR_OWNER = "bench-floor";

/**
 * Creates Secret `name` in every namespace and adds it to the namespace's
 * `default` ServiceAccount, `concurrency` namespaces at once, with the bodies
 * the operator sends: its Secret (a dockerconfigjson for `registryHost` with
 * a 128-character password, as the AWS double issues, and the operator's
 * labels and annotations; only the managed-by label says `bench-floor`, so
 * the operator never takes a floor's Secret for its own) and its merge patch
 * of the ServiceAccount, guarded by the resourceVersion listed before the
 * clock starts (the operator has it in its cache).
 */
export async function floorWrites(
  client: KubeClient,
  built: Built,
  opts: { namespaces: readonly string[]; name: string; registryHost: string; concurrency: number },
): Promise<FloorResult> {
  const { kube, desired, dockerconfig, metadata } = built;
  const { name, namespaces, registryHost: host } = opts;
  const now = Date.now();
  const secretFor = desired.desiredSecrets({
    owner: name,
    secretName: name,
    dockerConfigJson: dockerconfig.buildDockerConfigJson([
      { host, username: "AWS", password: "x".repeat(128) },
    ]),
    expiresAt: new Date(now + 12 * 3600_000),
    fetchedAt: new Date(now),
    registries: [host],
    // The operator's shape: host=the first 16 hex digits of a sha256.
    tokenSources: `${host}=${"0".repeat(16)}`,
  });
  // As the API server lists them: each with its name and namespace.
  const serviceAccounts = new Map<string, NamespacedNamed<ServiceAccount>>();
  const listed = await client.list<NamespacedNamed<ServiceAccount>>(kube.SERVICE_ACCOUNTS, {
    fieldSelector: "metadata.name=default",
  });
  for (const sa of listed.items) serviceAccounts.set(sa.metadata.namespace, sa);
  const cpu = process.cpuUsage();
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < namespaces.length) {
      const namespace = namespaces[next++] as string;
      const secret = secretFor(namespace);
      await client.create(kube.SECRETS, {
        ...secret,
        metadata: {
          ...secret.metadata,
          labels: { ...secret.metadata.labels, [metadata.LABEL_MANAGED_BY]: FLOOR_OWNER },
        },
      });
      const sa = serviceAccounts.get(namespace);
      if (!sa)
        throw new Error(`failed to run the floor: no default ServiceAccount in ${namespace}`);
      const change = desired.planServiceAccount(sa, FLOOR_OWNER, name, true);
      await client.patch(
        kube.SERVICE_ACCOUNTS,
        { namespace, name: "default" },
        desired.serviceAccountPatch(
          change,
          sa.metadata?.resourceVersion,
          undefined,
          !sa.metadata?.managedFields?.length,
        ),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, namespaces.length) }, worker));
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

/**
 * Lists and watches every ServiceAccount and the Secrets of floor `name`
 * (its owner label; none yet) into a map, as a controller's cache would,
 * with the client the operator's informers use. Resolves once both watches
 * are requested (each starts at its list's resourceVersion, so an answer
 * that comes late misses nothing); `events()` counts the ADDED and MODIFIED
 * events since.
 */
async function watchWrites(
  client: KubeClient,
  { kube, desired, metadata }: Built,
  name: string,
): Promise<{ events(): number }> {
  type Obj = { metadata?: { namespace?: string; name?: string; resourceVersion?: string } };
  const cache = new Map<string, Obj>();
  let events = 0;
  const key = (o: Obj) => `${o.metadata?.namespace}/${o.metadata?.name}`;
  const open = async (type: typeof kube.SECRETS, labelSelector?: string) => {
    const list = await client.list<Obj>(type, labelSelector ? { labelSelector } : {});
    for (const o of list.items) cache.set(key(o), o);
    await client.watch(
      kube.resourcePath(type),
      {
        resourceVersion: list.metadata?.resourceVersion ?? "",
        allowWatchBookmarks: true,
        ...(labelSelector ? { labelSelector } : {}),
      },
      (event, obj) => {
        if (event !== "ADDED" && event !== "MODIFIED") return;
        events++;
        cache.set(key(obj as Obj), obj as Obj);
      },
      (err) => {
        if (err) process.stderr.write(`the watching floor's watch ended: ${String(err)}\n`);
      },
    );
  };
  await Promise.all([
    open(kube.SERVICE_ACCOUNTS),
    open(kube.SECRETS, `${metadata.LABEL_OWNER}=${desired.ownerLabelValue(name)}`),
  ]);
  return { events: () => events };
}

/** The built client (dist/), as the operator runs it. */
export async function builtClient(): Promise<typeof ClientModule> {
  return (await import(
    pathToFileURL(join(root, "dist/kube/client.js")).href
  )) as typeof ClientModule;
}

/** The built modules the floor writes with. */
export async function builtModules(): Promise<Built> {
  const load = async <T>(path: string) =>
    (await import(pathToFileURL(join(root, "dist", path)).href)) as T;
  return {
    kube: await builtClient(),
    desired: await load<typeof DesiredModule>("reconcile/desired.js"),
    dockerconfig: await load<typeof DockerConfigModule>("reconcile/dockerconfig.js"),
    metadata: await load<typeof MetadataModule>("api/metadata.js"),
  };
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
      watch: { type: "boolean" },
    },
  });
  const need = (flag: keyof typeof values): string => {
    const v = values[flag];
    if (typeof v !== "string" || !v)
      throw new Error(`failed to run the floor: --${flag} is required`);
    return v;
  };
  const built = await builtModules();
  const { kube } = built;
  const client = new kube.KubeClient(kube.loadKubeConfig(need("kubeconfig")), {
    qps: Number(need("qps")),
    burst: Number(need("burst")),
    fieldManager: built.metadata.FIELD_MANAGER,
  });
  const namespaces = JSON.parse(await readFile(need("namespaces-file"), "utf8")) as string[];
  const name = need("name");
  // Connected as the operator is when a resource arrives (its informers have listed).
  await client.list(kube.NAMESPACES, { limit: 1 });
  const watching = values.watch ? await watchWrites(client, built, name) : undefined;
  const result: FloorResult = await floorWrites(client, built, {
    namespaces,
    name,
    registryHost: need("registry-host"),
    concurrency: Number(need("concurrency")),
  });
  if (watching) result.watchEvents = watching.events();
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
