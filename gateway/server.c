/*
 * server: the gRPC server on gRPC core, the poller thread and the process lifecycle.
 * See server.h for the threading and the configuration generations.
 */
#include "gateway/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <openssl/rand.h>

#include "auth/upstream/secret.h"
#include "auth/upstream/session.h"
#include "gateway/base/clock.h"
#include "gateway/base/connguard.h"
#include "gateway/base/fdlimit.h"
#include "gateway/base/handoff.h"
#include "gateway/base/iobrake.h"
#include "gateway/base/liblog.h"
#include "gateway/base/log.h"
#include "gateway/base/memguard.h"
#include "gateway/base/metrics.h"
#include "gateway/base/otlp.h"
#include "gateway/base/procmetrics.h"
#include "gateway/base/streamguard.h"
#include "gateway/call/admit.h"
#include "gateway/call/svc.h"
#include "gateway/cluster/climit.h"
#include "gateway/cluster/redis.h"
#include "gateway/config/config.h"
#include "gateway/config/config_async.h"
#include "gateway/grpcargs.h"
#include "gateway/http.h"
#include "gateway/rest.h"
#include "gateway/methods.h"
#include "gateway/state/owner.h"
#include "gateway/state/pg.h"
#include "gateway/state/store.h"
#include "gateway/svc/follower.h"
#include "gateway/svc/webhook_out.h"
#include "gateway/upstream/upstream.h"


/* ---- poller thread -> loop ---- */

static void *server_poller(void *arg)
{
	struct gw_server *srv = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(srv->env.cq,
							   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		struct gw_handoff_ev h = { ev.tag, ev.success, ev.type == GRPC_QUEUE_SHUTDOWN };

		/* Waits while the loop is GW_HANDOFF_MAX events behind: a tag is never dropped. */
		gw_handoff_push(srv->handoff, &h);
		if (h.last)
			return NULL;
	}
}

/* Polls the sockets (gRPC core's reads, writes, accepts, timers); no tag ever arrives here.
 * It runs at grpc.io_thread_nice: gRPC core 1.51 turns every stream a client opens into a call
 * queued for the loop, and under rapid reset this thread, parsing, outran the loop taking them
 * (calls piled up by the hundred thousand, gigabytes). Niced, it gets the CPU the loop leaves,
 * so calls cannot be made faster than they are taken when both want the CPU (tests/abuse/
 * README.md has the figures). Lowering a thread's priority needs no privilege. */
static void *server_io(void *arg)
{
	struct gw_server *srv = arg;
	int nice = (int)srv->env.cfg->grpc.io_thread_nice;

	if (nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) != 0)
		gw_log(GW_LOG_WARN, "server", GW_LS("msg", "cannot lower the I/O thread's priority"),
		       GW_LN("nice", nice), GW_LN("errno", errno), GW_LEND);
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(srv->io_cq,
							   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return NULL;
	}
}

/* After the gRPC server has shut down (or never started): the I/O thread ends. */
static void server_io_stop(struct gw_server *srv)
{
	if (!srv->io_running)
		return;
	grpc_completion_queue_shutdown(srv->io_cq);
	pthread_join(srv->io_thread, NULL);
	srv->io_running = 0;
}

static void server_on_shutdown_tag(struct gw_server *srv)
{
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "grpc server shut down"), GW_LEND);
	if (srv->ev_grace)
		evtimer_del(srv->ev_grace);
	if (srv->ev_drain_poll)
		evtimer_del(srv->ev_drain_poll);
	grpc_completion_queue_shutdown(srv->env.cq);
}

/* One completion-queue event, on the loop thread (gateway/base/handoff.h). */
static void server_on_handoff(const struct gw_handoff_ev *ev, void *arg)
{
	struct gw_server *srv = arg;
	struct gw_tag *tag = ev->tag;

	if (ev->last) {
		srv->cq_shut = 1;
		event_base_loopbreak(srv->env.base);
	} else if (tag && tag->kind == GW_TAG_SHUTDOWN) {
		server_on_shutdown_tag(srv);
	} else if (tag) {
		gw_call_event(tag, ev->ok);
	}
}

/* ---- drain and reload ---- */

static void server_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *srv = arg;

	(void)fd;
	(void)what;
	gw_log(GW_LOG_WARN, "server", GW_LS("msg", "grace period over, cancelling calls"),
	       GW_LN("in_flight", (long long)srv->env.stats.calls_in_flight), GW_LEND);
	if (srv->ev_drain_poll)
		evtimer_del(srv->ev_drain_poll);
	grpc_server_cancel_all_calls(srv->env.grpc);
}

/*
 * gRPC core's shutdown completes only once every client connection is gone, and a client that
 * keeps an idle channel open need not hang up soon after GOAWAY (grpcio took ~5 s, others may
 * never): the drain would sit out the grace period for nothing. So once no call is in flight (and no detached StartJob transfer,
 * whose outcome must still be recorded), close the connections now. Returns 1 when it did.
 */
static int server_drain_check(struct gw_server *srv)
{
	struct gw_env *env = &srv->env;

	if (!env->draining || srv->drain_cut || env->stats.calls_in_flight > 0)
		return 0;
	for (size_t i = 0; i < env->nsvcs; i++)
		if (env->svcs[i].desc->idle && !env->svcs[i].desc->idle(env->svcs[i].state))
			return 0;
	srv->drain_cut = 1;
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "nothing in flight, closing client connections"),
	       GW_LEND);
	if (srv->ev_drain_poll)
		evtimer_del(srv->ev_drain_poll);
	grpc_server_cancel_all_calls(env->grpc);
	return 1;
}

static void server_on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	server_drain_check(arg);
}

void gw_server_drain(struct gw_server *srv, const char *why)
{
	struct timeval tv;

	struct gw_env *env = &srv->env;

	if (env->draining)
		return;
	env->draining = 1;
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "draining"), GW_LS("reason", why),
	       GW_LN("in_flight", (long long)env->stats.calls_in_flight),
	       GW_LN("grace_ms", srv->grace_ms), GW_LEND);
	/* Long-lived streams end now (health watches say NOT_SERVING first), so the drain does
	 * not wait for them. */
	for (size_t i = 0; i < env->nsvcs; i++)
		if (env->svcs[i].desc->drain)
			env->svcs[i].desc->drain(env->svcs[i].state);
	srv->shutdown_notified = 1;
	grpc_server_shutdown_and_notify(env->grpc, env->cq, &srv->shutdown_tag);
	tv.tv_sec = srv->grace_ms / 1000;
	tv.tv_usec = (srv->grace_ms % 1000) * 1000;
	evtimer_add(srv->ev_grace, &tv);
	if (!server_drain_check(srv)) {
		/* Calls end on CQ events, detached transfers on upstream callbacks: a short poll
		 * sees both without hooks in either. */
		tv.tv_sec = 0;
		tv.tv_usec = GW_SERVER_DRAIN_POLL_MS * 1000;
		evtimer_add(srv->ev_drain_poll, &tv);
	}
}

static int server_str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Accounts are built once; a reload may not change them (restart to apply). */
static int server_accounts_same(const struct gw_config *a, const struct gw_config *b)
{
	if (a->naccounts != b->naccounts)
		return 0;
	for (size_t i = 0; i < a->naccounts; i++) {
		const struct gw_account_cfg *x = &a->accounts[i], *y = &b->accounts[i];

		if (!server_str_eq(x->name, y->name) || !server_str_eq(x->base_url, y->base_url) ||
		    !server_str_eq(x->client_id, y->client_id) ||
		    !server_str_eq(x->secret_file, y->secret_file) ||
		    !server_str_eq(x->secret_env, y->secret_env))
			return 0;
	}
	return 1;
}

/* Listeners, TLS and the state store are set up once: say so when a reload changes them. */
static void server_warn_restart_only(const struct gw_config *a, const struct gw_config *b)
{
	static const char *const names[] = { "listen.grpc", "listen.http", "listen.rest", "tls.cert_file",
					     "tls.key_file", "tls.client_ca_file", "state.path",
					     "webhooks.path_prefix", "webhooks.public_url" };
	const char *x[] = { a->grpc_listen, a->http_listen, a->rest_listen, a->tls.cert_file, a->tls.key_file,
			    a->tls.client_ca_file, a->state.path, a->webhooks.path_prefix,
			    a->webhooks.public_url };
	const char *y[] = { b->grpc_listen, b->http_listen, b->rest_listen, b->tls.cert_file, b->tls.key_file,
			    b->tls.client_ca_file, b->state.path, b->webhooks.path_prefix,
			    b->webhooks.public_url };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!server_str_eq(x[i], y[i]))
			gw_log(GW_LOG_WARN, "reload", GW_LS("key", names[i]),
			       GW_LS("msg", "changed: takes effect at the next restart"), GW_LEND);
	/* The span exporter is built once, at start (server_otlp_new). */
	if (!server_str_eq(a->otlp.endpoint, b->otlp.endpoint) ||
	    !server_str_eq(a->otlp.headers_file, b->otlp.headers_file) ||
	    !server_str_eq(a->otlp.service_name, b->otlp.service_name) ||
	    a->otlp.batch_max != b->otlp.batch_max || a->otlp.queue_max != b->otlp.queue_max ||
	    a->otlp.flush_ms != b->otlp.flush_ms || a->otlp.timeout_ms != b->otlp.timeout_ms)
		gw_log(GW_LOG_WARN, "reload", GW_LS("key", "otlp"),
		       GW_LS("msg", "changed: takes effect at the next restart"), GW_LEND);
}

static void server_apply_log_level(const struct gw_config *cfg)
{
	enum gw_log_level lvl;

	if (cfg->log_level && gw_log_level_parse(cfg->log_level, &lvl) == 0)
		gw_log_set_level(lvl);
}

/* SIGHUP re-reads every account's secret file, whatever happens to the configuration file:
 * accounts cannot change without a restart, so the boot generation names the files. */
static void server_reload_secrets(struct gw_server *srv)
{
	const struct gw_config *boot = srv->env.boot_cfg;
	char err[256], fp[13];

	for (size_t i = 0; i < srv->env.naccounts && i < boot->naccounts; i++) {
		const struct gw_account_cfg *ac = &boot->accounts[i];
		int r;

		if (!ac->secret_file)
			continue;	/* an environment variable cannot change under us */
		fp[0] = '\0';
		r = gw_session_reload_secret(&srv->env.accounts[i], ac, fp, err, sizeof err);
		if (r < 0)
			gw_log(GW_LOG_ERROR, "secret", GW_LS("account", ac->name),
			       GW_LS("msg", "cannot reload the secret, keeping the old one"),
			       GW_LS("error", err), GW_LEND);
		else
			gw_log(GW_LOG_INFO, "secret", GW_LS("account", ac->name),
			       GW_LS("msg", r ? "secret reloaded" : "secret unchanged"),
			       GW_LS("fingerprint", fp), GW_LEND);
	}
}

/* The PostgreSQL connection and the Redis settings are built once at start. */
static int server_pg_same(const struct gw_pg_cfg *a, const struct gw_pg_cfg *b)
{
	if (a->enabled != b->enabled)
		return 0;
	if (!a->enabled)
		return 1;
	if (!server_str_eq(a->hostaddr, b->hostaddr) || !server_str_eq(a->host, b->host) ||
	    a->port != b->port || !server_str_eq(a->dbname, b->dbname) ||
	    !server_str_eq(a->user, b->user) || !server_str_eq(a->sslmode, b->sslmode) ||
	    !server_str_eq(a->application_name, b->application_name) ||
	    !server_str_eq(a->password_file, b->password_file) ||
	    !server_str_eq(a->password_env, b->password_env) || a->pool != b->pool ||
	    a->timeout_ms != b->timeout_ms || a->nextra != b->nextra)
		return 0;
	for (size_t i = 0; i < a->nextra; i++)
		if (!server_str_eq(a->extra_keys[i], b->extra_keys[i]) ||
		    !server_str_eq(a->extra_values[i], b->extra_values[i]))
			return 0;
	return 1;
}

static int server_redis_same(const struct gw_redis_cfg *a, const struct gw_redis_cfg *b)
{
	if (a->enabled != b->enabled)
		return 0;
	return !a->enabled ||
	       (server_str_eq(a->hostaddr, b->hostaddr) && a->port == b->port && a->db == b->db &&
		server_str_eq(a->password_file, b->password_file) &&
		server_str_eq(a->password_env, b->password_env) &&
		server_str_eq(a->key_prefix, b->key_prefix) &&
		server_str_eq(a->seal_key_file, b->seal_key_file) &&
		a->connect_timeout_ms == b->connect_timeout_ms &&
		a->command_timeout_ms == b->command_timeout_ms && a->fallback == b->fallback);
}

/* Swaps in cfg, loaded from config_path (NULL: the load failed and errs says why), unless it
 * changes what only a restart can; takes cfg. 0 swapped, -1 kept the old configuration. */
static int server_reload_apply(struct gw_server *srv, struct gw_config *cfg,
			       const struct gw_errors *errs)
{
	struct gw_env *env = &srv->env;
	const struct gw_config *boot = env->boot_cfg;
	struct gw_gen *gen = NULL, *old;
	int rc = -1;

	if (!cfg) {
		for (size_t i = 0; i < errs->n; i++)
			gw_log(GW_LOG_ERROR, "reload", GW_LS("error", errs->msg[i]), GW_LEND);
		gw_log(GW_LOG_ERROR, "reload", GW_LS("msg", "invalid configuration, keeping the old one"),
		       GW_LN("errors", (long long)(errs->n + errs->dropped)), GW_LEND);
		goto out;
	}
	if (!server_accounts_same(boot, cfg)) {
		gw_log(GW_LOG_ERROR, "reload",
		       GW_LS("msg", "accounts changed: restart the gateway to apply; keeping the old configuration"),
		       GW_LEND);
		goto out;
	}
	if (!server_str_eq(boot->state.path, cfg->state.path) ||
	    boot->state.memory_only != cfg->state.memory_only ||
	    boot->state.read_only != cfg->state.read_only ||
	    boot->state.idempotency_ttl_s != cfg->state.idempotency_ttl_s ||
	    boot->state.reconcile_settle_ms != cfg->state.reconcile_settle_ms ||
	    !server_pg_same(&boot->state.postgres, &cfg->state.postgres) ||
	    !server_redis_same(&boot->redis, &cfg->redis)) {
		gw_log(GW_LOG_ERROR, "reload",
		       GW_LS("msg", "state settings changed (state.*, redis): restart the gateway to apply; keeping the old configuration"),
		       GW_LEND);
		goto out;
	}
	if (!server_str_eq(env->cfg->grpc_listen, cfg->grpc_listen) ||
	    !server_str_eq(env->cfg->http_listen, cfg->http_listen) ||
	    !server_str_eq(env->cfg->rest_listen, cfg->rest_listen) ||
	    !server_str_eq(env->cfg->tls.cert_file, cfg->tls.cert_file) ||
	    !server_str_eq(env->cfg->tls.key_file, cfg->tls.key_file) ||
	    !server_str_eq(env->cfg->tls.client_ca_file, cfg->tls.client_ca_file) ||
	    env->cfg->tls.client_cert_required != cfg->tls.client_cert_required ||
	    env->cfg->max_message_bytes != cfg->max_message_bytes)
		gw_log(GW_LOG_WARN, "reload",
		       GW_LS("msg", "listen, tls and max_message_bytes changes take effect at the next restart"),
		       GW_LEND);
	if (!gw_config_net_same(boot, cfg))
		gw_log(GW_LOG_WARN, "reload",
		       GW_LS("msg", "process, http and grpc changes take effect at the next restart"),
		       GW_LEND);
	gen = gw_gen_new(cfg, &env->metrics.rpc);
	if (!gen) {
		gw_log(GW_LOG_ERROR, "reload", GW_LS("msg", "cannot build the key ring or the tenants' metric series, keeping the old configuration"),
		       GW_LEND);
		goto out;
	}
	cfg = NULL;	/* owned by gen */
	server_warn_restart_only(boot, gen->cfg);
	old = env->gen;
	env->gen = gen;
	env->cfg = gen->cfg;
	gen = NULL;
	gw_gen_put(old);
	server_apply_log_level(env->cfg);
	/* Modules with per-configuration state (tenant buckets, account caps) follow. */
	gw_notify_emit(&env->reload, env->cfg);
	gw_log(GW_LOG_INFO, "reload", GW_LS("msg", "configuration reloaded"),
	       GW_LN("tenants", (long long)env->cfg->ntenants), GW_LEND);
	rc = 0;
out:
	if (rc)
		env->stats.reloads_failed++;
	else
		env->stats.reloads_ok++;
	gw_config_free(cfg);
	return rc;
}

int gw_server_reload(struct gw_server *srv)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	int rc;

	server_reload_secrets(srv);
	if (gw_config_load(srv->config_path, &cfg, &errs) != 0)
		cfg = NULL;
	rc = server_reload_apply(srv, cfg, &errs);
	gw_errors_clear(&errs);
	return rc;
}

/* A SIGHUP's load is over (gateway/config/config_async.h): the same steps as gw_server_reload. */
static void server_on_reload_loaded(struct gw_config *cfg, const struct gw_errors *errs, void *arg)
{
	struct gw_server *srv = arg;

	server_reload_secrets(srv);
	server_reload_apply(srv, cfg, errs);
}

static void server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gw_server *srv = arg;
	int r;

	(void)what;
	if (sig == SIGHUP) {
		/* Parsed on a worker thread: calls keep being served while it reads the file. */
		r = gw_config_async_start(srv->reload);
		if (r < 0) {
			srv->env.stats.reloads_failed++;
			gw_log(GW_LOG_ERROR, "reload", GW_LS("msg", "cannot start the configuration loader"),
			       GW_LEND);
		} else if (r > 0) {
			gw_log(GW_LOG_INFO, "reload",
			       GW_LS("msg", "a reload is running; the file is read once more after it"),
			       GW_LEND);
		}
		return;
	}
	gw_server_drain(srv, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- construction ---- */

/* Reads a PEM file whole (bounded); NULL with err set. */
static char *server_read_pem(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *ret = NULL;
	size_t n;

	if (!f) {
		snprintf(err, errlen, "cannot read TLS file %s: %s", path, strerror(errno));
		goto out;
	}
	buf = malloc(GW_SERVER_MAX_PEM_BYTES + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading %s", path);
		goto out;
	}
	n = fread(buf, 1, GW_SERVER_MAX_PEM_BYTES + 1, f);
	if (n == 0 || n > GW_SERVER_MAX_PEM_BYTES) {
		snprintf(err, errlen, "TLS file %s is empty or larger than %u bytes", path,
			 GW_SERVER_MAX_PEM_BYTES);
		goto out;
	}
	buf[n] = '\0';
	ret = buf;
	buf = NULL;
out:
	if (buf) {
		explicit_bzero(buf, GW_SERVER_MAX_PEM_BYTES + 1);
		free(buf);
	}
	if (f)
		fclose(f);
	return ret;
}

static void server_free_pem(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

static grpc_server_credentials *server_creds(const struct gw_config *cfg, char *err, size_t errlen)
{
	grpc_ssl_pem_key_cert_pair pair = { NULL, NULL };
	char *key = NULL, *cert = NULL, *ca = NULL;
	grpc_server_credentials *creds = NULL;

	if (!cfg->tls.cert_file || !cfg->tls.key_file)
		return grpc_insecure_server_credentials_create();
	cert = server_read_pem(cfg->tls.cert_file, err, errlen);
	if (!cert)
		goto out;
	key = server_read_pem(cfg->tls.key_file, err, errlen);
	if (!key)
		goto out;
	if (cfg->tls.client_ca_file) {
		ca = server_read_pem(cfg->tls.client_ca_file, err, errlen);
		if (!ca)
			goto out;
	}
	pair.private_key = key;
	pair.cert_chain = cert;
	creds = grpc_ssl_server_credentials_create_ex(
		ca, &pair, 1,
		/* Request, verify, but do not require (unless tls.client_cert_required): a client
		 * without a certificate may still use an API key (auth/caller/clientcert.h); one from
		 * another CA fails the handshake. */
		!ca ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
		: cfg->tls.client_cert_required ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
						: GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY,
		NULL);
	if (!creds)
		snprintf(err, errlen, "invalid TLS certificate or key (%s, %s)", cfg->tls.cert_file,
			 cfg->tls.key_file);
out:
	server_free_pem(key);
	server_free_pem(cert);
	server_free_pem(ca);
	return creds;
}

static int server_grpc_new(struct gw_server *srv, char *err, size_t errlen)
{
	struct gw_env *env = &srv->env;
	const struct gw_config *cfg = env->cfg;
	struct gw_grpcargs ga;
	grpc_server_credentials *creds;
	grpc_completion_queue_attributes cq_attr = { GRPC_CQ_CURRENT_VERSION, GRPC_CQ_NEXT,
						     GRPC_CQ_NON_POLLING, NULL };
	int port;

	/* Stream, message, metadata, keepalive and connection-age limits and the resource quota
	 * (gateway/grpcargs.h). */
	if (gw_grpcargs_build(&ga, cfg) != 0) {
		snprintf(err, errlen, "cannot create the gRPC resource quota");
		return -1;
	}
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "gRPC transport limits"),
	       GW_LN("max_concurrent_streams", cfg->grpc.max_concurrent_streams),
	       GW_LN("memory_quota_bytes", (long long)ga.quota_bytes),
	       GW_LN("max_connection_idle_ms", cfg->grpc.max_connection_idle_ms),
	       GW_LN("max_connection_age_ms", cfg->grpc.max_connection_age_ms),
	       GW_LN("keepalive_time_ms", cfg->grpc.keepalive_time_ms),
	       GW_LN("handshake_timeout_ms", cfg->grpc.handshake_timeout_ms),
	       GW_LN("max_resets_per_s", cfg->grpc.max_resets_per_s),
	       GW_LN("io_thread_nice", cfg->grpc.io_thread_nice), GW_LEND);
	/* The calls' queue does no I/O, the sockets have their own (server.h, Threading). */
	env->cq = grpc_completion_queue_create(grpc_completion_queue_factory_lookup(&cq_attr),
					       &cq_attr, NULL);
	srv->io_cq = grpc_completion_queue_create_for_next(NULL);
	env->grpc = grpc_server_create(&ga.cargs, NULL);
	gw_grpcargs_release(&ga);	/* the server holds its own reference to the quota */
	if (!env->cq || !srv->io_cq || !env->grpc) {
		snprintf(err, errlen, "cannot create the gRPC server");
		return -1;
	}
	grpc_server_register_completion_queue(env->grpc, env->cq, NULL);
	grpc_server_register_completion_queue(env->grpc, srv->io_cq, NULL);
	for (size_t i = 0; i < env->nmethods; i++) {
		const struct gw_method *m = &env->methods[i];

		env->method_handles[i] = grpc_server_register_method(
			env->grpc, m->path, NULL,
			GW_METHOD_STREAMS_IN(m) ? GRPC_SRM_PAYLOAD_NONE
						: GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
			0);
		if (!env->method_handles[i]) {
			snprintf(err, errlen, "cannot register gRPC method %s", m->path);
			return -1;
		}
	}
	creds = server_creds(cfg, err, errlen);
	if (!creds)
		return -1;
	port = grpc_server_add_http2_port(env->grpc, cfg->grpc_listen, creds);
	grpc_server_credentials_release(creds);
	if (!port) {
		snprintf(err, errlen, "cannot listen for gRPC on %s (address in use or invalid)",
			 cfg->grpc_listen);
		return -1;
	}
	srv->grpc_port = port;
	return 0;
}

/* ---- state store ---- */

struct gw_store *gw_server_open_pg(struct event_base *base, const struct gw_pg_cfg *pc,
				   const char *appname, unsigned pool, char *err, size_t errlen)
{
	struct gw_pg_opts o;
	struct gw_store *s = NULL;
	char *pw = NULL;
	size_t pwlen = 0;

	if ((pc->password_file || pc->password_env) &&
	    gw_secret_load_pg(pc, &pw, &pwlen, err, errlen) != 0)
		goto out;
	memset(&o, 0, sizeof o);
	o.hostaddr = pc->hostaddr;
	o.host = pc->host;
	o.port = pc->port;
	o.dbname = pc->dbname;
	o.user = pc->user;
	o.password = pw;
	o.sslmode = pc->sslmode;
	o.application_name = appname;
	o.pool = pool;
	o.timeout_ms = pc->timeout_ms;
	o.extra_keys = (const char *const *)pc->extra_keys;
	o.extra_values = (const char *const *)pc->extra_values;
	o.nextra = pc->nextra;
	s = gw_store_open_pg(base, &o, err, errlen);
out:
	gw_secret_free(pw, pwlen);
	return s;
}

/* The state store the configuration names: PostgreSQL (shared), a SQLite file, or memory.
 * PostgreSQL is connected to and migrated here, before the loop serves. */
static struct gw_store *server_store_open(struct gw_server *srv, char *err, size_t errlen)
{
	const struct gw_config *cfg = srv->env.cfg;
	const struct gw_pg_cfg *pc = &cfg->state.postgres;
	char appname[GW_ENV_INSTANCE_MAX + 8];

	if (!pc->enabled)
		return gw_store_open(cfg->state.memory_only ? NULL : cfg->state.path, cfg->state.read_only,
				     err, errlen);
	/* pg_stat_activity shows which replica holds a connection */
	snprintf(appname, sizeof appname, "a3dgw %s", srv->env.instance);
	return gw_server_open_pg(srv->env.base, pc, pc->application_name ? pc->application_name :
				 appname, pc->pool, err, errlen);
}

/* Runs the loop until the store has answered what it was asked, at most
 * GW_SERVER_STORE_SETTLE_MS: its close would drop the rest (and their contexts). */
static void server_store_settle(struct gw_server *srv)
{
	int64_t until = gw_clock_now_us() + GW_SERVER_STORE_SETTLE_MS * 1000LL;
	struct timeval tick = { 0, 20000 };

	while (srv->env.store && gw_store_inflight(srv->env.store) > 0 && gw_clock_now_us() < until) {
		event_base_loopexit(srv->env.base, &tick);
		event_base_loop(srv->env.base, EVLOOP_ONCE);
	}
}

/* At exit, after the modules that use Redis: what they still sent (a login lock given back)
 * gets out before the client is freed, which would drop it; bounded by GW_SERVER_REDIS_SETTLE_MS. */
static void server_redis_settle(struct gw_server *srv)
{
	int64_t until = gw_clock_now_us() + GW_SERVER_REDIS_SETTLE_MS * 1000LL;
	struct timeval tick = { 0, 20000 };

	while (srv->env.redis && gw_redis_stats(srv->env.redis)->pending > 0 &&
	       gw_clock_now_us() < until) {
		event_base_loopexit(srv->env.base, &tick);
		event_base_loop(srv->env.base, EVLOOP_ONCE);
	}
}

static void server_expired(void *arg, long n, const char *err)
{
	(void)arg;
	if (n < 0)
		gw_log(GW_LOG_WARN, "state", GW_LS("msg", "idempotency key expiry failed"),
		       GW_LS("error", err ? err : "-"), GW_LEND);
	else if (n > 0)
		gw_log(GW_LOG_INFO, "state", GW_LS("msg", "idempotency keys expired"), GW_LN("keys", n),
		       GW_LEND);
}

/* Every GW_OWNER_RENEW_MS: the leases of keys in flight here; every
 * GW_SERVER_HOUSEKEEPING_S: expired idempotency keys. */
static void server_on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *srv = arg;
	int64_t now = gw_clock_wall_ms();

	(void)fd;
	(void)what;
	if (gw_store_read_only(srv->env.store))
		return;
	gw_owner_renew(srv->env.owner, now);
	if (now - srv->last_expiry_ms < GW_SERVER_HOUSEKEEPING_S * 1000LL)
		return;
	srv->last_expiry_ms = now;
	gw_owner_expire(srv->env.owner, now, server_expired, NULL);
}

/* Keys left PENDING (by a previous process, or a replica that is gone or busy): reconciled when
 * their clients retry. Logged once the store has counted them. */
static void server_pending_counted(void *arg, const struct gw_store_res *res)
{
	struct gw_server *srv = arg;
	long pending = res->rc == 0 ? res->count : -1;

	gw_log(pending ? GW_LOG_WARN : GW_LOG_INFO, "state",
	       GW_LS("msg", pending > 0 ? "idempotency keys left pending; they are reconciled when retried"
			    : pending < 0 ? "state store open; pending idempotency keys not counted"
					  : "state store open"),
	       GW_LS("backend", gw_store_backend(srv->env.store)), GW_LS("instance", srv->env.instance),
	       GW_LN("read_only", gw_store_read_only(srv->env.store)), GW_LN("pending_keys", pending),
	       GW_LS("error", pending < 0 && res->err ? res->err : "-"), GW_LEND);
}

/* The Redis client of redis: (none without it). It connects in the background: a Redis that is
 * down at start is not fatal (the features that use it fall back to local), a bad address is. */
static int server_redis_new(struct gw_server *srv, char *err, size_t errlen)
{
	const struct gw_redis_cfg *rc = &srv->env.cfg->redis;
	struct gw_redis_opts o;
	char *pw = NULL;
	size_t pwlen = 0;
	int rc_ = -1;

	if (!rc->enabled)
		return 0;
	if ((rc->password_file || rc->password_env) &&
	    gw_secret_load_redis(rc, &pw, &pwlen, err, errlen) != 0)
		goto out;
	memset(&o, 0, sizeof o);
	o.ip = rc->hostaddr;
	o.port = rc->port;
	o.db = rc->db;
	o.password = pw;
	o.key_prefix = rc->key_prefix;
	o.connect_timeout_ms = rc->connect_timeout_ms;
	o.command_timeout_ms = rc->command_timeout_ms;
	o.max_pending = GW_SERVER_REDIS_MAX_PENDING;
	srv->env.redis = gw_redis_new(srv->env.base, &o, err, errlen);
	if (!srv->env.redis)
		goto out;
	if (gw_metrics_register(&srv->env.metrics_reg, gw_redis_metrics, srv->env.redis) != 0) {
		snprintf(err, errlen, "too many metrics renderers");
		goto out;
	}
	gw_log(GW_LOG_INFO, "redis", GW_LS("msg", "redis client started"),
	       GW_LS("where", gw_redis_where(srv->env.redis)), GW_LS("instance", srv->env.instance),
	       GW_LEND);
	rc_ = 0;
out:
	gw_secret_free(pw, pwlen);
	return rc_;
}

/* The key sealing the shared upstream session (redis.seal_key_file), with the Redis client:
 * a missing or bad key file is fatal at start, like a bad password file. */
static int server_seal_key(struct gw_server *srv, uint8_t key[GW_SECRET_SEAL_KEY_LEN], char *err,
			   size_t errlen)
{
	const struct gw_redis_cfg *rc = &srv->env.cfg->redis;

	memset(key, 0, GW_SECRET_SEAL_KEY_LEN);
	if (!srv->env.redis)
		return 0;
	return gw_secret_load_seal_key(rc->seal_key_file, key, err, errlen);
}

/* host name + '-' + 8 random hex digits: unique per boot (a restarted container keeps its host
 * name and often its pid). */
static void server_instance_id(char *out, size_t cap)
{
	char host[64] = "gateway";
	unsigned char nonce[4] = { 0 };

	if (gethostname(host, sizeof host) != 0 || !host[0])
		snprintf(host, sizeof host, "gateway");
	host[sizeof host - 1] = '\0';
	if (RAND_bytes(nonce, sizeof nonce) != 1) {
		uint64_t t = (uint64_t)gw_clock_now_us() ^ (uint64_t)getpid();

		memcpy(nonce, &t, sizeof nonce);
	}
	snprintf(out, cap, "%s-%02x%02x%02x%02x", host, nonce[0], nonce[1], nonce[2], nonce[3]);
}

static int server_state_new(struct gw_server *srv, char *err, size_t errlen)
{
	const struct gw_config *cfg = srv->env.cfg;
	struct timeval tv = { GW_OWNER_RENEW_MS / 1000, 0 };
	char serr[GW_STORE_ERR_MAX];

	serr[0] = '\0';
	server_instance_id(srv->env.instance, sizeof srv->env.instance);
	srv->env.store = server_store_open(srv, serr, sizeof serr);
	if (!srv->env.store) {
		snprintf(err, errlen, "%s", serr[0] ? serr : "cannot open the state store");
		return -1;
	}
	srv->env.owner = gw_owner_new(srv->env.store, cfg->state.idempotency_ttl_s * 1000, srv->env.instance);
	if (!srv->env.owner) {
		snprintf(err, errlen, "out of memory creating the ownership state");
		return -1;
	}
	srv->last_expiry_ms = gw_clock_wall_ms();
	gw_store_idem_count(srv->env.store, server_pending_counted, srv);
	srv->ev_housekeeping = event_new(srv->env.base, -1, EV_PERSIST, server_on_housekeeping, srv);
	if (!srv->ev_housekeeping || event_add(srv->ev_housekeeping, &tv)) {
		snprintf(err, errlen, "cannot set up the event loop");
		return -1;
	}
	return 0;
}

static int server_events_new(struct gw_server *srv, char *err, size_t errlen)
{
	struct event_base *base = srv->env.base;

	srv->handoff = gw_handoff_new(base, GW_HANDOFF_MAX, server_on_handoff, srv);
	srv->ev_drain_poll = event_new(base, -1, EV_PERSIST, server_on_drain_poll, srv);
	srv->ev_term = evsignal_new(base, SIGTERM, server_on_signal, srv);
	srv->ev_int = evsignal_new(base, SIGINT, server_on_signal, srv);
	srv->ev_hup = evsignal_new(base, SIGHUP, server_on_signal, srv);
	srv->ev_grace = evtimer_new(base, server_on_grace, srv);
	srv->reload = gw_config_async_new(base, srv->config_path, server_on_reload_loaded, srv);
	if (!srv->handoff || !srv->ev_drain_poll || !srv->ev_term || !srv->ev_int || !srv->ev_hup ||
	    !srv->ev_grace || !srv->reload ||
	    event_add(srv->ev_term, NULL) || event_add(srv->ev_int, NULL) ||
	    event_add(srv->ev_hup, NULL)) {
		snprintf(err, errlen, "cannot set up the event loop");
		return -1;
	}
	return 0;
}

/* The memory guard's shed (gateway/base/memguard.h): the heavy senders' connections first
 * (gateway/base/connguard.h); when there are none and no abusive connection was closed within
 * GW_CONNGUARD_ABUSE_QUIET_MS, every gRPC connection, which stops what they feed gRPC core and lets the calls queued behind
 * them drain. gRPC's header says grpc_server_cancel_all_calls is "only usable after shutdown";
 * in 1.51 it only broadcasts a disconnect to every transport (Server::CancelAllCalls), listeners
 * untouched, which is what is wanted here. */
static enum gw_memguard_shed server_memory_shed(void *arg)
{
	struct gw_server *srv = arg;

	if (!srv->started || srv->env.draining)
		return GW_MEMGUARD_SHED_NONE;
	if (gw_connguard_shed(srv->env.connguard))
		return GW_MEMGUARD_SHED_HEAVY;
	if (gw_connguard_abuse_lately(srv->env.connguard))
		return GW_MEMGUARD_SHED_NONE;
	grpc_server_cancel_all_calls(srv->env.grpc);
	return GW_MEMGUARD_SHED_ALL;
}

/* The memory guard's first resort: only the connections whose peers send faster than gRPC core
 * parses (gateway/base/connguard.h). */
static size_t server_memory_relieve(void *arg)
{
	return gw_connguard_relieve(arg);
}

/* ---- the top's own metrics ---- */

static void server_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_server *srv = arg;
	const struct gw_env *env = &srv->env;
	struct gw_handoff_stats hs;
	char l[GW_METRICS_MAX_LABEL], labels[GW_METRICS_MAX_LABEL + 16];

	gw_metrics_label(srv->version ? srv->version : "dev", l, sizeof l);
	snprintf(labels, sizeof labels, "version=\"%s\"", l);
	gw_metrics_family(o, "build_info", "gauge", "Build information; the value is always 1.");
	gw_metrics_value(o, "build_info", labels, 1);
	/* which replica this is: the instance id of its leases, locks and log lines */
	gw_metrics_label(env->instance, l, sizeof l);
	snprintf(labels, sizeof labels, "instance=\"%s\"", l);
	gw_metrics_family(o, "instance_info", "gauge",
			  "This replica's instance id (host name + per-boot nonce); the value is always 1.");
	gw_metrics_value(o, "instance_info", labels, 1);
	gw_metrics_one(o, "draining", "gauge", "1 while the server drains for shutdown.",
		       env->draining ? 1 : 0);
	gw_metrics_family(o, "reloads_total", "counter", "Configuration reloads (SIGHUP) by result.");
	gw_metrics_value(o, "reloads_total", "result=\"ok\"", env->stats.reloads_ok);
	gw_metrics_value(o, "reloads_total", "result=\"failed\"", env->stats.reloads_failed);
	gw_metrics_one(o, "http_requests_total", "counter", "Requests on the operator HTTP listener.",
		       env->stats.http_requests);
	gw_metrics_one(o, "http_not_found_total", "counter",
		       "Requests on the operator HTTP listener for unknown paths.",
		       env->stats.http_not_found);
	if (srv->handoff) {
		gw_handoff_stats(srv->handoff, &hs);
		gw_metrics_one(o, "handoff_events_total", "counter",
			       "Completion-queue events handed from the poller thread to the loop.",
			       hs.delivered);
		gw_metrics_one(o, "handoff_full_waits_total", "counter",
			       "Times the poller waited for room in the full hand-off queue.",
			       hs.full_waits);
		gw_metrics_one(o, "handoff_high_water", "gauge",
			       "Most events ever waiting in the hand-off queue at once.", hs.high_water);
	}
}

/* ---- services ---- */

/* Builds every service of gateway/methods.h and gives each method row its service's state. */
static int server_services_new(struct gw_server *srv, char *err, size_t errlen)
{
	struct gw_env *env = &srv->env;
	const struct gw_svc *const *svcs;
	size_t n;

	svcs = gw_methods_services(&n);
	env->svcs = calloc(n, sizeof *env->svcs);
	if (!env->svcs) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct gw_svc_rt *rt = &env->svcs[i];
		char serr[256];

		rt->desc = svcs[i];
		serr[0] = '\0';
		if (rt->desc->init && rt->desc->init(env, &rt->state, serr, sizeof serr) != 0) {
			snprintf(err, errlen, "service %s: %s", rt->desc->name,
				 serr[0] ? serr : "cannot start");
			return -1;
		}
		env->nsvcs = i + 1;
		if (rt->desc->metrics &&
		    gw_metrics_register(&env->metrics_reg, rt->desc->metrics, rt->state) != 0) {
			snprintf(err, errlen, "too many metrics renderers");
			return -1;
		}
	}
	for (size_t i = 0; i < env->nmethods; i++)
		env->method_state[i] = gw_env_svc(env, env->methods[i].svc);
	/* Tenant webhooks act on the job follower's confirmed finals (issue 17). */
	if (gw_jobevents_of(env) && gw_webhook_out_of(env) &&
	    gw_jobevent_listen(gw_jobevents_of(env), "webhooks", gw_webhook_out_on_final,
			       gw_webhook_out_of(env)) != 0) {
		snprintf(err, errlen, "webhooks: cannot listen to job events");
		return -1;
	}
	return 0;
}

/* In reverse order of their start; before the accounts and the upstream engine (services cancel
 * their upstream requests). */
static void server_services_free(struct gw_server *srv)
{
	struct gw_env *env = &srv->env;

	for (size_t i = env->nsvcs; i-- > 0;) {
		struct gw_svc_rt *rt = &env->svcs[i];

		if (rt->desc->metrics)
			gw_metrics_unregister(&env->metrics_reg, rt->desc->metrics, rt->state);
		if (rt->desc->free)
			rt->desc->free(rt->state);
	}
	free(env->svcs);
	env->svcs = NULL;
	env->nsvcs = 0;
}

/* Span export (otlp:, gateway/base/otlp.h), when configured; before the modules that end spans. */
static int server_otlp_new(struct gw_server *srv, char *err, size_t errlen)
{
	struct gw_env *env = &srv->env;
	const struct gw_config *cfg = env->boot_cfg;

	if (!cfg->otlp.endpoint)
		return 0;
	env->otlp = gw_otlp_new(env->base,
				&(struct gw_otlp_opts){ .endpoint = cfg->otlp.endpoint,
							.headers_file = cfg->otlp.headers_file,
							.service_name = cfg->otlp.service_name,
							.instance = env->instance,
							.batch_max = cfg->otlp.batch_max,
							.queue_max = cfg->otlp.queue_max,
							.flush_ms = cfg->otlp.flush_ms,
							.timeout_ms = cfg->otlp.timeout_ms },
				err, errlen);
	if (!env->otlp)
		return -1;
	if (gw_metrics_register(&env->metrics_reg, gw_otlp_render_metrics, env->otlp) != 0) {
		snprintf(err, errlen, "cannot register the OTLP metrics");
		return -1;
	}
	gw_log(GW_LOG_INFO, "otlp", GW_LS("msg", "span export on"),
	       GW_LN("batch_max", (long long)cfg->otlp.batch_max),
	       GW_LN("queue_max", (long long)cfg->otlp.queue_max),
	       GW_LN("flush_ms", cfg->otlp.flush_ms), GW_LEND);
	return 0;
}

struct gw_server *gw_server_new(struct gw_config *cfg, const char *config_path, long grace_ms,
				char *err, size_t errlen)
{
	struct gw_server *srv = calloc(1, sizeof *srv);
	struct gw_server *ret = NULL;
	struct gw_env *env;
	uint8_t seal_key[GW_SECRET_SEAL_KEY_LEN];

	snprintf(err, errlen, "out of memory");
	if (!srv)
		goto out;
	env = &srv->env;
	/* libevent's and gRPC core's own lines join ours as JSON, rate-limited (base/liblog.h). */
	gw_liblog_install();
	srv->grace_ms = grace_ms < 0 ? GW_SERVER_DEFAULT_GRACE_MS : grace_ms;
	env->started_wall_ms = gw_clock_wall_ms();
	srv->shutdown_tag = (struct gw_tag){ GW_TAG_SHUTDOWN, srv };
	srv->config_path = strdup(config_path ? config_path : "");
	env->base = event_base_new();
	if (!srv->config_path || !env->base)
		goto out;
	env->gen = gw_gen_new(cfg, &env->metrics.rpc);
	if (!env->gen) {
		snprintf(err, errlen, "cannot build the API key ring from %s", config_path);
		goto out;
	}
	cfg = NULL;	/* owned by the generation */
	env->cfg = env->gen->cfg;
	srv->boot_gen = gw_gen_get_cfg(env->gen);	/* not its tenants' series: see env.h */
	env->boot_cfg = srv->boot_gen->cfg;
	server_apply_log_level(env->cfg);
	if (gw_metrics_register(&env->metrics_reg, server_render_metrics, srv) != 0 ||
	    gw_metrics_register(&env->metrics_reg, gw_call_render_metrics, env) != 0 ||
	    gw_metrics_register(&env->metrics_reg, gw_fdlimit_render_metrics, NULL) != 0 ||
	    gw_metrics_register(&env->metrics_reg, gw_procmetrics_render, NULL) != 0 ||
	    gw_metrics_register(&env->metrics_reg, gw_liblog_render_metrics, NULL) != 0)
		goto out;

	if (server_events_new(srv, err, errlen))
		goto out;
	if (server_state_new(srv, err, errlen))
		goto out;
	if (server_redis_new(srv, err, errlen))
		goto out;
	if (server_otlp_new(srv, err, errlen))
		goto out;
	env->up = gw_up_new(&(struct gw_up_env){ env->base, &env->cfg, &env->metrics,
						  &env->metrics_reg, &env->reload, env->otlp });
	if (!env->up) {
		snprintf(err, errlen, "cannot start the upstream HTTP client");
		goto out;
	}
	if (server_seal_key(srv, seal_key, err, errlen) != 0)
		goto out;
	/* The sessions copy the seal key; this copy is wiped at once. */
	env->accounts = gw_session_accounts_new(
		&(struct gw_session_env){ env->base, env->up, &env->cfg, &env->metrics_reg, env->redis,
					  env->redis ? seal_key : NULL, env->instance, env->otlp },
		env->boot_cfg, &env->naccounts, err, errlen);
	explicit_bzero(seal_key, sizeof seal_key);
	if (!env->accounts)
		goto out;
	env->methods = gw_methods(&env->nmethods);
	env->method_handles = calloc(env->nmethods, sizeof *env->method_handles);
	env->method_state = calloc(env->nmethods, sizeof *env->method_state);
	srv->method_names = calloc(env->nmethods, sizeof *srv->method_names);
	srv->method_costs = calloc(env->nmethods, sizeof *srv->method_costs);
	if (!env->method_handles || !env->method_state || !srv->method_names || !srv->method_costs)
		goto out;
	for (size_t i = 0; i < env->nmethods; i++) {
		srv->method_names[i] = env->methods[i].name;
		srv->method_costs[i] = env->methods[i].cost;
	}
	env->admit = gw_admit_new(srv->method_names, srv->method_costs, env->nmethods, env->cfg,
				  &env->reload, &env->metrics_reg);
	if (!env->admit) {
		snprintf(err, errlen, "cannot build the tenants' rate limits");
		goto out;
	}
	/* With redis: the tenants' buckets and the accounts' rate caps are shared by the replicas
	 * (local while it is down). */
	if (env->redis) {
		env->climit = gw_climit_new(env->redis);
		if (!env->climit ||
		    gw_metrics_register(&env->metrics_reg, gw_climit_metrics, env->climit) != 0) {
			snprintf(err, errlen, "cannot start the shared rate limits");
			goto out;
		}
		/* A call parked for its tenant's lease waits at most one Redis command. */
		gw_climit_wait_limit(env->climit, env->cfg->redis.command_timeout_ms);
		gw_admit_cluster(env->admit, env->climit);
		if (gw_up_cluster(env->up, env->climit) != 0) {
			snprintf(err, errlen, "cannot share the accounts' rate caps");
			goto out;
		}
		if (gw_up_cluster_concurrency(env->up, env->redis, env->instance) != 0) {
			snprintf(err, errlen, "cannot share the accounts' concurrency caps");
			goto out;
		}
	}
	if (server_services_new(srv, err, errlen))
		goto out;
	grpc_init();
	srv->grpc_inited = 1;
	if (server_grpc_new(srv, err, errlen))
		goto out;
	srv->memguard = gw_memguard_new(env->base, (uint64_t)env->cfg->process.memory_mib << 20,
					(uint64_t)gw_config_grpc_quota_mib(env->cfg) << 20,
					server_memory_shed, srv);
	if (env->cfg->process.memory_mib && !srv->memguard)
		goto out;
	if (gw_metrics_register(&env->metrics_reg, gw_memguard_render_metrics, srv->memguard) != 0)
		goto out;
	env->connguard = gw_connguard_new(srv->grpc_port, env->cfg->grpc.max_resets_per_s,
					  env->cfg->grpc.shed_backlog_kib << 10);
	if (!env->connguard ||
	    gw_metrics_register(&env->metrics_reg, gw_connguard_render_metrics, env->connguard) != 0)
		goto out;
	gw_memguard_set_relief(srv->memguard, server_memory_relieve, env->connguard);
	if (env->cfg->http_listen) {
		srv->http = gw_http_new(env, srv->grpc_port, err, errlen);
		if (!srv->http)
			goto out;
	}
	if (env->cfg->rest_listen) {
		srv->rest = gw_rest_new(env, gw_http_max_connections(srv->http), err, errlen);
		if (!srv->rest)
			goto out;
	}
	ret = srv;
	srv = NULL;
	err[0] = '\0';
out:
	gw_config_free(cfg);
	gw_server_free(srv);
	return ret;
}

/* ---- run ---- */

/* The stream guard's thread, and the brake it works on the I/O thread (gateway/base/
 * streamguard.h, iobrake.h), once both gRPC core and the I/O thread run. */
static int server_guards_start(struct gw_server *srv)
{
	struct gw_env *env = &srv->env;
	int failed;

	srv->iobrake = gw_iobrake_new(srv->io_thread, (uint64_t)env->cfg->process.memory_mib << 20,
				      &failed);
	if (failed || (srv->iobrake && gw_metrics_register(&env->metrics_reg, gw_iobrake_render_metrics,
							   srv->iobrake) != 0))
		goto fail;
	srv->streamguard = gw_streamguard_start(srv->grpc_port, env->cfg->grpc.max_resets_per_s,
						env->connguard, srv->iobrake, &failed);
	if (failed || (srv->streamguard &&
		       gw_metrics_register(&env->metrics_reg, gw_streamguard_render_metrics,
					   srv->streamguard) != 0))
		goto fail;
	return 0;
fail:
	gw_log(GW_LOG_ERROR, "server", GW_LS("msg", "cannot start the stream guard"), GW_LEND);
	return -1;
}

static void server_guards_stop(struct gw_server *srv)
{
	struct gw_env *env = &srv->env;

	if (srv->streamguard) {
		gw_metrics_unregister(&env->metrics_reg, gw_streamguard_render_metrics, srv->streamguard);
		gw_streamguard_stop(srv->streamguard);
		srv->streamguard = NULL;
	}
	if (srv->iobrake) {	/* after the thread that ticks it */
		gw_metrics_unregister(&env->metrics_reg, gw_iobrake_render_metrics, srv->iobrake);
		gw_iobrake_free(srv->iobrake);
		srv->iobrake = NULL;
	}
}

int gw_server_run(struct gw_server *srv)
{
	struct gw_env *env = &srv->env;
	int rc = -1;

	grpc_server_start(env->grpc);
	srv->started = 1;
	if (pthread_create(&srv->io_thread, NULL, server_io, srv) != 0) {
		gw_log(GW_LOG_ERROR, "server", GW_LS("msg", "cannot start the I/O thread"), GW_LEND);
		goto out;
	}
	srv->io_running = 1;
	if (server_guards_start(srv) != 0)
		goto out;
	env->started = 1;
	/* Several requests armed per method: one call's hand-off round trip (completion queue,
	 * poller, loop, re-arm) no longer paces how fast calls leave gRPC core's queue, where a flood
	 * of new streams otherwise piles up. */
	for (int k = 0; k < GW_SERVER_ARMED_PER_METHOD; k++)
		for (size_t i = 0; i < env->nmethods; i++)
			if (gw_call_arm(env, i))
				goto out;
	/* Without the generic request, calls to unknown methods hang until their deadline. */
	if (gw_call_arm(env, GW_CALL_GENERIC))
		goto out;
	if (pthread_create(&srv->poller, NULL, server_poller, srv) != 0) {
		gw_log(GW_LOG_ERROR, "server", GW_LS("msg", "cannot start the poller thread"), GW_LEND);
		goto out;
	}
	srv->poller_running = 1;
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "listening"), GW_LS("grpc", env->cfg->grpc_listen),
	       GW_LN("grpc_port", srv->grpc_port),
	       GW_LS("http", env->cfg->http_listen ? env->cfg->http_listen : "-"),
	       GW_LS("rest", env->cfg->rest_listen ? env->cfg->rest_listen : "-"),
	       GW_LS("tls", env->cfg->tls.cert_file ? (env->cfg->tls.client_ca_file ? "mtls" : "tls")
						    : "off"),
	       GW_LN("methods", (long long)env->nmethods), GW_LEND);
	for (size_t i = 0; i < env->naccounts; i++)
		gw_session_start(&env->accounts[i]);
	for (size_t i = 0; i < env->nsvcs; i++)
		if (env->svcs[i].desc->start)
			env->svcs[i].desc->start(env->svcs[i].state);
	event_base_loop(env->base, EVLOOP_NO_EXIT_ON_EMPTY);
	rc = 0;
out:
	if (rc && !env->draining)
		gw_server_drain(srv, "startup failure");
	return rc;
}

/* Shuts the gRPC server and drains the queue on this thread (no poller, or a failed start). */
static void server_grpc_shutdown_sync(struct gw_server *srv)
{
	struct gw_env *env = &srv->env;

	/* The calls' queue does no I/O: something must poll the sockets while it drains. */
	if (!srv->io_running && srv->io_cq &&
	    pthread_create(&srv->io_thread, NULL, server_io, srv) == 0)
		srv->io_running = 1;
	if (!srv->shutdown_notified) {
		srv->shutdown_notified = 1;
		grpc_server_shutdown_and_notify(env->grpc, env->cq, &srv->shutdown_tag);
	}
	grpc_server_cancel_all_calls(env->grpc);
	for (int shut = 0; !srv->cq_shut;) {
		grpc_event ev = grpc_completion_queue_next(env->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN) {
			srv->cq_shut = 1;
		} else if (ev.type == GRPC_OP_COMPLETE) {
			struct gw_tag *t = ev.tag;

			if (t->kind == GW_TAG_SHUTDOWN && !shut) {
				shut = 1;
				grpc_completion_queue_shutdown(env->cq);
			} else if (t->kind != GW_TAG_SHUTDOWN) {
				gw_call_event(t, ev.success);
			}
		}
	}
}

void gw_server_free(struct gw_server *srv)
{
	struct gw_env *env;

	if (!srv)
		return;
	env = &srv->env;
	if (srv->poller_running && !srv->cq_shut) {
		/* The loop stopped before the drain finished (startup failure): finish it here. */
		event_base_loop(env->base, EVLOOP_NO_EXIT_ON_EMPTY);
	}
	if (srv->poller_running) {
		pthread_join(srv->poller, NULL);
		srv->poller_running = 0;
	}
	/* Leftover hand-offs (only possible after the last one): the queue is shut. */
	gw_handoff_free(srv->handoff, NULL);
	srv->handoff = NULL;
	gw_http_free(srv->http);
	gw_rest_free(srv->rest);	/* abandons calls still running: before the services go */
	srv->rest = NULL;
	if (env->grpc && !srv->cq_shut)
		server_grpc_shutdown_sync(srv);
	server_guards_stop(srv);	/* it signals the I/O thread and reads gRPC core's counters */
	server_io_stop(srv);
	gw_metrics_unregister(&env->metrics_reg, gw_memguard_render_metrics, srv->memguard);
	gw_memguard_free(srv->memguard);
	/* Store answers still out for a service (a webhook delivery's settle) would run into its
	 * freed state from the settle below: let them land first (a PostgreSQL crash on SIGTERM). */
	server_store_settle(srv);
	server_services_free(srv);	/* their requests use the accounts and the engine */
	gw_admit_free(env->admit);
	gw_session_accounts_free(env->accounts, env->naccounts);
	gw_up_free(env->up);
	/* Store operations still out (lease renewal, expiry): answered, or dropped after a bound. */
	if (srv->ev_housekeeping)
		event_del(srv->ev_housekeeping);
	server_store_settle(srv);
	server_redis_settle(srv);
	/* After the last span (calls, upstream attempts, logins): the last batches go out. */
	if (env->otlp) {
		gw_metrics_unregister(&env->metrics_reg, gw_otlp_render_metrics, env->otlp);
		gw_otlp_free(env->otlp);
		env->otlp = NULL;
	}
	/* After the last call: waiters are gone; keys still PENDING stay for the next process. */
	gw_owner_free(env->owner);
	gw_store_close(env->store);
	if (env->climit) {	/* after its users (admit, upstream), before the client */
		gw_metrics_unregister(&env->metrics_reg, gw_climit_metrics, env->climit);
		gw_climit_free(env->climit);
	}
	if (env->redis) {
		gw_metrics_unregister(&env->metrics_reg, gw_redis_metrics, env->redis);
		gw_redis_free(env->redis);
	}
	if (srv->ev_housekeeping)
		event_free(srv->ev_housekeeping);
	if (env->grpc)
		grpc_server_destroy(env->grpc);
	if (env->cq)
		grpc_completion_queue_destroy(env->cq);
	if (srv->io_cq)
		grpc_completion_queue_destroy(srv->io_cq);
	if (srv->grpc_inited)
		grpc_shutdown();
	/* After the last call (they count their resets in it). */
	gw_metrics_unregister(&env->metrics_reg, gw_connguard_render_metrics, env->connguard);
	gw_connguard_free(env->connguard);
	free(env->method_handles);
	free(env->method_state);
	free(srv->method_names);
	free(srv->method_costs);
	gw_gen_put_cfg(srv->boot_gen);
	gw_gen_put(env->gen);
	gw_metrics_rpc_free(&env->metrics.rpc);	/* after the last generation gave its slots back */
	if (srv->ev_drain_poll)
		event_free(srv->ev_drain_poll);
	if (srv->ev_term)
		event_free(srv->ev_term);
	if (srv->ev_int)
		event_free(srv->ev_int);
	if (srv->ev_hup)
		event_free(srv->ev_hup);
	if (srv->ev_grace)
		event_free(srv->ev_grace);
	gw_config_async_free(srv->reload);
	if (env->base)
		event_base_free(env->base);
	free(srv->config_path);
	free(srv);
}
