/*
 * Unit tests for gateway/api/validate.c: the kinds table, the field table against every request
 * descriptor the gateway serves, and the rule "no request makes the loop do unbounded work":
 * every method gets its maximum-size request (4 MiB of repeated records or of one string) for
 * every string and repeated field it can reach, and each is refused naming the field, with the
 * scan's work counted (bounded by the table for floods, by the input for strings).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "gateway/api/translate.h"
#include "gateway/api/validate.h"
#include "gateway/call/call.h"
#include "gateway/methods.h"

#define MAX_REQ (4u << 20)		/* the default max_message_bytes: the largest request */
#define FLOOD_OPS_MAX 1024		/* scan work for any flood of records, whatever its size */

/* Every service the gateway registers (gateway/rpc.c builds its table from these methods). */
static const ProtobufCServiceDescriptor *const services[] = {
	&animate3d__v1__jobs__descriptor,
	&animate3d__v1__characters__descriptor,
	&animate3d__v1__webhooks__descriptor,
	&animate3d__v1__account__descriptor,
	&grpc__health__v1__health__descriptor,
	&grpc__reflection__v1__server_reflection__descriptor,
};
#define NSERVICES (sizeof services / sizeof services[0])

/* ---- kinds ---- */

Test(validate, kinds)
{
	static char rid65[66], id129[130], name256[257], url4097[4098], text256[257];
	static const struct {
		enum gw_validate_kind k;
		const char *s;
		int ok;
	} t[] = {
		{ GW_VK_RID, "4Zx9bQ2mKpTr7VwYcHnE3a", 1 },
		{ GW_VK_RID, "a_b-C9", 1 },
		{ GW_VK_RID, "", 0 },
		{ GW_VK_RID, "../x", 0 },
		{ GW_VK_RID, "a,b", 0 },
		{ GW_VK_RID, "\xc3\xa9", 0 },
		{ GW_VK_RID, "a b", 0 },
		{ GW_VK_RID, rid65, 0 },
		{ GW_VK_MODEL_ID, "m1", 1 },
		{ GW_VK_MODEL_ID, rid65, 1 },
		{ GW_VK_MODEL_ID, id129, 0 },
		{ GW_VK_MODEL_ID, "m.1", 0 },
		{ GW_VK_ENDPOINT_ID, "we_1", 1 },
		{ GW_VK_ENDPOINT_ID, "we 1", 0 },
		{ GW_VK_CONFIG, "configDefault", 1 },
		{ GW_VK_CONFIG, "config/x", 0 },
		{ GW_VK_FILE_NAME, "clip.mp4", 1 },
		{ GW_VK_FILE_NAME, "vid\xc3\xa9o (2).MOV", 1 },
		{ GW_VK_FILE_NAME, "a,b", 1 },
		{ GW_VK_FILE_NAME, "...", 1 },
		{ GW_VK_FILE_NAME, ".", 0 },
		{ GW_VK_FILE_NAME, "..", 0 },
		{ GW_VK_FILE_NAME, "../x", 0 },
		{ GW_VK_FILE_NAME, "a/b", 0 },
		{ GW_VK_FILE_NAME, "", 0 },
		{ GW_VK_FILE_NAME, "tab\there", 0 },
		{ GW_VK_FILE_NAME, "del\x7f", 0 },
		{ GW_VK_FILE_NAME, "bad\xc3", 0 },		/* cut UTF-8 sequence */
		{ GW_VK_FILE_NAME, "\xc0\xaf", 0 },		/* overlong '/' */
		{ GW_VK_FILE_NAME, "\xed\xa0\x80", 0 },		/* surrogate */
		{ GW_VK_FILE_NAME, "\xf4\x90\x80\x80", 0 },	/* above U+10FFFF */
		{ GW_VK_FILE_NAME, "\xf0\x9f\x8e\xac.mp4", 1 },	/* U+1F3AC */
		{ GW_VK_FILE_NAME, name256, 0 },
		{ GW_VK_URL, "https://st/v.mp4?X-Goog-Signature=ab", 1 },
		{ GW_VK_URL, "http://127.0.0.1:8090/storage/v.mp4", 1 },
		{ GW_VK_URL, "ftp://h/v.mp4", 0 },
		{ GW_VK_URL, "../x", 0 },
		{ GW_VK_URL, "http://", 0 },
		{ GW_VK_URL, "http:///path", 0 },
		{ GW_VK_URL, "http://h/a b", 0 },
		{ GW_VK_URL, "http://h/\xc3\xa9", 0 },
		{ GW_VK_URL, url4097, 0 },
		{ GW_VK_WORD, "job.completed", 1 },
		{ GW_VK_WORD, "mp_detection", 1 },
		{ GW_VK_WORD, "", 0 },
		{ GW_VK_WORD, "a b", 0 },
		{ GW_VK_EXTRA_PARAM, "poseEstimation.x=1 2", 1 },
		{ GW_VK_EXTRA_PARAM, "k=\xc3\xa9", 0 },
		{ GW_VK_IDEM_KEY, "order 123/x,y", 1 },
		{ GW_VK_IDEM_KEY, "", 0 },
		{ GW_VK_IDEM_KEY, "k\n", 0 },
		{ GW_VK_TEXT, "", 1 },
		{ GW_VK_TEXT, "Hero \xc3\xa9 / one", 1 },
		{ GW_VK_TEXT, "a\nb", 0 },
		{ GW_VK_TEXT, text256, 0 },
		{ GW_VK_SERVICE, "", 1 },
		{ GW_VK_SERVICE, "animate3d.v1.Jobs", 1 },
		{ GW_VK_SERVICE, "\xc3\xa9", 0 },
		{ GW_VK_TRACKING_REF, "001", 1 },
		{ GW_VK_TRACKING_REF, "1", 1 },
		{ GW_VK_TRACKING_REF, "016", 1 },
		{ GW_VK_TRACKING_REF, "000", 1 },	/* a digit string; params.c refuses person 0 */
		{ GW_VK_TRACKING_REF, "", 0 },
		{ GW_VK_TRACKING_REF, "1a", 0 },
		{ GW_VK_TRACKING_REF, "0001", 0 },
		{ GW_VK_TRACKING_REF, "-1", 0 },
		{ GW_VK_TRACKING_REF, " 1", 0 },
		{ GW_VK_TRACKING_REF, "\xd9\xa1", 0 },	/* ARABIC-INDIC DIGIT ONE */
		{ GW_VK_NONE, "x", 0 },
		{ GW_VK_COUNT, "x", 0 },
	};

	memset(rid65, 'a', 65);
	memset(id129, 'a', 129);
	memset(name256, 'n', 256);
	memset(text256, 't', 256);
	memcpy(url4097, "http://h/", 9);
	memset(url4097 + 9, 'u', 4097 - 9);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		cr_expect_eq(gw_validate_ok(t[i].k, t[i].s), t[i].ok, "case %zu (kind %d, \"%.20s\")",
			     i, (int)t[i].k, t[i].s);
	for (int k = 0; k < GW_VK_COUNT; k++) {
		cr_expect_not_null(gw_validate_kind_name((enum gw_validate_kind)k));
		cr_expect_not_null(gw_validate_kind_rule((enum gw_validate_kind)k));
		cr_expect_gt(gw_validate_kind_max((enum gw_validate_kind)k), 0);
	}
	cr_expect_eq(gw_validate_ok(GW_VK_RID, NULL), 0);
}

Test(validate, message_names_field_and_rule)
{
	char err[GW_VALIDATE_ERR_MAX];

	cr_assert_eq(gw_validate_str(GW_VK_RID, "rids[3]", "a,b", err, sizeof err), GW_VALIDATE_INVALID);
	cr_expect_str_eq(err, "rids[3] must be 1..64 characters of A-Z a-z 0-9 _ -");
	cr_assert_eq(gw_validate_str(GW_VK_URL, "upload_url", "../x", err, sizeof err),
		     GW_VALIDATE_INVALID);
	cr_expect(strncmp(err, "upload_url must be an http(s) URL of at most 4096 bytes", 55) == 0,
		  "%s", err);
	cr_assert_eq(gw_validate_str(GW_VK_TRACKING_REF, "params.models[0].tracking_ref", "1a", err,
				     sizeof err), GW_VALIDATE_INVALID);
	cr_expect_str_eq(err, "params.models[0].tracking_ref must be 1..3 digits, e.g. \"001\"");
	err[0] = '\0';
	cr_expect_eq(gw_validate_str(GW_VK_RID, "rid", "ok", err, sizeof err), GW_VALIDATE_OK);
	cr_expect_str_eq(err, "");
}

/* ---- the field table against the descriptors ---- */

static void walk_fields(const ProtobufCMessageDescriptor *d, unsigned depth, const char *where)
{
	cr_assert_leq(depth, GW_VALIDATE_MAX_DEPTH, "%s nests too deep", where);
	cr_assert_leq(d->n_fields, GW_VALIDATE_MAX_FIELDS, "%s has too many fields", d->name);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		int kind = -2;
		unsigned max_items = 0;
		int has = gw_validate_rule(d, f->name, &kind, &max_items) == 0;

		if (f->type == PROTOBUF_C_TYPE_STRING) {
			cr_expect(has, "%s.%s (string) has no row in the field table", d->name, f->name);
			cr_expect(kind >= 0 && kind < GW_VK_COUNT, "%s.%s: no kind", d->name, f->name);
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			cr_expect(has, "%s.%s (repeated) has no cap in the field table", d->name, f->name);
			cr_expect_gt(max_items, 0, "%s.%s: cap 0", d->name, f->name);
			if (f->type != PROTOBUF_C_TYPE_STRING)
				cr_expect_eq(kind, GW_VK_NONE, "%s.%s", d->name, f->name);
		} else if (has) {
			cr_expect_eq(max_items, 0, "%s.%s: a cap on a singular field", d->name, f->name);
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE)
			walk_fields(f->descriptor, depth + 1, f->name);
	}
}

Test(validate, every_request_field_has_a_rule)
{
	for (size_t s = 0; s < NSERVICES; s++)
		for (unsigned m = 0; m < services[s]->n_methods; m++)
			walk_fields(services[s]->methods[m].input, 0, services[s]->methods[m].name);
}

/* 1 when d is reachable from a request of a served method. */
static int reachable(const ProtobufCMessageDescriptor *from, const ProtobufCMessageDescriptor *d)
{
	if (from == d)
		return 1;
	for (unsigned i = 0; i < from->n_fields; i++)
		if (from->fields[i].type == PROTOBUF_C_TYPE_MESSAGE &&
		    reachable(from->fields[i].descriptor, d))
			return 1;
	return 0;
}

Test(validate, every_row_names_a_served_field)
{
	for (size_t i = 0; i < gw_validate_nrules(); i++) {
		const ProtobufCMessageDescriptor *d = NULL;
		const char *field = NULL;
		int found = 0;

		cr_assert_eq(gw_validate_rule_at(i, &d, &field), 0);
		cr_expect_not_null(protobuf_c_message_descriptor_get_field_by_name(d, field),
				   "row %zu: %s has no field %s", i, d->name, field);
		for (size_t s = 0; s < NSERVICES; s++)
			for (unsigned m = 0; m < services[s]->n_methods; m++)
				found |= reachable(services[s]->methods[m].input, d);
		cr_expect(found, "row %zu: %s is no request of a served method", i, d->name);
	}
	cr_expect_eq(gw_validate_rule_at(gw_validate_nrules(), &(const ProtobufCMessageDescriptor *){ NULL },
					 &(const char *){ NULL }), -1);
}

/* The method table serves exactly methods of these services, so the walk above covers them. */
Test(validate, method_table_requests_are_walked)
{
	size_t n = 0;
	const struct gw_method *methods = gw_methods(&n);

	for (size_t i = 0; i < n; i++) {
		const ProtobufCMethodDescriptor *md = NULL;
		char svc[128];
		const char *slash = strrchr(methods[i].path, '/');

		cr_assert_not_null(slash);
		snprintf(svc, sizeof svc, "%.*s", (int)(slash - methods[i].path - 1), methods[i].path + 1);
		/* Reflection v1alpha is decoded with v1's messages (gateway/svc/reflection.h). */
		if (strcmp(svc, "grpc.reflection.v1alpha.ServerReflection") == 0)
			snprintf(svc, sizeof svc, "grpc.reflection.v1.ServerReflection");
		for (size_t s = 0; s < NSERVICES; s++)
			if (strcmp(services[s]->name, svc) == 0)
				md = protobuf_c_service_descriptor_get_method_by_name(services[s], slash + 1);
		cr_expect_not_null(md, "%s is not a method of a walked service", methods[i].path);
		if (md && methods[i].req_desc)
			cr_expect_eq(methods[i].req_desc, md->input, "%s", methods[i].path);
	}
}

/* ---- wire building ---- */

struct wire {
	uint8_t *p;
	size_t len, cap;
};

static void w_put(struct wire *w, const void *b, size_t n)
{
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2 + 64;
		w->p = realloc(w->p, w->cap);
		cr_assert_not_null(w->p);
	}
	memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void w_varint(struct wire *w, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;

	while (v >= 0x80) {
		b[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[n++] = (uint8_t)v;
	w_put(w, b, n);
}

static void w_tag(struct wire *w, unsigned field, unsigned wt)
{
	w_varint(w, (uint64_t)field << 3 | wt);
}

static void w_bytes(struct wire *w, unsigned field, const void *b, size_t n)
{
	w_tag(w, field, 2);
	w_varint(w, n);
	w_put(w, b, n);
}

/* Wraps inner as the value of the message fields chain[0..n) (outermost first). */
static struct wire w_wrap(const ProtobufCFieldDescriptor *const *chain, size_t n, struct wire inner)
{
	for (size_t i = n; i-- > 0;) {
		struct wire outer = { 0 };

		w_bytes(&outer, chain[i]->id, inner.p, inner.len);
		free(inner.p);
		inner = outer;
	}
	return inner;
}

/* The path the gateway reports for chain + f: "params.models[0].model_id". */
static void chain_path(char *out, size_t n, const ProtobufCFieldDescriptor *const *chain, size_t depth,
		       const ProtobufCFieldDescriptor *f)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < depth; i++)
		o += (size_t)snprintf(out + o, n - o, "%s%s.", chain[i]->name,
				      chain[i]->label == PROTOBUF_C_LABEL_REPEATED ? "[0]" : "");
	snprintf(out + o, n - o, "%s", f->name);
}

enum flood { FLOOD_RECORDS, FLOOD_HUGE, FLOOD_NUL };

/* Records of field f filling about size bytes, or one string record of size bytes (HUGE; NUL:
 * with a NUL at byte 1). Packed scalars are one run of value 1. */
static struct wire flood_of(const ProtobufCFieldDescriptor *f, enum flood kind, size_t size)
{
	struct wire w = { 0 };

	if (kind == FLOOD_HUGE || kind == FLOOD_NUL) {
		char *s = malloc(size);

		cr_assert_not_null(s);
		memset(s, 'a', size);
		if (kind == FLOOD_NUL)
			s[1] = '\0';
		w_bytes(&w, f->id, s, size);
		free(s);
		return w;
	}
	if (f->label == PROTOBUF_C_LABEL_REPEATED && f->type != PROTOBUF_C_TYPE_STRING &&
	    f->type != PROTOBUF_C_TYPE_MESSAGE) {
		/* A packed run of enum value 1. */
		uint8_t *b = malloc(size);

		cr_assert_not_null(b);
		memset(b, 1, size);
		w_bytes(&w, f->id, b, size);
		free(b);
		return w;
	}
	while (w.len < size) {
		if (f->type == PROTOBUF_C_TYPE_MESSAGE)
			w_bytes(&w, f->id, "", 0);
		else
			w_bytes(&w, f->id, "a", 1);
	}
	return w;
}

/* ---- the rule: every method, every field, its maximum-size request ---- */

struct fcase {
	const char *method;
	const ProtobufCMessageDescriptor *req;
	const ProtobufCFieldDescriptor *chain[GW_VALIDATE_MAX_DEPTH];
	size_t depth;
	const ProtobufCFieldDescriptor *f;
};

static size_t ncases, nstrings, nchecked;

static void expect_refused(const struct fcase *c, struct wire w, const char *want_prefix,
			   size_t ops_max)
{
	char err[GW_VALIDATE_ERR_MAX] = "";
	size_t ops = 0;
	int malformed = -1;
	int rc = gw_validate_scan(c->req, w.p, w.len, err, sizeof err, &ops);
	ProtobufCMessage *m;

	cr_expect_leq(ops, ops_max, "%s %s: scan did %zu operations on %zu bytes", c->method,
		      want_prefix, ops, w.len);
	if (rc == GW_VALIDATE_OK) {
		/* Left to the decoded pass (a string too long): protobuf-c allocates it once. */
		cr_expect_geq(w.len, 1u << 20);
	} else {
		cr_expect_eq(rc, GW_VALIDATE_INVALID, "%s: %s", c->method, err);
	}
	m = gw_validate_unpack(c->req, w.p, w.len, err, sizeof err, &malformed);
	cr_expect_null(m, "%s: %s was accepted", c->method, want_prefix);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	cr_expect_eq(malformed, 0, "%s: %s called malformed: %s", c->method, want_prefix, err);
	cr_expect(strncmp(err, want_prefix, strlen(want_prefix)) == 0, "%s: want \"%s...\", got \"%s\"",
		  c->method, want_prefix, err);
	nchecked++;
}

static void check_field(const struct fcase *c)
{
	const ProtobufCFieldDescriptor *f = c->f;
	char path[GW_VALIDATE_PATH_MAX], want[GW_VALIDATE_PATH_MAX + 64];
	size_t room = MAX_REQ - 64;
	unsigned cap = 0;
	int kind = 0;
	struct wire w;

	cr_assert_eq(gw_validate_rule(c->depth ? c->chain[c->depth - 1]->descriptor : c->req, f->name,
				      &kind, &cap), 0);
	chain_path(path, sizeof path, c->chain, c->depth, f);
	ncases++;
	/* A flood of records: repeated entries beyond the cap, or one singular field again and
	 * again. Refused by the scan after at most the table's worth of records. */
	w = w_wrap(c->chain, c->depth, flood_of(f, FLOOD_RECORDS, room));
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		snprintf(want, sizeof want, "%s has more than %u entries", path, cap);
	else
		snprintf(want, sizeof want, "%s appears more than %d times", path,
			 GW_VALIDATE_MAX_REPEATS);
	expect_refused(c, w, want, FLOOD_OPS_MAX + (f->label == PROTOBUF_C_LABEL_REPEATED &&
						    f->type != PROTOBUF_C_TYPE_STRING &&
						    f->type != PROTOBUF_C_TYPE_MESSAGE ? cap + 1 : 0));
	free(w.p);
	if (f->type != PROTOBUF_C_TYPE_STRING)
		return;
	nstrings++;
	/* One string as large as a request can be: refused by its kind's length, the work bounded
	 * by the input (one memchr over it). */
	w = w_wrap(c->chain, c->depth, flood_of(f, FLOOD_HUGE, room));
	snprintf(want, sizeof want, "%s%s must be ", path,
		 f->label == PROTOBUF_C_LABEL_REPEATED ? "[0]" : "");
	expect_refused(c, w, want, room + FLOOD_OPS_MAX);
	free(w.p);
	/* An embedded NUL, which protobuf-c would silently cut the string at. */
	w = w_wrap(c->chain, c->depth, flood_of(f, FLOOD_NUL, 8));
	snprintf(want, sizeof want, "%s%s must not contain a NUL byte (at byte 1)", path,
		 f->label == PROTOBUF_C_LABEL_REPEATED ? "[0]" : "");
	expect_refused(c, w, want, FLOOD_OPS_MAX);
	free(w.p);
}

static void walk_cases(struct fcase *c, const ProtobufCMessageDescriptor *d)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->type == PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED) {
			c->f = f;
			check_field(c);
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			c->chain[c->depth++] = f;
			walk_cases(c, f->descriptor);
			c->depth--;
		}
	}
}

Test(validate, every_method_max_size_request_refused_with_bounded_work, .timeout = 60)
{
	for (size_t s = 0; s < NSERVICES; s++) {
		for (unsigned m = 0; m < services[s]->n_methods; m++) {
			struct fcase c = { .method = services[s]->methods[m].name,
					   .req = services[s]->methods[m].input };

			walk_cases(&c, c.req);
		}
	}
	/* Every row of the table is some method's field (every_row_names_a_served_field), and
	 * every string or repeated field has a row: the walk met them all. */
	cr_expect_geq(ncases, gw_validate_nrules(), "only %zu fields walked", ncases);
	cr_expect_eq(nchecked, ncases + 2 * nstrings, "%zu checks for %zu fields", nchecked, ncases);
}

/* ---- boundaries, merges, repeats, unknown fields, malformed bytes ---- */

/* n records of field id at the top of d (strings "a"/"r1"-like, messages empty, packed enums). */
static struct wire records(unsigned id, const char *value, size_t n)
{
	struct wire w = { 0 };

	for (size_t i = 0; i < n; i++)
		w_bytes(&w, id, value, strlen(value));
	return w;
}

static int decode(const ProtobufCMessageDescriptor *d, struct wire w, char *err, size_t errlen,
		  int *malformed)
{
	ProtobufCMessage *m = gw_validate_unpack(d, w.p, w.len, err, errlen, malformed);

	free(w.p);
	if (!m)
		return -1;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

Test(validate, caps_at_and_beyond)
{
	static const struct {
		const ProtobufCMessageDescriptor *d;
		unsigned id;
		const char *value;
		size_t cap;
		const char *field;
	} t[] = {
		{ &animate3d__v1__get_status_request__descriptor, 1, "r1", GW_VALIDATE_MAX_RIDS, "rids" },
		{ &animate3d__v1__watch_status_request__descriptor, 1, "r1", GW_VALIDATE_MAX_RIDS, "rids" },
		{ &animate3d__v1__get_download_urls_request__descriptor, 1, "r1", GW_VALIDATE_MAX_RIDS, "rids" },
		{ &animate3d__v1__start_job_request__descriptor, 5, "k=1", GW_VALIDATE_MAX_EXTRA, "extra_params" },
		{ &animate3d__v1__create_endpoint_request__descriptor, 2, "job.completed", GW_VALIDATE_MAX_EVENTS, "events" },
		{ &animate3d__v1__update_endpoint_request__descriptor, 3, "job.completed", GW_VALIDATE_MAX_EVENTS, "events" },
	};
	char err[GW_VALIDATE_ERR_MAX], want[96];
	int malformed;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_expect_eq(decode(t[i].d, records(t[i].id, t[i].value, t[i].cap), err, sizeof err,
				    &malformed), 0, "%s at its cap: %s", t[i].field, err);
		cr_expect_eq(decode(t[i].d, records(t[i].id, t[i].value, t[i].cap + 1), err, sizeof err,
				    &malformed), -1, "%s beyond its cap", t[i].field);
		snprintf(want, sizeof want, "%s has more than %zu entries", t[i].field, t[i].cap);
		cr_expect_str_eq(err, want);
		cr_expect_eq(malformed, 0);
	}
}

Test(validate, list_jobs_states_packed_and_unpacked)
{
	char err[GW_VALIDATE_ERR_MAX];
	uint8_t states[GW_VALIDATE_MAX_STATES + 1];
	struct wire w = { 0 };
	int malformed;
	size_t ops = 0;

	memset(states, 2, sizeof states);
	w_bytes(&w, 1, states, GW_VALIDATE_MAX_STATES);		/* packed, at the cap */
	cr_expect_eq(decode(&animate3d__v1__list_jobs_request__descriptor, w, err, sizeof err,
			    &malformed), 0, "%s", err);
	w = (struct wire){ 0 };
	w_bytes(&w, 1, states, GW_VALIDATE_MAX_STATES + 1);
	cr_expect_eq(decode(&animate3d__v1__list_jobs_request__descriptor, w, err, sizeof err,
			    &malformed), -1);
	cr_expect_str_eq(err, "states has more than 16 entries");
	/* Unpacked (one varint record per entry), then split packed runs: the same count. */
	w = (struct wire){ 0 };
	for (size_t i = 0; i <= GW_VALIDATE_MAX_STATES; i++) {
		w_tag(&w, 1, 0);
		w_varint(&w, 1);
	}
	cr_expect_eq(decode(&animate3d__v1__list_jobs_request__descriptor, w, err, sizeof err,
			    &malformed), -1);
	cr_expect_str_eq(err, "states has more than 16 entries");
	w = (struct wire){ 0 };
	w_bytes(&w, 1, states, 10);
	w_bytes(&w, 1, states, 7);
	cr_expect_eq(decode(&animate3d__v1__list_jobs_request__descriptor, w, err, sizeof err,
			    &malformed), -1);
	cr_expect_str_eq(err, "states has more than 16 entries");
	/* The 1M-state ListJobs of issue 13: refused after the 17th state. */
	w = (struct wire){ 0 };
	{
		uint8_t *big = malloc(1000000);

		cr_assert_not_null(big);
		memset(big, 2, 1000000);
		w_bytes(&w, 1, big, 1000000);
		free(big);
	}
	cr_expect_eq(gw_validate_scan(&animate3d__v1__list_jobs_request__descriptor, w.p, w.len, err,
				      sizeof err, &ops), GW_VALIDATE_INVALID);
	cr_expect_leq(ops, 64, "%zu operations", ops);
	free(w.p);
}

Test(validate, merged_occurrences_are_checked_after_decoding)
{
	/* StartJob.params twice, each with 16 models: each occurrence is within the cap, and a
	 * decoder that merges them sees 32. protobuf-c 1.4.1 refuses a singular sub-message seen
	 * twice (malformed); one that merges would meet the decoded pass, checked below on a
	 * message built by hand. */
	struct wire models = { 0 }, w = { 0 };
	char err[GW_VALIDATE_ERR_MAX];
	int malformed;
	Animate3d__V1__StartJobRequest r = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	Animate3d__V1__Params p = ANIMATE3D__V1__PARAMS__INIT;
	Animate3d__V1__TrackedModel tm[GW_VALIDATE_MAX_MODELS + 1];
	Animate3d__V1__TrackedModel *ms[GW_VALIDATE_MAX_MODELS + 1];

	for (int i = 0; i < GW_VALIDATE_MAX_MODELS; i++) {
		struct wire one = { 0 };

		w_tag(&one, 1, 0);
		w_varint(&one, (uint64_t)i);
		w_bytes(&one, 2, "m1", 2);
		w_bytes(&models, 16, one.p, one.len);
		free(one.p);
	}
	w_bytes(&w, 2, "r1", 2);			/* rerun_rid */
	w_bytes(&w, 4, models.p, models.len);		/* params */
	w_bytes(&w, 4, models.p, models.len);		/* params again */
	free(models.p);
	cr_expect_eq(decode(&animate3d__v1__start_job_request__descriptor, w, err, sizeof err,
			    &malformed), -1);
	cr_expect(strcmp(err, "params.models has more than 16 entries") == 0 ||
		  (malformed && strcmp(err, "malformed request message") == 0), "%s", err);

	for (int i = 0; i <= GW_VALIDATE_MAX_MODELS; i++) {
		Animate3d__V1__TrackedModel one = ANIMATE3D__V1__TRACKED_MODEL__INIT;

		tm[i] = one;
		tm[i].tracking_ref = "1";
		tm[i].model_id = "m1";
		ms[i] = &tm[i];
	}
	r.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID;
	r.rerun_rid = "r1";
	p.models = ms;
	p.n_models = GW_VALIDATE_MAX_MODELS;
	r.params = &p;
	cr_expect_eq(gw_validate_message(&r.base, err, sizeof err), GW_VALIDATE_OK, "%s", err);
	p.n_models = GW_VALIDATE_MAX_MODELS + 1;
	cr_expect_eq(gw_validate_message(&r.base, err, sizeof err), GW_VALIDATE_INVALID);
	cr_expect_str_eq(err, "params.models has more than 16 entries");
}

Test(validate, singular_repeats_and_unknown_fields)
{
	char err[GW_VALIDATE_ERR_MAX];
	struct wire w;
	int malformed;

	w = records(1, "clip.mp4", GW_VALIDATE_MAX_REPEATS);	/* GetUploadUrl.name, last one wins */
	cr_expect_eq(decode(&animate3d__v1__get_upload_url_request__descriptor, w, err, sizeof err,
			    &malformed), 0, "%s", err);
	w = records(1, "clip.mp4", GW_VALIDATE_MAX_REPEATS + 1);
	cr_expect_eq(decode(&animate3d__v1__get_upload_url_request__descriptor, w, err, sizeof err,
			    &malformed), -1);
	cr_expect_str_eq(err, "name appears more than 4 times");
	/* Unknown fields (a newer client's) are fine up to the limit, at every level. */
	w = (struct wire){ 0 };
	for (int i = 0; i < GW_VALIDATE_MAX_UNKNOWN; i++) {
		w_tag(&w, 99, 0);
		w_varint(&w, 7);
	}
	w_bytes(&w, 1, "r1", 2);
	cr_expect_eq(decode(&animate3d__v1__get_status_request__descriptor, w, err, sizeof err,
			    &malformed), 0, "%s", err);
	w = (struct wire){ 0 };
	for (int i = 0; i <= GW_VALIDATE_MAX_UNKNOWN; i++)
		w_bytes(&w, 42, "x", 1);
	cr_expect_eq(decode(&animate3d__v1__get_status_request__descriptor, w, err, sizeof err,
			    &malformed), -1);
	cr_expect_str_eq(err, "request carries more than 64 unknown fields");
	cr_expect_eq(malformed, 0);
}

Test(validate, nul_bytes_named_at_any_depth)
{
	static const struct {
		const ProtobufCMessageDescriptor *d;
		const char *wire;	/* hex-free: bytes with the NUL inside */
		size_t len;
		const char *want;
	} t[] = {
		{ &animate3d__v1__get_status_request__descriptor, "\x0a\x02r1\x0a\x03" "a\0b", 9,
		  "rids[1] must not contain a NUL byte (at byte 1)" },
		{ &animate3d__v1__get_upload_url_request__descriptor, "\x0a\x03" "a\0b", 5,
		  "name must not contain a NUL byte (at byte 1)" },
		{ &animate3d__v1__delete_model_request__descriptor, "\x0a\x02" "\0x", 4,
		  "model_id must not contain a NUL byte (at byte 0)" },
		/* StartJob{params{models[0]{model_id "m\0"}}} */
		{ &animate3d__v1__start_job_request__descriptor, "\x22\x06\x82\x01\x03\x12\x01\x00", 8,
		  "params.models[0].model_id must not contain a NUL byte (at byte 0)" },
		{ &grpc__health__v1__health_check_request__descriptor, "\x0a\x02x\0", 4,
		  "service must not contain a NUL byte (at byte 1)" },
	};
	char err[GW_VALIDATE_ERR_MAX];
	int malformed;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_expect_null(gw_validate_unpack(t[i].d, (const uint8_t *)t[i].wire, t[i].len, err,
						  sizeof err, &malformed), "case %zu", i);
		cr_expect_str_eq(err, t[i].want, "case %zu", i);
		cr_expect_eq(malformed, 0, "case %zu", i);
	}
	/* Bytes fields may hold anything: an upload chunk full of NULs is data. */
	{
		struct wire w = { 0 };
		ProtobufCMessage *m;

		w_bytes(&w, 1, "v.mp4", 5);
		w_bytes(&w, 3, "\0\0\0\0", 4);
		m = gw_validate_unpack(&animate3d__v1__upload_video_request__descriptor, w.p, w.len,
				       err, sizeof err, &malformed);
		cr_expect_not_null(m, "%s", err);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		free(w.p);
	}
}

Test(validate, decoded_pass_names_nested_fields)
{
	Animate3d__V1__StartJobRequest r = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	Animate3d__V1__Params p = ANIMATE3D__V1__PARAMS__INIT;
	Animate3d__V1__TrackedModel m0 = ANIMATE3D__V1__TRACKED_MODEL__INIT;
	Animate3d__V1__TrackedModel m1 = ANIMATE3D__V1__TRACKED_MODEL__INIT;
	Animate3d__V1__TrackedModel *ms[2] = { &m0, &m1 };
	char err[GW_VALIDATE_ERR_MAX];

	r.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID;
	r.mp_detection_rid = "Mp1";
	m0.model_id = "m1";
	m1.model_id = "../x";
	p.models = ms;
	p.n_models = 2;
	r.params = &p;
	cr_expect_eq(gw_validate_message(&r.base, err, sizeof err), GW_VALIDATE_INVALID);
	cr_expect_str_eq(err, "params.models[1].model_id must be 1..128 characters of A-Z a-z 0-9 _ -");
	m1.model_id = "m2";
	cr_expect_eq(gw_validate_message(&r.base, err, sizeof err), GW_VALIDATE_OK, "%s", err);
	/* A set oneof member is checked even when empty; an unset one never. */
	r.mp_detection_rid = "";
	cr_expect_eq(gw_validate_message(&r.base, err, sizeof err), GW_VALIDATE_INVALID);
	cr_expect_str_eq(err, "mp_detection_rid must be 1..64 characters of A-Z a-z 0-9 _ -");
	r.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE__NOT_SET;
	cr_expect_eq(gw_validate_message(&r.base, err, sizeof err), GW_VALIDATE_OK, "%s", err);
	cr_expect_eq(gw_validate_message(NULL, err, sizeof err), GW_VALIDATE_INVALID);
}

Test(validate, malformed_bytes)
{
	static const struct {
		const char *wire;
		size_t len;
	} t[] = {
		{ "\xff\xff\xff", 3 },			/* varint never ends */
		{ "\x0a\x50" "abc", 5 },		/* length past the end */
		{ "\x08", 1 },				/* value missing */
		{ "\x0f\x00", 2 },			/* wire type 7 */
		{ "\x0b\x0c", 2 },			/* a group */
		{ "\x00\x01", 2 },			/* field number 0 */
		{ "\x09\x01\x02", 3 },			/* fixed64 cut */
	};
	char err[GW_VALIDATE_ERR_MAX];
	int malformed;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_expect_null(gw_validate_unpack(&animate3d__v1__get_status_request__descriptor,
						  (const uint8_t *)t[i].wire, t[i].len, err, sizeof err,
						  &malformed), "case %zu", i);
		cr_expect_eq(malformed, 1, "case %zu: %s", i, err);
		cr_expect_str_eq(err, "malformed request message", "case %zu", i);
	}
	/* An empty message is a valid (empty) request. */
	{
		ProtobufCMessage *m = gw_validate_unpack(&animate3d__v1__list_jobs_request__descriptor,
							 (const uint8_t *)"", 0, err, sizeof err,
							 &malformed);
		cr_expect_not_null(m);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
	}
}

/* ---- through the translate rows: each row refuses what the table refuses ---- */

Test(validate, rows_refuse_beyond_caps_even_undecoded_by_validate)
{
	size_t n = 0;
	const struct gw_method *rows = gw_methods(&n);
	size_t tried = 0;

	for (size_t i = 0; i < n; i++) {
		const ProtobufCMessageDescriptor *d = rows[i].req_desc;

		if (!rows[i].tr.build)
			continue;

		for (unsigned k = 0; k < d->n_fields; k++) {
			const ProtobufCFieldDescriptor *f = &d->fields[k];
			unsigned cap = 0;
			struct wire w;
			ProtobufCMessage *m;
			struct gw_tr_request out = { 0 };
			char err[GW_TR_ERR_MAX] = "", want[96];

			if (f->label != PROTOBUF_C_LABEL_REPEATED ||
			    gw_validate_rule(d, f->name, NULL, &cap) != 0)
				continue;
			/* cap + 1 entries, unpacked by protobuf-c alone (as a unit test or the fuzz
			 * target would): the row's own check refuses them. */
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				w = records(f->id, "job.completed", cap + 1);
			} else {
				uint8_t *b = malloc(cap + 1);

				cr_assert_not_null(b);
				memset(b, 1, cap + 1);
				w = (struct wire){ 0 };
				w_bytes(&w, f->id, b, cap + 1);
				free(b);
			}
			m = protobuf_c_message_unpack(d, NULL, w.len, w.p);
			free(w.p);
			cr_assert_not_null(m);
			cr_expect_eq(rows[i].tr.build(m, &out, err, sizeof err), GW_TR_INVALID,
				     "%s took %u %s", rows[i].path, cap + 1, f->name);
			snprintf(want, sizeof want, "%s has more than %u entries", f->name, cap);
			cr_expect_str_eq(err, want, "%s", rows[i].path);
			gw_tr_request_clear(&out);
			protobuf_c_message_free_unpacked(m, NULL);
			tried++;
		}
	}
	cr_expect_geq(tried, 5, "rows with repeated fields: %zu", tried);
}

/* Id kinds accept exactly A-Z a-z 0-9 _ - (checked through a bitmap): every byte value at the
 * start, middle and end of an id, against the rule written out. */
Test(validate, id_charset_every_byte)
{
	static const enum gw_validate_kind kinds[] = { GW_VK_RID, GW_VK_MODEL_ID, GW_VK_ENDPOINT_ID,
						       GW_VK_CONFIG };

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		for (int b = 1; b < 256; b++) {
			int want = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
				   (b >= '0' && b <= '9') || b == '_' || b == '-';
			char s[3][8];

			snprintf(s[0], sizeof s[0], "%cabc", b);
			snprintf(s[1], sizeof s[1], "ab%ccd", b);
			snprintf(s[2], sizeof s[2], "abc%c", b);
			for (int at = 0; at < 3; at++)
				cr_expect_eq(gw_validate_ok(kinds[k], s[at]), want, "kind %zu byte %d at %d", k,
					     b, at);
		}
	}
}
