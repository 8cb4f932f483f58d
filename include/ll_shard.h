/* ll_shard.h: which part of a model one rank holds under tensor x pipeline parallelism.
 *
 * World rank = pp_rank * tp + tp_rank (tensor-parallel groups innermost, so that a group sits within a
 * node when ranks are numbered node by node). A tensor-parallel rank holds (Megatron-style):
 *   - query heads [head0, head0 + n_heads) and the key/value heads they read: [kv0, kv0 + n_kv), a split
 *     of the KV heads when tp divides them, else (fewer KV heads than ranks) the one KV head its query
 *     heads share, replicated across the ranks that share it;
 *   - MLP columns [ff0, ff0 + n_ff) of the up/gate projections (column-parallel) and the same rows of
 *     the down projection (row-parallel); the attention output projection by the same heads;
 *   - unembedding rows [v0, v0 + n_v) (vocabulary-parallel lens), balanced, need not divide evenly;
 *   - norms (and row-parallel biases, added by tp_rank 0 only) in full.
 * A pipeline stage holds layers [layer0, layer1), contiguous and balanced; the first stage also the token
 * (and learned position) embedding; every stage the final norm and its unembedding rows, since each
 * stage runs the lens on its own captured points. Fused QKV layouts (GPT-2 [q|k|v] columns, GPT-NeoX
 * per-head [q_h k_h v_h] rows) are split per head. */
#ifndef LL_SHARD_H
#define LL_SHARD_H

#include "ll_model.h"

#include <stdint.h>

/* The most pipeline stages a run may have. */
#define LL_MAX_STAGES 256
/* The most tensor-parallel ranks in a group. */
#define LL_MAX_TP 1024

typedef struct ll_shard {
    int tp, pp;           /* group sizes; tp * pp = world */
    int rank;             /* world rank */
    int tp_rank, pp_rank;
    int layer0, layer1;   /* this stage's layers */
    int head0, n_heads;   /* query heads */
    int kv0, n_kv;        /* key/value heads */
    int64_t ff0, n_ff;    /* MLP columns */
    int64_t v0, n_v;      /* unembedding rows */
    int64_t vocab;        /* the whole vocabulary */
    int embed;            /* holds the token/position embedding (first stage) */
} ll_shard;

/* Checks that c can be split tp x pp ways; the error (LL_ERR_USAGE) names the option and the count that
 * does not divide ("--tp 3 does not divide the 32 attention heads of ..."). */
ll_status ll_shard_check(const ll_config *c, int tp, int pp, ll_err *err);
/* The part of c world rank `rank` holds (c checked by ll_shard_check). */
void ll_shard_make(const ll_config *c, int tp, int pp, int rank, ll_shard *s);
/* The shard of a one-rank run: everything. */
void ll_shard_whole(const ll_config *c, ll_shard *s);
/* The config the rank's forward pass runs with: local head, KV head and MLP counts; everything else as c. */
void ll_shard_local_config(const ll_config *c, const ll_shard *s, ll_config *local);

/* Up to three contiguous ranges per dimension of a stored [rows, cols] tensor (a vector is [1, n]):
 * the rank's tensor is the rows of the row ranges, in order, by the columns of the column ranges. */
typedef struct ll_range {
    int64_t start, n;
} ll_range;
typedef struct ll_slice {
    int held;             /* 0: this rank does not hold the tensor */
    int nr, nc;           /* range counts; 0 = the whole dimension */
    ll_range r[3], c[3];
    int64_t rows, cols;   /* the rank's shape */
} ll_slice;
/* The slice of tensor sp (a spec of c, shape [rows, cols] or [n]) this rank holds. The token embedding of
 * a tied model at a stage without the embedding is its unembedding rows. */
void ll_shard_slice(const ll_config *c, const ll_shard *s, const ll_tensor_spec *sp, ll_slice *out);
/* Copies the slice of a row-major [rows, cols] tensor of elem-byte elements into dst (rows x cols of the
 * slice). */
void ll_slice_copy(const ll_slice *sl, const void *src, int64_t rows, int64_t cols, size_t elem, void *dst);
/* Whether the slice is one contiguous run of the source (whole rows of one row range), and its byte
 * offset then. */
int ll_slice_contiguous(const ll_slice *sl, int64_t cols, size_t elem, size_t *offset);

/* Bytes of the tensors this rank holds: elem_bytes[i] per element of specs[i] (as the backend keeps it). */
size_t ll_shard_weight_bytes(const ll_config *c, const ll_shard *s, const ll_tensor_spec *specs, int n_specs,
                             const double *elem_bytes);

struct ll_points;
/* Which of the points p this rank's stage captures: local[i] = slot of point i on this stage or -1; the
 * embed point belongs to the first stage, mid.l and post.l to the stage holding layer l. Returns the
 * number of points the stage captures. local may be NULL. */
int ll_shard_points(const ll_shard *s, const int32_t *point_layers, int n_points, int *local);

#endif
