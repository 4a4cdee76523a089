/*
 * webhook_reg: one upstream webhook endpoint per account, found or created at start-up.
 * See webhook_reg.h.
 */
#include "gateway/svc/webhook_reg.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "auth/upstream/session.h"
#include "gateway/config/config.h"
#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"
#include "gateway/base/retry.h"
#include "gateway/base/notify.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"
#include "gateway/cluster/redis.h"
#include "gateway/svc/webhook_in.h"
#include "gateway/svc/webhook_token.h"
#include "gateway/upstream/upstream.h"

#define WEBHOOK_REG_PATH "/webhook_endpoints"
#define WEBHOOK_REG_MAX_PATH (sizeof WEBHOOK_REG_PATH + GW_WEBHOOK_REG_MAX_ID + 1)
#define WEBHOOK_REG_MAX_BODY (GW_WEBHOOK_REG_MAX_URL + 64)	/* {"url":...,"events":[...]} */
#define WEBHOOK_REG_MAX_SHIFT 20	/* backoff doubling stops here (the cap is reached far earlier) */

/* ---- pure parts ---- */

/* RFC 3986 unreserved: what a path segment carries without escaping. */
static int webhook_reg_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

static int webhook_reg_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!webhook_reg_char_ok(*s))
			return 0;
	return 1;
}

int gw_webhook_reg_url_token(char *out, size_t outlen, const char *public_url, const char *prefix,
			     const char *token, const char *account)
{
	int n;

	if (!out || outlen == 0)
		return -1;
	out[0] = '\0';
	if (!public_url || !prefix || !account || !webhook_reg_name_ok(account) ||
	    (token && !gw_webhook_token_ok(token, strlen(token))))
		return -1;
	n = snprintf(out, outlen, "%s%s%s%s%s", public_url, prefix, token ? token : "", token ? "/" : "",
		     account);
	if (n < 0 || (size_t)n >= outlen) {
		explicit_bzero(out, outlen);	/* may hold part of the token */
		return -1;
	}
	return 0;
}

int gw_webhook_reg_url(char *out, size_t outlen, const char *public_url, const char *prefix,
		       const char *account)
{
	return gw_webhook_reg_url_token(out, outlen, public_url, prefix, NULL, account);
}

/* 1 when u is <base><account> or <base><segment>/<account>: an url of ours with any token. */
static int webhook_reg_ours(const char *u, const char *base, const char *account)
{
	size_t bl = strlen(base), al = strlen(account), ul = strlen(u), seg;

	if (ul < bl + al || strncmp(u, base, bl) != 0 || strcmp(u + ul - al, account) != 0)
		return 0;
	if (ul == bl + al)
		return 1;
	if (ul < bl + al + 2 || u[ul - al - 1] != '/')
		return 0;
	seg = ul - al - 1 - bl;
	for (size_t i = 0; i < seg; i++)
		if (!webhook_reg_char_ok(u[bl + i]))
			return 0;
	return 1;
}

static int webhook_reg_has_event(json_t *events)
{
	size_t i;
	json_t *v;

	json_array_foreach(events, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), GW_WEBHOOK_REG_EVENT) == 0)
			return 1;
	return 0;
}

/* The endpoint's id when it is usable (string, fits), else NULL. */
static const char *webhook_reg_id(json_t *e)
{
	json_t *v = json_object_get(e, "id");
	size_t n;

	if (!json_is_string(v))
		return NULL;
	n = json_string_length(v);
	/* It may go into a request path (update): only characters that need no escaping. */
	if (n == 0 || n >= GW_WEBHOOK_REG_MAX_ID || strlen(json_string_value(v)) != n ||
	    !webhook_reg_name_ok(json_string_value(v)))
		return NULL;
	return json_string_value(v);
}

enum gw_webhook_reg_decision gw_webhook_reg_decide(const char *body, size_t len, const char *url,
						   struct gw_webhook_reg_found *f)
{
	return gw_webhook_reg_decide_ours(body, len, url, NULL, NULL, f);
}

enum gw_webhook_reg_decision gw_webhook_reg_decide_ours(const char *body, size_t len, const char *url,
							const char *base, const char *account,
							struct gw_webhook_reg_found *f)
{
	enum gw_webhook_reg_decision d = GW_WEBHOOK_REG_BAD;
	json_t *root = NULL, *list, *e, *kept = NULL;
	int kept_has_event = 0;
	size_t i;

	memset(f, 0, sizeof *f);
	if (!body || !url)
		goto out;
	root = json_loadb(body, len, 0, NULL);
	list = json_is_array(root) ? root : json_object_get(root, "endpoints");
	if (!json_is_array(list))
		goto out;
	f->total = json_array_size(list);
	/* First pass: the one to keep (the first with job.completed, else the first match). */
	json_array_foreach(list, i, e) {
		json_t *u = json_object_get(e, "url");
		int has;

		if (!json_is_object(e) || !json_is_string(u) || strcmp(json_string_value(u), url) != 0)
			continue;
		if (!webhook_reg_id(e))
			goto out;	/* ours, but we could not name it: neither keep nor fix it */
		f->matches++;
		has = webhook_reg_has_event(json_object_get(e, "events"));
		if (!kept || (has && !kept_has_event)) {
			kept = e;
			kept_has_event = has;
		}
	}
	if (!kept) {
		/* Not ours exactly: one of ours with another token (or none) is moved, not doubled. */
		json_array_foreach(list, i, e) {
			json_t *u = json_object_get(e, "url");

			if (!base || !account || !json_is_object(e) || !json_is_string(u) ||
			    !webhook_reg_ours(json_string_value(u), base, account) || !webhook_reg_id(e))
				continue;
			snprintf(f->id, sizeof f->id, "%s", webhook_reg_id(e));
			d = GW_WEBHOOK_REG_RETARGET;
			goto out;
		}
		d = GW_WEBHOOK_REG_CREATE;
		goto out;
	}
	snprintf(f->id, sizeof f->id, "%s", webhook_reg_id(kept));
	/* Second pass: the others with our url, for the log (left in place). */
	json_array_foreach(list, i, e) {
		json_t *u = json_object_get(e, "url");

		if (e == kept || !json_is_object(e) || !json_is_string(u) ||
		    strcmp(json_string_value(u), url) != 0)
			continue;
		if (f->ndups < GW_WEBHOOK_REG_MAX_LOGGED_DUPS)
			snprintf(f->dups[f->ndups++], sizeof f->dups[0], "%s", webhook_reg_id(e));
	}
	d = kept_has_event ? GW_WEBHOOK_REG_PRESENT : GW_WEBHOOK_REG_UPDATE;
out:
	json_decref(root);
	if (d == GW_WEBHOOK_REG_BAD) {
		memset(f, 0, sizeof *f);
	}
	return d;
}

int64_t gw_webhook_reg_backoff_ms(unsigned attempt, uint64_t rnd)
{
	int64_t d = GW_WEBHOOK_REG_BACKOFF_MIN_MS;
	unsigned shift = attempt ? attempt - 1 : 0;

	if (shift > WEBHOOK_REG_MAX_SHIFT)
		shift = WEBHOOK_REG_MAX_SHIFT;
	d <<= shift;
	if (d > GW_WEBHOOK_REG_BACKOFF_MAX_MS)
		d = GW_WEBHOOK_REG_BACKOFF_MAX_MS;
	/* Half fixed, half jitter: replicas restarted together do not retry in step, and a retry
	 * never comes sooner than half the nominal delay. */
	return d - d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
}

void gw_webhook_reg_render(const struct gw_webhook_reg_counters *c, size_t done,
			   struct gw_metrics_out *o)
{
	static const struct {
		const char *result;
		size_t off;
	} rows[] = {
		{ "present", offsetof(struct gw_webhook_reg_counters, present) },
		{ "created", offsetof(struct gw_webhook_reg_counters, created) },
		{ "updated", offsetof(struct gw_webhook_reg_counters, updated) },
		{ "retargeted", offsetof(struct gw_webhook_reg_counters, retargeted) },
		{ "duplicate", offsetof(struct gw_webhook_reg_counters, duplicates) },
		{ "failed", offsetof(struct gw_webhook_reg_counters, failed) },
		{ "skipped", offsetof(struct gw_webhook_reg_counters, skipped) },
	};
	char labels[48];

	gw_metrics_family(o, "webhook_registrations_total", "counter",
			  "Start-up webhook endpoint registration outcomes (webhooks.public_url).");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint64_t v;

		memcpy(&v, (const char *)c + rows[i].off, sizeof v);
		snprintf(labels, sizeof labels, "result=\"%s\"", rows[i].result);
		gw_metrics_value(o, "webhook_registrations_total", labels, v);
	}
	gw_metrics_one(o, "webhook_endpoints_registered", "gauge",
		       "Accounts whose upstream webhook endpoint is in place.", done);
}

/* ---- the runtime ---- */

enum webhook_reg_step { WR_IDLE, WR_LIST, WR_CREATE, WR_UPDATE, WR_DONE, WR_SKIPPED, WR_RETARGET };

struct webhook_reg_acct {
	struct gw_webhook_reg *wr;
	size_t idx;				/* in env->accounts */
	enum webhook_reg_step step;
	char url[GW_WEBHOOK_REG_MAX_URL];	/* may hold the path token: never logged */
	char log_url[GW_WEBHOOK_REG_MAX_URL];	/* url with "{token}" in the token's place */
	char base[GW_WEBHOOK_REG_MAX_URL];	/* <public_url><prefix>: urls of ours start so */
	char id[GW_WEBHOOK_REG_MAX_ID];		/* the endpoint to update */
	struct gw_up_call *call;		/* in flight, or NULL */
	struct event *timer;			/* retry */
	unsigned attempt;			/* failures in a row */
	int locked;				/* the Redis lock is ours (released when done) */
	int lock_asked;				/* a SET NX is in flight */
	int unlocked_ok;			/* this attempt goes on without the lock */
	unsigned lock_seq;			/* answers to older lock requests are ignored */
};

/* What Redis commands in flight point at: outlives the service while any is out. */
struct webhook_reg_life {
	struct gw_webhook_reg *wr;	/* NULL once freed */
	unsigned pending;
};

struct webhook_reg_lockreq {
	struct webhook_reg_life *life;
	size_t idx;
	unsigned seq;
};

struct gw_webhook_reg {
	struct gw_env *env;
	uint64_t token_gen;		/* of the path token the urls carry */
	struct webhook_reg_acct *acct;
	size_t n;
	uint64_t rng;				/* jitter: gw_retry_rand() state */
	struct gw_webhook_reg_counters cnt;
	struct webhook_reg_life *life;		/* with redis: only */
};

static const char *webhook_reg_name(const struct webhook_reg_acct *a)
{
	return gw_session_name(&a->wr->env->accounts[a->idx]);
}

static void webhook_reg_send(struct webhook_reg_acct *a);
static void webhook_reg_fail(struct webhook_reg_acct *a, const char *why, long http);

/* ---- the registration lock (several replicas) ---- */

static const char webhook_reg_unlock_lua[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";
static struct gw_redis_script webhook_reg_unlock_script = { webhook_reg_unlock_lua, "" };

static int webhook_reg_lock_key(const struct webhook_reg_acct *a, char *key, size_t cap)
{
	char name[GW_REDIS_KEY_MAX];
	int n = snprintf(name, sizeof name, "webhook_reg:%s", webhook_reg_name(a));

	if (n < 0 || (size_t)n >= sizeof name)
		return -1;
	return gw_redis_key(a->wr->env->redis, name, key, cap);
}

static void webhook_reg_on_unlock(void *arg, const redisReply *reply, const char *err)
{
	struct webhook_reg_life *life = arg;

	(void)reply;
	(void)err;	/* the lock expires by itself anyway */
	if (--life->pending == 0 && !life->wr)
		free(life);
}

/* Releases the lock when it is ours (compare and delete: an expired lock taken since by another
 * replica stays theirs). */
static void webhook_reg_unlock(struct webhook_reg_acct *a)
{
	struct gw_webhook_reg *wr = a->wr;
	char key[GW_REDIS_KEY_MAX];
	const char *argv[2];
	int klen;

	a->unlocked_ok = 0;
	if (!a->locked)
		return;
	a->locked = 0;
	klen = webhook_reg_lock_key(a, key, sizeof key);
	if (klen <= 0)
		return;
	argv[0] = key;
	argv[1] = wr->env->instance;
	if (!webhook_reg_unlock_script.sha[0])
		gw_redis_script_init(&webhook_reg_unlock_script);
	if (gw_redis_eval(wr->env->redis, &webhook_reg_unlock_script, 1, 1, argv, NULL,
			  webhook_reg_on_unlock, wr->life) == GW_REDIS_OK)
		wr->life->pending++;
}

static void webhook_reg_on_lock(void *arg, const redisReply *reply, const char *err)
{
	struct webhook_reg_lockreq *q = arg;
	struct webhook_reg_life *life = q->life;
	struct webhook_reg_acct *a;
	struct timeval tv = { 0, GW_WEBHOOK_REG_LOCK_WAIT_MS * 1000 };

	life->pending--;
	if (!life->wr) {
		if (life->pending == 0)
			free(life);
		free(q);
		return;
	}
	a = &life->wr->acct[q->idx];
	if (q->seq != a->lock_seq || a->wr->env->draining) {
		free(q);
		return;		/* a retarget started over meanwhile, or shutting down */
	}
	free(q);
	a->lock_asked = 0;
	if (!err && reply && reply->type == REDIS_REPLY_STATUS) {
		a->wr->cnt.lock_taken++;
		a->locked = 1;
		webhook_reg_send(a);
	} else if (!err && reply && reply->type == REDIS_REPLY_NIL) {
		/* Another replica registers: its endpoint is what our GET will find. */
		a->wr->cnt.lock_waited++;
		if (!a->timer || evtimer_add(a->timer, &tv) != 0)
			webhook_reg_fail(a, "cannot arm the lock timer", 0);
	} else {
		a->wr->cnt.lock_unavailable++;
		a->unlocked_ok = 1;
		webhook_reg_send(a);
	}
}

/* Asks for the lock before the GET: 1 when asked (the answer goes on), 0 when the GET may go
 * now (no Redis, the lock is ours, or Redis refused at once: without the lock). */
static int webhook_reg_lock(struct webhook_reg_acct *a)
{
	struct gw_webhook_reg *wr = a->wr;
	struct webhook_reg_lockreq *q;
	char key[GW_REDIS_KEY_MAX], px[16];
	const char *argv[6];
	int klen;

	if (!wr->env->redis || !wr->life || a->locked || a->unlocked_ok)
		return 0;
	if (a->lock_asked)
		return 1;
	klen = webhook_reg_lock_key(a, key, sizeof key);
	q = klen > 0 ? calloc(1, sizeof *q) : NULL;
	if (!q)
		goto without;
	q->life = wr->life;
	q->idx = a->idx;
	q->seq = ++a->lock_seq;
	snprintf(px, sizeof px, "%d", GW_WEBHOOK_REG_LOCK_MS);
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = wr->env->instance;
	argv[3] = "NX";
	argv[4] = "PX";
	argv[5] = px;
	if (gw_redis_command(wr->env->redis, webhook_reg_on_lock, q, 6, argv, NULL) != GW_REDIS_OK) {
		free(q);
		goto without;
	}
	wr->life->pending++;
	a->lock_asked = 1;
	return 1;
without:
	wr->cnt.lock_unavailable++;
	a->unlocked_ok = 1;
	return 0;
}

static void webhook_reg_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_reg_acct *a = arg;

	(void)fd;
	(void)what;
	if (a->wr->env->draining)
		return;		/* shutting down: the next start registers */
	webhook_reg_send(a);
}

/* A failed attempt: count it, log why, and start over from the GET after the backoff. */
static void webhook_reg_fail(struct webhook_reg_acct *a, const char *why, long http)
{
	struct gw_webhook_reg *wr = a->wr;
	int64_t ms;
	struct timeval tv;

	wr->cnt.failed++;
	a->attempt++;
	webhook_reg_unlock(a);
	ms = gw_webhook_reg_backoff_ms(a->attempt, gw_retry_rand(&wr->rng));
	a->step = WR_LIST;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	gw_log(GW_LOG_WARN, "webhook_reg", GW_LS("account", webhook_reg_name(a)),
	       GW_LS("msg", "webhook endpoint registration failed, will retry"), GW_LS("error", why),
	       GW_LN("http", http), GW_LN("attempt", a->attempt), GW_LN("retry_ms", ms), GW_LEND);
	if (!a->timer || evtimer_add(a->timer, &tv) != 0)
		gw_log(GW_LOG_ERROR, "webhook_reg", GW_LS("account", webhook_reg_name(a)),
		       GW_LS("msg", "cannot arm the retry timer; registration stopped"), GW_LEND);
}

static void webhook_reg_done_ok(struct webhook_reg_acct *a, const char *msg, const char *id)
{
	a->step = WR_DONE;
	a->attempt = 0;
	webhook_reg_unlock(a);
	gw_log(GW_LOG_INFO, "webhook_reg", GW_LS("account", webhook_reg_name(a)), GW_LS("msg", msg),
	       GW_LS("id", id), GW_LS("url", a->log_url), GW_LEND);
}

static void webhook_reg_on_list(struct webhook_reg_acct *a, const struct gw_up_response *res)
{
	struct gw_webhook_reg *wr = a->wr;
	struct gw_webhook_reg_found *f = malloc(sizeof *f);
	enum gw_webhook_reg_decision d;

	if (!f) {
		webhook_reg_fail(a, "out of memory", 0);
		return;
	}
	d = gw_webhook_reg_decide_ours(res->body, res->body_len, a->url, a->base, webhook_reg_name(a), f);
	if (d == GW_WEBHOOK_REG_BAD) {
		webhook_reg_fail(a, "unreadable GET /webhook_endpoints answer", res->http_status);
		goto out;
	}
	if (f->matches > 1) {
		wr->cnt.duplicates += f->matches - 1;
		gw_log(GW_LOG_WARN, "webhook_reg", GW_LS("account", webhook_reg_name(a)),
		       GW_LS("msg", "several webhook endpoints with our url; keeping one, leaving the others"),
		       GW_LS("kept", f->id), GW_LN("others", (long long)(f->matches - 1)),
		       GW_LS("url", a->log_url), GW_LEND);
		for (size_t i = 0; i < f->ndups; i++)
			gw_log(GW_LOG_WARN, "webhook_reg", GW_LS("account", webhook_reg_name(a)),
			       GW_LS("msg", "duplicate webhook endpoint left in place"),
			       GW_LS("id", f->dups[i]), GW_LEND);
	}
	switch (d) {
	case GW_WEBHOOK_REG_PRESENT:
		wr->cnt.present++;
		webhook_reg_done_ok(a, "webhook endpoint present", f->id);
		break;
	case GW_WEBHOOK_REG_UPDATE:
		snprintf(a->id, sizeof a->id, "%s", f->id);
		a->step = WR_UPDATE;
		webhook_reg_send(a);
		break;
	case GW_WEBHOOK_REG_RETARGET:
		snprintf(a->id, sizeof a->id, "%s", f->id);
		a->step = WR_RETARGET;
		webhook_reg_send(a);
		break;
	default:
		a->step = WR_CREATE;
		webhook_reg_send(a);
		break;
	}
out:
	free(f);
}

/* The id in a create/update answer, when it is usable; "" otherwise (still a success: the
 * next start finds the endpoint by its url). */
static void webhook_reg_answer_id(const struct gw_up_response *res, char *id, size_t idlen)
{
	json_t *root = json_loadb(res->body ? res->body : "", res->body_len, 0, NULL);
	const char *v = json_is_object(root) ? webhook_reg_id(root) : NULL;

	snprintf(id, idlen, "%s", v ? v : "");
	json_decref(root);
}

static void webhook_reg_on_done(void *arg, const struct gw_up_response *res)
{
	struct webhook_reg_acct *a = arg;
	char id[GW_WEBHOOK_REG_MAX_ID];

	a->call = NULL;
	if (res->curl_rc != CURLE_OK || res->no_session || res->limited) {
		webhook_reg_fail(a, res->error ? res->error : "upstream request failed",
				 res->http_status);
		return;
	}
	if (res->http_status < 200 || res->http_status > 299) {
		webhook_reg_fail(a, a->step == WR_LIST     ? "GET /webhook_endpoints refused"
				    : a->step == WR_CREATE ? "POST /webhook_endpoints refused"
							   : "POST /webhook_endpoints/{id} refused",
				 res->http_status);
		return;
	}
	switch (a->step) {
	case WR_LIST:
		webhook_reg_on_list(a, res);
		break;
	case WR_CREATE:
		a->wr->cnt.created++;
		webhook_reg_answer_id(res, id, sizeof id);
		webhook_reg_done_ok(a, "webhook endpoint registered", id);
		break;
	case WR_UPDATE:
		a->wr->cnt.updated++;
		webhook_reg_done_ok(a, "webhook endpoint given job.completed", a->id);
		break;
	case WR_RETARGET:
		a->wr->cnt.retargeted++;
		webhook_reg_done_ok(a, "webhook endpoint moved to the current url", a->id);
		break;
	default:
		break;
	}
}

/* Issues the request of a->step. Bodies are built with jansson: the url is escaped properly. */
static void webhook_reg_send(struct webhook_reg_acct *a)
{
	struct gw_env *env = a->wr->env;
	struct gw_up_request rq = { 0 };
	char path[WEBHOOK_REG_MAX_PATH];
	json_t *o = NULL;
	char *body = NULL;

	rq.timeout_ms = GW_WEBHOOK_REG_TIMEOUT_MS;
	if (a->step == WR_LIST && webhook_reg_lock(a))
		return;		/* the GET goes once the lock answers */
	switch (a->step) {
	case WR_LIST:
		rq.method = "GET";
		rq.path = WEBHOOK_REG_PATH;
		rq.idempotent = 1;
		break;
	case WR_CREATE:
		o = json_pack("{s:s, s:[s]}", "url", a->url, "events", GW_WEBHOOK_REG_EVENT);
		break;
	case WR_UPDATE:
		o = json_pack("{s:[s]}", "events", GW_WEBHOOK_REG_EVENT);
		snprintf(path, sizeof path, WEBHOOK_REG_PATH "/%s", a->id);
		break;
	case WR_RETARGET:
		o = json_pack("{s:s, s:[s]}", "url", a->url, "events", GW_WEBHOOK_REG_EVENT);
		snprintf(path, sizeof path, WEBHOOK_REG_PATH "/%s", a->id);
		break;
	default:
		return;
	}
	if (a->step != WR_LIST) {
		body = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!body || strlen(body) > WEBHOOK_REG_MAX_BODY) {
			free(body);
			webhook_reg_fail(a, "cannot build the request body", 0);
			return;
		}
		rq.method = "POST";
		rq.path = a->step == WR_CREATE ? WEBHOOK_REG_PATH : path;
		rq.body = body;
		rq.body_len = strlen(body);
	}
	a->call = gw_up_start(env->up, &env->accounts[a->idx].up, &rq, webhook_reg_on_done, a);
	if (body)	/* gw_up_start copied it (body_keep is 0); it may hold the path token */
		explicit_bzero(body, strlen(body));
	free(body);
	if (!a->call)
		webhook_reg_fail(a, "cannot start the upstream request", 0);
}

/* Builds a's url (with the current path token), its log form and the base of ours. 0, or -1
 * when the account name cannot be used in a path or the url does not fit. */
static int webhook_reg_urls(struct webhook_reg_acct *a, const struct gw_config *cfg, const char *token)
{
	const char *prefix = cfg->webhooks.path_prefix ? cfg->webhooks.path_prefix
						       : GW_CONFIG_DEFAULT_WEBHOOK_PREFIX;
	const char *name = webhook_reg_name(a);
	int n;

	n = snprintf(a->base, sizeof a->base, "%s%s", cfg->webhooks.public_url, prefix);
	if (n < 0 || (size_t)n >= sizeof a->base)
		return -1;
	n = snprintf(a->log_url, sizeof a->log_url, "%s%s%s", a->base, token ? "{token}/" : "", name);
	if (n < 0 || (size_t)n >= sizeof a->log_url)
		return -1;
	return gw_webhook_reg_url_token(a->url, sizeof a->url, cfg->webhooks.public_url, prefix, token,
					name);
}

/* Starts the registration of every account (the service's start hook, loop running). */
static void webhook_reg_start(struct gw_webhook_reg *wr)
{
	struct gw_env *env = wr->env;
	const struct gw_config *cfg = env->boot_cfg;

	for (size_t i = 0; i < wr->n; i++) {
		struct webhook_reg_acct *a = &wr->acct[i];

		a->wr = wr;
		a->idx = i;
		if (webhook_reg_urls(a, cfg, gw_webhook_in_service_token(env, &wr->token_gen)) != 0) {
			a->step = WR_SKIPPED;
			wr->cnt.skipped++;
			gw_log(GW_LOG_ERROR, "webhook_reg", GW_LS("account", gw_session_name(&env->accounts[i])),
			       GW_LS("msg", "account name not usable in a webhook URL (letters, digits, "
					    "'-', '.', '_', '~') or URL too long; not registered"), GW_LEND);
			continue;
		}
		a->timer = evtimer_new(env->base, webhook_reg_on_timer, a);
		a->step = WR_LIST;
		if (!a->timer) {
			webhook_reg_fail(a, "out of memory", 0);	/* logs that it stops */
			continue;
		}
		webhook_reg_send(a);
	}
}

void gw_webhook_reg_free(struct gw_webhook_reg *wr)
{
	if (!wr)
		return;
	for (size_t i = 0; i < wr->n; i++) {
		struct webhook_reg_acct *a = &wr->acct[i];

		if (a->call)
			gw_up_cancel(a->call);
		if (a->timer)
			event_free(a->timer);
		webhook_reg_unlock(a);
	}
	if (wr->life) {
		if (wr->life->pending == 0)
			free(wr->life);
		else
			wr->life->wr = NULL;
	}
	explicit_bzero(wr->acct, wr->n * sizeof *wr->acct);	/* urls hold the path token */
	free(wr->acct);
	free(wr);
}

void gw_webhook_reg_retarget(struct gw_webhook_reg *wr)
{
	const struct gw_config *cfg;

	if (!wr)
		return;
	/* The public url and prefix are the boot configuration's (they change at a restart). */
	cfg = wr->env->boot_cfg;
	for (size_t i = 0; i < wr->n; i++) {
		struct webhook_reg_acct *a = &wr->acct[i];

		if (a->step == WR_SKIPPED || !a->timer)
			continue;
		if (a->call)
			gw_up_cancel(a->call);
		a->call = NULL;
		evtimer_del(a->timer);
		if (webhook_reg_urls(a, cfg, gw_webhook_in_service_token(wr->env, &wr->token_gen)) != 0) {
			a->step = WR_SKIPPED;
			wr->cnt.skipped++;
			gw_log(GW_LOG_ERROR, "webhook_reg", GW_LS("account", webhook_reg_name(a)),
			       GW_LS("msg", "webhook URL too long with the new token; not registered"), GW_LEND);
			continue;
		}
		a->step = WR_LIST;
		a->attempt = 0;
		a->lock_seq++;		/* an answer to a lock request in flight is ignored */
		a->lock_asked = 0;
		gw_log(GW_LOG_INFO, "webhook_reg", GW_LS("account", webhook_reg_name(a)),
		       GW_LS("msg", "path token changed: moving the webhook endpoint"),
		       GW_LS("url", a->log_url), GW_LEND);
		webhook_reg_send(a);
	}
}

const struct gw_webhook_reg_counters *gw_webhook_reg_counters(const struct gw_webhook_reg *wr)
{
	return wr ? &wr->cnt : NULL;
}

size_t gw_webhook_reg_done(const struct gw_webhook_reg *wr)
{
	size_t n = 0;

	for (size_t i = 0; wr && i < wr->n; i++)
		n += wr->acct[i].step == WR_DONE;
	return n;
}

size_t gw_webhook_reg_accounts(const struct gw_webhook_reg *wr)
{
	return wr ? wr->n : 0;
}

/* ---- the service ---- */

/* After a reload the webhook_in service (earlier in the list, so earlier on the event) holds the
 * new path token; a token of another generation moves the endpoints. */
static void webhook_reg_on_reload(void *arg, const void *data)
{
	struct gw_webhook_reg *wr = arg;
	uint64_t gen = 0;

	(void)data;
	gw_webhook_in_service_token(wr->env, &gen);
	if (gen != wr->token_gen)
		gw_webhook_reg_retarget(wr);
}

/* Nothing to do without webhooks.public_url: no state, and the other hooks see NULL. */
static int webhook_reg_init(struct gw_env *env, void **state, char *err, size_t errlen)
{
	const struct gw_config *cfg = env->boot_cfg;
	struct gw_webhook_reg *wr;

	if (!cfg || !cfg->webhooks.public_url || !env->up || env->naccounts == 0)
		return 0;
	wr = calloc(1, sizeof *wr);
	if (!wr || !(wr->acct = calloc(env->naccounts, sizeof *wr->acct))) {
		free(wr);
		snprintf(err, errlen, "out of memory for the webhook registration");
		return -1;
	}
	wr->env = env;
	wr->n = env->naccounts;
	if (env->redis && !(wr->life = calloc(1, sizeof *wr->life))) {
		free(wr->acct);
		free(wr);
		snprintf(err, errlen, "out of memory for the webhook registration");
		return -1;
	}
	if (wr->life)
		wr->life->wr = wr;
	wr->rng = (uint64_t)gw_clock_now_us() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)wr;
	if (!wr->rng)
		wr->rng = 1;
	if (gw_notify_sub(&env->reload, webhook_reg_on_reload, wr) != 0) {
		gw_webhook_reg_free(wr);
		snprintf(err, errlen, "too many reload subscribers");
		return -1;
	}
	*state = wr;
	return 0;
}

static void webhook_reg_start_hook(void *state)
{
	if (state)
		webhook_reg_start(state);
}

static void webhook_reg_svc_free(void *state)
{
	struct gw_webhook_reg *wr = state;

	if (wr)
		gw_notify_unsub(&wr->env->reload, webhook_reg_on_reload, wr);
	gw_webhook_reg_free(wr);
}

static void webhook_reg_metrics(void *state, struct gw_metrics_out *o)
{
	const struct gw_webhook_reg *wr = state;

	char labels[48];
	static const struct {
		const char *what;
		size_t off;
	} rows[] = {
		{ "taken", offsetof(struct gw_webhook_reg_counters, lock_taken) },
		{ "waited", offsetof(struct gw_webhook_reg_counters, lock_waited) },
		{ "unavailable", offsetof(struct gw_webhook_reg_counters, lock_unavailable) },
	};

	if (!wr)
		return;
	gw_webhook_reg_render(&wr->cnt, gw_webhook_reg_done(wr), o);
	if (!wr->life)
		return;
	gw_metrics_family(o, "cluster_webhook_reg_lock_total", "counter",
			  "The webhook registration's Redis lock: taken, found held (asked again "
			  "later), unavailable (Redis down: registered without it).");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint64_t v;

		memcpy(&v, (const char *)&wr->cnt + rows[i].off, sizeof v);
		snprintf(labels, sizeof labels, "what=\"%s\"", rows[i].what);
		gw_metrics_value(o, "cluster_webhook_reg_lock_total", labels, v);
	}
}

const struct gw_svc gw_svc_webhook_reg = {
	.name = "webhook_reg",
	.init = webhook_reg_init,
	.start = webhook_reg_start_hook,
	.free = webhook_reg_svc_free,
	.metrics = webhook_reg_metrics,
};
