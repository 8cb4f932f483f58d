/* test_host_units.c: unit tests of host-side pieces with exactly known answers: SHA-256 vectors,
 * --layers slices against Python's slice semantics, float16/bfloat16 conversions, the online
 * log-sum-exp merge and top-k insertion of include/ll_math.h against double-precision brute force. */
#include "ll_cuda_tiling.h"
#include "ll_engine.h"
#include "ll_math.h"
#include "ll_sha256.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define EXPECT(cond, ...)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, "\n");                                                     \
        }                                                                              \
    } while (0)

static void test_sha256(void) {
    char hex[65];
    ll_sha256_hex("", 0, hex);
    EXPECT(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256('') = %s", hex);
    ll_sha256_hex("abc", 3, hex);
    EXPECT(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) = %s", hex);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ll_sha256_hex(m, strlen(m), hex);
    EXPECT(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256(448 bits) = %s", hex);
    /* a million 'a' fed in uneven pieces */
    ll_sha256 s;
    uint8_t d[32];
    char *buf = malloc(1000000);
    memset(buf, 'a', 1000000);
    ll_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        ll_sha256_update(&s, buf + off, n);
        off += n;
        step = step * 3 % 997 + 1;
    }
    ll_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    EXPECT(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(1M a) = %s", hex);
    free(buf);
}

/* Python: list(range(n))[slice(a, b, s)] */
static void py_slice(int n, int has_a, long a, int has_b, long b, long s, char *sel) {
    memset(sel, 0, (size_t)n);
    if (s > 0) {
        long lo = !has_a ? 0 : a < 0 ? (a + n < 0 ? 0 : a + n) : (a > n ? n : a);
        long hi = !has_b ? n : b < 0 ? (b + n < 0 ? 0 : b + n) : (b > n ? n : b);
        for (long i = lo; i < hi; i += s) sel[i] = 1;
    } else {
        long lo = !has_a ? n - 1 : a < 0 ? (a + n < 0 ? -1 : a + n) : (a >= n ? n - 1 : a);
        long hi = !has_b ? -1 : b < 0 ? (b + n < 0 ? -1 : b + n) : (b >= n ? n - 1 : b);
        for (long i = lo; i > hi; i += s) sel[i] = 1;
    }
}

static void test_layers(void) {
    const int n = 7;
    long vals[] = {-9, -7, -3, -1, 0, 2, 6, 7, 12};
    long steps[] = {1, 2, 3, -1, -2};
    char want[16], spec[64];
    ll_err err;
    for (int ha = 0; ha < 2; ha++)
        for (int hb = 0; hb < 2; hb++)
            for (size_t ia = 0; ia < 9; ia++)
                for (size_t ib = 0; ib < 9; ib++)
                    for (size_t is = 0; is < 5; is++) {
                        if ((!ha && ia) || (!hb && ib)) continue;
                        char sa[24] = "", sb[24] = "";
                        if (ha) snprintf(sa, sizeof sa, "%ld", vals[ia]);
                        if (hb) snprintf(sb, sizeof sb, "%ld", vals[ib]);
                        snprintf(spec, sizeof spec, "%s:%s:%ld", sa, sb, steps[is]);
                        py_slice(n, ha, vals[ia], hb, vals[ib], steps[is], want);
                        int any = 0;
                        for (int i = 0; i < n; i++) any |= want[i];
                        ll_points p;
                        ll_status rc = ll_points_parse("post", spec, n, &p, &err);
                        if (!any) {
                            EXPECT(rc == LL_ERR_USAGE, "--layers %s selects nothing but parsed (rc %d)", spec, rc);
                            continue;
                        }
                        EXPECT(rc == LL_OK, "--layers %s: %s", spec, err.msg);
                        if (rc) continue;
                        int k = 0;
                        for (int i = 0; i < n; i++) {
                            EXPECT((p.post[i] >= 0) == want[i], "--layers %s: layer %d", spec, i);
                            if (want[i]) EXPECT(p.post[i] == k++, "--layers %s: order", spec);
                        }
                        ll_points_free(&p);
                    }
    ll_points p;
    EXPECT(ll_points_parse("embed,mid,post", "-1", 4, &p, &err) == LL_OK, "single index");
    EXPECT(p.n == 3 && !strcmp(p.names[0], "embed") && !strcmp(p.names[1], "mid.3") && !strcmp(p.names[2], "post.3") &&
               p.layers[0] == -1 && p.layers[2] == 3,
           "embed,mid,post -1 gives embed, mid.3, post.3");
    ll_points_free(&p);
    EXPECT(ll_points_parse("post", "4", 4, &p, &err) == LL_ERR_USAGE, "index out of range");
    EXPECT(ll_points_parse("post", "::0", 4, &p, &err) == LL_ERR_USAGE, "zero step");
    EXPECT(ll_points_parse("resid", NULL, 4, &p, &err) == LL_ERR_USAGE, "unknown kind");
    EXPECT(ll_points_parse("post", "1:2:3:4", 4, &p, &err) == LL_ERR_USAGE, "too many colons");
}

static void test_halves(void) {
    /* every float16 converts to float32 and back unchanged (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ll_f16_to_f32((uint16_t)h);
        uint16_t back = ll_f32_to_f16(f);
        if (isnan(f)) EXPECT((back & 0x7c00) == 0x7c00 && (back & 0x3ff), "f16 NaN %04x", h);
        else EXPECT(back == h, "f16 %04x -> %g -> %04x", h, f, back);
    }
    /* rounding: against double arithmetic on random floats in the f16 range */
    uint32_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 1664525u + 1013904223u;
        float f = ll_bits_to_f32((x & 0x8fffffffu) | 0x30000000u); /* magnitudes around 1e-9..1e5 */
        if (!isfinite(f) || fabsf(f) > 65504.0f) continue;
        uint16_t h = ll_f32_to_f16(f);
        double got = ll_f16_to_f32(h);
        /* nearest: no other float16 is strictly closer */
        double lo = ll_f16_to_f32((uint16_t)(h - 1)), hi = ll_f16_to_f32((uint16_t)(h + 1));
        if ((h & 0x7fff) == 0) continue;
        EXPECT(fabs(got - f) <= fabs(lo - f) && fabs(got - f) <= fabs(hi - f), "f16 rounding of %.9g -> %.9g", f, got);
    }
    for (uint32_t b = 0; b < 65536; b++) {
        float f = ll_bf16_to_f32((uint16_t)b);
        if (!isnan(f)) EXPECT(ll_f32_to_bf16(f) == b, "bf16 %04x round trip", b);
    }
    EXPECT(ll_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 ties to even (down)");
    EXPECT(ll_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 ties to even (up)");
}

static void test_lse_topk(void) {
    uint32_t x = 777;
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + trial * 7 % 300, k = 1 + trial % 12;
        float z[300];
        for (int i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            z[i] = (float)((x >> 8) % 20000) / 1000.0f - 10.0f;
            if (trial % 5 == 0) z[i] = (float)((x >> 8) % 7); /* many exact ties */
        }
        /* tiles of varying width, merged in a scrambled order */
        ll_lse_state acc = ll_lse_init();
        int32_t ids[16];
        float vals[16];
        int have = 0;
        int tile = 1 + trial % 37;
        for (int t0 = ((n - 1) / tile) * tile; t0 >= 0; t0 -= tile) {
            ll_lse_state s = ll_lse_init();
            for (int i = t0; i < n && i < t0 + tile; i++) {
                ll_lse_state one = {z[i], 1.0f, 0.0f};
                s = ll_lse_merge(s, one);
                ll_topk_insert(ids, vals, &have, k, i, z[i]);
            }
            acc = ll_lse_merge(s, acc);
        }
        double m = -1e300, S = 0, U = 0;
        for (int i = 0; i < n; i++) m = z[i] > m ? z[i] : m;
        for (int i = 0; i < n; i++) S += exp(z[i] - m);
        double lse = m + log(S);
        for (int i = 0; i < n; i++) U += exp(z[i] - lse) * (z[i] - lse);
        double H = -U;
        EXPECT(fabs(ll_lse_value(acc) - lse) < 1e-5, "lse %g vs %g (n %d)", ll_lse_value(acc), lse, n);
        EXPECT(fabs(ll_lse_entropy(acc) - H) < 1e-5, "entropy %g vs %g (n %d)", ll_lse_entropy(acc), H, n);
        int kk = k < n ? k : n;
        EXPECT(have == kk, "top-k count %d vs %d", have, kk);
        /* reference: stable sort by (value desc, id asc) */
        char used[300] = {0};
        for (int j = 0; j < kk; j++) {
            int best = -1;
            for (int i = 0; i < n; i++)
                if (!used[i] && (best < 0 || z[i] > z[best])) best = i;
            used[best] = 1;
            EXPECT(ids[j] == best && vals[j] == z[best], "top-%d[%d] = %d (%g), expected %d (%g)", k, j, ids[j],
                   vals[j], best, z[best]);
        }
    }
}

/* The CUDA lens tiling the memory plan uses (include/ll_cuda_tiling.h; its rule is tested over random shapes
 * by tests/gpu/test_lens_tiling.c): one exact case, 65536 rows of a 128256 vocabulary at d 4096 and the
 * default budget: one row block, 1024-column tiles. */
static void test_cuda_tiling(void) {
    int64_t rb, vt;
    ll_cuda_lens_tiles(65536, 128256, 4096, 4, LL_CUDA_LENS_BUDGET_DEFAULT, &rb, &vt);
    EXPECT(rb == 65536 && vt == 1024, "default tiling of 65536 x 128256: %lld x %lld", (long long)rb, (long long)vt);
    EXPECT(ll_cuda_lens_pass_need(65536, 4096, 128256, 10, 1, LL_CUDA_LENS_BUDGET_DEFAULT) ==
               (size_t)65536 * 4096 * 2 + 65536 * 20 + ((size_t)256 << 20),
           "lens_pass scratch at 65536 x 4096");
}

int main(void) {
    test_sha256();
    test_layers();
    test_halves();
    test_lse_topk();
    test_cuda_tiling();
    if (failures) {
        fprintf(stderr, "test_host_units: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_host_units: all passed\n");
    return 0;
}
