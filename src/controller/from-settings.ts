// The operator's settings as one type, and what is assembled from them: the
// clients, the controller (`run`, `once`, and the integration tests in their
// own process) and the manager of `run`. Their defaults live in the settings
// table (src/cli/config.ts) alone; nothing here fills one in.
import { FIELD_MANAGER } from "../api/metadata.js";
import { type DefaultsSettings, operatorDefaults } from "../aws/registries.js";
import { verifyRegistry } from "../aws/verify.js";
import { KubeClient, type KubeClientOptions, loadKubeConfig } from "../kube/client.js";
import type { Connection } from "../kube/kubeconfig.js";
import { EventRecorder } from "../observability/events.js";
import type { LogFormat, Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { Controller } from "./controller.js";
import { Manager } from "./manager.js";

/**
 * The operator's settings, one field per row of the settings table
 * (src/cli/config.ts), which alone holds their flags, variables and
 * defaults: a field without a default there is optional here. Durations are
 * in ms.
 */
export interface OperatorConfig extends DefaultsSettings {
  kubeconfig?: string;
  /** The kubeconfig context to use instead of its current-context. */
  context?: string;
  /** host:port of /metrics ("0": none). */
  metricsAddress: string;
  /** host:port of /healthz and /readyz ("0": none). */
  healthAddress: string;
  leaderElect: boolean;
  /**
   * The operator's own namespace: its Lease and its token records. Unset: for
   * the Lease the kubeconfig context's namespace (in a cluster the Pod's own),
   * else `default`; for the records only the Pod's own.
   */
  leaderElectionNamespace?: string;
  leaderElectionId: string;
  /** Requests a second to the API server (0: no client limit), and the burst above it. */
  qps: number;
  burst: number;
  /** Resources reconciled at once, and namespace writes in flight per resource. */
  concurrency: number;
  writeConcurrency: number;
  logLevel: string;
  logFormat: LogFormat;
  verify: boolean;
  podWatch: boolean;
  awsTimeoutMs: number;
  minRefreshIntervalMs: number;
  awsBackoffBaseMs: number;
  awsBackoffMaxMs: number;
  /** Namespaces this install may serve (Roles there, no ClusterRole on Secrets); absent: all. */
  watchNamespaces?: string[];
  /** Comma-separated TokenRequest audiences allowed beside sts.amazonaws.com (issue 28). */
  allowedTokenAudiences?: string;
  /** GetAuthorizationToken calls a second per (account, region); 0: no limit. */
  awsTokenQps: number;
  awsTokenBurst: number;
}

/** The kubeconfig the settings name (none: in-cluster), at its chosen context. */
export function kubeConnection(
  settings: Pick<OperatorConfig, "kubeconfig" | "context">,
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
  settings: Pick<OperatorConfig, "kubeconfig" | "context" | "qps" | "burst">,
  metrics?: Metrics,
  opts: Pick<KubeClientOptions, "fence" | "onRetry" | "maxRetryAfterMs"> & {
    connection?: Connection;
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

/**
 * Where the token records may live: only a namespace the administrator chose
 * (the flag, POD_NAMESPACE) or the Pod's own, never a kubeconfig context's,
 * which may well be a tenant's. Undefined: no records.
 */
function stateNamespace(
  settings: Pick<OperatorConfig, "leaderElectionNamespace">,
  kube: KubeClient,
): string | undefined {
  if (settings.leaderElectionNamespace) return settings.leaderElectionNamespace;
  return kube.connection.source === "in-cluster" ? kube.connection.namespace : undefined;
}

/**
 * The controller of these settings, writing through `kube` (by default an
 * unfenced client of its own: `once` and the in-process test operator).
 */
export function makeController(
  settings: OperatorConfig,
  log: Logger,
  metrics: Metrics,
  kube: KubeClient = makeKubeClient(settings, metrics),
): Controller {
  const namespace = stateNamespace(settings, kube);
  return new Controller(kube, log, metrics, new EventRecorder(kube, log), {
    ...settings,
    defaults: operatorDefaults(settings),
    allowedTokenAudiences: audienceList(settings.allowedTokenAudiences),
    ...(namespace ? { stateNamespace: namespace } : {}),
    verify: settings.verify
      ? (_resource, url, username, password) =>
          verifyRegistry(url, username, password, { timeoutMs: settings.awsTimeoutMs })
      : undefined,
  });
}

/**
 * The Lease's namespace: the one named, else the kubeconfig context's (in a
 * cluster the Pod's own), else `default`.
 */
export function leaseNamespace(
  settings: Pick<OperatorConfig, "leaderElectionNamespace">,
  connection: Connection,
): string {
  return settings.leaderElectionNamespace ?? connection.namespace ?? "default";
}

/**
 * The manager of `run` for these settings: its endpoints, its Lease (with
 * `leaderElect`), and clients that share one connection. `exit` ends the
 * process (see ManagerOptions).
 */
export function makeManager(
  settings: OperatorConfig,
  log: Logger,
  metrics: Metrics,
  exit: (code: number) => void,
): Manager {
  const connection = kubeConnection(settings);
  return new Manager(log, metrics, {
    metricsAddress: settings.metricsAddress,
    healthAddress: settings.healthAddress,
    ...(settings.leaderElect && {
      leaderElection: {
        namespace: leaseNamespace(settings, connection),
        name: settings.leaderElectionId,
      },
    }),
    newClient: (opts) => makeKubeClient(settings, metrics, { connection, ...opts }),
    exit,
  });
}
