{{/*
Names. Kubernetes names are at most 63 characters; each component adds a suffix of at
most 17 ("-scoring-headless"), so the base name stops at 46.
*/}}
{{- define "vitals.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 46 | trimSuffix "-" }}
{{- end }}

{{- define "vitals.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vitals.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object of a component: (dict "root" $ "component" "ingest").
*/}}
{{- define "vitals.labels" -}}
helm.sh/chart: {{ include "vitals.chart" .root }}
{{ include "vitals.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: vitals
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vitals.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vitals.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .role }}
vitals/alerts-role: {{ . }}
{{- end }}
{{- end }}

{{- define "vitals.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "vitals.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vitals.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret the credentials come from: the chart's (secrets.create) or one made beforehand.
*/}}
{{- define "vitals.secretName" -}}
{{- default (include "vitals.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
Every credential: its key in secrets.values, the variable (and Secret key) it becomes,
whether the services cannot start without it (the console's API key: with an OIDC
issuer), and which containers read it. One table, so the Secret, the hook Secret and
every pod's env agree.
*/}}
{{- define "vitals.credentials" -}}
- {value: ingestDatabaseUrl, env: VITALS_INGEST_DATABASE_URL, required: true, containers: [ingest, migrate]}
- {value: scoringDatabaseUrl, env: VITALS_SCORING_DATABASE_URL, required: true, containers: [scoring, migrate]}
- {value: alertsDatabaseUrl, env: VITALS_ALERTS_DATABASE_URL, required: true, containers: [alerts, migrate]}
- {value: alertsSecretsKey, env: VITALS_ALERTS_SECRETS_KEY, required: true, containers: [alerts, migrate]}
- {value: alertsAdminToken, env: VITALS_ALERTS_ADMIN_TOKEN, required: false, containers: [alerts]}
- {value: alertsWebhookUrl, env: VITALS_ALERTS_WEBHOOK_URL, required: false, containers: [alerts]}
- {value: alertsWebhookSecret, env: VITALS_ALERTS_WEBHOOK_SECRET, required: false, containers: [alerts]}
- {value: ingestStripeWebhookSecrets, env: VITALS_INGEST_STRIPE_WEBHOOK_SECRETS, required: false, containers: [ingest]}
- {value: consoleSessionKey, env: VITALS_CONSOLE_SESSION_KEY, required: true, containers: [console]}
- {value: consoleOidcClientSecret, env: VITALS_CONSOLE_OIDC_CLIENT_SECRET, required: false, containers: [console]}
- {value: consoleApiKey, env: VITALS_CONSOLE_API_KEY, required: {{ ne .Values.console.oidc.issuer "" }}, containers: [console]}
{{- end }}

{{/*
The containers this release runs.
*/}}
{{- define "vitals.enabledContainers" -}}
{{- $enabled := list }}
{{- range $container := list "ingest" "scoring" "alerts" "console" }}
{{- if (index $.Values $container).enabled }}
{{- $enabled = append $enabled $container }}
{{- end }}
{{- end }}
{{- if .Values.migrations.enabled }}
{{- $enabled = append $enabled "migrate" }}
{{- end }}
{{- toYaml $enabled }}
{{- end }}

{{/*
env entries of a container's credentials, each a secretKeyRef into `secretName`:
(dict "root" $ "container" "alerts" "secretName" "..."). Optional ones may be missing
from a Secret made beforehand.
*/}}
{{- define "vitals.credentialEnv" -}}
{{- $root := .root }}
{{- $container := .container }}
{{- $secretName := .secretName }}
{{- range (include "vitals.credentials" $root | fromYamlArray) }}
{{- if has $container .containers }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ .env }}
      {{- if not .required }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Secret data of the credentials set in secrets.values: (dict "root" $ "container" "migrate")
for only those one container reads, or (dict "root" $) for all. Required ones must be set.
*/}}
{{- define "vitals.credentialData" -}}
{{- $values := .root.Values.secrets.values }}
{{- $container := .container }}
{{- $enabled := include "vitals.enabledContainers" .root | fromYamlArray }}
{{- range (include "vitals.credentials" .root | fromYamlArray) }}
{{- if or (not $container) (has $container .containers) }}
{{- $value := get $values .value }}
{{- $needed := false }}
{{- range .containers }}
{{- if has . $enabled }}
{{- $needed = true }}
{{- end }}
{{- end }}
{{- if and .required $needed }}
{{- $value = required (printf "secrets.values.%s is required with secrets.create (%s)" .value .env) $value }}
{{- end }}
{{- if $value }}
{{ .env }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A setting's value as a string: whole numbers without an exponent, maps and lists as JSON
(VITALS_INGEST_STRIPE_CUSTOMER_ACCOUNTS).
*/}}
{{- define "vitals.settingValue" -}}
{{- if or (kindIs "map" .) (kindIs "slice" .) }}
{{- toJson . }}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
ConfigMap data: the settings every service reads, then the extra ones (dict "root" $
"settings" (list map...) "kafka" bool "withoutApiKeys" bool). Later maps win. Every
service it is made for serves an API, so each gets the proxies it may believe
X-Forwarded-For from (none unless trustedProxies names them).
*/}}
{{- define "vitals.settingsData" -}}
{{- $root := .root }}
{{- $data := dict "VITALS_ENVIRONMENT" $root.Values.environment "VITALS_LOG_LEVEL" $root.Values.logLevel }}
{{- $_ := set $data "VITALS_TRUSTED_PROXIES" (join "," $root.Values.trustedProxies) }}
{{- if not .withoutApiKeys }}
{{- $_ := set $data "VITALS_API_KEYS_FILE" (printf "%s/api-keys.yaml" $root.Values.apiKeysMountPath) }}
{{- end }}
{{- if .kafka }}
{{- $_ := set $data "VITALS_KAFKA_BOOTSTRAP_SERVERS" $root.Values.kafka.bootstrapServers }}
{{- $_ := set $data "VITALS_TOPIC_PARTITIONS" $root.Values.topics.partitions }}
{{- $_ := set $data "VITALS_TOPIC_REPLICATION_FACTOR" $root.Values.topics.replicationFactor }}
{{- end }}
{{- range (prepend .settings $root.Values.settings) }}
{{- range $name, $value := . }}
{{- $_ := set $data $name $value }}
{{- end }}
{{- end }}
{{- range $name, $value := $data }}
{{ $name }}: {{ include "vitals.settingValue" $value | quote }}
{{- end }}
{{- end }}

{{/*
Pod annotations: checksums of what the chart made for the pod, so that a change to
them rolls the pods (dict "root" $ "configs" (list "ingest/configmap.yaml") "extra" map).
*/}}
{{- define "vitals.podAnnotations" -}}
{{- $root := .root }}
{{- range .configs }}
checksum/{{ . | replace "/" "-" | trimSuffix ".yaml" }}: {{ include (print $root.Template.BasePath "/" .) $root | sha256sum }}
{{- end }}
{{- if $root.Values.secrets.create }}
checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
{{- end }}
{{- if and $root.Values.metrics.podAnnotations .port }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with $root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The parts of a pod spec every Vitals pod shares: (dict "root" $ "component" "ingest"
"values" .Values.ingest "role" ""). Scheduling values of the component, else a soft
spread over nodes.
*/}}
{{- define "vitals.podCommon" -}}
{{- $root := .root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: {{ $root.Values.automountServiceAccountToken }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if hasKey .values "topologySpreadConstraints" }}
topologySpreadConstraints:
  {{- if .values.topologySpreadConstraints }}
  {{- toYaml .values.topologySpreadConstraints | nindent 2 }}
  {{- else }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "vitals.selectorLabels" (dict "root" $root "component" .component "role" .role) | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Probes of a long-running container on its named port "http".
*/}}
{{- define "vitals.probes" -}}
{{- $probes := .Values.probes }}
startupProbe:
  httpGet: {path: /healthz, port: http}
  {{- toYaml $probes.startup | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  {{- toYaml $probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  {{- toYaml $probes.readiness | nindent 2 }}
{{- end }}

{{/*
Volumes of a Vitals pod: /tmp (the only writable place) and, unless (dict "root" $
"withoutApiKeys" true), the API keys file the services check requests against.
*/}}
{{- define "vitals.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmpVolume.sizeLimit }}
{{- if not .withoutApiKeys }}
- name: api-keys
  secret:
    secretName: {{ include "vitals.secretName" .root }}
    items:
      - key: api-keys.yaml
        path: api-keys.yaml
{{- end }}
{{- end }}

{{- define "vitals.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if not .withoutApiKeys }}
- name: api-keys
  mountPath: {{ .root.Values.apiKeysMountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
A PodDisruptionBudget: (dict "root" $ "component" "ingest" "role" "" "pdb" .Values.ingest.pdb
"name" "vitals-ingest").
*/}}
{{- define "vitals.pdb" -}}
{{- if .pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "vitals.labels" . | nindent 4 }}
spec:
  {{- if hasKey .pdb "minAvailable" }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "vitals.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
