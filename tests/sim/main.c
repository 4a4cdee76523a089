/* animate3d-sim: the Animate 3D REST API simulator. Flags → struct sim → the loop. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "sim.h"
#include "sim_auth.h"

#define SIM_MAIN_MAX_ACCOUNT_FLAGS SIM_MAX_ACCOUNTS

static void sim_main_usage(FILE *f)
{
	fprintf(f, "usage: animate3d-sim [--listen HOST:PORT] [--session-ttl SECONDS] [--job-seconds SECONDS]\n"
		   "       [--account ID:SECRET]... [--storage-dir DIR] [--max-upload-bytes N]\n"
		   "       [--url-ttl SECONDS] [--credits N] [--seed N] [--lenient-auth]\n");
}

static int sim_main_double(const char *flag, const char *v, double min, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(v, &end);
	if (errno != 0 || *v == '\0' || *end != '\0' || *out < min) {
		fprintf(stderr, "animate3d-sim: %s: bad number '%s' (minimum %g)\n", flag, v, min);
		return -1;
	}
	return 0;
}

static int sim_main_listen(struct sim_config *cfg, const char *v)
{
	const char *colon = strrchr(v, ':');
	double port;

	if (colon == NULL || colon == v || (size_t)(colon - v) >= sizeof(cfg->listen_host) ||
	    sim_main_double("--listen", colon + 1, 0, &port) != 0 || port > 65535 ||
	    port != (int)port) {
		fprintf(stderr, "animate3d-sim: --listen wants HOST:PORT, got '%s'\n", v);
		return -1;
	}
	memcpy(cfg->listen_host, v, (size_t)(colon - v));
	cfg->listen_host[colon - v] = '\0';
	if (strcmp(cfg->listen_host, "localhost") == 0)	/* the listener takes IPv4 literals */
		snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
	cfg->listen_port = (int)port;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "session-ttl", required_argument, NULL, 't' },
		{ "job-seconds", required_argument, NULL, 'j' },
		{ "account", required_argument, NULL, 'a' },
		{ "storage-dir", required_argument, NULL, 'd' },
		{ "max-upload-bytes", required_argument, NULL, 'm' },
		{ "url-ttl", required_argument, NULL, 'u' },
		{ "credits", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 's' },
		{ "lenient-auth", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *accounts[SIM_MAIN_MAX_ACCOUNT_FLAGS];
	struct sim *s = calloc(1, sizeof(*s));
	int n_accounts = 0, opt, rc = 1;
	double d;

	if (s == NULL)
		return 1;
	snprintf(s->cfg.listen_host, sizeof(s->cfg.listen_host), "127.0.0.1");
	s->cfg.listen_port = 8090;
	s->cfg.session_ttl = 3600;
	s->cfg.job_seconds = 6;
	s->cfg.url_ttl = 3600;
	s->cfg.max_upload_bytes = 1ll << 30;
	s->cfg.credits = 1000;
	s->cfg.seed = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (sim_main_listen(&s->cfg, optarg) != 0)
				goto out;
			break;
		case 't':
			if (sim_main_double("--session-ttl", optarg, 1, &s->cfg.session_ttl) != 0)
				goto out;
			break;
		case 'j':
			if (sim_main_double("--job-seconds", optarg, 0.01, &s->cfg.job_seconds) != 0)
				goto out;
			break;
		case 'a':
			if (n_accounts == SIM_MAIN_MAX_ACCOUNT_FLAGS) {
				fprintf(stderr, "animate3d-sim: at most %d --account flags\n", SIM_MAIN_MAX_ACCOUNT_FLAGS);
				goto out;
			}
			accounts[n_accounts++] = optarg;
			break;
		case 'd':
			if (strlen(optarg) >= sizeof(s->cfg.storage_dir) - 64) {
				fprintf(stderr, "animate3d-sim: --storage-dir too long\n");
				goto out;
			}
			snprintf(s->cfg.storage_dir, sizeof(s->cfg.storage_dir), "%s", optarg);
			break;
		case 'm':
			if (sim_main_double("--max-upload-bytes", optarg, 1, &d) != 0)
				goto out;
			s->cfg.max_upload_bytes = (int64_t)d;
			break;
		case 'u':
			if (sim_main_double("--url-ttl", optarg, 1, &s->cfg.url_ttl) != 0)
				goto out;
			break;
		case 'c':
			if (sim_main_double("--credits", optarg, 0, &s->cfg.credits) != 0)
				goto out;
			break;
		case 's':
			if (sim_main_double("--seed", optarg, 0, &d) != 0)
				goto out;
			s->cfg.seed = (uint64_t)d;
			break;
		case 'L':
			s->cfg.lenient_auth = 1;
			break;
		case 'h':
			sim_main_usage(stdout);
			rc = 0;
			goto out;
		default:
			sim_main_usage(stderr);
			goto out;
		}
	}
	if (optind < argc) {
		sim_main_usage(stderr);
		goto out;
	}
	/* The default account always exists; --account adds more (or changes its secret). */
	if (sim_auth_account_add(s, "demo-client-id:demo-client-secret") != 0)
		goto out;
	for (int i = 0; i < n_accounts; i++)
		if (sim_auth_account_add(s, accounts[i]) != 0) {
			fprintf(stderr, "animate3d-sim: --account wants ID:SECRET (id < %d, secret < %d bytes)\n",
				SIM_CLIENT_ID_MAX, SIM_SECRET_MAX);
			goto out;
		}
	if (sim_init(s) != 0)
		goto out;
	printf("animate3d-sim listening on %s\n", s->base_url);
	fflush(stdout);
	event_base_dispatch(s->base);
	rc = 0;
out:
	sim_free(s);
	free(s);
	return rc;
}
