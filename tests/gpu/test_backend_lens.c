/* test_backend_lens.c: the lens ops of test_backend_ops (tests/gpu/test_backend_ops.c has the forward ops
 * and main; ops_harness.h the shared machinery).
 *
 * lens: lens_target_logits, lens_pass, lens_expect, lens_kl and lens_probs on both backends, each dtype, with
 *   tiles forced small (LL_CUDA_LENS_TILE_BYTES) so that row blocks and vocabulary tiles are crossed; top-k
 *   ids and ranks checked against a float64 reference (near-ties accepted), the final layer's KL with
 *   itself ~0 within a bound that scales with its largest logit.
 * lens slice: lens_pass over a vocabulary slice (v0, v_total).
 * lens tf32: the lens with the CUDA backend opened with allow_tf32, at F32's bounds (the lens GEMMs stay
 *   fp32). */
#include "ops_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lens_cfg {
    int P, T, d, V, k, bias;
    long tile_bytes; /* LL_CUDA_LENS_TILE_BYTES for the case; 0: the default */
    float wscale;    /* W_U entries ~ wscale / sqrt(d) (logits' spread); 0: 2.5 */
} lens_cfg;

/* Number of ids v != skip with |z[v] - ref| <= delta: how far a count may move under logit errors. */
static int64_t near_count(const double *z, int64_t V, double ref, double delta, int64_t skip) {
    int64_t n = 0;
    for (int64_t v = 0; v < V; v++)
        if (v != skip && fabs(z[v] - ref) <= delta) n++;
    return n;
}

static int check_topk(const int32_t *ig, const float *pg, const int32_t *ic, const float *pc, const double *zref,
                      int64_t R, int64_t V, int k, double delta, tol ts, cmpres *r) {
    for (int64_t row = 0; row < R; row++)
        for (int i = 0; i < k; i++) {
            int32_t a = ig[row * k + i], b = ic[row * k + i];
            if (a == b) continue;
            if (a < 0 || a >= V || b < 0 || b >= V ||
                fabs(zref[row * V + a] - zref[row * V + b]) > delta) {
                if (!g_case_bad)
                    printf("FAIL  %s: topk_ids: first divergence at row %lld, rank %d: cuda id %d, cpu id %d (float64 "
                           "logits %.6f vs %.6f, not a near-tie within %.3g)\n",
                           g_case, (long long)row, i, a, b, a >= 0 && a < V ? zref[row * V + a] : NAN,
                           b >= 0 && b < V ? zref[row * V + b] : NAN, delta);
                g_case_bad = 1;
                return 0;
            }
        }
    return cmp_f32("topk_probs", pg, pc, R * k, ts, r);
}

/* tag: "" or " tf32" (g_gpu opened with allow_tf32: the lens must still be fp32, at F32's bounds) */
static void lens_case(const lens_cfg *L, ll_dtype dt, const char *tag) {
    const int64_t P = L->P, T = L->T, R = P * T, d = L->d, V = L->V;
    const int k = L->k;
    const float wscale = L->wscale > 0 ? L->wscale : 2.5f;
    if (!case_begin("lens%s %s P=%lld T=%lld d=%lld V=%lld k=%d%s tile=%ld wscale=%g", tag, ll_dtype_name(dt), (long long)P,
                    (long long)T, (long long)d, (long long)V, k, L->bias ? " +bias" : "", L->tile_bytes,
                    (double)wscale))
        return;
    char tb[32];
    if (L->tile_bytes) {
        snprintf(tb, sizeof tb, "%ld", L->tile_bytes);
        setenv("LL_CUDA_LENS_TILE_BYTES", tb, 1);
    } else {
        unsetenv("LL_CUDA_LENS_TILE_BYTES");
    }
    tol tl = get_tol("lens_logit", dt), ts = get_tol("lens_stat", dt), tu = get_tol("lens_u", dt);

    /* rows: normal; the point before the final one is the final one plus 1e-3 noise (a nearly equal layer) */
    float *x = fvec(R * d, 1.0f, 0.0f);
    if (P >= 2)
        for (int64_t i = 0; i < T * d; i++) x[(P - 2) * T * d + i] = x[(P - 1) * T * d + i] + rnd_normal(1e-3f);
    hw w = hw_make(V, d, dt, wscale / (float)sqrt((double)d), 0.0f), b = hw_make(1, V, dt, 0.5f, 0.0f);
    int32_t *tgt = malloc((size_t)R * 4);
    for (int64_t t = 0; t < T; t++) {
        int32_t id = rnd_unif() < 0.2 ? -1 : (int32_t)rnd_int(V);
        for (int64_t p = 0; p < P; p++) tgt[p * T + t] = id;
    }
    /* float64 reference logits of the fp32 rows */
    double *zref = malloc((size_t)(R * V) * sizeof *zref);
    double ss = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t v = 0; v < V; v++) {
            double acc = L->bias ? b.val[v] : 0.0;
            for (int64_t i = 0; i < d; i++) acc += (double)x[r * d + i] * w.val[v * d + i];
            zref[r * V + v] = acc;
            ss += acc * acc;
        }
    const double zrms = sqrt(ss / (double)(R * V));
    const double delta = tl.atol * zrms; /* largest logit difference the dtype's bound allows */
    /* the lens_stat and lens_kl bounds are for logits of RMS ~2.5 (TOLS); rounding errors grow with them */
    const double lscale = zrms > 2.5 ? zrms / 2.5 : 1.0;
    ts.atol *= lscale;

    wpair ww = w_pair(&w), wb = w_pair(&b);
    const ll_wt *bc = L->bias ? &wb.c : NULL, *bg = L->bias ? &wb.g : NULL;
    pair px = in_pair(x, (size_t)(R * d) * 4), pt = in_pair(tgt, (size_t)R * 4);
    pair pxf = in_pair(x + (P - 1) * T * d, (size_t)(T * d) * 4);
    pair pzt = out_pair((size_t)R * 4, POISON_F), plse = out_pair((size_t)R * 4, POISON_F);
    pair pent = out_pair((size_t)R * 4, POISON_F), prank = out_pair((size_t)R * 4, POISON_I);
    pair pids = out_pair((size_t)(R * k) * 4, POISON_I), pprb = out_pair((size_t)(R * k) * 4, POISON_F);
    pair pu = out_pair((size_t)(T * d) * 4, POISON_F), ppb = out_pair((size_t)T * 4, POISON_F);
    pair pkl = out_pair((size_t)R * 4, POISON_F);
    const int64_t nsel = 17;
    int32_t vsel[17];
    for (int j = 0; j < nsel; j++) vsel[j] = (int32_t)rnd_int(V);
    vsel[nsel - 1] = vsel[0]; /* a repeated id */
    pair psel = in_pair(vsel, sizeof vsel);
    const int full = V <= 5003;
    pair pfull = full ? out_pair((size_t)(R * V) * 2, POISON_F) : (pair){0};
    pair psub = out_pair((size_t)(R * nsel) * 2, POISON_F);
    cmpres res = {0, 0};
    void *hc = NULL, *hg = NULL, *hc2 = NULL, *hg2 = NULL;

    if (g_case_bad) goto done;
    /* target logits */
    CK(&g_cpu, g_cpu.ops->lens_target_logits(&g_cpu, pzt.c, px.c, &ww.c, bc, pt.c, R, d));
    CK(&g_gpu, g_gpu.ops->lens_target_logits(&g_gpu, pzt.g, px.g, &ww.g, bg, pt.g, R, d));
    if (g_case_bad || !fetch(pzt, &hc, &hg) || !cmp_f32("lens_target_logits", hg, hc, R, tl, &res)) goto done;
    free(hc);
    free(hg);
    hc = hg = NULL;

    /* the pass */
    ll_lens_pass_args ac = {.x = px.c, .wu = &ww.c, .bu = bc, .zt = pzt.c, .target = pt.c, .R = R, .d = d, .V = V,
                            .k = k, .lse = plse.c, .entropy = pent.c, .topk_ids = pids.c, .topk_probs = pprb.c,
                            .rank = prank.c};
    ll_lens_pass_args ag = {.x = px.g, .wu = &ww.g, .bu = bg, .zt = pzt.g, .target = pt.g, .R = R, .d = d, .V = V,
                            .k = k, .lse = plse.g, .entropy = pent.g, .topk_ids = pids.g, .topk_probs = pprb.g,
                            .rank = prank.g};
    CK(&g_cpu, g_cpu.ops->lens_pass(&g_cpu, &ac));
    CK(&g_gpu, g_gpu.ops->lens_pass(&g_gpu, &ag));
    if (g_case_bad) goto done;
    if (!fetch(plse, &hc, &hg) || !cmp_f32("lse", hg, hc, R, ts, &res)) goto done;
    free(hc);
    free(hg);
    if (!fetch(pent, &hc, &hg) || !cmp_f32("entropy", hg, hc, R, ts, &res)) goto done;
    free(hc);
    free(hg);
    hc = hg = NULL;
    if (!fetch(pids, &hc, &hg) || !fetch(pprb, &hc2, &hg2)) goto done;
    if (!check_topk(hg, hg2, hc, hc2, zref, R, V, k, 2 * delta, ts, &res)) goto done;
    free(hc);
    free(hg);
    free(hc2);
    free(hg2);
    hc = hg = hc2 = hg2 = NULL;
    if (!fetch(prank, &hc, &hg)) goto done;
    {
        const int32_t *rc = hc, *rg = hg;
        for (int64_t r = 0; r < R; r++) {
            int64_t slack = tgt[r] < 0 ? 0 : near_count(zref + r * V, V, zref[r * V + tgt[r]], delta, tgt[r]);
            if ((tgt[r] < 0 && (rc[r] != -1 || rg[r] != -1)) || llabs((long long)rg[r] - rc[r]) > slack) {
                printf("FAIL  %s: rank: first divergence at row %lld: cuda %d, cpu %d (target %d; %lld logits within "
                       "%.3g of the target's)\n",
                       g_case, (long long)r, rg[r], rc[r], tgt[r], (long long)slack, delta);
                g_case_bad = 1;
                goto done;
            }
        }
    }
    free(hc);
    free(hg);
    hc = hg = NULL;

    /* KL terms: each backend from its own final rows' lse and entropy (the last T rows) */
    {
        const float *lfc = (const float *)plse.c + (P - 1) * T, *lfg = (const float *)plse.g + (P - 1) * T;
        const float *hfc = (const float *)pent.c + (P - 1) * T, *hfg = (const float *)pent.g + (P - 1) * T;
        CK(&g_cpu, g_cpu.ops->lens_expect(&g_cpu, pu.c, ppb.c, pxf.c, &ww.c, bc, lfc, T, d, V));
        CK(&g_gpu, g_gpu.ops->lens_expect(&g_gpu, pu.g, ppb.g, pxf.g, &ww.g, bg, lfg, T, d, V));
        if (g_case_bad || !fetch(pu, &hc, &hg) || !cmp_f32("lens_expect u", hg, hc, T * d, tu, &res)) goto done;
        free(hc);
        free(hg);
        hc = hg = NULL;
        if (L->bias) {
            if (!fetch(ppb, &hc, &hg) || !cmp_f32("lens_expect pb", hg, hc, T, tu, &res)) goto done;
            free(hc);
            free(hg);
            hc = hg = NULL;
        }
        CK(&g_cpu, g_cpu.ops->lens_kl(&g_cpu, pkl.c, px.c, &ww.c, pu.c, ppb.c, hfc, plse.c, R, T, d));
        CK(&g_gpu, g_gpu.ops->lens_kl(&g_gpu, pkl.g, px.g, &ww.g, pu.g, ppb.g, hfg, plse.g, R, T, d));
        if (g_case_bad || !fetch(pkl, &hc, &hg)) goto done;
        const float *kc = hc, *kg = hg;
        /* the final layer against itself: 0 up to fp32 arithmetic on each backend. The bound scales with the
         * largest final logit (lse, H and x . u + pb are of its size; fp32 rounds each to ~2^-24 of it):
         * a KL term computed from a distribution other than the pass's (TF32 logits in the pass but fp32
         * in lens_kl; u weighted by p_hi + p_lo but normalized by the sum of p) leaves a bias of ~2^-18
         * to 2^-11 of |z| instead (TOLS "lens_kl_final"). */
        {
            const tol tf = get_tol("lens_kl_final", dt);
            double zmax = 0;
            for (int64_t i = (P - 1) * T * V; i < R * V; i++) zmax = fmax(zmax, fabs(zref[i]));
            const double bound = fmin(2e-4, tf.atol * fmax(zmax, 1.0));
            for (int64_t t = 0; t < T; t++) {
                float a = kg[(P - 1) * T + t], c = kc[(P - 1) * T + t];
                if (!(fabsf(a) <= bound) || !(fabsf(c) <= bound)) {
                    printf("FAIL  %s: KL of the final rows with themselves at token %lld: cuda %.3g, cpu %.3g (bound "
                           "%.3g = %.3g x the largest final logit %.3g, at most 2e-4: the three terms must cancel; %s)\n",
                           g_case, (long long)t, a, c, bound, tf.atol, zmax, tf.why);
                    g_case_bad = 1;
                    goto done;
                }
            }
        }
        tol tk = get_tol("lens_kl", dt);
        tk.atol *= lscale;
        if (!cmp_f32("lens_kl", kg, kc, R, tk, &res)) goto done;
        free(hc);
        free(hg);
        hc = hg = NULL;
    }

    /* probability rows, each backend with its own lse */
    for (int sel = 0; sel < 2; sel++) {
        if (!sel && !full) continue;
        pair po = sel ? psub : pfull;
        int64_t nv = sel ? nsel : V;
        CK(&g_cpu, g_cpu.ops->lens_probs(&g_cpu, po.c, px.c, &ww.c, bc, plse.c, R, d, V, sel ? psel.c : NULL, nv));
        CK(&g_gpu, g_gpu.ops->lens_probs(&g_gpu, po.g, px.g, &ww.g, bg, plse.g, R, d, V, sel ? psel.g : NULL, nv));
        if (g_case_bad || !fetch(po, &hc, &hg)) goto done;
        float *fc = malloc((size_t)(R * nv) * 4), *fg = malloc((size_t)(R * nv) * 4);
        for (int64_t i = 0; i < R * nv; i++) {
            fc[i] = ll_f16_to_f32(((uint16_t *)hc)[i]);
            fg[i] = ll_f16_to_f32(((uint16_t *)hg)[i]);
        }
        tol tp = ts;
        tp.rtol = ts.rtol + 1e-3; /* plus the float16 rounding of the output */
        int ok = cmp_f32(sel ? "lens_probs vsel" : "lens_probs all", fg, fc, R * nv, tp, &res);
        free(fc);
        free(fg);
        free(hc);
        free(hg);
        hc = hg = NULL;
        if (!ok) goto done;
    }

done:
    case_end(&res, ts);
    free(hc);
    free(hg);
    free(hc2);
    free(hg2);
    pair *all[] = {&px, &pt, &pxf, &pzt, &plse, &pent, &prank, &pids, &pprb, &pu, &ppb, &pkl, &psel, &pfull, &psub};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pair_free(all[i]);
    wpair_free(&ww);
    wpair_free(&wb);
    hw_free(&w);
    hw_free(&b);
    free(x);
    free(tgt);
    free(zref);
    unsetenv("LL_CUDA_LENS_TILE_BYTES");
}

/* Tilings (include/ll_cuda_tiling.h) are given for lens_pass (4 bytes per logit). */
static const lens_cfg LENS_CFGS[] = {
    {1, 1, 8, 7, 1, 0, 0, 0},          /* T=1, one tiny tile */
    {3, 13, 67, 1000, 10, 1, 8000, 0}, /* 20 row blocks of 2 x tiles of 896 and 104 columns */
    {4, 16, 256, 5003, 64, 1, 0, 0},   /* default budget: a full 4096-column tile and a ragged one */
    {1, 5, 33, 300, 300, 0, 4096, 0},  /* k == V: 2 row blocks of 3 x tiles of 256 and 44 */
    {2, 40, 96, 4099, 5, 0, 65536, 0}, /* 5 row blocks of 16 x 5 tiles of 1024 (the narrowest rows are blocked for) */
    {2, 24, 64, 9001, 40, 1, 32768, 0}, /* k > 32 (winners merged in memory): 6 row blocks of 8 x 9 tiles */
    /* peaked rows over a GPT-2-sized vocabulary: most probabilities below F16's smallest subnormal,
     * whose mass lens_expect must keep (the final layer's KL with itself stays ~0), and logits up to ~50
     * (the split p of lens_expect must be normalized by its own sum) */
    {2, 8, 128, 50257, 10, 1, 0, 12.0f},
    /* 64 final rows, each dominated by one logit of ~60: lens_expect's u must be normalized by the sum of the
     * p it weighs W_U by (a mismatch of the 16-bit split of p shows as ~2^-18 z_top of final-layer KL) */
    {1, 64, 64, 2003, 5, 1, 0, 20.0f},
};

void test_lens(void) {
    for (size_t c = 0; c < sizeof LENS_CFGS / sizeof LENS_CFGS[0]; c++)
        for (int di = 0; di < 3; di++) lens_case(&LENS_CFGS[c], DTS[di], "");
}

/* With allow_tf32 (g_gpu reopened so by the caller): fp32 W_U keeps plain fp32 lens GEMMs, so the F32 bounds
 * hold, and the final layer's KL with itself stays ~0. TF32 logits would move lse by ~1e-3 and leave the
 * final layer a KL of E_p[z_tf32 - z] against lens_kl's fp32 x . u. */
void test_lens_tf32(void) {
    lens_case(&LENS_CFGS[1], LL_DTYPE_F32, " tf32");
    lens_case(&LENS_CFGS[5], LL_DTYPE_F32, " tf32");
    lens_case(&LENS_CFGS[6], LL_DTYPE_F32, " tf32");
}

/* ---- vocabulary slices ------------------------------------------------------------------------------------ */

typedef struct slice_cfg {
    int R, d;
    int vtot, v0, V; /* W_U holds the global ids [v0, v0 + V) of [0, vtot) */
    int k, bias;
    long tile_bytes; /* LL_CUDA_LENS_TILE_BYTES; 0: the default */
} slice_cfg;

/* lens_pass over a slice of the vocabulary (ll_lens_pass_args.v0, v_total), CUDA against CPU and both against
 * a float64 reference: targets inside the slice, below it, above it and at its edges (zt from
 * lens_target_logits over the whole vocabulary, as the rank that owns the target computes it); top-k ids
 * global and inside the slice; ranks = the slice's logits above zt, the target id excluded only when
 * inside. Then a target >= v_total must be rejected (LL_ERR_INPUT) and a slice outside [0, v_total) too
 * (LL_ERR_INTERNAL), by both. */
static void lens_slice_case(const slice_cfg *L, ll_dtype dt) {
    const int64_t R = L->R, d = L->d, vtot = L->vtot, v0 = L->v0, V = L->V;
    const int k = L->k;
    if (!case_begin("lens slice %s R=%lld d=%lld ids [%lld, %lld) of %lld k=%d%s tile=%ld", ll_dtype_name(dt),
                    (long long)R, (long long)d, (long long)v0, (long long)(v0 + V), (long long)vtot, k,
                    L->bias ? " +bias" : "", L->tile_bytes))
        return;
    char tb[32];
    if (L->tile_bytes) {
        snprintf(tb, sizeof tb, "%ld", L->tile_bytes);
        setenv("LL_CUDA_LENS_TILE_BYTES", tb, 1);
    } else {
        unsetenv("LL_CUDA_LENS_TILE_BYTES");
    }
    tol tl = get_tol("lens_logit", dt), ts = get_tol("lens_stat", dt);
    const size_t esz = ll_dtype_size(dt);
    float *x = fvec(R * d, 1.0f, 0.0f);
    hw w = hw_make(vtot, d, dt, 2.5f / (float)sqrt((double)d), 0.0f), b = hw_make(1, vtot, dt, 0.5f, 0.0f);
    /* the slice: views of rows [v0, v0 + V) of the whole unembedding (not freed themselves) */
    hw ws = {(char *)w.bits + (size_t)(v0 * d) * esz, w.val + v0 * d, dt, V, d};
    hw bs = {(char *)b.bits + (size_t)v0 * esz, b.val + v0, dt, 1, V};
    /* targets: none, inside, below, above, and the edge ids v0, v0 + V - 1, v0 - 1, v0 + V, vtot - 1, 0 */
    const int64_t edges[6] = {v0, v0 + V - 1, v0 - 1, v0 + V, vtot - 1, 0};
    int32_t *tgt = malloc((size_t)R * 4);
    for (int64_t r = 0; r < R; r++) {
        int64_t id = -1;
        switch (r % 5) {
        case 0: id = -1; break;
        case 1: id = v0 + rnd_int(V); break;
        case 2: id = v0 > 0 ? rnd_int(v0) : v0 + rnd_int(V); break;
        case 3: id = v0 + V < vtot ? v0 + V + rnd_int(vtot - v0 - V) : v0 + rnd_int(V); break;
        default: id = edges[(r / 5) % 6]; break;
        }
        tgt[r] = (int32_t)(id >= 0 && id < vtot ? id : v0);
    }
    /* float64 reference logits over the whole vocabulary */
    double *zref = malloc((size_t)(R * vtot) * sizeof *zref);
    double ss = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t v = 0; v < vtot; v++) {
            double acc = L->bias ? b.val[v] : 0.0;
            for (int64_t i = 0; i < d; i++) acc += (double)x[r * d + i] * w.val[v * d + i];
            zref[r * vtot + v] = acc;
            ss += acc * acc;
        }
    const double zrms = sqrt(ss / (double)(R * vtot)), delta = tl.atol * zrms;
    ts.atol *= zrms > 2.5 ? zrms / 2.5 : 1.0;

    wpair wall = w_pair(&w), ball = w_pair(&b), wsl = w_pair(&ws), bsl = w_pair(&bs);
    pair px = in_pair(x, (size_t)(R * d) * 4), pt = in_pair(tgt, (size_t)R * 4);
    pair pzt = out_pair((size_t)R * 4, POISON_F), plse = out_pair((size_t)R * 4, POISON_F);
    pair pent = out_pair((size_t)R * 4, POISON_F), prank = out_pair((size_t)R * 4, POISON_I);
    pair pids = out_pair((size_t)(R * k) * 4, POISON_I), pprb = out_pair((size_t)(R * k) * 4, POISON_F);
    int32_t *bad = malloc((size_t)R * 4);
    memcpy(bad, tgt, (size_t)R * 4);
    bad[R - 1] = (int32_t)vtot; /* the first id past the vocabulary */
    pair pbad = in_pair(bad, (size_t)R * 4);
    cmpres res = {0, 0};
    void *hc = NULL, *hg = NULL, *hc2 = NULL, *hg2 = NULL;
    if (g_case_bad) goto done;

    /* target logits over the whole vocabulary */
    CK(&g_cpu, g_cpu.ops->lens_target_logits(&g_cpu, pzt.c, px.c, &wall.c, L->bias ? &ball.c : NULL, pt.c, R, d));
    CK(&g_gpu, g_gpu.ops->lens_target_logits(&g_gpu, pzt.g, px.g, &wall.g, L->bias ? &ball.g : NULL, pt.g, R, d));
    if (g_case_bad || !fetch(pzt, &hc, &hg) || !cmp_f32("lens_target_logits", hg, hc, R, tl, &res)) goto done;
    free(hc);
    free(hg);
    hc = hg = NULL;

    ll_lens_pass_args ac = {.x = px.c, .wu = &wsl.c, .bu = L->bias ? &bsl.c : NULL, .zt = pzt.c, .target = pt.c,
                            .R = R, .d = d, .V = V, .k = k, .v0 = v0, .v_total = vtot, .lse = plse.c,
                            .entropy = pent.c, .topk_ids = pids.c, .topk_probs = pprb.c, .rank = prank.c};
    ll_lens_pass_args ag = {.x = px.g, .wu = &wsl.g, .bu = L->bias ? &bsl.g : NULL, .zt = pzt.g, .target = pt.g,
                            .R = R, .d = d, .V = V, .k = k, .v0 = v0, .v_total = vtot, .lse = plse.g,
                            .entropy = pent.g, .topk_ids = pids.g, .topk_probs = pprb.g, .rank = prank.g};
    CK(&g_cpu, g_cpu.ops->lens_pass(&g_cpu, &ac));
    CK(&g_gpu, g_gpu.ops->lens_pass(&g_gpu, &ag));
    if (g_case_bad) goto done;
    if (!fetch(plse, &hc, &hg) || !cmp_f32("lse", hg, hc, R, ts, &res)) goto done;
    free(hc);
    free(hg);
    if (!fetch(pent, &hc, &hg) || !cmp_f32("entropy", hg, hc, R, ts, &res)) goto done;
    free(hc);
    free(hg);
    hc = hg = NULL;
    if (!fetch(pids, &hc, &hg) || !fetch(pprb, &hc2, &hg2)) goto done;
    for (int side = 0; side < 2; side++) { /* global ids, inside the slice */
        const int32_t *ids = side ? hc : hg;
        for (int64_t i = 0; i < R * k; i++)
            if (ids[i] < v0 || ids[i] >= v0 + V) {
                printf("FAIL  %s: topk_ids[%lld] = %d on %s: not a global id of the slice [%lld, %lld)\n", g_case,
                       (long long)i, ids[i], side ? "cpu" : "cuda", (long long)v0, (long long)(v0 + V));
                g_case_bad = 1;
                goto done;
            }
    }
    if (!check_topk(hg, hg2, hc, hc2, zref, R, vtot, k, 2 * delta, ts, &res)) goto done;
    free(hc);
    free(hg);
    free(hc2);
    free(hg2);
    hc = hg = hc2 = hg2 = NULL;
    if (!fetch(prank, &hc, &hg)) goto done;
    for (int64_t r = 0; r < R; r++) {
        const int32_t rk[2] = {((const int32_t *)hg)[r], ((const int32_t *)hc)[r]};
        int64_t want = -1, slack = 0;
        if (tgt[r] >= 0) { /* the reference count: logits of the slice above the target's, the target excluded */
            const double *zr = zref + r * vtot, zt = zr[tgt[r]];
            want = 0;
            for (int64_t v = v0; v < v0 + V; v++)
                if (v != tgt[r] && zr[v] > zt) want++;
            for (int64_t v = v0; v < v0 + V; v++)
                if (v != tgt[r] && fabs(zr[v] - zt) <= delta) slack++;
        }
        for (int side = 0; side < 2; side++)
            if (llabs((long long)rk[side] - want) > slack) {
                printf("FAIL  %s: rank of row %lld on %s: %d, float64 reference %lld (target %d %s the slice; %lld logits "
                       "within %.3g of the target's)\n",
                       g_case, (long long)r, side ? "cpu" : "cuda", rk[side], (long long)want, tgt[r],
                       tgt[r] >= v0 && tgt[r] < v0 + V ? "inside" : "outside", (long long)slack, delta);
                g_case_bad = 1;
                goto done;
            }
    }
    free(hc);
    free(hg);
    hc = hg = NULL;

    /* a target id >= v_total: LL_ERR_INPUT on both; a slice past v_total: LL_ERR_INTERNAL on both */
    {
        ll_lens_pass_args bc = ac, bg = ag;
        bc.target = pbad.c;
        bg.target = pbad.g;
        ll_status sc = g_cpu.ops->lens_pass(&g_cpu, &bc), sg = g_gpu.ops->lens_pass(&g_gpu, &bg);
        if (sc != LL_ERR_INPUT || sg != LL_ERR_INPUT) {
            printf("FAIL  %s: target id %lld (= v_total) in row %lld: cuda returned %d (%s), cpu %d (%s); expected "
                   "LL_ERR_INPUT (%d) from both\n",
                   g_case, (long long)vtot, (long long)(R - 1), (int)sg, sg ? g_gpu.err.msg : "ok", (int)sc,
                   sc ? g_cpu.err.msg : "ok", (int)LL_ERR_INPUT);
            g_case_bad = 1;
            goto done;
        }
        bc = ac;
        bg = ag;
        bc.v_total = bg.v_total = v0 + V - 1;
        sc = g_cpu.ops->lens_pass(&g_cpu, &bc);
        sg = g_gpu.ops->lens_pass(&g_gpu, &bg);
        if (sc != LL_ERR_INTERNAL || sg != LL_ERR_INTERNAL) {
            printf("FAIL  %s: slice [%lld, %lld) with v_total %lld: cuda returned %d, cpu %d; expected LL_ERR_INTERNAL "
                   "(%d) from both\n",
                   g_case, (long long)v0, (long long)(v0 + V), (long long)(v0 + V - 1), (int)sg, (int)sc,
                   (int)LL_ERR_INTERNAL);
            g_case_bad = 1;
            goto done;
        }
    }

done:
    case_end(&res, ts);
    free(hc);
    free(hg);
    free(hc2);
    free(hg2);
    pair *all[] = {&px, &pt, &pzt, &plse, &pent, &prank, &pids, &pprb, &pbad};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pair_free(all[i]);
    wpair_free(&wall);
    wpair_free(&ball);
    wpair_free(&wsl);
    wpair_free(&bsl);
    hw_free(&w);
    hw_free(&b);
    free(x);
    free(tgt);
    free(bad);
    free(zref);
    unsetenv("LL_CUDA_LENS_TILE_BYTES");
}

void test_lens_slices(void) {
    static const slice_cfg cfgs[] = {
        /* 26 row blocks of 2 x tiles of 1024, 1024 and 452 columns, a bias, targets on every side */
        {52, 67, 4099, 300, 2500, 10, 1, 8192},
        /* the second quarter of a GPT-2-sized vocabulary at the default budget; k > 32 */
        {40, 96, 50257, 12565, 12564, 40, 0, 0},
        /* the last id alone: every target but one is outside */
        {10, 33, 700, 699, 1, 1, 1, 0},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
        for (int di = 0; di < 3; di++) lens_slice_case(&cfgs[c], DTS[di]);
}
