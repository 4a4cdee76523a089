/*
 * a3d: the command-line client of animate3d-gateway. What every command shares: exit codes, the
 * global options, the Ctrl-C flag and the option parser. One file per command group:
 * main.c (dispatch, global options, key), cmd_jobs.c (upload, start, watch, run, jobs),
 * cmd_download.c (download), cmd_account.c (credits, models), rpc.c (gRPC), progress.c (bars),
 * json.c (protobuf -> JSON for --json).
 *
 * Output: results on stdout (one value per line, or JSON with --json); progress, notes and errors
 * on stderr, so `rid=$(a3d start clip.mp4)` works with a progress bar on the terminal.
 */
#ifndef A3D_CLI_A3D_H
#define A3D_CLI_A3D_H

#include <signal.h>
#include <stdio.h>
#include <stddef.h>

#include "cli/rpc.h"

/* Exit codes (documented in cli/README.md and every --help). */
#define A3D_EXIT_OK 0
#define A3D_EXIT_LOCAL 1		/* a local failure: a file, a download, a job not finished */
#define A3D_EXIT_USAGE 2		/* bad command line */
#define A3D_EXIT_RPC 3			/* the gateway answered an error: code name and message printed */
#define A3D_EXIT_JOB_FAILED 4		/* a job ended FAILURE: its error code and message printed */
#define A3D_EXIT_INTERRUPTED 130	/* Ctrl-C: the call in flight was cancelled */

#define A3D_DEFAULT_ADDR "127.0.0.1:50051"
#define A3D_MAX_ARGS 64			/* options one command line may carry in a list (--param, rids) */

/* Set by the SIGINT/SIGTERM handler; every wait looks at it. */
extern volatile sig_atomic_t a3d_interrupted;

/* What the global options say; filled by a3d_parse before a command runs. */
struct a3d_global {
	const char *addr;		/* --addr, A3D_ADDR, else A3D_DEFAULT_ADDR */
	const char *key_file;		/* --key-file */
	const char *key_arg;		/* --key (visible to ps: opt-in only) */
	int json;			/* --json */
	int progress;			/* -1 auto (isatty(2)), 0 --no-progress, 1 --progress */
	long timeout_ms;		/* --timeout-ms for unary calls, default 30000 */
	struct a3d_tls tls;		/* --tls, --ca-file, --cert, --cert-key */
};

/* One command-specific option: long name, short letter (0 none), takes a value?, its help line. */
struct a3d_opt {
	const char *name;
	int letter;
	int has_arg;
	const char *help;
};

/* A parsed command line: the options in order, then the operands. */
struct a3d_args {
	struct a3d_global g;
	int nopt;
	struct {
		int idx;		/* index into the command's option table */
		const char *val;	/* its value, or NULL */
	} opt[A3D_MAX_ARGS];
	int npos;
	const char *pos[A3D_MAX_ARGS];
	int help;
};

/* A command: name, one line of summary, its usage text (after "usage: a3d "), options, runner. */
struct a3d_cmd {
	const char *name;
	const char *summary;
	const char *usage;
	const struct a3d_opt *opts;
	int (*run)(const struct a3d_cmd *cmd, struct a3d_args *a);
};

/* Parses argv (after the command name) against cmd's options and the global ones. Returns 0, or
 * A3D_EXIT_USAGE after printing what is wrong. Pure but for the message on stderr and getenv. */
int a3d_parse(const struct a3d_cmd *cmd, int argc, char **argv, struct a3d_args *a);
/* Prints cmd's help (usage, options, the global options, exit codes) to f. */
void a3d_usage(const struct a3d_cmd *cmd, FILE *f);
/* Prints "a3d CMD: " + message to stderr; returns A3D_EXIT_USAGE. */
int a3d_usage_error(const struct a3d_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Opens the connection of a's global options: the key from --key-file, else --key, else
 * A3D_API_KEY (never asked on a terminal; none at all only with a client certificate). Returns 0,
 * or an exit code after printing why. */
int a3d_connect(const struct a3d_args *a, struct a3d_rpc *r);
/* Reads a key file: the first line, trailing blanks and CR/LF dropped; at most
 * A3D_RPC_MAX_KEY_BYTES. Returns 0, or -1 with the reason in err. Wipes what it read but out. */
int a3d_read_key_file(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Prints an RPC error as "a3d: CODE_NAME: message" (or JSON with --json on stdout) and returns the
 * exit code it calls for (A3D_EXIT_RPC, or A3D_EXIT_INTERRUPTED after Ctrl-C). */
int a3d_rpc_fail(const struct a3d_args *a, const char *what, const struct a3d_status *st);

/* Whether progress bars are drawn (--progress/--no-progress, else isatty(2)). */
int a3d_progress_tty(const struct a3d_args *a);

/* The commands (cmd_*.c). */
extern const struct a3d_cmd a3d_cmd_upload, a3d_cmd_start, a3d_cmd_watch, a3d_cmd_run,
	a3d_cmd_jobs, a3d_cmd_download, a3d_cmd_credits, a3d_cmd_models;

/* Downloads every output file of rid into dir (made if missing). Prints the file names (or JSON)
 * on stdout. Returns an exit code. Used by download and run. */
int a3d_download_rid(const struct a3d_args *a, struct a3d_rpc *r, const char *rid, const char *dir);

#endif
