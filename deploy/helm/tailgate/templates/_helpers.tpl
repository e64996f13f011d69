{{/* The release's name for objects: <release>-tailgate, or the release name when it holds "tailgate". */}}
{{- define "tailgate.fullname" -}}
{{- if contains "tailgate" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-tailgate" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tailgate.selectorLabels" -}}
app.kubernetes.io/name: tailgate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tailgate.labels" -}}
{{ include "tailgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Whether to render a Prometheus Operator object: enabled: true, or auto and the API is served. */}}
{{- define "tailgate.promOperator" -}}
{{- $v := toString .enabled -}}
{{- if or (eq $v "true") (and (eq $v "auto") (.root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}true{{- end -}}
{{- end -}}

{{/* tailgate.yaml: the user's config with what the pod decides set over it. */}}
{{- define "tailgate.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $server := get $cfg "server" | default dict -}}
{{- $_ := set $server "api" "0.0.0.0:8080" -}}
{{- $_ := set $server "shutdown_timeout" (printf "%ds" (int .Values.shutdownTimeoutSeconds)) -}}
{{- $_ := set $cfg "server" $server -}}
{{- $ingest := get $cfg "ingest" | default dict -}}
{{- $_ := set $ingest "otlp_grpc" "0.0.0.0:4317" -}}
{{- $_ := set $ingest "otlp_http" "0.0.0.0:4318" -}}
{{- $storage := get $cfg "storage" | default dict -}}
{{- $_ := set $storage "path" "/data" -}}
{{- if .Values.postgres.existingSecret -}}
{{- $_ := set $storage "postgres_file" "/etc/tailgate/postgres/dsn" -}}
{{- end -}}
{{- $_ := set $cfg "storage" $storage -}}
{{- $auth := get $cfg "auth" | default dict -}}
{{- if .Values.tokens -}}
{{- $tokens := list -}}
{{- range .Values.tokens -}}
{{- $t := dict "name" .name "file" (printf "/etc/tailgate/tokens/%s" .name) "scopes" .scopes -}}
{{- if .services }}{{ $_ := set $t "services" .services }}{{ end -}}
{{- $tokens = append $tokens $t -}}
{{- end -}}
{{- $_ := set $auth "tokens" $tokens -}}
{{- end -}}
{{- if .Values.tls.existingSecret -}}
{{- $_ := set $auth "tls" (mergeOverwrite (get $auth "tls" | default dict) (dict "cert_file" "/etc/tailgate/tls/tls.crt" "key_file" "/etc/tailgate/tls/tls.key")) -}}
{{- $_ := set $ingest "tls" (mergeOverwrite (get $ingest "tls" | default dict) (dict "cert_file" "/etc/tailgate/tls/tls.crt" "key_file" "/etc/tailgate/tls/tls.key")) -}}
{{- end -}}
{{- $_ := set $cfg "ingest" $ingest -}}
{{- $_ := set $cfg "auth" $auth -}}
{{- toYaml $cfg -}}
{{- end -}}
