/*
 * translate: the row table, the job error texts and the helpers the per-service files share
 * (escaping, bounded paths, typed readers of upstream JSON that name the field on error).
 */
#include "gateway/api/translate.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "gateway/api/translate_int.h"

#define TR_FIELD_MAX 96		/* "status[12].details.positionInQueue" */

/* ---- requests ---- */

void gw_tr_request_clear(struct gw_tr_request *r)
{
	if (!r)
		return;
	free(r->path);
	free(r->body);
	r->path = NULL;
	r->body = NULL;
	r->method = NULL;
}

static void tr_buf_put(struct gw_tr_buf *b, const char *s, size_t n)
{
	char *np;
	size_t ncap;

	if (b->bad)
		return;
	if (b->len + n + 1 > GW_TR_PATH_MAX) {
		b->bad = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap ? b->cap : 128;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->bad = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void gw_tr_buf_add(struct gw_tr_buf *b, const char *s)
{
	tr_buf_put(b, s, strlen(s));
}

void gw_tr_buf_esc(struct gw_tr_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char enc[3];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			tr_buf_put(b, (const char *)s, 1);
			continue;
		}
		enc[0] = '%';
		enc[1] = hex[ch >> 4];
		enc[2] = hex[ch & 15];
		tr_buf_put(b, enc, 3);
	}
}

void gw_tr_buf_query(struct gw_tr_buf *b, const char *key, const char *val)
{
	gw_tr_buf_add(b, b->p && strchr(b->p, '?') ? "&" : "?");
	gw_tr_buf_add(b, key);
	gw_tr_buf_add(b, "=");
	gw_tr_buf_esc(b, val);
}

char *gw_tr_buf_take(struct gw_tr_buf *b)
{
	char *s = b->bad ? NULL : b->p;

	if (b->bad)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	return s;
}

int gw_tr_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* The row helpers hand validate.h's codes on as their own. */
_Static_assert((int)GW_VALIDATE_INVALID == (int)GW_TR_INVALID, "validate and translate share INVALID");

int gw_tr_check(const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d, char *err,
		size_t errlen)
{
	if (!req || req->descriptor != d)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "request is not a %s", d->name);
	/* The call's decoder checked the same table already; the rows are also used on their own
	 * (tests, fuzzing, rewritten ownership views), so they never trust the request. */
	return gw_validate_message(req, err, errlen) ? GW_TR_INVALID : GW_TR_OK;
}

void *gw_tr_msg_new(const ProtobufCMessageDescriptor *d)
{
	void *m = malloc(d->sizeof_message);

	if (m)
		protobuf_c_message_init(d, m);
	return m;
}

void *gw_tr_array(size_t n)
{
	return n ? calloc(n, sizeof(void *)) : NULL;
}

int gw_tr_set(const char *s)
{
	return s && s[0];
}

int gw_tr_rid_valid(const char *rid)
{
	return gw_validate_ok(GW_VK_RID, rid);
}

int gw_tr_rids_of(const ProtobufCMessage *req, size_t *n, char ***rids)
{
	const ProtobufCMessageDescriptor *d = req ? req->descriptor : NULL;

	if (d == &animate3d__v1__get_status_request__descriptor) {
		*n = ((const Animate3d__V1__GetStatusRequest *)req)->n_rids;
		*rids = ((const Animate3d__V1__GetStatusRequest *)req)->rids;
	} else if (d == &animate3d__v1__watch_status_request__descriptor) {
		*n = ((const Animate3d__V1__WatchStatusRequest *)req)->n_rids;
		*rids = ((const Animate3d__V1__WatchStatusRequest *)req)->rids;
	} else if (d == &animate3d__v1__get_download_urls_request__descriptor) {
		*n = ((const Animate3d__V1__GetDownloadUrlsRequest *)req)->n_rids;
		*rids = ((const Animate3d__V1__GetDownloadUrlsRequest *)req)->rids;
	} else {
		return -1;
	}
	return 0;
}

int gw_tr_check_name(const char *field, const char *s, char *err, size_t errlen)
{
	if (!gw_tr_set(s))
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "%s is required", field);
	return gw_validate_str(GW_VK_FILE_NAME, field, s, err, errlen);
}

int gw_tr_body(json_t *obj, struct gw_tr_request *out, char *err, size_t errlen)
{
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

	json_decref(obj);
	if (!s)
		return gw_tr_fail(err, errlen, GW_TR_INVALID, "out of memory building the request");
	free(out->body);
	out->body = s;
	return GW_TR_OK;
}

int gw_tr_path(struct gw_tr_buf *b, const char *method, struct gw_tr_request *out, char *err,
	       size_t errlen)
{
	char *p = gw_tr_buf_take(b);

	if (!p)
		return gw_tr_fail(err, errlen, GW_TR_INVALID,
				  "request path too long (more than %d bytes)", GW_TR_PATH_MAX);
	free(out->path);
	out->path = p;
	out->method = method;
	return GW_TR_OK;
}

int gw_tr_fixed(const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d, const char *method,
		const char *path, struct gw_tr_request *out, char *err, size_t errlen)
{
	struct gw_tr_buf b = { 0 };
	int rc = gw_tr_check(req, d, err, errlen);

	if (rc)
		return rc;
	gw_tr_buf_add(&b, path);
	return gw_tr_path(&b, method, out, err, errlen);
}

int gw_tr_id_path(const char *prefix, enum gw_validate_kind kind, const char *field, const char *id,
		  const char *method, struct gw_tr_request *out, char *err, size_t errlen)
{
	struct gw_tr_buf b = { 0 };
	int rc = gw_validate_str(kind, field, id, err, errlen);

	if (rc)
		return rc;
	gw_tr_buf_add(&b, prefix);
	gw_tr_buf_esc(&b, id);
	return gw_tr_path(&b, method, out, err, errlen);
}

int gw_tr_post(const char *path, json_t *body, struct gw_tr_request *out, char *err, size_t errlen)
{
	struct gw_tr_buf b = { 0 };
	int rc;

	gw_tr_buf_add(&b, path);
	if ((rc = gw_tr_path(&b, "POST", out, err, errlen))) {
		json_decref(body);
		return rc;
	}
	return gw_tr_body(body, out, err, errlen);
}

/* ---- upstream JSON readers ---- */

int gw_tr_load(const char *body, size_t len, json_t **root, char *err, size_t errlen)
{
	json_error_t je;

	/* Only the position goes into the message: the text of a jansson error quotes the body,
	 * and a body can hold signed URLs. */
	memset(&je, 0, sizeof(je));
	*root = body ? json_loadb(body, len, 0, &je) : NULL;
	if (!*root)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
				  "body is not valid JSON (at byte %zu)", (size_t)je.position);
	return GW_TR_OK;
}

static const char *tr_field(char *buf, size_t n, const char *ctx, const char *key)
{
	snprintf(buf, n, "%s%s%s", ctx ? ctx : "", ctx && ctx[0] ? "." : "", key);
	return buf;
}

/* The value under key, or NULL when missing/null; GW_TR_BAD_UPSTREAM when required and absent. */
static int tr_get(json_t *obj, const char *key, const char *ctx, int required, json_t **v,
		  char *err, size_t errlen)
{
	char f[TR_FIELD_MAX];

	*v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	if (json_is_null(*v))
		*v = NULL;
	if (!*v && required)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
				  "field %s is missing", tr_field(f, sizeof(f), ctx, key));
	return GW_TR_OK;
}

static int tr_type(const char *ctx, const char *key, const char *type, char *err, size_t errlen)
{
	char f[TR_FIELD_MAX];

	return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "field %s is not %s",
			  tr_field(f, sizeof(f), ctx, key), type);
}

int gw_tr_str(json_t *obj, const char *key, const char *ctx, int required, char **out, char *err,
	      size_t errlen)
{
	json_t *v;
	char *s;
	int rc = tr_get(obj, key, ctx, required, &v, err, errlen);

	if (rc || !v)
		return rc;
	if (!json_is_string(v))
		return tr_type(ctx, key, "a string", err, errlen);
	s = strdup(json_string_value(v));
	if (!s)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	*out = s;
	return GW_TR_OK;
}

static int tr_num(json_t *obj, const char *key, const char *ctx, int required, double lo,
		  double hi, int integral, double *out, char *err, size_t errlen)
{
	json_t *v;
	double d;
	int rc = tr_get(obj, key, ctx, required, &v, err, errlen);

	if (rc || !v)
		return rc;
	if (json_is_integer(v))
		d = (double)json_integer_value(v);
	else if (json_is_real(v))
		d = json_real_value(v);
	else
		return tr_type(ctx, key, "a number", err, errlen);
	if (!isfinite(d) || d < lo || d > hi)
		return tr_type(ctx, key, "a number in range", err, errlen);
	*out = integral ? trunc(d) : d;
	return GW_TR_OK;
}

int gw_tr_i64(json_t *obj, const char *key, const char *ctx, int required, int64_t *out, char *err,
	      size_t errlen)
{
	json_t *v;
	double d = 0;
	int rc = tr_get(obj, key, ctx, required, &v, err, errlen);

	if (rc || !v)
		return rc;
	/* Integers are taken exactly; reals (ms timestamps sometimes come as 1.7e12) are truncated. */
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return GW_TR_OK;
	}
	rc = tr_num(obj, key, ctx, required, -9.2e18, 9.2e18, 1, &d, err, errlen);
	if (rc == GW_TR_OK)
		*out = (int64_t)d;
	return rc;
}

int gw_tr_i32(json_t *obj, const char *key, const char *ctx, int required, int32_t *out, char *err,
	      size_t errlen)
{
	double d = *out;	/* unchanged when the field is absent */
	int rc = tr_num(obj, key, ctx, required, -2147483648.0, 2147483647.0, 1, &d, err, errlen);

	if (rc == GW_TR_OK)
		*out = (int32_t)d;
	return rc;
}

int gw_tr_dbl(json_t *obj, const char *key, const char *ctx, int required, double *out, char *err,
	      size_t errlen)
{
	return tr_num(obj, key, ctx, required, -INFINITY, INFINITY, 0, out, err, errlen);
}

int gw_tr_bool(json_t *obj, const char *key, const char *ctx, int required, int *out, char *err,
	       size_t errlen)
{
	json_t *v;
	int rc = tr_get(obj, key, ctx, required, &v, err, errlen);

	if (rc || !v)
		return rc;
	if (!json_is_boolean(v))
		return tr_type(ctx, key, "a boolean", err, errlen);
	*out = json_is_true(v);
	return GW_TR_OK;
}

int gw_tr_arr(json_t *obj, const char *key, const char *ctx, int required, size_t max,
	      json_t **out, char *err, size_t errlen)
{
	char f[TR_FIELD_MAX];
	json_t *v;
	int rc = tr_get(obj, key, ctx, required, &v, err, errlen);

	*out = NULL;
	if (rc || !v)
		return rc;
	if (!json_is_array(v))
		return tr_type(ctx, key, "an array", err, errlen);
	if (json_array_size(v) > max)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
				  "field %s has more than %zu entries",
				  tr_field(f, sizeof(f), ctx, key), max);
	*out = v;
	return GW_TR_OK;
}

int gw_tr_obj(json_t *obj, const char *key, const char *ctx, int required, json_t **out, char *err,
	      size_t errlen)
{
	json_t *v;
	int rc = tr_get(obj, key, ctx, required, &v, err, errlen);

	*out = NULL;
	if (rc || !v)
		return rc;
	if (!json_is_object(v))
		return tr_type(ctx, key, "an object", err, errlen);
	*out = v;
	return GW_TR_OK;
}

/* ---- replies ---- */

int gw_tr_reply(const char *body, size_t len, const ProtobufCMessageDescriptor *d,
		gw_tr_reply_fn fill, const void *arg, ProtobufCMessage **out, char *err,
		size_t errlen)
{
	ProtobufCMessage *m = NULL;
	json_t *root = NULL;
	int rc = gw_tr_load(body, len, &root, err, errlen);

	if (rc)
		goto out;
	rc = gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	if (!(m = gw_tr_msg_new(d)))
		goto out;
	if ((rc = fill(m, root, arg, err, errlen)))
		goto out;
	*out = m;
	m = NULL;
out:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	json_decref(root);
	return rc;
}

int gw_tr_fill_list(ProtobufCMessage *m, const char *field, json_t *arr, const size_t *pick,
		    size_t npick, gw_tr_fill_fn fill, const char *name, char *err, size_t errlen)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, field);
	size_t total = pick ? npick : json_array_size(arr);
	char ctx[GW_TR_CTX_MAX];
	void **items = NULL;
	size_t *n;

	/* A programming error (no such list in the reply), caught by every row's table tests. */
	if (!f || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "%s has no list %s",
				  m->descriptor->name, field);
	/* Located the way protobuf-c's own code does it, so one helper serves every reply type. */
	n = (size_t *)(void *)((char *)m + f->quantifier_offset);
	if (total && !(items = gw_tr_array(total)))
		return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
	memcpy((char *)m + f->offset, &items, sizeof(items));
	for (size_t k = 0; k < total; k++) {
		size_t i = pick ? pick[k] : k;
		json_t *it = json_array_get(arr, i);
		void *item = gw_tr_msg_new(f->descriptor);
		int rc;

		if (!item)
			return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM, "out of memory");
		items[(*n)++] = item;
		snprintf(ctx, sizeof(ctx), "%s[%zu]", name, i);
		if (!json_is_object(it))
			return gw_tr_fail(err, errlen, GW_TR_BAD_UPSTREAM,
					  "field %s is not an object", ctx);
		if ((rc = fill(item, it, ctx, err, errlen)))
			return rc;
	}
	return GW_TR_OK;
}

/* ---- job states and errors ---- */

static const char *const tr_state_names[] = {
	[ANIMATE3D__V1__JOB_STATE__PROGRESS] = "PROGRESS",
	[ANIMATE3D__V1__JOB_STATE__SUCCESS] = "SUCCESS",
	[ANIMATE3D__V1__JOB_STATE__RETRY] = "RETRY",
	[ANIMATE3D__V1__JOB_STATE__FAILURE] = "FAILURE",
	[ANIMATE3D__V1__JOB_STATE__STARTING] = "STARTING",
};

const char *gw_tr_job_state_name(int state)
{
	if (state <= 0 || (size_t)state >= sizeof(tr_state_names) / sizeof(tr_state_names[0]))
		return NULL;
	return tr_state_names[state];
}

int gw_tr_job_state(const char *s)
{
	for (size_t i = 1; s && i < sizeof(tr_state_names) / sizeof(tr_state_names[0]); i++)
		if (tr_state_names[i] && strcmp(s, tr_state_names[i]) == 0)
			return (int)i;
	return ANIMATE3D__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
}

static const struct {
	int code;
	const char *text;
} tr_job_errors[] = {
	{ 101, "Not enough credits" },
	{ 201, "Error downloading the video or DM asset" },
	{ 202, "Error converting the video" },
	{ 503, "Error processing the parameters" },
	{ 504, "Error loading the character assets" },
	{ 505, "Physics Filter is incompatible with the custom characters" },
	{ 506, "Error creating the pose estimation" },
	{ 507, "Error while processing the body tracking" },
	{ 508, "Input video or image doesn't meet the requirements to generate animations of good quality" },
	{ 509, "Error loading the configurations" },
	{ 510, "Error open internal files" },
	{ 511, "Processing interrupted" },
	{ 513, "Failed to detect character in the video" },
	{ 599, "Body tracking timeout" },
	{ 701, "Error processing the face tracking" },
	{ 799, "Face tracking timeout" },
	{ 901, "Error loading the mesh of the custom character" },
	{ 902, "Error loading the BVH custom character" },
	{ 903, "Error copying animations onto the custom character" },
	{ 904, "Error exporting animations for the custom character" },
	{ 905, "Custom character doesn't include skinned mesh information" },
	{ 906, "More than half of the required blendshapes are missing" },
	{ 907, "Error loading facial definition for the custom character" },
	{ 908, "Error loading facial tracking data" },
	{ 909, "Error loading the metadata of the custom character" },
	{ 999, "Animation baking timeout" },
	{ 1301, "Error creating the hand estimation" },
	{ 1302, "Error creating the hand estimation" },
	{ 1303, "Error creating the hand estimation" },
	{ 1304, "Error opening the video" },
	{ 1305, "Error parsing video path" },
	{ 1306, "Error loading internal files" },
	{ 1307, "Error processing hand tracking" },
	{ 1308, "Error processing the video" },
	{ 1399, "Hand tracking timeout" },
};

const char *gw_tr_job_error_text(int code)
{
	for (size_t i = 0; i < sizeof(tr_job_errors) / sizeof(tr_job_errors[0]); i++)
		if (tr_job_errors[i].code == code)
			return tr_job_errors[i].text;
	return NULL;
}

