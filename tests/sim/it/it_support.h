/*
 * it_support: what the simulator's HTTP integration tests share. A small libcurl client that
 * keeps status, headers and the parsed JSON body; field-by-field JSON assertions; session,
 * upload and job helpers; extra simulator instances with other flags; a webhook receiver
 * (evhttp on 127.0.0.1:0 in its own thread).
 *
 * Every helper asserts (Criterion) on what it needs and aborts the test otherwise, so callers
 * only check what they test. Every wait is bounded (JOB_WAIT_S, HOOK_WAIT_S, SIM_START_S,
 * HTTP_TIMEOUT_MS). The code under test is never linked: base64, URL encoding and MP4 facts
 * are the test's own.
 */
#ifndef A3D_IT_SUPPORT_H
#define A3D_IT_SUPPORT_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifndef A3D_SOURCE_DIR
#define A3D_SOURCE_DIR "."
#endif

#define FIXTURE_MP4     A3D_SOURCE_DIR "/tests/sim/fixtures/tiny.mp4"
/* What tiny.mp4 holds, read from its boxes (mvhd/tkhd/stsd/stts) independently of the sim. */
#define FIXTURE_WIDTH    64
#define FIXTURE_HEIGHT   48
#define FIXTURE_FPS      10.0   /* 20 samples of 1024 ticks at timescale 10240 */
#define FIXTURE_DURATION 2.0    /* mvhd 2000 / 1000 */
#define FIXTURE_SIZE     2091

#define HTTP_BODY_MAX     (8u << 20)  /* responses larger than this fail the transfer */
#define HTTP_HDR_MAX      (64u << 10)
#define HTTP_TIMEOUT_MS   15000L
#define URL_MAX           4096
#define COOKIE_MAX        512
#define RID_MAX           64
#define JOB_WAIT_S        30.0        /* --job-seconds 1; generous for a queue of earlier jobs */
#define POLL_INTERVAL_MS  100
#define HOOK_BODY_MAX     4096
#define HOOK_WAIT_S       20.0
#define HOOK_KEEP_MAX     64          /* deliveries a receiver remembers */
#define SIM_START_S       10
#define SIM_STOP_S        5
#define SIM_ARGS_MAX      16

#define IT_NUM JSON_REAL   /* it_field(): "a number", integer or real */

struct event_base;
struct evhttp;

/* One HTTP exchange. Owned by the caller: it_resp_free(). */
struct it_resp {
	long status;
	CURLcode cc;
	char *body;
	size_t len;
	char *hdr;        /* raw header lines of the last response (after any 100 Continue) */
	size_t hlen;
	json_t *json;     /* parsed body, NULL if the body is not JSON */
	double secs;
};

/* What it_wait_done() saw while polling. first_* are owned: it_seen_free(). */
struct it_seen {
	int progress, retry, queued;
	double last_step;            /* PROGRESS step of the previous poll */
	int step_back;               /* polls where step went down */
	json_t *first_progress;      /* details of the first PROGRESS seen (owned) */
	json_t *first_retry;         /* details of the first RETRY seen (owned) */
};

/* An extra simulator process (it_sim_spawn / it_sim_stop). */
struct it_sim {
	pid_t pid;
	int out_fd;           /* kept open so the sim never gets SIGPIPE on stdout */
	char base[128];
};

/* One request the webhook receiver got. */
struct it_hook_delivery {
	char body[HOOK_BODY_MAX];
	char sig[256];
	bool post;
	int status;           /* what the receiver answered */
	double at;            /* monotonic seconds */
};

/* A webhook receiver; mu guards everything below it. */
struct it_hook_rx {
	struct event_base *base;
	struct evhttp *http;
	pthread_t th;
	int port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fail_first;       /* answer 500 to this many requests first */
	int hits;             /* every request received */
	struct it_hook_delivery got[HOOK_KEEP_MAX];
	int kept;             /* entries used in got[] */
	long dropped;         /* requests not kept: got[] full or body over HOOK_BODY_MAX */
};

/* --- utilities */
double it_now(void);                                    /* monotonic seconds */
void it_sleep_ms(long ms);
const char *it_base(void);                              /* A3D_SIM_URL, asserted set */
char *it_read_file(const char *path, size_t *len);      /* malloc'd, NUL-terminated */
bool it_is_id(const char *s);                           /* 22-char base58 */

/* --- HTTP. hdrs is NULL-terminated (may be NULL); body NULL sends none, else blen bytes.
 * Never asserts on the transfer: callers check r->cc and r->status. */
struct it_resp *it_http(const char *method, const char *url, const char *const *hdrs,
			const void *body, size_t blen);
void it_resp_free(struct it_resp *r);                   /* NULL is fine */
size_t it_resp_body_cb(char *p, size_t sz, size_t n, void *ud);   /* CURLOPT_WRITEFUNCTION */
/* Copies the value of the nth (0-based) header called name (any case); false if absent. */
bool it_hdr(const struct it_resp *r, const char *name, int nth, char *out, size_t outsz);
/* base + path, with Cookie: dmsess=<cookie> if cookie, and a JSON body if json_body. */
struct it_resp *it_api_at(const char *base, const char *method, const char *path,
			  const char *cookie, const char *json_body);
struct it_resp *it_api(const char *method, const char *path, const char *cookie, const char *body);

/* --- assertions on responses */
/* status, JSON object body with string "message" and "error", JSON Content-Type. */
void it_expect_error(const struct it_resp *r, long status, const char *what);
void it_expect_json_ct(const struct it_resp *r, const char *what);
/* Asserts 200 + JSON object (and expects the JSON Content-Type); returns it, owned by r. */
json_t *it_ok_json(const struct it_resp *r, const char *what);
/* Asserts o[key] exists with type t (IT_NUM: any number; JSON_TRUE: any boolean). Borrowed. */
json_t *it_field(json_t *o, const char *key, json_type t, const char *what);
/* Signed storage URL: on 127.0.0.1, GOOG4 query fields, X-Goog-Date now (UTC). */
void it_check_signed_url(const char *u, const char *what);

/* --- session */
void it_basic_header(const char *creds, char *out, size_t sz);   /* "Authorization: Basic ..." */
void it_login_at(const char *base, const char *id, const char *secret, char *cookie, size_t sz);
void it_login(char *cookie, size_t sz);                 /* demo account on it_base() */

/* --- uploads and jobs (params: a JSON array text or NULL) */
void it_urlencode(const char *in, char *out, size_t sz);
void it_upload_at(const char *base, const char *cookie, const char *name, const void *data,
		  size_t len, char *url, size_t usz);  /* resumable=0 + one PUT; url gets the signed URL */
void it_upload_fixture_at(const char *base, const char *cookie, const char *name, char *url,
			  size_t usz);
void it_process_at(const char *base, const char *cookie, const char *body, char *rid, size_t rsz);
void it_new_job_at(const char *base, const char *cookie, const char *name, const char *params,
		   char *rid, size_t rsz);
void it_new_job(const char *cookie, const char *name, const char *params, char *rid, size_t rsz);
/* The /status entry of rid (new reference), NULL if left out. */
json_t *it_status_at(const char *base, const char *cookie, const char *rid);
/* Polls every POLL_INTERVAL_MS until SUCCESS/FAILURE, at most JOB_WAIT_S; returns the entry
 * (new reference). sn may be NULL. */
json_t *it_wait_done_at(const char *base, const char *cookie, const char *rid, struct it_seen *sn);
json_t *it_wait_done(const char *cookie, const char *rid, struct it_seen *sn);
void it_seen_free(struct it_seen *sn);
/* The /download url group (urls[] entry) called name, or NULL. Borrowed. */
json_t *it_find_group(json_t *urls, const char *name);
/* POST /videoInfo {url}; returns the object, owned by *out. */
json_t *it_video_info(const char *cookie, const char *url, struct it_resp **out);

/* --- extra simulator instances: A3D_BUILD_DIR/animate3d-sim --listen 127.0.0.1:0 extra...
 * The child dies with the test process (PR_SET_PDEATHSIG) if the test aborts. */
void it_sim_spawn(struct it_sim *sp, const char *const *extra);
void it_sim_stop(struct it_sim *sp);

/* --- webhook receiver: answers 500 to the first fail_first requests, 200 after */
void it_hook_start(struct it_hook_rx *rx, int fail_first);
/* Waits (bounded) for `want` deliveries whose body contains needle answered with status
 * (0: any); copies the last into *out; *all_hits gets every delivery of needle. */
int it_hook_wait_for(struct it_hook_rx *rx, const char *needle, int status, int want,
		     double secs, struct it_hook_delivery *out, int *all_hits);
void it_hook_stop(struct it_hook_rx *rx);
void it_hook_register_at(const char *base, const char *cookie, const char *url, char *id,
			 size_t isz);   /* job.completed endpoint; id gets its id */
void it_hook_delete_at(const char *base, const char *cookie, const char *id);

#endif
