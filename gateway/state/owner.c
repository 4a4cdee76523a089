/*
 * owner: tenant isolation and the idempotent StartJob state machine. See owner.h.
 */
#include "gateway/state/owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grpc/status.h>
#include <jansson.h>
#include <openssl/sha.h>

#define OWNER_BUCKETS 1024u	/* in-flight table; at most GW_OWNER_MAX_INFLIGHT entries */

struct gw_owner_waiter {
	struct gw_owner_waiter *prev, *next;
	struct owner_flight *f;
	gw_owner_wake_fn wake;
	void *arg;
};

/* One (tenant, key) being worked on by this process, and the duplicates queued behind it. */
struct owner_flight {
	struct owner_flight *next;
	char tenant[GW_STORE_TENANT_MAX + 1];
	char key[GW_STORE_KEY_MAX + 1];
	struct gw_owner_waiter *head, *tail;
	size_t nwaiters;
};

struct gw_owner {
	struct gw_store *s;
	int64_t ttl_ms;
	struct owner_flight *table[OWNER_BUCKETS];
	struct gw_owner_stats stats;
	gw_owner_caps_fn caps;			/* per-tenant caps (NULL: none) */
	void *caps_arg;
	struct gw_slots t_inflight, t_waiters;	/* held per tenant */
	struct gw_lograte limit_log;
};

/* ---- isolation ---- */

int gw_owner_check(struct gw_store *s, enum gw_store_kind k, const char *id, const char *tenant,
		   int see_foreign)
{
	char who[GW_STORE_TENANT_MAX + 1];
	int rc;

	if (!id || !id[0] || strnlen(id, GW_STORE_ID_MAX + 1) > GW_STORE_ID_MAX || !tenant ||
	    !tenant[0])
		return -1;
	rc = gw_store_owner_get(s, k, id, who, sizeof who);
	if (rc < 0)
		return -2;
	if (rc == 0)
		return see_foreign ? 0 : -1;
	return strcmp(who, tenant) == 0 ? 0 : -1;
}

long gw_owner_filter(struct gw_store *s, enum gw_store_kind k, const char *tenant, int see_foreign,
		     const char *const *ids, size_t n, unsigned char *keep)
{
	long kept = 0;

	if (n == 0)
		return 0;
	memset(keep, 0, n);
	if (n > GW_OWNER_LIST_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int rc = ids[i] ? gw_owner_check(s, k, ids[i], tenant, see_foreign) : -1;

		if (rc == -2) {
			memset(keep, 0, n);
			return -1;
		}
		keep[i] = rc == 0;
		kept += rc == 0;
	}
	return kept;
}

/* ---- request identity ---- */

void gw_owner_fingerprint(const void *bytes, size_t len, uint8_t fp[32])
{
	SHA256(bytes ? bytes : (const void *)"", bytes ? len : 0, fp);
}

/* Length of url up to its query or fragment. */
static size_t owner_url_len(const char *url)
{
	return strcspn(url, "?#");
}

int gw_owner_source(const char *kind, const char *value, char *source, size_t cap)
{
	size_t n;
	int len;

	if (!kind || !value || !value[0] || !source || cap == 0)
		return -1;
	if (strcmp(kind, "url") == 0) {
		n = owner_url_len(value);
		if (n == 0 || n > GW_STORE_SOURCE_MAX || n >= cap)
			return -1;
		memcpy(source, value, n);
		source[n] = '\0';
		return 0;
	}
	if (strcmp(kind, "rerun") != 0 && strcmp(kind, "mp") != 0)
		return -1;
	len = snprintf(source, cap, "%s:%s", kind, value);
	if (len < 0 || (size_t)len >= cap || (size_t)len > GW_STORE_SOURCE_MAX) {
		source[0] = '\0';
		return -1;
	}
	return 0;
}

int gw_owner_upload_id(const char *url, char *id, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_LENGTH];
	size_t n;

	if (!url || !id || cap < GW_OWNER_UPLOAD_ID_LEN + 1)
		return -1;
	n = owner_url_len(url);
	if (n == 0)
		return -1;
	SHA256((const unsigned char *)url, n, d);
	for (size_t i = 0; i < sizeof d; i++) {
		id[2 * i] = hex[d[i] >> 4];
		id[2 * i + 1] = hex[d[i] & 15];
	}
	id[GW_OWNER_UPLOAD_ID_LEN] = '\0';
	return 0;
}

/* ---- in-flight table ---- */

static uint32_t owner_slot(const char *tenant, const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
		h = (h ^ *p) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;	/* separator: ("ab","c") != ("a","bc") */
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % OWNER_BUCKETS;
}

static struct owner_flight **owner_find(const struct gw_owner *o, const char *tenant, const char *key)
{
	struct owner_flight *const *pp = &o->table[owner_slot(tenant, key)];

	while (*pp && (strcmp((*pp)->tenant, tenant) != 0 || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return (struct owner_flight **)pp;
}

static struct owner_flight *owner_flight_add(struct gw_owner *o, const char *tenant, const char *key)
{
	struct owner_flight **pp = owner_find(o, tenant, key);
	struct owner_flight *f = *pp;

	if (f)
		return f;
	if (o->stats.inflight >= GW_OWNER_MAX_INFLIGHT) {
		o->stats.busy_inflight++;
		return NULL;
	}
	f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	/* The tenant's cap was checked by the caller (owner_tenant_full); only counted here. */
	if (gw_slots_take(&o->t_inflight, tenant, 0, 0) != GW_SLOTS_OK) {
		free(f);
		return NULL;
	}
	memcpy(f->tenant, tenant, strlen(tenant) + 1);	/* lengths checked by the caller */
	memcpy(f->key, key, strlen(key) + 1);
	*pp = f;
	o->stats.inflight++;
	return f;
}

/* 1 when tenant holds its cap of keys in flight (waiters 0) or of waiters (1): the refusal is
 * counted (stats and per tenant) and out->limit filled. 0 when it may take one more. */
static int owner_tenant_full(struct gw_owner *o, const char *tenant, int waiters,
			     struct gw_owner_start *out)
{
	uint64_t cinf = 0, cwait = 0, cap;
	struct gw_slots *sl = waiters ? &o->t_waiters : &o->t_inflight;

	if (!o->caps)
		return 0;
	o->caps(o->caps_arg, tenant, &cinf, &cwait);
	cap = waiters ? cwait : cinf;
	if (!cap || gw_slots_held(sl, tenant) < cap)
		return 0;
	gw_slots_take(sl, tenant, cap, 0);	/* refused: counts it against the tenant */
	if (waiters)
		o->stats.limited_waiters++;
	else
		o->stats.limited_inflight++;
	out->limit.waiters = waiters;
	out->limit.held = gw_slots_held(sl, tenant);
	out->limit.cap = cap;
	return 1;
}

/* Unlinks the flight and wakes each of its waiters once, in arrival order, then frees it. The
 * flight is out of the table before any wake runs, so a wake may start the key again. */
static void owner_flight_end(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
			     int code, const char *msg)
{
	struct owner_flight **pp = owner_find(o, tenant, key);
	struct owner_flight *f = *pp;
	struct gw_owner_waiter *w;

	if (!f)
		return;
	*pp = f->next;
	o->stats.inflight--;
	gw_slots_give(&o->t_inflight, f->tenant);
	while ((w = f->head) != NULL) {
		f->head = w->next;
		if (f->head)
			f->head->prev = NULL;
		f->nwaiters--;
		o->stats.waiting--;
		gw_slots_give(&o->t_waiters, f->tenant);
		w->wake(w->arg, rid, code, msg);
		free(w);
	}
	free(f);
}

static struct gw_owner_waiter *owner_wait(struct gw_owner *o, struct owner_flight *f,
					  gw_owner_wake_fn wake, void *arg)
{
	struct gw_owner_waiter *w;

	if (!wake || f->nwaiters >= GW_OWNER_MAX_WAITERS_PER_KEY ||
	    o->stats.waiting >= GW_OWNER_MAX_WAITERS) {
		o->stats.busy_waiters++;
		return NULL;
	}
	w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	if (gw_slots_take(&o->t_waiters, f->tenant, 0, 0) != GW_SLOTS_OK) {
		free(w);
		return NULL;
	}
	w->f = f;
	w->wake = wake;
	w->arg = arg;
	w->prev = f->tail;
	if (f->tail)
		f->tail->next = w;
	else
		f->head = w;
	f->tail = w;
	f->nwaiters++;
	o->stats.waiting++;
	return w;
}

void gw_owner_idem_unwait(struct gw_owner *o, struct gw_owner_waiter *w)
{
	struct owner_flight *f;

	if (!o || !w)
		return;
	f = w->f;
	if (w->prev)
		w->prev->next = w->next;
	else
		f->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		f->tail = w->prev;
	f->nwaiters--;
	o->stats.waiting--;
	gw_slots_give(&o->t_waiters, f->tenant);
	free(w);
}

int gw_owner_idem_inflight(const struct gw_owner *o, const char *tenant, const char *key)
{
	if (!o || !tenant || !key)
		return 0;
	return *owner_find(o, tenant, key) != NULL;
}

/* ---- lifecycle ---- */

struct gw_owner *gw_owner_new(struct gw_store *s, int64_t ttl_ms)
{
	struct gw_owner *o;

	if (!s)
		return NULL;
	o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->s = s;
	if (ttl_ms <= 0)
		ttl_ms = GW_OWNER_DEFAULT_TTL_MS;
	o->ttl_ms = ttl_ms < GW_OWNER_MIN_TTL_MS ? GW_OWNER_MIN_TTL_MS : ttl_ms;
	if (gw_slots_init(&o->t_inflight, GW_OWNER_MAX_TENANTS, 1) != 0 ||
	    gw_slots_init(&o->t_waiters, GW_OWNER_MAX_TENANTS, 1) != 0) {
		gw_slots_free(&o->t_inflight);
		free(o);
		return NULL;
	}
	return o;
}

void gw_owner_free(struct gw_owner *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < OWNER_BUCKETS; i++)
		while (o->table[i])
			owner_flight_end(o, o->table[i]->tenant, o->table[i]->key, NULL,
					 GRPC_STATUS_UNAVAILABLE, "gateway is shutting down");
	gw_slots_free(&o->t_inflight);
	gw_slots_free(&o->t_waiters);
	free(o);
}

void gw_owner_set_caps(struct gw_owner *o, gw_owner_caps_fn fn, void *arg)
{
	o->caps = fn;
	o->caps_arg = arg;
}

int gw_owner_has_caps(const struct gw_owner *o)
{
	return o && o->caps != NULL;
}

const struct gw_slots *gw_owner_tenant_slots(const struct gw_owner *o, int waiters)
{
	return waiters ? &o->t_waiters : &o->t_inflight;
}

struct gw_lograte *gw_owner_limit_log(struct gw_owner *o)
{
	return &o->limit_log;
}

const struct gw_owner_stats *gw_owner_stats(const struct gw_owner *o)
{
	return &o->stats;
}

struct gw_store *gw_owner_store(const struct gw_owner *o)
{
	return o->s;
}

/* ---- the StartJob state machine ---- */

enum gw_idem_verdict gw_owner_idem_start(struct gw_owner *o, const char *tenant, const char *key,
					 const uint8_t fp[32], const char *source, int64_t now_ms,
					 gw_owner_wake_fn wake, void *arg, struct gw_owner_start *out)
{
	struct gw_idem *e = &out->entry;
	struct owner_flight *f;
	char who[GW_STORE_TENANT_MAX + 1];
	int rc;

	memset(out, 0, sizeof *out);
	if (!tenant || strnlen(tenant, GW_STORE_TENANT_MAX + 1) > GW_STORE_TENANT_MAX || !key ||
	    strnlen(key, GW_STORE_KEY_MAX + 1) > GW_STORE_KEY_MAX)
		return GW_IDEM_ERROR;
	/* Reserve the in-flight slot first, so a PROCEED never lacks one. */
	f = *owner_find(o, tenant, key);
	if (!f && o->stats.inflight >= GW_OWNER_MAX_INFLIGHT) {
		o->stats.busy_inflight++;
		return GW_IDEM_BUSY;
	}
	/* The tenant's own share, before the store is touched (a refusal costs no write). */
	if (!f && owner_tenant_full(o, tenant, 0, out))
		return GW_IDEM_LIMITED;
	rc = gw_store_idem_begin(o->s, tenant, key, fp, source, now_ms, e);
	if (rc < 0)
		return GW_IDEM_ERROR;
	if (rc == 1) {
		if (!owner_flight_add(o, tenant, key)) {
			/* cannot track it: undo, so the key is not left PENDING for nobody */
			gw_store_idem_abort(o->s, tenant, key);
			return GW_IDEM_BUSY;
		}
		e->done = 0;
		memcpy(e->fp, fp, sizeof e->fp);
		snprintf(e->source, sizeof e->source, "%s", source);
		e->created_ms = now_ms;
		o->stats.proceeds++;
		return GW_IDEM_PROCEED;
	}
	if (memcmp(e->fp, fp, sizeof e->fp) != 0) {
		o->stats.mismatches++;
		return GW_IDEM_MISMATCH;
	}
	if (e->done) {
		/* Repair: a crash between "key DONE" and "owner recorded" leaves no owner row. */
		rc = gw_store_owner_get(o->s, GW_OBJ_JOB, e->rid, who, sizeof who);
		if (rc < 0)
			return GW_IDEM_ERROR;
		if (rc == 0) {
			if (gw_store_owner_put(o->s, GW_OBJ_JOB, e->rid, tenant, now_ms) != 0)
				return GW_IDEM_ERROR;
			o->stats.ownership_repaired++;
		} else if (strcmp(who, tenant) != 0) {
			return GW_IDEM_ERROR;	/* cannot happen: a rid has one creator */
		}
		snprintf(out->rid, sizeof out->rid, "%s", e->rid);
		o->stats.replays++;
		return GW_IDEM_REPLAY;
	}
	if (f) {
		if (wake && owner_tenant_full(o, tenant, 1, out))
			return GW_IDEM_LIMITED;
		out->waiter = owner_wait(o, f, wake, arg);
		if (!out->waiter)
			return GW_IDEM_BUSY;
		o->stats.waits++;
		return GW_IDEM_WAIT;
	}
	if (!owner_flight_add(o, tenant, key))
		return GW_IDEM_BUSY;
	o->stats.reconciles++;
	return GW_IDEM_RECONCILE;
}

int gw_owner_idem_done(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
		       int64_t now_ms)
{
	char msg[GW_OWNER_MSG_MAX];

	/* Key first, owner second: see the ordering note in owner.h. If the key cannot be marked,
	 * the rid is left unowned so that reconciliation can still adopt it on retry. */
	if (gw_store_idem_finish(o->s, tenant, key, rid) != 0 ||
	    gw_store_owner_put(o->s, GW_OBJ_JOB, rid, tenant, now_ms) != 0) {
		snprintf(msg, sizeof msg, "%s", gw_store_errmsg(o->s));
		owner_flight_end(o, tenant, key, NULL, GRPC_STATUS_UNAVAILABLE, msg);
		return -1;
	}
	owner_flight_end(o, tenant, key, rid, GRPC_STATUS_OK, NULL);
	return 0;
}

int gw_owner_idem_adopt(struct gw_owner *o, const char *tenant, const char *key, const char *rid,
			int64_t now_ms)
{
	char who[GW_STORE_TENANT_MAX + 1];
	int rc = gw_store_owner_get(o->s, GW_OBJ_JOB, rid, who, sizeof who);

	if (rc != 0) {
		if (rc == 1)
			o->stats.adopt_raced++;
		owner_flight_end(o, tenant, key, NULL,
				 rc == 1 ? GRPC_STATUS_ABORTED : GRPC_STATUS_UNAVAILABLE,
				 rc == 1 ? "the upstream job was claimed by another request meanwhile; retry"
					 : gw_store_errmsg(o->s));
		return -1;
	}
	return gw_owner_idem_done(o, tenant, key, rid, now_ms);
}

int gw_owner_idem_failed(struct gw_owner *o, const char *tenant, const char *key, int forget,
			 int code, const char *msg)
{
	int rc = 0;

	if (forget && gw_store_idem_abort(o->s, tenant, key) != 0)
		rc = -1;
	owner_flight_end(o, tenant, key, NULL, code, msg ? msg : "");
	return rc;
}

int gw_owner_expire(struct gw_owner *o, int64_t now_ms)
{
	int n = gw_store_idem_expire(o->s, now_ms - o->ttl_ms);

	if (n > 0)
		o->stats.expired += (uint64_t)n;
	return n;
}

/* ---- reconciliation ---- */

static int owner_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes src into dst (cap bytes); -1 when it does not fit. */
static int owner_unescape(const char *src, size_t n, char *dst, size_t cap)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];

		if (c == '%' && i + 2 < n && owner_hex(src[i + 1]) >= 0 && owner_hex(src[i + 2]) >= 0) {
			c = owner_hex(src[i + 1]) * 16 + owner_hex(src[i + 2]);
			i += 2;
		}
		if (j + 1 >= cap)
			return -1;
		dst[j++] = (char)c;
	}
	dst[j] = '\0';
	return 0;
}

static enum gw_recon_verdict owner_recon_set(struct gw_owner_recon *out, enum gw_recon_verdict v,
					     const char *why)
{
	out->verdict = v;
	snprintf(out->why, sizeof out->why, "%s", why);
	return v;
}

/* The input URL of rid in a /download body, query stripped into buf; NULL when not given. */
static const char *owner_dl_input(json_t *links, const char *rid, char *buf, size_t cap)
{
	size_t i;
	json_t *l;

	json_array_foreach(links, i, l) {
		const char *r = json_string_value(json_object_get(l, "rid"));
		const char *in = json_string_value(json_object_get(l, "input"));
		size_t n;

		if (!r || strcmp(r, rid) != 0)
			continue;
		if (!in || !in[0])
			return NULL;
		n = owner_url_len(in);
		if (n >= cap)
			return NULL;
		memcpy(buf, in, n);
		buf[n] = '\0';
		return buf;
	}
	return NULL;
}

static enum gw_recon_verdict owner_reconcile(struct gw_store *s, const struct gw_idem *e,
					     const char *list_json, size_t list_len,
					     const char *dl_json, size_t dl_len, struct gw_owner_recon *out)
{
	char base[GW_STORE_SOURCE_MAX + 1], who[GW_STORE_TENANT_MAX + 1];
	char input[GW_STORE_SOURCE_MAX + 1];
	const char *src = e->source, *slash, *rid, *name;
	char matched[GW_OWNER_RECON_MAX][GW_STORE_RID_MAX + 1];
	size_t nmatch = 0, nname = 0, i;
	json_t *root = NULL, *list, *row, *dl = NULL, *links;
	enum gw_recon_verdict v;

	memset(out, 0, sizeof *out);
	if (!strstr(src, "://") || e->done)
		return owner_recon_set(out, GW_RECON_UNSUPPORTED,
				       "the job's source cannot be matched against the upstream job list");
	slash = strrchr(src, '/');
	if (!slash[1] || owner_unescape(slash + 1, strlen(slash + 1), base, sizeof base) != 0)
		return owner_recon_set(out, GW_RECON_UNSUPPORTED, "the upload URL names no file");
	root = list_json ? json_loadb(list_json, list_len, 0, NULL) : NULL;
	list = json_object_get(root, "list");
	if (!json_is_array(list)) {
		v = owner_recon_set(out, GW_RECON_ERROR, "upstream job list is not {\"list\": [...]}");
		goto out;
	}
	json_array_foreach(list, i, row) {
		json_t *ct = json_object_get(row, "ctime");
		int rc;

		rid = json_string_value(json_object_get(row, "rid"));
		name = json_string_value(json_object_get(row, "fileName"));
		if (!rid || !rid[0] || strlen(rid) > GW_STORE_RID_MAX || !name)
			continue;
		if (strcmp(name, base) != 0 && strcmp(name, slash + 1) != 0)
			continue;
		if (json_is_number(ct) && (int64_t)json_number_value(ct) < e->created_ms - GW_OWNER_RECON_SKEW_MS)
			continue;
		rc = gw_store_owner_get(s, GW_OBJ_JOB, rid, who, sizeof who);
		if (rc < 0) {
			v = owner_recon_set(out, GW_RECON_ERROR, gw_store_errmsg(s));
			goto out;
		}
		if (rc == 1)
			continue;	/* recorded: it belongs to another request */
		if (out->ncand == GW_OWNER_RECON_MAX) {
			snprintf(out->why, sizeof out->why,
				 "more than %d upstream jobs of file %.64s may be this request's; not guessing",
				 GW_OWNER_RECON_MAX, base);
			out->verdict = GW_RECON_AMBIGUOUS;
			v = out->verdict;
			goto out;
		}
		snprintf(out->cand[out->ncand++], sizeof out->cand[0], "%s", rid);
	}
	if (out->ncand == 0) {
		v = owner_recon_set(out, GW_RECON_RESUBMIT, "no upstream job matches: safe to resubmit");
		goto out;
	}
	if (!dl_json) {
		v = owner_recon_set(out, GW_RECON_LOOKUP, "look up the candidates' input URLs");
		goto out;
	}
	dl = json_loadb(dl_json, dl_len, 0, NULL);
	links = json_object_get(dl, "links");
	for (i = 0; i < out->ncand; i++) {
		const char *in = json_is_array(links) ?
					 owner_dl_input(links, out->cand[i], input, sizeof input) :
					 NULL;

		if (in && strcmp(in, src) != 0)
			continue;	/* started from another upload */
		if (!in)
			nname++;
		memcpy(matched[nmatch++], out->cand[i], sizeof matched[0]);
	}
	out->ncand = nmatch;
	memcpy(out->cand, matched, nmatch * sizeof matched[0]);
	if (nmatch == 0) {
		v = owner_recon_set(out, GW_RECON_RESUBMIT,
				    "no upstream job was started from this upload: safe to resubmit");
	} else if (nmatch == 1) {
		snprintf(out->rid, sizeof out->rid, "%s", out->cand[0]);
		v = owner_recon_set(out, GW_RECON_ADOPT,
				    nname ? "one unrecorded upstream job of this file name since the key"
					  : "one unrecorded upstream job started from this upload");
	} else {
		snprintf(out->why, sizeof out->why,
			 "%zu unrecorded upstream jobs may be this request's (%zu by input URL, %zu by file "
			 "name only); not guessing", nmatch, nmatch - nname, nname);
		out->verdict = GW_RECON_AMBIGUOUS;
		v = out->verdict;
	}
out:
	json_decref(root);
	json_decref(dl);
	return v;
}

enum gw_recon_verdict gw_owner_reconcile(struct gw_owner *o, const struct gw_idem *e,
					 const char *list_json, size_t list_len,
					 const char *dl_json, size_t dl_len, struct gw_owner_recon *out)
{
	enum gw_recon_verdict v = owner_reconcile(o->s, e, list_json, list_len, dl_json, dl_len, out);

	if (v == GW_RECON_ADOPT)
		o->stats.recon_adopted++;
	else if (v == GW_RECON_RESUBMIT)
		o->stats.recon_resubmit++;
	else if (v == GW_RECON_AMBIGUOUS || v == GW_RECON_UNSUPPORTED)
		o->stats.recon_ambiguous++;
	return v;
}
