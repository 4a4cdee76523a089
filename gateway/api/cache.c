/*
 * cache: status and download-link tables. See cache.h.
 *
 * Each table is a chained hash (power-of-two buckets, doubled when the load passes 1) plus an
 * intrusive LRU list; an entry is one allocation holding the rid and the packed value.
 */
#include "gateway/api/cache.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/api/translate.h"
#include "gateway/base/idhash.h"

#define CACHE_MIN_BUCKETS 1024		/* initial bucket count of a table */
#define CACHE_QUERY_MAX 64		/* bytes of an X-Goog-Date value we look at */

struct cache_ent {
	struct cache_ent *hnext;	/* bucket chain */
	struct cache_ent *prev, *next;	/* LRU list, head = most recently used */
	uint64_t seq;			/* fetch number (statuses) */
	int64_t t;			/* statuses: fetch time (ms); links: expiry (s) */
	uint32_t hash;
	uint32_t acct;
	uint32_t vlen;			/* packed value bytes after the rid's NUL */
	uint8_t klen;			/* rid length (<= GW_TR_RID_MAX) */
	uint8_t state;			/* JobState of a status entry */
	char data[];			/* rid, NUL, packed value */
};

struct cache_tab {
	struct cache_ent **buckets;
	size_t nbuckets;		/* power of two */
	size_t n, max;
	size_t bytes, max_bytes;	/* held by the entries; max_bytes 0 = no byte limit */
	struct cache_ent *head, *tail;
};

struct gw_cache {
	struct cache_tab st, ln;
	int64_t ttl_ms;
	uint64_t forgets;		/* gw_cache_forget calls: see gw_cache_forgets */
	struct gw_cache_counters cnt;
};

/* ---- the table ---- */

static uint32_t cache_hash(size_t acct, const char *rid, size_t klen)
{
	return gw_idhash((uint64_t)acct, rid, klen);	/* every cached GetStatus: eight bytes a step */
}

static int cache_tab_init(struct cache_tab *t, size_t max)
{
	t->nbuckets = CACHE_MIN_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
	t->max = max;
	return t->buckets ? 0 : -1;
}

static void cache_tab_clear(struct cache_tab *t)
{
	struct cache_ent *e = t->head, *nx;

	for (; e; e = nx) {
		nx = e->next;
		free(e);
	}
	free(t->buckets);
	memset(t, 0, sizeof *t);
}

static struct cache_ent *cache_tab_find(const struct cache_tab *t, size_t acct, const char *rid,
					 size_t klen)
{
	uint32_t h = cache_hash(acct, rid, klen);
	struct cache_ent *e = t->buckets[h & (t->nbuckets - 1)];

	for (; e; e = e->hnext)
		if (e->hash == h && e->acct == acct && e->klen == klen &&
		    memcmp(e->data, rid, klen) == 0)
			return e;
	return NULL;
}

static void cache_lru_unlink(struct cache_tab *t, struct cache_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	e->prev = e->next = NULL;
}

static void cache_lru_front(struct cache_tab *t, struct cache_ent *e)
{
	e->prev = NULL;
	e->next = t->head;
	if (t->head)
		t->head->prev = e;
	t->head = e;
	if (!t->tail)
		t->tail = e;
}

/* What an entry costs in memory: its allocation (bucket slots are the table's). */
static size_t cache_ent_bytes(const struct cache_ent *e)
{
	return sizeof *e + e->klen + 1 + e->vlen;
}

static void cache_tab_remove(struct cache_tab *t, struct cache_ent *e)
{
	struct cache_ent **pp = &t->buckets[e->hash & (t->nbuckets - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	cache_lru_unlink(t, e);
	t->n--;
	t->bytes -= cache_ent_bytes(e);
	free(e);
}

/* Doubles the bucket array; on allocation failure the table just gets longer chains. */
static void cache_tab_grow(struct cache_tab *t)
{
	size_t nb = t->nbuckets * 2;
	struct cache_ent **b;

	if (nb / 2 != t->nbuckets || !(b = calloc(nb, sizeof *b)))
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct cache_ent *e = t->buckets[i], *nx;

		for (; e; e = nx) {
			nx = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

/* Inserts e (not in the table); evicts LRU entries first while the table is full (entries, or
 * bytes when it has a byte limit). Returns evictions. */
static unsigned cache_tab_insert(struct cache_tab *t, struct cache_ent *e)
{
	size_t need = cache_ent_bytes(e);
	unsigned ev = 0;
	size_t b;

	while ((t->n >= t->max || (t->max_bytes && t->bytes + need > t->max_bytes)) && t->tail) {
		cache_tab_remove(t, t->tail);
		ev++;
	}
	if (t->n + 1 > t->nbuckets)
		cache_tab_grow(t);
	b = e->hash & (t->nbuckets - 1);
	e->hnext = t->buckets[b];
	t->buckets[b] = e;
	cache_lru_front(t, e);
	t->n++;
	t->bytes += need;
	return ev;
}

static struct cache_ent *cache_ent_new(size_t acct, const char *rid, size_t klen, size_t vlen)
{
	struct cache_ent *e = malloc(sizeof *e + klen + 1 + vlen);

	if (!e)
		return NULL;
	memset(e, 0, sizeof *e);
	e->hash = cache_hash(acct, rid, klen);
	e->acct = (uint32_t)acct;
	e->klen = (uint8_t)klen;
	e->vlen = (uint32_t)vlen;
	memcpy(e->data, rid, klen);
	e->data[klen] = '\0';
	return e;
}

static const uint8_t *cache_ent_value(const struct cache_ent *e)
{
	return (const uint8_t *)e->data + e->klen + 1;
}

/* Valid rid length (0 when the rid is unusable as a key). */
static size_t cache_klen(const char *rid)
{
	size_t n = rid ? strnlen(rid, GW_TR_RID_MAX + 1) : 0;

	return n > GW_TR_RID_MAX ? 0 : n;
}

/* ---- lifecycle ---- */

struct gw_cache *gw_cache_new(size_t max_entries, int64_t ttl_ms)
{
	struct gw_cache *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	if (max_entries < 1)
		max_entries = 1;
	if (max_entries > GW_CACHE_MAX_ENTRIES_LIMIT)
		max_entries = GW_CACHE_MAX_ENTRIES_LIMIT;
	c->ttl_ms = ttl_ms;
	if (cache_tab_init(&c->st, max_entries) || cache_tab_init(&c->ln, max_entries)) {
		gw_cache_free(c);
		return NULL;
	}
	c->ln.max_bytes = GW_CACHE_LINK_MAX_BYTES;
	return c;
}

void gw_cache_free(struct gw_cache *c)
{
	if (!c)
		return;
	cache_tab_clear(&c->st);
	cache_tab_clear(&c->ln);
	free(c);
}

int gw_cache_state_final(int state)
{
	return state == ANIMATE3D__V1__JOB_STATE__SUCCESS || state == ANIMATE3D__V1__JOB_STATE__FAILURE;
}

const struct gw_cache_counters *gw_cache_counters(const struct gw_cache *c)
{
	return &c->cnt;
}

int64_t gw_cache_ttl_ms(const struct gw_cache *c)
{
	return c->ttl_ms;
}

uint64_t gw_cache_forgets(const struct gw_cache *c)
{
	return c->forgets;
}

void gw_cache_link_limits(struct gw_cache *c, size_t max_entries, size_t max_bytes)
{
	if (max_entries < 1)
		max_entries = 1;
	if (max_entries > GW_CACHE_MAX_ENTRIES_LIMIT)
		max_entries = GW_CACHE_MAX_ENTRIES_LIMIT;
	c->ln.max = max_entries;
	c->ln.max_bytes = max_bytes ? max_bytes : GW_CACHE_LINK_MAX_BYTES;
	/* Over the new limits: the least recently used links go now, counted as evictions. */
	while ((c->ln.n > c->ln.max || c->ln.bytes > c->ln.max_bytes) && c->ln.tail) {
		cache_tab_remove(&c->ln, c->ln.tail);
		c->cnt.link_evictions++;
	}
	c->cnt.link_entries = c->ln.n;
	c->cnt.link_bytes = c->ln.bytes;
}

/* ---- statuses ---- */

static int cache_unpack_status(const struct cache_ent *e, Animate3d__V1__JobStatus **out)
{
	Animate3d__V1__JobStatus *m;
	char *rid;

	if (!out)
		return 1;
	m = animate3d__v1__job_status__unpack(NULL, e->vlen, cache_ent_value(e));
	rid = strndup(e->data, e->klen);
	if (!m || !rid) {
		free(rid);
		if (m)
			protobuf_c_message_free_unpacked(&m->base, NULL);
		return -1;
	}
	m->rid = rid;		/* the packed copy has an empty rid: the key holds it */
	*out = m;
	return 1;
}

int gw_cache_get(struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms,
		 Animate3d__V1__JobStatus **out)
{
	size_t klen = cache_klen(rid);
	struct cache_ent *e = klen ? cache_tab_find(&c->st, acct, rid, klen) : NULL;
	int rc;

	if (!e) {
		c->cnt.misses++;
		return 0;
	}
	if (!gw_cache_state_final(e->state) && now_ms - e->t >= c->ttl_ms) {
		c->cnt.misses++;
		c->cnt.expired++;
		return 0;
	}
	rc = cache_unpack_status(e, out);
	if (rc != 1) {
		c->cnt.misses++;
		return rc;
	}
	c->cnt.hits++;
	cache_lru_unlink(&c->st, e);
	cache_lru_front(&c->st, e);
	return 1;
}

/* Bytes of v as a protobuf varint. */
static size_t cache_varint_size(size_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t gw_cache_varint_put(uint8_t *p, size_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* JobStatus.rid is field 1 (length-delimited): tag 0x0a. The stored value has every other field,
 * so rid first, then the value, is exactly what protobuf_c_message_pack gives for the status. */
#define CACHE_RID_TAG 0x0a

static size_t cache_packed_len(const struct cache_ent *e)
{
	return 1 + cache_varint_size(e->klen) + e->klen + e->vlen;
}

/* The status entry gw_cache_get would hit, or NULL; no counter, no LRU move. */
static struct cache_ent *cache_fresh(const struct gw_cache *c, size_t acct, const char *rid,
				     int64_t now_ms)
{
	size_t klen = cache_klen(rid);
	struct cache_ent *e = klen ? cache_tab_find(&c->st, acct, rid, klen) : NULL;

	if (!e || (!gw_cache_state_final(e->state) && now_ms - e->t >= c->ttl_ms))
		return NULL;
	return e;
}

size_t gw_cache_packed_size(const struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms)
{
	const struct cache_ent *e = c ? cache_fresh(c, acct, rid, now_ms) : NULL;

	return e ? cache_packed_len(e) : 0;
}

/* Writes e's packed JobStatus at out (room for cache_packed_len(e)); a hit, most recently used. */
static size_t cache_put_packed(struct gw_cache *c, struct cache_ent *e, uint8_t *out, int *state)
{
	size_t n;

	out[0] = CACHE_RID_TAG;
	n = 1 + gw_cache_varint_put(out + 1, e->klen);
	memcpy(out + n, e->data, e->klen);
	n += e->klen;
	memcpy(out + n, cache_ent_value(e), e->vlen);
	n += e->vlen;
	if (state)
		*state = e->state;
	c->cnt.hits++;
	cache_lru_unlink(&c->st, e);
	cache_lru_front(&c->st, e);
	return n;
}

size_t gw_cache_get_packed(struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms,
			   uint8_t *out, size_t cap, int *state)
{
	struct cache_ent *e = cache_fresh(c, acct, rid, now_ms);

	if (!e || !out || cap < cache_packed_len(e)) {
		c->cnt.misses++;
		if (!e && cache_klen(rid) && cache_tab_find(&c->st, acct, rid, cache_klen(rid)))
			c->cnt.expired++;	/* present but older than the TTL, as gw_cache_get counts */
		return 0;
	}
	return cache_put_packed(c, e, out, state);
}

struct gw_cache_hit *gw_cache_find_packed(const struct gw_cache *c, size_t acct, const char *rid,
					  int64_t now_ms, size_t *len)
{
	struct cache_ent *e = c ? cache_fresh(c, acct, rid, now_ms) : NULL;

	*len = e ? cache_packed_len(e) : 0;
	return (struct gw_cache_hit *)(void *)e;
}

size_t gw_cache_take_packed(struct gw_cache *c, struct gw_cache_hit *hit, uint8_t *out, int *state)
{
	return cache_put_packed(c, (struct cache_ent *)(void *)hit, out, state);
}

int gw_cache_peek(struct gw_cache *c, size_t acct, const char *rid, int64_t now_ms,
		  Animate3d__V1__JobStatus **out, int64_t *age_ms)
{
	size_t klen = cache_klen(rid);
	struct cache_ent *e = klen ? cache_tab_find(&c->st, acct, rid, klen) : NULL;

	if (!e)
		return 0;
	if (age_ms)
		*age_ms = now_ms - e->t;
	return cache_unpack_status(e, out);
}

int gw_cache_put(struct gw_cache *c, size_t acct, const Animate3d__V1__JobStatus *st, uint64_t seq,
		 int64_t fetched_ms)
{
	Animate3d__V1__JobStatus tmp;
	struct cache_ent *old, *e;
	size_t klen = st ? cache_klen(st->rid) : 0;
	size_t vlen;

	if (!klen)
		return -1;
	old = cache_tab_find(&c->st, acct, st->rid, klen);
	if (old && (gw_cache_state_final(old->state) || old->seq > seq)) {
		c->cnt.stale_ignored++;
		return 0;
	}
	tmp = *st;
	tmp.rid = (char *)protobuf_c_empty_string;
	vlen = protobuf_c_message_get_packed_size(&tmp.base);
	if (vlen > GW_CACHE_MAX_VALUE) {
		c->cnt.too_large++;
		return -1;
	}
	e = cache_ent_new(acct, st->rid, klen, vlen);
	if (!e)
		return -1;
	protobuf_c_message_pack(&tmp.base, (uint8_t *)e->data + klen + 1);
	e->seq = seq;
	e->t = fetched_ms;
	e->state = (uint8_t)st->state;
	if (old)
		cache_tab_remove(&c->st, old);
	c->cnt.evictions += cache_tab_insert(&c->st, e);
	c->cnt.stores++;
	c->cnt.entries = c->st.n;
	return 1;
}

int gw_cache_invalidate(struct gw_cache *c, size_t acct, const char *rid)
{
	size_t klen = cache_klen(rid);
	struct cache_ent *e = klen ? cache_tab_find(&c->st, acct, rid, klen) : NULL;

	if (!e || gw_cache_state_final(e->state))
		return 0;
	cache_tab_remove(&c->st, e);
	c->cnt.entries = c->st.n;
	return 1;
}

int gw_cache_forget(struct gw_cache *c, size_t acct, const char *rid)
{
	size_t klen = cache_klen(rid);
	struct cache_ent *e = klen ? cache_tab_find(&c->st, acct, rid, klen) : NULL;
	struct cache_ent *l = klen ? cache_tab_find(&c->ln, acct, rid, klen) : NULL;

	c->forgets++;
	if (l)
		cache_tab_remove(&c->ln, l);
	c->cnt.link_entries = c->ln.n;
	c->cnt.link_bytes = c->ln.bytes;
	if (!e)
		return 0;
	cache_tab_remove(&c->st, e);
	c->cnt.entries = c->st.n;
	return 1;
}

/* ---- download links ---- */

/* The value of query parameter name in url ("" terminated at '&' or '#'), copied into out.
 * -1 when it is absent, too long, or given twice (which one a server would read is anybody's
 * guess, and a guess could serve a link past its expiry). */
static int cache_query_param(const char *url, const char *name, char *out, size_t outlen)
{
	const char *q = strchr(url, '?');
	size_t nl = strlen(name);
	int found = 0;

	if (!q)
		return -1;
	for (const char *p = q + 1; *p;) {
		const char *end = p + strcspn(p, "&#");

		if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t vl = (size_t)(end - p) - nl - 1;

			if (vl >= outlen || found++)
				return -1;
			memcpy(out, p + nl + 1, vl);
			out[vl] = '\0';
		}
		if (*end != '&')
			break;
		p = end + 1;
	}
	return found ? 0 : -1;
}

static int cache_digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int64_t gw_cache_url_expiry(const char *url)
{
	char date[CACHE_QUERY_MAX], exp[CACHE_QUERY_MAX];
	struct tm tm;
	int y, mo, d, h, mi, s;
	char *end;
	long long secs;
	time_t t;

	if (!url || cache_query_param(url, "X-Goog-Date", date, sizeof date) ||
	    cache_query_param(url, "X-Goog-Expires", exp, sizeof exp))
		return -1;
	/* YYYYMMDDTHHMMSSZ */
	if (strlen(date) != 16 || date[8] != 'T' || date[15] != 'Z' ||
	    cache_digits(date, 4, &y) || cache_digits(date + 4, 2, &mo) ||
	    cache_digits(date + 6, 2, &d) || cache_digits(date + 9, 2, &h) ||
	    cache_digits(date + 11, 2, &mi) || cache_digits(date + 13, 2, &s))
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;
	if (exp[0] < '0' || exp[0] > '9')
		return -1;
	secs = strtoll(exp, &end, 10);
	if (*end != '\0' || secs < 0 || secs > 10LL * 365 * 86400)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return (int64_t)t + secs;
}

int64_t gw_cache_link_expiry(const Animate3d__V1__DownloadLink *link)
{
	int64_t min = -1;

	if (!link)
		return -1;
	for (size_t g = 0; g < link->n_groups; g++) {
		const Animate3d__V1__DownloadGroup *grp = link->groups[g];

		for (size_t f = 0; grp && f < grp->n_files; f++) {
			int64_t e = gw_cache_url_expiry(grp->files[f]->url);

			if (e < 0)
				return -1;
			if (min < 0 || e < min)
				min = e;
		}
	}
	return min;
}

int gw_cache_link_get(struct gw_cache *c, size_t acct, const char *rid, int64_t now_s,
		      Animate3d__V1__DownloadLink **out)
{
	size_t klen = cache_klen(rid);
	struct cache_ent *e = klen ? cache_tab_find(&c->ln, acct, rid, klen) : NULL;
	Animate3d__V1__DownloadLink *m;
	char *r;

	if (!e || now_s >= e->t) {
		if (e)
			cache_tab_remove(&c->ln, e);	/* expired links are useless: free them now */
		c->cnt.link_entries = c->ln.n;
		c->cnt.link_bytes = c->ln.bytes;
		c->cnt.link_misses++;
		return 0;
	}
	if (!out) {
		c->cnt.link_hits++;
		return 1;
	}
	m = animate3d__v1__download_link__unpack(NULL, e->vlen, cache_ent_value(e));
	r = strndup(e->data, e->klen);
	if (!m || !r) {
		free(r);
		if (m)
			protobuf_c_message_free_unpacked(&m->base, NULL);
		c->cnt.link_misses++;
		return -1;
	}
	m->rid = r;
	*out = m;
	c->cnt.link_hits++;
	cache_lru_unlink(&c->ln, e);
	cache_lru_front(&c->ln, e);
	return 1;
}

int gw_cache_link_put(struct gw_cache *c, size_t acct, const Animate3d__V1__DownloadLink *link,
		      int64_t now_s)
{
	Animate3d__V1__DownloadLink tmp;
	struct cache_ent *old, *e;
	size_t klen = link ? cache_klen(link->rid) : 0;
	int64_t exp = gw_cache_link_expiry(link);
	size_t vlen;

	if (!klen)
		return -1;
	if (exp < 0 || exp - GW_CACHE_LINK_MARGIN_S <= now_s) {
		c->cnt.link_uncacheable++;
		return 0;
	}
	tmp = *link;
	tmp.rid = (char *)protobuf_c_empty_string;
	vlen = protobuf_c_message_get_packed_size(&tmp.base);
	if (vlen > GW_CACHE_MAX_VALUE) {
		c->cnt.too_large++;
		return -1;
	}
	if (sizeof(struct cache_ent) + klen + 1 + vlen > c->ln.max_bytes) {
		c->cnt.link_refused++;	/* it would evict everything and still not fit */
		return 0;
	}
	e = cache_ent_new(acct, link->rid, klen, vlen);
	if (!e)
		return -1;
	protobuf_c_message_pack(&tmp.base, (uint8_t *)e->data + klen + 1);
	e->t = exp - GW_CACHE_LINK_MARGIN_S;
	old = cache_tab_find(&c->ln, acct, link->rid, klen);
	if (old)
		cache_tab_remove(&c->ln, old);
	c->cnt.link_evictions += cache_tab_insert(&c->ln, e);
	c->cnt.link_stores++;
	c->cnt.link_entries = c->ln.n;
	c->cnt.link_bytes = c->ln.bytes;
	return 1;
}
