/*
 * sim_jobs: the job engine and the job routes (/process, /status, /download, /list, account
 * balances, /pesave/getUrls).
 *
 * A job's state is a pure function of the time since it started (sim_jobs_view): the first
 * SIM_JOBS_QUEUE_SHARE of --job-seconds it is queued (PROGRESS, step 0, positionInQueue > 0),
 * then PROGRESS with step advancing 0..99 of total 100, optionally RETRY for a while (retry hook),
 * then the outcome fixed by sim_jobs_update(): SUCCESS, or FAILURE (fail hook, or 101 when the
 * account lacks credits). sim_jobs_update() also charges credits and triggers webhooks; the cron
 * and every job route call it first.
 *
 * Multi-person (v2.0): a pipeline=mp_detection run finds persons (persons-<n> hook, default 2);
 * its rid then comes back in /process as rid_mp_detection with models=[{trackingId, modelId}]
 * naming some of them, and the same job runs again in mode 1, animating those persons.
 */
#ifndef A3D_SIM_JOBS_H
#define A3D_SIM_JOBS_H

#include <jansson.h>

#include "sim.h"

struct sim_req;
struct sim_resp;

#define SIM_JOBS_QUEUE_SHARE 0.2
#define SIM_JOBS_RETRY_FROM 0.5		/* retry hook: RETRY during [0.5, 0.65) of the run */
#define SIM_JOBS_RETRY_TO 0.65
#define SIM_JOBS_TOTAL 100
#define SIM_JOBS_QUEUE_START 3		/* positionInQueue when a job is created */
#define SIM_JOBS_MAX_RIDS 100		/* rids in one /status or /download path */
#define SIM_JOBS_DEFAULT_DURATION 3.0	/* seconds, when the upload is not a readable MP4 */
#define SIM_JOBS_DEFAULT_FPS 30.0	/* when the upload is not a readable MP4 */
#define SIM_JOBS_DEFAULT_PERSONS 2	/* mp_detection without a persons-<n> hook */
#define SIM_JOBS_MAX_PERSONS SIM_PARAMS_MAX_MODELS	/* v2.0: "up to 16" persons per job */

struct sim_job_view {
	const char *status;	/* "PROGRESS" "RETRY" "SUCCESS" "FAILURE" */
	int step, total, queue_pos;	/* PROGRESS; queue_pos 0 once running */
	int code;		/* RETRY/FAILURE */
};

void sim_jobs_view(const struct sim_job *j, double now, struct sim_job_view *v);

/* File name hooks: fail-<code>, retry-<code>, persons-<n>; fields stay 0 when absent. */
void sim_jobs_hooks(const char *file_name, int *fail_code, int *retry_code, int *persons);

/* What /list calls a job in view v: "STARTING" while queued, else v->status. */
const char *sim_jobs_list_status(const struct sim_job_view *v);

/* Minutes balance of credits in hundredths, floored (credits / 60 to two decimals). */
long long sim_jobs_minutes_cents(double credits);

/* Documented text of a job error code ("Failed to detect character in the video"). */
const char *sim_jobs_error_text(int code);

/* The persons job j animates: mode 0 one, tracking id 1 ("001") with params.model; mode 1 the
 * params.models entries; a detection run none. sim_jobs_tracked gives person i's (0-based)
 * tracking id and model id (NULL: the default character). */
int sim_jobs_n_tracked(const struct sim_job *j);
void sim_jobs_tracked(const struct sim_job *j, int i, int *tracking_id, const char **model_id);

/* Adds v2.0's "mode" and "models" ([{trackingId, modelId, faceDataType, handDataType}]) of a
 * finished job to o, its /download link or /list entry. */
void sim_jobs_add_mode(const struct sim_job *j, json_t *o);

/* Job rid, of account (-1: any account); NULL when unknown. */
struct sim_job *sim_jobs_find(struct sim *s, const char *rid, int account);

void sim_jobs_update(struct sim *s, double now);
void sim_jobs_free(struct sim *s);

void sim_jobs_h_process(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_jobs_h_status(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_jobs_h_download(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_jobs_h_list(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_jobs_h_credits(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_jobs_h_minutes(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_jobs_h_pesave(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

#endif
