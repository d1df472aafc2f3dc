// The world of an integration test file, set up in one place: the cluster
// (the shared control plane unless given), the AWS double with its
// identities, a namespace for the operator's side with a credentials Secret,
// the file's namespaces, and the operator: in this process or as the built
// executable, as a ServiceAccount of its own (bound to cluster-admin) so the
// audit log tells its writes from the test's. stop() takes all of it down
// again, whatever the file started through it.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import type { OperatorConfig } from "../../src/cli/config.js";
import { AwsDouble, type IdentityInit, type QuotaInit } from "../aws-double/index.js";
import { RegistryDouble } from "../registry-double/index.js";
import {
  bindClusterAdmin,
  createNamespace,
  deleteNamespaces,
  deleteResourceWithoutOperator,
  kubeconfigForServiceAccount,
  putAwsKeys,
  type TestKube,
  testKube,
} from "./kube.js";
import {
  type InProcessOperator,
  type OperatorProcess,
  startOperator,
  startOperatorProcess,
  testConfig,
} from "./operator.js";

export interface AwsKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface StackOptions {
  /** The cluster's kubeconfig; default: the control plane the run shares. */
  kubeconfigPath?: string;
  /** Namespace of the credentials Secret and of the operator's ServiceAccounts. */
  ops: string;
  /** Namespaces to create now (with `ops`); stop() deletes them. */
  namespaces?: readonly string[];
  /** Lifetime of the double's ECR tokens; default 10 minutes. */
  tokenLifetimeMs?: number;
  /** A GetAuthorizationToken quota the double enforces; default none. */
  quota?: QuotaInit;
  /** How far a request's signing time may be from the double's clock; default 15 minutes. */
  maxClockSkewMs?: number;
  /** Serve the double over HTTPS with this certificate; default plain HTTP. */
  awsTls?: { certPem: string; keyPem: string };
  /** Identities the AWS double knows. */
  identities?: readonly IdentityInit[];
  /**
   * Keys put into the Secret `<ops>/aws-creds`, the operator's default
   * credentials; default: the first identity's; false: no Secret.
   */
  credentials?: AwsKeys | false;
  /**
   * Points the SDK in this process at the double (AWS_ENDPOINT_URL); default
   * true. False for a file that brings its own endpoint (moto).
   */
  awsEndpoint?: boolean;
}

export interface OperatorOptions {
  /**
   * The ServiceAccount in `ops` the operator runs as (bound to cluster-admin);
   * false: the cluster's admin kubeconfig. Default "operator".
   */
  as?: string | false;
  /** Over the test defaults (testConfig) and the stack's credentials Secret. */
  config?: Partial<OperatorConfig>;
}

export interface Stack {
  k: TestKube;
  aws: AwsDouble;
  ops: string;
  /** The cluster's admin kubeconfig. */
  kubeconfigPath: string;
  /** A temporary folder of this file's, removed by stop(). */
  dir: string;
  /** Creates a namespace that stop() deletes. */
  namespace(name: string, labels?: Record<string, string>): Promise<void>;
  /** ECRPullSecrets that stop() deletes. */
  resources: string[];
  /** Writes AWS keys into a Secret in `ops`. */
  putKeys(name: string, keys: AwsKeys): Promise<void>;
  /**
   * A kubeconfig of ServiceAccount `name` in `ops`, bound to cluster-admin
   * (the binding goes at stop()).
   */
  serviceAccountKubeconfig(name: string): Promise<string>;
  /** Audit-log user name of a ServiceAccount in `ops`. */
  userOf(serviceAccount: string): string;
  /** The operator in this process, stopped by stop() (stopping twice is harmless). */
  startOperator(o?: OperatorOptions): Promise<InProcessOperator>;
  /** The built executable with these arguments; stop() ends it if it still runs. */
  startProcess(
    args: string[],
    env?: Record<string, string>,
    nodeArgs?: readonly string[],
  ): OperatorProcess;
  /** The processes startProcess started that have not exited, oldest first. */
  running(): OperatorProcess[];
  /**
   * Arguments of a `run` process like testConfig's: the stack's credentials
   * Secret, no probes, verify off, and these flags on top.
   */
  processArgs(kubeconfig: string, extra?: string[]): string[];
  /**
   * Environment of a process whose AWS credentials must come from exactly
   * what is given: never the developer's ~/.aws, instance metadata, or keys
   * inherited from this process; the SDK pointed at the double.
   */
  isolatedAwsEnv(extra?: Record<string, string>): Promise<Record<string, string>>;
  /** A registry double that takes exactly the passwords the AWS double issued and has not expired. */
  startRegistry(): Promise<RegistryDouble>;
  /** Runs at stop(), after the operators stopped, in reverse order of adding. */
  onStop(fn: () => Promise<void> | void): void;
  stop(): Promise<void>;
}

/**
 * An IAM user the AWS double can know, with keys made from `tag` and `n`
 * (unique within a file, which has a double of its own).
 */
export function iamUser(
  tag: string,
  n: number,
  accountId: string,
  user = `${tag}-${n}`,
): IdentityInit & { arn: string } {
  const nn = String(n).padStart(2, "0");
  const id = `AKIA${tag.toUpperCase().replace(/[^A-Z0-9]/g, "")}`.padEnd(18, "0").slice(0, 18);
  return {
    accessKeyId: `${id}${nn}`,
    secretAccessKey: `${tag}-secret-key-${user}-`.padEnd(38, "0") + nn,
    accountId,
    arn: `arn:aws:iam::${accountId}:user/${user}`,
  };
}

const DEFAULT_LIFETIME_MS = 10 * 60_000;

/** The stack's AWS double, started, knowing `o.identities`, and (unless told not) the SDK's endpoint. */
async function startAwsDouble(o: StackOptions): Promise<AwsDouble> {
  const aws = new AwsDouble({
    tokenLifetimeMs: o.tokenLifetimeMs ?? DEFAULT_LIFETIME_MS,
    quota: o.quota,
    maxClockSkewMs: o.maxClockSkewMs,
  });
  await aws.start(o.awsTls ? { tls: o.awsTls } : {});
  for (const id of o.identities ?? []) aws.addIdentity(id);
  // The operator reaches AWS only through the SDK's standard endpoint setting.
  if (o.awsEndpoint !== false) process.env.AWS_ENDPOINT_URL = aws.url;
  return aws;
}

/** The in-process operator's settings: testConfig, the stack's region, namespace and credentials, then `config`. */
function operatorConfig(
  o: StackOptions,
  kubeconfig: string,
  config: Partial<OperatorConfig> = {},
): OperatorConfig {
  return testConfig(kubeconfig, {
    region: "us-east-1",
    // The operator's own namespace: its token records are kept there.
    leaderElectionNamespace: o.ops,
    ...(o.credentials !== false
      ? { credentialsSecretName: "aws-creds", credentialsSecretNamespace: o.ops }
      : {}),
    ...config,
  });
}

/** Arguments of a `run` process of the stack (see {@link Stack.processArgs}). */
function runArgs(o: StackOptions, kubeconfig: string, extra: string[]): string[] {
  return [
    "run",
    `--kubeconfig=${kubeconfig}`,
    "--metrics-bind-address=0",
    "--health-probe-bind-address=0",
    "--region=us-east-1",
    `--leader-election-namespace=${o.ops}`,
    ...(o.credentials !== false
      ? [`--credentials-secret-namespace=${o.ops}`, "--credentials-secret-name=aws-creds"]
      : []),
    "--verify=false",
    ...extra,
  ];
}

/**
 * Environment of a process whose AWS credentials come from nothing but
 * `extra` (see {@link Stack.isolatedAwsEnv}); writes an empty AWS file in `dir`.
 */
async function isolatedAwsEnv(
  aws: AwsDouble,
  dir: string,
  extra: Record<string, string>,
): Promise<Record<string, string>> {
  const empty = join(dir, "empty-aws-file");
  await writeFile(empty, "");
  return {
    AWS_ENDPOINT_URL: aws.url,
    AWS_SHARED_CREDENTIALS_FILE: empty,
    AWS_CONFIG_FILE: empty,
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_PROFILE: "",
    AWS_ACCESS_KEY_ID: "",
    AWS_SECRET_ACCESS_KEY: "",
    AWS_SESSION_TOKEN: "",
    AWS_ROLE_ARN: "",
    AWS_WEB_IDENTITY_TOKEN_FILE: "",
    AWS_CONTAINER_CREDENTIALS_FULL_URI: "",
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "",
    AWS_CONTAINER_AUTHORIZATION_TOKEN: "",
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "",
    AWS_CREDENTIALS_SECRET_NAME: "",
    AWS_CREDENTIALS_SECRET_NAMESPACE: "",
    ...extra,
  };
}

/** `step(fn)` runs fn and keeps what it throws in `errors`, so that the next step runs too. */
function stepRunner(): {
  step(fn: () => Promise<unknown> | unknown): Promise<void>;
  errors: unknown[];
} {
  const errors: unknown[] = [];
  return {
    errors,
    async step(fn) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    },
  };
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const kubeconfigPath = o.kubeconfigPath ?? inject("controlPlane").kubeconfigPath;
  const k = testKube(kubeconfigPath);
  const aws = await startAwsDouble(o);
  const dir = await mkdtemp(join(tmpdir(), `${o.ops}-`));
  const namespaces: string[] = [];
  const bindings: string[] = [];
  const kubeconfigs = new Map<string, Promise<string>>();
  const stoppers: Array<() => Promise<unknown>> = [];
  const processes: OperatorProcess[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];

  const stack: Stack = {
    k,
    aws,
    ops: o.ops,
    kubeconfigPath,
    dir,
    resources: [],
    async namespace(name, labels) {
      namespaces.push(name);
      await createNamespace(k, name, labels);
    },
    async putKeys(name, keys) {
      await putAwsKeys(k, o.ops, name, keys);
    },
    serviceAccountKubeconfig(name) {
      let path = kubeconfigs.get(name);
      if (!path) {
        path = (async () => {
          const file = await kubeconfigForServiceAccount(k, o.ops, name, dir);
          const binding = `${o.ops}-${name}`;
          bindings.push(binding);
          await bindClusterAdmin(k, binding, o.ops, [name]);
          return file;
        })();
        kubeconfigs.set(name, path);
      }
      return path;
    },
    userOf: (serviceAccount) => `system:serviceaccount:${o.ops}:${serviceAccount}`,
    async startOperator(opts = {}) {
      const as = opts.as ?? "operator";
      const kubeconfig = as === false ? kubeconfigPath : await stack.serviceAccountKubeconfig(as);
      const op = await startOperator(operatorConfig(o, kubeconfig, opts.config));
      let stopped: Promise<void> | undefined;
      const stop = () => {
        stopped ??= op.stop();
        return stopped;
      };
      stoppers.push(stop);
      return { ...op, stop };
    },
    startProcess(args, env = {}, nodeArgs = []) {
      const p = startOperatorProcess(args, env, nodeArgs);
      stoppers.push(() => p.stop("SIGKILL"));
      processes.push(p);
      return p;
    },
    running: () => processes.filter((p) => p.proc.exitCode === null && p.proc.signalCode === null),
    processArgs: (kubeconfig, extra = []) => runArgs(o, kubeconfig, extra),
    isolatedAwsEnv: (extra = {}) => isolatedAwsEnv(aws, dir, extra),
    async startRegistry() {
      const registry = new RegistryDouble({
        validatePassword: (password, at) => aws.isValidPassword(password, at),
      });
      await registry.start();
      cleanups.push(() => registry.close());
      return registry;
    },
    onStop(fn) {
      cleanups.push(fn);
    },
    async stop() {
      // Every step runs even when one fails (an API server that is down):
      // the double and the operators must not outlive the file.
      const { step, errors } = stepRunner();
      for (const stop of stoppers.reverse()) await step(stop);
      for (const fn of cleanups.reverse()) await step(fn);
      // The operators are stopped: nothing would run their finalizers.
      for (const name of stack.resources) await step(() => deleteResourceWithoutOperator(k, name));
      await step(() => deleteNamespaces(k, namespaces));
      for (const name of bindings)
        await k.rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
      await step(() => aws.close());
      await step(() => rm(dir, { recursive: true, force: true }));
      if (errors.length > 0)
        throw new AggregateError(errors, `failed to stop the stack of ${o.ops}`);
    },
  };

  await stack.namespace(o.ops);
  await Promise.all(
    (o.namespaces ?? []).filter((ns) => ns !== o.ops).map((ns) => stack.namespace(ns)),
  );
  const keys = o.credentials ?? o.identities?.[0];
  if (o.credentials !== false && keys) await stack.putKeys("aws-creds", keys);
  return stack;
}
