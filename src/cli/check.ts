// `check`: resolve the credentials exactly as the operator would, fetch a
// token, print the registries, the identity and the expiry. Writes nothing.
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { ECR_PULL_SECRETS, type ECRPullSecret } from "../api/index.js";
import { describeCredentials } from "../aws/credentials.js";
import { fetchSourceToken } from "../aws/fetch.js";
import {
  hostOfProxyEndpoint,
  operatorDefaults,
  resolveRegistries,
  tokenSources,
} from "../aws/registries.js";
import { awsClientConfig, type RegistryToken } from "../aws/token.js";
import { tokenSourceKey } from "../aws/token-cache.js";
import { audienceList } from "../controller/from-settings.js";
import { isOperatorError, operatorError } from "../errors.js";
import { isNotFound, KubeClient, loadKubeConfig, SECRETS } from "../kube/client.js";
import { ServiceAccountTokens } from "../kube/service-account-token.js";
import type { Secret } from "../kube/types.js";
import type { OperatorConfig } from "./config.js";

export async function runCheck(
  config: OperatorConfig,
  resourceName: string | undefined,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  let kube: KubeClient | undefined;
  const kubeClient = (): KubeClient => {
    kube ??= new KubeClient(loadKubeConfig(config.kubeconfig, config.context), {
      qps: 0,
      burst: 0,
    });
    return kube;
  };
  const readSecret = async (ref: { namespace: string; name: string }) => {
    try {
      const s = await kubeClient().get<Secret>(SECRETS, ref);
      return s.data ?? {};
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  };
  try {
    let spec: ECRPullSecret["spec"] = { secretName: "check" };
    if (resourceName) {
      const k = kubeClient();
      const res = await k.get<ECRPullSecret>(ECR_PULL_SECRETS, { name: resourceName });
      spec = res.spec;
    }
    const targets = resolveRegistries(spec, operatorDefaults(config));
    const tokens = new Map<string, RegistryToken>();
    const identities = new Map<string, string>();
    for (const [key, source] of tokenSources(targets)) {
      const what = describeCredentials(source.credentials);
      const { token, steps } = await fetchSourceToken(source, {
        timeoutMs: config.awsTimeoutMs,
        readSecret,
        requestServiceAccountToken: (sa, audience) =>
          new ServiceAccountTokens(kubeClient(), {
            allowedAudiences: audienceList(config.allowedTokenAudiences),
          }).request(sa, audience),
      });
      if (!(token.expiresAt.getTime() > Date.now())) {
        // The operator would not spin on such a token, but it is of no use
        // to a registry either: say so rather than report success.
        throw operatorError("TokenExpiredOnArrival", "expired", {
          service: source.service,
          region: source.region,
          source: what,
          expiresAt: token.expiresAt.toISOString(),
          next: "nothing was written",
        });
      }
      tokens.set(key, token);
      // The identity after each link of the chain, as STS reports it: which
      // principal, role and session the token came from. No secrets.
      const chain: string[] = [];
      let identity = "unknown";
      for (const [i, step] of steps.entries()) {
        identity = await callerIdentity(source.region, step.provider, config.awsTimeoutMs);
        chain.push(`  ${i + 1}. ${step.description}\n     -> ${describePrincipal(identity)}\n`);
      }
      identities.set(key, identity);
      out.write(
        `source:   ${what}\nchain:\n${chain.join("")}identity: ${identity}\nservice:  ${source.service} in ${source.region}\nexpires:  ${token.expiresAt.toISOString()}\n\n`,
      );
    }
    out.write("registries:\n");
    for (const t of targets) {
      const token = tokens.get(tokenSourceKey(t.source));
      const host = t.host ?? hostOfProxyEndpoint(token?.proxyEndpoint) ?? "(unknown)";
      const identity = identities.get(tokenSourceKey(t.source)) ?? "unknown";
      out.write(
        `  ${host}  (token expires ${token?.expiresAt.toISOString()}, identity ${identity})\n`,
      );
    }
    out.write("ok: the credentials work; nothing was written to the cluster\n");
    return 0;
  } catch (e) {
    const message = isOperatorError(e)
      ? e.code === "InvalidSpec"
        ? e.message
        : `${e.code}: ${e.message}`
      : isNotFound(e) && resourceName
        ? `ECRPullSecret ${resourceName} not found`
        : e instanceof Error
          ? e.message
          : String(e);
    err.write(`check failed: ${message}\n`);
    return 1;
  }
}

/** The ARN STS says the credentials belong to; informative only, so never an error. */
async function callerIdentity(
  region: string,
  credentials: AwsCredentialIdentityProvider,
  timeoutMs: number,
): Promise<string> {
  const sts = new STSClient({ region, credentials, ...awsClientConfig(timeoutMs) });
  try {
    const who = await sts.send(new GetCallerIdentityCommand({}));
    return who.Arn ?? "unknown";
  } catch {
    // The identity is informative only; the token is what matters.
    return "unknown";
  } finally {
    sts.destroy();
  }
}

/** An ARN with its role and session spelt out when it is an assumed role. */
export function describePrincipal(arn: string): string {
  const m = /^arn:[^:]+:sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/.exec(arn);
  return m ? `${arn} (account ${m[1]}, role ${m[2]}, session ${m[3]})` : arn;
}
