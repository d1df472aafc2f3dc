// Settings that guard the client: a burst below 1 is refused (a bucket that
// never holds a whole token lets nothing through), --context picks a
// kubeconfig context, and the Lease namespace has no fixed default.
import { describe, expect, it } from "vitest";
import { ConfigError, parseCommandLine } from "./config.js";

describe("client settings", () => {
  it("refuses --kube-api-burst below 1, from the flag and from the environment", () => {
    expect(() => parseCommandLine(["run", "--kube-api-burst=0.5"], {})).toThrow(ConfigError);
    expect(() => parseCommandLine(["run", "--kube-api-burst=0.5"], {})).toThrow(
      "failed to read --kube-api-burst: 0.5 is below 1",
    );
    expect(() => parseCommandLine(["run"], { KUBE_API_BURST: "0.1" })).toThrow(
      "failed to read --kube-api-burst: 0.1 is below 1",
    );
    expect(parseCommandLine(["run", "--kube-api-burst=1"], {}).config.burst).toBe(1);
  });

  it("reads --context, and leaves the Lease namespace to the kubeconfig unless one is given", () => {
    const { config } = parseCommandLine(["run", "--context=staging"], {});
    expect(config.context).toBe("staging");
    expect(config.leaderElectionNamespace).toBeUndefined();
    expect(parseCommandLine(["run"], { KUBE_CONTEXT: "prod" }).config.context).toBe("prod");
    expect(parseCommandLine(["run"], { POD_NAMESPACE: "ops" }).config.leaderElectionNamespace).toBe(
      "ops",
    );
  });
});
