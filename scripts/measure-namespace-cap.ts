/**
 * How long may `spec.namespaces` be? Measured against the real API server:
 *
 *   node --import ./scripts/ts-hooks.mjs scripts/measure-namespace-cap.ts
 *
 * 1. Installs copies of the ECRPullSecret CRD (under a scratch group) whose
 *    `namespaces` and `excludeNamespaces` allow ever more items, and records
 *    whether the API server accepts each CRD or refuses it for the estimated
 *    cost of its CEL rules.
 * 2. Under the largest accepted copy, creates resources whose two lists hold
 *    N longest-possible (63-character) names each, and records where the API
 *    server refuses the object, and why.
 *
 * MAX_NAMESPACE_ENTRIES in src/api/schema.ts is chosen from its output.
 */
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { crdManifest } from "../src/api/schema.js";
import { startControlPlane } from "../test/harness/controlplane.js";
import { testKube } from "../test/harness/kube.js";

const execFileAsync = promisify(execFile);
const GROUP = "capmeasure.ecrcreds.io";
const CRDS = { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions" };
const RESOURCES = { group: GROUP, version: "v1alpha1", plural: "ecrpullsecrets" };

function crdWithCap(cap: number) {
  const crd = structuredClone(crdManifest());
  crd.metadata.name = `ecrpullsecrets.${GROUP}`;
  crd.spec.group = GROUP;
  crd.spec.names.shortNames = [];
  crd.spec.names.categories = [];
  const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec;
  for (const list of ["namespaces", "excludeNamespaces"]) {
    const p = spec?.properties?.[list];
    if (p) p.maxItems = cap;
  }
  return crd;
}

const names = (n: number, prefix: string) =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(8, "0")}`.padEnd(63, "x"));

function message(err: unknown): string {
  const e = err as { code?: number; body?: string };
  let text = String(err);
  try {
    text = `${e.code} ${(JSON.parse(e.body ?? "") as { message: string }).message}`;
  } catch {
    // not a Status
  }
  return text.slice(0, 400);
}

type Kube = ReturnType<typeof testKube>;
const CRD_NAME = `ecrpullsecrets.${GROUP}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Deletes the scratch CRD and waits (up to 20 s) until it is gone. */
async function removeCrd(k: Kube): Promise<void> {
  await k.custom.deleteClusterCustomObject({ ...CRDS, name: CRD_NAME }).catch(() => undefined);
  for (let i = 0; i < 100; i++) {
    try {
      await k.custom.getClusterCustomObject({ ...CRDS, name: CRD_NAME });
    } catch {
      return;
    }
    await sleep(200);
  }
}

/** Step 1: the CRD at ever larger maxItems; resolves with the largest the API server accepts. */
async function measureCrdCaps(k: Kube): Promise<number> {
  console.log("## CRD accepted at maxItems (namespaces and excludeNamespaces)?");
  let largest = 0;
  for (const cap of [256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 2 ** 31 - 1]) {
    try {
      await k.custom.createClusterCustomObject({ ...CRDS, body: crdWithCap(cap) });
      console.log(`maxItems ${cap}: accepted`);
      largest = cap;
    } catch (err) {
      console.log(`maxItems ${cap}: refused: ${message(err)}`);
    }
    await removeCrd(k);
  }
  return largest;
}

/** Step 2: under the CRD at maxItems `largest`, objects whose lists hold N longest names. */
async function measureObjects(k: Kube, largest: number): Promise<void> {
  console.log(`\n## objects under maxItems ${largest}: both lists with N 63-character names`);
  await k.custom.createClusterCustomObject({ ...CRDS, body: crdWithCap(largest) });
  for (let i = 0; i < 150; i++) {
    try {
      await k.custom.listClusterCustomObject(RESOURCES);
      break;
    } catch {
      await sleep(200);
    }
  }
  for (const [n, both] of [
    [1_000, true],
    [2_000, true],
    [4_000, true],
    [5_000, true],
    [6_000, true],
    [8_000, true],
    [8_000, false],
    [10_000, false],
    [12_000, false],
    [16_000, false],
    [20_000, false],
    [24_000, false],
  ] as const) {
    const spec = {
      secretName: "ecr-pull",
      namespaces: names(n, "a"),
      ...(both ? { excludeNamespaces: names(n, "b") } : {}),
    };
    const bytes = JSON.stringify(spec).length;
    const name = `n${n}${both ? "-both" : ""}`;
    const what = `N=${n}${both ? " (both lists)" : ""}: ${bytes} bytes of spec`;
    const started = performance.now();
    try {
      await k.custom.createClusterCustomObject({
        ...RESOURCES,
        body: { apiVersion: `${GROUP}/v1alpha1`, kind: "ECRPullSecret", metadata: { name }, spec },
      });
      console.log(`${what}: accepted in ${Math.round(performance.now() - started)} ms`);
    } catch (err) {
      console.log(`${what}: refused: ${message(err)}`);
    }
    await k.custom.deleteClusterCustomObject({ ...RESOURCES, name }).catch(() => undefined);
  }
}

/**
 * Writes the resource `name` with `spec` to a file in `dir`, runs `kubectl
 * apply` (with `flags`) on it, prints whether it was accepted (`what` names
 * the attempt), and deletes it again.
 */
async function kubectlApply(
  k: Kube,
  kubeconfig: string,
  dir: string,
  opts: { name: string; spec: object; flags: string[]; what: string },
): Promise<void> {
  const file = join(dir, `${opts.name}.json`);
  const body = {
    apiVersion: `${GROUP}/v1alpha1`,
    kind: "ECRPullSecret",
    metadata: { name: opts.name },
    spec: opts.spec,
  };
  await writeFile(file, JSON.stringify(body));
  try {
    await execFileAsync("kubectl", [
      `--kubeconfig=${kubeconfig}`,
      "apply",
      ...opts.flags,
      "-f",
      file,
    ]);
    console.log(`${opts.what} accepted`);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    console.log(`${opts.what} refused: ${stderr.trim().slice(0, 300)}`);
  }
  await k.custom
    .deleteClusterCustomObject({ ...RESOURCES, name: opts.name })
    .catch(() => undefined);
}

async function main(): Promise<void> {
  const cp = await startControlPlane({ progress: (l) => console.error(l) });
  try {
    const k = testKube(cp.kubeconfigPath);
    const largest = await measureCrdCaps(k);
    await measureObjects(k, largest);
    // kubectl apply (client-side) keeps a copy of the object in an
    // annotation, and annotations stop at 256 KiB together.
    console.log("\n## kubectl apply (client-side), one list of N 63-character names");
    const dir = await mkdtemp(join(tmpdir(), "cap-"));
    for (const n of [2_000, 3_000, 3_500, 3_800, 4_000, 5_000]) {
      await kubectlApply(k, cp.kubeconfigPath, dir, {
        name: `apply-${n}`,
        spec: { secretName: "ecr-pull", namespaces: names(n, "a") },
        flags: [],
        what: `N=${n}: kubectl apply`,
      });
    }
    // Server-side apply records every set item in managedFields too.
    console.log("\n## kubectl apply --server-side, both lists with N 63-character names");
    for (const n of [5_000, 6_000, 8_000]) {
      await kubectlApply(k, cp.kubeconfigPath, dir, {
        name: `ssa-${n}`,
        spec: {
          secretName: "ecr-pull",
          namespaces: names(n, "a"),
          excludeNamespaces: names(n, "b"),
        },
        flags: ["--server-side"],
        what: `N=${n}: kubectl apply --server-side`,
      });
    }
    await removeCrd(k);
  } finally {
    await cp.stop();
  }
}

await main();
