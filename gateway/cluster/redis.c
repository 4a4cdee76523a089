/*
 * redis: the Redis client on the loop. See redis.h.
 *
 * Each of the two connections goes DOWN -> CONNECTING (TCP connect, then AUTH and SELECT/PING
 * pipelined; nothing else is sent) -> READY and back to DOWN on any failure, from where its
 * timer (the backoff) reopens it; the same timer is the connect deadline while CONNECTING.
 *
 * hiredis owns the commands it was given: it calls each one's callback exactly once, with the
 * reply or, when the connection goes away, with NULL (from inside redisAsyncFree(), or right
 * after the callback that called it). So a command's life ends in its callback, and dropping a
 * connection is "forget it (rc_detach), then redisAsyncFree() it": its callbacks, run then, see
 * a context that is no longer the current one and know the connection is over. Callbacks that
 * hiredis runs on its own (the server closed, connect refused) detach the first time they see
 * the current context, and never free it: hiredis is already doing that.
 */
#include "gateway/cluster/redis.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/evp.h>

#include "gateway/base/clock.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics.h"

enum rc_state { RC_DOWN, RC_CONNECTING, RC_READY };

/* One hiredis connection: the command one or the pub/sub one. */
struct rconn {
	struct gw_redis *r;
	const char *name;		/* "commands" | "pubsub", for logs */
	int is_sub;
	redisAsyncContext *ac;		/* the current context; NULL while DOWN */
	enum rc_state st;
	struct event *timer;		/* connect deadline (CONNECTING), backoff (DOWN) */
	unsigned fails;			/* consecutive failed attempts: the backoff */
	int started;
	int setup_n, setup_done;	/* AUTH / SELECT / PING replies awaited, received */
	const char *setup_names[2];
	char why[GW_REDIS_ERR_MAX];	/* why the last connection ended */
};

/* A command, from submission to done(). Its arguments follow it in the same allocation. */
struct rcmd {
	struct gw_redis *r;
	struct rcmd *prev, *next;	/* the FIFO while waiting for the first connection */
	int queued;
	int timed_out;			/* its deadline dropped the connection */
	const struct gw_redis_script *script;
	int fell_back;			/* NOSCRIPT seen: sent again as EVAL */
	gw_redis_done_fn done;
	void *arg;
	struct event *timer;		/* the deadline */
	int argc;
	const char **argv;
	size_t argvlen[];
};

struct rsub {
	struct gw_redis *r;
	struct rsub *next;
	gw_redis_msg_fn fn;
	void *arg;
	size_t len;			/* of channel, prefix included */
	char channel[GW_REDIS_CHANNEL_MAX + 1];
};

struct gw_redis {
	struct event_base *base;
	char ip[16];
	unsigned port, db;
	char *password;			/* NULL: no AUTH; wiped at free */
	char prefix[GW_REDIS_PREFIX_MAX + 1];
	size_t prefix_len;
	long connect_timeout_ms, command_timeout_ms, backoff_max_ms;
	unsigned max_pending;
	int first;			/* the first connection attempt is still on: commands wait */
	int freeing;
	int depth;			/* user callbacks running (gw_redis_free() is refused there) */
	char where[48];
	char last_error[GW_REDIS_ERR_MAX];
	char dbtext[16];
	struct rconn cmd, sub;
	struct rcmd *qhead, *qtail;	/* waiting for the first connection */
	struct rsub *subs;
	unsigned nsubs;
	struct gw_redis_stats st;
	struct gw_redis_part_state parts[GW_REDIS_NPARTS];
};

static void rc_start(struct rconn *rc);
static void redis_parts_all(struct gw_redis *r, int local);

/* Server texts for one log line or error: no control characters, bounded by cap. */
static void redis_one_line(char *dst, size_t cap, const char *src, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; src && i < len && src[i] && o + 1 < cap; i++)
		dst[o++] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? ' ' : src[i];
	dst[o] = '\0';
}

static void redis_log(const struct rconn *rc, enum gw_log_level lvl, const char *msg)
{
	gw_log(lvl, "redis", GW_LS("server", rc->r->where), GW_LS("conn", rc->name),
	       GW_LS("msg", msg), GW_LEND);
}

/* ---- commands ---- */

static void cmd_free(struct rcmd *c)
{
	if (c->timer)
		event_free(c->timer);
	free(c);
}

static void cmd_unqueue(struct rcmd *c)
{
	struct gw_redis *r = c->r;

	if (!c->queued)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		r->qhead = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		r->qtail = c->prev;
	c->prev = c->next = NULL;
	c->queued = 0;
}

/* Ends c: done() with reply and/or err, then frees it. */
static void cmd_finish(struct rcmd *c, const redisReply *reply, const char *err)
{
	struct gw_redis *r = c->r;

	r->st.pending--;
	if (err)
		r->st.failed++;
	r->depth++;
	c->done(c->arg, reply, err);
	r->depth--;
	cmd_free(c);
}

static void cmd_on_reply(redisAsyncContext *ac, void *reply, void *priv);

static int cmd_send(struct rcmd *c)
{
	return redisAsyncCommandArgv(c->r->cmd.ac, cmd_on_reply, c, c->argc, c->argv, c->argvlen) ==
			       REDIS_OK
		       ? 0
		       : -1;
}

/* ---- connections ---- */

static void rc_arm(struct rconn *rc, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(rc->timer, &tv);
}

/*
 * The current connection of rc is over (why): forgets its context (the caller frees it, or
 * hiredis is freeing it), counts, schedules the reconnect. The first failure of the command
 * connection also fails the commands that waited for it.
 */
static void rc_detach(struct rconn *rc, const char *why)
{
	struct gw_redis *r = rc->r;
	int was_ready = rc->st == RC_READY;
	long backoff = GW_REDIS_BACKOFF_MIN_MS;
	char msg[GW_REDIS_ERR_MAX + 96];

	rc->ac = NULL;
	evtimer_del(rc->timer);
	snprintf(rc->why, sizeof rc->why, "%s", why);
	if (rc->is_sub) {
		if (was_ready)
			r->st.sub_drops++;
		else
			r->st.sub_connect_failures++;
		r->st.sub_connected = 0;
	} else {
		if (was_ready)
			r->st.drops++;
		else
			r->st.connect_failures++;
		r->st.connected = 0;
		redis_parts_all(r, 1);
		snprintf(r->last_error, sizeof r->last_error, "%s", why);
	}
	/* Loud when a connection is lost or the first attempt in a row fails; quiet while the
	 * backoff retries an outage. */
	snprintf(msg, sizeof msg, "%s: %s", was_ready ? "connection lost" : "cannot connect", why);
	redis_log(rc, (was_ready || rc->fails == 0) ? GW_LOG_WARN : GW_LOG_DEBUG, msg);
	rc->st = RC_DOWN;
	if (r->freeing)
		return;
	for (unsigned i = 0; i < rc->fails && backoff < r->backoff_max_ms; i++)
		backoff *= 2;
	if (backoff > r->backoff_max_ms)
		backoff = r->backoff_max_ms;
	rc->fails++;
	rc_arm(rc, backoff);
	if (!rc->is_sub && r->first) {
		r->first = 0;
		snprintf(msg, sizeof msg, "Redis at %s unreachable: %s", r->where, why);
		while (r->qhead) {
			struct rcmd *c = r->qhead;

			cmd_unqueue(c);
			cmd_finish(c, NULL, msg);
		}
	}
}

/* Closes rc's current connection (our decision): its pending callbacks run with NULL, now or,
 * inside one of its callbacks, right after it. */
static void rc_drop(struct rconn *rc, const char *why)
{
	redisAsyncContext *ac = rc->ac;

	if (!ac)
		return;
	rc_detach(rc, why);
	redisAsyncFree(ac);
}

static void sub_send(struct rsub *s);

static void rc_ready(struct rconn *rc)
{
	struct gw_redis *r = rc->r;

	rc->st = RC_READY;
	rc->fails = 0;
	evtimer_del(rc->timer);
	redis_log(rc, GW_LOG_INFO, "connected");
	if (rc->is_sub) {
		r->st.sub_connects++;
		r->st.sub_connected = 1;
		for (struct rsub *s = r->subs; s && rc->ac; s = s->next)
			sub_send(s);
		return;
	}
	r->st.connects++;
	r->st.connected = 1;
	redis_parts_all(r, 0);
	r->last_error[0] = '\0';
	r->first = 0;
	while (r->qhead && rc->st == RC_READY) {
		struct rcmd *c = r->qhead;
		char msg[GW_REDIS_ERR_MAX];

		cmd_unqueue(c);
		if (cmd_send(c) != 0) {
			snprintf(msg, sizeof msg, "Redis at %s: cannot send the command", r->where);
			cmd_finish(c, NULL, msg);
		}
	}
}

/* The answers to AUTH, SELECT or PING while connecting. */
static void rc_on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rconn *rc = priv;
	redisReply *rep = reply;
	char text[GW_REDIS_ERR_MAX / 2], why[GW_REDIS_ERR_MAX];

	if (ac != rc->ac)
		return;		/* a connection already left */
	if (!rep) {
		rc_detach(rc, ac->c.errstr[0] ? ac->c.errstr : "connection lost while connecting");
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		/* The server's text (WRONGPASS..., ERR DB index...): never the password itself. */
		redis_one_line(text, sizeof text, rep->str, rep->len);
		snprintf(why, sizeof why, "%s failed: %s", rc->setup_names[rc->setup_done], text);
		rc_drop(rc, why);
		return;
	}
	if (++rc->setup_done < rc->setup_n)
		return;
	rc_ready(rc);
}

static void rc_on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn *rc = ac->data;
	char why[GW_REDIS_ERR_MAX];

	if (status == REDIS_OK || ac != rc->ac)
		return;
	/* hiredis frees the context after this returns. */
	snprintf(why, sizeof why, "%s", ac->c.errstr[0] ? ac->c.errstr : "connect failed");
	rc_detach(rc, why);
}

static void rc_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *rc = ac->data;

	(void)status;
	if (ac != rc->ac)
		return;
	rc_detach(rc, ac->c.errstr[0] ? ac->c.errstr : "the server closed the connection");
}

static void rc_start(struct rconn *rc)
{
	struct gw_redis *r = rc->r;
	redisAsyncContext *ac;
	const char *argv[2];
	size_t argvlen[2];
	char why[GW_REDIS_ERR_MAX];

	rc->started = 1;
	rc->st = RC_CONNECTING;
	rc->setup_n = rc->setup_done = 0;
	/* An IPv4 literal: hiredis's getaddrinfo() returns at once, without a lookup. */
	ac = redisAsyncConnect(r->ip, (int)r->port);
	if (!ac || ac->err) {
		snprintf(why, sizeof why, "%s", ac ? ac->c.errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		rc_detach(rc, why);
		return;
	}
	ac->data = rc;
	/* An idle connection (pub/sub above all) otherwise never notices a peer that vanished
	 * without a word; keepalive probes end it within about half a minute. */
	(void)redisEnableKeepAlive(&ac->c);
	if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
		redisAsyncFree(ac);
		rc_detach(rc, "cannot watch the connection");
		return;
	}
	redisAsyncSetConnectCallback(ac, rc_on_connect);
	redisAsyncSetDisconnectCallback(ac, rc_on_disconnect);
	rc->ac = ac;
	rc_arm(rc, r->connect_timeout_ms);
	/* Sent once the TCP connection is up, in order; nothing else is sent before their answers. */
	if (r->password) {
		argv[0] = "AUTH";
		argv[1] = r->password;
		argvlen[0] = 4;
		argvlen[1] = strlen(r->password);
		rc->setup_names[rc->setup_n++] = "AUTH";
		if (redisAsyncCommandArgv(ac, rc_on_setup, rc, 2, argv, argvlen) != REDIS_OK)
			goto fail;
	}
	if (rc->is_sub) {
		argv[0] = "PING";
		argvlen[0] = 4;
		rc->setup_names[rc->setup_n++] = "PING";
		if (redisAsyncCommandArgv(ac, rc_on_setup, rc, 1, argv, argvlen) != REDIS_OK)
			goto fail;
	} else {
		argv[0] = "SELECT";
		argv[1] = r->dbtext;
		argvlen[0] = 6;
		argvlen[1] = strlen(r->dbtext);
		rc->setup_names[rc->setup_n++] = "SELECT";
		if (redisAsyncCommandArgv(ac, rc_on_setup, rc, 2, argv, argvlen) != REDIS_OK)
			goto fail;
	}
	return;
fail:
	rc_drop(rc, "out of memory");
}

static void rc_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;
	char why[GW_REDIS_ERR_MAX];

	(void)fd;
	(void)what;
	if (rc->st == RC_DOWN) {
		rc_start(rc);
		return;
	}
	if (rc->st == RC_CONNECTING) {
		snprintf(why, sizeof why, "connecting timed out after %ld ms",
			 rc->r->connect_timeout_ms);
		rc_drop(rc, why);
	}
}

/* ---- commands: submission and answers ---- */

static void cmd_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rcmd *c = priv;
	struct gw_redis *r = c->r;
	redisReply *rep = reply;
	char text[GW_REDIS_ERR_MAX / 2], msg[2 * GW_REDIS_ERR_MAX];

	if (r->freeing) {
		r->st.pending--;
		cmd_free(c);
		return;
	}
	if (!rep) {
		if (ac == r->cmd.ac)
			rc_detach(&r->cmd, ac->c.errstr[0] ? ac->c.errstr : "connection lost");
		if (c->timed_out)
			snprintf(msg, sizeof msg, "Redis at %s: command timed out after %ld ms",
				 r->where, r->command_timeout_ms);
		else
			snprintf(msg, sizeof msg, "Redis at %s: connection lost before the answer (%s)",
				 r->where, r->cmd.why);
		cmd_finish(c, NULL, msg);
		return;
	}
	if (rep->type != REDIS_REPLY_ERROR) {
		cmd_finish(c, rep, NULL);
		return;
	}
	if (c->script && !c->fell_back && rep->str && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		/* The server lost its script cache: EVAL runs the text and caches it again. */
		c->fell_back = 1;
		r->st.noscript++;
		c->argv[0] = "EVAL";
		c->argvlen[0] = 4;
		c->argv[1] = c->script->lua;
		c->argvlen[1] = strlen(c->script->lua);
		if (redisAsyncCommandArgv(ac, cmd_on_reply, c, c->argc, c->argv, c->argvlen) == REDIS_OK)
			return;
		snprintf(msg, sizeof msg, "Redis at %s: connection lost before the answer", r->where);
		cmd_finish(c, NULL, msg);
		return;
	}
	redis_one_line(text, sizeof text, rep->str, rep->len);
	snprintf(msg, sizeof msg, "Redis at %s: %s", r->where, text);
	cmd_finish(c, rep, msg);
}

static void cmd_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct rcmd *c = arg;
	struct gw_redis *r = c->r;
	char msg[2 * GW_REDIS_ERR_MAX];

	(void)fd;
	(void)what;
	r->st.timeouts++;
	if (c->queued || !r->cmd.ac) {
		cmd_unqueue(c);
		snprintf(msg, sizeof msg, "Redis at %s: no connection within %ld ms%s%s", r->where,
			 r->command_timeout_ms, r->last_error[0] ? ": " : "", r->last_error);
		cmd_finish(c, NULL, msg);
		return;
	}
	/* Sent: whatever the server is doing, the connection's state is unknown. Its callback
	 * runs from redisAsyncFree() with the timeout as the reason. */
	c->timed_out = 1;
	snprintf(msg, sizeof msg, "a command timed out after %ld ms", r->command_timeout_ms);
	rc_drop(&r->cmd, msg);
}

/* Checks, copies and sends (or queues) argv. */
static int cmd_submit(struct gw_redis *r, const struct gw_redis_script *script,
		      gw_redis_done_fn done, void *arg, int argc, const char **argv,
		      const size_t *argvlen)
{
	struct rcmd *c;
	size_t lens[GW_REDIS_MAX_ARGS], bytes = 0;
	struct timeval tv;
	char *p;

	if (!r || !done || argc < 1 || argc > GW_REDIS_MAX_ARGS || !argv)
		return GW_REDIS_EINVAL;
	for (int i = 0; i < argc; i++) {
		if (!argv[i])
			return GW_REDIS_EINVAL;
		lens[i] = argvlen ? argvlen[i] : strlen(argv[i]);
		if (lens[i] > GW_REDIS_MAX_CMD_BYTES || (bytes += lens[i] + 1) > GW_REDIS_MAX_CMD_BYTES)
			return GW_REDIS_EINVAL;
	}
	if (r->cmd.st != RC_READY && !r->first) {
		r->st.refused_down++;
		return GW_REDIS_EDOWN;
	}
	if (r->st.pending >= r->max_pending) {
		r->st.refused_full++;
		return GW_REDIS_EFULL;
	}
	c = calloc(1, sizeof *c + (size_t)argc * (sizeof c->argvlen[0] + sizeof c->argv[0]) + bytes);
	if (!c)
		return GW_REDIS_ENOMEM;
	c->r = r;
	c->script = script;
	c->done = done;
	c->arg = arg;
	c->argc = argc;
	c->argv = (const char **)(c->argvlen + argc);
	p = (char *)(c->argv + argc);
	for (int i = 0; i < argc; i++) {
		memcpy(p, argv[i], lens[i]);
		p[lens[i]] = '\0';
		c->argv[i] = p;
		c->argvlen[i] = lens[i];
		p += lens[i] + 1;
	}
	c->timer = evtimer_new(r->base, cmd_on_deadline, c);
	if (!c->timer) {
		cmd_free(c);
		return GW_REDIS_ENOMEM;
	}
	if (r->cmd.st == RC_READY) {
		if (cmd_send(c) != 0) {
			cmd_free(c);
			r->st.refused_down++;
			return GW_REDIS_EDOWN;
		}
	} else {
		c->prev = r->qtail;
		if (r->qtail)
			r->qtail->next = c;
		else
			r->qhead = c;
		r->qtail = c;
		c->queued = 1;
	}
	tv.tv_sec = r->command_timeout_ms / 1000;
	tv.tv_usec = (r->command_timeout_ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
	r->st.commands++;
	r->st.pending++;
	return GW_REDIS_OK;
}

int gw_redis_command(struct gw_redis *r, gw_redis_done_fn done, void *arg, int argc,
		     const char **argv, const size_t *argvlen)
{
	return cmd_submit(r, NULL, done, arg, argc, argv, argvlen);
}

void gw_redis_script_init(struct gw_redis_script *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";

	memset(s->sha, 0, sizeof s->sha);
	if (!s->lua || !EVP_Digest(s->lua, strlen(s->lua), md, &n, EVP_sha1(), NULL) || n != 20)
		return;
	for (unsigned i = 0; i < n; i++) {
		s->sha[2 * i] = hex[md[i] >> 4];
		s->sha[2 * i + 1] = hex[md[i] & 15];
	}
}

int gw_redis_eval(struct gw_redis *r, const struct gw_redis_script *script, int nkeys, int nargs,
		  const char **argv, const size_t *argvlen, gw_redis_done_fn done, void *arg)
{
	const char *av[GW_REDIS_MAX_ARGS];
	size_t lens[GW_REDIS_MAX_ARGS];
	char nk[16];
	int n;

	if (!script || !script->lua || strlen(script->sha) != 40 || nkeys < 0 || nargs < 0 ||
	    nkeys > GW_REDIS_MAX_ARGS - 3 || nargs > GW_REDIS_MAX_ARGS - 3 - nkeys ||
	    (nkeys + nargs > 0 && !argv))
		return GW_REDIS_EINVAL;
	n = 3 + nkeys + nargs;
	snprintf(nk, sizeof nk, "%d", nkeys);
	av[0] = "EVALSHA";
	av[1] = script->sha;
	av[2] = nk;
	lens[0] = 7;
	lens[1] = 40;
	lens[2] = strlen(nk);
	for (int i = 3; i < n; i++) {
		if (!argv[i - 3])
			return GW_REDIS_EINVAL;
		av[i] = argv[i - 3];
		lens[i] = argvlen ? argvlen[i - 3] : strlen(argv[i - 3]);
	}
	return cmd_submit(r, script, done, arg, n, av, lens);
}

int gw_redis_publish(struct gw_redis *r, const char *channel, const char *msg, size_t len,
		     gw_redis_done_fn done, void *arg)
{
	char name[GW_REDIS_CHANNEL_MAX + 1];
	const char *argv[3];
	size_t argvlen[3];
	int n;

	if (!r || !channel || (!msg && len))
		return GW_REDIS_EINVAL;
	n = snprintf(name, sizeof name, "%s%s", r->prefix, channel);
	if (n < 0 || (size_t)n >= sizeof name)
		return GW_REDIS_EINVAL;
	argv[0] = "PUBLISH";
	argv[1] = name;
	argv[2] = msg ? msg : "";
	argvlen[0] = 7;
	argvlen[1] = (size_t)n;
	argvlen[2] = len;
	return cmd_submit(r, NULL, done, arg, 3, argv, argvlen);
}

/* ---- pub/sub ---- */

static void sub_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rsub *s = priv;
	struct gw_redis *r = s->r;
	redisReply *rep = reply, *kind, *payload;

	if (r->freeing)
		return;
	if (!rep) {
		if (ac == r->sub.ac)
			rc_detach(&r->sub, ac->c.errstr[0] ? ac->c.errstr : "connection lost");
		return;
	}
	if (ac != r->sub.ac || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
		return;
	kind = rep->element[0];
	payload = rep->element[2];
	if (kind->type != REDIS_REPLY_STRING)
		return;
	if (!s->fn)
		return;		/* muted by gw_redis_unsubscribe() */
	r->depth++;
	if (strcasecmp(kind->str, "subscribe") == 0) {
		s->fn(s->arg, s->channel + r->prefix_len, NULL, 0);
	} else if (strcasecmp(kind->str, "message") == 0 && payload->type == REDIS_REPLY_STRING) {
		r->st.messages++;
		s->fn(s->arg, s->channel + r->prefix_len, payload->str, payload->len);
	}
	r->depth--;
}

static void sub_send(struct rsub *s)
{
	struct rconn *rc = &s->r->sub;
	const char *argv[2] = { "SUBSCRIBE", s->channel };
	size_t argvlen[2] = { 9, s->len };

	if (redisAsyncCommandArgv(rc->ac, sub_on_reply, s, 2, argv, argvlen) != REDIS_OK)
		rc_drop(rc, "cannot send SUBSCRIBE");
}

int gw_redis_subscribe(struct gw_redis *r, const char *channel, gw_redis_msg_fn on_message,
		       void *arg)
{
	struct rsub *s, **tail;
	int n;

	if (!r || !channel || !on_message || r->nsubs >= GW_REDIS_MAX_SUBS)
		return GW_REDIS_EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return GW_REDIS_ENOMEM;
	n = snprintf(s->channel, sizeof s->channel, "%s%s", r->prefix, channel);
	if (n < 0 || (size_t)n >= sizeof s->channel || (size_t)n == r->prefix_len) {
		free(s);
		return GW_REDIS_EINVAL;
	}
	for (tail = &r->subs; *tail; tail = &(*tail)->next) {
		if (strcmp((*tail)->channel, s->channel) == 0) {
			free(s);
			return GW_REDIS_EEXIST;
		}
	}
	s->r = r;
	s->fn = on_message;
	s->arg = arg;
	s->len = (size_t)n;
	*tail = s;
	r->nsubs++;
	if (!r->sub.started)
		rc_arm(&r->sub, 0);	/* opened from the loop */
	else if (r->sub.st == RC_READY)
		sub_send(s);
	/* else: subscribed once the connection is ready */
	r->sub.started = 1;
	return GW_REDIS_OK;
}

int gw_redis_unsubscribe(struct gw_redis *r, const char *channel)
{
	char name[GW_REDIS_CHANNEL_MAX];
	int n;

	if (!r || !channel)
		return GW_REDIS_EINVAL;
	n = snprintf(name, sizeof name, "%s%s", r->prefix, channel);
	if (n < 0 || (size_t)n >= sizeof name)
		return GW_REDIS_EINVAL;
	for (struct rsub *s = r->subs; s; s = s->next) {
		if (s->fn && strcmp(s->channel, name) == 0) {
			/* The record stays (hiredis holds it as the reply's privdata): only muted. */
			s->fn = NULL;
			s->arg = NULL;
			return GW_REDIS_OK;
		}
	}
	return GW_REDIS_EINVAL;
}

/* ---- the URL ---- */

/* Decimal digits [p, end) into *out, at most max. 0, or -1. */
static int redis_number(const char *p, const char *end, unsigned long max, unsigned *out)
{
	unsigned long v = 0;

	if (p == end)
		return -1;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int gw_redis_parse_url(const char *url, struct gw_redis_url *out, char *err, size_t errlen)
{
	const char *p, *at, *host, *hend, *end;
	char hostbuf[80];
	struct in_addr a;
	size_t hlen;

	memset(out, 0, sizeof *out);
	out->port = 6379;
	if (!url || !*url) {
		snprintf(err, errlen, "redis URL: empty");
		return -1;
	}
	if (strlen(url) > GW_REDIS_URL_MAX) {
		snprintf(err, errlen, "redis URL: longer than %d characters", GW_REDIS_URL_MAX);
		return -1;
	}
	if (strncasecmp(url, "rediss://", 9) == 0) {
		snprintf(err, errlen, "redis URL: rediss:// (TLS) is not supported by hiredis 0.14: "
			 "use redis:// to a TLS sidecar or through the mesh");
		return -1;
	}
	if (strncasecmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen, "redis URL: must start with redis://");
		return -1;
	}
	p = url + 8;
	/* Userinfo ends at the last '@' wherever it is: a password may hold '/', '?' or '#', and
	 * nothing before that '@' is ever echoed. */
	at = strrchr(p, '@');
	if (at) {
		out->has_password = at > p;
		p = at + 1;
	}
	host = p;
	end = p + strcspn(p, "/?#");
	if (*host == '[') {
		snprintf(err, errlen, "redis URL: IPv6 literals are not supported (hiredis 0.14 would "
			 "look them up as names, blocking the loop): give an IPv4 address");
		return -1;
	}
	hend = memchr(host, ':', (size_t)(end - host));
	if (!hend)
		hend = end;
	hlen = (size_t)(hend - host);
	if (hlen == 0) {
		snprintf(err, errlen, "redis URL: no host");
		return -1;
	}
	snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)(hlen < sizeof hostbuf ? hlen : sizeof hostbuf - 1),
		 host);
	if (hlen >= sizeof out->ip || inet_pton(AF_INET, hostbuf, &a) != 1) {
		snprintf(err, errlen, "redis URL: host \"%.64s\" is not an IPv4 address: names are not "
			 "resolved (no blocking lookups on the loop), give the server's IP", hostbuf);
		return -1;
	}
	memcpy(out->ip, host, hlen);
	out->ip[hlen] = '\0';
	if (hend < end &&
	    (redis_number(hend + 1, end, 65535, &out->port) != 0 || out->port == 0)) {
		snprintf(err, errlen, "redis URL: the port must be a number in 1..65535");
		return -1;
	}
	if (*end == '/') {
		p = end + 1;
		end = p + strlen(p);
		if (p < end && redis_number(p, end, GW_REDIS_DB_MAX, &out->db) != 0) {
			snprintf(err, errlen, "redis URL: the database must be a number in 0..%d, "
				 "and nothing may follow it", GW_REDIS_DB_MAX);
			return -1;
		}
	} else if (*end) {
		snprintf(err, errlen, "redis URL: queries and fragments are not supported");
		return -1;
	}
	return 0;
}

/* ---- the client ---- */

struct gw_redis *gw_redis_new(struct event_base *base, const struct gw_redis_opts *o, char *err,
			      size_t errlen)
{
	struct gw_redis *r = NULL, *ret = NULL;
	struct in_addr a;

	if (!base || !o || !o->ip || inet_pton(AF_INET, o->ip, &a) != 1) {
		snprintf(err, errlen, "invalid Redis options: the server must be an IPv4 address");
		goto out;
	}
	if (o->port < 1 || o->port > 65535 || o->db > GW_REDIS_DB_MAX ||
	    o->connect_timeout_ms <= 0 || o->command_timeout_ms <= 0 || o->max_pending < 1 ||
	    o->max_pending > GW_REDIS_MAX_PENDING ||
	    (o->backoff_max_ms && o->backoff_max_ms < GW_REDIS_BACKOFF_MIN_MS) ||
	    (o->key_prefix && strlen(o->key_prefix) > GW_REDIS_PREFIX_MAX) ||
	    (o->password && strlen(o->password) > GW_REDIS_PASSWORD_MAX)) {
		snprintf(err, errlen, "invalid Redis options (port, db, timeouts, max_pending, "
			 "backoff, key prefix or password length)");
		goto out;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		goto oom;
	r->base = base;
	snprintf(r->ip, sizeof r->ip, "%s", o->ip);
	r->port = o->port;
	r->db = o->db;
	snprintf(r->dbtext, sizeof r->dbtext, "%u", o->db);
	if (o->password && *o->password && !(r->password = strdup(o->password)))
		goto oom;
	snprintf(r->prefix, sizeof r->prefix, "%s", o->key_prefix ? o->key_prefix : "");
	r->prefix_len = strlen(r->prefix);
	r->connect_timeout_ms = o->connect_timeout_ms;
	r->command_timeout_ms = o->command_timeout_ms;
	r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : GW_REDIS_BACKOFF_MAX_MS;
	r->max_pending = o->max_pending;
	r->first = 1;
	snprintf(r->where, sizeof r->where, "%s:%u/%u", r->ip, r->port, r->db);
	r->cmd.r = r->sub.r = r;
	r->cmd.name = "commands";
	r->sub.name = "pubsub";
	r->sub.is_sub = 1;
	r->cmd.timer = evtimer_new(base, rc_on_timer, &r->cmd);
	r->sub.timer = evtimer_new(base, rc_on_timer, &r->sub);
	if (!r->cmd.timer || !r->sub.timer)
		goto oom;
	r->cmd.started = 1;
	rc_arm(&r->cmd, 0);	/* DOWN + timer: connects from the loop */
	ret = r;
	r = NULL;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	gw_redis_free(r);
	return ret;
}

static void rc_close(struct rconn *rc)
{
	redisAsyncContext *ac = rc->ac;

	rc->ac = NULL;
	if (ac)
		redisAsyncFree(ac);	/* callbacks see r->freeing: commands freed without done() */
	if (rc->timer)
		event_free(rc->timer);
	rc->timer = NULL;
}

void gw_redis_free(struct gw_redis *r)
{
	if (!r)
		return;
	if (r->depth) {
		/* hiredis would free the context after the callback, into freed memory. */
		gw_log(GW_LOG_ERROR, "redis", GW_LS("msg", "gw_redis_free() inside a callback"),
		       GW_LEND);
		abort();
	}
	r->freeing = 1;
	rc_close(&r->cmd);
	rc_close(&r->sub);
	while (r->qhead) {
		struct rcmd *c = r->qhead;

		cmd_unqueue(c);
		cmd_free(c);
	}
	while (r->subs) {
		struct rsub *s = r->subs;

		r->subs = s->next;
		free(s);
	}
	if (r->password) {
		explicit_bzero(r->password, strlen(r->password));
		free(r->password);
	}
	free(r);
}

int gw_redis_key(const struct gw_redis *r, const char *name, char *buf, size_t cap)
{
	int n;

	if (!r || !name || !buf || cap == 0)
		return -1;
	n = snprintf(buf, cap, "%s%s", r->prefix, name);
	if (n < 0 || (size_t)n >= cap || n > GW_REDIS_KEY_MAX)
		return -1;
	return n;
}

void gw_redis_part_note(struct gw_redis *r, enum gw_redis_part p, int local)
{
	struct gw_redis_part_state *ps;

	if (!r || (unsigned)p >= GW_REDIS_NPARTS)
		return;
	ps = &r->parts[p];
	local = local ? 1 : 0;
	if (ps->used && ps->local == local)
		return;
	if (ps->used && local)
		ps->fallbacks++;
	ps->used = 1;
	ps->local = local;
	ps->since_ms = gw_clock_wall_ms();
}

void gw_redis_part_use(struct gw_redis *r, enum gw_redis_part p)
{
	if (r && (unsigned)p < GW_REDIS_NPARTS && !r->parts[p].used)
		gw_redis_part_note(r, p, !r->st.connected);
}

static void redis_parts_all(struct gw_redis *r, int local)
{
	for (unsigned p = 0; p < GW_REDIS_NPARTS; p++)
		if (r->parts[p].used)
			gw_redis_part_note(r, (enum gw_redis_part)p, local);
}

const struct gw_redis_part_state *gw_redis_part(const struct gw_redis *r, enum gw_redis_part p)
{
	return r && (unsigned)p < GW_REDIS_NPARTS ? &r->parts[p] : NULL;
}

const char *gw_redis_part_name(enum gw_redis_part p)
{
	static const char *const names[GW_REDIS_NPARTS] = { "limits", "concurrency", "session",
							    "status" };

	return (unsigned)p < GW_REDIS_NPARTS ? names[p] : "?";
}

int gw_redis_connected(const struct gw_redis *r)
{
	return r && r->cmd.st == RC_READY;
}

const struct gw_redis_stats *gw_redis_stats(const struct gw_redis *r)
{
	return &r->st;
}

const char *gw_redis_last_error(const struct gw_redis *r)
{
	return r->last_error;
}

const char *gw_redis_where(const struct gw_redis *r)
{
	return r->where;
}

void gw_redis_metrics(void *arg, struct gw_metrics_out *o)
{
	static const struct {
		const char *what;
		size_t off;
	} rows[] = {
		{ "commands", offsetof(struct gw_redis_stats, commands) },
		{ "failed", offsetof(struct gw_redis_stats, failed) },
		{ "timeouts", offsetof(struct gw_redis_stats, timeouts) },
		{ "refused_full", offsetof(struct gw_redis_stats, refused_full) },
		{ "refused_down", offsetof(struct gw_redis_stats, refused_down) },
		{ "noscript", offsetof(struct gw_redis_stats, noscript) },
		{ "connects", offsetof(struct gw_redis_stats, connects) },
		{ "connect_failures", offsetof(struct gw_redis_stats, connect_failures) },
		{ "drops", offsetof(struct gw_redis_stats, drops) },
		{ "pubsub_connects", offsetof(struct gw_redis_stats, sub_connects) },
		{ "pubsub_connect_failures", offsetof(struct gw_redis_stats, sub_connect_failures) },
		{ "pubsub_drops", offsetof(struct gw_redis_stats, sub_drops) },
		{ "messages", offsetof(struct gw_redis_stats, messages) },
	};
	const struct gw_redis *r = arg;
	char labels[64];
	uint64_t v;

	if (!r)
		return;
	gw_metrics_family(o, "redis_total", "counter",
			  "Redis client: commands, failures, refusals, connections, messages.");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		memcpy(&v, (const char *)&r->st + rows[i].off, sizeof v);
		snprintf(labels, sizeof labels, "what=\"%s\"", rows[i].what);
		gw_metrics_value(o, "redis_total", labels, v);
	}
	gw_metrics_family(o, "redis_connections", "gauge",
			  "Redis client: ready connections (commands, pubsub) and pending commands.");
	gw_metrics_value(o, "redis_connections", "what=\"commands\"", r->st.connected);
	gw_metrics_value(o, "redis_connections", "what=\"pubsub\"", r->st.sub_connected);
	gw_metrics_value(o, "redis_connections", "what=\"pending\"", r->st.pending);
}

const char *gw_redis_strerror(int rc)
{
	switch (rc) {
	case GW_REDIS_OK:
		return "ok";
	case GW_REDIS_EINVAL:
		return "invalid arguments";
	case GW_REDIS_ENOMEM:
		return "out of memory";
	case GW_REDIS_EFULL:
		return "too many Redis commands pending";
	case GW_REDIS_EDOWN:
		return "Redis not connected";
	case GW_REDIS_EEXIST:
		return "already subscribed";
	default:
		return "unknown error";
	}
}
