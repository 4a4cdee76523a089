/*
 * log: JSON lines on stderr. Formatting is separate from I/O (gw_log_format) so tests can check
 * every byte without capturing stderr.
 */
#include "gateway/base/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Room kept back so a truncated line can still be closed: '"' + ,"truncated":true}\n + NUL. */
#define LOG_TAIL "," "\"truncated\":true}\n"
#define LOG_RESERVE (sizeof(LOG_TAIL) - 1 + 1 + 1)

/* See log.h for why this one setting is process-wide. */
static atomic_int log_min_level = GW_LOG_INFO;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

void gw_log_set_level(enum gw_log_level lvl)
{
	if ((int)lvl >= GW_LOG_DEBUG && lvl <= GW_LOG_ERROR)
		atomic_store(&log_min_level, (int)lvl);
}

enum gw_log_level gw_log_get_level(void)
{
	return (enum gw_log_level)atomic_load(&log_min_level);
}

int gw_log_level_parse(const char *s, enum gw_log_level *out)
{
	if (!s || !out)
		return -1;
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, log_names[i]) == 0) {
			*out = (enum gw_log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = GW_LOG_WARN;
		return 0;
	}
	return -1;
}

const char *gw_log_level_name(enum gw_log_level lvl)
{
	if ((int)lvl < GW_LOG_DEBUG || lvl > GW_LOG_ERROR)
		return "?";
	return log_names[lvl];
}

struct log_w {
	char *buf;
	size_t cap;	/* content limit; the reserve past it is only for closing the line */
	size_t len;
	int full;	/* something did not fit: the line is truncated */
};

static int log_put(struct log_w *w, const char *s, size_t n)
{
	if (w->full || w->len + n > w->cap) {
		w->full = 1;
		return -1;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if it is not one. */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	/* Second-byte ranges that exclude overlongs, surrogates and code points past U+10FFFF. */
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* A JSON string; cut at a character boundary and still closed when it does not fit. -1 if cut. */
static int log_put_str(struct log_w *w, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	int rc = 0;

	if (log_put(w, "\"", 1) < 0)
		return -1;
	for (size_t i = 0; i < n;) {
		char esc[8];
		const char *out = esc;
		size_t olen = 1, step = 1;

		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			olen = 2;
		} else if (s[i] == '\n') {
			out = "\\n";
			olen = 2;
		} else if (s[i] == '\r') {
			out = "\\r";
			olen = 2;
		} else if (s[i] == '\t') {
			out = "\\t";
			olen = 2;
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
			olen = 6;
		} else if (s[i] < 0x80) {
			esc[0] = (char)s[i];
		} else if ((step = log_utf8_len(s + i, n - i)) > 0) {
			out = (const char *)s + i;
			olen = step;
		} else {
			out = "\\ufffd";
			olen = 6;
			step = 1;
		}
		if (log_put(w, out, olen) < 0) {
			rc = -1;
			break;
		}
		i += step;
	}
	/* The closing quote may use the reserve: a cut string is still a string. */
	w->buf[w->len++] = '"';
	return rc;
}

static void log_field(struct log_w *w, const struct gw_log_field *f)
{
	size_t mark = w->len;
	char num[32];

	if (log_put(w, ",", 1) < 0 || log_put_str(w, f->key) < 0 || log_put(w, ":", 1) < 0) {
		w->len = mark;	/* a key without its value would be invalid JSON: drop both */
		w->full = 1;
		return;
	}
	if (f->kind == GW_LOG_KIND_NUM) {
		int n = snprintf(num, sizeof(num), "%lld", f->num);
		if (log_put(w, num, (size_t)n) < 0)
			w->len = mark;
	} else if (!f->str) {
		if (log_put(w, "null", 4) < 0)
			w->len = mark;
	} else {
		log_put_str(w, f->str);
	}
}

size_t gw_log_format(char *buf, size_t buflen, enum gw_log_level lvl, const char *event, va_list ap)
{
	struct log_w w;
	struct timespec ts;
	struct tm tm;
	char head[96];
	size_t limit = buflen < GW_LOG_LINE_MAX ? buflen : GW_LOG_LINE_MAX;

	if (!buf || buflen < GW_LOG_MIN_BUF) {
		if (buf && buflen)
			buf[0] = '\0';
		return 0;
	}
	w = (struct log_w){ .buf = buf, .cap = limit - LOG_RESERVE, .len = 0, .full = 0 };
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(head, sizeof(head), "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"event\":",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000, gw_log_level_name(lvl));
	log_put(&w, head, strlen(head));
	log_put_str(&w, event ? event : "");
	for (int i = 0; !w.full; i++) {
		struct gw_log_field f = va_arg(ap, struct gw_log_field);

		if (!f.key || f.kind == GW_LOG_KIND_END)
			break;
		if (i == GW_LOG_MAX_FIELDS) {
			w.full = 1;	/* more fields than we read: say the line is incomplete */
			break;
		}
		log_field(&w, &f);
	}
	if (w.full) {
		memcpy(buf + w.len, LOG_TAIL, sizeof(LOG_TAIL) - 1);
		w.len += sizeof(LOG_TAIL) - 1;
	} else {
		memcpy(buf + w.len, "}\n", 2);
		w.len += 2;
	}
	buf[w.len] = '\0';
	return w.len;
}

void gw_log(enum gw_log_level lvl, const char *event, ...)
{
	char buf[GW_LOG_LINE_MAX];
	va_list ap;
	size_t n;

	if ((int)lvl < atomic_load(&log_min_level))
		return;
	va_start(ap, event);
	n = gw_log_format(buf, sizeof(buf), lvl, event, ap);
	va_end(ap);
	/* One write per line: concurrent writers never interleave inside a line. A failed log
	 * write has nowhere to be reported, so it is dropped. */
	while (write(STDERR_FILENO, buf, n) < 0 && errno == EINTR)
		;
}

void gw_log_redact_url(const char *url, char *out, size_t outlen)
{
	size_t end, o = 0, i = 0;
	const char *scheme;

	if (!out || outlen == 0)
		return;
	if (!url) {
		out[0] = '\0';
		return;
	}
	end = strcspn(url, "?#");
	scheme = strstr(url, "://");
	if (scheme && (size_t)(scheme - url) < end) {
		size_t auth = (size_t)(scheme - url) + 3;
		size_t alen = strcspn(url + auth, "/?#");
		const char *at = NULL;

		for (size_t k = auth; k < auth + alen; k++)
			if (url[k] == '@')
				at = url + k;
		/* Copy "scheme://", then skip "user:pass@" if present. */
		for (; i < auth && o + 1 < outlen; i++)
			out[o++] = url[i];
		if (at)
			i = (size_t)(at - url) + 1;
	}
	for (; i < end && o + 1 < outlen; i++)
		out[o++] = url[i];
	out[o] = '\0';
}
