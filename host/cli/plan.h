/* plan.h: `logitlens plan`: the memory every rank of a tensor x pipeline split needs and a roofline
 * estimate of its throughput, from config.json alone (no weights). plan_model.c computes one split,
 * plan_print.c prints the table and the JSON, cli_plan.c parses the options and chooses.
 *
 * Memory per rank: the weights it holds (ll_shard_weight_bytes at the dtype's bytes per element), the
 * engine's activation and lens buffers (ll_engine_activation_bytes with the rank's local config), and the
 * CUDA backend's scratch (ll_cuda_plan.h, combined as host/engine/memplan.c combines it).
 *
 * Time per batch of T tokens (docs/scale-out.md has the derivation), with m = 2 pp micro-batches (1 without a
 * pipeline) of T_m = T / m tokens; per pipeline stage s, for one micro-batch:
 *   forward_s = max(2 T_m N_s / F, W_s / B) + 2 L_s AR(T_m d 4) / I + T_m d 4 / link(s, s+1)
 *     N_s: the rank's per-layer matrix elements, W_s: bytes of its per-layer weights (read by every
 *     micro-batch), L_s: its layers, AR(x) = 2 (tp-1)/tp x (all-reduce bus traffic), F FLOP/s, B memory
 *     bytes/s, I the interconnect;
 *   forward = max_s forward_s x (m + pp - 1)   (the pipeline's bubble is (pp-1)/(m+pp-1));
 *   lens_s = max(2 d n_v R_s / F, n_v d e / B) + all-gather of the row states (tp > 1), once per batch;
 *   final  = max(6 d n_v T / F, n_v d e / B) + the group's exchange (last stage: one pass and lens_expect
 *            over the T final rows);
 *   lens   = final + max(lens_last, u to the other stages + max_{s < last} lens_s) + results to rank 0
 *            (earlier stages wait for u, p.b and H_final before their pass, as host/engine/lens.c orders it).
 * A link between ranks on different nodes (rank / gpus differs) runs at the network's rate. */
#ifndef LL_PLAN_H
#define LL_PLAN_H

#include "ll_common.h"
#include "ll_engine.h"
#include "ll_model.h"

#include <stdio.h>

/* Defaults: an H200-class GPU as ../shared/LENS-MATH.md measures it (bf16 GEMM ~790 TFLOP/s, ~4.3 TB/s of
 * memory, NCCL all-reduce bus bandwidth 370-480 GB/s over NVLink) and one 400 Gb/s NIC per GPU between
 * nodes. fp32 matmuls run on the CUDA cores (an H100/H200 peaks at ~67 TFLOP/s there). Rates in units of
 * TFLOP/s and GB/s. */
#define PLAN_TFLOPS_16 790.0
#define PLAN_TFLOPS_32 60.0
#define PLAN_BANDWIDTH_GBS 4300.0
#define PLAN_INTERCONNECT_GBS 400.0
#define PLAN_NETWORK_GBS 50.0

typedef struct ll_plan_hw {
    int gpus;            /* GPUs (ranks) per node */
    int nodes;
    double gpu_mem;      /* bytes of memory per GPU */
    double flops;        /* FLOP/s per GPU (matmuls in the dtype) */
    double bandwidth;    /* bytes/s of GPU memory */
    double interconnect; /* bytes/s, all-reduce bus bandwidth and point-to-point rate within a node */
    double network;      /* bytes/s per GPU between nodes */
} ll_plan_hw;

typedef struct ll_plan_job {
    const ll_config *cfg;
    const ll_tensor_spec *specs; /* [n_specs] the tensors config.json implies */
    int n_specs;
    const ll_points *pts;        /* the captured points */
    int topk;
    int64_t batch_tokens;        /* T */
    ll_dtype dtype;              /* the weights' dtype on the GPU */
} ll_plan_job;

typedef struct ll_plan_rank {
    double weights, activations, scratch, total; /* bytes */
} ll_plan_rank;

typedef struct ll_plan_split {
    int tp, pp;
    int valid;             /* ll_shard_check accepts it and a tensor-parallel group stays within a node */
    int fits;              /* valid and every rank's total <= hw->gpu_mem */
    char reason[LL_ERR_MSG_MAX]; /* why it is not valid or does not fit; "" when it fits */
    int worst;             /* the rank needing the most memory */
    ll_plan_rank *ranks;   /* [tp * pp] when valid (malloc'ed) */
    int micro;             /* micro-batches m (1 without pipeline) */
    double bubble;         /* (pp - 1) / (m + pp - 1) */
    double t_forward;      /* seconds per batch: the pipelined forward, bubble and its communication included */
    double t_lens;         /* seconds per batch: every stage's lens, its exchanges and the results to rank 0 */
    double t_comm;         /* seconds of communication on the critical path (part of the two above) */
    double t_batch;        /* t_forward + t_lens */
    double tokens_per_s;   /* T / t_batch */
} ll_plan_split;

/* Evaluates splitting job over tp x pp ranks (tp * pp = hw->gpus * hw->nodes) on hw. An invalid split is
 * not an error (out->valid = 0 with the reason); only running out of memory is. */
ll_status ll_plan_split_eval(const ll_plan_job *job, const ll_plan_hw *hw, int tp, int pp, ll_plan_split *out,
                             ll_err *err);
void ll_plan_split_free(ll_plan_split *s);

/* What plan_print.c shows besides the splits. */
typedef struct ll_plan_report {
    const char *model;       /* --model as given */
    const ll_plan_job *job;
    const ll_plan_hw *hw;
    const char *points_arg;  /* --points as given, or NULL */
    const char *layers_arg;  /* --layers as given, or NULL */
    double n_params;         /* parameters of the whole model */
    const ll_plan_split *splits; /* [n_splits] */
    int n_splits;
    int chosen;              /* index into splits, or -1 */
    const char *verdict;     /* one line: why nothing fits, or NULL */
} ll_plan_report;

/* The srun line that runs the chosen split (malloc'ed). */
char *ll_plan_launch_line(const ll_plan_report *r);
/* The table of every split, the chosen one and its launch line. */
void ll_plan_print_table(FILE *f, const ll_plan_report *r);
/* The same as JSON (docs/cli.md lists the keys); returns a malloc'ed string or NULL when out of memory. */
char *ll_plan_json(const ll_plan_report *r);

#endif
