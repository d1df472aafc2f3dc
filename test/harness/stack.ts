// The usual world of an integration test file: the AWS double with one
// identity, a credentials Secret holding its keys, and the operator running
// in this process as its own ServiceAccount (bound to cluster-admin), so the
// audit log tells its writes from the test's.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OperatorConfig } from "../../src/cli/config.js";
import { AwsDouble } from "../aws-double/index.js";
import {
  bindClusterAdmin,
  createNamespace,
  kubeconfigForServiceAccount,
  putSecret,
  type TestKube,
  testKube,
} from "./kube.js";
import { type InProcessOperator, startOperator, testConfig } from "./operator.js";

export interface StackOptions {
  kubeconfigPath: string;
  /** Namespace for the credentials Secret and the operator's ServiceAccount. */
  ops: string;
  accountId: string;
  accessKeyId: string;
  secretAccessKey: string;
  tokenLifetimeMs: number;
  config?: Partial<OperatorConfig>;
}

export interface OperatorStack {
  k: TestKube;
  aws: AwsDouble;
  op: InProcessOperator;
  /** A kubeconfig of the operator's ServiceAccount. */
  kubeconfig: string;
  /** The operator's user name in the audit log. */
  operatorUser: string;
  stop(): Promise<void>;
}

export async function startOperatorStack(o: StackOptions): Promise<OperatorStack> {
  const k = testKube(o.kubeconfigPath);
  const aws = new AwsDouble({ tokenLifetimeMs: o.tokenLifetimeMs });
  await aws.start();
  aws.addIdentity({
    accessKeyId: o.accessKeyId,
    secretAccessKey: o.secretAccessKey,
    accountId: o.accountId,
    arn: `arn:aws:iam::${o.accountId}:user/${o.ops}`,
  });
  // The operator reaches AWS only through the SDK's standard endpoint setting.
  process.env.AWS_ENDPOINT_URL = aws.url;
  await createNamespace(k, o.ops);
  await putSecret(k, o.ops, "aws-creds", {
    AWS_ACCESS_KEY_ID: o.accessKeyId,
    AWS_SECRET_ACCESS_KEY: o.secretAccessKey,
  });
  const dir = await mkdtemp(join(tmpdir(), `${o.ops}-`));
  const kubeconfig = await kubeconfigForServiceAccount(k, o.ops, "operator", dir);
  const binding = `${o.ops}-operator`;
  await bindClusterAdmin(k, binding, o.ops, ["operator"]);
  const op = await startOperator(
    testConfig(kubeconfig, {
      region: "us-east-1",
      credentialsSecretName: "aws-creds",
      credentialsSecretNamespace: o.ops,
      ...o.config,
    }),
  );
  const stack: OperatorStack = {
    k,
    aws,
    op,
    kubeconfig,
    operatorUser: `system:serviceaccount:${o.ops}:operator`,
    async stop() {
      await stack.op.stop();
      await k.rbac.deleteClusterRoleBinding({ name: binding }).catch(() => undefined);
      await aws.close();
    },
  };
  return stack;
}
