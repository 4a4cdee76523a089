/*
 * usage_csv: `animate3d-gateway usage --month YYYY-MM`. See usage_csv.h.
 */
#include "gateway/usage_csv.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "gateway/base/clock.h"
#include "gateway/config/config.h"
#include "gateway/server.h"
#include "gateway/state/store.h"
#include "gateway/svc/budget.h"

#define CSV_ERR_MAX 512

static const char *const csv_states[GW_USAGE_NSTATES] = { "reserved", "running", "succeeded",
							  "failed", "released" };

/* One field: quoted when it holds a comma, quote or line break (quotes doubled). */
static void csv_field(FILE *out, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

void gw_usage_csv_header(FILE *out)
{
	fputs("tenant,reservation,rid,state,seconds,counted_seconds,input_seconds,persons,face,hand,"
	      "source,started_at,ended_at\n", out);
}

void gw_usage_csv_row(FILE *out, const struct gw_usage_row *w)
{
	char at[32];

	csv_field(out, w->tenant);
	fputc(',', out);
	csv_field(out, w->id);
	fputc(',', out);
	csv_field(out, w->rid);
	fprintf(out, ",%s,%" PRId64 ",%" PRId64 ",",
		w->state >= 0 && w->state < GW_USAGE_NSTATES ? csv_states[w->state] : "unknown",
		w->seconds, w->counted);
	if (w->input_ms >= 0)
		fprintf(out, "%" PRId64 ".%03" PRId64, w->input_ms / 1000, w->input_ms % 1000);
	fprintf(out, ",%d,%d,%d,", w->persons, w->face != 0, w->hand != 0);
	csv_field(out, w->source);
	fprintf(out, ",%s,", gw_budget_rfc3339(w->started_ms, at, sizeof at));
	if (w->ended_ms > 0)
		fputs(gw_budget_rfc3339(w->ended_ms, at, sizeof at), out);
	fputc('\n', out);
}

static void csv_usage(FILE *f)
{
	fprintf(f, "usage: animate3d-gateway usage --month YYYY-MM [-c|--config FILE]\n"
		   "  prints the usage ledger's rows of jobs started in that month (UTC) as CSV;\n"
		   "  FILE defaults to %s\n", GW_USAGE_CSV_DEFAULT_CONFIG);
}

/* The state store of cfg, read-only where that exists (SQLite); NULL with err. */
static struct gw_store *csv_store_open(const struct gw_config *cfg, struct event_base *base,
				       char *err, size_t errlen)
{
	const struct gw_pg_cfg *pc = &cfg->state.postgres;

	if (!pc->enabled) {
		if (cfg->state.memory_only || !cfg->state.path) {
			snprintf(err, errlen, "%s: the state is in memory (state.memory): no usage ledger"
					      " outlives the gateway's process", cfg->path);
			return NULL;
		}
		return gw_store_open(cfg->state.path, 1, err, errlen);
	}
	return gw_server_open_pg(base, pc, "a3dgw usage", 1, err, errlen);
}

/* One page's answer: the rows printed, the mark of the last one kept. */
struct csv_page {
	int done, rc;
	long count;
	int64_t last_ms;
	char last_id[GW_USAGE_ID_MAX + 1];
	char err[GW_STORE_ERR_MAX];
};

static void csv_page_done(void *arg, const struct gw_store_res *res)
{
	struct csv_page *p = arg;

	p->done = 1;
	p->rc = res->rc;
	p->count = res->rc == 0 ? res->count : 0;
	if (res->rc != 0)
		snprintf(p->err, sizeof p->err, "%s", res->err ? res->err : "state store failed");
	for (long i = 0; i < p->count; i++)
		gw_usage_csv_row(stdout, &res->usage[i]);
	if (p->count > 0) {
		p->last_ms = res->usage[p->count - 1].started_ms;
		snprintf(p->last_id, sizeof p->last_id, "%s", res->usage[p->count - 1].id);
	}
}

/* Prints every row of [from, to); 0, or -1 with err. */
static int csv_dump(struct gw_store *s, struct event_base *base, int64_t from, int64_t to,
		    char *err, size_t errlen)
{
	struct csv_page p = { .last_ms = from };

	gw_usage_csv_header(stdout);
	for (;;) {
		struct gw_usage_req q = { .op = GW_USAGE_LIST, .from_ms = p.last_ms, .to_ms = to,
					  .after = p.last_id, .max = GW_USAGE_LIST_MAX };
		int64_t until = gw_clock_now_us() + GW_USAGE_CSV_WAIT_MS * 1000LL;
		struct timeval tick = { 0, 20000 };
		char after[GW_USAGE_ID_MAX + 1];

		snprintf(after, sizeof after, "%s", p.last_id);
		q.after = after;
		p.done = 0;
		gw_store_usage(s, &q, csv_page_done, &p);
		while (!p.done && gw_clock_now_us() < until) {
			event_base_loopexit(base, &tick);
			event_base_loop(base, EVLOOP_ONCE);
		}
		if (!p.done) {
			snprintf(err, errlen, "the state store did not answer within %d ms",
				 GW_USAGE_CSV_WAIT_MS);
			return -1;
		}
		if (p.rc != 0) {
			snprintf(err, errlen, "%s", p.err);
			return -1;
		}
		if ((size_t)p.count < GW_USAGE_LIST_MAX)
			return 0;
	}
}

int gw_usage_csv_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "month", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = GW_USAGE_CSV_DEFAULT_CONFIG, *month = NULL;
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;
	struct event_base *base = NULL;
	struct gw_store *s = NULL;
	char err[CSV_ERR_MAX];
	int64_t from, to;
	int opt, rc = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "m:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			month = optarg;
			break;
		case 'c':
			path = optarg;
			break;
		case 'h':
			csv_usage(stdout);
			return 0;
		default:
			csv_usage(stderr);
			return 2;
		}
	}
	if (!month || optind != argc) {
		csv_usage(stderr);
		return 2;
	}
	if (gw_budget_month(month, &from, &to) != 0) {
		fprintf(stderr, "animate3d-gateway usage: --month wants YYYY-MM, not \"%.16s\"\n", month);
		return 2;
	}
	if (gw_config_load(path, &cfg, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		if (errs.n == 0)
			fprintf(stderr, "%s: cannot load the configuration\n", path);
		cfg = NULL;
		goto out;
	}
	base = event_base_new();
	if (!base) {
		fprintf(stderr, "animate3d-gateway usage: out of memory\n");
		goto out;
	}
	s = csv_store_open(cfg, base, err, sizeof err);
	if (!s) {
		fprintf(stderr, "animate3d-gateway usage: %s\n", err);
		goto out;
	}
	if (csv_dump(s, base, from, to, err, sizeof err) != 0) {
		fprintf(stderr, "animate3d-gateway usage: %s\n", err);
		goto out;
	}
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	gw_store_close(s);
	if (base)
		event_base_free(base);
	gw_config_free(cfg);
	gw_errors_clear(&errs);
	return rc;
}
