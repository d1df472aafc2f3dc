import { describe, expect, it } from "vitest";
import {
  type ErrorCode,
  errorCatalogue,
  isOperatorError,
  OperatorError,
  operatorError,
} from "./errors.js";

describe("OperatorError", () => {
  it("carries its code, parameters and cause", () => {
    const cause = new Error("ECONNRESET");
    const e = operatorError(
      "TokenRefreshFailed",
      { region: "eu-west-1", reason: "network error" },
      cause,
    );
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("OperatorError");
    expect(e.code).toBe("TokenRefreshFailed");
    expect(e.params).toEqual({ region: "eu-west-1", reason: "network error" });
    expect(e.cause).toBe(cause);
    expect(e.message).toMatch(/^failed to refresh the ECR token in eu-west-1: network error; /);
    expect(operatorError("InvalidSelector", { reason: "x" }).cause).toBeUndefined();
  });

  it("is narrowed by isOperatorError, optionally by code", () => {
    const e: unknown = new OperatorError("InvalidGlob", { glob: "", reason: "the glob is empty" });
    expect(isOperatorError(e)).toBe(true);
    expect(isOperatorError(e, "InvalidGlob")).toBe(true);
    expect(isOperatorError(e, "InvalidDuration")).toBe(false);
    expect(isOperatorError(new Error("x"))).toBe(false);
  });

  it("phrases every message as failed to <verb> <thing>: <cause>; <what to fix>", () => {
    for (const code of Object.keys(errorCatalogue) as ErrorCode[]) {
      const template = errorCatalogue[code] as (p: Record<string, string>) => string;
      const message = template(new Proxy({}, { get: (_, k) => `<${String(k)}>` }));
      expect(message, code).toMatch(/^failed to \w+ .+: .+; .+/);
      expect(message, code).not.toContain("undefined");
    }
  });
});
