/* Unit tests for gateway/svc/webhook_in.c: path, size, signature, body -> HTTP status + counters. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ---- the path token (issue 13) ---- */

#define TOK_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"	/* 32 characters */
#define TOK_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char tokdir[] = "/tmp/a3d-test-webhook-token-XXXXXX";
static int tokdir_made;	/* (the random suffix may itself contain an 'X') */

/* Writes text into <tokdir>/<name> with mode; returns the path (static buffer). */
static const char *token_file(const char *name, const char *text, mode_t mode)
{
	static char path[256];
	FILE *f;

	if (!tokdir_made) {	/* first use: the template is still there */
		cr_assert_not_null(mkdtemp(tokdir));
		tokdir_made = 1;
	}
	snprintf(path, sizeof path, "%s/%s", tokdir, name);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

static void token_dir_rm(void)
{
	char cmd[300];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tokdir);
	cr_expect_eq(system(cmd), 0);
}

Test(webhook_in, token_file_table)
{
	static const struct {
		const char *text;
		mode_t mode;
		int rc;
		const char *want;	/* the token, or a piece of the error */
	} file_cases[] = {
		{ TOK_A "\n", 0600, 0, TOK_A },
		{ TOK_A "\r\n", 0400, 0, TOK_A },
		{ TOK_B, 0600, 0, TOK_B },
		{ TOK_A, 0640, -1, "group/world-accessible (mode 0640); chmod 600 it" },
		{ TOK_A, 0604, -1, "group/world-accessible" },
		{ "short\n", 0600, -1, "must hold 32 to 256 characters" },
		{ "", 0600, -1, "must hold 32 to 256 characters" },
		{ TOK_A "/x", 0600, -1, "must hold 32 to 256 characters" },
		{ TOK_A " ", 0600, -1, "must hold 32 to 256 characters" },
		{ TOK_B TOK_B TOK_B TOK_B "b", 0600, -1, "must hold 32 to 256 characters" },	/* 257 */
	};
	char out[GW_WEBHOOK_TOKEN_MAX + 1], err[256];

	for (size_t i = 0; i < sizeof file_cases / sizeof file_cases[0]; i++) {
		size_t len = 99;
		int rc = gw_webhook_token_read(token_file("t", file_cases[i].text, file_cases[i].mode), out, &len, err,
					       sizeof err);

		cr_expect_eq(rc, file_cases[i].rc, "case %zu: rc %d (%s)", i, rc, err);
		if (rc == 0) {
			cr_expect_str_eq(out, file_cases[i].want, "case %zu", i);
			cr_expect_eq(len, strlen(file_cases[i].want), "case %zu", i);
		} else {
			cr_expect(strstr(err, file_cases[i].want), "case %zu: %s", i, err);
			cr_expect(!strstr(err, "aaaaaaaa") && !strstr(err, "bbbbbbbb"), "case %zu: leaks", i);
		}
	}
	cr_expect_eq(gw_webhook_token_read("/nonexistent/token", out, &(size_t){ 0 }, err, sizeof err), -1);
	cr_expect(strstr(err, "cannot open"), "%s", err);
	token_dir_rm();
}

/* Start with A, rotate to B with a grace of 1000 ms: A works until then, B from then on; a path
 * without the token, or with a wrong one, is 404 counted as bad_token. */
Test(webhook_in, token_path_and_rotation_table)
{
	static const struct {
		int rotate;		/* before this case: reload with TOK_B (1), or tokens off (2) */
		int64_t now_ms;
		const char *path;
		int http;
		int old_token;
	} path_cases[] = {
		{ 0, 1000, "/webhooks/animate3d/" TOK_A "/main", 200, 0 },
		{ 0, 1000, "/webhooks/animate3d/main", 404, 0 },			/* no token */
		{ 0, 1000, "/webhooks/animate3d/" TOK_B "/main", 404, 0 },		/* not (yet) ours */
		{ 0, 1000, "/webhooks/animate3d/" TOK_A "x/main", 404, 0 },
		{ 0, 1000, "/webhooks/animate3d/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/main", 404, 0 },	/* prefix */
		{ 0, 1000, "/webhooks/animate3d/" TOK_A "/nobody", 404, 0 },	/* token fine, no account */
		{ 0, 1000, "/webhooks/animate3d/" TOK_A "/main/x", 404, 0 },
		{ 1, 2000, "/webhooks/animate3d/" TOK_B "/main", 200, 0 },
		{ 0, 2999, "/webhooks/animate3d/" TOK_A "/main", 200, 1 },		/* within the grace */
		{ 0, 3000, "/webhooks/animate3d/" TOK_A "/main", 404, 0 },		/* grace over */
		{ 0, 3000, "/webhooks/animate3d/" TOK_B "/main", 200, 0 },
		{ 2, 4000, "/webhooks/animate3d/main", 200, 0 },			/* tokens off */
		{ 0, 4500, "/webhooks/animate3d/" TOK_B "/main", 200, 1 },		/* B in its grace */
		{ 0, 5000, "/webhooks/animate3d/" TOK_B "/main", 404, 0 },
	};
	struct gw_webhook_token t;
	const char *pa;
	char err[256], pb_path[256];

	pa = token_file("a", TOK_A "\n", 0600);
	cr_assert_eq(gw_webhook_token_init(&t, pa, err, sizeof err), 0, "%s", err);
	snprintf(pb_path, sizeof pb_path, "%s", token_file("b", TOK_B "\n", 0600));
	for (size_t i = 0; i < sizeof path_cases / sizeof path_cases[0]; i++) {
		struct gw_webhook_in_counters cnt = { 0 };
		struct gw_webhook_in_event ev;
		int http;

		if (path_cases[i].rotate)
			cr_assert_eq(gw_webhook_token_reload(&t, path_cases[i].rotate == 1 ? pb_path : NULL, 1000,
							     path_cases[i].now_ms, err, sizeof err), 1, "case %zu", i);
		http = gw_webhook_in_check_at(&cfg, NULL, &t, path_cases[i].now_ms, path_cases[i].path, "demo-client-id",
					      OK_BODY, strlen(OK_BODY), &ev, &cnt);
		cr_expect_eq(http, path_cases[i].http, "case %zu: HTTP %d", i, http);
		if (http == 200) {
			cr_expect_eq(ev.old_token, path_cases[i].old_token, "case %zu", i);
			cr_expect_eq(cnt.old_token, (uint64_t)path_cases[i].old_token, "case %zu", i);
		} else {
			cr_expect_eq(cnt.rej_token + cnt.rej_path, 1, "case %zu", i);
		}
		/* Without an account in the path the token decides (404 bad_token), never the name. */
		if (i == 1 || i == 2 || i == 3)
			cr_expect_eq(cnt.rej_token, 1, "case %zu: counted as bad_token", i);
	}
	/* The same token again is no rotation; an unusable file keeps the tokens in force. */
	cr_expect_eq(gw_webhook_token_reload(&t, NULL, 1000, 6000, err, sizeof err), 0);
	cr_expect_eq(gw_webhook_token_reload(&t, pb_path, 1000, 6000, err, sizeof err), 1);
	cr_expect_eq(gw_webhook_token_reload(&t, pb_path, 1000, 6000, err, sizeof err), 0);
	cr_expect_eq(gw_webhook_token_reload(&t, token_file("c", "bad", 0600), 1000, 6000, err, sizeof err), -1);
	cr_expect_str_eq(gw_webhook_token_current(&t), TOK_B);
	cr_expect_eq(gw_webhook_token_match(&t, TOK_B, strlen(TOK_B), 6000), 1);
	gw_webhook_token_clear(&t);
	cr_expect_null(gw_webhook_token_current(&t));
	cr_expect_eq(gw_webhook_token_init(&t, NULL, err, sizeof err), 0);
	cr_expect_eq(t.set, 0);
	cr_expect_eq(gw_webhook_token_init(&t, token_file("d", TOK_A, 0644), err, sizeof err), -1);
	token_dir_rm();
}
