import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { imageRepository, looksLikeOldOperator, runMigrate } from "./migrate.js";

async function run(args: string[]) {
  let out = "";
  let err = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const code = await runMigrate(
    args,
    {},
    {
      out: sink((s) => (out += s)),
      err: sink((s) => (err += s)),
    },
  );
  return { code, out, err };
}

describe("migrate command line", () => {
  it("prints its own help", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: ecr-creds-refresher migrate \[--apply/);
    expect(r.out).toContain("--delete-old-crd");
  });

  it("refuses contradicting or malformed flags before touching the cluster", async () => {
    expect(await run(["--apply", "--dry-run"])).toEqual({
      code: 2,
      out: "",
      err: "ecr-creds-refresher migrate: --apply and --dry-run exclude each other\n",
    });
    const bad = await run(["--timeout=soon"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(
      /^ecr-creds-refresher migrate: failed to read --timeout: failed to parse duration "soon"/,
    );
    const extra = await run(["now"]);
    expect(extra.code).toBe(2);
    expect(extra.err).toContain('unexpected argument "now"');
  });
});

describe("the old operator's look", () => {
  it("reads an image's repository without registry, tag or digest", () => {
    expect(imageRepository("dejanualex/ecr-creds-refresher:0.2.3")).toBe(
      "dejanualex/ecr-creds-refresher",
    );
    expect(imageRepository("docker.io/dejanualex/ecr-creds-refresher@sha256:abc")).toBe(
      "dejanualex/ecr-creds-refresher",
    );
    expect(imageRepository("mirror.example:5000/hub/dejanualex/ecr-creds-refresher:1")).toBe(
      "hub/dejanualex/ecr-creds-refresher",
    );
    expect(imageRepository("localhost/app")).toBe("app");
    expect(imageRepository("busybox")).toBe("busybox");
  });

  it("takes the old image or name label as a candidate, nothing else", () => {
    const d = (image: string, labels: Record<string, string> = {}) => ({
      metadata: { namespace: "n", name: "d", labels },
      spec: { template: { spec: { containers: [{ image }] } } },
    });
    expect(looksLikeOldOperator(d("docker.io/dejanualex/ecr-creds-refresher:0.2.3"))).toBe(true);
    expect(looksLikeOldOperator(d("mirror.example/hub/dejanualex/ecr-creds-refresher"))).toBe(true);
    expect(looksLikeOldOperator(d("busybox", { app: "ecr-creds-refresher" }))).toBe(true);
    expect(looksLikeOldOperator(d("busybox", { app: "payments" }))).toBe(false);
    expect(looksLikeOldOperator(d("evil/dejanualex-ecr-creds-refresher"))).toBe(false);
  });

  it("refuses a malformed --old-deployment or --namespace-label-prefix before touching the cluster", async () => {
    expect(await run(["--old-deployment=ecr-creds-refresher"])).toEqual({
      code: 2,
      out: "",
      err: 'ecr-creds-refresher migrate: failed to read --old-deployment "ecr-creds-refresher": not NAMESPACE/NAME; name the old operator\'s Deployment, e.g. --old-deployment operator/ecr-creds-refresher\n',
    });
    const prefix = await run(["--namespace-label-prefix=Not A Prefix"]);
    expect(prefix.code).toBe(2);
    expect(prefix.err).toContain(
      'failed to read --namespace-label-prefix "Not A Prefix": not a label key prefix',
    );
  });
});
