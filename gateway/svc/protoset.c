/*
 * protoset: the embedded descriptor set and its symbol index. See protoset.h.
 *
 * A hand walker rather than protobuf-c's code for descriptor.proto: the index needs a dozen
 * fields, and generating C for descriptor.proto would need its .proto file at build time
 * (libprotobuf-dev) and unpack every option and comment the set carries only to drop them.
 */
#include "gateway/svc/protoset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Field numbers of google/protobuf/descriptor.proto that the index reads. */
#define PS_SET_FILE 1		/* FileDescriptorSet.file */
#define PS_FILE_NAME 1		/* FileDescriptorProto */
#define PS_FILE_PACKAGE 2
#define PS_FILE_DEPENDENCY 3
#define PS_FILE_MESSAGE 4
#define PS_FILE_ENUM 5
#define PS_FILE_SERVICE 6
#define PS_FILE_EXTENSION 7
#define PS_NAME 1		/* the name of every *DescriptorProto */
#define PS_MSG_FIELD 2		/* DescriptorProto */
#define PS_MSG_NESTED 3
#define PS_MSG_ENUM 4
#define PS_MSG_EXTENSION 6
#define PS_FIELD_EXTENDEE 2	/* FieldDescriptorProto */
#define PS_FIELD_NUMBER 3
#define PS_ENUM_VALUE 2		/* EnumDescriptorProto */
#define PS_SVC_METHOD 2		/* ServiceDescriptorProto */

/* Wire types (descriptor.proto uses no groups). */
#define PS_WT_VARINT 0
#define PS_WT_I64 1
#define PS_WT_LEN 2
#define PS_WT_I32 5

#define PS_MAX_FIELD_NUMBER 536870911u	/* 2^29 - 1 */

_Static_assert(GW_PROTOSET_MAX_FILES <= 64, "the closure's seen set is one 64-bit word");

struct ps_file {
	char name[GW_PROTOSET_MAX_NAME + 1];
	const uint8_t *bytes;		/* its FileDescriptorProto inside the set */
	size_t len;
	size_t deps[GW_PROTOSET_MAX_DEPS];
	size_t ndeps;
};

struct ps_symbol {
	char *name;
	size_t file;
	enum gw_protoset_kind kind;
};

struct ps_ext {
	char *extendee;
	int32_t number;
	size_t file;
};

struct gw_protoset {
	struct ps_file files[GW_PROTOSET_MAX_FILES];
	size_t nfiles;
	struct ps_symbol *syms;		/* sorted by name once the set is read */
	size_t nsyms, capsyms;
	struct ps_ext exts[GW_PROTOSET_MAX_EXTENSIONS];
	size_t nexts;

	/* While reading: where errors go and what they name. */
	const uint8_t *base;
	char *err;
	size_t errlen;
	char msg[2 * GW_PROTOSET_MAX_NAME + 64];	/* the longest: two names in one message */
};

/* A view of length-delimited bytes and one record read from it. */
struct ps_rd {
	const uint8_t *p, *end;
};
struct ps_rec {
	uint32_t field;
	unsigned wt;
	uint64_t num;		/* varint value */
	struct ps_rd sub;	/* length-delimited bytes */
};

/* ---- wire reading ---- */

static int ps_varint(struct ps_rd *r, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (r->p >= r->end)
			return -1;
		b = *r->p++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* The next record of r: 1, 0 at the end, -1 when the bytes are not a protobuf encoding (r then
 * still points at the record, for the error's byte offset). */
static int ps_next(struct ps_rd *r, struct ps_rec *rec)
{
	struct ps_rd t = *r;
	uint64_t tag, n = 0;

	if (t.p >= t.end)
		return 0;
	if (ps_varint(&t, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > PS_MAX_FIELD_NUMBER)
		return -1;
	rec->field = (uint32_t)(tag >> 3);
	rec->wt = (unsigned)(tag & 7);
	rec->num = 0;
	switch (rec->wt) {
	case PS_WT_VARINT:
		if (ps_varint(&t, &rec->num) != 0)
			return -1;
		break;
	case PS_WT_I64:
		n = 8;
		break;
	case PS_WT_I32:
		n = 4;
		break;
	case PS_WT_LEN:
		if (ps_varint(&t, &n) != 0)
			return -1;
		break;
	default:
		return -1;
	}
	if (n > (uint64_t)(t.end - t.p))
		return -1;
	rec->sub = (struct ps_rd){ t.p, t.p + n };
	t.p += n;
	*r = t;
	return 1;
}

/* Every reading error: the message with the file it is in, into the caller's err. */
static int ps_fail(struct gw_protoset *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ps_fail(struct gw_protoset *ps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ps->msg, sizeof ps->msg, fmt, ap);
	va_end(ap);
	if (ps->nfiles < GW_PROTOSET_MAX_FILES && ps->files[ps->nfiles].name[0])
		snprintf(ps->err, ps->errlen, "descriptor set: file %zu (%s): %s", ps->nfiles,
			 ps->files[ps->nfiles].name, ps->msg);
	else
		snprintf(ps->err, ps->errlen, "descriptor set: file %zu: %s", ps->nfiles, ps->msg);
	return -1;
}

static int ps_malformed(struct gw_protoset *ps, const struct ps_rd *r, const char *what)
{
	return ps_fail(ps, "malformed %s at byte %zu", what, (size_t)(r->p - ps->base));
}

/* A name field into buf (GW_PROTOSET_MAX_NAME + 1 bytes): printable ASCII without spaces, 1 to
 * GW_PROTOSET_MAX_NAME bytes. A leading '.' (protoc writes type references so) is dropped. */
static int ps_str(struct gw_protoset *ps, const struct ps_rec *rec, char *buf, const char *what)
{
	const uint8_t *p = rec->sub.p;
	size_t n = (size_t)(rec->sub.end - rec->sub.p);

	if (rec->wt != PS_WT_LEN)
		return ps_fail(ps, "%s is not a string", what);
	if (n && p[0] == '.') {
		p++;
		n--;
	}
	if (n == 0 || n > GW_PROTOSET_MAX_NAME)
		return ps_fail(ps, "%s must be 1..%d bytes", what, GW_PROTOSET_MAX_NAME);
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return ps_fail(ps, "%s holds a byte 0x%02x", what, p[i]);
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

/* The name (field 1) of the descriptor in r. */
static int ps_name_of(struct gw_protoset *ps, const struct ps_rd *r, char *buf, const char *what)
{
	struct ps_rd it = *r;
	struct ps_rec rec;
	int rc;

	buf[0] = '\0';
	while ((rc = ps_next(&it, &rec)) > 0)
		if (rec.field == PS_NAME && ps_str(ps, &rec, buf, what) != 0)
			return -1;
	if (rc < 0)
		return ps_malformed(ps, &it, what);
	if (!buf[0])
		return ps_fail(ps, "a %s without a name", what);
	return 0;
}

/* scope + "." + name into out (GW_PROTOSET_MAX_NAME + 1 bytes); no dot for the empty scope. */
static int ps_join(struct gw_protoset *ps, char *out, const char *scope, const char *name)
{
	int n = snprintf(out, GW_PROTOSET_MAX_NAME + 1, "%s%s%s", scope, scope[0] ? "." : "", name);

	if (n < 0 || n > GW_PROTOSET_MAX_NAME)
		return ps_fail(ps, "name %s.%s is longer than %d bytes", scope, name,
			       GW_PROTOSET_MAX_NAME);
	return 0;
}

static int ps_add(struct gw_protoset *ps, const char *name, enum gw_protoset_kind kind)
{
	if (ps->nsyms >= GW_PROTOSET_MAX_SYMBOLS)
		return ps_fail(ps, "more than %d symbols", GW_PROTOSET_MAX_SYMBOLS);
	if (ps->nsyms == ps->capsyms) {
		size_t cap = ps->capsyms ? ps->capsyms * 2 : 256;
		struct ps_symbol *s;

		if (cap > GW_PROTOSET_MAX_SYMBOLS)
			cap = GW_PROTOSET_MAX_SYMBOLS;
		s = realloc(ps->syms, cap * sizeof *s);
		if (!s)
			return ps_fail(ps, "out of memory");
		ps->syms = s;
		ps->capsyms = cap;
	}
	ps->syms[ps->nsyms].name = strdup(name);
	if (!ps->syms[ps->nsyms].name)
		return ps_fail(ps, "out of memory");
	ps->syms[ps->nsyms].file = ps->nfiles;
	ps->syms[ps->nsyms].kind = kind;
	ps->nsyms++;
	return 0;
}

static int ps_need_len(struct gw_protoset *ps, const struct ps_rec *rec, const char *what)
{
	return rec->wt == PS_WT_LEN ? 0 : ps_fail(ps, "%s is not a message", what);
}

/* ---- descriptors ---- */

/* A field or (ext) an extension declared in scope. */
static int ps_read_field(struct gw_protoset *ps, const struct ps_rd *r, const char *scope, int ext)
{
	char name[GW_PROTOSET_MAX_NAME + 1], full[GW_PROTOSET_MAX_NAME + 1];
	char extendee[GW_PROTOSET_MAX_NAME + 1] = "";
	struct ps_rd it = *r;
	struct ps_rec rec;
	int64_t number = -1;
	int rc;

	if (ps_name_of(ps, r, name, "field") != 0 || ps_join(ps, full, scope, name) != 0)
		return -1;
	while ((rc = ps_next(&it, &rec)) > 0) {
		if (rec.field == PS_FIELD_EXTENDEE && ps_str(ps, &rec, extendee, "extendee") != 0)
			return -1;
		if (rec.field == PS_FIELD_NUMBER && rec.wt == PS_WT_VARINT)
			number = (int64_t)rec.num;
	}
	if (rc < 0)
		return ps_malformed(ps, &it, "field");
	if (ps_add(ps, full, ext ? GW_PS_EXTENSION : GW_PS_FIELD) != 0)
		return -1;
	if (!ext)
		return 0;
	if (!extendee[0] || number < 1 || number > (int64_t)PS_MAX_FIELD_NUMBER)
		return ps_fail(ps, "extension %s has no extendee or number", full);
	if (ps->nexts >= GW_PROTOSET_MAX_EXTENSIONS)
		return ps_fail(ps, "more than %d extensions", GW_PROTOSET_MAX_EXTENSIONS);
	ps->exts[ps->nexts].extendee = strdup(extendee);
	if (!ps->exts[ps->nexts].extendee)
		return ps_fail(ps, "out of memory");
	ps->exts[ps->nexts].number = (int32_t)number;
	ps->exts[ps->nexts].file = ps->nfiles;
	ps->nexts++;
	return 0;
}

/* An enum of scope; its values are its siblings, as protobuf scopes them. */
static int ps_read_enum(struct gw_protoset *ps, const struct ps_rd *r, const char *scope)
{
	char name[GW_PROTOSET_MAX_NAME + 1], full[GW_PROTOSET_MAX_NAME + 1];
	struct ps_rd it = *r;
	struct ps_rec rec;
	int rc;

	if (ps_name_of(ps, r, name, "enum") != 0 || ps_join(ps, full, scope, name) != 0 ||
	    ps_add(ps, full, GW_PS_ENUM) != 0)
		return -1;
	while ((rc = ps_next(&it, &rec)) > 0) {
		if (rec.field != PS_ENUM_VALUE)
			continue;
		if (ps_need_len(ps, &rec, "enum value") != 0 ||
		    ps_name_of(ps, &rec.sub, name, "enum value") != 0 ||
		    ps_join(ps, full, scope, name) != 0 || ps_add(ps, full, GW_PS_ENUM_VALUE) != 0)
			return -1;
	}
	return rc < 0 ? ps_malformed(ps, &it, "enum") : 0;
}

static int ps_read_message(struct gw_protoset *ps, const struct ps_rd *r, const char *scope,
			   unsigned depth)
{
	char name[GW_PROTOSET_MAX_NAME + 1], full[GW_PROTOSET_MAX_NAME + 1];
	struct ps_rd it = *r;
	struct ps_rec rec;
	int rc, bad = 0;

	if (depth >= GW_PROTOSET_MAX_DEPTH)
		return ps_fail(ps, "messages nested deeper than %d", GW_PROTOSET_MAX_DEPTH);
	if (ps_name_of(ps, r, name, "message") != 0 || ps_join(ps, full, scope, name) != 0 ||
	    ps_add(ps, full, GW_PS_MESSAGE) != 0)
		return -1;
	while (!bad && (rc = ps_next(&it, &rec)) > 0) {
		switch (rec.field) {
		case PS_MSG_FIELD:
			bad = ps_need_len(ps, &rec, "field") || ps_read_field(ps, &rec.sub, full, 0);
			break;
		case PS_MSG_NESTED:
			bad = ps_need_len(ps, &rec, "nested message") ||
			      ps_read_message(ps, &rec.sub, full, depth + 1);
			break;
		case PS_MSG_ENUM:
			bad = ps_need_len(ps, &rec, "enum") || ps_read_enum(ps, &rec.sub, full);
			break;
		case PS_MSG_EXTENSION:
			bad = ps_need_len(ps, &rec, "extension") || ps_read_field(ps, &rec.sub, full, 1);
			break;
		default:
			break;
		}
	}
	if (bad)
		return -1;
	return rc < 0 ? ps_malformed(ps, &it, "message") : 0;
}

static int ps_read_service(struct gw_protoset *ps, const struct ps_rd *r, const char *scope)
{
	char name[GW_PROTOSET_MAX_NAME + 1], full[GW_PROTOSET_MAX_NAME + 1];
	char method[GW_PROTOSET_MAX_NAME + 1];
	struct ps_rd it = *r;
	struct ps_rec rec;
	int rc;

	if (ps_name_of(ps, r, name, "service") != 0 || ps_join(ps, full, scope, name) != 0 ||
	    ps_add(ps, full, GW_PS_SERVICE) != 0)
		return -1;
	while ((rc = ps_next(&it, &rec)) > 0) {
		if (rec.field != PS_SVC_METHOD)
			continue;
		if (ps_need_len(ps, &rec, "method") != 0 ||
		    ps_name_of(ps, &rec.sub, name, "method") != 0 ||
		    ps_join(ps, method, full, name) != 0 || ps_add(ps, method, GW_PS_METHOD) != 0)
			return -1;
	}
	return rc < 0 ? ps_malformed(ps, &it, "service") : 0;
}

/* An import: protoc's --include_imports writes every file after the files it imports. */
static int ps_read_dep(struct gw_protoset *ps, struct ps_file *f, const struct ps_rec *rec)
{
	char dep[GW_PROTOSET_MAX_NAME + 1];
	int j;

	if (ps_str(ps, rec, dep, "dependency") != 0)
		return -1;
	j = gw_protoset_file_by_name(ps, dep);
	if (j < 0)
		return ps_fail(ps, "imports %s, which is not before it in the set", dep);
	if (f->ndeps >= GW_PROTOSET_MAX_DEPS)
		return ps_fail(ps, "more than %d imports", GW_PROTOSET_MAX_DEPS);
	f->deps[f->ndeps++] = (size_t)j;
	return 0;
}

static int ps_read_file(struct gw_protoset *ps, const struct ps_rd *r)
{
	struct ps_file *f = &ps->files[ps->nfiles];
	char pkg[GW_PROTOSET_MAX_NAME + 1] = "";
	struct ps_rd it = *r;
	struct ps_rec rec;
	int rc, bad = 0;

	f->bytes = r->p;
	f->len = (size_t)(r->end - r->p);
	/* Name and package first: the definitions are read in the package's scope. */
	while ((rc = ps_next(&it, &rec)) > 0) {
		if (rec.field == PS_FILE_NAME && ps_str(ps, &rec, f->name, "file name") != 0)
			return -1;
		if (rec.field == PS_FILE_PACKAGE && ps_str(ps, &rec, pkg, "package") != 0)
			return -1;
	}
	if (rc < 0)
		return ps_malformed(ps, &it, "file");
	if (!f->name[0])
		return ps_fail(ps, "a file without a name");
	if (gw_protoset_file_by_name(ps, f->name) >= 0)
		return ps_fail(ps, "the file is in the set twice");
	it = *r;
	while (!bad && (rc = ps_next(&it, &rec)) > 0) {
		switch (rec.field) {
		case PS_FILE_DEPENDENCY:
			bad = ps_read_dep(ps, f, &rec);
			break;
		case PS_FILE_MESSAGE:
			bad = ps_need_len(ps, &rec, "message") || ps_read_message(ps, &rec.sub, pkg, 0);
			break;
		case PS_FILE_ENUM:
			bad = ps_need_len(ps, &rec, "enum") || ps_read_enum(ps, &rec.sub, pkg);
			break;
		case PS_FILE_SERVICE:
			bad = ps_need_len(ps, &rec, "service") || ps_read_service(ps, &rec.sub, pkg);
			break;
		case PS_FILE_EXTENSION:
			bad = ps_need_len(ps, &rec, "extension") || ps_read_field(ps, &rec.sub, pkg, 1);
			break;
		default:
			break;
		}
	}
	if (bad)
		return -1;
	if (rc < 0)
		return ps_malformed(ps, &it, "file");
	ps->nfiles++;
	return 0;
}

static int ps_sym_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ps_symbol *)a)->name, ((const struct ps_symbol *)b)->name);
}

int gw_protoset_open(const uint8_t *set, size_t len, struct gw_protoset **out, char *err,
		     size_t errlen)
{
	struct gw_protoset *ps = calloc(1, sizeof *ps);
	struct ps_rd it = { set, set + len };
	struct ps_rec rec;
	int rc = -1, more;

	*out = NULL;
	if (!ps) {
		snprintf(err, errlen, "descriptor set: out of memory");
		goto out;
	}
	ps->base = set;
	ps->err = err;
	ps->errlen = errlen;
	while ((more = ps_next(&it, &rec)) > 0) {
		if (rec.field != PS_SET_FILE)
			continue;	/* FileDescriptorSet has no other field; a newer one is skipped */
		if (rec.wt != PS_WT_LEN) {
			ps_fail(ps, "a file that is not a message");
			goto out;
		}
		if (ps->nfiles >= GW_PROTOSET_MAX_FILES) {
			snprintf(err, errlen, "descriptor set: more than %d files", GW_PROTOSET_MAX_FILES);
			goto out;
		}
		if (ps_read_file(ps, &rec.sub) != 0)
			goto out;
	}
	if (more < 0) {
		snprintf(err, errlen, "descriptor set: malformed at byte %zu", (size_t)(it.p - set));
		goto out;
	}
	if (!ps->nfiles) {
		snprintf(err, errlen, "descriptor set: no files");
		goto out;
	}
	if (ps->nsyms)
		qsort(ps->syms, ps->nsyms, sizeof *ps->syms, ps_sym_cmp);
	for (size_t i = 1; i < ps->nsyms; i++) {
		if (strcmp(ps->syms[i - 1].name, ps->syms[i].name) == 0) {
			snprintf(err, errlen, "descriptor set: symbol %s defined twice (%s, %s)",
				 ps->syms[i].name, ps->files[ps->syms[i - 1].file].name,
				 ps->files[ps->syms[i].file].name);
			goto out;
		}
	}
	ps->base = NULL;
	ps->err = NULL;
	*out = ps;
	ps = NULL;
	rc = 0;
out:
	gw_protoset_free(ps);
	return rc;
}

void gw_protoset_free(struct gw_protoset *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->nsyms; i++)
		free(ps->syms[i].name);
	for (size_t i = 0; i < ps->nexts; i++)
		free(ps->exts[i].extendee);
	free(ps->syms);
	free(ps);
}

/* ---- lookups ---- */

size_t gw_protoset_nfiles(const struct gw_protoset *ps) { return ps->nfiles; }

const char *gw_protoset_file_name(const struct gw_protoset *ps, size_t i)
{
	return ps->files[i].name;
}

void gw_protoset_file_bytes(const struct gw_protoset *ps, size_t i, const uint8_t **p, size_t *len)
{
	*p = ps->files[i].bytes;
	*len = ps->files[i].len;
}

int gw_protoset_file_by_name(const struct gw_protoset *ps, const char *name)
{
	for (size_t i = 0; name && i < ps->nfiles; i++)
		if (strcmp(ps->files[i].name, name) == 0)
			return (int)i;
	return -1;
}

int gw_protoset_file_of_symbol(const struct gw_protoset *ps, const char *symbol,
			       enum gw_protoset_kind *kind)
{
	struct ps_symbol key = { (char *)symbol, 0, GW_PS_NONE };
	const struct ps_symbol *s = NULL;

	if (kind)
		*kind = GW_PS_NONE;
	if (symbol && ps->nsyms)
		s = bsearch(&key, ps->syms, ps->nsyms, sizeof *ps->syms, ps_sym_cmp);
	if (!s)
		return -1;
	if (kind)
		*kind = s->kind;
	return (int)s->file;
}

int gw_protoset_file_of_extension(const struct gw_protoset *ps, const char *extendee,
				  int32_t number)
{
	for (size_t i = 0; extendee && i < ps->nexts; i++)
		if (ps->exts[i].number == number && strcmp(ps->exts[i].extendee, extendee) == 0)
			return (int)ps->exts[i].file;
	return -1;
}

size_t gw_protoset_extension_numbers(const struct gw_protoset *ps, const char *extendee,
				     int32_t *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; extendee && i < ps->nexts; i++) {
		if (strcmp(ps->exts[i].extendee, extendee) != 0)
			continue;
		if (n < cap)
			out[n] = ps->exts[i].number;
		n++;
	}
	return n;
}

size_t gw_protoset_closure(const struct gw_protoset *ps, size_t i, size_t *out, size_t cap)
{
	uint64_t seen = 0;
	size_t n = 0, head = 0;

	if (i >= ps->nfiles || !cap)
		return 0;
	out[n++] = i;
	seen |= UINT64_C(1) << i;
	while (head < n) {
		const struct ps_file *f = &ps->files[out[head++]];

		for (size_t d = 0; d < f->ndeps; d++) {
			size_t j = f->deps[d];

			if (seen & (UINT64_C(1) << j))
				continue;
			if (n >= cap)
				return n;
			seen |= UINT64_C(1) << j;
			out[n++] = j;
		}
	}
	return n;
}
