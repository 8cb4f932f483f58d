/* cpu_internal.h: what the files of the CPU backend share: its context, the op functions that
 * cpu_backend.c puts in the table, and argument checks that produce the backend's error messages.
 *
 * The CPU backend computes in float32 on host memory; its ops run synchronously (sync() is a no-op).
 * Threading: OpenMP inside each op, OpenBLAS threads inside each cblas call, and never a cblas call
 * inside an OpenMP parallel region (the pthread OpenBLAS and libgomp would oversubscribe the cores). */
#ifndef LL_CPU_INTERNAL_H
#define LL_CPU_INTERNAL_H

#include "ll_backend.h"

#include <stdint.h>

/* Default lens tiles: scratch is LL_CPU_LENS_ROWS x LL_CPU_LENS_COLS floats (32 MiB), independent of
 * the number of rows. The vocabulary tile is a multiple of 64 so that the epilogue's 64-wide chunks
 * only have a tail in the last tile. Tall row blocks mean few switches between the OpenBLAS GEMM and
 * the OpenMP epilogue: after each parallel region libgomp's idle threads spin (GOMP_SPINCOUNT) on the
 * cores the next GEMM needs, which cost 4-6 ns per logit with 512-row blocks against ~2 with 2048
 * (bench/cpu_ops/README.md). */
#define LL_CPU_LENS_ROWS 2048
#define LL_CPU_LENS_COLS 4096

/* Hot per-element loops are compiled twice: AVX2 (8 float lanes) where the CPU has it, the x86-64
 * baseline (SSE2) elsewhere; the dynamic loader picks one clone at start-up (GNU ifunc). The build's
 * -O2 has no -march, so without this the compiler may only use SSE2. -DLL_CPU_NO_CLONES builds the
 * baseline only (to test that path on an AVX2 machine). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LL_CPU_NO_CLONES)
#define LL_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LL_CPU_CLONES
#endif

/* Alignment of every buffer the backend hands out (one cache line, an AVX-512 vector). */
#define LL_CPU_ALIGN 64

typedef struct ll_cpu_ctx {
    int threads;       /* OpenMP and OpenBLAS threads */
    int64_t lens_rows; /* lens row block (rows per GEMM tile) */
    int64_t lens_cols; /* lens vocabulary tile (columns per GEMM tile), multiple of 64 */
} ll_cpu_ctx;

/* Fills be->err with "cpu <op>: <message>" and returns status. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
ll_status ll_cpu_fail(ll_backend *be, ll_status status, const char *op, const char *fmt, ...);

/* Checks that w holds an F32 tensor of exactly n elements (any [rows, cols] with rows*cols == n).
 * what names the tensor in the message ("weight", "bias"). */
ll_status ll_cpu_check_vec(ll_backend *be, const char *op, const char *what, const ll_wt *w, int64_t n);
/* Checks that w holds an F32 tensor of shape [rows, cols]. */
ll_status ll_cpu_check_mat(ll_backend *be, const char *op, const char *what, const ll_wt *w, int64_t rows,
                           int64_t cols);

/* Allocates n floats (n * elem bytes, overflow-checked) aligned to LL_CPU_ALIGN, uninitialized;
 * NULL on overflow or exhaustion. Free with free(). */
void *ll_cpu_aligned_alloc(size_t count, size_t elem);

/* Test and benchmark hook: sets the lens tiles (rows >= 1, cols a positive multiple of 64).
 * Returns LL_ERR_INTERNAL for other values. */
ll_status ll_cpu_set_lens_tiles(ll_backend *be, int64_t rows, int64_t cols);

/* memory + weights (cpu_memory.c) */
ll_status ll_cpu_alloc(ll_backend *be, size_t bytes, void **out);
void ll_cpu_dealloc(ll_backend *be, void *p);
ll_status ll_cpu_upload(ll_backend *be, void *dst, const void *host_src, size_t bytes);
ll_status ll_cpu_download(ll_backend *be, void *host_dst, const void *src, size_t bytes);
ll_status ll_cpu_copy(ll_backend *be, void *dst, const void *src, size_t bytes);
ll_status ll_cpu_sync(ll_backend *be);
ll_status ll_cpu_mem_info(ll_backend *be, size_t *free_bytes, size_t *total_bytes);
ll_status ll_cpu_upload_weight(ll_backend *be, const void *host_src, ll_dtype src_dtype, int64_t rows,
                               int64_t cols, ll_wt *out);
void ll_cpu_free_weight(ll_backend *be, ll_wt *w);

/* forward ops (cpu_embed.c, cpu_norm.c, cpu_matmul.c, cpu_rope.c, cpu_attention.c, cpu_act.c) */
ll_status ll_cpu_embed(ll_backend *be, float *x, const ll_wt *wte, const ll_wt *wpe, const int32_t *ids,
                       const int32_t *pos, int64_t T, int64_t d);
ll_status ll_cpu_layernorm(ll_backend *be, float *y, const float *x, const ll_wt *w, const ll_wt *b,
                           int64_t T, int64_t d, float eps);
ll_status ll_cpu_rmsnorm(ll_backend *be, float *y, const float *x, const ll_wt *w, int64_t T, int64_t d,
                         float eps);
ll_status ll_cpu_matmul(ll_backend *be, float *y, const float *x, const ll_wt *w, ll_wlayout layout,
                        const ll_wt *bias, int64_t T, int64_t N, int64_t K);
ll_status ll_cpu_rope(ll_backend *be, float *x, int64_t T, int64_t ld, int n_heads, int64_t hs,
                      const ll_rope_params *p, const int32_t *pos);
ll_status ll_cpu_attention(ll_backend *be, float *out, const float *q, const float *k, const float *v,
                           const ll_attn_layout *L, const int64_t *off, int n_prompts, int64_t T);
ll_status ll_cpu_act(ll_backend *be, float *x, int64_t n, ll_act kind);
ll_status ll_cpu_swiglu(ll_backend *be, float *y, const float *gate, const float *up, int64_t n);
ll_status ll_cpu_add(ll_backend *be, float *y, const float *x, int64_t n);

/* Running statistics of one lens row across vocabulary tiles (cpu_lens_epilogue.c). */
typedef struct ll_cpu_lens_row {
    ll_lse_state lse; /* online (m, S, U) */
    int64_t above;    /* logits strictly above the target logit, target excluded */
    int ntop;         /* current length of the row's top-k list */
} ll_cpu_lens_row;

/* Epilogue of one row on one tile: z[0..nv) are the logits of ids v0 .. v0+nv-1 (bias included), zt
 * the row's target logit and tgt its target id (< 0: none); ids/vals the row's top-k list of capacity
 * k (vals hold logits until the end of the pass); st the row's running state. */
void ll_cpu_lens_row_tile(const float *z, int64_t nv, int64_t v0, float zt, int32_t tgt, int k, int32_t *ids,
                          float *vals, ll_cpu_lens_row *st);
/* z[j] = exp(z[j] + b[j] - lse) in place over n logits (b may be NULL); returns sum_j z[j] and, when pb
 * is not NULL, stores sum_j z[j] b[j] there. */
double ll_cpu_lens_prob_row(float *z, const float *b, int64_t n, float lse, double *pb);

/* lens ops (cpu_lens.c) */
ll_status ll_cpu_lens_target_logits(ll_backend *be, float *zt, const float *x, const ll_wt *wu,
                                    const ll_wt *bu, const int32_t *target, int64_t R, int64_t d);
ll_status ll_cpu_lens_pass(ll_backend *be, const ll_lens_pass_args *a);
ll_status ll_cpu_lens_expect(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu,
                             const ll_wt *bu, const float *lse, int64_t T, int64_t d, int64_t V);
ll_status ll_cpu_lens_kl(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb,
                         const float *hf, const float *lse, int64_t R, int64_t T, int64_t d);
ll_status ll_cpu_lens_probs(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu, const ll_wt *bu,
                            const float *lse, int64_t R, int64_t d, int64_t V, const int32_t *vsel,
                            int64_t nv);

#endif
