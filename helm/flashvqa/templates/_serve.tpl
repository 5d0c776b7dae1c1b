{{/*
The Serve config (serveConfigV2). Its base is files/serve_config.yaml, the file `flashvqa serve` deploys
locally; serve.args and then the cluster's settings (model path, auth, each pool's replicas and placement)
are merged over that file's application args. Nothing here restates a default of the application.
*/}}

{{- define "flashvqa.serveFile" -}}
{{- $file := .Files.Get "files/serve_config.yaml" | fromYaml }}
{{- if not (and (kindIs "map" $file) $file.applications (eq (len $file.applications) 1)) }}
{{- fail "files/serve_config.yaml (a link to the repository's serve_config.yaml) must hold one Serve application" }}
{{- end }}
{{- toJson $file }}
{{- end }}

{{/* Deep merge like services/serve_config.py `merge`: mappings merge key by key; any other value (false, 0 and null included) replaces. */}}
{{- define "flashvqa.merge" -}}
{{- $merged := deepCopy .base }}
{{- range $key, $value := .override }}
{{- if and (kindIs "map" $value) (kindIs "map" (get $merged $key)) }}
{{- $_ := set $merged $key (include "flashvqa.merge" (dict "base" (get $merged $key) "override" $value) | fromJson) }}
{{- else }}
{{- $_ := set $merged $key $value }}
{{- end }}
{{- end }}
{{- toJson $merged }}
{{- end }}

{{/* One pool's Serve options (AppArgs.DeploymentArgs fields) from serve.<pool>. */}}
{{- define "flashvqa.poolArgs" -}}
{{- $pool := . }}
{{- $args := dict }}
{{- if $pool.autoscaling.enabled }}
{{- $autoscaling := dict "min_replicas" (int $pool.autoscaling.minReplicas) "max_replicas" (int $pool.autoscaling.maxReplicas) }}
{{- /* The targets and delays left null keep serve_config.yaml's (the pool's policy, see services/autoscaling). */}}
{{- range $valueName, $argName := dict "targetOngoingRequests" "target_ongoing_requests" "targetMegapixelsPerReplica" "target_megapixels_per_replica" "targetSequencesPerReplica" "target_sequences_per_replica" "targetKvCacheUsage" "target_kv_cache_usage" "upscaleDelayS" "upscale_delay_s" "downscaleDelayS" "downscale_delay_s" }}
{{- if and (hasKey $pool.autoscaling $valueName) (not (kindIs "invalid" (get $pool.autoscaling $valueName))) }}
{{- $_ := set $autoscaling $argName (get $pool.autoscaling $valueName) }}
{{- end }}
{{- end }}
{{- $_ := set $args "autoscaling_config" $autoscaling }}
{{- else }}
{{- /* A fixed pool: the file's autoscaling, if any, does not apply. */}}
{{- $_ := set $args "autoscaling_config" nil }}
{{- if not (kindIs "invalid" $pool.replicas) }}
{{- $_ := set $args "num_replicas" (int $pool.replicas) }}
{{- end }}
{{- end }}
{{- range $valueName, $argName := dict "maxOngoingRequests" "max_ongoing_requests" "maxQueuedRequests" "max_queued_requests" "torchThreads" "torch_threads" }}
{{- if and (hasKey $pool $valueName) (not (kindIs "invalid" (get $pool $valueName))) }}
{{- $_ := set $args $argName (int (get $pool $valueName)) }}
{{- end }}
{{- end }}
{{- $actor := dict "num_cpus" $pool.numCpus "resources" (dict (include "flashvqa.groupResource" $pool.workerGroup) 1) }}
{{- if gt (float64 $pool.numGpus) 0.0 }}
{{- $_ := set $actor "num_gpus" $pool.numGpus }}
{{- end }}
{{- $_ := set $args "ray_actor_options" $actor }}
{{- toJson $args }}
{{- end }}

{{/* decoder.lora (LoRAArgs) from serve.decoder.lora: the adapters given and the limits that are not null. */}}
{{- define "flashvqa.loraArgs" -}}
{{- $lora := . }}
{{- $args := dict }}
{{- with $lora.adapters }}
{{- $_ := set $args "adapters" . }}
{{- end }}
{{- range $valueName, $argName := dict "maxLoaded" "max_loaded" "maxRank" "max_rank" "adapterRoot" "adapter_root" "maxHeld" "max_held" }}
{{- if and (hasKey $lora $valueName) (not (kindIs "invalid" (get $lora $valueName))) }}
{{- $_ := set $args $argName (get $lora $valueName) }}
{{- end }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/* What the cluster sets over the file's args. */}}
{{- define "flashvqa.clusterArgs" -}}
{{- $args := dict "model" (include "flashvqa.modelPath" .) }}
{{- with .Values.model.servedModelName }}
{{- $_ := set $args "served_model_name" . }}
{{- end }}
{{- range $pool := list "encoder" "decoder" "gateway" }}
{{- $_ := set $args $pool (include "flashvqa.poolArgs" (get $.Values.serve $pool) | fromJson) }}
{{- end }}
{{- with include "flashvqa.loraArgs" .Values.serve.decoder.lora | fromJson }}
{{- $_ := set $args.decoder "lora" . }}
{{- end }}
{{- $_ := set $args.gateway "auth" (dict "allow_anonymous" .Values.auth.allowAnonymous) }}
{{- toJson $args }}
{{- end }}

{{- define "flashvqa.serveConfig" -}}
{{- $file := include "flashvqa.serveFile" . | fromJson }}
{{- $application := first $file.applications }}
{{- $args := include "flashvqa.merge" (dict "base" ($application.args | default dict) "override" .Values.serve.args) | fromJson }}
{{- $args = include "flashvqa.merge" (dict "base" $args "override" (include "flashvqa.clusterArgs" . | fromJson)) | fromJson }}
{{- range $pool := list "encoder" "decoder" "gateway" }}
{{- if (get $.Values.serve $pool).autoscaling.enabled }}
{{- $_ := unset (get $args $pool) "num_replicas" }}
{{- end }}
{{- end }}
{{- $application = merge (dict "args" $args) (omit $application "args") }}
{{- toYaml (merge (dict "applications" (list $application)) (omit $file "applications")) }}
{{- end }}

{{/* The port Serve's proxies listen on, from the same file. */}}
{{- define "flashvqa.servePort" -}}
{{- $file := include "flashvqa.serveFile" . | fromJson }}
{{- int (dig "http_options" "port" 8000 $file) }}
{{- end }}
