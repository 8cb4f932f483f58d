/* fuzz_gguf.c: libFuzzer target: arbitrary bytes as a .gguf file (written to a temporary file and opened
 * with ll_gguf_open, host/model/gguf.c). Opening must either fail with one line "gguf NAME: ..." or give a
 * handle whose every part holds up when walked through the public API:
 *  - header: version 2 or 3, alignment a power of two, data section aligned and inside the file, the
 *    header hash over exactly the bytes before it;
 *  - every kv: key non-empty without NUL, key and value inside the bytes before the data section, found
 *    again by ll_gguf_find (so keys are unique), sizes consistent with the type, every array element read
 *    through the getter of its family, the typed getters agreeing with the type;
 *  - every tensor: found again by name (unique), 1..4 dims with unused dims 1, ne >= 0, a known type,
 *    ne[0] a multiple of the block, nbytes = numel / block x block bytes, offset aligned, data inside the
 *    data section; sorted by offset no two non-empty tensors overlap; every byte is read.
 * Build and run: make fuzz-model (short) or make fuzz-model-long (mk/fuzz_model.mk). */
#include "ll_gguf.h"
#include "ll_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[256];
static volatile unsigned g_sum;

#define REQUIRE(c)                                                               \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "fuzz_gguf: invariant broken at line %d: %s\n", __LINE__, #c); \
            abort();                                                             \
        }                                                                        \
    } while (0)

static void write_input(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/ll_fuzz_gguf_%ld.gguf", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f)) abort();
}

static int is_int(uint32_t t) { return t <= LL_GGUF_INT32 || t == LL_GGUF_UINT64 || t == LL_GGUF_INT64; }
static size_t fixed_size(uint32_t t) {
    static const size_t s[LL_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < LL_GGUF_VTYPE_COUNT ? s[t] : 0;
}

static void check_kv(const ll_gguf *g, const ll_gguf_kv *kv) {
    const uint8_t *lo = g->map, *hi = g->map + g->data_offset;
    REQUIRE(kv->key.len > 0 && kv->key.len <= 65535);
    REQUIRE((const uint8_t *)kv->key.ptr >= lo && kv->key.len <= (uint64_t)(hi - (const uint8_t *)kv->key.ptr));
    REQUIRE(!memchr(kv->key.ptr, 0, kv->key.len));
    REQUIRE((unsigned)kv->type < LL_GGUF_VTYPE_COUNT);
    REQUIRE(kv->value >= lo && kv->value <= hi && kv->value_bytes <= (uint64_t)(hi - kv->value));
    REQUIRE(strcmp(ll_gguf_vtype_name(kv->type), "UNKNOWN"));
    for (uint64_t b = 0; b < kv->value_bytes; b++) g_sum += kv->value[b];

    char key[65536];
    memcpy(key, kv->key.ptr, kv->key.len);
    key[kv->key.len] = 0;
    REQUIRE(ll_gguf_find(g, key) == kv);

    /* Getters agree with the type. */
    ll_err err;
    int found = -1;
    int64_t i;
    double f;
    int b;
    ll_gguf_str s;
    ll_status rc = ll_gguf_get_int(g, key, &i, &found, &err);
    REQUIRE(is_int(kv->type) ? (rc == LL_OK && found == 1) || (rc == LL_ERR_INPUT && kv->type == LL_GGUF_UINT64)
                             : rc == LL_ERR_INPUT && found == 0 && err.msg[0] && !strchr(err.msg, '\n'));
    rc = ll_gguf_get_float(g, key, &f, &found, &err);
    REQUIRE((rc == LL_OK) == (is_int(kv->type) || kv->type == LL_GGUF_FLOAT32 || kv->type == LL_GGUF_FLOAT64));
    rc = ll_gguf_get_bool(g, key, &b, &found, &err);
    REQUIRE((rc == LL_OK) == (kv->type == LL_GGUF_BOOL));
    if (rc == LL_OK) REQUIRE(b == 0 || b == 1);
    rc = ll_gguf_get_str(g, key, &s, &found, &err);
    REQUIRE((rc == LL_OK) == (kv->type == LL_GGUF_STRING));
    if (rc == LL_OK) {
        REQUIRE(kv->value_bytes == 8 + s.len && (const uint8_t *)s.ptr == kv->value + 8);
    } else if (kv->type != LL_GGUF_ARRAY) {
        REQUIRE(kv->value_bytes == fixed_size(kv->type));
    }

    if (kv->type != LL_GGUF_ARRAY) {
        REQUIRE(!kv->str_off);
        return;
    }
    REQUIRE((unsigned)kv->arr_type < LL_GGUF_VTYPE_COUNT);
    size_t es = fixed_size(kv->arr_type);
    if (es) REQUIRE(kv->value_bytes == kv->arr_n * es);
    if (kv->arr_type == LL_GGUF_STRING) {
        REQUIRE(kv->arr_n == 0 || kv->str_off);
        uint64_t expect = 0; /* the elements follow each other */
        for (uint64_t e = 0; e < kv->arr_n; e++) {
            REQUIRE(kv->str_off[e] == expect);
            ll_gguf_str x = ll_gguf_arr_str(kv, e);
            REQUIRE((const uint8_t *)x.ptr == kv->value + kv->str_off[e] + 8);
            REQUIRE(x.len <= kv->value_bytes - kv->str_off[e] - 8);
            for (uint64_t c = 0; c < x.len; c++) g_sum += (uint8_t)x.ptr[c];
            expect += 8 + x.len;
        }
        REQUIRE(expect == kv->value_bytes);
    } else {
        REQUIRE(!kv->str_off);
    }
    if (kv->arr_type == LL_GGUF_ARRAY) REQUIRE(kv->value_bytes >= kv->arr_n * 12);
    for (uint64_t e = 0; e < kv->arr_n; e++) {
        g_sum += (unsigned)ll_gguf_arr_int(kv, e);
        g_sum += ll_gguf_arr_float(kv, e) > 0; /* a float-to-unsigned cast of NaN or -1 is undefined */
        if (kv->arr_type == LL_GGUF_BOOL) REQUIRE(kv->value[e] <= 1);
    }
    REQUIRE(ll_gguf_arr_int(kv, kv->arr_n) == 0 && ll_gguf_arr_str(kv, kv->arr_n).len == 0);
}

static int cmp_off(const void *a, const void *b) {
    const ll_gguf_tensor *x = *(const ll_gguf_tensor *const *)a, *y = *(const ll_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static void check_tensor(const ll_gguf *g, const ll_gguf_tensor *t) {
    REQUIRE(t->name && t->name[0] && strlen(t->name) <= 256);
    REQUIRE(ll_gguf_find_tensor(g, t->name) == t);
    REQUIRE(t->n_dims >= 1 && t->n_dims <= LL_GGUF_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < LL_GGUF_MAX_DIMS; d++) {
        REQUIRE(t->ne[d] >= 0);
        if (d >= t->n_dims) REQUIRE(t->ne[d] == 1);
        if (t->ne[d] && numel) REQUIRE(numel <= INT64_MAX / t->ne[d]);
        numel *= t->ne[d];
    }
    REQUIRE(ll_gguf_tensor_numel(t) == numel);
    const char *tn = ll_gguf_type_name(t->type);
    int64_t be = ll_gguf_type_block_elems(t->type);
    size_t bb = ll_gguf_type_block_bytes(t->type);
    REQUIRE(tn && be > 0 && bb > 0);
    REQUIRE(t->ne[0] % be == 0);
    REQUIRE((uint64_t)(numel / be) <= SIZE_MAX / bb && t->nbytes == (size_t)(numel / be) * bb);
    REQUIRE(t->offset % g->alignment == 0);
    const uint8_t *lo = g->map + g->data_offset, *hi = g->map + g->size;
    REQUIRE(t->data == lo + t->offset);
    REQUIRE(t->data <= hi && t->nbytes <= (size_t)(hi - t->data));
    for (size_t b = 0; b < t->nbytes; b++) g_sum += t->data[b];
}

#define MAX_CUTS 20

/* Opens bytes as a file and checks what comes back. When cuts is non-NULL and the file opened, fills it
 * with up to MAX_CUTS lengths to try next and returns their number. */
static int check_bytes(const uint8_t *data, size_t size, size_t *cuts) {
    write_input(data, size);
    ll_gguf *g = NULL;
    ll_err err;
    err.msg[0] = 0;
    if (ll_gguf_open(g_path, &g, &err) != LL_OK) {
        REQUIRE(g == NULL);
        REQUIRE(!strncmp(err.msg, "gguf ", 5) && !strchr(err.msg, '\n')); /* one line naming the file */
        return 0;
    }
    REQUIRE(g->size == size && (g->version == 2 || g->version == 3));
    REQUIRE(size >= 24 && !memcmp(g->map, "GGUF", 4) && !memcmp(g->map, data, size));
    REQUIRE(g->alignment && !(g->alignment & (g->alignment - 1)));
    REQUIRE(g->data_offset >= 24 && g->data_offset <= g->size);
    REQUIRE(g->data_offset % g->alignment == 0 || (g->n_tensors == 0 && g->data_offset == g->size));
    char sha[65];
    ll_sha256_hex(g->map, g->data_offset, sha);
    REQUIRE(!strcmp(sha, g->header_sha256));
    REQUIRE(g->n_kv <= size / 13 && g->n_tensors <= size / 32);

    for (uint64_t k = 0; k < g->n_kv; k++) check_kv(g, &g->kv[k]);
    const ll_gguf_kv *akv = ll_gguf_find(g, "general.alignment");
    if (!akv) REQUIRE(g->alignment == LL_GGUF_DEFAULT_ALIGNMENT);

    for (uint64_t k = 0; k < g->n_tensors; k++) check_tensor(g, &g->tensors[k]);
    if (g->n_tensors > 1) {
        const ll_gguf_tensor **by = malloc(sizeof *by * g->n_tensors);
        REQUIRE(by);
        for (uint64_t k = 0; k < g->n_tensors; k++) by[k] = &g->tensors[k];
        qsort(by, g->n_tensors, sizeof *by, cmp_off);
        /* Independent of the reader's sweep: compare every pair of non-empty tensors in offset order until
         * the next one starts past the current one's end. */
        for (uint64_t a = 0; a < g->n_tensors; a++) {
            if (!by[a]->nbytes) continue;
            for (uint64_t c = a + 1; c < g->n_tensors && by[c]->offset < by[a]->offset + by[a]->nbytes; c++)
                REQUIRE(by[c]->nbytes == 0);
        }
        free(by);
    }
    for (uint64_t k = 0; k < g->n_tensors; k++) ll_gguf_release(g, &g->tensors[k]);
    /* A file that opens, cut short: the bytes before a cut are a valid prefix, so a length or count check
     * meets its bound exactly when the cut falls one byte inside that value (an off-by-one there would
     * read past the end; the reader's cursor asserts). Cuts one byte before the end of the first values
     * and the last one, before the data section and before the end of the file. */
    int n_cuts = 0;
    if (cuts) {
        for (uint64_t k = 0; k < g->n_kv && k < MAX_CUTS - 3; k++) {
            const ll_gguf_kv *kv = &g->kv[k < MAX_CUTS - 4 ? k : g->n_kv - 1];
            cuts[n_cuts++] = (size_t)(kv->value - g->map) + kv->value_bytes - (kv->value_bytes > 0);
        }
        if (g->data_offset > 24) cuts[n_cuts++] = g->data_offset - 1;
        cuts[n_cuts++] = size - 1;
    }
    ll_gguf_close(g);
    return n_cuts;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t cuts[MAX_CUTS];
    int n = check_bytes(data, size, cuts);
    for (int c = 0; c < n; c++) check_bytes(data, cuts[c], NULL);
    return 0;
}
