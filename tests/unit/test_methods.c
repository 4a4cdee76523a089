/*
 * Unit tests for gateway/methods.c: the one method table, checked against the compiled contract
 * (every method of every animate3d.v1 service has exactly one row with the proto's types), and
 * the fixed facts of the methods the issues name.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "animate3d/v1/jobs.pb-c.h"
#include "animate3d/v1/webhooks.pb-c.h"
#include "auth/caller/perm.h"
#include "gateway/call/call.h"
#include "gateway/call/svc.h"
#include "gateway/methods.h"
#include "gateway/svc/download.h"
#include "gateway/svc/health.h"
#include "gateway/svc/reflection.h"
#include "gateway/svc/status.h"
#include "gateway/svc/unary.h"
#include "gateway/svc/upload.h"

static const ProtobufCServiceDescriptor *const services[] = {
	&animate3d__v1__jobs__descriptor, &animate3d__v1__characters__descriptor,
	&animate3d__v1__webhooks__descriptor, &animate3d__v1__account__descriptor,
};

Test(methods, every_contract_method_has_one_row)
{
	size_t n, covered = 0;

	gw_methods(&n);
	cr_assert_leq(n, GW_METHODS_MAX);
	for (size_t s = 0; s < sizeof services / sizeof services[0]; s++) {
		for (unsigned k = 0; k < services[s]->n_methods; k++) {
			const ProtobufCMethodDescriptor *md = &services[s]->methods[k];
			char path[256];
			const struct gw_method *row;

			snprintf(path, sizeof path, "/%s/%s", services[s]->name, md->name);
			row = gw_methods_find(path);
			cr_assert_not_null(row, "no row for %s", path);
			covered++;
			cr_expect_str_eq(row->name, md->name, "%s: name", path);
			if (row->kind != GW_CLIENT_STREAM)
				cr_expect_eq(row->req_desc, md->input, "%s: request type", path);
			if (row->tr.build)
				cr_expect_eq(row->tr.resp_desc, md->output, "%s: reply type", path);
			cr_expect_neq(row->perm, 0, "%s needs a key", path);
		}
	}
	/* The rest are the health service's two and server reflection's two (v1, v1alpha). */
	cr_expect_eq(n, covered + 4);
}

Test(methods, rows_are_complete_and_unique)
{
	size_t n;
	const struct gw_method *m = gw_methods(&n);

	for (size_t i = 0; i < n; i++) {
		const char *slash = strrchr(m[i].path, '/');

		cr_expect_not_null(m[i].handler, "%s: handler", m[i].path);
		cr_expect_not_null(m[i].svc, "%s: service", m[i].path);
		cr_expect(slash && strcmp(slash + 1, m[i].name) == 0, "%s: name %s", m[i].path, m[i].name);
		cr_expect_eq(m[i].tr.build == NULL, m[i].tr.parse == NULL, "%s: build and parse", m[i].path);
		cr_expect(GW_METHOD_STREAMS_IN(&m[i]) || m[i].req_desc, "%s: request type", m[i].path);
		cr_expect(!m[i].tr.build || m[i].kind == GW_UNARY, "%s: only unary rows translate",
			  m[i].path);
		for (size_t j = i + 1; j < n; j++)
			cr_expect_str_neq(m[i].path, m[j].path, "duplicate %s", m[i].path);
	}
	cr_expect_null(gw_methods_find("/animate3d.v1.Jobs/Nope"));
	cr_expect_null(gw_methods_find(NULL));
}

/* The methods the issues fix, with the facts each must carry. */
Test(methods, fixed_rows_table)
{
	static const struct {
		const char *path;
		enum gw_method_kind kind;
		unsigned perm;
		unsigned cost;
		const struct gw_svc *svc;
		int translates;
	} want[] = {
		{ "/animate3d.v1.Jobs/UploadVideo", GW_CLIENT_STREAM, GW_PERM_WRITE, 5, &gw_svc_upload, 0 },
		{ "/animate3d.v1.Jobs/WatchStatus", GW_SERVER_STREAM, GW_PERM_READ, 1, &gw_svc_status, 0 },
		{ "/animate3d.v1.Jobs/GetStatus", GW_UNARY, GW_PERM_READ, 1, &gw_svc_status, 1 },
		{ "/animate3d.v1.Jobs/GetDownloadUrls", GW_UNARY, GW_PERM_READ, 1, &gw_svc_download, 1 },
		{ "/animate3d.v1.Jobs/StartJob", GW_UNARY, GW_PERM_WRITE, 5, &gw_svc_unary, 1 },
		{ "/animate3d.v1.Jobs/GetUploadUrl", GW_UNARY, GW_PERM_WRITE, 2, &gw_svc_unary, 1 },
		/* Issue 19: hands out write URLs, so write permission, and a signed URL's cost. */
		{ "/animate3d.v1.Jobs/GetPersonUrls", GW_UNARY, GW_PERM_WRITE, 2, &gw_svc_unary, 1 },
		{ "/animate3d.v1.Account/GetCreditBalance", GW_UNARY, GW_PERM_READ, 1, &gw_svc_unary, 1 },
		{ "/grpc.health.v1.Health/Check", GW_UNARY, 0, 0, &gw_svc_health, 0 },
		{ "/grpc.health.v1.Health/Watch", GW_SERVER_STREAM, 0, 0, &gw_svc_health, 0 },
		/* Issue 21: any valid key (either permission), one token per stream. */
		{ "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", GW_BIDI_STREAM,
		  GW_PERM_READ | GW_PERM_WRITE, 1, &gw_svc_reflection, 0 },
		{ "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", GW_BIDI_STREAM,
		  GW_PERM_READ | GW_PERM_WRITE, 1, &gw_svc_reflection, 0 },
	};

	for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
		const struct gw_method *m = gw_methods_find(want[w].path);

		cr_assert_not_null(m, "%s", want[w].path);
		cr_expect_eq(m->kind, want[w].kind, "%s kind", want[w].path);
		cr_expect_eq(m->perm, want[w].perm, "%s perm", want[w].path);
		cr_expect_eq(m->cost, want[w].cost, "%s cost", want[w].path);
		cr_expect_eq(m->svc, want[w].svc, "%s service", want[w].path);
		cr_expect_eq(m->tr.build != NULL, want[w].translates, "%s translates", want[w].path);
	}
	cr_expect(gw_methods_find("/animate3d.v1.Jobs/StartJob")->flags & GW_METHOD_IDEMPOTENCY_KEY);
	cr_expect(!(gw_methods_find("/animate3d.v1.Jobs/GetStatus")->flags &
		    GW_METHOD_IDEMPOTENCY_KEY));
}

/* Every row's service is registered (the top builds states only for listed services). */
Test(methods, services_cover_rows)
{
	size_t n, ns;
	const struct gw_method *m = gw_methods(&n);
	const struct gw_svc *const *s = gw_methods_services(&ns);

	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < ns && s[k] != m[i].svc; k++)
			;
		cr_expect_lt(k, ns, "%s: service %s not listed", m[i].path, m[i].svc->name);
	}
	for (size_t a = 0; a < ns; a++)
		for (size_t b = a + 1; b < ns; b++)
			cr_expect_neq(s[a], s[b], "service %s listed twice", s[a]->name);
}
