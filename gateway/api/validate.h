/*
 * validate: the contract's limits on what a caller may put in a request, in two tables, and the
 * decoder that applies them to every request message before any handler sees it.
 *
 *   kinds   what an id, a name, a URL, free text... may hold (bytes, characters, shape): one row
 *           per kind of field (gw_validate_kind below; rules in validate.c, vd_kinds[]).
 *   fields  for every field of every request message the gateway decodes that is a string or
 *           repeated: its kind and, when repeated, its cap on entries (validate.c, vd_fields[]).
 *           tests/unit/test_validate.c walks every method of every service descriptor and fails
 *           when a string or repeated field has no row, so a new field cannot arrive uncapped.
 *
 * gateway/call/call.c decodes every request (unary, server-streaming and each client-stream
 * message) with gw_validate_unpack(): a value that breaks a rule is INVALID_ARGUMENT naming the
 * field ("rids[3] must be 1..64 characters of A-Z a-z 0-9 _ -", "states has more than 16
 * entries") before the rate limit, the ownership checks (which therefore never ask the store about
 * a malformed id: NOT_FOUND is kept for well-formed ids nobody owns) or upstream see it. The
 * translate rows and UploadVideo check the same kinds (gw_validate_message, gw_validate_str).
 *
 * Embedded NUL bytes: protobuf-c unpacks a string into a NUL-terminated char * and drops its
 * length, so "a\0b" would silently become "a". gw_validate_unpack therefore scans the wire bytes
 * first (every length-delimited field whose descriptor says string, at every depth) and rejects a
 * NUL there. The same pass counts the records of every message level and stops at the first one
 * beyond the table: entries of a repeated field beyond its cap, a singular field seen more than
 * GW_VALIDATE_MAX_REPEATS times, more than GW_VALIDATE_MAX_UNKNOWN unknown fields. protobuf-c
 * unpacks a 4 MiB flood of tiny records in 100-350 ms (one allocation each); refused by the scan
 * first, it costs the loop well under a millisecond and nothing is allocated.
 *
 * Work: the scan looks at no more records than the table allows plus one and at the bytes of
 * string fields (memchr); protobuf-c then unpacks at most that many records; the decoded pass
 * reads the strings again, each at most its kind's length + 1. Pure: no I/O, no globals.
 * Empty singular strings are "not set" (proto3) and are left to the rows' required-field rules;
 * every element of a repeated string field and every set oneof member is checked.
 */
#ifndef A3D_GATEWAY_VALIDATE_H
#define A3D_GATEWAY_VALIDATE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#define GW_VALIDATE_ERR_MAX 256		/* err buffers are at least this long */
#define GW_VALIDATE_MAX_DEPTH 8		/* nesting of request messages (StartJob.params.render.bg_color is 3) */
#define GW_VALIDATE_MAX_FIELDS 32	/* fields of one request message (Params has 17) */
#define GW_VALIDATE_PATH_MAX 96		/* "params.models[15].model_id" */
#define GW_VALIDATE_MAX_UNKNOWN 64	/* unknown fields (a newer client's) in one message */
#define GW_VALIDATE_MAX_REPEATS 4	/* occurrences of one singular field (merged concatenations) */

/* Caps on repeated request fields (the contract; docs/operations.md "Request field limits"). */
#define GW_VALIDATE_MAX_RIDS 100	/* GetStatus, GetDownloadUrls, WatchStatus rids */
#define GW_VALIDATE_MAX_STATES 16	/* ListJobs states (5 states; repeats are answered once) */
#define GW_VALIDATE_MAX_FORMATS 7	/* Params.formats: bvh fbx glb mp4 png jpg dmpe */
#define GW_VALIDATE_MAX_MODELS 16	/* Params.models: tracked persons of one job */
#define GW_VALIDATE_MAX_EXTRA 32	/* StartJob extra_params */
#define GW_VALIDATE_MAX_EVENTS 8	/* Create/UpdateEndpoint events */

/* Lengths of the kinds, in bytes. */
#define GW_VALIDATE_RID_MAX 64
#define GW_VALIDATE_ID_MAX 128		/* model ids, endpoint ids, config names */
#define GW_VALIDATE_WORD_MAX 32
#define GW_VALIDATE_NAME_MAX 255	/* upload and model file names */
#define GW_VALIDATE_URL_MAX 4096
#define GW_VALIDATE_EXTRA_MAX 256	/* one "key=value" */
#define GW_VALIDATE_KEY_MAX 128		/* idempotency keys */
#define GW_VALIDATE_TEXT_MAX 255	/* model names, search tokens, health service names */
#define GW_VALIDATE_TRACKING_REF_MAX 3	/* a person's tracking id: "001" (v2.0 writes three digits) */

enum gw_validate_kind {
	GW_VK_NONE = -1,	/* a repeated field that is not a string: only its cap applies */
	GW_VK_RID = 0,		/* job rid: 1..64 of A-Z a-z 0-9 _ - */
	GW_VK_MODEL_ID,		/* character model id: 1..128 of A-Z a-z 0-9 _ - */
	GW_VK_ENDPOINT_ID,	/* webhook endpoint id: 1..128 of A-Z a-z 0-9 _ - */
	GW_VK_CONFIG,		/* params.config: 1..128 of A-Z a-z 0-9 _ - */
	GW_VK_FILE_NAME,	/* upload/model file name: 1..255 bytes of UTF-8, no '/', control, "." or ".." */
	GW_VK_URL,		/* http(s)://host...: at most 4096 bytes of printable ASCII, no spaces */
	GW_VK_WORD,		/* a word of a documented set (formats, extensions, events...): 1..32 of A-Z a-z 0-9 . _ - */
	GW_VK_EXTRA_PARAM,	/* one extra_params entry: 1..256 bytes of printable ASCII */
	GW_VK_IDEM_KEY,		/* idempotency key: 1..128 bytes of printable ASCII */
	GW_VK_TEXT,		/* free text (model_name, search_token): at most 255 bytes of UTF-8, no control */
	GW_VK_SERVICE,		/* grpc.health.v1 service name, server reflection's file and symbol
				 * names: at most 255 bytes of printable ASCII */
	GW_VK_TRACKING_REF,	/* a tracked person's id: 1..3 digits ("001"; params.c refuses 0) */
	GW_VK_COUNT
};

enum gw_validate_rc {
	GW_VALIDATE_OK = 0,
	GW_VALIDATE_INVALID = -1,	/* a rule is broken: INVALID_ARGUMENT with err */
	GW_VALIDATE_MALFORMED = -2	/* not a protobuf encoding of the message at all */
};

/* The kind's short name ("rid", "url"...) and its rule as messages quote it after "must be"
 * ("1..64 characters of A-Z a-z 0-9 _ -"); NULL for an unknown kind. */
const char *gw_validate_kind_name(enum gw_validate_kind k);
const char *gw_validate_kind_rule(enum gw_validate_kind k);
/* The kind's maximum length in bytes (0 for an unknown kind). */
size_t gw_validate_kind_max(enum gw_validate_kind k);

/* 1 when s is a valid value of kind k, else 0 (NULL never is). Looks at most max + 1 bytes. */
int gw_validate_ok(enum gw_validate_kind k, const char *s);
/* GW_VALIDATE_OK, or GW_VALIDATE_INVALID with err "<field> must be <rule>". */
int gw_validate_str(enum gw_validate_kind k, const char *field, const char *s, char *err,
		    size_t errlen);

/*
 * Checks a decoded request message (and its sub-messages) against the field table: caps of
 * repeated fields, kinds of strings. GW_VALIDATE_OK, or GW_VALIDATE_INVALID with err naming the
 * field ("params.models[2].model_id must be ...", "events has more than 8 entries"). A string
 * or repeated field without a row in the table is refused too (tests keep that from happening).
 * NULs cannot be seen here (the decoded strings stop at them): see gw_validate_unpack.
 */
int gw_validate_message(const ProtobufCMessage *m, char *err, size_t errlen);

/*
 * The wire pass alone: data[0..len) as an encoding of d, scanned for NUL bytes in string fields
 * and for records beyond the table (see above), at every depth. Returns GW_VALIDATE_OK,
 * GW_VALIDATE_INVALID (err names the field: "name must not contain a NUL byte (at byte 1)",
 * "states has more than 16 entries", "name appears more than 4 times", "request carries more
 * than 64 unknown fields") or GW_VALIDATE_MALFORMED ("malformed request message"). *ops (may be
 * NULL) receives the records and bytes the pass looked at, for tests that bound its work.
 */
int gw_validate_scan(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, char *err,
		     size_t errlen, size_t *ops);

/*
 * Decodes a request: gw_validate_scan, protobuf_c_message_unpack (system allocator: free with
 * protobuf_c_message_free_unpacked(msg, NULL)), gw_validate_message. Returns the message, or NULL
 * with err set and *malformed (may be NULL) 1 when the bytes are not the message at all ("malformed
 * request message"), 0 when a rule is broken.
 */
ProtobufCMessage *gw_validate_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data,
				     size_t len, char *err, size_t errlen, int *malformed);
/* The same with the message's memory from alloc (NULL: the system allocator): free it with
 * protobuf_c_message_free_unpacked(msg, alloc). */
ProtobufCMessage *gw_validate_unpack_with(const ProtobufCMessageDescriptor *d,
					  ProtobufCAllocator *alloc, const uint8_t *data, size_t len,
					  char *err, size_t errlen, int *malformed);

/* The table's rows, for the tests that walk the descriptors: the number of rows, and row i's
 * message and field name (0, or -1 past the end). */
size_t gw_validate_nrules(void);
int gw_validate_rule_at(size_t i, const ProtobufCMessageDescriptor **d, const char **field);
/* The table's row for field of message d, for the tests that walk the descriptors: 0 with *kind
 * (GW_VK_NONE for a repeated non-string) and *max_items (0 for a singular field), or -1 when the
 * table has no row for it. */
int gw_validate_rule(const ProtobufCMessageDescriptor *d, const char *field, int *kind,
		     unsigned *max_items);

#endif
