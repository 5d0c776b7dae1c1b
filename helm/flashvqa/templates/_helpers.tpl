{{/* The chart's name, overridable. */}}
{{- define "flashvqa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: objects are named after it. 47 characters at most, KubeRay's limit for a RayService. */}}
{{- define "flashvqa.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "flashvqa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flashvqa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flashvqa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "flashvqa.labels" -}}
helm.sh/chart: {{ include "flashvqa.chart" . }}
{{ include "flashvqa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flashvqa
{{- end }}

{{- define "flashvqa.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flashvqa.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "flashvqa.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* MODEL_PATH: the model directory inside every Ray pod. */}}
{{- define "flashvqa.modelPath" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.model.mountPath) .Values.model.name }}
{{- end }}

{{/* The Ray resource a worker group advertises and its pools' replicas ask for. */}}
{{- define "flashvqa.groupResource" -}}
{{- printf "worker-group-%s" . }}
{{- end }}

{{- define "flashvqa.redisName" -}}
{{- printf "%s-redis" (include "flashvqa.fullname" .) }}
{{- end }}

{{- define "flashvqa.redisSecretName" -}}
{{- default (include "flashvqa.redisName" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{/* The API Service (a KubeRay serve Service). */}}
{{- define "flashvqa.serviceName" -}}
{{- include "flashvqa.fullname" . }}
{{- end }}
