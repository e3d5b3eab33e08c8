{{/* Names, labels and the shared pod/container security settings. */}}

{{- define "llmplatform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmplatform.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llmplatform.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: llmplatform
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/*
Selector labels. The gateway's `app.kubernetes.io/name` is fixed to `llmplatform-gateway`:
the NetworkPolicy the operator renders for every self-hosted model admits exactly the pods
with that label in the platform namespace (render/workloads.py GATEWAY_POD_NAME).
*/}}
{{- define "llmplatform.operator.selector" -}}
app.kubernetes.io/name: llmplatform-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llmplatform.gateway.selector" -}}
app.kubernetes.io/name: llmplatform-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llmplatform.operator.name" -}}
{{- printf "%s-operator" (include "llmplatform.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmplatform.gateway.name" -}}
{{- printf "%s-gateway" (include "llmplatform.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmplatform.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}

{{/* The `restricted` Pod Security Standard, for every pod and container of the chart. */}}
{{- define "llmplatform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llmplatform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The Secret holding the Redis URL, as an env var the args refer to as $(LLMPLATFORM_REDIS_URL). */}}
{{/*
The standard OTEL_* variables of a traced pod (tracing.enabled); the service name is the
process's own default (llmplatform-gateway, llmplatform-operator).
*/}}
{{- define "llmplatform.tracingEnv" -}}
{{- $t := .Values.tracing -}}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ required "tracing.endpoint is required when tracing.enabled is true" $t.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $t.samplingRatio | toString | quote }}
{{- with $t.resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ range $i, $k := keys . | sortAlpha }}{{ if $i }},{{ end }}{{ $k }}={{ index $t.resourceAttributes $k }}{{ end }}
{{- end }}
{{- with $t.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "llmplatform.redisEnv" -}}
- name: LLMPLATFORM_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.key }}
{{- end -}}

{{/*
What the operator does in every namespace it watches, derived from operator/llmplatform/
operator/{handlers,engine,kube}.py (tests/e2e/test_chart.py proves it is enough and that
more is refused):
- the three kinds: list/watch (Kopf indices), get (a read that confirms its own write),
  patch on /status only (it never writes a user's spec);
- Secrets: list/watch (provider and key Secrets feed the render), get, create (generated API
  keys) and delete (a key removed from a TenantQuota spec);
- the children of self-hosted models: server-side apply (patch, and create when the object is
  new), get, delete (a model that stopped being self-hosted) and list/watch; list/watch also
  covers reading the gateway Deployment's volumes (which provider Secrets it mounts);
- ConfigMaps: list/watch only here (the gateway ConfigMap is written in the release namespace);
- Events: create (condition transitions, and Kopf's own warnings).
*/}}
{{- define "llmplatform.operator.rules" -}}
- apiGroups: [llmplatform.io]
  resources: [llmmodels, routingpolicies, tenantquotas]
  verbs: [get, list, watch]
- apiGroups: [llmplatform.io]
  resources: [llmmodels/status, routingpolicies/status, tenantquotas/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* The gateway's port name: `https` when it serves TLS itself (meshes and Gateway API
implementations read the protocol from it), else `http`. */}}
{{- define "llmplatform.gateway.portName" -}}
{{- ternary "https" "http" .Values.gateway.tls.enabled -}}
{{- end -}}

{{/* Whether clients must present certificates: probes and metrics then use `healthPort`. */}}
{{- define "llmplatform.gateway.healthPort" -}}
{{- if and .Values.gateway.tls.enabled .Values.gateway.tls.clientCASecret -}}
{{- .Values.gateway.tls.healthPort -}}
{{- end -}}
{{- end -}}
