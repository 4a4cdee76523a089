/*
 * Unit tests for gateway/svc/rpc_idem.c, its pure parts: the request identity (fingerprint and
 * source), which failed /process certainly started nothing, the (tenant, key) bucket and the
 * settle delay before a RESUBMIT, with the clock as a parameter. The state machine they feed is
 * gateway/state/owner.c's (test_owner.c); the call-facing path runs in
 * tests/integration/test_idempotency.py.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <grpc/status.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "gateway/call/env.h"
#include "gateway/config/config.h"
#include "gateway/state/store.h"
#include "gateway/svc/rpc_idem.h"
#include "gateway/upstream/upstream.h"
#include "pb_lines.h"

/* ---- identity ---- */

/* Every row starts from this request, then applies its own lines (a singular field is replaced,
 * a repeated one gets one more element). */
static const char *const base_lines[] = {
	"upload_url=https://s.example/v/a.mp4?sig=1", "params.formats=bvh", "params.model_id=MA",
	"idempotency_key=k1", NULL,
};

enum { DIFFERENT = 0, SAME = 1 };

static const struct {
	const char *name;
	const char *lines[PB_LINES_MAX];
	int same_fp;		/* as the base request's */
	const char *source;	/* NULL: gw_rpc_idem_identity refuses the request */
} identity_cases[] = {
	{ "the base request itself", { NULL }, SAME, "https://s.example/v/a.mp4" },
	{ "another key", { "idempotency_key=k2" }, SAME, "https://s.example/v/a.mp4" },
	{ "no key", { "idempotency_key=" }, SAME, "https://s.example/v/a.mp4" },
	{ "another signature of the same upload", { "upload_url=https://s.example/v/a.mp4?sig=2" },
	  DIFFERENT, "https://s.example/v/a.mp4" },
	{ "another upload", { "upload_url=https://s.example/v/b.mp4?sig=1" }, DIFFERENT,
	  "https://s.example/v/b.mp4" },
	{ "one more format", { "params.formats=fbx" }, DIFFERENT, "https://s.example/v/a.mp4" },
	{ "another model", { "params.model_id=MB" }, DIFFERENT, "https://s.example/v/a.mp4" },
	{ "a tracked model", { "params.models.model_id=MB" }, DIFFERENT, "https://s.example/v/a.mp4" },
	{ "an extra parameter", { "extra_params=trim=0,5" }, DIFFERENT, "https://s.example/v/a.mp4" },
	{ "a pipeline", { "params.pipeline=mp_detection" }, DIFFERENT, "https://s.example/v/a.mp4" },
	{ "a rerun instead", { "rerun_rid=RA" }, DIFFERENT, "rerun:RA" },
	{ "a multi-person run instead", { "mp_detection_rid=RB" }, DIFFERENT, "mp:RB" },
	{ "an empty upload url", { "upload_url=" }, DIFFERENT, NULL },
};

static Animate3d__V1__StartJobRequest *t_request(const char *const *lines)
{
	ProtobufCMessage *m = pb_lines_msg(&animate3d__v1__start_job_request__descriptor, base_lines);

	pb_lines_apply(m, lines);
	return (Animate3d__V1__StartJobRequest *)(void *)m;
}

Test(rpc_idem, identity_table)
{
	Animate3d__V1__StartJobRequest *base = t_request((const char *const[]){ NULL });
	uint8_t base_fp[32];
	char source[GW_STORE_SOURCE_MAX + 1];

	cr_assert_eq(gw_rpc_idem_identity(base, base_fp, source, sizeof source), 0);
	for (size_t i = 0; i < sizeof identity_cases / sizeof identity_cases[0]; i++) {
		Animate3d__V1__StartJobRequest *r = t_request(identity_cases[i].lines);
		const char *key = r->idempotency_key;
		uint8_t fp[32];
		int rc;

		source[0] = '\0';
		rc = gw_rpc_idem_identity(r, fp, source, sizeof source);
		if (!identity_cases[i].source) {
			cr_expect_eq(rc, -1, "%s", identity_cases[i].name);
		} else {
			cr_expect_eq(rc, 0, "%s", identity_cases[i].name);
			cr_expect_str_eq(source, identity_cases[i].source, "%s", identity_cases[i].name);
			cr_expect_eq(memcmp(fp, base_fp, sizeof fp) == 0, identity_cases[i].same_fp,
				     "%s: fingerprint", identity_cases[i].name);
		}
		/* The key is cleared in a copy: the request stays the caller's. */
		cr_expect_eq(r->idempotency_key, key, "%s", identity_cases[i].name);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	protobuf_c_message_free_unpacked(&base->base, NULL);
}

/* No source at all, or one longer than the store keeps: refused, never truncated. */
Test(rpc_idem, identity_refusals)
{
	Animate3d__V1__StartJobRequest *r = t_request((const char *const[]){ NULL });
	uint8_t fp[32];
	char source[GW_STORE_SOURCE_MAX + 1], small[8];

	cr_expect_eq(gw_rpc_idem_identity(r, fp, small, sizeof small), -1, "source over cap");
	r->source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE__NOT_SET;
	cr_expect_eq(gw_rpc_idem_identity(r, fp, source, sizeof source), -1, "no source");
	r->source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL;
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* ---- which failures started nothing ---- */

static const struct {
	const char *name;
	struct gw_up_response res;
	int never_started;	/* 1: the key is forgotten; 0: outcome unknown, the key stays PENDING */
} never_cases[] = {
	{ "refused by the account's protection", { .limited = GRPC_STATUS_RESOURCE_EXHAUSTED,
						   .curl_rc = CURLE_COULDNT_CONNECT }, 1 },
	{ "refused, even with a status", { .limited = GRPC_STATUS_UNAVAILABLE, .http_status = 503 }, 1 },
	{ "no session", { .no_session = 1, .http_status = 401 }, 1 },
	{ "connection refused", { .curl_rc = CURLE_COULDNT_CONNECT }, 1 },
	{ "host not resolved", { .curl_rc = CURLE_COULDNT_RESOLVE_HOST }, 1 },
	{ "timed out", { .curl_rc = CURLE_OPERATION_TIMEDOUT }, 0 },
	{ "connection lost while receiving", { .curl_rc = CURLE_RECV_ERROR }, 0 },
	{ "connection lost while sending", { .curl_rc = CURLE_SEND_ERROR }, 0 },
	{ "closed without an answer", { .curl_rc = CURLE_GOT_NOTHING }, 0 },
	{ "answer too large", { .curl_rc = CURLE_WRITE_ERROR }, 0 },
	{ "400", { .http_status = 400 }, 1 },
	{ "404", { .http_status = 404 }, 1 },
	{ "429", { .http_status = 429 }, 1 },
	{ "499", { .http_status = 499 }, 1 },
	{ "500", { .http_status = 500 }, 0 },
	{ "503", { .http_status = 503 }, 0 },
	{ "200 that did not parse", { .http_status = 200 }, 0 },
	{ "302", { .http_status = 302 }, 0 },
};

Test(rpc_idem, never_started_table)
{
	for (size_t i = 0; i < sizeof never_cases / sizeof never_cases[0]; i++)
		cr_expect_eq(gw_rpc_idem_never_started(&never_cases[i].res), never_cases[i].never_started,
			     "%s", never_cases[i].name);
}

/* ---- the (tenant, key) bucket ---- */

/* FNV-1a 32, written from its definition for the test. */
static uint32_t t_fnv1a(const char *bytes, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)bytes[i]) * 16777619u;
	return h;
}

Test(rpc_idem, bucket_table)
{
	/* Published FNV-1a 32 values: the reference above is the real thing. */
	cr_assert_eq(t_fnv1a("", 0), 0x811c9dc5u);
	cr_assert_eq(t_fnv1a("a", 1), 0xe40c292cu);
	cr_assert_eq(t_fnv1a("foobar", 6), 0xbf9cf968u);

	static const struct {
		const char *tenant, *key;
		size_t want;	/* FNV-1a 32 of tenant, 0xff, key, modulo GW_RPC_IDEM_SLOTS */
	} t[] = {
		{ "team-a", "k1", 1347 }, { "team-a", "k2", 1750 }, { "team-b", "k1", 1588 },
		{ "ab", "c", 2276 },	  { "a", "bc", 1142 },	    { "", "", 590 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char joined[64];
		size_t n = (size_t)snprintf(joined, sizeof joined, "%s\xff%s", t[i].tenant, t[i].key);

		cr_expect_eq(gw_rpc_idem_bucket(t[i].tenant, t[i].key), t[i].want, "(%s, %s)",
			     t[i].tenant, t[i].key);
		cr_expect_eq(t_fnv1a(joined, n) % GW_RPC_IDEM_SLOTS, t[i].want, "(%s, %s) reference",
			     t[i].tenant, t[i].key);
	}
}

/* ---- the settle delay ---- */

#define T_START 1000000000LL	/* the process started (wall ms) */
#define T_SETTLE 30000L

static const struct {
	const char *name;
	long settle_ms;
	struct {
		const char *tenant, *key;
		int64_t at;	/* relative to T_START */
	} marks[3];		/* unsettled attempts, in this order; tenant NULL ends them */
	const char *tenant, *key;
	int64_t now;		/* relative to T_START */
	int64_t want;
} settle_cases[] = {
	{ "no attempt yet: counted from the start", T_SETTLE, { { NULL } }, "a", "k1", 1000, 29000 },
	{ "settled since the start", T_SETTLE, { { NULL } }, "a", "k1", 30000, 0 },
	{ "long settled", T_SETTLE, { { NULL } }, "a", "k1", 400000, 0 },
	{ "from the last unsettled attempt", T_SETTLE, { { "a", "k1", 5000 } }, "a", "k1", 6000, 29000 },
	{ "settled after the attempt", T_SETTLE, { { "a", "k1", 5000 } }, "a", "k1", 35000, 0 },
	{ "an older attempt does not shorten the wait", T_SETTLE,
	  { { "a", "k1", 5000 }, { "a", "k1", 2000 } }, "a", "k1", 6000, 29000 },
	{ "a later attempt lengthens it", T_SETTLE, { { "a", "k1", 5000 }, { "a", "k1", 9000 } }, "a",
	  "k1", 10000, 29000 },
	{ "an attempt before the start counts from the start", T_SETTLE, { { "a", "k1", -20000 } },
	  "a", "k1", 1000, 29000 },
	{ "another key (another bucket) is not held back", T_SETTLE, { { "team-a", "k1", 50000 } },
	  "team-a", "k2", 51000, 0 },
	{ "another tenant (another bucket) is not held back", T_SETTLE, { { "team-a", "k1", 50000 } },
	  "team-b", "k1", 51000, 0 },
	{ "no settle time configured", 0, { { "a", "k1", 5000 } }, "a", "k1", 5000, 0 },
	{ "the clock before the attempt: the whole settle time", T_SETTLE, { { "a", "k1", 5000 } },
	  "a", "k1", 4000, 31000 },
};

Test(rpc_idem, settle_table)
{
	cr_assert_neq(gw_rpc_idem_bucket("team-a", "k1"), gw_rpc_idem_bucket("team-a", "k2"));
	cr_assert_neq(gw_rpc_idem_bucket("team-a", "k1"), gw_rpc_idem_bucket("team-b", "k1"));
	for (size_t i = 0; i < sizeof settle_cases / sizeof settle_cases[0]; i++) {
		struct gw_config cfg = { 0 };
		struct gw_env env = { 0 };
		struct gw_rpc_idem *st = calloc(1, sizeof *st);	/* 32 KiB of buckets */

		cr_assert_not_null(st);
		cfg.state.reconcile_settle_ms = settle_cases[i].settle_ms;
		env.cfg = &cfg;
		env.started_wall_ms = T_START;
		st->env = &env;
		for (size_t k = 0; k < 3 && settle_cases[i].marks[k].tenant; k++)
			gw_rpc_idem_unsettled(st, settle_cases[i].marks[k].tenant, settle_cases[i].marks[k].key,
					      T_START + settle_cases[i].marks[k].at);
		cr_expect_eq(gw_rpc_idem_settle_left(st, settle_cases[i].tenant, settle_cases[i].key,
						     T_START + settle_cases[i].now),
			     settle_cases[i].want, "%s", settle_cases[i].name);
		free(st);
	}
}
