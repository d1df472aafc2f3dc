// The status a pass writes, as pure functions: conditions whose
// lastTransitionTime moves only with their status, a bounded sorted failures
// list, and the Ready condition's order of reasons.
import { describe, expect, it } from "vitest";
import { type ECRPullSecret, MAX_FAILURES } from "../api/index.js";
import type { TokenState } from "../aws/token-cache.js";
import { operatorError } from "../errors.js";
import {
  buildStatus,
  failedList,
  passStatus,
  readyCondition,
  refreshBeforeCapped,
  shortDuration,
  statusEqual,
  verifiedCondition,
} from "./status.js";

const T0 = new Date("2030-01-01T00:00:00Z");
const T1 = new Date("2030-01-01T01:00:00Z");
const EXPIRES = new Date("2030-01-01T12:00:00Z");

const ok = (): TokenState => ({
  key: "k",
  expiredOnArrival: false,
  token: { username: "AWS", password: "p", expiresAt: EXPIRES, fetchedAt: T0 },
  nextRefreshAt: new Date("2030-01-01T06:00:00Z"),
});
const failure = (namespace: string, reason = "WriteFailed") => ({
  namespace,
  reason,
  message: "x",
});

describe("readyCondition", () => {
  it("is Synced with every namespace written", () => {
    expect(
      readyCondition({ tokens: [ok()], desired: 3, failures: [], expiresAt: EXPIRES }),
    ).toEqual({
      type: "Ready",
      status: "True",
      reason: "Synced",
      message: "3/3 namespaces",
    });
  });

  it("says SecretConflict when every failure is a conflict, else PartiallySynced", () => {
    const conflicts = [failure("a", "SecretConflict"), failure("b", "SecretConflict")];
    const all = readyCondition({
      tokens: [ok()],
      desired: 5,
      failures: conflicts,
      expiresAt: EXPIRES,
    });
    expect(all).toMatchObject({ status: "False", reason: "SecretConflict" });
    expect(all.message).toBe(
      "3/5 namespaces synced; failed: a (SecretConflict), b (SecretConflict)",
    );
    const mixed = readyCondition({
      tokens: [ok()],
      desired: 5,
      failures: [...conflicts, failure("c")],
      expiresAt: EXPIRES,
    });
    expect(mixed.reason).toBe("PartiallySynced");
  });

  it("says NamespaceNotGranted with what to change when every failure is outside the granted set", () => {
    const outside = (namespace: string) => ({
      namespace,
      reason: "NamespaceNotGranted",
      message: `failed to serve namespace ${namespace}: it is outside; add it to rbac.namespaces`,
    });
    const one = readyCondition({
      tokens: [ok()],
      desired: 2,
      failures: [outside("x")],
      expiresAt: EXPIRES,
      servedNamespaces: 1,
    });
    expect(one).toMatchObject({ status: "False", reason: "NamespaceNotGranted" });
    expect(one.message).toBe(
      "1/2 namespaces synced; failed to serve namespace x: it is outside; add it to rbac.namespaces",
    );
    const two = readyCondition({
      tokens: [ok()],
      desired: 3,
      failures: [outside("x"), outside("y")],
      expiresAt: EXPIRES,
      servedNamespaces: 1,
    });
    expect(two.message).toMatch(/namespace x: .* \(and 1 more in status\.failures\)$/);
  });
});

describe("readyCondition: failed namespaces outside the install, failed refreshes", () => {
  it("says where globs and selectors were evaluated when the install serves some namespaces only", () => {
    expect(
      readyCondition({
        tokens: [ok()],
        desired: 2,
        failures: [],
        expiresAt: EXPIRES,
        servedNamespaces: 3,
      }).message,
    ).toBe(
      "2/2 namespaces (namespaces, globs and selectors evaluated within the 3 namespaces this install may serve)",
    );
  });

  it("puts a failed refresh before failed namespaces, with how long the Secrets in place last", () => {
    const error = operatorError("AccessDenied", "ecr", {
      step: "get an ECR token in us-east-1",
      source: "s",
      detail: "d",
    });
    const ready = readyCondition({
      tokens: [ok(), { ...ok(), error }],
      desired: 2,
      failures: [failure("a")],
      expiresAt: EXPIRES,
    });
    expect(ready.reason).toBe("AccessDenied");
    expect(ready.message).toBe(
      `${error.message}; the Secrets in place stay valid until ${EXPIRES.toISOString()}`,
    );
  });

  it("puts a token expired on arrival before anything else", () => {
    const error = operatorError("TokenRefreshFailed", "noToken", { source: "s" });
    const ready = readyCondition({
      tokens: [
        { ...ok(), error },
        { ...ok(), expiredOnArrival: true },
      ],
      desired: 1,
      failures: [],
      expiresAt: EXPIRES,
    });
    expect(ready.reason).toBe("TokenExpiredOnArrival");
    expect(ready.message).toContain("check the clocks");
  });
});

describe("failedList", () => {
  it("names the first five and marks the rest", () => {
    const six = ["a", "b", "c", "d", "e", "f"].map((n) => failure(n));
    expect(failedList(six)).toBe(
      "a (WriteFailed), b (WriteFailed), c (WriteFailed), d (WriteFailed), e (WriteFailed), …",
    );
  });
});

describe("verifiedCondition", () => {
  it("maps a check to Verified or VerificationFailed", () => {
    expect(verifiedCondition({ ok: true, message: "200" })).toMatchObject({
      status: "True",
      reason: "Verified",
    });
    expect(verifiedCondition({ ok: false, message: "401" })).toMatchObject({
      status: "False",
      reason: "VerificationFailed",
      message: "401",
    });
  });
});

describe("buildStatus", () => {
  const input = {
    generation: 4,
    conditions: [{ type: "Ready", status: "True" as const, reason: "Synced", message: "m" }],
    registries: ["b.example", "a.example"],
    desired: 2,
    synced: 2,
    failures: [],
  };

  it("keeps lastTransitionTime while the status stays, and moves it when it changes", () => {
    const first = buildStatus(undefined, input, T0);
    expect(first.conditions?.[0]).toMatchObject({
      observedGeneration: 4,
      lastTransitionTime: T0.toISOString(),
    });
    expect(first.registries).toEqual(["a.example", "b.example"]);
    expect(first.namespaces).toEqual({ desired: 2, synced: 2, failed: 0, summary: "2/2" });
    const same = buildStatus(
      first,
      { ...input, conditions: [{ ...input.conditions[0]!, message: "other" }] },
      T1,
    );
    expect(same.conditions?.[0]?.lastTransitionTime).toBe(T0.toISOString());
    const flipped = buildStatus(
      first,
      { ...input, conditions: [{ ...input.conditions[0]!, status: "False" }] },
      T1,
    );
    expect(flipped.conditions?.[0]?.lastTransitionTime).toBe(T1.toISOString());
  });

  it("sorts the failures by namespace and keeps at most MAX_FAILURES, counting them all", () => {
    const many = Array.from({ length: MAX_FAILURES + 5 }, (_, i) =>
      failure(`ns-${String(99 - i)}`),
    );
    const s = buildStatus(undefined, { ...input, desired: 30, synced: 5, failures: many }, T0);
    expect(s.failures).toHaveLength(MAX_FAILURES);
    expect(s.failures?.[0]?.namespace).toBe(`ns-${String(99 - MAX_FAILURES - 4)}`);
    expect(s.namespaces?.failed).toBe(MAX_FAILURES + 5);
  });

  it("cuts a condition message to 1024 characters", () => {
    const long = { ...input.conditions[0]!, message: "x".repeat(5000) };
    expect(
      buildStatus(undefined, { ...input, conditions: [long] }, T0).conditions?.[0]?.message,
    ).toHaveLength(1024);
  });
});

describe("passStatus and statusEqual", () => {
  const resource: ECRPullSecret = {
    metadata: { name: "r", generation: 2 },
    spec: { secretName: "s" },
  };

  it("takes the times from the earliest token and keeps what the pass did not learn", () => {
    const ready = readyCondition({ tokens: [ok()], desired: 1, failures: [], expiresAt: EXPIRES });
    const s = passStatus(
      resource,
      { ready, tokens: [ok()], registries: ["h"], counts: { desired: 1, synced: 1, failures: [] } },
      T0,
    );
    expect(s).toMatchObject({
      observedGeneration: 2,
      tokenExpiresAt: EXPIRES.toISOString(),
      lastRefreshTime: T0.toISOString(),
      nextRefreshTime: "2030-01-01T06:00:00.000Z",
      registries: ["h"],
    });
    const later = passStatus({ ...resource, status: s }, { ready }, T1);
    expect(later.registries).toEqual(["h"]);
    expect(later.namespaces).toMatchObject({ desired: 1, synced: 1 });
  });

  it("writes uncoveredPods once a resource has had one, keeps it while the Pod watch has not listed", () => {
    const ready = readyCondition({ tokens: [ok()], desired: 1, failures: [], expiresAt: EXPIRES });
    // Never had one: no field, so a resting operator writes nothing.
    const none = passStatus(resource, { ready, uncoveredPods: { count: 0 } }, T0);
    expect(none.uncoveredPods).toBeUndefined();
    const pods = [{ namespace: "a", name: "p", image: "i", reason: "ImagePullBackOff" }];
    const one = passStatus(resource, { ready, uncoveredPods: { count: 1, pods } }, T0);
    expect(one.uncoveredPods).toEqual({ count: 1, pods });
    // Unknown (the watch has not listed yet): as it was.
    const unknown = passStatus({ ...resource, status: one }, { ready }, T1);
    expect(unknown.uncoveredPods).toEqual({ count: 1, pods });
    // Back to none: said so, without an empty list.
    const fixed = passStatus(
      { ...resource, status: one },
      { ready, uncoveredPods: { count: 0, pods: [] } },
      T1,
    );
    expect(fixed.uncoveredPods).toEqual({ count: 0 });
  });

  it("compares as JSON regardless of key order and undefined fields", () => {
    const s = buildStatus(
      undefined,
      { generation: 1, conditions: [], registries: [], desired: 0, synced: 0, failures: [] },
      T0,
    );
    const reordered = JSON.parse(
      JSON.stringify({ namespaces: s.namespaces, ...s, extra: undefined }),
    );
    expect(statusEqual(s, reordered)).toBe(true);
    expect(statusEqual(s, { ...s, observedGeneration: 2 })).toBe(false);
    expect(statusEqual(undefined, s)).toBe(false);
  });
});

describe("a refreshBefore the tokens cannot honour", () => {
  const state = (lifetimeMs: number): TokenState => ({
    key: "k",
    token: {
      username: "AWS",
      password: "pw",
      fetchedAt: new Date(0),
      expiresAt: new Date(lifetimeMs),
    },
    expiredOnArrival: false,
  });

  it("says what was capped, to what, and what to set; nothing when it fits or is unset", () => {
    expect(refreshBeforeCapped("1h", [state(15 * 60_000)])).toBe(
      "spec.refreshBefore 1h is not shorter than the token's lifetime of 15m: refreshing 7m30s before expiry (half the lifetime) instead; set spec.refreshBefore below 15m or remove it",
    );
    // The shortest-lived token that caps it is named.
    expect(refreshBeforeCapped("4h", [state(12 * 3_600_000), state(3_600_000)])).toContain(
      "lifetime of 1h: refreshing 30m before expiry",
    );
    expect(refreshBeforeCapped("4h", [state(12 * 3_600_000)])).toBeUndefined();
    expect(refreshBeforeCapped(undefined, [state(60_000)])).toBeUndefined();
  });

  it("prints durations as Go does, in whole seconds", () => {
    expect([0, 999, 20_000, 450_000, 3_600_000, 5_430_000].map(shortDuration)).toEqual([
      "0s",
      "1s",
      "20s",
      "7m30s",
      "1h",
      "1h30m30s",
    ]);
  });
});
