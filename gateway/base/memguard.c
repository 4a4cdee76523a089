/*
 * memguard: RSS sampled on the loop; shed or trim. See memguard.h.
 */
#include "gateway/base/memguard.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "gateway/base/log.h"
#include "gateway/base/metrics.h"

/* A sanitizer's shadow memory and quarantine make RSS say nothing about what is in use (ASan keeps
 * 256 MiB of freed blocks by default): the guard samples and reports, and never acts. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEMGUARD_SANITIZED 1
#else
#define MEMGUARD_SANITIZED 0
#endif

struct gw_memguard {
	struct event *ev_tick;
	uint64_t ceiling, quota;
	uint64_t last_rss;
	enum gw_memguard_shed (*shed)(void *);
	void *arg;
	size_t (*relieve)(void *);
	void *relieve_arg;
	struct gw_memguard_state st;
	uint64_t sheds_all;	/* sheds that closed every connection */
};

enum gw_memguard_action gw_memguard_decide(struct gw_memguard_state *s, uint64_t rss, uint64_t ceiling,
					   int64_t now_ms)
{
	/* A quarter of headroom: RSS still grows for a few hundred ms after a shed (what gRPC core
	 * had read already becomes calls) at up to ~200 MB/s under rapid reset on 2 cores. */
	uint64_t mark = ceiling - ceiling / 4;

	if (!ceiling)
		return GW_MEMGUARD_NONE;
	if (rss < mark)
		s->calm = 1;
	/* A relief closed the connections feeding the growth just now: give what they had queued
	 * time to drain before failing everyone's calls. */
	if (rss >= mark && now_ms >= s->next_shed_ms &&
	    !(s->relieved_ms && now_ms - s->relieved_ms < GW_MEMGUARD_SHED_MIN_MS)) {
		/* Shedding helped last time (RSS got back under the mark since): the short wait again.
		 * Otherwise it is not connections that hold the memory, or a flood gRPC core cannot
		 * drain fast enough (rapid reset): shedding more often would only hurt callers. */
		if (s->calm || !s->shed_wait_ms)
			s->shed_wait_ms = GW_MEMGUARD_SHED_MIN_MS;
		else if ((s->shed_wait_ms *= 2) > GW_MEMGUARD_SHED_MAX_MS)
			s->shed_wait_ms = GW_MEMGUARD_SHED_MAX_MS;
		s->next_shed_ms = now_ms + s->shed_wait_ms;
		s->calm = 0;
		s->sheds++;
		return GW_MEMGUARD_SHED;
	}
	if (rss >= ceiling / 2 && (!s->trimmed || now_ms - s->last_trim_ms >= GW_MEMGUARD_TRIM_MS)) {
		s->trimmed = 1;
		s->last_trim_ms = now_ms;
		s->trims++;
		return GW_MEMGUARD_TRIM;
	}
	return GW_MEMGUARD_NONE;
}

uint64_t gw_memguard_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	char line[128], *p, *end;
	unsigned long long resident = 0;
	long page = sysconf(_SC_PAGESIZE);

	if (!f)
		return 0;
	/* "size resident shared text lib data dt", in pages */
	if (fgets(line, sizeof line, f)) {
		errno = 0;
		(void)strtoull(line, &p, 10);
		resident = strtoull(p, &end, 10);
		if (errno || end == p)
			resident = 0;
	}
	fclose(f);
	return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

static int64_t memguard_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void memguard_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw_memguard *g = arg;
	uint64_t rss = gw_memguard_rss();
	int64_t now = memguard_now_ms();
	enum gw_memguard_shed done;
	size_t n;

	(void)fd;
	(void)what;
	g->last_rss = rss;
	if (g->relieve && !MEMGUARD_SANITIZED && rss >= g->ceiling / 2) {
		n = g->relieve(g->relieve_arg);
		if (n)
			g->st.relieved_ms = now ? now : 1;
	}
	switch (gw_memguard_decide(&g->st, rss, MEMGUARD_SANITIZED ? 0 : g->ceiling, now)) {
	case GW_MEMGUARD_SHED:
		done = g->shed(g->arg);
		if (done == GW_MEMGUARD_SHED_ALL)
			g->sheds_all++;
		gw_log(GW_LOG_ERROR, "memory",
		       GW_LS("msg", done == GW_MEMGUARD_SHED_HEAVY ? "resident memory near the ceiling: heavy senders' gRPC connections closed" :
				    done == GW_MEMGUARD_SHED_ALL ? "resident memory near the ceiling: every gRPC connection closed" :
				    "resident memory near the ceiling: abusive connections closed lately, their queued calls draining"),
		       GW_LS("scope", done == GW_MEMGUARD_SHED_HEAVY ? "heavy" :
				      done == GW_MEMGUARD_SHED_ALL ? "all" : "none"),
		       GW_LN("rss_bytes", (long long)rss), GW_LN("ceiling_bytes", (long long)g->ceiling),
		       GW_LN("sheds", (long long)g->st.sheds),
		       GW_LN("next_in_ms", (long long)g->st.shed_wait_ms), GW_LEND);
		break;
	case GW_MEMGUARD_TRIM:
		malloc_trim(0);
		break;
	case GW_MEMGUARD_NONE:
		break;
	}
}

struct gw_memguard *gw_memguard_new(struct event_base *base, uint64_t ceiling_bytes,
				    uint64_t quota_bytes, enum gw_memguard_shed (*shed)(void *arg),
				    void *arg)
{
	struct gw_memguard *g;
	struct timeval tv = { 0, GW_MEMGUARD_TICK_MS * 1000 };

	if (!ceiling_bytes || !shed)
		return NULL;
	g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->ceiling = ceiling_bytes;
	g->quota = quota_bytes;
	g->shed = shed;
	g->arg = arg;
	g->ev_tick = event_new(base, -1, EV_PERSIST, memguard_on_tick, g);
	if (!g->ev_tick || event_add(g->ev_tick, &tv) != 0) {
		gw_memguard_free(g);
		return NULL;
	}
	if (MEMGUARD_SANITIZED)
		gw_log(GW_LOG_WARN, "memory",
		       GW_LS("msg", "sanitizer build: RSS is meaningless, the memory guard never sheds"),
		       GW_LEND);
	return g;
}

void gw_memguard_render_metrics(void *arg, struct gw_metrics_out *o)
{
	const struct gw_memguard *g = arg;

	gw_metrics_one(o, "memory_rss_bytes", "gauge", "Resident memory of the process.",
		       (uint64_t)gw_memguard_rss());
	if (!g)
		return;
	gw_metrics_one(o, "memory_ceiling_bytes", "gauge",
		       "The RSS ceiling (process.memory_mib); gRPC connections are shed at 3/4 of it.",
		       (uint64_t)g->ceiling);
	gw_metrics_one(o, "grpc_memory_quota_bytes", "gauge",
		       "gRPC core's resource quota (grpc.memory_quota_mib).", (uint64_t)g->quota);
	gw_metrics_one(o, "memory_sheds_total", "counter",
		       "Times gRPC connections were shed because RSS neared the ceiling.",
		       g->st.sheds);
	gw_metrics_one(o, "memory_sheds_all_total", "counter",
		       "Sheds that closed every gRPC connection (no heavy sender found).",
		       g->sheds_all);
	gw_metrics_one(o, "memory_trims_total", "counter",
		       "Times freed memory was returned to the system (malloc_trim) above half the "
		       "ceiling.", g->st.trims);
}

void gw_memguard_set_relief(struct gw_memguard *g, size_t (*relieve)(void *arg), void *arg)
{
	if (!g)
		return;
	g->relieve = relieve;
	g->relieve_arg = arg;
}

void gw_memguard_free(struct gw_memguard *g)
{
	if (!g)
		return;
	if (g->ev_tick)
		event_free(g->ev_tick);
	free(g);
}
