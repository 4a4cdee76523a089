/*
 * sim_resp: the answer a route handler fills in; sim_http writes it (adding Date, CORS,
 * Content-Length and Connection) once the handler returns. Every error answer is JSON:
 * {"message": "...", "error": "<short code>"} with Content-Type: application/json.
 */
#ifndef A3D_SIM_RESP_H
#define A3D_SIM_RESP_H

#include <stdint.h>

#include <jansson.h>

struct evbuffer;

#define SIM_RESP_HEADERS 16	/* extra headers per answer; more are dropped */

struct sim_resp {
	int status;		/* 0: not answered yet */
	char *hdr[SIM_RESP_HEADERS];	/* "Name: value", owned */
	int n_hdr;
	struct evbuffer *body;
	int file_fd;		/* > 0: body is file_len bytes of this file instead (owned; sent
				 * with sendfile straight to the socket, never read into memory) */
	int64_t file_len;
	int close;		/* add Connection: close and close after the write */
};

/* Adds a header line; sim_resp_json replaces the answer with status + JSON body (takes body);
 * sim_resp_error answers {"message": formatted, "error": error}. */
void sim_resp_header(struct sim_resp *rs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_resp_json(struct sim_resp *rs, int status, json_t *body);
/* Answers JSON text the caller formatted itself, for numbers jansson cannot print as the
 * document shows them (jansson writes reals with 17 significant digits). */
void sim_resp_json_text(struct sim_resp *rs, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void sim_resp_error(struct sim_resp *rs, int status, const char *error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Frees headers, body and file; leaves *rs zeroed (not answered). */
void sim_resp_reset(struct sim_resp *rs);
/* Reason phrase of an HTTP status ("Resume Incomplete" for 308, as GCS says). */
const char *sim_resp_reason(int status);

#endif
