/* Unit tests for gateway/config/config.c: YAML in, struct gw_config or "file:line: message" errors out. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "auth/caller/perm.h"
#include "gateway/config/config.h"
#include "gateway/base/ratelimit.h"

#define HEX_A "f15424e984f66fb993b9d8e6444ade02adcc714a58b3b50106e98750e4244bfe"
#define HEX_B "d9ac7631ada741dcfc4b59392980617b80ca853433a835ca1baa8a484a35e893"

/* A valid accounts + tenants tail, 11 lines. A case's head goes before it, so head lines count from 1. */
#define BASE                                       \
	"accounts:\n"                              \
	"  - name: sim\n"                          \
	"    base_url: http://127.0.0.1:8090/\n"   \
	"    client_id: cid\n"                     \
	"    client_secret_env: A3D_TEST_SECRET\n" \
	"tenants:\n"                               \
	"  - name: team-a\n"                       \
	"    account: sim\n"                       \
	"    keys:\n"                              \
	"      - sha256: " HEX_A "\n"              \
	"        permissions: [read, write]\n"

#define ACCOUNT_SIM                           \
	"accounts:\n"                         \
	"  - name: sim\n"                     \
	"    base_url: http://127.0.0.1:8090\n" \
	"    client_id: cid\n"                \
	"    client_secret_env: S\n"

/* A valid state.postgres.dsn (plain YAML scalar). */
#define PG_DSN "\"hostaddr=10.0.0.5 dbname=a3d user=gw\""

/* redis: after a valid state.postgres (redis needs it): "redis:" is line 2, its keys from line 3. */
#define RS "state: {postgres: {dsn: " PG_DSN "}}\nredis:\n"
#define R_URL "  url: redis://10.0.0.7:6379/0\n"
#define R_SEAL "  seal_key_file: /k\n"
#define R_GOOD R_URL R_SEAL
#define R_NEEDS_PG                                                                                       \
	"redis needs state.postgres: the replicas that share limits and the upstream session through " \
	"Redis must share their jobs, ownership and idempotency keys too"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define WH_PREFIX_MSG                                                                              \
	"webhooks.path_prefix must start and end with '/', use only letters, digits, '-', '.', '_', " \
	"'~' and '/', and be at most 128 bytes"
#define WH_URL_MSG                                                                                 \
	"webhooks.public_url must be an http:// or https:// URL without credentials, query or "     \
	"fragment, at most 512 bytes"

static char tmpdir[] = "/tmp/a3d-test-config-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

/* Writes text to <tmpdir>/<name>; returns the path (static buffer per call site is enough here). */
static void write_file(const char *name, const char *text, size_t len, char *path, size_t pathlen)
{
	FILE *f;

	snprintf(path, pathlen, "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static int load_text(const char *text, char *path, size_t pathlen, struct gw_config **cfg, struct gw_errors *errs)
{
	write_file("x.yaml", text, strlen(text), path, pathlen);
	return gw_config_load(path, cfg, errs);
}

struct bad_case {
	const char *yaml;
	int line;		/* 0: "file: message" */
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	/* sections before BASE: lines count from the top */
	{ "listen:\n  grcp: 127.0.0.1:1\n" BASE, 2, "unknown key \"grcp\"" },
	{ "lisen:\n  grpc: 127.0.0.1:1\n" BASE, 1, "unknown key \"lisen\"" },
	{ "\"bad\\nkey\\e[31m\": 1\n" BASE, 1, "unknown key \"bad?key?[31m\"" },
	{ "listen:\n  grpc: localhost\n" BASE, 2, "listen.grpc must be host:port, e.g. 127.0.0.1:50051" },
	{ "listen: {grpc: \"127.0.0.1:70000\"}\n" BASE, 1, "listen.grpc must be host:port, e.g. 127.0.0.1:50051" },
	{ "listen: {http: \"[::1]\"}\n" BASE, 1, "listen.http must be host:port, e.g. 127.0.0.1:8080" },
	{ "listen: {grpc: 127.0.0.1:9000, http: 127.0.0.1:9000}\n" BASE, 1, "listen.grpc and listen.http must differ" },
	{ "listen: {rest: \"8081\"}\n" BASE, 1, "listen.rest must be host:port, e.g. 127.0.0.1:8081" },
	{ "listen: {http: 127.0.0.1:9000, rest: 127.0.0.1:9000}\n" BASE, 1,
	  "listen.rest must differ from listen.grpc and listen.http" },
	{ "listen:\n  grpc: 127.0.0.1:1\n  grpc: 127.0.0.1:2\n" BASE, 3, "duplicate key \"grpc\" (first at line 2)" },
	{ "listen: [1, 2]\n" BASE, 1, "listen must be a mapping" },
	{ "listen:\n  grpc: ''\n" BASE, 2, "listen.grpc must not be empty" },
	{ "log:\n  level: loud\n" BASE, 2, "log.level must be debug, info, warn or error" },
	{ "limits:\n  upload_chunk_bytes: 1000000\n" BASE, 2,
	  "limits.upload_chunk_bytes must be a multiple of 256 KiB (262144)" },
	{ "limits:\n  max_message_bytes: -5\n" BASE, 2, "limits.max_message_bytes must be > 0" },
	{ "cache:\n  batch_max: 0\n" BASE, 2, "cache.batch_max must be > 0" },
	{ "cache:\n  batch_max: 501\n" BASE, 2, "cache.batch_max must be <= 500" },
	{ "cache:\n  status_ttl_ms: soon\n" BASE, 2, "cache.status_ttl_ms must be an integer" },
	{ "cache:\n  status_ttl_ms: 1.5\n" BASE, 2, "cache.status_ttl_ms must be an integer" },
	{ "cache:\n  batch_window_ms: -1\n" BASE, 2, "cache.batch_window_ms must be >= 0" },
	{ "upstream:\n  connect_timeout_ms: [1]\n" BASE, 2, "upstream.connect_timeout_ms must be an integer" },
	{ "upstream:\n  max_response_bytes: 99999999999999999999999\n" BASE, 2,
	  "upstream.max_response_bytes must be an integer" },
	{ "tls:\n  cert_file: /c.pem\n" BASE, 1, "tls.cert_file and tls.key_file must be set together" },
	{ "tls:\n  client_ca_file: /ca.pem\n" BASE, 1, "tls.client_ca_file needs tls.cert_file and tls.key_file" },
	{ "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_cert_required: true\n" BASE, 1,
	  "tls.client_cert_required needs tls.client_ca_file (the CA that signs them)" },
	{ "tls:\n  client_cert_required: sometimes\n" BASE, 2,
	  "tls.client_cert_required must be true or false" },
	{ "state:\n  path: /x.db\n  memory: true\n" BASE, 2, "state.path and state.memory: true are exclusive" },
	{ "state:\n  memory: maybe\n" BASE, 2, "state.memory must be true or false" },
	{ "state:\n  memory: false\n" BASE, 2, "state needs path, memory: true or postgres" },
	/* state.postgres and cluster (issue 15); the dsn's own rules are in postgres_dsn_* below */
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n  path: /x.db\n" BASE, 2,
	  "state.postgres and state.path are exclusive (one state backend)" },
	{ "state:\n  memory: true\n  postgres: {dsn: " PG_DSN "}\n" BASE, 3,
	  "state.postgres and state.memory: true are exclusive (one state backend)" },
	{ "state:\n  read_only: true\n  postgres: {dsn: " PG_DSN "}\n" BASE, 3,
	  "state.postgres and state.read_only are exclusive (read_only is for a SQLite file)" },
	{ "state:\n  postgres: {}\n" BASE, 2, "state.postgres needs dsn" },
	{ "state:\n  postgres: [a]\n" BASE, 2, "state.postgres must be a mapping" },
	{ "state:\n  postgres:\n    dsn: ''\n" BASE, 3, "state.postgres.dsn must not be empty" },
	{ "state:\n  postgres:\n    dsn: [a]\n" BASE, 3, "state.postgres.dsn must be a string" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    pool: 0\n" BASE, 4, "state.postgres.pool must be > 0" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    pool: 33\n" BASE, 4, "state.postgres.pool must be <= 32" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    timeout_ms: 99\n" BASE, 4,
	  "state.postgres.timeout_ms must be >= 100" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    timeout_ms: 60001\n" BASE, 4,
	  "state.postgres.timeout_ms must be <= 60000" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    password_file: /p\n    password_env: P\n" BASE, 5,
	  "state.postgres: set only one of password_file or password_env" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    password_env: 1PG\n" BASE, 4,
	  "state.postgres.password_env must be an environment variable's name ([A-Za-z_][A-Za-z0-9_]*)" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    password_file: ''\n" BASE, 4,
	  "state.postgres.password_file must not be empty" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    password: s3cr3t-canary\n" BASE, 4,
	  "state.postgres.password must not be inline; use password_file or password_env" },
	{ "state:\n  postgres:\n    dsn: " PG_DSN "\n    poool: 3\n" BASE, 4, "unknown key \"poool\"" },
	{ "state:\n  postgres:\n    dsn: \"hostaddr=10.0.0.5 dbname=a3d user=gw password=s3cr3t-canary\"\n" BASE, 3,
	  "state.postgres.dsn must not hold a password: use password_file or password_env" },
	{ "state:\n  postgres:\n    dsn: \"host=db.example dbname=a user=u\"\n" BASE, 3,
	  "state.postgres.dsn: host \"db.example\" is a name and there is no hostaddr: libpq resolves names "
	  "synchronously, which would block the event loop; set hostaddr to the server's IP address (host may "
	  "stay, for sslmode verify-full)" },
	{ "cluster:\n  expected_replicas: 2\n" BASE, 2,
	  "cluster.expected_replicas > 1 needs state.postgres: without it each replica keeps its own job, model "
	  "and webhook ownership and idempotency keys, so what one creates is NOT_FOUND through the others" },
	{ "state: {path: /x.db}\ncluster:\n  expected_replicas: 3\n" BASE, 3,
	  "cluster.expected_replicas > 1 needs state.postgres: without it each replica keeps its own job, model "
	  "and webhook ownership and idempotency keys, so what one creates is NOT_FOUND through the others" },
	{ "cluster:\n  expected_replicas: 0\n" BASE, 2, "cluster.expected_replicas must be > 0" },
	{ "cluster:\n  expected_replicas: 1001\n" BASE, 2, "cluster.expected_replicas must be <= 1000" },
	{ "cluster:\n  expected_replicas: many\n" BASE, 2, "cluster.expected_replicas must be an integer" },
	{ "cluster:\n  replicas: 2\n" BASE, 2, "unknown key \"replicas\"" },
	{ "cluster: [2]\n" BASE, 1, "cluster must be a mapping" },
	/* redis (issue 16); the url's own rules are in redis_url_* below */
	{ RS R_SEAL BASE, 3, "redis needs url (e.g. redis://10.0.0.7:6379/0)" },
	{ RS R_URL BASE, 3, "redis needs seal_key_file: a file holding the 32-byte key, the same on every replica, "
			    "that seals the upstream session before it is stored in Redis" },
	{ RS BASE, 2, "redis needs url and seal_key_file" },
	{ "state: {postgres: {dsn: " PG_DSN "}}\nredis: [a]\n" BASE, 2, "redis must be a mapping" },
	{ RS R_GOOD "  url: redis://10.0.0.8\n" BASE, 5, "duplicate key \"url\" (first at line 3)" },
	{ RS R_GOOD "  prefix: x\n" BASE, 5, "unknown key \"prefix\"" },
	{ RS R_SEAL "  url: ''\n" BASE, 4, "redis.url must not be empty" },
	{ RS R_SEAL "  url: [a]\n" BASE, 4, "redis.url must be a string" },
	{ RS R_SEAL "  url: rediss://10.0.0.7:6380/0\n" BASE, 4,
	  "redis.url: rediss:// (TLS) is not supported: hiredis 0.14 has no TLS; connect with redis:// to a TLS "
	  "sidecar on the pod, or let the service mesh encrypt the connection (docs/operations.md, \"Several "
	  "replicas: Redis\")" },
	{ RS R_SEAL "  url: redis://:s3cr3t-canary@10.0.0.7:6379/0\n" BASE, 4,
	  "redis.url must not hold credentials (user:password@): use password_file or password_env" },
	{ RS R_SEAL "  url: redis://redis.example:6379/0\n" BASE, 4,
	  "redis.url: host \"redis.example\" is a name: hiredis resolves names with a blocking getaddrinfo, which "
	  "would stall the event loop; give the server's IP address (IPv6 in [ ])" },
	{ RS R_SEAL "  url: redis://10.0.0.7:6379/16\n" BASE, 4, "redis.url: the database must be 0..15 (redis://IP:port/0)" },
	{ RS R_GOOD "  password: s3cr3t-canary\n" BASE, 5,
	  "redis.password must not be inline; use password_file or password_env" },
	{ RS R_GOOD "  password_file: /p\n  password_env: P\n" BASE, 6,
	  "redis: set only one of password_file or password_env" },
	{ RS R_GOOD "  password_env: 1P\n" BASE, 5,
	  "redis.password_env must be an environment variable's name ([A-Za-z_][A-Za-z0-9_]*)" },
	{ RS R_GOOD "  password_file: ''\n" BASE, 5, "redis.password_file must not be empty" },
	{ RS R_URL "  seal_key_file: ''\n" BASE, 4, "redis.seal_key_file must not be empty" },
	{ RS R_GOOD "  key_prefix: ''\n" BASE, 5, "redis.key_prefix must not be empty" },
	{ RS R_GOOD "  key_prefix: 'a3d prod:'\n" BASE, 5,
	  "redis.key_prefix must be 1..32 bytes of letters, digits, ':', '_', '.' and '-'" },
	{ RS R_GOOD "  key_prefix: 'a3d*'\n" BASE, 5,
	  "redis.key_prefix must be 1..32 bytes of letters, digits, ':', '_', '.' and '-'" },
	{ RS R_GOOD "  key_prefix: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" BASE, 5,
	  "redis.key_prefix must be 1..32 bytes of letters, digits, ':', '_', '.' and '-'" },
	{ RS R_GOOD "  connect_timeout_ms: 99\n" BASE, 5, "redis.connect_timeout_ms must be >= 100" },
	{ RS R_GOOD "  connect_timeout_ms: 60001\n" BASE, 5, "redis.connect_timeout_ms must be <= 60000" },
	{ RS R_GOOD "  command_timeout_ms: 9\n" BASE, 5, "redis.command_timeout_ms must be >= 10" },
	{ RS R_GOOD "  command_timeout_ms: 10001\n" BASE, 5, "redis.command_timeout_ms must be <= 10000" },
	{ RS R_GOOD "  command_timeout_ms: soon\n" BASE, 5, "redis.command_timeout_ms must be an integer" },
	{ RS R_GOOD "  fallback: shared\n" BASE, 5,
	  "redis.fallback must be local (while Redis is unreachable, limits fall back to limit / "
	  "cluster.expected_replicas)" },
	{ RS R_GOOD "  fallback: [local]\n" BASE, 5, "redis.fallback must be a string" },
	{ "redis:\n" R_GOOD BASE, 1, R_NEEDS_PG },
	{ "state: {path: /x.db}\nredis: {url: \"redis://10.0.0.7\", seal_key_file: /k}\n" BASE, 2, R_NEEDS_PG },
	/* webhooks */
	{ "webhooks:\n  path_prefix: hooks/\n" BASE, 2, WH_PREFIX_MSG },
	{ "webhooks:\n  path_prefix: /hooks\n" BASE, 2, WH_PREFIX_MSG },
	{ "webhooks:\n  path_prefix: \"/hooks?x=1/\"\n" BASE, 2, WH_PREFIX_MSG },
	{ "webhooks:\n  path_prefix: /ho%20oks/\n" BASE, 2, WH_PREFIX_MSG },
	{ "webhooks:\n  path_prefix: /a b/\n" BASE, 2, WH_PREFIX_MSG },
	{ "webhooks:\n  path_prefix: /" A64 A64 "/\n" BASE, 2, WH_PREFIX_MSG },	/* 130 bytes */
	{ "webhooks:\n  path_prefix: ''\n" BASE, 2, "webhooks.path_prefix must not be empty" },
	{ "webhooks:\n  path: /x/\n" BASE, 2, "unknown key \"path\"" },
	{ "webhooks: [/x/]\n" BASE, 1, "webhooks must be a mapping" },
	{ "webhooks:\n  public_url: ftp://gw.example.com\n" BASE, 2, WH_URL_MSG },
	{ "webhooks:\n  public_url: https://gw.example.com/?a=1\n" BASE, 2, WH_URL_MSG },
	{ "webhooks:\n  public_url: https://gw.example.com/#x\n" BASE, 2, WH_URL_MSG },
	{ "webhooks:\n  public_url: https://u:p@gw.example.com\n" BASE, 2, WH_URL_MSG },
	{ "webhooks:\n  public_url: https://" A64 A64 A64 A64 A64 A64 A64 A64 "\n" BASE, 2, WH_URL_MSG },
	{ "webhooks:\n  public_url: https://gw.example.com\n" BASE, 1,
	  "webhooks.public_url needs listen.http (deliveries arrive on the HTTP listener)" },
	{ "webhooks:\n  path_token_grace_s: 86401\n" BASE, 2, "webhooks.path_token_grace_s must be <= 86400" },
	{ "webhooks:\n  path_token_grace_s: -1\n" BASE, 2, "webhooks.path_token_grace_s must be >= 0" },
	{ "webhooks:\n  path_token_file: ''\n" BASE, 2, "webhooks.path_token_file must not be empty" },
	{ "webhooks:\n  refresh_per_second: 0\n" BASE, 2, "webhooks.refresh_per_second must be > 0" },
	{ "webhooks:\n  refresh_burst: 0.5\n" BASE, 2, "webhooks.refresh_burst must be >= 1" },
	/* tenant webhooks (issue 17) */
	{ "webhooks:\n  allow_private_destinations: maybe\n" BASE, 2,
	  "webhooks.allow_private_destinations must be true or false" },
	{ "webhooks:\n  upstream_passthrough: 1\n" BASE, 2,
	  "webhooks.upstream_passthrough must be true or false" },
	{ "webhooks:\n  delivery:\n    max_per_endpoint: 0\n" BASE, 3,
	  "webhooks.delivery.max_per_endpoint must be > 0" },
	{ "webhooks:\n  delivery:\n    timeout_ms: 60001\n" BASE, 3,
	  "webhooks.delivery.timeout_ms must be <= 60000" },
	{ "webhooks:\n  delivery:\n    give_up_s: 0\n" BASE, 3, "webhooks.delivery.give_up_s must be > 0" },
	{ "webhooks:\n  delivery:\n    retries: 3\n" BASE, 3, "unknown key \"retries\"" },
	/* uploads, watch (issue 13: long-lived resources) */
	{ "uploads:\n  max_concurrent: 0\n" BASE, 2, "uploads.max_concurrent must be > 0" },
	{ "uploads:\n  max_per_tenant: 1000001\n" BASE, 2, "uploads.max_per_tenant must be <= 1000000" },
	{ "uploads:\n  idle_timeout_ms: 0\n" BASE, 2, "uploads.idle_timeout_ms must be > 0" },
	{ "uploads:\n  idle_timeout_ms: 3600001\n" BASE, 2, "uploads.idle_timeout_ms must be <= 3600000" },
	{ "uploads:\n  max_message_bytes: 0\n" BASE, 2, "uploads.max_message_bytes must be > 0" },
	{ "uploads:\n  idle: 5\n" BASE, 2, "unknown key \"idle\"" },
	{ "watch:\n  max_streams: 0\n" BASE, 2, "watch.max_streams must be > 0" },
	{ "watch:\n  max_streams_per_tenant: many\n" BASE, 2, "watch.max_streams_per_tenant must be an integer" },
	{ "watch:\n  health_max_streams: 4097\n" BASE, 2, "watch.health_max_streams must be <= 4096" },
	{ "watch:\n  health_max_streams_per_peer: 0\n" BASE, 2,
	  "watch.health_max_streams_per_peer must be > 0" },
	{ "watch: [1]\n" BASE, 1, "watch must be a mapping" },
	/* follower (issue 17) */
	{ "follower:\n  polls_per_second: 0\n" BASE, 2, "follower.polls_per_second must be > 0" },
	{ "follower:\n  polls_per_second: 10001\n" BASE, 2, "follower.polls_per_second must be at most 10000" },
	{ "follower:\n  poll_interval_ms: 99\n" BASE, 2, "follower.poll_interval_ms must be >= 100" },
	{ "follower:\n  max_jobs: 0\n" BASE, 2, "follower.max_jobs must be > 0" },
	{ "follower:\n  scan_interval_ms: x\n" BASE, 2, "follower.scan_interval_ms must be an integer" },
	{ "follower:\n  enabled: maybe\n" BASE, 2, "follower.enabled must be true or false" },
	{ "follower:\n  poll_interval_ms: 5000\n  max_poll_interval_ms: 1000\n" BASE, 1,
	  "follower.max_poll_interval_ms must be >= follower.poll_interval_ms" },
	{ "follower:\n  every: 5\n" BASE, 2, "unknown key \"every\"" },
	/* otlp (issue 20) */
	{ "otlp:\n  batch_max: 5\n" BASE, 2,
	  "otlp.endpoint is required, e.g. http://127.0.0.1:4318/v1/traces" },
	{ "otlp:\n  endpoint: ftp://127.0.0.1:4318/v1/traces\n" BASE, 2,
	  "otlp.endpoint must be an http:// or https:// URL without credentials, query or fragment, "
	  "e.g. http://127.0.0.1:4318/v1/traces" },
	{ "otlp:\n  endpoint: http://u:s3cr3t@127.0.0.1:4318/v1/traces\n" BASE, 2,
	  "otlp.endpoint must be an http:// or https:// URL without credentials, query or fragment, "
	  "e.g. http://127.0.0.1:4318/v1/traces" },
	{ "otlp:\n  endpoint: http://127.0.0.1:4318/v1/traces?token=s3cr3t\n" BASE, 2,
	  "otlp.endpoint must be an http:// or https:// URL without credentials, query or fragment, "
	  "e.g. http://127.0.0.1:4318/v1/traces" },
	{ "otlp:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  batch_max: 0\n" BASE, 3,
	  "otlp.batch_max must be > 0" },
	{ "otlp:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  batch_max: 100\n  queue_max: 50\n"
	  BASE, 4, "otlp.queue_max must be >= otlp.batch_max (100)" },
	{ "otlp:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  batch_max: 5000\n" BASE, 3,
	  "otlp.queue_max must be >= otlp.batch_max (5000)" },
	{ "otlp:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  flush_ms: 5\n" BASE, 3,
	  "otlp.flush_ms must be >= 10" },
	{ "otlp:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  timeout: 5\n" BASE, 3,
	  "unknown key \"timeout\"" },
	/* balance (issues 20 and 22) */
	{ "balance:\n  poll_s: -1\n" BASE, 2, "balance.poll_s must be >= 0" },
	{ "balance:\n  poll_s: 86401\n" BASE, 2, "balance.poll_s must be <= 86400" },
	{ "balance:\n  poll_s: often\n" BASE, 2, "balance.poll_s must be an integer" },
	{ "balance:\n  every: 5\n" BASE, 2, "unknown key \"every\"" },
	/* usage (issue 22) */
	{ "usage:\n  measure: some\n" BASE, 2, "usage.measure must be all or budgeted, not \"some\"" },
	{ "usage:\n  measure: [all]\n" BASE, 2, "usage.measure must be all or budgeted" },
	{ "usage:\n  count: 1\n" BASE, 2, "unknown key \"count\"" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    limits:\n      uploads: 0\n", 10,
	  "tenants[0].limits.uploads must be > 0" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    limits:\n      watch_streams: x\n", 10,
	  "tenants[0].limits.watch_streams must be an integer" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    limits:\n      start_jobs_in_flight: 1000001\n",
	  10, "tenants[0].limits.start_jobs_in_flight must be <= 1000000" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    limits:\n      streams: 3\n", 10,
	  "unknown key \"streams\"" },
	/* tenants[].budget (issue 22) */
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    budget:\n      hard: true\n", 10,
	  "tenants[0].budget.minutes_per_month is required" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    budget:\n      minutes_per_month: -1\n",
	  10, "tenants[0].budget.minutes_per_month must be >= 0" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    budget:\n      minutes_per_month: 1.5\n",
	  10, "tenants[0].budget.minutes_per_month must be an integer" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    budget:\n      minutes_per_month: 5\n"
	  "      window: week\n", 11, "tenants[0].budget.window must be month or rolling_30d, not \"week\"" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    budget:\n      minutes_per_month: 5\n"
	  "      hard: sometimes\n", 11, "tenants[0].budget.hard must be true or false" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    budget:\n      minutes_per_month: 5\n"
	  "      minutes: 5\n", 11, "unknown key \"minutes\"" },
	/* accounts */
	{ "accounts:\n  - name: sim\n    base_url: http://h\n    client_id: c\n    client_secret: hunter2\n"
	  "tenants: [{name: t, account: sim}]\n",
	  5, "client_secret must not be inline; use client_secret_file or client_secret_env" },
	{ "accounts:\n  - name: sim\n    base_url: http://h\n    client_id: c\n    client_secret_file: /f\n"
	  "    client_secret_env: E\ntenants: [{name: t, account: sim}]\n",
	  6, "accounts[0]: set only one of client_secret_file or client_secret_env" },
	{ "accounts:\n  - name: sim\n    base_url: http://h\n    client_id: c\n"
	  "tenants: [{name: t, account: sim}]\n",
	  2, "accounts[0] needs client_secret_file or client_secret_env" },
	{ "accounts:\n  - name: sim\n    base_url: ftp://h\n    client_id: c\n    client_secret_env: E\n"
	  "tenants: [{name: t, account: sim}]\n",
	  3, "accounts[0].base_url must be an http:// or https:// URL without credentials, query or fragment" },
	{ "accounts:\n  - name: sim\n    base_url: https://user:pw@h\n    client_id: c\n    client_secret_env: E\n"
	  "tenants: [{name: t, account: sim}]\n",
	  3, "accounts[0].base_url must be an http:// or https:// URL without credentials, query or fragment" },
	{ "accounts:\n  - name: sim\n    client_id: c\n    client_secret_env: E\n"
	  "tenants: [{name: t, account: sim}]\n",
	  2, "accounts[0].base_url is required" },
	{ ACCOUNT_SIM "  - name: sim\n    base_url: http://h2\n    client_id: c\n    client_secret_env: E\n"
		      "tenants: [{name: t, account: sim}]\n",
	  6, "duplicate account name \"sim\" (first at line 2)" },
	{ ACCOUNT_SIM "    rate_per_second: -1\ntenants: [{name: t, account: sim}]\n", 6,
	  "accounts[0].rate_per_second must be >= 0" },
	/* tenants */
	{ ACCOUNT_SIM "tenants:\n  - name: team-a\n    account: sim\n  - name: team-b\n    account: sim\n"
		      "    rate: { per_second: 0, burst: 40 }\n",
	  11, "tenants[1].rate.per_second must be > 0" },
	{ ACCOUNT_SIM "tenants:\n  - name: team-a\n    account: nope\n", 8,
	  "tenants[0].account \"nope\" is not a defined account" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n  - name: t\n    account: sim\n", 9,
	  "duplicate tenant name \"t\" (first at line 7)" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    keys:\n      - sha256: " HEX_A "\n"
		      "        permissions: [read, owner]\n",
	  11, "tenants[0].keys[0].permissions[1]: unknown permission \"owner\" (read, write, admin)" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    keys:\n      - sha256: " HEX_A "\n"
		      "        permissions: []\n",
	  11, "tenants[0].keys[0].permissions must not be empty" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    keys:\n      - sha256: abc123\n"
		      "        permissions: [read]\n",
	  10, "tenants[0].keys[0].sha256 must be 64 hex digits (printf %s \"$KEY\" | sha256sum)" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    keys:\n      - sha256: "
		      "g15424e984f66fb993b9d8e6444ade02adcc714a58b3b50106e98750e4244bfe\n"
		      "        permissions: [read]\n",
	  10, "tenants[0].keys[0].sha256 must be 64 hex digits (printf %s \"$KEY\" | sha256sum)" },
	{ ACCOUNT_SIM "tenants:\n  - name: a\n    account: sim\n    keys:\n      - sha256: " HEX_A "\n"
		      "        permissions: [read]\n  - name: b\n    account: sim\n    keys:\n"
		      "      - sha256: " HEX_A "\n        permissions: [write]\n",
	  15, "duplicate API key hash (also at line 10, tenant \"a\")" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    see_foreign_jobs: sometimes\n", 9,
	  "tenants[0].see_foreign_jobs must be true or false" },
	{ ACCOUNT_SIM "tenants: {name: t}\n", 6, "tenants must be a list" },
	/* method costs: rate.costs (every tenant) and tenants[].rate.costs */
	{ "rate:\n  costs: { StartJb: 5 }\n" BASE, 2,
	  "rate.costs: unknown method \"StartJb\" (a method of the API, e.g. StartJob, UploadVideo, GetStatus)" },
	{ "rate:\n  costs: { \"/animate3d.v1.Jobs/StartJob\": 5 }\n" BASE, 2,
	  "rate.costs: unknown method \"/animate3d.v1.Jobs/StartJob\" (a method of the API, e.g. StartJob, "
	  "UploadVideo, GetStatus)" },
	{ "rate:\n  costs:\n    StartJob: 1001\n" BASE, 3, "rate.costs.StartJob must be <= 1000" },
	{ "rate:\n  costs:\n    GetStatus: -1\n" BASE, 3, "rate.costs.GetStatus must be >= 0" },
	{ "rate:\n  costs:\n    GetStatus: 1.5\n" BASE, 3, "rate.costs.GetStatus must be an integer" },
	{ "rate:\n  costs:\n    StartJob: 2\n    StartJob: 3\n" BASE, 4,
	  "duplicate key \"StartJob\" (first at line 3)" },
	{ "rate:\n  costs: [StartJob]\n" BASE, 2,
	  "rate.costs must be a mapping of method names to costs, e.g. { StartJob: 5 }" },
	{ "rate:\n  cost: { StartJob: 5 }\n" BASE, 2, "unknown key \"cost\"" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    rate:\n      per_second: 10\n"
		      "      costs: { UploadVideo: 2, Nope: 1 }\n",
	  11, "tenants[0].rate.costs: unknown method \"Nope\" (a method of the API, e.g. StartJob, UploadVideo, "
	  "GetStatus)" },
	{ ACCOUNT_SIM "tenants:\n  - name: t\n    account: sim\n    rate:\n      per_second: 10\n"
		      "      costs:\n        StartJob: 5000\n",
	  12, "tenants[0].rate.costs.StartJob must be <= 1000" },
	{ "state:\n  memory: true\n  read_only: true\n" BASE, 3,
	  "state.read_only needs state.path (a memory store starts empty)" },
	{ "state:\n  path: /tmp/x.db\n  idempotency_ttl_s: 59\n" BASE, 3,
	  "state.idempotency_ttl_s must be >= 60" },
	{ "state:\n  path: /tmp/x.db\n  reconcile_settle_ms: 3600001\n" BASE, 3,
	  "state.reconcile_settle_ms must be <= 3600000" },
	{ "state:\n  path: /tmp/x.db\n  read_only: maybe\n" BASE, 3,
	  "state.read_only must be true or false" },
	/* process:, http:, grpc: (config_net.c) */
	{ "process:\n  open_files_reserve: 8\n" BASE, 2, "process.open_files_reserve must be >= 16" },
	{ "process:\n  memory_mib: 10\n" BASE, 1, "process.memory_mib must be 0 (no ceiling) or >= 64" },
	{ "process:\n  memory: 10\n" BASE, 2, "unknown key \"memory\"" },
	{ "http:\n  max_connections: -1\n" BASE, 2, "http.max_connections must be >= 0" },
	{ "http: [1]\n" BASE, 1, "http must be a mapping" },
	{ "rest:\n  max_body_bytes: 10\n" BASE, 2, "rest.max_body_bytes must be >= 1024" },
	{ "rest:\n  timeout_s: 0\n" BASE, 2, "rest.timeout_s must be > 0" },
	{ "rest:\n  session_ttl_s: 10\n" BASE, 2, "rest.session_ttl_s must be >= 60" },
	{ "rest:\n  max_conns: 1\n" BASE, 2, "unknown key \"max_conns\"" },
	{ "grpc:\n  max_concurrent_streams: 0\n" BASE, 2, "grpc.max_concurrent_streams must be > 0" },
	{ "grpc:\n  max_metadata_bytes: 100\n" BASE, 2, "grpc.max_metadata_bytes must be >= 1024" },
	{ "grpc:\n  keepalive_time_ms: soon\n" BASE, 2, "grpc.keepalive_time_ms must be an integer" },
	{ "grpc:\n  io_thread_nice: 20\n" BASE, 2, "grpc.io_thread_nice must be <= 19" },
	{ "grpc:\n  probe_interval_ms: 1000\n  probe_timeout_ms: 1000\n" BASE, 1,
	  "grpc.probe_timeout_ms must be shorter than grpc.probe_interval_ms" },
	{ "grpc:\n  memory_quota_mib: 600\n" BASE, 1,
	  "grpc.memory_quota_mib (600) must not exceed process.memory_mib (512)" },
	/* nesting: the root mapping, listen's and 31 lists make 33 */
	{ "listen: {grpc: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}\n" BASE, 1,
	  "nested deeper than 32 mappings/lists; refused" },
	{ "tenants:\n- a:\n   - b:\n      - c: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n" BASE, 4,
	  "nested deeper than 32 mappings/lists; refused" },
	/* whole-file problems */
	{ ACCOUNT_SIM, 0, "at least one tenant is required (tenants:)" },
	{ "", 0, "the configuration is empty" },
	{ "hello\n", 1, "the configuration must be a mapping (listen:, accounts:, tenants:, ...)" },
	{ BASE "---\nlisten: {}\n", 13, "only one YAML document is allowed" },
};

TestSuite(config, .init = setup, .fini = teardown);

Test(config, bad_snippets_give_exact_errors)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct gw_errors errs = { 0 };
		struct gw_config *cfg = (struct gw_config *)1;
		char path[512], want[1024];
		int rc = load_text(c->yaml, path, sizeof(path), &cfg, &errs);

		if (c->line > 0)
			snprintf(want, sizeof(want), "%s:%d: %s", path, c->line, c->msg);
		else
			snprintf(want, sizeof(want), "%s: %s", path, c->msg);
		cr_expect_eq(rc, -1, "case %zu: rc %d", i, rc);
		cr_expect_null(cfg, "case %zu: cfg set on failure", i);
		cr_expect_eq(errs.n, 1, "case %zu: %zu errors, first: %s", i, errs.n, errs.n ? errs.msg[0] : "-");
		if (errs.n >= 1) {
			cr_expect_str_eq(errs.msg[0], want, "case %zu:\n got  %s\n want %s", i, errs.msg[0], want);
			cr_expect_null(strstr(errs.msg[0], "s3cr3t"), "case %zu: the secret leaked", i);
		}
		gw_errors_clear(&errs);
	}
}

Test(config, yaml_syntax_error_names_its_line)
{
	static const struct {
		const char *yaml;
		int line;
	} cases[] = {
		{ "listen:\n  grpc: [unclosed\n" BASE, 3 },
		{ "listen:\n\tgrpc: 127.0.0.1:1\n" BASE, 2 },
		{ BASE "tenants: [\n", 13 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_errors errs = { 0 };
		struct gw_config *cfg = NULL;
		char path[512], prefix[600];

		cr_expect_eq(load_text(cases[i].yaml, path, sizeof(path), &cfg, &errs), -1, "case %zu", i);
		snprintf(prefix, sizeof(prefix), "%s:%d: YAML syntax error: ", path, cases[i].line);
		cr_assert_eq(errs.n, 1, "case %zu", i);
		cr_expect_eq(strncmp(errs.msg[0], prefix, strlen(prefix)), 0, "case %zu: %s (want prefix %s)", i,
			     errs.msg[0], prefix);
		gw_errors_clear(&errs);
	}
}

Test(config, every_error_in_one_file_is_reported)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	const char *path = A3D_SOURCE_DIR "/tests/unit/configs/many-errors.yaml";
	static const struct {
		int line;
		const char *msg;
	} want[] = {
		{ 3, "unknown key \"grcp\"" },
		{ 6, "log.level must be debug, info, warn or error" },
		{ 9, "limits.upload_chunk_bytes must be a multiple of 256 KiB (262144)" },
		{ 16, "client_secret must not be inline; use client_secret_file or client_secret_env" },
		{ 27, "tenants[1].rate.per_second must be > 0" },
		{ 30, "tenants[1].keys[0].permissions[0]: unknown permission \"delete\" (read, write, admin)" },
		{ 32, "tenants[2].account \"nope\" is not a defined account" },
	};
	size_t nwant = sizeof(want) / sizeof(want[0]);

	cr_assert_eq(gw_config_load(path, &cfg, &errs), -1);
	cr_expect_null(cfg);
	cr_expect_eq(errs.n, nwant, "got %zu errors", errs.n);
	for (size_t i = 0; i < nwant && i < errs.n; i++) {
		char buf[1024];

		snprintf(buf, sizeof(buf), "%s:%d: %s", path, want[i].line, want[i].msg);
		cr_expect_str_eq(errs.msg[i], buf, "error %zu", i);
	}
	gw_errors_clear(&errs);
	cr_expect_eq(errs.n, 0);
}

Test(config, fixture_inline_secret_is_refused)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	const char *path = A3D_SOURCE_DIR "/tests/unit/configs/inline-secret.yaml";

	cr_assert_eq(gw_config_load(path, &cfg, &errs), -1);
	cr_assert_eq(errs.n, 1);
	cr_expect_str_eq(errs.msg[0], A3D_SOURCE_DIR "/tests/unit/configs/inline-secret.yaml:7: client_secret must "
						     "not be inline; use client_secret_file or client_secret_env");
	/* The inline value itself must not leak into the message. */
	cr_expect_null(strstr(errs.msg[0], "s3cr3t-canary"));
	gw_errors_clear(&errs);
}

static void sha256_hex_of(const char *key, uint8_t out[32])
{
	SHA256((const unsigned char *)key, strlen(key), out);
}

Test(config, demo_yaml_loads_with_its_values)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	uint8_t ha[32], hb[32], hv[32];
	int rc = gw_config_load(A3D_SOURCE_DIR "/examples/demo.yaml", &cfg, &errs);

	cr_assert_eq(rc, 0, "first error: %s", errs.n ? errs.msg[0] : "-");
	cr_assert_not_null(cfg);
	cr_expect_eq(errs.n, 0);
	cr_expect_str_eq(cfg->grpc_listen, "127.0.0.1:50051");
	cr_expect_str_eq(cfg->rest_listen, "127.0.0.1:8081");
	cr_expect_str_eq(cfg->http_listen, "127.0.0.1:8080");
	cr_expect_str_eq(cfg->log_level, "info");
	cr_expect_str_eq(cfg->state.path, "build/demo-state/gateway.db");
	cr_expect_eq(cfg->state.memory_only, 0);
	cr_expect_eq(cfg->upstream.connect_timeout_ms, 2000);
	cr_expect_eq(cfg->upstream.default_timeout_ms, 30000);
	cr_expect_eq(cfg->upstream.max_response_bytes, GW_CONFIG_DEFAULT_MAX_RESPONSE);
	cr_expect_eq(cfg->cache.status_ttl_ms, 1000);
	cr_expect_eq(cfg->cache.batch_window_ms, 5);
	cr_expect_eq(cfg->cache.batch_max, 50);
	cr_expect_eq(cfg->cache.max_entries, GW_CONFIG_DEFAULT_MAX_ENTRIES);
	cr_expect_eq(cfg->max_message_bytes, 4u << 20);
	cr_expect_eq(cfg->upload_chunk_bytes, 4u << 20);
	cr_expect_null(cfg->tls.cert_file);

	cr_assert_eq(cfg->naccounts, 1);
	cr_expect_str_eq(cfg->accounts[0].name, "sim");
	cr_expect_str_eq(cfg->accounts[0].base_url, "http://127.0.0.1:8090");
	cr_expect_str_eq(cfg->accounts[0].client_id, "demo-client-id");
	cr_expect_str_eq(cfg->accounts[0].secret_env, "A3D_DEMO_CLIENT_SECRET");
	cr_expect_null(cfg->accounts[0].secret_file);

	sha256_hex_of("demo-key-a", ha);
	sha256_hex_of("demo-key-b", hb);
	sha256_hex_of("demo-key-viewer", hv);
	cr_assert_eq(cfg->ntenants, 3);
	cr_expect_str_eq(cfg->tenants[0].name, "team-a");
	cr_expect_str_eq(cfg->tenants[1].name, "team-b");
	cr_expect_str_eq(cfg->tenants[2].name, "viewer");
	for (size_t i = 0; i < 3; i++) {
		cr_expect_eq(cfg->tenants[i].account_idx, 0);
		cr_expect_eq(cfg->tenants[i].nkeys, 1);
		cr_expect_eq(cfg->tenants[i].see_foreign_jobs, 0);
	}
	cr_expect_eq(memcmp(cfg->tenants[0].keys[0].sha256, ha, 32), 0);
	cr_expect_eq(memcmp(cfg->tenants[1].keys[0].sha256, hb, 32), 0);
	cr_expect_eq(memcmp(cfg->tenants[2].keys[0].sha256, hv, 32), 0);
	cr_expect_eq(cfg->tenants[0].keys[0].perms, GW_PERM_READ | GW_PERM_WRITE);
	cr_expect_eq(cfg->tenants[2].keys[0].perms, GW_PERM_READ);
	cr_expect_float_eq(cfg->tenants[0].rate_per_second, 500.0, 1e-9);
	cr_expect_float_eq(cfg->tenants[0].burst, 1000.0, 1e-9);
	cr_expect_float_eq(cfg->tenants[1].rate_per_second, 20.0, 1e-9);
	cr_expect_float_eq(cfg->tenants[1].burst, 40.0, 1e-9);
	cr_expect_float_eq(cfg->tenants[2].rate_per_second, 0.0, 1e-9);

	cr_expect_eq(gw_config_tenant_index(cfg, "viewer"), 2);
	cr_expect_eq(gw_config_tenant_index(cfg, "team-a"), 0);
	cr_expect_eq(gw_config_tenant_index(cfg, "nobody"), -1);
	cr_expect_eq(gw_config_account_index(cfg, "sim"), 0);
	cr_expect_eq(gw_config_account_index(cfg, "nope"), -1);
	cr_expect_eq(gw_config_account_index(NULL, "sim"), -1);
	cr_expect_eq(gw_config_tenant_index(cfg, NULL), -1);
	gw_config_free(cfg);
}

Test(config, optional_sections_and_defaults)
{
	static const char text[] =
		"listen: {grpc: \"[::]:0\", http: \"0.0.0.0:0\"}\n"
		"tls: {cert_file: /c.pem, key_file: /k.pem, client_ca_file: /ca.pem, client_cert_required: yes}\n"
		"log: {level: debug}\n"
		"state: {memory: true}\n"
		"upstream: {connect_timeout_ms: 10, default_timeout_ms: 20, max_response_bytes: 30, session_refresh_s: 40}\n"
		"cache: {status_ttl_ms: 0, max_entries: 7, batch_window_ms: 0, batch_max: 500}\n"
		"limits: {max_message_bytes: 1024, upload_chunk_bytes: 524288}\n"
		"webhooks: {path_prefix: /gw/hooks/, public_url: \"https://gw.example.com/edge//\"}\n"
		"accounts:\n"
		"  - {name: a, base_url: \"HTTPS://up.example/api/\", client_id: c, client_secret_file: /run/s,\n"
		"     rate_per_second: 2.5, max_concurrent: 8}\n"
		"tenants:\n"
		"  - {name: t, account: a, rate: {per_second: 0.5}, see_foreign_jobs: yes}\n";
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512];

	cr_assert_eq(load_text(text, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_str_eq(cfg->path, path);
	cr_expect_str_eq(cfg->grpc_listen, "[::]:0");
	cr_expect_str_eq(cfg->tls.client_ca_file, "/ca.pem");
	cr_expect_eq(cfg->tls.client_cert_required, 1);
	cr_expect_str_eq(cfg->log_level, "debug");
	cr_expect_eq(cfg->state.memory_only, 1);
	cr_expect_null(cfg->state.path);
	cr_expect_eq(cfg->upstream.session_refresh_s, 40);
	cr_expect_eq(cfg->upstream.max_response_bytes, 30);
	cr_expect_eq(cfg->cache.max_entries, 7);
	cr_expect_eq(cfg->cache.batch_max, 500);
	cr_expect_eq(cfg->max_message_bytes, 1024);
	cr_expect_eq(cfg->upload_chunk_bytes, 524288);
	cr_expect_str_eq(cfg->webhooks.path_prefix, "/gw/hooks/");
	cr_expect_str_eq(cfg->webhooks.public_url, "https://gw.example.com/edge");	/* '/'s stripped */
	cr_expect_str_eq(cfg->accounts[0].base_url, "HTTPS://up.example/api");
	cr_expect_str_eq(cfg->accounts[0].secret_file, "/run/s");
	cr_expect_float_eq(cfg->accounts[0].rate_per_second, 2.5, 1e-9);
	cr_expect_eq(cfg->accounts[0].max_concurrent, 8);
	cr_expect_eq(cfg->tenants[0].nkeys, 0);
	cr_expect_eq(cfg->tenants[0].see_foreign_jobs, 1);
	cr_expect_float_eq(cfg->tenants[0].rate_per_second, 0.5, 1e-9);
	cr_expect_float_eq(cfg->tenants[0].burst, 1.0, 1e-9);	/* max(per_second, 1) */
	gw_config_free(cfg);

	/* Nothing but the required parts: every default from config.h. */
	cr_assert_eq(load_text(BASE, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_str_eq(cfg->grpc_listen, GW_CONFIG_DEFAULT_GRPC_LISTEN);
	cr_expect_null(cfg->http_listen);
	cr_expect_str_eq(cfg->log_level, "info");
	cr_expect_eq(cfg->state.memory_only, 1);
	cr_expect_eq(cfg->cache.status_ttl_ms, 1000);
	cr_expect_eq(cfg->upstream.connect_timeout_ms, 2000);
	cr_expect_eq(cfg->upstream.session_refresh_s, 0);
	cr_expect_str_eq(cfg->accounts[0].base_url, "http://127.0.0.1:8090");
	cr_expect_str_eq(cfg->webhooks.path_prefix, GW_CONFIG_DEFAULT_WEBHOOK_PREFIX);
	cr_expect_null(cfg->webhooks.public_url);
	cr_expect_null(cfg->webhooks.path_token_file);
	cr_expect_eq(cfg->webhooks.path_token_grace_s, GW_CONFIG_DEFAULT_TOKEN_GRACE_S);
	cr_expect_float_eq(cfg->webhooks.refresh_per_second, GW_CONFIG_DEFAULT_WEBHOOK_REFRESH_RATE, 1e-9);
	cr_expect_float_eq(cfg->webhooks.refresh_burst, GW_CONFIG_DEFAULT_WEBHOOK_REFRESH_BURST, 1e-9);
	cr_expect_eq(cfg->webhooks.allow_private_destinations, 0);
	cr_expect_eq(cfg->webhooks.upstream_passthrough, 0);
	cr_expect_eq(cfg->webhooks.delivery.max_per_endpoint, GW_CONFIG_DEFAULT_WH_PER_ENDPOINT);
	cr_expect_eq(cfg->webhooks.delivery.timeout_ms, GW_CONFIG_DEFAULT_WH_TIMEOUT_MS);
	cr_expect_eq(cfg->webhooks.delivery.give_up_s, GW_CONFIG_DEFAULT_WH_GIVE_UP_S);
	cr_expect_eq(cfg->webhooks.delivery.disable_after_s, GW_CONFIG_DEFAULT_WH_DISABLE_AFTER_S);
	cr_expect_eq(cfg->follower.enabled, 1);
	cr_expect_float_eq(cfg->follower.polls_per_second, GW_CONFIG_DEFAULT_FOLLOW_RATE, 1e-9);
	cr_expect_eq(cfg->follower.poll_interval_ms, GW_CONFIG_DEFAULT_FOLLOW_INTERVAL_MS);
	cr_expect_eq(cfg->follower.max_poll_interval_ms, GW_CONFIG_DEFAULT_FOLLOW_MAX_INTERVAL_MS);
	cr_expect_eq(cfg->follower.quiet_ms, GW_CONFIG_DEFAULT_FOLLOW_QUIET_MS);
	cr_expect_eq(cfg->follower.scan_interval_ms, GW_CONFIG_DEFAULT_FOLLOW_SCAN_MS);
	cr_expect_eq(cfg->follower.max_jobs, GW_CONFIG_DEFAULT_FOLLOW_MAX_JOBS);
	cr_expect_eq(cfg->balance.poll_s, GW_CONFIG_DEFAULT_BALANCE_POLL_S);
	cr_expect_eq(cfg->usage.measure_all, 1);
	cr_expect_eq(cfg->uploads.max_concurrent, GW_CONFIG_DEFAULT_UPLOADS_MAX);
	cr_expect_eq(cfg->uploads.max_per_tenant, 0);
	cr_expect_eq(cfg->uploads.idle_timeout_ms, GW_CONFIG_DEFAULT_UPLOAD_IDLE_MS);
	cr_expect_eq(cfg->uploads.max_message_bytes, 0);
	cr_expect_eq(cfg->watch.max_streams, GW_CONFIG_DEFAULT_WATCH_MAX);
	cr_expect_eq(cfg->watch.max_streams_per_tenant, 0);
	cr_expect_eq(cfg->watch.health_max_streams, GW_CONFIG_DEFAULT_HEALTH_WATCH_MAX);
	cr_expect_eq(cfg->watch.health_max_streams_per_peer, GW_CONFIG_DEFAULT_HEALTH_WATCH_PEER);
	cr_expect_eq(cfg->tenants[0].limits.uploads, 0);
	gw_config_free(cfg);
}

/* The long-lived resources' caps (issue 13): the keys are read, and a tenant's cap is its own
 * limit, else the section's per-tenant value, else a fair share of the global cap. */
Test(config, long_lived_caps_are_read)
{
	static const char text[] =
		"uploads: {max_concurrent: 10, idle_timeout_ms: 500, max_message_bytes: 65536}\n"
		"watch: {max_streams: 9, health_max_streams: 7, health_max_streams_per_peer: 2}\n"
		"webhooks: {path_token_file: /run/token, path_token_grace_s: 0, refresh_per_second: 2,\n"
		"           refresh_burst: 3, allow_private_destinations: true, upstream_passthrough: on,\n"
		"           delivery: {max_per_endpoint: 2, timeout_ms: 500, give_up_s: 60,\n"
		"                      disable_after_s: 120}}\n"
		ACCOUNT_SIM
		"tenants:\n"
		"  - {name: a, account: sim, limits: {uploads: 6, watch_streams: 1, start_jobs_in_flight: 2,\n"
		"     start_job_waiters: 3}}\n"
		"  - {name: b, account: sim}\n"
		"  - {name: c, account: sim}\n"
		"  - {name: d, account: sim}\n";
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512];
	static const struct {
		size_t tenant;
		int which;		/* 0 uploads, 1 watch streams */
		unsigned per_tenant;	/* the section's per-tenant value, 0 = unset */
		unsigned want;
	} caps[] = {
		{ 0, 0, 0, 6 },		/* its own limit */
		{ 0, 0, 4, 6 },		/* its own limit wins over the section's */
		{ 1, 0, 0, 3 },		/* ceil(10 / 4) */
		{ 1, 0, 4, 4 },		/* the section's per-tenant value */
		{ 0, 1, 0, 1 },
		{ 1, 1, 0, 3 },		/* ceil(9 / 4) */
	};

	cr_assert_eq(load_text(text, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_eq(cfg->uploads.max_concurrent, 10);
	cr_expect_eq(cfg->uploads.idle_timeout_ms, 500);
	cr_expect_eq(cfg->uploads.max_message_bytes, 65536);
	cr_expect_eq(cfg->watch.max_streams, 9);
	cr_expect_eq(cfg->watch.health_max_streams, 7);
	cr_expect_eq(cfg->watch.health_max_streams_per_peer, 2);
	cr_expect_str_eq(cfg->webhooks.path_token_file, "/run/token");
	cr_expect_eq(cfg->webhooks.path_token_line, 3);
	cr_expect_eq(cfg->webhooks.path_token_grace_s, 0);
	cr_expect_float_eq(cfg->webhooks.refresh_per_second, 2.0, 1e-9);
	cr_expect_float_eq(cfg->webhooks.refresh_burst, 3.0, 1e-9);
	cr_expect_eq(cfg->webhooks.allow_private_destinations, 1);
	cr_expect_eq(cfg->webhooks.upstream_passthrough, 1);
	cr_expect_eq(cfg->webhooks.delivery.max_per_endpoint, 2);
	cr_expect_eq(cfg->webhooks.delivery.timeout_ms, 500);
	cr_expect_eq(cfg->webhooks.delivery.give_up_s, 60);
	cr_expect_eq(cfg->webhooks.delivery.disable_after_s, 120);
	cr_expect_eq(cfg->tenants[0].limits.start_jobs_in_flight, 2);
	cr_expect_eq(cfg->tenants[0].limits.start_job_waiters, 3);
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		const struct gw_tenant_cfg *t = &cfg->tenants[caps[i].tenant];
		unsigned got = caps[i].which == 0
			? gw_config_tenant_cap(cfg, t->limits.uploads, caps[i].per_tenant, cfg->uploads.max_concurrent)
			: gw_config_tenant_cap(cfg, t->limits.watch_streams, caps[i].per_tenant, cfg->watch.max_streams);

		cr_expect_eq(got, caps[i].want, "case %zu: %u", i, got);
	}
	cr_expect_eq(gw_config_tenant_cap(cfg, 0, 0, 0), 0, "no global cap, nothing set: none");
	cr_expect_eq(gw_config_tenant_cap(NULL, 0, 0, 5), 5, "no config: one tenant");
	gw_config_free(cfg);
}

Test(config, file_level_refusals)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512], want[1024];
	size_t big = GW_CONFIG_MAX_BYTES + 1;
	char *text = malloc(big);

	cr_assert_not_null(text);
	memset(text, '#', big);	/* a valid YAML comment, only too long */
	write_file("big.yaml", text, big, path, sizeof(path));
	free(text);
	cr_expect_eq(gw_config_load(path, &cfg, &errs), -1);
	snprintf(want, sizeof(want), "%s: larger than %u bytes; refused", path, GW_CONFIG_MAX_BYTES);
	cr_assert_eq(errs.n, 1);
	cr_expect_str_eq(errs.msg[0], want);
	gw_errors_clear(&errs);

	snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
	cr_expect_eq(gw_config_load(path, &cfg, &errs), -1);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_assert_eq(errs.n, 1);
	cr_expect_str_eq(errs.msg[0], want);
	gw_errors_clear(&errs);

	cr_expect_eq(gw_config_load(tmpdir, &cfg, &errs), -1);
	snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
	cr_assert_eq(errs.n, 1);
	cr_expect_str_eq(errs.msg[0], want);
	gw_errors_clear(&errs);
}

Test(config, error_list_is_bounded_and_counts_the_rest)
{
	struct gw_errors errs = { 0 };

	for (int i = 0; i < GW_CONFIG_MAX_ERRORS + 5; i++)
		gw_errors_add(&errs, "f.yaml", i, "error %d", i);
	cr_expect_eq(errs.n, GW_CONFIG_MAX_ERRORS);
	cr_expect_eq(errs.dropped, 5);
	cr_expect_str_eq(errs.msg[0], "f.yaml: error 0");
	cr_expect_str_eq(errs.msg[3], "f.yaml:3: error 3");
	gw_errors_clear(&errs);
	cr_expect_eq(errs.n, 0);
	cr_expect_eq(errs.dropped, 0);
}

/* Hostile shapes: aliases (also self-referencing), deep nesting, binary, huge numbers, NUL escapes.
 * Each must be refused with at least one error and nothing leaked (run under ASan to see leaks). */
Test(config, hostile_inputs_are_refused_cleanly)
{
	static const char *const inputs[] = {
		"listen: &a {grpc: *a}\n" BASE,
		"a: &x [*x, *x]\n",
		"tenants: &t [{name: t, account: sim, keys: *t}]\n",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
		"\xff\xfe\x00garbage",
		"listen: {grpc: \"127.0.0.1\\0:1\"}\n" BASE,
		"cache: {max_entries: 1e400}\n" BASE,
		"? [complex, key]\n: value\n" BASE,
		"accounts: [1, 2, 3]\ntenants: [x, y]\n",
		"accounts:\n  - name: [a]\n    base_url: {}\n    client_id: ''\n    client_secret_env: ~\n",
		"*unknown_alias\n",
	};

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct gw_errors errs = { 0 };
		struct gw_config *cfg = NULL;
		char path[512];
		int rc;

		write_file("h.yaml", inputs[i], i == 4 ? 10 : strlen(inputs[i]), path, sizeof(path));
		rc = gw_config_load(path, &cfg, &errs);
		cr_expect_eq(rc, -1, "input %zu accepted", i);
		cr_expect_gt(errs.n, 0, "input %zu: no error", i);
		cr_expect_null(cfg);
		gw_errors_clear(&errs);
	}
}

/* Byte-level mutations of demo.yaml: whatever happens, the result is consistent (0 + cfg, or -1 +
 * errors) and nothing crashes. Bounded: a fixed number of deterministic mutations. */
Test(config, mutated_demo_never_crashes)
{
	FILE *f = fopen(A3D_SOURCE_DIR "/examples/demo.yaml", "rb");
	char demo[8192], mut[8192], path[512];
	size_t n;
	unsigned seed = 12345;

	cr_assert_not_null(f);
	n = fread(demo, 1, sizeof(demo), f);
	fclose(f);
	cr_assert_gt(n, 100);
	for (int round = 0; round < 300; round++) {
		struct gw_errors errs = { 0 };
		struct gw_config *cfg = NULL;
		int rc;

		memcpy(mut, demo, n);
		for (int k = 0; k < 1 + round % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = (seed >> 8) % n;
			static const char pool[] = ":-[]{}&*!|>'\"#\n \t0x";
			seed = seed * 1103515245u + 12345u;
			mut[pos] = pool[(seed >> 8) % (sizeof(pool) - 1)];
		}
		write_file("m.yaml", mut, n, path, sizeof(path));
		rc = gw_config_load(path, &cfg, &errs);
		if (rc == 0) {
			cr_expect_not_null(cfg);
			cr_expect_eq(errs.n, 0);
		} else {
			cr_expect_null(cfg);
			cr_expect_gt(errs.n + errs.dropped, 0, "round %d", round);
		}
		gw_config_free(cfg);
		gw_errors_clear(&errs);
	}
}

/* rate.costs and tenants[].rate.costs land in the tables the admission resolves (test_admit.c). */
Test(config, method_costs_are_read)
{
	static const char text[] = ACCOUNT_SIM
		"rate:\n  costs: { StartJob: 8, GetStatus: 0 }\n"
		"tenants:\n  - name: t\n    account: sim\n"
		"    rate: { per_second: 10, costs: { StartJob: 3, ListJobs: 2 } }\n"
		"  - name: u\n    account: sim\n";
	static const struct {
		int tenant;		/* -1: the global table */
		const char *method;
		int set;
		unsigned cost;
	} rows[] = {
		{ -1, "StartJob", 1, 8 }, { -1, "GetStatus", 1, 0 }, { -1, "ListJobs", 0, 0 },
		{ 0, "StartJob", 1, 3 }, { 0, "ListJobs", 1, 2 }, { 0, "GetStatus", 0, 0 },
		{ 1, "StartJob", 0, 0 },
	};
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512];

	cr_assert_eq(load_text(text, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct gw_costs_cfg *c = rows[i].tenant < 0 ? &cfg->costs
								  : &cfg->tenants[rows[i].tenant].costs;
		long cost = gw_config_cost(c, rows[i].method);

		cr_expect_eq(cost >= 0, rows[i].set, "row %zu: set", i);
		if (rows[i].set)
			cr_expect_eq(cost, (long)rows[i].cost, "row %zu: cost %ld", i, cost);
	}
	/* Method names come from the compiled services: every one is known, nothing else is. */
	cr_expect(gw_config_method_known("UploadVideo"));
	cr_expect(gw_config_method_known("WatchStatus"));
	cr_expect(gw_config_method_known("GetMinutesBalance"));
	cr_expect(!gw_config_method_known("Check"));
	cr_expect(!gw_config_method_known("startjob"));
	cr_expect(!gw_config_method_known(""));
	cr_expect(!gw_config_method_known(NULL));
	gw_config_free(cfg);
	gw_errors_clear(&errs);
}

/* Found by fuzz_config: two one-byte listen values were compared as "host:0" by reading before
 * their start. Each is refused as not host:port, and the two being equal is said once more. */
Test(config, one_byte_listen_values)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512], want[2][640];
	int rc = load_text("listen: {grpc: \"1\", http: \"1\"}\n" BASE, path, sizeof(path), &cfg, &errs);

	snprintf(want[0], sizeof(want[0]), "%s:1: listen.grpc must be host:port, e.g. 127.0.0.1:50051", path);
	snprintf(want[1], sizeof(want[1]), "%s:1: listen.http must be host:port, e.g. 127.0.0.1:8080", path);
	cr_expect_eq(rc, -1);
	cr_expect_null(cfg);
	cr_assert_eq(errs.n, 3, "%zu errors, first: %s", errs.n, errs.n ? errs.msg[0] : "-");
	cr_expect_str_eq(errs.msg[0], want[0]);
	cr_expect_str_eq(errs.msg[1], want[1]);
	cr_expect(strstr(errs.msg[2], ":1: listen.grpc and listen.http must differ") != NULL, "%s", errs.msg[2]);
	gw_errors_clear(&errs);
}

/* libyaml's scanner is quadratic in flow nesting: 100 000 '[' (the file of issue 13, item 9) are
 * refused at the first one too many, after a pass that never goes deeper than the cap. */
Test(config, deep_nesting_is_refused_at_its_line)
{
	size_t n = 100000;
	char *text = malloc(n + 64), path[512], want[640];
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	size_t len = (size_t)snprintf(text, 64, "listen:\n  grpc: ");

	cr_assert_not_null(text);
	memset(text + len, '[', n);
	text[len + n] = '\n';
	write_file("deep.yaml", text, len + n + 1, path, sizeof(path));
	free(text);
	cr_expect_eq(gw_config_load(path, &cfg, &errs), -1);
	cr_expect_null(cfg);
	snprintf(want, sizeof(want), "%s:2: nested deeper than %d mappings/lists; refused", path,
		 GW_CONFIG_MAX_DEPTH);
	cr_assert_eq(errs.n, 1, "%zu errors, first: %s", errs.n, errs.n ? errs.msg[0] : "-");
	cr_expect_str_eq(errs.msg[0], want);
	gw_errors_clear(&errs);
}

/* process:, http:, grpc:: defaults and every key read into its field. */
Test(config, net_sections)
{
	static const char text[] =
		"process: {open_files_reserve: 100, memory_mib: 0}\n"
		"http: {max_connections: 50}\n"
		"rest: {max_connections: 40, max_body_bytes: 2048, max_header_bytes: 4096, timeout_s: 3,\n"
		"       call_timeout_ms: 5000, session_ttl_s: 600}\n"
		"grpc:\n"
		"  max_concurrent_streams: 10\n"
		"  memory_quota_mib: 64\n"
		"  max_connection_idle_ms: 1\n"
		"  max_connection_age_ms: 2\n"
		"  max_connection_age_grace_ms: 3\n"
		"  keepalive_time_ms: 4\n"
		"  keepalive_timeout_ms: 5\n"
		"  min_recv_ping_interval_ms: 6\n"
		"  max_ping_strikes: 7\n"
		"  max_metadata_bytes: 2048\n"
		"  handshake_timeout_ms: 900\n"
		"  probe_interval_ms: 0\n"
		"  probe_timeout_ms: 20\n"
		"  probe_failures: 9\n"
		"  max_resets_per_s: 11\n"
		"  shed_backlog_kib: 12\n"
		"  io_thread_nice: 13\n" BASE;
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL, *dflt = NULL;
	const struct gw_grpc_cfg *g;
	char path[512];

	cr_assert_eq(load_text(BASE, path, sizeof(path), &dflt, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_eq(dflt->process.open_files_reserve, GW_CONFIG_DEFAULT_FD_RESERVE);
	cr_expect_eq(dflt->process.memory_mib, GW_CONFIG_DEFAULT_MEMORY_MIB);
	cr_expect_eq(dflt->http.max_connections, 0);
	cr_expect_eq(dflt->rest.max_connections, 0);
	cr_expect_eq(dflt->rest.max_body_bytes, GW_CONFIG_DEFAULT_REST_BODY);
	cr_expect_eq(dflt->rest.session_ttl_s, GW_CONFIG_DEFAULT_REST_SESSION_S);
	cr_expect_null(dflt->rest_listen);
	cr_expect_eq(dflt->grpc.max_concurrent_streams, GW_CONFIG_DEFAULT_GRPC_STREAMS);
	cr_expect_eq(dflt->grpc.probe_interval_ms, GW_CONFIG_DEFAULT_PROBE_INTERVAL_MS);
	cr_expect_eq(dflt->grpc.handshake_timeout_ms, GW_CONFIG_DEFAULT_HANDSHAKE_MS);
	cr_expect_eq(dflt->grpc.max_resets_per_s, GW_CONFIG_DEFAULT_MAX_RESETS_PER_S);
	cr_expect_eq(dflt->grpc.shed_backlog_kib, GW_CONFIG_DEFAULT_SHED_BACKLOG_KIB);
	cr_expect_eq(dflt->grpc.io_thread_nice, GW_CONFIG_DEFAULT_IO_THREAD_NICE);
	cr_expect_eq(gw_config_grpc_quota_mib(dflt), GW_CONFIG_DEFAULT_MEMORY_MIB / 2);

	cr_assert_eq(load_text(text, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	g = &cfg->grpc;
	cr_expect_eq(cfg->process.open_files_reserve, 100);
	cr_expect_eq(cfg->process.memory_mib, 0);
	cr_expect_eq(cfg->http.max_connections, 50);
	cr_expect_eq(cfg->rest.max_connections, 40);
	cr_expect_eq(cfg->rest.max_body_bytes, 2048);
	cr_expect_eq(cfg->rest.max_header_bytes, 4096);
	cr_expect_eq(cfg->rest.timeout_s, 3);
	cr_expect_eq(cfg->rest.call_timeout_ms, 5000);
	cr_expect_eq(cfg->rest.session_ttl_s, 600);
	cr_expect_eq(g->max_concurrent_streams, 10);
	cr_expect_eq(g->memory_quota_mib, 64);
	cr_expect_eq(gw_config_grpc_quota_mib(cfg), 64);
	cr_expect_eq(g->max_connection_idle_ms, 1);
	cr_expect_eq(g->max_connection_age_ms, 2);
	cr_expect_eq(g->max_connection_age_grace_ms, 3);
	cr_expect_eq(g->keepalive_time_ms, 4);
	cr_expect_eq(g->keepalive_timeout_ms, 5);
	cr_expect_eq(g->min_recv_ping_interval_ms, 6);
	cr_expect_eq(g->max_ping_strikes, 7);
	cr_expect_eq(g->max_metadata_bytes, 2048);
	cr_expect_eq(g->handshake_timeout_ms, 900);
	cr_expect_eq(g->probe_interval_ms, 0);
	cr_expect_eq(g->probe_timeout_ms, 20);
	cr_expect_eq(g->probe_failures, 9);
	cr_expect_eq(g->max_resets_per_s, 11);
	cr_expect_eq(g->shed_backlog_kib, 12);
	cr_expect_eq(g->io_thread_nice, 13);
	cr_expect_eq(gw_config_net_same(cfg, dflt), 0);
	cr_expect_eq(gw_config_net_same(dflt, dflt), 1);
	gw_config_free(cfg);
	gw_config_free(dflt);
}

/* libyaml's loader is quadratic in anchors: 64 are read, the 65th is refused at its line. */
Test(config, anchor_limit)
{
	static const struct {
		int anchors;
		int rc;
	} cases[] = { { 64, 0 }, { 65, -1 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[8192], path[512], want[640];
		size_t n = (size_t)snprintf(text, sizeof(text), "%s", BASE "x-anchors:\n");
		struct gw_errors errs = { 0 };
		struct gw_config *cfg = NULL;
		int rc;

		for (int k = 0; k < cases[i].anchors; k++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "  - &a%d %d\n", k, k);
		cr_assert_lt(n, sizeof(text));
		rc = load_text(text, path, sizeof(path), &cfg, &errs);
		if (cases[i].rc == 0) {
			/* under the limit the load goes on: the unknown key is the only complaint */
			cr_expect_eq(errs.n, 1, "case %zu: %zu errors", i, errs.n);
			if (errs.n)
				cr_expect(strstr(errs.msg[0], "unknown key \"x-anchors\"") != NULL, "%s", errs.msg[0]);
		} else {
			snprintf(want, sizeof(want), "%s:%d: more than 64 YAML anchors (&name) in one file", path,
				 11 + 1 + 65);
			cr_expect_eq(errs.n, 1, "case %zu: %zu errors", i, errs.n);
			if (errs.n)
				cr_expect_str_eq(errs.msg[0], want, "case %zu", i);
		}
		cr_expect_eq(rc, -1, "case %zu", i);
		cr_expect_null(cfg, "case %zu", i);
		gw_errors_clear(&errs);
	}
}

/* ---- state.postgres.dsn (config_pg.c): conninfo and URI, split into struct gw_pg_cfg ---- */

#define PGX(k, v) k, v
static const struct {
	const char *dsn;
	const char *hostaddr, *host;
	unsigned port;
	const char *dbname, *user, *sslmode, *appname;
	const char *extra[3][2];	/* expected extra keywords, in order */
	size_t nextra;
} pg_good[] = {
	{ "hostaddr=10.0.0.5 port=5433 dbname=a3d user=gw sslmode=require", "10.0.0.5", NULL, 5433, "a3d", "gw",
	  "require", NULL, { { 0 } }, 0 },
	/* host= an IP literal: it is the address */
	{ "host=10.1.2.3 dbname=a3d user=gw", "10.1.2.3", NULL, 5432, "a3d", "gw", NULL, NULL, { { 0 } }, 0 },
	/* host= a name next to hostaddr: kept for verify-full only */
	{ "host=db.example.com hostaddr=10.0.0.5 dbname=a3d user=gw sslmode=verify-full sslrootcert=/ca.crt",
	  "10.0.0.5", "db.example.com", 5432, "a3d", "gw", "verify-full", NULL, { { PGX("sslrootcert", "/ca.crt") } },
	  1 },
	/* quoted values with \' and \\, spaces around '=', white space of every kind between pairs */
	{ "  hostaddr = '10.0.0.5'\n dbname='my db'\tuser='o\\'brien' application_name='a\\\\b'  ", "10.0.0.5", NULL,
	  5432, "my db", "o'brien", NULL, "a\\b", { { 0 } }, 0 },
	{ "hostaddr=::1 dbname=a user=u", "::1", NULL, 5432, "a", "u", NULL, NULL, { { 0 } }, 0 },
	{ "host=2001:db8::5 port=6432 dbname=a user=u", "2001:db8::5", NULL, 6432, "a", "u", NULL, NULL, { { 0 } },
	  0 },
	/* URIs */
	{ "postgresql://gw@10.0.0.5:5433/a3d?sslmode=require&application_name=gw%20one", "10.0.0.5", NULL, 5433,
	  "a3d", "gw", "require", "gw one", { { 0 } }, 0 },
	{ "postgres://gw@[2001:db8::5]/a3d", "2001:db8::5", NULL, 5432, "a3d", "gw", NULL, NULL, { { 0 } }, 0 },
	{ "postgresql://gw@[::1]:6000/a3d", "::1", NULL, 6000, "a3d", "gw", NULL, NULL, { { 0 } }, 0 },
	{ "postgresql://u@db.example.com/a?hostaddr=10.0.0.5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.crt",
	  "10.0.0.5", "db.example.com", 5432, "a", "u", "verify-full", NULL,
	  { { PGX("sslrootcert", "/etc/ca.crt") } }, 1 },
	{ "postgresql://o%27brien@10.0.0.5/d%2Fb", "10.0.0.5", NULL, 5432, "d/b", "o'brien", NULL, NULL, { { 0 } },
	  0 },
	{ "postgresql:///a3d?user=gw&hostaddr=10.0.0.5", "10.0.0.5", NULL, 5432, "a3d", "gw", NULL, NULL, { { 0 } },
	  0 },
	/* what the chart renders (host, hostaddr, port, dbname, user, sslmode, sslrootcert, params) */
	{ "host=db.example.com hostaddr=10.0.0.5 port=5432 dbname=a3d user=a3d sslmode=verify-full "
	  "sslrootcert=/var/run/secrets/animate3d-gateway/postgres/ca.crt keepalives_idle=30 "
	  "target_session_attrs=read-write",
	  "10.0.0.5", "db.example.com", 5432, "a3d", "a3d", "verify-full", NULL,
	  { { PGX("sslrootcert", "/var/run/secrets/animate3d-gateway/postgres/ca.crt") },
	    { PGX("keepalives_idle", "30") },
	    { PGX("target_session_attrs", "read-write") } },
	  3 },
};

Test(config, postgres_dsn_accepted)
{
	for (size_t i = 0; i < sizeof pg_good / sizeof pg_good[0]; i++) {
		struct gw_pg_cfg c = { 0 };
		char err[1024];
		int rc = gw_config_pg_dsn(pg_good[i].dsn, &c, err, sizeof err);

		cr_expect_eq(rc, 0, "case %zu: %s", i, err);
		if (rc != 0)
			continue;
		cr_expect_str_eq(c.hostaddr, pg_good[i].hostaddr, "case %zu", i);
		if (pg_good[i].host)
			cr_expect_str_eq(c.host, pg_good[i].host, "case %zu", i);
		else
			cr_expect_null(c.host, "case %zu", i);
		cr_expect_eq(c.port, pg_good[i].port, "case %zu", i);
		cr_expect_str_eq(c.dbname, pg_good[i].dbname, "case %zu", i);
		cr_expect_str_eq(c.user, pg_good[i].user, "case %zu", i);
		if (pg_good[i].sslmode)
			cr_expect_str_eq(c.sslmode, pg_good[i].sslmode, "case %zu", i);
		else
			cr_expect_null(c.sslmode, "case %zu", i);
		if (pg_good[i].appname)
			cr_expect_str_eq(c.application_name, pg_good[i].appname, "case %zu", i);
		else
			cr_expect_null(c.application_name, "case %zu", i);
		cr_expect_eq(c.nextra, pg_good[i].nextra, "case %zu", i);
		for (size_t j = 0; j < c.nextra && j < pg_good[i].nextra; j++) {
			cr_expect_str_eq(c.extra_keys[j], pg_good[i].extra[j][0], "case %zu", i);
			cr_expect_str_eq(c.extra_values[j], pg_good[i].extra[j][1], "case %zu", i);
		}
		gw_config_pg_free(&c);
	}
}

#define PG_PW "state.postgres.dsn must not hold a password: use password_file or password_env"
#define PG_OK "hostaddr=10.0.0.5 dbname=a user=u"

static const struct {
	const char *dsn, *msg;
} pg_bad[] = {
	{ PG_OK " password=s3cr3t-canary", PG_PW },
	{ "password='s3cr3t canary' " PG_OK, PG_PW },
	{ PG_OK " passfile=/s3cr3t-canary", PG_PW },
	{ PG_OK " sslpassword=s3cr3t-canary", PG_PW },
	{ "password=s3cr3t-canary", PG_PW },	/* refused before anything else is missing */
	{ "postgresql://u:s3cr3t-canary@10.0.0.5/a", PG_PW },
	{ "postgresql://u:@10.0.0.5/a", PG_PW },
	{ "postgres://u@10.0.0.5/a?password=s3cr3t-canary", PG_PW },
	{ "postgresql://u@10.0.0.5/a?pass%77ord=s3cr3t-canary", PG_PW },
	/* a broken dsn is reported by position, never by its text (it may be a password) */
	{ PG_OK " password='s3cr3t-canary", "state.postgres.dsn: the quote at byte 44 is not closed" },
	{ PG_OK " s3cr3t-canary", "state.postgres.dsn: expected keyword=value at byte 35" },
	{ "=x " PG_OK, "state.postgres.dsn: expected keyword=value at byte 1" },
	{ "postgresql://u@10.0.0.5/a?s3cr3t-canary", "state.postgres.dsn: expected key=value in the query, at byte 27" },
	{ "postgresql://u@10.0.0.5/a?x=%zz", "state.postgres.dsn: bad percent-encoding in the query" },
	{ "postgresql://u@10.0.0.5/a%00", "state.postgres.dsn: bad percent-encoding in the database name" },
	{ "postgresql://u@10.0.0.5/a%4", "state.postgres.dsn: bad percent-encoding in the database name" },
	{ "postgresql://u@[::1/a", "state.postgres.dsn: an IPv6 address must be in [ ] (postgresql://[::1]:5432/db)" },
	/* the server: one, by IP literal */
	{ "host=db.example dbname=a user=u",
	  "state.postgres.dsn: host \"db.example\" is a name and there is no hostaddr: libpq resolves names "
	  "synchronously, which would block the event loop; set hostaddr to the server's IP address (host may "
	  "stay, for sslmode verify-full)" },
	{ "postgresql://u@db.example/a",
	  "state.postgres.dsn: host \"db.example\" is a name and there is no hostaddr: libpq resolves names "
	  "synchronously, which would block the event loop; set hostaddr to the server's IP address (host may "
	  "stay, for sslmode verify-full)" },
	{ "dbname=a user=u", "state.postgres.dsn needs hostaddr (or host), the server's IPv4 or IPv6 address" },
	{ "hostaddr=db.example dbname=a user=u", "state.postgres.dsn: hostaddr must be an IPv4 or IPv6 address" },
	{ "hostaddr=10.0.0.256 dbname=a user=u", "state.postgres.dsn: hostaddr must be an IPv4 or IPv6 address" },
	{ "hostaddr=10.0.0.5,10.0.0.6 dbname=a user=u", "state.postgres.dsn names several servers; give one" },
	{ "postgresql://u@10.0.0.5,10.0.0.6/a", "state.postgres.dsn names several servers; give one" },
	{ "host=/var/run/postgresql dbname=a user=u",
	  "state.postgres.dsn: host must be an IP address or a DNS name (a Unix socket directory is not "
	  "supported: give hostaddr)" },
	/* required keywords and values */
	{ "hostaddr=10.0.0.5 user=u", "state.postgres.dsn needs dbname" },
	{ "hostaddr=10.0.0.5 dbname=a", "state.postgres.dsn needs user" },
	{ PG_OK " port=0", "state.postgres.dsn: port must be 1..65535" },
	{ PG_OK " port=65536", "state.postgres.dsn: port must be 1..65535" },
	{ PG_OK " port=54x", "state.postgres.dsn: port must be 1..65535" },
	{ PG_OK " port=-1", "state.postgres.dsn: port must be 1..65535" },
	{ "postgresql://u@10.0.0.5:99999/a", "state.postgres.dsn: port must be 1..65535" },
	{ PG_OK " sslmode=sometimes",
	  "state.postgres.dsn: sslmode must be disable, allow, prefer, require, verify-ca or verify-full" },
	{ PG_OK " dbname=b", "state.postgres.dsn: keyword \"dbname\" is given twice" },
	{ PG_OK " sslmode=''", "state.postgres.dsn: keyword \"sslmode\" has an empty value" },
	/* keywords: a known safe set */
	{ PG_OK " options=-cfoo=bar", "state.postgres.dsn: keyword \"options\" is not allowed: the gateway sets "
				      "it (statement_timeout from state.postgres.timeout_ms)" },
	{ PG_OK " connect_timeout=3",
	  "state.postgres.dsn: keyword \"connect_timeout\" is not allowed: use state.postgres.timeout_ms" },
	{ PG_OK " service=prod", "state.postgres.dsn: keyword \"service\" is not allowed: pg_service.conf may name "
				 "a host to resolve or hold a password" },
	{ PG_OK " gssencmode=prefer",
	  "state.postgres.dsn: keyword \"gssencmode\" is not allowed: GSSAPI (Kerberos) looks names up synchronously" },
	{ PG_OK " frobnicate=1",
	  "state.postgres.dsn: unknown or unsupported keyword \"frobnicate\" (allowed: host, hostaddr, port, dbname, "
	  "user, sslmode, application_name, sslrootcert, sslcert, sslkey, sslcrl, sslcrldir, sslsni, "
	  "ssl_min_protocol_version, ssl_max_protocol_version, channel_binding, require_auth, keepalives*, "
	  "tcp_user_timeout, target_session_attrs)" },
	{ "a=1 b=1 c=1 d=1 e=1 f=1 g=1 h=1 i=1 j=1 k=1 l=1 m=1 n=1 o=1 p=1 q=1 r=1 s=1 t=1 u=1 v=1 w=1 x=1 y=1 "
	  "z=1 aa=1 bb=1 cc=1 dd=1 ee=1 ff=1 gg=1",
	  "state.postgres.dsn has more than 32 keywords" },
};

Test(config, postgres_dsn_refused)
{
	for (size_t i = 0; i < sizeof pg_bad / sizeof pg_bad[0]; i++) {
		struct gw_pg_cfg c = { 0 };
		char err[1024];

		cr_expect_eq(gw_config_pg_dsn(pg_bad[i].dsn, &c, err, sizeof err), -1, "case %zu accepted", i);
		cr_expect_str_eq(err, pg_bad[i].msg, "case %zu:\n got  %s\n want %s", i, err, pg_bad[i].msg);
		cr_expect_null(strstr(err, "s3cr3t"), "case %zu: the password leaked: %s", i, err);
		cr_expect_null(strstr(err, "canary"), "case %zu: the password leaked: %s", i, err);
		/* Refused: nothing is left allocated (ASan checks) and the fields are empty. */
		cr_expect_null(c.hostaddr, "case %zu", i);
		cr_expect_eq(c.nextra, 0, "case %zu", i);
	}
}

/* A whole state.postgres section: values, defaults, and the chart's shape (a long dsn folded over
 * several lines by toYaml, password_file, pool, cluster.expected_replicas). */
Test(config, postgres_section_is_read)
{
	static const char chart[] =
		"state:\n"
		"  postgres:\n"
		"    dsn: host=db.example.com hostaddr=10.0.0.5 port=5432 dbname=a3d user=a3d sslmode=verify-full\n"
		"      sslrootcert=/var/run/secrets/animate3d-gateway/postgres/ca.crt application_name=gw\n"
		"    password_file: /var/run/secrets/animate3d-gateway/postgres/password\n"
		"    pool: 32\n"
		"    timeout_ms: 100\n"
		"  idempotency_ttl_s: 3600\n"
		"cluster:\n"
		"  expected_replicas: 10\n" BASE;
	static const char env[] =
		"state: {postgres: {dsn: \"postgresql://gw@[::1]/a3d\", password_env: A3D_PG_PASSWORD}}\n"
		"cluster: {expected_replicas: 1}\n" BASE;
	static const char none[] = "state:\n  postgres:\n    dsn: " PG_DSN "\n  memory: false\n  read_only: false\n"
				   BASE;
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	const struct gw_pg_cfg *pg;
	char path[512];

	cr_assert_eq(load_text(chart, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	pg = &cfg->state.postgres;
	cr_expect_eq(pg->enabled, 1);
	cr_expect_eq(pg->line, 3);
	cr_expect_str_eq(pg->hostaddr, "10.0.0.5");
	cr_expect_str_eq(pg->host, "db.example.com");
	cr_expect_eq(pg->port, 5432);
	cr_expect_str_eq(pg->dbname, "a3d");
	cr_expect_str_eq(pg->user, "a3d");
	cr_expect_str_eq(pg->sslmode, "verify-full");
	cr_expect_str_eq(pg->application_name, "gw");
	cr_assert_eq(pg->nextra, 1);
	cr_expect_str_eq(pg->extra_keys[0], "sslrootcert");
	cr_expect_str_eq(pg->extra_values[0], "/var/run/secrets/animate3d-gateway/postgres/ca.crt");
	cr_expect_str_eq(pg->password_file, "/var/run/secrets/animate3d-gateway/postgres/password");
	cr_expect_null(pg->password_env);
	cr_expect_eq(pg->password_line, 5);
	cr_expect_eq(pg->pool, 32);
	cr_expect_eq(pg->timeout_ms, 100);
	cr_expect_eq(cfg->state.memory_only, 0);
	cr_expect_null(cfg->state.path);
	cr_expect_eq(cfg->state.idempotency_ttl_s, 3600);
	cr_expect_eq(cfg->cluster.expected_replicas, 10);
	cr_expect_eq(cfg->cluster.line, 10);
	gw_config_free(cfg);

	cr_assert_eq(load_text(env, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	pg = &cfg->state.postgres;
	cr_expect_eq(pg->enabled, 1);
	cr_expect_str_eq(pg->hostaddr, "::1");
	cr_expect_null(pg->password_file);
	cr_expect_str_eq(pg->password_env, "A3D_PG_PASSWORD");
	cr_expect_eq(pg->pool, GW_CONFIG_PG_DEFAULT_POOL);
	cr_expect_eq(pg->timeout_ms, GW_CONFIG_PG_DEFAULT_TIMEOUT_MS);
	cr_expect_eq(cfg->cluster.expected_replicas, 1);
	gw_config_free(cfg);

	/* No password at all (trust or certificate authentication); memory/read_only false say nothing. */
	cr_assert_eq(load_text(none, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_eq(cfg->state.postgres.enabled, 1);
	cr_expect_null(cfg->state.postgres.password_file);
	cr_expect_null(cfg->state.postgres.password_env);
	cr_expect_eq(cfg->state.postgres.password_line, 0);
	gw_config_free(cfg);

	/* Without the section: disabled, one replica. */
	cr_assert_eq(load_text(BASE, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_eq(cfg->state.postgres.enabled, 0);
	cr_expect_null(cfg->state.postgres.hostaddr);
	cr_expect_eq(cfg->cluster.expected_replicas, 1);
	cr_expect_eq(cfg->cluster.line, 0);
	gw_config_free(cfg);
}

/* cluster.expected_replicas: each replica's share of a cluster-wide limit. */
Test(config, replica_share)
{
	static const struct {
		unsigned cap, replicas, want;
	} caps[] = {
		{ 0, 3, 0 },	/* no cap stays no cap */
		{ 10, 1, 10 }, { 10, 3, 4 }, { 9, 3, 3 }, { 1, 5, 1 }, { 100, 1000, 1 }, { 7, 0, 7 },
	};
	static const struct {
		double rate;
		unsigned replicas;
		double want;
	} rates[] = {
		{ 0, 3, 0 }, { 30, 3, 10 }, { 1, 4, 0.25 }, { 5, 1, 5 }, { 5, 0, 5 },
	};

	static const struct {
		double burst;
		unsigned replicas, max_cost;
		double want;
	} bursts[] = {
		{ 40, 1, 5, 40 },	/* one replica: as configured */
		{ 40, 4, 1, 10 },
		{ 40, 4, 0, 10 },
		{ 3, 10, 1, 1 },	/* never below one token */
		{ 3, 10, 0, 1 },
		{ 40, 10, 5, 5 },	/* never below the dearest call (StartJob: 5) */
		{ 4, 10, 5, 4 },	/* ...nor above the configured burst */
		{ 0.5, 10, 1, 0.5 },
		{ 0, 10, 1, 0 },
	};

	for (size_t i = 0; i < sizeof bursts / sizeof bursts[0]; i++)
		cr_expect_float_eq(gw_config_replica_burst(bursts[i].burst, bursts[i].replicas, bursts[i].max_cost),
				   bursts[i].want, 1e-12, "burst case %zu", i);
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
		cr_expect_eq(gw_config_replica_cap(caps[i].cap, caps[i].replicas), caps[i].want, "cap case %zu", i);
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
		cr_expect_float_eq(gw_config_replica_rate(rates[i].rate, rates[i].replicas), rates[i].want, 1e-12,
				   "rate case %zu", i);
}

/* ---- redis.url (config_redis.c): redis://IP[:port][/db] into struct gw_redis_cfg ---- */

static const struct {
	const char *url, *hostaddr;
	unsigned port, db;
} redis_good[] = {
	{ "redis://10.0.0.7:6379/0", "10.0.0.7", 6379, 0 },
	{ "redis://10.0.0.7", "10.0.0.7", 6379, 0 },
	{ "redis://10.0.0.7/", "10.0.0.7", 6379, 0 },
	{ "redis://10.0.0.7:1/15", "10.0.0.7", 1, 15 },
	{ "redis://10.0.0.7:65535/3", "10.0.0.7", 65535, 3 },
	{ "redis://127.0.0.1:6380", "127.0.0.1", 6380, 0 },
	{ "redis://[::1]:7000/15", "::1", 7000, 15 },
	{ "redis://[2001:db8::7]", "2001:db8::7", 6379, 0 },
	{ "redis://[2001:db8::7]/2", "2001:db8::7", 6379, 2 },
	{ "redis://[::ffff:10.0.0.7]:6379/0", "::ffff:10.0.0.7", 6379, 0 },
	{ "redis://10.0.0.7:06379/00", "10.0.0.7", 6379, 0 },
};

Test(config, redis_url_accepted)
{
	for (size_t i = 0; i < sizeof redis_good / sizeof redis_good[0]; i++) {
		struct gw_redis_cfg c = { 0 };
		char err[512];
		int rc = gw_config_redis_url(redis_good[i].url, &c, err, sizeof err);

		cr_expect_eq(rc, 0, "case %zu: %s", i, err);
		if (rc != 0)
			continue;
		cr_expect_str_eq(c.hostaddr, redis_good[i].hostaddr, "case %zu", i);
		cr_expect_eq(c.port, redis_good[i].port, "case %zu", i);
		cr_expect_eq(c.db, redis_good[i].db, "case %zu", i);
		/* A second url replaces the first (nothing leaks: ASan checks). */
		cr_expect_eq(gw_config_redis_url("redis://10.9.9.9:1/1", &c, err, sizeof err), 0, "case %zu", i);
		cr_expect_str_eq(c.hostaddr, "10.9.9.9", "case %zu", i);
		gw_config_redis_free(&c);
	}
}

#define RU_CRED "redis.url must not hold credentials (user:password@): use password_file or password_env"
#define RU_FORM "redis.url must be redis://IP[:port][/db], e.g. redis://10.0.0.7:6379/0"
#define RU_V6 "redis.url: an IPv6 address must be in [ ] (redis://[::1]:6379/0)"
#define RU_HOST "redis.url: the host must be an IPv4 address or an IPv6 address in [ ]"
#define RU_PORT "redis.url: port must be 1..65535"
#define RU_DB "redis.url: the database must be 0..15 (redis://IP:port/0)"
#define RU_NAME(h)                                                                                           \
	"redis.url: host \"" h "\" is a name: hiredis resolves names with a blocking getaddrinfo, which would " \
	"stall the event loop; give the server's IP address (IPv6 in [ ])"

static const struct {
	const char *url, *msg;
} redis_bad[] = {
	{ "rediss://10.0.0.7:6380/0",
	  "redis.url: rediss:// (TLS) is not supported: hiredis 0.14 has no TLS; connect with redis:// to a TLS "
	  "sidecar on the pod, or let the service mesh encrypt the connection (docs/operations.md, \"Several "
	  "replicas: Redis\")" },
	{ "http://10.0.0.7:6379", RU_FORM },
	{ "unix:///run/redis.sock", RU_FORM },
	{ "REDIS://10.0.0.7", RU_FORM },
	{ "10.0.0.7:6379", RU_FORM },
	/* credentials in any form, never quoted */
	{ "redis://:s3cr3t-canary@10.0.0.7:6379/0", RU_CRED },
	{ "redis://gw:s3cr3t-canary@10.0.0.7/0", RU_CRED },
	{ "redis://s3cr3t-canary@10.0.0.7", RU_CRED },
	{ "redis://a@b@s3cr3t-canary@10.0.0.7", RU_CRED },
	{ "redis://10.0.0.7/0?password=s3cr3t-canary",
	  "redis.url must not have a query or a fragment (?, #): the other settings are keys of the redis section" },
	{ "redis://10.0.0.7#s3cr3t-canary",
	  "redis.url must not have a query or a fragment (?, #): the other settings are keys of the redis section" },
	/* the host: an IP literal */
	{ "redis://", "redis.url needs the server's IP address, e.g. redis://10.0.0.7:6379/0" },
	{ "redis:///0", "redis.url needs the server's IP address, e.g. redis://10.0.0.7:6379/0" },
	{ "redis://:6379/0", "redis.url needs the server's IP address, e.g. redis://10.0.0.7:6379/0" },
	{ "redis://[]:6379", "redis.url needs the server's IP address, e.g. redis://10.0.0.7:6379/0" },
	{ "redis://redis.example:6379/0", RU_NAME("redis.example") },
	{ "redis://redis-master.cache.svc.cluster.local", RU_NAME("redis-master.cache.svc.cluster.local") },
	{ "redis://localhost", RU_NAME("localhost") },
	{ "redis://10.0.0.256", RU_NAME("10.0.0.256") },
	{ "redis://10.1", RU_NAME("10.1") },
	{ "redis://10.0.0.7%20", RU_HOST },
	{ "redis://[redis.example]:6379", RU_HOST },
	{ "redis://[10.0.0.7]", RU_HOST },
	{ "redis://[fe80::1%25eth0]", RU_HOST },
	{ "redis://::1", RU_V6 },
	{ "redis://2001:db8::7:6379/0", RU_V6 },
	{ "redis://[::1/0", RU_V6 },
	{ "redis://[::1]6379/0", RU_V6 },
	/* port and database */
	{ "redis://10.0.0.7:0", RU_PORT },
	{ "redis://10.0.0.7:65536", RU_PORT },
	{ "redis://10.0.0.7:", RU_PORT },
	{ "redis://10.0.0.7:-1", RU_PORT },
	{ "redis://10.0.0.7:63x9", RU_PORT },
	{ "redis://10.0.0.7:999999", RU_PORT },
	{ "redis://[::1]:/0", RU_PORT },
	{ "redis://10.0.0.7:6379/16", RU_DB },
	{ "redis://10.0.0.7:6379/-1", RU_DB },
	{ "redis://10.0.0.7:6379/a3d", RU_DB },
	{ "redis://10.0.0.7:6379/0/1", RU_DB },
	{ "redis://10.0.0.7:6379/99999999999", RU_DB },
};

Test(config, redis_url_refused)
{
	for (size_t i = 0; i < sizeof redis_bad / sizeof redis_bad[0]; i++) {
		struct gw_redis_cfg c = { 0 };
		char err[512];

		cr_expect_eq(gw_config_redis_url(redis_bad[i].url, &c, err, sizeof err), -1, "case %zu accepted", i);
		cr_expect_str_eq(err, redis_bad[i].msg, "case %zu:\n got  %s\n want %s", i, err, redis_bad[i].msg);
		cr_expect_null(strstr(err, "s3cr3t"), "case %zu: the password leaked: %s", i, err);
		cr_expect_null(strstr(err, "canary"), "case %zu: the password leaked: %s", i, err);
		cr_expect_null(c.hostaddr, "case %zu", i);
		cr_expect_eq(c.port, 0, "case %zu", i);
	}
}

/* A whole redis section: the chart's shape, the defaults, and no section at all. */
Test(config, redis_section_is_read)
{
	static const char chart[] =
		"state:\n"
		"  postgres: {dsn: " PG_DSN ", password_file: /var/run/secrets/animate3d-gateway/postgres/password}\n"
		"cluster:\n"
		"  expected_replicas: 3\n"
		"redis:\n"
		"  url: redis://[2001:db8::7]:6380/2\n"
		"  password_file: /var/run/secrets/animate3d-gateway/redis/password\n"
		"  key_prefix: a3d-prod:v1.\n"
		"  seal_key_file: /var/run/secrets/animate3d-gateway/redis-seal/seal.key\n"
		"  connect_timeout_ms: 60000\n"
		"  command_timeout_ms: 10\n"
		"  fallback: local\n" BASE;
	static const char dflt[] = RS "  url: \"redis://10.0.0.7\"\n  seal_key_file: /k\n  password_env: A3D_REDIS_PW\n"
				   BASE;
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	const struct gw_redis_cfg *r;
	char path[512];

	cr_assert_eq(load_text(chart, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	r = &cfg->redis;
	cr_expect_eq(r->enabled, 1);
	cr_expect_eq(r->line, 6);
	cr_expect_str_eq(r->hostaddr, "2001:db8::7");
	cr_expect_eq(r->port, 6380);
	cr_expect_eq(r->db, 2);
	cr_expect_str_eq(r->password_file, "/var/run/secrets/animate3d-gateway/redis/password");
	cr_expect_null(r->password_env);
	cr_expect_eq(r->password_line, 7);
	cr_expect_str_eq(r->key_prefix, "a3d-prod:v1.");
	cr_expect_str_eq(r->seal_key_file, "/var/run/secrets/animate3d-gateway/redis-seal/seal.key");
	cr_expect_eq(r->seal_key_line, 9);
	cr_expect_eq(r->connect_timeout_ms, 60000);
	cr_expect_eq(r->command_timeout_ms, 10);
	cr_expect_eq(r->fallback, GW_REDIS_FALLBACK_LOCAL);
	cr_expect_eq(cfg->cluster.expected_replicas, 3);
	gw_config_free(cfg);

	cr_assert_eq(load_text(dflt, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	r = &cfg->redis;
	cr_expect_eq(r->enabled, 1);
	cr_expect_str_eq(r->hostaddr, "10.0.0.7");
	cr_expect_eq(r->port, GW_CONFIG_REDIS_DEFAULT_PORT);
	cr_expect_eq(r->db, 0);
	cr_expect_null(r->password_file);
	cr_expect_str_eq(r->password_env, "A3D_REDIS_PW");
	cr_expect_eq(r->password_line, 5);
	cr_expect_str_eq(r->key_prefix, GW_CONFIG_REDIS_DEFAULT_PREFIX);
	cr_expect_str_eq(r->seal_key_file, "/k");
	cr_expect_eq(r->connect_timeout_ms, GW_CONFIG_REDIS_DEFAULT_CONNECT_MS);
	cr_expect_eq(r->command_timeout_ms, GW_CONFIG_REDIS_DEFAULT_COMMAND_MS);
	cr_expect_eq(r->fallback, GW_REDIS_FALLBACK_LOCAL);
	gw_config_free(cfg);

	/* Without the section: disabled, everything empty. */
	cr_assert_eq(load_text(BASE, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_eq(cfg->redis.enabled, 0);
	cr_expect_eq(cfg->redis.line, 0);
	cr_expect_null(cfg->redis.hostaddr);
	cr_expect_null(cfg->redis.key_prefix);
	cr_expect_null(cfg->redis.seal_key_file);
	gw_config_free(cfg);
}

/* Every refusal in one file is reported, each on its line, and none quotes the password. */
Test(config, redis_errors_all_reported)
{
	static const char text[] =
		"redis:\n"
		"  url: redis://:s3cr3t-canary@redis.example/0\n"
		"  password: s3cr3t-canary\n"
		"  key_prefix: 'a b'\n"
		"  command_timeout_ms: 0\n" BASE;
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512];

	cr_assert_eq(load_text(text, path, sizeof(path), &cfg, &errs), -1);
	cr_expect_null(cfg);
	/* password, key_prefix, command timeout, seal_key_file, url, then the cross-check */
	cr_expect_eq(errs.n, 6, "%zu errors", errs.n);
	for (size_t i = 0; i < errs.n; i++)
		cr_expect_null(strstr(errs.msg[i], "s3cr3t"), "the password leaked: %s", errs.msg[i]);
	gw_errors_clear(&errs);
}

/* tenants[].budget (issue 22): the values, and the defaults (hard, failed jobs released, the
 * calendar month); a tenant without one has none. The admin permission (GetUsage of every
 * team) is read as such. */
Test(config, tenant_budget_is_read)
{
	static const char text[] =
		ACCOUNT_SIM
		"tenants:\n"
		"  - {name: a, account: sim, budget: {minutes_per_month: 1},\n"
		"     keys: [{sha256: " HEX_A ", permissions: [read, admin]}]}\n"
		"  - {name: b, account: sim, budget: {minutes_per_month: 600, hard: false,\n"
		"     count_failed: true, window: rolling_30d}}\n"
		"  - {name: c, account: sim}\n";
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512];

	cr_assert_eq(load_text(text, path, sizeof(path), &cfg, &errs), 0, "%s", errs.n ? errs.msg[0] : "-");
	cr_expect_eq(cfg->tenants[0].budget.enabled, 1);
	cr_expect_eq(cfg->tenants[0].budget.minutes, 1);
	cr_expect_eq(cfg->tenants[0].budget.hard, 1);
	cr_expect_eq(cfg->tenants[0].budget.count_failed, 0);
	cr_expect_eq(cfg->tenants[0].budget.window, GW_BUDGET_WINDOW_MONTH);
	cr_expect_eq(cfg->tenants[0].keys[0].perms, GW_PERM_READ | GW_PERM_ADMIN);
	cr_expect_eq(cfg->tenants[1].budget.minutes, 600);
	cr_expect_eq(cfg->tenants[1].budget.hard, 0);
	cr_expect_eq(cfg->tenants[1].budget.count_failed, 1);
	cr_expect_eq(cfg->tenants[1].budget.window, GW_BUDGET_WINDOW_ROLLING_30D);
	cr_expect_eq(cfg->tenants[2].budget.enabled, 0);
	gw_config_free(cfg);
}

Test(config, otlp_section_is_read)
{
	static const char full[] = "otlp:\n"
				   "  endpoint: https://10.0.0.9:4318/v1/traces\n"
				   "  headers_file: /var/run/secrets/otlp/headers\n"
				   "  service_name: a3d-prod\n"
				   "  batch_max: 100\n"
				   "  queue_max: 1000\n"
				   "  flush_ms: 500\n"
				   "  timeout_ms: 3000\n" BASE;
	static const char dflt[] = "otlp:\n  endpoint: http://127.0.0.1:4318/v1/traces\n" BASE;
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	char path[512];

	cr_assert_eq(load_text(full, path, sizeof(path), &cfg, &errs), 0, "%s",
		     errs.n ? errs.msg[0] : "-");
	cr_expect_str_eq(cfg->otlp.endpoint, "https://10.0.0.9:4318/v1/traces");
	cr_expect_str_eq(cfg->otlp.headers_file, "/var/run/secrets/otlp/headers");
	cr_expect_str_eq(cfg->otlp.service_name, "a3d-prod");
	cr_expect_eq(cfg->otlp.batch_max, 100);
	cr_expect_eq(cfg->otlp.queue_max, 1000);
	cr_expect_eq(cfg->otlp.flush_ms, 500);
	cr_expect_eq(cfg->otlp.timeout_ms, 3000);
	cr_expect_eq(cfg->otlp.line, 2);
	gw_config_free(cfg);
	cfg = NULL;

	cr_assert_eq(load_text(dflt, path, sizeof(path), &cfg, &errs), 0, "%s",
		     errs.n ? errs.msg[0] : "-");
	cr_expect_null(cfg->otlp.headers_file);
	cr_expect_null(cfg->otlp.service_name);
	cr_expect_eq(cfg->otlp.batch_max, 512);
	cr_expect_eq(cfg->otlp.queue_max, 4096);
	cr_expect_eq(cfg->otlp.flush_ms, 2000);
	cr_expect_eq(cfg->otlp.timeout_ms, 5000);
	gw_config_free(cfg);
	cfg = NULL;

	/* Absent: export off. */
	cr_assert_eq(load_text(BASE, path, sizeof(path), &cfg, &errs), 0, "%s",
		     errs.n ? errs.msg[0] : "-");
	cr_expect_null(cfg->otlp.endpoint);
	gw_config_free(cfg);
}
