// The controller and its clients, assembled from the operator's settings:
// what `run` and `once` start, and what the integration tests start in their
// own process.
import { FIELD_MANAGER } from "../api/metadata.js";
import { operatorDefaults } from "../aws/registries.js";
import { verifyRegistry } from "../aws/verify.js";
import { KubeClient, loadKubeConfig } from "../kube/client.js";
import { EventRecorder } from "../observability/events.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { Controller } from "./controller.js";

/** The settings the controller needs (the CLI's OperatorConfig has them all). */
export interface ControllerSettings {
  kubeconfig?: string;
  region?: string;
  registry?: string;
  credentialsSecretName?: string;
  credentialsSecretNamespace?: string;
  qps: number;
  burst: number;
  concurrency: number;
  writeConcurrency: number;
  verify: boolean;
  awsTimeoutMs: number;
  minRefreshIntervalMs: number;
  awsBackoffBaseMs: number;
  awsBackoffMaxMs: number;
  /** GetAuthorizationToken calls a second per (account, region); 0: no limit. Default 10. */
  awsTokenQps?: number;
  /** Default 50. */
  awsTokenBurst?: number;
}

export function makeKubeClient(
  settings: Pick<ControllerSettings, "kubeconfig" | "qps" | "burst">,
  metrics?: Metrics,
): KubeClient {
  return new KubeClient(loadKubeConfig(settings.kubeconfig), {
    qps: settings.qps,
    burst: settings.burst,
    fieldManager: FIELD_MANAGER,
    onRequest: (verb, resource, code) =>
      metrics?.kubeRequests.inc({ verb, resource, code: String(code) }),
  });
}

export function makeController(
  settings: ControllerSettings,
  log: Logger,
  metrics: Metrics,
): Controller {
  const kube = makeKubeClient(settings, metrics);
  const events = new EventRecorder(kube, log);
  return new Controller(kube, log, metrics, events, {
    defaults: operatorDefaults(settings),
    concurrency: settings.concurrency,
    writeConcurrency: settings.writeConcurrency,
    awsTimeoutMs: settings.awsTimeoutMs,
    minRefreshIntervalMs: settings.minRefreshIntervalMs,
    awsBackoffBaseMs: settings.awsBackoffBaseMs,
    awsBackoffMaxMs: settings.awsBackoffMaxMs,
    awsTokenQps: settings.awsTokenQps ?? 10,
    awsTokenBurst: settings.awsTokenBurst ?? 50,
    verify: settings.verify
      ? (_resource, url, username, password) =>
          verifyRegistry(url, username, password, { timeoutMs: settings.awsTimeoutMs })
      : undefined,
  });
}
