/* memplan.c: memory plan of a run (weights + activations + backend scratch). */
#include "ll_memplan.h"

#include <stdio.h>
#include <string.h>

/* Backend scratch budgets: the CPU lens works in 2048 x 4096 float tiles (32 MiB); the CUDA lens tile
 * buffer is capped at 256 MiB (LL_CUDA_LENS_TILE_BYTES) and cuBLAS gets a fixed workspace, plus room for
 * the bf16/f16 copies of matmul inputs. The figures are upper bounds of what the backends allocate. */
#define LL_PLAN_CPU_SCRATCH ((size_t)64 << 20)
#define LL_PLAN_CUDA_SCRATCH ((size_t)512 << 20)

void ll_memplan_compute(const ll_model_files *m, const char *backend, const ll_points *p, const ll_engine_opts *o,
                        int64_t max_T, ll_memplan *out) {
    memset(out, 0, sizeof *out);
    int cpu = !strcmp(backend, "cpu");
    for (int i = 0; i < m->n_specs; i++)
        out->weights += cpu ? (size_t)ll_st_numel(m->bound[i]) * 4 : m->bound[i]->nbytes;
    out->activations = ll_engine_activation_bytes(&m->cfg, p, o, max_T);
    if (!cpu) { /* matmul inputs cast to the weights' dtype: the widest activation, in 2 bytes */
        int64_t w = m->cfg.d_ff > 3 * m->cfg.d_model ? m->cfg.d_ff : 3 * m->cfg.d_model;
        out->activations += (size_t)(max_T * w) * 2;
    }
    out->scratch = cpu ? LL_PLAN_CPU_SCRATCH : LL_PLAN_CUDA_SCRATCH;
    out->total = out->weights + out->activations + out->scratch;
}

void ll_memplan_human(double b, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) b /= 1024, i++;
    snprintf(buf, cap, "%.2f %s", b, u[i]);
}
