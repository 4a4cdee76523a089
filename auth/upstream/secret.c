/* secret: load, wipe and encode the upstream client secret. */
#include "auth/upstream/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "gateway/base/hex.h"

static void secret_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void secret_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Reads at most GW_SECRET_MAX_LEN + 2 bytes ("\r\n" may follow a secret of the maximum length), and
 * one more to notice that the file is too long. */
#define SECRET_READ_MAX (GW_SECRET_MAX_LEN + 3)

static int secret_from_file(const char *path, char *buf, size_t *len, char *err, size_t errlen)
{
	return gw_secret_read_file(path, buf, SECRET_READ_MAX, len, err, errlen);
}

int gw_secret_read_file(const char *path, char *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
	int rc = -1, fd;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		secret_err(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
		return -1;
	}
	/* fstat the opened fd, not the path: what is checked is what is read. */
	if (fstat(fd, &st) < 0) {
		secret_err(err, errlen, "cannot stat secret file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		secret_err(err, errlen, "secret file %s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		secret_err(err, errlen, "secret file %s is group/world-accessible (mode %04o); chmod 600 it",
			   path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	*len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + *len, cap - *len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			secret_err(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		*len += (size_t)r;
		if (*len == cap)
			break;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* who names the owner in messages ("account sim"), what the secret ("client secret"), keys the
 * two settings ("client_secret_file or client_secret_env"). */
static int secret_load(const char *who, const char *what, const char *keys, const char *file,
		       const char *env, char **out, size_t *len, char *err, size_t errlen)
{
	int rc = -1;
	char *buf = NULL;
	size_t n = 0;

	buf = malloc(SECRET_READ_MAX + 1);
	if (!buf) {
		secret_err(err, errlen, "%s: out of memory", who);
		return -1;
	}
	if (file && !env) {
		if (secret_from_file(file, buf, &n, err, errlen) < 0)
			goto out;
	} else if (env && !file) {
		const char *v = getenv(env);

		if (!v) {
			secret_err(err, errlen, "%s: environment variable %s is not set", who, env);
			goto out;
		}
		n = strnlen(v, SECRET_READ_MAX);
		memcpy(buf, v, n);
	} else {
		secret_err(err, errlen, "%s: set exactly one of %s", who, keys);
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0) {
		secret_err(err, errlen, "%s: the %s is empty", who, what);
		goto out;
	}
	if (n > GW_SECRET_MAX_LEN) {
		secret_err(err, errlen, "%s: the %s is longer than %d bytes", who, what, GW_SECRET_MAX_LEN);
		goto out;
	}
	if (memchr(buf, '\0', n)) {
		secret_err(err, errlen, "%s: the %s contains a NUL byte", who, what);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		explicit_bzero(buf, SECRET_READ_MAX + 1);
		free(buf);
	}
	return rc;
}

int gw_secret_load(const struct gw_account_cfg *a, char **out, size_t *len, char *err, size_t errlen)
{
	char who[GW_SECRET_WHO_MAX];

	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	if (!a || !out || !len) {
		secret_err(err, errlen, "no account");
		return -1;
	}
	snprintf(who, sizeof who, "account %s", a->name ? a->name : "?");
	return secret_load(who, "client secret", "client_secret_file or client_secret_env", a->secret_file,
			   a->secret_env, out, len, err, errlen);
}

int gw_secret_load_pg(const struct gw_pg_cfg *pg, char **out, size_t *len, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	if (!pg || !out || !len) {
		secret_err(err, errlen, "no state.postgres");
		return -1;
	}
	return secret_load("state.postgres", "password", "password_file or password_env", pg->password_file,
			   pg->password_env, out, len, err, errlen);
}

int gw_secret_load_redis(const struct gw_redis_cfg *r, char **out, size_t *len, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	if (!r || !out || !len) {
		secret_err(err, errlen, "no redis section");
		return -1;
	}
	return secret_load("redis", "password", "password_file or password_env", r->password_file,
			   r->password_env, out, len, err, errlen);
}

/* 64 hex digits and "\r\n", and one byte more to notice a longer file. */
#define SECRET_SEAL_READ_MAX (2 * GW_SECRET_SEAL_KEY_LEN + 3)
#define SECRET_SEAL_FORM "it must hold exactly 32 raw bytes or 64 hex digits (openssl rand -hex 32 > FILE)"

int gw_secret_load_seal_key(const char *path, uint8_t key[GW_SECRET_SEAL_KEY_LEN], char *err, size_t errlen)
{
	uint8_t buf[SECRET_SEAL_READ_MAX], acc = 0;
	size_t n = 0;
	int rc = -1;

	if (err && errlen)
		err[0] = '\0';
	if (!key) {
		secret_err(err, errlen, "no seal key buffer");
		return -1;
	}
	explicit_bzero(key, GW_SECRET_SEAL_KEY_LEN);
	if (!path) {
		secret_err(err, errlen, "redis: no seal_key_file");
		return -1;
	}
	if (gw_secret_read_file(path, (char *)buf, sizeof buf, &n, err, errlen) < 0)
		goto out;
	/* Exactly 32 bytes are the raw key, whatever they are (a raw key may end in '\n'); otherwise
	 * hex, where one line ending is forgiven. */
	if (n == GW_SECRET_SEAL_KEY_LEN) {
		memcpy(key, buf, GW_SECRET_SEAL_KEY_LEN);
	} else {
		size_t h = n;

		if (h > 0 && buf[h - 1] == '\n')
			h--;
		if (h > 0 && buf[h - 1] == '\r' && h < n)
			h--;
		if (h != 2 * GW_SECRET_SEAL_KEY_LEN) {
			/* The size alone: the bytes may be the key (raw, or hex with one digit too many). */
			if (n == sizeof buf)
				secret_err(err, errlen, "seal key file %s has more than %zu bytes: " SECRET_SEAL_FORM,
					   path, sizeof buf - 1);
			else
				secret_err(err, errlen, "seal key file %s has %zu bytes: " SECRET_SEAL_FORM, path, n);
			goto out;
		}
		for (size_t i = 0; i < GW_SECRET_SEAL_KEY_LEN; i++) {
			int hi = gw_hex_digit(buf[2 * i]), lo = gw_hex_digit(buf[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				secret_err(err, errlen, "seal key file %s has %d characters that are not all hex "
					   "digits (0-9, a-f)", path, 2 * GW_SECRET_SEAL_KEY_LEN);
				goto out;
			}
			key[i] = (uint8_t)(hi << 4 | lo);
		}
	}
	for (size_t i = 0; i < GW_SECRET_SEAL_KEY_LEN; i++)
		acc |= key[i];
	if (acc == 0) {
		secret_err(err, errlen, "seal key file %s holds an all-zero key; make one with openssl rand -hex %d",
			   path, GW_SECRET_SEAL_KEY_LEN);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		explicit_bzero(key, GW_SECRET_SEAL_KEY_LEN);
	explicit_bzero(buf, sizeof buf);
	return rc;
}

void gw_secret_free(char *s, size_t len)
{
	if (!s)
		return;
	explicit_bzero(s, len);
	free(s);
}

void gw_secret_fingerprint(const char *s, size_t len, char out[13])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)(s ? s : ""), s ? len : 0, digest);
	out[0] = 's';
	out[1] = ':';
	for (int i = 0; i < 5; i++) {
		out[2 + 2 * i] = hex[digest[i] >> 4];
		out[3 + 2 * i] = hex[digest[i] & 15];
	}
	out[12] = '\0';
	explicit_bzero(digest, sizeof(digest));
}

char *gw_secret_basic_header(const char *client_id, const char *secret, size_t secret_len)
{
	static const char prefix[] = "Basic ";
	char *plain = NULL, *hdr = NULL;
	size_t idlen, plen, b64len;

	if (!client_id || !secret || secret_len > GW_SECRET_MAX_LEN)
		return NULL;
	idlen = strlen(client_id);
	if (idlen > GW_SECRET_CLIENT_ID_MAX || strchr(client_id, ':'))
		return NULL;
	plen = idlen + 1 + secret_len;
	plain = malloc(plen);
	if (!plain)
		goto out;
	memcpy(plain, client_id, idlen);
	plain[idlen] = ':';
	memcpy(plain + idlen + 1, secret, secret_len);
	b64len = 4 * ((plen + 2) / 3);
	hdr = malloc(sizeof(prefix) - 1 + b64len + 1);
	if (!hdr)
		goto out;
	memcpy(hdr, prefix, sizeof(prefix) - 1);
	/* EVP_EncodeBlock writes no newlines and NUL-terminates. */
	EVP_EncodeBlock((unsigned char *)hdr + sizeof(prefix) - 1, (const unsigned char *)plain, (int)plen);
out:
	if (plain) {
		explicit_bzero(plain, plen);
		free(plain);
	}
	return hdr;
}
