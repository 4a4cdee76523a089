/* Unit tests for gateway/svc/balance.c: its pure part (reading the two balance answers, bodies as
 * the upstream document and the simulator's sim_jobs_h_credits / sim_jobs_h_minutes write them)
 * and the API's answers without a poller. */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/svc/balance.h"

Test(balance, parse_table)
{
	static const struct {
		enum gw_balance_kind kind;
		const char *body;
		int rc;
		double want;		/* rc 0 */
		const char *err;	/* rc -1: a part of the message */
	} cases[] = {
		/* what the simulator answers: json_pack "{s:f}" and "%lld.%02lld" */
		{ GW_BALANCE_CREDITS, "{\"credits\": 1000.0}", 0, 1000.0, NULL },
		{ GW_BALANCE_CREDITS, "{\"credits\":996}", 0, 996.0, NULL },
		{ GW_BALANCE_MINUTES, "{\"minutes\":16.66}", 0, 16.66, NULL },
		{ GW_BALANCE_MINUTES, "{\"minutes\":0.00}", 0, 0.0, NULL },
		{ GW_BALANCE_CREDITS, "{\"credits\":0}", 0, 0.0, NULL },
		/* other fields are ignored; a negative balance is the upstream's to give */
		{ GW_BALANCE_CREDITS, "{\"credits\":12.5,\"currency\":\"cr\"}", 0, 12.5, NULL },
		{ GW_BALANCE_MINUTES, "{\"minutes\":-3}", 0, -3.0, NULL },
		{ GW_BALANCE_CREDITS, "{\"credits\":1e3}", 0, 1000.0, NULL },
		/* the other answer's field is not this one's */
		{ GW_BALANCE_CREDITS, "{\"minutes\":16.66}", -1, 0, "credits" },
		{ GW_BALANCE_MINUTES, "{\"credits\":1000}", -1, 0, "minutes" },
		/* missing, null, wrong types */
		{ GW_BALANCE_CREDITS, "{}", -1, 0, "credits" },
		{ GW_BALANCE_CREDITS, "{\"credits\":null}", -1, 0, "credits" },
		{ GW_BALANCE_CREDITS, "{\"credits\":\"1000\"}", -1, 0, "number" },
		{ GW_BALANCE_MINUTES, "{\"minutes\":true}", -1, 0, "number" },
		{ GW_BALANCE_MINUTES, "{\"minutes\":[1]}", -1, 0, "number" },
		/* not JSON, or not an object (an HTML error page answered 200: the "garbage" fault) */
		{ GW_BALANCE_CREDITS, "<html>busy</html>", -1, 0, "not valid JSON" },
		{ GW_BALANCE_CREDITS, "", -1, 0, "not valid JSON" },
		{ GW_BALANCE_MINUTES, "[16.66]", -1, 0, "minutes" },
		{ GW_BALANCE_CREDITS, "{\"credits\":1000", -1, 0, "not valid JSON" },
		/* an unknown kind */
		{ (enum gw_balance_kind)7, "{\"credits\":1}", -1, 0, "unknown balance kind" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[GW_BALANCE_ERR_MAX] = "";
		double v = -12345.0;
		int rc = gw_balance_parse(cases[i].kind, cases[i].body, strlen(cases[i].body), &v, err,
					  sizeof err);

		cr_expect_eq(rc, cases[i].rc, "case %zu (%s): rc %d, err %s", i, cases[i].body, rc, err);
		if (cases[i].rc == 0) {
			cr_expect_float_eq(v, cases[i].want, 1e-9, "case %zu: %f", i, v);
		} else {
			cr_expect_float_eq(v, -12345.0, 0, "case %zu: *out changed on failure", i);
			cr_expect(strstr(err, cases[i].err) != NULL, "case %zu: err \"%s\" lacks \"%s\"",
				  i, err, cases[i].err);
		}
	}
}

/* The body is a length, not a C string: bytes past len are not read. */
Test(balance, parse_reads_only_len_bytes)
{
	static const char body[] = "{\"credits\":42}{\"credits\":7}";
	char err[GW_BALANCE_ERR_MAX] = "";
	double v = 0;

	cr_assert_eq(gw_balance_parse(GW_BALANCE_CREDITS, body, 14, &v, err, sizeof err), 0, "%s", err);
	cr_expect_float_eq(v, 42.0, 1e-9);
	cr_expect_eq(gw_balance_parse(GW_BALANCE_CREDITS, body, sizeof body - 1, &v, err, sizeof err),
		     -1);
}

static void bal_test_obs(void *arg, const char *account, const struct gw_balance_sample *cur,
			 const struct gw_balance_sample *prev)
{
	(void)arg;
	(void)account;
	(void)cur;
	(void)prev;
}

/* Without a poller (the service not registered): every question is refused, nothing crashes. */
Test(balance, api_without_a_poller)
{
	double c = 1, m = 2;
	int64_t at = 3;

	cr_expect_eq(gw_balance_get(NULL, "main", &c, &m, &at), -1);
	cr_expect_eq(gw_balance_get(NULL, NULL, NULL, NULL, NULL), -1);
	cr_expect(c == 1 && m == 2 && at == 3);
	cr_expect_eq(gw_balance_on_update(NULL, bal_test_obs, NULL), -1);
	cr_expect_null(gw_balance_of(NULL));
}

/* ---- the service, without a loop or an upstream engine: the poller is off, its API answers ---- */

#include <stdlib.h>
#include <event2/buffer.h>

#include "auth/upstream/session.h"
#include "gateway/base/metrics.h"
#include "gateway/call/env.h"
#include "gateway/call/svc.h"

static char *bal_test_render(void *state)
{
	struct gw_metrics_reg reg = { 0 };
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	cr_assert_not_null(b);
	cr_assert_eq(gw_metrics_register(&reg, gw_svc_balance.metrics, state), 0);
	cr_assert_eq(gw_metrics_render_all(&reg, b), 0);
	n = evbuffer_get_length(b);
	s = calloc(1, n + 1);
	cr_assert_not_null(s);
	evbuffer_remove(b, s, n);
	evbuffer_free(b);
	return s;
}

Test(balance, service_off_answers_and_renders_families_without_samples)
{
	struct gw_account_rt accts[2];
	struct gw_env env;
	struct gw_svc_rt rt = { &gw_svc_balance, NULL };
	char err[256] = "";
	double c = 1;
	char *text;

	memset(accts, 0, sizeof accts);
	memset(&env, 0, sizeof env);
	accts[0].up.name = "main";
	accts[1].up.idx = 1;
	accts[1].up.name = "we\"ird";
	env.accounts = accts;
	env.naccounts = 2;
	/* No configuration, loop or engine: init keeps the accounts and stays off. */
	cr_assert_eq(gw_svc_balance.init(&env, &rt.state, err, sizeof err), 0, "%s", err);
	cr_assert_not_null(rt.state);
	env.svcs = &rt;
	env.nsvcs = 1;
	cr_expect_eq(gw_balance_of(&env), rt.state);

	/* Known accounts without a good poll: 1, outputs untouched; unknown ones: -1. */
	cr_expect_eq(gw_balance_get(rt.state, "main", &c, NULL, NULL), 1);
	cr_expect_eq(gw_balance_get(rt.state, "we\"ird", NULL, NULL, NULL), 1);
	cr_expect_float_eq(c, 1.0, 0);
	cr_expect_eq(gw_balance_get(rt.state, "mai", &c, NULL, NULL), -1);
	cr_expect_eq(gw_balance_get(rt.state, NULL, &c, NULL, NULL), -1);

	/* The observer table: GW_BALANCE_OBSERVERS_MAX, then refused and counted; NULL fn refused. */
	cr_expect_eq(gw_balance_on_update(rt.state, NULL, NULL), -1);
	for (int i = 0; i < GW_BALANCE_OBSERVERS_MAX; i++)
		cr_expect_eq(gw_balance_on_update(rt.state, bal_test_obs, NULL), 0, "observer %d", i);
	cr_expect_eq(gw_balance_on_update(rt.state, bal_test_obs, NULL), -1);

	/* The gauges' families are there for the chart's check, without a made-up sample; the
	 * counters have one per account, label values escaped. */
	text = bal_test_render(rt.state);
	static const struct {
		const char *line;
		int present;
	} lines[] = {
		{ "# TYPE animate3d_gateway_upstream_credit_balance gauge\n", 1 },
		{ "# TYPE animate3d_gateway_upstream_minutes_balance gauge\n", 1 },
		{ "# TYPE animate3d_gateway_upstream_balance_updated_seconds gauge\n", 1 },
		{ "animate3d_gateway_upstream_credit_balance{", 0 },
		{ "animate3d_gateway_upstream_minutes_balance{", 0 },
		{ "animate3d_gateway_upstream_balance_updated_seconds{", 0 },
		{ "animate3d_gateway_balance_polls_total{account=\"main\"} 0\n", 1 },
		{ "animate3d_gateway_balance_poll_failures_total{account=\"main\"} 0\n", 1 },
		{ "animate3d_gateway_balance_poll_failures_total{account=\"we\\\"ird\"} 0\n", 1 },
		{ "animate3d_gateway_balance_polls_skipped_total{account=\"main\"} 0\n", 1 },
		{ "animate3d_gateway_balance_poll_seconds 0\n", 1 },
		{ "animate3d_gateway_balance_observers_refused_total 1\n", 1 },
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		cr_expect_eq(strstr(text, lines[i].line) != NULL, lines[i].present, "%s in:\n%s",
			     lines[i].line, text);
	free(text);
	gw_svc_balance.drain(rt.state);
	gw_svc_balance.free(rt.state);
}
