/* Unit tests for auth/upstream/secret.c: secret files and variables in, secret or a clear refusal out. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "auth/upstream/secret.h"

#define CANARY "s3cret-canary-7f1d"

static char tmpdir[] = "/tmp/a3d-test-secret-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(secret, .init = setup, .fini = teardown);

static void make_file(const char *name, const char *content, size_t len, mode_t mode, char *path, size_t pathlen)
{
	FILE *f;

	snprintf(path, pathlen, "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(content, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

/* want = tmpl with its "%s" (if any) replaced by path. */
static void subst_path(char *want, size_t wantlen, const char *tmpl, const char *path)
{
	const char *at = strstr(tmpl, "%s");

	if (!at)
		snprintf(want, wantlen, "%s", tmpl);
	else
		snprintf(want, wantlen, "%.*s%s%s", (int)(at - tmpl), tmpl, path, at + 2);
}

struct file_case {
	const char *content;	/* NULL: GW_SECRET_MAX_LEN 'z' + suffix below */
	const char *suffix;
	mode_t mode;
	int rc;
	const char *want;	/* the secret, or the error with %s for the path */
};

Test(secret, file_table)
{
	static const struct file_case cases[] = {
		{ CANARY, "", 0600, 0, CANARY },
		{ CANARY, "\n", 0400, 0, CANARY },
		{ CANARY, "\r\n\n", 0600, 0, CANARY },
		{ "with space inside ", "\n", 0600, 0, "with space inside " },
		{ CANARY, "\n", 0644, -1, "secret file %s is group/world-accessible (mode 0644); chmod 600 it" },
		{ CANARY, "\n", 0640, -1, "secret file %s is group/world-accessible (mode 0640); chmod 600 it" },
		{ CANARY, "\n", 0602, -1, "secret file %s is group/world-accessible (mode 0602); chmod 600 it" },
		{ "", "\n", 0600, -1, "account acc: the client secret is empty" },
		{ "", "", 0600, -1, "account acc: the client secret is empty" },
		{ NULL, "\n", 0600, 0, NULL },	/* exactly GW_SECRET_MAX_LEN: accepted */
		{ NULL, "z", 0600, -1, "account acc: the client secret is longer than 1024 bytes" },
		{ NULL, "z\n", 0600, -1, "account acc: the client secret is longer than 1024 bytes" },
	};
	static char max[GW_SECRET_MAX_LEN + 8];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct file_case *c = &cases[i];
		char path[512], name[32], err[512], want[1024];
		struct gw_account_cfg a = { .name = "acc" };
		char *s = (char *)1;
		size_t len = 99;
		int rc;

		if (c->content) {
			snprintf(max, sizeof(max), "%s%s", c->content, c->suffix);
		} else {
			memset(max, 'z', GW_SECRET_MAX_LEN);
			strcpy(max + GW_SECRET_MAX_LEN, c->suffix);
		}
		snprintf(name, sizeof(name), "s%zu", i);
		make_file(name, max, strlen(max), c->mode, path, sizeof(path));
		a.secret_file = path;
		rc = gw_secret_load(&a, &s, &len, err, sizeof(err));
		cr_expect_eq(rc, c->rc, "case %zu: rc %d (%s)", i, rc, err);
		if (rc == 0 && c->rc == 0) {
			const char *w = c->want;
			if (!w) {
				max[GW_SECRET_MAX_LEN] = '\0';
				w = max;
			}
			cr_expect_eq(len, strlen(w), "case %zu: len %zu", i, len);
			cr_expect_str_eq(s, w, "case %zu", i);
			gw_secret_free(s, len);
		} else if (c->rc == -1) {
			subst_path(want, sizeof(want), c->want, path);
			cr_expect_null(s, "case %zu", i);
			cr_expect_str_eq(err, want, "case %zu:\n got  %s\n want %s", i, err, want);
			cr_expect_null(strstr(err, CANARY), "case %zu: secret in the error", i);
		}
	}
}

Test(secret, odd_files_are_refused)
{
	struct gw_account_cfg a = { .name = "acc" };
	char path[512], target[512], err[512], want[1024];
	char *s = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	a.secret_file = path;
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "cannot open secret file %s: No such file or directory", path);
	cr_expect_str_eq(err, want);

	snprintf(path, sizeof(path), "%s/dir", tmpdir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "secret file %s is not a regular file", path);
	cr_expect_str_eq(err, want);

	/* Kubernetes mounts secrets through symlinks: the target's mode is what counts. */
	make_file("target", CANARY "\n", strlen(CANARY) + 1, 0600, target, sizeof(target));
	snprintf(path, sizeof(path), "%s/link", tmpdir);
	cr_assert_eq(symlink(target, path), 0);
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(s, CANARY);
	gw_secret_free(s, len);
	cr_assert_eq(chmod(target, 0644), 0);
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	cr_expect_null(s);

	/* A NUL inside the secret would silently shorten it in a C string. */
	make_file("nul", "ab\0cd", 5, 0600, path, sizeof(path));
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "account acc: the client secret contains a NUL byte");
}

Test(secret, environment_variable)
{
	struct gw_account_cfg a = { .name = "acc", .secret_env = "A3D_TEST_SECRET_VAR" };
	char err[256];
	char *s = NULL;
	size_t len = 0;

	cr_assert_eq(setenv("A3D_TEST_SECRET_VAR", CANARY "\n", 1), 0);
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(s, CANARY);
	cr_expect_eq(len, strlen(CANARY));
	gw_secret_free(s, len);

	cr_assert_eq(setenv("A3D_TEST_SECRET_VAR", "", 1), 0);
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "account acc: the client secret is empty");

	cr_assert_eq(unsetenv("A3D_TEST_SECRET_VAR"), 0);
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "account acc: environment variable A3D_TEST_SECRET_VAR is not set");

	a.secret_file = "/x";
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "account acc: set exactly one of client_secret_file or client_secret_env");
	a.secret_file = a.secret_env = NULL;
	cr_expect_eq(gw_secret_load(&a, &s, &len, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "account acc: set exactly one of client_secret_file or client_secret_env");
	cr_expect_eq(gw_secret_load(NULL, &s, &len, err, sizeof(err)), -1);
	cr_expect_eq(gw_secret_load(&a, &s, &len, NULL, 0), -1);	/* no room for a message is fine */
}

/* The PostgreSQL password (state.postgres.password_file | password_env): the same rules, its own
 * messages, never the password. */
Test(secret, postgres_password)
{
	static const struct {
		const char *content;
		mode_t mode;
		int rc;
		const char *want;	/* the password, or the error with %s for the path */
	} files[] = {
		{ CANARY "\n", 0600, 0, CANARY },
		{ CANARY, 0400, 0, CANARY },
		{ CANARY "\r\n", 0600, 0, CANARY },
		{ CANARY "\n", 0640, -1, "secret file %s is group/world-accessible (mode 0640); chmod 600 it" },
		{ CANARY "\n", 0604, -1, "secret file %s is group/world-accessible (mode 0604); chmod 600 it" },
		{ CANARY "\n", 0660, -1, "secret file %s is group/world-accessible (mode 0660); chmod 600 it" },
		{ "\n", 0600, -1, "state.postgres: the password is empty" },
		{ "", 0600, -1, "state.postgres: the password is empty" },
	};
	struct gw_pg_cfg pg = { 0 };
	char path[512], name[32], err[512], want[1024];
	char *s = NULL;
	size_t len = 0;

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(name, sizeof name, "pg%zu", i);
		make_file(name, files[i].content, strlen(files[i].content), files[i].mode, path, sizeof path);
		pg.password_file = path;
		s = (char *)1;
		cr_expect_eq(gw_secret_load_pg(&pg, &s, &len, err, sizeof err), files[i].rc, "case %zu: %s", i, err);
		if (files[i].rc == 0) {
			cr_expect_str_eq(s, files[i].want, "case %zu", i);
			gw_secret_free(s, len);
			continue;
		}
		subst_path(want, sizeof want, files[i].want, path);
		cr_expect_null(s, "case %zu", i);
		cr_expect_str_eq(err, want, "case %zu:\n got  %s\n want %s", i, err, want);
		cr_expect_null(strstr(err, CANARY), "case %zu: the password in the error", i);
	}
	snprintf(path, sizeof path, "%s/missing", tmpdir);
	cr_expect_eq(gw_secret_load_pg(&pg, &s, &len, err, sizeof err), -1);
	snprintf(want, sizeof want, "cannot open secret file %s: No such file or directory", path);
	cr_expect_str_eq(err, want);

	pg.password_file = NULL;
	pg.password_env = "A3D_TEST_PG_PASSWORD";
	cr_assert_eq(setenv("A3D_TEST_PG_PASSWORD", CANARY, 1), 0);
	cr_expect_eq(gw_secret_load_pg(&pg, &s, &len, err, sizeof err), 0, "%s", err);
	cr_expect_str_eq(s, CANARY);
	gw_secret_free(s, len);
	cr_assert_eq(setenv("A3D_TEST_PG_PASSWORD", "", 1), 0);
	cr_expect_eq(gw_secret_load_pg(&pg, &s, &len, err, sizeof err), -1);
	cr_expect_str_eq(err, "state.postgres: the password is empty");
	cr_assert_eq(unsetenv("A3D_TEST_PG_PASSWORD"), 0);
	cr_expect_eq(gw_secret_load_pg(&pg, &s, &len, err, sizeof err), -1);
	cr_expect_str_eq(err, "state.postgres: environment variable A3D_TEST_PG_PASSWORD is not set");
	pg.password_env = NULL;
	cr_expect_eq(gw_secret_load_pg(&pg, &s, &len, err, sizeof err), -1);
	cr_expect_str_eq(err, "state.postgres: set exactly one of password_file or password_env");
	cr_expect_eq(gw_secret_load_pg(NULL, &s, &len, err, sizeof err), -1);
}

/* The Redis password (redis.password_file | password_env): the rules of the other secrets, its own
 * messages, never the password. */
Test(secret, redis_password)
{
	static const struct {
		const char *content;
		mode_t mode;
		int rc;
		const char *want;	/* the password, or the error with %s for the path */
	} files[] = {
		{ CANARY "\n", 0600, 0, CANARY },
		{ CANARY, 0400, 0, CANARY },
		{ CANARY "\r\n", 0600, 0, CANARY },
		{ CANARY "\n", 0640, -1, "secret file %s is group/world-accessible (mode 0640); chmod 600 it" },
		{ CANARY "\n", 0644, -1, "secret file %s is group/world-accessible (mode 0644); chmod 600 it" },
		{ "\n", 0600, -1, "redis: the password is empty" },
		{ "", 0600, -1, "redis: the password is empty" },
		{ "ab\0" CANARY, 0600, -1, "redis: the password contains a NUL byte" },
	};
	static const size_t lens[] = { 0, 0, 0, 0, 0, 0, 0, 3 + sizeof CANARY - 1 };
	struct gw_redis_cfg r = { 0 };
	char path[512], name[32], err[512], want[1024];
	char *s = NULL;
	size_t len = 0;

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(name, sizeof name, "redis%zu", i);
		make_file(name, files[i].content, lens[i] ? lens[i] : strlen(files[i].content), files[i].mode, path,
			  sizeof path);
		r.password_file = path;
		s = (char *)1;
		cr_expect_eq(gw_secret_load_redis(&r, &s, &len, err, sizeof err), files[i].rc, "case %zu: %s", i, err);
		if (files[i].rc == 0) {
			cr_expect_str_eq(s, files[i].want, "case %zu", i);
			cr_expect_eq(len, strlen(files[i].want), "case %zu", i);
			gw_secret_free(s, len);
			continue;
		}
		subst_path(want, sizeof want, files[i].want, path);
		cr_expect_null(s, "case %zu", i);
		cr_expect_str_eq(err, want, "case %zu:\n got  %s\n want %s", i, err, want);
		cr_expect_null(strstr(err, CANARY), "case %zu: the password in the error", i);
	}
	/* Longer than GW_SECRET_MAX_LEN: refused by size, not quoted. */
	{
		char big[GW_SECRET_MAX_LEN + 2];

		memset(big, 'z', sizeof big);
		make_file("redis-big", big, sizeof big, 0600, path, sizeof path);
		cr_expect_eq(gw_secret_load_redis(&r, &s, &len, err, sizeof err), -1);
		cr_expect_str_eq(err, "redis: the password is longer than 1024 bytes");
	}
	snprintf(path, sizeof path, "%s/missing", tmpdir);
	cr_expect_eq(gw_secret_load_redis(&r, &s, &len, err, sizeof err), -1);
	snprintf(want, sizeof want, "cannot open secret file %s: No such file or directory", path);
	cr_expect_str_eq(err, want);

	r.password_file = NULL;
	r.password_env = "A3D_TEST_REDIS_PASSWORD";
	cr_assert_eq(setenv("A3D_TEST_REDIS_PASSWORD", CANARY, 1), 0);
	cr_expect_eq(gw_secret_load_redis(&r, &s, &len, err, sizeof err), 0, "%s", err);
	cr_expect_str_eq(s, CANARY);
	gw_secret_free(s, len);
	cr_assert_eq(setenv("A3D_TEST_REDIS_PASSWORD", "", 1), 0);
	cr_expect_eq(gw_secret_load_redis(&r, &s, &len, err, sizeof err), -1);
	cr_expect_str_eq(err, "redis: the password is empty");
	cr_assert_eq(unsetenv("A3D_TEST_REDIS_PASSWORD"), 0);
	cr_expect_eq(gw_secret_load_redis(&r, &s, &len, err, sizeof err), -1);
	cr_expect_str_eq(err, "redis: environment variable A3D_TEST_REDIS_PASSWORD is not set");
	r.password_env = NULL;
	cr_expect_eq(gw_secret_load_redis(&r, &s, &len, err, sizeof err), -1);
	cr_expect_str_eq(err, "redis: set exactly one of password_file or password_env");
	cr_expect_eq(gw_secret_load_redis(NULL, &s, &len, err, sizeof err), -1);
	cr_expect_str_eq(err, "no redis section");
}

/* 32 bytes whose hex form is HEX32 (upper case in HEX32U); the raw form contains '\n', '\0' and
 * '\r' on purpose: exactly 32 bytes are taken as they are. */
static const uint8_t KEY32[32] = { 0x0a, 0x00, 0x0d, 0x7f, 0x80, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05,
				   0x06, 0x07, 0x08, 0x09, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70,
				   0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0xde, 0xad, 0x0a };
#define HEX32 "0a000d7f80ff0102030405060708091020304050607090a0b0c0d0e0f0dead0a"
#define HEX32U "0A000D7F80FF0102030405060708091020304050607090A0B0C0D0E0F0DEAD0A"
#define SEAL_FORM(n)                                                                          \
	"seal key file %s has " n " bytes: it must hold exactly 32 raw bytes or 64 hex digits (openssl " \
	"rand -hex 32 > FILE)"

/* redis.seal_key_file: 32 raw bytes or 64 hex digits (+ one line ending); everything else refused
 * without the contents; the key buffer is zero after a refusal. */
Test(secret, seal_key_table)
{
	static const struct {
		const char *content;
		size_t len;		/* 0: strlen(content) */
		mode_t mode;
		const char *err;	/* NULL: accepted as KEY32; else the error, %s = the path */
	} cases[] = {
		{ (const char *)KEY32, 32, 0600, NULL },
		{ (const char *)KEY32, 32, 0400, NULL },
		{ HEX32, 0, 0600, NULL },
		{ HEX32 "\n", 0, 0600, NULL },
		{ HEX32 "\r\n", 0, 0600, NULL },
		{ HEX32U "\n", 0, 0600, NULL },
		/* refused: the mode, the size, the form */
		{ HEX32 "\n", 0, 0640, "secret file %s is group/world-accessible (mode 0640); chmod 600 it" },
		{ (const char *)KEY32, 32, 0604, "secret file %s is group/world-accessible (mode 0604); chmod 600 it" },
		{ "", 0, 0600, SEAL_FORM("0") },
		{ "\n", 0, 0600, SEAL_FORM("1") },
		{ (const char *)KEY32, 31, 0600, SEAL_FORM("31") },
		{ CANARY CANARY, 0, 0600, SEAL_FORM("36") },
		{ HEX32 "\n\n", 0, 0600, SEAL_FORM("66") },
		{ HEX32 "\r", 0, 0600, SEAL_FORM("65") },
		{ HEX32 " ", 0, 0600, SEAL_FORM("65") },
		{ " " HEX32, 0, 0600, SEAL_FORM("65") },
		{ HEX32 "0", 0, 0600, SEAL_FORM("65") },
		{ HEX32 "00", 0, 0600, SEAL_FORM("66") },
		{ HEX32 "\n" CANARY, 0, 0600,
		  "seal key file %s has more than 66 bytes: it must hold exactly 32 raw bytes or 64 hex digits "
		  "(openssl rand -hex 32 > FILE)" },
		{ "0a000d7f80ff0102030405060708091020304050607090a0b0c0d0e0f0deadzz\n", 0, 0600,
		  "seal key file %s has 64 characters that are not all hex digits (0-9, a-f)" },
		{ "s3cret-canary-7f1d-s3cret-canary-7f1d-s3cret-canary-7f1d-s3cret-", 0, 0600,
		  "seal key file %s has 64 characters that are not all hex digits (0-9, a-f)" },
		{ "0000000000000000000000000000000000000000000000000000000000000000\n", 0, 0600,
		  "seal key file %s holds an all-zero key; make one with openssl rand -hex 32" },
		{ "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32, 0600,
		  "seal key file %s holds an all-zero key; make one with openssl rand -hex 32" },
	};
	char path[512], name[32], err[512], want[1024];
	uint8_t key[GW_SECRET_SEAL_KEY_LEN];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].content);
		int rc;

		snprintf(name, sizeof name, "seal%zu", i);
		make_file(name, cases[i].content, len, cases[i].mode, path, sizeof path);
		memset(key, 0x5a, sizeof key);
		rc = gw_secret_load_seal_key(path, key, err, sizeof err);
		if (!cases[i].err) {
			cr_expect_eq(rc, 0, "case %zu: %s", i, err);
			cr_expect_arr_eq(key, KEY32, sizeof key, "case %zu: wrong key", i);
			continue;
		}
		subst_path(want, sizeof want, cases[i].err, path);
		cr_expect_eq(rc, -1, "case %zu accepted", i);
		cr_expect_str_eq(err, want, "case %zu:\n got  %s\n want %s", i, err, want);
		cr_expect_null(strstr(err, "canary"), "case %zu: the contents in the error", i);
		cr_expect_null(strstr(err, "0a000d7f"), "case %zu: the contents in the error", i);
		for (size_t j = 0; j < sizeof key; j++)
			cr_expect_eq(key[j], 0, "case %zu: key byte %zu left after a refusal", i, j);
	}
	snprintf(path, sizeof path, "%s/missing", tmpdir);
	cr_expect_eq(gw_secret_load_seal_key(path, key, err, sizeof err), -1);
	snprintf(want, sizeof want, "cannot open secret file %s: No such file or directory", path);
	cr_expect_str_eq(err, want);
	cr_expect_eq(gw_secret_load_seal_key(tmpdir, key, err, sizeof err), -1);
	snprintf(want, sizeof want, "secret file %s is not a regular file", tmpdir);
	cr_expect_str_eq(err, want);
	cr_expect_eq(gw_secret_load_seal_key(NULL, key, err, sizeof err), -1);
	cr_expect_str_eq(err, "redis: no seal_key_file");
	cr_expect_eq(gw_secret_load_seal_key(path, NULL, err, sizeof err), -1);
}

Test(secret, basic_header_table)
{
	static const struct {
		const char *id, *secret;
		size_t len;
		const char *want;
	} cases[] = {
		{ "Aladdin", "open sesame", 11, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==" },	/* RFC 7617 section 2 */
		{ "a", "b", 1, "Basic YTpi" },
		{ "id", "xyz", 2, "Basic aWQ6eHk=" },	/* the length is honoured */
		{ "", "s", 1, "Basic OnM=" },
		{ "bad:id", "s", 1, NULL },	/* Basic cannot carry ':' in the user id */
		{ NULL, "s", 1, NULL },
		{ "id", NULL, 0, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *h = gw_secret_basic_header(cases[i].id, cases[i].secret, cases[i].len);

		if (!cases[i].want) {
			cr_expect_null(h, "case %zu", i);
			continue;
		}
		cr_assert_not_null(h, "case %zu", i);
		cr_expect_str_eq(h, cases[i].want, "case %zu: %s", i, h);
		gw_secret_free(h, strlen(h));
	}
}

Test(secret, fingerprint)
{
	uint8_t d[32];
	char want[13], got[13];

	SHA256((const unsigned char *)CANARY, strlen(CANARY), d);
	snprintf(want, sizeof(want), "s:%02x%02x%02x%02x%02x", d[0], d[1], d[2], d[3], d[4]);
	gw_secret_fingerprint(CANARY, strlen(CANARY), got);
	cr_expect_str_eq(got, want);
	gw_secret_fingerprint("other", 5, want);
	cr_expect_str_neq(got, want);
	gw_secret_free(NULL, 0);
}
