/*
 * sim: the one server struct of animate3d-sim, the Animate 3D REST API simulator.
 *
 * Everything mutable lives in struct sim and is reached through it; the modules take it as their
 * first argument. One libevent loop owns it: there are no threads and no locks. Tables are fixed
 * arrays of pointers bounded by the SIM_MAX_* limits below; a full table rejects the request and
 * bumps the matching counter in sim->rejections.
 */
#ifndef A3D_SIM_H
#define A3D_SIM_H

#include <limits.h>
#include <stdint.h>
#include <stddef.h>

#include "sim_params.h"

#define SIM_ID_LEN 22			/* rids, model ids, endpoint ids, upload ids */
#define SIM_MAX_ACCOUNTS 16
#define SIM_MAX_SESSIONS 1024
#define SIM_MAX_JOBS 16384
#define SIM_MAX_MODELS 256		/* custom models, all accounts together */
#define SIM_MAX_ENDPOINTS 64		/* webhook endpoints, all accounts together */
#define SIM_MAX_DELIVERIES 256		/* webhook deliveries in flight or waiting for a retry */
#define SIM_MAX_UPLOADS 16384		/* issued upload URLs (videos, models, thumbs) */
#define SIM_MAX_FAULTS 16
#define SIM_MAX_CONNS 512
#define SIM_MAX_ROUTES 40		/* route templates counted in stats */
#define SIM_NAME_MAX 200		/* file, model and account names */
#define SIM_URL_MAX 1024		/* any URL the sim issues or stores */
#define SIM_CLIENT_ID_MAX 64
#define SIM_SECRET_MAX 128

/* Why a request or an object was refused; rendered under "rejections" in /_sim/stats. */
enum sim_reject {
	SIM_REJ_CONNS, SIM_REJ_HEADER_SIZE, SIM_REJ_BODY_SIZE, SIM_REJ_UPLOAD_SIZE, SIM_REJ_SESSIONS,
	SIM_REJ_JOBS, SIM_REJ_MODELS, SIM_REJ_ENDPOINTS, SIM_REJ_DELIVERIES, SIM_REJ_UPLOADS,
	SIM_REJ_FAULTS, SIM_REJ_AUTH, SIM_REJ_SIGNATURE, SIM_REJ_PARAMS, SIM_REJ_CREDITS,
	SIM_REJ_COUNT
};

struct sim_config {
	char listen_host[64];
	int listen_port;		/* 0 picks a free port */
	double session_ttl;		/* seconds */
	double job_seconds;		/* how long a job runs */
	double url_ttl;			/* signed URL lifetime, seconds */
	char storage_dir[PATH_MAX];
	int storage_is_temp;		/* created by us: removed at exit */
	int64_t max_upload_bytes;
	double credits;			/* starting credits per account */
	uint64_t seed;
	int lenient_auth;		/* --lenient-auth: Basic accepted on every API route, not only
					 * on /session/auth (for debugging clients) */
};

struct sim_account {
	char id[SIM_CLIENT_ID_MAX];
	char secret[SIM_SECRET_MAX];
	double credits;
	uint64_t requests[SIM_MAX_ROUTES];	/* per route, see sim_http_route_name() */
};

struct sim_session {
	char value[SIM_ID_LEN * 2 + 1];		/* base58, cookie-safe */
	int account;
	double expires;				/* wall clock, seconds */
};

/* PESAVE: a write URL handed out by /pesave/getUrls (one per job and tracked person). */
enum sim_upload_kind { SIM_UP_VIDEO, SIM_UP_MODEL, SIM_UP_THUMB, SIM_UP_PESAVE };

struct sim_upload {
	char id[SIM_ID_LEN + 1];
	char name[SIM_NAME_MAX];
	int account;
	enum sim_upload_kind kind;
	int resumable;
	int complete;			/* all bytes are on disk */
	int has_session;		/* resumable: POST x-goog-resumable: start happened */
	char session_id[SIM_ID_LEN + 1];
	int64_t received;		/* bytes 0..received-1 are on disk */
	int64_t total;			/* declared total, -1 while unknown */
	char path[PATH_MAX];		/* file under the storage dir */
};

enum sim_job_final { SIM_JOB_RUNNING, SIM_JOB_SUCCEEDED, SIM_JOB_FAILED };

struct sim_job {
	char rid[SIM_ID_LEN + 1];
	int account;
	int upload;			/* index into sim->uploads, -1 for none */
	char file_name[SIM_NAME_MAX];
	char input_url[SIM_URL_MAX];	/* the url /process was given */
	int64_t file_size;
	double duration;		/* seconds of input video (fileDuration, link duration) */
	double processed;		/* seconds processed: the trim=from,to part of the video;
					 * what a job costs and how long its BVH runs */
	double fps;			/* of the input video (30 when it is not a readable MP4) */
	double t_start;			/* monotonic seconds */
	double t_len;			/* run time, seconds */
	int64_t ctime_ms, mtime_ms;	/* wall clock */
	int mode;			/* v2.0 "mode": 0 single person, 1 multi person (a detection
					 * run, or persons animated with models=[...]) */
	int mp_detection;		/* this run is pipeline=mp_detection (cleared when the rid comes
					 * back as rid_mp_detection) */
	int find_persons;		/* persons a detection run of this video finds (persons-<n>) */
	int detected;			/* persons a finished detection found: 0 before; the rid then
					 * serves the cdsave and thumbnail_character_NNN.png */
	int pesave[SIM_PARAMS_MAX_MODELS];	/* upload of each tracked person's pesave, -1 none */
	int fail_code;			/* hook: ends FAILURE with it, 0 none */
	int retry_code;			/* hook: RETRY midway, 0 none */
	int queue_pos;			/* positionInQueue at start */
	struct sim_params params;
	enum sim_job_final final;
	int final_code;			/* FAILURE code */
	double cost;			/* credits charged */
};

struct sim_model {
	char id[SIM_ID_LEN + 1];
	char name[SIM_NAME_MAX];
	int account;			/* -1 for stock models */
	char platform[16];
	char rig_id[32];
	int has_thumb;
	int upload;			/* model file upload, -1 none */
	int thumb_upload;		/* uploaded thumb, -1 none */
	int64_t ctime_ms, mtime_ms;
};

struct sim_endpoint {
	char id[SIM_ID_LEN + 1];
	int account;
	char url[SIM_URL_MAX];
	int job_completed;		/* subscribed to job.completed */
	char events[4][32];
	int n_events;
};

struct sim_fault {
	char route[96];			/* "GET /status/{rids}" or "*" */
	int status;			/* 0: latency only */
	double rate;			/* 0..1 */
	int latency_ms;
	int retry_after;		/* seconds, 0 none */
	int count;			/* remaining hits, -1 unlimited */
	int hits;
	enum { SIM_FAULT_STATUS, SIM_FAULT_RESET, SIM_FAULT_GARBAGE } mode;
};

struct sim_delivery;
struct sim_conn;
struct sim_reqlog;
struct event_base;
struct event;
struct evconnlistener;

struct sim {
	struct sim_config cfg;
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *cron;		/* housekeeping: job completion, session expiry */
	struct event *sig_term, *sig_int;
	int port;			/* the bound port */
	char base_url[96];		/* http://127.0.0.1:PORT */
	uint64_t rng;			/* fault PRNG, seeded by --seed (reproducible fault runs) */
	uint64_t id_rng;		/* ids and session values: random per process, so a restarted
					 * sim never accepts an old cookie or reuses an old rid */
	unsigned char url_key[32];	/* HMAC key of signed URLs, per process */
	uint64_t upload_seq;

	struct sim_account accounts[SIM_MAX_ACCOUNTS];
	int n_accounts;
	struct sim_session *sessions[SIM_MAX_SESSIONS];
	struct sim_upload *uploads[SIM_MAX_UPLOADS];
	int n_uploads;
	struct sim_job *jobs[SIM_MAX_JOBS];
	int n_jobs;
	struct sim_model *models[SIM_MAX_MODELS];	/* stock first, then custom */
	struct sim_endpoint *endpoints[SIM_MAX_ENDPOINTS];
	struct sim_delivery *deliveries[SIM_MAX_DELIVERIES];
	struct sim_fault faults[SIM_MAX_FAULTS];
	int n_faults;
	struct sim_conn *conns[SIM_MAX_CONNS];
	struct sim_reqlog *reqlog;	/* the last requests, for GET /_sim/requests */

	uint64_t requests[SIM_MAX_ROUTES];
	uint64_t rejections[SIM_REJ_COUNT];
	uint64_t deliveries_ok, deliveries_failed;
	uint64_t jobs_created;
	/* API requests (not /_sim, not storage) between their headers and their answer: how
	 * many now, and the most at once since start or the last stats reset (/_sim/stats
	 * "inflight"), so tests can check the callers' concurrency caps. */
	int api_inflight, api_inflight_max;
};

/* Sets up the loop, storage, stock models, listener, cron and signals from s->cfg (accounts are
 * added before). 0, or -1 after printing why; sim_free() is safe either way. */
int sim_init(struct sim *s);
void sim_free(struct sim *s);

/* Time: monotonic for durations and timers, wall clock for ctime/mtime and cookies. */
double sim_now_mono(void);
double sim_now_wall(void);

/* Name of a rejection counter, for /_sim/stats. */
const char *sim_reject_name(enum sim_reject r);

#endif
