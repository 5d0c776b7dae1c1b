{{/*
Checks that values.schema.json cannot express (relations between values). Each failure names the values
to change; rayservice.yaml includes this, so `helm install`, `helm template` and `helm lint` stop on them.
*/}}
{{- define "flashvqa.validate" -}}
{{- range $name, $group := .Values.workerGroups }}
{{- if and $group.enabled (gt (float64 $group.minReplicas) (float64 $group.maxReplicas)) }}
{{- fail (printf "workerGroups.%s: minReplicas (%v) is greater than maxReplicas (%v)" $name $group.minReplicas $group.maxReplicas) }}
{{- end }}
{{- end }}
{{- range $poolName := list "encoder" "decoder" "gateway" }}
{{- $pool := get $.Values.serve $poolName }}
{{- if and $pool.autoscaling.enabled (gt (float64 $pool.autoscaling.minReplicas) (float64 $pool.autoscaling.maxReplicas)) }}
{{- fail (printf "serve.%s.autoscaling: minReplicas (%v) is greater than maxReplicas (%v)" $poolName $pool.autoscaling.minReplicas $pool.autoscaling.maxReplicas) }}
{{- end }}
{{- $ownTargets := get (dict "encoder" (list "targetMegapixelsPerReplica") "decoder" (list "targetSequencesPerReplica" "targetKvCacheUsage") "gateway" (list "targetOngoingRequests")) $poolName }}
{{- range $target := list "targetOngoingRequests" "targetMegapixelsPerReplica" "targetSequencesPerReplica" "targetKvCacheUsage" }}
{{- if and (not (has $target $ownTargets)) (hasKey $pool.autoscaling $target) (not (kindIs "invalid" (get $pool.autoscaling $target))) }}
{{- fail (printf "serve.%s.autoscaling.%s: not a target of this pool (its own: %s)" $poolName $target (join ", " $ownTargets)) }}
{{- end }}
{{- end }}
{{- $group := get $.Values.workerGroups $pool.workerGroup }}
{{- if not (and $group $group.enabled) }}
{{- fail (printf "serve.%s.workerGroup: %q is not an enabled worker group (workerGroups.%s.enabled)" $poolName $pool.workerGroup $pool.workerGroup) }}
{{- end }}
{{- if gt (float64 $pool.numGpus) (float64 $group.gpus) }}
{{- fail (printf "serve.%s.numGpus (%v) is more than a pod of workerGroups.%s has (gpus: %v)" $poolName $pool.numGpus $pool.workerGroup $group.gpus) }}
{{- end }}
{{- end }}
{{- range $poolName := list "encoder" "gateway" }}
{{- if hasKey (get $.Values.serve $poolName) "lora" }}
{{- fail (printf "serve.%s.lora: only the decoder serves LoRA adapters (serve.decoder.lora)" $poolName) }}
{{- end }}
{{- end }}
{{- $lora := .Values.serve.decoder.lora }}
{{- if $lora.volume }}
{{- $mount := trimSuffix "/" (clean $lora.mountPath) }}
{{- $paths := dict }}
{{- range $name, $path := $lora.adapters }}
{{- $_ := set $paths (printf "adapters.%s" $name) $path }}
{{- end }}
{{- with $lora.adapterRoot }}
{{- $_ := set $paths "adapterRoot" . }}
{{- end }}
{{- range $where, $path := $paths }}
{{- if not (or (eq (clean $path) $mount) (hasPrefix (printf "%s/" $mount) (clean $path))) }}
{{- fail (printf "serve.decoder.lora.%s: %q is not under serve.decoder.lora.mountPath (%s), where serve.decoder.lora.volume is mounted" $where $path $lora.mountPath) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.redis.url) (not .Values.redis.urlSecret.name) }}
{{- fail "redis: with redis.enabled false, set redis.url or redis.urlSecret.name (an external Redis)" }}
{{- end }}
{{- if and .Values.otel.enabled (not .Values.otel.endpoint) }}
{{- fail "otel.endpoint: required when otel.enabled is true" }}
{{- end }}
{{- end }}
