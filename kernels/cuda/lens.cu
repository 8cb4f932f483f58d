/* lens.cu: the lens pass over the vocabulary (lens_pass) and the target logits (lens_target_logits).
 *
 * Math (docs/cuda.md, LENS-MATH.md): for each lens row r (R = points x tokens) with normalized
 *   x_r, logits z_r = W_U x_r (+ b). One pass over vocabulary tiles keeps per row, in fp32: the online
 *   log-sum-exp state (m, S = sum e^(z-m), U = sum e^(z-m)(z-m)) merged with ll_lse_merge; the count
 *   of logits strictly above the target logit (the target id itself excluded); a running top-k.
 *   Finish: LSE = m + log S, H = log S - U/S (ll_lse_entropy), p_i = exp(z_i - LSE), rank = count.
 * Vocabulary slices (ll_lens_pass_args.v0, v_total): W_U's row j is the global id v0 + j of a vocabulary
 *   of v_total ids. Ids in the top-k and the comparison with the target are global; the bias is indexed
 *   locally (it is the slice's). A target outside the slice counts every logit above zt; only the target
 *   id itself, inside the slice, never counts. Targets >= v_total are rejected on the host side of the
 *   launch: one small check kernel, a 16-byte copy back and a stream synchronization per call.
 * The [R x V] logits never exist: per row block and vocabulary tile, one cuBLAS GEMM writes
 *   z[rblock, vtile] (fp32) into a bounded buffer (<= LL_CUDA_LENS_TILE_BYTES, default 256 MiB), then
 *   the epilogue kernel reduces it. The launch sequence is 2 + tiles x (GEMM + epilogue) + 2 long,
 *   whatever the number of points: all points' rows go through together.
 * Precision: x is rounded once to W_U's dtype (BF16/F16: 16-bit GEMM operands, fp32 accumulation and
 *   output; F32: a plain fp32 GEMM, never TF32, whatever allow_tf32 says: TF32 is for the forward
 *   matmuls; the KL terms, lens_target_logits and lens_kl use fp32 x . W_U, and TF32 logits here would
 *   leave the final layer a KL of E_p[z_tf32 - z] (~1e-3 nats) with itself). lens_target_logits rounds x
 *   the same way, so the target logit is the pass's up to summation order (fp32 ulps): the rank may
 *   count exact near-ties of the target on either side. The bias is added in fp32 in the epilogue.
 *   Statistics in fp32 with expf/logf (not the fast intrinsics).
 * Tiling: ll_cuda_tiling.h (ll_cuda_lens_tiles): row blocks of at most min((2^31 - 1) / d, budget / 1024)
 *   rows, equal in size; vtile = budget / rblock (128 .. 4096 columns).
 * Layout: x [R, d] fp32; W_U [V, d] as stored; tile buffer z [rblock, vtile] row-major fp32 (column-major
 *   [vtile, rblock] to cuBLAS: C = W_tile^T-op x^T). The running top-k lives in the outputs: topk_ids
 *   [R, k] and topk_probs [R, k] (holding logits until the finishing kernel turns them into
 *   probabilities); the rest of the per-row state (m, S, U, count, n) in scratch; for k > 32, a winners
 *   buffer [rblock, min(k, vtile)] of (value, id) pairs in scratch.
 * Epilogue launch: one warp per row of the row block (8 rows per 256-thread block, no block barrier, no
 *   shared memory); lane j reads columns j, j + 32, ... (coalesced), once:
 *   1. online (m, S, U) per lane (one expf per logit), merged across the warp with ll_lse_merge
 *      (shuffles) and into the row's state by lane 0; the count above the target and the number of
 *      top-k candidates, warp sums;
 *   2. top-k: a column is a candidate if it beats the row's current k-th entry (value desc, id asc) or
 *      the list is not yet full. rounds = min(k, #candidates) warp arg-max rounds extract the tile's
 *      candidates in order (each round: the best candidate after the previous winner; lanes re-read
 *      their columns from L1/L2). For k <= 32 the running list lives in the warp's registers during
 *      the tile (lane i holds entry i) and each winner is inserted with a ballot and a shuffle; for
 *      k > 32 lane 0 merges the winners (buffered in scratch) into the list in global memory with a
 *      backward in-place merge, or ll_topk_insert for a single winner. After the first tiles the k-th
 *      value is high and most tiles of a row have no candidate at all.
 * Cost: k warp arg-max rounds (each re-reading the tile row) on the first tile of a row; large k
 *   (hundreds and more) makes the pass slow: use lens_probs for full distributions.
 * Preconditions: 1 <= k <= V; 0 <= v0, v0 + V <= v_total <= INT32_MAX; d and V fit the int arguments of
 *   cuBLAS; zt from lens_target_logits (a NaN zt counts nothing: rank 0).
 * Determinism: yes: fixed reduction trees, a fixed tile order, no atomics.
 * CPU reference: kernels/cpu (lens_pass, lens_target_logits); tests: tests/gpu/test_backend_lens.c (run by
 *   test_backend_ops: "lens_target_logits", "lens_pass", with tiles forced small so that several vocabulary tiles and
 *   row blocks are crossed; "lens slice" for vocabulary slices; "lens tf32" with allow_tf32),
 *   tests/gpu/test_lens_tiling.c (the tiling rule), tests/gpu/run_models.sh (whole models, CUDA vs CPU). */
#include "cuda_common.cuh"

#include <stdlib.h>

/* ---- tiling ------------------------------------------------------------------------------------- */

/* The tiling and each lens op's scratch request are in ll_cuda_tiling.h (plain C, unit-tested on the CPU by
 * tests/gpu/test_lens_tiling.c). */
void llc_lens_plan(int64_t R, int64_t V, int64_t d, size_t bytes_per_elem, int64_t *rblock, int64_t *vtile) {
    ll_cuda_lens_tiles(R, V, d, bytes_per_elem, ll_cuda_lens_budget(), rblock, vtile);
}

/* ---- per-row state -------------------------------------------------------------------------------- */

struct llc_lens_row {
    float m, S, U;  /* online log-sum-exp state */
    int32_t count;  /* logits strictly above the target logit so far */
    int32_t n;      /* entries in the running top-k */
};
static_assert(sizeof(llc_lens_row) == LL_CUDA_LENS_ROW_STATE, "ll_cuda_plan.h's row state size");

__global__ void llc_lens_init_kernel(llc_lens_row *st, int64_t R) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R; r += (int64_t)gridDim.x * blockDim.x) {
        llc_lens_row s;
        s.m = -INFINITY;
        s.S = 0.0f;
        s.U = 0.0f;
        s.count = 0;
        s.n = 0;
        st[r] = s;
    }
}

/* a before b in the order (value desc, id asc); id < 0 is "none", after everything */
__device__ __forceinline__ bool llc_before(float av, int32_t ai, float bv, int32_t bi) {
    if (ai < 0) return false;
    if (bi < 0) return true;
    return av > bv || (av == bv && ai < bi);
}

__device__ __forceinline__ void llc_warp_lse(ll_lse_state &s) {
    for (int o = 16; o > 0; o >>= 1) {
        ll_lse_state t;
        t.m = __shfl_xor_sync(0xffffffffu, s.m, o);
        t.S = __shfl_xor_sync(0xffffffffu, s.S, o);
        t.U = __shfl_xor_sync(0xffffffffu, s.U, o);
        s = ll_lse_merge(s, t);
    }
}

__device__ __forceinline__ void llc_warp_best(float &v, int32_t &id) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int32_t oi = __shfl_xor_sync(0xffffffffu, id, o);
        if (llc_before(ov, oi, v, id)) {
            v = ov;
            id = oi;
        }
    }
}

/* Inserts the winner (wv, wi) into a warp-held top-k list: lane i < n holds entry i (lv, li).
 * Returns the new length; a winner that would land at position >= k is dropped (returns n, and *in
 * is false). Warp-uniform: every lane must call it with the same winner. */
__device__ __forceinline__ int llc_warp_list_insert(float &lv, int32_t &li, int n, int k, float wv, int32_t wi,
                                                    bool *in) {
    const int lane = threadIdx.x & 31;
    const bool ahead = lane < n && llc_before(lv, li, wv, wi);
    const int p = __popc(__ballot_sync(0xffffffffu, ahead)); /* entries ahead of the winner */
    const float uv = __shfl_up_sync(0xffffffffu, lv, 1);
    const int32_t ui = __shfl_up_sync(0xffffffffu, li, 1);
    *in = p < k;
    if (p >= k) return n;
    if (lane == p) {
        lv = wv;
        li = wi;
    } else if (lane > p) {
        lv = uv;
        li = ui;
    }
    return n < k ? n + 1 : k;
}

/* Reduces one vocabulary tile: rows r0 .. r0 + rows - 1 (one warp each), local columns v0 .. v0 + ncols - 1
 * of W_U, which are the global ids id0 .. id0 + ncols - 1 (id0 = the slice's first id + v0). Row i of the
 * tile starts at z + i * ldz. bu: bias over W_U's rows (local index) or NULL. win_v/win_i: [rows, wcap]
 * scratch for the tile's winners, used only when k > 32.
 * Launch: ceil(rows / 8) blocks of 256 threads, one warp per row, no shared memory, no block-level
 * barrier: a warp whose row is past the end returns at once. */
__global__ void __launch_bounds__(LLC_LENS_THREADS)
llc_lens_epilogue_kernel(const float *__restrict__ z, int64_t ldz, int ncols, int64_t v0, int64_t id0, int64_t r0,
                         int64_t rows,
                         const void *__restrict__ bu, int bdt, const float *__restrict__ zt,
                         const int32_t *__restrict__ target, int k, llc_lens_row *__restrict__ st,
                         int32_t *__restrict__ topk_ids, float *__restrict__ topk_vals, float *__restrict__ win_v,
                         int32_t *__restrict__ win_i, int wcap) {
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * (LLC_LENS_THREADS / 32) + (threadIdx.x >> 5);
    if (w >= rows) return; /* warp-uniform */
    const int64_t r = r0 + w;
    const float *zr = z + w * ldz;

    const llc_lens_row row = st[r];
    const int32_t tg = target[r];
    const float ztr = tg >= 0 ? zt[r] : 0.0f;
    const bool full = row.n >= k;
    const float thr_v = full ? topk_vals[r * k + (k - 1)] : 0.0f;
    const int32_t thr_i = full ? topk_ids[r * k + (k - 1)] : -1;

    /* 1. one pass over the lane's columns (lane, lane + 32, ...: coalesced): online (m, S, U), the count
     * above the target, the number of top-k candidates. -inf adds nothing; NaN makes S NaN (kept by
     * ll_lse_merge, so the row's lse and entropy come out NaN instead of silently dropping it). */
    float m = -INFINITY, S = 0.0f, U = 0.0f;
    int above = 0, ncand = 0;
    for (int c = lane; c < ncols; c += 32) {
        float x = zr[c];
        if (bu) x += llc_load(bu, bdt, v0 + c);
        const int32_t id = (int32_t)(id0 + c);
        if (tg >= 0 && x > ztr && id != tg) above++;
        if (x == x && (!full || llc_before(x, id, thr_v, thr_i))) ncand++;
        if (x != x) {
            S = NAN;
        } else if (x != -INFINITY) {
            if (S == 0.0f) {
                m = x;
                S = 1.0f;
                U = 0.0f;
            } else if (x > m) {
                const float dm = m - x, e = expf(dm);
                U = (U + dm * S) * e;
                S = S * e + 1.0f;
                m = x;
            } else {
                const float dz = x - m, e = expf(dz);
                S += e;
                U += e * dz;
            }
        }
    }
    ll_lse_state s;
    s.m = m;
    s.S = S;
    s.U = U;
    llc_warp_lse(s);
    for (int o = 16; o > 0; o >>= 1) {
        above += __shfl_xor_sync(0xffffffffu, above, o);
        ncand += __shfl_xor_sync(0xffffffffu, ncand, o);
    }
    if (lane == 0) {
        ll_lse_state g;
        g.m = row.m;
        g.S = row.S;
        g.U = row.U;
        g = ll_lse_merge(g, s);
        st[r].m = g.m;
        st[r].S = g.S;
        st[r].U = g.U;
        st[r].count = row.count + above;
    }
    const int rounds = ncand < k ? ncand : k;
    if (rounds == 0) return;

    /* 2. extract the tile's best `rounds` candidates in order: each round, the best candidate after the
     * previous winner in the order (value desc, id asc); the lanes re-read their columns (L1/L2). */
    const bool in_regs = k <= 32;
    float lv = 0.0f;
    int32_t li = -1;
    int n = row.n < k ? row.n : k;
    if (in_regs && lane < n) {
        lv = topk_vals[r * k + lane];
        li = topk_ids[r * k + lane];
    }
    float pv = 0.0f;
    int32_t pi = -1;
    for (int rd = 0; rd < rounds; rd++) {
        float bv = 0.0f;
        int32_t bi = -1;
        for (int c = lane; c < ncols; c += 32) {
            float x = zr[c];
            if (bu) x += llc_load(bu, bdt, v0 + c);
            const int32_t id = (int32_t)(id0 + c);
            const bool cand = x == x && (!full || llc_before(x, id, thr_v, thr_i));
            if (cand && (pi < 0 || llc_before(pv, pi, x, id)) && llc_before(x, id, bv, bi)) {
                bv = x;
                bi = id;
            }
        }
        llc_warp_best(bv, bi); /* every lane now holds the winner */
        pv = bv;
        pi = bi;
        if (in_regs) {
            bool in;
            n = llc_warp_list_insert(lv, li, n, k, bv, bi, &in);
            if (!in) break; /* later winners are worse: none enters either (warp-uniform) */
        } else if (lane == 0) {
            win_v[w * wcap + rd] = bv;
            win_i[w * wcap + rd] = bi;
        }
    }

    /* 3. write the list back */
    if (in_regs) {
        if (lane < n) {
            topk_vals[r * k + lane] = lv;
            topk_ids[r * k + lane] = li;
        }
        if (lane == 0) st[r].n = n;
        return;
    }
    /* k > 32: lane 0 merges the winners into the running list in global memory (capacity k) */
    if (lane != 0) return;
    int32_t *ids = topk_ids + r * k;
    float *vals = topk_vals + r * k;
    const float *wv = win_v + w * wcap;
    const int32_t *wi = win_i + w * wcap;
    int mlen;
    if (rounds == 1) {
        mlen = n;
        ll_topk_insert(ids, vals, &mlen, k, wi[0], wv[0]);
    } else {
        mlen = n + rounds < k ? n + rounds : k;
        int ia = 0, ib = 0; /* how many of the running list (a) and the winners (b) make the top mlen */
        for (int i = 0; i < mlen; i++) {
            if (ib < rounds && (ia >= n || llc_before(wv[ib], wi[ib], vals[ia], ids[ia]))) ib++;
            else ia++;
        }
        int pos = mlen - 1, a = ia - 1, b = ib - 1;
        while (b >= 0) { /* pos > a always: the running list's unread entries are never overwritten */
            if (a >= 0 && llc_before(wv[b], wi[b], vals[a], ids[a])) {
                vals[pos] = vals[a];
                ids[pos] = ids[a];
                a--;
            } else {
                vals[pos] = wv[b];
                ids[pos] = wi[b];
                b--;
            }
            pos--;
        }
    }
    st[r].n = mlen;
}

/* lse, entropy and rank per row */
__global__ void llc_lens_finish_rows_kernel(const llc_lens_row *__restrict__ st, const int32_t *__restrict__ target,
                                            int64_t R, float *__restrict__ lse, float *__restrict__ entropy,
                                            int32_t *__restrict__ rank) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R; r += (int64_t)gridDim.x * blockDim.x) {
        const llc_lens_row s = st[r];
        ll_lse_state l;
        l.m = s.m;
        l.S = s.S;
        l.U = s.U;
        lse[r] = ll_lse_value(l);
        const float h = ll_lse_entropy(l);
        entropy[r] = (l.S == l.S && l.U == l.U) ? h : NAN; /* ll_lse_entropy's clamp would hide a NaN */
        rank[r] = target[r] >= 0 ? s.count : -1;
    }
}

/* topk_probs[r, i] = exp(logit - lse[r]) in place; slots the list never filled (only when logits were
 * NaN) get id -1 and probability NaN. */
__global__ void llc_lens_finish_topk_kernel(const llc_lens_row *__restrict__ st, const float *__restrict__ lse,
                                            int64_t R, int k, int32_t *__restrict__ ids, float *__restrict__ probs) {
    const int64_t n = R * k;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = e / k;
        const int i = (int)(e - r * k);
        if (i < st[r].n) {
            probs[e] = expf(probs[e] - lse[r]);
        } else {
            ids[e] = -1;
            probs[e] = NAN;
        }
    }
}

/* The target check: res[0] = the first row r with target[r] >= vtot (R if none), res[1] = its target.
 * Launch: one block of 1024 threads (grid-stride over the rows), then a fixed-order min reduction
 * (shuffles, 32 int64 of shared memory): deterministic, no atomics. A few microseconds for 10^6 rows. */
#define LLC_CHECK_THREADS 1024
__global__ void __launch_bounds__(LLC_CHECK_THREADS)
llc_lens_target_check_kernel(const int32_t *__restrict__ target, int64_t R, int64_t vtot, int64_t *__restrict__ res) {
    __shared__ int64_t red[32];
    int64_t first = R;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
        if (target[r] >= vtot) {
            first = r; /* the smallest of this thread's rows: r only grows */
            break;
        }
    for (int o = 16; o > 0; o >>= 1) {
        const int64_t t = __shfl_xor_sync(0xffffffffu, first, o);
        first = t < first ? t : first;
    }
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = first;
    __syncthreads();
    if (threadIdx.x < 32) {
        first = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : R;
        for (int o = 16; o > 0; o >>= 1) {
            const int64_t t = __shfl_xor_sync(0xffffffffu, first, o);
            first = t < first ? t : first;
        }
        if (threadIdx.x == 0) {
            res[0] = first;
            res[1] = first < R ? (int64_t)target[first] : -1;
        }
    }
}

ll_status llc_lens_pass(ll_backend *be, const ll_lens_pass_args *a) {
    const char *op = "lens_pass";
    LLC_REQUIRE(be, op, a && a->x && a->wu && a->wu->data && a->zt && a->target);
    LLC_REQUIRE(be, op, a->lse && a->entropy && a->topk_ids && a->topk_probs && a->rank);
    LLC_REQUIRE(be, op, a->R >= 0 && a->d > 0 && a->V > 0 && a->k >= 1 && a->k <= a->V);
    LLC_REQUIRE(be, op, a->wu->rows == a->V && a->wu->cols == a->d && llc_dtype_valid(a->wu->dtype));
    LLC_REQUIRE(be, op, a->V <= INT32_MAX && a->d <= INT32_MAX && a->R * (int64_t)a->k <= INT64_MAX / 8);
    /* the vocabulary slice: W_U's rows are the global ids [v0, v0 + V) of [0, vtot) */
    const int64_t vbase = a->v0, vtot = a->v_total > 0 ? a->v_total : a->V;
    LLC_REQUIRE(be, op, vbase >= 0 && vbase + a->V <= vtot && vtot <= INT32_MAX);
    const int has_b = a->bu && a->bu->data;
    if (has_b) LLC_REQUIRE(be, op, a->bu->rows * a->bu->cols == a->V && llc_dtype_valid(a->bu->dtype));
    if (a->R == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    const int64_t R = a->R, d = a->d, V = a->V;
    const ll_dtype wdt = a->wu->dtype;

    int64_t rb, vt;
    llc_lens_plan(R, V, d, sizeof(float), &rb, &vt);
    LLC_REQUIRE(be, op, rb * d <= LL_CUDA_LENS_ELEMS_MAX && rb * vt <= LL_CUDA_LENS_ELEMS_MAX);
    const size_t xb_bytes = wdt == LL_DTYPE_F32 ? 0 : (size_t)R * (size_t)d * 2;
    const size_t st_bytes = (size_t)R * sizeof(llc_lens_row);
    const size_t z_bytes = (size_t)rb * (size_t)vt * sizeof(float);
    /* winners of a tile, per row: only when the running list does not fit a warp's registers (k > 32) */
    const int64_t wcap = a->k > 32 ? (a->k < vt ? a->k : vt) : 0;
    const size_t w_bytes = (size_t)rb * (size_t)wcap * sizeof(float);
    void *scr = NULL;
    const size_t need = llc_align_up(xb_bytes) + llc_align_up(st_bytes) + llc_align_up(z_bytes) + 2 * llc_align_up(w_bytes);
    LLC_REQUIRE(be, op, need == ll_cuda_lens_pass_need(R, d, V, a->k, wdt != LL_DTYPE_F32, ll_cuda_lens_budget()));
    LLC_REQUIRE(be, op, z_bytes >= 2 * sizeof(int64_t)); /* the target check's result goes through z */
    LLC_TRY(llc_scratch(be, op, need, &scr));
    char *cur = (char *)scr;
    void *xb = xb_bytes ? llc_carve(&cur, xb_bytes) : NULL;
    llc_lens_row *st = (llc_lens_row *)llc_carve(&cur, st_bytes);
    float *z = (float *)llc_carve(&cur, z_bytes);
    float *win_v = w_bytes ? (float *)llc_carve(&cur, w_bytes) : NULL;
    int32_t *win_i = w_bytes ? (int32_t *)llc_carve(&cur, w_bytes) : NULL;

    /* targets are global ids of [0, vtot) or negative (none); the CPU backend rejects others, and so do we
     * (the tile buffer holds the check's result until the first GEMM overwrites it) */
    {
        int64_t res[2] = {R, -1};
        llc_lens_target_check_kernel<<<1, LLC_CHECK_THREADS, 0, c->stream>>>(a->target, R, vtot, (int64_t *)z);
        LLC_LAUNCHED(be, op);
        LLC_CUDA(be, op, cudaMemcpyAsync(res, z, sizeof res, cudaMemcpyDeviceToHost, c->stream));
        LLC_CUDA(be, op, cudaStreamSynchronize(c->stream));
        if (res[0] < R)
            return llc_fail(be, LL_ERR_INPUT, "cuda lens_pass: target id %lld of row %lld is outside the vocabulary [0, %lld)",
                            (long long)res[1], (long long)res[0], (long long)vtot);
    }

    if (xb) LLC_TRY(llc_cast_from_f32(be, op, xb, wdt, a->x, R * d));
    const void *xg = xb ? xb : (const void *)a->x;
    const size_t esz = llc_dtype_size(wdt);
    llc_lens_init_kernel<<<llc_grid(c, R), LLC_THREADS, 0, c->stream>>>(st, R);
    LLC_LAUNCHED(be, op);

    const int wpb = LLC_LENS_THREADS / 32;
    for (int64_t r0 = 0; r0 < R; r0 += rb) {
        const int64_t rows = R - r0 < rb ? R - r0 : rb;
        const void *xr = (const char *)xg + (size_t)r0 * (size_t)d * esz;
        for (int64_t v0 = 0; v0 < V; v0 += vt) {
            const int64_t cols = V - v0 < vt ? V - v0 : vt;
            const void *wt = (const char *)a->wu->data + (size_t)v0 * (size_t)d * esz;
            /* z^T [cols, rows] (col-major, ld vt) = W_tile [cols, d] . x^T [d, rows]; plain fp32 for F32 W_U
             * (tf32 = 0: see Precision above) */
            LLC_TRY(llc_gemm(be, op, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, d, wt, d, xr, d, wdt, z, vt, 0.0f, 0));
            llc_lens_epilogue_kernel<<<(unsigned)((rows + wpb - 1) / wpb), LLC_LENS_THREADS, 0, c->stream>>>(
                z, vt, (int)cols, v0, vbase + v0, r0, rows, has_b ? a->bu->data : NULL, has_b ? (int)a->bu->dtype : 0,
                a->zt, a->target, a->k, st, a->topk_ids, a->topk_probs, win_v, win_i, (int)wcap);
            LLC_LAUNCHED(be, op);
        }
    }
    llc_lens_finish_rows_kernel<<<llc_grid(c, R), LLC_THREADS, 0, c->stream>>>(st, a->target, R, a->lse,
                                                                               a->entropy, a->rank);
    LLC_LAUNCHED(be, op);
    llc_lens_finish_topk_kernel<<<llc_grid(c, R * a->k), LLC_THREADS, 0, c->stream>>>(st, a->lse, R, a->k,
                                                                                      a->topk_ids, a->topk_probs);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}

/* ---- target logits ------------------------------------------------------------------------------- */

/* One warp per row: zt[r] = round(x[r]) . wu[target[r]] (+ bu[target[r]]); lanes stride over d, then a
 * fixed shuffle tree. NaN where target < 0 or target >= V. */
__global__ void llc_lens_target_kernel(float *__restrict__ zt, const float *__restrict__ x, const void *__restrict__ wu,
                                       int wdt, const void *__restrict__ bu, int bdt,
                                       const int32_t *__restrict__ target, int64_t R, int64_t d, int64_t V) {
    const int lane = threadIdx.x & 31;
    const int64_t nwarps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R; r += nwarps) {
        const int64_t tg = target[r];
        if (tg < 0 || tg >= V) {
            if (lane == 0) zt[r] = NAN;
            continue; /* warp-uniform */
        }
        const float *xr = x + r * d;
        float acc = 0.0f;
        for (int64_t i = lane; i < d; i += 32) acc = fmaf(llc_round(xr[i], wdt), llc_load(wu, wdt, tg * d + i), acc);
        acc = llc_warp_sum(acc);
        if (lane == 0) zt[r] = acc + (bu ? llc_load(bu, bdt, tg) : 0.0f);
    }
}

ll_status llc_lens_target_logits(ll_backend *be, float *zt, const float *x, const ll_wt *wu, const ll_wt *bu,
                                 const int32_t *target, int64_t R, int64_t d) {
    const char *op = "lens_target_logits";
    LLC_REQUIRE(be, op, zt && x && wu && wu->data && target && R >= 0 && d > 0);
    LLC_REQUIRE(be, op, wu->cols == d && llc_dtype_valid(wu->dtype));
    const int has_b = bu && bu->data;
    if (has_b) LLC_REQUIRE(be, op, bu->rows * bu->cols == wu->rows && llc_dtype_valid(bu->dtype));
    if (R == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    const int64_t warps_per_block = LLC_THREADS / 32;
    int64_t blocks = (R + warps_per_block - 1) / warps_per_block;
    const int64_t cap = (int64_t)c->num_sms * 32;
    if (blocks > cap) blocks = cap;
    llc_lens_target_kernel<<<(unsigned)blocks, LLC_THREADS, 0, c->stream>>>(
        zt, x, wu->data, (int)wu->dtype, has_b ? bu->data : NULL, has_b ? (int)bu->dtype : 0, target, R, d, wu->rows);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}
