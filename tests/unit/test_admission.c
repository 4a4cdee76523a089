/* Unit tests for gateway/base/admission.c: per-account concurrency + rate caps, the deadline-aware
 * FIFO and the Retry-After pause, as scripts of (time, operation) -> verdict, callbacks, next
 * wake-up, in-flight and queued counts. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/base/admission.h"

#define NW 16		/* waiters a script may use */
#define LOG_MAX 256	/* callback log text */

enum { ENTER, LEAVE, PAUSE, RUN, CANCEL };

struct harness;
struct slot {
	struct harness *h;
	int id;
	int leave_on_admit;	/* callback: the request fails at once and releases its slot */
	int cancel_on_cb;	/* callback: cancel waiter number cancel_on_cb - 1 */
};
struct harness {
	struct gw_adm a;
	struct gw_adm_waiter w[NW];
	struct slot s[NW];
	char log[LOG_MAX];	/* "2A 3D " : id + A(dmit) / D(eadline) / F(ull) */
	int64_t now;
};

struct step {
	int op;
	int64_t now;
	int id;			/* ENTER, CANCEL */
	int64_t arg;		/* ENTER: deadline; PAUSE: until */
	int rc;			/* ENTER: expected verdict */
	int64_t est;		/* ENTER: expected estimate */
	const char *cbs;	/* callbacks run by this step */
	int64_t wake;		/* gw_adm_next_wake() after it */
	unsigned inflight;
	size_t queued;
};

static void on_verdict(struct gw_adm_waiter *w, enum gw_adm_verdict v, void *arg)
{
	struct slot *s = arg;
	struct harness *h = s->h;
	size_t len = strlen(h->log);

	cr_assert_eq(w, &h->w[s->id], "callback for the wrong waiter");
	snprintf(h->log + len, sizeof h->log - len, "%d%c ", s->id,
		 v == GW_ADM_ADMIT ? 'A' : v == GW_ADM_REFUSE_DEADLINE ? 'D' : v == GW_ADM_REFUSE_FULL ? 'F' : '?');
	if (v == GW_ADM_ADMIT && s->leave_on_admit)
		gw_adm_leave(&h->a, h->now);
	if (s->cancel_on_cb)
		gw_adm_cancel(&h->a, &h->w[s->cancel_on_cb - 1]);
}

static void harness_init(struct harness *h, unsigned conc, double rate, size_t qmax)
{
	memset(h, 0, sizeof *h);
	gw_adm_init(&h->a, conc, rate, qmax, 0);
	for (int i = 0; i < NW; i++) {
		h->s[i].h = h;
		h->s[i].id = i;
		h->w[i].fn = on_verdict;
		h->w[i].arg = &h->s[i];
	}
}

static void run_script(const char *name, struct harness *h, const struct step *st, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct step *s = &st[i];
		char want[LOG_MAX];
		int64_t est = -99;

		h->log[0] = '\0';
		h->now = s->now;
		switch (s->op) {
		case ENTER: {
			enum gw_adm_verdict v;

			h->w[s->id].deadline_ms = s->arg;
			v = gw_adm_enter(&h->a, &h->w[s->id], s->now, &est);
			cr_expect_eq((int)v, s->rc, "%s step %zu: enter %d -> %s, want %s", name, i, s->id,
				     gw_adm_verdict_name(v), gw_adm_verdict_name(s->rc));
			cr_expect_eq(est, s->est, "%s step %zu: estimate %lld, want %lld", name, i,
				     (long long)est, (long long)s->est);
			break;
		}
		case LEAVE:
			gw_adm_leave(&h->a, s->now);
			break;
		case PAUSE:
			gw_adm_pause(&h->a, s->now, s->arg);
			break;
		case RUN:
			gw_adm_run(&h->a, s->now);
			break;
		case CANCEL:
			gw_adm_cancel(&h->a, &h->w[s->id]);
			break;
		}
		snprintf(want, sizeof want, "%s%s", s->cbs, s->cbs[0] ? " " : "");
		cr_expect_str_eq(h->log, want, "%s step %zu: callbacks \"%s\", want \"%s\"", name, i,
				 h->log, want);
		cr_expect_eq(gw_adm_next_wake(&h->a, s->now), s->wake, "%s step %zu: wake %lld, want %lld",
			     name, i, (long long)gw_adm_next_wake(&h->a, s->now), (long long)s->wake);
		cr_expect_eq(h->a.inflight, s->inflight, "%s step %zu: inflight %u, want %u", name, i,
			     h->a.inflight, s->inflight);
		cr_expect_eq(h->a.nqueued, s->queued, "%s step %zu: queued %zu, want %zu", name, i,
			     h->a.nqueued, s->queued);
	}
}

#define A GW_ADM_ADMIT
#define Q GW_ADM_QUEUED
#define F GW_ADM_REFUSE_FULL
#define D GW_ADM_REFUSE_DEADLINE

Test(admission, concurrency_cap_and_full_queue)
{
	struct harness h;
	static const struct step steps[] = {
		/* op     now id  arg  rc est cbs    wake inflight queued */
		{ ENTER,  0, 0,  -1, A, 0, "",     -1, 1, 0 },
		{ ENTER,  0, 1,  -1, A, 0, "",     -1, 2, 0 },
		{ ENTER,  0, 2, 100, Q, 0, "",    101, 2, 1 },	/* wake when its deadline passes */
		{ ENTER,  0, 3,  -1, Q, 0, "",    101, 2, 2 },
		{ ENTER,  0, 4,  -1, F, 0, "",    101, 2, 2 },	/* queue of 2 is full */
		{ LEAVE, 10, 0,   0, 0, 0, "2A",   -1, 2, 1 },	/* FIFO: 2 before 3 */
		{ CANCEL, 11, 3,  0, 0, 0, "",     -1, 2, 0 },
		{ CANCEL, 11, 3,  0, 0, 0, "",     -1, 2, 0 },	/* twice: no-op */
		{ LEAVE, 20, 0,   0, 0, 0, "",     -1, 1, 0 },
		{ ENTER, 20, 5,  -1, A, 0, "",     -1, 2, 0 },
		{ LEAVE, 30, 0,   0, 0, 0, "",     -1, 1, 0 },
		{ LEAVE, 30, 0,   0, 0, 0, "",     -1, 0, 0 },
		{ LEAVE, 30, 0,   0, 0, 0, "",     -1, 0, 0 },	/* unbalanced: counted, no underflow */
	};

	harness_init(&h, 2, 0, 2);
	run_script("conc", &h, steps, sizeof steps / sizeof steps[0]);
	cr_expect_eq(h.a.n.admitted, 3);
	cr_expect_eq(h.a.n.admitted_queued, 1);
	cr_expect_eq(h.a.n.wait_ms_total, 10);
	cr_expect_eq(h.a.n.queued, 2);
	cr_expect_eq(h.a.n.refused_full, 1);
	cr_expect_eq(h.a.n.cancelled, 1);
	cr_expect_eq(h.a.n.unbalanced_leave, 1);
}

Test(admission, queued_deadline_expires)
{
	struct harness h;
	static const struct step steps[] = {
		{ ENTER, 0, 0, -1, A, 0, "",   -1, 1, 0 },
		{ ENTER, 0, 1, 50, Q, 0, "",   51, 1, 1 },
		{ ENTER, 5, 2, 80, Q, 0, "",   51, 1, 2 },
		{ RUN,  50, 0,  0, 0, 0, "",   51, 1, 2 },	/* at the deadline it may still go */
		{ RUN,  51, 0,  0, 0, 0, "1D", 81, 1, 1 },
		{ LEAVE, 60, 0, 0, 0, 0, "2A", -1, 1, 0 },
	};

	harness_init(&h, 1, 0, 0);
	run_script("expiry", &h, steps, sizeof steps / sizeof steps[0]);
	cr_expect_eq(h.a.n.expired, 1);
	cr_expect_eq(h.a.max_queue, GW_ADM_MAX_QUEUE);
}

Test(admission, rate_cap_and_impossible_deadline)
{
	struct harness h;
	struct step steps[16];
	size_t n = 0;

	/* 10/s, burst 10: ten go at once, then one every 100 ms. */
	for (int i = 0; i < 10; i++)
		steps[n++] = (struct step){ ENTER, 0, i, -1, A, 0, "", -1, (unsigned)i + 1, 0 };
	steps[n++] = (struct step){ ENTER, 0, 10, -1, Q, 100, "", 100, 10, 1 };
	/* Second in line: 200 ms at the earliest, so a 150 ms deadline is refused at once. */
	steps[n++] = (struct step){ ENTER, 0, 11, 150, D, 200, "", 100, 10, 1 };
	steps[n++] = (struct step){ ENTER, 0, 12, 250, Q, 200, "", 100, 10, 2 };
	steps[n++] = (struct step){ RUN, 99, 0, 0, 0, 0, "", 100, 10, 2 };
	steps[n++] = (struct step){ RUN, 100, 0, 0, 0, 0, "10A", 200, 11, 1 };
	steps[n++] = (struct step){ RUN, 200, 0, 0, 0, 0, "12A", -1, 12, 0 };

	harness_init(&h, 0, 10, 0);
	run_script("rate", &h, steps, n);
	cr_expect_eq(h.a.n.refused_deadline, 1);
	cr_expect_eq(h.a.n.admitted, 10);
	cr_expect_eq(h.a.n.admitted_queued, 2);
}

Test(admission, retry_after_pause)
{
	struct harness h;
	static const struct step steps[] = {
		{ ENTER,  0, 0,   -1, A, 0,    "",   -1,   1, 0 },
		{ PAUSE,  0, 0, 2000, 0, 0,    "",   -1,   1, 0 },
		{ ENTER, 10, 1, 1000, D, 1990, "",   -1,   1, 0 },	/* cannot outlast the pause */
		{ ENTER, 10, 2, 5000, Q, 1990, "",   2000, 1, 1 },
		{ ENTER, 10, 3, 3000, Q, 1990, "",   2000, 1, 2 },
		{ ENTER, 10, 4,   -1, Q, 1990, "",   2000, 1, 3 },
		{ LEAVE, 20, 0,    0, 0, 0,    "",   2000, 0, 3 },	/* a free slot admits no one while paused */
		{ PAUSE, 100, 0, 4000, 0, 0,   "3D", 4000, 0, 2 },	/* longer pause: 3 cannot wait */
		{ PAUSE, 200, 0, 1000, 0, 0,   "",   4000, 0, 2 },	/* a shorter one changes nothing */
		{ RUN, 3999, 0,    0, 0, 0,    "",   4000, 0, 2 },
		{ RUN, 4000, 0,    0, 0, 0,    "2A 4A", -1, 2, 0 },
		{ ENTER, 4001, 5, -1, A, 0,    "",   -1,   3, 0 },
	};

	harness_init(&h, 0, 0, 0);
	run_script("pause", &h, steps, sizeof steps / sizeof steps[0]);
	cr_expect_eq(h.a.n.pauses, 2);
	cr_expect_eq(h.a.n.refused_pause, 1);
	cr_expect_eq(h.a.n.refused_deadline, 1);
}

Test(admission, pause_is_clamped)
{
	struct harness h;

	harness_init(&h, 0, 0, 0);
	gw_adm_pause(&h.a, 1000, INT64_MAX / 2);
	cr_expect_eq(h.a.pause_until_ms, 1000 + GW_ADM_MAX_PAUSE_MS);
}

Test(admission, callbacks_may_reenter)
{
	struct harness h;
	static const struct step steps[] = {
		{ ENTER, 0, 0, -1, A, 0, "",         -1, 1, 0 },
		{ ENTER, 0, 1, -1, Q, 0, "",         -1, 1, 1 },
		{ ENTER, 0, 2, -1, Q, 0, "",         -1, 1, 2 },
		{ ENTER, 0, 3, -1, Q, 0, "",         -1, 1, 3 },
		/* Each admitted waiter fails at once and leaves from its callback: one leave runs them all. */
		{ LEAVE, 5, 0,  0, 0, 0, "1A 2A 3A", -1, 0, 0 },
	};

	harness_init(&h, 1, 0, 0);
	for (int i = 1; i <= 3; i++)
		h.s[i].leave_on_admit = 1;
	run_script("reenter", &h, steps, sizeof steps / sizeof steps[0]);
	cr_expect_eq(h.a.n.admitted_queued, 3);
}

Test(admission, cancel_of_a_pending_verdict)
{
	struct harness h;
	static const struct step steps[] = {
		{ ENTER, 0, 0,  -1, A, 0, "",   -1, 1, 0 },
		{ ENTER, 0, 1, 100, Q, 0, "",  101, 1, 1 },
		{ ENTER, 0, 2, 100, Q, 0, "",  101, 1, 2 },
		/* Both are refused by the pause; 1's callback cancels 2, whose fn then never runs. */
		{ PAUSE, 10, 0, 5000, 0, 0, "1D", -1, 1, 0 },
	};

	harness_init(&h, 1, 0, 0);
	h.s[1].cancel_on_cb = 3;	/* waiter 2 */
	run_script("cancel pending", &h, steps, sizeof steps / sizeof steps[0]);
	cr_expect_eq(h.a.n.cancelled, 1);
	cr_expect_eq(h.w[2].where, 0);
}

Test(admission, queue_bound_holds)
{
	struct gw_adm_waiter w[GW_ADM_MAX_QUEUE + 2];
	struct gw_adm a;
	enum gw_adm_verdict v;

	memset(w, 0, sizeof w);
	gw_adm_init(&a, 1, 0, 0, 0);
	w[0].deadline_ms = -1;
	cr_assert_eq(gw_adm_enter(&a, &w[0], 0, NULL), GW_ADM_ADMIT);
	for (size_t i = 1; i <= GW_ADM_MAX_QUEUE; i++) {
		w[i].deadline_ms = -1;
		cr_assert_eq(gw_adm_enter(&a, &w[i], 0, NULL), GW_ADM_QUEUED, "waiter %zu", i);
	}
	w[GW_ADM_MAX_QUEUE + 1].deadline_ms = -1;
	v = gw_adm_enter(&a, &w[GW_ADM_MAX_QUEUE + 1], 0, NULL);
	cr_expect_eq(v, GW_ADM_REFUSE_FULL);
	cr_expect_eq(a.nqueued, GW_ADM_MAX_QUEUE);
	gw_adm_detach_all(&a);	/* no fn set: detaching must not call any */
	cr_expect_eq(a.nqueued, 0);
	cr_expect_eq(gw_adm_next_wake(&a, 0), -1);
}

Test(admission, configure_keeps_the_queue)
{
	struct harness h;
	static const struct step steps[] = {
		{ ENTER, 0, 0, -1, A, 0, "",   -1, 1, 0 },
		{ ENTER, 0, 1, -1, Q, 0, "",   -1, 1, 1 },
		{ ENTER, 0, 2, -1, Q, 0, "",   -1, 1, 2 },
	};

	harness_init(&h, 1, 0, 0);
	run_script("configure", &h, steps, sizeof steps / sizeof steps[0]);
	/* A reload raises the cap to 2: the head goes at once; then a rate of 1/s holds the rest. */
	gw_adm_configure(&h.a, 2, 0, 8, 10);
	cr_expect_str_eq(h.log, "1A ");
	cr_expect_eq(h.a.inflight, 2);
	cr_expect_eq(h.a.nqueued, 1);
	cr_expect_eq(h.a.max_queue, 8);
	h.log[0] = '\0';
	gw_adm_configure(&h.a, 0, 1, 0, 20);	/* no cap, 1/s with a burst of 1: one more goes */
	cr_expect_str_eq(h.log, "2A ");
	cr_expect_eq(h.a.max_queue, GW_ADM_MAX_QUEUE);
	cr_expect_eq(h.a.inflight, 3);
}

/* Cluster slots (gw_adm_set_slots) cap on top of max_concurrent, 0 included; more slots admit
 * the queue's head at once, fewer keep what is in flight; off lifts them. */
Test(admission, outer_slots)
{
	struct harness h;
	static const struct {
		int on;
		unsigned slots;
		const char *cbs;	/* callbacks run by the call */
		unsigned inflight;
		size_t queued;
	} rows[] = {
		{ 1, 0, "",      0, 2 },	/* no slot: nothing goes (0 is not "no cap") */
		{ 1, 1, "0A ",   1, 1 },	/* one slot: the head goes */
		{ 1, 3, "1A ",   2, 0 },	/* more slots than waiters */
		{ 1, 1, "",      2, 0 },	/* fewer than in flight: kept, none new */
		{ 0, 0, "",      2, 0 },	/* off: max_concurrent (4) alone */
	};

	harness_init(&h, 4, 0, 8);
	gw_adm_set_slots(&h.a, 1, 0, 0);
	h.w[0].deadline_ms = h.w[1].deadline_ms = -1;
	cr_expect_eq(gw_adm_enter(&h.a, &h.w[0], 0, NULL), GW_ADM_QUEUED);
	cr_expect_eq(gw_adm_enter(&h.a, &h.w[1], 0, NULL), GW_ADM_QUEUED);
	cr_expect_eq(gw_adm_next_wake(&h.a, 0), -1, "held back by slots: a larger call wakes it");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		h.log[0] = '\0';
		gw_adm_set_slots(&h.a, rows[i].on, rows[i].slots, 1);
		cr_expect_str_eq(h.log, rows[i].cbs, "row %zu: callbacks \"%s\"", i, h.log);
		cr_expect_eq(h.a.inflight, rows[i].inflight, "row %zu: inflight %u", i, h.a.inflight);
		cr_expect_eq(h.a.nqueued, rows[i].queued, "row %zu: queued %zu", i, h.a.nqueued);
	}
	h.w[2].deadline_ms = h.w[3].deadline_ms = h.w[4].deadline_ms = -1;
	cr_expect_eq(gw_adm_enter(&h.a, &h.w[2], 2, NULL), GW_ADM_ADMIT, "3 of max_concurrent 4");
	cr_expect_eq(gw_adm_enter(&h.a, &h.w[3], 2, NULL), GW_ADM_ADMIT, "4 of 4");
	cr_expect_eq(gw_adm_enter(&h.a, &h.w[4], 2, NULL), GW_ADM_QUEUED, "max_concurrent still holds");
	gw_adm_cancel(&h.a, &h.w[4]);
}

Test(admission, verdict_names)
{
	cr_expect_str_eq(gw_adm_verdict_name(GW_ADM_ADMIT), "admit");
	cr_expect_str_eq(gw_adm_verdict_name(GW_ADM_QUEUED), "queued");
	cr_expect_str_eq(gw_adm_verdict_name(GW_ADM_REFUSE_FULL), "queue_full");
	cr_expect_str_eq(gw_adm_verdict_name(GW_ADM_REFUSE_DEADLINE), "deadline");
}

/* gw_adm_estimate: what a newcomer would wait, without entering (no token taken, nothing counted). */
Test(admission, estimate_table)
{
	static const struct {
		double rate;		/* requests/s (burst = max(rate, 1)) */
		int64_t pause_until;	/* 0 = none */
		int takes;		/* requests admitted at t=0 before asking */
		int64_t now;
		int64_t est;
	} rows[] = {
		{ 0, 0, 5, 0, 0 },		/* unlimited */
		{ 10, 0, 0, 0, 0 },		/* tokens there */
		{ 10, 0, 10, 0, 100 },		/* bucket empty: one token in 100 ms */
		{ 10, 0, 10, 40, 60 },
		{ 0, 2000, 0, 500, 1500 },	/* paused */
		{ 10, 2000, 10, 0, 2000 },	/* the pause is longer than the refill */
		{ 0, 2000, 0, 2000, 0 },	/* pause over */
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct gw_adm a;
		struct gw_adm_waiter w = { .deadline_ms = -1 };
		int64_t est;

		gw_adm_init(&a, 0, rows[i].rate, 0, 0);
		for (int k = 0; k < rows[i].takes; k++)
			cr_assert_eq(gw_adm_enter(&a, &w, 0, NULL), GW_ADM_ADMIT, "row %zu take %d", i, k);
		if (rows[i].pause_until)
			gw_adm_pause(&a, 0, rows[i].pause_until);
		est = gw_adm_estimate(&a, rows[i].now);
		cr_expect_eq(est, rows[i].est, "row %zu: estimate %lld", i, (long long)est);
		/* Asking again changes nothing: same answer, same counters. */
		cr_expect_eq(gw_adm_estimate(&a, rows[i].now), est, "row %zu", i);
		cr_expect_eq(a.n.admitted, (uint64_t)rows[i].takes, "row %zu", i);
		cr_expect_eq(a.n.queued + a.n.refused_deadline + a.n.refused_full, 0, "row %zu", i);
	}
}
