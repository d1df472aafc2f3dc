// What the operator's RBAC must grant, rule by rule, each with the code that
// needs it: the install tests compare the chart's rendered rules with these
// tables in both directions, for the cluster-wide and the namespaced install.

/** One granted (scope, group, resource, verb), and the code that needs it. */
export interface Need {
  grant: string;
  /** Source file and the call in it that needs this grant, as `apiCalls` names it. */
  code: Array<[file: string, call: string]>;
  /** How the run above showed it: request counter key, audit write, or behaviour. */
  shown:
    | { counter: string }
    | { audit: { verb: string; resource: string; subresource?: string; namespace?: string } }
    | { behaviour: string };
}

/**
 * The cluster-wide install's needs (rbac.scope=cluster, deployment mode):
 * `NS` is the release namespace, `FULL` the release's full name (the Lease).
 */
export function clusterNeeds(NS: string, FULL: string): Need[] {
  return [
    ...resourceNeeds(),
    ...tenantKindNeeds(),
    ...namespaceAndServiceAccountNeeds(),
    ...secretNeeds(),
    ...podAndEventNeeds(),
    ...leaseNeeds(NS, FULL),
  ];
}

/** The ECRPullSecret resources and their status. */
function resourceNeeds(): Need[] {
  return [
    {
      grant: "cluster ecrcreds.io ecrpullsecrets get",
      code: [["src/cli/check.ts", "get ECR_PULL_SECRETS"]],
      shown: { behaviour: "`check --resource inst` exited 0" },
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecrets list",
      code: [["src/controller/informers.ts", "list ECR_PULL_SECRETS"]],
      shown: { counter: "list ecrpullsecrets 200" },
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecrets watch",
      code: [["src/controller/informers.ts", "watch ECR_PULL_SECRETS"]],
      shown: { behaviour: "inst, created after the operator started, was served" },
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecrets patch",
      code: [["src/reconcile/cluster.ts", "patch ECR_PULL_SECRETS"]],
      shown: { audit: { verb: "patch", resource: "ecrpullsecrets" } },
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecrets/status patch",
      code: [["src/reconcile/cluster.ts", "patch ECR_PULL_SECRETS/status"]],
      shown: { audit: { verb: "patch", resource: "ecrpullsecrets", subresource: "status" } },
    },
  ];
}

/**
 * The tenant kinds (issue 31): ClusterECRCredentialSources read cluster-wide,
 * ECRPullSecretClaims read and patched (finalizer, status) where served. The
 * install tests install no tenant CRDs, so these show as behaviour:
 * test/integration/tenant-claims*.test.ts serve claims with them.
 */
function tenantKindNeeds(): Need[] {
  const shown = { behaviour: "test/integration/tenant-claims-namespaced.test.ts" };
  return [
    {
      grant: "cluster ecrcreds.io clusterecrcredentialsources list",
      code: [["src/controller/tenant-informers.ts", "list CREDENTIAL_SOURCES"]],
      shown,
    },
    {
      grant: "cluster ecrcreds.io clusterecrcredentialsources watch",
      code: [["src/controller/tenant-informers.ts", "watch CREDENTIAL_SOURCES"]],
      shown,
    },
    {
      grant: "cluster ecrcreds.io clusterecrcredentialsources/status patch",
      code: [["src/controller/tenant-informers.ts", "patch CREDENTIAL_SOURCES/status"]],
      shown,
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecretclaims list",
      code: [
        ["src/controller/tenant-informers.ts", "list PULL_SECRET_CLAIMS"],
        ["src/cli/status.ts", "list PULL_SECRET_CLAIMS"],
      ],
      shown,
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecretclaims watch",
      code: [["src/controller/tenant-informers.ts", "watch PULL_SECRET_CLAIMS"]],
      shown,
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecretclaims patch",
      code: [["src/controller/tenant-informers.ts", "patch PULL_SECRET_CLAIMS"]],
      shown,
    },
    {
      grant: "cluster ecrcreds.io ecrpullsecretclaims/status patch",
      code: [["src/controller/tenant-informers.ts", "patch PULL_SECRET_CLAIMS/status"]],
      shown,
    },
  ];
}

/** Namespaces (targets) and ServiceAccounts (imagePullSecrets). */
function namespaceAndServiceAccountNeeds(): Need[] {
  return [
    {
      grant: "cluster core namespaces list",
      code: [["src/controller/informers.ts", "list NAMESPACES"]],
      shown: { counter: "list namespaces 200" },
    },
    {
      grant: "cluster core namespaces watch",
      code: [["src/controller/informers.ts", "watch NAMESPACES"]],
      shown: { behaviour: "inst-late, created after start, got its Secret" },
    },
    {
      grant: "cluster core serviceaccounts get",
      code: [["src/reconcile/cluster.ts", "get SERVICE_ACCOUNTS"]],
      // Only on a 409 from a concurrent writer; no deterministic way to race it.
      shown: { behaviour: "re-read on a conflicting ServiceAccount patch (code only)" },
    },
    {
      grant: "cluster core serviceaccounts list",
      code: [["src/controller/informers.ts", "list SERVICE_ACCOUNTS"]],
      shown: { counter: "list serviceaccounts 200" },
    },
    {
      grant: "cluster core serviceaccounts watch",
      code: [["src/controller/informers.ts", "watch SERVICE_ACCOUNTS"]],
      shown: { behaviour: "inst-late/default, made after its namespace, was merged" },
    },
    {
      grant: "cluster core serviceaccounts patch",
      code: [["src/reconcile/cluster.ts", "patch SERVICE_ACCOUNTS"]],
      shown: { audit: { verb: "patch", resource: "serviceaccounts" } },
    },
  ];
}

/** The Secrets the operator writes and reads. */
function secretNeeds(): Need[] {
  return [
    {
      grant: "cluster core secrets get",
      code: [
        ["src/reconcile/cluster.ts", "get SECRETS"],
        ["src/cli/check.ts", "get SECRETS"],
      ],
      shown: { counter: "get secrets 200" },
    },
    {
      grant: "cluster core secrets list",
      code: [["src/controller/informers.ts", "list SECRETS"]],
      shown: { counter: "list secrets 200" },
    },
    {
      grant: "cluster core secrets watch",
      code: [["src/controller/informers.ts", "watch SECRETS"]],
      shown: { behaviour: "inst-a's Secret, deleted by hand, was written again" },
    },
    {
      grant: "cluster core secrets create",
      code: [["src/reconcile/cluster.ts", "create SECRETS"]],
      shown: { audit: { verb: "create", resource: "secrets" } },
    },
    {
      grant: "cluster core secrets patch",
      code: [["src/reconcile/cluster.ts", "patch SECRETS"]],
      shown: { audit: { verb: "patch", resource: "secrets" } },
    },
    {
      grant: "cluster core secrets delete",
      code: [["src/reconcile/cluster.ts", "delete SECRETS"]],
      shown: { audit: { verb: "delete", resource: "secrets" } },
    },
  ];
}

/** The pull-failure watch (Pods, Events) and the operator's own Events. */
function podAndEventNeeds(): Need[] {
  return [
    {
      grant: "cluster core pods list",
      code: [
        ["src/controller/pull-failures.ts", "list PODS"],
        ["src/cli/status.ts", "list PODS"],
      ],
      shown: { counter: "list pods 200" },
    },
    {
      grant: "cluster core pods watch",
      code: [["src/controller/pull-failures.ts", "watch PODS"]],
      shown: { behaviour: "test/integration/pull-failures.test.ts: Pods waiting on a pull" },
    },
    // No "pods delete": granted only with the chart value podRecovery.enabled
    // (spec.podRecovery: Recreate), test/integration/tenant-rbac.test.ts.
    {
      grant: "cluster core events list",
      code: [["src/controller/pull-failures.ts", "list EVENTS"]],
      shown: { counter: "list events 200" },
    },
    {
      grant: "cluster core events watch",
      code: [["src/controller/pull-failures.ts", "watch EVENTS"]],
      shown: {
        behaviour: "test/integration/pull-failures.test.ts: FailedToRetrieveImagePullSecret",
      },
    },
    {
      grant: "cluster core events create",
      code: [["src/observability/events.ts", "create EVENTS"]],
      shown: { audit: { verb: "create", resource: "events", namespace: "default" } },
    },
  ];
}

/** Leader election's Lease, in the release namespace `NS`, named `FULL`. */
function leaseNeeds(NS: string, FULL: string): Need[] {
  return [
    {
      grant: `${NS} coordination.k8s.io leases create`,
      code: [["src/controller/leader.ts", "create LEASES"]],
      shown: { audit: { verb: "create", resource: "leases", namespace: NS } },
    },
    {
      grant: `${NS} coordination.k8s.io leases/${FULL} get`,
      code: [["src/controller/leader.ts", "get LEASES"]],
      // A fresh install's first read finds no Lease yet (404, then create);
      // renewals update the Lease held without reading it.
      shown: { counter: "get leases 404" },
    },
    {
      grant: `${NS} coordination.k8s.io leases/${FULL} update`,
      code: [["src/controller/leader.ts", "replace LEASES"]],
      shown: { audit: { verb: "update", resource: "leases", namespace: NS } },
    },
  ];
}

/** Resources whose rights a namespaced install grants per served namespace instead. */
const PER_NAMESPACE =
  /^cluster (core|ecrcreds\.io) (serviceaccounts|secrets|pods|events|ecrpullsecretclaims(?:\/status)?) (\w+)$/;

/**
 * The namespaced install's needs (rbac.scope=namespaced): what the cluster-wide
 * install needs on Secrets, ServiceAccounts, Pods and Events, once in each
 * served namespace; the credentials Secrets by name (get for `check`, list and
 * watch for their field-selected informers); and Events about ECRPullSecrets in
 * "default". The rest is the same.
 */
export function namespacedNeeds(
  NS: string,
  FULL: string,
  served: readonly string[],
  credentials: ReadonlyArray<{ namespace: string; name: string }>,
): Need[] {
  const out: Need[] = [];
  for (const need of clusterNeeds(NS, FULL)) {
    const m = PER_NAMESPACE.exec(need.grant);
    if (!m) {
      out.push(need);
      continue;
    }
    for (const ns of served) out.push({ ...need, grant: `${ns} ${m[1]} ${m[2]} ${m[3]}` });
  }
  for (const c of credentials) {
    for (const verb of ["get", "list", "watch"]) {
      out.push({
        grant: `${c.namespace} core secrets/${c.name} ${verb}`,
        code:
          verb === "get"
            ? [["src/cli/check.ts", "get SECRETS"]]
            : [["src/controller/informers.ts", `${verb} SECRETS`]],
        shown: { behaviour: "the credentials Secret was read by name (field-selected informer)" },
      });
    }
  }
  for (const verb of ["list", "watch", "create", "patch", "delete"]) {
    out.push({
      grant: `${NS} core secrets ${verb}`,
      code:
        verb === "list" || verb === "watch"
          ? [["src/controller/informers.ts", `${verb} SECRETS`]]
          : [["src/reconcile/token-records.ts", `${verb} SECRETS`]],
      shown: { behaviour: "the operator kept its token record in its own namespace" },
    });
  }
  out.push({
    grant: "default core events create",
    code: [["src/observability/events.ts", "create EVENTS"]],
    shown: { audit: { verb: "create", resource: "events", namespace: "default" } },
  });
  return out;
}
