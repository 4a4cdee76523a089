/* Unit tests for gateway/config/config_async.c: a load on a worker thread delivered to the loop;
 * starts during a load fold into one more load; free while a load runs. Each case is a table of
 * starts -> expected deliveries; every loop run is bounded by a timer. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/config/config_async.h"

#define GOOD_YAML                                  \
	"accounts:\n"                              \
	"  - name: sim\n"                          \
	"    base_url: http://127.0.0.1:8090\n"    \
	"    client_id: cid\n"                     \
	"    client_secret_env: S\n"               \
	"tenants:\n"                               \
	"  - name: t\n"                            \
	"    account: sim\n"
#define LOOP_LIMIT_S 10		/* a delivery that never comes fails here, not by hanging */

static char tmpdir[] = "/tmp/a3d-test-config-async-XXXXXX";

struct seen {
	struct event_base *base;
	int calls, good, bad;
	int want;			/* deliveries after which the loop stops */
	char first_err[512];
};

static void on_done(struct gw_config *cfg, const struct gw_errors *errs, void *arg)
{
	struct seen *s = arg;

	s->calls++;
	if (cfg) {
		s->good++;
		gw_config_free(cfg);
	} else {
		s->bad++;
		if (errs->n && !s->first_err[0])
			snprintf(s->first_err, sizeof s->first_err, "%s", errs->msg[0]);
	}
	if (s->calls >= s->want)
		event_base_loopbreak(s->base);
}

static void setup(void)
{
	cr_assert_eq(evthread_use_pthreads(), 0);
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

static void write_config(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
}

/* Runs base until s->want deliveries or LOOP_LIMIT_S. */
static void run(struct seen *s)
{
	struct timeval tv = { LOOP_LIMIT_S, 0 };

	event_base_loopexit(s->base, &tv);
	event_base_dispatch(s->base);
}

TestSuite(config_async, .init = setup, .fini = teardown);

Test(config_async, starts_fold_into_one_more_load)
{
	static const struct {
		int starts;		/* gw_config_async_start calls before the loop runs */
		int want_calls;		/* deliveries: the first load and at most one more */
		int want_rc_last;	/* what the last start returned */
	} cases[] = { { 1, 1, 0 }, { 2, 2, 1 }, { 5, 2, 1 } };
	char path[512];

	snprintf(path, sizeof path, "%s/gw.yaml", tmpdir);
	write_config(path, GOOD_YAML);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct seen s = { .base = event_base_new(), .want = cases[i].want_calls };
		struct gw_config_async *a;
		int rc = -1;

		cr_assert_not_null(s.base);
		a = gw_config_async_new(s.base, path, on_done, &s);
		cr_assert_not_null(a);
		for (int k = 0; k < cases[i].starts; k++)
			rc = gw_config_async_start(a);
		cr_expect_eq(rc, cases[i].want_rc_last, "case %zu: last start -> %d", i, rc);
		cr_expect_eq(gw_config_async_busy(a), 1, "case %zu", i);
		run(&s);
		cr_expect_eq(s.calls, cases[i].want_calls, "case %zu: %d deliveries", i, s.calls);
		cr_expect_eq(s.good, cases[i].want_calls, "case %zu: %d good (%s)", i, s.good, s.first_err);
		cr_expect_eq(gw_config_async_busy(a), 0, "case %zu", i);
		gw_config_async_free(a);
		event_base_free(s.base);
	}
}

Test(config_async, failures_arrive_with_file_line_errors)
{
	static const struct {
		const char *text;	/* NULL: no file at all */
		const char *want;	/* in the first error, after "<path>" */
	} cases[] = {
		{ NULL, ": cannot open: No such file or directory" },
		{ "listen: {grpc: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", ":1: nested deeper than 32" },
		{ "listen:\n  grpc: nope\n" GOOD_YAML, ":2: listen.grpc must be host:port" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct seen s = { .base = event_base_new(), .want = 1 };
		struct gw_config_async *a;
		char path[512], want[640];

		snprintf(path, sizeof path, "%s/bad%zu.yaml", tmpdir, i);
		if (cases[i].text)
			write_config(path, cases[i].text);
		a = gw_config_async_new(s.base, path, on_done, &s);
		cr_assert_not_null(a);
		cr_expect_eq(gw_config_async_start(a), 0);
		run(&s);
		cr_expect_eq(s.calls, 1, "case %zu", i);
		cr_expect_eq(s.bad, 1, "case %zu", i);
		snprintf(want, sizeof want, "%s%s", path, cases[i].want);
		cr_expect_eq(strncmp(s.first_err, want, strlen(want)), 0, "case %zu: got %s\nwant %s", i,
			     s.first_err, want);
		gw_config_async_free(a);
		event_base_free(s.base);
	}
}

/* Freed while a load may still run: the result is dropped, done() never called, nothing leaks
 * (ASan build), and the loop can be freed right after. */
Test(config_async, free_while_loading)
{
	struct seen s = { .base = event_base_new(), .want = 1 };
	struct gw_config_async *a;
	char path[512];

	snprintf(path, sizeof path, "%s/gw.yaml", tmpdir);
	write_config(path, GOOD_YAML);
	a = gw_config_async_new(s.base, path, on_done, &s);
	cr_assert_not_null(a);
	cr_expect_eq(gw_config_async_start(a), 0);
	cr_expect_eq(gw_config_async_start(a), 1);
	gw_config_async_free(a);
	cr_expect_eq(s.calls, 0);
	event_base_free(s.base);
	gw_config_async_free(NULL);
}
