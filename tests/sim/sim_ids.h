/*
 * sim_ids: the simulator's deterministic PRNG (splitmix64, seeded by --seed) and the 22-character
 * base58 ids it hands out (rids, model ids, endpoint ids, upload ids, session values).
 */
#ifndef A3D_SIM_IDS_H
#define A3D_SIM_IDS_H

#include <stddef.h>
#include <stdint.h>

#define SIM_IDS_LEN 22

uint64_t sim_ids_rand(uint64_t *state);
double sim_ids_rand01(uint64_t *state);		/* uniform in [0, 1) */

/* Writes len base58 characters and a NUL into out (out holds len + 1 bytes). */
void sim_ids_new(uint64_t *state, char *out, size_t len);

/* 1 when s is exactly SIM_IDS_LEN base58 characters. */
int sim_ids_valid(const char *s);

#endif
