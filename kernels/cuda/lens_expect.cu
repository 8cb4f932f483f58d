/* lens_expect.cu: the KL terms (lens_expect, lens_kl) and full probability rows (lens_probs).
 *
 * Math (LENS-MATH.md, "KL to the final layer"):
 *   lens_expect: for the final layer's rows, p(t, v) = exp(z(t, v) - lse[t]) with the pass's own logits
 *     z = W_U round(xf) + b, then u[t, :] = sum_v p'(t, v) W_U[v, :] and pb[t] = sum_v p'(t, v) b[v], both
 *     divided at the end by sum_v p'(t, v) (as the CPU does), so the rounding of lse does not scale them.
 *     p' is p exactly as the u GEMM consumes it: p itself for F32 W_U, p_hi + p_lo for 16-bit W_U (below).
 *     All three sums use the same p', so u, pb and their normalization are one distribution: summing the
 *     unsplit p into the normalizer while the GEMM weighs W_U by p_hi + p_lo biased x . u by
 *     ~2^-18 |z_top| (~1.5e-4 nats of final-layer KL at |z| ~ 40).
 *   lens_kl: kl[r] = -hf[t] - (round(x[r]) . u[t] + pb[t]) + lse[r], t = r % T, clamped at >= 0
 *     (a NaN stays NaN: ll_kl_finish, shared with the CPU). With the same rounding of x as the pass, sum_v p_f z_l = round(x_l) . u + pb
 *     exactly up to fp32 arithmetic, so the final layer's KL is 0 to ~1e-6 nats, not to the size of the
 *     rounding of x. The rounding dtype is that of the unembedding wu passed in (the one the pass and
 *     lens_expect used).
 *   lens_probs: out[r, j] = float16(exp(z(r, id_j) - lse[r])), id_j = vsel[j] (or j without vsel).
 * Tiling: as lens_pass (lens.cu, ll_cuda_tiling.h): row blocks x vocabulary tiles, each tile's logits from one
 *   cuBLAS GEMM into a bounded fp32 buffer. lens_expect then turns the tile into probabilities and accumulates
 *   u += P_tile W_tile with a second GEMM (beta = 1): [rows, cols] x [cols, d].
 * Precision: logits as in lens_pass: plain fp32 for F32 W_U, never TF32 (allow_tf32 is for the forward
 *   matmuls; lens_kl's x . u is fp32, so TF32 logits here would not cancel against it). For BF16/F16 W_U the probabilities enter the u GEMM as two 16-bit
 *   matrices p_hi = round(p), p_lo = round(p - p_hi) (two GEMMs, fp32 accumulation): p keeps ~16
 *   significant bits instead of 8, W_U is used exactly as stored, and the tensor cores still do the
 *   work. For F16 the split is of 2^15 p (undone when u is normalized): F16's exponent range would
 *   otherwise flush every p below 2^-25 to zero, losing ~1e-4 of the mass of peaked rows. For F32 W_U, one fp32 GEMM (never TF32 here: u feeds a difference of quantities tens of nats
 *   large). pb accumulates in fp32; lens_kl's dot product and final sum in double, as on the CPU.
 * Launch: probability kernel: one block of 256 threads per row of the row block, threads striding over
 *   the tile's columns, the tile's sums of p' and p' b through block reductions (32 floats of shared memory). lens_kl:
 *   one warp per row (grid-stride). Gather and output kernels: grid-stride loops, int64 indices.
 * Preconditions: lse[t] finite for the rows used (from lens_pass); vsel ids in [0, V) (others give NaN
 *   in their column, the only way the device can report them); u does not alias xf.
 * Determinism: yes (no atomics; pb's per-tile sums are added in tile order by one thread).
 * CPU reference: kernels/cpu (lens_expect, lens_kl, lens_probs); tests: tests/gpu/test_backend_lens.c (run
 *   by test_backend_ops: "lens_expect", "lens_kl" including the final layer against itself within 1e-6 of
 *   its largest logit, "lens_probs" with and without vsel, "lens tf32"), tests/gpu/run_models.sh. */
#include "cuda_common.cuh"

#define LLC_EXPECT_F16_SCALE 32768.0f /* 2^15: exact to multiply and divide by */

/* p = exp(z + b - lse) for a tile: rows r0.. (grid.x of them), columns v0 .. v0 + ncols - 1 (z row-major,
 * row i at z + i * ldz; phi/plo alike). Writes p as hi/lo 16-bit pairs (phi/plo non-NULL, dtype dt) or in
 * place as fp32, and adds the tile's sum_v p' and sum_v p' b[v] to psum[r] and pb[r], where p' is the value
 * the u GEMM will use (hi + lo, unscaled; p for fp32). Launch: one 256-thread block per row. */
__global__ void __launch_bounds__(LLC_THREADS)
llc_expect_prob_kernel(float *__restrict__ z, int64_t ldz, int ncols, int64_t v0, int64_t r0,
                       const void *__restrict__ bu, int bdt, const float *__restrict__ lse, uint16_t *__restrict__ phi,
                       uint16_t *__restrict__ plo, int dt, float *__restrict__ pb, float *__restrict__ psum) {
    __shared__ float red[32];
    const int64_t i = blockIdx.x;
    const float l = lse[r0 + i];
    float *zr = z + i * ldz;
    float sb = 0.0f, sp = 0.0f;
    for (int c = threadIdx.x; c < ncols; c += blockDim.x) {
        const float b = bu ? llc_load(bu, bdt, v0 + c) : 0.0f;
        const float p = expf(zr[c] + b - l);
        float pu = p; /* p as the u GEMM uses it */
        if (phi) {
            uint16_t h, lo;
            if (dt == LL_DTYPE_BF16) {
                h = ll_f32_to_bf16(p);
                lo = ll_f32_to_bf16(p - ll_bf16_to_f32(h));
                pu = ll_bf16_to_f32(h) + ll_bf16_to_f32(lo); /* exact: 8 + 8 significant bits */
            } else { /* F16: p scaled by 2^15 first (<= 32768 < 65504), so that p down to ~2^-39 stays
                      * representable instead of flushing below F16's smallest subnormal, 2^-24 */
                const float ps = p * LLC_EXPECT_F16_SCALE;
                h = ll_f32_to_f16(ps);
                lo = ll_f32_to_f16(ps - ll_f16_to_f32(h));
                /* exact: 11 + 11 significant bits within 22 binary places; the 2^-15 is a power of two */
                pu = (ll_f16_to_f32(h) + ll_f16_to_f32(lo)) * (1.0f / LLC_EXPECT_F16_SCALE);
            }
            phi[i * ldz + c] = h;
            plo[i * ldz + c] = lo;
        } else {
            zr[c] = p;
        }
        sb += pu * b;
        sp += pu;
    }
    sp = llc_block_sum(sp, red);
    if (threadIdx.x == 0) psum[r0 + i] += sp;
    if (bu) {
        sb = llc_block_sum(sb, red);
        if (threadIdx.x == 0) pb[r0 + i] += sb;
    }
}

/* u[t, :] /= uscale psum[t], pb[t] /= psum[t]: p' normalized by its own computed sum, so that the rounding
 * of the fp32 lse (~1e-7 relative of a value of tens) does not scale u and pb; uscale undoes the F16
 * split's scaling of p (1 otherwise). u [T, d] row-major; grid-stride over its elements (int64). */
__global__ void llc_expect_norm_kernel(float *__restrict__ u, float *__restrict__ pb, const float *__restrict__ psum,
                                       int64_t T, int64_t d, float uscale) {
    const int64_t n = T * d;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = e / d;
        const float s = psum[t];
        u[e] /= s * uscale;
        if (e - t * d == 0) pb[t] /= s;
    }
}

ll_status llc_lens_expect(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu, const ll_wt *bu,
                          const float *lse, int64_t T, int64_t d, int64_t V) {
    const char *op = "lens_expect";
    LLC_REQUIRE(be, op, u && pb && xf && wu && wu->data && lse && T >= 0 && d > 0 && V > 0);
    LLC_REQUIRE(be, op, wu->rows == V && wu->cols == d && llc_dtype_valid(wu->dtype) && V <= INT32_MAX &&
                            d <= INT32_MAX);
    const int has_b = bu && bu->data;
    if (has_b) LLC_REQUIRE(be, op, bu->rows * bu->cols == V && llc_dtype_valid(bu->dtype));
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    const ll_dtype wdt = wu->dtype;
    if (T == 0) return LL_OK;
    const int half = wdt != LL_DTYPE_F32;

    int64_t rb, vt;
    llc_lens_plan(T, V, d, half ? sizeof(float) + 2 * sizeof(uint16_t) : sizeof(float), &rb, &vt);
    LLC_REQUIRE(be, op, rb * d <= LL_CUDA_LENS_ELEMS_MAX && rb * vt <= LL_CUDA_LENS_ELEMS_MAX);
    const size_t xb_bytes = half ? (size_t)T * (size_t)d * 2 : 0;
    const size_t z_bytes = (size_t)rb * (size_t)vt * sizeof(float);
    const size_t p_bytes = half ? (size_t)rb * (size_t)vt * sizeof(uint16_t) : 0;
    const size_t s_bytes = (size_t)T * sizeof(float);
    void *scr = NULL;
    const size_t need = llc_align_up(xb_bytes) + llc_align_up(z_bytes) + 2 * llc_align_up(p_bytes) + llc_align_up(s_bytes);
    LLC_REQUIRE(be, op, need == ll_cuda_lens_expect_need(T, d, V, half, ll_cuda_lens_budget()));
    LLC_TRY(llc_scratch(be, op, need, &scr));
    char *cur = (char *)scr;
    float *psum = (float *)llc_carve(&cur, s_bytes);
    void *xb = half ? llc_carve(&cur, xb_bytes) : NULL;
    float *z = (float *)llc_carve(&cur, z_bytes);
    uint16_t *phi = half ? (uint16_t *)llc_carve(&cur, p_bytes) : NULL;
    uint16_t *plo = half ? (uint16_t *)llc_carve(&cur, p_bytes) : NULL;

    LLC_CUDA(be, op, cudaMemsetAsync(u, 0, (size_t)T * (size_t)d * sizeof(float), c->stream));
    LLC_CUDA(be, op, cudaMemsetAsync(pb, 0, (size_t)T * sizeof(float), c->stream));
    LLC_CUDA(be, op, cudaMemsetAsync(psum, 0, s_bytes, c->stream));
    if (xb) LLC_TRY(llc_cast_from_f32(be, op, xb, wdt, xf, T * d));
    const void *xg = xb ? xb : (const void *)xf;
    const size_t esz = llc_dtype_size(wdt);

    for (int64_t t0 = 0; t0 < T; t0 += rb) {
        const int64_t rows = T - t0 < rb ? T - t0 : rb;
        const void *xr = (const char *)xg + (size_t)t0 * (size_t)d * esz;
        float *ur = u + t0 * d;
        for (int64_t v0 = 0; v0 < V; v0 += vt) {
            const int64_t cols = V - v0 < vt ? V - v0 : vt;
            const void *wt = (const char *)wu->data + (size_t)v0 * (size_t)d * esz;
            /* logits as in lens_pass: plain fp32 for F32 W_U (tf32 = 0) */
            LLC_TRY(llc_gemm(be, op, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, d, wt, d, xr, d, wdt, z, vt, 0.0f, 0));
            llc_expect_prob_kernel<<<(unsigned)rows, LLC_THREADS, 0, c->stream>>>(
                z, vt, (int)cols, v0, t0, has_b ? bu->data : NULL, has_b ? (int)bu->dtype : 0, lse, phi, plo,
                (int)wdt, pb, psum);
            LLC_LAUNCHED(be, op);
            /* u^T [d, rows] (col-major, ld d) += W_tile^T [d, cols] . P^T [cols, rows] */
            if (half) {
                LLC_TRY(llc_gemm(be, op, CUBLAS_OP_N, CUBLAS_OP_N, d, rows, cols, wt, d, phi, vt, wdt, ur, d, 1.0f, 0));
                LLC_TRY(llc_gemm(be, op, CUBLAS_OP_N, CUBLAS_OP_N, d, rows, cols, wt, d, plo, vt, wdt, ur, d, 1.0f, 0));
            } else {
                LLC_TRY(llc_gemm(be, op, CUBLAS_OP_N, CUBLAS_OP_N, d, rows, cols, wt, d, z, vt, wdt, ur, d, 1.0f, 0));
            }
        }
    }
    llc_expect_norm_kernel<<<llc_grid(c, T * d), LLC_THREADS, 0, c->stream>>>(
        u, pb, psum, T, d, wdt == LL_DTYPE_F16 ? LLC_EXPECT_F16_SCALE : 1.0f);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}

/* ---- KL ------------------------------------------------------------------------------------------ */

__global__ void llc_lens_kl_kernel(float *__restrict__ kl, const float *__restrict__ x, const float *__restrict__ u,
                                   const float *__restrict__ pb, const float *__restrict__ hf,
                                   const float *__restrict__ lse, int64_t R, int64_t T, int64_t d, int rdt) {
    const int lane = threadIdx.x & 31;
    const int64_t nwarps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R; r += nwarps) {
        const int64_t t = r % T;
        const float *xr = x + r * d;
        const float *ut = u + t * d;
        double acc = 0.0; /* in double like the CPU: the dot product is of the size of LSE, KL can be ~0 */
        for (int64_t i = lane; i < d; i += 32) acc = fma((double)llc_round(xr[i], rdt), (double)ut[i], acc);
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) {
            kl[r] = ll_kl_finish((double)lse[r] - (double)hf[t] - acc - (double)pb[t]);
        }
    }
}

ll_status llc_lens_kl(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb, const float *hf,
                      const float *lse, int64_t R, int64_t T, int64_t d) {
    const char *op = "lens_kl";
    LLC_REQUIRE(be, op, kl && x && wu && u && pb && hf && lse && R >= 0 && T > 0 && d > 0 && R % T == 0);
    if (R == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    const int64_t wpb = LLC_THREADS / 32;
    int64_t blocks = (R + wpb - 1) / wpb;
    const int64_t cap = (int64_t)c->num_sms * 32;
    if (blocks > cap) blocks = cap;
    llc_lens_kl_kernel<<<(unsigned)blocks, LLC_THREADS, 0, c->stream>>>(kl, x, u, pb, hf, lse, R, T, d,
                                                                         (int)wu->dtype);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}

/* ---- probability rows ------------------------------------------------------------------------------ */

/* wg[c, :] = wu[vsel[j0 + c], :] (raw copy in the stored dtype); zeros for an id outside [0, V). */
__global__ void llc_gather_rows_kernel(void *__restrict__ wg, const void *__restrict__ wu, size_t esz, int64_t V,
                                       const int32_t *__restrict__ vsel, int64_t j0, int64_t cols, int64_t d) {
    const int64_t n = cols * d;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t cidx = e / d, i = e - cidx * d;
        const int64_t id = vsel[j0 + cidx];
        const bool ok = id >= 0 && id < V;
        if (esz == 2) ((uint16_t *)wg)[e] = ok ? ((const uint16_t *)wu)[id * d + i] : (uint16_t)0;
        else ((float *)wg)[e] = ok ? ((const float *)wu)[id * d + i] : 0.0f;
    }
}

__global__ void llc_probs_out_kernel(uint16_t *__restrict__ out, int64_t nv, const float *__restrict__ z, int64_t ldz,
                                     int64_t rows, int64_t cols, int64_t r0, int64_t j0, const int32_t *__restrict__ vsel,
                                     int64_t V, const void *__restrict__ bu, int bdt, const float *__restrict__ lse) {
    const int64_t n = rows * cols;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / cols, cidx = e - i * cols;
        const int64_t id = vsel ? (int64_t)vsel[j0 + cidx] : j0 + cidx;
        float p = NAN;
        if (id >= 0 && id < V) {
            const float b = bu ? llc_load(bu, bdt, id) : 0.0f;
            p = expf(z[i * ldz + cidx] + b - lse[r0 + i]);
        }
        out[(r0 + i) * nv + j0 + cidx] = ll_f32_to_f16(p);
    }
}

ll_status llc_lens_probs(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu, const ll_wt *bu,
                         const float *lse, int64_t R, int64_t d, int64_t V, const int32_t *vsel, int64_t nv) {
    const char *op = "lens_probs";
    LLC_REQUIRE(be, op, out && x && wu && wu->data && lse && R >= 0 && d > 0 && V > 0 && nv >= 0);
    LLC_REQUIRE(be, op, wu->rows == V && wu->cols == d && llc_dtype_valid(wu->dtype));
    LLC_REQUIRE(be, op, vsel != NULL || nv == V);
    const int has_b = bu && bu->data;
    if (has_b) LLC_REQUIRE(be, op, bu->rows * bu->cols == V && llc_dtype_valid(bu->dtype));
    if (R == 0 || nv == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    const ll_dtype wdt = wu->dtype;
    const size_t esz = llc_dtype_size(wdt);

    int64_t rb, vt;
    llc_lens_plan(R, nv, d, sizeof(float), &rb, &vt);
    LLC_REQUIRE(be, op, rb * d <= LL_CUDA_LENS_ELEMS_MAX && rb * vt <= LL_CUDA_LENS_ELEMS_MAX);
    const size_t xb_bytes = wdt != LL_DTYPE_F32 ? (size_t)R * (size_t)d * 2 : 0;
    const size_t z_bytes = (size_t)rb * (size_t)vt * sizeof(float);
    const size_t wg_bytes = vsel ? (size_t)vt * (size_t)d * esz : 0;
    void *scr = NULL;
    const size_t need = llc_align_up(xb_bytes) + llc_align_up(z_bytes) + llc_align_up(wg_bytes);
    LLC_REQUIRE(be, op, need == ll_cuda_lens_probs_need(R, d, nv, esz, vsel != NULL, ll_cuda_lens_budget()));
    LLC_TRY(llc_scratch(be, op, need, &scr));
    char *cur = (char *)scr;
    void *xb = xb_bytes ? llc_carve(&cur, xb_bytes) : NULL;
    float *z = (float *)llc_carve(&cur, z_bytes);
    void *wg = wg_bytes ? llc_carve(&cur, wg_bytes) : NULL;

    if (xb) LLC_TRY(llc_cast_from_f32(be, op, xb, wdt, x, R * d));
    const void *xg = xb ? xb : (const void *)x;

    for (int64_t r0 = 0; r0 < R; r0 += rb) {
        const int64_t rows = R - r0 < rb ? R - r0 : rb;
        const void *xr = (const char *)xg + (size_t)r0 * (size_t)d * esz;
        for (int64_t j0 = 0; j0 < nv; j0 += vt) {
            const int64_t cols = nv - j0 < vt ? nv - j0 : vt;
            const void *wt;
            if (vsel) {
                llc_gather_rows_kernel<<<llc_grid(c, cols * d), LLC_THREADS, 0, c->stream>>>(wg, wu->data, esz, V, vsel,
                                                                                              j0, cols, d);
                LLC_LAUNCHED(be, op);
                wt = wg;
            } else {
                wt = (const char *)wu->data + (size_t)j0 * (size_t)d * esz;
            }
            LLC_TRY(llc_gemm(be, op, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, d, wt, d, xr, d, wdt, z, vt, 0.0f, 0));
            llc_probs_out_kernel<<<llc_grid(c, rows * cols), LLC_THREADS, 0, c->stream>>>(
                out, nv, z, vt, rows, cols, r0, j0, vsel, V, has_b ? bu->data : NULL, has_b ? (int)bu->dtype : 0, lse);
            LLC_LAUNCHED(be, op);
        }
    }
    return LL_OK;
}
