/*
 * json: any protobuf-c message as JSON, for --json. Field names are the .proto names
 * (snake_case, which protobuf's JSON parsers accept besides lowerCamelCase); every proto3 scalar
 * is written, zero values included, so scripts need no defaults; enums as their names; 64-bit
 * integers as JSON numbers; bytes as base64; a oneof member only when it is the one set; an
 * unset sub-message not at all.
 */
#ifndef A3D_CLI_JSON_H
#define A3D_CLI_JSON_H

#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#define A3D_JSON_MAX_DEPTH 16		/* nesting followed; deeper messages are written as null */

/* A new JSON object for m (the caller owns it), or NULL when out of memory. */
json_t *a3d_json_from_message(const ProtobufCMessage *m);
/* Writes j compactly on one line of f and takes j (decref). Returns 0 or -1. */
int a3d_json_print(FILE *f, json_t *j);

#endif
