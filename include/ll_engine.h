/* ll_engine.h: the forward pass with residual-stream capture, and the lens over the captured points,
 * run through the backend op table (one orchestration path for every backend). */
#ifndef LL_ENGINE_H
#define LL_ENGINE_H

#include "ll_backend.h"
#include "ll_comm.h"
#include "ll_model.h"

#include <signal.h>
#include <stdint.h>

#define LL_POINT_NAME_MAX 24

/* Which residual-stream points are captured, in depth order. */
typedef struct ll_points {
    int n;
    char (*names)[LL_POINT_NAME_MAX]; /* [n] "embed", "mid.3", "post.3" */
    int32_t *layers;                  /* [n] layer, -1 for embed */
    int embed;                        /* index of the embed point or -1 */
    int *mid;                         /* [n_layers] index of mid.l or -1 */
    int *post;                        /* [n_layers] index of post.l or -1 */
} ll_points;

/* kinds: comma list of embed,mid,post; layers: Python slice "a:b:s", a single index, or NULL for all. */
ll_status ll_points_parse(const char *kinds, const char *layers, int n_layers, ll_points *p, ll_err *err);
void ll_points_free(ll_points *p);

/* A batch of whole prompts packed without padding (host memory). */
typedef struct ll_batch {
    int64_t T;              /* tokens */
    int n_prompts;
    const int32_t *tokens;  /* [T] */
    const int32_t *pos;     /* [T] position within the prompt */
    const int64_t *off;     /* [n_prompts + 1] */
    const int32_t *target;  /* [T] target id or -1 */
} ll_batch;

/* Per-token lens results of one batch, host memory, token-major (as written to HDF5). */
typedef struct ll_lens_out {
    int32_t *topk_ids;      /* [T, P, k] */
    float *topk_probs;      /* [T, P, k] */
    float *entropy;         /* [T, P] */
    float *kl_final;        /* [T, P] */
    float *target_probs;    /* [T, P] */
    float *target_logprobs; /* [T, P] */
    int32_t *target_ranks;  /* [T, P] */
    float *hidden;          /* [T, P, d] when requested */
    uint16_t *probs;        /* [n_probs_rows, P, nv] when requested */
} ll_lens_out;

typedef struct ll_engine_opts {
    int topk;
    int save_hidden;
    int64_t probs_nv;           /* columns of saved probability rows (0 = none saved) */
    const int32_t *probs_vocab; /* [probs_nv] host ids, NULL = all V */
    int64_t max_probs_rows;     /* most tokens per batch whose rows are saved */
    /* Stops a batch within moments: checked between layers and between chunks of lens rows; when it is
     * non-zero the forward or lens returns LL_ERR_INTERRUPTED. NULL: never. */
    const volatile sig_atomic_t *cancel;
    /* Called during a batch with the share of its work done (0..1], e.g. for progress. NULL: not called. */
    void (*progress)(void *ctx, double fraction);
    void *progress_ctx;
} ll_engine_opts;

typedef struct ll_engine ll_engine;

struct ll_shard;
/* How an engine is split over ranks: NULL (or all NULL) for one rank. shard: what this rank holds
 * (include/ll_shard.h); tp: the rank's tensor-parallel group (shard->tp ranks); world: every rank. */
typedef struct ll_engine_par {
    const struct ll_shard *shard;
    ll_comm *tp;
    ll_comm *world;
} ll_engine_par;

/* Memory (bytes of backend memory) the activations and lens buffers take on one rank for batches of up to
 * max_T tokens; weights not included. c: the rank's local config (ll_shard_local_config), n_points: the
 * points its stage captures, tp: tensor-parallel ranks (their exchange buffers), pp: pipeline stages. */
size_t ll_engine_activation_bytes(const ll_config *c, int n_points, const ll_engine_opts *o, int64_t max_T, int tp,
                                  int pp);

/* c: the model's config; w: this rank's weights (ll_weights_upload with par->shard). */
ll_status ll_engine_init(ll_backend *be, const ll_config *c, const ll_weights *w, const ll_engine_par *par,
                         const ll_points *p, const ll_engine_opts *o, int64_t max_T, ll_engine **out, ll_err *err);
void ll_engine_free(ll_engine *e);

/* Runs the forward pass of one batch, capturing the points (forward.c). */
ll_status ll_engine_forward(ll_engine *e, const ll_batch *b, ll_err *err);
/* Runs the lens over the captured points of the batch just forwarded and fills out (lens.c). probs_rows:
 * batch-local token indices whose full rows are saved (n_probs_rows of them). With several ranks every
 * rank calls it; out is filled on world rank 0 only (NULL elsewhere is allowed). */
ll_status ll_engine_lens(ll_engine *e, const ll_batch *b, const int64_t *probs_rows, int64_t n_probs_rows,
                         ll_lens_out *out, ll_err *err);

/* Allocates/frees the host result arrays of a batch of T tokens (n_probs_rows saved rows). */
ll_status ll_lens_out_alloc(ll_lens_out *o, int64_t T, int P, int k, int64_t d, int save_hidden, int64_t n_probs_rows,
                            int64_t nv, ll_err *err);
void ll_lens_out_free(ll_lens_out *o);

/* Bytes this rank handed to its communicators (payload, not what a ring algorithm puts on the wire). */
typedef struct ll_engine_comm_stats {
    double forward_allreduce; /* tensor parallel: attention and MLP partial sums */
    double lens_exchange;     /* tensor parallel: target logits, row states, KL terms, saved probabilities */
    double pipeline;          /* pipeline: residual rows between stages, KL terms to earlier stages, results */
    int64_t tokens;           /* tokens forwarded so far */
} ll_engine_comm_stats;
void ll_engine_comm_stats_get(const ll_engine *e, ll_engine_comm_stats *out);

/* The merge of a lens row's states over vocabulary slices (tensor parallelism), host arrays. packed:
 * [parts, R, LL_LENS_PACK_WORDS(k)] 32-bit words per slice and row: lse, entropy, rank (int32), top-k ids
 * (int32) [k], top-k probabilities [k], each over the slice alone. Out: per row the LSE over the union,
 * entropy H = sum_i pi_i H_i - sum_i pi_i log pi_i (pi_i = exp(lse_i - LSE)), rank = sum of ranks (-1
 * without a target), and the k best of the slices' candidates with probabilities p_i pi_i (descending,
 * ties to the smaller id). pi: [parts, R] the slices' weights, or NULL. */
#define LL_LENS_PACK_WORDS(k) (3 + 2 * (int64_t)(k))
void ll_lens_merge(int parts, int64_t R, int k, const uint32_t *packed, float *lse, float *ent, int32_t *rank,
                   int32_t *ids, float *probs, float *pi);

#endif
