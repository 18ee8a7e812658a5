{{/* Chart name (app.kubernetes.io/name). */}}
{{- define "wattserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: prefix of every namespaced resource and of the cluster-scoped RBAC. */}}
{{- define "wattserve.fullname" -}}
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
The full name plus "-<suffix>" (args: list ctx suffix), a DNS-1035 label of at most 63
characters (these names are Service names, or share one): dots become dashes, a base that does
not start with a letter (release "1234", "0.1") gets the prefix "ws-", and the BASE is cut to
62 - len(suffix), so a long fullname never swallows the suffix (which made the activator's
objects collide with the operator's).
*/}}
{{- define "wattserve.suffixedName" -}}
{{- $ctx := index . 0 }}{{- $suffix := index . 1 }}
{{- $base := include "wattserve.fullname" $ctx | replace "." "-" }}
{{- if not (regexMatch "^[a-z]" $base) }}{{- $base = printf "ws-%s" $base }}{{- end }}
{{- $base = $base | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/* The activator's name (its ServiceAccount, RBAC, Service and Deployment). */}}
{{- define "wattserve.activatorName" -}}
{{- include "wattserve.suffixedName" (list . "activator") }}
{{- end }}

{{/* The leader-election Lease's name (in the release namespace). */}}
{{- define "wattserve.leaseName" -}}
{{- include "wattserve.suffixedName" (list . "leader") }}
{{- end }}

{{- define "wattserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource: wattserve.labelsFor with no component and no extra labels. */}}
{{- define "wattserve.labels" -}}
{{- include "wattserve.labelsFor" (dict "ctx" .) }}
{{- end }}

{{/*
Labels of a resource, as ONE map (so a key never appears twice): commonLabels, then the
object's own extra labels (args: dict "ctx" . "component" "operator" "extra" MAP "extraPath"
"operator.podLabels"; the extra ones win), then the chart's own labels. The chart's keys
(app.kubernetes.io/name, instance, component, version, managed-by, part-of, helm.sh/chart)
may not be set by values: selectors depend on them, so a value setting one fails, naming it.
toYaml renders the values, so a numeric-looking string (release "1234") stays a string.
*/}}
{{- define "wattserve.labelsFor" -}}
{{- $ctx := .ctx }}
{{- $own := dict "helm.sh/chart" (include "wattserve.chart" $ctx) "app.kubernetes.io/name" (include "wattserve.name" $ctx) "app.kubernetes.io/instance" $ctx.Release.Name "app.kubernetes.io/version" (toString $ctx.Chart.AppVersion) "app.kubernetes.io/managed-by" $ctx.Release.Service "app.kubernetes.io/part-of" "wattserve" }}
{{- with .component }}{{- $_ := set $own "app.kubernetes.io/component" . }}{{- end }}
{{- $reserved := list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" "app.kubernetes.io/component" }}
{{- $out := dict }}
{{- range $src := list (list "commonLabels" $ctx.Values.commonLabels) (list (.extraPath | default "") (.extra | default dict)) }}
{{- range $k, $v := index $src 1 }}
{{- if has $k $reserved }}
{{- fail (printf "%s: the label %q is set by the chart (its selectors use the app.kubernetes.io/* labels); remove it from the values" (index $src 0) $k) }}
{{- end }}
{{- $_ := set $out $k (toString $v) }}
{{- end }}
{{- end }}
{{- range $k, $v := $own }}{{- $_ := set $out $k $v }}{{- end }}
{{- toYaml $out }}
{{- end }}

{{- define "wattserve.instanceLabels" -}}
app.kubernetes.io/name: {{ include "wattserve.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "wattserve.selectorLabels" -}}
{{ include "wattserve.instanceLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "wattserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wattserve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The reference of an image value ({repository, tag, digest, pullPolicy}): repository@digest when
digest is set (the tag is then ignored: the digest alone says which image), else
repository:tag with tag "" = the chart's appVersion.
*/}}
{{- define "wattserve.image" -}}
{{- $img := index . 0 }}{{- $ctx := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $ctx.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/*
The activator's image: its own repository, or "" = the operator's image; then tag, digest and
pullPolicy are the activator's where set, else the operator's.
*/}}
{{- define "wattserve.activatorImage" -}}
{{- $act := .Values.activator.image }}{{- $op := .Values.operator.image }}
{{- if $act.repository }}
{{- toYaml (dict "repository" $act.repository "tag" ($act.tag | default "") "digest" ($act.digest | default "") "pullPolicy" ($act.pullPolicy | default $op.pullPolicy)) }}
{{- else }}
{{- toYaml (dict "repository" $op.repository "tag" ($act.tag | default $op.tag | default "") "digest" ($act.digest | default $op.digest | default "") "pullPolicy" ($act.pullPolicy | default $op.pullPolicy)) }}
{{- end }}
{{- end }}

{{/* The operator's command line. */}}
{{- define "wattserve.command" -}}
- wattserve
- operator
{{- if .Values.operator.namespaces }}
{{- range .Values.operator.namespaces }}
- --namespace
- {{ . | quote }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Dashboard PromQL: a per-pool series ($base, labelled by pool) times a per-pool constant taken
from the ServingPools in the values (field "usd": spec.pricing.usdPerNodeHour, "co2":
spec.carbon.gramsCO2PerKWh); pools not declared in the values use the dashboard variable $var.
Args: (list base field var pools).
*/}}
{{- define "wattserve.dashboard.perPool" -}}
{{- $base := index . 0 }}{{- $field := index . 1 }}{{- $var := index . 2 }}{{- $pools := index . 3 }}
{{- $parts := list }}
{{- range $pools }}
{{- $v := "" }}
{{- if eq $field "usd" }}{{- $v = dig "pricing" "usdPerNodeHour" "" .spec }}{{- else }}{{- $v = dig "carbon" "gramsCO2PerKWh" "" .spec }}{{- end }}
{{- if ne (toString $v) "" }}
{{- $parts = append $parts (printf "label_replace(vector(%v), \"pool\", %q, \"\", \"\")" $v .name) }}
{{- end }}
{{- end }}
{{- if $parts }}
{{- printf "(%s * on(pool) group_left() (%s)) or (%s * $%s)" $base (join " or " $parts) $base $var }}
{{- else }}
{{- printf "%s * $%s" $base $var }}
{{- end }}
{{- end }}

{{/* A Prometheus duration ("1m30s", "500ms") in milliseconds; "" gives 0. */}}
{{- define "wattserve.durationMs" -}}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+" . | int }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- $ms = add $ms (mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit)) }}
{{- end }}
{{- $ms }}
{{- end }}

{{/*
Whether to render a Prometheus Operator monitor (args: list ctx monitorValues): enabled, and
the API server serves monitoring.coreos.com/v1 (else the install would fail "no matches for
kind"), or force is set (helm template without --api-versions, CRDs installed later).
*/}}
{{- define "wattserve.monitorEnabled" -}}
{{- $ctx := index . 0 }}{{- $m := index . 1 }}
{{- if and $m.enabled (or $m.force ($ctx.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{- end }}
{{- end }}

{{/*
The interval and scrapeTimeout lines of a monitor endpoint (args: list valuesPath monitorValues):
"" omits a field (Prometheus's default); a timeout longer than the interval fails.
*/}}
{{- define "wattserve.scrapeTimes" -}}
{{- $path := index . 0 }}{{- $m := index . 1 }}
{{- if and $m.interval $m.scrapeTimeout }}
{{- if gt (include "wattserve.durationMs" $m.scrapeTimeout | int) (include "wattserve.durationMs" $m.interval | int) }}
{{- fail (printf "%s.scrapeTimeout (%s) must not exceed %s.interval (%s): lower it, or set it to \"\" to use Prometheus's default" $path $m.scrapeTimeout $path $m.interval) }}
{{- end }}
{{- end }}
{{- with $m.interval }}
interval: {{ . | quote }}
{{- end }}
{{- with $m.scrapeTimeout }}
scrapeTimeout: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
operator.extraEnv adds variables; it does not replace the chart's own (a second entry of one
name is accepted by the API server with a warning and silently shadows the first). A name the
chart sets, or one given twice, fails naming the value to set instead.
*/}}
{{- define "wattserve.checkExtraEnv" -}}
{{- $owners := dict "WATTSERVE_PROMETHEUS_URL" "set prometheus.url instead" "WATTSERVE_ENERGY_SOURCE" "set energySource instead" "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS" "set autoscaler.intervalSeconds instead" "WATTSERVE_SERVING_IMAGE_CPU" "set serving.image.cpu instead" "WATTSERVE_SERVING_IMAGE_CPU_PULL_POLICY" "set serving.image.cpu.pullPolicy instead" "WATTSERVE_SERVING_IMAGE_GPU" "set serving.image.gpu instead" "WATTSERVE_SERVING_IMAGE_GPU_PULL_POLICY" "set serving.image.gpu.pullPolicy instead" "WATTSERVE_SERVING_IMAGE_RAY_CPU" "set serving.image.rayCpu instead" "WATTSERVE_SERVING_IMPORT_PATH" "set serving.importPath instead" "WATTSERVE_SERVING_PARALLEL" "set serving.parallel instead" "WATTSERVE_SERVING_API_KEY_SECRET" "set serving.apiKeySecret.name instead" "WATTSERVE_SERVING_API_KEY_SECRET_KEY" "set serving.apiKeySecret.key instead" "WATTSERVE_SERVING_NETWORK_POLICY" "set serving.networkPolicy.enabled instead" "WATTSERVE_HEALTH_PORT" "set operator.healthPort instead" "WATTSERVE_METRICS_PORT" "set operator.metricsPort instead" "WATTSERVE_ACTIVATOR_SERVICE" "set activator.enabled instead" "WATTSERVE_LEADER_ELECTION_LEASE" "set operator.leaderElection.enabled instead" "WATTSERVE_LEADER_ELECTION_LEASE_SECONDS" "set operator.leaderElection.leaseDurationSeconds instead" "WATTSERVE_OPERATOR_NAMESPACE" "it is the pod's namespace (downward API)" "WATTSERVE_OPERATOR_POD_NAME" "it is the pod's name (downward API)" "HOME" "it is /tmp, as the root filesystem is read-only" }}
{{- $seen := dict }}
{{- range $i, $e := .extraEnv }}
{{- with get $owners $e.name }}
{{- fail (printf "operator.extraEnv[%d].name: %s is set by the chart: %s" $i $e.name .) }}
{{- end }}
{{- if hasKey $seen $e.name }}
{{- fail (printf "operator.extraEnv[%d].name: %s is already set by operator.extraEnv[%d]; give each name once" $i $e.name (get $seen $e.name)) }}
{{- end }}
{{- $_ := set $seen $e.name $i }}
{{- end }}
{{- end }}
