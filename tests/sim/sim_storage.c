/* sim_storage: signed URLs, GCS-like single and resumable uploads, downloads. */
#include "sim_storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sim_http.h"
#include "sim_ids.h"
#include "sim_mp4.h"
#include "sim_outputs.h"

#define SIM_STORAGE_QUERY_MAX 128	/* one decoded query value */

/* ---- signing ---- */

void sim_storage_sign(const unsigned char *key, size_t keylen, const char *path, const char *date,
		      long expires, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char msg[SIM_URL_MAX + 64];
	int n = snprintf(msg, sizeof(msg), "%s\n%s\n%ld", path, date, expires);

	if (n < 0 || (size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, (size_t)n, mac, &maclen);
	for (unsigned int i = 0; i < maclen && i < SIM_STORAGE_SIG_HEX / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[SIM_STORAGE_SIG_HEX] = '\0';
}

static int sim_storage_qget(const char *query, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = query;

	while (p != NULL && *p != '\0') {
		size_t l = strcspn(p, "&");

		if (l > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
			return sim_http_decode(p + nl + 1, l - nl - 1, 0, out, outlen);
		p += l;
		if (*p == '&')
			p++;
	}
	return -1;
}

/* "20261128T071500Z" → seconds since the epoch, -1 when malformed. */
static double sim_storage_parse_date(const char *d)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (strlen(d) != 16 || (end = strptime(d, "%Y%m%dT%H%M%SZ", &tm)) == NULL || *end != '\0')
		return -1;
	return (double)timegm(&tm);
}

int sim_storage_verify(const unsigned char *key, size_t keylen, const char *path, const char *query,
		       double now)
{
	char date[SIM_STORAGE_QUERY_MAX], exp[SIM_STORAGE_QUERY_MAX], sig[SIM_STORAGE_QUERY_MAX];
	char want[SIM_STORAGE_SIG_HEX + 1], *end;
	long expires;
	double t0;

	if (sim_storage_qget(query, "X-Goog-Date", date, sizeof(date)) != 0 ||
	    sim_storage_qget(query, "X-Goog-Expires", exp, sizeof(exp)) != 0 ||
	    sim_storage_qget(query, "X-Goog-Signature", sig, sizeof(sig)) != 0)
		return SIM_STORAGE_BAD_SIG;
	expires = strtol(exp, &end, 10);
	if (*exp == '\0' || *end != '\0' || expires <= 0 || (t0 = sim_storage_parse_date(date)) < 0)
		return SIM_STORAGE_BAD_SIG;
	sim_storage_sign(key, keylen, path, date, expires, want);
	if (strlen(sig) != SIM_STORAGE_SIG_HEX || CRYPTO_memcmp(sig, want, SIM_STORAGE_SIG_HEX) != 0)
		return SIM_STORAGE_BAD_SIG;
	if (now >= t0 + (double)expires)
		return SIM_STORAGE_EXPIRED;
	return 0;
}

int sim_storage_signed_url(struct sim *s, const char *path, char *out, size_t outlen)
{
	char date[32], sig[SIM_STORAGE_SIG_HEX + 1];
	time_t now = (time_t)sim_now_wall();
	long expires = (long)s->cfg.url_ttl;
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	sim_storage_sign(s->url_key, sizeof(s->url_key), path, date, expires, sig);
	n = snprintf(out, outlen,
		     "%s%s?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=animate3d-sim%%2F%.8s%%2Fauto%%2Fstorage%%2Fgoog4_request"
		     "&X-Goog-Date=%s&X-Goog-Expires=%ld&X-Goog-SignedHeaders=host&X-Goog-Signature=%s",
		     s->base_url, path, date, date, expires, sig);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int sim_storage_parse_content_range(const char *v, int64_t *first, int64_t *last, int64_t *total)
{
	char *end;
	const char *p;

	if (v == NULL || strncasecmp(v, "bytes ", 6) != 0)
		return -1;
	p = v + 6;
	while (*p == ' ')
		p++;
	if (p[0] == '*' && p[1] == '/') {
		*first = *last = -1;
		if (p[2] < '0' || p[2] > '9')
			return -1;
		*total = strtoll(p + 2, &end, 10);
		return *end == '\0' && *total >= 0 ? 1 : -1;
	}
	if (*p < '0' || *p > '9')
		return -1;
	*first = strtoll(p, &end, 10);
	if (*end != '-' || end[1] < '0' || end[1] > '9')
		return -1;
	*last = strtoll(end + 1, &end, 10);
	if (*end != '/' || *last < *first)
		return -1;
	if (strcmp(end + 1, "*") == 0) {
		*total = -1;
		return 0;
	}
	p = end + 1;
	if (*p < '0' || *p > '9')
		return -1;
	*total = strtoll(p, &end, 10);
	return *end == '\0' && *total > *last ? 0 : -1;
}

/* ---- uploads table ---- */

static int sim_storage_encode(const char *src, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		if (o + 4 >= outlen)
			return -1;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

int sim_storage_upload_url(struct sim *s, int i, char *url, size_t urllen)
{
	char enc[SIM_NAME_MAX * 3], path[SIM_URL_MAX];

	if (i < 0 || i >= s->n_uploads || sim_storage_encode(s->uploads[i]->name, enc, sizeof(enc)) != 0 ||
	    snprintf(path, sizeof(path), "/storage/u/%s/%s", s->uploads[i]->id, enc) >= (int)sizeof(path))
		return -1;
	return sim_storage_signed_url(s, path, url, urllen);
}

int sim_storage_new_upload(struct sim *s, int account, enum sim_upload_kind kind, const char *name,
			   int resumable, char *url, size_t urllen)
{
	struct sim_upload *u;
	char enc[SIM_NAME_MAX * 3];
	int slot = s->n_uploads;

	if (slot == SIM_MAX_UPLOADS) {
		s->rejections[SIM_REJ_UPLOADS]++;
		return -1;
	}
	if (sim_storage_encode(name, enc, sizeof(enc)) != 0 || (u = calloc(1, sizeof(*u))) == NULL)
		return -1;
	sim_ids_new(&s->id_rng, u->id, SIM_ID_LEN);
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->account = account;
	u->kind = kind;
	u->resumable = resumable;
	u->total = -1;
	if (snprintf(u->path, sizeof(u->path), "%s/%s", s->cfg.storage_dir, u->id) >= (int)sizeof(u->path)) {
		free(u);
		return -1;
	}
	s->uploads[slot] = u;
	s->n_uploads++;
	if (sim_storage_upload_url(s, slot, url, urllen) != 0) {
		s->uploads[--s->n_uploads] = NULL;
		free(u);
		return -1;
	}
	return slot;
}

static int sim_storage_find_id(struct sim *s, const char *id)
{
	for (int i = 0; i < s->n_uploads; i++)
		if (strcmp(s->uploads[i]->id, id) == 0)
			return i;
	return -1;
}

int sim_storage_find_url(struct sim *s, const char *url, int account)
{
	const char *p = strstr(url, "/storage/u/");
	char id[SIM_ID_LEN + 1];
	int i;

	if (p == NULL || strncmp(url, s->base_url, strlen(s->base_url)) != 0)
		return -1;
	p += strlen("/storage/u/");
	if (strlen(p) < SIM_ID_LEN || p[SIM_ID_LEN] != '/')
		return -1;
	memcpy(id, p, SIM_ID_LEN);
	id[SIM_ID_LEN] = '\0';
	i = sim_storage_find_id(s, id);
	return i >= 0 && s->uploads[i]->account == account ? i : -1;
}

int sim_storage_init(struct sim *s)
{
	if (s->cfg.storage_dir[0] == '\0') {
		const char *tmp = getenv("TMPDIR");

		snprintf(s->cfg.storage_dir, sizeof(s->cfg.storage_dir), "%s/animate3d-sim-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(s->cfg.storage_dir) == NULL) {
			fprintf(stderr, "animate3d-sim: mkdtemp: %s\n", strerror(errno));
			return -1;
		}
		s->cfg.storage_is_temp = 1;
		return 0;
	}
	if (mkdir(s->cfg.storage_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "animate3d-sim: --storage-dir %s: %s\n", s->cfg.storage_dir, strerror(errno));
		return -1;
	}
	return 0;
}

void sim_storage_free(struct sim *s)
{
	for (int i = 0; i < s->n_uploads; i++) {
		if (s->cfg.storage_is_temp)
			unlink(s->uploads[i]->path);
		free(s->uploads[i]);
		s->uploads[i] = NULL;
	}
	s->n_uploads = 0;
	if (s->cfg.storage_is_temp)
		rmdir(s->cfg.storage_dir);
}

/* ---- storage requests ---- */

/* Splits "/storage/<k>/<id>/<rest>". 0 or -1. */
static int sim_storage_split(const char *path, char *kind, char *id, size_t idlen, const char **rest)
{
	const char *p = path + strlen("/storage/");
	const char *slash;

	if (p[0] == '\0' || p[1] != '/')
		return -1;
	*kind = p[0];
	p += 2;
	slash = strchr(p, '/');
	if (slash == NULL || slash == p || (size_t)(slash - p) >= idlen || slash[1] == '\0')
		return -1;
	memcpy(id, p, (size_t)(slash - p));
	id[slash - p] = '\0';
	*rest = slash + 1;
	return 0;
}

static void sim_storage_sig_error(struct sim *s, struct sim_resp *rs, int v)
{
	s->rejections[SIM_REJ_SIGNATURE]++;
	if (v == SIM_STORAGE_EXPIRED)
		sim_resp_error(rs, 403, "ExpiredToken", "Request has expired");
	else
		sim_resp_error(rs, 403, "SignatureDoesNotMatch",
			       "The request signature we calculated does not match the signature you provided");
}

/* Resolves the upload of a u/ request and checks its signature or session. */
static int sim_storage_resolve(struct sim *s, struct sim_req *rq, struct sim_resp *rs, int *session)
{
	char kind, id[SIM_ID_LEN + 8], sess[SIM_STORAGE_QUERY_MAX];
	const char *rest;
	int i, v;

	*session = 0;
	if (sim_storage_split(rq->path, &kind, id, sizeof(id), &rest) != 0 || kind != 'u' ||
	    (i = sim_storage_find_id(s, id)) < 0) {
		sim_resp_error(rs, 404, "NoSuchKey", "The specified key does not exist");
		return -1;
	}
	if (sim_storage_qget(rq->query, "upload_id", sess, sizeof(sess)) == 0) {
		struct sim_upload *u = s->uploads[i];

		if (!u->has_session || strcmp(sess, u->session_id) != 0) {
			sim_resp_error(rs, 404, "NoSuchUpload", "No such resumable upload session");
			return -1;
		}
		*session = 1;
		return i;
	}
	v = sim_storage_verify(s->url_key, sizeof(s->url_key), rq->path, rq->query, sim_now_wall());
	if (v != 0) {
		sim_storage_sig_error(s, rs, v);
		return -1;
	}
	return i;
}

static int sim_storage_open_sink(struct sim *s, struct sim_req *rq, struct sim_resp *rs,
				 struct sim_upload *u, int truncate)
{
	rq->sink_fd = open(u->path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
	if (rq->sink_fd < 0) {
		sim_resp_error(rs, 500, "500", "Storage open failed");
		return -1;
	}
	rq->sink = SIM_SINK_FILE;
	return 0;
}

void sim_storage_begin(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	struct sim_upload *u;
	int i, session, cr;

	if (strcmp(rq->method, "PUT") != 0)
		return;		/* GET and POST carry no body worth keeping: discard sink */
	if ((i = sim_storage_resolve(s, rq, rs, &session)) < 0)
		return;
	u = s->uploads[i];
	rq->upload = i;
	if (rq->content_length > s->cfg.max_upload_bytes) {
		s->rejections[SIM_REJ_UPLOAD_SIZE]++;
		sim_resp_error(rs, 413, "EntityTooLarge", "Upload over %lld bytes",
			       (long long)s->cfg.max_upload_bytes);
		return;
	}
	if (!session) {
		if (u->resumable) {
			sim_resp_error(rs, 400, "400",
				       "Resumable upload URL: start a session with POST and x-goog-resumable: start");
			return;
		}
		rq->range_first = -2;	/* the whole object in one PUT */
		rq->sink_limit = s->cfg.max_upload_bytes;
		if (sim_storage_open_sink(s, rq, rs, u, 1) == 0)
			u->received = 0, u->complete = 0;
		return;
	}
	cr = sim_storage_parse_content_range(sim_http_header(rq, "Content-Range"), &rq->range_first,
					     &rq->range_last, &rq->range_total);
	if (sim_http_header(rq, "Content-Range") == NULL) {
		rq->range_first = -2;	/* the whole object in one PUT */
		rq->sink_limit = s->cfg.max_upload_bytes;
		if (sim_storage_open_sink(s, rq, rs, u, 1) == 0)
			u->received = 0, u->complete = 0;
		return;
	}
	if (cr < 0) {
		sim_resp_error(rs, 400, "400", "Malformed Content-Range");
		return;
	}
	if (cr == 1) {
		rq->sink_limit = 0;	/* status query: no body */
		return;
	}
	if (rq->range_first > u->received || rq->range_last >= s->cfg.max_upload_bytes ||
	    (u->total >= 0 && rq->range_total >= 0 && rq->range_total != u->total)) {
		if (rq->range_last >= s->cfg.max_upload_bytes)
			s->rejections[SIM_REJ_UPLOAD_SIZE]++;
		sim_resp_error(rs, rq->range_last >= s->cfg.max_upload_bytes ? 413 : 400, "400",
			       "Content-Range does not continue the upload (have %lld bytes)",
			       (long long)u->received);
		return;
	}
	rq->sink_limit = rq->range_last - rq->range_first + 1;
	rq->sink_off = rq->range_first;
	sim_storage_open_sink(s, rq, rs, u, 0);
}

static void sim_storage_object_json(struct sim_resp *rs, const struct sim_upload *u, int status)
{
	char size[32];

	snprintf(size, sizeof(size), "%lld", (long long)u->received);
	sim_resp_json(rs, status, json_pack("{s:s, s:s, s:s, s:s}", "kind", "storage#object", "name",
					    u->name, "bucket", "animate3d-sim", "size", size));
}

static void sim_storage_incomplete(struct sim_resp *rs, const struct sim_upload *u)
{
	sim_resp_json(rs, 308, json_object());
	if (u->received > 0)
		sim_resp_header(rs, "Range: bytes=0-%lld", (long long)u->received - 1);
}

static void sim_storage_put(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	struct sim_upload *u = s->uploads[rq->upload];

	if (rq->sink != SIM_SINK_FILE) {	/* status query */
		if (u->total < 0 && rq->range_total >= 0)
			u->total = rq->range_total;
		/* As on GCS, "bytes * /N" once all N bytes are in finalizes an upload whose size was
		 * not known when its last chunk went up. */
		if (u->total >= 0 && u->received >= u->total)
			u->complete = 1;
		if (u->complete)
			sim_storage_object_json(rs, u, 200);
		else
			sim_storage_incomplete(rs, u);
		return;
	}
	if (rq->range_first == -2) {
		u->received = rq->body_bytes;
		u->total = u->received;
		u->complete = 1;
		sim_storage_object_json(rs, u, 200);
		return;
	}
	if (rq->body_bytes != rq->range_last - rq->range_first + 1) {
		sim_resp_error(rs, 400, "400", "Body length does not match Content-Range");
		return;
	}
	if (rq->range_last + 1 > u->received)
		u->received = rq->range_last + 1;
	if (rq->range_total >= 0)
		u->total = rq->range_total;
	if (u->total >= 0 && u->received >= u->total) {
		u->complete = 1;
		sim_storage_object_json(rs, u, 200);
	} else {
		sim_storage_incomplete(rs, u);
	}
}

static void sim_storage_post(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	const char *start = sim_http_header(rq, "x-goog-resumable");
	struct sim_upload *u;
	int i, session;

	if ((i = sim_storage_resolve(s, rq, rs, &session)) < 0)
		return;
	u = s->uploads[i];
	if (start == NULL || strcasecmp(start, "start") != 0 || session) {
		sim_resp_error(rs, 400, "400", "POST needs x-goog-resumable: start on a signed URL");
		return;
	}
	if (!u->resumable) {
		sim_resp_error(rs, 400, "400", "This URL was issued for a single PUT (resumable=0)");
		return;
	}
	sim_ids_new(&s->id_rng, u->session_id, SIM_ID_LEN);
	u->has_session = 1;
	u->received = 0;
	u->total = -1;
	u->complete = 0;
	if (truncate(u->path, 0) != 0 && errno != ENOENT) {
		sim_resp_error(rs, 500, "500", "Storage truncate failed");
		return;
	}
	sim_resp_json(rs, 201, json_object());
	{
		const char *q = strchr(rq->path, '?');

		sim_resp_header(rs, "Location: %s%.*s?upload_id=%s", s->base_url,
				(int)(q ? (size_t)(q - rq->path) : strlen(rq->path)), rq->path, u->session_id);
	}
}

static void sim_storage_get(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	char kind, id[SIM_ID_LEN + 8];
	const char *rest, *ctype = NULL;
	int v = sim_storage_verify(s->url_key, sizeof(s->url_key), rq->path, rq->query, sim_now_wall());

	if (sim_storage_split(rq->path, &kind, id, sizeof(id), &rest) != 0) {
		sim_resp_error(rs, 404, "NoSuchKey", "The specified key does not exist");
		return;
	}
	if (v != 0) {
		sim_storage_sig_error(s, rs, v);
		return;
	}
	rs->body = evbuffer_new();
	if (kind == 'u') {
		int i = sim_storage_find_id(s, id), fd;

		if (i < 0 || !s->uploads[i]->complete ||
		    (fd = open(s->uploads[i]->path, O_RDONLY | O_CLOEXEC)) < 0) {
			sim_resp_error(rs, 404, "NoSuchKey", "The specified key does not exist");
			return;
		}
		/* sent by sim_http with sendfile from the file, never held in memory */
		rs->file_fd = fd;
		rs->file_len = s->uploads[i]->received;
		ctype = "application/octet-stream";
	} else if (sim_outputs_render(s, kind, id, rest, rs->body, &ctype) != 0) {
		sim_resp_error(rs, 404, "NoSuchKey", "The specified key does not exist");
		return;
	}
	rs->status = 200;
	sim_resp_header(rs, "Content-Type: %s", ctype);
}

void sim_storage_h_object(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	if (strcmp(rq->method, "PUT") == 0)
		sim_storage_put(s, rq, rs);
	else if (strcmp(rq->method, "POST") == 0)
		sim_storage_post(s, rq, rs);
	else
		sim_storage_get(s, rq, rs);
}

/* ---- API routes ---- */

void sim_storage_h_upload(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	char name[SIM_NAME_MAX], res[16], url[SIM_URL_MAX];
	int resumable = 1;

	if (sim_http_query(rq, "name", name, sizeof(name)) != 0 || name[0] == '\0') {
		sim_resp_error(rs, 400, "400", "Missing query parameter: name");
		return;
	}
	if (sim_http_query(rq, "resumable", res, sizeof(res)) == 0) {
		if (strcmp(res, "0") != 0 && strcmp(res, "1") != 0) {
			sim_resp_error(rs, 400, "400", "resumable must be 0 or 1");
			return;
		}
		resumable = res[0] == '1';
	}
	if (sim_storage_new_upload(s, rq->account, SIM_UP_VIDEO, name, resumable, url, sizeof(url)) < 0) {
		sim_resp_error(rs, 503, "503", "Upload table full");
		return;
	}
	sim_resp_json(rs, 200, json_pack("{s:s}", "url", url));
}

void sim_storage_h_videoinfo(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *body = sim_http_json_body(rq, rs);
	struct sim_mp4_info info;
	const char *url;
	int i, fd, rc;

	if (body == NULL)
		return;
	url = json_string_value(json_object_get(body, "url"));
	if (url == NULL) {
		sim_resp_error(rs, 400, "400", "Missing field: url");
		goto out;
	}
	if ((i = sim_storage_find_url(s, url, rq->account)) < 0 || !s->uploads[i]->complete) {
		sim_resp_error(rs, 404, "404", "Unknown or not uploaded url");
		goto out;
	}
	if ((fd = open(s->uploads[i]->path, O_RDONLY | O_CLOEXEC)) < 0) {
		sim_resp_error(rs, 404, "404", "Uploaded file is gone");
		goto out;
	}
	rc = sim_mp4_parse_fd(fd, &info);
	close(fd);
	if (rc != 0) {
		sim_resp_error(rs, 400, "400", "Unsupported video: not a readable MP4");
		goto out;
	}
	sim_resp_json(rs, 200, json_pack("{s:i, s:i, s:f, s:f, s:s, s:I}", "width", info.width,
					 "height", info.height, "fps", info.fps, "duration",
					 info.duration, "codec", info.codec, "size", (json_int_t)info.size));
out:
	json_decref(body);
}
