/*
 * Fuzz target: an upstream webhook delivery as the gateway's HTTP side receives it
 * (gateway/svc/webhook_in.h). The input is "path NUL signature NUL body": a missing first NUL makes it
 * all path (no signature, empty body), a missing second NUL all signature. Each piece goes through
 * its own check (match, verify, parse) and then all of them through gw_webhook_in_check against a
 * two-account config, with the contract's invariants asserted: the fuzzer reports a broken one as
 * a crash, not only memory errors.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config/config.h"
#include "gateway/svc/webhook_in.h"

#define FUZZ_WEBHOOK_CLIENT_ID "demo-client-id"

/* abort() is what libFuzzer and the replayer both report with the input that caused it. */
static void fuzz_webhook_require(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_account_cfg accts[2] = {
		{ .name = (char *)"main", .client_id = (char *)FUZZ_WEBHOOK_CLIENT_ID },
		{ .name = (char *)"other", .client_id = (char *)"other-client" },
	};
	struct gw_config cfg = { .accounts = accts, .naccounts = 2 };
	struct gw_webhook_in_counters cnt = { 0 };
	struct gw_webhook_in_event ev;
	char *buf, *path, *sig = NULL, *body = NULL, *nul;
	size_t blen = 0;
	int parsed, verified, http;

	/* One extra NUL so that every piece is a C string, whatever the input ends with. */
	if (!(buf = malloc(size + 1)))
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	path = buf;
	if ((nul = memchr(buf, '\0', size))) {
		sig = nul + 1;
		if ((nul = memchr(sig, '\0', size - (size_t)(sig - buf)))) {
			body = nul + 1;
			blen = size - (size_t)(body - buf);
		}
	}

	gw_webhook_in_match(NULL, path);
	gw_webhook_in_match("/hooks/", path);

	verified = gw_webhook_in_verify(sig, FUZZ_WEBHOOK_CLIENT_ID);
	fuzz_webhook_require(verified == (sig && strcmp(sig, FUZZ_WEBHOOK_CLIENT_ID) == 0));

	parsed = gw_webhook_in_parse(body, blen, &ev);
	fuzz_webhook_require(parsed == 0 || parsed == -1);
	if (parsed == 0 && ev.completed)
		fuzz_webhook_require(gw_tr_rid_valid(ev.rid));

	http = gw_webhook_in_check(&cfg, NULL, path, sig, body, blen, &ev, &cnt);
	fuzz_webhook_require(http == 200 || http == 400 || http == 401 || http == 404 || http == 413);
	/* Exactly one counter moves per delivery. */
	fuzz_webhook_require(cnt.accepted + cnt.ignored + cnt.rej_path + cnt.rej_signature +
			     cnt.rej_size + cnt.rej_malformed == 1);
	if (http == 200) {
		fuzz_webhook_require(gw_webhook_in_match(NULL, path));
		fuzz_webhook_require(ev.account < cfg.naccounts);
		fuzz_webhook_require(sig && strcmp(sig, accts[ev.account].client_id) == 0);
		fuzz_webhook_require(!ev.completed || gw_tr_rid_valid(ev.rid));
	}
	free(buf);
	return 0;
}
