// The operator's Prometheus metrics, defined once. An alert on
// `ecr_creds_refresher_token_expiry_timestamp_seconds - time()` under 45 % of
// `ecr_creds_refresher_token_lifetime_seconds` (at most an hour) fires well
// before a Secret lapses, whatever went wrong upstream.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();
  readonly refreshes = new Counter({
    name: "ecr_creds_refresher_token_refreshes_total",
    help: "Token fetches by result: success, failure, expired (the token had expired when it arrived), or throttled (AWS throttled the call while the Secrets hold a good token: retried, not a failure).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly awsRequestDuration = new Histogram({
    name: "ecr_creds_refresher_aws_request_duration_seconds",
    help: "Duration of AWS GetAuthorizationToken calls.",
    labelNames: ["service", "region"] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly awsErrors = new Counter({
    name: "ecr_creds_refresher_aws_errors_total",
    help: "Failed AWS calls by service and error code.",
    labelNames: ["service", "code"] as const,
    registers: [this.registry],
  });
  readonly tokenExpiry = new Gauge({
    name: "ecr_creds_refresher_token_expiry_timestamp_seconds",
    help: "Unix time at which the token of each registry in each resource's Secrets expires.",
    labelNames: ["resource", "registry"] as const,
    registers: [this.registry],
  });
  readonly tokenLifetime = new Gauge({
    name: "ecr_creds_refresher_token_lifetime_seconds",
    help: "How long the shortest-lived token in each resource's Secrets lives from fetch to expiry (12 h for ECR's own; less from an assumed role's session or a test endpoint): the expiry alert scales with it.",
    labelNames: ["resource"] as const,
    registers: [this.registry],
  });
  readonly serviceAccountReverts = new Counter({
    name: "ecr_creds_refresher_serviceaccount_reverts_total",
    help: "Times someone else removed an imagePullSecrets entry the operator had added, by the field manager that did.",
    labelNames: ["resource", "manager"] as const,
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: "ecr_creds_refresher_ready",
    help: "1 when the resource's Ready condition is True, else 0.",
    labelNames: ["resource"] as const,
    registers: [this.registry],
  });
  readonly verified = new Gauge({
    name: "ecr_creds_refresher_verified",
    help: "1 when the last registry check with the resource's credentials passed, 0 when it failed.",
    labelNames: ["resource"] as const,
    registers: [this.registry],
  });
  /**
   * 1 for each ECRPullSecretClaim the operator serves, naming the claim's
   * namespace, name and source: the per-resource series name a claim by its
   * owner value (resource="claim_<namespace>_<name>"), and
   * `* on (resource) group_left (namespace, claim) ecr_creds_refresher_claim_info`
   * gives any of them the claim's namespace, for a team's dashboards.
   */
  readonly claimInfo = new Gauge({
    name: "ecr_creds_refresher_claim_info",
    help: "1 for each ECRPullSecretClaim served: its resource label (the owner value of its series), namespace, name and source.",
    labelNames: ["resource", "namespace", "claim", "source"] as const,
    registers: [this.registry],
  });
  readonly namespaces = new Gauge({
    name: "ecr_creds_refresher_namespaces",
    help: "Target namespaces of each resource by state: desired, synced (a current Secret), failed.",
    labelNames: ["resource", "state"] as const,
    registers: [this.registry],
  });
  readonly uncoveredPods = new Gauge({
    name: "ecr_creds_refresher_uncovered_pods",
    help: "Pending Pods waiting on an image of a resource's registries without its pull Secret.",
    labelNames: ["resource", "namespace"] as const,
    registers: [this.registry],
  });
  readonly podRecoveries = new Counter({
    name: "ecr_creds_refresher_pod_recoveries_total",
    help: "What the pull-failure watch did about Pods lacking the pull Secret: deleted (spec.podRecovery: Recreate), or why it did not (templateSetsPullSecrets, replacementStillUncovered, ownerLimit, notAllowed, serviceAccountLacksSecret, notRequested, noController), counted once per Pod and decision.",
    labelNames: ["resource", "action"] as const,
    registers: [this.registry],
  });
  readonly watchedPods = new Gauge({
    name: "ecr_creds_refresher_watched_pods",
    help: "Pending Pods in the pull-failure watch's cache (Running Pods never enter it).",
    registers: [this.registry],
  });
  readonly managedSecrets = new Gauge({
    name: "ecr_creds_refresher_managed_secrets",
    help: "Secrets this operator manages, as its cache sees them.",
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: "ecr_creds_refresher_reconcile_duration_seconds",
    help: "Duration of one reconcile pass of a resource.",
    labelNames: ["result"] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "ecr_creds_refresher_queue_depth",
    help: "Resources waiting in the work queue.",
    registers: [this.registry],
  });
  readonly kubeRequests = new Counter({
    name: "ecr_creds_refresher_kube_requests_total",
    help: "Kubernetes API requests by verb, resource and HTTP code.",
    labelNames: ["verb", "resource", "code"] as const,
    registers: [this.registry],
  });
  readonly isLeader = new Gauge({
    name: "ecr_creds_refresher_leader",
    help: "1 while this replica holds the leader Lease.",
    registers: [this.registry],
  });

  readonly leaderElectionErrors = new Counter({
    name: "ecr_creds_refresher_leader_election_errors_total",
    help: "Failed attempts to take or renew the leader Lease, by reason (Forbidden: RBAC refuses the Lease; the replica is then not ready).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    // prom-client samples the event loop's delay every 10 ms by default: at
    // rest that timer alone cost ~20 CPU-seconds an hour (docs/performance.md).
    // Once a second still catches any stall that matters to an operator.
    if (opts.processMetrics !== false)
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
  }
}
