/*
 * secret: the upstream client secret of an account, read from a file or an environment variable
 * (never from the config itself), and the Basic Authorization header built from it.
 *
 * Every buffer holding secret material is wiped (explicit_bzero) before it is freed. No message this
 * module produces contains the secret: name it by gw_secret_fingerprint() if you must.
 */
#ifndef A3D_AUTH_SECRET_H
#define A3D_AUTH_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config/config.h"

#define GW_SECRET_MAX_LEN 1024		/* longest secret accepted, after stripping trailing \r\n */
#define GW_SECRET_CLIENT_ID_MAX 1024	/* longest client id gw_secret_basic_header accepts */
#define GW_SECRET_WHO_MAX 160		/* "account <name>" in messages; longer names are cut */
#define GW_SECRET_SEAL_KEY_LEN 32	/* redis.seal_key_file: an AES-256 key */

/*
 * Reads the account's client secret from its file or environment variable into *out (malloc'd,
 * NUL-terminated, *len bytes; release with gw_secret_free). A file must be a regular file (symlinks
 * are followed, as Kubernetes secret volumes use them) not readable/writable by group or others
 * (mode & 077 == 0), else it is refused ("secret file /x is group/world-accessible (mode 0644);
 * chmod 600 it"). Trailing \r and \n are stripped; an empty result or one over GW_SECRET_MAX_LEN is
 * refused. Returns 0, or -1 with a message in err (errlen bytes, may be 0) and *out NULL.
 * err never contains the secret.
 */
int gw_secret_load(const struct gw_account_cfg *a, char **out, size_t *len, char *err, size_t errlen);

/*
 * The PostgreSQL password (state.postgres.password_file or password_env) with the same rules and
 * messages ("state.postgres: the password is empty", "secret file /x is group/world-accessible
 * ..."). Call it only when one of the two is set: neither is a configuration without a password
 * (trust or certificate authentication), for which it answers "set exactly one of ...".
 */
int gw_secret_load_pg(const struct gw_pg_cfg *pg, char **out, size_t *len, char *err, size_t errlen);

/*
 * The Redis password (redis.password_file or redis.password_env), with the same rules and messages
 * as gw_secret_load_pg ("redis: the password is empty", ...). Call it only when one of the two is
 * set: neither means no AUTH.
 */
int gw_secret_load_redis(const struct gw_redis_cfg *r, char **out, size_t *len, char *err, size_t errlen);

/*
 * The key that seals the shared upstream session (redis.seal_key_file, the same file on every
 * replica) into key. The file follows the secret-file rules (regular, mode & 077 == 0) and holds
 * either exactly 32 raw bytes or 64 hex digits (openssl rand -hex 32) with an optional trailing
 * "\n" or "\r\n"; anything else is refused, and so is an all-zero key. Returns 0, or -1 with err set
 * (the path and a byte count, never the contents) and key zeroed. Every buffer is wiped.
 */
int gw_secret_load_seal_key(const char *path, uint8_t key[GW_SECRET_SEAL_KEY_LEN], char *err, size_t errlen);

/*
 * The file part of gw_secret_load, for other secrets kept in files (the webhook path token):
 * reads at most cap bytes of path into buf (*len bytes, not NUL-terminated, nothing stripped)
 * with the same rules (regular file, mode & 077 == 0). A file longer than cap gives *len == cap:
 * the caller refuses it. Returns 0, or -1 with err set (never quoting the contents).
 */
int gw_secret_read_file(const char *path, char *buf, size_t cap, size_t *len, char *err, size_t errlen);

void gw_secret_free(char *s, size_t len);	/* explicit_bzero(s, len) then free; NULL is fine */

/* "s:" + the first 10 hex digits of SHA-256(secret), NUL-terminated: tells secrets apart in logs. */
void gw_secret_fingerprint(const char *s, size_t len, char out[13]);

/*
 * "Basic base64(client_id:secret)" for the Authorization header, malloc'd and NUL-terminated; wipe it
 * with gw_secret_free(h, strlen(h)). NULL on ENOMEM, NULL arguments, or a client id containing ':'
 * (Basic cannot carry it) or longer than GW_SECRET_CLIENT_ID_MAX.
 */
char *gw_secret_basic_header(const char *client_id, const char *secret, size_t secret_len);

#endif
