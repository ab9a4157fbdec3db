{{/* Names and labels. */}}
{{- define "driftline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftline.fullname" -}}
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

{{- define "driftline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "driftline.labels" -}}
helm.sh/chart: {{ include "driftline.chart" . }}
{{ include "driftline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "driftline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "driftline.saslSecretName" -}}
{{- default (printf "%s-kafka" (include "driftline.fullname" .)) .Values.kafka.sasl.existingSecret -}}
{{- end -}}

{{/*
security.protocol from kafka.sasl.enabled and kafka.tls.enabled.
*/}}
{{- define "driftline.protocol" -}}
{{- printf "%s%s" (ternary "SASL_" "" .Values.kafka.sasl.enabled) (ternary "SSL" "PLAINTEXT" .Values.kafka.tls.enabled) -}}
{{- end -}}

{{/*
The driftline config file: .Values.config, plus what the kafka.* values imply (protocol,
SASL mechanism, TLS file paths) and runtime.http_host/http_port. Credentials never go in
here: they come from Secrets through DRIFTLINE_KAFKA__SECURITY__* environment variables,
and a key that names a password, secret or credential anywhere in it fails the rendering.
*/}}
{{- define "driftline.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $kafka := default dict (get $config "kafka") -}}
{{- $security := default dict (get $kafka "security") -}}
{{- $protocol := include "driftline.protocol" . -}}
{{- with (get $security "protocol") -}}
{{- if ne . $protocol -}}
{{- fail (printf "config.kafka.security.protocol: %s contradicts kafka.sasl.enabled=%v and kafka.tls.enabled=%v (which give %s); remove it or change those" . $.Values.kafka.sasl.enabled $.Values.kafka.tls.enabled $protocol) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $security "protocol" $protocol -}}
{{- with .Values.kafka.sasl -}}
{{- if .enabled -}}
{{- $_ := set $security "sasl_mechanism" .mechanism -}}
{{- end -}}
{{- end -}}
{{- with .Values.kafka.tls -}}
{{- if .enabled -}}
{{- $_ := set $security "ssl_cafile" (printf "%s/%s" .mountPath .caKey) -}}
{{- if .certKey -}}
{{- $_ := set $security "ssl_certfile" (printf "%s/%s" .mountPath .certKey) -}}
{{- end -}}
{{- if .keyKey -}}
{{- $_ := set $security "ssl_keyfile" (printf "%s/%s" .mountPath .keyKey) -}}
{{- end -}}
{{- $_ := set $security "ssl_check_hostname" .checkHostname -}}
{{- end -}}
{{- end -}}
{{- $_ := set $kafka "security" $security -}}
{{- $_ := set $config "kafka" $kafka -}}
{{- $runtime := default dict (get $config "runtime") -}}
{{- $_ := set $runtime "http_host" .Values.httpHost -}}
{{- $_ := set $runtime "http_port" (int .Values.httpPort) -}}
{{- $_ := set $config "runtime" $runtime -}}
{{- $limits := default dict (get $config "limits") -}}
{{- if not (hasKey $limits "max_keys") -}}
{{- $_ := set $limits "max_keys" (include "driftline.maxKeys" . | int) -}}
{{- end -}}
{{- $_ := set $config "limits" $limits -}}
{{- $yaml := toYaml $config -}}
{{- range regexFindAll "(?im)^\\s*(- )?[\"']?[\\w.-]*(password|passwd|secret|credential)[\\w.-]*[\"']?\\s*:" $yaml -1 -}}
{{- fail (printf "config: %s a secret may not go into the ConfigMap; give it through a Secret (kafka.sasl, kafka.tls.keyPassword or extraEnv with secretKeyRef)" (trim .)) -}}
{{- end -}}
{{- $yaml -}}
{{- end -}}

{{/*
The sidecar container. A parent chart that renders its own pod can include it in
its containers list, e.g. "- include driftline.sidecarContainer . | nindent 10" in
template braces (with the driftline values under the same keys).
*/}}
{{- define "driftline.sidecarContainer" -}}
name: driftline
image: {{ include "driftline.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["run", "--config", "/etc/driftline/driftline.yaml"]
env:
  # The transactional id defaults to driftline-$POD_NAME: stable for the pod, unique
  # in the group; a restarted container fences its zombie predecessor.
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
  {{- if .Values.kafka.sasl.enabled }}
  - name: DRIFTLINE_KAFKA__SECURITY__SASL_USERNAME
    valueFrom:
      secretKeyRef:
        name: {{ include "driftline.saslSecretName" . }}
        key: {{ .Values.kafka.sasl.usernameKey }}
  - name: DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "driftline.saslSecretName" . }}
        key: {{ .Values.kafka.sasl.passwordKey }}
  {{- end }}
  {{- if .Values.kafka.tls.keyPassword.existingSecret }}
  - name: DRIFTLINE_KAFKA__SECURITY__SSL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .Values.kafka.tls.keyPassword.existingSecret }}
        key: {{ .Values.kafka.tls.keyPassword.key }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - name: metrics
    containerPort: {{ .Values.httpPort }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml .Values.livenessProbe | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml .Values.readinessProbe | nindent 2 }}
resources:
  {{- include "driftline.resources" . | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: driftline-config
    mountPath: /etc/driftline/driftline.yaml
    subPath: driftline.yaml
    readOnly: true
  - name: driftline-tmp
    mountPath: /tmp
  {{- if .Values.kafka.tls.enabled }}
  - name: driftline-kafka-tls
    mountPath: {{ .Values.kafka.tls.mountPath }}
    readOnly: true
  {{- end }}
{{- end -}}

{{/*
Memory from .Values.sizing (README "Sizing"): a request of baseMiB + models x (modelKiB + the
label join), the state of models at the end of their warm-up (the most a model of the default
set holds); a limit of baseMiB + models x (peakModelKiB + the label join), what a sidecar
restoring such models from the changelog peaked at. The label join is pendingPerModel
predictions waiting for their label at pendingBytes each. A memory given under
.Values.resources wins.
*/}}
{{- define "driftline.joinKiB" -}}
{{- with .Values.sizing -}}
{{- div (mul (int .models) (mul (int .pendingPerModel) (int .pendingBytes))) 1024 -}}
{{- end -}}
{{- end -}}

{{- define "driftline.memoryRequestMiB" -}}
{{- $join := include "driftline.joinKiB" . | int -}}
{{- with .Values.sizing -}}
{{- add (int .baseMiB) (div (add (mul (int .models) (int .modelKiB)) $join) 1024) -}}
{{- end -}}
{{- end -}}

{{- define "driftline.memoryLimitMiB" -}}
{{- $join := include "driftline.joinKiB" . | int -}}
{{- with .Values.sizing -}}
{{- add (int .baseMiB) (div (add (mul (int .models) (int .peakModelKiB)) $join) 1024) -}}
{{- end -}}
{{- end -}}

{{- define "driftline.resources" -}}
{{- $resources := deepCopy .Values.resources -}}
{{- $requests := default dict (get $resources "requests") -}}
{{- if not (hasKey $requests "memory") -}}
{{- $_ := set $requests "memory" (printf "%sMi" (include "driftline.memoryRequestMiB" .)) -}}
{{- end -}}
{{- $_ := set $resources "requests" $requests -}}
{{- $limits := default dict (get $resources "limits") -}}
{{- if not (hasKey $limits "memory") -}}
{{- $_ := set $limits "memory" (printf "%sMi" (include "driftline.memoryLimitMiB" .)) -}}
{{- end -}}
{{- $_ := set $resources "limits" $limits -}}
{{- toYaml $resources -}}
{{- end -}}

{{/*
limits.max_keys of the sidecar's config (unless config.limits.max_keys is set): the
detectors the memory limit holds beyond the process, at sizing.keyKiB each (a model's peak
over the default set's 11 detectors), per partition.
*/}}
{{- define "driftline.maxKeys" -}}
{{- $spare := sub (include "driftline.memoryLimitMiB" . | int) (int .Values.sizing.baseMiB) -}}
{{- max 1 (div (mul $spare 1024) (int .Values.sizing.keyKiB)) -}}
{{- end -}}
