/* test_cpu_lens.c: the lens ops of the CPU backend (lens_target_logits, lens_pass, lens_expect, lens_kl,
 * lens_probs) against float64 brute force: logits, full softmax, entropy, top-k, ranks, KL and saved
 * probability rows on random problems with odd shapes (one row; rows spanning several row blocks; a
 * vocabulary that is not a multiple of the lens tile; logits past the exp clamp; k = V; exact ties;
 * masked ids). Outputs are poisoned and guarded as in test_cpu_ops.c (cpu_ops_harness.h). One line per
 * case; exit 1 on any failure. Usage: test_cpu_lens [backend] (default cpu). */
#define HARNESS_NAME "test_cpu_lens"
#include "cpu_ops_harness.h"

/* ---- the lens ----------------------------------------------------------------------------------- */

/* float64 brute force of one row: logits, LSE, entropy, probabilities. */
typedef struct ref_row {
    double *z; /* [V] */
    double lse, ent;
} ref_row;

static void ref_logits(double *z, const float *x, const float *w, const float *b, int64_t V, int64_t d) {
    for (int64_t v = 0; v < V; v++) {
        double s = b ? b[v] : 0.0;
        for (int64_t i = 0; i < d; i++) s += (double)x[i] * w[v * d + i];
        z[v] = s;
    }
}

static void ref_stats(const double *z, int64_t V, double *lse, double *ent) {
    double m = -INFINITY;
    for (int64_t v = 0; v < V; v++)
        if (z[v] > m) m = z[v];
    double s = 0.0;
    for (int64_t v = 0; v < V; v++) s += exp(z[v] - m);
    *lse = m + log(s);
    double h = 0.0;
    for (int64_t v = 0; v < V; v++) {
        if (z[v] == -INFINITY) continue; /* a masked id: p log p -> 0 */
        double lp = z[v] - *lse;
        h -= exp(lp) * lp;
    }
    *ent = h;
}

static const double *sort_z;
static int cmp_desc(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (sort_z[i] > sort_z[j]) return -1;
    if (sort_z[i] < sort_z[j]) return 1;
    return i < j ? -1 : i > j;
}

/* The whole lens of one random problem: target logits, pass, probabilities, and with P > 1 points the
 * KL terms (the last T rows are the final layer; earlier points are perturbations of it). */
typedef struct lens_case {
    const char *name;
    int64_t P, T, d, V;
    int k;
    int bias;
    int64_t tile_rows, tile_cols; /* CPU lens tiles; 0 = defaults */
    double logit_sd;              /* spread of the logits */
    int dup_rows;                 /* copy W_U row 3 into row 5 and 11 (exact ties) */
    int64_t nsel;                 /* lens_probs: selected ids (0 = all) */
    double pert;                  /* noise of point 0 around the final rows; point p gets pert * 10^-p */
    int mask;                     /* bias -inf for ids [64, 128) and every 7th id from 200: masked ids */
} lens_case;

static void test_lens(const lens_case *c) {
    const int64_t R = c->P * c->T, d = c->d, V = c->V, T = c->T;
    const int k = c->k;
    if (is_cpu) {
        ll_status st = ll_cpu_set_lens_tiles(be, c->tile_rows ? c->tile_rows : LL_CPU_LENS_ROWS,
                                             c->tile_cols ? c->tile_cols : LL_CPU_LENS_COLS);
        if (st) die("set_lens_tiles");
    }
    /* x rows of unit scale, W_U scaled so that logits have sd logit_sd */
    float *x = fill_normal(R * d, 1.0);
    float *w = fill_normal(V * d, c->logit_sd / sqrt((double)d));
    float *b = fill_normal(V, 0.5);
    if (c->mask)
        for (int64_t v = 64; v < V; v++)
            if (v < 128 || (v >= 200 && v % 7 == 0)) b[v] = -INFINITY;
    if (c->dup_rows && V > 11) {
        memcpy(w + 5 * d, w + 3 * d, (size_t)d * 4);
        memcpy(w + 11 * d, w + 3 * d, (size_t)d * 4);
        b[5] = b[11] = b[3];
    }
    for (int64_t p = 0; p + 1 < c->P; p++) /* point p: the final rows plus noise */
        for (int64_t i = 0; i < T * d; i++)
            x[p * T * d + i] = x[(c->P - 1) * T * d + i] + (float)(c->pert * pow(10.0, -(double)p) * rng_normal());
    int32_t *target = malloc((size_t)R * 4);
    for (int64_t r = 0; r < R; r++) target[r] = rng_int(5) == 0 ? -1 : (int32_t)rng_int(V);
    target[0] = (int32_t)(V - 1);
    if (R > 1) target[R - 1] = -1;
    if (c->dup_rows && R > 2 && V > 11) target[1] = 5; /* a target with exact ties at ids 3 and 11 */

    /* references */
    double *z = dalloc(R * V), *lse = dalloc(R), *ent = dalloc(R), *ztr = dalloc(R);
    for (int64_t r = 0; r < R; r++) {
        ref_logits(z + r * V, x + r * d, w, c->bias ? b : NULL, V, d);
        ref_stats(z + r * V, V, &lse[r], &ent[r]);
        ztr[r] = target[r] >= 0 ? z[r * V + target[r]] : NAN;
    }
    double zmax = 0.0;
    for (int64_t i = 0; i < R * V; i++)
        if (isfinite(z[i]) && fabs(z[i]) > zmax) zmax = fabs(z[i]);
    logit_floor = zmax > 0.0 ? LOGIT_ULPS * ldexp(1.0, ilogb(zmax) - 23) : 0.0;

    ll_wt *wu = dev_wt(w, V, d), *bu = c->bias ? dev_wt(b, 1, V) : NULL;
    float *xd = dev_in(x, (size_t)(R * d) * 4);
    int32_t *td = dev_in(target, (size_t)R * 4);
    char desc[160];
    snprintf(desc, sizeof desc, "%s: R=%lld d=%lld V=%lld k=%d%s tiles=%lldx%lld max|z|=%.1f", c->name, (long long)R,
             (long long)d, (long long)V, k, c->bias ? " bias" : "",
             (long long)(c->tile_rows ? c->tile_rows : LL_CPU_LENS_ROWS),
             (long long)(c->tile_cols ? c->tile_cols : LL_CPU_LENS_COLS), zmax);
    printf("-- lens %s\n", desc);

    obuf o_zt, o_lse, o_ent, o_ids, o_pr, o_rank;
    float *zt = out_new(&o_zt, R, 4);
    if (be->ops->lens_target_logits(be, zt, xd, wu, bu, td, R, d)) die("lens_target_logits");
    int g = out_fetch(&o_zt);
    check_f32("lens_target_logits", "  NaN where target < 0", o_zt.host, ztr, R, g);

    ll_lens_pass_args a = {.x = xd, .wu = wu, .bu = bu, .zt = zt, .target = td, .R = R, .d = d, .V = V, .k = k};
    a.lse = out_new(&o_lse, R, 4);
    a.entropy = out_new(&o_ent, R, 4);
    a.topk_ids = out_new(&o_ids, R * k, 4);
    a.topk_probs = out_new(&o_pr, R * k, 4);
    a.rank = out_new(&o_rank, R, 4);
    if (be->ops->lens_pass(be, &a)) die("lens_pass");
    int g_lse = out_fetch(&o_lse), g_ent = out_fetch(&o_ent), g_ids = out_fetch(&o_ids), g_pr = out_fetch(&o_pr),
        g_rank = out_fetch(&o_rank);
    check_f32("lens_lse", "  log-sum-exp", o_lse.host, lse, R, g_lse);
    check_f32("lens_entropy", "  entropy", o_ent.host, ent, R, g_ent);

    /* top-k: ids identical up to near-ties, probabilities position by position */
    int32_t *order = malloc((size_t)V * 4);
    double *refp = dalloc(R * k);
    const int32_t *gids = o_ids.host, *grank = o_rank.host;
    int64_t id_bad = 0, rank_bad = 0, first_id = -1, first_rank = -1;
    int32_t first_ref_id = -1;
    for (int64_t r = 0; r < R; r++) {
        const double *zr = z + r * V;
        for (int64_t v = 0; v < V; v++) order[v] = (int32_t)v;
        sort_z = zr;
        qsort(order, (size_t)V, 4, cmp_desc);
        for (int i = 0; i < k; i++) {
            refp[r * k + i] = exp(zr[order[i]] - lse[r]);
            int32_t gi = gids[r * k + i];
            int same = gi == order[i];
            if (!same && gi >= 0 && gi < V && fabs(zr[gi] - zr[order[i]]) <= TIE_EPS) same = 1;
            if (!same) {
                if (first_id < 0) {
                    first_id = r * k + i;
                    first_ref_id = order[i];
                }
                id_bad++;
            }
        }
        /* exact ties must come out smaller id first */
        for (int i = 0; i + 1 < k; i++) {
            int32_t g0 = gids[r * k + i], g1 = gids[r * k + i + 1];
            if (g0 >= 0 && g0 < V && g1 >= 0 && g1 < V && zr[g0] == zr[g1] && g0 > g1) {
                if (first_id < 0) {
                    first_id = r * k + i;
                    first_ref_id = g1;
                }
                id_bad++;
            }
        }
        int64_t lo = 0, hi = 0;
        if (target[r] >= 0) {
            for (int64_t v = 0; v < V; v++) {
                if (v == target[r]) continue;
                lo += zr[v] > ztr[r] + TIE_EPS;
                hi += zr[v] > ztr[r] - TIE_EPS;
            }
        }
        int ok = target[r] < 0 ? grank[r] == -1 : (grank[r] >= lo && grank[r] <= hi);
        if (!ok) {
            if (first_rank < 0) first_rank = r;
            rank_bad++;
        }
    }
    if (id_bad == 0 && g_ids)
        report(1, "lens_topk_ids", "  identical (near-ties within 1e-5 excepted)", "");
    else if (!g_ids)
        report(0, "lens_topk_ids", "  identical", "guard elements overwritten");
    else
        report(0, "lens_topk_ids", "  identical", "%lld bad; first row %lld slot %lld: got id %d ref id %d",
               (long long)id_bad, (long long)(first_id / k), (long long)(first_id % k), (int)gids[first_id],
               (int)first_ref_id);
    check_f32("lens_topk_probs", "  exp(z - lse), descending", o_pr.host, refp, R * k, g_pr);
    if (rank_bad == 0 && g_rank)
        report(1, "lens_rank", "  identical (near-ties within 1e-5 excepted), -1 w/o target", "");
    else if (!g_rank)
        report(0, "lens_rank", "  identical", "guard elements overwritten");
    else
        report(0, "lens_rank", "  identical", "%lld bad; first row %lld: got %d target %d", (long long)rank_bad,
               (long long)first_rank, (int)grank[first_rank], (int)target[first_rank]);

    /* saved probabilities: all ids for every row, or a selection with repeats and the last id */
    int64_t nv = c->nsel ? c->nsel : V;
    int32_t *vsel = NULL;
    if (c->nsel) {
        vsel = malloc((size_t)nv * 4);
        for (int64_t j = 0; j < nv; j++) vsel[j] = (int32_t)rng_int(V);
        vsel[0] = (int32_t)(V - 1);
        if (nv > 2) vsel[2] = vsel[1];
    }
    obuf o_probs;
    uint16_t *pd = out_new(&o_probs, R * nv, 2);
    if (be->ops->lens_probs(be, pd, xd, wu, bu, a.lse, R, d, V, vsel ? dev_in(vsel, (size_t)nv * 4) : NULL, nv))
        die("lens_probs");
    int g_probs = out_fetch(&o_probs);
    float *pf = malloc((size_t)(R * nv) * 4);
    double *pref = dalloc(R * nv);
    const uint16_t *ph = o_probs.host;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < nv; j++) {
            pf[r * nv + j] = ll_f16_to_f32(ph[r * nv + j]);
            pref[r * nv + j] = exp(z[r * V + (vsel ? vsel[j] : j)] - lse[r]);
        }
    check_f32("lens_probs", nv == V ? "  float16, all ids" : "  float16, selected ids", pf, pref, R * nv, g_probs);

    if (c->P > 1) { /* KL(p_final || p_point) */
        const int64_t rf = (c->P - 1) * T; /* first final row */
        obuf o_u, o_pb, o_kl;
        float *u = out_new(&o_u, T * d, 4), *pb = out_new(&o_pb, T, 4);
        if (be->ops->lens_expect(be, u, pb, xd + rf * d, wu, bu, a.lse + rf, T, d, V)) die("lens_expect");
        int g_u = out_fetch(&o_u), g_pb = out_fetch(&o_pb);
        double *uref = dalloc(T * d), *pbref = dalloc(T);
        for (int64_t t = 0; t < T; t++)
            for (int64_t v = 0; v < V; v++) {
                double p = exp(z[(rf + t) * V + v] - lse[rf + t]);
                if (p == 0.0) continue; /* masked ids: p b -> 0 */
                for (int64_t i = 0; i < d; i++) uref[t * d + i] += p * w[v * d + i];
                pbref[t] += c->bias ? p * b[v] : 0.0;
            }
        check_f32("lens_expect", "  u = W_U^T p_final", o_u.host, uref, T * d, g_u);
        check_f32("lens_expect", "  pb = b . p_final", o_pb.host, pbref, T, g_pb);
        float *kl = out_new(&o_kl, R, 4);
        if (be->ops->lens_kl(be, kl, xd, wu, u, pb, a.entropy + rf, a.lse, R, T, d)) die("lens_kl");
        int g_kl = out_fetch(&o_kl);
        double *klref = dalloc(R);
        for (int64_t r = 0; r < R; r++) {
            int64_t f = rf + r % T;
            double s = 0.0;
            for (int64_t v = 0; v < V; v++) {
                if (z[f * V + v] == -INFINITY) continue; /* p_f = 0 */
                double lpf = z[f * V + v] - lse[f], lpl = z[r * V + v] - lse[r];
                s += exp(lpf) * (lpf - lpl);
            }
            klref[r] = s;
        }
        check_f32("lens_kl", "  all points", o_kl.host, klref, R, g_kl);
        check_f32("lens_kl", "  final rows against themselves (~0)", (const float *)o_kl.host + rf, klref + rf, T, 1);
        out_free(&o_u);
        out_free(&o_pb);
        out_free(&o_kl);
        free(uref);
        free(pbref);
        free(klref);
    }
    out_free(&o_zt);
    out_free(&o_lse);
    out_free(&o_ent);
    out_free(&o_ids);
    out_free(&o_pr);
    out_free(&o_rank);
    out_free(&o_probs);
    free(pf);
    free(pref);
    free(vsel);
    free(order);
    free(refp);
    free(z);
    free(lse);
    free(ent);
    free(ztr);
    free(x);
    free(w);
    free(b);
    free(target);
    dev_free_all();
    logit_floor = 0.0;
    if (is_cpu && ll_cpu_set_lens_tiles(be, LL_CPU_LENS_ROWS, LL_CPU_LENS_COLS)) die("set_lens_tiles");
}

/* lens_kl's last step (ll_kl_finish): a rounding-negative KL is clamped to +0 (never -0), and a NaN term
 * (an overflowing row) gives NaN rather than a KL of 0 that would read as "identical to the final layer". */
static void test_kl_finish(void) {
    const float x[6] = {1, 2, 3, 4, 5, 6}, u[2] = {0, 0}, pb[1] = {0}, hf[1] = {1.0f};
    const float lse[3] = {1.5f, NAN, 0.9f};
    float h[16] = {0};
    ll_wt *w = dev_wt(h, 4, 2);
    float *kl = dev_alloc(3 * sizeof(float));
    if (be->ops->lens_kl(be, kl, dev_in(x, sizeof x), w, dev_in(u, sizeof u), dev_in(pb, sizeof pb),
                         dev_in(hf, sizeof hf), dev_in(lse, sizeof lse), 3, 1, 2))
        die("lens_kl");
    float got[3];
    if (be->ops->download(be, got, kl, sizeof got)) die("download");
    report(got[0] == 0.5f, "lens_kl", "positive KL kept", "got %g (want 0.5)", got[0]);
    report(isnan(got[1]), "lens_kl", "NaN term gives NaN, not 0", "got %g (want nan)", got[1]);
    report(got[2] == 0.0f && !signbit(got[2]), "lens_kl", "negative rounding clamped to +0", "got %g (want +0)", got[2]);
    dev_free_all();
}

int main(int argc, char **argv) {
    harness_open(argc, argv);

    const lens_case lens_cases[] = {
        /* name           P  T    d   V     k   bias rows cols  sd    dup nsel pert mask */
        {"single row",    1, 1,   13, 777,  1,  0,   0,   0,    3.0,  0,  0,   0.0, 0},
        {"row blocks",    3, 100, 37, 1000, 5,  1,   64,  128,  3.0,  1,  0,   1.0, 0},
        {"vocab tiles",   2, 35,  24, 5000, 10, 1,   0,   0,    3.0,  0,  97,  1.0, 0},
        /* logits spread past the exp clamp (> 87 within a tile) and near-zero entropies; the points stay
         * close to the final rows: with |z| ~ 100 the KL of distant rows is ill-conditioned in float32
         * (an ulp of a final logit moves p_f, and that moves the KL by the spread of the other row's logits) */
        {"peaked",        2, 20,  16, 700,  4,  0,   8,   64,   30.0, 0,  33,  0.01, 0},
        {"k = V",         1, 9,   5,  70,   70, 1,   4,   64,   2.0,  1,  0,   0.0, 0},
        {"KL points",     5, 24,  40, 2100, 8,  1,   50,  256,  4.0,  0,  0,   1.0, 0},
        {"KL no bias",    4, 33,  19, 1500, 3,  0,   16,  192,  2.0,  1,  5,   1.0, 0},
        {"masked ids",    2, 10,  12, 500,  6,  1,   8,   64,   3.0,  0,  0,   1.0, 1},
    };
    for (size_t i = 0; i < sizeof lens_cases / sizeof lens_cases[0]; i++) test_lens(&lens_cases[i]);

    test_kl_finish();
    return harness_close();
}
