/*
 * owner_recon: what became of a PENDING idempotency key, matched against the upstream job list
 * (pure: JSON in, verdict out; see gw_owner_recon_names and gw_owner_reconcile in owner.h). The
 * state machine and its counters stay in owner.c.
 */
#include "gateway/state/owner.h"
#include "gateway/state/owner_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "gateway/base/hex.h"

/* Percent-decodes src into dst (cap bytes); -1 when it does not fit. */
static int owner_unescape(const char *src, size_t n, char *dst, size_t cap)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];

		if (c == '%' && i + 2 < n && gw_hex_digit(src[i + 1]) >= 0 && gw_hex_digit(src[i + 2]) >= 0) {
			c = gw_hex_digit(src[i + 1]) * 16 + gw_hex_digit(src[i + 2]);
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
		n = strcspn(in, "?#");
		if (n >= cap)
			return NULL;
		memcpy(buf, in, n);
		buf[n] = '\0';
		return buf;
	}
	return NULL;
}

/* The last path segment of an upload source, percent-decoded into base; NULL when e is not an
 * upload URL source. */
static const char *owner_recon_file(const struct gw_idem *e, char *base, size_t cap)
{
	const char *slash;

	if (!strstr(e->source, "://") || e->done)
		return NULL;
	slash = strrchr(e->source, '/');
	if (!slash[1] || owner_unescape(slash + 1, strlen(slash + 1), base, cap) != 0)
		return NULL;
	return slash + 1;
}

/* Calls row(arg, rid) for each /list row of the entry's file since its key; -1 when the body is
 * not a list. row returns non-zero to stop. */
static int owner_recon_rows(const struct gw_idem *e, const char *base, const char *raw, json_t *list,
			    int (*row)(void *arg, const char *rid), void *arg)
{
	size_t i;
	json_t *r;

	if (!json_is_array(list))
		return -1;
	json_array_foreach(list, i, r) {
		json_t *ct = json_object_get(r, "ctime");
		const char *rid = json_string_value(json_object_get(r, "rid"));
		const char *name = json_string_value(json_object_get(r, "fileName"));

		if (!rid || !rid[0] || strlen(rid) > GW_STORE_RID_MAX || !name)
			continue;
		if (strcmp(name, base) != 0 && strcmp(name, raw) != 0)
			continue;
		if (json_is_number(ct) && (int64_t)json_number_value(ct) < e->created_ms - GW_OWNER_RECON_SKEW_MS)
			continue;
		if (row(arg, rid) != 0)
			break;
	}
	return 0;
}

struct owner_names {
	const char **rids;
	size_t n, max;
	char *blob, *at;
};

static int owner_names_row(void *arg, const char *rid)
{
	struct owner_names *x = arg;

	if (x->n < x->max) {
		size_t len = strlen(rid) + 1;

		memcpy(x->at, rid, len);
		x->rids[x->n] = x->at;
		x->at += len;
	}
	x->n++;
	return x->n > x->max;
}

long gw_owner_recon_names(const struct gw_idem *e, const char *list_json, size_t list_len,
			  const char **rids, size_t max, char **blob)
{
	char base[GW_STORE_SOURCE_MAX + 1];
	const char *raw = owner_recon_file(e, base, sizeof base);
	struct owner_names x = { rids, 0, max, NULL, NULL };
	json_t *root = NULL;
	long n = -1;

	*blob = NULL;
	if (!raw || !list_json)
		return -1;
	root = json_loadb(list_json, list_len, 0, NULL);
	x.blob = malloc(max * (GW_STORE_RID_MAX + 1) + 1);
	if (!x.blob)
		goto out;
	x.at = x.blob;
	if (owner_recon_rows(e, base, raw, json_object_get(root, "list"), owner_names_row, &x) != 0)
		goto out;
	n = x.n > max ? (long)max + 1 : (long)x.n;
	*blob = x.blob;
	x.blob = NULL;
out:
	free(x.blob);
	json_decref(root);
	return n;
}

struct owner_cands {
	struct gw_owner_recon *out;
	const char *const *recorded;
	size_t nrecorded;
	int overflow;
};

static int owner_cands_row(void *arg, const char *rid)
{
	struct owner_cands *x = arg;

	for (size_t i = 0; i < x->nrecorded; i++)
		if (strcmp(x->recorded[i], rid) == 0)
			return 0;	/* recorded: it belongs to another request */
	if (x->out->ncand == GW_OWNER_RECON_MAX) {
		x->overflow = 1;
		return 1;
	}
	snprintf(x->out->cand[x->out->ncand++], sizeof x->out->cand[0], "%s", rid);
	return 0;
}

enum gw_recon_verdict gw_owner_recon_decide(const struct gw_idem *e, const char *list_json,
					     size_t list_len, const char *const *recorded,
					     size_t nrecorded, const char *dl_json, size_t dl_len,
					     struct gw_owner_recon *out)
{
	char base[GW_STORE_SOURCE_MAX + 1];
	char input[GW_STORE_SOURCE_MAX + 1];
	const char *src = e->source, *raw;
	char matched[GW_OWNER_RECON_MAX][GW_STORE_RID_MAX + 1];
	size_t nmatch = 0, nname = 0, i;
	json_t *root = NULL, *dl = NULL, *links;
	struct owner_cands x = { out, recorded, nrecorded, 0 };
	enum gw_recon_verdict v;

	memset(out, 0, sizeof *out);
	if (!strstr(src, "://") || e->done)
		return owner_recon_set(out, GW_RECON_UNSUPPORTED,
				       "the job's source cannot be matched against the upstream job list");
	raw = owner_recon_file(e, base, sizeof base);
	if (!raw)
		return owner_recon_set(out, GW_RECON_UNSUPPORTED, "the upload URL names no file");
	root = list_json ? json_loadb(list_json, list_len, 0, NULL) : NULL;
	if (owner_recon_rows(e, base, raw, json_object_get(root, "list"), owner_cands_row, &x) != 0) {
		v = owner_recon_set(out, GW_RECON_ERROR, "upstream job list is not {\"list\": [...]}");
		goto out;
	}
	if (x.overflow) {
		snprintf(out->why, sizeof out->why,
			 "more than %d upstream jobs of file %.64s may be this request's; not guessing",
			 GW_OWNER_RECON_MAX, base);
		out->verdict = GW_RECON_AMBIGUOUS;
		v = out->verdict;
		goto out;
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

