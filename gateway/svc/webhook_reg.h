/*
 * webhook_reg: at start-up, make sure each account has exactly one upstream webhook endpoint
 * that delivers job.completed to this gateway (webhooks.public_url in the configuration).
 *
 * Our url is <public_url><path_prefix><account name>, or <public_url><path_prefix><token>/<account
 * name> with a webhook path token (gateway/svc/webhook_token.h). For every account, on the loop
 * (gw_up_start: the request waits for the account's login):
 *   GET /webhook_endpoints -> an endpoint whose url is exactly ours exists: keep it ("webhook
 *   endpoint present"); if it lacks job.completed, POST /webhook_endpoints/<id>
 *   {"events":["job.completed"]};
 *   none, but one of ours with another token (or none: <public_url><path_prefix><account>):
 *   move it, POST /webhook_endpoints/<id> {"url", "events":["job.completed"]} ("retargeted":
 *   a token rotated while the gateway was down, or a token added);
 *   none at all: POST /webhook_endpoints {"url", "events":["job.completed"]}.
 * A reload that rotates the token (gw_webhook_reg_retarget) runs the same steps again: the
 * endpoint found with the old token is moved to the new url.
 * The token is never logged: log lines show the url with "{token}" in its place.
 * A restart finds the endpoint it created and creates nothing. Several endpoints with our url
 * (made by hand, or by an older version) are logged and left alone: one is kept, none is ever
 * deleted, and endpoints with other urls are never touched. A failure (no session, connection,
 * non-2xx, unreadable answer) restarts the account from the GET after a capped, jittered
 * backoff (GW_WEBHOOK_REG_BACKOFF_MIN_MS .. GW_WEBHOOK_REG_BACKOFF_MAX_MS), for as long as
 * the process runs: a POST whose answer was lost is found by that GET, not created twice.
 * An account whose name cannot be used in a URL path as-is (see gw_webhook_reg_url) is skipped
 * with an error line; nothing is registered for it.
 *
 * Several replicas (redis: configured): each account's registration (the GET and what follows)
 * runs under a Redis lock, <prefix>webhook_reg:<account> = instance, SET NX PX
 * GW_WEBHOOK_REG_LOCK_MS. A replica that finds it held asks again every GW_WEBHOOK_REG_LOCK_WAIT_MS;
 * once it gets it, its GET finds the endpoint the holder made ("present"): N replicas starting
 * together create one endpoint. The holder releases the lock (only if still its own) when its
 * registration ends, either way; a crashed holder's lock expires. Redis down or failing: the
 * registration goes on without the lock, as with one replica (counted).
 *
 * Logs carry the account, the endpoint id and url (public_url holds no secret: config.c
 * refuses credentials, query and fragment), never a cookie or an upstream body.
 */
#ifndef A3D_GATEWAY_WEBHOOK_REG_H
#define A3D_GATEWAY_WEBHOOK_REG_H

#include <stddef.h>
#include <stdint.h>

#define GW_WEBHOOK_REG_MAX_URL 1024		/* <public_url><prefix><account>, in bytes */
#define GW_WEBHOOK_REG_MAX_ID 128		/* an upstream endpoint id we keep or log */
#define GW_WEBHOOK_REG_MAX_LOGGED_DUPS 8	/* duplicate ids logged one by one; the rest counted */
#define GW_WEBHOOK_REG_BACKOFF_MIN_MS 1000	/* first retry delay (before jitter) */
#define GW_WEBHOOK_REG_BACKOFF_MAX_MS 300000	/* retry delay cap: 5 minutes */
#define GW_WEBHOOK_REG_TIMEOUT_MS 10000		/* per upstream request */
#define GW_WEBHOOK_REG_EVENT "job.completed"
#define GW_WEBHOOK_REG_LOCK_MS 30000		/* lock lifetime: > GET + POST timeouts */
#define GW_WEBHOOK_REG_LOCK_WAIT_MS 200		/* a held lock is asked again after this */


/* ---- pure parts (unit-tested) ---- */

/*
 * Writes <public_url><prefix><account> into out. public_url has no trailing '/' (config.c
 * strips it); prefix starts and ends with '/'. The account name must be 1..outlen bytes of
 * [A-Za-z0-9-._~] (what webhook_in matches literally in the request path: no escaping
 * needed). Returns 0, or -1 (NULL argument, bad name, or the result does not fit in outlen
 * bytes with its NUL; out is then "").
 */
int gw_webhook_reg_url(char *out, size_t outlen, const char *public_url, const char *prefix,
		       const char *account);
/* The same with a path token: <public_url><prefix><token>/<account> (token NULL: as above). The
 * token must pass gw_webhook_token_ok. */
int gw_webhook_reg_url_token(char *out, size_t outlen, const char *public_url, const char *prefix,
			     const char *token, const char *account);

enum gw_webhook_reg_decision {
	GW_WEBHOOK_REG_PRESENT = 0,	/* keep id: url matches and it has job.completed */
	GW_WEBHOOK_REG_UPDATE,		/* url matches, job.completed missing: add it to id */
	GW_WEBHOOK_REG_CREATE,		/* no endpoint has our url */
	GW_WEBHOOK_REG_BAD,		/* the list answer is not {"endpoints":[...]} */
	GW_WEBHOOK_REG_RETARGET		/* none has our url, id is ours with another token: move it */
};
struct gw_webhook_reg_found {
	char id[GW_WEBHOOK_REG_MAX_ID];		/* the endpoint kept (PRESENT, UPDATE), else "" */
	size_t matches;				/* endpoints with exactly our url */
	size_t total;				/* endpoints in the list */
	/* ids of the other matching endpoints (left in place), at most
	 * GW_WEBHOOK_REG_MAX_LOGGED_DUPS; matches - 1 counts them all. */
	char dups[GW_WEBHOOK_REG_MAX_LOGGED_DUPS][GW_WEBHOOK_REG_MAX_ID];
	size_t ndups;
};
/*
 * Reads a GET /webhook_endpoints answer ({"count", "endpoints":[{"id","url","events"}...]}; a
 * bare array of endpoints is accepted too) and decides for url. Among matching endpoints the
 * first with job.completed is kept, else the first one (UPDATE). Entries that are not objects
 * or lack a string url never match; a matching entry without a usable id (string, 1 ..
 * GW_WEBHOOK_REG_MAX_ID - 1 bytes) makes the answer BAD (we could neither keep nor fix it).
 */
enum gw_webhook_reg_decision gw_webhook_reg_decide(const char *body, size_t len, const char *url,
						   struct gw_webhook_reg_found *f);
/*
 * The same, and when no endpoint has url exactly: the first whose url is <base><account> or
 * <base><segment>/<account> (base = <public_url><prefix>, segment one or more token characters)
 * is RETARGET (f->id; the others like it are not touched). base or account NULL: as above.
 */
enum gw_webhook_reg_decision gw_webhook_reg_decide_ours(const char *body, size_t len, const char *url,
							const char *base, const char *account,
							struct gw_webhook_reg_found *f);

/* Delay before retry number attempt (1 = after the first failure): a point in [d/2, d] chosen
 * by rnd, d = min(GW_WEBHOOK_REG_BACKOFF_MAX_MS, GW_WEBHOOK_REG_BACKOFF_MIN_MS << (attempt-1)). */
int64_t gw_webhook_reg_backoff_ms(unsigned attempt, uint64_t rnd);

/* ---- the runtime (loop thread only) ---- */

struct gw_webhook_reg_counters {
	uint64_t present;		/* accounts whose endpoint was already there */
	uint64_t created;		/* endpoints POSTed */
	uint64_t updated;		/* endpoints given job.completed */
	uint64_t retargeted;		/* endpoints moved to our url (new path token) */
	uint64_t duplicates;		/* other endpoints with our url seen (left in place) */
	uint64_t failed;		/* attempts that failed (each is retried) */
	uint64_t skipped;		/* accounts whose url could not be built */
	/* Several replicas (redis:): the registration runs under a lock per account. */
	uint64_t lock_taken;		/* the lock was ours: GET (and POST) under it */
	uint64_t lock_waited;		/* another replica held it: asked again later */
	uint64_t lock_unavailable;	/* Redis down or failing: registered without the lock */
};

struct gw_webhook_reg;

/*
 * The service (gateway/call/svc.h): with webhooks.public_url set in the boot configuration, its
 * start hook registers every account's endpoint once the loop runs (the requests wait for the
 * account's login); without it there is no state and nothing happens. Its free cancels requests
 * in flight and timers (the top frees services before the accounts and the upstream engine).
 */
struct gw_svc;
extern const struct gw_svc gw_svc_webhook_reg;
/* Cancels requests in flight and timers. NULL is a no-op. */
void gw_webhook_reg_free(struct gw_webhook_reg *wr);
/* The path token changed (a reload): every account's url is rebuilt with the current token and
 * its registration starts over from the GET, which finds the endpoint with the old token and
 * moves it (RETARGET). Requests in flight are cancelled. NULL is a no-op. */
void gw_webhook_reg_retarget(struct gw_webhook_reg *wr);

/* The counters (NULL for a NULL wr). */
const struct gw_webhook_reg_counters *gw_webhook_reg_counters(const struct gw_webhook_reg *wr);
/* Accounts whose endpoint is in place (present, created or updated) / accounts to register. */
size_t gw_webhook_reg_done(const struct gw_webhook_reg *wr);
size_t gw_webhook_reg_accounts(const struct gw_webhook_reg *wr);

/* The Prometheus families (GW_METRICS_PREFIX "webhook_registrations_total"
 * {result=present|created|updated|retargeted|duplicate|failed|skipped} and
 * "webhook_endpoints_registered"
 * gauge, accounts in place), from bare figures (the service's renderer; unit-tested). */
struct gw_metrics_out;
void gw_webhook_reg_render(const struct gw_webhook_reg_counters *c, size_t done,
			   struct gw_metrics_out *o);

#endif
