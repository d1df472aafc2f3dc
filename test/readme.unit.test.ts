// The commands the READMEs show are commands that work: every `npm run X`
// names a script in package.json, every flag given to the operator is one its
// --help lists, every flag given to a script's program is one it parses, and
// every Node flag is one Node takes. And `bin/ecr-creds-refresher`, started
// from a PATH whose `node` is older than the project's Node 24, runs on
// Node 24, without the AWS SDK's warning about old Node versions.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { helpText } from "../src/cli/config.js";
import { migrateHelp } from "../src/cli/migrate.js";
import { ensureBuilt } from "./harness/build.js";

const root = join(import.meta.dirname, "..");
const READMES = ["README.md", "deploy/helm/ecr-creds-refresher/README.md"];
const scripts = (
  JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

/**
 * Every command a Markdown text shows: each inline code span, and each line
 * of a shell code block (continuation lines joined, `$ ` prompts dropped).
 */
function commandsIn(markdown: string): string[] {
  const out: string[] = [];
  const prose = markdown.replace(
    /^```(\w*)\n([\s\S]*?)^```$/gm,
    (_, lang: string, body: string) => {
      if (["", "sh", "bash", "console"].includes(lang)) {
        for (const line of body.replace(/\\\n\s*/g, " ").split("\n")) {
          const command = line.replace(/^\$ /, "").trim();
          if (command) out.push(command);
        }
      }
      return "";
    },
  );
  for (const m of prose.matchAll(/`([^`]+)`/g)) out.push((m[1] ?? "").replace(/\s+/g, " ").trim());
  return out;
}

interface Uses {
  /** Scripts named by `npm run X` (and `npm test`). */
  npmScripts: string[];
  /** Flags given to the operator. */
  operatorFlags: string[];
  /** Flags given to Node itself. */
  nodeFlags: string[];
  /** Flags passed through `npm run X -- ...`, by script. */
  scriptFlags: Array<{ script: string; flag: string }>;
}

const flagName = (token: string): string | undefined => /^--([a-z][a-z0-9-]*)/.exec(token)?.[1];
const flagsIn = (tokens: string[]): string[] =>
  tokens.map(flagName).filter((f): f is string => f !== undefined);
const OPERATOR = new Set([
  "ecr-creds-refresher",
  "bin/ecr-creds-refresher",
  "run",
  "once",
  "check",
]);

/** Sorts the flags of each simple command by the program that reads them. */
function usesIn(commands: string[]): Uses {
  const uses: Uses = { npmScripts: [], operatorFlags: [], nodeFlags: [], scriptFlags: [] };
  for (const command of commands) {
    for (const simple of command.split(/&&|\|\||;|\|/)) {
      let tokens = simple.trim().split(" ").filter(Boolean);
      if (tokens[0] === "npx") tokens = tokens.slice(1).filter((t) => t !== "--no-install");
      const [first = "", second, third] = tokens;
      if (first === "npm" && second === "test") uses.npmScripts.push("test");
      if (first === "npm" && second === "run" && third) {
        uses.npmScripts.push(third);
        const dashes = tokens.indexOf("--");
        if (dashes >= 0)
          for (const flag of flagsIn(tokens.slice(dashes + 1)))
            uses.scriptFlags.push({ script: third, flag });
      } else if (first === "node") {
        const script = tokens.findIndex((t, i) => i > 0 && !t.startsWith("-"));
        const end = script < 0 ? tokens.length : script;
        uses.nodeFlags.push(...tokens.slice(1, end));
        if (script >= 0 && OPERATOR.has(tokens[script] ?? ""))
          uses.operatorFlags.push(...flagsIn(tokens.slice(script + 1)));
      } else if (OPERATOR.has(first) || first.startsWith("--")) {
        uses.operatorFlags.push(...flagsIn(tokens));
      }
      // Anything else (helm, kubectl, docker, aws) is another project's program.
    }
  }
  return uses;
}

const readmes = READMES.map((path) => ({
  path,
  uses: usesIn(commandsIn(readFileSync(join(root, path), "utf8"))),
}));
const main = readmes[0]?.uses as Uses;

describe("the READMEs' commands", () => {
  it("are found: npm scripts, operator, Node and script flags", () => {
    // What the extraction must see in README.md, so an empty list cannot pass below.
    expect(main.npmScripts).toEqual(expect.arrayContaining(["demo", "controlplane", "bench"]));
    expect(main.operatorFlags).toEqual(
      expect.arrayContaining(["kubeconfig", "region", "verify", "resource", "help"]),
    );
    expect(main.nodeFlags).toEqual([
      "--max-semi-space-size=4",
      "--no-concurrent-recompilation",
      "--heap-growing-percent=30",
    ]);
    expect(main.scriptFlags).toEqual(
      expect.arrayContaining([
        { script: "controlplane", flag: "kubeconfig-out" },
        { script: "bench", flag: "n" },
        { script: "soak", flag: "minutes" },
      ]),
    );
    // helm, kubectl and docker flags are not taken for the operator's.
    expect(main.operatorFlags).not.toContain("create-namespace");
  });

  it.each(readmes)("$path: every `npm run X` names a script in package.json", ({ uses }) => {
    const missing = uses.npmScripts.filter((s) => !(s in scripts));
    expect(missing).toEqual([]);
  });

  it.each(readmes)("$path: every operator flag is one --help lists", ({ uses }) => {
    // The operator's --help, and `migrate --help` for the migrate command's own flags.
    const help = `${helpText()}\n${migrateHelp()}`;
    const listed = new Set([...help.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]));
    const missing = uses.operatorFlags.filter((f) => !listed.has(f));
    expect(missing).toEqual([]);
  });

  it.each(readmes)(
    "$path: every flag after `npm run X --` is one X's program parses",
    ({ uses }) => {
      for (const { script, flag } of uses.scriptFlags) {
        const command = scripts[script] ?? "";
        const program = command.split(" ").findLast((t) => /\.(ts|mjs|js)$/.test(t));
        expect(program, `the program \`npm run ${script}\` runs`).toBeDefined();
        const source = readFileSync(join(root, program as string), "utf8");
        const option = new RegExp(`["']?${flag}["']?\\s*:\\s*\\{\\s*type:`);
        expect(option.test(source), `${program} parses --${flag}`).toBe(true);
      }
    },
  );

  it("README.md: Node takes every Node flag it shows", () => {
    const r = spawnSync(process.execPath, [...main.nodeFlags, "-e", ""], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});

/** A `node` older than 24 on this machine (the system one), if there is one. */
function olderNode(): { path: string; version: string } | undefined {
  for (const path of ["/usr/bin/node", "/usr/local/bin/node"]) {
    if (!existsSync(path)) continue;
    const version = spawnSync(path, ["--version"], { encoding: "utf8" }).stdout.trim();
    if (Number(/^v(\d+)/.exec(version)?.[1]) < 24) return { path, version };
  }
  return undefined;
}

describe("bin/ecr-creds-refresher from a checkout", () => {
  const older = olderNode();
  const SDK_WARNING = "NodeVersionSupportWarning";
  const checkArgs = ["check", "--region=us-east-1", "--kubeconfig=/nonexistent"];
  // No credentials anywhere: `check` builds the SDK's clients and fails fast.
  const awsEnv = (dir: string) => {
    const empty = join(dir, "empty");
    writeFileSync(empty, "");
    return {
      AWS_SHARED_CREDENTIALS_FILE: empty,
      AWS_CONFIG_FILE: empty,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_SESSION_TOKEN: "",
      AWS_PROFILE: "",
      AWS_ROLE_ARN: "",
      AWS_WEB_IDENTITY_TOKEN_FILE: "",
      AWS_CONTAINER_CREDENTIALS_FULL_URI: "",
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "",
    };
  };

  it.skipIf(!older)(
    "started by an older node on the PATH, runs on Node 24 without the AWS SDK's warning",
    async () => {
      const node = older as NonNullable<typeof older>;
      await ensureBuilt();
      const dir = mkdtempSync(join(tmpdir(), "bin-node-"));
      // Every Node process that starts reports its version when it exits.
      const probe = join(dir, "probe.mjs");
      writeFileSync(
        probe,
        'process.on("exit", (c) => process.stderr.write("[probe] " + process.version + " exit " + c + "\\n"));\n',
      );
      const env = {
        ...process.env,
        ...awsEnv(dir),
        // Only the system's folders: `#!/usr/bin/env node` finds the older node.
        PATH: node.path.startsWith("/usr/local/")
          ? "/usr/local/bin:/usr/bin:/bin"
          : "/usr/bin:/bin",
        NODE_OPTIONS: `--import=${pathToFileURL(probe).href}`,
      };
      const r = spawnSync(join(root, "bin/ecr-creds-refresher"), checkArgs, {
        env,
        encoding: "utf8",
        timeout: 60_000,
      });
      const output = `${r.stdout}${r.stderr}`;
      const probes = output.split("\n").filter((l) => l.startsWith("[probe]"));
      // The script started on the older node and handed over to Node 24, which
      // ran the command (and exited first).
      expect(probes).toEqual([
        expect.stringMatching(/^\[probe\] v24\.\d+\.\d+ exit 1$/),
        `[probe] ${node.version} exit 1`,
      ]);
      expect(output).not.toContain(SDK_WARNING);
      expect(output).toContain("check failed: CredentialsInvalid");
      expect(r.status).toBe(1);
    },
    240_000,
  );

  it.skipIf(!older)(
    "the same command run by the older node itself shows the warning it avoids",
    async () => {
      const node = older as NonNullable<typeof older>;
      await ensureBuilt();
      const dir = mkdtempSync(join(tmpdir(), "bin-node-"));
      const entry = pathToFileURL(join(root, "dist/cli/main.js")).href;
      const r = spawnSync(
        node.path,
        [
          "--input-type=module",
          "-e",
          `const { main } = await import(${JSON.stringify(entry)}); process.exitCode = await main(${JSON.stringify(checkArgs)});`,
        ],
        { env: { ...process.env, ...awsEnv(dir) }, encoding: "utf8", timeout: 60_000 },
      );
      expect(`${r.stdout}${r.stderr}`).toContain(SDK_WARNING);
      expect(r.status).toBe(1);
    },
    240_000,
  );
});
