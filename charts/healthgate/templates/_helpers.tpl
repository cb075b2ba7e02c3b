{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "healthgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name used as the prefix of every object. When the release name
already contains the chart name it is used alone ("healthgate", not
"healthgate-healthgate").
*/}}
{{- define "healthgate.fullname" -}}
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

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "healthgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator pods. Never change these between releases: a
Deployment's selector is immutable.
*/}}
{{- define "healthgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "healthgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels on every object the chart creates.
*/}}
{{- define "healthgate.labels" -}}
helm.sh/chart: {{ include "healthgate.chart" . }}
app.kubernetes.io/name: {{ include "healthgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: healthgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "healthgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "healthgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Operator image: repository@digest when a digest is set, else repository:tag
with the tag defaulting to the chart's appVersion.
*/}}
{{- define "healthgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Namespace of the leader-election Lease.
*/}}
{{- define "healthgate.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop drain runs inside the grace period,
so the process still gets maxInFlightSeconds after SIGTERM.
*/}}
{{- define "healthgate.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.drainSeconds .Values.shutdown.maxInFlightSeconds }}
{{- end }}

{{/*
Refuse values that the schema cannot express: probe timeouts must be shorter
than their periods (a check that may take longer than its interval overlaps the
next one and hides slowness);
namespaced RBAC fits the operator only when it watches a single namespace; and
several replicas need leader election.
*/}}
{{- define "healthgate.validate" -}}
{{- range $name := list "liveness" "readiness" "startup" }}
{{- $p := index $.Values.probes $name }}
{{- if ge (int $p.timeoutSeconds) (int $p.periodSeconds) }}
{{- fail (printf "probes.%s.timeoutSeconds (%d) must be shorter than probes.%s.periodSeconds (%d)" $name (int $p.timeoutSeconds) $name (int $p.periodSeconds)) }}
{{- end }}
{{- end }}
{{- if gt (len .Values.watchNamespaces) 1 }}
{{- fail (printf "watchNamespaces lists %d namespaces: healthgate run scopes its watches to a namespace only when it is given exactly one (with several it watches cluster-wide and filters), so namespaced RBAC supports one namespace; set watchNamespaces to one namespace, or to [] for cluster-wide RBAC" (len .Values.watchNamespaces)) }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "leaderElection.enabled=false with replicas=%d: several operators would write the same objects; enable leader election or set replicas=1" (int .Values.replicas)) }}
{{- end }}
{{- end }}

{{/*
RBAC rules for namespaced resources. Bound cluster-wide (ClusterRoleBinding)
or per watched namespace (RoleBinding), see rbac.yaml. Explicit verbs and
resources only: no wildcards.
*/}}
{{- define "healthgate.namespacedRules" -}}
# Least privilege, proved by test/audit/rbac.test.ts from kube-apiserver's audit log of the whole
# integration suite: a grant no test uses fails it. Add a grant together with the test that uses it.
# HealthPolicies: watched (list/watch); status written by server-side apply (patch).
- apiGroups: ["healthgate.io"]
  resources: ["healthpolicies"]
  verbs: ["list", "watch"]
- apiGroups: ["healthgate.io"]
  resources: ["healthpolicies/status"]
  verbs: ["patch"]
# HealthTarget records, one per governed Deployment: server-side apply of the
# spec and the status (the released Enforce decision), deleted when the
# Deployment is no longer governed.
- apiGroups: ["healthgate.io"]
  resources: ["healthtargets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["healthgate.io"]
  resources: ["healthtargets/status"]
  verbs: ["patch"]
# The namespace's HealthRelease (named healthgate): the index of released
# decisions that Enforce's admission policy reads. Created by server-side
# apply; entries added and removed by merge patches of its status.
- apiGroups: ["healthgate.io"]
  resources: ["healthreleases"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["healthgate.io"]
  resources: ["healthreleases/status"]
  verbs: ["patch"]
# Deployments: the release write (the healthgate.io/released label, so
# Enforce's admission policy runs), the v0.1 upgrade (a JSON patch removing
# healthgate's old managedFields entry), and the healthgate.io/ conditions on
# the status subresource.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch"]
# Pods: readiness and zones across a target.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Rollout gating: the healthgate.io/deep-check readiness gate, one condition written by
# server-side apply on the pods' status subresource. A ValidatingAdmissionPolicy refuses any
# other pods/status change by healthgate (gate-guard.yaml).
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
# Headroom: HPA targets, measured usage, and the optional PodDisruptionBudget.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch"]
- apiGroups: ["metrics.k8s.io"]
  resources: ["pods"]
  verbs: ["list"]
# (A server-side apply that creates the PDB is authorized as create too.)
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The PodDisruptionBudget is owned by its Deployment with blockOwnerDeletion, so that it leaves
# with it. Clusters that enforce owner-reference permissions (kube-apiserver's
# OwnerReferencesPermissionEnforcement admission plugin; on in OpenShift) ask the authorizer for
# update on the owner's finalizers before they accept that. No request of healthgate's uses it
# (a named exception in test/audit/rbac.test.ts).
- apiGroups: ["apps"]
  resources: ["deployments/finalizers"]
  verbs: ["update"]
# Services: panic mode (docs/panic.md) watches them, confirms a taken-back
# publishNotReadyAddresses on the live object (a list by name), and sets or gives back that one
# field by server-side apply (patch) under field manager healthgate-panic.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "patch"]
# Events (events.k8s.io). list: with spec.rollout.deepCheck.background, during an outage only, the
# kubelet's liveness Events of a few sampled pods (a field selector on the pod's uid and the reason).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "list"]
{{- end }}
