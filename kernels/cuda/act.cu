/* act.cu: elementwise activations and the residual add.
 *
 * Math: act:    x = gelu_tanh(x) or gelu_erf(x)   (ll_gelu_tanh / ll_gelu_erf from ll_math.h)
 *       swiglu: y = silu(gate) * up              (ll_silu; y may alias gate)
 *       add:    y += x
 * Layout: flat fp32 arrays of n elements.
 * Precision: fp32, the same formulas as the CPU; only the device's tanhf/erff/expf differ (<= 2 ulp).
 * Launch: grid-stride loops, 256 threads, int64 indices; no shared memory.
 * Preconditions: n >= 0; for swiglu, gate and up do not partially overlap (y == gate is allowed: each
 *   element is read before it is written, by the same thread).
 * Determinism: yes.
 * CPU reference: kernels/cpu (act, swiglu, add); test: tests/gpu/test_backend_ops.c, "act", "swiglu",
 *   "add". */
#include "cuda_common.cuh"

__global__ void llc_act_kernel(float *x, int64_t n, int kind) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = kind == LL_ACT_GELU_TANH ? ll_gelu_tanh(x[i]) : ll_gelu_erf(x[i]);
}

__global__ void llc_swiglu_kernel(float *y, const float *gate, const float *up, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = ll_silu(gate[i]) * up[i];
}

__global__ void llc_add_kernel(float *y, const float *x, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

ll_status llc_act(ll_backend *be, float *x, int64_t n, ll_act kind) {
    const char *op = "act";
    LLC_REQUIRE(be, op, x && n >= 0 && (kind == LL_ACT_GELU_TANH || kind == LL_ACT_GELU_ERF));
    if (n == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    llc_act_kernel<<<llc_grid(c, n), LLC_THREADS, 0, c->stream>>>(x, n, (int)kind);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}

ll_status llc_swiglu(ll_backend *be, float *y, const float *gate, const float *up, int64_t n) {
    const char *op = "swiglu";
    LLC_REQUIRE(be, op, y && gate && up && n >= 0);
    if (n == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    llc_swiglu_kernel<<<llc_grid(c, n), LLC_THREADS, 0, c->stream>>>(y, gate, up, n);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}

ll_status llc_add(ll_backend *be, float *y, const float *x, int64_t n) {
    const char *op = "add";
    LLC_REQUIRE(be, op, y && x && n >= 0);
    if (n == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    llc_add_kernel<<<llc_grid(c, n), LLC_THREADS, 0, c->stream>>>(y, x, n);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}
