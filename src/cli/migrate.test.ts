import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { runMigrate } from "./migrate.js";

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
