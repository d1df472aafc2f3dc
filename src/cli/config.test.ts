// The settings table: flags over environment over defaults, the seed's
// variable names, conversions, and errors that name the flag or variable.
import { describe, expect, it } from "vitest";
import { ConfigError, helpText, parseCommandLine, settings } from "./config.js";

describe("parseCommandLine", () => {
  it("fills every setting from its default when nothing is given", () => {
    const { command, config } = parseCommandLine([], {});
    expect(command).toBe("run");
    expect(config).toMatchObject({
      metricsAddress: ":8080",
      healthAddress: ":8081",
      leaderElect: false,
      leaderElectionId: "ecr-creds-refresher",
      qps: 100,
      burst: 200,
      concurrency: 4,
      writeConcurrency: 32,
      logLevel: "info",
      logFormat: "json",
      verify: true,
      awsTimeoutMs: 15_000,
      minRefreshIntervalMs: 10_000,
      awsBackoffBaseMs: 2_000,
      awsBackoffMaxMs: 300_000,
      awsTokenQps: 10,
      awsTokenBurst: 50,
    });
    expect(config.region).toBeUndefined();
    expect(config.kubeconfig).toBeUndefined();
  });

  it("reads the seed operator's variables, a flag winning over its variable", () => {
    const env = {
      AWS_REGION: "eu-west-1",
      REGISTRY: "111111111111.dkr.ecr.eu-west-1.amazonaws.com",
      AWS_CREDENTIALS_SECRET_NAME: "aws",
      AWS_CREDENTIALS_SECRET_NAMESPACE: "ops",
    };
    const { config } = parseCommandLine(["once", "--region=us-east-2"], env);
    expect(config.region).toBe("us-east-2");
    expect(config.registry).toBe(env.REGISTRY);
    expect(config.credentialsSecretName).toBe("aws");
    expect(config.credentialsSecretNamespace).toBe("ops");
  });

  it("takes the first set variable of a setting's list, skipping empty ones", () => {
    const { config } = parseCommandLine([], { ECR_REGION: "", AWS_REGION: "ap-south-1" });
    expect(config.region).toBe("ap-south-1");
  });

  it("converts durations, numbers and booleans, and a bare --leader-elect is true", () => {
    const { config } = parseCommandLine(
      ["run", "--leader-elect", "--aws-timeout=1m30s", "--kube-api-qps=5", "--verify=off"],
      {},
    );
    expect(config.leaderElect).toBe(true);
    expect(config.awsTimeoutMs).toBe(90_000);
    expect(config.qps).toBe(5);
    expect(config.verify).toBe(false);
  });

  it("takes 0 as no limit for the rates, and the AWS token rate from its flag or variable", () => {
    const { config } = parseCommandLine(["--kube-api-qps=0", "--aws-token-burst=20"], {
      AWS_TOKEN_QPS: "2.5",
    });
    expect(config.qps).toBe(0);
    expect(config.awsTokenQps).toBe(2.5);
    expect(config.awsTokenBurst).toBe(20);
  });

  it("reads --watch-namespaces as a sorted set of exact names; absent means every namespace", () => {
    expect(
      parseCommandLine([], { WATCH_NAMESPACES: "team-b, team-a,team-b" }).config,
    ).toMatchObject({ watchNamespaces: ["team-a", "team-b"] });
    expect(parseCommandLine([], {}).config.watchNamespaces).toBeUndefined();
  });

  it("returns command-specific flags and positionals apart from the settings", () => {
    const parsed = parseCommandLine(
      ["check", "--resource=team", "x"],
      {},
      {
        resource: { type: "string" },
      },
    );
    expect(parsed.command).toBe("check");
    expect(parsed.extra).toEqual({ resource: "team" });
    expect(parsed.positionals).toEqual(["x"]);
    expect(parseCommandLine(["--help"], {}).extra.help).toBe(true);
  });
});

describe("parseCommandLine refusals", () => {
  it.each([
    [["--kube-api-qps=-1"], {}, 'failed to read --kube-api-qps: "-1" is not a number ≥ 0'],
    [[], { AWS_TOKEN_QPS: "fast" }, 'failed to read AWS_TOKEN_QPS: "fast" is not a number ≥ 0'],
    [["--aws-token-burst=0"], {}, 'failed to read --aws-token-burst: "0" is not a positive number'],
    [[], { LEADER_ELECT: "maybe" }, 'failed to read LEADER_ELECT: "maybe" is not true or false'],
    [["--aws-timeout=soon"], {}, 'failed to read --aws-timeout: failed to parse duration "soon"'],
    [["--log-format=xml"], {}, 'failed to read --log-format: "xml" is not json or text'],
    [["--log-level=loud"], {}, 'failed to read --log-level: "loud" is not trace'],
    [
      [],
      { AWS_CREDENTIALS_SECRET_NAME: "aws" },
      "failed to read the default credentials Secret: set both",
    ],
    [["--no-such-flag"], {}, "see --help"],
    [
      ["--watch-namespaces=team-*"],
      {},
      'failed to read --watch-namespaces: "team-*" is not a namespace name; give exact names',
    ],
    [[], { WATCH_NAMESPACES: " , " }, 'failed to read WATCH_NAMESPACES: " , " is not a namespace'],
  ])("refuses %j %j with a ConfigError naming what to fix", (argv, env, message) => {
    let err: unknown;
    try {
      parseCommandLine(argv, env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(message);
  });
});

describe("helpText", () => {
  it("lists every flag once, with its default and its variables", () => {
    const help = helpText();
    for (const s of settings) {
      expect(help.split(`--${s.flag} `).length - 1, s.flag).toBe(1);
      if (s.default !== undefined) expect(help).toContain(`(default ${s.default})`);
      for (const e of s.env ?? []) expect(help).toContain(e);
    }
  });
});

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
