{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "ecr-creds-refresher.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "ecr-creds-refresher.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ecr-creds-refresher.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ecr-creds-refresher.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecr-creds-refresher.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object. managed-by is Helm here; the operator's own
Secrets carry app.kubernetes.io/managed-by: ecr-creds-refresher instead.
*/}}
{{- define "ecr-creds-refresher.labels" -}}
helm.sh/chart: {{ include "ecr-creds-refresher.chart" . }}
{{ include "ecr-creds-refresher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ecr-creds-refresher.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecr-creds-refresher.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ecr-creds-refresher.leaseName" -}}
{{- default (include "ecr-creds-refresher.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Where Events about the cluster-scoped ECRPullSecrets go: the API server takes
core/v1 Events about a cluster-scoped object only in "default".
*/}}
{{- define "ecr-creds-refresher.eventsNamespace" -}}
default
{{- end }}

{{/* Leader election applies to the long-running controller only. */}}
{{- define "ecr-creds-refresher.leaderElect" -}}
{{- if and (eq .Values.mode "deployment") .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{- define "ecr-creds-refresher.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Checks across values that values.schema.json cannot word clearly. Called
from every workload template so that a bad combination fails the render.
*/}}
{{- define "ecr-creds-refresher.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: more than one replica needs leader election, or they would all write; set leaderElection.enabled=true or replicaCount=1" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.aws.credentials.namespace (not .Values.aws.credentials.secretName) }}
{{- fail "aws.credentials.namespace is set but aws.credentials.secretName is empty: name the credentials Secret too, or clear both to use the AWS SDK chain (IRSA, Pod Identity)" }}
{{- end }}
{{- if and (eq .Values.rbac.scope "namespaced") (not .Values.rbac.namespaces) }}
{{- fail "rbac.scope is namespaced but rbac.namespaces is empty: list the namespaces the operator may serve, e.g. --set 'rbac.namespaces={team-a,team-b}'" }}
{{- end }}
{{- if and (eq .Values.rbac.scope "cluster") (or .Values.rbac.namespaces .Values.rbac.credentialsSecrets) }}
{{- fail "rbac.namespaces and rbac.credentialsSecrets apply only with rbac.scope=namespaced: set rbac.scope=namespaced, or clear them" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true: there is no /metrics to scrape" }}
{{- end }}
{{- end }}

{{/* The operator's settings as environment variables (names from src/cli/config.ts). */}}
{{- define "ecr-creds-refresher.env" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with .Values.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.aws.registry }}
- name: REGISTRY
  value: {{ . | quote }}
{{- end }}
{{- if eq .Values.rbac.scope "namespaced" }}
- name: WATCH_NAMESPACES
  value: {{ join "," .Values.rbac.namespaces | quote }}
{{- end }}
{{- with .Values.aws.credentials.secretName }}
- name: AWS_CREDENTIALS_SECRET_NAME
  value: {{ . | quote }}
- name: AWS_CREDENTIALS_SECRET_NAMESPACE
  value: {{ default $.Release.Namespace $.Values.aws.credentials.namespace | quote }}
{{- end }}
{{- with .Values.aws.rolesAnywhere }}
{{- if or .trustAnchorArn .profileArn .roleArn .certificateSecret.name }}
{{- if not (and .trustAnchorArn .profileArn .roleArn .certificateSecret.name) }}
{{- fail "aws.rolesAnywhere needs trustAnchorArn, profileArn, roleArn and certificateSecret.name together" }}
{{- end }}
- name: ROLES_ANYWHERE_TRUST_ANCHOR_ARN
  value: {{ .trustAnchorArn | quote }}
- name: ROLES_ANYWHERE_PROFILE_ARN
  value: {{ .profileArn | quote }}
- name: ROLES_ANYWHERE_ROLE_ARN
  value: {{ .roleArn | quote }}
- name: ROLES_ANYWHERE_CERTIFICATE_SECRET_NAME
  value: {{ .certificateSecret.name | quote }}
- name: ROLES_ANYWHERE_CERTIFICATE_SECRET_NAMESPACE
  value: {{ default $.Release.Namespace .certificateSecret.namespace | quote }}
{{- with .sessionDuration }}
- name: ROLES_ANYWHERE_SESSION_DURATION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.proxy.httpsProxy }}
- name: HTTPS_PROXY
  value: {{ . | quote }}
- name: HTTP_PROXY
  value: {{ . | quote }}
- name: NO_PROXY
  value: {{ printf "%s,$(KUBERNETES_SERVICE_HOST)" $.Values.proxy.noProxy | trimPrefix "," | quote }}
{{- end }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: VERIFY_REGISTRY
  value: {{ .Values.verifyRegistry | quote }}
{{- with .Values.webIdentity.allowedAudiences }}
- name: ALLOWED_TOKEN_AUDIENCES
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ecr-creds-refresher.podSpecCommon" -}}
serviceAccountName: {{ include "ecr-creds-refresher.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
namespaced scope: the credentials Secrets readable by name, as JSON
{"<namespace>": ["<name>", ...]}: aws.credentials (its namespace defaulting
to the release's) and rbac.credentialsSecrets.
*/}}
{{- define "ecr-creds-refresher.credentialsSecrets" -}}
{{- $byNs := dict }}
{{- with .Values.aws.credentials.secretName }}
{{- $ns := default $.Release.Namespace $.Values.aws.credentials.namespace }}
{{- $_ := set $byNs $ns (list .) }}
{{- end }}
{{- with .Values.aws.rolesAnywhere.certificateSecret.name }}
{{- $ns := default $.Release.Namespace $.Values.aws.rolesAnywhere.certificateSecret.namespace }}
{{- $_ := set $byNs $ns (append (get $byNs $ns | default list) . | uniq) }}
{{- end }}
{{- range .Values.rbac.credentialsSecrets }}
{{- $names := get $byNs .namespace | default list }}
{{- $_ := set $byNs .namespace (append $names .name | uniq) }}
{{- end }}
{{- toJson $byNs }}
{{- end }}

{{/*
The rules of a namespace the operator serves: in the ClusterRole under
rbac.scope=cluster, in a Role of each rbac.namespaces under namespaced.
Each names the code that uses it (test/harness/rbac.ts holds the table).
*/}}
{{- define "ecr-creds-refresher.servedNamespaceRules" -}}
# imagePullSecrets merge: informer, re-read on conflict, merge patch.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, watch, patch]
# Managed Secrets (label-selected informer), the credentials Secret
# (field-selected informer, `check`), writes and cleanup.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Tenants' ECRPullSecretClaims (informer), their finalizer (patch) and
# Ready condition (status).
- apiGroups: [ecrcreds.io]
  resources: [ecrpullsecretclaims]
  verbs: [list, watch, patch]
- apiGroups: [ecrcreds.io]
  resources: [ecrpullsecretclaims/status]
  verbs: [patch]
{{- if eq .Values.mode "deployment" }}
# The pull-failure watch: Pending Pods (field-selected informer) and, only
# with podRecovery.enabled (spec.podRecovery: Recreate), deleting a
# controller-owned Pod that lacks the Secret (UID precondition; bare Pods
# never). A right the default configuration does not use is not granted.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch{{ if .Values.podRecovery.enabled }}, delete{{ end }}]
# The kubelet's FailedToRetrieveImagePullSecret Events (field-selected
# informer); Events on diagnosed Pods in their namespaces, and on
# ECRPullSecrets in "default".
- apiGroups: [""]
  resources: [events]
  verbs: [list, watch, create]
{{- end }}
{{- end }}
