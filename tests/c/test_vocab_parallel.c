/* test_vocab_parallel.c: the pieces of tensor parallelism that can be checked without ranks.
 *
 * 1. The vocabulary-parallel lens: the CPU lens_pass over vocabulary slices (v0, v_total) of random
 *    logits, merged by ll_lens_merge, against a float64 full softmax over the whole vocabulary: LSE,
 *    entropy, top-k ids and probabilities, target rank (targets inside a slice, in another slice, none),
 *    for 1 to 5 uneven slices and tiles forced small. Also: a target id >= v_total is refused.
 * 2. Shard slices (ll_shard_slice + ll_slice_copy): for every architecture layout, each tensor a rank
 *    holds is exactly the rows/columns its heads, KV heads, MLP columns or vocabulary rows select, split
 *    tensors are covered once by the ranks together, and whole ones are the same on every rank. */
#include "ll_backend.h"
#include "ll_engine.h"
#include "ll_math.h"
#include "ll_model.h"
#include "ll_shard.h"

#include "../../kernels/cpu/cpu_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

#define EXPECT(cond, ...)                                                                                \
    do {                                                                                                 \
        checks++;                                                                                        \
        if (!(cond)) {                                                                                   \
            failures++;                                                                                  \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
            printf(__VA_ARGS__);                                                                         \
            printf("\n");                                                                                \
        }                                                                                                \
    } while (0)

static uint64_t rng = 88172645463325252ull;
static double urand(void) { /* xorshift64*, uniform in [0, 1) */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* ---- 1. vocabulary-parallel lens ------------------------------------------------------------------- */

static void lens_case(ll_backend *be, int R, int d, int V, int k, int parts) {
    float *x = malloc(sizeof(float) * (size_t)R * d), *w = malloc(sizeof(float) * (size_t)V * d);
    float *b = malloc(sizeof(float) * (size_t)V);
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)R);
    for (int i = 0; i < R * d; i++) x[i] = (float)(urand() * 2 - 1);
    for (int i = 0; i < V * d; i++) w[i] = (float)((urand() * 2 - 1) * 3.0 / sqrt(d));
    for (int i = 0; i < V; i++) b[i] = (float)(urand() - 0.5);
    /* a duplicate row makes exact ties between ids of different slices */
    memcpy(w + (size_t)(V - 1) * d, w, sizeof(float) * (size_t)d);
    b[V - 1] = b[0];
    for (int r = 0; r < R; r++) tgt[r] = r % 4 == 3 ? -1 : (int32_t)(urand() * V);
    /* float64 reference over the whole vocabulary */
    double *z = malloc(sizeof(double) * (size_t)R * V);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            double s = b[v];
            for (int i = 0; i < d; i++) s += (double)x[(size_t)r * d + i] * w[(size_t)v * d + i];
            z[(size_t)r * V + v] = s;
        }
    /* the slices on the CPU backend */
    const int64_t pw = LL_LENS_PACK_WORDS(k);
    uint32_t *packed = malloc(sizeof(uint32_t) * (size_t)(parts * R * pw));
    float *zt = malloc(sizeof(float) * (size_t)R);
    for (int r = 0; r < R; r++) { /* the target logit as the owning slice gives it */
        double s = tgt[r] >= 0 ? b[tgt[r]] : 0;
        for (int i = 0; tgt[r] >= 0 && i < d; i++) s += (double)x[(size_t)r * d + i] * w[(size_t)tgt[r] * d + i];
        zt[r] = tgt[r] >= 0 ? (float)s : NAN;
    }
    for (int p = 0; p < parts; p++) {
        const int64_t v0 = (int64_t)p * V / parts, n = (int64_t)(p + 1) * V / parts - v0;
        ll_wt wu, bu;
        if (be->ops->upload_weight(be, w + v0 * d, LL_DTYPE_F32, n, d, &wu) ||
            be->ops->upload_weight(be, b + v0, LL_DTYPE_F32, 1, n, &bu)) {
            EXPECT(0, "upload: %s", be->err.msg);
            return;
        }
        float lse[64], ent[64], probs[64 * 8];
        int32_t ids[64 * 8], rank[64];
        ll_lens_pass_args a = {.x = x, .wu = &wu, .bu = &bu, .zt = zt, .target = tgt, .R = R, .d = d, .V = n,
                               .k = k < n ? k : (int)n, .lse = lse, .entropy = ent, .topk_ids = ids,
                               .topk_probs = probs, .rank = rank, .v0 = v0, .v_total = V};
        int kk = a.k;
        ll_status st = be->ops->lens_pass(be, &a);
        EXPECT(st == LL_OK, "lens_pass slice %d: %s", p, be->err.msg);
        for (int r = 0; r < R; r++) {
            uint32_t *o = packed + ((size_t)p * R + r) * pw;
            memcpy(&o[0], &lse[r], 4);
            memcpy(&o[1], &ent[r], 4);
            memcpy(&o[2], &rank[r], 4);
            for (int j = 0; j < k; j++) { /* a slice narrower than k pads with zero-probability entries */
                int32_t id = j < kk ? ids[r * kk + j] : (int32_t)v0;
                float pr = j < kk ? probs[r * kk + j] : 0.0f;
                memcpy(&o[3 + j], &id, 4);
                memcpy(&o[3 + k + j], &pr, 4);
                EXPECT(j >= kk || (id >= v0 && id < v0 + n), "slice %d row %d: top-k id %d outside [%lld, %lld)", p, r,
                       id, (long long)v0, (long long)(v0 + n));
            }
        }
        if (p == 0 && parts > 1) { /* a target beyond the whole vocabulary is refused, even outside the slice */
            int32_t bad[64];
            memcpy(bad, tgt, sizeof(int32_t) * (size_t)R);
            bad[0] = V;
            a.target = bad;
            EXPECT(be->ops->lens_pass(be, &a) == LL_ERR_INPUT, "target %d >= v_total %d accepted", V, V);
        }
        be->ops->free_weight(be, &wu);
        be->ops->free_weight(be, &bu);
    }
    float mlse[64], ment[64], mprobs[64 * 8];
    int32_t mids[64 * 8], mrank[64];
    ll_lens_merge(parts, R, k, packed, mlse, ment, mrank, mids, mprobs, NULL);
    for (int r = 0; r < R; r++) {
        const double *zr = z + (size_t)r * V;
        double m = -INFINITY, s = 0, u = 0;
        for (int v = 0; v < V; v++) m = zr[v] > m ? zr[v] : m;
        for (int v = 0; v < V; v++) s += exp(zr[v] - m);
        const double L = m + log(s);
        for (int v = 0; v < V; v++) u += exp(zr[v] - L) * (zr[v] - L);
        const double tol = 1e-5 + 4 * 1.2e-7 * fabs(m);
        EXPECT(fabs(mlse[r] - L) <= tol, "R%d V%d parts %d row %d: LSE %.9g, float64 %.9g", R, V, parts, r, mlse[r], L);
        EXPECT(fabs(ment[r] + u) <= tol, "R%d V%d parts %d row %d: entropy %.9g, float64 %.9g", R, V, parts, r, ment[r],
               -u);
        /* top-k: ids in float64 order except near-ties (1e-6 in probability), probabilities within 1e-5 */
        for (int j = 0; j < k; j++) {
            const int id = mids[r * k + j];
            const double pref = exp(zr[id] - L);
            EXPECT(fabs(mprobs[r * k + j] - pref) <= 1e-5, "row %d top-%d id %d: p %.9g, float64 %.9g", r, j, id,
                   mprobs[r * k + j], pref);
            int better = 0; /* ids strictly more probable than this one (beyond a near-tie) must come first */
            for (int v = 0; v < V; v++) better += exp(zr[v] - L) > pref + 1e-6;
            EXPECT(better <= j, "R%d V%d parts %d row %d: top-%d id %d has %d more probable ids", R, V, parts, r, j, id,
                   better);
            if (j > 0) EXPECT(mprobs[r * k + j] <= mprobs[r * k + j - 1], "row %d: top-k not descending", r);
        }
        if (tgt[r] < 0) {
            EXPECT(mrank[r] == -1, "row %d without a target: rank %d", r, mrank[r]);
        } else {
            int lo = 0, hi = 0; /* ids above the target's logit, allowing float rounding near it */
            for (int v = 0; v < V; v++) {
                if (v == tgt[r]) continue;
                lo += zr[v] > zr[tgt[r]] + 1e-5;
                hi += zr[v] > zr[tgt[r]] - 1e-5;
            }
            EXPECT(mrank[r] >= lo && mrank[r] <= hi, "R%d V%d parts %d row %d: rank %d, float64 in [%d, %d]", R, V, parts,
                   r, mrank[r], lo, hi);
        }
    }
    free(x), free(w), free(b), free(tgt), free(z), free(packed), free(zt);
}

/* ---- 2. shard slices ------------------------------------------------------------------------------- */

/* One spec's tensor filled with its element indices, sliced for every rank: split tensors partition the
 * indices along their split dimension, whole ones are identical everywhere. Returns 0 on a failure. */
static void slice_case(const char *label, const ll_config *c, int tp, int pp) {
    ll_tensor_spec *specs;
    int n;
    ll_err err;
    if (ll_config_tensor_specs(c, &specs, &n, &err)) {
        EXPECT(0, "%s: specs: %s", label, err.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        const ll_tensor_spec *sp = &specs[i];
        const int64_t rows = sp->ndim == 2 ? sp->shape[0] : 1, cols = sp->ndim == 2 ? sp->shape[1] : sp->shape[0];
        const size_t N = (size_t)(rows * cols);
        float *src = malloc(sizeof(float) * N), *seen = calloc(N, sizeof(float));
        for (size_t e = 0; e < N; e++) src[e] = (float)e;
        int holders = 0, whole_everywhere = 1;
        size_t held_total = 0;
        for (int rank = 0; rank < tp * pp; rank++) {
            ll_shard s;
            ll_shard_make(c, tp, pp, rank, &s);
            ll_slice sl;
            ll_shard_slice(c, &s, sp, &sl);
            if (!sl.held) continue;
            holders++;
            float *dst = malloc(sizeof(float) * (size_t)(sl.rows * sl.cols + 1));
            ll_slice_copy(&sl, src, rows, cols, 4, dst);
            size_t off;
            if (ll_slice_contiguous(&sl, cols, 4, &off)) /* an offset into the source says the same */
                EXPECT(!memcmp(dst, (const char *)src + off, sizeof(float) * (size_t)(sl.rows * sl.cols)),
                       "%s %s rank %d: contiguous slice differs from its copy", label, sp->name, rank);
            if (sl.rows != rows || sl.cols != cols) whole_everywhere = 0;
            for (int64_t e = 0; e < sl.rows * sl.cols; e++) seen[(size_t)dst[e]] += 1;
            held_total += (size_t)(sl.rows * sl.cols);
            free(dst);
        }
        /* every element is held the same number of times: once per stage group for split tensors
         * (KV heads replicated when there are fewer than ranks), by every holder for whole ones */
        int ok = 1;
        for (size_t e = 1; e < N; e++) ok &= seen[e] == seen[0];
        EXPECT(holders > 0, "%s %s: held by no rank", label, sp->name);
        EXPECT(ok, "%s %s: elements held unevenly (%g vs %g)", label, sp->name, (double)seen[0], (double)seen[N - 1]);
        if (whole_everywhere) EXPECT(held_total == N * (size_t)holders, "%s %s: whole tensor sizes", label, sp->name);
        int kv = sp->layer >= 0 && (sp->role == LL_LW_K || sp->role == LL_LW_K_B || sp->role == LL_LW_V ||
                                     sp->role == LL_LW_V_B);
        const int tied_embed = sp->layer < 0 && sp->role == LL_GW_TOK_EMBED && c->tied && pp > 1;
        if (tied_embed) /* whole on the first stage's ranks, its vocabulary rows as the unembedding elsewhere */
            EXPECT(seen[0] == (float)(tp + pp - 1), "%s %s: tied embedding held %g times", label, sp->name,
                   (double)seen[0]);
        if (!whole_everywhere && !kv && !tied_embed)
            EXPECT(seen[0] == (float)(holders / tp), "%s %s: split tensor held %g times by %d holders", label,
                   sp->name, (double)seen[0], holders);
        if (!whole_everywhere && kv && c->n_kv_heads >= tp)
            EXPECT(seen[0] == (float)(holders / tp), "%s %s: KV split held %g times", label, sp->name, (double)seen[0]);
        if (!whole_everywhere && kv && c->n_kv_heads < tp)
            EXPECT(seen[0] == (float)(holders / c->n_kv_heads), "%s %s: replicated KV head held %g times (want %d)",
                   label, sp->name, (double)seen[0], holders / c->n_kv_heads);
        free(src);
        free(seen);
    }
    /* layers: each held by exactly one stage, contiguous */
    int owner_prev = 0;
    for (int l = 0; l < c->n_layers; l++) {
        int owners = 0, owner = -1;
        for (int st = 0; st < pp; st++) {
            ll_shard s;
            ll_shard_make(c, tp, pp, st * tp, &s);
            if (l >= s.layer0 && l < s.layer1) owners++, owner = st;
        }
        EXPECT(owners == 1 && owner >= owner_prev, "%s layer %d: %d stages hold it", label, l, owners);
        owner_prev = owner;
    }
    free(specs);
}

static ll_config base_config(const char *arch, int heads, int kv, int hd, int64_t ff, int64_t V, int layers) {
    ll_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.arch, sizeof c.arch, "%s", arch);
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv;
    c.head_dim = hd;
    c.d_model = (int64_t)heads * hd;
    c.d_ff = ff;
    c.vocab = V;
    c.n_ctx = 64;
    c.norm_eps = 1e-5f;
    return c;
}

int main(void) {
    ll_backend be = {0};
    ll_backend_opts bo = {.threads = 1};
    if (ll_backend_cpu_init(&be, &bo)) {
        printf("FAIL cannot open the cpu backend\n");
        return 1;
    }
    ll_cpu_ctx *cx = be.ctx;
    cx->lens_cols = 64; /* several vocabulary tiles per slice (the smallest tile) */
    cx->lens_rows = 5;
    /* R, d, V, k, slices */
    const int cases[][5] = {{7, 12, 301, 5, 1}, {7, 12, 301, 5, 2}, {9, 16, 397, 4, 3}, {4, 8, 37, 6, 5},
                            {12, 20, 250, 3, 4}, {5, 10, 10, 8, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        lens_case(&be, cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4]);
    be.ops->close(&be);

    ll_config g = base_config("gpt2", 4, 4, 8, 128, 97, 3);
    g.norm = LL_NORM_LAYERNORM, g.qkv = LL_QKV_FUSED_GPT2, g.mlp = LL_MLP_GELU, g.wlayout = LL_WLAYOUT_IN_OUT;
    g.learned_pos = 1, g.tied = 1, g.attn_bias = g.o_bias = g.mlp_bias = g.norm_bias = 1;
    ll_config nx = base_config("gpt_neox", 4, 4, 8, 64, 101, 2);
    nx.norm = LL_NORM_LAYERNORM, nx.qkv = LL_QKV_FUSED_NEOX, nx.mlp = LL_MLP_GELU, nx.wlayout = LL_WLAYOUT_OUT_IN;
    nx.use_rope = 1, nx.parallel_residual = 1, nx.attn_bias = nx.o_bias = nx.mlp_bias = nx.norm_bias = 1;
    ll_config la = base_config("llama", 8, 2, 6, 96, 103, 4);
    la.norm = LL_NORM_RMSNORM, la.qkv = LL_QKV_SEPARATE, la.mlp = LL_MLP_SWIGLU, la.wlayout = LL_WLAYOUT_OUT_IN;
    la.use_rope = 1;
    ll_config qw = la;
    snprintf(qw.arch, sizeof qw.arch, "qwen2");
    qw.n_kv_heads = 1, qw.attn_bias = 1, qw.tied = 1;
    const struct {
        const char *label;
        const ll_config *c;
        int tp, pp;
    } sl[] = {{"gpt2 tp2", &g, 2, 1},   {"gpt2 tp4 pp3", &g, 4, 3}, {"neox tp2 pp2", &nx, 2, 2},
              {"neox tp4", &nx, 4, 1},  {"llama tp2", &la, 2, 1},   {"llama tp4 (kv replicated)", &la, 4, 2},
              {"llama tp8", &la, 8, 1}, {"qwen2 tp4 kv1", &qw, 4, 1}, {"qwen2 pp4", &qw, 1, 4}};
    for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++) {
        ll_err err;
        EXPECT(ll_shard_check(sl[i].c, sl[i].tp, sl[i].pp, &err) == LL_OK, "%s: %s", sl[i].label, err.msg);
        slice_case(sl[i].label, sl[i].c, sl[i].tp, sl[i].pp);
    }
    ll_err err;
    EXPECT(ll_shard_check(&la, 3, 1, &err) == LL_ERR_USAGE && strstr(err.msg, "--tp 3 does not divide the 8"),
           "tp 3 of 8 heads: %s", err.msg);
    EXPECT(ll_shard_check(&la, 1, 5, &err) == LL_ERR_USAGE && strstr(err.msg, "--pp 5"), "pp 5 of 4 layers: %s",
           err.msg);
    ll_config odd = la;
    odd.n_heads = 6, odd.n_kv_heads = 3;
    EXPECT(ll_shard_check(&odd, 2, 1, &err) == LL_ERR_USAGE && strstr(err.msg, "key/value heads"),
           "tp 2 of 3 kv heads: %s", err.msg);
    printf("test_vocab_parallel: %d checks, %d failed\n", checks, failures);
    return failures != 0;
}
