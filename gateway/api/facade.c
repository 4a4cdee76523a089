/*
 * facade: REST request -> gRPC request, gRPC reply -> upstream JSON. See facade.h.
 *
 * The JSON written here is what the simulator writes for the same job (docs/upstream-api.md), so
 * a client cannot tell the facade from upstream by the shape of an answer.
 */
#include "gateway/api/facade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "gateway/api/translate.h"
#include "gateway/api/validate.h"
#include "gateway/base/hex.h"

#define FACADE_MAX_ARG 4096	/* decoded path argument ("rid1,rid2,...": 100 rids of <= 64) */
#define FACADE_WH_MAX_ID (GW_VALIDATE_ID_MAX + 1)	/* a decoded endpoint id and its NUL */

/* ---- small helpers ---- */

static int facade_fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -1;
}

static void *facade_msg(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = calloc(1, d->sizeof_message);

	if (m)
		d->message_init(m);
	return m;
}

/* Percent-decodes s[0..n) into buf (plus as space when form is set). 0, or -1 when it does not fit
 * or holds a NUL byte or a broken escape. */
static int facade_decode(const char *s, size_t n, int form, char *buf, size_t cap)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '%') {
			int hi = i + 2 < n ? gw_hex_digit(s[i + 1]) : -1;
			int lo = i + 2 < n ? gw_hex_digit(s[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return -1;
			ch = (char)(hi << 4 | lo);
			i += 2;
			if (ch == '\0')
				return -1;
		} else if (ch == '+' && form) {
			ch = ' ';
		}
		if (j + 1 >= cap)
			return -1;
		buf[j++] = ch;
	}
	buf[j] = '\0';
	return 0;
}

int gw_facade_query(const char *query, const char *key, char *buf, size_t cap)
{
	size_t klen = strlen(key);
	const char *p = query;

	while (p && *p) {
		const char *end = strchr(p, '&');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n >= klen && strncmp(p, key, klen) == 0 && (n == klen || p[klen] == '=')) {
			const char *v = n == klen ? p + n : p + klen + 1;

			return facade_decode(v, n - (size_t)(v - p), 1, buf, cap) ? -1 : 1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

/* A query parameter as a malloc'd string in *dst (left alone when absent). */
static int facade_query_str(const struct gw_facade_in *in, const char *key, char **dst, char *err,
			    size_t errlen)
{
	char v[GW_FACADE_MAX_QUERY_VALUE];
	int r = gw_facade_query(in->query, key, v, sizeof v);

	if (r < 0) {
		snprintf(err, errlen, "query parameter %s is malformed or too long", key);
		return -1;
	}
	if (r == 0)
		return 0;
	*dst = strdup(v);
	return *dst ? 0 : facade_fail(err, errlen, "out of memory");
}

/* resumable=0|1 (upstream's default: 1); anything but "0" and "false" is 1, as upstream reads it. */
static int facade_query_bool(const struct gw_facade_in *in, const char *key, int dflt)
{
	char v[16];
	int r = gw_facade_query(in->query, key, v, sizeof v);

	if (r <= 0)
		return dflt;
	return !(strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || v[0] == '\0');
}

/* The JSON object of a request body; NULL with err. */
static json_t *facade_body(const struct gw_facade_in *in, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o;

	if (!in->body || !in->body_len) {
		facade_fail(err, errlen, "request body must be a JSON object");
		return NULL;
	}
	o = json_loadb(in->body, in->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		facade_fail(err, errlen, "request body must be a JSON object");
		return NULL;
	}
	return o;
}

/* A string member as a malloc'd copy in *dst (left alone when absent or null). */
static int facade_member(json_t *o, const char *key, char **dst, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s must be a string", key);
		return -1;
	}
	*dst = strdup(json_string_value(v));
	return *dst ? 0 : facade_fail(err, errlen, "out of memory");
}

static char *facade_dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;

	json_decref(o);
	return s;
}

static json_t *facade_str(const char *s)
{
	return json_string(s ? s : "");
}

/* ---- builders ---- */

/* "rid1,rid2,..." into repeated rids (GetStatus, GetDownloadUrls): the call's field limits check
 * each rid; empty ones are refused here. */
static int facade_rids(const struct gw_facade_in *in, char ***rids, size_t *n, char *err,
		       size_t errlen)
{
	char buf[FACADE_MAX_ARG];
	size_t count = 1;
	char *p, *save = NULL;

	if (facade_decode(in->arg, strlen(in->arg), 0, buf, sizeof buf) || !buf[0])
		return facade_fail(err, errlen, "rids are malformed");
	for (p = buf; *p; p++)
		count += *p == ',';
	if (count > GW_TR_MAX_RIDS)
		return facade_fail(err, errlen, "too many rids");
	*rids = calloc(count, sizeof **rids);
	if (!*rids)
		return facade_fail(err, errlen, "out of memory");
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		(*rids)[*n] = strdup(p);
		if (!(*rids)[*n])
			return facade_fail(err, errlen, "out of memory");
		(*n)++;
	}
	return *n ? 0 : facade_fail(err, errlen, "rids are malformed");
}

static int facade_build_status(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
			       size_t errlen)
{
	Animate3d__V1__GetStatusRequest *r = facade_msg(&animate3d__v1__get_status_request__descriptor);

	*out = (ProtobufCMessage *)r;
	return r ? facade_rids(in, &r->rids, &r->n_rids, err, errlen)
		 : facade_fail(err, errlen, "out of memory");
}

static int facade_build_download(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				 size_t errlen)
{
	Animate3d__V1__GetDownloadUrlsRequest *r =
		facade_msg(&animate3d__v1__get_download_urls_request__descriptor);

	*out = (ProtobufCMessage *)r;
	return r ? facade_rids(in, &r->rids, &r->n_rids, err, errlen)
		 : facade_fail(err, errlen, "out of memory");
}

static const struct {
	const char *name;
	Animate3d__V1__JobState state;
} facade_states[] = {
	{ "STARTING", ANIMATE3D__V1__JOB_STATE__STARTING },
	{ "PROGRESS", ANIMATE3D__V1__JOB_STATE__PROGRESS },
	{ "SUCCESS", ANIMATE3D__V1__JOB_STATE__SUCCESS },
	{ "FAILURE", ANIMATE3D__V1__JOB_STATE__FAILURE },
	{ "RETRY", ANIMATE3D__V1__JOB_STATE__RETRY },
};
#define FACADE_NSTATES (sizeof facade_states / sizeof facade_states[0])

static int facade_build_list(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
			     size_t errlen)
{
	Animate3d__V1__ListJobsRequest *r = facade_msg(&animate3d__v1__list_jobs_request__descriptor);
	char buf[256];
	char *p, *save = NULL;

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (!in->arg[0])
		return 0;
	if (facade_decode(in->arg, strlen(in->arg), 0, buf, sizeof buf))
		return facade_fail(err, errlen, "statuses are malformed");
	r->states = calloc(FACADE_NSTATES, sizeof *r->states);
	if (!r->states)
		return facade_fail(err, errlen, "out of memory");
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		size_t k, seen = 0;

		for (k = 0; k < FACADE_NSTATES && strcmp(p, facade_states[k].name) != 0; k++)
			;
		if (k == FACADE_NSTATES) {
			snprintf(err, errlen, "Unknown status: %.64s", p);
			return -1;
		}
		for (size_t i = 0; i < r->n_states; i++)
			seen |= r->states[i] == facade_states[k].state;
		if (!seen)
			r->states[r->n_states++] = facade_states[k].state;
	}
	return 0;
}

static int facade_build_empty(const ProtobufCMessageDescriptor *d, ProtobufCMessage **out,
			      char *err, size_t errlen)
{
	*out = facade_msg(d);
	return *out ? 0 : facade_fail(err, errlen, "out of memory");
}

static int facade_build_credits(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				size_t errlen)
{
	(void)in;
	return facade_build_empty(&animate3d__v1__get_credit_balance_request__descriptor, out, err,
				  errlen);
}

static int facade_build_minutes(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				size_t errlen)
{
	(void)in;
	return facade_build_empty(&animate3d__v1__get_minutes_balance_request__descriptor, out, err,
				  errlen);
}

static int facade_build_upload(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
			       size_t errlen)
{
	Animate3d__V1__GetUploadUrlRequest *r =
		facade_msg(&animate3d__v1__get_upload_url_request__descriptor);

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	r->resumable = facade_query_bool(in, "resumable", 1);
	return facade_query_str(in, "name", &r->name, err, errlen);
}

static int facade_build_pesave(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
			       size_t errlen)
{
	Animate3d__V1__GetPersonUrlsRequest *r =
		facade_msg(&animate3d__v1__get_person_urls_request__descriptor);
	char buf[FACADE_MAX_ARG];

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (facade_decode(in->arg, strlen(in->arg), 0, buf, sizeof buf) || !buf[0])
		return facade_fail(err, errlen, "rid is malformed");
	r->rid = strdup(buf);
	return r->rid ? 0 : facade_fail(err, errlen, "out of memory");
}

static int facade_build_video_info(const struct gw_facade_in *in, ProtobufCMessage **out,
				   char *err, size_t errlen)
{
	Animate3d__V1__GetVideoInfoRequest *r =
		facade_msg(&animate3d__v1__get_video_info_request__descriptor);
	json_t *o;
	int rc;

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (!(o = facade_body(in, err, errlen)))
		return -1;
	rc = facade_member(o, "url", &r->upload_url, err, errlen);
	json_decref(o);
	return rc;
}

static int facade_build_model_upload(const struct gw_facade_in *in, ProtobufCMessage **out,
				     char *err, size_t errlen)
{
	Animate3d__V1__GetModelUploadUrlRequest *r =
		facade_msg(&animate3d__v1__get_model_upload_url_request__descriptor);

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	r->resumable = facade_query_bool(in, "resumable", 1);
	if (facade_query_str(in, "name", &r->name, err, errlen) ||
	    facade_query_str(in, "modelExt", &r->model_ext, err, errlen) ||
	    facade_query_str(in, "thumbExt", &r->thumb_ext, err, errlen))
		return -1;
	return 0;
}

static int facade_build_store_model(const struct gw_facade_in *in, ProtobufCMessage **out,
				    char *err, size_t errlen)
{
	Animate3d__V1__StoreModelRequest *r =
		facade_msg(&animate3d__v1__store_model_request__descriptor);
	json_t *o, *ct;
	int rc;

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (!(o = facade_body(in, err, errlen)))
		return -1;
	rc = facade_member(o, "modelUrl", &r->model_url, err, errlen);
	if (!rc)
		rc = facade_member(o, "modelName", &r->model_name, err, errlen);
	if (!rc)
		rc = facade_member(o, "thumbUrl", &r->thumb_url, err, errlen);
	if (!rc)
		rc = facade_member(o, "modelId", &r->model_id, err, errlen);
	ct = json_object_get(o, "createThumb");
	r->create_thumb = json_is_true(ct) || (json_is_integer(ct) && json_integer_value(ct) != 0);
	json_decref(o);
	return rc;
}

static int facade_build_list_models(const struct gw_facade_in *in, ProtobufCMessage **out,
				    char *err, size_t errlen)
{
	Animate3d__V1__ListModelsRequest *r =
		facade_msg(&animate3d__v1__list_models_request__descriptor);
	char v[32];

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	r->include_stock = gw_facade_query(in->query, "stockModel", v, sizeof v) == 1 &&
			   strcmp(v, "all") == 0;
	if (facade_query_str(in, "modelId", &r->model_id, err, errlen) ||
	    facade_query_str(in, "searchToken", &r->search_token, err, errlen))
		return -1;
	return 0;
}

static int facade_build_delete_model(const struct gw_facade_in *in, ProtobufCMessage **out,
				     char *err, size_t errlen)
{
	Animate3d__V1__DeleteModelRequest *r =
		facade_msg(&animate3d__v1__delete_model_request__descriptor);
	char buf[FACADE_MAX_ARG];

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (facade_decode(in->arg, strlen(in->arg), 0, buf, sizeof buf) || !buf[0])
		return facade_fail(err, errlen, "model id is malformed");
	r->model_id = strdup(buf);
	return r->model_id ? 0 : facade_fail(err, errlen, "out of memory");
}

/* {"url" | "rid" | "rid_mp_detection", "processor", "params": [...]} + Idempotency-Key. */
static int facade_build_process(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				size_t errlen)
{
	static const struct {
		const char *key;
		Animate3d__V1__StartJobRequest__SourceCase src;
	} sources[] = {
		{ "url", ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL },
		{ "rid", ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_RERUN_RID },
		{ "rid_mp_detection", ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_MP_DETECTION_RID },
	};
	Animate3d__V1__StartJobRequest *r = facade_msg(&animate3d__v1__start_job_request__descriptor);
	json_t *o;
	int rc = -1;

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (!(o = facade_body(in, err, errlen)))
		return -1;
	for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
		char *v = NULL;

		if (facade_member(o, sources[i].key, &v, err, errlen))
			goto out;
		if (!v)
			continue;
		if (r->source_case != ANIMATE3D__V1__START_JOB_REQUEST__SOURCE__NOT_SET) {
			free(v);
			facade_fail(err, errlen, "give one of url, rid and rid_mp_detection");
			goto out;
		}
		r->source_case = sources[i].src;
		r->upload_url = v;	/* the oneof's members share one place */
	}
	if (r->source_case == ANIMATE3D__V1__START_JOB_REQUEST__SOURCE__NOT_SET) {
		facade_fail(err, errlen, "url, rid or rid_mp_detection is required");
		goto out;
	}
	if (gw_facade_params(json_object_get(o, "params"), r, err, errlen))
		goto out;
	if (in->idempotency_key && !(r->idempotency_key = strdup(in->idempotency_key))) {
		facade_fail(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static char *facade_render_process(const ProtobufCMessage *m)
{
	const Animate3d__V1__StartJobResponse *r = (const void *)m;

	return facade_dump(json_pack("{s:o}", "rid", facade_str(r->rid)));
}

/* ---- renderers ---- */

static const char *facade_state_name(int state)
{
	for (size_t k = 0; k < FACADE_NSTATES; k++)
		if ((int)facade_states[k].state == state)
			return facade_states[k].name;
	return "PROGRESS";
}

/* ---- GET /status written directly ----
 * A cached GET /status is the facade's hot path, and building the answer as jansson objects,
 * dumping and freeing them was a third of the loop's instructions per request (bench step 8,
 * callgrind). The answer is written here into one buffer instead, when every string in it is
 * printable ASCII with nothing to escape (rids, file names, error words almost always are);
 * anything else takes the jansson path, which escapes and checks UTF-8. Same bytes either way:
 * the unit tests compare both paths' answers. */

#define FACADE_INT_MAX 21	/* "-9223372036854775808" */
#define FACADE_EXC_MAX 320	/* an exc_message as written (longer error words are cut) */

/* s (NULL: "") holds only ' '..'~' without '"' and '\\': it goes out between quotes as it is. */
static int facade_plain(const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < ' ' || c > '~' || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

static size_t facade_len(const char *s)
{
	return s ? strlen(s) : 0;
}

/* Appends n bytes at p (the caller sized the buffer); -> the end. */
static char *facade_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* A string literal, without its NUL. */
#define FACADE_PUT_LIT(p, lit) facade_put((p), (lit), sizeof(lit) - 1)

static char *facade_put_str(char *p, const char *s)
{
	*p++ = '"';
	p = facade_put(p, s ? s : "", facade_len(s));
	*p++ = '"';
	return p;
}

static char *facade_put_int(char *p, int64_t v)
{
	char tmp[FACADE_INT_MAX];
	size_t n = 0;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*p++ = '-';
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* upstream's "exc_message" of a RETRY or FAILURE status into msg. */
static void facade_exc_message(const Animate3d__V1__JobStatus *s, char *msg, size_t cap)
{
	/* Upstream's own spelling of a documented code: "Error 513: <its meaning>". */
	if (s->error_code)
		snprintf(msg, cap, "Error %d: %s", (int)s->error_code,
			 s->error_message ? s->error_message : "");
	else
		snprintf(msg, cap, "%s", s->error_message ? s->error_message : "");
}

/* 0 with *out the answer (NULL: out of memory), or -1 when a string needs the jansson path. */
static int facade_status_direct(const Animate3d__V1__GetStatusResponse *r, char **out)
{
	/* Every fixed part of one status, with three integers, fits in this. */
	const size_t per_status = 160 + 3 * FACADE_INT_MAX;
	char msg[FACADE_EXC_MAX];
	size_t cap = 32 + FACADE_INT_MAX;
	char *buf, *p;

	for (size_t i = 0; i < r->n_statuses; i++) {
		const Animate3d__V1__JobStatus *s = r->statuses[i];

		if (!facade_plain(s->rid) || !facade_plain(s->input_file) ||
		    !facade_plain(s->output_file) || !facade_plain(s->error_type))
			return -1;
		cap += per_status + facade_len(s->rid) + facade_len(s->input_file) +
		       facade_len(s->output_file) + facade_len(s->error_type);
		if (s->state == ANIMATE3D__V1__JOB_STATE__RETRY ||
		    s->state == ANIMATE3D__V1__JOB_STATE__FAILURE) {
			facade_exc_message(s, msg, sizeof msg);
			if (!facade_plain(msg))
				return -1;
			cap += strlen(msg);
		}
	}
	*out = buf = malloc(cap);
	if (!buf)
		return 0;
	p = FACADE_PUT_LIT(buf, "{\"count\":");
	p = facade_put_int(p, (int64_t)r->n_statuses);
	p = FACADE_PUT_LIT(p, ",\"status\":[");
	for (size_t i = 0; i < r->n_statuses; i++) {
		const Animate3d__V1__JobStatus *s = r->statuses[i];
		int state = s->state == ANIMATE3D__V1__JOB_STATE__STARTING
			    ? ANIMATE3D__V1__JOB_STATE__PROGRESS : (int)s->state;

		if (i)
			*p++ = ',';
		p = FACADE_PUT_LIT(p, "{\"rid\":");
		p = facade_put_str(p, s->rid);
		p = FACADE_PUT_LIT(p, ",\"status\":");
		p = facade_put_str(p, facade_state_name(state));
		switch (s->state) {
		case ANIMATE3D__V1__JOB_STATE__SUCCESS:
			p = FACADE_PUT_LIT(p, ",\"details\":{\"in\":");
			p = facade_put_str(p, s->input_file);
			p = FACADE_PUT_LIT(p, ",\"out\":");
			p = facade_put_str(p, s->output_file);
			break;
		case ANIMATE3D__V1__JOB_STATE__RETRY:
		case ANIMATE3D__V1__JOB_STATE__FAILURE:
			facade_exc_message(s, msg, sizeof msg);
			p = FACADE_PUT_LIT(p, ",\"details\":{\"exc_message\":");
			p = facade_put_str(p, msg);
			p = FACADE_PUT_LIT(p, ",\"exc_type\":");
			p = facade_put_str(p, s->error_type);
			break;
		default:
			p = FACADE_PUT_LIT(p, ",\"details\":{\"step\":");
			p = facade_put_int(p, s->step);
			p = FACADE_PUT_LIT(p, ",\"total\":");
			p = facade_put_int(p, s->total);
			break;
		}
		*p++ = '}';
		/* Where public clients (the JS SDK) read the queue position: beside "details". */
		if (s->position_in_queue > 0) {
			p = FACADE_PUT_LIT(p, ",\"positionInQueue\":");
			p = facade_put_int(p, s->position_in_queue);
		}
		*p++ = '}';
	}
	p = FACADE_PUT_LIT(p, "]}");
	*p = '\0';
	return 0;
}

static json_t *facade_status_one(const Animate3d__V1__JobStatus *s)
{
	json_t *d, *el;
	char msg[FACADE_EXC_MAX];

	switch (s->state) {
	case ANIMATE3D__V1__JOB_STATE__SUCCESS:
		d = json_pack("{s:o, s:o}", "in", facade_str(s->input_file), "out",
			      facade_str(s->output_file));
		break;
	case ANIMATE3D__V1__JOB_STATE__RETRY:
	case ANIMATE3D__V1__JOB_STATE__FAILURE:
		facade_exc_message(s, msg, sizeof msg);
		d = json_pack("{s:s, s:o}", "exc_message", msg, "exc_type", facade_str(s->error_type));
		break;
	default:
		d = json_pack("{s:I, s:I}", "step", (json_int_t)s->step, "total", (json_int_t)s->total);
		break;
	}
	el = json_pack("{s:o, s:s, s:o}", "rid", facade_str(s->rid), "status",
		       facade_state_name(s->state == ANIMATE3D__V1__JOB_STATE__STARTING
					 ? ANIMATE3D__V1__JOB_STATE__PROGRESS : s->state), "details", d);
	/* Where public clients (the JS SDK) read the queue position: beside "details". */
	if (el && s->position_in_queue > 0)
		json_object_set_new(el, "positionInQueue", json_integer(s->position_in_queue));
	return el;
}

static char *facade_render_status(const ProtobufCMessage *m)
{
	const Animate3d__V1__GetStatusResponse *r = (const void *)m;
	json_t *arr;
	char *direct = NULL;

	if (facade_status_direct(r, &direct) == 0)
		return direct;
	arr = json_array();
	for (size_t i = 0; arr && i < r->n_statuses; i++)
		json_array_append_new(arr, facade_status_one(r->statuses[i]));
	return facade_dump(arr ? json_pack("{s:I, s:o}", "count", (json_int_t)r->n_statuses,
					   "status", arr) : NULL);
}

static json_t *facade_models(Animate3d__V1__JobModel **models, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		const Animate3d__V1__JobModel *jm = models[i];

		json_array_append_new(arr, json_pack("{s:o, s:o, s:i, s:i}", "trackingId",
						     facade_str(jm->tracking_id), "modelId",
						     jm->model_id && jm->model_id[0]
						     ? json_string(jm->model_id) : json_null(),
						     "faceDataType", (int)jm->face_data_type,
						     "handDataType", (int)jm->hand_data_type));
	}
	return arr;
}

static json_t *facade_link(const Animate3d__V1__DownloadLink *l)
{
	json_t *o, *urls;

	/* An unfinished or failed job's link is just its rid (API 5). */
	if (l->mode_opt_case != ANIMATE3D__V1__DOWNLOAD_LINK__MODE_OPT_MODE && !l->n_groups)
		return json_pack("{s:o}", "rid", facade_str(l->rid));
	urls = json_array();
	for (size_t g = 0; urls && g < l->n_groups; g++) {
		const Animate3d__V1__DownloadGroup *dg = l->groups[g];
		json_t *files = json_array();

		for (size_t f = 0; files && f < dg->n_files; f++)
			json_array_append_new(files, json_pack("{s:o}", dg->files[f]->format,
							       facade_str(dg->files[f]->url)));
		json_array_append_new(urls, json_pack("{s:o, s:o}", "name", facade_str(dg->name),
						      "files", files ? files : json_array()));
	}
	o = json_pack("{s:o, s:o, s:I, s:f, s:o, s:o}", "rid", facade_str(l->rid), "name",
		      facade_str(l->name), "size", (json_int_t)l->size, "duration", l->duration,
		      "input", facade_str(l->input), "urls", urls ? urls : json_array());
	if (o && l->mode_opt_case == ANIMATE3D__V1__DOWNLOAD_LINK__MODE_OPT_MODE) {
		json_object_set_new(o, "mode", json_integer(l->mode));
		json_object_set_new(o, "models", facade_models(l->models, l->n_models));
	}
	return o;
}

static char *facade_render_download(const ProtobufCMessage *m)
{
	const Animate3d__V1__GetDownloadUrlsResponse *r = (const void *)m;
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < r->n_links; i++)
		json_array_append_new(arr, facade_link(r->links[i]));
	return facade_dump(arr ? json_pack("{s:I, s:o}", "count", (json_int_t)r->n_links, "links",
					   arr) : NULL);
}

static char *facade_render_list(const ProtobufCMessage *m)
{
	const Animate3d__V1__ListJobsResponse *r = (const void *)m;
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < r->n_jobs; i++) {
		const Animate3d__V1__JobSummary *j = r->jobs[i];
		json_t *o = json_pack("{s:o, s:o, s:I, s:f, s:s, s:I, s:I}", "rid", facade_str(j->rid),
				      "fileName", facade_str(j->file_name), "fileSize",
				      (json_int_t)j->file_size, "fileDuration", j->file_duration,
				      "status", facade_state_name(j->state), "ctime",
				      (json_int_t)j->ctime_ms, "mtime", (json_int_t)j->mtime_ms);

		if (o && j->mode_opt_case == ANIMATE3D__V1__JOB_SUMMARY__MODE_OPT_MODE) {
			json_object_set_new(o, "mode", json_integer(j->mode));
			json_object_set_new(o, "models", facade_models(j->models, j->n_models));
		}
		json_array_append_new(arr, o);
	}
	return facade_dump(arr ? json_pack("{s:I, s:o}", "count", (json_int_t)r->n_jobs, "list", arr)
			       : NULL);
}

static char *facade_render_credits(const ProtobufCMessage *m)
{
	const Animate3d__V1__GetCreditBalanceResponse *r = (const void *)m;

	return facade_dump(json_pack("{s:f}", "credits", r->credits));
}

/* Printed with exactly two decimals, as upstream prints it ({"minutes":15.80}). */
static char *facade_render_minutes(const ProtobufCMessage *m)
{
	const Animate3d__V1__GetMinutesBalanceResponse *r = (const void *)m;
	char buf[64];

	snprintf(buf, sizeof buf, "{\"minutes\":%.2f}", r->minutes);
	return strdup(buf);
}

static char *facade_render_upload(const ProtobufCMessage *m)
{
	const Animate3d__V1__GetUploadUrlResponse *r = (const void *)m;

	return facade_dump(json_pack("{s:o}", "url", facade_str(r->url)));
}

static char *facade_render_pesave(const ProtobufCMessage *m)
{
	const Animate3d__V1__GetPersonUrlsResponse *r = (const void *)m;
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < r->n_persons; i++) {
		const Animate3d__V1__PersonUrls *p = r->persons[i];
		const char *rd = p->modified_version_read_url;

		json_array_append_new(arr, json_pack("{s:o, s:o, s:o}", "trackingId",
						     facade_str(p->tracking_id),
						     "modifiedVersionReadUrl",
						     rd && rd[0] ? json_string(rd) : json_null(),
						     "modifiedVersionWriteUrl",
						     facade_str(p->modified_version_write_url)));
	}
	return facade_dump(arr);
}

static char *facade_render_video_info(const ProtobufCMessage *m)
{
	const Animate3d__V1__VideoInfo *r = (const void *)m;

	return facade_dump(json_pack("{s:i, s:i, s:f, s:f, s:o, s:I}", "width", (int)r->width,
				     "height", (int)r->height, "fps", r->fps, "duration", r->duration,
				     "codec", facade_str(r->codec), "size", (json_int_t)r->size));
}

static char *facade_render_model_upload(const ProtobufCMessage *m)
{
	const Animate3d__V1__GetModelUploadUrlResponse *r = (const void *)m;

	return facade_dump(json_pack("{s:o, s:o}", "modelUrl", facade_str(r->model_url), "thumbUrl",
				     facade_str(r->thumb_url)));
}

static char *facade_render_store_model(const ProtobufCMessage *m)
{
	const Animate3d__V1__StoreModelResponse *r = (const void *)m;

	return facade_dump(json_pack("{s:o}", "modelId", facade_str(r->model_id)));
}

static char *facade_render_list_models(const ProtobufCMessage *m)
{
	const Animate3d__V1__ListModelsResponse *r = (const void *)m;
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < r->n_models; i++) {
		const Animate3d__V1__Model *x = r->models[i];

		json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "id",
						     facade_str(x->id), "name", facade_str(x->name),
						     "thumb", facade_str(x->thumb), "rigId",
						     facade_str(x->rig_id), "ctime",
						     (json_int_t)x->ctime_ms, "mtime",
						     (json_int_t)x->mtime_ms, "platform",
						     facade_str(x->platform)));
	}
	return facade_dump(arr ? json_pack("{s:o}", "list", arr) : NULL);
}

static char *facade_render_delete_model(const ProtobufCMessage *m)
{
	const Animate3d__V1__DeleteModelResponse *r = (const void *)m;

	return facade_dump(json_pack("{s:i}", "count", (int)r->count));
}

/* ---- /webhook_endpoints*: the tenant's own subscriptions (docs/webhooks.md) ----
 *
 * Upstream's paths (docs/upstream-api.md, Webhooks) onto the Webhooks service, never onto
 * upstream endpoints. The answers keep upstream's shape ({"id", "object": "webhook_endpoint",
 * "url", "events"}); what upstream clients have no field for is added beside it only when it has
 * something to say: "secret" in the create answer (the one time it is shown), "description" when
 * set, "disabled" and "disabled_reason" while deliveries are stopped. */

/* "events": absent or null leaves *n at 0; else 1..GW_VALIDATE_MAX_EVENTS strings, copied. The
 * names themselves are the method's to judge. An empty array is refused here: the request has
 * no way to say "none" (no events keeps the current ones on update, and is refused on create). */
static int facade_wh_events(json_t *o, char ***events, size_t *n, char *err, size_t errlen)
{
	json_t *arr = json_object_get(o, "events"), *v;
	size_t i;

	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > GW_VALIDATE_MAX_EVENTS) {
		snprintf(err, errlen, "events must be an array of 1..%d event names, e.g. "
			 "[\"job.completed\"]", GW_VALIDATE_MAX_EVENTS);
		return -1;
	}
	*events = calloc(json_array_size(arr), sizeof **events);
	if (!*events)
		return facade_fail(err, errlen, "out of memory");
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			return facade_fail(err, errlen, "events must be an array of strings");
		(*events)[*n] = strdup(json_string_value(v));
		if (!(*events)[*n])
			return facade_fail(err, errlen, "out of memory");
		(*n)++;
	}
	return 0;
}

/* The endpoint id of the path (percent-decoded) as a malloc'd string in *dst. */
static int facade_wh_id(const struct gw_facade_in *in, char **dst, char *err, size_t errlen)
{
	char buf[FACADE_WH_MAX_ID];

	if (facade_decode(in->arg, strlen(in->arg), 0, buf, sizeof buf) || !buf[0])
		return facade_fail(err, errlen, "endpoint id is malformed");
	*dst = strdup(buf);
	return *dst ? 0 : facade_fail(err, errlen, "out of memory");
}

static int facade_wh_build_create(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				  size_t errlen)
{
	Animate3d__V1__CreateEndpointRequest *r =
		facade_msg(&animate3d__v1__create_endpoint_request__descriptor);
	json_t *o;
	int rc = -1;

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (!(o = facade_body(in, err, errlen)))
		return -1;
	/* A missing url or events is the method's refusal (INVALID_ARGUMENT), as for gRPC. */
	if (facade_member(o, "url", &r->url, err, errlen) ||
	    facade_wh_events(o, &r->events, &r->n_events, err, errlen) ||
	    facade_member(o, "description", &r->description, err, errlen))
		goto out;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static int facade_wh_build_list(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				size_t errlen)
{
	(void)in;
	*out = facade_msg(&animate3d__v1__list_endpoints_request__descriptor);
	return *out ? 0 : facade_fail(err, errlen, "out of memory");
}

static int facade_wh_build_get(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
			       size_t errlen)
{
	Animate3d__V1__GetEndpointRequest *r =
		facade_msg(&animate3d__v1__get_endpoint_request__descriptor);

	*out = (ProtobufCMessage *)r;
	return r ? facade_wh_id(in, &r->id, err, errlen) : facade_fail(err, errlen, "out of memory");
}

static int facade_wh_build_delete(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				  size_t errlen)
{
	Animate3d__V1__DeleteEndpointRequest *r =
		facade_msg(&animate3d__v1__delete_endpoint_request__descriptor);

	*out = (ProtobufCMessage *)r;
	return r ? facade_wh_id(in, &r->id, err, errlen) : facade_fail(err, errlen, "out of memory");
}

/* The member is there and an empty string. */
static int facade_wh_empty(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) && json_string_length(v) == 0;
}

/* POST /webhook_endpoints/<id>: what the body names changes, the rest stays (UpdateEndpoint's
 * empty fields keep their value). "disabled": true/false is the method's toggle. A present but
 * empty url or description would silently mean "keep" there, so it is refused here. */
static int facade_wh_build_update(const struct gw_facade_in *in, ProtobufCMessage **out, char *err,
				  size_t errlen)
{
	Animate3d__V1__UpdateEndpointRequest *r =
		facade_msg(&animate3d__v1__update_endpoint_request__descriptor);
	json_t *o = NULL, *dis;
	int rc = -1;

	*out = (ProtobufCMessage *)r;
	if (!r)
		return facade_fail(err, errlen, "out of memory");
	if (facade_wh_id(in, &r->id, err, errlen) || !(o = facade_body(in, err, errlen)))
		return -1;
	if (facade_member(o, "url", &r->url, err, errlen) ||
	    facade_wh_events(o, &r->events, &r->n_events, err, errlen) ||
	    facade_member(o, "description", &r->description, err, errlen))
		goto out;
	if (facade_wh_empty(o, "url") || facade_wh_empty(o, "description")) {
		facade_fail(err, errlen, "url and description cannot be set to empty");
		goto out;
	}
	dis = json_object_get(o, "disabled");
	if (dis && !json_is_null(dis)) {
		if (!json_is_boolean(dis)) {
			facade_fail(err, errlen, "disabled must be true or false");
			goto out;
		}
		r->toggle = json_is_true(dis) ? ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_DISABLE
					      : ANIMATE3D__V1__ENDPOINT_SWITCH__ENDPOINT_ENABLE;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/* Upstream's endpoint object, and the gateway's additions when they have something to say. */
static json_t *facade_wh_endpoint(const Animate3d__V1__Endpoint *e)
{
	json_t *ev = json_array(), *o;

	for (size_t i = 0; ev && i < e->n_events; i++)
		json_array_append_new(ev, facade_str(e->events[i]));
	o = json_pack("{s:o, s:s, s:o, s:o}", "id", facade_str(e->id), "object",
		      "webhook_endpoint", "url", facade_str(e->url), "events",
		      ev ? ev : json_array());
	if (!o)
		return NULL;
	if (e->secret && e->secret[0])
		json_object_set_new(o, "secret", json_string(e->secret));
	if (e->description && e->description[0])
		json_object_set_new(o, "description", json_string(e->description));
	if (e->disabled) {
		json_object_set_new(o, "disabled", json_true());
		json_object_set_new(o, "disabled_reason", facade_str(e->disabled_reason));
	}
	return o;
}

static char *facade_wh_render_endpoint(const ProtobufCMessage *m)
{
	return facade_dump(facade_wh_endpoint((const Animate3d__V1__Endpoint *)m));
}

static char *facade_wh_render_list(const ProtobufCMessage *m)
{
	const Animate3d__V1__ListEndpointsResponse *r = (const void *)m;
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < r->n_endpoints; i++)
		json_array_append_new(arr, facade_wh_endpoint(r->endpoints[i]));
	return facade_dump(arr ? json_pack("{s:I, s:o}", "count", (json_int_t)r->n_endpoints,
					   "endpoints", arr) : NULL);
}

static char *facade_wh_render_delete(const ProtobufCMessage *m)
{
	const Animate3d__V1__DeleteEndpointResponse *r = (const void *)m;

	return facade_dump(json_pack("{s:o, s:s, s:b}", "id", facade_str(r->id), "object",
				     "webhook_endpoint", "deleted", (int)r->deleted));
}

/* ---- the routes ---- */

#define G GW_FACADE_GET
#define P GW_FACADE_POST
#define D GW_FACADE_DELETE
#define JOBS(m) "/animate3d.v1.Jobs/" m
#define CHARS(m) "/animate3d.v1.Characters/" m
#define ACCT(m) "/animate3d.v1.Account/" m
#define HOOKS(m) "/animate3d.v1.Webhooks/" m

static const struct gw_facade_route facade_table[] = {
	{ G, "/status/", 1, JOBS("GetStatus"), &animate3d__v1__get_status_response__descriptor,
	  facade_build_status, facade_render_status, NULL },
	{ G, "/download/", 1, JOBS("GetDownloadUrls"),
	  &animate3d__v1__get_download_urls_response__descriptor, facade_build_download,
	  facade_render_download, NULL },
	{ G, "/list", 0, JOBS("ListJobs"), &animate3d__v1__list_jobs_response__descriptor,
	  facade_build_list, facade_render_list, NULL },
	{ G, "/list/", 1, JOBS("ListJobs"), &animate3d__v1__list_jobs_response__descriptor,
	  facade_build_list, facade_render_list, NULL },
	{ P, "/process", 0, JOBS("StartJob"), &animate3d__v1__start_job_response__descriptor,
	  facade_build_process, facade_render_process, "503" },
	{ G, "/upload", 0, JOBS("GetUploadUrl"), &animate3d__v1__get_upload_url_response__descriptor,
	  facade_build_upload, facade_render_upload, NULL },
	{ P, "/videoInfo", 0, JOBS("GetVideoInfo"), &animate3d__v1__video_info__descriptor,
	  facade_build_video_info, facade_render_video_info, NULL },
	{ G, "/pesave/getUrls/", 1, JOBS("GetPersonUrls"),
	  &animate3d__v1__get_person_urls_response__descriptor, facade_build_pesave,
	  facade_render_pesave, NULL },
	{ G, "/account/creditBalance", 0, ACCT("GetCreditBalance"),
	  &animate3d__v1__get_credit_balance_response__descriptor, facade_build_credits,
	  facade_render_credits, NULL },
	{ G, "/account/minutesBalance", 0, ACCT("GetMinutesBalance"),
	  &animate3d__v1__get_minutes_balance_response__descriptor, facade_build_minutes,
	  facade_render_minutes, NULL },
	{ G, "/character/getModelUploadUrl", 0, CHARS("GetModelUploadUrl"),
	  &animate3d__v1__get_model_upload_url_response__descriptor, facade_build_model_upload,
	  facade_render_model_upload, NULL },
	{ P, "/character/storeModel", 0, CHARS("StoreModel"),
	  &animate3d__v1__store_model_response__descriptor, facade_build_store_model,
	  facade_render_store_model, NULL },
	{ G, "/character/listModels", 0, CHARS("ListModels"),
	  &animate3d__v1__list_models_response__descriptor, facade_build_list_models,
	  facade_render_list_models, NULL },
	{ D, "/character/deleteModel/", 1, CHARS("DeleteModel"),
	  &animate3d__v1__delete_model_response__descriptor, facade_build_delete_model,
	  facade_render_delete_model, NULL },
	/* The tenant's own subscriptions (docs/webhooks.md), never upstream endpoints. */
	{ P, "/webhook_endpoints", 0, HOOKS("CreateEndpoint"), &animate3d__v1__endpoint__descriptor,
	  facade_wh_build_create, facade_wh_render_endpoint, NULL },
	{ G, "/webhook_endpoints", 0, HOOKS("ListEndpoints"),
	  &animate3d__v1__list_endpoints_response__descriptor, facade_wh_build_list,
	  facade_wh_render_list, NULL },
	{ G, "/webhook_endpoints/", 1, HOOKS("GetEndpoint"), &animate3d__v1__endpoint__descriptor,
	  facade_wh_build_get, facade_wh_render_endpoint, NULL },
	{ P, "/webhook_endpoints/", 1, HOOKS("UpdateEndpoint"), &animate3d__v1__endpoint__descriptor,
	  facade_wh_build_update, facade_wh_render_endpoint, NULL },
	{ D, "/webhook_endpoints/", 1, HOOKS("DeleteEndpoint"),
	  &animate3d__v1__delete_endpoint_response__descriptor, facade_wh_build_delete,
	  facade_wh_render_delete, NULL },
};
#define FACADE_NROUTES (sizeof facade_table / sizeof facade_table[0])

const struct gw_facade_route *gw_facade_routes(size_t *n)
{
	*n = FACADE_NROUTES;
	return facade_table;
}

const struct gw_facade_route *gw_facade_match(unsigned verb, const char *path, const char **arg,
					      int *wrong_verb)
{
	*wrong_verb = 0;
	*arg = "";
	for (size_t i = 0; path && i < FACADE_NROUTES; i++) {
		const struct gw_facade_route *r = &facade_table[i];
		size_t n = strlen(r->prefix);

		if (r->with_arg ? strncmp(path, r->prefix, n) != 0 || !path[n]
				: strcmp(path, r->prefix) != 0)
			continue;
		if (!(r->verbs & verb)) {
			*wrong_verb = 1;
			continue;
		}
		*wrong_verb = 0;
		*arg = r->with_arg ? path + n : "";
		return r;
	}
	return NULL;
}

int gw_facade_build(const struct gw_facade_route *r, const struct gw_facade_in *in, uint8_t **out,
		    size_t *len, char *err, size_t errlen)
{
	ProtobufCMessage *m = NULL;
	int rc = -1;

	*out = NULL;
	*len = 0;
	if (r->build(in, &m, err, errlen) != 0)
		goto out;
	*len = protobuf_c_message_get_packed_size(m);
	*out = malloc(*len ? *len : 1);
	if (!*out) {
		facade_fail(err, errlen, "out of memory");
		goto out;
	}
	protobuf_c_message_pack(m, *out);
	rc = 0;
out:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

char *gw_facade_render(const struct gw_facade_route *r, const uint8_t *reply, size_t len)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(r->resp_desc, NULL, len, reply);
	char *s;

	if (!m)
		return NULL;
	s = r->render(m);
	protobuf_c_message_free_unpacked(m, NULL);
	return s;
}

int gw_facade_http_status(int grpc_code)
{
	static const int map[] = {
		[0] = 200,	/* OK */
		[1] = 499,	/* CANCELLED: nobody is left to read it */
		[2] = 500,	/* UNKNOWN */
		[3] = 400,	/* INVALID_ARGUMENT */
		[4] = 504,	/* DEADLINE_EXCEEDED */
		[5] = 404,	/* NOT_FOUND */
		[6] = 409,	/* ALREADY_EXISTS */
		[7] = 403,	/* PERMISSION_DENIED */
		[8] = 429,	/* RESOURCE_EXHAUSTED */
		[9] = 400,	/* FAILED_PRECONDITION */
		[10] = 409,	/* ABORTED */
		[11] = 400,	/* OUT_OF_RANGE */
		[12] = 501,	/* UNIMPLEMENTED */
		[13] = 500,	/* INTERNAL */
		[14] = 503,	/* UNAVAILABLE */
		[15] = 500,	/* DATA_LOSS */
		[16] = 401,	/* UNAUTHENTICATED */
	};

	if (grpc_code < 0 || (size_t)grpc_code >= sizeof map / sizeof map[0])
		return 500;
	return map[grpc_code];
}

char *gw_facade_error_json(const struct gw_facade_route *r, int http_status, const char *msg)
{
	char code[16];

	snprintf(code, sizeof code, "%d", http_status);
	if (r && r->bad_request_error && http_status == 400)
		snprintf(code, sizeof code, "%s", r->bad_request_error);
	return facade_dump(json_pack("{s:s, s:s}", "message", msg ? msg : "", "error", code));
}
