/*
 * cmd_jobs: the job commands: upload (Jobs.UploadVideo, client streaming), start (StartJob, with
 * an idempotency key so retries never start a second job), watch (WatchStatus, server streaming),
 * run (upload + start + watch + download) and jobs (ListJobs).
 */
#include "cli/a3d.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "animate3d/v1/jobs.pb-c.h"
#include "cli/json.h"
#include "cli/progress.h"

#define JOBS_UPLOAD_CHUNK (1 << 20)	/* bytes per UploadVideo message by default */
#define JOBS_UPLOAD_CHUNK_MIN (16 << 10)	/* --chunk-bytes range: the gateway takes messages of */
#define JOBS_UPLOAD_CHUNK_MAX ((4 << 20) - (4 << 10))	/* 4 MiB by default, framing included */
#define JOBS_MAX_FORMATS 7		/* Params.formats limit (jobs.proto) */
#define JOBS_MAX_PARAMS 32		/* StartJobRequest.extra_params limit (jobs.proto) */
#define JOBS_FORMATS_MAX_BYTES 256	/* --formats text accepted */
#define JOBS_IDEM_BYTES 16		/* random bytes of a StartJob idempotency key */

#define JOBS_M_UPLOAD "/animate3d.v1.Jobs/UploadVideo"
#define JOBS_M_START "/animate3d.v1.Jobs/StartJob"
#define JOBS_M_WATCH "/animate3d.v1.Jobs/WatchStatus"
#define JOBS_M_LIST "/animate3d.v1.Jobs/ListJobs"

/* The start options, shared by start and run (same indexes in both tables). */
enum { O_FORMATS, O_MODEL, O_PARAM, O_NAME, O_WAIT, O_OUT };

#define JOBS_START_OPTS                                                                    \
	[O_FORMATS] = { "formats", 0, 1, "--formats LIST     output formats, comma-separated: bvh,fbx,glb,mp4,png,jpg,dmpe" }, \
	[O_MODEL] = { "model", 0, 1, "--model ID         the character model (a3d models lists them)" }, \
	[O_PARAM] = { "param", 0, 1, "--param KEY=VALUE  an upstream parameter passed through (repeatable, up to 32)" }, \
	[O_NAME] = { "name", 0, 1, "--name NAME        the uploaded file's name (default: FILE's base name)" }

/* ---- upload ---- */

#define JOBS_CHUNK_HDR_MAX 11		/* UploadVideoRequest.chunk's tag + a 10-byte varint length */

/* Writes the encoding of an UploadVideoRequest carrying only chunk (field 3) of n bytes, less
 * the bytes themselves, so that it ends just before end; returns its length. The file is read
 * straight into the message after it: no second copy of every byte into a packed message. */
static size_t jobs_chunk_header(uint8_t *end, size_t n)
{
	uint8_t v[JOBS_CHUNK_HDR_MAX - 1];
	size_t k = 0;

	do {
		v[k++] = (uint8_t)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
		n >>= 7;
	} while (n);
	memcpy(end - k, v, k);
	end[-(ptrdiff_t)k - 1] = 0x1a;
	return k + 1;
}

/* Uploads path through UploadVideo in messages of chunk bytes. On success *url is the signed URL
 * (malloc'd). -> exit code. */
static int jobs_upload(const struct a3d_args *a, struct a3d_rpc *r, const char *path,
		       const char *name, size_t chunk, char **url, uint64_t *size)
{
	Animate3d__V1__UploadVideoRequest first = ANIMATE3D__V1__UPLOAD_VIDEO_REQUEST__INIT;
	Animate3d__V1__UploadVideoResponse *resp = NULL;
	struct a3d_status st;
	struct stat sb;
	const char *base;
	int fd = -1, rc = A3D_EXIT_LOCAL, attempt = 0;

	*url = NULL;
	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!name)
		name = base;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		fprintf(stderr, "a3d: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "a3d: %s: not a regular file\n", path);
		goto out;
	}
	first.name = (char *)name;
	first.size = (uint64_t)sb.st_size;
	for (;;) {
		struct a3d_progress p;
		struct a3d_call c;
		uint64_t sent = 0;
		int got = 0, local = 0;

		if (lseek(fd, 0, SEEK_SET) < 0) {
			fprintf(stderr, "a3d: %s: %s\n", path, strerror(errno));
			goto out;
		}
		a3d_progress_begin(&p, stderr, a3d_progress_tty(a), name, first.size);
		if (a3d_call_start(r, &c, JOBS_M_UPLOAD, 0) == 0 && a3d_call_send(&c, &first.base, 0) == 0) {
			for (;;) {
				/* A fresh slice per message: gRPC may hold the last one after sending. */
				grpc_slice s = grpc_slice_malloc(JOBS_CHUNK_HDR_MAX + chunk);
				uint8_t *data = GRPC_SLICE_START_PTR(s) + JOBS_CHUNK_HDR_MAX;
				ssize_t n;
				size_t h;

				do
					n = read(fd, data, chunk);
				while (n < 0 && errno == EINTR && !a3d_interrupted);
				if (n <= 0)
					grpc_slice_unref(s);
				if (n < 0) {
					local = errno;
					a3d_call_cancel(&c, "a3d: local read error");
					break;
				}
				if (n == 0) {
					if (a3d_call_close_send(&c) == 0)
						got = a3d_call_recv(&c, &animate3d__v1__upload_video_response__descriptor,
								    (ProtobufCMessage **)&resp);
					break;
				}
				h = jobs_chunk_header(data, (size_t)n);
				if (a3d_call_send_slice(&c, grpc_slice_sub_no_ref(s, JOBS_CHUNK_HDR_MAX - h,
										   JOBS_CHUNK_HDR_MAX + (size_t)n)) < 0)
					break;
				sent += (uint64_t)n;
				a3d_progress_update(&p, sent);
			}
		}
		a3d_call_finish(&c, &st);
		a3d_progress_end(&p, st.code == GRPC_STATUS_OK && got == 1);
		if (local) {
			fprintf(stderr, "a3d: %s: %s\n", path, strerror(local));
			goto out;
		}
		if (st.code == GRPC_STATUS_OK && got == 1)
			break;
		if (resp)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
		if (st.code == GRPC_STATUS_OK) {
			st.code = GRPC_STATUS_INTERNAL;
			snprintf(st.details, sizeof st.details, "UploadVideo: OK without a reply");
		}
		if (!a3d_rpc_retry_wait(r, &st, ++attempt)) {
			rc = a3d_rpc_fail(a, "UploadVideo", &st);
			goto out;
		}
	}
	*url = strdup(resp->url);
	if (size)
		*size = resp->size;
	rc = *url ? A3D_EXIT_OK : A3D_EXIT_LOCAL;
	if (a->g.json && *url)
		a3d_json_print(stdout, a3d_json_from_message(&resp->base));
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (fd >= 0)
		close(fd);
	return rc;
}

enum { O_UP_NAME, O_UP_CHUNK };

static const struct a3d_opt jobs_upload_opts[] = {
	[O_UP_NAME] = { "name", 0, 1, "--name NAME        the file name the gateway sees (default: FILE's base name)" },
	[O_UP_CHUNK] = { "chunk-bytes", 0, 1, "--chunk-bytes N    bytes per message, 16384..4190208 (default 1048576)" },
	{ NULL, 0, 0, NULL },
};

static int jobs_cmd_upload(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	struct a3d_rpc r;
	const char *name = NULL;
	char *url = NULL, *end;
	size_t chunk = JOBS_UPLOAD_CHUNK;
	int i, rc;

	for (i = 0; i < a->nopt; i++) {
		if (a->opt[i].idx == O_UP_NAME) {
			name = a->opt[i].val;
			continue;
		}
		errno = 0;
		chunk = (size_t)strtoul(a->opt[i].val, &end, 10);
		if (errno || *end || !*a->opt[i].val || chunk < JOBS_UPLOAD_CHUNK_MIN ||
		    chunk > JOBS_UPLOAD_CHUNK_MAX)
			return a3d_usage_error(cmd, "--chunk-bytes must be %d..%d, not '%s'",
					       JOBS_UPLOAD_CHUNK_MIN, JOBS_UPLOAD_CHUNK_MAX, a->opt[i].val);
	}
	if (a->npos != 1)
		return a3d_usage_error(cmd, "needs exactly one FILE");
	rc = a3d_connect(a, &r);
	if (rc)
		return rc;
	rc = jobs_upload(a, &r, a->pos[0], name, chunk, &url, NULL);
	if (rc == A3D_EXIT_OK && !a->g.json)
		printf("%s\n", url);
	free(url);
	a3d_rpc_close(&r);
	return rc;
}

const struct a3d_cmd a3d_cmd_upload = {
	"upload", "Upload a video through the gateway (Jobs.UploadVideo); prints its upload URL.",
	"upload FILE [--name NAME] [--chunk-bytes N]", jobs_upload_opts, jobs_cmd_upload,
};

/* ---- watch ---- */

struct jobs_watch {
	size_t n;
	const char *rid[A3D_MAX_ARGS];
	int state[A3D_MAX_ARGS];
	int error_code[A3D_MAX_ARGS];
	char *error_message[A3D_MAX_ARGS];
};

static const char *jobs_state_name(int s)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&animate3d__v1__job_state__descriptor, s);

	return v ? v->name : "UNKNOWN";
}

static const char *jobs_error_name(int code)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&animate3d__v1__job_error__descriptor, code);

	return v ? v->name : "JOB_ERROR_UNKNOWN";
}

/* One status line: "RID  PROGRESS  step 3/10", "RID  PROGRESS  queued, position 2", ... */
static void jobs_print_status(FILE *f, const Animate3d__V1__JobStatus *s)
{
	fprintf(f, "%s  %s", s->rid, jobs_state_name(s->state));
	if (s->state == ANIMATE3D__V1__JOB_STATE__FAILURE)
		fprintf(f, "  error %d %s: %s", (int)s->error_code, jobs_error_name(s->error_code),
			s->error_message);
	else if (s->position_in_queue > 0)
		fprintf(f, "  queued, position %" PRId64, s->position_in_queue);
	else if (s->total > 0)
		fprintf(f, "  step %" PRId64 "/%" PRId64, s->step, s->total);
	fputc('\n', f);
	fflush(f);
}

static int jobs_final(int state)
{
	return state == ANIMATE3D__V1__JOB_STATE__SUCCESS || state == ANIMATE3D__V1__JOB_STATE__FAILURE;
}

/* Follows w's rids with WatchStatus until every one is final. Status lines go to out (JSON lines
 * on stdout with --json and json_lines). -> exit code: 0 all SUCCESS, 4 one FAILURE, 3 RPC. */
static int jobs_watch(const struct a3d_args *a, struct a3d_rpc *r, struct jobs_watch *w, FILE *out,
		      int json_lines)
{
	Animate3d__V1__WatchStatusRequest req = ANIMATE3D__V1__WATCH_STATUS_REQUEST__INIT;
	char *rids[A3D_MAX_ARGS];
	struct a3d_status st;
	size_t i, left;
	int attempt = 0, rc = A3D_EXIT_OK;

	for (;;) {
		struct a3d_call c;
		Animate3d__V1__JobStatus *s = NULL;

		req.n_rids = 0;
		for (i = 0; i < w->n; i++)
			if (!jobs_final(w->state[i]))
				rids[req.n_rids++] = (char *)w->rid[i];
		if (req.n_rids == 0)
			break;
		req.rids = rids;
		if (a3d_call_start(r, &c, JOBS_M_WATCH, 0) == 0 && a3d_call_send(&c, &req.base, 1) == 0) {
			while (a3d_call_recv(&c, &animate3d__v1__job_status__descriptor, (ProtobufCMessage **)&s) == 1) {
				attempt = 0;
				for (i = 0; i < w->n; i++) {
					if (strcmp(w->rid[i], s->rid) != 0)
						continue;
					w->state[i] = s->state;
					w->error_code[i] = s->error_code;
					free(w->error_message[i]);
					w->error_message[i] = strdup(s->error_message);
				}
				if (json_lines)
					a3d_json_print(stdout, a3d_json_from_message(&s->base));
				else
					jobs_print_status(out, s);
				protobuf_c_message_free_unpacked(&s->base, NULL);
				s = NULL;
			}
		}
		a3d_call_finish(&c, &st);
		for (left = 0, i = 0; i < w->n; i++)
			left += !jobs_final(w->state[i]);
		if (st.code == GRPC_STATUS_OK && left == 0)
			break;
		if (st.code == GRPC_STATUS_OK) {
			/* The stream ended before every job did (a draining gateway): watch again. */
			st.code = GRPC_STATUS_UNAVAILABLE;
			snprintf(st.details, sizeof st.details, "the stream ended before the jobs did");
		}
		if (!a3d_rpc_retry_wait(r, &st, ++attempt))
			return a3d_rpc_fail(a, "WatchStatus", &st);
	}
	for (i = 0; i < w->n; i++) {
		if (w->state[i] != ANIMATE3D__V1__JOB_STATE__FAILURE)
			continue;
		fprintf(stderr, "a3d: job %s failed: error %d %s: %s\n", w->rid[i], w->error_code[i],
			jobs_error_name(w->error_code[i]), w->error_message[i] ? w->error_message[i] : "");
		rc = A3D_EXIT_JOB_FAILED;
	}
	return rc;
}

static void jobs_watch_free(struct jobs_watch *w)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		free(w->error_message[i]);
}

static int jobs_cmd_watch(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	struct jobs_watch w;
	struct a3d_rpc r;
	int i, rc;

	if (a->npos < 1)
		return a3d_usage_error(cmd, "needs at least one RID");
	memset(&w, 0, sizeof w);
	for (i = 0; i < a->npos; i++)
		w.rid[w.n++] = a->pos[i];
	rc = a3d_connect(a, &r);
	if (rc)
		return rc;
	rc = jobs_watch(a, &r, &w, stdout, a->g.json);
	jobs_watch_free(&w);
	a3d_rpc_close(&r);
	return rc;
}

static const struct a3d_opt jobs_no_opts[] = { { NULL, 0, 0, NULL } };

const struct a3d_cmd a3d_cmd_watch = {
	"watch", "Follow jobs live (Jobs.WatchStatus): state, step/total, queue position, until each ends.\n"
	"Exits 4 when a job fails, printing its error code and message.",
	"watch RID...", jobs_no_opts, jobs_cmd_watch,
};

/* ---- start ---- */

struct jobs_start {
	const char *formats;
	const char *model;
	const char *name;
	const char *params[JOBS_MAX_PARAMS];
	size_t nparams;
	int wait;
	const char *out;
};

/* Reads the start options of a (tables share the O_* indexes). -> 0 or a usage exit code. */
static int jobs_start_opts(const struct a3d_cmd *cmd, const struct a3d_args *a, struct jobs_start *s)
{
	int i;

	memset(s, 0, sizeof *s);
	for (i = 0; i < a->nopt; i++) {
		const char *v = a->opt[i].val;

		switch (a->opt[i].idx) {
		case O_FORMATS: s->formats = v; break;
		case O_MODEL: s->model = v; break;
		case O_NAME: s->name = v; break;
		case O_WAIT: s->wait = 1; break;
		case O_OUT: s->out = v; break;
		case O_PARAM:
			if (!strchr(v, '=') || v[0] == '=')
				return a3d_usage_error(cmd, "--param wants KEY=VALUE, not '%s'", v);
			if (s->nparams >= JOBS_MAX_PARAMS)
				return a3d_usage_error(cmd, "more than %d --param", JOBS_MAX_PARAMS);
			s->params[s->nparams++] = v;
			break;
		default: break;
		}
	}
	if (s->formats && strlen(s->formats) >= JOBS_FORMATS_MAX_BYTES)
		return a3d_usage_error(cmd, "--formats is longer than %d bytes", JOBS_FORMATS_MAX_BYTES);
	return 0;
}

/* "a3d-" and 32 hex digits from getrandom: the same key on every retry of one start. */
static int jobs_idem_key(char *out, size_t len)
{
	unsigned char b[JOBS_IDEM_BYTES];
	size_t i;

	if (len < 5 + 2 * sizeof b || getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		return -1;
	snprintf(out, len, "a3d-");
	for (i = 0; i < sizeof b; i++)
		snprintf(out + 4 + 2 * i, 3, "%02x", b[i]);
	return 0;
}

/* StartJob of upload_url with s's options. On success *rid (malloc'd). -> exit code. */
static int jobs_start(const struct a3d_cmd *cmd, const struct a3d_args *a, struct a3d_rpc *r,
		      const struct jobs_start *s, const char *upload_url, char **rid)
{
	Animate3d__V1__StartJobRequest req = ANIMATE3D__V1__START_JOB_REQUEST__INIT;
	Animate3d__V1__Params params = ANIMATE3D__V1__PARAMS__INIT;
	Animate3d__V1__StartJobResponse *resp = NULL;
	char fmtbuf[JOBS_FORMATS_MAX_BYTES], idem[64], *formats[JOBS_MAX_FORMATS], *save = NULL, *tok;
	struct a3d_status st;
	int rc = A3D_EXIT_LOCAL;

	*rid = NULL;
	if (s->formats) {
		snprintf(fmtbuf, sizeof fmtbuf, "%s", s->formats);
		for (tok = strtok_r(fmtbuf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (params.n_formats >= JOBS_MAX_FORMATS)
				return a3d_usage_error(cmd, "--formats names more than %d formats", JOBS_MAX_FORMATS);
			formats[params.n_formats++] = tok;
		}
		params.formats = formats;
	}
	params.model_id = (char *)(s->model ? s->model : "");
	req.source_case = ANIMATE3D__V1__START_JOB_REQUEST__SOURCE_UPLOAD_URL;
	req.upload_url = (char *)upload_url;
	req.params = &params;
	req.n_extra_params = s->nparams;
	req.extra_params = (char **)s->params;
	if (jobs_idem_key(idem, sizeof idem) < 0) {
		fprintf(stderr, "a3d: no random bytes for the idempotency key: %s\n", strerror(errno));
		return A3D_EXIT_LOCAL;
	}
	req.idempotency_key = idem;
	a3d_rpc_unary(r, JOBS_M_START, &req.base, &animate3d__v1__start_job_response__descriptor,
		      (ProtobufCMessage **)&resp, &st);
	if (st.code != GRPC_STATUS_OK)
		return a3d_rpc_fail(a, "StartJob", &st);
	*rid = strdup(resp->rid);
	if (*rid)
		rc = A3D_EXIT_OK;
	if (a->g.json)
		a3d_json_print(stdout, a3d_json_from_message(&resp->base));
	else
		printf("%s\n", resp->rid);
	fflush(stdout);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return rc;
}

static int jobs_is_url(const char *s)
{
	return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* start and run: upload unless given a URL, start, then watch (--wait, run) and download (run). */
static int jobs_start_run(const struct a3d_cmd *cmd, struct a3d_args *a, int run)
{
	struct jobs_start s;
	struct jobs_watch w;
	struct a3d_rpc r;
	char *url = NULL, *rid = NULL;
	int rc;

	rc = jobs_start_opts(cmd, a, &s);
	if (rc)
		return rc;
	if (a->npos != 1)
		return a3d_usage_error(cmd, run ? "needs exactly one FILE" : "needs exactly one FILE or URL");
	if (run && !s.out)
		return a3d_usage_error(cmd, "needs -o DIR");
	if (run && jobs_is_url(a->pos[0]))
		return a3d_usage_error(cmd, "takes a FILE (for a URL: a3d start URL --wait, then a3d download)");
	rc = a3d_connect(a, &r);
	if (rc)
		return rc;
	memset(&w, 0, sizeof w);
	if (jobs_is_url(a->pos[0])) {
		url = strdup(a->pos[0]);
		rc = url ? A3D_EXIT_OK : A3D_EXIT_LOCAL;
	} else {
		rc = jobs_upload(a, &r, a->pos[0], s.name, JOBS_UPLOAD_CHUNK, &url, NULL);
	}
	if (rc == A3D_EXIT_OK)
		rc = jobs_start(cmd, a, &r, &s, url, &rid);
	if (rc == A3D_EXIT_OK && (s.wait || run)) {
		w.rid[w.n++] = rid;
		/* stdout carries the rid and the files: the status lines go to stderr, or as JSON
		 * lines to stdout. */
		rc = jobs_watch(a, &r, &w, stderr, a->g.json);
	}
	if (rc == A3D_EXIT_OK && run)
		rc = a3d_download_rid(a, &r, rid, s.out);
	jobs_watch_free(&w);
	free(url);
	free(rid);
	a3d_rpc_close(&r);
	return rc;
}

static const struct a3d_opt jobs_start_opt_table[] = {
	JOBS_START_OPTS,
	[O_WAIT] = { "wait", 0, 0, "--wait             follow the job to its end (exit 4 if it fails)" },
	{ NULL, 0, 0, NULL },
};

static int jobs_cmd_start(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	return jobs_start_run(cmd, a, 0);
}

const struct a3d_cmd a3d_cmd_start = {
	"start", "Start a job on a video: FILE is uploaded first, a URL (from a3d upload) is used as is.\n"
	"Prints the job's rid; with --wait also follows it to its end.",
	"start FILE|URL [--formats bvh,fbx] [--model ID] [--param KEY=VALUE]... [--wait]",
	jobs_start_opt_table, jobs_cmd_start,
};

static const struct a3d_opt jobs_run_opt_table[] = {
	JOBS_START_OPTS,
	[O_WAIT] = { "wait", 0, 0, "--wait             (implied)" },
	[O_OUT] = { "out", 'o', 1, "-o, --out DIR      where the output files go (made if missing)" },
	{ NULL, 0, 0, NULL },
};

static int jobs_cmd_run(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	return jobs_start_run(cmd, a, 1);
}

const struct a3d_cmd a3d_cmd_run = {
	"run", "All in one go: upload FILE, start a job, follow it, download its outputs into DIR.",
	"run FILE -o DIR [--formats bvh,fbx] [--model ID] [--param KEY=VALUE]...",
	jobs_run_opt_table, jobs_cmd_run,
};

/* ---- jobs ---- */

static const struct a3d_opt jobs_list_opts[] = {
	{ "state", 0, 1, "--state STATE      only jobs in STATE (repeatable): PROGRESS SUCCESS RETRY FAILURE STARTING" },
	{ NULL, 0, 0, NULL },
};

static int jobs_cmd_jobs(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	Animate3d__V1__ListJobsRequest req = ANIMATE3D__V1__LIST_JOBS_REQUEST__INIT;
	Animate3d__V1__ListJobsResponse *resp = NULL;
	Animate3d__V1__JobState states[A3D_MAX_ARGS];
	struct a3d_status st;
	struct a3d_rpc r;
	size_t i;
	int k, rc;

	for (k = 0; k < a->nopt; k++) {
		const ProtobufCEnumValue *v =
			protobuf_c_enum_descriptor_get_value_by_name(&animate3d__v1__job_state__descriptor,
								     a->opt[k].val);

		if (!v || v->value == 0)
			return a3d_usage_error(cmd, "unknown --state '%s'", a->opt[k].val);
		states[req.n_states++] = (Animate3d__V1__JobState)v->value;
	}
	req.states = states;
	if (a->npos != 0)
		return a3d_usage_error(cmd, "takes no operands");
	rc = a3d_connect(a, &r);
	if (rc)
		return rc;
	a3d_rpc_unary(&r, JOBS_M_LIST, &req.base, &animate3d__v1__list_jobs_response__descriptor,
		      (ProtobufCMessage **)&resp, &st);
	if (st.code != GRPC_STATUS_OK) {
		rc = a3d_rpc_fail(a, "ListJobs", &st);
		goto out;
	}
	if (a->g.json) {
		a3d_json_print(stdout, a3d_json_from_message(&resp->base));
	} else {
		for (i = 0; i < resp->n_jobs; i++) {
			const Animate3d__V1__JobSummary *j = resp->jobs[i];
			char size[32];

			a3d_fmt_bytes(size, sizeof size, (uint64_t)(j->file_size > 0 ? j->file_size : 0));
			printf("%s  %-8s  %s  %s\n", j->rid, jobs_state_name(j->state), j->file_name, size);
		}
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
out:
	a3d_rpc_close(&r);
	return rc;
}

const struct a3d_cmd a3d_cmd_jobs = {
	"jobs", "List your team's jobs (Jobs.ListJobs): rid, state, file name, size.",
	"jobs [--state STATE]...", jobs_list_opts, jobs_cmd_jobs,
};
