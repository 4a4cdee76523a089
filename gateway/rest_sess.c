/*
 * rest_sess: the facade's sessions, in the state store behind a small cache. See rest_sess.h.
 */
#include "gateway/rest_sess.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "gateway/state/store.h"

/* One remembered session: believed until until_ms (the cache TTL), never past expires_ms. */
struct sess_slot {
	uint8_t token_sha256[32];
	uint8_t key_sha256[32];
	char tenant[GW_STORE_TENANT_MAX + 1];
	int64_t expires_ms;
	int64_t until_ms;
	int used;
};

enum sess_kind { SESS_OPEN, SESS_FIND, SESS_DROP, SESS_REVOKE, SESS_SWEEP };

/* One store operation in flight. s is NULL once the module is freed (detached): the store's
 * answer then only frees it. */
struct sess_op {
	struct gw_rest_sess *s;
	struct sess_op *prev, *next;
	enum sess_kind kind;
	gw_rest_sess_find_fn find_cb;
	gw_rest_sess_open_fn open_cb;
	void *arg;
	int64_t now_ms;
	uint8_t token_sha256[32];
	char token[GW_REST_SESS_TOKEN_LEN + 1];		/* SESS_OPEN: handed to open_cb */
};

struct gw_rest_sess {
	struct gw_store *store;
	struct sess_slot *cache;
	size_t slots;
	int64_t ttl_ms;
	struct sess_op *ops;
	size_t nops;
	struct gw_rest_sess_stats st;
};

struct gw_rest_sess *gw_rest_sess_new(struct gw_store *store, size_t cache_slots, long cache_ttl_ms)
{
	struct gw_rest_sess *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	s->slots = cache_slots ? cache_slots : GW_REST_SESS_CACHE;
	if (s->slots & (s->slots - 1))
		s->slots = GW_REST_SESS_CACHE;
	s->cache = calloc(s->slots, sizeof *s->cache);
	if (!s->cache) {
		free(s);
		return NULL;
	}
	s->store = store;
	s->ttl_ms = cache_ttl_ms < 0 ? GW_REST_SESS_CACHE_TTL_MS : cache_ttl_ms;
	s->st.cache_max = s->slots;
	return s;
}

static void sess_op_wipe_free(struct sess_op *op)
{
	OPENSSL_cleanse(op, sizeof *op);
	free(op);
}

void gw_rest_sess_free(struct gw_rest_sess *s)
{
	if (!s)
		return;
	/* The store answers these later (or drops them at its close): into nothing. */
	for (struct sess_op *op = s->ops; op; op = op->next)
		op->s = NULL;
	OPENSSL_cleanse(s->cache, s->slots * sizeof *s->cache);
	free(s->cache);
	free(s);
}

/* ---- the cache ---- */

/* The slot of a token hash: its first bytes (SHA-256 output is uniform). */
static struct sess_slot *sess_slot(struct gw_rest_sess *s, const uint8_t h[32])
{
	return &s->cache[((size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2]) & (s->slots - 1)];
}

static void sess_slot_clear(struct gw_rest_sess *s, struct sess_slot *e)
{
	if (e->used)
		s->st.cached--;
	OPENSSL_cleanse(e, sizeof *e);
}

static void sess_remember(struct gw_rest_sess *s, const uint8_t token_sha256[32],
			  const struct gw_sess *row, int64_t now_ms)
{
	struct sess_slot *e = sess_slot(s, token_sha256);

	sess_slot_clear(s, e);
	memcpy(e->token_sha256, token_sha256, 32);
	memcpy(e->key_sha256, row->key_sha256, 32);
	snprintf(e->tenant, sizeof e->tenant, "%s", row->tenant);
	e->expires_ms = row->expires_ms;
	e->until_ms = now_ms + s->ttl_ms;
	e->used = 1;
	s->st.cached++;
}

/* The slot remembering token_sha256, or NULL. */
static struct sess_slot *sess_cached(struct gw_rest_sess *s, const uint8_t token_sha256[32])
{
	struct sess_slot *e = sess_slot(s, token_sha256);

	return e->used && CRYPTO_memcmp(e->token_sha256, token_sha256, 32) == 0 ? e : NULL;
}

static void sess_hash(const char *token, size_t len, uint8_t out[32])
{
	SHA256((const unsigned char *)token, len, out);
}

/* ---- store operations ---- */

static void sess_op_unlink(struct sess_op *op)
{
	struct gw_rest_sess *s = op->s;

	if (op->prev)
		op->prev->next = op->next;
	else
		s->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	s->nops--;
}

static void sess_on_done(void *arg, const struct gw_store_res *res)
{
	struct sess_op *op = arg;
	struct gw_rest_sess *s = op->s;
	struct gw_rest_sess_found f = { .rc = GW_REST_SESS_ERROR };

	if (!s) {
		if (op->prev)	/* detached ops stay linked among themselves only */
			op->prev->next = op->next;
		if (op->next)
			op->next->prev = op->prev;
		sess_op_wipe_free(op);
		return;
	}
	sess_op_unlink(op);
	if (res->rc == GW_STORE_ERROR)
		s->st.store_errors++;
	switch (op->kind) {
	case SESS_OPEN:
		if (res->rc == 0) {
			s->st.opened++;
			op->open_cb(op->arg, GW_REST_SESS_OK, op->token, NULL);
		} else if (res->rc == GW_STORE_ERROR && res->err &&
			   strcmp(res->err, "state store is full") == 0) {	/* store.c's words */
			s->st.refused_full++;
			op->open_cb(op->arg, GW_REST_SESS_FULL, NULL, res->err);
		} else {
			/* a CONFLICT is 32 random bytes drawn twice: say so as a failure */
			op->open_cb(op->arg, GW_REST_SESS_ERROR, NULL,
				    res->rc == GW_STORE_ERROR ? res->err : "session token collision");
		}
		break;
	case SESS_FIND:
		if (res->rc == 0 && res->sess) {
			sess_remember(s, op->token_sha256, res->sess, op->now_ms);
			f.rc = GW_REST_SESS_OK;
			f.tenant = res->sess->tenant;
			f.key_sha256 = res->sess->key_sha256;
		} else if (res->rc == GW_STORE_ABSENT) {
			struct sess_slot *e = sess_cached(s, op->token_sha256);

			if (e)	/* believed past its TTL: gone from the store since */
				sess_slot_clear(s, e);
			s->st.unknown++;
			f.rc = GW_REST_SESS_UNKNOWN;
		} else {
			f.err = res->err ? res->err : "state store: unexpected answer";
		}
		op->find_cb(op->arg, &f);
		break;
	case SESS_REVOKE:
		if (res->rc == 0)
			s->st.revoked += (uint64_t)res->count;
		break;
	case SESS_SWEEP:
		if (res->rc == 0)
			s->st.expired += (uint64_t)res->count;
		break;
	case SESS_DROP:
		break;
	}
	sess_op_wipe_free(op);
}

/* A new operation linked in, or NULL (refused: too many in flight, or out of memory; counted). */
static struct sess_op *sess_op_new(struct gw_rest_sess *s, enum sess_kind kind)
{
	struct sess_op *op = NULL;

	if (s->nops >= GW_REST_SESS_MAX_OPS || !(op = calloc(1, sizeof *op))) {
		s->st.refused_busy++;
		return NULL;
	}
	op->s = s;
	op->kind = kind;
	op->next = s->ops;
	if (op->next)
		op->next->prev = op;
	s->ops = op;
	s->nops++;
	return op;
}

static void sess_b64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t j = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[j++] = a[v >> 18 & 63];
		out[j++] = a[v >> 12 & 63];
		out[j++] = a[v >> 6 & 63];
		out[j++] = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[j++] = a[v >> 18 & 63];
		out[j++] = a[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[j++] = a[v >> 18 & 63];
		out[j++] = a[v >> 12 & 63];
		out[j++] = a[v >> 6 & 63];
	}
	out[j] = '\0';
}

void gw_rest_sess_open(struct gw_rest_sess *s, const char *tenant, const uint8_t key_sha256[32],
		       int64_t now_ms, int64_t ttl_ms, gw_rest_sess_open_fn cb, void *arg)
{
	uint8_t raw[GW_REST_SESS_TOKEN_BYTES];
	struct gw_sess_req q = { .op = GW_SESS_PUT };
	struct sess_op *op = sess_op_new(s, SESS_OPEN);

	if (!op) {
		cb(arg, GW_REST_SESS_ERROR, NULL, "too many session operations in flight");
		return;
	}
	if (RAND_bytes(raw, sizeof raw) != 1) {
		sess_op_unlink(op);
		sess_op_wipe_free(op);
		cb(arg, GW_REST_SESS_ERROR, NULL, "no random bytes for a session token");
		return;
	}
	op->open_cb = cb;
	op->arg = arg;
	op->now_ms = now_ms;
	sess_b64url(raw, sizeof raw, op->token);
	OPENSSL_cleanse(raw, sizeof raw);
	sess_hash(op->token, GW_REST_SESS_TOKEN_LEN, op->token_sha256);
	q.token_sha256 = op->token_sha256;
	q.key_sha256 = key_sha256;
	q.tenant = tenant;
	q.now_ms = now_ms;
	q.expires_ms = now_ms + ttl_ms;
	/* done may run (and free op) before this returns */
	gw_store_sess(s->store, &q, sess_on_done, op);
}

void gw_rest_sess_find(struct gw_rest_sess *s, const char *token, size_t len, int64_t now_ms,
		       gw_rest_sess_find_fn cb, void *arg)
{
	struct gw_rest_sess_found f = { .rc = GW_REST_SESS_UNKNOWN };
	struct gw_sess_req q = { .op = GW_SESS_GET };
	struct sess_slot *e;
	struct sess_op *op;
	uint8_t h[32];

	if (len != GW_REST_SESS_TOKEN_LEN) {
		s->st.unknown++;
		cb(arg, &f);
		return;
	}
	sess_hash(token, len, h);
	e = sess_cached(s, h);
	if (e && e->expires_ms <= now_ms) {
		sess_slot_clear(s, e);
		s->st.unknown++;
		cb(arg, &f);
		return;
	}
	if (e && e->until_ms > now_ms) {
		s->st.cache_hits++;
		f.rc = GW_REST_SESS_OK;
		f.tenant = e->tenant;
		f.key_sha256 = e->key_sha256;
		cb(arg, &f);
		return;
	}
	s->st.cache_misses++;
	op = sess_op_new(s, SESS_FIND);
	if (!op) {
		f.rc = GW_REST_SESS_ERROR;
		f.err = "too many session operations in flight";
		cb(arg, &f);
		return;
	}
	op->find_cb = cb;
	op->arg = arg;
	op->now_ms = now_ms;
	memcpy(op->token_sha256, h, 32);
	q.token_sha256 = op->token_sha256;
	q.now_ms = now_ms;
	gw_store_sess(s->store, &q, sess_on_done, op);
}

/* A write whose answer only counts (drop, revoke, sweep). */
static void sess_write(struct gw_rest_sess *s, enum sess_kind kind, struct gw_sess_req *q)
{
	struct sess_op *op = sess_op_new(s, kind);

	if (!op)
		return;
	if (q->token_sha256) {
		memcpy(op->token_sha256, q->token_sha256, 32);
		q->token_sha256 = op->token_sha256;
	}
	gw_store_sess(s->store, q, sess_on_done, op);
}

void gw_rest_sess_drop(struct gw_rest_sess *s, const char *token, size_t len)
{
	struct gw_sess_req q = { .op = GW_SESS_DEL };
	struct sess_slot *e;
	uint8_t h[32];

	if (len != GW_REST_SESS_TOKEN_LEN)
		return;
	sess_hash(token, len, h);
	if ((e = sess_cached(s, h)))
		sess_slot_clear(s, e);
	q.token_sha256 = h;
	sess_write(s, SESS_DROP, &q);
}

void gw_rest_sess_revoke(struct gw_rest_sess *s, const uint8_t key_sha256[32])
{
	struct gw_sess_req q = { .op = GW_SESS_REVOKE, .key_sha256 = key_sha256 };

	for (size_t i = 0; i < s->slots; i++)
		if (s->cache[i].used && CRYPTO_memcmp(s->cache[i].key_sha256, key_sha256, 32) == 0)
			sess_slot_clear(s, &s->cache[i]);
	sess_write(s, SESS_REVOKE, &q);
}

void gw_rest_sess_sweep(struct gw_rest_sess *s, int64_t now_ms)
{
	struct gw_sess_req q = { .op = GW_SESS_EXPIRE, .now_ms = now_ms,
				 .max = GW_STORE_SESS_EXPIRE_MAX };

	sess_write(s, SESS_SWEEP, &q);
}

void gw_rest_sess_stats(const struct gw_rest_sess *s, struct gw_rest_sess_stats *out)
{
	*out = s->st;
}

const char *gw_rest_sess_cookie(const char *header, size_t *len)
{
	static const char name[] = "dmsess=";
	const char *p = header;

	while (p && *p) {
		const char *v;
		size_t n = 0;

		while (*p == ' ' || *p == ';' || *p == ',')
			p++;
		if (strncmp(p, name, sizeof name - 1) != 0) {
			p = strchr(p, ';');
			continue;
		}
		v = p + sizeof name - 1;
		while (v[n] && v[n] != ';' && v[n] != ',' && v[n] != ' ')
			n++;
		*len = n;
		return n ? v : NULL;
	}
	return NULL;
}
