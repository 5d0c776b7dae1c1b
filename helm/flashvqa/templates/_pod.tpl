{{/* Environment of every Ray container: the model, secrets from Secrets, OpenTelemetry. */}}
{{- define "flashvqa.rayEnv" -}}
- name: MODEL_PATH
  value: {{ include "flashvqa.modelPath" . | quote }}
- name: HOME
  value: /tmp
- name: HF_HUB_OFFLINE
  value: "1"
- name: RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH
  value: services.gateway.admission.proxy_door:proxy_middlewares
- name: FLASHVQA_OVERLOAD_RETRY_AFTER_MS
  value: {{ .Values.serve.proxy.retryAfterMs | int | quote }}
{{- with .Values.serve.proxy.maxInFlight }}
- name: FLASHVQA_PROXY_MAX_IN_FLIGHT
  value: {{ . | int | quote }}
{{- end }}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "flashvqa.redisSecretName" . }}
      key: {{ .Values.redis.auth.key }}
- name: FLASHVQA_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "flashvqa.redisName" .) | quote }}
{{- else if .Values.redis.urlSecret.name }}
- name: FLASHVQA_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.urlSecret.name }}
      key: {{ .Values.redis.urlSecret.key }}
{{- else }}
- name: FLASHVQA_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
{{- if .Values.auth.existingSecret }}
- name: FLASHVQA_API_KEYS_FILE
  value: {{ printf "/etc/flashvqa/api-keys/%s" .Values.auth.key | quote }}
{{- end }}
{{- if .Values.otel.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .Values.otel.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .Values.otel.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.otel.samplerArg | quote }}
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_RESOURCE_ATTRIBUTES
  {{- $attributes := list "k8s.namespace.name=$(K8S_NAMESPACE)" "k8s.pod.name=$(K8S_POD_NAME)" (printf "service.version=%s" .Chart.AppVersion) (printf "service.namespace=%s" (default (include "flashvqa.fullname" .) .Values.otel.serviceNamespace)) }}
  {{- range $key, $value := .Values.otel.resourceAttributes }}
  {{- $attributes = append $attributes (printf "%s=%s" $key $value) }}
  {{- end }}
  value: {{ join "," $attributes | quote }}
{{- with .Values.otel.headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.otel.headersSecret.key }}
{{- end }}
{{- else }}
- name: OTEL_SDK_DISABLED
  value: "true"
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Init containers that fill the model volume, when opted in. */}}
{{- define "flashvqa.modelInitContainers" -}}
{{- $model := .Values.model }}
{{- if $model.download.enabled }}
- name: model-download
  image: {{ include "flashvqa.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [sh, -c]
  args:
    - |
      set -eu
      if [ -f "$MODEL_PATH/config.json" ]; then echo "flashvqa: $MODEL_PATH holds a model"; exit 0; fi
      partial="$MODEL_PATH.partial-$HOSTNAME"
      hf download "$MODEL_REPO" --revision "$MODEL_REVISION" --local-dir "$partial"
      mv -T "$partial" "$MODEL_PATH" 2>/dev/null || { rm -rf "$partial"; test -f "$MODEL_PATH/config.json"; }
  env:
    - name: MODEL_PATH
      value: {{ include "flashvqa.modelPath" . | quote }}
    - name: MODEL_REPO
      value: {{ $model.download.repo | quote }}
    - name: MODEL_REVISION
      value: {{ $model.download.revision | quote }}
    - name: HOME
      value: /tmp
    {{- with $model.download.endpoint }}
    - name: HF_ENDPOINT
      value: {{ . | quote }}
    {{- end }}
    {{- with $model.download.tokenSecret.name }}
    - name: HF_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: {{ $model.download.tokenSecret.key }}
    {{- end }}
  resources:
    {{- toYaml $model.download.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - {name: model, mountPath: {{ $model.mountPath }}}
    - {name: tmp, mountPath: /tmp}
{{- end }}
{{- if $model.demo.enabled }}
- name: model-demo
  image: {{ include "flashvqa.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [sh, -c]
  args:
    - |
      set -eu
      if [ -f "$MODEL_PATH/config.json" ]; then echo "flashvqa: $MODEL_PATH holds a model"; exit 0; fi
      demo="$(python -c 'from services.demo.shipped import DEMO_MODEL; print(DEMO_MODEL)')"
      mkdir -p "$MODEL_PATH" && cp -R "$demo/." "$MODEL_PATH"
  env:
    - name: MODEL_PATH
      value: {{ include "flashvqa.modelPath" . | quote }}
    - name: HOME
      value: /tmp
  resources:
    {{- toYaml $model.demo.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - {name: model, mountPath: {{ $model.mountPath }}}
    - {name: tmp, mountPath: /tmp}
{{- end }}
{{- end }}

{{/* A volume's source from a chart value holding one of existingClaim, hostPath, emptyDir; writable: an init container fills it. */}}
{{- define "flashvqa.volumeSource" -}}
{{- if .volume.existingClaim }}
persistentVolumeClaim:
  claimName: {{ .volume.existingClaim }}
  readOnly: {{ not .writable }}
{{- else if .volume.hostPath }}
hostPath:
  path: {{ .volume.hostPath }}
  type: {{ ternary "DirectoryOrCreate" "Directory" .writable }}
{{- else }}
emptyDir:
  {{- toYaml .volume.emptyDir | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The pod template of a Ray group. Arguments: root (the chart's context), group (head or a workerGroups
entry), component ("head" or the group's name), containerName.
*/}}
{{- define "flashvqa.rayPod" -}}
{{- $root := .root }}
{{- $group := .group }}
{{- $values := $root.Values }}
{{- $isHead := eq .component "head" }}
{{- $writable := or $values.model.download.enabled $values.model.demo.enabled }}
{{- $lora := $values.serve.decoder.lora }}
{{- $adapters := and $lora.volume (eq .component $values.serve.decoder.workerGroup) }}
metadata:
  labels:
    {{- include "flashvqa.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ ternary "ray-head" "ray-worker" $isHead }}
    flashvqa.io/group: {{ .component }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "flashvqa.serviceAccountName" $root }}
  # The head's autoscaler talks to the Kubernetes API; the workers need no token.
  automountServiceAccountToken: {{ $isHead }}
  {{- with $values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $values.podSecurityContext | nindent 4 }}
  {{- with $group.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $group.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $group.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "flashvqa.modelInitContainers" $root | trim }}
  initContainers:
    {{- . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .containerName }}
      image: {{ include "flashvqa.image" $root }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      env:
        {{- include "flashvqa.rayEnv" $root | nindent 8 }}
      ports:
        - {name: serve, containerPort: {{ include "flashvqa.servePort" $root }}}
        - {name: metrics, containerPort: 8080}
        {{- if $isHead }}
        - {name: gcs, containerPort: 6379}
        - {name: dashboard, containerPort: 8265}
        - {name: client, containerPort: 10001}
        {{- end }}
      resources:
        {{- $resources := deepCopy $group.resources }}
        {{- if and (not $isHead) (gt (float64 $group.gpus) 0.0) }}
        {{- $_ := set $resources.limits "nvidia.com/gpu" (int $group.gpus) }}
        {{- end }}
        {{- toYaml $resources | nindent 8 }}
      securityContext:
        {{- toYaml $values.securityContext | nindent 8 }}
      volumeMounts:
        - {name: model, mountPath: {{ $values.model.mountPath }}, readOnly: true}
        {{- if $adapters }}
        - {name: lora-adapters, mountPath: {{ $lora.mountPath }}, readOnly: true}
        {{- end }}
        - {name: tmp, mountPath: /tmp}
        - {name: dshm, mountPath: /dev/shm}
        {{- if $values.auth.existingSecret }}
        - {name: api-keys, mountPath: /etc/flashvqa/api-keys, readOnly: true}
        {{- end }}
  volumes:
    - name: model
      {{- include "flashvqa.volumeSource" (dict "volume" $values.model.volume "writable" $writable) | nindent 6 }}
    {{- if $adapters }}
    - name: lora-adapters
      {{- include "flashvqa.volumeSource" (dict "volume" $lora.volume "writable" false) | nindent 6 }}
    {{- end }}
    - name: tmp
      emptyDir: {}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $group.shmSize }}
    {{- if $values.auth.existingSecret }}
    - name: api-keys
      secret:
        secretName: {{ $values.auth.existingSecret }}
        items:
          - {key: {{ $values.auth.key }}, path: {{ $values.auth.key }}}
    {{- end }}
{{- end }}
