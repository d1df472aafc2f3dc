// The controller and its clients, assembled from the operator's settings:
// what `run` and `once` start, and what the integration tests start in their
// own process.
import { FIELD_MANAGER } from "../api/metadata.js";
import { operatorDefaults } from "../aws/registries.js";
import { verifyRegistry } from "../aws/verify.js";
import {
  KubeClient,
  type KubeClientOptions,
  loadKubeConfig,
  type WriteFence,
} from "../kube/client.js";
import type { Connection } from "../kube/kubeconfig.js";
import { EventRecorder } from "../observability/events.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { Controller } from "./controller.js";

/** The settings the controller needs (the CLI's OperatorConfig has them all). */
export interface ControllerSettings {
  kubeconfig?: string;
  /** The kubeconfig context (default: its current-context). */
  context?: string;
  region?: string;
  registry?: string;
  credentialsSecretName?: string;
  credentialsSecretNamespace?: string;
  qps: number;
  burst: number;
  concurrency: number;
  writeConcurrency: number;
  verify: boolean;
  podWatch?: boolean;
  awsTimeoutMs: number;
  minRefreshIntervalMs: number;
  awsBackoffBaseMs: number;
  awsBackoffMaxMs: number;
  /** Namespaces this install may serve (namespaced RBAC); absent: every namespace. */
  watchNamespaces?: readonly string[];
  /** Comma-separated TokenRequest audiences allowed beside sts.amazonaws.com. */
  allowedTokenAudiences?: string;
  /** The operator's own namespace (its Lease and token records); default: the kubeconfig's, else `default`. */
  leaderElectionNamespace?: string;
  /** GetAuthorizationToken calls a second per (account, region); 0: no limit. Default 10. */
  awsTokenQps?: number;
  /** Default 50. */
  awsTokenBurst?: number;
}

export function kubeConnection(
  settings: Pick<ControllerSettings, "kubeconfig" | "context">,
): Connection {
  return loadKubeConfig(settings.kubeconfig, settings.context);
}

/**
 * A client of the API server. With a `fence` (leader election), every write
 * asks it first and every request in flight is cancelled when it aborts.
 * Clients sharing a `connection` share its credentials: one exec-plugin run
 * serves them all.
 */
export function makeKubeClient(
  settings: Pick<ControllerSettings, "kubeconfig" | "context" | "qps" | "burst">,
  metrics?: Metrics,
  opts: {
    connection?: Connection;
    fence?: WriteFence;
    onRetry?: KubeClientOptions["onRetry"];
    maxRetryAfterMs?: number;
  } = {},
): KubeClient {
  return new KubeClient(opts.connection ?? kubeConnection(settings), {
    qps: settings.qps,
    burst: settings.burst,
    fieldManager: FIELD_MANAGER,
    fence: opts.fence,
    onRetry: opts.onRetry,
    ...(opts.maxRetryAfterMs !== undefined ? { maxRetryAfterMs: opts.maxRetryAfterMs } : {}),
    onRequest: (verb, resource, code) =>
      metrics?.kubeRequests.inc({ verb, resource, code: String(code) }),
  });
}

/** `a,b` → ["a", "b"]. */
export function audienceList(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((a) => a.trim())
    .filter(Boolean);
}

/** The operator's own namespace for its records: named by the administrator, or the Pod's own. */
function stateNamespace(
  settings: Pick<ControllerSettings, "leaderElectionNamespace">,
  kube: KubeClient,
): string | undefined {
  if (settings.leaderElectionNamespace) return settings.leaderElectionNamespace;
  return kube.connection.source === "in-cluster" ? kube.connection.namespace : undefined;
}

export function makeController(
  settings: ControllerSettings,
  log: Logger,
  metrics: Metrics,
  kube: KubeClient = makeKubeClient(settings, metrics),
): Controller {
  const events = new EventRecorder(kube, log);
  return new Controller(kube, log, metrics, events, {
    defaults: operatorDefaults(settings),
    concurrency: settings.concurrency,
    writeConcurrency: settings.writeConcurrency,
    awsTimeoutMs: settings.awsTimeoutMs,
    minRefreshIntervalMs: settings.minRefreshIntervalMs,
    awsBackoffBaseMs: settings.awsBackoffBaseMs,
    awsBackoffMaxMs: settings.awsBackoffMaxMs,
    watchNamespaces: settings.watchNamespaces,
    allowedTokenAudiences: audienceList(settings.allowedTokenAudiences),
    // Where its token records may live: only a namespace the administrator
    // chose (the flag, POD_NAMESPACE) or the Pod's own, never a kubeconfig
    // context's, which may well be a tenant's. None: no records.
    ...(stateNamespace(settings, kube) ? { stateNamespace: stateNamespace(settings, kube) } : {}),
    podWatch: settings.podWatch !== false,
    awsTokenQps: settings.awsTokenQps ?? 10,
    awsTokenBurst: settings.awsTokenBurst ?? 50,
    verify: settings.verify
      ? (_resource, url, username, password) =>
          verifyRegistry(url, username, password, { timeoutMs: settings.awsTimeoutMs })
      : undefined,
  });
}
