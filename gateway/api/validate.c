/*
 * validate: the kinds and fields tables and the two passes that apply them (see validate.h).
 */
#include "gateway/api/validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

#define VD_MALFORMED_MSG "malformed request message"

/* ---- kinds ---- */

enum vd_charset {
	VD_CS_ID,	/* A-Z a-z 0-9 _ - */
	VD_CS_WORD,	/* A-Z a-z 0-9 . _ - */
	VD_CS_PRINT,	/* printable ASCII, space included */
	VD_CS_URL,	/* printable ASCII without space, and an http(s)://host prefix */
	VD_CS_UTF8,	/* UTF-8 without control characters (C0, DEL) */
	VD_CS_DIGIT	/* 0-9 */
};

#define VD_NO_SLASH_DOTS 1u	/* file names: no '/', not "." or ".." */

static const struct {
	const char *name;
	size_t min, max;
	enum vd_charset cs;
	unsigned extra;
	const char *rule;	/* quoted after "<field> must be " */
} vd_kinds[GW_VK_COUNT] = {
	[GW_VK_RID] = { "rid", 1, GW_VALIDATE_RID_MAX, VD_CS_ID, 0,
			"1..64 characters of A-Z a-z 0-9 _ -" },
	[GW_VK_MODEL_ID] = { "model id", 1, GW_VALIDATE_ID_MAX, VD_CS_ID, 0,
			     "1..128 characters of A-Z a-z 0-9 _ -" },
	[GW_VK_ENDPOINT_ID] = { "endpoint id", 1, GW_VALIDATE_ID_MAX, VD_CS_ID, 0,
				"1..128 characters of A-Z a-z 0-9 _ -" },
	[GW_VK_CONFIG] = { "config name", 1, GW_VALIDATE_ID_MAX, VD_CS_ID, 0,
			   "1..128 characters of A-Z a-z 0-9 _ -" },
	[GW_VK_FILE_NAME] = { "file name", 1, GW_VALIDATE_NAME_MAX, VD_CS_UTF8, VD_NO_SLASH_DOTS,
			      "a file name: 1..255 bytes of UTF-8 without '/' or control characters, not \".\" or \"..\"" },
	[GW_VK_URL] = { "url", 1, GW_VALIDATE_URL_MAX, VD_CS_URL, 0,
			"an http(s) URL of at most 4096 bytes (printable ASCII, no spaces)" },
	[GW_VK_WORD] = { "word", 1, GW_VALIDATE_WORD_MAX, VD_CS_WORD, 0,
			 "1..32 characters of A-Z a-z 0-9 . _ -" },
	[GW_VK_EXTRA_PARAM] = { "extra param", 1, GW_VALIDATE_EXTRA_MAX, VD_CS_PRINT, 0,
				"1..256 bytes of printable ASCII" },
	[GW_VK_IDEM_KEY] = { "idempotency key", 1, GW_VALIDATE_KEY_MAX, VD_CS_PRINT, 0,
			     "1..128 bytes of printable ASCII" },
	[GW_VK_TEXT] = { "text", 0, GW_VALIDATE_TEXT_MAX, VD_CS_UTF8, 0,
			 "at most 255 bytes of UTF-8 without control characters" },
	[GW_VK_SERVICE] = { "service name", 0, GW_VALIDATE_TEXT_MAX, VD_CS_PRINT, 0,
			    "at most 255 bytes of printable ASCII" },
	[GW_VK_TRACKING_REF] = { "tracking id", 1, GW_VALIDATE_TRACKING_REF_MAX, VD_CS_DIGIT, 0,
				 "1..3 digits, e.g. \"001\"" },
};

static int vd_kind_known(enum gw_validate_kind k)
{
	return (int)k >= 0 && k < GW_VK_COUNT;
}

const char *gw_validate_kind_name(enum gw_validate_kind k)
{
	return vd_kind_known(k) ? vd_kinds[k].name : NULL;
}

const char *gw_validate_kind_rule(enum gw_validate_kind k)
{
	return vd_kind_known(k) ? vd_kinds[k].rule : NULL;
}

size_t gw_validate_kind_max(enum gw_validate_kind k)
{
	return vd_kind_known(k) ? vd_kinds[k].max : 0;
}

/* Length of the UTF-8 sequence at s[0..n) (1..4), or 0 when it is not well formed: overlong
 * forms, surrogates and code points above U+10FFFF are refused, as protobuf requires. */
static size_t vd_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

static int vd_id_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

/* 1 for A-Z a-z 0-9 _ -, by byte value: ids (every rid of every GetStatus) are checked with one
 * table load per byte instead of five comparisons. */
static const unsigned char vd_id_tab[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static int vd_ids_ok(const unsigned char *s, size_t n)
{
	unsigned ok = 1;

	for (size_t i = 0; i < n; i++)
		ok &= vd_id_tab[s[i]];
	return (int)ok;
}

/* s[0..n) against the charset; 1 when every byte (or sequence) belongs. */
static int vd_charset_ok(enum vd_charset cs, const unsigned char *s, size_t n)
{
	if (cs == VD_CS_ID)
		return vd_ids_ok(s, n);
	for (size_t i = 0; i < n;) {
		unsigned char ch = s[i];

		switch (cs) {
		case VD_CS_ID:
			if (!vd_id_char(ch))
				return 0;
			break;
		case VD_CS_WORD:
			if (!vd_id_char(ch) && ch != '.')
				return 0;
			break;
		case VD_CS_PRINT:
			if (ch < 0x20 || ch > 0x7e)
				return 0;
			break;
		case VD_CS_URL:
			if (ch <= 0x20 || ch > 0x7e)
				return 0;
			break;
		case VD_CS_DIGIT:
			if (ch < '0' || ch > '9')
				return 0;
			break;
		case VD_CS_UTF8: {
			size_t k;

			if (ch < 0x20 || ch == 0x7f)
				return 0;
			if (!(k = vd_utf8_seq(s + i, n - i)))
				return 0;
			i += k;
			continue;
		}
		}
		i++;
	}
	return 1;
}

/* http:// or https:// followed by a host (not empty, not starting with '/'). */
static int vd_url_shape(const char *s, size_t n)
{
	size_t skip;

	if (n >= 8 && strncmp(s, "https://", 8) == 0)
		skip = 8;
	else if (n >= 7 && strncmp(s, "http://", 7) == 0)
		skip = 7;
	else
		return 0;
	return n > skip && s[skip] != '/';
}

int gw_validate_ok(enum gw_validate_kind k, const char *s)
{
	size_t n;

	if (!vd_kind_known(k) || !s)
		return 0;
	n = strnlen(s, vd_kinds[k].max + 1);
	if (n < vd_kinds[k].min || n > vd_kinds[k].max)
		return 0;
	if (!vd_charset_ok(vd_kinds[k].cs, (const unsigned char *)s, n))
		return 0;
	if (vd_kinds[k].cs == VD_CS_URL && !vd_url_shape(s, n))
		return 0;
	if ((vd_kinds[k].extra & VD_NO_SLASH_DOTS) &&
	    (memchr(s, '/', n) || strcmp(s, ".") == 0 || strcmp(s, "..") == 0))
		return 0;
	return 1;
}

static int vd_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int vd_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int gw_validate_str(enum gw_validate_kind k, const char *field, const char *s, char *err,
		    size_t errlen)
{
	if (gw_validate_ok(k, s))
		return GW_VALIDATE_OK;
	return vd_fail(err, errlen, GW_VALIDATE_INVALID, "%s must be %s", field,
		       vd_kind_known(k) ? vd_kinds[k].rule : "valid");
}

/* ---- fields ---- */

#define VD_D(m) &animate3d__v1__##m##__descriptor
#define VD_R(m) &grpc__reflection__v1__##m##__descriptor

/* Every string or repeated field of every request message (and of the messages they contain).
 * Keep in step with the .proto comments and docs/operations.md ("Request field limits"). */
static const struct {
	const ProtobufCMessageDescriptor *msg;
	const char *field;
	enum gw_validate_kind kind;	/* GW_VK_NONE: a repeated non-string */
	unsigned max_items;		/* repeated: the cap; 0: singular */
} vd_fields[] = {
	/* jobs.proto */
	{ VD_D(get_upload_url_request), "name", GW_VK_FILE_NAME, 0 },
	{ VD_D(upload_video_request), "name", GW_VK_FILE_NAME, 0 },
	{ VD_D(start_job_request), "upload_url", GW_VK_URL, 0 },
	{ VD_D(start_job_request), "rerun_rid", GW_VK_RID, 0 },
	{ VD_D(start_job_request), "mp_detection_rid", GW_VK_RID, 0 },
	{ VD_D(start_job_request), "extra_params", GW_VK_EXTRA_PARAM, GW_VALIDATE_MAX_EXTRA },
	{ VD_D(start_job_request), "idempotency_key", GW_VK_IDEM_KEY, 0 },
	{ VD_D(params), "formats", GW_VK_WORD, GW_VALIDATE_MAX_FORMATS },
	{ VD_D(params), "model_id", GW_VK_MODEL_ID, 0 },
	{ VD_D(params), "config", GW_VK_CONFIG, 0 },
	{ VD_D(params), "camera", GW_VK_WORD, 0 },
	{ VD_D(params), "pipeline", GW_VK_WORD, 0 },
	{ VD_D(params), "models", GW_VK_NONE, GW_VALIDATE_MAX_MODELS },
	{ VD_D(render), "backdrop", GW_VK_WORD, 0 },
	{ VD_D(tracked_model), "model_id", GW_VK_MODEL_ID, 0 },
	{ VD_D(tracked_model), "tracking_ref", GW_VK_TRACKING_REF, 0 },
	{ VD_D(get_status_request), "rids", GW_VK_RID, GW_VALIDATE_MAX_RIDS },
	{ VD_D(watch_status_request), "rids", GW_VK_RID, GW_VALIDATE_MAX_RIDS },
	{ VD_D(get_download_urls_request), "rids", GW_VK_RID, GW_VALIDATE_MAX_RIDS },
	{ VD_D(list_jobs_request), "states", GW_VK_NONE, GW_VALIDATE_MAX_STATES },
	{ VD_D(get_video_info_request), "upload_url", GW_VK_URL, 0 },
	{ VD_D(get_person_urls_request), "rid", GW_VK_RID, 0 },
	/* characters.proto */
	{ VD_D(get_model_upload_url_request), "name", GW_VK_FILE_NAME, 0 },
	{ VD_D(get_model_upload_url_request), "model_ext", GW_VK_WORD, 0 },
	{ VD_D(get_model_upload_url_request), "thumb_ext", GW_VK_WORD, 0 },
	{ VD_D(store_model_request), "model_url", GW_VK_URL, 0 },
	{ VD_D(store_model_request), "model_name", GW_VK_TEXT, 0 },
	{ VD_D(store_model_request), "thumb_url", GW_VK_URL, 0 },
	{ VD_D(store_model_request), "model_id", GW_VK_MODEL_ID, 0 },
	{ VD_D(list_models_request), "model_id", GW_VK_MODEL_ID, 0 },
	{ VD_D(list_models_request), "search_token", GW_VK_TEXT, 0 },
	{ VD_D(delete_model_request), "model_id", GW_VK_MODEL_ID, 0 },
	/* webhooks.proto */
	{ VD_D(create_endpoint_request), "url", GW_VK_URL, 0 },
	{ VD_D(create_endpoint_request), "events", GW_VK_WORD, GW_VALIDATE_MAX_EVENTS },
	{ VD_D(create_endpoint_request), "description", GW_VK_TEXT, 0 },
	{ VD_D(get_endpoint_request), "id", GW_VK_ENDPOINT_ID, 0 },
	{ VD_D(update_endpoint_request), "id", GW_VK_ENDPOINT_ID, 0 },
	{ VD_D(update_endpoint_request), "url", GW_VK_URL, 0 },
	{ VD_D(update_endpoint_request), "events", GW_VK_WORD, GW_VALIDATE_MAX_EVENTS },
	{ VD_D(update_endpoint_request), "description", GW_VK_TEXT, 0 },
	{ VD_D(delete_endpoint_request), "id", GW_VK_ENDPOINT_ID, 0 },
	{ VD_D(rotate_secret_request), "id", GW_VK_ENDPOINT_ID, 0 },
	/* account.proto */
	{ VD_D(get_usage_request), "tenant", GW_VK_TEXT, 0 },
	/* grpc/health/v1/health.proto */
	{ &grpc__health__v1__health_check_request__descriptor, "service", GW_VK_SERVICE, 0 },
	/* grpc/reflection/v1/reflection.proto (v1alpha requests are decoded with it: the same
	 * fields and numbers): file and symbol names, like service names */
	{ VD_R(server_reflection_request), "host", GW_VK_SERVICE, 0 },
	{ VD_R(server_reflection_request), "file_by_filename", GW_VK_SERVICE, 0 },
	{ VD_R(server_reflection_request), "file_containing_symbol", GW_VK_SERVICE, 0 },
	{ VD_R(server_reflection_request), "all_extension_numbers_of_type", GW_VK_SERVICE, 0 },
	{ VD_R(server_reflection_request), "list_services", GW_VK_SERVICE, 0 },
	{ VD_R(extension_request), "containing_type", GW_VK_SERVICE, 0 },
};

#define VD_NFIELDS (sizeof vd_fields / sizeof vd_fields[0])
#define VD_NO_ROW ((size_t)-1)

/* The row of field f of d, or VD_NO_ROW. */
static size_t vd_row(const ProtobufCMessageDescriptor *d, const char *field)
{
	for (size_t i = 0; i < VD_NFIELDS; i++)
		if (vd_fields[i].msg == d && strcmp(vd_fields[i].field, field) == 0)
			return i;
	return VD_NO_ROW;
}

int gw_validate_rule(const ProtobufCMessageDescriptor *d, const char *field, int *kind,
		     unsigned *max_items)
{
	size_t r = vd_row(d, field);

	if (r == VD_NO_ROW)
		return -1;
	if (kind)
		*kind = (int)vd_fields[r].kind;
	if (max_items)
		*max_items = vd_fields[r].max_items;
	return 0;
}

size_t gw_validate_nrules(void)
{
	return VD_NFIELDS;
}

int gw_validate_rule_at(size_t i, const ProtobufCMessageDescriptor **d, const char **field)
{
	if (i >= VD_NFIELDS)
		return -1;
	*d = vd_fields[i].msg;
	*field = vd_fields[i].field;
	return 0;
}

/* A field the table must know: strings (what they may hold) and repeated fields (how many). */
static int vd_needs_row(const ProtobufCFieldDescriptor *f)
{
	return f->type == PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED;
}

/* Where a value sits: a chain on the passes' stacks from the value up to the request (NULL),
 * rendered only for a message ("params.models[2].model_id"), so an accepted request costs no
 * formatting. */
struct vd_at {
	const struct vd_at *up;
	const char *name;
	long idx;		/* >= 0: that entry of a repeated field */
};

static size_t vd_at_put(const struct vd_at *at, char *out, size_t n)
{
	size_t o = at->up ? vd_at_put(at->up, out, n) : 0;
	int w;

	if (o + 1 >= n)
		return o;
	w = at->idx >= 0 ? snprintf(out + o, n - o, "%s%s[%ld]", o ? "." : "", at->name, at->idx)
			 : snprintf(out + o, n - o, "%s%s", o ? "." : "", at->name);
	if (w < 0)
		return o;
	return (size_t)w < n - o ? o + (size_t)w : n - 1;	/* clipped */
}

/* at rendered into buf; "request" for the request itself. */
static const char *vd_at_str(const struct vd_at *at, char *buf, size_t n)
{
	if (!at)
		return "request";
	buf[0] = '\0';
	vd_at_put(at, buf, n);
	return buf;
}

/* ---- the wire pass ---- */

struct vd_scan {
	size_t ops;
	char *err;
	size_t errlen;
};

/* Reads a varint at *p (< end); 0 with *v and *p advanced, or -1 when it is cut or too long. */
static int vd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		r |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Entries in a packed run of a scalar field (len bytes), counted up to limit + 1 at most: the
 * caller only needs to know that the cap is passed. */
static size_t vd_packed_count(const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t len,
			      size_t limit, size_t *ops)
{
	size_t n = 0, i;

	switch (f->type) {
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return len / 4;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return len / 8;
	default:
		/* Varints: one entry ends at each byte without the continuation bit. */
		for (i = 0; i < len && n <= limit; i++)
			n += !(p[i] & 0x80);
		*ops += i;
		return n;
	}
}

/*
 * One message level. Stops at the first broken rule, so the work is bounded by the table (caps,
 * GW_VALIDATE_MAX_REPEATS, GW_VALIDATE_MAX_UNKNOWN) and the string bytes, not by how many records
 * a flood carries: a 4 MiB ListJobs of 1M states is refused after 17 of them.
 */
static int vd_scan_msg(struct vd_scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p,
		       const uint8_t *end, unsigned depth, const struct vd_at *at)
{
	size_t counts[GW_VALIDATE_MAX_FIELDS] = { 0 };	/* entries (repeated) or occurrences */
	size_t limits[GW_VALIDATE_MAX_FIELDS];
	size_t unknown = 0;
	char path[GW_VALIDATE_PATH_MAX];

	if (depth > GW_VALIDATE_MAX_DEPTH || d->n_fields > GW_VALIDATE_MAX_FIELDS)
		return vd_fail(s->err, s->errlen, GW_VALIDATE_INVALID,
			       "%s nests deeper or carries more fields than the gateway checks",
			       vd_at_str(at, path, sizeof path));
	for (unsigned i = 0; i < d->n_fields; i++) {
		size_t r = d->fields[i].label == PROTOBUF_C_LABEL_REPEATED
				   ? vd_row(d, d->fields[i].name) : VD_NO_ROW;

		/* A repeated field the table does not know gets a cap of 0: fail closed. */
		if (d->fields[i].label != PROTOBUF_C_LABEL_REPEATED)
			limits[i] = GW_VALIDATE_MAX_REPEATS;
		else
			limits[i] = r == VD_NO_ROW ? 0 : vd_fields[r].max_items;
	}
	while (p < end) {
		const ProtobufCFieldDescriptor *f;
		uint64_t tag, len = 0, v;
		size_t idx = 0, added = 1;
		const uint8_t *val = NULL;
		struct vd_at here;
		int rc;

		if (vd_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
			goto malformed;
		s->ops++;
		switch (tag & 7) {
		case 0:
			if (vd_varint(&p, end, &v))
				goto malformed;
			break;
		case 1:
			if (end - p < 8)
				goto malformed;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				goto malformed;
			p += 4;
			break;
		case 2:
			if (vd_varint(&p, end, &len) || len > (uint64_t)(end - p))
				goto malformed;
			val = p;
			p += len;
			break;
		default:
			goto malformed;	/* groups (3, 4) and wire types 6, 7: not proto3 */
		}
		f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
		if (!f) {
			/* Kept by protobuf-c as raw bytes (a newer client's field): a few are fine. */
			if (++unknown > GW_VALIDATE_MAX_UNKNOWN)
				return vd_fail(s->err, s->errlen, GW_VALIDATE_INVALID,
					       "%s carries more than %u unknown fields",
					       vd_at_str(at, path, sizeof path), GW_VALIDATE_MAX_UNKNOWN);
			continue;
		}
		idx = (size_t)(f - d->fields);
		if (val && f->label == PROTOBUF_C_LABEL_REPEATED && f->type != PROTOBUF_C_TYPE_STRING &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_BYTES)
			added = vd_packed_count(f, val, (size_t)len, limits[idx] - counts[idx], &s->ops);
		counts[idx] += added;
		here = (struct vd_at){ at, f->name, -1 };
		if (counts[idx] > limits[idx]) {
			if (f->label == PROTOBUF_C_LABEL_REPEATED)
				return vd_fail(s->err, s->errlen, GW_VALIDATE_INVALID,
					       "%s has more than %zu entries",
					       vd_at_str(&here, path, sizeof path), limits[idx]);
			return vd_fail(s->err, s->errlen, GW_VALIDATE_INVALID,
				       "%s appears more than %zu times",
				       vd_at_str(&here, path, sizeof path), limits[idx]);
		}
		if (!val)
			continue;
		/* The entry this record is: counts[idx] - 1 when repeated. */
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			here.idx = (long)counts[idx] - 1;
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			const uint8_t *nul = memchr(val, 0, (size_t)len);

			s->ops += (size_t)len;
			if (nul)
				return vd_fail(s->err, s->errlen, GW_VALIDATE_INVALID,
					       "%s must not contain a NUL byte (at byte %zu)",
					       vd_at_str(&here, path, sizeof path), (size_t)(nul - val));
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
			   (rc = vd_scan_msg(s, f->descriptor, val, val + len, depth + 1, &here))) {
			return rc;
		}
	}
	return GW_VALIDATE_OK;
malformed:
	return vd_fail(s->err, s->errlen, GW_VALIDATE_MALFORMED, VD_MALFORMED_MSG);
}

int gw_validate_scan(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, char *err,
		     size_t errlen, size_t *ops)
{
	struct vd_scan s = { 0, err, errlen };
	int rc;

	if (!d || (!data && len))
		return vd_fail(err, errlen, GW_VALIDATE_MALFORMED, VD_MALFORMED_MSG);
	rc = vd_scan_msg(&s, d, data, data + len, 0, NULL);
	if (ops)
		*ops = s.ops;
	return rc;
}

/* ---- the decoded pass ---- */

static int vd_check_msg(const ProtobufCMessage *m, unsigned depth, const struct vd_at *at,
			char *err, size_t errlen);

/* One string value at `at`. */
static int vd_check_str(enum gw_validate_kind k, const struct vd_at *at, const char *s, char *err,
			size_t errlen)
{
	char path[GW_VALIDATE_PATH_MAX];

	if (gw_validate_ok(k, s))
		return GW_VALIDATE_OK;
	return gw_validate_str(k, vd_at_str(at, path, sizeof path), s, err, errlen);
}

static int vd_check_field(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
			  unsigned depth, const struct vd_at *at, char *err, size_t errlen)
{
	const char *base = (const char *)m;
	size_t r = vd_row(m->descriptor, f->name);
	struct vd_at here = { at, f->name, -1 };
	char path[GW_VALIDATE_PATH_MAX];
	int rc;

	if (r == VD_NO_ROW && vd_needs_row(f))
		return vd_fail(err, errlen, GW_VALIDATE_INVALID, "%s has no limit in the gateway's table",
			       vd_at_str(&here, path, sizeof path));
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
		const void *arr = *(void *const *)(const void *)(base + f->offset);

		if (n > vd_fields[r].max_items)
			return vd_fail(err, errlen, GW_VALIDATE_INVALID, "%s has more than %u entries",
				       vd_at_str(&here, path, sizeof path), vd_fields[r].max_items);
		for (size_t i = 0; i < n; i++) {
			here.idx = (long)i;
			if (f->type == PROTOBUF_C_TYPE_STRING)
				rc = vd_check_str(vd_fields[r].kind, &here, ((char *const *)arr)[i], err,
						  errlen);
			else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
				rc = vd_check_msg(((ProtobufCMessage *const *)arr)[i], depth + 1, &here,
						  err, errlen);
			else
				break;	/* scalars: the cap is all */
			if (rc)
				return rc;
		}
		return GW_VALIDATE_OK;
	}
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
		return GW_VALIDATE_OK;	/* another member of the oneof is set */
	if (f->type == PROTOBUF_C_TYPE_STRING) {
		const char *s = *(char *const *)(const void *)(base + f->offset);

		/* An empty proto3 string is "not set" (the rows say when one is required); a set
		 * oneof member is checked even when empty. */
		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && (!s || !s[0]))
			return GW_VALIDATE_OK;
		return vd_check_str(vd_fields[r].kind, &here, s ? s : "", err, errlen);
	}
	if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		const ProtobufCMessage *sm = *(ProtobufCMessage *const *)(const void *)(base + f->offset);

		return sm ? vd_check_msg(sm, depth + 1, &here, err, errlen) : GW_VALIDATE_OK;
	}
	return GW_VALIDATE_OK;
}

static int vd_check_msg(const ProtobufCMessage *m, unsigned depth, const struct vd_at *at,
			char *err, size_t errlen)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char path[GW_VALIDATE_PATH_MAX];
	int rc;

	if (depth > GW_VALIDATE_MAX_DEPTH)
		return vd_fail(err, errlen, GW_VALIDATE_INVALID, "%s nests deeper than the gateway checks",
			       vd_at_str(at, path, sizeof path));
	for (unsigned i = 0; i < d->n_fields; i++)
		if ((rc = vd_check_field(m, &d->fields[i], depth, at, err, errlen)))
			return rc;
	return GW_VALIDATE_OK;
}

int gw_validate_message(const ProtobufCMessage *m, char *err, size_t errlen)
{
	if (!m || !m->descriptor)
		return vd_fail(err, errlen, GW_VALIDATE_INVALID, "request is missing");
	return vd_check_msg(m, 0, NULL, err, errlen);
}

/* ---- both ---- */

ProtobufCMessage *gw_validate_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data,
				     size_t len, char *err, size_t errlen, int *malformed)
{
	return gw_validate_unpack_with(d, NULL, data, len, err, errlen, malformed);
}

ProtobufCMessage *gw_validate_unpack_with(const ProtobufCMessageDescriptor *d,
					  ProtobufCAllocator *alloc, const uint8_t *data, size_t len,
					  char *err, size_t errlen, int *malformed)
{
	ProtobufCMessage *m = NULL;
	int rc = gw_validate_scan(d, data, len, err, errlen, NULL);

	if (malformed)
		*malformed = rc == GW_VALIDATE_MALFORMED;
	if (rc)
		return NULL;
	m = protobuf_c_message_unpack(d, alloc, len, data);
	if (!m) {
		if (malformed)
			*malformed = 1;
		vd_fail(err, errlen, GW_VALIDATE_MALFORMED, VD_MALFORMED_MSG);
		return NULL;
	}
	if (gw_validate_message(m, err, errlen) != GW_VALIDATE_OK) {
		protobuf_c_message_free_unpacked(m, alloc);
		return NULL;
	}
	return m;
}
