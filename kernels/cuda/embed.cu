/* embed.cu: token (and learned position) embeddings.
 *
 * Math: x[t, i] = wte[ids[t], i] (+ wpe[pos[t], i] when wpe != NULL), for t < T, i < d.
 * Layout: x [T, d] fp32 row-major; wte [V, d] and wpe [P, d] in their stored dtype (BF16, F16 or F32),
 *   widened exactly to fp32; ids[T], pos[T] int32, device memory.
 * Precision: the gather is exact; the sum of the two embeddings is one fp32 addition, as on the CPU.
 * Launch: grid-stride loop over the T*d outputs (int64 index), 256 threads; no shared memory.
 * Preconditions: wte->cols == d (and wpe->cols == d). An id outside [0, V) or a position outside
 *   [0, P) cannot be reported from the device: the whole row becomes NaN, which every later op
 *   propagates into the lens statistics (the host validates ids before upload).
 * Determinism: yes (no reductions).
 * CPU reference: kernels/cpu (embed); test: tests/gpu/test_backend_ops.c, case "embed". */
#include "cuda_common.cuh"

__global__ void llc_embed_kernel(float *__restrict__ x, const void *__restrict__ wte, int wte_dt, int64_t V,
                                 const void *__restrict__ wpe, int wpe_dt, int64_t P,
                                 const int32_t *__restrict__ ids, const int32_t *__restrict__ pos, int64_t T,
                                 int64_t d) {
    int64_t n = T * d;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = e / d, i = e - t * d;
        int64_t id = ids[t];
        float v;
        if (id < 0 || id >= V) {
            v = NAN;
        } else {
            v = llc_load(wte, wte_dt, id * d + i);
            if (wpe) {
                int64_t p = pos[t];
                v = (p < 0 || p >= P) ? NAN : v + llc_load(wpe, wpe_dt, p * d + i);
            }
        }
        x[e] = v;
    }
}

ll_status llc_embed(ll_backend *be, float *x, const ll_wt *wte, const ll_wt *wpe, const int32_t *ids,
                    const int32_t *pos, int64_t T, int64_t d) {
    const char *op = "embed";
    LLC_REQUIRE(be, op, x && wte && wte->data && ids && T >= 0 && d > 0);
    LLC_REQUIRE(be, op, wte->cols == d && llc_dtype_valid(wte->dtype));
    const int has_wpe = wpe && wpe->data;
    if (has_wpe) LLC_REQUIRE(be, op, pos && wpe->cols == d && llc_dtype_valid(wpe->dtype));
    if (T == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    llc_embed_kernel<<<llc_grid(c, T * d), LLC_THREADS, 0, c->stream>>>(
        x, wte->data, (int)wte->dtype, wte->rows, has_wpe ? wpe->data : NULL, has_wpe ? (int)wpe->dtype : 0,
        has_wpe ? wpe->rows : 0, ids, pos, T, d);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}
