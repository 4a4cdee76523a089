{{/*
Names, labels and the rendered gateway.yaml. Everything the templates share lives here.
*/}}

{{- define "animate3d-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or just the release name when it already contains the chart name. */}}
{{- define "animate3d-gateway.fullname" -}}
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

{{- define "animate3d-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "animate3d-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "animate3d-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "animate3d-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "animate3d-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "animate3d-gateway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the account client secrets: existingSecret or the chart's own. */}}
{{- define "animate3d-gateway.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-accounts" (include "animate3d-gateway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "animate3d-gateway.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Where the ConfigMap is mounted and the file the gateway is started with. */}}
{{- define "animate3d-gateway.configDir" -}}/etc/animate3d-gateway{{- end -}}
{{- define "animate3d-gateway.configPath" -}}/etc/animate3d-gateway/gateway.yaml{{- end -}}

{{/* grpc or http: which listener the kubelet probes. */}}
{{- define "animate3d-gateway.probeType" -}}
{{- $t := .Values.probes.type -}}
{{- if eq $t "auto" -}}
{{- if .Values.tls.enabled -}}http{{- else -}}grpc{{- end -}}
{{- else if or (eq $t "grpc") (eq $t "http") -}}
{{- $t -}}
{{- else -}}
{{- fail (printf "probes.type must be auto, grpc or http, not %q" $t) -}}
{{- end -}}
{{- end -}}

{{/* preStop sleep + drain grace + 10 s margin, so that a draining gateway is never SIGKILLed. */}}
{{- define "animate3d-gateway.terminationGracePeriodSeconds" -}}
{{- $g := .Values.gateway -}}
{{- if not (kindIs "invalid" $g.terminationGracePeriodSeconds) -}}
{{- int $g.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add (int $g.preStopSleepSeconds) (div (add (int $g.graceMs) 999) 1000) 10 -}}
{{- end -}}
{{- end -}}

{{/*
The gateway's configuration file. Keys the chart owns (listen, state.path, tls, client_secret_file)
are set here so that they always match the pod's ports and mounts; the rest of `config` is copied.
Inline secrets and plain API keys are refused: the ConfigMap must never carry a secret.
*/}}
{{- define "animate3d-gateway.config" -}}
{{- $v := .Values -}}
{{- $c := $v.config -}}
{{- range $k, $from := dict "listen" "ports and listenAddress" "tls" "the tls values" -}}
{{- if hasKey $c $k -}}
{{- fail (printf "config.%s is set by the chart from %s; remove it from config" $k $from) -}}
{{- end -}}
{{- end -}}
{{- /* Every other key of config is copied as written (log, upstream, cache, max_message_bytes...). */ -}}
{{- $cfg := omit (deepCopy $c) "extra" "accounts" "tenants" "state" -}}
{{- $_ := set $cfg "listen" (dict "grpc" (printf "%s:%d" $v.listenAddress (int $v.ports.grpc)) "http" (printf "%s:%d" $v.listenAddress (int $v.ports.http))) -}}
{{- $state := deepCopy (default dict $c.state) -}}
{{- if not (or (get $state "memory") (hasKey $state "path")) -}}
{{- $_ := set $state "path" (printf "%s/gateway.db" $v.persistence.mountPath) -}}
{{- end -}}
{{- $_ := set $cfg "state" $state -}}
{{- if not $c.accounts -}}
{{- fail "config.accounts: at least one upstream account is needed" -}}
{{- end -}}
{{- $accounts := list -}}
{{- range $i, $a := $c.accounts -}}
{{- if not $a.name -}}
{{- fail (printf "config.accounts[%d]: name is required" $i) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9._-]+$" $a.name) -}}
{{- fail (printf "config.accounts[%d]: name %q must match [A-Za-z0-9._-]+ (it is a Secret key)" $i $a.name) -}}
{{- end -}}
{{- range $bad := list "client_secret" "secret" "password" -}}
{{- if hasKey $a $bad -}}
{{- fail (printf "config.accounts[%s]: %s must not be inline; put it in secrets.accounts.%s or the existingSecret" $a.name $bad $a.name) -}}
{{- end -}}
{{- end -}}
{{- $acc := deepCopy $a -}}
{{- if not (or (hasKey $acc "client_secret_file") (hasKey $acc "client_secret_env")) -}}
{{- $_ := set $acc "client_secret_file" (printf "%s/%s" $v.secrets.mountPath $a.name) -}}
{{- end -}}
{{- $accounts = append $accounts $acc -}}
{{- end -}}
{{- $_ := set $cfg "accounts" $accounts -}}
{{- range $t := $c.tenants -}}
{{- range $j, $k := $t.keys -}}
{{- if or (hasKey $k "key") (not (regexMatch "^[0-9a-f]{64}$" (toString $k.sha256))) -}}
{{- fail (printf "config.tenants[%s].keys[%d]: give sha256 (64 lowercase hex digits of the key's SHA-256), never the key itself" $t.name $j) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "tenants" (deepCopy (default list $c.tenants)) -}}
{{- if $v.tls.enabled -}}
{{- if not $v.tls.secretName -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" $v.tls.mountPath) "key_file" (printf "%s/tls.key" $v.tls.mountPath) -}}
{{- if $v.tls.clientCA -}}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" $v.tls.mountPath) -}}
{{- end -}}
{{- $_ := set $cfg "tls" $tls -}}
{{- end -}}
{{- $cfg = merge $cfg (deepCopy (default dict $c.extra)) -}}
# Rendered by the animate3d-gateway Helm chart from its values; edit the values, not this file.
{{ toYaml $cfg }}
{{- end -}}

{{/* Read-only mounts both the gateway and its check-config init container need. */}}
{{- define "animate3d-gateway.configMounts" -}}
- name: config
  mountPath: {{ include "animate3d-gateway.configDir" . }}
  readOnly: true
- name: {{ ternary "account-secrets-copy" "account-secrets" (eq (include "animate3d-gateway.secretDelivery" .) "copy") }}
  mountPath: {{ .Values.secrets.mountPath }}
  readOnly: true
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ .Values.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* copy or mount: how the account secret files reach secrets.mountPath (see values.yaml). */}}
{{- define "animate3d-gateway.secretDelivery" -}}
{{- $d := .Values.secrets.delivery -}}
{{- if not (or (eq $d "copy") (eq $d "mount")) -}}
{{- fail (printf "secrets.delivery must be copy or mount, not %q" $d) -}}
{{- end -}}
{{- $d -}}
{{- end -}}

{{/* Where the copy-secrets init container sees the Secret volume itself. */}}
{{- define "animate3d-gateway.secretSourceDir" -}}/var/run/secrets/animate3d-source{{- end -}}
