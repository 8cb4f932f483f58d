/* cpu_backend.c: the CPU backend's op table, context, thread setup and argument checks.
 *
 * The CPU backend is the reference every CUDA kernel is tested against and the default on machines
 * without a GPU. All ops are synchronous and compute in float32 on host memory (weights are converted
 * to F32 once, at upload). Each op family lives in its own file (cpu_memory.c, cpu_embed.c, cpu_norm.c,
 * cpu_matmul.c, cpu_rope.c, cpu_attention.c, cpu_act.c, cpu_lens.c); tests: tests/c/test_cpu_ops.c.
 *
 * Threads: opts->threads (0 = every core the process may use) is applied to both OpenMP
 * (omp_set_num_threads) and OpenBLAS (openblas_set_num_threads). Both settings are process-wide. */
#include "cpu_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ll_status ll_cpu_fail(ll_backend *be, ll_status status, const char *op, const char *fmt, ...) {
    char msg[LL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ll_fail(&be->err, status, "cpu %s: %s", op, msg);
}

static ll_status check_f32(ll_backend *be, const char *op, const char *what, const ll_wt *w) {
    if (!w || !w->data) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "%s is missing", what);
    if (w->dtype != LL_DTYPE_F32)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "%s has dtype %s, the CPU backend needs F32 (upload_weight)",
                           what, ll_dtype_name(w->dtype));
    return LL_OK;
}

ll_status ll_cpu_check_vec(ll_backend *be, const char *op, const char *what, const ll_wt *w, int64_t n) {
    ll_status st = check_f32(be, op, what, w);
    if (st) return st;
    if (w->rows < 0 || w->cols < 0 || (w->rows != 0 && w->cols > INT64_MAX / w->rows) || w->rows * w->cols != n)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "%s has shape [%lld, %lld], expected %lld elements", what,
                           (long long)w->rows, (long long)w->cols, (long long)n);
    return LL_OK;
}

ll_status ll_cpu_check_mat(ll_backend *be, const char *op, const char *what, const ll_wt *w, int64_t rows,
                           int64_t cols) {
    ll_status st = check_f32(be, op, what, w);
    if (st) return st;
    if (w->rows != rows || w->cols != cols)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "%s has shape [%lld, %lld], expected [%lld, %lld]", what,
                           (long long)w->rows, (long long)w->cols, (long long)rows, (long long)cols);
    return LL_OK;
}

void *ll_cpu_aligned_alloc(size_t count, size_t elem) {
    size_t n;
    if (ll_mul_size(count, elem, &n)) return NULL;
    if (n == 0) n = 1;
    void *p = NULL;
    if (posix_memalign(&p, LL_CPU_ALIGN, n) != 0) return NULL;
    return p;
}

ll_status ll_cpu_set_lens_tiles(ll_backend *be, int64_t rows, int64_t cols) {
    ll_cpu_ctx *c = be->ctx;
    if (rows < 1 || cols < 64 || cols % 64 != 0 || rows > (1 << 20) || cols > (1 << 24))
        return ll_cpu_fail(be, LL_ERR_INTERNAL, "set_lens_tiles",
                           "tiles %lld x %lld: rows must be >= 1, cols a positive multiple of 64",
                           (long long)rows, (long long)cols);
    c->lens_rows = rows;
    c->lens_cols = cols;
    return LL_OK;
}

static void cpu_close(ll_backend *be) {
    free(be->ctx);
    be->ctx = NULL;
}

static const ll_backend_ops cpu_ops = {
    .name = "cpu",
    .close = cpu_close,
    .alloc = ll_cpu_alloc,
    .dealloc = ll_cpu_dealloc,
    .upload = ll_cpu_upload,
    .download = ll_cpu_download,
    .copy = ll_cpu_copy,
    .sync = ll_cpu_sync,
    .mem_info = ll_cpu_mem_info,
    .upload_weight = ll_cpu_upload_weight,
    .free_weight = ll_cpu_free_weight,
    .embed = ll_cpu_embed,
    .layernorm = ll_cpu_layernorm,
    .rmsnorm = ll_cpu_rmsnorm,
    .matmul = ll_cpu_matmul,
    .rope = ll_cpu_rope,
    .attention = ll_cpu_attention,
    .act = ll_cpu_act,
    .swiglu = ll_cpu_swiglu,
    .add = ll_cpu_add,
    .lens_target_logits = ll_cpu_lens_target_logits,
    .lens_pass = ll_cpu_lens_pass,
    .lens_expect = ll_cpu_lens_expect,
    .lens_kl = ll_cpu_lens_kl,
    .lens_probs = ll_cpu_lens_probs,
};

ll_status ll_backend_cpu_init(ll_backend *be, const ll_backend_opts *opts) {
    LL_ASSERT(be != NULL);
    int threads = opts ? opts->threads : 0;
    if (threads < 0)
        return ll_fail(&be->err, LL_ERR_USAGE, "cpu backend: threads must be >= 0 (0 = all cores), got %d",
                       threads);
    if (threads == 0) threads = omp_get_num_procs();
    if (threads < 1) threads = 1;
    ll_cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return ll_fail(&be->err, LL_ERR_NOMEM, "cpu backend: cannot allocate the context");
    c->threads = threads;
    c->lens_rows = LL_CPU_LENS_ROWS;
    c->lens_cols = LL_CPU_LENS_COLS;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    be->ops = &cpu_ops;
    be->ctx = c;
    be->err.msg[0] = 0;
    return LL_OK;
}
