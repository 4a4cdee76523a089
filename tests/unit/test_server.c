/*
 * Unit tests for gateway/server.c: start and stop. A table of configuration -> whether
 * gw_server_new() builds the server, or the one line it says why not (TLS files, the state file,
 * ports already taken, the account's secret); then one run: the loop serves until a timer drains
 * it, gw_server_run() returns 0 and gw_server_free() frees everything (the ASan build checks it).
 *
 * Configurations are written to a temporary directory; in the table '@' stands for that directory
 * and '#' for a port this test holds open, so that rows read as the files they are.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#include "gateway/config/config.h"
#include "gateway/server.h"

#define T_SECRET_ENV "A3D_TEST_SERVER_SECRET"
#define T_SECRET "server-test-secret-do-not-print"
#define T_GRACE_MS 2000
#define T_DRAIN_AFTER_MS 100
#define T_TEXT_MAX 4096

/* The key of tenant team-a is "demo-key-a" (examples/demo.yaml); no call is made with it here. */
#define T_ACCOUNTS_TENANTS                                                                         \
	"accounts:\n"                                                                              \
	"  - name: acct\n"                                                                         \
	"    base_url: http://127.0.0.1:1\n"                                                       \
	"    client_id: test-id\n"                                                                 \
	"    client_secret_env: %s\n"                                                              \
	"tenants:\n"                                                                               \
	"  - name: team-a\n"                                                                       \
	"    account: acct\n"                                                                      \
	"    keys:\n"                                                                              \
	"      - sha256: f15424e984f66fb993b9d8e6444ade02adcc714a58b3b50106e98750e4244bfe\n"       \
	"        permissions: [read, write]\n"

static char tmpdir[] = "/tmp/a3d-test-server-XXXXXX";

static void t_write(const char *name, const char *text, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static void setup(void)
{
	static const char garbage[] = "this is no SQLite database, whatever its name says\n";
	static const char placeholder[] = "a non-empty file standing in for a TLS file\n";
	char path[256];

	cr_assert_not_null(mkdtemp(tmpdir));
	setenv(T_SECRET_ENV, T_SECRET, 1);
	t_write("corrupt.db", garbage, sizeof garbage - 1);
	t_write("empty.pem", "", 0);
	/* Only read, never parsed: these cases fail on the other TLS file first. No key material. */
	t_write("key.pem", placeholder, sizeof placeholder - 1);
	snprintf(path, sizeof path, "%s/dir.db", tmpdir);
	cr_assert_eq(mkdir(path, 0700), 0);
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(server, .init = setup, .fini = teardown);

/* in with '@' -> the temporary directory and '#' -> port, into out. */
static void t_expand(const char *in, int port, char *out, size_t cap)
{
	size_t off = 0;

	out[0] = '\0';
	for (; *in && off + 1 < cap; in++) {
		int n = *in == '@'   ? snprintf(out + off, cap - off, "%s", tmpdir)
			: *in == '#' ? snprintf(out + off, cap - off, "%d", port)
				     : snprintf(out + off, cap - off, "%c", *in);

		cr_assert(n > 0 && (size_t)n < cap - off, "expansion too long");
		off += (size_t)n;
	}
}

/* A socket listening on 127.0.0.1 at a free port, kept open: that port is taken. */
static int t_hold_port(int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof a;

	*fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(*fd, 0);
	cr_assert_eq(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
	cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(*fd, 4), 0);
	cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &al), 0);
	return ntohs(a.sin_port);
}

/*
 * Writes the configuration (listen + extra sections + the account and tenant, expanded) to
 * <tmpdir>/gateway.yaml, loads it and builds the server from it. NULL with err set when the
 * server refuses to start; a configuration that does not load fails the test.
 */
static struct gw_server *t_server_new(const char *listen, const char *extra, const char *secret_env,
				      int port, char *err, size_t errlen)
{
	char tmpl[T_TEXT_MAX], text[T_TEXT_MAX], path[256];
	struct gw_errors errs = { 0 };
	struct gw_config *cfg = NULL;

	snprintf(tmpl, sizeof tmpl, "listen:\n%slog:\n  level: error\n%s" T_ACCOUNTS_TENANTS, listen,
		 extra, secret_env);
	t_expand(tmpl, port, text, sizeof text);
	t_write("gateway.yaml", text, strlen(text));
	snprintf(path, sizeof path, "%s/gateway.yaml", tmpdir);
	cr_assert_eq(gw_config_load(path, &cfg, &errs), 0, "config: %s", errs.n ? errs.msg[0] : "?");
	gw_errors_clear(&errs);
	return gw_server_new(cfg, path, T_GRACE_MS, err, errlen);
}

#define BOTH_FREE "  grpc: 127.0.0.1:0\n  http: 127.0.0.1:0\n"
#define MEMORY "state:\n  memory: true\n"

static const struct {
	const char *name;
	const char *listen;	/* the listen: section's lines */
	const char *extra;	/* other sections */
	const char *secret_env;	/* the account's client_secret_env */
	const char *err_has;	/* NULL: the server starts; else a fragment of its one line */
} new_cases[] = {
	{ "memory state starts", BOTH_FREE, MEMORY, T_SECRET_ENV, NULL },
	{ "no state section: memory, starts", BOTH_FREE, "", T_SECRET_ENV, NULL },
	{ "SQLite state in a new file starts", BOTH_FREE, "state:\n  path: @/state.db\n", T_SECRET_ENV,
	  NULL },
	{ "no HTTP listener starts", "  grpc: 127.0.0.1:0\n", MEMORY, T_SECRET_ENV, NULL },
	{ "TLS certificate file missing", BOTH_FREE,
	  MEMORY "tls:\n  cert_file: @/missing.pem\n  key_file: @/key.pem\n", T_SECRET_ENV,
	  "cannot read TLS file @/missing.pem: No such file or directory" },
	{ "TLS certificate file empty", BOTH_FREE,
	  MEMORY "tls:\n  cert_file: @/empty.pem\n  key_file: @/key.pem\n", T_SECRET_ENV,
	  "TLS file @/empty.pem is empty" },
	{ "TLS client CA file missing", BOTH_FREE,
	  MEMORY "tls:\n  cert_file: @/key.pem\n  key_file: @/key.pem\n  client_ca_file: @/ca.pem\n",
	  T_SECRET_ENV, "cannot read TLS file @/ca.pem" },
	{ "corrupt state file", BOTH_FREE, "state:\n  path: @/corrupt.db\n", T_SECRET_ENV,
	  "state file @/corrupt.db is corrupt: file is not a database; refusing to start" },
	{ "state path is a directory", BOTH_FREE, "state:\n  path: @/dir.db\n", T_SECRET_ENV,
	  "state file @/dir.db cannot be opened" },
	{ "state file in a missing directory", BOTH_FREE, "state:\n  path: @/none/state.db\n",
	  T_SECRET_ENV, "state file @/none/state.db cannot be opened" },
	{ "read-only state file that does not exist", BOTH_FREE,
	  "state:\n  path: @/absent.db\n  read_only: true\n", T_SECRET_ENV,
	  "state file @/absent.db cannot be opened" },
	{ "HTTP port already taken", "  grpc: 127.0.0.1:0\n  http: 127.0.0.1:#\n", MEMORY,
	  T_SECRET_ENV, "cannot listen for HTTP on 127.0.0.1:#" },
	{ "gRPC port already taken", "  grpc: 127.0.0.1:#\n  http: 127.0.0.1:0\n", MEMORY,
	  T_SECRET_ENV, "cannot listen for gRPC on 127.0.0.1:#" },
	{ "account secret variable not set", BOTH_FREE, MEMORY, "A3D_TEST_SERVER_UNSET",
	  "account acct: environment variable A3D_TEST_SERVER_UNSET is not set" },
};

Test(server, new_table)
{
	for (size_t i = 0; i < sizeof new_cases / sizeof new_cases[0]; i++) {
		char err[512], want[512];
		struct gw_server *srv;
		int fd, port = t_hold_port(&fd);

		unsetenv("A3D_TEST_SERVER_UNSET");
		strcpy(err, "not written");
		srv = t_server_new(new_cases[i].listen, new_cases[i].extra, new_cases[i].secret_env, port,
				   err, sizeof err);
		if (!new_cases[i].err_has) {
			cr_expect_not_null(srv, "%s: \"%s\"", new_cases[i].name, err);
			cr_expect_str_eq(err, "", "%s", new_cases[i].name);
			if (srv) {
				cr_expect_gt(srv->grpc_port, 0, "%s: bound gRPC port", new_cases[i].name);
				cr_expect_eq(srv->http != NULL, strstr(new_cases[i].listen, "http:") != NULL,
					     "%s: HTTP listener", new_cases[i].name);
				cr_expect_eq(srv->started, 0);
			}
		} else {
			t_expand(new_cases[i].err_has, port, want, sizeof want);
			cr_expect_null(srv, "%s: started", new_cases[i].name);
			cr_expect_not_null(strstr(err, want), "%s: \"%s\" lacks \"%s\"", new_cases[i].name,
					   err, want);
			cr_expect_null(strchr(err, '\n'), "%s: one line", new_cases[i].name);
		}
		cr_expect_null(strstr(err, T_SECRET), "%s: the secret leaked", new_cases[i].name);
		gw_server_free(srv);
		close(fd);
	}
}

/* 1 when a plain socket (no SO_REUSEADDR/SO_REUSEPORT) can bind 127.0.0.1:port right now. */
static int t_bindable(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	if (fd < 0 || inet_pton(AF_INET, "127.0.0.1", &a.sin_addr) != 1)
		return 0;
	ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

/* A server freed without ever running lets both its ports go. */
Test(server, free_without_run_releases_the_ports)
{
	char err[512];
	struct gw_server *srv;
	int fd, http_port = t_hold_port(&fd), grpc_port;

	close(fd);	/* a port known to be free, for the HTTP listener to take */
	srv = t_server_new("  grpc: 127.0.0.1:0\n  http: 127.0.0.1:#\n", MEMORY, T_SECRET_ENV,
			   http_port, err, sizeof err);
	cr_assert_not_null(srv, "%s", err);
	grpc_port = srv->grpc_port;
	cr_expect_eq(t_bindable(grpc_port), 0, "gRPC port held while the server lives");
	cr_expect_eq(t_bindable(http_port), 0, "HTTP port held while the server lives");
	gw_server_free(srv);
	cr_expect_eq(t_bindable(grpc_port), 1, "gRPC port %d released", grpc_port);
	cr_expect_eq(t_bindable(http_port), 1, "HTTP port %d released", http_port);
	gw_server_free(NULL);
}

/* ---- run and drain ---- */

struct t_run {
	struct gw_server *srv;
	int grpc_connected;	/* a TCP connect to the gRPC port worked while running */
	int drained;
};

/* 1 when a TCP connection to 127.0.0.1:port is accepted (then closed at once). */
static int t_connects(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	if (fd < 0 || inet_pton(AF_INET, "127.0.0.1", &a.sin_addr) != 1)
		return 0;
	ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static void t_on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
	struct t_run *r = arg;

	(void)fd;
	(void)what;
	r->grpc_connected = t_connects(r->srv->grpc_port);
	r->drained = 1;
	gw_server_drain(r->srv, "unit test");
}

/* The loop runs (listeners, poller, sessions, services started) until a timer drains it; with
 * nothing in flight the drain ends at once, well before the grace period. The timeout only
 * bounds a broken drain. */
Test(server, run_until_drained, .timeout = 60)
{
	struct timeval tv = { 0, T_DRAIN_AFTER_MS * 1000 };
	struct t_run r = { 0 };
	struct event *ev;
	char err[512];

	r.srv = t_server_new(BOTH_FREE, "state:\n  path: @/run.db\n", T_SECRET_ENV, 0, err, sizeof err);
	cr_assert_not_null(r.srv, "%s", err);
	ev = evtimer_new(r.srv->env.base, t_on_drain_timer, &r);
	cr_assert_not_null(ev);
	cr_assert_eq(evtimer_add(ev, &tv), 0);
	cr_expect_eq(gw_server_run(r.srv), 0);
	cr_expect_eq(r.drained, 1, "the loop ran until the timer");
	cr_expect_eq(r.grpc_connected, 1, "the gRPC port accepted a connection while running");
	cr_expect_eq(r.srv->started, 1);
	cr_expect_eq(r.srv->env.draining, 1);
	cr_expect_eq(r.srv->cq_shut, 1, "the completion queue was shut down");
	cr_expect_eq(r.srv->drain_cut, 1, "nothing in flight: the drain did not wait for the grace");
	event_free(ev);
	gw_server_free(r.srv);
}
