/*
 * iobrake: stops gRPC core's I/O thread for a tick while calls pour in and memory is high.
 * See iobrake.h.
 */
#include "gateway/base/iobrake.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/base/clock.h"
#include "gateway/base/memguard.h"
#include "gateway/base/metrics.h"

/* As the memory guard (memguard.c): under a sanitizer RSS says nothing about what is in use. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IOBRAKE_SANITIZED 1
#else
#define IOBRAKE_SANITIZED 0
#endif

#define IOBRAKE_SIGNAL (SIGRTMIN + 3)
#define IOBRAKE_NAP_US 1000		/* the handler checks its deadline this often */

/* The brake's end, gw_clock_now_us microseconds: written by the ticking thread, read by the
 * handler on the I/O thread. Static: a signal handler can reach nothing else. */
static int64_t iobrake_until_us;

struct gw_iobrake {
	pthread_t thread;
	uint64_t ceiling;
	uint64_t brakes, braked_ms;	/* written by the ticking thread, read at scrape */
};

/* On the I/O thread: sleeps until the deadline (async-signal-safe calls only: gw_clock_now_us
 * is clock_gettime, and nanosleep). */
static void iobrake_handler(int sig)
{
	int saved = errno;
	int64_t left;

	(void)sig;
	while ((left = __atomic_load_n(&iobrake_until_us, __ATOMIC_ACQUIRE) - gw_clock_now_us()) > 0) {
		struct timespec nap = { 0, (left < IOBRAKE_NAP_US ? left : IOBRAKE_NAP_US) * 1000 };

		nanosleep(&nap, NULL);
	}
	errno = saved;
}

int64_t gw_iobrake_decide(uint64_t rss, uint64_t ceiling, uint64_t calls, int64_t span_ms,
			  int64_t tick_ms)
{
	if (!ceiling || rss < ceiling / 2 || span_ms <= 0)
		return 0;
	if (calls * 1000 / (uint64_t)span_ms < GW_IOBRAKE_CALLS_PER_S)
		return 0;
	return tick_ms < GW_IOBRAKE_MAX_MS ? tick_ms : GW_IOBRAKE_MAX_MS;
}

struct gw_iobrake *gw_iobrake_new(pthread_t thread, uint64_t ceiling, int *failed)
{
	struct gw_iobrake *b = NULL;
	struct sigaction sa;

	*failed = 0;
	if (!ceiling || IOBRAKE_SANITIZED)
		return NULL;
	b = calloc(1, sizeof *b);
	if (!b)
		goto fail;
	b->thread = thread;
	b->ceiling = ceiling;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = iobrake_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(IOBRAKE_SIGNAL, &sa, NULL) != 0)
		goto fail;
	return b;
fail:
	free(b);
	*failed = 1;
	return NULL;
}

void gw_iobrake_tick(struct gw_iobrake *b, uint64_t calls, int64_t span_ms, int64_t tick_ms)
{
	int64_t ms;

	if (!b)
		return;
	ms = gw_iobrake_decide(gw_memguard_rss(), b->ceiling, calls, span_ms, tick_ms);
	if (!ms)
		return;
	__atomic_store_n(&iobrake_until_us, gw_clock_now_us() + ms * 1000, __ATOMIC_RELEASE);
	if (pthread_kill(b->thread, IOBRAKE_SIGNAL) != 0)
		return;
	__atomic_add_fetch(&b->brakes, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&b->braked_ms, (uint64_t)ms, __ATOMIC_RELAXED);
}

void gw_iobrake_render_metrics(void *arg, struct gw_metrics_out *o)
{
	struct gw_iobrake *b = arg;

	if (!b)
		return;
	gw_metrics_one(o, "grpc_io_brakes_total", "counter",
		       "Times gRPC core's I/O thread was stopped for a tick: memory at half the ceiling "
		       "or more while calls were being made at 1000 a second or more.",
		       __atomic_load_n(&b->brakes, __ATOMIC_RELAXED));
	gw_metrics_one(o, "grpc_io_braked_milliseconds_total", "counter",
		       "Milliseconds gRPC core's I/O thread was stopped for.",
		       __atomic_load_n(&b->braked_ms, __ATOMIC_RELAXED));
}

/* The handler stays: a brake's signal still pending would otherwise meet the default action
 * (ending the process), and with no deadline ahead the handler returns at once. */
void gw_iobrake_free(struct gw_iobrake *b)
{
	free(b);
}
