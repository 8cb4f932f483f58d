/* plan_model.c: the memory and the roofline time of one tensor x pipeline split (host/cli/plan.h has the
 * formulas). Everything comes from the config and the shard rules of include/ll_shard.h; nothing is
 * loaded or allocated on a device. */
#include "plan.h"

#include "ll_memplan.h"
#include "ll_shard.h"

#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

static double max2(double a, double b) { return a > b ? a : b; }

/* The CUDA backend's scratch of a rank, as a run plans it (ll_memplan_cuda_scratch) without saved
 * probabilities; lc: the rank's local config, P: its stage's points, V: its unembedding rows, half: 16-bit
 * weights. */
static double cuda_scratch(const ll_config *lc, int P, int64_t V, int topk, int64_t T, int half) {
    ll_engine_opts o = {.topk = topk};
    return (double)ll_memplan_cuda_scratch(lc, P, V, &o, T, half, half, half ? 2 : 4);
}

/* The per-layer work of a rank: matrix elements (2 FLOP each per token) and bytes of every per-layer
 * tensor it holds. */
static void layer_work(const ll_plan_job *job, const ll_shard *sh, double elem, double *mat_elems, double *bytes) {
    *mat_elems = *bytes = 0;
    for (int i = 0; i < job->n_specs; i++) {
        if (job->specs[i].layer < 0) continue;
        ll_slice sl;
        ll_shard_slice(job->cfg, sh, &job->specs[i], &sl);
        if (!sl.held) continue;
        const double n = (double)sl.rows * (double)sl.cols;
        if (job->specs[i].ndim == 2) *mat_elems += n;
        *bytes += n * elem;
    }
}

/* Bytes per second between world ranks a and b: the interconnect within a node, the network between. */
static double link_rate(const ll_plan_hw *hw, int a, int b) {
    return a / hw->gpus == b / hw->gpus ? hw->interconnect : hw->network;
}

/* Bus traffic of an all-reduce of `bytes` over n ranks (nccl-tests' bus bandwidth factor). */
static double allreduce_traffic(double bytes, int n) { return n > 1 ? 2.0 * (n - 1) / n * bytes : 0; }

/* Memory of every rank; fills out->ranks, worst, fits and the reason. */
static ll_status split_memory(const ll_plan_job *job, const ll_plan_hw *hw, ll_plan_split *out, ll_err *err) {
    const ll_config *c = job->cfg;
    const int world = out->tp * out->pp;
    const double elem = (double)ll_dtype_size(job->dtype);
    double *eb = malloc((size_t)(job->n_specs > 0 ? job->n_specs : 1) * sizeof *eb);
    out->ranks = calloc((size_t)world, sizeof *out->ranks);
    if (!eb || !out->ranks) {
        free(eb);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < job->n_specs; i++) eb[i] = elem;
    const ll_engine_opts eo = {.topk = job->topk};
    const int half = job->dtype != LL_DTYPE_F32;
    for (int r = 0; r < world; r++) {
        ll_shard sh;
        ll_config lc;
        ll_shard_make(c, out->tp, out->pp, r, &sh);
        ll_shard_local_config(c, &sh, &lc);
        const int P = ll_shard_points(&sh, job->pts->layers, job->pts->n, NULL);
        ll_plan_rank *k = &out->ranks[r];
        k->weights = (double)ll_shard_weight_bytes(c, &sh, job->specs, job->n_specs, eb);
        k->activations = (double)ll_engine_activation_bytes(&lc, P, &eo, job->batch_tokens, out->tp, out->pp);
        k->scratch = cuda_scratch(&lc, P, sh.n_v, job->topk, job->batch_tokens, half);
        k->total = k->weights + k->activations + k->scratch;
        if (k->total > out->ranks[out->worst].total) out->worst = r;
    }
    free(eb);
    const ll_plan_rank *w = &out->ranks[out->worst];
    out->fits = w->total <= hw->gpu_mem;
    if (!out->fits)
        snprintf(out->reason, sizeof out->reason,
                 "rank %d needs %.1f GiB (weights %.1f, activations %.1f, scratch %.1f) > %.1f GiB", out->worst,
                 w->total / GIB, w->weights / GIB, w->activations / GIB, w->scratch / GIB, hw->gpu_mem / GIB);
    return LL_OK;
}

/* The roofline time of a batch (plan.h). */
static void split_time(const ll_plan_job *job, const ll_plan_hw *hw, ll_plan_split *out) {
    const ll_config *c = job->cfg;
    const int tp = out->tp, pp = out->pp, last = pp - 1;
    const double T = (double)job->batch_tokens, d = (double)c->d_model, elem = (double)ll_dtype_size(job->dtype);
    const double F = hw->flops, B = hw->bandwidth, I = hw->interconnect;
    const double row_state = (double)LL_LENS_PACK_WORDS(job->topk) * 4; /* bytes a rank gives per row */
    const double result_row = (2.0 * job->topk + 5) * 4; /* top-k ids and p, H, KL, rank, z_target, LSE */
    out->micro = pp > 1 ? 2 * pp : 1;
    out->bubble = (double)(pp - 1) / (double)(out->micro + pp - 1);
    const double Tm = T / out->micro; /* tokens of a micro-batch; each one reads the stage's weights again */
    double fwd_max = 0, fwd_comm_at_max = 0, lens_last = 0, lens_other = 0, lens_comm = 0, sent = 0, gather = 0;
    double final_t = 0, final_comm = 0;
    for (int s = 0; s < pp; s++) {
        double fwd_c = 0, lens_c = 0, n_v = 0;
        int layers = 0, P = 0;
        for (int j = 0; j < tp; j++) { /* the slowest rank of the stage */
            ll_shard sh;
            ll_shard_make(c, tp, pp, s * tp + j, &sh);
            double mat, bytes;
            layer_work(job, &sh, elem, &mat, &bytes);
            fwd_c = max2(fwd_c, max2(2 * Tm * mat / F, bytes / B));
            n_v = max2(n_v, (double)sh.n_v);
            layers = sh.layer1 - sh.layer0;
            P = ll_shard_points(&sh, job->pts->layers, job->pts->n, NULL);
        }
        const double R = P * T, unembed_bytes = n_v * d * elem;
        double fwd_comm = 2.0 * layers * allreduce_traffic(Tm * d * 4, tp) / I; /* per micro-batch */
        if (s < last) fwd_comm += Tm * d * 4 / link_rate(hw, s * tp, (s + 1) * tp);
        if (fwd_c + fwd_comm > fwd_max) fwd_max = fwd_c + fwd_comm, fwd_comm_at_max = fwd_comm;
        if (R > 0) lens_c = max2(2 * d * n_v * R / F, unembed_bytes / B);
        const double ex = tp > 1 ? (tp - 1) * R * row_state / I : 0; /* all-gather of the row states */
        lens_comm = max2(lens_comm, ex);
        if (s == last) {
            lens_last = lens_c + ex;
            final_t = max2(6 * d * n_v * T / F, unembed_bytes / B);
            if (tp > 1) final_comm = ((tp - 1) * T * row_state + allreduce_traffic(T * (d + 1) * 4, tp)) / I;
        } else {
            sent += T * (d + 2) * 4 / link_rate(hw, last * tp, s * tp); /* u, p.b, H_final, in stage order */
            lens_other = max2(lens_other, sent + lens_c + ex);
        }
        if (s > 0) gather += R * result_row / link_rate(hw, s * tp, 0);
    }
    const double factor = out->micro + pp - 1; /* the slowest stage's micro-batch time, m + pp - 1 times */
    out->t_forward = fwd_max * factor;
    out->t_lens = final_t + final_comm + max2(sent + lens_last, lens_other) + gather;
    out->t_comm = fwd_comm_at_max * factor + final_comm + sent + lens_comm + gather;
    out->t_batch = out->t_forward + out->t_lens;
    out->tokens_per_s = out->t_batch > 0 ? T / out->t_batch : 0;
}

ll_status ll_plan_split_eval(const ll_plan_job *job, const ll_plan_hw *hw, int tp, int pp, ll_plan_split *out,
                             ll_err *err) {
    memset(out, 0, sizeof *out);
    out->tp = tp;
    out->pp = pp;
    ll_err why = {{0}};
    if (ll_shard_check(job->cfg, tp, pp, &why)) {
        snprintf(out->reason, sizeof out->reason, "%s", why.msg);
        return LL_OK;
    }
    if (tp > hw->gpus) {
        snprintf(out->reason, sizeof out->reason,
                 "--tp %d spans nodes: a tensor-parallel group must stay within a node of %d GPUs", tp, hw->gpus);
        return LL_OK;
    }
    out->valid = 1;
    ll_status rc = split_memory(job, hw, out, err);
    if (rc) return rc;
    split_time(job, hw, out);
    return LL_OK;
}

void ll_plan_split_free(ll_plan_split *s) {
    if (!s) return;
    free(s->ranks);
    s->ranks = NULL;
}
