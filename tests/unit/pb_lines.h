/*
 * pb_lines: protobuf-c messages for unit-test tables, from "field=value" lines: "a.b=v" sets a
 * field of a sub-message (created on the way), a repeated field gets one new element per line, a
 * string in a oneof selects it. Strings only. The message is malloc'd throughout, so
 * protobuf_c_message_free_unpacked(m, NULL) frees it. Failures fail the test (Criterion).
 */
#ifndef A3D_TESTS_PB_LINES_H
#define A3D_TESTS_PB_LINES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>
#include <protobuf-c/protobuf-c.h>

#define PB_LINES_MAX 6		/* lines per message in a table row; fewer end with NULL */

static inline ProtobufCMessage *pb_lines_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);

	cr_assert_not_null(m);
	protobuf_c_message_init(d, m);
	return m;
}

/* Appends a NULL element to the repeated field f of m (strings and messages: pointers both);
 * returns where it is. */
static inline void **pb_lines_append(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	size_t *n = (size_t *)((char *)m + f->quantifier_offset);
	void ***arr = (void ***)((char *)m + f->offset);

	*arr = realloc(*arr, (*n + 1) * sizeof **arr);
	cr_assert_not_null(*arr);
	(*arr)[*n] = NULL;
	return &(*arr)[(*n)++];
}

/* Frees what a set string slot holds (the message's default is static). */
static inline void pb_lines_free_string(char **slot)
{
	if (*slot && *slot != protobuf_c_empty_string)
		free(*slot);
	*slot = NULL;
}

/* The members of a oneof share their storage: free the one set, unless it is f itself. */
static inline void pb_lines_oneof_select(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	uint32_t *which = (uint32_t *)((char *)m + f->quantifier_offset);
	const ProtobufCFieldDescriptor *old =
		*which ? protobuf_c_message_descriptor_get_field(m->descriptor, *which) : NULL;

	if (old && old != f) {
		void **u = (void **)((char *)m + old->offset);

		if (old->type == PROTOBUF_C_TYPE_STRING)
			pb_lines_free_string((char **)u);
		else if (old->type == PROTOBUF_C_TYPE_MESSAGE && *u)
			protobuf_c_message_free_unpacked(*u, NULL);
		*u = NULL;
	}
	*which = f->id;
}

/* path "a.b.c" = value on m (strings only; sub-messages are created on the way). */
static inline void pb_lines_set(ProtobufCMessage *m, const char *path, const char *value)
{
	const char *dot = strchr(path, '.');
	char name[64];
	const ProtobufCFieldDescriptor *f;
	void *slot = NULL;

	snprintf(name, sizeof name, "%.*s", (int)(dot ? (size_t)(dot - path) : strlen(path)), path);
	f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	cr_assert_not_null(f, "%s has no field %s", m->descriptor->name, name);
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		slot = pb_lines_append(m, f);
	else
		slot = (char *)m + f->offset;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		pb_lines_oneof_select(m, f);
	if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		ProtobufCMessage **sub = slot;

		cr_assert_not_null(dot, "%s is a message", name);
		if (!*sub)
			*sub = pb_lines_new(f->descriptor);
		pb_lines_set(*sub, dot + 1, value);
		return;
	}
	cr_assert_eq(f->type, PROTOBUF_C_TYPE_STRING, "%s is not a string", name);
	cr_assert_null(dot);
	pb_lines_free_string(slot);	/* a line for a singular field replaces its value */
	*(char **)slot = strdup(value);
}

/* Applies up to PB_LINES_MAX "path=value" lines (NULL ends them early) to m. */
static inline void pb_lines_apply(ProtobufCMessage *m, const char *const *lines)
{
	for (size_t i = 0; i < PB_LINES_MAX && lines[i]; i++) {
		const char *eq = strchr(lines[i], '=');
		char path[64];

		cr_assert_not_null(eq, "%s", lines[i]);
		snprintf(path, sizeof path, "%.*s", (int)(eq - lines[i]), lines[i]);
		pb_lines_set(m, path, eq + 1);
	}
}

/* A new message of type d with lines applied. */
static inline ProtobufCMessage *pb_lines_msg(const ProtobufCMessageDescriptor *d,
					     const char *const *lines)
{
	ProtobufCMessage *m = pb_lines_new(d);

	pb_lines_apply(m, lines);
	return m;
}

#endif
