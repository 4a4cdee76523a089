/*
 * Fuzz target: the simulator's parsing of what a client sends it (tests/sim). The first byte
 * picks the parser, the rest is its input:
 *   0 params list as JSON      (/process "params", sim_params_parse)
 *   1 params list, one per line (the same validator on arbitrary "key=value" strings)
 *   2 Content-Range            (resumable storage PUT, sim_storage_parse_content_range)
 *   3 Authorization: Basic     (GET /session/auth, sim_auth_parse_basic)
 *   4 Cookie header            (dmsess lookup, sim_auth_cookie_value)
 *   5 query string             (percent/form decoding, sim_http_decode and sim_http_query)
 *   6 signed URL "path NUL query" (sim_storage_verify)
 *   7 an uploaded video        (/videoInfo's MP4 box parser, sim_mp4_parse_buf)
 * What each parser promises in its header is asserted: a broken promise aborts like a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sim_auth.h"
#include "sim_http.h"
#include "sim_mp4.h"
#include "sim_params.h"
#include "sim_storage.h"

#define FUZZ_SIM_OUT 256		/* output buffers, of the order the simulator uses */
#define FUZZ_SIM_SMALL 8		/* a deliberately tight buffer: the too-long paths */
#define FUZZ_SIM_NOW 1795000000.0	/* a fixed wall clock (2026-11-18) */

static void fuzz_sim_require(int cond)
{
	if (!cond)
		abort();
}

static void fuzz_sim_params(json_t *list)
{
	struct sim_params p;
	char bad[FUZZ_SIM_OUT];

	bad[0] = '\0';
	if (sim_params_parse(list, &p, bad, sizeof bad) == 0) {
		fuzz_sim_require(p.formats != 0);
		fuzz_sim_require(p.n_models >= 0 && p.n_models <= SIM_PARAMS_MAX_MODELS);
		fuzz_sim_require(!p.has_trim || (p.trim_from >= 0 && p.trim_from < p.trim_to));
		fuzz_sim_require(memchr(p.model, '\0', sizeof p.model) != NULL);
	} else {
		fuzz_sim_require(memchr(bad, '\0', sizeof bad) != NULL);
	}
}

static void fuzz_sim_params_json(const char *s, size_t n)
{
	json_t *j = json_loadb(s, n, 0, NULL);

	if (j)
		fuzz_sim_params(j);
	json_decref(j);
}

static void fuzz_sim_params_lines(const char *s, size_t n)
{
	json_t *list = json_array();
	size_t i = 0;

	if (!list)
		return;
	while (i < n) {
		size_t l = 0;

		while (i + l < n && s[i + l] != '\n')
			l++;
		/* Strings that are not UTF-8 cannot reach the validator through JSON either. */
		json_array_append_new(list, json_stringn_nocheck(s + i, l));
		i += l + 1;
	}
	fuzz_sim_params(list);
	json_decref(list);
}

static void fuzz_sim_content_range(const char *s)
{
	int64_t first = -7, last = -7, total = -7;
	int rc = sim_storage_parse_content_range(s, &first, &last, &total);

	fuzz_sim_require(rc >= -1 && rc <= 1);
	if (rc == 0)
		fuzz_sim_require(first >= 0 && first <= last && (total == -1 || total > last));
	if (rc == 1)
		fuzz_sim_require(first == -1 && last == -1 && total >= 0);
}

static void fuzz_sim_basic(const char *s)
{
	char id[FUZZ_SIM_OUT], secret[FUZZ_SIM_OUT], tid[FUZZ_SIM_SMALL], tsecret[FUZZ_SIM_SMALL];

	if (sim_auth_parse_basic(s, id, sizeof id, secret, sizeof secret) == 0)
		fuzz_sim_require(id[0] != '\0' && strlen(id) < sizeof id && strlen(secret) < sizeof secret);
	if (sim_auth_parse_basic(s, tid, sizeof tid, tsecret, sizeof tsecret) == 0)
		fuzz_sim_require(strlen(tid) < sizeof tid && strlen(tsecret) < sizeof tsecret);
}

static void fuzz_sim_cookie(const char *s)
{
	char out[FUZZ_SIM_OUT], small[FUZZ_SIM_SMALL];

	if (sim_auth_cookie_value(s, SIM_AUTH_COOKIE, out, sizeof out) == 0)
		fuzz_sim_require(out[0] != '\0' && strcspn(out, "; ,") == strlen(out));
	if (sim_auth_cookie_value(s, SIM_AUTH_COOKIE, small, sizeof small) == 0)
		fuzz_sim_require(strlen(small) < sizeof small);
}

static void fuzz_sim_query(char *s, size_t n)
{
	static const char *const names[] = { "name", "resumable", "upload_id", "X-Goog-Date", "" };
	struct sim_req rq;
	char out[FUZZ_SIM_OUT], small[FUZZ_SIM_SMALL];

	for (int form = 0; form <= 1; form++) {
		if (sim_http_decode(s, n, form, out, sizeof out) == 0)
			fuzz_sim_require(strlen(out) <= n);	/* decoding never grows */
		if (sim_http_decode(s, n, form, small, sizeof small) == 0)
			fuzz_sim_require(strlen(small) < sizeof small);
	}
	fuzz_sim_require(sim_http_decode(s, n, 1, out, 0) == -1);
	memset(&rq, 0, sizeof rq);
	rq.query = s;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (sim_http_query(&rq, names[i], out, sizeof out) == 0)
			fuzz_sim_require(strlen(out) < sizeof out);
}

static void fuzz_sim_signed_url(const char *s, size_t n)
{
	static const unsigned char key[] = "fuzz-signing-key";
	const char *query = "";
	const char *nul = memchr(s, '\0', n);
	int rc;

	if (nul)
		query = nul + 1;
	rc = sim_storage_verify(key, sizeof key - 1, s, query, FUZZ_SIM_NOW);
	fuzz_sim_require(rc == 0 || rc == SIM_STORAGE_BAD_SIG || rc == SIM_STORAGE_EXPIRED);
}

static void fuzz_sim_mp4(const uint8_t *d, size_t n)
{
	struct sim_mp4_info info;

	if (sim_mp4_parse_buf(d, n, &info) == 0)
		fuzz_sim_require(memchr(info.codec, '\0', sizeof info.codec) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	/* NUL-terminated copy: the header parsers take C strings, as sim_http hands them over. */
	if (!(s = malloc(n + 1)))
		return 0;
	memcpy(s, data + 1, n);
	s[n] = '\0';
	switch (data[0] % 8) {
	case 0: fuzz_sim_params_json(s, n); break;
	case 1: fuzz_sim_params_lines(s, n); break;
	case 2: fuzz_sim_content_range(s); break;
	case 3: fuzz_sim_basic(s); break;
	case 4: fuzz_sim_cookie(s); break;
	case 5: fuzz_sim_query(s, strlen(s)); break;
	case 6: fuzz_sim_signed_url(s, n); break;
	default: fuzz_sim_mp4(data + 1, n); break;
	}
	free(s);
	return 0;
}
