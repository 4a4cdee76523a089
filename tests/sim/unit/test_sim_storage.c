/* sim_storage: Content-Range parsing and signed URL sign/verify/expiry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sim_storage.h"

Test(sim_storage, content_range_table)
{
	static const struct { const char *v; int rc; long long first, last, total; } cases[] = {
		{ "bytes 0-99/200", 0, 0, 99, 200 },
		{ "bytes 100-199/200", 0, 100, 199, 200 },
		{ "bytes 0-262143/*", 0, 0, 262143, -1 },
		{ "bytes */200", 1, -1, -1, 200 },
		{ "bytes */0", 1, -1, -1, 0 },
		{ "BYTES 0-0/1", 0, 0, 0, 1 },
		{ "bytes 0-99/99", -1, 0, 0, 0 },	/* last beyond total */
		{ "bytes 5-4/10", -1, 0, 0, 0 },	/* last < first */
		{ "bytes 0-/10", -1, 0, 0, 0 },
		{ "bytes -5/10", -1, 0, 0, 0 },
		{ "bytes 0-9/ten", -1, 0, 0, 0 },
		{ "bytes */*", -1, 0, 0, 0 },
		{ "items 0-9/10", -1, 0, 0, 0 },
		{ "bytes 0-9/10x", -1, 0, 0, 0 },
		{ "", -1, 0, 0, 0 },
		{ NULL, -1, 0, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t f = 7, l = 7, t = 7;
		int rc = sim_storage_parse_content_range(cases[i].v, &f, &l, &t);

		cr_expect_eq(rc, cases[i].rc, "case %zu '%s': rc %d", i, cases[i].v, rc);
		if (rc >= 0 && rc == cases[i].rc)
			cr_expect(f == cases[i].first && l == cases[i].last && t == cases[i].total,
				  "case %zu: %lld-%lld/%lld", i, (long long)f, (long long)l, (long long)t);
	}
}

static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";

/* 20261128T071500Z = 1795850100 */
static void query(char *out, size_t n, const char *path, const char *date, long exp)
{
	char sig[SIM_STORAGE_SIG_HEX + 1];

	sim_storage_sign(key, sizeof(key), path, date, exp, sig);
	snprintf(out, n, "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Date=%s&X-Goog-Expires=%ld&X-Goog-Signature=%s",
		 date, exp, sig);
}

Test(sim_storage, sign_verify_expiry)
{
	char q[512], bad[512];
	const char *path = "/storage/u/abc/clip.mp4";

	query(q, sizeof(q), path, "20261128T071500Z", 3600);
	cr_expect_eq(sim_storage_verify(key, sizeof(key), path, q, 1795850100.0), 0, "fresh");
	cr_expect_eq(sim_storage_verify(key, sizeof(key), path, q, 1795850100.0 + 3599), 0, "last second");
	cr_expect_eq(sim_storage_verify(key, sizeof(key), path, q, 1795850100.0 + 3600), SIM_STORAGE_EXPIRED);
	cr_expect_eq(sim_storage_verify(key, sizeof(key), "/storage/u/abd/clip.mp4", q, 1795850100.0),
		     SIM_STORAGE_BAD_SIG, "other path");

	/* tampered expiry: a longer life needs a new signature */
	snprintf(bad, sizeof(bad), "%s", q);
	memcpy(strstr(bad, "Expires=3600"), "Expires=9600", 12);
	cr_expect_eq(sim_storage_verify(key, sizeof(key), path, bad, 1795850100.0), SIM_STORAGE_BAD_SIG);

	/* tampered signature */
	snprintf(bad, sizeof(bad), "%s", q);
	{
		char *sig = strstr(bad, "Signature=") + 10;

		sig[0] = sig[0] == 'a' ? 'b' : 'a';
	}
	cr_expect_eq(sim_storage_verify(key, sizeof(key), path, bad, 1795850100.0), SIM_STORAGE_BAD_SIG);

	/* another key */
	{
		unsigned char k2[32];

		memcpy(k2, key, sizeof(k2));
		k2[0] ^= 1;
		cr_expect_eq(sim_storage_verify(k2, sizeof(k2), path, q, 1795850100.0), SIM_STORAGE_BAD_SIG);
	}
	cr_expect_eq(sim_storage_verify(key, sizeof(key), path, "", 1795850100.0), SIM_STORAGE_BAD_SIG);
	cr_expect_eq(sim_storage_verify(key, sizeof(key), path, "X-Goog-Date=bad&X-Goog-Expires=1&X-Goog-Signature=00",
					1795850100.0), SIM_STORAGE_BAD_SIG);
}

Test(sim_storage, signature_is_stable_hex)
{
	char a[SIM_STORAGE_SIG_HEX + 1], b[SIM_STORAGE_SIG_HEX + 1];

	sim_storage_sign(key, sizeof(key), "/p", "20261128T071500Z", 60, a);
	sim_storage_sign(key, sizeof(key), "/p", "20261128T071500Z", 60, b);
	cr_expect_str_eq(a, b);
	cr_expect_eq(strlen(a), SIM_STORAGE_SIG_HEX);
	cr_expect_eq(strspn(a, "0123456789abcdef"), SIM_STORAGE_SIG_HEX);
	sim_storage_sign(key, sizeof(key), "/p", "20261128T071500Z", 61, b);
	cr_expect_str_neq(a, b);
}
