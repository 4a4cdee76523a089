/* sim_resp: building the answer a handler gives (status, headers, JSON or file body). */
#include "sim_resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

void sim_resp_header(struct sim_resp *rs, const char *fmt, ...)
{
	va_list ap;
	char *h = NULL;

	if (rs->n_hdr == SIM_RESP_HEADERS)
		return;
	va_start(ap, fmt);
	if (vasprintf(&h, fmt, ap) < 0)
		h = NULL;
	va_end(ap);
	if (h != NULL)
		rs->hdr[rs->n_hdr++] = h;
}

void sim_resp_reset(struct sim_resp *rs)
{
	for (int i = 0; i < rs->n_hdr; i++)
		free(rs->hdr[i]);
	if (rs->body != NULL)
		evbuffer_free(rs->body);
	if (rs->file_fd > 0)
		close(rs->file_fd);
	memset(rs, 0, sizeof(*rs));
}

void sim_resp_json(struct sim_resp *rs, int status, json_t *body)
{
	char *txt = json_dumps(body, JSON_COMPACT);

	json_decref(body);
	sim_resp_reset(rs);
	rs->status = status;
	rs->body = evbuffer_new();
	if (txt != NULL && rs->body != NULL)
		evbuffer_add(rs->body, txt, strlen(txt));
	free(txt);
	sim_resp_header(rs, "Content-Type: application/json");
}

void sim_resp_json_text(struct sim_resp *rs, int status, const char *fmt, ...)
{
	va_list ap;

	sim_resp_reset(rs);
	rs->status = status;
	rs->body = evbuffer_new();
	if (rs->body != NULL) {
		va_start(ap, fmt);
		evbuffer_add_vprintf(rs->body, fmt, ap);
		va_end(ap);
	}
	sim_resp_header(rs, "Content-Type: application/json");
}

void sim_resp_error(struct sim_resp *rs, int status, const char *error, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sim_resp_json(rs, status, json_pack("{s:s, s:s}", "message", msg, "error", error));
}

const char *sim_resp_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 308: return "Resume Incomplete";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}
