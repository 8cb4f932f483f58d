/* ll_backend.h: the table of typed operations that forward.c and lens.c run on.
 *
 * A backend is this struct of function pointers plus a private context (ggml's idea). The CPU backend
 * (kernels/cpu, built in) and the CUDA backend (kernels/cuda, a loadable module
 * build/liblogitlens_cuda.so found next to the executable) fill the same table, so there is one
 * orchestration path. All pointers passed to ops are backend memory (host memory for the CPU, device
 * memory for CUDA) obtained from alloc() or upload_weight(), unless a parameter says "host".
 *
 * Conventions:
 * - Activations are float32, row-major, one row per token. T = tokens in the batch (all prompts packed
 *   without padding), d = model width, N/K = matmul output/input widths.
 * - Every op returns LL_OK or an error status with be->err filled (one line, naming the op).
 * - Ops are asynchronous with respect to the host only on backends that say so; download() and
 *   sync() wait for everything queued before them.
 * - Dimension letters: T tokens, d model width, V vocabulary, R lens rows (points x tokens, point-major:
 *   row r = p * T + t), k top-k. */
#ifndef LL_BACKEND_H
#define LL_BACKEND_H

#include "ll_common.h"
#include "ll_math.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A weight tensor as the backend holds it. */
typedef struct ll_wt {
    void *data;     /* backend memory; NULL for an absent optional weight (e.g. no bias) */
    ll_dtype dtype; /* dtype the backend keeps it in (the CPU backend: always F32) */
    int64_t rows;   /* logical shape as stored in the checkpoint: [rows, cols]; vectors: rows = 1 */
    int64_t cols;
} ll_wt;

/* How a matmul weight is stored. */
typedef enum ll_wlayout {
    LL_WLAYOUT_OUT_IN = 0, /* [N, K] (torch nn.Linear): y = x W^T */
    LL_WLAYOUT_IN_OUT = 1, /* [K, N] (GPT-2 Conv1D):      y = x W   */
} ll_wlayout;

typedef enum ll_act {
    LL_ACT_GELU_TANH = 0, /* gelu_new / gelu_pytorch_tanh */
    LL_ACT_GELU_ERF = 1,  /* exact gelu */
} ll_act;

/* Strided view of q, k, v for attention: element (token t, head h, i) of q is
 * q[t * ldq + h * hsq + i]. This covers GPT-2's fused [q|k|v] rows, GPT-NeoX's head-interleaved
 * [q_h k_h v_h]... rows, and separate q/k/v buffers. */
typedef struct ll_attn_layout {
    int n_heads;     /* query heads */
    int n_kv_heads;  /* key/value heads; n_heads % n_kv_heads == 0 (GQA group = n_heads / n_kv_heads) */
    int head_dim;
    int64_t ldq, ldk, ldv; /* row strides, in floats */
    int64_t hsq, hsk, hsv; /* head strides, in floats */
    float scale;     /* softmax scale, usually 1/sqrt(head_dim) */
    int64_t window;  /* sliding window: query t sees keys u with t - window < u <= t (and in its prompt);
                        0 = full causal attention */
} ll_attn_layout;

/* Arguments of the lens pass over the vocabulary (see docs/architecture.md). */
typedef struct ll_lens_pass_args {
    const float *x;      /* [R, d] rows already normalized by the final norm */
    const ll_wt *wu;     /* unembedding [V, d] */
    const ll_wt *bu;     /* unembedding bias [V] or NULL */
    const float *zt;     /* [R] target logit of each row (from lens_target_logits); ignored where target < 0 */
    const int32_t *target; /* [R] target id per row, -1 for none */
    int64_t R, d, V;     /* V: rows of wu (the slice this rank holds under vocabulary parallelism) */
    int k;               /* top-k, 1 <= k <= V */
    /* outputs, backend memory */
    float *lse;          /* [R] log-sum-exp of the row's logits */
    float *entropy;      /* [R] nats */
    int32_t *topk_ids;   /* [R, k] descending by probability; ties: smaller id first */
    float *topk_probs;   /* [R, k] */
    int32_t *rank;       /* [R] number of logits strictly above the target logit; -1 without target */
    /* Vocabulary parallelism: wu (and bu) hold the global ids [v0, v0 + V) of a vocabulary of v_total ids
     * (v_total = 0 means V, v0 = 0: the whole vocabulary). target ids are global and checked against
     * v_total; a target outside [v0, v0 + V) is still a target: every logit of the slice above zt counts
     * (only the target id itself never counts). topk_ids are global ids. lse, entropy and topk_probs are
     * those of the slice alone (softmax over the slice); the caller merges slices (docs/scale-out.md). */
    int64_t v0, v_total;
} ll_lens_pass_args;

typedef struct ll_backend ll_backend;

typedef struct ll_backend_ops {
    const char *name; /* "cpu", "cuda" */

    /* lifetime */
    void (*close)(ll_backend *be); /* frees the context; the ll_backend itself is freed by the caller */

    /* memory */
    ll_status (*alloc)(ll_backend *be, size_t bytes, void **out);
    void (*dealloc)(ll_backend *be, void *p);
    ll_status (*upload)(ll_backend *be, void *dst, const void *host_src, size_t bytes);
    ll_status (*download)(ll_backend *be, void *host_dst, const void *src, size_t bytes);
    ll_status (*copy)(ll_backend *be, void *dst, const void *src, size_t bytes);
    ll_status (*sync)(ll_backend *be);
    ll_status (*mem_info)(ll_backend *be, size_t *free_bytes, size_t *total_bytes);
    /* Makes a backend copy of a checkpoint tensor of n elements stored as src_dtype (host memory,
     * typically memory-mapped), in the dtype the backend computes with. */
    ll_status (*upload_weight)(ll_backend *be, const void *host_src, ll_dtype src_dtype, int64_t rows,
                               int64_t cols, ll_wt *out);
    void (*free_weight)(ll_backend *be, ll_wt *w);

    /* forward ops */
    /* x[t,:] = wte[ids[t],:] (+ wpe[pos[t],:] when wpe != NULL) */
    ll_status (*embed)(ll_backend *be, float *x, const ll_wt *wte, const ll_wt *wpe, const int32_t *ids,
                       const int32_t *pos, int64_t T, int64_t d);
    /* y = (x - mean) / sqrt(var + eps) * w + b, statistics of each row in fp32; b may be NULL */
    ll_status (*layernorm)(ll_backend *be, float *y, const float *x, const ll_wt *w, const ll_wt *b,
                           int64_t T, int64_t d, float eps);
    /* y = x / sqrt(mean(x^2) + eps) * w */
    ll_status (*rmsnorm)(ll_backend *be, float *y, const float *x, const ll_wt *w, int64_t T, int64_t d,
                         float eps);
    /* y[T,N] = x[T,K] W (+ bias[N]); W laid out as layout says */
    ll_status (*matmul)(ll_backend *be, float *y, const float *x, const ll_wt *w, ll_wlayout layout,
                        const ll_wt *bias, int64_t T, int64_t N, int64_t K);
    /* rotate-half RoPE on the first p->rot_dim dims of each of n_heads heads of every row of x
     * (row stride ld, head stride hs), at the positions pos[T] (position within the prompt) */
    ll_status (*rope)(ll_backend *be, float *x, int64_t T, int64_t ld, int n_heads, int64_t hs,
                      const ll_rope_params *p, const int32_t *pos);
    /* causal softmax attention within each prompt: prompt j covers tokens [off[j], off[j+1]);
     * out[T, n_heads * head_dim] contiguous */
    ll_status (*attention)(ll_backend *be, float *out, const float *q, const float *k, const float *v,
                           const ll_attn_layout *L, const int64_t *off, int n_prompts, int64_t T);
    /* x = act(x) elementwise over n floats */
    ll_status (*act)(ll_backend *be, float *x, int64_t n, ll_act kind);
    /* y[i] = silu(gate[i]) * up[i] over n floats (y may alias gate) */
    ll_status (*swiglu)(ll_backend *be, float *y, const float *gate, const float *up, int64_t n);
    /* y[i] += x[i] over n floats */
    ll_status (*add)(ll_backend *be, float *y, const float *x, int64_t n);

    /* lens ops */
    /* zt[r] = x[r,:] . wu[target[r],:] (+ bu[target[r]]); NaN where target[r] < 0 */
    ll_status (*lens_target_logits)(ll_backend *be, float *zt, const float *x, const ll_wt *wu,
                                    const ll_wt *bu, const int32_t *target, int64_t R, int64_t d);
    /* one pass over the vocabulary: online LSE, entropy, top-k, target rank (args above) */
    ll_status (*lens_pass)(ll_backend *be, const ll_lens_pass_args *a);
    /* for the final layer's rows xf[T,d] with log-sum-exp lse[T]: u[t,:] = sum_v p(t,v) wu[v,:] and
     * pb[t] = sum_v p(t,v) bu[v] (0 without bias); the KL terms of docs/architecture.md */
    ll_status (*lens_expect)(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu,
                             const ll_wt *bu, const float *lse, int64_t T, int64_t d, int64_t V);
    /* kl[r] = -hf[t] - (x[r,:] . u[t,:] + pb[t]) + lse[r] with t = r % T, clamped at >= 0; wu is the
     * unembedding the pass used (a backend that rounds x to wu's dtype for its GEMMs rounds x here alike) */
    ll_status (*lens_kl)(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb,
                         const float *hf, const float *lse, int64_t R, int64_t T, int64_t d);
    /* out[r, j] = float16(p(r, vsel[j])) for j < nv; vsel NULL means all V ids (nv == V) */
    ll_status (*lens_probs)(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu,
                            const ll_wt *bu, const float *lse, int64_t R, int64_t d, int64_t V,
                            const int32_t *vsel, int64_t nv);
} ll_backend_ops;

typedef struct ll_backend_opts {
    int threads;   /* CPU threads; 0 = all cores */
    int device;    /* CUDA device index */
    int allow_tf32; /* CUDA: fp32 matmuls may use TF32 */
} ll_backend_opts;

struct ll_backend {
    const ll_backend_ops *ops;
    void *ctx;   /* private to the backend */
    ll_err err;  /* last error of an op */
};

/* Entry point of a backend implementation: fills be->ops and be->ctx. */
typedef ll_status (*ll_backend_init_fn)(ll_backend *be, const ll_backend_opts *opts);

ll_status ll_backend_cpu_init(ll_backend *be, const ll_backend_opts *opts);

/* The CUDA module exports this symbol (extern "C"); the host finds it with dlsym. */
#define LL_CUDA_BACKEND_SYMBOL "ll_backend_cuda_init"
#define LL_CUDA_MODULE_NAME "liblogitlens_cuda.so"

/* Opens a backend by name: "cpu", "cuda", or "auto" (CUDA when its module loads and a device is
 * present, else CPU). On failure err says why (e.g. the module or libcudart is missing). */
ll_status ll_backend_open(const char *name, const ll_backend_opts *opts, ll_backend **out, ll_err *err);
void ll_backend_close(ll_backend *be);

#ifdef __cplusplus
}
#endif
#endif
