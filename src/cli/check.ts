// `check`: resolve the credentials exactly as the operator would, fetch a
// token, print the registries, the identity and the expiry. Writes nothing.
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { Reason } from "../api/conditions.js";
import type { ECRPullSecret } from "../api/index.js";
import { credentialsProvider, describeCredentials } from "../aws/credentials.js";
import { AwsSourceError, classifyAwsError } from "../aws/errors.js";
import {
  hostOfProxyEndpoint,
  RegistrySpecError,
  resolveRegistries,
  tokenSources,
} from "../aws/registries.js";
import { fetchToken } from "../aws/token.js";
import { tokenSourceKey } from "../aws/token-cache.js";
import {
  ECR_PULL_SECRETS,
  isNotFound,
  KubeClient,
  loadKubeConfig,
  SECRETS,
} from "../kube/client.js";
import type { Secret } from "../kube/types.js";
import type { OperatorConfig } from "./config.js";
import { operatorDefaults } from "./main.js";

export async function runCheck(
  config: OperatorConfig,
  resourceName: string | undefined,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const defaults = operatorDefaults(config);
  let kube: KubeClient | undefined;
  const kubeClient = (): KubeClient => {
    kube ??= new KubeClient(loadKubeConfig(config.kubeconfig, config.context), {
      qps: 0,
      burst: 0,
    });
    return kube;
  };
  try {
    let spec: ECRPullSecret["spec"] = { secretName: "check" };
    if (resourceName) {
      const k = kubeClient();
      const res = await k.get<ECRPullSecret>(ECR_PULL_SECRETS, { name: resourceName });
      spec = res.spec;
    }
    const targets = resolveRegistries(spec, defaults);
    const sources = tokenSources(targets);
    const tokens = new Map<string, Awaited<ReturnType<typeof fetchToken>>>();
    for (const [key, source] of sources) {
      const what = describeCredentials(source.credentials);
      try {
        const provider = await credentialsProvider(source.credentials, {
          region: source.region,
          timeoutMs: config.awsTimeoutMs,
          readSecret: async (ref) => {
            try {
              const s = await kubeClient().get<Secret>(SECRETS, ref);
              return s.data ?? {};
            } catch (e) {
              if (isNotFound(e)) return null;
              throw e;
            }
          },
        });
        const token = await fetchToken(source.service, source.region, provider, {
          timeoutMs: config.awsTimeoutMs,
        });
        if (!(token.expiresAt.getTime() > Date.now())) {
          // The operator would not spin on such a token, but it is of no use
          // to a registry either: say so rather than report success.
          throw new AwsSourceError(
            Reason.TokenExpiredOnArrival,
            `failed to get a usable ${source.service} token in ${source.region} with ${what}: AWS returned one that expired at ${token.expiresAt.toISOString()}; check this host's clock and the AWS endpoint`,
          );
        }
        tokens.set(key, token);
        let identity = "unknown";
        const sts = new STSClient({
          region: source.region,
          credentials: provider,
          maxAttempts: 1,
          requestHandler: {
            requestTimeout: config.awsTimeoutMs,
            connectionTimeout: config.awsTimeoutMs,
            throwOnRequestTimeout: true,
          },
        });
        try {
          const who = await sts.send(new GetCallerIdentityCommand({}));
          identity = who.Arn ?? identity;
        } catch {
          // The identity is informative only; the token is what matters.
        } finally {
          sts.destroy();
        }
        out.write(
          `source:   ${what}\nidentity: ${identity}\nservice:  ${source.service} in ${source.region}\nexpires:  ${token.expiresAt.toISOString()}\n\n`,
        );
      } catch (e) {
        throw classifyAwsError(e, what, `get an ${source.service} token in ${source.region}`);
      }
    }
    out.write("registries:\n");
    for (const t of targets) {
      const token = tokens.get(tokenSourceKey(t.source));
      const host = t.host ?? hostOfProxyEndpoint(token?.proxyEndpoint) ?? "(unknown)";
      out.write(`  ${host}  (token expires ${token?.expiresAt.toISOString()})\n`);
    }
    out.write("ok: the credentials work; nothing was written to the cluster\n");
    return 0;
  } catch (e) {
    const message =
      e instanceof AwsSourceError
        ? `${e.reason}: ${e.message}`
        : e instanceof RegistrySpecError
          ? e.message
          : isNotFound(e) && resourceName
            ? `ECRPullSecret ${resourceName} not found`
            : e instanceof Error
              ? e.message
              : String(e);
    err.write(`check failed: ${message}\n`);
    return 1;
  }
}
