/* sim_jobs: job engine, params checks at /process time, job routes. */
#include "sim_jobs.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sim_http.h"
#include "sim_ids.h"
#include "sim_models.h"
#include "sim_mp4.h"
#include "sim_outputs.h"
#include "sim_storage.h"
#include "sim_webhooks.h"

static const struct { int code; const char *text; } sim_jobs_errors[] = {
	{ 101, "Not enough credits" },
	{ 201, "Error downloading the video or DM asset" },
	{ 202, "Error converting the video" },
	{ 503, "Error processing the parameters" },
	{ 504, "Error loading the character assets" },
	{ 505, "Physics Filter is incompatible with the custom characters" },
	{ 506, "Error creating the pose estimation" },
	{ 507, "Error while processing the body tracking" },
	{ 508, "Input video or image doesn't meet the requirements to generate animations of good quality" },
	{ 509, "Error loading the configurations" },
	{ 510, "Error open internal files" },
	{ 511, "Processing interrupted" },
	{ 513, "Failed to detect character in the video" },
	{ 599, "Body tracking timeout" },
	{ 701, "Error processing the face tracking" },
	{ 799, "Face tracking timeout" },
	{ 901, "Error loading the mesh of the custom character" },
	{ 902, "Error loading the BVH custom character" },
	{ 903, "Error copying animations onto the custom character" },
	{ 904, "Error exporting animations for the custom character" },
	{ 905, "Custom character doesn't include skinned mesh information" },
	{ 906, "More than half of the required blendshapes are missing" },
	{ 907, "Error loading facial definition for the custom character" },
	{ 908, "Error loading facial tracking data" },
	{ 909, "Error loading the metadata of the custom character" },
	{ 999, "Animation baking timeout" },
	{ 1301, "Error creating the hand estimation" },
	{ 1302, "Error creating the hand estimation" },
	{ 1303, "Error creating the hand estimation" },
	{ 1304, "Error opening the video" },
	{ 1305, "Error parsing video path" },
	{ 1306, "Error loading internal files" },
	{ 1307, "Error processing hand tracking" },
	{ 1308, "Error processing the video" },
	{ 1399, "Hand tracking timeout" },
};

const char *sim_jobs_error_text(int code)
{
	for (size_t i = 0; i < sizeof(sim_jobs_errors) / sizeof(sim_jobs_errors[0]); i++)
		if (sim_jobs_errors[i].code == code)
			return sim_jobs_errors[i].text;
	return "Unknown error";
}

void sim_jobs_view(const struct sim_job *j, double now, struct sim_job_view *v)
{
	double e = now - j->t_start, T = j->t_len > 0 ? j->t_len : 0.001;
	double q = SIM_JOBS_QUEUE_SHARE * T;

	memset(v, 0, sizeof(*v));
	v->total = SIM_JOBS_TOTAL;
	if (j->final == SIM_JOB_SUCCEEDED) {
		v->status = "SUCCESS";
		return;
	}
	if (j->final == SIM_JOB_FAILED) {
		v->status = "FAILURE";
		v->code = j->final_code;
		return;
	}
	v->status = "PROGRESS";
	if (e < q) {
		int pos = (int)ceil(j->queue_pos * (1.0 - (e < 0 ? 0 : e) / q));

		v->queue_pos = pos < 1 ? 1 : pos;
		return;
	}
	if (j->retry_code != 0 && e >= SIM_JOBS_RETRY_FROM * T && e < SIM_JOBS_RETRY_TO * T) {
		v->status = "RETRY";
		v->code = j->retry_code;
		return;
	}
	v->step = e >= T ? SIM_JOBS_TOTAL : (int)floor((e - q) / (T - q) * SIM_JOBS_TOTAL);
}

/* "<tag>-<digits>" anywhere in name → the number; 0 when absent. */
static int sim_jobs_hook(const char *name, const char *tag)
{
	size_t tl = strlen(tag);

	for (const char *p = strstr(name, tag); p != NULL; p = strstr(p + 1, tag))
		if (p[tl] >= '0' && p[tl] <= '9') {
			long v = strtol(p + tl, NULL, 10);

			return v >= 0 && v < 100000 ? (int)v : -1;
		}
	return -1;
}

/* persons is -1 when the name carries no persons- hook (the caller picks the default). */
void sim_jobs_hooks(const char *file_name, int *fail_code, int *retry_code, int *persons)
{
	*fail_code = sim_jobs_hook(file_name, "fail-");
	*retry_code = sim_jobs_hook(file_name, "retry-");
	*persons = sim_jobs_hook(file_name, "persons-");
	if (*fail_code < 0)
		*fail_code = 0;
	if (*retry_code < 0)
		*retry_code = 0;
	if (*persons > SIM_JOBS_MAX_PERSONS)
		*persons = SIM_JOBS_MAX_PERSONS;
}

struct sim_job *sim_jobs_find(struct sim *s, const char *rid, int account)
{
	for (int i = 0; i < s->n_jobs; i++)
		if (strcmp(s->jobs[i]->rid, rid) == 0 && (account < 0 || s->jobs[i]->account == account))
			return s->jobs[i];
	return NULL;
}

static void sim_jobs_finish(struct sim *s, struct sim_job *j)
{
	struct sim_account *a = &s->accounts[j->account];
	double cost = ceil(j->processed);

	j->mtime_ms = (int64_t)(sim_now_wall() * 1000);
	if (j->fail_code != 0) {
		j->final = SIM_JOB_FAILED;
		j->final_code = j->fail_code;
	} else if (a->credits < cost) {
		s->rejections[SIM_REJ_CREDITS]++;
		j->final = SIM_JOB_FAILED;
		j->final_code = 101;
	} else {
		a->credits -= cost;
		j->cost = cost;
		j->final = SIM_JOB_SUCCEEDED;
		if (j->mp_detection)
			j->detected = j->find_persons;
	}
	sim_webhooks_job_done(s, j);
}

void sim_jobs_update(struct sim *s, double now)
{
	for (int i = 0; i < s->n_jobs; i++) {
		struct sim_job *j = s->jobs[i];

		if (j->final == SIM_JOB_RUNNING && now >= j->t_start + j->t_len)
			sim_jobs_finish(s, j);
	}
}

void sim_jobs_free(struct sim *s)
{
	for (int i = 0; i < s->n_jobs; i++) {
		free(s->jobs[i]);
		s->jobs[i] = NULL;
	}
	s->n_jobs = 0;
}

/* The input video's length (what /list and /download report) and the part a trim=from,to keeps
 * (what the job processes and charges for). */
static void sim_jobs_measure(struct sim_job *j, const struct sim_upload *u, const struct sim_params *p)
{
	struct sim_mp4_info info;
	int fd = u != NULL ? open(u->path, O_RDONLY | O_CLOEXEC) : -1;

	j->duration = SIM_JOBS_DEFAULT_DURATION;
	j->fps = SIM_JOBS_DEFAULT_FPS;
	if (fd >= 0) {
		if (sim_mp4_parse_fd(fd, &info) == 0 && info.duration > 0) {
			j->duration = info.duration;
			if (info.fps > 0)
				j->fps = info.fps;
		}
		close(fd);
	}
	j->processed = j->duration;
	if (p->has_trim) {
		double to = p->trim_to < j->duration ? p->trim_to : j->duration;

		if (to - p->trim_from > 0)
			j->processed = to - p->trim_from;
	}
}

static void sim_jobs_param_error(struct sim *s, struct sim_resp *rs, const char *which)
{
	s->rejections[SIM_REJ_PARAMS]++;
	sim_resp_error(rs, 400, "503", "Error processing the parameters: %s", which);
}

static void sim_jobs_start(struct sim *s, struct sim_job *j)
{
	/* a run makes new pose estimations: the pesave URLs of an earlier run are gone */
	for (int i = 0; i < SIM_JOBS_MAX_PERSONS; i++)
		j->pesave[i] = -1;
	j->t_start = sim_now_mono();
	j->t_len = s->cfg.job_seconds;
	j->queue_pos = SIM_JOBS_QUEUE_START;
	j->final = SIM_JOB_RUNNING;
	j->final_code = 0;
	j->mtime_ms = (int64_t)(sim_now_wall() * 1000);
}

int sim_jobs_n_tracked(const struct sim_job *j)
{
	if (j->mp_detection)
		return 0;
	return j->mode == 1 ? j->params.n_models : 1;
}

void sim_jobs_tracked(const struct sim_job *j, int i, int *tracking_id, const char **model_id)
{
	const char *m = NULL;

	*tracking_id = 1;
	if (j->mode == 1 && i >= 0 && i < j->params.n_models) {
		*tracking_id = j->params.models[i].tracking_id;
		m = j->params.models[i].model_id;
	} else if (j->params.model[0] != '\0') {
		m = j->params.model;
	}
	if (model_id != NULL)
		*model_id = m;
}

void sim_jobs_add_mode(const struct sim_job *j, json_t *o)
{
	json_t *models = json_array();

	for (int i = 0; i < sim_jobs_n_tracked(j); i++) {
		const char *mid;
		char tid[16];
		int t;

		sim_jobs_tracked(j, i, &t, &mid);
		snprintf(tid, sizeof(tid), "%03d", t);
		json_array_append_new(models, json_pack("{s:s, s:o, s:i, s:i}", "trackingId", tid,
			"modelId", mid != NULL ? json_string(mid) : json_null(),
			"faceDataType", j->params.track_face, "handDataType", j->params.track_hand));
	}
	json_object_set_new(o, "mode", json_integer(j->mode));
	json_object_set_new(o, "models", models);
}

/* Every models[] entry names a person the detection found (1..detected). */
static int sim_jobs_models_detected(const struct sim_params *p, int detected)
{
	for (int i = 0; i < p->n_models; i++)
		if (p->models[i].tracking_id > detected)
			return 0;
	return 1;
}

/* v2.0 Phase 2: /process with rid_mp_detection runs the detection's own job again, in mode 1,
 * for the persons models[] names; "the returned rid [...] will be the same". */
static void sim_jobs_process_detected(struct sim *s, struct sim_req *rq, struct sim_resp *rs,
				      const char *rid_mp, const struct sim_params *p)
{
	struct sim_job *j = sim_jobs_find(s, rid_mp, rq->account);

	if (j == NULL) {
		sim_resp_error(rs, 404, "404", "Unknown rid_mp_detection: %s", rid_mp);
		return;
	}
	if (j->detected == 0 || j->final == SIM_JOB_RUNNING || p->mp_detection) {
		sim_resp_error(rs, 400, "400", "rid_mp_detection must be a finished mp_detection job");
		return;
	}
	if (p->n_models == 0 || !sim_jobs_models_detected(p, j->detected)) {
		/* models is what phase 2 is for, and only detected persons can be tracked */
		sim_jobs_param_error(s, rs, "models");
		return;
	}
	j->mode = 1;
	j->mp_detection = 0;
	j->params = *p;
	sim_jobs_measure(j, j->upload >= 0 ? s->uploads[j->upload] : NULL, p);
	sim_jobs_start(s, j);
	sim_resp_json(rs, 200, json_pack("{s:s}", "rid", j->rid));
}

void sim_jobs_h_process(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	json_t *body = sim_http_json_body(rq, rs);
	const char *url, *rid, *rid_mp, *proc;
	struct sim_params p;
	struct sim_job *j = NULL, *src = NULL;
	char bad[128];
	int up = -1;

	if (body == NULL)
		return;
	url = json_string_value(json_object_get(body, "url"));
	rid = json_string_value(json_object_get(body, "rid"));
	rid_mp = json_string_value(json_object_get(body, "rid_mp_detection"));
	proc = json_string_value(json_object_get(body, "processor"));
	if ((url != NULL) + (rid != NULL) + (rid_mp != NULL) != 1) {
		sim_resp_error(rs, 400, "400", "Exactly one of url, rid or rid_mp_detection is required");
		goto out;
	}
	if (json_object_get(body, "processor") != NULL && (proc == NULL || strcmp(proc, "video2anim") != 0)) {
		sim_jobs_param_error(s, rs, "processor");
		goto out;
	}
	if (sim_params_parse(json_object_get(body, "params"), &p, bad, sizeof(bad)) != 0) {
		sim_jobs_param_error(s, rs, bad);
		goto out;
	}
	if (p.model[0] != '\0' && sim_models_find(s, p.model, rq->account) == NULL) {
		sim_jobs_param_error(s, rs, "model");
		goto out;
	}
	for (int i = 0; i < p.n_models; i++)
		if (sim_models_find(s, p.models[i].model_id, rq->account) == NULL) {
			sim_jobs_param_error(s, rs, "models");
			goto out;
		}
	if (rid_mp != NULL) {
		sim_jobs_process_detected(s, rq, rs, rid_mp, &p);
		goto out;
	}
	if (url != NULL) {
		up = sim_storage_find_url(s, url, rq->account);
		if (up < 0 || !s->uploads[up]->complete || s->uploads[up]->kind != SIM_UP_VIDEO) {
			sim_resp_error(rs, 404, "404", "Unknown or not uploaded url");
			goto out;
		}
	} else {
		src = sim_jobs_find(s, rid, rq->account);
		if (src == NULL) {
			sim_resp_error(rs, 404, "404", "Unknown rid: %s", rid);
			goto out;
		}
		if (src->final == SIM_JOB_RUNNING) {
			sim_resp_error(rs, 400, "400", "rid %s has not finished", rid);
			goto out;
		}
		up = src->upload;
	}
	/* models name detected persons: only a rerun of a job whose detection finished has any */
	if (p.n_models > 0 && (src == NULL || p.mp_detection || !sim_jobs_models_detected(&p, src->detected) ||
			       src->detected == 0)) {
		sim_jobs_param_error(s, rs, "models");
		goto out;
	}
	if (s->n_jobs == SIM_MAX_JOBS || (j = calloc(1, sizeof(*j))) == NULL) {
		s->rejections[SIM_REJ_JOBS]++;
		sim_resp_error(rs, 503, "503", "Job table full");
		goto out;
	}
	sim_ids_new(&s->id_rng, j->rid, SIM_ID_LEN);
	j->account = rq->account;
	j->upload = up;
	j->params = p;
	j->ctime_ms = (int64_t)(sim_now_wall() * 1000);
	if (src != NULL) {
		snprintf(j->file_name, sizeof(j->file_name), "%s", src->file_name);
		snprintf(j->input_url, sizeof(j->input_url), "%s", src->input_url);
	} else {
		snprintf(j->file_name, sizeof(j->file_name), "%s", s->uploads[up]->name);
		snprintf(j->input_url, sizeof(j->input_url), "%s", url);
	}
	j->file_size = up >= 0 ? s->uploads[up]->received : 0;
	sim_jobs_measure(j, up >= 0 ? s->uploads[up] : NULL, &p);
	sim_jobs_hooks(j->file_name, &j->fail_code, &j->retry_code, &j->find_persons);
	if (j->find_persons < 0)
		j->find_persons = SIM_JOBS_DEFAULT_PERSONS;
	j->mp_detection = p.mp_detection;
	if (p.mp_detection) {
		j->mode = 1;
	} else if (src != NULL && src->detected > 0 && (p.n_models > 0 || (src->mode == 1 && !src->mp_detection))) {
		/* "Rerun will be the same as before": a rerun of a multi-person job stays one, with
		 * the same persons unless new models are given */
		j->mode = 1;
		j->detected = src->detected;
		if (p.n_models == 0) {
			memcpy(j->params.models, src->params.models, sizeof(j->params.models));
			j->params.n_models = src->params.n_models;
		}
	}
	/* Nobody to track: the job fails the way the API reports it. */
	if (j->find_persons == 0 && j->fail_code == 0)
		j->fail_code = 513;
	sim_jobs_start(s, j);
	s->jobs[s->n_jobs++] = j;
	s->jobs_created++;
	sim_resp_json(rs, 200, json_pack("{s:s}", "rid", j->rid));
out:
	json_decref(body);
}

/* Splits the {rids} argument and calls fn for each known job; 404 when none is known. */
static void sim_jobs_each(struct sim *s, struct sim_req *rq, struct sim_resp *rs, const char *key,
			  json_t *(*fn)(struct sim *, const struct sim_job *))
{
	char buf[sizeof(rq->arg)], *save = NULL, *tok;
	json_t *arr = json_array();
	int n = 0;

	sim_jobs_update(s, sim_now_mono());
	memcpy(buf, rq->arg, sizeof(buf));
	for (tok = strtok_r(buf, ",", &save); tok != NULL && n < SIM_JOBS_MAX_RIDS;
	     tok = strtok_r(NULL, ",", &save), n++) {
		const struct sim_job *j = sim_jobs_find(s, tok, rq->account);

		if (j != NULL)
			json_array_append_new(arr, fn(s, j));
	}
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		sim_resp_error(rs, 404, "404", "No job found for the given rid(s)");
		return;
	}
	sim_resp_json(rs, 200, json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(arr), key, arr));
}

static json_t *sim_jobs_status_json(struct sim *s, const struct sim_job *j)
{
	struct sim_job_view v;
	json_t *d, *el;

	sim_jobs_view(j, sim_now_mono(), &v);
	if (strcmp(v.status, "PROGRESS") == 0) {
		d = json_pack("{s:i, s:i}", "step", v.step, "total", v.total);
	} else if (strcmp(v.status, "SUCCESS") == 0) {
		char out[SIM_NAME_MAX + 16];

		if (j->mp_detection)
			snprintf(out, sizeof(out), "characters_detection_result.cdsave");
		else
			snprintf(out, sizeof(out), "%s.bvh", j->rid);
		/* Lower-case "in": the v1.5.8 document's spelling and what the SDKs read. */
		d = json_pack("{s:s, s:s}", "in", j->file_name, "out", out);
	} else {
		char msg[256];

		snprintf(msg, sizeof(msg), "Error %d: %s", v.code, sim_jobs_error_text(v.code));
		d = json_pack("{s:s, s:s}", "exc_message", msg, "exc_type",
			      v.code == 101 ? "CreditError" : "ProcessingError");
	}
	el = json_pack("{s:s, s:s, s:o}", "rid", j->rid, "status", v.status, "details", d);
	/* Public clients (the JS SDK) read the queue position beside "details", not inside it. */
	if (el && v.queue_pos > 0)
		json_object_set_new(el, "positionInQueue", json_integer(v.queue_pos));
	return el;
}

void sim_jobs_h_status(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	sim_jobs_each(s, rq, rs, "status", sim_jobs_status_json);
}

void sim_jobs_h_download(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	sim_jobs_each(s, rq, rs, "links", sim_outputs_link);
}

/* The statuses /list knows (v1.5.8 API 6). STARTING is a queued job: /status shows it as
 * PROGRESS with positionInQueue, /list as STARTING. */
static const char *const sim_jobs_list_statuses[] = {
	"STARTING", "PROGRESS", "SUCCESS", "RETRY", "FAILURE",
};
#define SIM_JOBS_N_LIST_STATUSES 5

const char *sim_jobs_list_status(const struct sim_job_view *v)
{
	return strcmp(v->status, "PROGRESS") == 0 && v->queue_pos > 0 ? "STARTING" : v->status;
}

void sim_jobs_h_list(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	int want[SIM_JOBS_N_LIST_STATUSES] = { 1, 1, 1, 1, 1 };
	double now = sim_now_mono();
	json_t *list;

	sim_jobs_update(s, now);
	if (rq->arg[0] != '\0') {
		char buf[sizeof(rq->arg)], *save = NULL, *tok;

		memset(want, 0, sizeof(want));
		memcpy(buf, rq->arg, sizeof(buf));
		for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
			int k;

			for (k = 0; k < SIM_JOBS_N_LIST_STATUSES && strcmp(tok, sim_jobs_list_statuses[k]) != 0; k++)
				;
			if (k == SIM_JOBS_N_LIST_STATUSES) {
				sim_resp_error(rs, 400, "400", "Unknown status: %s", tok);
				return;
			}
			want[k] = 1;
		}
	}
	list = json_array();
	for (int i = 0; i < s->n_jobs; i++) {
		const struct sim_job *j = s->jobs[i];
		struct sim_job_view v;
		const char *st;
		json_t *e;
		int k;

		if (j->account != rq->account)
			continue;
		sim_jobs_view(j, now, &v);
		st = sim_jobs_list_status(&v);
		for (k = 0; k < SIM_JOBS_N_LIST_STATUSES && strcmp(st, sim_jobs_list_statuses[k]) != 0; k++)
			;
		if (k == SIM_JOBS_N_LIST_STATUSES || !want[k])
			continue;
		e = json_pack("{s:s, s:s, s:I, s:f, s:s, s:I, s:I}", "rid", j->rid, "fileName",
			      j->file_name, "fileSize", (json_int_t)j->file_size, "fileDuration",
			      j->duration, "status", st, "ctime", (json_int_t)j->ctime_ms, "mtime",
			      (json_int_t)j->mtime_ms);
		/* v2.0: "For a successful job, [...] download and list api response will contain two
		 * additional fields" */
		if (e != NULL && j->final == SIM_JOB_SUCCEEDED)
			sim_jobs_add_mode(j, e);
		json_array_append_new(list, e);
	}
	sim_resp_json(rs, 200, json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(list),
					 "list", list));
}

void sim_jobs_h_credits(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	sim_jobs_update(s, sim_now_mono());
	sim_resp_json(rs, 200, json_pack("{s:f}", "credits", s->accounts[rq->account].credits));
}

long long sim_jobs_minutes_cents(double credits)
{
	/* The epsilon keeps exact products (credits 0.6 -> 1 cent) from flooring one cent low. */
	double c = floor(credits * 100.0 / 60.0 + 1e-9);

	return c > 0 ? (long long)c : 0;
}

void sim_jobs_h_minutes(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	long long c;

	sim_jobs_update(s, sim_now_mono());
	c = sim_jobs_minutes_cents(s->accounts[rq->account].credits);
	sim_resp_json_text(rs, 200, "{\"minutes\":%lld.%02lld}", c / 100, c % 100);
}

/* v2.0 PeSave API 1: one entry per tracked person, "001" for a single-person job. The write URL
 * is a signed storage URL taking one PUT (the modified pose estimation); once something was put
 * there, the read URL is a signed GET of it, null before. */
void sim_jobs_h_pesave(struct sim *s, struct sim_req *rq, struct sim_resp *rs)
{
	struct sim_job *j;
	json_t *arr;

	sim_jobs_update(s, sim_now_mono());
	j = sim_jobs_find(s, rq->arg, rq->account);
	if (j == NULL) {
		sim_resp_error(rs, 404, "404", "Unknown rid: %s", rq->arg);
		return;
	}
	if (j->final != SIM_JOB_SUCCEEDED || j->mp_detection) {
		sim_resp_error(rs, 400, "400", "rid %s has no pose estimation: not a finished animation job",
			       rq->arg);
		return;
	}
	arr = json_array();
	for (int i = 0; i < sim_jobs_n_tracked(j); i++) {
		char name[SIM_NAME_MAX], tid[16], url[SIM_URL_MAX];
		const struct sim_upload *u;
		int t;

		sim_jobs_tracked(j, i, &t, NULL);
		snprintf(tid, sizeof(tid), "%03d", t);
		if (j->pesave[i] < 0) {
			snprintf(name, sizeof(name), "%s_%s.pesave", j->rid, tid);
			j->pesave[i] = sim_storage_new_upload(s, j->account, SIM_UP_PESAVE, name, 0, url,
							      sizeof(url));
		}
		if (j->pesave[i] < 0 || sim_storage_upload_url(s, j->pesave[i], url, sizeof(url)) != 0) {
			json_decref(arr);
			sim_resp_error(rs, 503, "503", "Upload table full");
			return;
		}
		u = s->uploads[j->pesave[i]];
		json_array_append_new(arr, json_pack("{s:s, s:o, s:s}", "trackingId", tid,
			"modifiedVersionReadUrl", u->complete ? json_string(url) : json_null(),
			"modifiedVersionWriteUrl", url));
	}
	sim_resp_json(rs, 200, arr);
}
