/* ll_memplan.h: the memory a run needs on a backend, computed before anything is loaded, so that a run
 * that cannot fit stops with the required and available bytes instead of failing halfway. */
#ifndef LL_MEMPLAN_H
#define LL_MEMPLAN_H

#include "ll_engine.h"
#include "ll_model.h"

typedef struct ll_memplan {
    size_t weights;     /* weights as the backend keeps them (CPU: float32; CUDA: as stored) */
    size_t activations; /* forward and lens buffers for a batch of max_T tokens */
    size_t scratch;     /* the backend's own bounded buffers (lens vocabulary tiles, GEMM workspace) */
    size_t total;
} ll_memplan;

struct ll_shard;
/* backend: "cpu" or "cuda"; shard: the rank's part of the model (NULL = all of it, one process). */
void ll_memplan_compute(const ll_model_files *m, const char *backend, const struct ll_shard *shard,
                        const ll_points *p, const ll_engine_opts *o, int64_t max_T, ll_memplan *out);

/* The CUDA backend's scratch on one rank (the largest request of any op the run makes, with the tiling of
 * include/ll_cuda_tiling.h, plus the cuBLAS workspace): c is the rank's local config, P its stage's points,
 * V its unembedding rows, half: 16-bit matmul weights, lens_half: a 16-bit unembedding of probs_elem bytes. */
size_t ll_memplan_cuda_scratch(const ll_config *c, int P, int64_t V, const ll_engine_opts *o, int64_t max_T, int half,
                               int lens_half, size_t probs_elem);

/* Formats bytes as "1.23 GiB". */
void ll_memplan_human(double bytes, char *buf, size_t cap);

#endif
