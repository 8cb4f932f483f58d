/* gguf.c: memory-mapped, bounds-checked GGUF reader, versions 2 and 3 (format in include/ll_gguf.h).
 *
 * The file is untrusted. Reads go through one cursor (rd) that checks every length against the bytes
 * left before touching them; counts read from the file are compared with what the remaining bytes could
 * hold before anything is allocated for them, and the kv and tensor arrays grow with what was actually
 * parsed, so a 30-byte file cannot ask for gigabytes. Values are decoded byte by byte (little-endian), so
 * the host's byte order and the file's (lack of) alignment do not matter.
 *
 * Choices where the format leaves room (llama.cpp's gguf.cpp is the reference reader):
 *  - ne[i] == 0 is accepted (llama.cpp accepts it too): the tensor is empty, nbytes 0, and its offset must
 *    still be aligned and inside the data section. n_dims must be 1..4 (llama.cpp also takes 0).
 *  - Keys: non-empty, no NUL, at most 65535 bytes (the spec's limit). Tensor names: non-empty, no NUL, at
 *    most GGUF_MAX_TENSOR_NAME bytes (the spec says 64, ggml's GGML_MAX_NAME; a longer name is harmless
 *    here because it is copied, so we allow some slack).
 *  - BOOL values must be 0 or 1. general.alignment may have any integer type (the spec says UINT32).
 *  - Offsets need not follow the file order or be packed (llama.cpp demands both); they must be aligned,
 *    inside the data section and must not overlap.
 *  - A file with no tensors may end before the padding that would start its (empty) data section. */
#include "ll_gguf.h"
#include "ll_sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_HEADER_BYTES 24         /* magic, version, n_tensors, n_kv */
#define GGUF_MAX_KEY 65535           /* the spec's limit on key length */
#define GGUF_MAX_TENSOR_NAME 256     /* see the file comment */
#define GGUF_MAX_ALIGNMENT (1u << 24) /* 16 MiB: above any page or huge-page size */
#define GGUF_MAX_ARRAY_DEPTH 8       /* nested arrays: real files use none; bounds the recursion */
#define GGUF_MIN_KV_BYTES 13         /* u64 key length + u32 value type + a 1-byte value */
#define GGUF_MIN_TI_BYTES 32         /* u64 name length + u32 n_dims + 1 x u64 ne + u32 type + u64 offset */

/* ---- ggml type facts ------------------------------------------------------------------------------------
 * Block geometry of every ggml type id in use (ids 4, 5, 31..33 and 36..38 were removed from ggml and are
 * unknown here). Numbers as in ggml's type traits; checked against the gguf Python package's
 * GGML_QUANT_SIZES by tests/c/test_gguf.c's expectations. */
typedef struct ggml_type_info {
    const char *name;    /* ggml's spelling; NULL for an unused id */
    int64_t block_elems; /* elements per block */
    size_t block_bytes;  /* bytes per block */
} ggml_type_info;

static const ggml_type_info ggml_types[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},          [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},       [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 40},       [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},    [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},    [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98},  [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},   [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},          [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},         [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},        [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},     [40] = {"NVFP4", 64, 36},
    [41] = {"Q1_0", 128, 18},
};
#define GGML_TYPE_IDS (sizeof ggml_types / sizeof ggml_types[0])

static const ggml_type_info *type_info(uint32_t type) {
    return type < GGML_TYPE_IDS && ggml_types[type].name ? &ggml_types[type] : NULL;
}
const char *ll_gguf_type_name(uint32_t type) {
    const ggml_type_info *ti = type_info(type);
    return ti ? ti->name : NULL;
}
int64_t ll_gguf_type_block_elems(uint32_t type) {
    const ggml_type_info *ti = type_info(type);
    return ti ? ti->block_elems : 0;
}
size_t ll_gguf_type_block_bytes(uint32_t type) {
    const ggml_type_info *ti = type_info(type);
    return ti ? ti->block_bytes : 0;
}

static const char *const vtype_names[LL_GGUF_VTYPE_COUNT] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};

const char *ll_gguf_vtype_name(ll_gguf_vtype t) {
    return (unsigned)t < LL_GGUF_VTYPE_COUNT ? vtype_names[t] : "UNKNOWN";
}

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown types. */
static size_t vtype_size(uint32_t t) {
    switch (t) {
    case LL_GGUF_UINT8: case LL_GGUF_INT8: case LL_GGUF_BOOL: return 1;
    case LL_GGUF_UINT16: case LL_GGUF_INT16: return 2;
    case LL_GGUF_UINT32: case LL_GGUF_INT32: case LL_GGUF_FLOAT32: return 4;
    case LL_GGUF_UINT64: case LL_GGUF_INT64: case LL_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}
static int vtype_is_int(uint32_t t) {
    return t <= LL_GGUF_INT32 || t == LL_GGUF_UINT64 || t == LL_GGUF_INT64;
}
static int vtype_is_float(uint32_t t) { return t == LL_GGUF_FLOAT32 || t == LL_GGUF_FLOAT64; }

/* ---- little-endian decoding (any alignment, any host) ----------------------------------------------- */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* The integer at p of integer type t; -1 when a UINT64 does not fit int64. */
static int decode_int(uint32_t t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case LL_GGUF_UINT8: *out = p[0]; return 0;
    case LL_GGUF_INT8: *out = (int8_t)p[0]; return 0;
    case LL_GGUF_UINT16: *out = le16(p); return 0;
    case LL_GGUF_INT16: *out = (int16_t)le16(p); return 0;
    case LL_GGUF_UINT32: *out = le32(p); return 0;
    case LL_GGUF_INT32: *out = (int32_t)le32(p); return 0;
    case LL_GGUF_INT64: *out = (int64_t)le64(p); return 0;
    case LL_GGUF_UINT64: {
        uint64_t u = le64(p);
        *out = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        return u > INT64_MAX ? -1 : 0;
    }
    default: *out = 0; return -1;
    }
}
static double decode_float(uint32_t t, const uint8_t *p) {
    if (t == LL_GGUF_FLOAT32) {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    if (t == LL_GGUF_FLOAT64) {
        uint64_t u = le64(p);
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    if (t == LL_GGUF_UINT64) return (double)le64(p);
    int64_t i;
    decode_int(t, p, &i);
    return (double)i;
}

/* Writes s (len bytes from the file) into buf for a message: printable ASCII kept, other bytes as \xNN,
 * cut with "..." when it does not fit. */
static const char *quote(char *buf, size_t cap, const char *s, uint64_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t w = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;
        if (n + w + 4 > cap) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        if (w == 1) buf[n++] = (char)c;
        else {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 15];
        }
    }
    buf[n] = 0;
    return buf;
}
#define QUOTE_MAX 100
static const char *quote_cstr(char *buf, size_t cap, const char *s) { return quote(buf, cap, s, strlen(s)); }

/* ---- the parse cursor --------------------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;  /* the mapping */
    size_t size;       /* file size */
    size_t pos;        /* next byte to read */
    const char *file;  /* base name, for messages */
    ll_err *err;
    char ctx[QUOTE_MAX + 40]; /* what is being read: "header", "key 3 ('general.name')", "tensor 'w'" */
} rd;

static size_t rd_left(const rd *r) { return r->size - r->pos; }
/* Consumes n bytes that a check above has found to be there, returning where they start. The assertion
 * is the second line of defence: a missing or loosened check stops here instead of reading past the
 * mapping (which, inside the last page, would not even fault). */
static const uint8_t *rd_take(rd *r, uint64_t n) {
    LL_ASSERT(n <= rd_left(r));
    const uint8_t *p = r->p + r->pos;
    r->pos += (size_t)n;
    return p;
}

static ll_status rd_truncated(rd *r, const char *what, uint64_t need) {
    return ll_fail(r->err, LL_ERR_INPUT,
                   "gguf %s: %s: %s: truncated file (needs %llu bytes at offset %zu, the file has %zu)", r->file,
                   r->ctx, what, (unsigned long long)need, r->pos, r->size);
}
static ll_status rd_u32(rd *r, const char *what, uint32_t *v) {
    if (rd_left(r) < 4) return rd_truncated(r, what, 4);
    *v = le32(rd_take(r, 4));
    return LL_OK;
}
static ll_status rd_u64(rd *r, const char *what, uint64_t *v) {
    if (rd_left(r) < 8) return rd_truncated(r, what, 8);
    *v = le64(rd_take(r, 8));
    return LL_OK;
}
/* A string's length prefix, checked against the bytes left; the characters are at r->p + r->pos after. */
static ll_status rd_strlen(rd *r, const char *what, uint64_t *len) {
    ll_status rc = rd_u64(r, what, len);
    if (rc) return rc;
    if (*len > rd_left(r))
        return ll_fail(r->err, LL_ERR_INPUT,
                       "gguf %s: %s: %s %llu at offset %zu runs past the end of the file (%zu bytes left; "
                       "truncated or corrupt file)",
                       r->file, r->ctx, what, (unsigned long long)*len, r->pos - 8, rd_left(r));
    return LL_OK;
}

/* Grows *arr (of elem-byte items, capacity *cap) to hold at least need items. */
static int grow(void **arr, uint64_t *cap, uint64_t need, size_t elem) {
    if (need <= *cap) return 0;
    uint64_t c = *cap ? *cap * 2 : 16;
    if (c < need) c = need;
    size_t bytes;
    if (c > SIZE_MAX || ll_mul_size((size_t)c, elem, &bytes)) return -1;
    void *p = realloc(*arr, bytes);
    if (!p) return -1;
    memset((char *)p + (size_t)*cap * elem, 0, bytes - (size_t)*cap * elem);
    *arr = p;
    *cap = c;
    return 0;
}

/* ---- metadata ----------------------------------------------------------------------------------------- */

static ll_status check_bool(rd *r, const uint8_t *p) {
    if (*p > 1)
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: %s: BOOL value %u at offset %zu (expected 0 or 1)", r->file,
                       r->ctx, *p, (size_t)(p - r->p));
    return LL_OK;
}

/* Reads one value of type t at the cursor. kv (top-level values only) receives where it lies; nested
 * array elements pass NULL. depth counts array levels. */
static ll_status rd_value(rd *r, ll_gguf_kv *kv, uint32_t t, int depth) {
    size_t start = r->pos;
    size_t es = vtype_size(t);
    ll_status rc;
    if (es) {
        if (rd_left(r) < es) return rd_truncated(r, "value", es);
        const uint8_t *v = rd_take(r, es);
        if (t == LL_GGUF_BOOL && (rc = check_bool(r, v))) return rc;
    } else if (t == LL_GGUF_STRING) {
        uint64_t len;
        if ((rc = rd_strlen(r, "string length", &len))) return rc;
        rd_take(r, len);
    } else {
        if (depth > GGUF_MAX_ARRAY_DEPTH)
            return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: %s: arrays nested deeper than %d levels at offset %zu",
                           r->file, r->ctx, GGUF_MAX_ARRAY_DEPTH, r->pos);
        uint32_t et;
        uint64_t n;
        if ((rc = rd_u32(r, "array element type", &et))) return rc;
        if (et >= LL_GGUF_VTYPE_COUNT)
            return ll_fail(r->err, LL_ERR_INPUT,
                           "gguf %s: %s: unknown array element type %u at offset %zu (expected 0..%d)", r->file,
                           r->ctx, et, r->pos - 4, LL_GGUF_VTYPE_COUNT - 1);
        if ((rc = rd_u64(r, "array length", &n))) return rc;
        size_t ees = vtype_size(et);
        size_t min = ees ? ees : et == LL_GGUF_STRING ? 8 : 12; /* a string or nested array's smallest size */
        if (n > rd_left(r) / min)
            return ll_fail(r->err, LL_ERR_INPUT,
                           "gguf %s: %s: array of %llu %s elements at offset %zu needs at least %zu bytes each, "
                           "only %zu bytes are left (truncated or corrupt file)",
                           r->file, r->ctx, (unsigned long long)n, vtype_names[et], r->pos - 12, min, rd_left(r));
        size_t first = r->pos;
        if (kv) {
            kv->arr_type = (ll_gguf_vtype)et;
            kv->arr_n = n;
            kv->value = r->p + first;
        }
        if (ees) {
            const uint8_t *v = rd_take(r, n * ees); /* no overflow: n <= left / ees */
            if (et == LL_GGUF_BOOL)
                for (uint64_t i = 0; i < n; i++)
                    if ((rc = check_bool(r, v + i))) return rc;
        } else if (et == LL_GGUF_STRING) {
            if (kv && n) {
                kv->str_off = ll_malloc_array((size_t)n, sizeof *kv->str_off);
                if (!kv->str_off) return ll_fail(r->err, LL_ERR_NOMEM, "gguf %s: %s: out of memory", r->file, r->ctx);
            }
            for (uint64_t i = 0; i < n; i++) {
                if (kv) kv->str_off[i] = r->pos - first;
                uint64_t len;
                if ((rc = rd_strlen(r, "array element string length", &len))) return rc;
                rd_take(r, len);
            }
        } else {
            for (uint64_t i = 0; i < n; i++)
                if ((rc = rd_value(r, NULL, et, depth + 1))) return rc;
        }
        if (kv) kv->value_bytes = r->pos - first;
        return LL_OK;
    }
    if (kv) {
        kv->value = r->p + start;
        kv->value_bytes = r->pos - start;
    }
    return LL_OK;
}

static ll_status rd_kv(rd *r, ll_gguf_kv *kv, uint64_t idx) {
    char q[QUOTE_MAX];
    ll_status rc;
    snprintf(r->ctx, sizeof r->ctx, "key %llu", (unsigned long long)idx);
    uint64_t len;
    if ((rc = rd_strlen(r, "key length", &len))) return rc;
    const char *key = (const char *)rd_take(r, len);
    if (len == 0)
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: key %llu at offset %zu is empty (expected a name)", r->file,
                       (unsigned long long)idx, r->pos - 8);
    if (len > GGUF_MAX_KEY)
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: key %llu: key length %llu exceeds the format's limit of %d",
                       r->file, (unsigned long long)idx, (unsigned long long)len, GGUF_MAX_KEY);
    if (memchr(key, 0, (size_t)len))
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: key %llu ('%s') contains a NUL byte", r->file,
                       (unsigned long long)idx, quote(q, sizeof q, key, len));
    kv->key.ptr = key;
    kv->key.len = len;
    snprintf(r->ctx, sizeof r->ctx, "key '%s'", quote(q, sizeof q, key, len));
    uint32_t t;
    if ((rc = rd_u32(r, "value type", &t))) return rc;
    if (t >= LL_GGUF_VTYPE_COUNT)
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: %s: unknown value type %u (expected 0..%d)", r->file, r->ctx,
                       t, LL_GGUF_VTYPE_COUNT - 1);
    kv->type = (ll_gguf_vtype)t;
    return rd_value(r, kv, t, 1);
}

/* Key order for lookup: bytes, then length. */
static int key_cmp(const char *a, uint64_t alen, const char *b, uint64_t blen) {
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    return c ? c : (alen > blen) - (alen < blen);
}
static int cmp_kv_ptr(const void *a, const void *b) {
    const ll_gguf_kv *x = *(const ll_gguf_kv *const *)a, *y = *(const ll_gguf_kv *const *)b;
    return key_cmp(x->key.ptr, x->key.len, y->key.ptr, y->key.len);
}
static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const ll_gguf_tensor *const *)a)->name, (*(const ll_gguf_tensor *const *)b)->name);
}
static int cmp_tensor_offset(const void *a, const void *b) {
    const ll_gguf_tensor *x = *(const ll_gguf_tensor *const *)a, *y = *(const ll_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* The reader's private state behind the public struct; only ll_gguf_open makes one. */
typedef struct gguf_impl {
    ll_gguf pub;                      /* first: an ll_gguf * is a gguf_impl * */
    const ll_gguf_kv **kv_by_key;     /* [n_kv] sorted by key */
    const ll_gguf_tensor **t_by_name; /* [n_tensors] sorted by name */
} gguf_impl;

/* ---- tensor infos ------------------------------------------------------------------------------------- */

static void shape_str(const ll_gguf_tensor *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->n_dims; i++)
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%lld", i ? "," : "", (long long)t->ne[i]);
    snprintf(buf + n, n < cap ? cap - n : 0, "]");
}

static ll_status rd_tensor_info(rd *r, ll_gguf_tensor *t, uint64_t idx) {
    char q[QUOTE_MAX];
    ll_status rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor %llu", (unsigned long long)idx);
    uint64_t len;
    if ((rc = rd_strlen(r, "name length", &len))) return rc;
    const char *name = (const char *)rd_take(r, len);
    if (len == 0)
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: tensor %llu has an empty name (expected a tensor name)",
                       r->file, (unsigned long long)idx);
    if (len > GGUF_MAX_TENSOR_NAME)
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: tensor %llu ('%s'): name length %llu exceeds %d bytes",
                       r->file, (unsigned long long)idx, quote(q, sizeof q, name, len), (unsigned long long)len,
                       GGUF_MAX_TENSOR_NAME);
    if (memchr(name, 0, (size_t)len))
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: tensor %llu ('%s'): name contains a NUL byte", r->file,
                       (unsigned long long)idx, quote(q, sizeof q, name, len));
    t->name = malloc((size_t)len + 1);
    if (!t->name) return ll_fail(r->err, LL_ERR_NOMEM, "gguf %s: out of memory", r->file);
    memcpy(t->name, name, (size_t)len);
    t->name[len] = 0;
    snprintf(r->ctx, sizeof r->ctx, "tensor '%s'", quote(q, sizeof q, name, len));

    uint32_t nd;
    if ((rc = rd_u32(r, "n_dims", &nd))) return rc;
    if (nd < 1 || nd > LL_GGUF_MAX_DIMS)
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: %s: n_dims is %u (expected 1..%d)", r->file, r->ctx, nd,
                       LL_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    for (int i = 0; i < LL_GGUF_MAX_DIMS; i++) t->ne[i] = 1;
    for (int i = 0; i < t->n_dims; i++) {
        uint64_t v;
        if ((rc = rd_u64(r, "ne", &v))) return rc;
        if (v > INT64_MAX)
            return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: %s: ne[%d] = %llu is out of range (expected 0..2^63-1)",
                           r->file, r->ctx, i, (unsigned long long)v);
        t->ne[i] = (int64_t)v;
    }
    if ((rc = rd_u32(r, "type", &t->type))) return rc;
    if ((rc = rd_u64(r, "data offset", &t->offset))) return rc;

    const ggml_type_info *ti = type_info(t->type);
    if (!ti)
        return ll_fail(r->err, LL_ERR_INPUT,
                       "gguf %s: %s has unknown ggml type %u (known ids: 0..3, 6..30, 34, 35, 39..41)",
                       r->file, r->ctx, t->type);
    /* Element and byte counts, with empty dimensions counted as 1 so that a huge shape with one zero is
     * still refused: consumers compute row sizes from ne[0] and strides from the other dims. */
    char sh[LL_GGUF_MAX_DIMS * 24];
    int64_t numel = 1, span = 1;
    for (int i = 0; i < t->n_dims; i++) {
        int64_t d = t->ne[i] ? t->ne[i] : 1;
        if (span > INT64_MAX / d) {
            shape_str(t, sh, sizeof sh);
            return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: %s: shape %s has more than 2^63 elements", r->file,
                           r->ctx, sh);
        }
        span *= d;
        numel *= t->ne[i];
    }
    if (t->ne[0] % ti->block_elems) {
        shape_str(t, sh, sizeof sh);
        return ll_fail(r->err, LL_ERR_INPUT,
                       "gguf %s: %s: shape %s: ne[0] = %lld is not a multiple of %s's block of %lld elements",
                       r->file, r->ctx, sh, (long long)t->ne[0], ti->name, (long long)ti->block_elems);
    }
    size_t span_bytes;
    if (ll_mul_size((size_t)(span / ti->block_elems), ti->block_bytes, &span_bytes) || span_bytes > INT64_MAX) {
        shape_str(t, sh, sizeof sh);
        return ll_fail(r->err, LL_ERR_INPUT, "gguf %s: %s: shape %s of %s needs more than 2^63 bytes", r->file,
                       r->ctx, sh, ti->name);
    }
    t->nbytes = (size_t)(numel / ti->block_elems) * ti->block_bytes;
    return LL_OK;
}

/* ---- open / close ------------------------------------------------------------------------------------- */

static ll_status gguf_parse(gguf_impl *im, ll_err *err) {
    ll_gguf *g = &im->pub;
    char q[QUOTE_MAX], q2[QUOTE_MAX];
    rd r = {.p = g->map, .size = g->size, .pos = 0, .file = g->name, .err = err, .ctx = "header"};
    ll_status rc;

    if (g->size >= 4 && memcmp(g->map, "GGUF", 4))
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: bad magic '%s' (expected 'GGUF'): not a GGUF file", g->name,
                       quote(q, sizeof q, (const char *)g->map, 4));
    if (g->size < GGUF_HEADER_BYTES)
        return ll_fail(err, LL_ERR_INPUT,
                       "gguf %s: file is %zu bytes, too short for the %d-byte GGUF header (truncated file)", g->name,
                       g->size, GGUF_HEADER_BYTES);
    r.pos = 4;
    uint32_t version;
    rd_u32(&r, "version", &version);
    if (version == 0x02000000u || version == 0x03000000u)
        return ll_fail(err, LL_ERR_INPUT,
                       "gguf %s: version field reads 0x%08x: a big-endian GGUF file (version %u); only little-endian "
                       "files are supported",
                       g->name, version, version >> 24);
    if (version == 1)
        return ll_fail(err, LL_ERR_INPUT,
                       "gguf %s: version 1 (u32 counts) is not supported (expected version 2 or 3; re-convert the "
                       "model with a current llama.cpp)",
                       g->name);
    if (version != 2 && version != 3)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: version %u is not supported (expected version 2 or 3)", g->name,
                       version);
    g->version = version;
    uint64_t n_tensors, n_kv;
    rd_u64(&r, "n_tensors", &n_tensors);
    rd_u64(&r, "n_kv", &n_kv);
    size_t left = rd_left(&r);
    if (n_kv > left / GGUF_MIN_KV_BYTES)
        return ll_fail(err, LL_ERR_INPUT,
                       "gguf %s: n_kv = %llu is impossible: each key/value pair takes at least %d bytes and only %zu "
                       "follow the header (corrupt or truncated file)",
                       g->name, (unsigned long long)n_kv, GGUF_MIN_KV_BYTES, left);
    if (n_tensors > left / GGUF_MIN_TI_BYTES ||
        n_kv * GGUF_MIN_KV_BYTES + n_tensors * GGUF_MIN_TI_BYTES > left) /* no overflow: each term <= left */
        return ll_fail(err, LL_ERR_INPUT,
                       "gguf %s: n_tensors = %llu is impossible: each tensor info takes at least %d bytes and only "
                       "%zu follow the header and the %llu key/value pairs' minimum (corrupt or truncated file)",
                       g->name, (unsigned long long)n_tensors, GGUF_MIN_TI_BYTES,
                       left - (size_t)n_kv * GGUF_MIN_KV_BYTES, (unsigned long long)n_kv);

    /* Metadata. The array grows with what was parsed (the bound above is loose: 13 bytes per pair). */
    uint64_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (grow((void **)&g->kv, &cap, i + 1, sizeof *g->kv))
            return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory", g->name);
        g->n_kv = i + 1;
        if ((rc = rd_kv(&r, &g->kv[i], i))) return rc;
    }
    if (n_kv) {
        im->kv_by_key = ll_malloc_array((size_t)n_kv, sizeof *im->kv_by_key);
        if (!im->kv_by_key) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory", g->name);
        for (uint64_t i = 0; i < n_kv; i++) im->kv_by_key[i] = &g->kv[i];
        qsort(im->kv_by_key, (size_t)n_kv, sizeof *im->kv_by_key, cmp_kv_ptr);
        for (uint64_t i = 1; i < n_kv; i++)
            if (!cmp_kv_ptr(&im->kv_by_key[i - 1], &im->kv_by_key[i]))
                return ll_fail(err, LL_ERR_INPUT, "gguf %s: duplicate key '%s' (each key may appear once)", g->name,
                               quote(q, sizeof q, im->kv_by_key[i]->key.ptr, im->kv_by_key[i]->key.len));
    }

    g->alignment = LL_GGUF_DEFAULT_ALIGNMENT;
    const ll_gguf_kv *akv = ll_gguf_find(g, "general.alignment");
    if (akv) {
        int64_t a;
        if (!vtype_is_int(akv->type))
            return ll_fail(err, LL_ERR_INPUT, "gguf %s: general.alignment has type %s (expected UINT32)", g->name,
                           vtype_names[akv->type]);
        if (decode_int(akv->type, akv->value, &a) || a <= 0 || a > GGUF_MAX_ALIGNMENT || (a & (a - 1)))
            return ll_fail(err, LL_ERR_INPUT,
                           "gguf %s: general.alignment = %lld is invalid (expected a nonzero power of two up to %u)",
                           g->name, (long long)a, GGUF_MAX_ALIGNMENT);
        g->alignment = (uint64_t)a;
    }

    /* Tensor infos. */
    cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (grow((void **)&g->tensors, &cap, i + 1, sizeof *g->tensors))
            return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory", g->name);
        g->n_tensors = i + 1;
        if ((rc = rd_tensor_info(&r, &g->tensors[i], i))) return rc;
    }

    /* The data section starts at the next multiple of the alignment. */
    size_t data_offset;
    if (ll_add_size(r.pos, (size_t)g->alignment - 1, &data_offset))
        return ll_fail(err, LL_ERR_INTERNAL, "gguf %s: data offset overflows", g->name);
    data_offset &= ~((size_t)g->alignment - 1);
    if (data_offset > g->size) {
        if (n_tensors)
            return ll_fail(err, LL_ERR_INPUT,
                           "gguf %s: the tensor infos end at offset %zu and the data section would start at %zu "
                           "(alignment %llu), past the end of the file (%zu bytes): truncated file",
                           g->name, r.pos, data_offset, (unsigned long long)g->alignment, g->size);
        data_offset = g->size; /* no tensors: the padding may be missing */
    }
    g->data_offset = data_offset;
    size_t data_size = g->size - data_offset;

    if (n_tensors) {
        im->t_by_name = ll_malloc_array((size_t)n_tensors, sizeof *im->t_by_name);
        if (!im->t_by_name) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory", g->name);
        for (uint64_t i = 0; i < n_tensors; i++) im->t_by_name[i] = &g->tensors[i];
        qsort(im->t_by_name, (size_t)n_tensors, sizeof *im->t_by_name, cmp_tensor_name);
        for (uint64_t i = 1; i < n_tensors; i++)
            if (!strcmp(im->t_by_name[i - 1]->name, im->t_by_name[i]->name))
                return ll_fail(err, LL_ERR_INPUT, "gguf %s: duplicate tensor name '%s' (each tensor may appear once)",
                               g->name, quote_cstr(q, sizeof q, im->t_by_name[i]->name));
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        ll_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return ll_fail(err, LL_ERR_INPUT,
                           "gguf %s: tensor '%s': data offset %llu is not a multiple of the alignment %llu", g->name,
                           quote_cstr(q, sizeof q, t->name), (unsigned long long)t->offset,
                           (unsigned long long)g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return ll_fail(err, LL_ERR_INPUT,
                           "gguf %s: tensor '%s': data [offset %llu, %zu bytes] runs past the end of the file (data "
                           "section of %zu bytes at file offset %zu; truncated file?)",
                           g->name, quote_cstr(q, sizeof q, t->name), (unsigned long long)t->offset, t->nbytes,
                           data_size, data_offset);
        t->data = g->map + data_offset + t->offset;
    }

    /* No two tensors may share bytes. Sorted by start, the first overlap (if any) is between neighbours,
     * so each non-empty tensor is compared with the previous non-empty one (empty tensors own no bytes
     * and are skipped, so they cannot hide an overlap). */
    if (n_tensors > 1) {
        const ll_gguf_tensor **by_off = ll_malloc_array((size_t)n_tensors, sizeof *by_off);
        if (!by_off) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory", g->name);
        for (uint64_t i = 0; i < n_tensors; i++) by_off[i] = &g->tensors[i];
        qsort(by_off, (size_t)n_tensors, sizeof *by_off, cmp_tensor_offset);
        const ll_gguf_tensor *prev = NULL;
        for (uint64_t i = 0; i < n_tensors; i++) {
            const ll_gguf_tensor *t = by_off[i];
            if (!t->nbytes) continue;
            if (prev && t->offset < prev->offset + prev->nbytes) {
                rc = ll_fail(err, LL_ERR_INPUT,
                             "gguf %s: tensors '%s' [offset %llu, %zu bytes] and '%s' [offset %llu, %zu bytes] "
                             "overlap",
                             g->name, quote_cstr(q, sizeof q, prev->name), (unsigned long long)prev->offset,
                             prev->nbytes, quote_cstr(q2, sizeof q2, t->name), (unsigned long long)t->offset,
                             t->nbytes);
                free(by_off);
                return rc;
            }
            prev = t;
        }
        free(by_off);
    }
    ll_sha256_hex(g->map, g->data_offset, g->header_sha256);
    return LL_OK;
}

ll_status ll_gguf_open(const char *path, ll_gguf **out, ll_err *err) {
    *out = NULL;
    gguf_impl *im = calloc(1, sizeof *im);
    if (!im) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory", path);
    ll_gguf *g = &im->pub;
    ll_status rc = LL_OK;
    g->path = strdup(path);
    if (!g->path) {
        rc = ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory", path);
        goto done;
    }
    const char *slash = strrchr(g->path, '/');
    g->name = slash ? slash + 1 : g->path;

    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        rc = ll_fail(err, LL_ERR_INPUT, "gguf %s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        rc = ll_fail(err, LL_ERR_INPUT, "gguf %s: not a regular file", path);
        goto done;
    }
    if (st.st_size == 0) {
        close(fd);
        rc = ll_fail(err, LL_ERR_INPUT, "gguf %s: file is empty, too short for the %d-byte GGUF header (truncated file)",
                     g->name, GGUF_HEADER_BYTES);
        goto done;
    }
    g->size = (size_t)st.st_size;
    void *map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        rc = ll_fail(err, LL_ERR_IO, "gguf %s: mmap failed: %s", g->name, strerror(errno));
        goto done;
    }
    g->map = map;
    rc = gguf_parse(im, err);
done:
    if (rc) {
        ll_gguf_close(g);
        return rc;
    }
    *out = g;
    return LL_OK;
}

void ll_gguf_close(ll_gguf *g) {
    if (!g) return;
    gguf_impl *im = (gguf_impl *)g;
    if (g->map) munmap(g->map, g->size);
    for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(im->kv_by_key);
    free(im->t_by_name);
    free(g->path);
    free(im);
}

/* ---- lookup and typed access ------------------------------------------------------------------------- */

const ll_gguf_kv *ll_gguf_find(const ll_gguf *g, const char *key) {
    const gguf_impl *im = (const gguf_impl *)g;
    size_t klen = strlen(key), lo = 0, hi = (size_t)g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ll_gguf_kv *kv = im->kv_by_key[mid];
        int c = key_cmp(kv->key.ptr, kv->key.len, key, klen);
        if (!c) return kv;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static const char *kv_type_str(const ll_gguf_kv *kv, char *buf, size_t cap) {
    if (kv->type == LL_GGUF_ARRAY) snprintf(buf, cap, "ARRAY of %s", ll_gguf_vtype_name(kv->arr_type));
    else snprintf(buf, cap, "%s", ll_gguf_vtype_name(kv->type));
    return buf;
}

/* Finds key for a getter: LL_OK with *kv NULL (and *found 0) when absent. */
static const ll_gguf_kv *getter_find(const ll_gguf *g, const char *key, int *found) {
    const ll_gguf_kv *kv = ll_gguf_find(g, key);
    if (found) *found = kv != NULL;
    return kv;
}
static ll_status getter_type_fail(const ll_gguf *g, const ll_gguf_kv *kv, const char *key, const char *want,
                                  int *found, ll_err *err) {
    char q[QUOTE_MAX], ts[40];
    if (found) *found = 0;
    return ll_fail(err, LL_ERR_INPUT, "gguf %s: key '%s' has type %s (expected %s)", g->name,
                   quote_cstr(q, sizeof q, key), kv_type_str(kv, ts, sizeof ts), want);
}

ll_status ll_gguf_get_int(const ll_gguf *g, const char *key, int64_t *out, int *found, ll_err *err) {
    const ll_gguf_kv *kv = getter_find(g, key, found);
    if (!kv) return LL_OK;
    if (!vtype_is_int(kv->type)) return getter_type_fail(g, kv, key, "an integer", found, err);
    int64_t v;
    if (decode_int(kv->type, kv->value, &v)) {
        char q[QUOTE_MAX];
        if (found) *found = 0;
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: key '%s' = %llu does not fit a signed 64-bit integer", g->name,
                       quote_cstr(q, sizeof q, key), (unsigned long long)le64(kv->value));
    }
    *out = v;
    return LL_OK;
}

ll_status ll_gguf_get_float(const ll_gguf *g, const char *key, double *out, int *found, ll_err *err) {
    const ll_gguf_kv *kv = getter_find(g, key, found);
    if (!kv) return LL_OK;
    if (!vtype_is_int(kv->type) && !vtype_is_float(kv->type))
        return getter_type_fail(g, kv, key, "FLOAT32, FLOAT64 or an integer", found, err);
    *out = decode_float(kv->type, kv->value);
    return LL_OK;
}

ll_status ll_gguf_get_bool(const ll_gguf *g, const char *key, int *out, int *found, ll_err *err) {
    const ll_gguf_kv *kv = getter_find(g, key, found);
    if (!kv) return LL_OK;
    if (kv->type != LL_GGUF_BOOL) return getter_type_fail(g, kv, key, "BOOL", found, err);
    *out = kv->value[0] != 0;
    return LL_OK;
}

ll_status ll_gguf_get_str(const ll_gguf *g, const char *key, ll_gguf_str *out, int *found, ll_err *err) {
    const ll_gguf_kv *kv = getter_find(g, key, found);
    if (!kv) return LL_OK;
    if (kv->type != LL_GGUF_STRING) return getter_type_fail(g, kv, key, "STRING", found, err);
    out->len = le64(kv->value);
    out->ptr = (const char *)kv->value + 8;
    return LL_OK;
}

int64_t ll_gguf_arr_int(const ll_gguf_kv *kv, uint64_t i) {
    if (kv->type != LL_GGUF_ARRAY || i >= kv->arr_n || !vtype_is_int(kv->arr_type)) return 0;
    int64_t v;
    decode_int(kv->arr_type, kv->value + i * vtype_size(kv->arr_type), &v); /* UINT64 saturates */
    return v;
}

double ll_gguf_arr_float(const ll_gguf_kv *kv, uint64_t i) {
    if (kv->type != LL_GGUF_ARRAY || i >= kv->arr_n || !(vtype_is_int(kv->arr_type) || vtype_is_float(kv->arr_type)))
        return 0;
    return decode_float(kv->arr_type, kv->value + i * vtype_size(kv->arr_type));
}

ll_gguf_str ll_gguf_arr_str(const ll_gguf_kv *kv, uint64_t i) {
    ll_gguf_str s = {"", 0};
    if (kv->type != LL_GGUF_ARRAY || kv->arr_type != LL_GGUF_STRING || i >= kv->arr_n) return s;
    const uint8_t *p = kv->value + kv->str_off[i];
    s.len = le64(p);
    s.ptr = (const char *)p + 8;
    return s;
}

/* ---- tensors ------------------------------------------------------------------------------------------ */

const ll_gguf_tensor *ll_gguf_find_tensor(const ll_gguf *g, const char *name) {
    const gguf_impl *im = (const gguf_impl *)g;
    size_t lo = 0, hi = (size_t)g->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(im->t_by_name[mid]->name, name);
        if (!c) return im->t_by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int64_t ll_gguf_tensor_numel(const ll_gguf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i]; /* cannot overflow: checked at open */
    return n;
}

void ll_gguf_release(const ll_gguf *g, const ll_gguf_tensor *t) {
    (void)g;
    ll_release_pages(t->data, t->nbytes);
}
