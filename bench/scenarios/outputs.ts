// Scenario `--only outputs`, and the last phase of `all`: one resource with
// every output (config.json Secret, Argo CD Secrets of both types,
// ServiceAccount secrets, both host spellings, a secretTemplate) over up to
// 100 namespaces, under credentials of its own: its token source is its
// alone, so the AWS double's calls by that principal are its calls. One AWS
// call per refresh, whatever the formats.
import type { ECRPullSecret } from "../../src/api/index.js";
import { applyResource, deleteResource, readyCondition } from "../../test/harness/kube.js";
import {
  ACCOUNT,
  type BenchContext,
  NAMESPACES,
  OPS,
  progress,
  SECRET_KEY,
  SECRETS,
} from "../context.js";
import { type Figures, figures, fmt } from "../report.js";

const NAME = "bench-outputs";
/** Long enough for a pass over every format of every namespace to end well before the next refresh comes due (at half the lifetime). */
const LIFETIME_MS = 60_000;
const REFRESHES = 2;

/** AWS calls for the first pass and per refresh over two refreshes (1 each wanted); the resource is deleted after. */
export async function run(ctx: BenchContext, namespaces: string[]): Promise<Figures> {
  const { aws } = ctx;
  const arn = `arn:aws:iam::${ACCOUNT}:user/bench-outputs`;
  await addCredentials(ctx, arn);
  const calls = () =>
    aws.calls(
      (c) => c.service === "ecr" && c.action === "GetAuthorizationToken" && c.principalArn === arn,
    ).length;
  const before = aws.tokenLifetimeMs;
  aws.tokenLifetimeMs = LIFETIME_MS;
  progress(
    `every output: ${NAME} over ${namespaces.length} namespaces, ${LIFETIME_MS / 1000}s tokens`,
  );
  await applyResource(ctx.k, NAME, {
    secretName: "ecr-pull-outputs",
    namespaces,
    credentials: { secretRef: { name: "aws-creds-outputs", namespace: OPS } },
    registries: [{ accountId: ACCOUNT }, { accountId: "444455556666" }],
    hostVariants: ["Standard", "DualStack"],
    serviceAccountFields: ["imagePullSecrets", "secrets"],
    dockerConfigSecret: { name: "ecr-docker-config" },
    argoCD: { repositoryTypes: ["helm", "oci"] },
    secretTemplate: { labels: { "bench/outputs": "true" } },
  });
  const want = namespaces.length;
  const synced = (r: ECRPullSecret) =>
    readyCondition(r)?.status === "True" && r.status?.namespaces?.synced === want;
  let r = await ctx.waitStatus(`${NAME} Ready`, NAME, synced, 300_000);
  const atReady = calls();
  for (let i = 0; i < REFRESHES; i++) {
    const previous = r.status?.tokenExpiresAt;
    r = await ctx.waitStatus(
      `${NAME} refresh ${i + 1}`,
      NAME,
      (x) => synced(x) && x.status?.tokenExpiresAt !== previous,
      LIFETIME_MS + 120_000,
    );
  }
  const perRefresh = (calls() - atReady) / REFRESHES;
  aws.tokenLifetimeMs = before;
  await deleteResource(ctx.k, NAME);
  const out = figures({
    aws_calls_per_refresh_every_output: perRefresh,
    aws_calls_every_output_first_pass: atReady,
  });
  out.rows.push(
    {
      what: `aws_calls_per_refresh_every_output (${want} ns, ${REFRESHES} refreshes)`,
      value: fmt(perRefresh),
      target: "= 1",
      met: perRefresh === 1,
    },
    {
      what: "  AWS calls for its first pass",
      value: String(atReady),
      target: "= 1",
      met: atReady === 1,
    },
  );
  return out;
}

/** The resource's own identity in the AWS double, its credentials Secret, and Argo CD's namespace. */
async function addCredentials(ctx: BenchContext, arn: string): Promise<void> {
  const keys = { accessKeyId: "AKIABENCHOUTPUTS0001", secretAccessKey: `${SECRET_KEY}-outputs` };
  ctx.aws.addIdentity({ ...keys, accountId: ACCOUNT, arn });
  await ctx.admin.create(SECRETS, {
    metadata: { name: "aws-creds-outputs", namespace: OPS },
    stringData: {
      AWS_ACCESS_KEY_ID: keys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
    },
  });
  await ctx.admin.create(NAMESPACES, { metadata: { name: "argocd" } }).catch(() => undefined);
}
