/*
 * a3d: the command table, the option parser, the global options (address, key), signals, and the
 * ways a command ends (exit codes in a3d.h).
 */
#include "cli/a3d.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <grpc/grpc.h>
#include <jansson.h>

#define MAIN_KEY_FILE_MAX 4096		/* bytes read of a key file: a key and a newline fit */

enum {
	G_ADDR, G_KEY_FILE, G_KEY, G_JSON, G_PROGRESS, G_NO_PROGRESS, G_TIMEOUT, G_TLS, G_CA, G_CERT,
	G_CERT_KEY, G_HELP, G_N
};

static const struct a3d_opt main_global[G_N] = {
	[G_ADDR] = { "addr", 0, 1, NULL },
	[G_KEY_FILE] = { "key-file", 0, 1, NULL },
	[G_KEY] = { "key", 0, 1, NULL },
	[G_JSON] = { "json", 0, 0, NULL },
	[G_PROGRESS] = { "progress", 0, 0, NULL },
	[G_NO_PROGRESS] = { "no-progress", 0, 0, NULL },
	[G_TIMEOUT] = { "timeout-ms", 0, 1, NULL },
	[G_TLS] = { "tls", 0, 0, NULL },
	[G_CA] = { "ca-file", 0, 1, NULL },
	[G_CERT] = { "cert", 0, 1, NULL },
	[G_CERT_KEY] = { "cert-key", 0, 1, NULL },
	[G_HELP] = { "help", 'h', 0, NULL },
};

static const struct a3d_cmd *const main_cmds[] = {
	&a3d_cmd_upload, &a3d_cmd_start, &a3d_cmd_watch, &a3d_cmd_download, &a3d_cmd_run,
	&a3d_cmd_jobs, &a3d_cmd_credits, &a3d_cmd_models,
};

static const char main_global_help[] =
	"global options (before or after the command):\n"
	"  --addr HOST:PORT    the gateway (default $A3D_ADDR, else " A3D_DEFAULT_ADDR ")\n"
	"  --key-file FILE     read the API key from the first line of FILE\n"
	"  --key KEY           the API key on the command line: visible in ps and shell history,\n"
	"                      so only when asked for; default $A3D_API_KEY\n"
	"  --json              machine-readable output on stdout (one JSON object per line)\n"
	"  --progress          draw progress bars even when stderr is not a terminal\n"
	"  --no-progress       plain progress lines even on a terminal\n"
	"  --timeout-ms N      deadline of each unary call (default 30000)\n"
	"  --tls               TLS, the server checked against the system's roots\n"
	"  --ca-file FILE      TLS, the server checked against the CA certificates in FILE\n"
	"  --cert FILE --cert-key FILE   TLS with this client certificate (the gateway may map it\n"
	"                      to a team: then no API key is needed)\n"
	"  -h, --help          this help\n"
	"exit codes: 0 ok, 1 local failure (file, download), 2 usage error, 3 RPC error (gRPC code\n"
	"name and message printed), 4 job failed (job error code and message printed), 130 Ctrl-C\n";

static void main_signal(int sig)
{
	/* The first Ctrl-C cancels cleanly; a second one, if the first seems not to, ends a3d at
	 * once (_exit is async-signal-safe; nothing is flushed or freed). */
	if (a3d_interrupted)
		_exit(A3D_EXIT_INTERRUPTED);
	a3d_interrupted = sig;
}

int a3d_usage_error(const struct a3d_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "a3d%s%s: ", cmd ? " " : "", cmd ? cmd->name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (a3d %s%s--help)\n", cmd ? cmd->name : "", cmd ? " " : "");
	if (cmd)
		fprintf(stderr, "usage: a3d %s\n", cmd->usage);
	return A3D_EXIT_USAGE;
}

void a3d_usage(const struct a3d_cmd *cmd, FILE *f)
{
	const struct a3d_opt *o;

	fprintf(f, "usage: a3d %s\n\n%s\n", cmd->usage, cmd->summary);
	if (cmd->opts && cmd->opts[0].name) {
		fprintf(f, "\noptions:\n");
		for (o = cmd->opts; o->name; o++)
			fprintf(f, "  %s\n", o->help ? o->help : o->name);
	}
	fprintf(f, "\n%s", main_global_help);
}

/* Finds an option by long name (len bytes) or letter in one table; -1 if absent. */
static int main_find(const struct a3d_opt *t, size_t n, const char *name, size_t len, int letter)
{
	size_t i;

	for (i = 0; i < n && t[i].name; i++)
		if (letter ? t[i].letter == letter :
			     (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0))
			return (int)i;
	return -1;
}

static int main_global_set(const struct a3d_cmd *cmd, struct a3d_args *a, int id, const char *val)
{
	char *end;

	switch (id) {
	case G_ADDR: a->g.addr = val; break;
	case G_KEY_FILE: a->g.key_file = val; break;
	case G_KEY: a->g.key_arg = val; break;
	case G_JSON: a->g.json = 1; break;
	case G_PROGRESS: a->g.progress = 1; break;
	case G_NO_PROGRESS: a->g.progress = 0; break;
	case G_HELP: a->help = 1; break;
	case G_TLS: a->g.tls.on = 1; break;
	case G_CA: a->g.tls.on = 1; a->g.tls.ca_file = val; break;
	case G_CERT: a->g.tls.on = 1; a->g.tls.cert_file = val; break;
	case G_CERT_KEY: a->g.tls.on = 1; a->g.tls.key_file = val; break;
	case G_TIMEOUT:
		errno = 0;
		a->g.timeout_ms = strtol(val, &end, 10);
		if (errno || *end || a->g.timeout_ms < 1 || a->g.timeout_ms > 86400000)
			return a3d_usage_error(cmd, "--timeout-ms must be 1..86400000, not '%s'", val);
		break;
	default: break;
	}
	return 0;
}

int a3d_parse(const struct a3d_cmd *cmd, int argc, char **argv, struct a3d_args *a)
{
	size_t ncmd = 0;
	int i, only_pos = 0;

	memset(a, 0, sizeof *a);
	a->g.addr = getenv("A3D_ADDR") && *getenv("A3D_ADDR") ? getenv("A3D_ADDR") : A3D_DEFAULT_ADDR;
	a->g.progress = -1;
	a->g.timeout_ms = 30000;
	while (cmd->opts && cmd->opts[ncmd].name)
		ncmd++;
	for (i = 0; i < argc; i++) {
		const char *s = argv[i], *name, *val = NULL, *eq;
		size_t len;
		int letter = 0, id, global = 0;

		if (only_pos || s[0] != '-' || s[1] == '\0') {
			if (a->npos >= A3D_MAX_ARGS)
				return a3d_usage_error(cmd, "more than %d operands", A3D_MAX_ARGS);
			a->pos[a->npos++] = s;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (s[1] == '-') {
			name = s + 2;
			eq = strchr(name, '=');
			len = eq ? (size_t)(eq - name) : strlen(name);
			if (eq)
				val = eq + 1;
		} else {
			name = s + 1;
			len = 1;
			letter = (unsigned char)s[1];
			if (s[2])
				val = s + 2;
		}
		id = main_find(cmd->opts, ncmd, name, len, letter);
		if (id < 0) {
			id = main_find(main_global, G_N, name, len, letter);
			global = 1;
		}
		if (id < 0)
			return a3d_usage_error(cmd, "unknown option '%s'", s);
		{
			const struct a3d_opt *o = global ? &main_global[id] : &cmd->opts[id];

			if (o->has_arg && !val) {
				if (i + 1 >= argc)
					return a3d_usage_error(cmd, "option '%s' needs a value", s);
				val = argv[++i];
			} else if (!o->has_arg && val) {
				return a3d_usage_error(cmd, "option '%s' takes no value", s);
			}
		}
		if (global) {
			if (main_global_set(cmd, a, id, val))
				return A3D_EXIT_USAGE;
			continue;
		}
		if (a->nopt >= A3D_MAX_ARGS)
			return a3d_usage_error(cmd, "more than %d options", A3D_MAX_ARGS);
		a->opt[a->nopt].idx = id;
		a->opt[a->nopt].val = val;
		a->nopt++;
	}
	return 0;
}

int a3d_read_key_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	char buf[MAIN_KEY_FILE_MAX + 1];
	ssize_t n;
	size_t len;
	int fd = -1, rc = -1;
	struct stat sb;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
		fprintf(stderr, "a3d: warning: %s is readable by others (chmod 600 it)\n", path);
	n = read(fd, buf, MAIN_KEY_FILE_MAX);
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= outlen) {
		snprintf(err, errlen, "%s: the first line must hold a key of 1..%zu bytes", path, outlen - 1);
		goto out;
	}
	memcpy(out, buf, len);
	out[len] = '\0';
	rc = 0;
out:
	explicit_bzero(buf, sizeof buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

int a3d_connect(const struct a3d_args *a, struct a3d_rpc *r)
{
	char key[A3D_RPC_MAX_KEY_BYTES + 1], err[512];
	const char *env = getenv("A3D_API_KEY");
	int rc = A3D_EXIT_USAGE;

	key[0] = '\0';
	if (a->g.key_file && a->g.key_arg) {
		fprintf(stderr, "a3d: --key-file and --key: give one\n");
		goto out;
	}
	if (a->g.key_file) {
		if (a3d_read_key_file(a->g.key_file, key, sizeof key, err, sizeof err) < 0) {
			fprintf(stderr, "a3d: key file %s\n", err);
			goto out;
		}
	} else if (a->g.key_arg || (env && *env)) {
		const char *k = a->g.key_arg ? a->g.key_arg : env;

		if (strlen(k) >= sizeof key) {
			fprintf(stderr, "a3d: the API key is longer than %d bytes\n", A3D_RPC_MAX_KEY_BYTES);
			goto out;
		}
		snprintf(key, sizeof key, "%s", k);
	} else if (!a->g.tls.cert_file) {
		fprintf(stderr, "a3d: no API key: set A3D_API_KEY or give --key-file FILE\n");
		goto out;
	}
	if (!a->g.tls.cert_file != !a->g.tls.key_file) {
		fprintf(stderr, "a3d: --cert and --cert-key go together\n");
		goto out;
	}
	if (a3d_rpc_open(r, a->g.addr, key, &a->g.tls, err, sizeof err) < 0) {
		fprintf(stderr, "a3d: %s\n", err);
		goto out;
	}
	r->timeout_ms = a->g.timeout_ms;
	rc = A3D_EXIT_OK;
out:
	explicit_bzero(key, sizeof key);
	return rc;
}

int a3d_rpc_fail(const struct a3d_args *a, const char *what, const struct a3d_status *st)
{
	if (st->interrupted || a3d_interrupted) {
		fprintf(stderr, "a3d: %s: interrupted\n", what);
		return A3D_EXIT_INTERRUPTED;
	}
	fprintf(stderr, "a3d: %s: %s: %s\n", what, a3d_rpc_code_name(st->code), st->details);
	if (a->g.json) {
		json_t *j = json_pack("{s:{s:s,s:i,s:s,s:s}}", "error", "code", a3d_rpc_code_name(st->code),
				      "status", (int)st->code, "message", st->details, "call", what);

		if (j) {
			json_dumpf(j, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			json_decref(j);
		}
	}
	return A3D_EXIT_RPC;
}

int a3d_progress_tty(const struct a3d_args *a)
{
	return a->g.progress >= 0 ? a->g.progress : isatty(STDERR_FILENO);
}

static void main_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: a3d COMMAND [OPTIONS] [ARGS]\n\n"
		"The command-line client of animate3d-gateway (video -> 3D animation over gRPC).\n\n"
		"commands:\n");
	for (i = 0; i < sizeof main_cmds / sizeof main_cmds[0]; i++)
		fprintf(f, "  %-9s %.*s\n", main_cmds[i]->name,
			(int)strcspn(main_cmds[i]->summary, "\n"), main_cmds[i]->summary);
	fprintf(f, "\n'a3d COMMAND --help' shows a command's options.\n\n%s", main_global_help);
}

/* Hides a --key value from ps once it has been copied: the flag is opt-in and documented as
 * visible, and this only narrows the window (shell history keeps it anyway). */
static void main_hide_key(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		char *v = NULL;

		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			v = argv[i + 1];
		else if (strncmp(argv[i], "--key=", 6) == 0)
			v = argv[i] + 6;
		if (v)
			memset(v, 'x', strlen(v));
	}
}

int main(int argc, char **argv)
{
	const struct a3d_cmd *cmd = NULL;
	char **rest = NULL;
	struct a3d_args *a = NULL;
	struct sigaction sa;
	int i, nlead, n, rc = A3D_EXIT_USAGE;
	size_t k;

	/* Global options may come before the command: collect them, then the command's words. */
	for (nlead = 1; nlead < argc && argv[nlead][0] == '-' && strcmp(argv[nlead], "--") != 0; nlead++) {
		if (strcmp(argv[nlead], "-h") == 0 || strcmp(argv[nlead], "--help") == 0) {
			main_help(stdout);
			return A3D_EXIT_OK;
		}
		if (strcmp(argv[nlead], "--version") == 0) {
			printf("a3d %s\n", A3D_VERSION);
			return A3D_EXIT_OK;
		}
		if (strchr(argv[nlead], '=') == NULL && nlead + 1 < argc &&
		    main_find(main_global, G_N, argv[nlead] + 2, strlen(argv[nlead] + 2), 0) >= 0 &&
		    main_global[main_find(main_global, G_N, argv[nlead] + 2, strlen(argv[nlead] + 2), 0)].has_arg)
			nlead++;
	}
	if (nlead >= argc) {
		main_help(stderr);
		return A3D_EXIT_USAGE;
	}
	for (k = 0; k < sizeof main_cmds / sizeof main_cmds[0]; k++)
		if (strcmp(main_cmds[k]->name, argv[nlead]) == 0)
			cmd = main_cmds[k];
	if (!cmd) {
		fprintf(stderr, "a3d: unknown command '%s' (a3d --help)\n", argv[nlead]);
		return A3D_EXIT_USAGE;
	}
	rest = calloc((size_t)argc, sizeof *rest);
	a = calloc(1, sizeof *a);
	if (!rest || !a) {
		fprintf(stderr, "a3d: out of memory\n");
		rc = A3D_EXIT_LOCAL;
		goto out;
	}
	n = 0;
	for (i = 1; i < nlead; i++)
		rest[n++] = argv[i];
	for (i = nlead + 1; i < argc; i++)
		rest[n++] = argv[i];
	rc = a3d_parse(cmd, n, rest, a);
	if (rc != 0)
		goto out;
	if (a->help) {
		a3d_usage(cmd, stdout);
		rc = A3D_EXIT_OK;
		goto out;
	}
	if (a->g.key_arg) {
		/* a->g.key_arg points into argv: copy before the value is blanked. */
		static char key_copy[A3D_RPC_MAX_KEY_BYTES + 1];

		if (strlen(a->g.key_arg) >= sizeof key_copy) {
			rc = a3d_usage_error(cmd, "--key is longer than %d bytes", A3D_RPC_MAX_KEY_BYTES);
			goto out;
		}
		snprintf(key_copy, sizeof key_copy, "%s", a->g.key_arg);
		a->g.key_arg = key_copy;
		main_hide_key(argc, argv);
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = main_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	grpc_init();
	rc = cmd->run(cmd, a);
	grpc_shutdown();
	curl_global_cleanup();
	if (a3d_interrupted && rc != A3D_EXIT_OK)
		rc = A3D_EXIT_INTERRUPTED;
	if (a->g.key_arg)
		explicit_bzero((char *)a->g.key_arg, strlen(a->g.key_arg));
out:
	free(rest);
	free(a);
	return rc;
}
