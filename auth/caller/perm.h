/* Permissions an API key grants. A method requires one of these; see gateway/api/translate.h. */
#ifndef A3D_AUTH_PERM_H
#define A3D_AUTH_PERM_H

enum gw_perm {
	GW_PERM_READ = 1u << 0,	/* status, lists, downloads, balances */
	GW_PERM_WRITE = 1u << 1,	/* uploads, jobs, models, webhooks */
	GW_PERM_ADMIN = 1u << 2	/* Account.GetUsage of every tenant (issue 22); nothing else */
};

#endif
