/* plan_print.c: `logitlens plan`'s output: the table of every split with the chosen one and its launch
 * line, or the same as JSON (keys in docs/cli.md, "plan"). */
#include "plan.h"

#include "ll_memplan.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

static const char *dtype_arg(ll_dtype t) { return t == LL_DTYPE_F32 ? "f32" : t == LL_DTYPE_F16 ? "f16" : "bf16"; }

/* Appends " NAME VALUE" to buf (VALUE quoted when it holds a space or a quote). */
static void add_arg(char *buf, size_t cap, const char *name, const char *value) {
    size_t n = strlen(buf);
    const int quote = strpbrk(value, " \t'\"") != NULL;
    snprintf(buf + n, cap - n, quote ? " %s '%s'" : " %s %s", name, value);
}

char *ll_plan_launch_line(const ll_plan_report *r) {
    if (r->chosen < 0) return NULL;
    const ll_plan_split *s = &r->splits[r->chosen];
    const size_t cap = 1024 + strlen(r->model) + (r->points_arg ? strlen(r->points_arg) : 0) +
                       (r->layers_arg ? strlen(r->layers_arg) : 0);
    char *b = malloc(cap);
    if (!b) return NULL;
    char num[32];
    snprintf(b, cap, "srun -N %d --ntasks-per-node=%d --gpus-per-node=%d --mpi=pmix --kill-on-bad-exit=1 logitlens run",
             r->hw->nodes, r->hw->gpus, r->hw->gpus);
    add_arg(b, cap, "--model", r->model);
    snprintf(num, sizeof num, "%d", s->tp);
    add_arg(b, cap, "--tp", num);
    snprintf(num, sizeof num, "%d", s->pp);
    add_arg(b, cap, "--pp", num);
    snprintf(num, sizeof num, "%lld", (long long)r->job->batch_tokens);
    add_arg(b, cap, "--batch-tokens", num);
    if (r->points_arg) add_arg(b, cap, "--points", r->points_arg);
    if (r->layers_arg) add_arg(b, cap, "--layers", r->layers_arg);
    if (r->job->topk != 10) {
        snprintf(num, sizeof num, "%d", r->job->topk);
        add_arg(b, cap, "--topk", num);
    }
    size_t n = strlen(b);
    snprintf(b + n, cap - n, " --prompts PROMPTS.jsonl --out OUT.h5");
    return b;
}

void ll_plan_print_table(FILE *f, const ll_plan_report *r) {
    const ll_config *c = r->job->cfg;
    const ll_plan_hw *hw = r->hw;
    double stored = r->n_params * (double)ll_dtype_size(r->job->dtype);
    fprintf(f, "model     %s: %s, %d layers, d %lld, %d query / %d key-value heads, MLP %lld, vocabulary %lld\n",
            r->model, c->arch, c->n_layers, (long long)c->d_model, c->n_heads, c->n_kv_heads, (long long)c->d_ff,
            (long long)c->vocab);
    char human[32];
    ll_memplan_human(stored, human, sizeof human);
    fprintf(f, "weights   %.4g %s parameters in %s: %s\n", r->n_params >= 1e9 ? r->n_params / 1e9 : r->n_params / 1e6,
            r->n_params >= 1e9 ? "B" : "M", dtype_arg(r->job->dtype), human);
    fprintf(f, "job       batches of %lld tokens, %d points, top-%d\n", (long long)r->job->batch_tokens,
            r->job->pts->n, r->job->topk);
    fprintf(f,
            "cluster   %d node%s x %d GPUs of %.4g GiB; per GPU %.4g TFLOP/s, %.4g GB/s memory; %.4g GB/s within a "
            "node, %.4g GB/s between nodes\n\n",
            hw->nodes, hw->nodes > 1 ? "s" : "", hw->gpus, hw->gpu_mem / GIB, hw->flops / 1e12, hw->bandwidth / 1e9,
            hw->interconnect / 1e9, hw->network / 1e9);
    fprintf(f, "memory (GiB) of the rank that needs the most; estimated time (ms) per batch\n");
    fprintf(f, "  tp  pp  rank  weights  activ.  scratch   total  bubble  forward     lens    batch   tokens/s"
               "  fits\n");
    for (int i = 0; i < r->n_splits; i++) {
        const ll_plan_split *s = &r->splits[i];
        if (!s->valid) {
            fprintf(f, "  %2d  %2d  invalid: %s\n", s->tp, s->pp, s->reason);
            continue;
        }
        const ll_plan_rank *w = &s->ranks[s->worst];
        fprintf(f, "  %2d  %2d  %4d  %7.2f  %6.2f  %7.2f  %6.2f  %6.3f  %7.1f  %7.1f  %7.1f  %9.0f  %s%s%s\n", s->tp,
                s->pp, s->worst, w->weights / GIB, w->activations / GIB, w->scratch / GIB, w->total / GIB, s->bubble,
                s->t_forward * 1e3, s->t_lens * 1e3, s->t_batch * 1e3, s->tokens_per_s, s->fits ? "yes" : "no",
                s->fits ? "" : ": ", s->fits ? "" : s->reason);
    }
    if (r->chosen < 0) {
        fprintf(f, "\nnothing fits: %s\n", r->verdict ? r->verdict : "");
        return;
    }
    const ll_plan_split *s = &r->splits[r->chosen];
    fprintf(f, "\nchosen    --tp %d --pp %d: about %.1f ms per batch of %lld tokens, %.0f tokens/s (roofline estimate, "
            "docs/scale-out.md)\n", s->tp, s->pp, s->t_batch * 1e3, (long long)r->job->batch_tokens, s->tokens_per_s);
    char *line = ll_plan_launch_line(r);
    if (line) fprintf(f, "launch    %s\n", line);
    free(line);
}

static cJSON *split_json(const ll_plan_split *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "tp", s->tp);
    cJSON_AddNumberToObject(o, "pp", s->pp);
    cJSON_AddBoolToObject(o, "valid", s->valid);
    cJSON_AddBoolToObject(o, "fits", s->fits);
    if (s->reason[0]) cJSON_AddStringToObject(o, "reason", s->reason);
    else cJSON_AddNullToObject(o, "reason");
    if (!s->valid) return o;
    const ll_plan_rank *w = &s->ranks[s->worst];
    cJSON_AddNumberToObject(o, "worst_rank", s->worst);
    cJSON_AddNumberToObject(o, "weights_bytes", w->weights);
    cJSON_AddNumberToObject(o, "activation_bytes", w->activations);
    cJSON_AddNumberToObject(o, "scratch_bytes", w->scratch);
    cJSON_AddNumberToObject(o, "total_bytes", w->total);
    cJSON_AddNumberToObject(o, "micro_batches", s->micro);
    cJSON_AddNumberToObject(o, "bubble", s->bubble);
    cJSON_AddNumberToObject(o, "forward_s", s->t_forward);
    cJSON_AddNumberToObject(o, "lens_s", s->t_lens);
    cJSON_AddNumberToObject(o, "comm_s", s->t_comm);
    cJSON_AddNumberToObject(o, "batch_s", s->t_batch);
    cJSON_AddNumberToObject(o, "tokens_per_s", s->tokens_per_s);
    cJSON *ranks = cJSON_AddArrayToObject(o, "ranks");
    for (int i = 0; ranks && i < s->tp * s->pp; i++) {
        cJSON *k = cJSON_CreateObject();
        if (!k) break;
        cJSON_AddNumberToObject(k, "rank", i);
        cJSON_AddNumberToObject(k, "weights_bytes", s->ranks[i].weights);
        cJSON_AddNumberToObject(k, "activation_bytes", s->ranks[i].activations);
        cJSON_AddNumberToObject(k, "scratch_bytes", s->ranks[i].scratch);
        cJSON_AddNumberToObject(k, "total_bytes", s->ranks[i].total);
        cJSON_AddItemToArray(ranks, k);
    }
    return o;
}

char *ll_plan_json(const ll_plan_report *r) {
    const ll_config *c = r->job->cfg;
    const ll_plan_hw *hw = r->hw;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "model", r->model);
    cJSON_AddStringToObject(root, "arch", c->arch);
    cJSON_AddNumberToObject(root, "layers", c->n_layers);
    cJSON_AddNumberToObject(root, "params", r->n_params);
    cJSON_AddStringToObject(root, "dtype", dtype_arg(r->job->dtype));
    cJSON_AddNumberToObject(root, "batch_tokens", (double)r->job->batch_tokens);
    cJSON_AddNumberToObject(root, "points", r->job->pts->n);
    cJSON_AddNumberToObject(root, "topk", r->job->topk);
    cJSON *h = cJSON_AddObjectToObject(root, "hardware");
    if (h) {
        cJSON_AddNumberToObject(h, "gpus_per_node", hw->gpus);
        cJSON_AddNumberToObject(h, "nodes", hw->nodes);
        cJSON_AddNumberToObject(h, "gpu_mem_bytes", hw->gpu_mem);
        cJSON_AddNumberToObject(h, "flops", hw->flops);
        cJSON_AddNumberToObject(h, "bandwidth_bytes_per_s", hw->bandwidth);
        cJSON_AddNumberToObject(h, "interconnect_bytes_per_s", hw->interconnect);
        cJSON_AddNumberToObject(h, "network_bytes_per_s", hw->network);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "splits");
    for (int i = 0; arr && i < r->n_splits; i++) {
        cJSON *o = split_json(&r->splits[i]);
        if (o) cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddBoolToObject(root, "fits", r->chosen >= 0);
    if (r->chosen >= 0) {
        cJSON *ch = cJSON_AddObjectToObject(root, "chosen");
        char *line = ll_plan_launch_line(r);
        if (ch) {
            cJSON_AddNumberToObject(ch, "tp", r->splits[r->chosen].tp);
            cJSON_AddNumberToObject(ch, "pp", r->splits[r->chosen].pp);
            cJSON_AddStringToObject(ch, "launch", line ? line : "");
        }
        free(line);
        cJSON_AddNullToObject(root, "reason");
    } else {
        cJSON_AddNullToObject(root, "chosen");
        cJSON_AddStringToObject(root, "reason", r->verdict ? r->verdict : "");
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}
