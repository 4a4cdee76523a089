/*
 * protoset: the descriptor set compiled into the binary (a google.protobuf.FileDescriptorSet, the
 * output of `protoc --descriptor_set_out --include_imports`), indexed for server reflection
 * (gateway/svc/reflection.h): which file defines a symbol, which files a file needs, and the
 * serialized FileDescriptorProto of each file as it came from protoc.
 *
 * gRPC core has no reflection and protobuf-c keeps no serialized descriptors, so the build embeds
 * protoc's output (CMakeLists.txt: build/animate3d.protoset, turned into a C array by
 * scripts/embed-bytes.cmake) and this module reads it with a small wire-format walker of the few
 * fields it needs (names, package, dependencies, messages and their fields and nested types,
 * enums and their values, services and their methods, extensions). The set is the build's own,
 * but it is parsed as untrusted all the same: every record is bounds-checked, every count and
 * name is capped below, and anything unexpected fails gw_protoset_open with a message.
 *
 * Symbols are the fully qualified names protobuf's DescriptorPool knows (no leading dot):
 * "animate3d.v1.Jobs", "animate3d.v1.Jobs.GetStatus", "animate3d.v1.Params.Render",
 * "animate3d.v1.JobState", an enum value at its enum's scope ("animate3d.v1.JOB_STATE_SUCCESS"),
 * a field ("animate3d.v1.GetStatusRequest.rids"), an extension at the scope it is declared in.
 *
 * Ownership: the set's bytes are borrowed (the embedded array lives as long as the program); the
 * index is the caller's, freed with gw_protoset_free. Pure: no I/O, no globals.
 */
#ifndef A3D_GATEWAY_PROTOSET_H
#define A3D_GATEWAY_PROTOSET_H

#include <stddef.h>
#include <stdint.h>

#define GW_PROTOSET_MAX_FILES 64	/* files in a set (the gateway's has 7) */
#define GW_PROTOSET_MAX_DEPS 32		/* imports of one file */
#define GW_PROTOSET_MAX_SYMBOLS 8192	/* symbols in all files (the gateway's have about 600) */
#define GW_PROTOSET_MAX_EXTENSIONS 256	/* extension fields in all files (the gateway's: none) */
#define GW_PROTOSET_MAX_NAME 255	/* a fully qualified name or a file name, in bytes */
#define GW_PROTOSET_MAX_DEPTH 16	/* nesting of message types */
#define GW_PROTOSET_ERR_MAX 256		/* err buffers are at least this long */

/* The embedded set (generated in the build tree: build/gen/a3d_protoset.c). */
extern const unsigned char gw_protoset_embedded[];
extern const size_t gw_protoset_embedded_len;

enum gw_protoset_kind {
	GW_PS_NONE = 0,
	GW_PS_MESSAGE,
	GW_PS_ENUM,
	GW_PS_ENUM_VALUE,
	GW_PS_SERVICE,
	GW_PS_METHOD,
	GW_PS_FIELD,
	GW_PS_EXTENSION
};

struct gw_protoset;

/* Indexes set[0..len). 0 with *out set, or -1 with one line in err ("file 2 (x.proto): symbol
 * a.B defined twice", "malformed descriptor set at byte 812"); nothing to free then. */
int gw_protoset_open(const uint8_t *set, size_t len, struct gw_protoset **out, char *err,
		     size_t errlen);
void gw_protoset_free(struct gw_protoset *ps);	/* NULL is fine */

size_t gw_protoset_nfiles(const struct gw_protoset *ps);
/* File i's name ("animate3d/v1/jobs.proto") and its serialized FileDescriptorProto (borrowed from
 * the set). i < gw_protoset_nfiles. */
const char *gw_protoset_file_name(const struct gw_protoset *ps, size_t i);
void gw_protoset_file_bytes(const struct gw_protoset *ps, size_t i, const uint8_t **p, size_t *len);

/* The file of that name, or -1. */
int gw_protoset_file_by_name(const struct gw_protoset *ps, const char *name);
/* The file defining symbol, or -1; *kind (may be NULL) gets what the symbol is. */
int gw_protoset_file_of_symbol(const struct gw_protoset *ps, const char *symbol,
			       enum gw_protoset_kind *kind);
/* The file declaring extension number of message type extendee ("a.B"), or -1. */
int gw_protoset_file_of_extension(const struct gw_protoset *ps, const char *extendee,
				  int32_t number);
/* The numbers of the extensions of message type extendee, up to cap of them into out; returns
 * how many there are. */
size_t gw_protoset_extension_numbers(const struct gw_protoset *ps, const char *extendee,
				     int32_t *out, size_t cap);
/* File i and every file it imports, directly or not, each once, i first: up to cap indices into
 * out (GW_PROTOSET_MAX_FILES always fits). Returns how many. */
size_t gw_protoset_closure(const struct gw_protoset *ps, size_t i, size_t *out, size_t cap);

#endif
