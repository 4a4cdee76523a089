/*
 * gateway/rpc.c: the method table every gRPC method is registered from, and name helpers.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "auth/caller/perm.h"
#include "gateway/rpc.h"
#include "gateway/api/translate.h"

struct name_case {
	const char *path;
	const char *name;
};

Test(rpc, short_name_table)
{
	static const struct name_case cases[] = {
		{ "/animate3d.v1.Jobs/GetStatus", "GetStatus" },
		{ "/grpc.health.v1.Health/Check", "Check" },
		{ "NoSlash", "NoSlash" },
		{ "/trailing/", "" },
		{ NULL, "" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_str_eq(gw_rpc_short_name(cases[i].path), cases[i].name, "case %zu", i);
}

/* The methods the issue fixes, with the kind and permission each must be registered with. */
struct method_case {
	const char *path;
	enum gw_method_kind kind;
	unsigned perm;
};

Test(rpc, table_has_fixed_methods)
{
	static const struct method_case want[] = {
		{ "/animate3d.v1.Jobs/UploadVideo", GW_CLIENT_STREAM, GW_PERM_WRITE },
		{ "/animate3d.v1.Jobs/WatchStatus", GW_SERVER_STREAM, GW_PERM_READ },
		{ "/grpc.health.v1.Health/Check", GW_UNARY, 0 },
		{ "/grpc.health.v1.Health/Watch", GW_SERVER_STREAM, 0 },
	};
	struct gw_method *m = NULL;
	size_t n = 0;

	cr_assert_eq(gw_rpc_methods_new(&m, &n), 0);
	for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
		size_t hits = 0;

		for (size_t i = 0; i < n; i++) {
			if (strcmp(m[i].path, want[w].path) != 0)
				continue;
			hits++;
			cr_expect_eq(m[i].kind, want[w].kind, "%s kind", want[w].path);
			cr_expect_eq(m[i].perm, want[w].perm, "%s perm", want[w].path);
			cr_expect_not_null(m[i].handler, "%s handler", want[w].path);
		}
		cr_expect_eq(hits, 1, "%s registered %zu times", want[w].path, hits);
	}
	gw_rpc_methods_free(m);
}

/* Every translate row becomes a unary method with the row's descriptor and permission. */
Test(rpc, table_covers_translate_rows)
{
	struct gw_method *m = NULL;
	size_t n = 0, nrows = 0;
	const struct gw_tr_rpc *rows = gw_tr_rows(&nrows);

	cr_assert_eq(gw_rpc_methods_new(&m, &n), 0);
	cr_assert_eq(n, nrows + 4);
	cr_assert_leq(n, GW_RPC_MAX_METHODS);
	for (size_t r = 0; r < nrows; r++) {
		size_t i;

		for (i = 0; i < n; i++)
			if (strcmp(m[i].path, rows[r].grpc_path) == 0)
				break;
		cr_assert_lt(i, n, "%s missing", rows[r].grpc_path);
		cr_expect_eq(m[i].kind, GW_UNARY);
		cr_expect_eq(m[i].req_desc, rows[r].req_desc);
		cr_expect_eq(m[i].perm, rows[r].perm);
		cr_expect_neq(m[i].perm, 0, "%s needs a key", rows[r].grpc_path);
		cr_expect_eq(m[i].row, &rows[r]);
		cr_expect_eq(m[i].handler, gw_rpc_unary);
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			cr_expect_str_neq(m[i].path, m[j].path, "duplicate %s", m[i].path);
	gw_rpc_methods_free(m);
}
