/*
 * Unit tests for gateway/svc/protoset.c: the embedded descriptor set's index (symbols of every
 * kind, files, closures), a hand-encoded set with what the gateway's protos lack (nesting,
 * imports, extensions, a file without a package), and broken sets, each refused with its reason;
 * every truncation of a valid set is read without a fault.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gateway/svc/protoset.h"

/* ---- a tiny protobuf writer for hand-made sets ---- */

struct pb {
	uint8_t b[2048];
	size_t n;
};

static void pb_varint(struct pb *p, uint64_t v)
{
	while (v >= 0x80) {
		p->b[p->n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p->b[p->n++] = (uint8_t)v;
}

static void pb_bytes(struct pb *p, unsigned field, const void *data, size_t len)
{
	pb_varint(p, (uint64_t)field << 3 | 2);
	pb_varint(p, len);
	cr_assert_leq(p->n + len, sizeof p->b);
	memcpy(p->b + p->n, data, len);
	p->n += len;
}

static void pb_str(struct pb *p, unsigned field, const char *s) { pb_bytes(p, field, s, strlen(s)); }
static void pb_msg(struct pb *p, unsigned field, const struct pb *m) { pb_bytes(p, field, m->b, m->n); }

static void pb_num(struct pb *p, unsigned field, uint64_t v)
{
	pb_varint(p, (uint64_t)field << 3);
	pb_varint(p, v);
}

/* A named descriptor (every *DescriptorProto has its name as field 1). */
static struct pb named(const char *name)
{
	struct pb p = { .n = 0 };

	pb_str(&p, 1, name);
	return p;
}

/*
 * a.proto, package p: message Outer { int32 x = 1; message Inner { enum E { V = 0; } } }
 *                     extend p.Outer { int32 ext = 100; }
 * b.proto, package q, imports a.proto: service S { rpc M(...) }
 * c.proto, no package, imports b.proto and a.proto: message Top {}
 */
static struct pb sample_set(void)
{
	struct pb set = { .n = 0 }, a = named("a.proto"), b = named("b.proto"), c = named("c.proto");
	struct pb outer = named("Outer"), inner = named("Inner"), e = named("E"), v = named("V");
	struct pb x = named("x"), ext = named("ext"), s = named("S"), m = named("M");
	struct pb top = named("Top");

	pb_msg(&e, 2, &v);		/* EnumDescriptorProto.value */
	pb_msg(&inner, 4, &e);		/* DescriptorProto.enum_type */
	pb_num(&x, 3, 1);		/* FieldDescriptorProto.number */
	pb_msg(&outer, 2, &x);		/* DescriptorProto.field */
	pb_msg(&outer, 3, &inner);	/* DescriptorProto.nested_type */
	pb_str(&ext, 2, ".p.Outer");	/* extendee */
	pb_num(&ext, 3, 100);
	pb_str(&a, 2, "p");		/* FileDescriptorProto.package */
	pb_msg(&a, 4, &outer);		/* message_type */
	pb_msg(&a, 7, &ext);		/* extension */
	pb_msg(&s, 2, &m);		/* ServiceDescriptorProto.method */
	pb_str(&b, 2, "q");
	pb_str(&b, 3, "a.proto");	/* dependency */
	pb_msg(&b, 6, &s);		/* service */
	pb_str(&c, 3, "b.proto");
	pb_str(&c, 3, "a.proto");
	pb_msg(&c, 4, &top);
	pb_msg(&set, 1, &a);
	pb_msg(&set, 1, &b);
	pb_msg(&set, 1, &c);
	return set;
}

struct sym_case {
	const char *symbol;
	const char *file;	/* NULL: not found */
	enum gw_protoset_kind kind;
};

static void check_symbols(const struct gw_protoset *ps, const struct sym_case *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum gw_protoset_kind kind;
		int f = gw_protoset_file_of_symbol(ps, t[i].symbol, &kind);

		if (!t[i].file) {
			cr_expect_eq(f, -1, "%s: found", t[i].symbol);
			cr_expect_eq(kind, GW_PS_NONE, "%s: kind", t[i].symbol);
			continue;
		}
		cr_assert_geq(f, 0, "%s: not found", t[i].symbol);
		cr_expect_str_eq(gw_protoset_file_name(ps, (size_t)f), t[i].file, "%s", t[i].symbol);
		cr_expect_eq(kind, t[i].kind, "%s: kind %d", t[i].symbol, kind);
	}
}

Test(protoset, embedded_set_symbols)
{
	static const struct sym_case t[] = {
		{ "animate3d.v1.Jobs", "animate3d/v1/jobs.proto", GW_PS_SERVICE },
		{ "animate3d.v1.Jobs.GetStatus", "animate3d/v1/jobs.proto", GW_PS_METHOD },
		{ "animate3d.v1.Jobs.UploadVideo", "animate3d/v1/jobs.proto", GW_PS_METHOD },
		{ "animate3d.v1.GetStatusRequest", "animate3d/v1/jobs.proto", GW_PS_MESSAGE },
		{ "animate3d.v1.GetStatusRequest.rids", "animate3d/v1/jobs.proto", GW_PS_FIELD },
		{ "animate3d.v1.JobState", "animate3d/v1/jobs.proto", GW_PS_ENUM },
		{ "animate3d.v1.Characters", "animate3d/v1/characters.proto", GW_PS_SERVICE },
		{ "animate3d.v1.Webhooks.RotateSecret", "animate3d/v1/webhooks.proto", GW_PS_METHOD },
		{ "animate3d.v1.Account", "animate3d/v1/account.proto", GW_PS_SERVICE },
		{ "grpc.health.v1.Health", "grpc/health/v1/health.proto", GW_PS_SERVICE },
		{ "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto",
		  GW_PS_ENUM },
		{ "grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto",
		  GW_PS_ENUM_VALUE },
		{ "grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto",
		  GW_PS_SERVICE },
		{ "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo",
		  "grpc/reflection/v1alpha/reflection.proto", GW_PS_METHOD },
		{ "animate3d.v1", NULL, GW_PS_NONE },		/* packages are not symbols */
		{ "animate3d.v1.Nope", NULL, GW_PS_NONE },
		{ ".animate3d.v1.Jobs", NULL, GW_PS_NONE },
		{ "animate3d.v1.jobs", NULL, GW_PS_NONE },
		{ "", NULL, GW_PS_NONE },
	};
	struct gw_protoset *ps;
	char err[GW_PROTOSET_ERR_MAX] = "";

	cr_assert_eq(gw_protoset_open(gw_protoset_embedded, gw_protoset_embedded_len, &ps, err,
				      sizeof err), 0, "%s", err);
	cr_expect_eq(gw_protoset_nfiles(ps), 7);
	check_symbols(ps, t, sizeof t / sizeof t[0]);
	cr_expect_eq(gw_protoset_file_of_symbol(ps, NULL, NULL), -1);
	cr_expect_geq(gw_protoset_file_by_name(ps, "animate3d/v1/jobs.proto"), 0);
	cr_expect_eq(gw_protoset_file_by_name(ps, "jobs.proto"), -1);
	gw_protoset_free(ps);
}

Test(protoset, hand_made_set)
{
	static const struct sym_case t[] = {
		{ "p.Outer", "a.proto", GW_PS_MESSAGE },
		{ "p.Outer.x", "a.proto", GW_PS_FIELD },
		{ "p.Outer.Inner", "a.proto", GW_PS_MESSAGE },
		{ "p.Outer.Inner.E", "a.proto", GW_PS_ENUM },
		{ "p.Outer.Inner.V", "a.proto", GW_PS_ENUM_VALUE },	/* a sibling of its enum */
		{ "p.ext", "a.proto", GW_PS_EXTENSION },
		{ "q.S", "b.proto", GW_PS_SERVICE },
		{ "q.S.M", "b.proto", GW_PS_METHOD },
		{ "Top", "c.proto", GW_PS_MESSAGE },			/* no package: no dot */
		{ "p.Outer.Inner.E.V", NULL, GW_PS_NONE },
		{ "p.Inner", NULL, GW_PS_NONE },
		{ ".Top", NULL, GW_PS_NONE },
	};
	static const struct {
		const char *file;
		const char *closure[4];
	} closures[] = {
		{ "a.proto", { "a.proto" } },
		{ "b.proto", { "b.proto", "a.proto" } },
		{ "c.proto", { "c.proto", "b.proto", "a.proto" } },	/* a once */
	};
	struct pb set = sample_set();
	struct gw_protoset *ps;
	char err[GW_PROTOSET_ERR_MAX] = "";
	int32_t nums[4];
	size_t idx[GW_PROTOSET_MAX_FILES];

	cr_assert_eq(gw_protoset_open(set.b, set.n, &ps, err, sizeof err), 0, "%s", err);
	cr_expect_eq(gw_protoset_nfiles(ps), 3);
	check_symbols(ps, t, sizeof t / sizeof t[0]);
	for (size_t i = 0; i < sizeof closures / sizeof closures[0]; i++) {
		int f = gw_protoset_file_by_name(ps, closures[i].file);
		size_t n, want = 0;

		cr_assert_geq(f, 0);
		n = gw_protoset_closure(ps, (size_t)f, idx, GW_PROTOSET_MAX_FILES);
		while (want < 4 && closures[i].closure[want])
			want++;
		cr_assert_eq(n, want, "%s: %zu files", closures[i].file, n);
		for (size_t k = 0; k < n; k++)
			cr_expect_str_eq(gw_protoset_file_name(ps, idx[k]), closures[i].closure[k]);
	}
	cr_expect_eq(gw_protoset_closure(ps, 2, idx, 1), 1, "cut at cap");
	cr_expect_eq(gw_protoset_closure(ps, 3, idx, GW_PROTOSET_MAX_FILES), 0, "no such file");

	cr_expect_eq(gw_protoset_file_of_extension(ps, "p.Outer", 100), 0);
	cr_expect_eq(gw_protoset_file_of_extension(ps, "p.Outer", 101), -1);
	cr_expect_eq(gw_protoset_file_of_extension(ps, ".p.Outer", 100), -1);
	cr_expect_eq(gw_protoset_extension_numbers(ps, "p.Outer", nums, 4), 1);
	cr_expect_eq(nums[0], 100);
	cr_expect_eq(gw_protoset_extension_numbers(ps, "Top", nums, 4), 0);

	/* A file's bytes are its FileDescriptorProto inside the set: its first record is its name. */
	{
		const uint8_t *p;
		size_t len;

		gw_protoset_file_bytes(ps, 1, &p, &len);
		cr_expect_geq(len, 9);
		cr_expect_eq(p[0], 0x0a);
		cr_expect_eq(memcmp(p + 2, "b.proto", 7), 0);
	}
	gw_protoset_free(ps);
}

struct bad_case {
	const char *what;
	struct pb set;
	const char *err;	/* a part of the message */
};

static struct pb one_file(const struct pb *f)
{
	struct pb set = { .n = 0 };

	pb_msg(&set, 1, f);
	return set;
}

Test(protoset, broken_sets_are_refused)
{
	struct bad_case t[16];
	size_t n = 0;
	struct pb f, g, m, set;
	char long_name[GW_PROTOSET_MAX_NAME + 2];

	memset(long_name, 'a', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';

	t[n++] = (struct bad_case){ "empty", { .n = 0 }, "no files" };
	t[n++] = (struct bad_case){ "cut tag", { { 0x0a }, 1 }, "malformed at byte 0" };
	t[n++] = (struct bad_case){ "length past the end", { { 0x0a, 0x05, 'a' }, 3 }, "malformed" };
	t[n++] = (struct bad_case){ "group", { { 0x0b, 0x0c }, 2 }, "malformed" };
	t[n++] = (struct bad_case){ "file as a number", { { 0x08, 0x01 }, 2 }, "not a message" };
	f = (struct pb){ .n = 0 };
	pb_str(&f, 2, "p");
	t[n++] = (struct bad_case){ "no name", one_file(&f), "a file without a name" };
	f = named("a b.proto");
	t[n++] = (struct bad_case){ "space in a name", one_file(&f), "holds a byte 0x20" };
	f = named(long_name);
	t[n++] = (struct bad_case){ "long name", one_file(&f), "must be 1..255 bytes" };
	f = named("a.proto");
	pb_str(&f, 3, "z.proto");
	t[n++] = (struct bad_case){ "import not before", one_file(&f), "imports z.proto" };
	f = named("a.proto");
	set = (struct pb){ .n = 0 };
	pb_msg(&set, 1, &f);
	pb_msg(&set, 1, &f);
	t[n++] = (struct bad_case){ "file twice", set, "file 1 (a.proto): the file is in the set twice" };
	f = named("a.proto");
	g = named("b.proto");
	m = named("M");
	pb_msg(&f, 4, &m);
	pb_msg(&g, 4, &m);
	set = (struct pb){ .n = 0 };
	pb_msg(&set, 1, &f);
	pb_msg(&set, 1, &g);
	t[n++] = (struct bad_case){ "symbol twice", set, "symbol M defined twice (a.proto, b.proto)" };
	/* Messages nested GW_PROTOSET_MAX_DEPTH + 1 deep. */
	m = named("N");
	for (int d = 0; d < GW_PROTOSET_MAX_DEPTH; d++) {
		struct pb outer = named("N");

		pb_msg(&outer, 3, &m);
		m = outer;
	}
	f = named("a.proto");
	pb_msg(&f, 4, &m);
	t[n++] = (struct bad_case){ "too deep", one_file(&f), "nested deeper than 16" };
	m = named("M");
	pb_num(&m, 2, 7);		/* a field that is not a message */
	f = named("a.proto");
	pb_msg(&f, 4, &m);
	t[n++] = (struct bad_case){ "field as a number", one_file(&f), "field is not a message" };
	m = named("ext");
	pb_num(&m, 3, 5);		/* an extension without its extendee */
	f = named("a.proto");
	pb_msg(&f, 7, &m);
	t[n++] = (struct bad_case){ "extension", one_file(&f), "extension ext has no extendee" };
	cr_assert_leq(n, sizeof t / sizeof t[0]);

	for (size_t i = 0; i < n; i++) {
		struct gw_protoset *ps = (struct gw_protoset *)1;
		char err[GW_PROTOSET_ERR_MAX] = "";

		cr_expect_eq(gw_protoset_open(t[i].set.b, t[i].set.n, &ps, err, sizeof err), -1, "%s",
			     t[i].what);
		cr_expect_null(ps, "%s", t[i].what);
		cr_expect(strstr(err, t[i].err) != NULL, "%s: \"%s\" lacks \"%s\"", t[i].what, err,
			  t[i].err);
	}
}

/* Every prefix of a valid set (a set cut anywhere) is read without a fault: refused, or (cut
 * between files) a smaller set. */
Test(protoset, every_truncation)
{
	struct pb set = sample_set();
	size_t accepted = 0;

	for (size_t len = 0; len < set.n; len++) {
		struct gw_protoset *ps = NULL;
		char err[GW_PROTOSET_ERR_MAX];

		if (gw_protoset_open(set.b, len, &ps, err, sizeof err) == 0) {
			accepted++;
			cr_expect_lt(gw_protoset_nfiles(ps), 3);
			gw_protoset_free(ps);
		}
	}
	cr_expect_eq(accepted, 2, "cut after a.proto and after b.proto");
}
