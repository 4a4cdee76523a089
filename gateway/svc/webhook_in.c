/*
 * webhook_in: parse and verify job.completed deliveries, and the HTTP route. See webhook_in.h.
 */
#include "gateway/svc/webhook_in.h"

#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "gateway/config/config.h"

#define WEBHOOK_IN_MAX_DEPTH 8		/* JSON nesting accepted in a delivery */

int gw_webhook_in_match(const char *prefix, const char *path)
{
	if (!prefix)
		prefix = GW_WEBHOOK_IN_PREFIX;
	return path && strncmp(path, prefix, strlen(prefix)) == 0;
}

int gw_webhook_in_verify(const char *sig, const char *client_id)
{
	size_t a, b;

	if (!sig || !client_id)
		return 0;
	a = strnlen(sig, GW_WEBHOOK_IN_MAX_SIG + 1);
	b = strlen(client_id);
	/* The length is not secret-dependent in a useful way; the bytes are compared in constant time. */
	if (a != b || a == 0 || a > GW_WEBHOOK_IN_MAX_SIG)
		return 0;
	return CRYPTO_memcmp(sig, client_id, a) == 0;
}

static int webhook_in_depth_ok(json_t *v, int depth)
{
	const char *k;
	json_t *it;
	size_t i;

	if (depth > WEBHOOK_IN_MAX_DEPTH)
		return 0;
	if (json_is_object(v)) {
		json_object_foreach(v, k, it)
			if (!webhook_in_depth_ok(it, depth + 1))
				return 0;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, it)
			if (!webhook_in_depth_ok(it, depth + 1))
				return 0;
	}
	return 1;
}

int gw_webhook_in_parse(const char *body, size_t len, struct gw_webhook_in_event *ev)
{
	json_t *root = NULL, *data, *v;
	const char *type, *rid, *status;
	int rc = -1;

	memset(ev, 0, sizeof *ev);
	if (!body || len == 0 || len > GW_WEBHOOK_IN_MAX_BODY)
		goto out;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root) || !webhook_in_depth_ok(root, 0))
		goto out;
	v = json_object_get(root, "eventType");
	if (!json_is_string(v))
		goto out;
	type = json_string_value(v);
	if (strcmp(type, "job.completed") != 0) {
		rc = 0;		/* another event: authentic but nothing to do */
		goto out;
	}
	data = json_object_get(root, "data");
	if (!json_is_object(data))
		goto out;
	v = json_object_get(data, "taskId");
	rid = json_is_string(v) ? json_string_value(v) : NULL;
	v = json_object_get(data, "status");
	status = json_is_string(v) ? json_string_value(v) : NULL;
	if (!rid || !gw_tr_rid_valid(rid) || !status)
		goto out;
	if (strcmp(status, "success") != 0 && strcmp(status, "failure") != 0)
		goto out;
	strcpy(ev->rid, rid);	/* gw_tr_rid_valid bounds it to GW_TR_RID_MAX */
	ev->success = strcmp(status, "success") == 0;
	ev->completed = 1;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int gw_webhook_in_check(const struct gw_config *cfg, const char *prefix, const char *path,
			const char *sig, const char *body, size_t len, struct gw_webhook_in_event *ev,
			struct gw_webhook_in_counters *cnt)
{
	const char *name;
	int acct;

	if (!prefix)
		prefix = GW_WEBHOOK_IN_PREFIX;
	memset(ev, 0, sizeof *ev);
	if (!cfg || !gw_webhook_in_match(prefix, path)) {
		cnt->rej_path++;
		return 404;
	}
	name = path + strlen(prefix);
	acct = strchr(name, '/') ? -1 : gw_config_account_index(cfg, name);
	if (acct < 0) {
		cnt->rej_path++;
		return 404;
	}
	if (len > GW_WEBHOOK_IN_MAX_BODY) {
		cnt->rej_size++;
		return 413;
	}
	if (!gw_webhook_in_verify(sig, cfg->accounts[acct].client_id)) {
		cnt->rej_signature++;
		return 401;
	}
	if (gw_webhook_in_parse(body, len, ev) != 0) {
		cnt->rej_malformed++;
		return 400;
	}
	ev->account = (size_t)acct;
	if (ev->completed)
		cnt->accepted++;
	else
		cnt->ignored++;
	return 200;
}

const char *gw_webhook_in_prefix(const struct gw_config *cfg)
{
	return cfg && cfg->webhooks.path_prefix ? cfg->webhooks.path_prefix : GW_WEBHOOK_IN_PREFIX;
}
