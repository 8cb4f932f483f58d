/* test_gguf.c: the GGUF reader (host/model/gguf.c).
 *
 *   test_gguf [-v]     -v prints every refused case's message
 *
 * Writes GGUF bytes built here (a small writer independent of the reader) to temporary files and checks:
 *  - valid v2 and v3 files (default and 64-byte alignment) holding every metadata type, strings, nested
 *    arrays and tensors of several types read back exactly through the getters, lookups and tensor facts;
 *  - every malformed case is refused with LL_ERR_INPUT and a one-line message naming the file and holding
 *    the expected words: truncation at every byte, magic, versions, absurd counts and lengths, dims, types,
 *    extents, alignment, overlaps, duplicates, names;
 *  - single-byte corruptions of a valid file never crash (run the ASan build too: make SAN=1);
 *  - the ggml type table against the gguf Python package (GGML_QUANT_SIZES), through a file written by
 *    its GGUFWriter (tests/fuzz/make_gguf_seeds.py); skipped with a note when the package is missing.
 * Ends with "test_gguf: N cases, M failed". */
#include "ll_gguf.h"
#include "ll_sha256.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_cases, n_failed, verbose;
static char tmpdir[256];

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        n_cases++;                                                                \
        if (!(cond)) {                                                            \
            n_failed++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

/* ---- a byte buffer and a small GGUF writer ----------------------------------------------------------- */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u16(bb *b, uint16_t v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    bb_put(b, x, 2);
}
static void bb_u32(bb *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_put(b, x, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}
static void bb_f32(bb *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    bb_u32(b, u);
}
static void bb_f64(bb *b, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    bb_u64(b, u);
}
static void bb_strn(bb *b, const char *s, size_t n) {
    bb_u64(b, n);
    bb_put(b, s, n);
}
static void bb_str(bb *b, const char *s) { bb_strn(b, s, strlen(s)); }
static void patch_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void patch_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

enum { V_U8, V_I8, V_U16, V_I16, V_U32, V_I32, V_F32, V_BOOL, V_STR, V_ARR, V_U64, V_I64, V_F64 };

typedef struct tspec {
    const char *name;
    uint32_t type;   /* ggml type id */
    int nd;
    uint64_t ne[4];
    uint64_t off;    /* relative to the data section */
    size_t nbytes;   /* expected byte count (independent of the reader's table) */
} tspec;

/* The standard tensors: offsets for alignment 32 and for alignment 64. The empty tensor shares its offset
 * with a non-empty one (it owns no bytes). */
static const tspec std_t32[] = {
    {"tok_embd.weight", 0, 2, {8, 3}, 0, 96},
    {"blk.0.attn_q.weight", 8, 2, {64, 2}, 96, 136},
    {"empty", 1, 2, {0, 4}, 96, 0},
    {"w4d", 30, 4, {2, 3, 1, 2}, 256, 24},
};
static const tspec std_t64[] = {
    {"tok_embd.weight", 0, 2, {8, 3}, 0, 96},
    {"blk.0.attn_q.weight", 8, 2, {64, 2}, 128, 136},
    {"empty", 1, 2, {0, 4}, 128, 0},
    {"w4d", 30, 4, {2, 3, 1, 2}, 320, 24},
};
#define NT 4

enum extra_kv { X_NONE, X_TAIL_F64, X_DUP_KEY, X_DEEP_OK, X_DEEP_BAD, X_ALIGN_STR, X_EMPTY_KEY, X_NUL_KEY, X_LONG_KEY };

typedef struct opts {
    uint32_t version;
    uint32_t alignment;   /* written as general.alignment (UINT32) when nonzero */
    int align_present;
    enum extra_kv extra;
    int n_t;
    tspec t[NT + 1];
} opts;

/* Where the writer put things, for targeted corruption. */
typedef struct marks {
    size_t version, n_tensors, n_kv;
    size_t key0;          /* first key's length field */
    size_t arch_len;      /* general.architecture's string length */
    size_t u8_type;       /* t.u8's value type field */
    size_t true_val;      /* t.true's value byte */
    size_t arr_u32_type;  /* t.arr_u32's element type field */
    size_t arr_u32_len;   /* t.arr_u32's count */
    size_t arr_str_len;   /* t.arr_str's count */
    size_t arr_str_e2;    /* t.arr_str's third element's length */
    size_t nested_val;    /* t.nested's value (after its value type) */
    size_t last_key;      /* t.arr_empty's key length */
    size_t extra_val;     /* the extra key's value (after its value type) */
    size_t align_val;     /* general.alignment's value */
    size_t ti[NT + 1], ti_nd[NT + 1], ti_ne[NT + 1], ti_type[NT + 1], ti_off[NT + 1];
    size_t data;          /* data section start */
    size_t data_len;
} marks;

static void put_nested(bb *b, int levels) {
    if (levels == 1) {
        bb_u32(b, V_U8);
        bb_u64(b, 1);
        bb_u8(b, 7);
        return;
    }
    bb_u32(b, V_ARR);
    bb_u64(b, 1);
    put_nested(b, levels - 1);
}

static uint8_t data_byte(size_t i) { return (uint8_t)(i * 7 + 1); }

static void build(bb *b, const opts *o, marks *m) {
    memset(m, 0, sizeof *m);
    b->n = 0;
    uint32_t n_kv = 0;
    bb_put(b, "GGUF", 4);
    m->version = b->n;
    bb_u32(b, o->version);
    m->n_tensors = b->n;
    bb_u64(b, (uint64_t)o->n_t);
    m->n_kv = b->n;
    bb_u64(b, 0); /* patched below */

    m->key0 = b->n;
    bb_str(b, "general.architecture"), bb_u32(b, V_STR), m->arch_len = b->n, bb_str(b, "llama"), n_kv++;
    if (o->align_present) {
        bb_str(b, "general.alignment"), bb_u32(b, V_U32), m->align_val = b->n, bb_u32(b, o->alignment), n_kv++;
    }
    bb_str(b, "t.u8"), m->u8_type = b->n, bb_u32(b, V_U8), bb_u8(b, 200), n_kv++;
    bb_str(b, "t.i8"), bb_u32(b, V_I8), bb_u8(b, (uint8_t)-100), n_kv++;
    bb_str(b, "t.u16"), bb_u32(b, V_U16), bb_u16(b, 60000), n_kv++;
    bb_str(b, "t.i16"), bb_u32(b, V_I16), bb_u16(b, (uint16_t)-30000), n_kv++;
    bb_str(b, "t.u32"), bb_u32(b, V_U32), bb_u32(b, 4000000000u), n_kv++;
    bb_str(b, "t.i32"), bb_u32(b, V_I32), bb_u32(b, (uint32_t)-2000000000), n_kv++;
    bb_str(b, "t.f32"), bb_u32(b, V_F32), bb_f32(b, 1.5f), n_kv++;
    bb_str(b, "t.true"), bb_u32(b, V_BOOL), m->true_val = b->n, bb_u8(b, 1), n_kv++;
    bb_str(b, "t.false"), bb_u32(b, V_BOOL), bb_u8(b, 0), n_kv++;
    bb_str(b, "t.u64"), bb_u32(b, V_U64), bb_u64(b, (1ull << 63) + 5), n_kv++;
    bb_str(b, "t.u64small"), bb_u32(b, V_U64), bb_u64(b, 123456789012ull), n_kv++;
    bb_str(b, "t.i64"), bb_u32(b, V_I64), bb_u64(b, (uint64_t)-1234567890123ll), n_kv++;
    bb_str(b, "t.f64"), bb_u32(b, V_F64), bb_f64(b, 0.1), n_kv++;
    bb_str(b, "t.empty"), bb_u32(b, V_STR), bb_str(b, ""), n_kv++;
    bb_str(b, "t.arr_u32"), bb_u32(b, V_ARR), m->arr_u32_type = b->n, bb_u32(b, V_U32), m->arr_u32_len = b->n;
    bb_u64(b, 3), bb_u32(b, 1), bb_u32(b, 2), bb_u32(b, 3), n_kv++;
    bb_str(b, "t.arr_str"), bb_u32(b, V_ARR), bb_u32(b, V_STR), m->arr_str_len = b->n, bb_u64(b, 3);
    bb_str(b, "a"), bb_str(b, ""), m->arr_str_e2 = b->n, bb_str(b, "hello world"), n_kv++;
    bb_str(b, "t.arr_bool"), bb_u32(b, V_ARR), bb_u32(b, V_BOOL), bb_u64(b, 3), bb_u8(b, 1), bb_u8(b, 0);
    bb_u8(b, 1), n_kv++;
    bb_str(b, "t.arr_f32"), bb_u32(b, V_ARR), bb_u32(b, V_F32), bb_u64(b, 2), bb_f32(b, 0.5f), bb_f32(b, -1.0f);
    n_kv++;
    bb_str(b, "t.arr_f64"), bb_u32(b, V_ARR), bb_u32(b, V_F64), bb_u64(b, 1), bb_f64(b, -2.25), n_kv++;
    bb_str(b, "t.arr_i64"), bb_u32(b, V_ARR), bb_u32(b, V_I64), bb_u64(b, 2), bb_u64(b, (uint64_t)-5);
    bb_u64(b, 1ull << 40), n_kv++;
    bb_str(b, "t.arr_i8"), bb_u32(b, V_ARR), bb_u32(b, V_I8), bb_u64(b, 2), bb_u8(b, 0x80), bb_u8(b, 0x7f), n_kv++;
    /* [[1, 2] (u8), ["x"] (string), [] (int32)]: 3 nested arrays */
    bb_str(b, "t.nested"), bb_u32(b, V_ARR), m->nested_val = b->n, bb_u32(b, V_ARR), bb_u64(b, 3);
    bb_u32(b, V_U8), bb_u64(b, 2), bb_u8(b, 1), bb_u8(b, 2);
    bb_u32(b, V_STR), bb_u64(b, 1), bb_str(b, "x");
    bb_u32(b, V_I32), bb_u64(b, 0), n_kv++;
    m->last_key = b->n;
    bb_str(b, "t.arr_empty"), bb_u32(b, V_ARR), bb_u32(b, V_STR), bb_u64(b, 0), n_kv++;

    switch (o->extra) {
    case X_NONE: break;
    case X_TAIL_F64: bb_str(b, "t.tail"), bb_u32(b, V_F64), m->extra_val = b->n, bb_f64(b, 0.5), n_kv++; break;
    case X_DUP_KEY: bb_str(b, "t.u8"), bb_u32(b, V_U8), bb_u8(b, 1), n_kv++; break;
    case X_DEEP_OK: bb_str(b, "t.deep"), bb_u32(b, V_ARR), m->extra_val = b->n, put_nested(b, 8), n_kv++; break;
    case X_DEEP_BAD: bb_str(b, "t.deep"), bb_u32(b, V_ARR), m->extra_val = b->n, put_nested(b, 9), n_kv++; break;
    case X_ALIGN_STR: bb_str(b, "general.alignment"), bb_u32(b, V_STR), bb_str(b, "32"), n_kv++; break;
    case X_EMPTY_KEY: bb_str(b, ""), bb_u32(b, V_U8), bb_u8(b, 1), n_kv++; break;
    case X_NUL_KEY: bb_strn(b, "t.a\0b", 5), bb_u32(b, V_U8), bb_u8(b, 1), n_kv++; break;
    case X_LONG_KEY: {
        static char k[70000];
        memset(k, 'k', sizeof k);
        bb_strn(b, k, sizeof k), bb_u32(b, V_U8), bb_u8(b, 1), n_kv++;
        break;
    }
    }
    patch_u64(b->p + m->n_kv, n_kv);

    size_t data_len = 0;
    for (int i = 0; i < o->n_t; i++) {
        const tspec *t = &o->t[i];
        m->ti[i] = b->n;
        bb_str(b, t->name);
        m->ti_nd[i] = b->n;
        bb_u32(b, (uint32_t)t->nd);
        m->ti_ne[i] = b->n;
        for (int d = 0; d < t->nd; d++) bb_u64(b, t->ne[d]);
        m->ti_type[i] = b->n;
        bb_u32(b, t->type);
        m->ti_off[i] = b->n;
        bb_u64(b, t->off);
        if (t->off + t->nbytes > data_len) data_len = t->off + t->nbytes;
    }
    uint32_t align = o->align_present ? o->alignment : 32;
    if (align == 0 || (align & (align - 1)) || align > 4096) align = 32; /* invalid values: pad anyway */
    while (b->n % align) bb_u8(b, 0);
    m->data = b->n;
    m->data_len = data_len;
    for (size_t i = 0; i < data_len; i++) bb_u8(b, data_byte(i));
}

static opts std_opts(uint32_t version, uint32_t alignment) {
    opts o;
    memset(&o, 0, sizeof o);
    o.version = version;
    o.align_present = alignment != 0;
    o.alignment = alignment;
    o.n_t = NT;
    memcpy(o.t, alignment == 64 ? std_t64 : std_t32, sizeof std_t32);
    return o;
}

/* ---- running one case --------------------------------------------------------------------------------- */

static char *write_tmp(const char *name, const uint8_t *p, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) {
        fprintf(stderr, "test_gguf: cannot write %s\n", path);
        exit(1);
    }
    return path;
}

/* Opens bytes as a file named NAME.gguf; checks refusal with LL_ERR_INPUT, a one-line message that names
 * the file and holds want1 and want2 (either may be NULL). */
static void expect_fail(const char *label, const uint8_t *p, size_t n, const char *want1, const char *want2) {
    char fname[128];
    snprintf(fname, sizeof fname, "%s.gguf", label);
    const char *path = write_tmp(fname, p, n);
    ll_gguf *g = (ll_gguf *)1;
    ll_err err;
    err.msg[0] = 0;
    ll_status rc = ll_gguf_open(path, &g, &err);
    char prefix[160];
    snprintf(prefix, sizeof prefix, "gguf %s: ", fname);
    CHECK(rc == LL_ERR_INPUT && g == NULL, "%s: expected LL_ERR_INPUT and no handle, got %d", label, (int)rc);
    if (rc == LL_OK) {
        ll_gguf_close(g);
        return;
    }
    CHECK(!strncmp(err.msg, prefix, strlen(prefix)), "%s: message does not start with '%s': %s", label, prefix,
          err.msg);
    CHECK(!strchr(err.msg, '\n'), "%s: message has a newline", label);
    CHECK(!want1 || strstr(err.msg, want1), "%s: message lacks '%s': %s", label, want1, err.msg);
    CHECK(!want2 || strstr(err.msg, want2), "%s: message lacks '%s': %s", label, want2, err.msg);
    if (verbose) printf("  %-28s %s\n", label, err.msg);
}

/* Builds the standard file for o, lets fix corrupt it, and expects refusal. */
typedef void (*mutate_fn)(bb *b, const marks *m, uint64_t arg);
static void case_mut(const char *label, opts o, mutate_fn fix, uint64_t arg, const char *want1, const char *want2) {
    bb b = {0};
    marks m;
    build(&b, &o, &m);
    if (fix) fix(&b, &m, arg);
    expect_fail(label, b.p, b.n, want1, want2);
    free(b.p);
}

static void mut_magic(bb *b, const marks *m, uint64_t a) { (void)m, (void)a, b->p[3] = 'G'; }
static void mut_version(bb *b, const marks *m, uint64_t a) { patch_u32(b->p + m->version, (uint32_t)a); }
static void mut_version_be(bb *b, const marks *m, uint64_t a) {
    uint8_t *p = b->p + m->version;
    p[0] = 0, p[1] = 0, p[2] = 0, p[3] = (uint8_t)a;
}
static void mut_u64_at_n_kv(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->n_kv, a); }
static void mut_u64_at_n_t(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->n_tensors, a); }
static void mut_key0_len(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->key0, a); }
static void mut_arch_len(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->arch_len, a); }
static void mut_arr_len(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->arr_u32_len, a); }
static void mut_arr_str_len(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->arr_str_len, a); }
static void mut_arr_str_e2(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->arr_str_e2, a); }
static void mut_u8_type(bb *b, const marks *m, uint64_t a) { patch_u32(b->p + m->u8_type, (uint32_t)a); }
static void mut_arr_type(bb *b, const marks *m, uint64_t a) { patch_u32(b->p + m->arr_u32_type, (uint32_t)a); }
static void mut_true(bb *b, const marks *m, uint64_t a) { b->p[m->true_val] = (uint8_t)a; }
static void mut_nd1(bb *b, const marks *m, uint64_t a) { patch_u32(b->p + m->ti_nd[1], (uint32_t)a); }
static void mut_ne0_t0(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->ti_ne[0], a); }
static void mut_ne1_t0(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->ti_ne[0] + 8, a); }
static void mut_ne0_t1(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->ti_ne[1], a); }
static void mut_type1(bb *b, const marks *m, uint64_t a) { patch_u32(b->p + m->ti_type[1], (uint32_t)a); }
static void mut_off3(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->ti_off[3], a); }
static void mut_name1_nul(bb *b, const marks *m, uint64_t a) { (void)a, b->p[m->ti[1] + 8 + 3] = 0; }
static void mut_name1_len(bb *b, const marks *m, uint64_t a) { patch_u64(b->p + m->ti[1], a); }
static void mut_cut(bb *b, const marks *m, uint64_t a) { (void)m, b->n = (size_t)a; }

static int has(const char *msg, const char *w) { return strstr(msg, w) != NULL; }

/* ---- the valid files ----------------------------------------------------------------------------------- */

static void check_valid(const char *label, uint32_t version, uint32_t alignment, int extra_deep) {
    opts o = std_opts(version, alignment);
    if (extra_deep) o.extra = X_DEEP_OK;
    bb b = {0};
    marks m;
    build(&b, &o, &m);
    char fname[64];
    snprintf(fname, sizeof fname, "%s.gguf", label);
    const char *path = write_tmp(fname, b.p, b.n);
    ll_gguf *g = NULL;
    ll_err err;
    ll_status rc = ll_gguf_open(path, &g, &err);
    CHECK(rc == LL_OK, "%s: open failed: %s", label, err.msg);
    if (rc) {
        free(b.p);
        return;
    }
    CHECK(g->version == version, "%s: version %u", label, g->version);
    CHECK(g->alignment == (alignment ? alignment : 32), "%s: alignment %llu", label,
          (unsigned long long)g->alignment);
    CHECK(g->size == b.n && g->data_offset == m.data, "%s: size %zu data_offset %zu (expected %zu, %zu)", label,
          g->size, g->data_offset, b.n, m.data);
    CHECK(!strcmp(g->name, fname), "%s: name '%s'", label, g->name);
    CHECK(g->n_kv == 24u + (alignment != 0) + (extra_deep != 0), "%s: n_kv %llu", label,
          (unsigned long long)g->n_kv);
    char sha[65];
    ll_sha256_hex(b.p, m.data, sha);
    CHECK(!strcmp(sha, g->header_sha256), "%s: header_sha256 %s, expected %s", label, g->header_sha256, sha);

    /* Getters */
    int64_t i = 42;
    double f = 0;
    int bo = -1, found = -1;
    ll_gguf_str s = {0};
    static const struct {
        const char *key;
        int64_t v;
    } ints[] = {{"t.u8", 200},           {"t.i8", -100},       {"t.u16", 60000},
                {"t.i16", -30000},       {"t.u32", 4000000000}, {"t.i32", -2000000000},
                {"t.u64small", 123456789012}, {"t.i64", -1234567890123}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        rc = ll_gguf_get_int(g, ints[k].key, &i, &found, &err);
        CHECK(rc == LL_OK && found == 1 && i == ints[k].v, "%s: get_int(%s) = %lld (rc %d found %d)", label,
              ints[k].key, (long long)i, (int)rc, found);
        rc = ll_gguf_get_float(g, ints[k].key, &f, &found, &err);
        CHECK(rc == LL_OK && found == 1 && f == (double)ints[k].v, "%s: get_float(%s) = %g", label, ints[k].key, f);
    }
    i = 42;
    rc = ll_gguf_get_int(g, "t.absent", &i, &found, &err);
    CHECK(rc == LL_OK && found == 0 && i == 42, "%s: absent key: rc %d found %d out %lld", label, (int)rc, found,
          (long long)i);
    rc = ll_gguf_get_int(g, "t.u64", &i, &found, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "t.u64") && has(err.msg, "does not fit"), "%s: get_int(t.u64): %d %s",
          label, (int)rc, err.msg);
    rc = ll_gguf_get_float(g, "t.u64", &f, &found, &err);
    CHECK(rc == LL_OK && f == 9223372036854775813.0, "%s: get_float(t.u64) = %.17g", label, f);
    rc = ll_gguf_get_int(g, "general.architecture", &i, &found, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "'general.architecture' has type STRING (expected an integer)"),
          "%s: get_int on a string: %s", label, err.msg);
    rc = ll_gguf_get_int(g, "t.f32", &i, &found, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "FLOAT32"), "%s: get_int on a float: %s", label, err.msg);
    rc = ll_gguf_get_float(g, "t.f32", &f, &found, &err);
    CHECK(rc == LL_OK && found && f == 1.5, "%s: get_float(t.f32) = %g", label, f);
    rc = ll_gguf_get_float(g, "t.f64", &f, &found, &err);
    CHECK(rc == LL_OK && found && f == 0.1, "%s: get_float(t.f64) = %.17g", label, f);
    rc = ll_gguf_get_float(g, "t.true", &f, &found, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "has type BOOL"), "%s: get_float on a bool: %s", label, err.msg);
    rc = ll_gguf_get_bool(g, "t.true", &bo, &found, &err);
    CHECK(rc == LL_OK && found && bo == 1, "%s: get_bool(t.true) = %d", label, bo);
    rc = ll_gguf_get_bool(g, "t.false", &bo, &found, &err);
    CHECK(rc == LL_OK && found && bo == 0, "%s: get_bool(t.false) = %d", label, bo);
    rc = ll_gguf_get_bool(g, "t.u8", &bo, &found, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "'t.u8' has type UINT8 (expected BOOL)"), "%s: get_bool(u8): %s", label,
          err.msg);
    rc = ll_gguf_get_str(g, "general.architecture", &s, &found, &err);
    CHECK(rc == LL_OK && found && s.len == 5 && !memcmp(s.ptr, "llama", 5), "%s: get_str(arch)", label);
    CHECK(s.ptr == (const char *)g->map + m.arch_len + 8, "%s: get_str points into the mapping", label);
    rc = ll_gguf_get_str(g, "t.empty", &s, &found, &err);
    CHECK(rc == LL_OK && found && s.len == 0, "%s: get_str(t.empty) len %llu", label, (unsigned long long)s.len);
    rc = ll_gguf_get_str(g, "t.arr_str", &s, &found, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "ARRAY of STRING (expected STRING)"), "%s: get_str(array): %s", label,
          err.msg);
    rc = ll_gguf_get_str(g, "t.none", &s, NULL, &err);
    CHECK(rc == LL_OK, "%s: found may be NULL", label);

    /* Arrays */
    const ll_gguf_kv *kv = ll_gguf_find(g, "t.arr_u32");
    CHECK(kv && kv->type == LL_GGUF_ARRAY && kv->arr_type == LL_GGUF_UINT32 && kv->arr_n == 3 &&
              kv->value_bytes == 12 && kv->value == g->map + m.arr_u32_len + 8,
          "%s: t.arr_u32 kv", label);
    if (kv) {
        CHECK(ll_gguf_arr_int(kv, 0) == 1 && ll_gguf_arr_int(kv, 2) == 3 && ll_gguf_arr_int(kv, 3) == 0,
              "%s: arr_int(t.arr_u32)", label);
        CHECK(ll_gguf_arr_float(kv, 1) == 2.0, "%s: arr_float on integers", label);
        CHECK(ll_gguf_arr_str(kv, 0).len == 0, "%s: arr_str on integers is empty", label);
    }
    kv = ll_gguf_find(g, "t.arr_str");
    CHECK(kv && kv->arr_type == LL_GGUF_STRING && kv->arr_n == 3 && kv->str_off, "%s: t.arr_str kv", label);
    if (kv && kv->str_off) {
        ll_gguf_str e0 = ll_gguf_arr_str(kv, 0), e1 = ll_gguf_arr_str(kv, 1), e2 = ll_gguf_arr_str(kv, 2);
        CHECK(e0.len == 1 && e0.ptr[0] == 'a' && e1.len == 0 && e2.len == 11 && !memcmp(e2.ptr, "hello world", 11),
              "%s: arr_str elements", label);
        CHECK(ll_gguf_arr_str(kv, 3).len == 0 && ll_gguf_arr_int(kv, 0) == 0, "%s: arr_str out of range", label);
        CHECK(kv->value_bytes == 3 * 8 + 1 + 0 + 11, "%s: t.arr_str value_bytes %llu", label,
              (unsigned long long)kv->value_bytes);
    }
    kv = ll_gguf_find(g, "t.arr_bool");
    CHECK(kv && kv->arr_type == LL_GGUF_BOOL && kv->arr_n == 3 && kv->value[0] == 1 && kv->value[1] == 0 &&
              kv->value[2] == 1,
          "%s: t.arr_bool", label);
    kv = ll_gguf_find(g, "t.arr_f32");
    CHECK(kv && ll_gguf_arr_float(kv, 0) == 0.5 && ll_gguf_arr_float(kv, 1) == -1.0 && ll_gguf_arr_int(kv, 0) == 0,
          "%s: t.arr_f32", label);
    kv = ll_gguf_find(g, "t.arr_f64");
    CHECK(kv && ll_gguf_arr_float(kv, 0) == -2.25, "%s: t.arr_f64", label);
    kv = ll_gguf_find(g, "t.arr_i64");
    CHECK(kv && ll_gguf_arr_int(kv, 0) == -5 && ll_gguf_arr_int(kv, 1) == (1ll << 40), "%s: t.arr_i64", label);
    kv = ll_gguf_find(g, "t.arr_i8");
    CHECK(kv && ll_gguf_arr_int(kv, 0) == -128 && ll_gguf_arr_int(kv, 1) == 127, "%s: t.arr_i8", label);
    kv = ll_gguf_find(g, "t.nested");
    CHECK(kv && kv->type == LL_GGUF_ARRAY && kv->arr_type == LL_GGUF_ARRAY && kv->arr_n == 3 &&
              kv->value_bytes == (12 + 2) + (12 + 9) + 12 && !kv->str_off && ll_gguf_arr_int(kv, 0) == 0,
          "%s: t.nested", label);
    kv = ll_gguf_find(g, "t.arr_empty");
    CHECK(kv && kv->arr_n == 0 && kv->value_bytes == 0 && ll_gguf_arr_str(kv, 0).len == 0, "%s: t.arr_empty", label);
    if (extra_deep) {
        kv = ll_gguf_find(g, "t.deep");
        CHECK(kv && kv->arr_type == LL_GGUF_ARRAY && kv->value_bytes == 6 * 12 + 13, "%s: 8-level nested array",
              label);
    }
    kv = ll_gguf_find(g, "t.u8");
    CHECK(kv && kv->type == LL_GGUF_UINT8 && kv->value_bytes == 1 && kv->value[0] == 200, "%s: t.u8 kv", label);
    kv = ll_gguf_find(g, "general.architecture");
    CHECK(kv && kv->value_bytes == 13 && kv == &g->kv[0], "%s: general.architecture kv (file order)", label);
    CHECK(!ll_gguf_find(g, "t.u") && !ll_gguf_find(g, "t.u88") && !ll_gguf_find(g, ""), "%s: inexact keys", label);

    /* Tensors */
    CHECK(g->n_tensors == NT, "%s: n_tensors %llu", label, (unsigned long long)g->n_tensors);
    for (int k = 0; k < NT && (uint64_t)k < g->n_tensors; k++) {
        const tspec *e = &o.t[k];
        const ll_gguf_tensor *t = ll_gguf_find_tensor(g, e->name);
        CHECK(t == &g->tensors[k], "%s: find_tensor(%s)", label, e->name);
        if (!t) continue;
        int64_t numel = 1;
        int dims_ok = t->n_dims == e->nd;
        for (int d = 0; d < 4; d++) {
            int64_t want = d < e->nd ? (int64_t)e->ne[d] : 1;
            dims_ok &= t->ne[d] == want;
            numel *= want;
        }
        CHECK(dims_ok, "%s: %s dims", label, e->name);
        CHECK(t->type == e->type && t->offset == e->off && t->nbytes == e->nbytes, "%s: %s type %u offset %llu nbytes %zu",
              label, e->name, t->type, (unsigned long long)t->offset, t->nbytes);
        CHECK(ll_gguf_tensor_numel(t) == numel, "%s: %s numel", label, e->name);
        CHECK(t->data == g->map + m.data + e->off, "%s: %s data pointer", label, e->name);
        int bytes_ok = 1;
        for (size_t j = 0; j < t->nbytes; j++) bytes_ok &= t->data[j] == data_byte(e->off + j);
        CHECK(bytes_ok, "%s: %s data bytes", label, e->name);
    }
    CHECK(!ll_gguf_find_tensor(g, "w4") && !ll_gguf_find_tensor(g, "w4dd") && !ll_gguf_find_tensor(g, ""),
          "%s: inexact tensor names", label);
    const ll_gguf_tensor *t0 = ll_gguf_find_tensor(g, "tok_embd.weight");
    if (t0) {
        ll_gguf_release(g, t0);
        CHECK(t0->data[5] == data_byte(5), "%s: data readable after release", label);
    }
    ll_gguf_close(g);
    free(b.p);
    if (verbose) printf("  valid %s: ok\n", label);
}

/* ---- the malformed files ------------------------------------------------------------------------------ */

static void check_malformed(void) {
    opts o = std_opts(3, 0);
    bb b = {0};
    marks m;
    build(&b, &o, &m);
    size_t full = b.n;
    free(b.p);
    b = (bb){0};

    /* Truncation at every byte: always refused, always "truncated"; named cut points check the context. */
    for (size_t cut = 0; cut < full; cut++) {
        bb c = {0};
        build(&c, &o, &m);
        c.n = cut;
        const char *path = write_tmp("cut.gguf", c.p, c.n);
        ll_gguf *g = NULL;
        ll_err err;
        ll_status rc = ll_gguf_open(path, &g, &err);
        CHECK(rc == LL_ERR_INPUT && has(err.msg, "gguf cut.gguf: ") && has(err.msg, "truncated"),
              "cut at %zu of %zu: rc %d: %s", cut, full, (int)rc, rc ? err.msg : "opened");
        if (!rc) ll_gguf_close(g);
        free(c.p);
    }
    case_mut("cut_header", o, mut_cut, 10, "too short for the 24-byte GGUF header", "truncated");
    case_mut("cut_empty", o, mut_cut, 0, "empty", "truncated");
    /* Early cuts leave fewer bytes than n_kv pairs need: refused by the count (see n_kv_absurd). */
    case_mut("cut_first_key", o, mut_cut, m.key0 + 8 + 5, "n_kv = 24 is impossible", "truncated");
    case_mut("cut_key", o, mut_cut, m.last_key + 8 + 5, "key 23: key length 11", "truncated");
    case_mut("cut_key_len", o, mut_cut, m.last_key + 4, "key 23: key length: truncated", NULL);
    case_mut("cut_value_type", o, mut_cut, m.last_key + 8 + 11 + 2, "key 't.arr_empty': value type: truncated",
             NULL);
    case_mut("cut_elem_type", o, mut_cut, m.last_key + 8 + 11 + 4 + 1,
             "key 't.arr_empty': array element type: truncated", NULL);
    opts x = o;
    marks mx;
    x.extra = X_TAIL_F64;
    build(&b, &x, &mx);
    free(b.p);
    b = (bb){0};
    case_mut("cut_value", x, mut_cut, mx.extra_val + 3, "key 't.tail': value: truncated file (needs 8 bytes", NULL);
    /* Nested arrays: each level's count is checked against the bytes left before it is walked. */
    x.extra = X_DEEP_OK;
    build(&b, &x, &mx);
    free(b.p);
    b = (bb){0};
    case_mut("cut_nested", x, mut_cut, mx.extra_val + 12 * 5 + 7, "key 't.deep': array of 1 ARRAY elements",
             "truncated");
    case_mut("cut_arr_elem", o, mut_cut, m.arr_str_e2 + 3, "key 't.arr_str'", "truncated");
    case_mut("cut_tensor_info", o, mut_cut, m.ti_ne[1] + 5, "tensor 'blk.0.attn_q.weight': ne: truncated", NULL);
    case_mut("cut_tensor_name", o, mut_cut, m.ti[2] + 3, "tensor 2: name length: truncated", NULL);
    case_mut("cut_padding", o, mut_cut, m.data - 1, "the data section would start at 1024 (alignment 32), past the "
             "end of the file (1023 bytes)", "truncated");
    case_mut("cut_data", o, mut_cut, full - 10, "tensor 'w4d': data [offset 256, 24 bytes] runs past the end",
             "truncated");

    /* Header */
    case_mut("magic", o, mut_magic, 0, "bad magic 'GGUG' (expected 'GGUF')", NULL);
    case_mut("version1", o, mut_version, 1, "version 1 (u32 counts) is not supported", NULL);
    case_mut("version4", o, mut_version, 4, "version 4 is not supported (expected version 2 or 3)", NULL);
    case_mut("version0", o, mut_version, 0, "version 0 is not supported", NULL);
    case_mut("version_be3", o, mut_version_be, 3, "big-endian", "only little-endian");
    case_mut("version_be2", o, mut_version_be, 2, "big-endian", "version 2");
    case_mut("n_kv_absurd", o, mut_u64_at_n_kv, 1ull << 60, "n_kv = 1152921504606846976 is impossible", NULL);
    case_mut("n_kv_max", o, mut_u64_at_n_kv, UINT64_MAX, "n_kv = 18446744073709551615 is impossible", NULL);
    case_mut("n_tensors_absurd", o, mut_u64_at_n_t, 1ull << 60, "n_tensors = 1152921504606846976 is impossible",
             NULL);
    case_mut("n_tensors_max", o, mut_u64_at_n_t, UINT64_MAX, "n_tensors = 18446744073709551615", NULL);
    /* One tensor info more than written: the parse runs into the padding/data and fails there. */
    case_mut("n_tensors_plus1", o, mut_u64_at_n_t, NT + 1, "tensor 4", NULL);

    /* Keys and values */
    case_mut("key_len_absurd", o, mut_key0_len, 1ull << 62, "key 0: key length 4611686018427387904", "truncated");
    case_mut("str_len_absurd", o, mut_arch_len, 1ull << 62,
             "key 'general.architecture': string length 4611686018427387904 at offset", "truncated or corrupt");
    case_mut("str_len_max", o, mut_arch_len, UINT64_MAX, "string length 18446744073709551615", NULL);
    case_mut("arr_len_absurd", o, mut_arr_len, 1ull << 61,
             "key 't.arr_u32': array of 2305843009213693952 UINT32 elements", "truncated or corrupt");
    case_mut("arr_len_max", o, mut_arr_len, UINT64_MAX, "array of 18446744073709551615 UINT32", NULL);
    case_mut("arr_str_len_absurd", o, mut_arr_str_len, 1ull << 59, "key 't.arr_str': array of 576460752303423488 "
             "STRING elements", NULL);
    case_mut("arr_elem_str_len", o, mut_arr_str_e2, 1ull << 40, "key 't.arr_str': array element string length "
             "1099511627776", NULL);
    case_mut("vtype_unknown", o, mut_u8_type, 13, "key 't.u8': unknown value type 13 (expected 0..12)", NULL);
    case_mut("vtype_huge", o, mut_u8_type, 0xffffffffu, "unknown value type 4294967295", NULL);
    case_mut("arr_type_unknown", o, mut_arr_type, 99, "key 't.arr_u32': unknown array element type 99", NULL);
    case_mut("bool_value", o, mut_true, 2, "key 't.true': BOOL value 2", "expected 0 or 1");
    x = o;
    x.extra = X_DUP_KEY;
    case_mut("dup_key", x, NULL, 0, "duplicate key 't.u8'", NULL);
    x.extra = X_DEEP_BAD;
    case_mut("nested_too_deep", x, NULL, 0, "key 't.deep': arrays nested deeper than 8 levels", NULL);
    x.extra = X_EMPTY_KEY;
    case_mut("empty_key", x, NULL, 0, "key 24 at offset", "is empty");
    x.extra = X_NUL_KEY;
    case_mut("nul_key", x, NULL, 0, "key 24 ('t.a\\x00b') contains a NUL byte", NULL);
    x.extra = X_LONG_KEY;
    case_mut("long_key", x, NULL, 0, "key 24: key length 70000 exceeds the format's limit of 65535", NULL);

    /* Alignment */
    x = std_opts(3, 0);
    x.align_present = 1;
    x.alignment = 0;
    case_mut("align_zero", x, NULL, 0, "general.alignment = 0 is invalid", "power of two");
    x.alignment = 48;
    case_mut("align_not_pow2", x, NULL, 0, "general.alignment = 48 is invalid", NULL);
    x.alignment = 1u << 30;
    case_mut("align_huge", x, NULL, 0, "general.alignment = 1073741824 is invalid", NULL);
    x = std_opts(3, 0);
    x.extra = X_ALIGN_STR;
    case_mut("align_type", x, NULL, 0, "general.alignment has type STRING (expected UINT32)", NULL);
    x = std_opts(3, 64);
    x.t[1].off = 96; /* fine under 32, not under 64 */
    x.t[2].off = 96;
    case_mut("misaligned_64", x, NULL, 0, "tensor 'blk.0.attn_q.weight': data offset 96 is not a multiple of the "
             "alignment 64", NULL);

    /* Tensor infos */
    case_mut("n_dims_0", o, mut_nd1, 0, "tensor 'blk.0.attn_q.weight': n_dims is 0 (expected 1..4)", NULL);
    case_mut("n_dims_5", o, mut_nd1, 5, "n_dims is 5 (expected 1..4)", NULL);
    case_mut("n_dims_huge", o, mut_nd1, 0x80000000u, "n_dims is 2147483648", NULL);
    case_mut("ne_negative", o, mut_ne0_t0, UINT64_MAX, "tensor 'tok_embd.weight': ne[0] = 18446744073709551615 is "
             "out of range", NULL);
    case_mut("ne_product", o, mut_ne1_t0, 1ull << 62, "tensor 'tok_embd.weight': shape [8,4611686018427387904] "
             "has more than 2^63 elements", NULL);
    case_mut("ne_bytes", o, mut_ne1_t0, 1ull << 59, "shape [8,576460752303423488] of F32 needs more than 2^63 bytes",
             NULL);
    case_mut("ne_huge_fits", o, mut_ne1_t0, 1ull << 40, "tensor 'tok_embd.weight': data [offset 0, 35184372088832 "
             "bytes] runs past the end", NULL);
    case_mut("ne_block", o, mut_ne0_t1, 63, "ne[0] = 63 is not a multiple of Q8_0's block of 32 elements", NULL);
    case_mut("type_removed", o, mut_type1, 4, "tensor 'blk.0.attn_q.weight' has unknown ggml type 4", NULL);
    case_mut("type_31", o, mut_type1, 31, "has unknown ggml type 31", NULL);
    case_mut("type_huge", o, mut_type1, 100000, "has unknown ggml type 100000", NULL);
    case_mut("data_past_end", o, mut_off3, 512, "tensor 'w4d': data [offset 512, 24 bytes] runs past the end", NULL);
    case_mut("offset_huge", o, mut_off3, UINT64_MAX - 31, "runs past the end", NULL);
    case_mut("misaligned", o, mut_off3, 257, "tensor 'w4d': data offset 257 is not a multiple of the alignment 32",
             NULL);
    case_mut("name_nul", o, mut_name1_nul, 0, "tensor 1 ('blk\\x00", "name contains a NUL byte");
    case_mut("name_len_absurd", o, mut_name1_len, 1ull << 50, "tensor 1: name length 1125899906842624",
             "truncated");
    x = o;
    x.t[1].name = "";
    case_mut("name_empty", x, NULL, 0, "tensor 1 has an empty name", NULL);
    static char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    x = o;
    x.t[1].name = longname;
    case_mut("name_long", x, NULL, 0, "tensor 1 ('nnn", "name length 299 exceeds 256 bytes");
    x = o;
    x.t[3].name = "tok_embd.weight";
    case_mut("dup_tensor", x, NULL, 0, "duplicate tensor name 'tok_embd.weight'", NULL);
    x = o;
    x.t[1].off = 64; /* [64, 200) overlaps tok_embd [0, 96) */
    case_mut("overlap", x, NULL, 0, "tensors 'tok_embd.weight' [offset 0, 96 bytes] and 'blk.0.attn_q.weight' "
             "[offset 64, 136 bytes] overlap", NULL);
    x = o;
    x.t[1].off = 64;
    x.t[2].off = 32; /* an empty tensor between the two must not hide the overlap */
    case_mut("overlap_past_empty", x, NULL, 0, "'tok_embd.weight' [offset 0, 96 bytes] and 'blk.0.attn_q.weight'",
             "overlap");
    /* Overlap by one byte: tok_embd as 33 I8 values [0, 33), q8 from 32. Touching ([0, 32) then 32) is fine. */
    x = o;
    x.t[0] = (tspec){"tok_embd.weight", 24, 1, {33}, 0, 33};
    x.t[1].off = 32;
    x.t[2].off = 32;
    case_mut("overlap_one_byte", x, NULL, 0, "tensors 'tok_embd.weight' [offset 0, 33 bytes] and "
             "'blk.0.attn_q.weight' [offset 32, 136 bytes] overlap", NULL);
    x.t[0] = (tspec){"tok_embd.weight", 24, 1, {32}, 0, 32};
    {
        bb c = {0};
        build(&c, &x, &mx);
        const char *path = write_tmp("touching.gguf", c.p, c.n);
        ll_gguf *tg = NULL;
        ll_err terr;
        ll_status trc = ll_gguf_open(path, &tg, &terr);
        CHECK(trc == LL_OK, "touching tensors: %s", trc ? terr.msg : "");
        ll_gguf_close(tg);
        free(c.p);
    }
    x = o;
    x.t[3].off = 0; /* w4d inside tok_embd, listed last */
    case_mut("overlap_inside", x, NULL, 0, "overlap", NULL);
    x = o;
    x.t[0].off = 224; /* tok_embd [224, 320) covers w4d [256, 280), q8 [96, 232) overlaps it */
    case_mut("overlap_three", x, NULL, 0, "'blk.0.attn_q.weight' [offset 96, 136 bytes] and 'tok_embd.weight'",
             "overlap");

    /* Not a file */
    ll_gguf *g = NULL;
    ll_err err;
    ll_status rc = ll_gguf_open(tmpdir, &g, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "not a regular file"), "directory: %s", err.msg);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.gguf", tmpdir);
    rc = ll_gguf_open(missing, &g, &err);
    CHECK(rc == LL_ERR_INPUT && has(err.msg, "missing.gguf: cannot open"), "missing: %s", err.msg);
}

/* Every byte of the v3 file set to a few values: never a crash, and each refusal is one line. */
static void check_corruptions(void) {
    opts o = std_opts(3, 0);
    bb b = {0};
    marks m;
    build(&b, &o, &m);
    const uint8_t vals[] = {0x00, 0xff, 0x80, 0x01};
    int opened = 0, refused = 0, bad = 0;
    for (size_t pos = 0; pos < m.data; pos++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            uint8_t keep = b.p[pos];
            if (keep == vals[v]) continue;
            b.p[pos] = vals[v];
            const char *path = write_tmp("flip.gguf", b.p, b.n);
            b.p[pos] = keep;
            ll_gguf *g = NULL;
            ll_err err;
            ll_status rc = ll_gguf_open(path, &g, &err);
            if (rc == LL_OK) {
                opened++;
                for (uint64_t t = 0; t < g->n_tensors; t++)
                    if (ll_gguf_find_tensor(g, g->tensors[t].name) != &g->tensors[t]) bad++;
                ll_gguf_close(g);
            } else {
                refused++;
                if (!err.msg[0] || strchr(err.msg, '\n') || strncmp(err.msg, "gguf flip.gguf: ", 16)) bad++;
            }
        }
    }
    CHECK(bad == 0 && refused > 0, "byte corruptions: %d opened, %d refused, %d bad", opened, refused, bad);
    if (verbose) printf("  corruptions: %d opened, %d refused\n", opened, refused);
    free(b.p);
}

/* ---- the type table ----------------------------------------------------------------------------------- */

static void check_type_table(void) {
    static const struct {
        uint32_t id;
        const char *name;
        int64_t be;
        size_t bb;
    } known[] = {{0, "F32", 1, 4},      {1, "F16", 1, 2},      {2, "Q4_0", 32, 18},  {8, "Q8_0", 32, 34},
                 {12, "Q4_K", 256, 144}, {14, "Q6_K", 256, 210}, {30, "BF16", 1, 2},   {28, "F64", 1, 8},
                 {39, "MXFP4", 32, 17}};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        const char *n = ll_gguf_type_name(known[k].id);
        CHECK(n && !strcmp(n, known[k].name) && ll_gguf_type_block_elems(known[k].id) == known[k].be &&
                  ll_gguf_type_block_bytes(known[k].id) == known[k].bb,
              "type %u: %s %lld %zu", known[k].id, n ? n : "(null)", (long long)ll_gguf_type_block_elems(known[k].id),
              ll_gguf_type_block_bytes(known[k].id));
    }
    static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 42, 1000, 0xffffffffu};
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++)
        CHECK(!ll_gguf_type_name(unknown[k]) && !ll_gguf_type_block_elems(unknown[k]) &&
                  !ll_gguf_type_block_bytes(unknown[k]),
              "type %u should be unknown", unknown[k]);
    CHECK(!strcmp(ll_gguf_vtype_name(LL_GGUF_FLOAT64), "FLOAT64") && !strcmp(ll_gguf_vtype_name(LL_GGUF_ARRAY),
          "ARRAY") && !strcmp(ll_gguf_vtype_name((ll_gguf_vtype)99), "UNKNOWN"), "vtype names");
}

/* Files written by tests/fuzz/make_gguf_seeds.py (the gguf package's GGUFWriter when installed) all open;
 * seed_gguf_all_types checks the type table against the package. */
static void check_oracle(void) {
    char dir[300], cmd[700];
    snprintf(dir, sizeof dir, "%s/seeds", tmpdir);
    snprintf(cmd, sizeof cmd, "python3 tests/fuzz/make_gguf_seeds.py '%s' > '%s/seeds.log' 2>&1", dir, tmpdir);
    if (access("tests/fuzz/make_gguf_seeds.py", R_OK) != 0 || system(cmd) != 0) {
        printf("test_gguf: gguf-py oracle skipped (tests/fuzz/make_gguf_seeds.py did not run from %s)\n",
               getcwd(cmd, sizeof cmd) ? cmd : "?");
        return;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    int n_files = 0;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "seed_", 5)) continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ll_gguf *g = NULL;
        ll_err err;
        ll_status rc = ll_gguf_open(path, &g, &err);
        CHECK(rc == LL_OK, "seed %s: %s", e->d_name, err.msg);
        n_files++;
        if (rc) continue;
        if (!strcmp(e->d_name, "seed_gguf_all_types")) {
            const ll_gguf_kv *nb = ll_gguf_find(g, "test.nbytes"), *bl = ll_gguf_find(g, "test.block");
            CHECK(nb && bl && nb->arr_n == g->n_tensors && bl->arr_n == g->n_tensors && g->n_tensors >= 30,
                  "all_types: %llu tensors", (unsigned long long)g->n_tensors);
            for (uint64_t i = 0; nb && bl && i < g->n_tensors && i < nb->arr_n; i++) {
                const ll_gguf_tensor *t = &g->tensors[i];
                const char *tn = ll_gguf_type_name(t->type);
                CHECK(tn && !strcmp(tn, t->name), "type id %u: our name %s, gguf-py's %s", t->type, tn ? tn : "(none)",
                      t->name);
                CHECK(t->nbytes == (size_t)ll_gguf_arr_int(nb, i) &&
                          ll_gguf_type_block_elems(t->type) == ll_gguf_arr_int(bl, i),
                      "type %s: nbytes %zu block %lld, gguf-py: %lld bytes, block %lld", t->name, t->nbytes,
                      (long long)ll_gguf_type_block_elems(t->type), (long long)ll_gguf_arr_int(nb, i),
                      (long long)ll_gguf_arr_int(bl, i));
            }
        }
        if (!strcmp(e->d_name, "seed_gguf_meta_v2") || !strcmp(e->d_name, "seed_gguf_meta")) {
            int64_t v;
            int found;
            double f;
            ll_gguf_str s;
            CHECK(ll_gguf_get_int(g, "t.i64", &v, &found, &err) == LL_OK && found && v == -1234567890123,
                  "%s: t.i64", e->d_name);
            CHECK(ll_gguf_get_float(g, "t.f64", &f, &found, &err) == LL_OK && found && f == 0.1, "%s: t.f64",
                  e->d_name);
            CHECK(ll_gguf_get_str(g, "t.str", &s, &found, &err) == LL_OK && found && s.len == 6 &&
                      !memcmp(s.ptr, "h\xc3\xa9llo", 6),
                  "%s: t.str", e->d_name);
            const ll_gguf_kv *kv = ll_gguf_find(g, "t.arr_str");
            CHECK(kv && kv->arr_n == 3 && ll_gguf_arr_str(kv, 2).len == 3, "%s: t.arr_str", e->d_name);
            const ll_gguf_tensor *t = ll_gguf_find_tensor(g, "tok_embd.weight");
            float x = -1;
            if (t && t->nbytes == 96) memcpy(&x, t->data + 4 * 9, 4); /* np.arange(24).reshape(3, 8)[1][1] */
            CHECK(t && t->ne[0] == 8 && t->ne[1] == 3 && x == 9.0f, "%s: tok_embd.weight", e->d_name);
            CHECK(g->version == (strstr(e->d_name, "v2") ? 2u : 3u), "%s: version %u", e->d_name, g->version);
        }
        ll_gguf_close(g);
    }
    if (d) closedir(d);
    FILE *lf;
    snprintf(cmd, sizeof cmd, "%s/seeds.log", tmpdir);
    char line[300] = "";
    if ((lf = fopen(cmd, "r"))) {
        if (!fgets(line, sizeof line, lf)) line[0] = 0;
        fclose(lf);
    }
    line[strcspn(line, "\n")] = 0;
    printf("test_gguf: %d seed files open (%s)\n", n_files, line);
    CHECK(n_files >= 3, "only %d seed files", n_files);
}

int main(int argc, char **argv) {
    verbose = argc > 1 && !strcmp(argv[1], "-v");
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/ll_test_gguf_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("test_gguf: mkdtemp");
        return 1;
    }
    check_type_table();
    check_valid("v3", 3, 0, 0);
    check_valid("v2", 2, 0, 0);
    check_valid("v3_align64", 3, 64, 0);
    check_valid("v2_align32_deep", 2, 32, 1);
    check_malformed();
    check_corruptions();
    check_oracle();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "test_gguf: could not remove %s\n", tmpdir);
    printf("test_gguf: %d cases, %d failed\n", n_cases, n_failed);
    return n_failed ? 1 : 0;
}
