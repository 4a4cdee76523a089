/*
 * streamguard: a thread reading gRPC core's per-connection reset counts (channelz) and closing
 * the connections over the limit. See streamguard.h.
 */
#include "gateway/base/streamguard.h"

#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/base/clock.h"
#include "gateway/base/connguard.h"
#include "gateway/base/iobrake.h"
#include "gateway/base/log.h"
#include "gateway/base/lograte.h"
#include "gateway/base/metrics.h"

#define STREAMGUARD_RING (GW_STREAMGUARD_WINDOW_MS / GW_STREAMGUARD_TICK_MS)
#define STREAMGUARD_NEW_PER_TICK 64	/* new connections registered a tick at most */
#define STREAMGUARD_READS_PER_TICK (GW_STREAMGUARD_READS_PER_S * GW_STREAMGUARD_TICK_MS / 1000)

struct gw_streamguard {
	int port;
	struct gw_connguard *conns;		/* told of every close (its calls are dropped) */
	struct gw_iobrake *brake;		/* ticked every tick (NULL: none) */
	uint32_t limit;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;				/* under mu */
	/* The thread's own (no other thread reads them). */
	uint64_t started[STREAMGUARD_RING];	/* the servers' calls started, one a tick... */
	int64_t started_ms[STREAMGUARD_RING];	/* ...and when (0: no sample) */
	size_t started_next;
	int64_t resume_id;			/* where the next read of the connections starts */
	int64_t known_id;			/* the highest socket id listed so far */
	struct gw_lograte log;
	struct gw_streamguard_window table[GW_STREAMGUARD_TABLE];
	/* Counters: written by the thread, read by the loop's scrape. */
	uint64_t closed, scans, sockets_read, not_found;
};

int gw_streamguard_count(struct gw_streamguard_window *w, int64_t id, uint64_t resets,
			 uint32_t limit, int64_t now_ms)
{
	if (w->id != id) {
		memset(w, 0, sizeof *w);
		w->id = id;
		w->start_ms = now_ms;
		w->base = resets;
	}
	if (!limit || w->closed)
		return 0;
	if (now_ms - w->start_ms >= GW_STREAMGUARD_WINDOW_MS) {
		w->start_ms = now_ms;
		w->base = resets;
	}
	if (resets < w->base || resets - w->base < limit)
		return 0;
	w->closed = 1;
	return 1;
}

/* A channelz number: a decimal string (64-bit values are strings in its JSON) or an integer;
 * absent (channelz leaves zeros out) is 0. */
static uint64_t streamguard_num(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return json_integer_value(v) < 0 ? 0 : (uint64_t)json_integer_value(v);
	if (json_is_string(v))
		return strtoull(json_string_value(v), NULL, 10);
	return 0;
}

int gw_streamguard_parse_socket(const char *text, uint64_t *resets, char *peer, size_t len)
{
	json_t *root = json_loads(text, 0, NULL);
	json_t *sock = json_object_get(root, "socket");
	const char *name = json_string_value(json_object_get(json_object_get(sock, "ref"), "name"));
	const char *sp = name ? strrchr(name, ' ') : NULL;
	int rc = -1;

	if (!json_is_object(sock) || !name)
		goto out;
	/* "chttp2 ipv4:127.0.0.1:5" -> gRPC's peer string. */
	if ((size_t)snprintf(peer, len, "%s", sp ? sp + 1 : name) >= len)
		goto out;
	*resets = streamguard_num(json_object_get(sock, "data"), "streamsFailed");
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* The calls the process's gRPC server has started, and its channelz id (the first server's: the
 * gateway has one). */
static int streamguard_calls_started(uint64_t *total, int64_t *sid)
{
	char *text = grpc_channelz_get_servers(0);
	json_t *root = text ? json_loads(text, 0, NULL) : NULL;
	json_t *s = json_array_get(json_object_get(root, "server"), 0);
	int rc = -1;

	*sid = (int64_t)streamguard_num(json_object_get(s, "ref"), "serverId");
	if (*sid <= 0)
		goto out;
	*total = streamguard_num(json_object_get(s, "data"), "callsStarted");
	rc = 0;
out:
	json_decref(root);
	gpr_free(text);
	return rc;
}

static void streamguard_close(struct gw_streamguard *g, const char *peer, uint64_t resets)
{
	struct sockaddr_storage ss;
	uint64_t held = 0;

	if (gw_connguard_parse_peer(peer, &ss) != 0 || !gw_connguard_shutdown_peer(g->port, &ss)) {
		__atomic_add_fetch(&g->not_found, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&g->closed, 1, __ATOMIC_RELAXED);
	if (g->conns)
		gw_connguard_note_closed(g->conns, &ss);
	if (gw_lograte_allow(&g->log, gw_clock_now_us() / 1000, GW_STREAMGUARD_LOG_PER_S, &held))
		gw_log(GW_LOG_WARN, "grpc_conn", GW_LS("msg", "abusive gRPC connection closed"),
		       GW_LS("reason", "reset rate"), GW_LS("peer", peer),
		       GW_LN("value", (long long)resets), GW_LN("suppressed", (long long)held),
		       GW_LEND);
}

/* Reads up to STREAMGUARD_READS_PER_TICK connections of server sid from g->resume_id on.
 * 1 when it reached the last one. */
static int streamguard_read_sockets(struct gw_streamguard *g, int64_t sid, int64_t now_ms)
{
	char *text = grpc_channelz_get_server_sockets(sid, g->resume_id, STREAMGUARD_READS_PER_TICK);
	json_t *root = text ? json_loads(text, 0, NULL) : NULL;
	json_t *refs = json_object_get(root, "socketRef"), *r;
	int end = json_is_true(json_object_get(root, "end")) || !json_is_array(refs);
	size_t i;

	json_array_foreach(refs, i, r) {
		int64_t id = (int64_t)streamguard_num(r, "socketId");
		char *one, peer[GW_CONNGUARD_MAX_PEER];
		uint64_t resets;
		struct gw_streamguard_window *w;

		if (id <= 0)
			continue;
		g->resume_id = id + 1;
		one = grpc_channelz_get_socket(id);
		if (!one)
			continue;
		__atomic_add_fetch(&g->sockets_read, 1, __ATOMIC_RELAXED);
		if (gw_streamguard_parse_socket(one, &resets, peer, sizeof peer) == 0) {
			w = &g->table[(uint64_t)id % GW_STREAMGUARD_TABLE];
			if (gw_streamguard_count(w, id, resets, g->limit, now_ms))
				streamguard_close(g, peer, resets);
		}
		gpr_free(one);
	}
	json_decref(root);
	gpr_free(text);
	return end;
}

/* Registers the connections opened since the last tick (gRPC numbers its objects in order: the
 * ids above g->known_id), a window each from now with a count of 0, so every reset of theirs is
 * counted, however fast the first burst (a tick, at most STREAMGUARD_NEW_PER_TICK of them;
 * the rest the next). Cheap when none is new: an empty list. */
static void streamguard_list_new(struct gw_streamguard *g, int64_t sid, int64_t now_ms)
{
	char *text = grpc_channelz_get_server_sockets(sid, g->known_id + 1, STREAMGUARD_NEW_PER_TICK);
	json_t *root = text ? json_loads(text, 0, NULL) : NULL;
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(root, "socketRef"), i, r) {
		int64_t id = (int64_t)streamguard_num(r, "socketId");

		if (id <= g->known_id)
			continue;
		g->known_id = id;
		gw_streamguard_count(&g->table[(uint64_t)id % GW_STREAMGUARD_TABLE], id, 0, g->limit,
				     now_ms);
	}
	json_decref(root);
	gpr_free(text);
}

/* One tick; 1 when no call was made since the last (the next may wait longer). */
static int streamguard_tick(struct gw_streamguard *g)
{
	int64_t now = gw_clock_now_us() / 1000, sid;
	size_t oldest, prev;
	int idle;
	uint64_t total, busy = g->limit;

	if (busy < GW_STREAMGUARD_BUSY_PER_S)
		busy = GW_STREAMGUARD_BUSY_PER_S;
	if (streamguard_calls_started(&total, &sid) != 0)
		return 0;
	prev = (g->started_next + STREAMGUARD_RING - 1) % STREAMGUARD_RING;
	idle = g->started_ms[prev] && total == g->started[prev];
	if (g->started_ms[prev] && total >= g->started[prev])
		gw_iobrake_tick(g->brake, total - g->started[prev], now - g->started_ms[prev],
				GW_STREAMGUARD_TICK_MS);
	g->started[g->started_next] = total;
	g->started_ms[g->started_next] = now;
	g->started_next = (g->started_next + 1) % STREAMGUARD_RING;
	if (!g->limit)
		return idle;
	/* No call since the last tick: no connection reset anything, and one opened meanwhile is
	 * still at 0 when it is listed later. */
	if (!idle)
		streamguard_list_new(g, sid, now);
	/* No connection can have reset limit streams within a window unless the server started
	 * that many calls within it, and below GW_STREAMGUARD_BUSY_PER_S the loop keeps up: the
	 * common case reads nothing more. */
	oldest = g->started_next;
	if (g->started_ms[oldest] && g->resume_id == 0 && total - g->started[oldest] < busy)
		return idle;
	__atomic_add_fetch(&g->scans, 1, __ATOMIC_RELAXED);
	if (streamguard_read_sockets(g, sid, now))
		g->resume_id = 0;	/* else the next tick goes on from there */
	return idle;
}

static void *streamguard_main(void *arg)
{
	struct gw_streamguard *g = arg;
	struct timespec at;
	int idle;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		pthread_mutex_unlock(&g->mu);
		idle = streamguard_tick(g);
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_nsec += (idle ? GW_STREAMGUARD_IDLE_TICK_MS : GW_STREAMGUARD_TICK_MS) * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&g->mu);
		while (!g->stop && pthread_cond_timedwait(&g->cv, &g->mu, &at) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

struct gw_streamguard *gw_streamguard_start(int port, uint32_t max_resets_per_s,
					    struct gw_connguard *conns, struct gw_iobrake *brake,
					    int *failed)
{
	struct gw_streamguard *g = NULL;
	pthread_condattr_t ca;
	int have_ca = 0;

	*failed = 0;
	if (!max_resets_per_s && !brake)
		return NULL;
	g = calloc(1, sizeof *g);
	if (!g || pthread_condattr_init(&ca) != 0)
		goto fail;
	have_ca = 1;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&g->cv, &ca) != 0)
		goto fail;
	pthread_mutex_init(&g->mu, NULL);
	g->port = port;
	g->conns = conns;
	g->brake = brake;
	g->limit = max_resets_per_s;
	if (pthread_create(&g->thread, NULL, streamguard_main, g) != 0) {
		pthread_cond_destroy(&g->cv);
		pthread_mutex_destroy(&g->mu);
		goto fail;
	}
	pthread_condattr_destroy(&ca);
	return g;
fail:
	if (have_ca)
		pthread_condattr_destroy(&ca);
	free(g);
	*failed = 1;
	return NULL;
}

void gw_streamguard_render_metrics(void *arg, struct gw_metrics_out *o)
{
	struct gw_streamguard *g = arg;

	if (!g)
		return;
	gw_metrics_one(o, "grpc_streamguard_closed_total", "counter",
		       "gRPC connections shut down because their client reset grpc.max_resets_per_s "
		       "streams within a second, as gRPC core counted them.",
		       __atomic_load_n(&g->closed, __ATOMIC_RELAXED));
	gw_metrics_one(o, "grpc_streamguard_scans_total", "counter",
		       "Reads of the connections' reset counts (only while the server starts "
		       "max_resets_per_s calls a second or more).",
		       __atomic_load_n(&g->scans, __ATOMIC_RELAXED));
	gw_metrics_one(o, "grpc_streamguard_sockets_read_total", "counter",
		       "Connections whose reset count was read.",
		       __atomic_load_n(&g->sockets_read, __ATOMIC_RELAXED));
	gw_metrics_one(o, "grpc_streamguard_not_found_total", "counter",
		       "Connections over the reset limit whose socket was already gone.",
		       __atomic_load_n(&g->not_found, __ATOMIC_RELAXED));
}

void gw_streamguard_stop(struct gw_streamguard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}
