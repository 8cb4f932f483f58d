/* test_backend_ops.c: every op of the backend table on the CUDA backend against the CPU backend.
 *
 * usage: test_backend_ops MODULE.so [FILTER]     (FILTER: run only cases whose name contains it)
 *
 * Each case draws fresh random inputs (never zeros), uploads the same bytes to both backends, runs the
 * op on both and compares. Weights are drawn in float, rounded to the case's dtype and given to both
 * backends as those stored bits (the CPU widens them exactly), so both see the same rounded weights.
 * Outputs are allocated with GUARD bytes after them; the output is poisoned (NaN for floats, 0x7f7f7f7f
 * for ints) and the guard filled with 0xa5 before the op, so an unwritten element fails the NaN/value
 * check and an out-of-bounds write fails the guard check. One line per case: PASS/FAIL, the case, the
 * normalized error and its bound, and on failure the first divergent element. Exit status 1 if any case
 * failed.
 *
 * Error bounds live in one table (TOLS in ops_harness.c), per op and dtype, each with its reason. Errors are
 * normalized: rel = ||cuda - cpu||_2 / ||cpu||_2, and each element must satisfy
 * |cuda - cpu| <= atol * scale + rtol * |cpu|, scale = the RMS of the CPU output (the magnitude the
 * rounding errors are proportional to). The lens cases also keep a float64 host reference of every
 * logit, used to accept top-k id swaps and rank differences between near-tied logits only.
 *
 * LL_CUDA_SYNC=1 is set before the CUDA backend opens, so a device fault is reported by the op that
 * caused it, with file:line. Lens cases force small vocabulary tiles (LL_CUDA_LENS_TILE_BYTES) so that
 * several tiles and row blocks are crossed.
 *
 * Without a usable CUDA module the program prints "SKIP" and exits 0 only where there is no GPU at all
 * (gpu_present.h); with a GPU present it is a failure (exit 1), said as such.
 *
 * Files: this one (the forward ops and main), test_backend_lens.c (the lens ops), ops_harness.h/.c (the
 * shared buffers, comparison and tolerance table). */
#include "gpu_present.h"
#include "ops_harness.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- forward ops -------------------------------------------------------------------------------------- */

static void test_embed(void) {
    static const int64_t shapes[][3] = {{1, 7, 5}, {13, 67, 100}, {64, 768, 1000}}; /* T, d, V */
    for (int s = 0; s < 3; s++)
        for (int di = 0; di < 3; di++)
            for (int with_pe = 0; with_pe < 2; with_pe++) {
                int64_t T = shapes[s][0], d = shapes[s][1], V = shapes[s][2], P = 2 * T + 3;
                ll_dtype dt = DTS[di];
                if (!case_begin("embed %s T=%lld d=%lld V=%lld%s", ll_dtype_name(dt), (long long)T, (long long)d,
                                (long long)V, with_pe ? " +wpe" : ""))
                    continue;
                tol t = get_tol("embed", dt);
                hw wte = hw_make(V, d, dt, 1.0f, 0.0f), wpe = hw_make(P, d, dt, 0.5f, 0.0f);
                int32_t *ids = malloc((size_t)T * 4), *pos = malloc((size_t)T * 4);
                for (int64_t i = 0; i < T; i++) {
                    ids[i] = (int32_t)rnd_int(V);
                    pos[i] = (int32_t)rnd_int(P);
                }
                ids[T - 1] = (int32_t)(V - 1); /* the last row of the table */
                wpair we = w_pair(&wte), wp = w_pair(&wpe);
                pair pi = in_pair(ids, (size_t)T * 4), pp = in_pair(pos, (size_t)T * 4);
                pair po = out_pair((size_t)(T * d) * 4, POISON_F);
                cmpres r = {0, 0};
                if (!g_case_bad) {
                    CK(&g_cpu, g_cpu.ops->embed(&g_cpu, po.c, &we.c, with_pe ? &wp.c : NULL, pi.c, pp.c, T, d));
                    CK(&g_gpu, g_gpu.ops->embed(&g_gpu, po.g, &we.g, with_pe ? &wp.g : NULL, pi.g, pp.g, T, d));
                    void *hc, *hg;
                    if (fetch(po, &hc, &hg)) cmp_f32("x", hg, hc, T * d, t, &r);
                    free(hc);
                    free(hg);
                }
                case_end(&r, t);
                pair_free(&pi);
                pair_free(&pp);
                pair_free(&po);
                wpair_free(&we);
                wpair_free(&wp);
                hw_free(&wte);
                hw_free(&wpe);
                free(ids);
                free(pos);
            }
}

static void test_norms(void) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 67}, {17, 1000}, {2, 4096}};
    for (int s = 0; s < 4; s++)
        for (int di = 0; di < 3; di++)
            for (int kind = 0; kind < 3; kind++) { /* layernorm+bias, layernorm, rmsnorm */
                int64_t T = shapes[s][0], d = shapes[s][1];
                ll_dtype dt = DTS[di];
                const char *nm = kind == 2 ? "rmsnorm" : kind == 0 ? "layernorm+b" : "layernorm";
                if (!case_begin("%s %s T=%lld d=%lld", nm, ll_dtype_name(dt), (long long)T, (long long)d)) continue;
                tol t = get_tol("norm", dt);
                /* an offset of 30 tests that LayerNorm does not cancel (two-pass variance) */
                float *x = fvec(T * d, 2.0f, kind == 1 ? 30.0f : 0.0f);
                hw w = hw_make(1, d, dt, 0.3f, 1.0f), b = hw_make(1, d, dt, 0.2f, 0.0f);
                wpair ww = w_pair(&w), wb = w_pair(&b);
                pair px = in_pair(x, (size_t)(T * d) * 4), py = out_pair((size_t)(T * d) * 4, POISON_F);
                cmpres r = {0, 0};
                if (!g_case_bad) {
                    if (kind == 2) {
                        CK(&g_cpu, g_cpu.ops->rmsnorm(&g_cpu, py.c, px.c, &ww.c, T, d, 1e-5f));
                        CK(&g_gpu, g_gpu.ops->rmsnorm(&g_gpu, py.g, px.g, &ww.g, T, d, 1e-5f));
                    } else {
                        CK(&g_cpu, g_cpu.ops->layernorm(&g_cpu, py.c, px.c, &ww.c, kind == 0 ? &wb.c : NULL, T, d, 1e-5f));
                        CK(&g_gpu, g_gpu.ops->layernorm(&g_gpu, py.g, px.g, &ww.g, kind == 0 ? &wb.g : NULL, T, d, 1e-5f));
                    }
                    void *hc, *hg;
                    if (fetch(py, &hc, &hg)) cmp_f32("y", hg, hc, T * d, t, &r);
                    free(hc);
                    free(hg);
                }
                case_end(&r, t);
                pair_free(&px);
                pair_free(&py);
                wpair_free(&ww);
                wpair_free(&wb);
                hw_free(&w);
                hw_free(&b);
                free(x);
            }
}

static void test_matmul(void) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 37, 19}, {17, 65, 33}, {64, 256, 384}, {5, 1000, 3}, {33, 129, 1031}};
    int n = 0;
    for (int s = 0; s < 6; s++)
        for (int di = 0; di < 3; di++)
            for (int lay = 0; lay < 2; lay++) {
                int64_t T = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                ll_dtype dt = DTS[di];
                int with_b = (n++ % 2) == 0;
                if (!case_begin("matmul %s %s T=%lld N=%lld K=%lld%s", ll_dtype_name(dt), lay ? "in_out" : "out_in",
                                (long long)T, (long long)N, (long long)K, with_b ? " +bias" : ""))
                    continue;
                tol t = get_tol("matmul", dt);
                float *x = fvec(T * K, 1.0f, 0.0f);
                hw w = lay ? hw_make(K, N, dt, 1.0f / (float)sqrt((double)K), 0.0f)
                           : hw_make(N, K, dt, 1.0f / (float)sqrt((double)K), 0.0f);
                hw b = hw_make(1, N, dt, 0.5f, 0.0f);
                wpair ww = w_pair(&w), wb = w_pair(&b);
                pair px = in_pair(x, (size_t)(T * K) * 4), py = out_pair((size_t)(T * N) * 4, POISON_F);
                cmpres r = {0, 0};
                if (!g_case_bad) {
                    ll_wlayout L = lay ? LL_WLAYOUT_IN_OUT : LL_WLAYOUT_OUT_IN;
                    CK(&g_cpu, g_cpu.ops->matmul(&g_cpu, py.c, px.c, &ww.c, L, with_b ? &wb.c : NULL, T, N, K));
                    CK(&g_gpu, g_gpu.ops->matmul(&g_gpu, py.g, px.g, &ww.g, L, with_b ? &wb.g : NULL, T, N, K));
                    void *hc, *hg;
                    if (fetch(py, &hc, &hg)) cmp_f32("y", hg, hc, T * N, t, &r);
                    free(hc);
                    free(hg);
                }
                case_end(&r, t);
                pair_free(&px);
                pair_free(&py);
                wpair_free(&ww);
                wpair_free(&wb);
                hw_free(&w);
                hw_free(&b);
                free(x);
            }
}

/* The forward matmul on a backend opened with allow_tf32: fp32 weights may use TF32 there (and only there). */
static void test_matmul_tf32(void) {
    const int64_t T = 33, N = 129, K = 1031;
    for (int lay = 0; lay < 2; lay++) {
        if (!case_begin("matmul tf32 F32 %s T=%lld N=%lld K=%lld +bias", lay ? "in_out" : "out_in", (long long)T,
                        (long long)N, (long long)K))
            continue;
        tol t = get_tol("matmul_tf32", LL_DTYPE_F32);
        float *x = fvec(T * K, 1.0f, 0.0f);
        hw w = lay ? hw_make(K, N, LL_DTYPE_F32, 1.0f / (float)sqrt((double)K), 0.0f)
                   : hw_make(N, K, LL_DTYPE_F32, 1.0f / (float)sqrt((double)K), 0.0f);
        hw b = hw_make(1, N, LL_DTYPE_F32, 0.5f, 0.0f);
        wpair ww = w_pair(&w), wb = w_pair(&b);
        pair px = in_pair(x, (size_t)(T * K) * 4), py = out_pair((size_t)(T * N) * 4, POISON_F);
        cmpres r = {0, 0};
        if (!g_case_bad) {
            ll_wlayout L = lay ? LL_WLAYOUT_IN_OUT : LL_WLAYOUT_OUT_IN;
            CK(&g_cpu, g_cpu.ops->matmul(&g_cpu, py.c, px.c, &ww.c, L, &wb.c, T, N, K));
            CK(&g_gpu, g_gpu.ops->matmul(&g_gpu, py.g, px.g, &ww.g, L, &wb.g, T, N, K));
            void *hc, *hg;
            if (fetch(py, &hc, &hg)) cmp_f32("y", hg, hc, T * N, t, &r);
            free(hc);
            free(hg);
        }
        case_end(&r, t);
        pair_free(&px);
        pair_free(&py);
        wpair_free(&ww);
        wpair_free(&wb);
        hw_free(&w);
        hw_free(&b);
        free(x);
    }
}

static void test_rope(void) {
    /* T, heads, head_dim, rot_dim, fused row (q inside [q|k|v]), llama3 */
    static const int cfg[][6] = {{1, 1, 2, 2, 0, 0},   {7, 4, 64, 64, 0, 0},  {13, 3, 64, 16, 1, 0},
                                 {5, 2, 24, 6, 1, 0},  {9, 8, 128, 128, 0, 1}, {31, 2, 80, 20, 1, 1}};
    for (int s = 0; s < 6; s++) {
        int64_t T = cfg[s][0];
        int nh = cfg[s][1], hd = cfg[s][2], rot = cfg[s][3], fused = cfg[s][4], l3 = cfg[s][5];
        if (!case_begin("rope T=%lld heads=%d head_dim=%d rot_dim=%d%s%s", (long long)T, nh, hd, rot,
                        fused ? " fused" : "", l3 ? " llama3" : ""))
            continue;
        tol t = get_tol("rope", LL_DTYPE_F32);
        int64_t ld = fused ? 3 * nh * hd : nh * hd;
        float *x = fvec(T * ld, 1.0f, 0.0f);
        int32_t *pos = malloc((size_t)T * 4);
        for (int64_t i = 0; i < T; i++) pos[i] = l3 ? (int32_t)rnd_int(20000) : (int32_t)rnd_int(2048);
        ll_rope_params p = {.rot_dim = rot, .theta = l3 ? 500000.0 : 10000.0, .llama3 = l3, .factor = 8.0,
                            .low_freq_factor = 1.0, .high_freq_factor = 4.0, .original_max_pos = 8192.0};
        pair px = in_pair(x, (size_t)(T * ld) * 4), pp = in_pair(pos, (size_t)T * 4);
        cmpres r = {0, 0};
        if (!g_case_bad) {
            CK(&g_cpu, g_cpu.ops->rope(&g_cpu, px.c, T, ld, nh, hd, &p, pp.c));
            CK(&g_gpu, g_gpu.ops->rope(&g_gpu, px.g, T, ld, nh, hd, &p, pp.g));
            void *hc, *hg;
            if (fetch(px, &hc, &hg)) cmp_f32("x", hg, hc, T * ld, t, &r);
            free(hc);
            free(hg);
        }
        case_end(&r, t);
        pair_free(&px);
        pair_free(&pp);
        free(x);
        free(pos);
    }
}

static void test_attention(void) {
    /* heads, kv heads, head_dim, layout (0 separate, 1 fused [q|k|v], 2 NeoX interleaved), sliding window
     * (0 none; windows below, across and beyond the 16-query blocks and 32-key tiles); prompt lengths,
     * -1 ending the list (empty prompts included; odd head_dim takes the unpadded K tile) */
    static const int cfg[][5] = {{4, 4, 8, 0, 0},   {8, 2, 24, 1, 0}, {6, 1, 64, 0, 0}, {4, 2, 128, 1, 0},
                                 {4, 4, 64, 2, 0},  {2, 1, 256, 0, 0}, {3, 3, 80, 2, 0}, {4, 2, 64, 0, 5},
                                 {8, 2, 32, 1, 40}, {2, 2, 16, 2, 1},  {4, 1, 128, 0, 33}, {4, 2, 33, 1, 0},
                                 {2, 1, 1, 0, 0}};
    static const int lens[][5] = {{1, -1},         {5, 1, 40, -1},    {17, 33, -1},     {70, -1},
                                  {3, 16, 2, 47, -1}, {37, -1},       {9, 9, -1},       {3, 30, 1, 9, -1},
                                  {130, -1},       {7, 20, -1},       {100, 4, -1},     {15, 0, 1, 30, -1},
                                  {0, 1, 1, 40, -1}};
    for (int s = 0; s < (int)(sizeof cfg / sizeof cfg[0]); s++) {
        int nh = cfg[s][0], nkv = cfg[s][1], hd = cfg[s][2], lay = cfg[s][3], win = cfg[s][4];
        int64_t off[6] = {0};
        int np = 0;
        for (int j = 0; j < 5 && lens[s][j] >= 0; j++, np++) off[np + 1] = off[np] + lens[s][j];
        int64_t T = off[np];
        if (!case_begin("attention heads=%d kv=%d head_dim=%d %s prompts=%d T=%lld window=%d", nh, nkv, hd,
                        lay == 0 ? "separate" : lay == 1 ? "fused" : "neox", np, (long long)T, win))
            continue;
        tol t = get_tol("attention", LL_DTYPE_F32);
        ll_attn_layout L = {
            .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd, .scale = 1.0f / sqrtf((float)hd), .window = win};
        int64_t qoff = 0, koff, voff, total;
        if (lay == 0) { /* one buffer, three regions */
            L.ldq = (int64_t)nh * hd;
            L.ldk = L.ldv = (int64_t)nkv * hd;
            L.hsq = L.hsk = L.hsv = hd;
            koff = T * L.ldq;
            voff = koff + T * L.ldk;
            total = voff + T * L.ldv;
        } else if (lay == 1) {
            L.ldq = L.ldk = L.ldv = (int64_t)(nh + 2 * nkv) * hd;
            L.hsq = L.hsk = L.hsv = hd;
            koff = (int64_t)nh * hd;
            voff = (int64_t)(nh + nkv) * hd;
            total = T * L.ldq;
        } else {
            L.ldq = L.ldk = L.ldv = 3LL * nh * hd;
            L.hsq = L.hsk = L.hsv = 3LL * hd;
            koff = hd;
            voff = 2LL * hd;
            total = T * L.ldq;
        }
        float *qkv = fvec(total, 1.5f, 0.0f);
        pair pq = in_pair(qkv, (size_t)total * 4), po = in_pair(off, (size_t)(np + 1) * 8);
        pair py = out_pair((size_t)(T * nh * hd) * 4, POISON_F);
        cmpres r = {0, 0};
        if (!g_case_bad) {
            float *qc = pq.c, *qg = pq.g;
            CK(&g_cpu, g_cpu.ops->attention(&g_cpu, py.c, qc + qoff, qc + koff, qc + voff, &L, po.c, np, T));
            CK(&g_gpu, g_gpu.ops->attention(&g_gpu, py.g, qg + qoff, qg + koff, qg + voff, &L, po.g, np, T));
            void *hc, *hg;
            if (fetch(py, &hc, &hg)) cmp_f32("out", hg, hc, T * nh * hd, t, &r);
            free(hc);
            free(hg);
        }
        case_end(&r, t);
        pair_free(&pq);
        pair_free(&po);
        pair_free(&py);
        free(qkv);
    }
}

static void test_elementwise(void) {
    static const int64_t ns[] = {1, 1000, 65537, 5000011}; /* the last one exceeds one grid-stride pass */
    for (int s = 0; s < (int)(sizeof ns / sizeof ns[0]); s++)
        for (int kind = 0; kind < 5; kind++) { /* gelu_tanh, gelu_erf, swiglu, swiglu aliased, add */
            int64_t n = ns[s];
            static const char *names[] = {"act gelu_tanh", "act gelu_erf", "swiglu", "swiglu y=gate", "add"};
            if (!case_begin("%s n=%lld", names[kind], (long long)n)) continue;
            tol t = get_tol(kind == 4 ? "add" : "act", LL_DTYPE_F32);
            float *a = fvec(n, 3.0f, 0.0f), *b = fvec(n, 1.0f, 0.0f);
            pair pa = in_pair(a, (size_t)n * 4), pb = in_pair(b, (size_t)n * 4);
            pair py = kind == 2 ? out_pair((size_t)n * 4, POISON_F) : pa;
            cmpres r = {0, 0};
            if (!g_case_bad) {
                if (kind < 2) {
                    CK(&g_cpu, g_cpu.ops->act(&g_cpu, pa.c, n, kind == 0 ? LL_ACT_GELU_TANH : LL_ACT_GELU_ERF));
                    CK(&g_gpu, g_gpu.ops->act(&g_gpu, pa.g, n, kind == 0 ? LL_ACT_GELU_TANH : LL_ACT_GELU_ERF));
                } else if (kind < 4) {
                    CK(&g_cpu, g_cpu.ops->swiglu(&g_cpu, py.c, pa.c, pb.c, n));
                    CK(&g_gpu, g_gpu.ops->swiglu(&g_gpu, py.g, pa.g, pb.g, n));
                } else {
                    CK(&g_cpu, g_cpu.ops->add(&g_cpu, pa.c, pb.c, n));
                    CK(&g_gpu, g_gpu.ops->add(&g_gpu, pa.g, pb.g, n));
                }
                void *hc, *hg;
                if (fetch(py, &hc, &hg)) cmp_f32("y", hg, hc, n, t, &r);
                free(hc);
                free(hg);
            }
            case_end(&r, t);
            if (kind == 2) pair_free(&py);
            pair_free(&pa);
            pair_free(&pb);
            free(a);
            free(b);
        }
}
/* ---- main ------------------------------------------------------------------------------------------------ */

/* Closes g_gpu and opens it again with allow_tf32 = tf32 (the other options as given). 0 on failure. */
static int reopen_gpu(ll_backend_init_fn init, const ll_backend_opts *opts, int tf32) {
    g_gpu.ops->close(&g_gpu);
    ll_backend_opts o = *opts;
    o.allow_tf32 = tf32;
    if (init(&g_gpu, &o) == LL_OK) return 1;
    printf("FAIL  test_backend_ops: cannot reopen the CUDA backend with allow_tf32=%d: %s\n", tf32, g_gpu.err.msg);
    g_fail++;
    return 0;
}

/* No usable CUDA backend: a skip (exit 0) only where there is no GPU; with one, a failure (exit 1). */
static int no_backend(const char *reason) {
    char why[512];
    if (ll_test_gpu_present(why, sizeof why)) {
        printf("FAIL  test_backend_ops: a GPU is present (%s) but the CUDA module cannot use it: %s\n", why, reason);
        return 1;
    }
    printf("SKIP  test_backend_ops: no GPU here (%s): %s\n", why, reason);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: test_backend_ops MODULE.so [FILTER]\n");
        return 2;
    }
    g_filter = argc == 3 ? argv[2] : NULL;
    setenv("LL_CUDA_SYNC", "1", 0);
    ll_backend_opts opts = {.threads = 0, .device = 0, .allow_tf32 = 0};
    const char *dev = getenv("LL_TEST_DEVICE");
    if (dev) opts.device = atoi(dev);

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        char reason[1024];
        snprintf(reason, sizeof reason, "cannot load %s: %s", argv[1], dlerror());
        return no_backend(reason);
    }
    ll_backend_init_fn init = (ll_backend_init_fn)dlsym(h, LL_CUDA_BACKEND_SYMBOL);
    if (!init) {
        printf("FAIL  test_backend_ops: %s has no symbol %s\n", argv[1], LL_CUDA_BACKEND_SYMBOL);
        return 1;
    }
    if (init(&g_gpu, &opts) != LL_OK) return no_backend(g_gpu.err.msg);
    if (ll_backend_cpu_init(&g_cpu, &opts) != LL_OK) {
        printf("FAIL  test_backend_ops: cannot open the CPU backend: %s\n", g_cpu.err.msg);
        return 1;
    }
    printf("test_backend_ops: CUDA (%s) against CPU; bounds are per op and dtype (TOLS in tests/gpu/ops_harness.c)\n", argv[1]);
    test_embed();
    test_norms();
    test_matmul();
    test_rope();
    test_attention();
    test_elementwise();
    test_lens();
    test_lens_slices();
    /* allow_tf32: TF32 in the forward matmuls, never in the lens (test_backend_lens.c) */
    int open = reopen_gpu(init, &opts, 1);
    if (open) {
        test_matmul_tf32();
        test_lens_tf32();
        open = reopen_gpu(init, &opts, 0);
    }
    printf("test_backend_ops: %d passed, %d failed\n", g_pass, g_fail);
    if (open) g_gpu.ops->close(&g_gpu);
    g_cpu.ops->close(&g_cpu);
    return g_fail ? 1 : 0;
}
