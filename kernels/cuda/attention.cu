/* attention.cu: causal softmax attention over packed variable-length prompts, with GQA.
 *
 * Math: for query token t of prompt j (tokens off[j] .. off[j+1]-1) and head h, with kv head
 *   g = h / (n_heads / n_kv_heads):
 *     s(u) = scale * q(t, h) . k(u, g)          for off[j] <= u <= t, and t - window < u when window > 0
 *     out(t, h) = sum_u softmax(s)(u) v(u, g)
 *   computed with the online softmax (running max m, running sum l, output rescaled by exp(m_old - m)):
 *   no [T x T] score matrix exists anywhere, per head or otherwise.
 * Layout: q/k/v element (t, head, i) at q[t * ldq + head * hsq + i] (ll_attn_layout: fused QKV rows,
 *   NeoX's head-interleaved rows or separate buffers); out [T, n_heads * head_dim] contiguous fp32.
 * Precision: fp32 throughout (scores, exp, sums, output); expf, not __expf.
 * Launch: grid (ceil(T / 16), n_heads), 128 threads = 4 warps, each warp owns 4 query rows of the
 *   block's 16. Key tiles of 32 (one key per lane for the scores; for P.V each lane owns dims
 *   lane, lane+32, ... < head_dim, <= 8 of them, in registers).
 * Shared memory (dynamic): Q tile [16][hd] + K tile [32][hd|1] (odd row stride: the lanes' reads of
 *   one column hit 32 different banks) + V tile [32][hd] + 16 prompt starts (int64):
 *   (16 hd + 32 (hd|1) + 32 hd) * 4 + 128 bytes, 40 KB at hd 128 and 82 KB at hd 256 (opted in with
 *   cudaFuncSetAttribute when above 48 KB).
 * Barriers: one before refilling the K/V tiles (every warp is done with the previous ones), one after
 *   (the tiles are complete). All loops that contain a barrier have block-uniform trip counts.
 * Preconditions: out does not overlap q, k or v; head_dim <= 256, n_heads % n_kv_heads == 0, off[0] = 0 <= off[1] <= ... <= off[n] = T
 *   (device memory, not checked on the host: a token outside every prompt attends to itself only).
 * Determinism: yes (fixed order of keys and of the warp reductions).
 * CPU reference: kernels/cpu (attention); test: tests/gpu/test_backend_ops.c, "attention". */
#include "cuda_common.cuh"

#define ATT_WARPS 4
#define ATT_ROWS_PER_WARP 4
#define ATT_BQ (ATT_WARPS * ATT_ROWS_PER_WARP) /* query rows per block */
#define ATT_BK 32                               /* keys per tile: one per lane */
#define ATT_HD_MAX 256
#define ATT_DPL (ATT_HD_MAX / 32) /* output dims per lane */

static size_t att_smem_bytes(int hd) {
    const int ks = (hd % 2 == 0) ? hd + 1 : hd;
    return (size_t)(ATT_BQ * hd + ATT_BK * ks + ATT_BK * hd) * sizeof(float) + ATT_BQ * sizeof(int64_t);
}

__global__ void __launch_bounds__(ATT_WARPS * 32)
llc_attention_kernel(float *__restrict__ out, const float *__restrict__ q, const float *__restrict__ k,
                     const float *__restrict__ v, ll_attn_layout L, const int64_t *__restrict__ off, int n_prompts,
                     int64_t T) {
    extern __shared__ __align__(16) unsigned char att_smem[];
    const int hd = L.head_dim;
    const int ks = (hd % 2 == 0) ? hd + 1 : hd;
    int64_t *row_start = (int64_t *)att_smem;
    float *Qs = (float *)(att_smem + ATT_BQ * sizeof(int64_t)); /* [BQ][hd] */
    float *Ks = Qs + ATT_BQ * hd;                                /* [BK][ks] */
    float *Vs = Ks + ATT_BK * ks;                                /* [BK][hd] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t q0 = (int64_t)blockIdx.x * ATT_BQ;
    const int h = blockIdx.y;
    const int g = h / (L.n_heads / L.n_kv_heads);
    const int64_t row_end = (q0 + ATT_BQ < T) ? q0 + ATT_BQ : T; /* one past the block's last row */

    for (int idx = tid; idx < ATT_BQ * hd; idx += blockDim.x) {
        const int r = idx / hd, i = idx - r * hd;
        const int64_t t = q0 + r;
        Qs[idx] = t < T ? q[t * L.ldq + (int64_t)h * L.hsq + i] : 0.0f;
    }
    if (tid < ATT_BQ) {
        const int64_t t = q0 + tid;
        int64_t start = t; /* outside every prompt: itself only */
        if (t < T) {
            int lo = 0, hi = n_prompts - 1; /* last j with off[j] <= t */
            while (lo < hi) {
                const int mid = (lo + hi + 1) / 2;
                if (off[mid] <= t) lo = mid;
                else hi = mid - 1;
            }
            if (n_prompts > 0 && off[lo] <= t && t < off[lo + 1]) start = off[lo];
            if (L.window > 0 && t - L.window + 1 > start) start = t - L.window + 1; /* sliding window */
        }
        row_start[tid] = start;
    }
    __syncthreads();

    int64_t kmin = row_start[0];
    for (int r = 1; r < ATT_BQ; r++)
        if (q0 + r < T && row_start[r] < kmin) kmin = row_start[r];
    const int64_t kmax = row_end - 1;

    float o[ATT_ROWS_PER_WARP][ATT_DPL];
    float m[ATT_ROWS_PER_WARP], l[ATT_ROWS_PER_WARP];
#pragma unroll
    for (int rr = 0; rr < ATT_ROWS_PER_WARP; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_DPL; c++) o[rr][c] = 0.0f;
    }

    for (int64_t kt = kmin; kt <= kmax; kt += ATT_BK) {
        __syncthreads(); /* every warp is done with the previous tiles */
        for (int idx = tid; idx < ATT_BK * hd; idx += blockDim.x) {
            const int j = idx / hd, i = idx - j * hd;
            const int64_t u = kt + j;
            const bool ok = u <= kmax;
            Ks[j * ks + i] = ok ? k[u * L.ldk + (int64_t)g * L.hsk + i] : 0.0f;
            Vs[j * hd + i] = ok ? v[u * L.ldv + (int64_t)g * L.hsv + i] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < ATT_ROWS_PER_WARP; rr++) {
            const int r = warp * ATT_ROWS_PER_WARP + rr;
            const int64_t t = q0 + r;
            if (t >= T) continue; /* warp-uniform */
            const int64_t u = kt + lane;
            float s = -INFINITY;
            if (u >= row_start[r] && u <= t) {
                const float *qr = Qs + r * hd;
                const float *kr = Ks + lane * ks;
                float acc = 0.0f;
                for (int i = 0; i < hd; i++) acc = fmaf(qr[i], kr[i], acc);
                s = acc * L.scale;
            }
            const float mt = llc_warp_max(s);
            if (mt == -INFINITY) continue; /* warp-uniform: no key of this tile is visible to row t */
            const float mn = fmaxf(m[rr], mt);
            const float alpha = expf(m[rr] - mn); /* 0 on the first visible tile (m = -inf) */
            const float p = (s == -INFINITY) ? 0.0f : expf(s - mn);
            l[rr] = l[rr] * alpha + llc_warp_sum(p);
            m[rr] = mn;
#pragma unroll
            for (int c = 0; c < ATT_DPL; c++) o[rr][c] *= alpha;
            for (int j = 0; j < ATT_BK; j++) {
                const float pj = __shfl_sync(0xffffffffu, p, j);
                if (pj == 0.0f) continue; /* warp-uniform: pj is broadcast */
                const float *vr = Vs + j * hd;
#pragma unroll
                for (int c = 0; c < ATT_DPL; c++) {
                    const int i = lane + 32 * c;
                    if (i < hd) o[rr][c] = fmaf(pj, vr[i], o[rr][c]);
                }
            }
        }
    }

    const int64_t ldo = (int64_t)L.n_heads * hd;
#pragma unroll
    for (int rr = 0; rr < ATT_ROWS_PER_WARP; rr++) {
        const int64_t t = q0 + warp * ATT_ROWS_PER_WARP + rr;
        if (t >= T) continue;
        const float inv = 1.0f / l[rr]; /* l >= 1: the diagonal key is always visible */
#pragma unroll
        for (int c = 0; c < ATT_DPL; c++) {
            const int i = lane + 32 * c;
            if (i < hd) out[t * ldo + (int64_t)h * hd + i] = o[rr][c] * inv;
        }
    }
}

ll_status llc_attention(ll_backend *be, float *out, const float *q, const float *k, const float *v,
                        const ll_attn_layout *L, const int64_t *off, int n_prompts, int64_t T) {
    const char *op = "attention";
    LLC_REQUIRE(be, op, out && q && k && v && L && off && n_prompts > 0 && T >= 0);
    LLC_REQUIRE(be, op, L->n_heads > 0 && L->n_kv_heads > 0 && L->n_heads % L->n_kv_heads == 0);
    LLC_REQUIRE(be, op, L->head_dim > 0 && L->head_dim <= ATT_HD_MAX && L->n_heads <= 65535);
    LLC_REQUIRE(be, op, L->ldq > 0 && L->ldk > 0 && L->ldv > 0 && L->hsq >= 0 && L->hsk >= 0 && L->hsv >= 0);
    LLC_REQUIRE(be, op, L->window >= 0);
    if (T == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    const size_t smem = att_smem_bytes(L->head_dim);
    if (smem > c->smem_optin)
        return llc_fail(be, LL_ERR_BACKEND, "cuda attention: head_dim %d needs %zu bytes of shared memory, %s allows %zu",
                        L->head_dim, smem, c->name, c->smem_optin);
    if (smem > 48 * 1024)
        LLC_CUDA(be, op, cudaFuncSetAttribute(llc_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              (int)smem));
    const int64_t nblk = (T + ATT_BQ - 1) / ATT_BQ;
    LLC_REQUIRE(be, op, nblk <= INT32_MAX);
    dim3 grid((unsigned)nblk, (unsigned)L->n_heads);
    llc_attention_kernel<<<grid, ATT_WARPS * 32, smem, c->stream>>>(out, q, k, v, *L, off, n_prompts, T);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}
