/*
 * sim_models: character models. Stock models (SIM_MODELS_STOCK of them, platforms deepmotion
 * and roblox, the same ids in every run) are visible to every account with stockModel=all;
 * custom models belong to one account. At most SIM_MAX_MODELS models in all.
 */
#ifndef A3D_SIM_MODELS_H
#define A3D_SIM_MODELS_H

#include "sim.h"

struct sim_req;
struct sim_resp;

#define SIM_MODELS_STOCK 3
#define SIM_MODELS_STOCK_SEED 0x5eedull	/* stock ids do not depend on --seed */

int sim_models_init(struct sim *s);
void sim_models_free(struct sim *s);

/* A stock model, or a custom model of account (-1: any account); NULL when unknown. */
struct sim_model *sim_models_find(struct sim *s, const char *id, int account);

void sim_models_h_upload_url(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_models_h_store(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_models_h_list(struct sim *s, struct sim_req *rq, struct sim_resp *rs);
void sim_models_h_delete(struct sim *s, struct sim_req *rq, struct sim_resp *rs);

#endif
