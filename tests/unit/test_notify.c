/* Unit tests for gateway/base/notify.c: subscribe / unsubscribe / emit sequences -> who ran. */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/base/notify.h"

static char ran[64];

static void note(void *arg, const void *data)
{
	size_t n = strlen(ran);

	if (n + 2 < sizeof ran) {
		ran[n] = *(const char *)arg;
		ran[n + 1] = data ? *(const char *)data : '-';
		ran[n + 2] = '\0';
	}
}

static void other(void *arg, const void *data)
{
	(void)data;
	note(arg, "o");
}

Test(notify, order_and_unsubscribe)
{
	static const struct {
		const char *ops;	/* +x subscribe note(x), -x unsubscribe, !d emit with data d */
		const char *want;	/* what ran, subscriber/data pairs */
	} rows[] = {
		{ "!a", "" },
		{ "+x!a", "xa" },
		{ "+x+y!a", "xaya" },
		{ "+x+y-x!b", "yb" },
		{ "+x+y-z!b", "xbyb" },		/* unknown: no-op */
		{ "+x!a!b", "xaxb" },
		{ "+x+y-y-x!c", "" },
	};
	static const char names[] = "xyz";

	for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
		struct gw_notify ev = { 0 };
		const char *p = rows[r].ops;

		ran[0] = '\0';
		for (; *p; p += 2) {
			const char *who = strchr(names, p[1]);

			if (p[0] == '+')
				cr_assert_eq(gw_notify_sub(&ev, note, (void *)who), 0);
			else if (p[0] == '-')
				gw_notify_unsub(&ev, note, (void *)who);
			else
				gw_notify_emit(&ev, &p[1]);
		}
		cr_expect_str_eq(ran, rows[r].want, "row %zu (%s): ran \"%s\"", r, rows[r].ops, ran);
	}
}

Test(notify, same_arg_other_function_is_another_subscription)
{
	struct gw_notify ev = { 0 };
	static const char x = 'x';

	ran[0] = '\0';
	gw_notify_sub(&ev, note, (void *)&x);
	gw_notify_sub(&ev, other, (void *)&x);
	gw_notify_unsub(&ev, note, (void *)&x);
	gw_notify_emit(&ev, "d");
	cr_expect_str_eq(ran, "xo");
	cr_expect_eq(ev.emitted, 1);
}

Test(notify, full)
{
	struct gw_notify ev = { 0 };
	static const char x = 'x';

	for (size_t i = 0; i < GW_NOTIFY_MAX_SUBS; i++)
		cr_assert_eq(gw_notify_sub(&ev, note, (void *)&x), 0);
	cr_expect_eq(gw_notify_sub(&ev, note, (void *)&x), -1);
	cr_expect_eq(gw_notify_sub(&ev, NULL, NULL), -1);
}
