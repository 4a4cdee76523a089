/*
 * idhash: an unkeyed 32-bit hash of short ids (rids, model and endpoint ids) for the in-process
 * tables a cached GetStatus looks into (the status cache, the state store's owner cache, the
 * memory store): eight bytes per step and a final mix, where FNV-1a took a multiply per byte (a
 * rid is 22 bytes; callgrind counted ~100 instructions per lookup for FNV, ~30 for this).
 *
 * Not a defence against chosen keys, as FNV was not: the tables it serves hold only ids the
 * upstream made (and a tenant's own), and bound their chains or entries by named limits. Never
 * for anything that leaves the process or is stored: the value differs between byte orders and
 * may change between builds. Pure.
 */
#ifndef A3D_GATEWAY_IDHASH_H
#define A3D_GATEWAY_IDHASH_H

#include <stddef.h>
#include <stdint.h>

/* The hash of p[0..n) under seed (a table's kind, account, ...: equal bytes under different
 * seeds hash apart). p may be NULL when n is 0. */
uint32_t gw_idhash(uint64_t seed, const void *p, size_t n);

#endif
