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
The gateway's configuration file. Keys the chart owns (listen, state.path, state.postgres,
cluster.expected_replicas, tls, client_secret_file)
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
{{- $_ := set $cfg "listen" (dict "grpc" (printf "%s:%d" $v.listenAddress (int $v.ports.grpc)) "http" (printf "%s:%d" $v.listenAddress (int $v.ports.http)) "rest" (printf "%s:%d" $v.listenAddress (int $v.ports.rest))) -}}
{{- $state := deepCopy (default dict $c.state) -}}
{{- if hasKey $state "postgres" -}}
{{- fail "config.state.postgres is set by the chart from the postgres values (postgres.enabled, postgres.hostaddr, ...), which also mount the password file and allow several replicas; remove it from config" -}}
{{- end -}}
{{- if $v.postgres.enabled -}}
{{- range $k := list "path" "memory" -}}
{{- if hasKey $state $k -}}
{{- fail (printf "config.state.%s is not used with postgres.enabled (the state lives in PostgreSQL); remove it from config" $k) -}}
{{- end -}}
{{- end -}}
{{- $pg := dict "dsn" (include "animate3d-gateway.postgresDsn" .) "password_file" (include "animate3d-gateway.postgresPasswordFile" .) "pool" (int $v.postgres.pool) -}}
{{- $_ := set $state "postgres" $pg -}}
{{- else if not (or (get $state "memory") (hasKey $state "path")) -}}
{{- $_ := set $state "path" (printf "%s/gateway.db" $v.persistence.mountPath) -}}
{{- end -}}
{{- $_ := set $cfg "state" $state -}}
{{- if hasKey (default dict $c.cluster) "expected_replicas" -}}
{{- fail "config.cluster.expected_replicas is set by the chart (from replicaCount, autoscaling.maxReplicas or cluster.expectedReplicas); remove it from config" -}}
{{- end -}}
{{- if $v.postgres.enabled -}}
{{- $cluster := deepCopy (default dict $c.cluster) -}}
{{- $_ := set $cluster "expected_replicas" (int (include "animate3d-gateway.expectedReplicas" .)) -}}
{{- $_ := set $cfg "cluster" $cluster -}}
{{- end -}}
{{- if hasKey $c "redis" -}}
{{- fail "config.redis is set by the chart from the redis values (redis.enabled, redis.hostaddr, ...), which also mount the password and seal key files; remove it from config" -}}
{{- end -}}
{{- if $v.redis.enabled -}}
{{- include "animate3d-gateway.validateRedis" . -}}
{{- $r := $v.redis -}}
{{- $addr := toString $r.hostaddr -}}
{{- $redis := dict "url" (printf "redis://%s:%d/%d" (ternary (printf "[%s]" $addr) $addr (contains ":" $addr)) (int $r.port) (int $r.db)) "key_prefix" (toString $r.keyPrefix) "seal_key_file" (include "animate3d-gateway.redisSealKeyFile" .) -}}
{{- if $r.existingSecret -}}
{{- $_ := set $redis "password_file" (include "animate3d-gateway.redisPasswordFile" .) -}}
{{- end -}}
{{- if not (kindIs "invalid" $r.connectTimeoutMs) -}}
{{- $_ := set $redis "connect_timeout_ms" (int $r.connectTimeoutMs) -}}
{{- end -}}
{{- if not (kindIs "invalid" $r.commandTimeoutMs) -}}
{{- $_ := set $redis "command_timeout_ms" (int $r.commandTimeoutMs) -}}
{{- end -}}
{{- $_ := set $cfg "redis" $redis -}}
{{- end -}}
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
{{- if $v.tls.requireClientCert -}}
{{- $_ := set $tls "client_cert_required" true -}}
{{- end -}}
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
{{- if .Values.postgres.enabled }}
- name: {{ ternary "postgres-secret-copy" "postgres-secret" (eq (include "animate3d-gateway.secretDelivery" .) "copy") }}
  mountPath: {{ .Values.postgres.mountPath }}
  readOnly: true
{{- end }}
{{- if .Values.redis.enabled }}
- name: {{ ternary "redis-secret-copy" "redis-secret" (eq (include "animate3d-gateway.secretDelivery" .) "copy") }}
  mountPath: {{ .Values.redis.mountPath }}
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

{{/*
Where the state lives: postgres (shared by all replicas), sqlite-pvc (one file on a
PersistentVolumeClaim), sqlite-emptydir (one file, lost with the pod) or memory (config.state.memory).
*/}}
{{- define "animate3d-gateway.stateBackend" -}}
{{- if .Values.postgres.enabled -}}postgres
{{- else if get (default dict .Values.config.state) "memory" -}}memory
{{- else if .Values.persistence.enabled -}}sqlite-pvc
{{- else -}}sqlite-emptydir
{{- end -}}
{{- end -}}

{{/*
The chart's refusals about replicas and state, checked once (from deployment.yaml). Only a shared
store lets several pods answer for the same jobs: the SQLite file and the memory store are per pod.
Only Redis makes several pods one gateway to the teams and the upstream (one rate bucket per tenant,
one upstream session per account, webhooks fanned out): required unless cluster.requireRedis=false.
*/}}
{{- define "animate3d-gateway.validateState" -}}
{{- $backend := include "animate3d-gateway.stateBackend" . -}}
{{- if ne $backend "postgres" -}}
{{- $why := printf "without PostgreSQL each pod keeps job, model and webhook ownership and idempotency keys in its own %s, so a job started through one pod is NOT_FOUND through the others; set postgres.enabled and postgres.hostaddr (see docs/operations.md, \"Several replicas\")" (ternary "memory" "SQLite file" (eq $backend "memory")) -}}
{{- if .Values.autoscaling.enabled -}}
{{- fail (printf "autoscaling.enabled needs postgres.enabled: the HPA runs several pods, and %s" $why) -}}
{{- end -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- fail (printf "replicaCount %d needs postgres.enabled: %s" (int .Values.replicaCount) $why) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.cluster.requireRedis (not .Values.redis.enabled) -}}
{{- $why := "without Redis the rate limits would be split per pod (each admits 1/cluster.expected_replicas of every tenant's limit, so a client pinned to one pod gets a fraction of it), each pod would log in upstream on its own, and WatchStatus streams would miss the webhooks other pods receive until their next poll; set redis.enabled, redis.hostaddr and redis.sealKey.existingSecret (see docs/operations.md, \"Several replicas: Redis\"), or set cluster.requireRedis=false to accept that" -}}
{{- if .Values.autoscaling.enabled -}}
{{- fail (printf "autoscaling.enabled needs redis.enabled (cluster.requireRedis): the HPA runs several pods, and %s" $why) -}}
{{- end -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- fail (printf "replicaCount %d needs redis.enabled (cluster.requireRedis): %s" (int .Values.replicaCount) $why) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $backend "sqlite-pvc") .Values.strategy (ne (toString (get .Values.strategy "type")) "Recreate") -}}
{{- fail "strategy: only Recreate works with the SQLite state on a PersistentVolumeClaim: during a RollingUpdate the new pod cannot open the file the old pod still holds (one process per file) or cannot attach the ReadWriteOnce volume on another node, so the rollout never completes; remove strategy, or use postgres.enabled" -}}
{{- end -}}
{{- end -}}

{{/* cluster.expected_replicas: what each replica divides the tenants' rate limits by. */}}
{{- define "animate3d-gateway.expectedReplicas" -}}
{{- $n := 0 -}}
{{- if not (kindIs "invalid" .Values.cluster.expectedReplicas) -}}
{{- $n = int .Values.cluster.expectedReplicas -}}
{{- else if .Values.autoscaling.enabled -}}
{{- $n = int .Values.autoscaling.maxReplicas -}}
{{- else -}}
{{- /* replicaCount 0 (stopped for a restore) still renders a valid config. */ -}}
{{- $n = max 1 (int .Values.replicaCount) -}}
{{- end -}}
{{- if lt $n 1 -}}
{{- fail "cluster.expectedReplicas must be at least 1" -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/* The Secret holding the PostgreSQL password: existingSecret or the chart's own. */}}
{{- define "animate3d-gateway.postgresSecretName" -}}
{{- if .Values.postgres.existingSecret -}}
{{- .Values.postgres.existingSecret -}}
{{- else -}}
{{- printf "%s-postgres" (include "animate3d-gateway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The password file the gateway reads (state.postgres.password_file). */}}
{{- define "animate3d-gateway.postgresPasswordFile" -}}
{{- printf "%s/password" .Values.postgres.mountPath -}}
{{- end -}}

{{/* Where the copy-secrets init container sees the PostgreSQL Secret volume itself. */}}
{{- define "animate3d-gateway.postgresSourceDir" -}}/var/run/secrets/animate3d-postgres-source{{- end -}}

{{/*
state.postgres.dsn in libpq conninfo form, never with a password (the gateway refuses one inline).
The gateway connects without resolving names (libpq resolves host= synchronously, which would
block its event loop), so the address is hostaddr, an IP literal; host is only the name the
server certificate is checked against (sslmode verify-full). Values are checked against plain
character sets instead of being quoted, so nothing can smuggle a second keyword into the string.
*/}}
{{- define "animate3d-gateway.postgresDsn" -}}
{{- $p := .Values.postgres -}}
{{- $addr := toString $p.hostaddr -}}
{{- if not $addr -}}
{{- fail "postgres.enabled needs postgres.hostaddr, the server's IP address: the gateway never resolves names (a lookup would block its event loop); a DNS name goes in postgres.host, for the certificate check" -}}
{{- end -}}
{{- if not (or (regexMatch `^[0-9]{1,3}(\.[0-9]{1,3}){3}$` $addr) (regexMatch "^[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*$" $addr)) -}}
{{- fail (printf "postgres.hostaddr %q must be an IPv4 or IPv6 address, not a name: the gateway never resolves names; a DNS name goes in postgres.host" $addr) -}}
{{- end -}}
{{- $host := toString (default "" $p.host) -}}
{{- if and $host (not (regexMatch "^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$" $host)) -}}
{{- fail (printf "postgres.host %q must be a DNS name (letters, digits, '.', '-')" $host) -}}
{{- end -}}
{{- $port := int $p.port -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail "postgres.port must be 1..65535" -}}
{{- end -}}
{{- range $k := list "database" "user" -}}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_.-]{0,62}$" (toString (get $p $k))) -}}
{{- fail (printf "postgres.%s must be 1..63 of A-Z a-z 0-9 _ . - (starting with a letter or _)" $k) -}}
{{- end -}}
{{- end -}}
{{- $modes := list "disable" "allow" "prefer" "require" "verify-ca" "verify-full" -}}
{{- if not (has (toString $p.sslmode) $modes) -}}
{{- fail (printf "postgres.sslmode must be one of %s" (join ", " $modes)) -}}
{{- end -}}
{{- if and (hasPrefix "verify-" (toString $p.sslmode)) (not $p.caSecret) -}}
{{- fail (printf "postgres.sslmode %s needs postgres.caSecret: the CA certificate that signed the server's certificate (the image has no ~/.postgresql/root.crt)" $p.sslmode) -}}
{{- end -}}
{{- if and (eq (toString $p.sslmode) "verify-full") (not $host) -}}
{{- fail "postgres.sslmode verify-full checks the server certificate against postgres.host: set it to the name in the certificate (postgres.hostaddr stays the address connected to)" -}}
{{- end -}}
{{- if lt (int $p.pool) 1 -}}
{{- fail "postgres.pool must be at least 1" -}}
{{- end -}}
{{- if not (or $p.existingSecret $p.password) -}}
{{- fail "postgres.enabled needs the password: postgres.existingSecret (key postgres.existingSecretKey), or postgres.password (rendered into a Secret the chart owns)" -}}
{{- end -}}
{{- $kv := list -}}
{{- if $host -}}
{{- $kv = append $kv (printf "host=%s" $host) -}}
{{- end -}}
{{- $kv = append $kv (printf "hostaddr=%s" $addr) -}}
{{- $kv = append $kv (printf "port=%d" $port) -}}
{{- $kv = append $kv (printf "dbname=%s" $p.database) -}}
{{- $kv = append $kv (printf "user=%s" $p.user) -}}
{{- $kv = append $kv (printf "sslmode=%s" $p.sslmode) -}}
{{- if $p.caSecret -}}
{{- $kv = append $kv (printf "sslrootcert=%s/ca.crt" $p.mountPath) -}}
{{- end -}}
{{- $owned := list "host" "hostaddr" "port" "dbname" "user" "sslmode" "sslrootcert" -}}
{{- range $k, $val := (default dict $p.params) -}}
{{- if has $k (list "password" "passfile") -}}
{{- fail (printf "postgres.params.%s: the password comes from postgres.existingSecret or postgres.password, never from the connection string" $k) -}}
{{- end -}}
{{- if has $k $owned -}}
{{- fail (printf "postgres.params.%s is set by the chart from the other postgres values; remove it" $k) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z_]{1,64}$" $k) -}}
{{- fail (printf "postgres.params: %q is not a libpq keyword (a-z and _)" $k) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9._:/@%+=,-]{1,256}$" (toString $val)) -}}
{{- fail (printf "postgres.params.%s: the value must be 1..256 of A-Z a-z 0-9 . _ : / @ %% + = , - (no spaces or quotes)" $k) -}}
{{- end -}}
{{- $kv = append $kv (printf "%s=%s" $k (toString $val)) -}}
{{- end -}}
{{- join " " $kv -}}
{{- end -}}

{{/* The Redis files the gateway reads (redis.password_file, redis.seal_key_file). */}}
{{- define "animate3d-gateway.redisPasswordFile" -}}
{{- printf "%s/password" .Values.redis.mountPath -}}
{{- end -}}
{{- define "animate3d-gateway.redisSealKeyFile" -}}
{{- printf "%s/seal.key" .Values.redis.mountPath -}}
{{- end -}}

{{/* Where the copy-secrets init container sees the Redis Secret volume itself. */}}
{{- define "animate3d-gateway.redisSourceDir" -}}/var/run/secrets/animate3d-redis-source{{- end -}}

{{/*
The redis values, checked before they are written into gateway.yaml as redis.url (an IP literal:
hiredis resolves names with a blocking getaddrinfo) and the files beside it. The password never
goes through values: it comes from redis.existingSecret, or there is none.
*/}}
{{- define "animate3d-gateway.validateRedis" -}}
{{- $r := .Values.redis -}}
{{- if not .Values.postgres.enabled -}}
{{- fail "redis.enabled needs postgres.enabled: replicas that share limits and the upstream session through Redis must share their jobs, ownership and idempotency keys too" -}}
{{- end -}}
{{- if hasKey $r "password" -}}
{{- fail "redis.password: the chart takes the Redis password only from a Secret: set redis.existingSecret (key redis.existingSecretKey)" -}}
{{- end -}}
{{- $addr := toString $r.hostaddr -}}
{{- if not $addr -}}
{{- fail "redis.enabled needs redis.hostaddr, the server's IP address: the gateway never resolves names (hiredis would block its event loop in getaddrinfo)" -}}
{{- end -}}
{{- if not (or (regexMatch `^[0-9]{1,3}(\.[0-9]{1,3}){3}$` $addr) (regexMatch "^[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*$" $addr)) -}}
{{- /* Quoted only when it looks like a name: anything else may be a password put in by mistake. */ -}}
{{- if regexMatch "^[A-Za-z0-9.-]{1,253}$" $addr -}}
{{- fail (printf "redis.hostaddr %q must be an IPv4 or IPv6 address, not a name: the gateway never resolves names" $addr) -}}
{{- end -}}
{{- fail "redis.hostaddr must be an IPv4 or IPv6 address (1.2.3.4 or fd00::7, without brackets or port)" -}}
{{- end -}}
{{- $port := int $r.port -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail "redis.port must be 1..65535" -}}
{{- end -}}
{{- if or (lt (int $r.db) 0) (gt (int $r.db) 15) -}}
{{- fail "redis.db must be 0..15" -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9:_.-]{1,32}$" (toString $r.keyPrefix)) -}}
{{- fail "redis.keyPrefix must be 1..32 of A-Z a-z 0-9 : _ . -" -}}
{{- end -}}
{{- if not $r.sealKey.existingSecret -}}
{{- fail "redis.enabled needs redis.sealKey.existingSecret: a Secret holding the 32-byte key (64 hex digits, e.g. openssl rand -hex 32) that seals the upstream session before it is stored in Redis, the same for every replica" -}}
{{- end -}}
{{- range $k, $lim := dict "connectTimeoutMs" (list 100 60000) "commandTimeoutMs" (list 10 10000) -}}
{{- $t := get $r $k -}}
{{- if and (not (kindIs "invalid" $t)) (or (lt (int $t) (int (index $lim 0))) (gt (int $t) (int (index $lim 1)))) -}}
{{- fail (printf "redis.%s must be %d..%d" $k (int (index $lim 0)) (int (index $lim 1))) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The SQLite state's claim: existingClaim, or the chart's own. The name depends on the release only,
never on values that change between upgrades, so every rollout mounts the same file.
*/}}
{{- define "animate3d-gateway.stateClaimName" -}}
{{- if .Values.persistence.existingClaim -}}
{{- .Values.persistence.existingClaim -}}
{{- else -}}
{{- printf "%s-state" (include "animate3d-gateway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The path the public routes (ingress, route.http) carry: config.webhooks.path_prefix, or the
gateway's default, without its last '/' (Ingress Prefix and Gateway API PathPrefix match whole
path elements, so /webhooks/animate3d covers /webhooks/animate3d/<account> and not /webhooksx).
Only the webhooks are public: a prefix that would also route /metrics, /healthz or /readyz is
refused.
*/}}
{{- define "animate3d-gateway.webhookPath" -}}
{{- $c := .Values.config -}}
{{- $p := toString (default "/webhooks/animate3d/" (get (default dict $c.webhooks) "path_prefix")) -}}
{{- $t := trimSuffix "/" $p -}}
{{- if or (not (hasPrefix "/" $p)) (regexMatch "^/*$" $p) (regexMatch "^/+(metrics|healthz|readyz)(/|$)" $t) -}}
{{- fail (printf "config.webhooks.path_prefix %q would make more than the webhooks public through ingress or route.http (/metrics, /healthz and /readyz must stay private): give the webhooks a prefix of their own, e.g. /webhooks/animate3d/" $p) -}}
{{- end -}}
{{- $t -}}
{{- end -}}

{{/* Labels of the `helm test` pod: the release's, but not the selector labels of its pods. */}}
{{- define "animate3d-gateway.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: {{ include "animate3d-gateway.name" . }}
app.kubernetes.io/component: helm-test
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
