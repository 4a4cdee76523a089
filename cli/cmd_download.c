/*
 * cmd_download: download (Jobs.GetDownloadUrls, then each signed URL fetched with libcurl into the
 * output directory, a progress bar per file). A file is written as NAME.part and renamed when
 * complete, so an interrupted download never leaves a file that looks whole. Signed URLs carry
 * credentials in their query: they are never printed.
 */
#include "cli/a3d.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "cli/json.h"
#include "cli/progress.h"

#define DL_MAX_FILES 256		/* files of one rid downloaded (the sim makes a handful) */
#define DL_NAME_MAX 255			/* bytes of one file name */
#define DL_MAX_BYTES (16LL << 30)	/* one file larger than this is refused (CURLOPT_MAXFILESIZE) */
#define DL_CONNECT_MS 10000L		/* connection timeout of a fetch */
#define DL_STALL_S 60L			/* a fetch slower than 1 byte/s this long is abandoned */
#define DL_MAX_REDIRS 5L

#define DL_M_URLS "/animate3d.v1.Jobs/GetDownloadUrls"
#define DL_M_STATUS "/animate3d.v1.Jobs/GetStatus"

struct dl_fetch {
	int fd;
	uint64_t got;
	struct a3d_progress p;
	int werr;			/* errno of a failed write */
};

/* A file name is kept only if it is a plain one: no '/', no control characters, not . or .. */
static int dl_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > DL_NAME_MAX || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == '\\' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '%')
			return 0;
	return 1;
}

/* The local name of one output: the URL path's last segment when it is a plain name, else
 * GROUP.FORMAT with anything unusual replaced by '_'. */
static void dl_local_name(char *out, size_t len, const char *url, const char *group, const char *fmt)
{
	const char *q = url + strcspn(url, "?#"), *s = q;
	size_t i, n;

	while (s > url && s[-1] != '/')
		s--;
	if (strstr(url, "://") && s > strstr(url, "://") + 3 && dl_name_ok(s, (size_t)(q - s)) &&
	    (size_t)(q - s) < len) {
		memcpy(out, s, (size_t)(q - s));
		out[q - s] = '\0';
		return;
	}
	snprintf(out, len, "%s.%s", group && *group ? group : "output", fmt && *fmt ? fmt : "bin");
	for (i = 0, n = strlen(out); i < n; i++)
		if (out[i] == '/' || out[i] == '\\' || (unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '_';
	if (out[0] == '.')
		out[0] = '_';
}

/* mkdir -p: each missing component made 0755. -> 0 or -1 (errno). */
static int dl_mkdirs(const char *dir)
{
	char p[PATH_MAX];
	size_t i, n = strlen(dir);

	if (n == 0 || n >= sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		p[i] = i < n ? '/' : '\0';
	}
	return 0;
}

static size_t dl_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct dl_fetch *f = arg;
	size_t n = size * nmemb, off = 0;

	while (off < n) {
		ssize_t w = write(f->fd, data + off, n - off);

		if (w < 0 && errno == EINTR && !a3d_interrupted)
			continue;
		if (w < 0) {
			f->werr = errno;
			return 0;
		}
		off += (size_t)w;
	}
	f->got += n;
	return n;
}

static int dl_xfer(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct dl_fetch *f = arg;

	if (a3d_interrupted)
		return 1;	/* CURLE_ABORTED_BY_CALLBACK: Ctrl-C ends the transfer at once */
	if (dltotal > 0 && f->p.total != (uint64_t)dltotal)
		a3d_progress_total(&f->p, (uint64_t)dltotal);
	if (dlnow > 0)
		a3d_progress_update(&f->p, (uint64_t)dlnow);
	return 0;
}

/* Fetches url into dir/name (through dir/name.part). -> exit code; *bytes what was written. */
static int dl_fetch_one(const struct a3d_args *a, const char *url, const char *dir, const char *name,
			uint64_t *bytes)
{
	char path[PATH_MAX], part[PATH_MAX], errbuf[CURL_ERROR_SIZE];
	struct dl_fetch f;
	CURL *h = NULL;
	CURLcode cc;
	long http = 0;
	int rc = A3D_EXIT_LOCAL;

	memset(&f, 0, sizeof f);
	f.fd = -1;
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
	    snprintf(part, sizeof part, "%s/%s.part", dir, name) >= (int)sizeof part) {
		fprintf(stderr, "a3d: %s/%s: path too long\n", dir, name);
		return A3D_EXIT_LOCAL;
	}
	f.fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (f.fd < 0) {
		fprintf(stderr, "a3d: %s: %s\n", part, strerror(errno));
		return A3D_EXIT_LOCAL;
	}
	h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "a3d: curl_easy_init failed\n");
		goto out;
	}
	errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, DL_MAX_REDIRS);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, DL_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, DL_STALL_S);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)DL_MAX_BYTES);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "a3d/" A3D_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, dl_xfer);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &f);
	a3d_progress_begin(&f.p, stderr, a3d_progress_tty(a), name, 0);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	a3d_progress_update(&f.p, f.got);
	a3d_progress_end(&f.p, cc == CURLE_OK);
	if (cc == CURLE_ABORTED_BY_CALLBACK && a3d_interrupted) {
		fprintf(stderr, "a3d: %s: interrupted\n", name);
		rc = A3D_EXIT_INTERRUPTED;
		goto out;
	}
	if (cc != CURLE_OK) {
		/* errbuf names the host and the status, never the URL's query. */
		fprintf(stderr, "a3d: %s: download failed: %s%s%s (HTTP %ld)\n", name, curl_easy_strerror(cc),
			errbuf[0] ? ": " : "", errbuf, http);
		goto out;
	}
	if (f.werr || fsync(f.fd) < 0) {
		fprintf(stderr, "a3d: %s: %s\n", part, strerror(f.werr ? f.werr : errno));
		goto out;
	}
	if (close(f.fd) < 0) {
		f.fd = -1;
		fprintf(stderr, "a3d: %s: %s\n", part, strerror(errno));
		goto out;
	}
	f.fd = -1;
	if (rename(part, path) < 0) {
		fprintf(stderr, "a3d: %s: %s\n", path, strerror(errno));
		goto out;
	}
	*bytes = f.got;
	rc = A3D_EXIT_OK;
out:
	if (h)
		curl_easy_cleanup(h);
	if (f.fd >= 0)
		close(f.fd);
	if (rc != A3D_EXIT_OK)
		unlink(part);
	return rc;
}

/* A link without files: the job failed (exit 4, its error printed) or has not finished (exit 1). */
static int dl_no_files(const struct a3d_args *a, struct a3d_rpc *r, const char *rid)
{
	Animate3d__V1__GetStatusRequest req = ANIMATE3D__V1__GET_STATUS_REQUEST__INIT;
	Animate3d__V1__GetStatusResponse *resp = NULL;
	char *rids[1] = { (char *)rid };
	struct a3d_status st;
	int rc = A3D_EXIT_LOCAL;

	req.n_rids = 1;
	req.rids = rids;
	a3d_rpc_unary(r, DL_M_STATUS, &req.base, &animate3d__v1__get_status_response__descriptor,
		      (ProtobufCMessage **)&resp, &st);
	if (st.code != GRPC_STATUS_OK)
		return a3d_rpc_fail(a, "GetStatus", &st);
	if (resp->n_statuses == 1 && resp->statuses[0]->state == ANIMATE3D__V1__JOB_STATE__FAILURE) {
		const Animate3d__V1__JobStatus *s = resp->statuses[0];

		fprintf(stderr, "a3d: job %s failed: error %d: %s\n", rid, (int)s->error_code, s->error_message);
		rc = A3D_EXIT_JOB_FAILED;
	} else {
		fprintf(stderr, "a3d: job %s has no outputs yet (a3d watch %s)\n", rid, rid);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return rc;
}

int a3d_download_rid(const struct a3d_args *a, struct a3d_rpc *r, const char *rid, const char *dir_arg)
{
	char dir[PATH_MAX];
	size_t dlen;
	Animate3d__V1__GetDownloadUrlsRequest req = ANIMATE3D__V1__GET_DOWNLOAD_URLS_REQUEST__INIT;
	Animate3d__V1__GetDownloadUrlsResponse *resp = NULL;
	char *rids[1] = { (char *)rid };
	char (*names)[DL_NAME_MAX + 1] = NULL;
	struct a3d_status st;
	size_t nnames = 0, l, g, k, i;
	int rc = A3D_EXIT_LOCAL;

	/* "out/" and "out" name the same directory: the paths printed have one slash. */
	dlen = strlen(dir_arg);
	if (dlen == 0 || dlen >= sizeof dir) {
		fprintf(stderr, "a3d: bad output directory '%s'\n", dir_arg);
		return A3D_EXIT_LOCAL;
	}
	memcpy(dir, dir_arg, dlen + 1);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dir[--dlen] = '\0';
	req.n_rids = 1;
	req.rids = rids;
	a3d_rpc_unary(r, DL_M_URLS, &req.base, &animate3d__v1__get_download_urls_response__descriptor,
		      (ProtobufCMessage **)&resp, &st);
	if (st.code != GRPC_STATUS_OK)
		return a3d_rpc_fail(a, "GetDownloadUrls", &st);
	names = calloc(DL_MAX_FILES, sizeof *names);
	if (!names) {
		fprintf(stderr, "a3d: out of memory\n");
		goto out;
	}
	for (l = 0; l < resp->n_links; l++)
		for (g = 0; g < resp->links[l]->n_groups; g++)
			nnames += resp->links[l]->groups[g]->n_files;
	if (nnames == 0) {
		rc = dl_no_files(a, r, rid);
		goto out;
	}
	if (nnames > DL_MAX_FILES) {
		fprintf(stderr, "a3d: job %s has %zu files, more than the %d a3d fetches\n", rid, nnames,
			DL_MAX_FILES);
		goto out;
	}
	if (dl_mkdirs(dir) < 0) {
		fprintf(stderr, "a3d: %s: %s\n", dir, strerror(errno));
		goto out;
	}
	nnames = 0;
	rc = A3D_EXIT_OK;
	for (l = 0; l < resp->n_links && rc == A3D_EXIT_OK; l++) {
		for (g = 0; g < resp->links[l]->n_groups && rc == A3D_EXIT_OK; g++) {
			const Animate3d__V1__DownloadGroup *grp = resp->links[l]->groups[g];

			for (k = 0; k < grp->n_files && rc == A3D_EXIT_OK; k++) {
				const Animate3d__V1__DownloadFile *f = grp->files[k];
				char *name = names[nnames], tmp[DL_NAME_MAX + 1];
				uint64_t bytes = 0;

				dl_local_name(name, DL_NAME_MAX + 1, f->url, grp->name, f->format);
				/* Two groups may name their files alike: the later one gets its
				 * group's name in front. */
				for (i = 0; i < nnames; i++)
					if (strcmp(names[i], name) == 0)
						break;
				if (i < nnames) {
					snprintf(tmp, sizeof tmp, "%s", name);
					dl_local_name(name, DL_NAME_MAX + 1, "", grp->name, tmp);
				}
				nnames++;
				rc = dl_fetch_one(a, f->url, dir, name, &bytes);
				if (rc != A3D_EXIT_OK)
					break;
				if (a->g.json) {
					json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:I}", "rid", rid, "group", grp->name,
							      "format", f->format, "path",
							      json_sprintf("%s/%s", dir, name), "bytes", (json_int_t)bytes);

					a3d_json_print(stdout, j);
				} else {
					printf("%s/%s\n", dir, name);
					fflush(stdout);
				}
			}
		}
	}
out:
	free(names);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return rc;
}

static const struct a3d_opt dl_opts[] = {
	{ "out", 'o', 1, "-o, --out DIR      where the files go (default: the current directory; made if missing)" },
	{ NULL, 0, 0, NULL },
};

static int dl_cmd(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	struct a3d_rpc r;
	const char *dir = ".";
	int i, rc = A3D_EXIT_OK;

	for (i = 0; i < a->nopt; i++)
		dir = a->opt[i].val;
	if (a->npos < 1)
		return a3d_usage_error(cmd, "needs at least one RID");
	rc = a3d_connect(a, &r);
	if (rc)
		return rc;
	for (i = 0; i < a->npos && rc == A3D_EXIT_OK; i++)
		rc = a3d_download_rid(a, &r, a->pos[i], dir);
	a3d_rpc_close(&r);
	return rc;
}

const struct a3d_cmd a3d_cmd_download = {
	"download", "Download a finished job's output files (Jobs.GetDownloadUrls) with a progress bar.\n"
	"Prints each file's path. Exits 4 if the job failed, 1 if it has not finished.",
	"download RID... [-o DIR]", dl_opts, dl_cmd,
};
