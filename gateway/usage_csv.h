/*
 * usage_csv: the monthly usage export (issue 22), a subcommand of the gateway binary:
 *
 *   animate3d-gateway usage --month YYYY-MM [-c|--config FILE]
 *
 * Reads the usage ledger from the state store the configuration names (FILE, default
 * GW_USAGE_CSV_DEFAULT_CONFIG: the container image's path) and prints one CSV line per ledger
 * row of jobs started in that calendar month (UTC), oldest first, after a header:
 *
 *   tenant,reservation,rid,state,seconds,counted_seconds,input_seconds,persons,face,hand,
 *   source,started_at,ended_at
 *
 * state: reserved, running, succeeded, failed, released; seconds: reserved, then charged;
 * counted_seconds: what weighs on the team's budget (and its bill); input_seconds: the input's
 * duration, empty when unknown; times RFC 3339 UTC, ended_at empty while the job runs. Fields
 * with a comma, quote or line break are quoted (RFC 4180).
 *
 * PostgreSQL: read while the gateways run. SQLite: the file is held exclusively by a running
 * gateway, so export from a stopped one (or a copy of the file). A memory store keeps no ledger
 * past its process: refused. Exit status 0, 1 (configuration, store; one line on stderr), 2 (usage).
 */
#ifndef A3D_GATEWAY_USAGE_CSV_H
#define A3D_GATEWAY_USAGE_CSV_H

#include <stdio.h>

#define GW_USAGE_CSV_DEFAULT_CONFIG "/etc/animate3d-gateway/gateway.yaml"
#define GW_USAGE_CSV_WAIT_MS 30000	/* one page's answer from PostgreSQL, at most */

struct gw_usage_row;

/* argv[0] is "usage". */
int gw_usage_csv_main(int argc, char **argv);

/* One row as a CSV line (with its newline) on out. Pure; unit-tested. */
void gw_usage_csv_row(FILE *out, const struct gw_usage_row *w);
/* The header line. */
void gw_usage_csv_header(FILE *out);

#endif
