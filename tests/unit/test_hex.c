/* gateway/base/hex.c: one digit's value, as a table. */
#include <criterion/criterion.h>

#include "gateway/base/hex.h"

Test(hex, digit_values)
{
	static const struct {
		int c;
		int want;
	} rows[] = {
		{ '0', 0 },  { '9', 9 },   { 'a', 10 }, { 'f', 15 }, { 'A', 10 }, { 'F', 15 },
		{ 'g', -1 }, { 'G', -1 },  { '/', -1 }, { ':', -1 }, { '@', -1 }, { '`', -1 },
		{ ' ', -1 }, { '\0', -1 }, { -1, -1 },  { 0xe9, -1 }, { '%', -1 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(gw_hex_digit(rows[i].c), rows[i].want, "0x%02x", rows[i].c & 0xff);
}
