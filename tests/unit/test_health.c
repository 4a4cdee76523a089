/*
 * gateway/svc/health.c pure parts: which service names the health service answers for.
 */
#include <criterion/criterion.h>

#include "gateway/svc/health.h"

struct svc_case {
	const char *name;
	int known;
};

Test(health, service_known_table)
{
	static const struct svc_case cases[] = {
		{ "", 1 },
		{ "animate3d.v1.Jobs", 1 },
		{ "animate3d.v1.Characters", 1 },
		{ "animate3d.v1.Webhooks", 1 },
		{ "animate3d.v1.Account", 1 },
		{ "grpc.health.v1.Health", 1 },
		{ "animate3d.v1", 0 },
		{ "animate3d.v1.Jobs ", 0 },
		{ "ANIMATE3D.V1.JOBS", 0 },
		{ "animate3d.v2.Jobs", 0 },
		{ "other.Service", 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(gw_health_service_known(cases[i].name), cases[i].known, "\"%s\"",
			     cases[i].name);
}
