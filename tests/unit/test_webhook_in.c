/* Unit tests for gateway/svc/webhook_in.c: path, size, signature, body -> HTTP status + counters. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/config/config.h"
#include "gateway/svc/webhook_in.h"

#define OK_BODY "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"Ab12Cd34Ef56Gh78Ij90Kl\",\"status\":\"success\"}}"

static struct gw_account_cfg accts[2] = {
	{ .name = (char *)"main", .client_id = (char *)"demo-client-id" },
	{ .name = (char *)"other", .client_id = (char *)"other-client" },
};
static struct gw_config cfg = { .accounts = accts, .naccounts = 2 };

enum which { C_OK, C_IGNORED, C_PATH, C_SIG, C_SIZE, C_BAD };

static const struct {
	const char *path;
	const char *sig;
	const char *body;	/* NULL: an oversized body */
	int http;
	enum which counter;
	const char *rid;	/* on 200 with job.completed */
	size_t account;
	int success;
} cases[] = {
	{ "/webhooks/animate3d/main", "demo-client-id", OK_BODY, 200, C_OK, "Ab12Cd34Ef56Gh78Ij90Kl", 0, 1 },
	{ "/webhooks/animate3d/other", "other-client",
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"r-1_x\",\"status\":\"failure\"}}",
	  200, C_OK, "r-1_x", 1, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id", "{\"eventType\":\"job.started\"}", 200,
	  C_IGNORED, "", 0, 0 },
	/* path */
	{ "/webhooks/animate3d/nobody", "demo-client-id", OK_BODY, 404, C_PATH, NULL, 0, 0 },
	{ "/webhooks/animate3d/", "demo-client-id", OK_BODY, 404, C_PATH, NULL, 0, 0 },
	{ "/webhooks/animate3d/main/x", "demo-client-id", OK_BODY, 404, C_PATH, NULL, 0, 0 },
	{ "/webhooks/other/main", "demo-client-id", OK_BODY, 404, C_PATH, NULL, 0, 0 },
	/* signature: forged, missing, prefix, longer, another account's id */
	{ "/webhooks/animate3d/main", "demo-client-iX", OK_BODY, 401, C_SIG, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", NULL, OK_BODY, 401, C_SIG, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "", OK_BODY, 401, C_SIG, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client", OK_BODY, 401, C_SIG, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id2", OK_BODY, 401, C_SIG, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "other-client", OK_BODY, 401, C_SIG, NULL, 0, 0 },
	/* size: checked before the signature, the body is never parsed */
	{ "/webhooks/animate3d/main", "demo-client-id", NULL, 413, C_SIZE, NULL, 0, 0 },
	/* malformed bodies, authentic signature */
	{ "/webhooks/animate3d/main", "demo-client-id", "", 400, C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id", "not json", 400, C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id", "[]", 400, C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id", "{\"data\":{}}", 400, C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id", "{\"eventType\":\"job.completed\"}", 400,
	  C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id",
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"a/b\",\"status\":\"success\"}}", 400,
	  C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id",
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":7,\"status\":\"success\"}}", 400, C_BAD,
	  NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id",
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"abc\",\"status\":\"done\"}}", 400,
	  C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id",
	  "{\"eventType\":\"job.completed\",\"eventType\":\"x\",\"data\":{\"taskId\":\"abc\",\"status\":\"success\"}}",
	  400, C_BAD, NULL, 0, 0 },
	{ "/webhooks/animate3d/main", "demo-client-id",
	  "{\"eventType\":\"job.completed\",\"data\":{\"taskId\":\"abc\",\"status\":\"success\",\"x\":[[[[[[[[[[1]]]]]]]]]]}}",
	  400, C_BAD, NULL, 0, 0 },
};

static uint64_t counter(const struct gw_webhook_in_counters *c, enum which w)
{
	switch (w) {
	case C_OK: return c->accepted;
	case C_IGNORED: return c->ignored;
	case C_PATH: return c->rej_path;
	case C_SIG: return c->rej_signature;
	case C_SIZE: return c->rej_size;
	default: return c->rej_malformed;
	}
}

Test(webhook_in, check_table)
{
	char *big = malloc(GW_WEBHOOK_IN_MAX_BODY + 2);

	cr_assert(big);
	memset(big, ' ', GW_WEBHOOK_IN_MAX_BODY + 1);
	big[GW_WEBHOOK_IN_MAX_BODY + 1] = '\0';
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gw_webhook_in_counters cnt = { 0 };
		struct gw_webhook_in_event ev;
		const char *body = cases[i].body ? cases[i].body : big;
		int http = gw_webhook_in_check(&cfg, NULL, cases[i].path, cases[i].sig, body,
					       strlen(body), &ev, &cnt);
		uint64_t total = cnt.accepted + cnt.ignored + cnt.rej_path + cnt.rej_signature +
				 cnt.rej_size + cnt.rej_malformed;

		cr_expect_eq(http, cases[i].http, "case %zu: HTTP %d want %d", i, http, cases[i].http);
		cr_expect_eq(counter(&cnt, cases[i].counter), 1, "case %zu: its counter", i);
		cr_expect_eq(total, 1, "case %zu: exactly one counter", i);
		if (http == 200 && cases[i].rid) {
			cr_expect_str_eq(ev.rid, cases[i].rid, "case %zu", i);
			cr_expect_eq(ev.account, cases[i].account, "case %zu", i);
			cr_expect_eq(ev.success, cases[i].success, "case %zu", i);
			cr_expect_eq(ev.completed, cases[i].counter == C_OK, "case %zu", i);
		}
	}
	free(big);
}

Test(webhook_in, body_exactly_at_the_limit_is_parsed)
{
	struct gw_webhook_in_counters cnt = { 0 };
	struct gw_webhook_in_event ev;
	size_t n = GW_WEBHOOK_IN_MAX_BODY;
	char *body = malloc(n + 1);
	size_t ok = strlen(OK_BODY);

	cr_assert(body);
	memcpy(body, OK_BODY, ok);
	memset(body + ok, ' ', n - ok);	/* trailing whitespace is valid JSON */
	body[n] = '\0';
	cr_expect_eq(gw_webhook_in_check(&cfg, NULL, "/webhooks/animate3d/main", "demo-client-id", body,
					 n, &ev, &cnt), 200);
	cr_expect_eq(cnt.accepted, 1);
	free(body);
}

/* webhooks.path_prefix: the configured prefix is served, the default one no longer is. */
static const struct {
	const char *prefix;	/* NULL: the default */
	const char *path;
	int match;
	int http;
	enum which counter;
} prefix_cases[] = {
	{ "/hooks/", "/hooks/main", 1, 200, C_OK },
	{ "/hooks/", "/hooks/other", 1, 401, C_SIG },	/* other's id differs: it is routed there */
	{ "/hooks/", "/webhooks/animate3d/main", 0, 404, C_PATH },
	{ "/hooks/", "/hooks", 0, 404, C_PATH },
	{ "/hooks/", "/hooksmain", 0, 404, C_PATH },
	{ "/hooks/", "/hooks/nobody", 1, 404, C_PATH },
	{ "/a/b.c-d_e~f/", "/a/b.c-d_e~f/main", 1, 200, C_OK },
	{ "/", "/main", 1, 200, C_OK },
	{ "/", "/x/main", 1, 404, C_PATH },
	{ NULL, "/webhooks/animate3d/main", 1, 200, C_OK },
	{ NULL, "/hooks/main", 0, 404, C_PATH },
	{ NULL, "/metrics", 0, 404, C_PATH },		/* a POST to a GET-only path */
	{ NULL, NULL, 0, 404, C_PATH },
};

Test(webhook_in, prefix_table)
{
	for (size_t i = 0; i < sizeof prefix_cases / sizeof prefix_cases[0]; i++) {
		struct gw_webhook_in_counters cnt = { 0 };
		struct gw_webhook_in_event ev;
		int http = gw_webhook_in_check(&cfg, prefix_cases[i].prefix, prefix_cases[i].path,
					       "demo-client-id", OK_BODY, strlen(OK_BODY), &ev, &cnt);

		cr_expect_eq(gw_webhook_in_match(prefix_cases[i].prefix, prefix_cases[i].path),
			     prefix_cases[i].match, "case %zu: match", i);
		cr_expect_eq(http, prefix_cases[i].http, "case %zu: HTTP %d", i, http);
		cr_expect_eq(counter(&cnt, prefix_cases[i].counter), 1, "case %zu: its counter", i);
	}
}

/* The served prefix comes from the boot configuration, default when there is none. */
Test(webhook_in, prefix_of_config)
{
	struct gw_config c = { .webhooks = { .path_prefix = (char *)"/hooks/" } };

	cr_expect_str_eq(gw_webhook_in_prefix(NULL), GW_WEBHOOK_IN_PREFIX);
	cr_expect_str_eq(gw_webhook_in_prefix(&c), "/hooks/");
	c.webhooks.path_prefix = NULL;
	cr_expect_str_eq(gw_webhook_in_prefix(&c), GW_WEBHOOK_IN_PREFIX);
	cr_expect_str_eq(GW_WEBHOOK_IN_PREFIX, GW_CONFIG_DEFAULT_WEBHOOK_PREFIX);
}

static const struct {
	const char *sig, *id;
	int ok;
} verify_cases[] = {
	{ "abc", "abc", 1 }, { "abd", "abc", 0 }, { "ab", "abc", 0 }, { "abcd", "abc", 0 },
	{ NULL, "abc", 0 }, { "abc", NULL, 0 }, { "", "", 0 }, { "ABC", "abc", 0 },
};

Test(webhook_in, verify_table)
{
	for (size_t i = 0; i < sizeof verify_cases / sizeof verify_cases[0]; i++)
		cr_expect_eq(gw_webhook_in_verify(verify_cases[i].sig, verify_cases[i].id),
			     verify_cases[i].ok, "case %zu", i);
}
