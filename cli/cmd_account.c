/*
 * cmd_account: what the account and the characters say: credits (Account.GetCreditBalance) and
 * models (Characters.ListModels, DeleteModel).
 */
#include "cli/a3d.h"

#include <inttypes.h>
#include <string.h>

#include "animate3d/v1/account.pb-c.h"
#include "animate3d/v1/characters.pb-c.h"
#include "cli/json.h"

#define ACCT_M_CREDITS "/animate3d.v1.Account/GetCreditBalance"
#define ACCT_M_MODELS "/animate3d.v1.Characters/ListModels"
#define ACCT_M_DELETE "/animate3d.v1.Characters/DeleteModel"

static const struct a3d_opt acct_no_opts[] = { { NULL, 0, 0, NULL } };

static int acct_cmd_credits(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	Animate3d__V1__GetCreditBalanceRequest req = ANIMATE3D__V1__GET_CREDIT_BALANCE_REQUEST__INIT;
	Animate3d__V1__GetCreditBalanceResponse *resp = NULL;
	struct a3d_status st;
	struct a3d_rpc r;
	int rc;

	if (a->npos != 0)
		return a3d_usage_error(cmd, "takes no operands");
	rc = a3d_connect(a, &r);
	if (rc)
		return rc;
	a3d_rpc_unary(&r, ACCT_M_CREDITS, &req.base, &animate3d__v1__get_credit_balance_response__descriptor,
		      (ProtobufCMessage **)&resp, &st);
	if (st.code != GRPC_STATUS_OK) {
		rc = a3d_rpc_fail(a, "GetCreditBalance", &st);
	} else {
		if (a->g.json)
			a3d_json_print(stdout, a3d_json_from_message(&resp->base));
		else
			printf("%g\n", resp->credits);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	a3d_rpc_close(&r);
	return rc;
}

const struct a3d_cmd a3d_cmd_credits = {
	"credits", "Print the credit balance of your team's upstream account (Account.GetCreditBalance).",
	"credits", acct_no_opts, acct_cmd_credits,
};

enum { M_STOCK, M_SEARCH, M_ID };

static const struct a3d_opt acct_models_opts[] = {
	[M_STOCK] = { "stock", 0, 0, "--stock            also list the stock models everyone may use" },
	[M_SEARCH] = { "search", 0, 1, "--search TEXT      only models whose name matches TEXT" },
	[M_ID] = { "id", 0, 1, "--id ID            only the model ID" },
	{ NULL, 0, 0, NULL },
};

static int acct_models_delete(const struct a3d_cmd *cmd, struct a3d_args *a, struct a3d_rpc *r)
{
	Animate3d__V1__DeleteModelRequest req = ANIMATE3D__V1__DELETE_MODEL_REQUEST__INIT;
	Animate3d__V1__DeleteModelResponse *resp = NULL;
	struct a3d_status st;
	int rc = A3D_EXIT_OK;

	req.model_id = (char *)a->pos[1];
	a3d_rpc_unary(r, ACCT_M_DELETE, &req.base, &animate3d__v1__delete_model_response__descriptor,
		      (ProtobufCMessage **)&resp, &st);
	if (st.code != GRPC_STATUS_OK)
		return a3d_rpc_fail(a, "DeleteModel", &st);
	if (a->g.json)
		a3d_json_print(stdout, a3d_json_from_message(&resp->base));
	else
		printf("deleted %d\n", resp->count);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return rc;
}

static int acct_cmd_models(const struct a3d_cmd *cmd, struct a3d_args *a)
{
	Animate3d__V1__ListModelsRequest req = ANIMATE3D__V1__LIST_MODELS_REQUEST__INIT;
	Animate3d__V1__ListModelsResponse *resp = NULL;
	struct a3d_status st;
	struct a3d_rpc r;
	size_t i;
	int k, rc, del;

	for (k = 0; k < a->nopt; k++) {
		switch (a->opt[k].idx) {
		case M_STOCK: req.include_stock = 1; break;
		case M_SEARCH: req.search_token = (char *)a->opt[k].val; break;
		case M_ID: req.model_id = (char *)a->opt[k].val; break;
		default: break;
		}
	}
	del = a->npos >= 1 && strcmp(a->pos[0], "delete") == 0;
	if (del ? a->npos != 2 : (a->npos > 1 || (a->npos == 1 && strcmp(a->pos[0], "list") != 0)))
		return a3d_usage_error(cmd, "models [list] [--stock] [--search TEXT] | models delete ID");
	rc = a3d_connect(a, &r);
	if (rc)
		return rc;
	if (del) {
		rc = acct_models_delete(cmd, a, &r);
		goto out;
	}
	a3d_rpc_unary(&r, ACCT_M_MODELS, &req.base, &animate3d__v1__list_models_response__descriptor,
		      (ProtobufCMessage **)&resp, &st);
	if (st.code != GRPC_STATUS_OK) {
		rc = a3d_rpc_fail(a, "ListModels", &st);
		goto out;
	}
	if (a->g.json) {
		a3d_json_print(stdout, a3d_json_from_message(&resp->base));
	} else {
		for (i = 0; i < resp->n_models; i++)
			printf("%s  %-8s  %s\n", resp->models[i]->id, resp->models[i]->platform,
			       resp->models[i]->name);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
out:
	a3d_rpc_close(&r);
	return rc;
}

const struct a3d_cmd a3d_cmd_models = {
	"models", "List character models (Characters.ListModels): id, platform, name; or delete one.",
	"models [list] [--stock] [--search TEXT] [--id ID] | models delete ID", acct_models_opts,
	acct_cmd_models,
};
