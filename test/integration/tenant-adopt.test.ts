// Adoption and cleanup among tenants (issue 28 kind 3, issue 29 kind 3), on
// the real control plane. Every object of a tenant is written by that tenant:
// a client authenticated as a ServiceAccount bound to the built-in `admin`
// ClusterRole in its own namespace only (test/harness/tenant.ts). The
// administrator only creates namespaces and ECRPullSecrets.
//
// - adopt then delete: a tenant's dockerconfigjson Secret is merged into
//   (its other keys and other registries' auths kept) through adoption,
//   refresh and the resource's deletion, which releases it; the config.json
//   and Argo CD outputs never take over a tenant's Opaque Secret;
// - a copy of the operator's Secret, labels and all, in a namespace the
//   resource does not target (or under another name) is left alone, and an
//   Event says that a copy exists.
import type { V1Secret } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsDouble } from "../aws-double/index.js";
import { consistently } from "../harness/controlplane.js";
import {
  applyResource,
  deleteResource,
  dockerConfigOf,
  getResource,
  mergePatch,
  readSecret,
  secretSnapshot,
  type TestKube,
  waitFor,
} from "../harness/kube.js";
import { iamUser, type Stack, startStack } from "../harness/stack.js";
import { ecrHost, MANAGED_BY, OWNER_LABEL, waitForReason } from "../harness/state.js";
import { type Tenant, tenantOf } from "../harness/tenant.js";

const ACCOUNT = "282828282828";
const HOST = ecrHost(ACCOUNT);
/** Another registry the tenant pulls from with its own credentials. */
const OTHER = "ghcr.example.com";
const OPS = "ta-ops";
const registries = [{ accountId: ACCOUNT }];

let k: TestKube;
let aws: AwsDouble;
let stack: Stack;

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const basic = (user: string, password: string) => b64(`${user}:${password}`);

function latestPassword(): string {
  const issued = aws.issued();
  return issued[issued.length - 1]?.password ?? "";
}

/** Waits until `check` holds, then polls it for `ms` more: it must hold every time. */
async function staysSo(what: string, ms: number, check: () => Promise<boolean>): Promise<number> {
  await waitFor(what, async () => ((await check()) ? true : undefined));
  let polls = 0;
  await consistently(
    what,
    async () => {
      if (!(await check())) return `stopped holding after ${polls} polls`;
      polls++;
      return true;
    },
    { forMs: ms, intervalMs: 250 },
  );
  return polls;
}

/** The Events about a resource with this reason (they live in `default`). */
async function eventsOf(name: string, reason: string) {
  const list = await k.core.listNamespacedEvent({
    namespace: "default",
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items;
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    identities: [iamUser("tenantadopt", 1, ACCOUNT, OPS)],
    // Short tokens: the adopted Secret sees several refreshes within the test.
    tokenLifetimeMs: 16_000,
  });
  ({ k, aws } = stack);
  stack.resources.push("ta-adopt", "ta-outputs", "ta-copy");
  await stack.startOperator();
});

afterAll(async () => {
  await stack?.stop();
});

// The adopting tenant's namespace and its Secrets, shared by the two describes below.
let tenant: Tenant;
const NS = "ta-team";
const ARGO_NAME = `ta-outputs-helm-${HOST}`;

describe("adopt and refresh: nothing of the tenant's is lost", () => {
  it("merges into the tenant's dockerconfigjson Secret and keeps its other keys and auths through refreshes", async () => {
    await stack.namespace(NS);
    tenant = await tenantOf(k, NS);
    // The tenant's own pull Secret: another registry's credentials, an old
    // entry for ours, and a key of its own.
    const doc = {
      auths: {
        [OTHER]: { username: "bot", password: "theirs", auth: basic("bot", "theirs") },
        [HOST]: { username: "AWS", password: "stale", auth: basic("AWS", "stale") },
      },
      credHelpers: { "quay.example.com": "quay" },
    };
    await tenant.kube.core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: "ta-pull", labels: { team: "t" }, annotations: { owner: "team-t" } },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": b64(JSON.stringify(doc)), "notes.txt": b64("keep me") },
      },
    });
    await applyResource(k, "ta-adopt", {
      secretName: "ta-pull",
      namespaces: [NS],
      registries,
      adoptExisting: true,
    });
    await waitForReason(k, "ta-adopt", "Synced");
    const first = await waitFor("the first token merged in", async () => {
      const s = await readSecret(k, NS, "ta-pull");
      const pw = s ? dockerConfigOf(s).auths[HOST]?.password : undefined;
      return pw && aws.isValidPassword(pw) ? pw : undefined;
    });
    // Two refreshes later, the tenant's entries are still there.
    const seen = new Set([first]);
    const adopted = await waitFor(
      "two more tokens merged in",
      async () => {
        const s = await readSecret(k, NS, "ta-pull");
        const pw = s ? dockerConfigOf(s).auths[HOST]?.password : undefined;
        if (pw) seen.add(pw);
        return seen.size >= 3 && pw === latestPassword() ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const merged = JSON.parse(
      Buffer.from(adopted?.data?.[".dockerconfigjson"] ?? "", "base64").toString("utf8"),
    );
    expect(Object.keys(merged.auths).sort()).toEqual([HOST, OTHER].sort());
    expect(merged.auths[OTHER]).toEqual(doc.auths[OTHER]);
    expect(merged.auths[HOST].password).toBe(latestPassword());
    expect(merged.credHelpers).toEqual(doc.credHelpers);
    expect(adopted?.data?.["notes.txt"]).toBe(b64("keep me"));
    expect(adopted?.metadata?.labels).toEqual({
      team: "t",
      [MANAGED_BY]: "ecr-creds-refresher",
      [OWNER_LABEL]: "ta-adopt",
    });
    expect(adopted?.metadata?.annotations?.owner).toBe("team-t");
    expect(adopted?.metadata?.annotations?.["ecrcreds.io/adopted"]).toBe(`${NS}/ta-pull`);

    // Someone overwrites our entry and keeps every annotation: the
    // annotations prove nothing about the data, so ours is merged in again.
    const overwritten = {
      ...merged,
      auths: { ...merged.auths, [HOST]: { username: "AWS", password: "overwritten" } },
    };
    await tenant.kube.core.patchNamespacedSecret(
      {
        namespace: NS,
        name: "ta-pull",
        body: { data: { ".dockerconfigjson": b64(JSON.stringify(overwritten)) } },
      },
      mergePatch,
    );
    const restored = await waitFor("our entry merged in again", async () => {
      const s = await readSecret(k, NS, "ta-pull");
      const pw = s ? dockerConfigOf(s).auths[HOST]?.password : undefined;
      return pw && pw !== "overwritten" ? s : undefined;
    });
    expect(dockerConfigOf(restored).auths[HOST]?.password).toBe(latestPassword());
    expect(dockerConfigOf(restored).auths[OTHER]).toEqual(doc.auths[OTHER]);
  });
});

describe("other outputs, then delete: nothing of the tenant's is lost", () => {
  it("never takes over the tenant's Opaque Secrets through the config.json and Argo CD outputs", async () => {
    const config = await tenant.kube.core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: "ta-config", labels: { team: "t" } },
        type: "Opaque",
        data: {
          "config.json": b64(JSON.stringify({ auths: { [OTHER]: { auth: basic("bot", "x") } } })),
          "settings.yaml": b64("proxy: on"),
        },
      },
    });
    const argo = await tenant.kube.core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: ARGO_NAME },
        type: "Opaque",
        data: { url: b64("https://charts.example.com"), password: b64("argo-theirs") },
      },
    });
    await applyResource(k, "ta-outputs", {
      secretName: "ta-outputs-pull",
      namespaces: [NS],
      registries,
      adoptExisting: true,
      dockerConfigSecret: { name: "ta-config" },
      argoCD: { namespace: NS },
    });
    const r = await waitForReason(k, "ta-outputs", "SecretConflict");
    expect(r.status?.failures?.[0]?.namespace).toBe(NS);
    expect(r.status?.failures?.[0]?.message).toContain("adoptExisting takes over only the pull");
    await waitFor("a SecretConflict Event", async () =>
      (await eventsOf("ta-outputs", "SecretConflict")).length > 0 ? true : undefined,
    );
    // Its own pull Secret is written; the tenant's two Opaque Secrets are untouched.
    await waitFor("ta-outputs-pull written", () => readSecret(k, NS, "ta-outputs-pull"));
    expect(secretSnapshot(await readSecret(k, NS, "ta-config"))).toEqual(secretSnapshot(config));
    expect(secretSnapshot(await readSecret(k, NS, ARGO_NAME))).toEqual(secretSnapshot(argo));
  });

  it("releases the adopted Secret when the resource is deleted: only our entry, labels and annotations go", async () => {
    const config = await readSecret(k, NS, "ta-config");
    const argo = await readSecret(k, NS, ARGO_NAME);
    for (const name of ["ta-adopt", "ta-outputs"]) await deleteResource(k, name);
    await waitFor("both resources gone", async () =>
      (await getResource(k, "ta-adopt")) || (await getResource(k, "ta-outputs")) ? undefined : true,
    );
    const released = await readSecret(k, NS, "ta-pull");
    const doc = JSON.parse(
      Buffer.from(released?.data?.[".dockerconfigjson"] ?? "", "base64").toString("utf8"),
    );
    expect(doc).toEqual({
      auths: { [OTHER]: { username: "bot", password: "theirs", auth: basic("bot", "theirs") } },
      credHelpers: { "quay.example.com": "quay" },
    });
    expect(released?.type).toBe("kubernetes.io/dockerconfigjson");
    expect(released?.data?.["notes.txt"]).toBe(b64("keep me"));
    expect(released?.metadata?.labels).toEqual({ team: "t" });
    expect(released?.metadata?.annotations).toEqual({ owner: "team-t" });
    expect((await eventsOf("ta-adopt", "SecretReleased")).length).toBe(1);
    // The resource's own Secret went; the tenant's Opaque Secrets stayed as they were.
    expect(await readSecret(k, NS, "ta-outputs-pull")).toBeUndefined();
    expect(secretSnapshot(await readSecret(k, NS, "ta-config"))).toEqual(secretSnapshot(config));
    expect(secretSnapshot(await readSecret(k, NS, ARGO_NAME))).toEqual(secretSnapshot(argo));
  });
});

describe("copies of the operator's Secret", () => {
  it("leaves a labelled copy in a namespace it does not target, or under another name, alone, with an Event", async () => {
    const SRC = "ta-src";
    const ELSEWHERE = "ta-elsewhere";
    await stack.namespace(SRC);
    await stack.namespace(ELSEWHERE);
    const src = await tenantOf(k, SRC);
    const elsewhere = await tenantOf(k, ELSEWHERE);
    await applyResource(k, "ta-copy", {
      secretName: "ta-copy-pull",
      namespaces: [SRC],
      registries,
    });
    await waitForReason(k, "ta-copy", "Synced");
    const original = await waitFor("the operator's Secret", () =>
      readSecret(k, SRC, "ta-copy-pull"),
    );

    // kubectl get secret ta-copy-pull -o yaml | kubectl apply -n ta-elsewhere -f -
    // (the YAML as src's tenant reads it, applied by elsewhere's tenant), and
    // a backup under another name in the target namespace itself.
    const yaml = await src.kube.core.readNamespacedSecret({ namespace: SRC, name: "ta-copy-pull" });
    const copyOf = (namespace: string, name: string): V1Secret => ({
      metadata: {
        name,
        namespace,
        labels: yaml.metadata?.labels ?? {},
        annotations: yaml.metadata?.annotations ?? {},
      },
      type: yaml.type ?? "",
      data: yaml.data ?? {},
    });
    await elsewhere.kube.core.createNamespacedSecret({
      namespace: ELSEWHERE,
      body: copyOf(ELSEWHERE, "ta-copy-pull"),
    });
    await src.kube.core.createNamespacedSecret({
      namespace: SRC,
      body: copyOf(SRC, "ta-copy-backup"),
    });
    // And a Secret of the tenant's own that merely wears our labels (no mark).
    await src.kube.core.createNamespacedSecret({
      namespace: SRC,
      body: {
        metadata: {
          name: "ci-pull",
          namespace: SRC,
          labels: yaml.metadata?.labels ?? {},
        },
        type: "Opaque",
        data: { k: Buffer.from("v").toString("base64") },
      },
    });
    const polls = await staysSo(
      "both copies and the labelled Secret still exist",
      10_000,
      async () =>
        Boolean(
          (await readSecret(k, ELSEWHERE, "ta-copy-pull")) &&
            (await readSecret(k, SRC, "ta-copy-backup")) &&
            (await readSecret(k, SRC, "ci-pull")),
        ),
    );
    console.log(`copies present on each of ${polls} polls over 10 s`);
    await waitFor("an Event saying a copy exists, for each copy", async () => {
      const events = await eventsOf("ta-copy", "SecretCopyLeftAlone");
      const about = events.map((e) => e.message ?? "");
      return about.some((m) => m.includes(`${ELSEWHERE}/ta-copy-pull`)) &&
        about.some((m) => m.includes(`${SRC}/ta-copy-backup`))
        ? about
        : undefined;
    });
    const events = await eventsOf("ta-copy", "SecretCopyLeftAlone");
    expect(events.map((e) => e.type)).toEqual(events.map(() => "Warning"));
    expect(events.find((e) => e.message?.includes(ELSEWHERE))?.message).toBe(
      `Secret ${ELSEWHERE}/ta-copy-pull carries the labels of ECRPullSecret ta-copy but is a copy of ${SRC}/ta-copy-pull, which this operator did not write there; left alone: delete it, or remove its labels app.kubernetes.io/managed-by and ecrcreds.io/owner, if nothing needs it`,
    );

    expect(original.metadata?.annotations?.["ecrcreds.io/written-in"]).toBe(`${SRC}/ta-copy-pull`);

    // Deleting the resource removes its own Secret, and still not the copies.
    await deleteResource(k, "ta-copy");
    await waitFor("ta-copy gone", async () =>
      (await getResource(k, "ta-copy")) ? undefined : true,
    );
    expect(await readSecret(k, SRC, "ta-copy-pull")).toBeUndefined();
    expect((await readSecret(k, ELSEWHERE, "ta-copy-pull"))?.data).toEqual(yaml.data);
    expect((await readSecret(k, SRC, "ta-copy-backup"))?.data).toEqual(yaml.data);
    expect((await readSecret(k, SRC, "ci-pull"))?.data).toEqual({ k: "dg==" });
    expect(
      (await eventsOf("ta-copy", "SecretCopyLeftAlone")).some((e) =>
        e.message?.startsWith(
          `Secret ${SRC}/ci-pull carries the labels of ECRPullSecret ta-copy but not the ecrcreds.io/written-in mark`,
        ),
      ),
    ).toBe(true);
  });
});
