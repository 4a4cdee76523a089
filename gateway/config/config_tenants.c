/*
 * config_tenants: accounts[] and tenants[] (keys, permissions, client_cert, rate), the lists whose
 * entries carry names, secrets' locations and API key hashes. Separate from the scalar sections:
 * this is where who-may-call-what is read.
 */
#include "gateway/config/config_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/caller/perm.h" /* layers: allow - the header-only enum of permission bits that keys[].permissions parses into */
#include "gateway/base/admission.h"
#include "gateway/base/hex.h"

#define CFG_BASE_MAX 48		/* "tenants[1023]", "tenants[1023].keys[63]" */

enum { ACC_NAME, ACC_URL, ACC_ID, ACC_FILE, ACC_ENV, ACC_INLINE, ACC_RATE, ACC_CONC, ACC_QUEUE,
       ACC_NKEYS };

static void cfg_account(struct gw_cfg_parse *p, yaml_node_t *n, size_t idx, struct gw_account_cfg *a)
{
	static const char *const keys[ACC_NKEYS] = { "name", "base_url", "client_id", "client_secret_file",
						     "client_secret_env", "client_secret", "rate_per_second",
						     "max_concurrent", "max_queue" };
	yaml_node_t *v[ACC_NKEYS], *k[ACC_NKEYS];
	char base[CFG_BASE_MAX], path[GW_CFG_PATH_MAX];
	long long x;

	gw_cfg_pathf(base, sizeof(base), "accounts[%zu]", idx);
	a->line = gw_cfg_line(n);
	if (gw_cfg_map(p, n, base, keys, ACC_NKEYS, v, k) < 0)
		return;
	/* Field by field; missing required ones are named on the entry's line. */
	gw_cfg_pathf(path, sizeof(path), "%s.name", base);
	if (!v[ACC_NAME])
		GW_CFG_ERR(p, n, "%s is required", path);
	else if (gw_cfg_string(p, v[ACC_NAME], path, &a->name) == 0) {
		for (size_t j = 0; j < idx; j++) {
			if (p->cfg->accounts[j].name && strcmp(p->cfg->accounts[j].name, a->name) == 0) {
				GW_CFG_ERR(p, v[ACC_NAME], "duplicate account name \"%s\" (first at line %d)",
					a->name, p->cfg->accounts[j].line);
				break;
			}
		}
	}
	gw_cfg_pathf(path, sizeof(path), "%s.base_url", base);
	if (!v[ACC_URL])
		GW_CFG_ERR(p, n, "%s is required", path);
	else if (gw_cfg_string(p, v[ACC_URL], path, &a->base_url) == 0) {
		if (!gw_cfg_base_url_ok(a->base_url)) {
			GW_CFG_ERR(p, v[ACC_URL], "%s must be an http:// or https:// URL without credentials, "
				"query or fragment", path);
		} else {
			size_t len = strlen(a->base_url);
			while (len > 0 && a->base_url[len - 1] == '/')
				a->base_url[--len] = '\0';
		}
	}
	gw_cfg_pathf(path, sizeof(path), "%s.client_id", base);
	if (!v[ACC_ID])
		GW_CFG_ERR(p, n, "%s is required", path);
	else
		gw_cfg_string(p, v[ACC_ID], path, &a->client_id);
	if (k[ACC_INLINE])
		GW_CFG_ERR(p, k[ACC_INLINE],
			"client_secret must not be inline; use client_secret_file or client_secret_env");
	if (v[ACC_FILE] && v[ACC_ENV])
		GW_CFG_ERR(p, v[ACC_ENV], "%s: set only one of client_secret_file or client_secret_env", base);
	else if (!v[ACC_FILE] && !v[ACC_ENV] && !k[ACC_INLINE])
		GW_CFG_ERR(p, n, "%s needs client_secret_file or client_secret_env", base);
	else if (v[ACC_FILE]) {
		gw_cfg_pathf(path, sizeof(path), "%s.client_secret_file", base);
		gw_cfg_string(p, v[ACC_FILE], path, &a->secret_file);
		a->secret_line = gw_cfg_line(v[ACC_FILE]);
	} else if (v[ACC_ENV]) {
		gw_cfg_pathf(path, sizeof(path), "%s.client_secret_env", base);
		gw_cfg_string(p, v[ACC_ENV], path, &a->secret_env);
	}
	gw_cfg_pathf(path, sizeof(path), "%s.rate_per_second", base);
	if (v[ACC_RATE])
		gw_cfg_double(p, v[ACC_RATE], path, 0, &a->rate_per_second);
	gw_cfg_pathf(path, sizeof(path), "%s.max_concurrent", base);
	if (v[ACC_CONC] && gw_cfg_long(p, v[ACC_CONC], path, 0, 100000, &x) == 0)
		a->max_concurrent = (unsigned)x;
	gw_cfg_pathf(path, sizeof(path), "%s.max_queue", base);
	if (v[ACC_QUEUE] && gw_cfg_long(p, v[ACC_QUEUE], path, 0, GW_ADM_MAX_QUEUE, &x) == 0)
		a->max_queue = (unsigned)x;
}

void gw_cfg_accounts(struct gw_cfg_parse *p, yaml_node_t *n)
{
	size_t count;

	if (gw_cfg_seq(p, n, "accounts", GW_CONFIG_MAX_ACCOUNTS, &count) < 0 || count == 0)
		return;
	p->cfg->accounts = calloc(count, sizeof(*p->cfg->accounts));
	if (!p->cfg->accounts) {
		GW_CFG_ERR(p, n, "out of memory");
		return;
	}
	p->cfg->naccounts = count;
	for (size_t i = 0; i < count; i++)
		cfg_account(p, gw_cfg_node(p, n->data.sequence.items.start[i]), i, &p->cfg->accounts[i]);
}

static void cfg_perms(struct gw_cfg_parse *p, yaml_node_t *n, const char *base, unsigned *perms)
{
	char path[GW_CFG_PATH_MAX];
	size_t count;

	gw_cfg_pathf(path, sizeof(path), "%s.permissions", base);
	if (gw_cfg_seq(p, n, path, 8, &count) < 0)
		return;
	if (count == 0) {
		GW_CFG_ERR(p, n, "%s must not be empty", path);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item = gw_cfg_node(p, n->data.sequence.items.start[i]);
		const char *v;

		gw_cfg_pathf(path, sizeof(path), "%s.permissions[%zu]", base, i);
		v = gw_cfg_scalar(p, item, path, "read, write or admin");
		if (!v)
			continue;
		if (strcmp(v, "read") == 0)
			*perms |= GW_PERM_READ;
		else if (strcmp(v, "write") == 0)
			*perms |= GW_PERM_WRITE;
		else if (strcmp(v, "admin") == 0)
			*perms |= GW_PERM_ADMIN;
		else {
			char q[GW_CFG_QUOTE_MAX];

			GW_CFG_ERR(p, item, "%s: unknown permission \"%s\" (read, write, admin)", path,
				   gw_cfg_quote(v, q));
		}
	}
}

static void cfg_key(struct gw_cfg_parse *p, yaml_node_t *n, const char *base, struct gw_key_cfg *key)
{
	static const char *const keys[] = { "sha256", "permissions" };
	yaml_node_t *v[2];
	char path[GW_CFG_PATH_MAX];
	const char *hex;

	key->line = gw_cfg_line(n);
	if (gw_cfg_map(p, n, base, keys, 2, v, NULL) < 0)
		return;
	gw_cfg_pathf(path, sizeof(path), "%s.sha256", base);
	if (!v[0]) {
		GW_CFG_ERR(p, n, "%s is required", path);
	} else if ((hex = gw_cfg_scalar(p, v[0], path, "64 hex digits")) != NULL) {
		size_t i;

		for (i = 0; i < 64 && hex[i] && gw_hex_digit(hex[i]) >= 0; i++)
			;
		if (i != 64 || hex[64]) {
			GW_CFG_ERR(p, v[0], "%s must be 64 hex digits (printf %%s \"$KEY\" | sha256sum)", path);
		} else {
			for (i = 0; i < 32; i++)
				key->sha256[i] = (uint8_t)(gw_hex_digit(hex[2 * i]) << 4 | gw_hex_digit(hex[2 * i + 1]));
			key->line = gw_cfg_line(v[0]);
		}
	}
	if (!v[1])
		GW_CFG_ERR(p, n, "%s.permissions is required", base);
	else
		cfg_perms(p, v[1], base, &key->perms);
}

/* tenants[i].client_cert: {cn: <subject CN>, permissions: [read, write]} (mTLS, see auth/caller/clientcert.h). */
static void cfg_client_cert(struct gw_cfg_parse *p, yaml_node_t *n, const char *base, struct gw_tenant_cfg *t)
{
	static const char *const keys[] = { "cn", "permissions" };
	yaml_node_t *v[2];
	char path[GW_CFG_PATH_MAX];

	t->client_cert_line = gw_cfg_line(n);
	if (gw_cfg_map(p, n, base, keys, 2, v, NULL) < 0)
		return;
	gw_cfg_pathf(path, sizeof(path), "%s.cn", base);
	if (!v[0])
		GW_CFG_ERR(p, n, "%s is required", path);
	else if (gw_cfg_string(p, v[0], path, &t->client_cert_cn) == 0) {
		t->client_cert_line = gw_cfg_line(v[0]);
		if (!t->client_cert_cn[0] || strlen(t->client_cert_cn) > GW_CONFIG_MAX_CERT_CN)
			GW_CFG_ERR(p, v[0], "%s must be 1 to %d characters", path, GW_CONFIG_MAX_CERT_CN);
	}
	if (!v[1])
		GW_CFG_ERR(p, n, "%s.permissions is required", base);
	else
		cfg_perms(p, v[1], base, &t->client_cert_perms);
}

/* tenants[i].limits: {uploads, watch_streams, start_jobs_in_flight, start_job_waiters}, each
 * 1..GW_CONFIG_MAX_SLOTS: this tenant's share of a long-lived resource (gw_config_tenant_cap). */
static void cfg_tenant_limits(struct gw_cfg_parse *p, yaml_node_t *n, const char *base,
			      struct gw_tenant_cfg *t)
{
	static const char *const keys[] = { "uploads", "watch_streams", "start_jobs_in_flight",
					    "start_job_waiters" };
	unsigned *dst[] = { &t->limits.uploads, &t->limits.watch_streams, &t->limits.start_jobs_in_flight,
			    &t->limits.start_job_waiters };
	yaml_node_t *v[4];
	char path[GW_CFG_PATH_MAX];
	long long x;

	if (gw_cfg_map(p, n, base, keys, 4, v, NULL) < 0)
		return;
	for (size_t i = 0; i < 4; i++) {
		gw_cfg_pathf(path, sizeof(path), "%s.%s", base, keys[i]);
		if (v[i] && gw_cfg_long(p, v[i], path, 1, GW_CONFIG_MAX_SLOTS, &x) == 0)
			*dst[i] = (unsigned)x;
	}
}

/* tenants[i].budget: {minutes_per_month (required), hard (true), count_failed (false), window
 * (month | rolling_30d)} (gateway/svc/budget.h). */
static void cfg_tenant_budget(struct gw_cfg_parse *p, yaml_node_t *n, const char *base,
			      struct gw_tenant_cfg *t)
{
	static const char *const keys[] = { "minutes_per_month", "hard", "count_failed", "window" };
	yaml_node_t *v[4];
	char path[GW_CFG_PATH_MAX];
	const char *w;

	t->budget.line = gw_cfg_line(n);
	t->budget.hard = 1;
	if (gw_cfg_map(p, n, base, keys, 4, v, NULL) < 0)
		return;
	gw_cfg_pathf(path, sizeof(path), "%s.minutes_per_month", base);
	if (!v[0])
		GW_CFG_ERR(p, n, "%s is required", path);
	else if (gw_cfg_long(p, v[0], path, 0, GW_CONFIG_MAX_BUDGET_MIN, &t->budget.minutes) == 0)
		t->budget.enabled = 1;
	gw_cfg_pathf(path, sizeof(path), "%s.hard", base);
	if (v[1])
		gw_cfg_bool(p, v[1], path, &t->budget.hard);
	gw_cfg_pathf(path, sizeof(path), "%s.count_failed", base);
	if (v[2])
		gw_cfg_bool(p, v[2], path, &t->budget.count_failed);
	gw_cfg_pathf(path, sizeof(path), "%s.window", base);
	if (v[3] && (w = gw_cfg_scalar(p, v[3], path, "month or rolling_30d")) != NULL) {
		if (strcmp(w, "month") == 0) {
			t->budget.window = GW_BUDGET_WINDOW_MONTH;
		} else if (strcmp(w, "rolling_30d") == 0) {
			t->budget.window = GW_BUDGET_WINDOW_ROLLING_30D;
		} else {
			char q[GW_CFG_QUOTE_MAX];

			GW_CFG_ERR(p, v[3], "%s must be month or rolling_30d, not \"%s\"", path,
				   gw_cfg_quote(w, q));
		}
	}
}

static void cfg_tenant(struct gw_cfg_parse *p, yaml_node_t *n, size_t idx, struct gw_tenant_cfg *t)
{
	static const char *const keys[] = { "name", "account", "rate", "see_foreign_jobs", "keys",
					    "client_cert", "limits", "budget" };
	static const char *const rate_keys[] = { "per_second", "burst", "costs" };
	yaml_node_t *v[8], *rv[3];
	char base[CFG_BASE_MAX], path[GW_CFG_PATH_MAX];
	size_t count;

	gw_cfg_pathf(base, sizeof(base), "tenants[%zu]", idx);
	t->line = gw_cfg_line(n);
	if (gw_cfg_map(p, n, base, keys, 8, v, NULL) < 0)
		return;
	gw_cfg_pathf(path, sizeof(path), "%s.name", base);
	if (!v[0])
		GW_CFG_ERR(p, n, "%s is required", path);
	else if (gw_cfg_string(p, v[0], path, &t->name) == 0) {
		for (size_t j = 0; j < idx; j++) {
			if (p->cfg->tenants[j].name && strcmp(p->cfg->tenants[j].name, t->name) == 0) {
				GW_CFG_ERR(p, v[0], "duplicate tenant name \"%s\" (first at line %d)", t->name,
					p->cfg->tenants[j].line);
				break;
			}
		}
	}
	gw_cfg_pathf(path, sizeof(path), "%s.account", base);
	if (!v[1])
		GW_CFG_ERR(p, n, "%s is required", path);
	else if (gw_cfg_string(p, v[1], path, &t->account) == 0)
		t->account_line = gw_cfg_line(v[1]);
	if (v[2]) {
		gw_cfg_pathf(path, sizeof(path), "%s.rate", base);
		if (gw_cfg_map(p, v[2], path, rate_keys, 3, rv, NULL) == 0) {
			gw_cfg_pathf(path, sizeof(path), "%s.rate.per_second", base);
			if (!rv[0])
				GW_CFG_ERR(p, v[2], "%s is required", path);
			else
				gw_cfg_double(p, rv[0], path, 1, &t->rate_per_second);
			gw_cfg_pathf(path, sizeof(path), "%s.rate.burst", base);
			if (rv[1])
				gw_cfg_double(p, rv[1], path, 1, &t->burst);
			else
				t->burst = t->rate_per_second > 1 ? t->rate_per_second : 1;
			gw_cfg_pathf(path, sizeof(path), "%s.rate.costs", base);
			if (rv[2])
				gw_cfg_costs(p, rv[2], path, &t->costs);
		}
	}
	gw_cfg_pathf(path, sizeof(path), "%s.see_foreign_jobs", base);
	if (v[3])
		gw_cfg_bool(p, v[3], path, &t->see_foreign_jobs);
	gw_cfg_pathf(path, sizeof(path), "%s.keys", base);
	if (v[4] && gw_cfg_seq(p, v[4], path, GW_CONFIG_MAX_KEYS, &count) == 0 && count > 0) {
		t->keys = calloc(count, sizeof(*t->keys));
		if (!t->keys) {
			GW_CFG_ERR(p, v[4], "out of memory");
			return;
		}
		t->nkeys = count;
		for (size_t i = 0; i < count; i++) {
			gw_cfg_pathf(path, sizeof(path), "%s.keys[%zu]", base, i);
			cfg_key(p, gw_cfg_node(p, v[4]->data.sequence.items.start[i]), path, &t->keys[i]);
		}
	}
	if (v[5] && !gw_cfg_is_null(v[5])) {
		gw_cfg_pathf(path, sizeof(path), "%s.client_cert", base);
		cfg_client_cert(p, v[5], path, t);
	}
	if (v[6]) {
		gw_cfg_pathf(path, sizeof(path), "%s.limits", base);
		cfg_tenant_limits(p, v[6], path, t);
	}
	if (v[7] && !gw_cfg_is_null(v[7])) {
		gw_cfg_pathf(path, sizeof(path), "%s.budget", base);
		cfg_tenant_budget(p, v[7], path, t);
	}
}

void gw_cfg_tenants(struct gw_cfg_parse *p, yaml_node_t *n)
{
	size_t count;

	if (gw_cfg_seq(p, n, "tenants", GW_CONFIG_MAX_TENANTS, &count) < 0 || count == 0)
		return;
	p->cfg->tenants = calloc(count, sizeof(*p->cfg->tenants));
	if (!p->cfg->tenants) {
		GW_CFG_ERR(p, n, "out of memory");
		return;
	}
	p->cfg->ntenants = count;
	for (size_t i = 0; i < count; i++)
		cfg_tenant(p, gw_cfg_node(p, n->data.sequence.items.start[i]), i, &p->cfg->tenants[i]);
}
