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
#include <time.h>
#include <event2/event.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "auth/caller/apikey.h"
#include "auth/upstream/session.h"
#include "gateway/config/config.h"
#include "gateway/config/config_async.h"
#include "gateway/base/handoff.h"
#include "gateway/base/liblog.h"
#include "gateway/base/memguard.h"
#include "gateway/grpcargs.h"
#include "gateway/http.h"
#include "gateway/base/log.h"
#include "gateway/state/owner.h"
#include "gateway/rpc.h"
#include "gateway/state/store.h"
#include "gateway/upstream/upstream.h"
#include "gateway/svc/webhook_reg.h"

int64_t gw_server_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t gw_server_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration generations ---- */

static struct gw_server_conf *server_conf_new(struct gw_config *cfg)
{
	struct gw_server_conf *conf = calloc(1, sizeof *conf);

	if (!conf)
		return NULL;
	conf->keys = gw_apikey_ring_new(cfg);
	if (!conf->keys) {
		free(conf);
		return NULL;
	}
	conf->cfg = cfg;
	conf->refs = 1;
	return conf;
}

struct gw_server_conf *gw_server_conf_get(struct gw_server *srv)
{
	srv->conf->refs++;
	return srv->conf;
}

void gw_server_conf_put(struct gw_server *srv, struct gw_server_conf *conf)
{
	(void)srv;
	if (!conf || --conf->refs)
		return;
	gw_apikey_ring_free(conf->keys);
	gw_config_free(conf->cfg);
	free(conf);
}

/* ---- poller thread -> loop ---- */

static void *server_poller(void *arg)
{
	struct gw_server *srv = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		struct gw_handoff_ev h = { ev.tag, ev.success, ev.type == GRPC_QUEUE_SHUTDOWN };

		/* Waits while the loop is GW_HANDOFF_MAX events behind: a tag is never dropped. */
		gw_handoff_push(srv->handoff, &h);
		if (h.last)
			return NULL;
	}
}

static void server_on_shutdown_tag(struct gw_server *srv)
{
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "grpc server shut down"), GW_LEND);
	if (srv->ev_grace)
		evtimer_del(srv->ev_grace);
	if (srv->ev_drain_poll)
		evtimer_del(srv->ev_drain_poll);
	grpc_completion_queue_shutdown(srv->cq);
}

/* One completion-queue event, on the loop thread (gateway/base/handoff.h). */
static void server_on_handoff(const struct gw_handoff_ev *ev, void *arg)
{
	struct gw_server *srv = arg;
	struct gw_tag *tag = ev->tag;

	if (ev->last) {
		srv->cq_shut = 1;
		event_base_loopbreak(srv->base);
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
	       GW_LN("in_flight", (long long)srv->stats.calls_in_flight), GW_LEND);
	if (srv->ev_drain_poll)
		evtimer_del(srv->ev_drain_poll);
	grpc_server_cancel_all_calls(srv->grpc);
}

/*
 * gRPC core's shutdown completes only once every client connection is gone, and a client that
 * keeps an idle channel open need not hang up soon after GOAWAY (grpcio took ~5 s, others may
 * never): the drain would sit out the grace period for nothing. So once no call is in flight (and no detached StartJob transfer,
 * whose outcome must still be recorded), close the connections now. Returns 1 when it did.
 */
static int server_drain_check(struct gw_server *srv)
{
	if (!srv->draining || srv->drain_cut || srv->stats.calls_in_flight > 0 || srv->detached_ops > 0)
		return 0;
	srv->drain_cut = 1;
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "nothing in flight, closing client connections"),
	       GW_LEND);
	if (srv->ev_drain_poll)
		evtimer_del(srv->ev_drain_poll);
	grpc_server_cancel_all_calls(srv->grpc);
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

	if (srv->draining)
		return;
	srv->draining = 1;
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "draining"), GW_LS("reason", why),
	       GW_LN("in_flight", (long long)srv->stats.calls_in_flight),
	       GW_LN("grace_ms", srv->grace_ms), GW_LEND);
	gw_health_end_watches(srv);
	srv->shutdown_notified = 1;
	grpc_server_shutdown_and_notify(srv->grpc, srv->cq, &srv->shutdown_tag);
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
	static const char *const names[] = { "listen.grpc", "listen.http", "tls.cert_file",
					     "tls.key_file", "tls.client_ca_file", "state.path",
					     "webhooks.path_prefix", "webhooks.public_url" };
	const char *x[] = { a->grpc_listen, a->http_listen, a->tls.cert_file, a->tls.key_file,
			    a->tls.client_ca_file, a->state.path, a->webhooks.path_prefix,
			    a->webhooks.public_url };
	const char *y[] = { b->grpc_listen, b->http_listen, b->tls.cert_file, b->tls.key_file,
			    b->tls.client_ca_file, b->state.path, b->webhooks.path_prefix,
			    b->webhooks.public_url };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!server_str_eq(x[i], y[i]))
			gw_log(GW_LOG_WARN, "reload", GW_LS("key", names[i]),
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
	const struct gw_config *boot = srv->boot_conf->cfg;
	char err[256], fp[13];

	for (size_t i = 0; i < srv->naccounts && i < boot->naccounts; i++) {
		const struct gw_account_cfg *ac = &boot->accounts[i];
		int r;

		if (!ac->secret_file)
			continue;	/* an environment variable cannot change under us */
		fp[0] = '\0';
		r = gw_session_reload_secret(&srv->accounts[i], ac, fp, err, sizeof err);
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

/* Swaps in cfg, loaded from config_path (NULL: the load failed and errs says why), unless it
 * changes what only a restart can; takes cfg. 0 swapped, -1 kept the old configuration. */
static int server_reload_apply(struct gw_server *srv, struct gw_config *cfg,
			       const struct gw_errors *errs)
{
	struct gw_server_conf *conf = NULL, *old;
	int rc = -1;

	if (!cfg) {
		for (size_t i = 0; i < errs->n; i++)
			gw_log(GW_LOG_ERROR, "reload", GW_LS("error", errs->msg[i]), GW_LEND);
		gw_log(GW_LOG_ERROR, "reload", GW_LS("msg", "invalid configuration, keeping the old one"),
		       GW_LN("errors", (long long)(errs->n + errs->dropped)), GW_LEND);
		goto out;
	}
	if (!server_accounts_same(srv->boot_conf->cfg, cfg)) {
		gw_log(GW_LOG_ERROR, "reload",
		       GW_LS("msg", "accounts changed: restart the gateway to apply; keeping the old configuration"),
		       GW_LEND);
		goto out;
	}
	if (!server_str_eq(srv->boot_conf->cfg->state.path, cfg->state.path) ||
	    srv->boot_conf->cfg->state.memory_only != cfg->state.memory_only ||
	    srv->boot_conf->cfg->state.read_only != cfg->state.read_only ||
	    srv->boot_conf->cfg->state.idempotency_ttl_s != cfg->state.idempotency_ttl_s ||
	    srv->boot_conf->cfg->state.reconcile_settle_ms != cfg->state.reconcile_settle_ms) {
		gw_log(GW_LOG_ERROR, "reload",
		       GW_LS("msg", "state settings changed: restart the gateway to apply; keeping the old configuration"),
		       GW_LEND);
		goto out;
	}
	if (!server_str_eq(srv->cfg->grpc_listen, cfg->grpc_listen) ||
	    !server_str_eq(srv->cfg->http_listen, cfg->http_listen) ||
	    !server_str_eq(srv->cfg->tls.cert_file, cfg->tls.cert_file) ||
	    !server_str_eq(srv->cfg->tls.key_file, cfg->tls.key_file) ||
	    !server_str_eq(srv->cfg->tls.client_ca_file, cfg->tls.client_ca_file) ||
	    srv->cfg->max_message_bytes != cfg->max_message_bytes)
		gw_log(GW_LOG_WARN, "reload",
		       GW_LS("msg", "listen, tls and max_message_bytes changes take effect at the next restart"),
		       GW_LEND);
	if (!gw_config_net_same(srv->boot_conf->cfg, cfg))
		gw_log(GW_LOG_WARN, "reload",
		       GW_LS("msg", "process, http and grpc changes take effect at the next restart"),
		       GW_LEND);
	conf = server_conf_new(cfg);
	if (!conf) {
		gw_log(GW_LOG_ERROR, "reload", GW_LS("msg", "cannot build the key ring, keeping the old configuration"),
		       GW_LEND);
		goto out;
	}
	cfg = NULL;	/* owned by conf */
	server_warn_restart_only(srv->boot_conf->cfg, conf->cfg);
	old = srv->conf;
	srv->conf = conf;
	srv->cfg = conf->cfg;
	conf = NULL;
	gw_server_conf_put(srv, old);
	server_apply_log_level(srv->cfg);
	gw_log(GW_LOG_INFO, "reload", GW_LS("msg", "configuration reloaded"),
	       GW_LN("tenants", (long long)srv->cfg->ntenants), GW_LEND);
	rc = 0;
out:
	if (rc)
		srv->stats.reloads_failed++;
	else
		srv->stats.reloads_ok++;
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
			srv->stats.reloads_failed++;
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
		/* Request, verify, but do not require: a client without a certificate may still
		 * use an API key (auth/caller/clientcert.h); one from another CA fails the handshake. */
		ca ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
		   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
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
	const struct gw_config *cfg = srv->cfg;
	struct gw_grpcargs ga;
	grpc_server_credentials *creds;
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
	       GW_LN("handshake_timeout_ms", cfg->grpc.handshake_timeout_ms), GW_LEND);
	srv->cq = grpc_completion_queue_create_for_next(NULL);
	srv->grpc = grpc_server_create(&ga.cargs, NULL);
	gw_grpcargs_release(&ga);	/* the server holds its own reference to the quota */
	grpc_server_register_completion_queue(srv->grpc, srv->cq, NULL);
	for (size_t i = 0; i < srv->nmethods; i++) {
		const struct gw_method *m = &srv->methods[i];

		srv->method_handles[i] = grpc_server_register_method(
			srv->grpc, m->path, NULL,
			m->kind == GW_CLIENT_STREAM ? GRPC_SRM_PAYLOAD_NONE
						    : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
			0);
		if (!srv->method_handles[i]) {
			snprintf(err, errlen, "cannot register gRPC method %s", m->path);
			return -1;
		}
	}
	creds = server_creds(cfg, err, errlen);
	if (!creds)
		return -1;
	port = grpc_server_add_http2_port(srv->grpc, cfg->grpc_listen, creds);
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

static void server_on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *srv = arg;
	int n;

	(void)fd;
	(void)what;
	if (gw_store_read_only(srv->store))
		return;
	n = gw_owner_expire(srv->owner, gw_server_wall_ms());
	if (n < 0)
		gw_log(GW_LOG_WARN, "state", GW_LS("msg", "idempotency key expiry failed"),
		       GW_LS("error", gw_store_errmsg(srv->store)), GW_LEND);
	else if (n > 0)
		gw_log(GW_LOG_INFO, "state", GW_LS("msg", "idempotency keys expired"),
		       GW_LN("keys", n), GW_LEND);
}

static int server_count_pending(void *arg, const char *tenant, const char *key,
				const struct gw_idem *e)
{
	(void)tenant;
	(void)key;
	(void)e;
	++*(long long *)arg;
	return 0;
}

static int server_state_new(struct gw_server *srv, char *err, size_t errlen)
{
	const struct gw_config *cfg = srv->cfg;
	struct timeval tv = { GW_SERVER_HOUSEKEEPING_S, 0 };
	char serr[GW_STORE_ERR_MAX];
	long long pending = 0;

	serr[0] = '\0';
	srv->store = gw_store_open(cfg->state.memory_only ? NULL : cfg->state.path, cfg->state.read_only,
				   serr, sizeof serr);
	if (!srv->store) {
		snprintf(err, errlen, "%s", serr[0] ? serr : "cannot open the state store");
		return -1;
	}
	srv->owner = gw_owner_new(srv->store, cfg->state.idempotency_ttl_s * 1000);
	if (!srv->owner) {
		snprintf(err, errlen, "out of memory creating the ownership state");
		return -1;
	}
	/* Keys a previous process left PENDING: reconciled when their clients retry. */
	if (gw_store_idem_pending(srv->store, server_count_pending, &pending) != 0) {
		snprintf(err, errlen, "%s", gw_store_errmsg(srv->store));
		return -1;
	}
	gw_log(pending ? GW_LOG_WARN : GW_LOG_INFO, "state",
	       GW_LS("msg", pending ? "idempotency keys left pending by a previous process; "
				      "they are reconciled when retried"
				    : "state store open"),
	       GW_LS("backend", gw_store_backend(srv->store)),
	       GW_LS("path", cfg->state.memory_only ? "-" : cfg->state.path),
	       GW_LN("read_only", gw_store_read_only(srv->store)), GW_LN("pending_keys", pending),
	       GW_LEND);
	srv->ev_housekeeping = event_new(srv->base, -1, EV_PERSIST, server_on_housekeeping, srv);
	if (!srv->ev_housekeeping || event_add(srv->ev_housekeeping, &tv)) {
		snprintf(err, errlen, "cannot set up the event loop");
		return -1;
	}
	return 0;
}

static int server_events_new(struct gw_server *srv, char *err, size_t errlen)
{
	srv->handoff = gw_handoff_new(srv->base, GW_HANDOFF_MAX, server_on_handoff, srv);
	srv->ev_drain_poll = event_new(srv->base, -1, EV_PERSIST, server_on_drain_poll, srv);
	srv->ev_term = evsignal_new(srv->base, SIGTERM, server_on_signal, srv);
	srv->ev_int = evsignal_new(srv->base, SIGINT, server_on_signal, srv);
	srv->ev_hup = evsignal_new(srv->base, SIGHUP, server_on_signal, srv);
	srv->ev_grace = evtimer_new(srv->base, server_on_grace, srv);
	srv->reload = gw_config_async_new(srv->base, srv->config_path, server_on_reload_loaded, srv);
	if (!srv->handoff || !srv->ev_drain_poll || !srv->ev_term || !srv->ev_int || !srv->ev_hup ||
	    !srv->ev_grace || !srv->reload ||
	    event_add(srv->ev_term, NULL) || event_add(srv->ev_int, NULL) ||
	    event_add(srv->ev_hup, NULL)) {
		snprintf(err, errlen, "cannot set up the event loop");
		return -1;
	}
	return 0;
}

/* The memory guard's last resort (gateway/base/memguard.h): every gRPC connection is closed,
 * which stops what they feed gRPC core and lets the calls queued behind them drain. gRPC's header
 * says "only usable after shutdown"; in 1.51 it only broadcasts a disconnect to every transport
 * (Server::CancelAllCalls), listeners untouched, which is what is wanted here. */
static void server_memory_shed(void *arg)
{
	struct gw_server *srv = arg;

	if (srv->started && !srv->draining)
		grpc_server_cancel_all_calls(srv->grpc);
}

struct gw_server *gw_server_new(struct gw_config *cfg, const char *config_path, long grace_ms,
				char *err, size_t errlen)
{
	struct gw_server *srv = calloc(1, sizeof *srv);
	struct gw_server *ret = NULL;

	snprintf(err, errlen, "out of memory");
	if (!srv)
		goto out;
	/* libevent's and gRPC core's own lines join ours as JSON, rate-limited (base/liblog.h). */
	gw_liblog_install();
	srv->grace_ms = grace_ms < 0 ? GW_SERVER_DEFAULT_GRACE_MS : grace_ms;
	srv->started_wall_ms = gw_server_wall_ms();
	srv->shutdown_tag = (struct gw_tag){ GW_TAG_SHUTDOWN, srv };
	srv->health.serving = 1;
	gw_lograte_init(&srv->anon_rpc_log, GW_SERVER_ANON_LOG_PER_S);
	srv->config_path = strdup(config_path ? config_path : "");
	srv->base = event_base_new();
	if (!srv->config_path || !srv->base)
		goto out;
	srv->conf = server_conf_new(cfg);
	if (!srv->conf) {
		snprintf(err, errlen, "cannot build the API key ring from %s", config_path);
		goto out;
	}
	cfg = NULL;	/* owned by the generation */
	srv->cfg = srv->conf->cfg;
	srv->boot_conf = gw_server_conf_get(srv);
	server_apply_log_level(srv->cfg);

	if (server_events_new(srv, err, errlen))
		goto out;
	if (server_state_new(srv, err, errlen))
		goto out;
	srv->up = gw_up_new(srv);
	if (!srv->up) {
		snprintf(err, errlen, "cannot start the upstream HTTP client");
		goto out;
	}
	srv->accounts = gw_session_accounts_new(srv, &srv->naccounts, err, errlen);
	if (!srv->accounts)
		goto out;
	if (gw_rpc_methods_new(&srv->methods, &srv->nmethods)) {
		snprintf(err, errlen, "cannot build the method table");
		goto out;
	}
	srv->method_handles = calloc(srv->nmethods, sizeof *srv->method_handles);
	if (!srv->method_handles)
		goto out;
	grpc_init();
	srv->grpc_inited = 1;
	if (server_grpc_new(srv, err, errlen))
		goto out;
	srv->memguard = gw_memguard_new(srv->base, (uint64_t)srv->cfg->process.memory_mib << 20,
					(uint64_t)gw_config_grpc_quota_mib(srv->cfg) << 20,
					server_memory_shed, srv);
	if (srv->cfg->process.memory_mib && !srv->memguard)
		goto out;
	if (srv->cfg->http_listen) {
		srv->http = gw_http_new(srv, err, errlen);
		if (!srv->http)
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

int gw_server_run(struct gw_server *srv)
{
	int rc = -1;

	grpc_server_start(srv->grpc);
	srv->started = 1;
	/* Several requests armed per method: one call's hand-off round trip (completion queue,
	 * poller, loop, re-arm) no longer paces how fast calls leave gRPC core's queue, where a flood
	 * of new streams otherwise piles up. */
	for (int k = 0; k < GW_SERVER_ARMED_PER_METHOD; k++)
		for (size_t i = 0; i < srv->nmethods; i++)
			if (gw_call_arm(srv, i))
				goto out;
	/* Without the generic request, calls to unknown methods hang until their deadline. */
	if (gw_call_arm(srv, GW_CALL_GENERIC))
		goto out;
	if (pthread_create(&srv->poller, NULL, server_poller, srv) != 0) {
		gw_log(GW_LOG_ERROR, "server", GW_LS("msg", "cannot start the poller thread"), GW_LEND);
		goto out;
	}
	srv->poller_running = 1;
	gw_log(GW_LOG_INFO, "server", GW_LS("msg", "listening"), GW_LS("grpc", srv->cfg->grpc_listen),
	       GW_LN("grpc_port", srv->grpc_port),
	       GW_LS("http", srv->cfg->http_listen ? srv->cfg->http_listen : "-"),
	       GW_LS("tls", srv->cfg->tls.cert_file ? (srv->cfg->tls.client_ca_file ? "mtls" : "tls")
						    : "off"),
	       GW_LN("methods", (long long)srv->nmethods), GW_LEND);
	for (size_t i = 0; i < srv->naccounts; i++)
		gw_session_start(&srv->accounts[i]);
	srv->webhook_reg = gw_webhook_reg_start(srv);	/* NULL unless webhooks.public_url */
	event_base_loop(srv->base, EVLOOP_NO_EXIT_ON_EMPTY);
	rc = 0;
out:
	if (rc && !srv->draining)
		gw_server_drain(srv, "startup failure");
	return rc;
}

/* Shuts the gRPC server and drains the queue on this thread (no poller, or a failed start). */
static void server_grpc_shutdown_sync(struct gw_server *srv)
{
	if (!srv->shutdown_notified) {
		srv->shutdown_notified = 1;
		grpc_server_shutdown_and_notify(srv->grpc, srv->cq, &srv->shutdown_tag);
	}
	grpc_server_cancel_all_calls(srv->grpc);
	for (int shut = 0; !srv->cq_shut;) {
		grpc_event ev = grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN) {
			srv->cq_shut = 1;
		} else if (ev.type == GRPC_OP_COMPLETE) {
			struct gw_tag *t = ev.tag;

			if (t->kind == GW_TAG_SHUTDOWN && !shut) {
				shut = 1;
				grpc_completion_queue_shutdown(srv->cq);
			} else if (t->kind != GW_TAG_SHUTDOWN) {
				gw_call_event(t, ev.success);
			}
		}
	}
}

void gw_server_free(struct gw_server *srv)
{
	if (!srv)
		return;
	if (srv->poller_running && !srv->cq_shut) {
		/* The loop stopped before the drain finished (startup failure): finish it here. */
		event_base_loop(srv->base, EVLOOP_NO_EXIT_ON_EMPTY);
	}
	if (srv->poller_running) {
		pthread_join(srv->poller, NULL);
		srv->poller_running = 0;
	}
	/* Leftover hand-offs (only possible after the last one): the queue is shut. */
	gw_handoff_free(srv->handoff, NULL);
	srv->handoff = NULL;
	gw_http_free(srv->http);
	if (srv->grpc && !srv->cq_shut)
		server_grpc_shutdown_sync(srv);
	gw_memguard_free(srv->memguard);
	gw_webhook_reg_free(srv->webhook_reg);	/* its requests use the accounts and engine */
	gw_session_accounts_free(srv->accounts, srv->naccounts);
	gw_up_free(srv->up);
	/* After the last call: waiters are gone; keys still PENDING stay for the next process. */
	gw_owner_free(srv->owner);
	gw_store_close(srv->store);
	if (srv->ev_housekeeping)
		event_free(srv->ev_housekeeping);
	if (srv->grpc)
		grpc_server_destroy(srv->grpc);
	if (srv->cq)
		grpc_completion_queue_destroy(srv->cq);
	if (srv->grpc_inited)
		grpc_shutdown();
	free(srv->method_handles);
	gw_rpc_methods_free(srv->methods);
	if (srv->boot_conf)
		gw_server_conf_put(srv, srv->boot_conf);
	if (srv->conf)
		gw_server_conf_put(srv, srv->conf);
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
	if (srv->base)
		event_base_free(srv->base);
	free(srv->config_path);
	free(srv);
}
