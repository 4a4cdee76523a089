/*
 * admission: concurrency + rate caps per account, the deadline-aware FIFO and the pause.
 * See admission.h.
 */
#include "gateway/base/admission.h"

#include <string.h>

enum { ADM_NOWHERE = 0, ADM_QUEUED = 1, ADM_PENDING = 2 };

static void adm_list_init(struct gw_adm_waiter *head)
{
	head->prev = head->next = head;
}

static void adm_unlink(struct gw_adm_waiter *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

static void adm_append(struct gw_adm_waiter *head, struct gw_adm_waiter *w)
{
	w->prev = head->prev;
	w->next = head;
	head->prev->next = w;
	head->prev = w;
}

void gw_adm_init(struct gw_adm *a, unsigned max_concurrent, double rate_per_s, size_t max_queue,
		 int64_t now_ms)
{
	memset(a, 0, sizeof *a);
	a->max_concurrent = max_concurrent;
	gw_bucket_init(&a->rate, rate_per_s, rate_per_s > 1 ? rate_per_s : 1, now_ms);
	a->max_queue = (max_queue == 0 || max_queue > GW_ADM_MAX_QUEUE) ? GW_ADM_MAX_QUEUE : max_queue;
	a->pause_until_ms = now_ms;
	adm_list_init(&a->queue);
	adm_list_init(&a->pending);
}

static void adm_dispatch(struct gw_adm *a, int64_t now_ms);

void gw_adm_configure(struct gw_adm *a, unsigned max_concurrent, double rate_per_s, size_t max_queue,
		      int64_t now_ms)
{
	a->max_concurrent = max_concurrent;
	gw_bucket_set(&a->rate, rate_per_s, rate_per_s > 1 ? rate_per_s : 1, now_ms);
	a->max_queue = (max_queue == 0 || max_queue > GW_ADM_MAX_QUEUE) ? GW_ADM_MAX_QUEUE : max_queue;
	adm_dispatch(a, now_ms);
}

static int adm_slot_free(const struct gw_adm *a)
{
	return (a->max_concurrent == 0 || a->inflight < a->max_concurrent) &&
	       (!a->slots_on || a->inflight < a->slots);
}

void gw_adm_set_slots(struct gw_adm *a, int on, unsigned slots, int64_t now_ms)
{
	a->slots_on = on ? 1 : 0;
	a->slots = slots;
	adm_dispatch(a, now_ms);
}

/* Moves w from the queue to the pending list with verdict v (state is final from here on). */
static void adm_decide(struct gw_adm *a, struct gw_adm_waiter *w, enum gw_adm_verdict v,
		       int64_t now_ms)
{
	adm_unlink(w);
	a->nqueued--;
	w->verdict = v;
	w->where = ADM_PENDING;
	if (v == GW_ADM_ADMIT) {
		a->inflight++;
		a->n.admitted_queued++;
		if (now_ms > w->queued_ms)
			a->n.wait_ms_total += (uint64_t)(now_ms - w->queued_ms);
	}
	adm_append(&a->pending, w);
}

/* One pass: refusals anywhere in the queue, then admissions from its head. */
static void adm_collect(struct gw_adm *a, int64_t now_ms)
{
	struct gw_adm_waiter *w, *next;
	int paused = now_ms < a->pause_until_ms;

	for (w = a->queue.next; w != &a->queue; w = next) {
		next = w->next;
		if (w->deadline_ms < 0)
			continue;
		if (now_ms > w->deadline_ms) {
			a->n.expired++;
			adm_decide(a, w, GW_ADM_REFUSE_DEADLINE, now_ms);
		} else if (paused && w->deadline_ms < a->pause_until_ms) {
			a->n.refused_pause++;
			adm_decide(a, w, GW_ADM_REFUSE_DEADLINE, now_ms);
		}
	}
	if (paused)
		return;
	while (a->queue.next != &a->queue && adm_slot_free(a) &&
	       gw_bucket_take(&a->rate, 1, now_ms, NULL))
		adm_decide(a, a->queue.next, GW_ADM_ADMIT, now_ms);
}

/*
 * Decides what can be decided, then runs the callbacks one at a time. A callback may re-enter
 * (leave, cancel, pause, enter): the nested call only changes state, and the next round here
 * picks up what it made possible.
 */
static void adm_dispatch(struct gw_adm *a, int64_t now_ms)
{
	if (a->dispatching)
		return;
	a->dispatching = 1;
	for (unsigned round = 0; round < GW_ADM_MAX_ROUNDS; round++) {
		adm_collect(a, now_ms);
		if (a->pending.next == &a->pending)
			break;
		while (a->pending.next != &a->pending) {
			struct gw_adm_waiter *w = a->pending.next;
			enum gw_adm_verdict v = w->verdict;

			adm_unlink(w);
			w->where = ADM_NOWHERE;
			if (w->fn)
				w->fn(w, v, w->arg);
		}
	}
	a->dispatching = 0;
}

/* Earliest admission for a newcomer behind the current queue: a lower bound (the pause, and
 * the tokens the waiters ahead and this one need; concurrency adds an unknown wait). */
static int64_t adm_estimate(struct gw_adm *a, int64_t now_ms)
{
	int64_t est = gw_bucket_time_for(&a->rate, (uint64_t)a->nqueued + 1, now_ms);

	if (a->pause_until_ms - now_ms > est)
		est = a->pause_until_ms - now_ms;
	return est;
}

int64_t gw_adm_estimate(struct gw_adm *a, int64_t now_ms)
{
	return adm_estimate(a, now_ms);
}

enum gw_adm_verdict gw_adm_enter(struct gw_adm *a, struct gw_adm_waiter *w, int64_t now_ms,
				 int64_t *est_wait_ms)
{
	int64_t est;

	if (est_wait_ms)
		*est_wait_ms = 0;
	w->where = ADM_NOWHERE;
	w->prev = w->next = NULL;
	if (a->nqueued == 0 && now_ms >= a->pause_until_ms && adm_slot_free(a) &&
	    gw_bucket_take(&a->rate, 1, now_ms, NULL)) {
		a->inflight++;
		a->n.admitted++;
		return GW_ADM_ADMIT;
	}
	est = adm_estimate(a, now_ms);
	if (est_wait_ms)
		*est_wait_ms = est;
	if (a->nqueued >= a->max_queue) {
		a->n.refused_full++;
		return GW_ADM_REFUSE_FULL;
	}
	if (w->deadline_ms >= 0 && now_ms + est > w->deadline_ms) {
		a->n.refused_deadline++;
		return GW_ADM_REFUSE_DEADLINE;
	}
	w->queued_ms = now_ms;
	w->where = ADM_QUEUED;
	adm_append(&a->queue, w);
	a->nqueued++;
	a->n.queued++;
	return GW_ADM_QUEUED;
}

void gw_adm_leave(struct gw_adm *a, int64_t now_ms)
{
	if (a->inflight > 0)
		a->inflight--;
	else
		a->n.unbalanced_leave++;
	adm_dispatch(a, now_ms);
}

void gw_adm_cancel(struct gw_adm *a, struct gw_adm_waiter *w)
{
	if (w->where == ADM_QUEUED) {
		adm_unlink(w);
		a->nqueued--;
	} else if (w->where == ADM_PENDING) {
		adm_unlink(w);
		if (w->verdict == GW_ADM_ADMIT && a->inflight > 0)
			a->inflight--;	/* the caller never learnt of its slot */
	} else {
		return;
	}
	w->where = ADM_NOWHERE;
	a->n.cancelled++;
}

void gw_adm_pause(struct gw_adm *a, int64_t now_ms, int64_t until_ms)
{
	if (until_ms - now_ms > GW_ADM_MAX_PAUSE_MS)
		until_ms = now_ms + GW_ADM_MAX_PAUSE_MS;
	if (until_ms > a->pause_until_ms) {
		a->pause_until_ms = until_ms;
		a->n.pauses++;
	}
	adm_dispatch(a, now_ms);
}

void gw_adm_run(struct gw_adm *a, int64_t now_ms)
{
	adm_dispatch(a, now_ms);
}

int64_t gw_adm_next_wake(struct gw_adm *a, int64_t now_ms)
{
	int64_t wake = -1, t;

	if (a->nqueued == 0)
		return -1;
	/* The first queued deadline to pass (refused just after it). */
	for (struct gw_adm_waiter *w = a->queue.next; w != &a->queue; w = w->next)
		if (w->deadline_ms >= 0 && (wake < 0 || w->deadline_ms + 1 < wake))
			wake = w->deadline_ms + 1;
	if (now_ms < a->pause_until_ms) {
		t = a->pause_until_ms;
	} else if (adm_slot_free(a)) {
		t = now_ms + gw_bucket_time_for(&a->rate, 1, now_ms);
	} else {
		t = -1;	/* a leave will wake the head */
	}
	if (t >= 0 && (wake < 0 || t < wake))
		wake = t;
	return wake;
}

void gw_adm_detach_all(struct gw_adm *a)
{
	while (a->queue.next != &a->queue) {
		struct gw_adm_waiter *w = a->queue.next;

		adm_unlink(w);
		w->where = ADM_NOWHERE;
	}
	a->nqueued = 0;
	while (a->pending.next != &a->pending) {
		struct gw_adm_waiter *w = a->pending.next;

		adm_unlink(w);
		w->where = ADM_NOWHERE;
	}
}

const char *gw_adm_verdict_name(enum gw_adm_verdict v)
{
	switch (v) {
	case GW_ADM_ADMIT:
		return "admit";
	case GW_ADM_QUEUED:
		return "queued";
	case GW_ADM_REFUSE_FULL:
		return "queue_full";
	case GW_ADM_REFUSE_DEADLINE:
		return "deadline";
	}
	return "unknown";
}
