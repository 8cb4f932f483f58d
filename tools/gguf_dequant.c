/* gguf_dequant.c: a command-line driver of ll_gguf_dequant_f32 (host/model/gguf_dequant.c) for
 * tests/test_gguf_dequant.py, which compares its output with the gguf Python package's.
 *
 *   gguf_dequant TYPE IN OUT     dequantizes the raw blocks in IN (whole blocks of ggml type TYPE, no
 *                                header) and writes the float32 elements to OUT
 *   gguf_dequant --supported T   prints 1 or 0: ll_gguf_dequant_supported(T)
 *
 * Exit status 0 on success; 2 for an unsupported type (message "type T is not supported"), a size that
 * is not a whole number of blocks or a bad command line; 3 for file errors; 4 when the dequantization
 * wrote outside its output (guard elements after the output changed).
 *
 * The input is placed one byte past an aligned address so that every multi-byte field is read
 * unaligned, as from a memory-mapped file. Block sizes come from the table below (the formats' fixed
 * sizes), not from the GGUF reader, so that this tool tests the dequantization alone; a wrong entry
 * shows up in the test as a wrong output length. */
#include "ll_gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    uint32_t type;
    int64_t elems; /* per block */
    size_t bytes;  /* per block */
} block_sizes[] = {
    {LL_GGUF_T_F32, 1, 4},     {LL_GGUF_T_F16, 1, 2},     {LL_GGUF_T_BF16, 1, 2},    {LL_GGUF_T_Q4_0, 32, 18},
    {LL_GGUF_T_Q4_1, 32, 20},  {LL_GGUF_T_Q5_0, 32, 22},  {LL_GGUF_T_Q5_1, 32, 24},  {LL_GGUF_T_Q8_0, 32, 34},
    {LL_GGUF_T_Q2_K, 256, 84}, {LL_GGUF_T_Q3_K, 256, 110}, {LL_GGUF_T_Q4_K, 256, 144},
    {LL_GGUF_T_Q5_K, 256, 176}, {LL_GGUF_T_Q6_K, 256, 210},
};

#define N_GUARD 64
static const uint32_t guard_bits = 0x7fc0dead; /* a NaN that no format writes from these inputs */

static int parse_type(const char *s, uint32_t *type) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX) {
        fprintf(stderr, "gguf_dequant: bad type id '%s' (expected a ggml type number)\n", s);
        return 0;
    }
    *type = (uint32_t)v;
    return 1;
}

int main(int argc, char **argv) {
    uint32_t type;
    if (argc == 3 && !strcmp(argv[1], "--supported")) {
        if (!parse_type(argv[2], &type)) return 2;
        printf("%d\n", ll_gguf_dequant_supported(type));
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: gguf_dequant TYPE IN OUT | gguf_dequant --supported TYPE\n");
        return 2;
    }
    if (!parse_type(argv[1], &type)) return 2;
    if (!ll_gguf_dequant_supported(type)) {
        fprintf(stderr, "gguf_dequant: type %u is not supported\n", (unsigned)type);
        return 2;
    }
    int64_t qk = 0;
    size_t bb = 0;
    for (size_t i = 0; i < sizeof block_sizes / sizeof block_sizes[0]; i++)
        if (block_sizes[i].type == type) qk = block_sizes[i].elems, bb = block_sizes[i].bytes;
    if (!qk) {
        fprintf(stderr, "gguf_dequant: type %u is supported but has no block size in this tool\n",
                (unsigned)type);
        return 2;
    }

    int rc = 3;
    unsigned char *raw = NULL;
    float *out = NULL;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "gguf_dequant: cannot open %s: %s\n", argv[2], strerror(errno));
        return 3;
    }
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0) {
        fprintf(stderr, "gguf_dequant: cannot size %s: %s\n", argv[2], strerror(errno));
        goto done;
    }
    const size_t len = (size_t)ftell(f);
    rewind(f);
    if (len % bb) {
        fprintf(stderr, "gguf_dequant: %s: %zu bytes is not a whole number of %zu-byte blocks\n", argv[2], len,
                bb);
        rc = 2;
        goto done;
    }
    const int64_t n = (int64_t)(len / bb) * qk;
    raw = malloc(len + 1);
    out = malloc(((size_t)n + N_GUARD) * sizeof *out);
    if (!raw || !out) {
        fprintf(stderr, "gguf_dequant: out of memory for %zu bytes\n", len);
        goto done;
    }
    if (fread(raw + 1, 1, len, f) != len) {
        fprintf(stderr, "gguf_dequant: cannot read %s\n", argv[2]);
        goto done;
    }
    fclose(f);
    f = NULL;
    for (int i = 0; i < N_GUARD; i++) memcpy(out + n + i, &guard_bits, 4);

    ll_gguf_dequant_f32(type, raw + 1, out, n);

    for (int i = 0; i < N_GUARD; i++)
        if (memcmp(out + n + i, &guard_bits, 4)) {
            fprintf(stderr, "gguf_dequant: type %u: guard element %d after the %lld outputs was overwritten\n",
                    (unsigned)type, i, (long long)n);
            rc = 4;
            goto done;
        }
    f = fopen(argv[3], "wb");
    if (!f) {
        fprintf(stderr, "gguf_dequant: cannot create %s: %s\n", argv[3], strerror(errno));
        goto done;
    }
    const size_t written = fwrite(out, sizeof *out, (size_t)n, f);
    const int close_rc = fclose(f);
    f = NULL;
    if (written != (size_t)n || close_rc) {
        fprintf(stderr, "gguf_dequant: cannot write %s: %s\n", argv[3], strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (f) fclose(f);
    free(raw);
    free(out);
    return rc;
}
