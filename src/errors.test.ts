import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { Reason } from "./api/conditions.js";
import {
  type ErrorCode,
  errorCatalogue,
  isOperatorError,
  isTerminal,
  OperatorError,
  operatorError,
} from "./errors.js";

const srcDir = new URL(".", import.meta.url).pathname;

/** Every non-test TypeScript file under src/, as [path relative to src/, text]. */
function sources(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith(".ts") && !/\.(test|fake)\.ts$/.test(e.name))
        out.push([relative(srcDir, path), readFileSync(path, "utf8")]);
    }
  };
  walk(srcDir);
  return out;
}

const templates = () =>
  Object.entries(errorCatalogue).flatMap(([code, forms]) =>
    Object.entries(forms as Record<string, (p: unknown) => string>).map(
      ([form, template]) => [code, form, template] as const,
    ),
  );

describe("OperatorError", () => {
  it("carries its code (the condition reason), its form and its cause", () => {
    const cause = new Error("ECONNRESET");
    const e = operatorError(
      "TokenRefreshFailed",
      "aws",
      { step: "get an ECR token in eu-west-1", source: "the chain", detail: "network error" },
      cause,
    );
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("OperatorError");
    expect(e.code).toBe("TokenRefreshFailed");
    expect(e.reason).toBe(Reason.TokenRefreshFailed);
    expect(e.form).toBe("aws");
    expect(e.cause).toBe(cause);
    expect(e.message).toBe("failed to get an ECR token in eu-west-1 with the chain: network error");
    expect(operatorError("InvalidSpec", "selector", { reason: "x" }).cause).toBeUndefined();
  });

  it("is narrowed by isOperatorError, optionally by code; only InvalidSpec is terminal", () => {
    const e: unknown = operatorError("InvalidSpec", "glob", {
      glob: "",
      reason: "the glob is empty",
    });
    expect(isOperatorError(e)).toBe(true);
    expect(isOperatorError(e, "InvalidSpec")).toBe(true);
    expect(isOperatorError(e, "WriteFailed")).toBe(false);
    expect(isOperatorError(new Error("x"))).toBe(false);
    expect(isTerminal(e)).toBe(true);
    expect(isTerminal(new OperatorError("WriteFailed", "api", "failed to write x: y"))).toBe(false);
    expect(isTerminal(new Error("x"))).toBe(false);
  });

  it("has codes that are condition reasons", () => {
    const reasons = new Set<string>(Object.values(Reason));
    for (const code of Object.keys(errorCatalogue)) expect(reasons, code).toContain(code);
  });

  it("phrases every message as failed to <verb> <thing>: <cause>", () => {
    for (const [code, form, template] of templates()) {
      // A step is itself "<verb> <thing>", as fetchStep makes it.
      const param = (k: string | symbol) => (k === "step" ? "get an ECR token" : `<${String(k)}>`);
      const message = template(new Proxy({}, { get: (_, k) => param(k) }));
      expect(message, `${code}.${form}`).toMatch(/^failed to \w+ .+: .+/);
      expect(message, `${code}.${form}`).not.toContain("undefined");
    }
  });

  it("lists exactly what src/ throws: every entry is used, and nothing else is thrown", () => {
    const text = sources()
      .map(([, t]) => t)
      .join("\n");
    const used = new Set(
      [...text.matchAll(/operatorError\(\s*"(\w+)",\s*"(\w+)"/g)].map((m) => `${m[1]}.${m[2]}`),
    );
    const listed = templates().map(([code, form]) => `${code}.${form}`);
    expect([...used].sort()).toEqual([...listed].sort());
  });

  it("is the only error src/ makes outside the client and the CLI", () => {
    // kube/: the API server's answer (ApiError) and kubeconfig errors at
    // start-up; cli/: usage errors (ConfigError, exit code 2); health.ts: a
    // bind address that cannot be parsed, at start-up.
    const outside = (path: string) =>
      path.startsWith("kube/") || path.startsWith("cli/") || path === "observability/health.ts";
    const offenders = sources().flatMap(([path, t]) =>
      outside(path)
        ? []
        : [...t.matchAll(/throw new (\w+)\(|class (\w+) extends Error\b/g)]
            .map((m) => m[1] ?? m[2])
            .filter((name) => name !== "OperatorError" || path !== "errors.ts")
            .map((name) => `${path}: ${name}`),
    );
    expect(offenders).toEqual([]);
  });

  it("names every code's retry in the reconcile: only InvalidSpec is terminal", () => {
    const codes = Object.keys(errorCatalogue) as ErrorCode[];
    const terminal = codes.filter((c) => isTerminal(new OperatorError(c, "x", "failed to x y: z")));
    expect(terminal).toEqual(["InvalidSpec"]);
  });
});
