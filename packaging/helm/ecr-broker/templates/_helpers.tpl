{{/* The chart's name. */}}
{{- define "ecr-broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Objects' name: fullnameOverride, else the release name, unless it already contains the chart's. */}}
{{- define "ecr-broker.fullname" -}}
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

{{/* The broker's image: no image is published, so image.repository must be set. */}}
{{- define "ecr-broker.image" -}}
{{- $repo := required "image.repository is required: the ecr-broker image you built and pushed (no image is published)" .Values.image.repository -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) | quote -}}
{{- end -}}

{{- define "ecr-broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecr-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ecr-broker.labels" -}}
{{ include "ecr-broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ecr-cred
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ecr-broker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ecr-broker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A TOML array of numbers. */}}
{{- define "ecr-broker.numbers" -}}
[{{ range $i, $n := . }}{{ if $i }}, {{ end }}{{ int64 $n }}{{ end }}]
{{- end -}}

{{/* The broker's config.toml, from the values. */}}
{{- define "ecr-broker.config" -}}
# Rendered by the ecr-broker Helm chart from its values; do not edit in the cluster.
socket_mode = {{ .Values.socketMode | quote }}
state_file = "/var/lib/ecr-broker/state.json"
{{- with .Values.allowUids }}
allow_uids = {{ include "ecr-broker.numbers" . }}
{{- end }}
{{- with .Values.allowGids }}
allow_gids = {{ include "ecr-broker.numbers" . }}
{{- end }}
{{- if .Values.metrics.enabled }}
metrics_listen = "0.0.0.0:{{ .Values.metrics.port }}"
{{- end }}
{{- with .Values.prefetch }}
prefetch = [{{ range $i, $r := . }}{{ if $i }}, {{ end }}{{ $r | quote }}{{ end }}]
{{- end }}
{{- range $i, $r := .Values.rolesPerRegistry }}

[identities.role-{{ $i }}]
role_arn = {{ required "rolesPerRegistry[].roleArn is required" $r.roleArn | quote }}
{{- with $r.externalId }}
external_id = {{ . | quote }}
{{- end }}
{{- with $r.sessionName }}
session_name = {{ . | quote }}
{{- end }}
{{- with $r.durationSeconds }}
duration_seconds = {{ int64 . }}
{{- end }}
{{- with $r.allowUids }}
allow_uids = {{ include "ecr-broker.numbers" . }}
{{- end }}
{{- with $r.allowGids }}
allow_gids = {{ include "ecr-broker.numbers" . }}
{{- end }}
{{- end }}
{{- range $i, $r := .Values.rolesPerRegistry }}

[[rules]]
registry = {{ required "rolesPerRegistry[].registry is required" $r.registry | quote }}
identity = "role-{{ $i }}"
{{- end }}
{{- with .Values.extraConfig }}

{{ . }}
{{- end }}
{{- end -}}
