/* Unit tests for gateway/base/handoff.c: push/drain sequences as tables of step -> expected result and
 * counters, then N producer threads x M events through a small ring, delivered by a libevent loop.
 *
 * Criterion cannot run under TSan (its BoxFort arena cannot be mapped there: Snaipe/Criterion#274),
 * so the threaded exchange is plain C: built with A3D_HANDOFF_THREADS_MAIN this file is the program
 * test_handoff_threads (that exchange only, exit status 0/1, labelled `concurrency`: CI runs it
 * under TSan); without it, Criterion runs the tables and the same exchange. */
#ifndef A3D_HANDOFF_THREADS_MAIN
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/base/handoff.h"

/* ---- threads ---- */

#define PRODUCERS 8
#define EVENTS_PER_PRODUCER 20000
#define THREAD_CAP 16		/* far below the events in flight: producers must wait for room */
#define THREAD_TIMEOUT_S 60	/* the whole exchange; a lost or stuck event fails the test here */
#define TOTAL_EVENTS ((uint64_t)PRODUCERS * EVENTS_PER_PRODUCER)

struct exchange {
	struct event_base *base;
	struct gw_handoff *h;
	unsigned char *count;		/* per (producer, seq): times delivered */
	uint32_t next[PRODUCERS];	/* per producer: the seq expected next (FIFO per producer) */
	uint64_t delivered, out_of_order, duplicates, missing;
	int timed_out;
	double seconds;
	struct gw_handoff_stats st;
};

struct producer {
	struct exchange *x;
	uint32_t id;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (uint32_t seq = 0; seq < EVENTS_PER_PRODUCER; seq++) {
		struct gw_handoff_ev ev = {
			(void *)(((uintptr_t)p->id << 32) | seq), (int)(seq & 1), 0
		};

		gw_handoff_push(p->x->h, &ev);
	}
	return NULL;
}

static void consume(const struct gw_handoff_ev *ev, void *arg)
{
	struct exchange *x = arg;
	uintptr_t tag = (uintptr_t)ev->tag;
	uint32_t id = (uint32_t)(tag >> 32), seq = (uint32_t)tag;

	if (id >= PRODUCERS || seq >= EVENTS_PER_PRODUCER || ev->ok != (int)(seq & 1)) {
		x->out_of_order++;	/* a torn or invented event */
		return;
	}
	if (x->count[(size_t)id * EVENTS_PER_PRODUCER + seq]++)
		x->duplicates++;
	if (seq != x->next[id])
		x->out_of_order++;
	x->next[id] = seq + 1;
	if (++x->delivered == TOTAL_EVENTS)
		event_base_loopbreak(x->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *x = arg;

	(void)fd;
	(void)what;
	x->timed_out = 1;
	event_base_loopbreak(x->base);
}

/* Runs the exchange into *x; -1 only when it could not be set up (why says what). */
static int exchange_run(struct exchange *x, char *why, size_t len)
{
	struct producer prod[PRODUCERS];
	pthread_t th[PRODUCERS];
	struct timeval limit = { THREAD_TIMEOUT_S, 0 };
	struct event *timeout = NULL;
	struct timespec t0, t1;
	int rc = -1, started = 0;

	memset(x, 0, sizeof *x);
	/* The producers call event_active() from their threads: the base must be thread-aware. */
	if (evthread_use_pthreads() != 0 || !(x->base = event_base_new()) ||
	    !(x->count = calloc(TOTAL_EVENTS, 1)) ||
	    !(x->h = gw_handoff_new(x->base, THREAD_CAP, consume, x)) ||
	    !(timeout = evtimer_new(x->base, on_timeout, x)) || evtimer_add(timeout, &limit)) {
		snprintf(why, len, "setup failed");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (; started < PRODUCERS; started++) {
		prod[started] = (struct producer){ x, (uint32_t)started };
		if (pthread_create(&th[started], NULL, produce, &prod[started]) != 0)
			break;
	}
	if (started == PRODUCERS)
		event_base_loop(x->base, EVLOOP_NO_EXIT_ON_EMPTY);
	if (x->timed_out || started < PRODUCERS) {
		/* Producers may be waiting for room: keep draining (bounded) so they can be joined. */
		for (int i = 0; i < 100 * THREAD_TIMEOUT_S; i++) {
			struct timespec tick = { 0, 10 * 1000 * 1000 };

			gw_handoff_drain(x->h);
			gw_handoff_stats(x->h, &x->st);
			if (x->st.pushed == (uint64_t)started * EVENTS_PER_PRODUCER && x->st.queued == 0)
				break;
			nanosleep(&tick, NULL);
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	x->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	gw_handoff_stats(x->h, &x->st);
	for (size_t i = 0; i < TOTAL_EVENTS; i++)
		x->missing += x->count[i] == 0;
	if (started < PRODUCERS) {
		snprintf(why, len, "pthread_create failed after %d producers", started);
		goto out;
	}
	rc = 0;
out:
	if (timeout)
		event_free(timeout);
	gw_handoff_free(x->h, NULL);
	x->h = NULL;
	if (x->base)
		event_base_free(x->base);
	x->base = NULL;
	free(x->count);
	x->count = NULL;
	return rc;
}

/* 0 when every event arrived exactly once, in order per producer, in time; else -1 and why. */
static int exchange_check(const struct exchange *x, char *why, size_t len)
{
	const struct gw_handoff_stats *st = &x->st;

	if (x->timed_out)
		snprintf(why, len, "not all events arrived within %d s", THREAD_TIMEOUT_S);
	else if (x->delivered != TOTAL_EVENTS || x->missing)
		snprintf(why, len, "%llu of %llu delivered, %llu never",
			 (unsigned long long)x->delivered, (unsigned long long)TOTAL_EVENTS,
			 (unsigned long long)x->missing);
	else if (x->duplicates)
		snprintf(why, len, "%llu delivered twice", (unsigned long long)x->duplicates);
	else if (x->out_of_order)
		snprintf(why, len, "%llu out of order per producer (or torn)",
			 (unsigned long long)x->out_of_order);
	else if (st->pushed != TOTAL_EVENTS || st->delivered != st->pushed || st->rejected ||
		 st->queued || st->high_water > THREAD_CAP)
		snprintf(why, len, "counters: pushed %llu delivered %llu rejected %llu queued %zu "
			 "high water %zu", (unsigned long long)st->pushed,
			 (unsigned long long)st->delivered, (unsigned long long)st->rejected, st->queued,
			 st->high_water);
	else if (st->full_waits == 0)
		/* 160000 events through 16 slots: the producers cannot all have found room every time. */
		snprintf(why, len, "the ring never filled: the test did not exercise waiting");
	else
		return 0;
	return -1;
}

static void exchange_report(const struct exchange *x)
{
	printf("handoff: %d producers x %d events through %d slots: %llu delivered in %.2f s, "
	       "%llu full waits, high water %zu\n", PRODUCERS, EVENTS_PER_PRODUCER, THREAD_CAP,
	       (unsigned long long)x->delivered, x->seconds, (unsigned long long)x->st.full_waits,
	       x->st.high_water);
}

#ifdef A3D_HANDOFF_THREADS_MAIN
int main(void)
{
	static struct exchange x;
	char why[256] = "";

	if (exchange_run(&x, why, sizeof why) == 0 && exchange_check(&x, why, sizeof why) == 0) {
		exchange_report(&x);
		printf("handoff: OK\n");
		return 0;
	}
	exchange_report(&x);
	printf("handoff: FAILED: %s\n", why);
	return 1;
}
#else
Test(handoff, producers_to_loop_exactly_once, .timeout = 2 * THREAD_TIMEOUT_S)
{
	static struct exchange x;
	char why[256] = "";

	cr_assert_eq(exchange_run(&x, why, sizeof why), 0, "%s", why);
	exchange_report(&x);
	cr_expect_eq(exchange_check(&x, why, sizeof why), 0, "%s", why);
}

#define LOG_MAX 64	/* events one table test records */

/* What the callback saw, in order. */
struct seen {
	struct gw_handoff *h;
	uintptr_t tag[LOG_MAX];
	int ok[LOG_MAX];
	size_t n;
	uintptr_t echo_below;	/* tags below this are pushed again as tag + 100 (from the loop) */
	int echo_rc[LOG_MAX];
	size_t necho;
};

static void record(const struct gw_handoff_ev *ev, void *arg)
{
	struct seen *s = arg;
	uintptr_t tag = (uintptr_t)ev->tag;

	cr_assert_lt(s->n, LOG_MAX);
	s->tag[s->n] = tag;
	s->ok[s->n] = ev->ok;
	s->n++;
	if (tag < s->echo_below) {
		struct gw_handoff_ev again = { (void *)(tag + 100), ev->ok, 0 };

		s->echo_rc[s->necho++] = gw_handoff_try_push(s->h, &again);
	}
}

static struct event_base *new_base(void)
{
	struct event_base *base;

	/* The poller calls event_active() from its own thread: the base must be thread-aware. */
	cr_assert_eq(evthread_use_pthreads(), 0);
	base = event_base_new();
	cr_assert_not_null(base);
	return base;
}

/* ---- tables ---- */

enum op { PUSH, DRAIN, LOOP };	/* try_push tag | gw_handoff_drain | one non-blocking loop pass */

struct step {
	enum op op;
	uintptr_t tag;		/* PUSH: the tag (ok = tag % 2) */
	long want;		/* PUSH: rc; DRAIN/LOOP: events delivered by this step */
	const char *want_tags;	/* DRAIN/LOOP: the tags delivered so far, "1,2,3" */
};

struct counters {
	uint64_t pushed, delivered, rejected;
	size_t queued, high_water;
};

struct table {
	const char *name;
	size_t cap;
	uintptr_t echo_below;
	struct step steps[16];
	size_t nsteps;
	struct counters want;
};

static void tags_str(const struct seen *s, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < s->n && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%lu", i ? "," : "", (unsigned long)s->tag[i]);
}

static void run_table(const struct table *t)
{
	struct event_base *base = new_base();
	struct seen s = { .echo_below = t->echo_below };
	struct gw_handoff *h = gw_handoff_new(base, t->cap, record, &s);
	struct gw_handoff_stats st;
	char got[256];
	size_t dropped = 99;

	cr_assert_not_null(h, "%s", t->name);
	s.h = h;
	for (size_t i = 0; i < t->nsteps; i++) {
		const struct step *p = &t->steps[i];
		size_t before = s.n;
		long r;

		if (p->op == PUSH) {
			struct gw_handoff_ev ev = { (void *)p->tag, (int)(p->tag % 2), 0 };

			r = gw_handoff_try_push(h, &ev);
		} else if (p->op == DRAIN) {
			r = (long)gw_handoff_drain(h);
			cr_expect_eq((size_t)r, s.n - before, "%s step %zu: drain said %ld, callback saw %zu",
				     t->name, i, r, s.n - before);
		} else {
			/* 1 = nothing was pending (ev_wake is only ever activated, never added). */
			cr_assert_geq(event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_ONCE), 0);
			r = (long)(s.n - before);
		}
		cr_expect_eq(r, p->want, "%s step %zu: got %ld, want %ld", t->name, i, r, p->want);
		if (p->op != PUSH) {
			tags_str(&s, got, sizeof got);
			cr_expect_str_eq(got, p->want_tags, "%s step %zu: tags %s, want %s", t->name, i, got,
					 p->want_tags);
		}
	}
	for (size_t i = 0; i < s.n; i++)
		cr_expect_eq(s.ok[i], (int)(s.tag[i] % 2), "%s: ok of tag %lu", t->name,
			     (unsigned long)s.tag[i]);
	gw_handoff_stats(h, &st);
	cr_expect_eq(st.pushed, t->want.pushed, "%s: pushed %llu", t->name, (unsigned long long)st.pushed);
	cr_expect_eq(st.delivered, t->want.delivered, "%s: delivered %llu", t->name,
		     (unsigned long long)st.delivered);
	cr_expect_eq(st.rejected, t->want.rejected, "%s: rejected %llu", t->name,
		     (unsigned long long)st.rejected);
	cr_expect_eq(st.queued, t->want.queued, "%s: queued %zu", t->name, st.queued);
	cr_expect_eq(st.high_water, t->want.high_water, "%s: high water %zu", t->name, st.high_water);
	cr_expect_eq(st.full_waits, 0, "%s: try_push never waits", t->name);
	gw_handoff_free(h, &dropped);
	cr_expect_eq(dropped, t->want.queued, "%s: dropped at free %zu", t->name, dropped);
	event_base_free(base);
}

Test(handoff, push_drain_tables)
{
	static const struct table tables[] = {
		{ "empty drain", 4, 0,
		  { { DRAIN, 0, 0, "" }, { LOOP, 0, 0, "" } }, 2,
		  { 0, 0, 0, 0, 0 } },
		{ "fifo", 4, 0,
		  { { PUSH, 1, 0, NULL }, { PUSH, 2, 0, NULL }, { PUSH, 3, 0, NULL },
		    { DRAIN, 0, 3, "1,2,3" }, { DRAIN, 0, 0, "1,2,3" } }, 5,
		  { 3, 3, 0, 0, 3 } },
		{ "full: rejected and counted, then room again", 2, 0,
		  { { PUSH, 1, 0, NULL }, { PUSH, 2, 0, NULL }, { PUSH, 3, -1, NULL }, { PUSH, 4, -1, NULL },
		    { DRAIN, 0, 2, "1,2" }, { PUSH, 5, 0, NULL }, { DRAIN, 0, 1, "1,2,5" } }, 7,
		  { 3, 3, 2, 0, 2 } },
		{ "wrap-around keeps order", 3, 0,
		  { { PUSH, 1, 0, NULL }, { PUSH, 2, 0, NULL }, { DRAIN, 0, 2, "1,2" },
		    { PUSH, 3, 0, NULL }, { PUSH, 4, 0, NULL }, { PUSH, 5, 0, NULL }, { PUSH, 6, -1, NULL },
		    { DRAIN, 0, 3, "1,2,3,4,5" } }, 8,
		  { 5, 5, 1, 0, 3 } },
		{ "a push wakes the loop", 4, 0,
		  { { LOOP, 0, 0, "" }, { PUSH, 7, 0, NULL }, { PUSH, 8, 0, NULL }, { LOOP, 0, 2, "7,8" },
		    { LOOP, 0, 0, "7,8" } }, 5,
		  { 2, 2, 0, 0, 2 } },
		{ "capacity one", 1, 0,
		  { { PUSH, 1, 0, NULL }, { PUSH, 2, -1, NULL }, { LOOP, 0, 1, "1" }, { PUSH, 2, 0, NULL },
		    { LOOP, 0, 1, "1,2" } }, 5,
		  { 2, 2, 1, 0, 1 } },
		/* Pushed from inside delivery: not in this drain (its budget was fixed at the start),
		 * in the next wake. */
		{ "pushed by the callback: next wake", 8, 3,
		  { { PUSH, 1, 0, NULL }, { PUSH, 2, 0, NULL }, { PUSH, 5, 0, NULL },
		    { DRAIN, 0, 3, "1,2,5" }, { LOOP, 0, 2, "1,2,5,101,102" },
		    { LOOP, 0, 0, "1,2,5,101,102" } }, 6,
		  { 5, 5, 0, 0, 3 } },
		{ "left queued: dropped at free", 4, 0,
		  { { PUSH, 1, 0, NULL }, { PUSH, 2, 0, NULL }, { DRAIN, 0, 2, "1,2" }, { PUSH, 3, 0, NULL },
		    { PUSH, 4, 0, NULL } }, 5,
		  { 4, 2, 0, 2, 2 } },
	};

	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		run_table(&tables[i]);
}

/* More than one batch in one drain, with the ring wrapped: every event once, in order. */
Test(handoff, drain_spans_batches)
{
	struct event_base *base = new_base();
	struct seen s = { 0 };
	struct gw_handoff *h = gw_handoff_new(base, LOG_MAX, record, &s);
	struct gw_handoff_ev ev = { 0 };

	cr_assert_gt(LOG_MAX, GW_HANDOFF_BATCH / 2);
	cr_assert_not_null(h);
	for (uintptr_t t = 0; t < LOG_MAX / 2; t++) {
		ev.tag = (void *)t;
		cr_assert_eq(gw_handoff_try_push(h, &ev), 0);
	}
	cr_assert_eq(gw_handoff_drain(h), LOG_MAX / 2);
	s.n = 0;
	for (uintptr_t t = 0; t < LOG_MAX; t++) {
		ev.tag = (void *)(1000 + t);
		cr_assert_eq(gw_handoff_try_push(h, &ev), 0, "push %lu", (unsigned long)t);
	}
	cr_assert_eq(gw_handoff_drain(h), LOG_MAX);
	cr_assert_eq(s.n, LOG_MAX);
	for (size_t i = 0; i < s.n; i++)
		cr_expect_eq(s.tag[i], 1000 + i, "position %zu: tag %lu", i, (unsigned long)s.tag[i]);
	gw_handoff_free(h, NULL);
	event_base_free(base);
}

static void ignore(const struct gw_handoff_ev *ev, void *arg)
{
	(void)ev;
	(void)arg;
}

Test(handoff, new_arguments)
{
	struct event_base *base = new_base();
	static const struct {
		int with_base, with_fn;
		size_t cap;
		int ok;
	} rows[] = {
		{ 1, 1, 1, 1 },
		{ 1, 1, GW_HANDOFF_MAX, 1 },
		{ 1, 1, 0, 0 },
		{ 1, 1, GW_HANDOFF_MAX + 1, 0 },
		{ 0, 1, 4, 0 },
		{ 1, 0, 4, 0 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct gw_handoff *h = gw_handoff_new(rows[i].with_base ? base : NULL, rows[i].cap,
						      rows[i].with_fn ? ignore : NULL, NULL);

		cr_expect_eq(h != NULL, rows[i].ok, "row %zu (cap %zu)", i, rows[i].cap);
		gw_handoff_free(h, NULL);
	}
	gw_handoff_free(NULL, NULL);
	event_base_free(base);
}

#endif
