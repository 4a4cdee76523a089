/*
 * Unit tests for gateway/svc/rpc_owner.c, its pure parts: which ids a request names and how each
 * is checked (gw_rpc_owner_refs), what the store's answers about them mean for a tenant
 * (gw_rpc_owner_decide: pure, given who owns each; the answers come from the memory store, asked
 * as gw_rpc_owner_admit asks, one lookup per kind) and what a 2xx reply records, forgets or
 * filters (gw_rpc_owner_effect).
 * The call-facing functions only act on these answers.
 *
 * Requests and replies are built from the real method table (gateway/methods.c: each method's
 * ownership kind and message types) and "field=value" lines (pb_lines.h).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <protobuf-c/protobuf-c.h>

#include "gateway/call/call.h"
#include "gateway/methods.h"
#include "gateway/state/owner.h"
#include "gateway/state/store.h"
#include "gateway/svc/rpc_owner.h"
#include "pb_lines.h"

#define T_WANT_MAX 6		/* refs or masked ids a row expects */
#define T_STR_MAX 192

/* ---- messages from lines ---- */

static const struct gw_method *t_method(const char *name)
{
	size_t n;
	const struct gw_method *m = gw_methods(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].name, name) == 0)
			return &m[i];
	cr_assert_fail("no method %s", name);
	return NULL;
}

/* ---- refs as text: "<rule> <kind> <id>", " [i]" for params.models[i]; "upload:<url>" in an
 * expectation stands for the upload id of that URL ---- */

static const char *t_kind(enum gw_store_kind k)
{
	switch (k) {
	case GW_OBJ_JOB: return "job";
	case GW_OBJ_MODEL: return "model";
	case GW_OBJ_ENDPOINT: return "endpoint";
	case GW_OBJ_UPLOAD: return "upload";
	default: return "?";
	}
}

static void t_ref_str(const struct gw_ro_ref *r, char *out, size_t cap)
{
	static const char *const rules[] = { "own", "not-others", "mask" };
	int n = snprintf(out, cap, "%s %s %s", rules[r->rule], t_kind(r->kind), r->id);

	if (r->rule == GW_RO_MASK && r->model >= 0)
		snprintf(out + n, cap - (size_t)n, " [%d]", r->model);
}

static void t_want_str(const char *want, char *out, size_t cap)
{
	const char *u = strstr(want, "upload:");
	char id[GW_OWNER_UPLOAD_ID_LEN + 1];

	if (!u) {
		snprintf(out, cap, "%s", want);
		return;
	}
	cr_assert_eq(gw_owner_upload_id(u + 7, id, sizeof id), 0, "%s", want);
	snprintf(out, cap, "%.*s%s", (int)(u - want), want, id);
}

/* ---- which ids a request names ---- */

static const struct {
	const char *method;
	const char *sets[PB_LINES_MAX];
	const char *want[T_WANT_MAX];	/* in order */
} refs_cases[] = {
	{ "GetVideoInfo", { "upload_url=https://s.example/v/a.mp4?sig=1" },
	  { "own upload upload:https://s.example/v/a.mp4" } },
	{ "GetVideoInfo", { "upload_url=" }, { NULL } },		/* the row says it is missing */
	{ "GetVideoInfo", { "upload_url=?sig=only" }, { NULL } },	/* no object: no upload id */
	{ "StartJob", { "upload_url=https://s.example/v/a.mp4" },
	  { "own upload upload:https://s.example/v/a.mp4" } },
	{ "StartJob", { "rerun_rid=RA" }, { "own job RA" } },
	{ "StartJob", { "mp_detection_rid=RB" }, { "own job RB" } },
	{ "StartJob", { "rerun_rid=not a rid!" }, { NULL } },		/* malformed: the row rejects it */
	{ "StartJob",
	  { "upload_url=https://s.example/v/a.mp4", "params.model_id=MB", "params.models.model_id=MA",
	    "params.models.model_id=", "params.models.model_id=MC" },
	  { "own upload upload:https://s.example/v/a.mp4", "mask model MB", "mask model MA [0]",
	    "mask model MC [2]" } },
	{ "StartJob", { "params.model_id=MB" }, { "mask model MB" } },	/* no source: the row says so */
	/* GetPersonUrls (issue 19): its one rid must be the tenant's job. */
	{ "GetPersonUrls", { "rid=RA" }, { "own job RA" } },
	{ "GetPersonUrls", { "rid=" }, { NULL } },		/* the row says it is missing */
	{ "GetPersonUrls", { "rid=a/b" }, { NULL } },		/* malformed: the row rejects it */
	/* The model, and the uploaded files it is made from (another team's upload: NOT_FOUND). */
	{ "StoreModel", { "model_id=MA", "model_url=https://s.example/m.fbx" },
	  { "own model MA", "own upload upload:https://s.example/m.fbx" } },
	{ "StoreModel", { "model_url=https://s.example/m.fbx?s=1", "thumb_url=https://s.example/t.png" },
	  { "own upload upload:https://s.example/m.fbx", "own upload upload:https://s.example/t.png" } },
	{ "StoreModel", { "model_url=not a url" }, { NULL } },	/* malformed: the row rejects it */
	{ "ListModels", { "model_id=MB" }, { "not-others model MB" } },
	{ "ListModels", { NULL }, { NULL } },
	{ "DeleteModel", { "model_id=MA" }, { "own model MA" } },
	{ "GetEndpoint", { "id=EA" }, { "own endpoint EA" } },
	{ "UpdateEndpoint", { "id=EB", "url=https://hooks.example/x" }, { "own endpoint EB" } },
	{ "DeleteEndpoint", { "id=EA" }, { "own endpoint EA" } },
	/* Filtered, not refused (gw_rpc_owner_admit); lists and creations name nothing to check. */
	{ "GetStatus", { "rids=RA", "rids=RB" }, { NULL } },
	{ "GetDownloadUrls", { "rids=RA" }, { NULL } },
	{ "ListJobs", { NULL }, { NULL } },
	{ "GetUploadUrl", { "name=a.mp4" }, { NULL } },
	{ "CreateEndpoint", { "url=https://hooks.example/x" }, { NULL } },
	{ "ListEndpoints", { NULL }, { NULL } },
	{ "GetCreditBalance", { NULL }, { NULL } },
};

Test(rpc_owner, refs_table)
{
	for (size_t i = 0; i < sizeof refs_cases / sizeof refs_cases[0]; i++) {
		const struct gw_method *m = t_method(refs_cases[i].method);
		ProtobufCMessage *req = pb_lines_msg(m->req_desc, refs_cases[i].sets);
		struct gw_ro_refs refs;
		size_t want_n = 0;

		gw_rpc_owner_refs((enum ro_kind)m->own, req, &refs);
		while (want_n < T_WANT_MAX && refs_cases[i].want[want_n])
			want_n++;
		cr_expect_eq(refs.n, want_n, "%s case %zu: %zu refs", refs_cases[i].method, i, refs.n);
		for (size_t k = 0; k < refs.n && k < want_n; k++) {
			char got[T_STR_MAX], want[T_STR_MAX];

			t_ref_str(&refs.r[k], got, sizeof got);
			t_want_str(refs_cases[i].want[k], want, sizeof want);
			cr_expect_str_eq(got, want, "%s case %zu ref %zu", refs_cases[i].method, i, k);
		}
		protobuf_c_message_free_unpacked(req, NULL);
	}
}

/* Only the first GW_PARAMS_MAX_MODELS tracked models are looked at: the row refuses more. */
Test(rpc_owner, refs_models_bounded)
{
	const struct gw_method *m = t_method("StartJob");
	ProtobufCMessage *req = pb_lines_msg(m->req_desc, (const char *const[]){ "rerun_rid=RA", NULL });
	struct gw_ro_refs refs;

	for (int i = 0; i < GW_PARAMS_MAX_MODELS + 3; i++)
		pb_lines_set(req, "params.models.model_id", "MB");
	gw_rpc_owner_refs(RO_START_JOB, req, &refs);
	cr_expect_eq(refs.n, 1 + GW_PARAMS_MAX_MODELS);
	cr_expect_eq(refs.r[refs.n - 1].model, GW_PARAMS_MAX_MODELS - 1);
	protobuf_c_message_free_unpacked(req, NULL);
}

/* ---- what the store says ---- */

/* The store's answer, copied (res is valid during done only). The memory store answers inline. */
struct t_got {
	int n, rc;
	size_t nids;
	char who[GW_RO_REFS_MAX][GW_STORE_TENANT_MAX + 1];
	int found[GW_RO_REFS_MAX];
};

static void t_done(void *arg, const struct gw_store_res *r)
{
	struct t_got *g = arg;

	g->n++;
	g->rc = r->rc;
	for (size_t i = 0; r->rc == 0 && r->tenants && i < g->nids; i++) {
		g->found[i] = r->tenants[i] != NULL;
		snprintf(g->who[i], sizeof g->who[i], "%s", r->tenants[i] ? r->tenants[i] : "");
	}
}

/*
 * who[i] for each ref, as gw_rpc_owner_admit gathers them: one owner_lookup per kind of the refs'
 * ids; bufs holds the copies. Returns the store's rc.
 */
static int t_who(struct gw_store *s, const struct gw_ro_refs *refs, const char **who,
		 char (*bufs)[GW_STORE_TENANT_MAX + 1])
{
	for (size_t i = 0; i < refs->n; i++)
		who[i] = NULL;
	for (int k = GW_OBJ_JOB; k <= GW_OBJ_UPLOAD; k++) {
		const char *ids[GW_RO_REFS_MAX];
		size_t map[GW_RO_REFS_MAX], n = 0;
		struct t_got g = { 0 };

		for (size_t i = 0; i < refs->n; i++)
			if ((int)refs->r[i].kind == k) {
				map[n] = i;
				ids[n++] = refs->r[i].id;
			}
		if (!n)
			continue;
		g.nids = n;
		gw_store_owner_lookup(s, (enum gw_store_kind)k, ids, n, t_done, &g);
		cr_assert_eq(g.n, 1, "done ran before the call returned");
		if (g.rc != 0)
			return g.rc;
		for (size_t j = 0; j < n; j++) {
			if (!g.found[j])
				continue;
			snprintf(bufs[map[j]], sizeof bufs[0], "%s", g.who[j]);
			who[map[j]] = bufs[map[j]];
		}
	}
	return 0;
}

#define T_URL_A "https://s.example/v/a.mp4"
#define T_URL_B "https://s.example/v/b.mp4"

static struct gw_store *t_seeded(void)
{
	static const struct {
		enum gw_store_kind k;
		const char *id, *tenant;
	} rows[] = {
		{ GW_OBJ_JOB, "RA", "team-a" },		{ GW_OBJ_JOB, "RB", "team-b" },
		{ GW_OBJ_MODEL, "MA", "team-a" },	{ GW_OBJ_MODEL, "MB", "team-b" },
		{ GW_OBJ_ENDPOINT, "EA", "team-a" },	{ GW_OBJ_ENDPOINT, "EB", "team-b" },
		{ GW_OBJ_UPLOAD, T_URL_A, "team-a" },	{ GW_OBJ_UPLOAD, T_URL_B, "team-b" },
	};
	struct gw_store *s = gw_store_open(NULL, 0, NULL, 0);

	cr_assert_not_null(s);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char id[GW_OWNER_UPLOAD_ID_LEN + 1];
		const char *k = rows[i].id;

		if (rows[i].k == GW_OBJ_UPLOAD) {
			cr_assert_eq(gw_owner_upload_id(rows[i].id, id, sizeof id), 0);
			k = id;
		}
		struct t_got g = { 0 };

		gw_store_owner_put(s, rows[i].k, k, rows[i].tenant, 1, t_done, &g);
		cr_assert_eq(g.n, 1, "done ran before the call returned");
		cr_assert_eq(g.rc, 0);
	}
	return s;	/* RX, MX, EX: recorded for nobody (created outside the gateway, or stock) */
}

static const struct {
	const char *tenant;
	int see_foreign;
	const char *method;
	const char *sets[PB_LINES_MAX];
	enum gw_ro_verdict want;
	const char *masked[T_WANT_MAX];	/* the refs masked, as refs_cases writes them */
} decide_cases[] = {
	/* uploads: every signed URL of the tenant's object, nobody else's */
	{ "team-a", 0, "GetVideoInfo", { "upload_url=" T_URL_A "?sig=2" }, GW_RO_ALLOW, { NULL } },
	{ "team-a", 0, "GetVideoInfo", { "upload_url=" T_URL_B }, GW_RO_DENY, { NULL } },
	{ "team-a", 1, "GetVideoInfo", { "upload_url=" T_URL_B }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "GetVideoInfo", { "upload_url=https://s.example/v/x.mp4" }, GW_RO_DENY, { NULL } },
	{ "team-a", 1, "GetVideoInfo", { "upload_url=https://s.example/v/x.mp4" }, GW_RO_ALLOW, { NULL } },
	{ "team-a", 0, "GetVideoInfo", { "upload_url=" }, GW_RO_ALLOW, { NULL } },	/* left to the row */
	/* StartJob: the source must be the tenant's; others' models are masked, never refused */
	{ "team-a", 0, "StartJob", { "rerun_rid=RA" }, GW_RO_ALLOW, { NULL } },
	{ "team-a", 0, "StartJob", { "rerun_rid=RB" }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "StartJob", { "rerun_rid=RX" }, GW_RO_DENY, { NULL } },
	{ "team-a", 1, "StartJob", { "rerun_rid=RX" }, GW_RO_ALLOW, { NULL } },
	{ "team-b", 0, "StartJob", { "mp_detection_rid=RB" }, GW_RO_ALLOW, { NULL } },
	{ "team-a", 0, "StartJob", { "mp_detection_rid=RB" }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "StartJob", { "upload_url=" T_URL_A, "params.model_id=MB" }, GW_RO_ALLOW,
	  { "mask model MB" } },
	{ "team-a", 0, "StartJob", { "upload_url=" T_URL_A, "params.model_id=MA" }, GW_RO_ALLOW,
	  { NULL } },
	{ "team-a", 0, "StartJob", { "upload_url=" T_URL_A, "params.model_id=MX" }, GW_RO_ALLOW,
	  { NULL } },	/* stock: shared */
	{ "team-a", 0, "StartJob",
	  { "upload_url=" T_URL_A, "params.models.model_id=MA", "params.models.model_id=MB",
	    "params.models.model_id=MX", "params.models.model_id=MB" },
	  GW_RO_ALLOW, { "mask model MB [1]", "mask model MB [3]" } },
	{ "team-a", 0, "StartJob", { "upload_url=" T_URL_B, "params.model_id=MB" }, GW_RO_DENY,
	  { NULL } },	/* the source decides first */
	/* GetPersonUrls: another team's job and an unrecorded one look alike (NOT_FOUND) */
	{ "team-a", 0, "GetPersonUrls", { "rid=RA" }, GW_RO_ALLOW, { NULL } },
	{ "team-b", 0, "GetPersonUrls", { "rid=RA" }, GW_RO_DENY, { NULL } },
	{ "team-b", 1, "GetPersonUrls", { "rid=RA" }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "GetPersonUrls", { "rid=RX" }, GW_RO_DENY, { NULL } },
	{ "team-a", 1, "GetPersonUrls", { "rid=RX" }, GW_RO_ALLOW, { NULL } },
	/* models */
	{ "team-a", 0, "StoreModel", { "model_id=MA" }, GW_RO_ALLOW, { NULL } },
	{ "team-a", 0, "StoreModel", { "model_id=MB" }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "StoreModel", { "model_id=MX" }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "DeleteModel", { "model_id=MB" }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "ListModels", { "model_id=MB" }, GW_RO_DENY, { NULL } },
	{ "team-a", 0, "ListModels", { "model_id=MX" }, GW_RO_ALLOW, { NULL } },
	{ "team-b", 0, "ListModels", { "model_id=MB" }, GW_RO_ALLOW, { NULL } },
	/* endpoints: even see_foreign never shows another tenant's */
	{ "team-a", 0, "GetEndpoint", { "id=EA" }, GW_RO_ALLOW, { NULL } },
	{ "team-a", 1, "UpdateEndpoint", { "id=EB" }, GW_RO_DENY, { NULL } },
	{ "team-b", 0, "DeleteEndpoint", { "id=EA" }, GW_RO_DENY, { NULL } },
	{ "team-b", 0, "DeleteEndpoint", { "id=EX" }, GW_RO_DENY, { NULL } },
};

Test(rpc_owner, decide_table)
{
	struct gw_store *s = t_seeded();

	for (size_t i = 0; i < sizeof decide_cases / sizeof decide_cases[0]; i++) {
		const struct gw_method *m = t_method(decide_cases[i].method);
		ProtobufCMessage *req = pb_lines_msg(m->req_desc, decide_cases[i].sets);
		unsigned char mask[GW_RO_REFS_MAX];
		char bufs[GW_RO_REFS_MAX][GW_STORE_TENANT_MAX + 1];
		const char *who[GW_RO_REFS_MAX];
		struct gw_ro_refs refs;
		enum gw_ro_verdict v;
		size_t k = 0;

		gw_rpc_owner_refs((enum ro_kind)m->own, req, &refs);
		cr_assert_eq(t_who(s, &refs, who, bufs), 0, "case %zu", i);
		memset(mask, 0xee, sizeof mask);
		v = gw_rpc_owner_decide(decide_cases[i].tenant, decide_cases[i].see_foreign, &refs, who, mask);
		cr_expect_eq(v, decide_cases[i].want, "%s case %zu: verdict %d", decide_cases[i].method, i, v);
		for (size_t r = 0; v == GW_RO_ALLOW && r < refs.n; r++) {
			char got[T_STR_MAX];

			cr_expect(mask[r] <= 1, "case %zu: mask[%zu] not written", i, r);
			if (!mask[r])
				continue;
			t_ref_str(&refs.r[r], got, sizeof got);
			cr_expect(k < T_WANT_MAX && decide_cases[i].masked[k], "case %zu: %s masked", i, got);
			if (k < T_WANT_MAX && decide_cases[i].masked[k])
				cr_expect_str_eq(got, decide_cases[i].masked[k], "case %zu", i);
			k++;
		}
		cr_expect(v != GW_RO_ALLOW || k >= T_WANT_MAX || !decide_cases[i].masked[k],
			  "case %zu: fewer masked than expected", i);
		protobuf_c_message_free_unpacked(req, NULL);
	}
	gw_store_close(s);
}

/*
 * The decision alone, on answers written by hand (the store is no longer asked here: a store
 * failure is UNAVAILABLE in gw_rpc_owner_admit before any decision). Each row: refs as
 * "<rule><kind letter>:<owner>" ('-' = unrecorded), the tenant's view, the verdict and the mask.
 * Rules stop at the first refusal, in order.
 */
static const struct {
	const char *refs[4];	/* "o" own / "n" not-others / "m" mask, then ":owner" */
	const char *tenant;
	int see_foreign;
	enum gw_ro_verdict want;
	const char *mask;	/* ALLOW: one char per ref */
} answers_cases[] = {
	{ { "o:team-a" }, "team-a", 0, GW_RO_ALLOW, "0" },
	{ { "o:team-b" }, "team-a", 1, GW_RO_DENY, NULL },
	{ { "o:-" }, "team-a", 0, GW_RO_DENY, NULL },
	{ { "o:-" }, "team-a", 1, GW_RO_ALLOW, "0" },
	{ { "o:team-a" }, "", 1, GW_RO_DENY, NULL },		/* an empty tenant sees nothing */
	{ { "n:team-a" }, "team-a", 0, GW_RO_ALLOW, "0" },
	{ { "n:-" }, "team-a", 0, GW_RO_ALLOW, "0" },		/* stock: shared */
	{ { "n:team-b" }, "team-a", 1, GW_RO_DENY, NULL },
	{ { "m:team-b" }, "team-a", 0, GW_RO_ALLOW, "1" },	/* masked, never refused */
	{ { "m:-" }, "team-a", 0, GW_RO_ALLOW, "0" },
	{ { "m:team-a" }, "team-a", 0, GW_RO_ALLOW, "0" },
	{ { "o:team-a", "m:team-b", "m:-", "m:team-b" }, "team-a", 0, GW_RO_ALLOW, "0101" },
	{ { "m:team-b", "o:team-b", "m:team-b" }, "team-a", 0, GW_RO_DENY, NULL },
	{ { "o:team-a", "n:team-b", "o:team-a" }, "team-a", 0, GW_RO_DENY, NULL },
	{ { "o:-", "n:-", "m:team-c" }, "team-a", 1, GW_RO_ALLOW, "001" },
};

Test(rpc_owner, decide_answers_table)
{
	for (size_t i = 0; i < sizeof answers_cases / sizeof answers_cases[0]; i++) {
		struct gw_ro_refs refs = { .n = 0 };
		const char *who[GW_RO_REFS_MAX];
		unsigned char mask[GW_RO_REFS_MAX];
		char got[8] = "";
		enum gw_ro_verdict v;

		for (size_t r = 0; r < 4 && answers_cases[i].refs[r]; r++) {
			const char *a = answers_cases[i].refs[r];
			enum gw_ro_rule rule = a[0] == 'o' ? GW_RO_OWN : a[0] == 'n' ? GW_RO_NOT_OTHERS : GW_RO_MASK;

			refs.r[r] = (struct gw_ro_ref){ GW_OBJ_MODEL, rule, "M", rule == GW_RO_MASK ? (int)r : -1 };
			who[r] = strcmp(a + 2, "-") == 0 ? NULL : a + 2;
			refs.n++;
		}
		memset(mask, 0xee, sizeof mask);
		v = gw_rpc_owner_decide(answers_cases[i].tenant, answers_cases[i].see_foreign, &refs, who, mask);
		cr_expect_eq(v, answers_cases[i].want, "case %zu: verdict %d", i, v);
		if (v != GW_RO_ALLOW)
			continue;
		for (size_t r = 0; r < refs.n; r++)
			got[r] = mask[r] == 1 ? '1' : mask[r] == 0 ? '0' : '?';
		cr_expect_str_eq(got, answers_cases[i].mask, "case %zu", i);
	}
}

/* ---- what a 2xx reply changes ---- */

static const struct {
	const char *method;
	const char *req[PB_LINES_MAX];
	const char *reply[PB_LINES_MAX];
	enum gw_ro_op op;
	const char *what;	/* RECORD/FORGET: "<kind> <id>"; FILTER: "<kind> <field>.<idname>" */
	int keep_stock, not_found_if_empty;
} effect_cases[] = {
	{ "GetUploadUrl", { NULL }, { "url=" T_URL_A "?sig=3" }, GW_RO_RECORD, "upload upload:" T_URL_A,
	  0, 0 },
	{ "GetUploadUrl", { NULL }, { "url=" }, GW_RO_BAD_UPLOAD, NULL, 0, 0 },
	{ "GetUploadUrl", { NULL }, { "url=?sig=only" }, GW_RO_BAD_UPLOAD, NULL, 0, 0 },
	{ "StartJob", { "rerun_rid=RA" }, { "rid=RN" }, GW_RO_RECORD, "job RN", 0, 0 },
	{ "StartJob", { "rerun_rid=RA" }, { "rid=" }, GW_RO_NOTHING, NULL, 0, 0 },
	{ "StoreModel", { "model_url=https://s.example/m.fbx" }, { "model_id=MN" }, GW_RO_RECORD,
	  "model MN", 0, 0 },
	{ "GetModelUploadUrl", { NULL }, { "model_url=" T_URL_A "?sig=1" }, GW_RO_RECORD,
	  "upload upload:" T_URL_A, 0, 0 },
	{ "GetModelUploadUrl", { NULL }, { "model_url=" }, GW_RO_BAD_UPLOAD, NULL, 0, 0 },
	{ "CreateEndpoint", { "url=https://hooks.example/x" }, { "id=EN" }, GW_RO_RECORD,
	  "endpoint EN", 0, 0 },
	{ "DeleteModel", { "model_id=MA" }, { NULL }, GW_RO_FORGET, "model MA", 0, 0 },
	{ "DeleteModel", { "model_id=" }, { NULL }, GW_RO_NOTHING, NULL, 0, 0 },
	{ "DeleteEndpoint", { "id=EA" }, { "id=EA" }, GW_RO_FORGET, "endpoint EA", 0, 0 },
	{ "GetEndpoint", { "id=EA" }, { "id=EA" }, GW_RO_NOTHING, NULL, 0, 0 },
	{ "UpdateEndpoint", { "id=EA" }, { "id=EA" }, GW_RO_NOTHING, NULL, 0, 0 },
	{ "ListJobs", { NULL }, { "jobs.rid=RA" }, GW_RO_FILTER, "job jobs.rid", 0, 0 },
	{ "ListEndpoints", { NULL }, { "endpoints.id=EA" }, GW_RO_FILTER, "endpoint endpoints.id", 0,
	  0 },
	{ "ListModels", { NULL }, { "models.id=MA" }, GW_RO_FILTER, "model models.id", 1, 0 },
	{ "ListModels", { "model_id=MA" }, { "models.id=MA" }, GW_RO_FILTER, "model models.id", 1, 1 },
	{ "GetVideoInfo", { "upload_url=" T_URL_A }, { NULL }, GW_RO_NOTHING, NULL, 0, 0 },
	{ "GetPersonUrls", { "rid=RA" }, { "persons.tracking_id=001" }, GW_RO_NOTHING, NULL, 0, 0 },
	{ "GetStatus", { "rids=RA" }, { "statuses.rid=RA" }, GW_RO_NOTHING, NULL, 0, 0 },
	{ "GetCreditBalance", { NULL }, { NULL }, GW_RO_NOTHING, NULL, 0, 0 },
};

Test(rpc_owner, effect_table)
{
	for (size_t i = 0; i < sizeof effect_cases / sizeof effect_cases[0]; i++) {
		const struct gw_method *m = t_method(effect_cases[i].method);
		ProtobufCMessage *req = pb_lines_msg(m->req_desc, effect_cases[i].req);
		ProtobufCMessage *reply = pb_lines_msg(m->tr.resp_desc, effect_cases[i].reply);
		struct gw_ro_effect e;
		char got[T_STR_MAX], want[T_STR_MAX];
		enum gw_ro_op op;

		op = gw_rpc_owner_effect((enum ro_kind)m->own, m->name, req, reply, &e);
		cr_expect_eq(op, effect_cases[i].op, "%s case %zu: op %d", m->name, i, op);
		cr_expect_eq(e.op, op, "%s case %zu", m->name, i);
		got[0] = '\0';
		if (op == GW_RO_RECORD || op == GW_RO_FORGET)
			snprintf(got, sizeof got, "%s %s", t_kind(e.kind), e.id);
		if (op == GW_RO_FILTER) {
			const ProtobufCFieldDescriptor *f =
				protobuf_c_message_descriptor_get_field_by_name(reply->descriptor, e.field);

			snprintf(got, sizeof got, "%s %s.%s", t_kind(e.kind), e.field, e.idname);
			/* The names must exist in the reply, or the filter would fail every list. */
			cr_assert_not_null(f, "%s: no field %s", m->name, e.field);
			cr_expect_eq(f->type, PROTOBUF_C_TYPE_MESSAGE);
			cr_expect_eq(f->label, PROTOBUF_C_LABEL_REPEATED);
			cr_expect_not_null(protobuf_c_message_descriptor_get_field_by_name(f->descriptor,
											   e.idname),
					   "%s: items have no %s", m->name, e.idname);
			cr_expect_eq(e.keep_stock, effect_cases[i].keep_stock, "%s case %zu", m->name, i);
			cr_expect_eq(e.not_found_if_empty, effect_cases[i].not_found_if_empty,
				     "%s case %zu", m->name, i);
		}
		t_want_str(effect_cases[i].what ? effect_cases[i].what : "", want, sizeof want);
		cr_expect_str_eq(got, want, "%s case %zu", m->name, i);
		protobuf_c_message_free_unpacked(req, NULL);
		protobuf_c_message_free_unpacked(reply, NULL);
	}
}

/* GetModelUploadUrl records the model's upload and, when the answer has one, the thumbnail's. */
Test(rpc_owner, model_upload_records_both_files)
{
	static const char *const both[PB_LINES_MAX] = { "model_url=https://s.example/m.fbx?a=1",
							"thumb_url=https://s.example/t.png?b=2" };
	static const char *const bad_thumb[PB_LINES_MAX] = { "model_url=https://s.example/m.fbx",
							     "thumb_url=?only" };
	const struct gw_method *m = t_method("GetModelUploadUrl");
	ProtobufCMessage *req = pb_lines_msg(m->req_desc, (const char *[PB_LINES_MAX]){ NULL });
	ProtobufCMessage *reply = pb_lines_msg(m->tr.resp_desc, both);
	char model[GW_OWNER_UPLOAD_ID_LEN + 1], thumb[GW_OWNER_UPLOAD_ID_LEN + 1];
	struct gw_ro_effect e;

	cr_assert_eq(gw_owner_upload_id("https://s.example/m.fbx", model, sizeof model), 0);
	cr_assert_eq(gw_owner_upload_id("https://s.example/t.png", thumb, sizeof thumb), 0);
	cr_expect_eq(gw_rpc_owner_effect((enum ro_kind)m->own, m->name, req, reply, &e), GW_RO_RECORD);
	cr_expect_eq(e.kind, GW_OBJ_UPLOAD);
	cr_expect_str_eq(e.id, model);
	cr_assert_not_null(e.id2);
	cr_expect_str_eq(e.id2, thumb);
	protobuf_c_message_free_unpacked(reply, NULL);
	reply = pb_lines_msg(m->tr.resp_desc, bad_thumb);
	cr_expect_eq(gw_rpc_owner_effect((enum ro_kind)m->own, m->name, req, reply, &e),
		     GW_RO_BAD_UPLOAD, "a thumbnail URL without an object is never replied");
	protobuf_c_message_free_unpacked(reply, NULL);
	protobuf_c_message_free_unpacked(req, NULL);
}
