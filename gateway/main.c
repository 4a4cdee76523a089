/*
 * animate3d-gateway: command line, process setup, then the server's loop (gateway/server.c).
 *
 *   animate3d-gateway -c FILE [--check-config] [--grace-ms N] [-h] [--version]
 *   animate3d-gateway usage --month YYYY-MM [-c FILE]   (the usage export: gateway/usage_csv.h)
 *
 * Exit status: 0 after a clean drain (SIGTERM/SIGINT) or a good --check-config; 1 on a bad
 * configuration or a startup failure (one clear line on stderr); 2 on bad usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <event2/thread.h>

#include "auth/upstream/secret.h"
#include "gateway/config/config.h"
#include "gateway/base/fdlimit.h"
#include "gateway/base/log.h"
#include "gateway/server.h"
#include "gateway/svc/webhook_token.h"
#include "gateway/usage_csv.h"

#ifndef A3D_VERSION
#define A3D_VERSION "dev"
#endif

#define MAIN_ERR_MAX 512

static void main_usage(FILE *f)
{
	fprintf(f,
		"usage: animate3d-gateway -c FILE [--check-config] [--grace-ms N] [-h] [--version]\n"
		"       animate3d-gateway usage --month YYYY-MM [-c FILE]   (usage ledger as CSV)\n"
		"  -c, --config FILE   YAML configuration (see examples/demo.yaml)\n"
		"  -n, --check-config  check the configuration, print \"configuration OK\" or the errors\n"
		"      --grace-ms N    on SIGTERM, let in-flight calls finish for up to N ms (default %d)\n"
		"  -h, --help          this text\n"
		"      --version       print the version\n",
		GW_SERVER_DEFAULT_GRACE_MS);
}

/* Loads the configuration or prints every error line; NULL on failure. */
/* --check-config also reads every secret file (the accounts', the PostgreSQL and Redis passwords',
 * the Redis seal key) and the webhook path token's, with the same rules as start-up (owner-only
 * mode, size, the seal key's form), so a config it calls OK is one the daemon will run. Environment
 * variables are not checked: the checking shell rarely has the daemon's environment. It never
 * connects to PostgreSQL or Redis. */
static int main_check_secret_files(const struct gw_config *cfg)
{
	int rc = 0;

	for (size_t i = 0; i < cfg->naccounts; i++) {
		const struct gw_account_cfg *a = &cfg->accounts[i];
		char err[256], *secret = NULL;
		size_t len = 0;

		if (!a->secret_file)
			continue;
		if (gw_secret_load(a, &secret, &len, err, sizeof err) != 0) {
			fprintf(stderr, "%s:%d: accounts[%zu].client_secret_file: %s\n", cfg->path, a->secret_line,
				i, err);
			rc = -1;
			continue;
		}
		gw_secret_free(secret, len);
	}
	/* The PostgreSQL password file too; never a connection: --check-config says whether the
	 * daemon would start with this file, not whether the server is up. */
	if (cfg->state.postgres.enabled && cfg->state.postgres.password_file) {
		char err[256], *pw = NULL;
		size_t len = 0;

		if (gw_secret_load_pg(&cfg->state.postgres, &pw, &len, err, sizeof err) != 0) {
			fprintf(stderr, "%s:%d: state.postgres.password_file: %s\n", cfg->path,
				cfg->state.postgres.password_line, err);
			rc = -1;
		}
		gw_secret_free(pw, len);
	}
	if (cfg->redis.enabled && cfg->redis.password_file) {
		char err[256], *pw = NULL;
		size_t len = 0;

		if (gw_secret_load_redis(&cfg->redis, &pw, &len, err, sizeof err) != 0) {
			fprintf(stderr, "%s:%d: redis.password_file: %s\n", cfg->path, cfg->redis.password_line,
				err);
			rc = -1;
		}
		gw_secret_free(pw, len);
	}
	if (cfg->redis.enabled) {
		uint8_t key[GW_SECRET_SEAL_KEY_LEN];
		char err[256];

		if (gw_secret_load_seal_key(cfg->redis.seal_key_file, key, err, sizeof err) != 0) {
			fprintf(stderr, "%s:%d: redis.seal_key_file: %s\n", cfg->path, cfg->redis.seal_key_line,
				err);
			rc = -1;
		}
		explicit_bzero(key, sizeof key);
	}
	if (cfg->webhooks.path_token_file) {
		char token[GW_WEBHOOK_TOKEN_MAX + 1], err[256];
		size_t len = 0;

		if (gw_webhook_token_read(cfg->webhooks.path_token_file, token, &len, err, sizeof err) != 0) {
			fprintf(stderr, "%s:%d: webhooks.path_token_file: %s\n", cfg->path,
				cfg->webhooks.path_token_line, err);
			rc = -1;
		}
		explicit_bzero(token, sizeof token);
	}
	return rc;
}

/* Every descriptor the hard limit allows: running out kills gRPC core's listener for good
 * (gateway/base/fdlimit.h). The listeners' caps are derived from what this leaves. */
static void main_raise_fd_limit(void)
{
	struct gw_fdlimit fl;
	int rc = gw_fdlimit_raise(&fl);

	gw_log(rc ? GW_LOG_WARN : GW_LOG_INFO, "fd_limit",
	       GW_LS("msg", rc ? "cannot raise the open-file limit" : "open-file limit"),
	       GW_LN("soft_before", (long long)fl.soft_before), GW_LN("soft", (long long)fl.soft),
	       GW_LN("hard", (long long)fl.hard), GW_LEND);
}

static struct gw_config *main_load(const char *path)
{
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;

	if (gw_config_load(path, &cfg, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		if (errs.dropped)
			fprintf(stderr, "%s: %zu more errors not shown\n", path, errs.dropped);
		if (errs.n == 0 && errs.dropped == 0)
			fprintf(stderr, "%s: cannot load the configuration\n", path);
		cfg = NULL;
	}
	gw_errors_clear(&errs);
	return cfg;
}

int main(int argc, char **argv)
{
	enum { OPT_GRACE = 256, OPT_VERSION };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "grace-ms", required_argument, NULL, OPT_GRACE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	int check = 0, opt, rc = 1;
	long grace_ms = GW_SERVER_DEFAULT_GRACE_MS;
	char *end;
	char err[MAIN_ERR_MAX];
	struct gw_config *cfg;
	struct gw_server *srv = NULL;

	if (argc > 1 && strcmp(argv[1], "usage") == 0)
		return gw_usage_csv_main(argc - 1, argv + 1);
	while ((opt = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case OPT_GRACE:
			grace_ms = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || grace_ms < 0 ||
			    grace_ms > GW_SERVER_MAX_GRACE_MS) {
				fprintf(stderr, "animate3d-gateway: --grace-ms wants 0..%d\n",
					GW_SERVER_MAX_GRACE_MS);
				return 2;
			}
			break;
		case 'h':
			main_usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("animate3d-gateway %s\n", A3D_VERSION);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (!path || optind != argc) {
		main_usage(stderr);
		return 2;
	}
	if (check) {
		cfg = main_load(path);
		if (!cfg)
			return 1;
		rc = main_check_secret_files(cfg);
		gw_config_free(cfg);
		if (rc != 0)
			return 1;
		printf("configuration OK\n");
		return 0;
	}

	/* Process setup that must precede every thread (gRPC's and ours). */
	signal(SIGPIPE, SIG_IGN);
	main_raise_fd_limit();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "animate3d-gateway: cannot initialise libcurl\n");
		return 1;
	}
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "animate3d-gateway: cannot enable libevent threading\n");
		goto out;
	}
	cfg = main_load(path);
	if (!cfg)
		goto out;
	srv = gw_server_new(cfg, path, grace_ms, err, sizeof err);	/* takes cfg */
	if (!srv) {
		fprintf(stderr, "animate3d-gateway: %s\n", err);
		goto out;
	}
	srv->version = A3D_VERSION;
	if (gw_server_run(srv) != 0)
		goto out;
	rc = 0;
out:
	gw_server_free(srv);
	if (rc == 0)
		gw_log(GW_LOG_INFO, "server", GW_LS("msg", "clean exit"), GW_LEND);
	curl_global_cleanup();
	return rc;
}
