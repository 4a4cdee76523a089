/* sim_ids: deterministic randomness and base58 ids. */
#include "sim_ids.h"

#include <string.h>

static const char sim_ids_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

uint64_t sim_ids_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double sim_ids_rand01(uint64_t *state)
{
	return (double)(sim_ids_rand(state) >> 11) / (double)(1ull << 53);
}

void sim_ids_new(uint64_t *state, char *out, size_t len)
{
	for (size_t i = 0; i < len; i++)
		out[i] = sim_ids_alphabet[sim_ids_rand(state) % 58];
	out[len] = '\0';
}

int sim_ids_valid(const char *s)
{
	return s != NULL && strlen(s) == SIM_IDS_LEN &&
	       strspn(s, sim_ids_alphabet) == SIM_IDS_LEN;
}
