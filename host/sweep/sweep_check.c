/* sweep_check.c: what plan checks of one model before any task runs, as `run` and `inspect` would: the
 * model files (ll_model_files_open), the split (ll_shard_check), points and top-k against the model, every
 * prompt of every set tokenized and validated against its vocabulary and context, --save-probs positions,
 * the memory plan of its largest batch, and the roofline estimate of `logitlens plan` (host/cli/plan.h). */
#include "sweep_check.h"

#include "cli/plan.h"
#include "cli/run_select.h"
#include "ll_memplan.h"
#include "ll_shard.h"
#include "ll_tokenizer.h"

#include <stdlib.h>
#include <string.h>

/* The estimate uses `logitlens plan`'s H200-class defaults (PLAN_* in host/cli/plan.h). */

void sw_check_free(sw_check *c) {
    for (int i = 0; c->set_tokens && i < c->n_sets; i++) free(c->set_tokens[i]);
    free(c->set_tokens);
    memset(c, 0, sizeof *c);
}

/* Loads every file of a prompt set, in order, into one prompt set. */
ll_status sw_load_set(const ll_sweep_prompt_set *ps, ll_prompt_set *out, ll_err *err) {
    memset(out, 0, sizeof *out);
    for (int f = 0; f < ps->n_files; f++) {
        ll_status rc = ll_prompts_load_file(out, ps->files[f], NULL, err);
        if (rc) return rc;
    }
    return LL_OK;
}

/* The largest batch (tokens) and saved-probability rows over the shards, packed as run packs them. */
static void plan_batches(const ll_prompt_set *p, int64_t shard_size, int64_t batch_tokens, const ll_probs_sel *ps,
                         int64_t *max_T, int64_t *max_rows) {
    int64_t cur = 0, cur_rows = 0;
    for (int i = 0; i < p->n; i++) {
        int64_t n = p->v[i].n, rows = 0;
        for (int64_t j = 0; j < n; j++) rows += ll_probs_selected(ps, j, n);
        if (i % shard_size == 0 || (cur > 0 && cur + n > batch_tokens)) cur = cur_rows = 0;
        cur += n;
        cur_rows += rows;
        if (cur > *max_T) *max_T = cur;
        if (cur_rows > *max_rows) *max_rows = cur_rows;
    }
}

/* "64G" (K/M/G/T; a plain number is megabytes, as sbatch reads it) in bytes. */
static double slurm_mem_bytes(const char *s) {
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'K': case 'k': return v * 1024;
    case 'G': case 'g': return v * 1024 * 1024 * 1024;
    case 'T': case 't': return v * 1024 * 1024 * 1024 * 1024;
    default: return v * 1024 * 1024;
    }
}

/* The roofline tokens per second of the model's split at its batch size, on ranks H200-class GPUs of one
 * node (memory not limited: fitting is not what this is for). 0 when the split cannot be evaluated. */
static double estimate(const ll_model_files *mf, const ll_sweep_model *sm, const ll_points *pts, int topk,
                       int64_t max_T, double *worst_bytes) {
    ll_tensor_spec *specs = NULL;
    int n_specs = 0;
    ll_err e;
    if (ll_config_tensor_specs(&mf->cfg, &specs, &n_specs, &e)) return 0;
    const ll_dtype dt = mf->n_quantized ? LL_DTYPE_F16 : mf->dtype;
    const ll_plan_hw hw = {.gpus = sm->tp * sm->pp, .nodes = 1, .gpu_mem = 1e30,
                           .flops = (dt == LL_DTYPE_F32 ? PLAN_TFLOPS_32 : PLAN_TFLOPS_16) * 1e12,
                           .bandwidth = PLAN_BANDWIDTH_GBS * 1e9, .interconnect = PLAN_INTERCONNECT_GBS * 1e9,
                           .network = PLAN_NETWORK_GBS * 1e9};
    const ll_plan_job job = {.cfg = &mf->cfg, .specs = specs, .n_specs = n_specs, .pts = pts, .topk = topk,
                             .batch_tokens = max_T > 0 ? max_T : sm->batch_tokens, .dtype = dt};
    ll_plan_split sp;
    double tps = 0;
    if (ll_plan_split_eval(&job, &hw, sm->tp, sm->pp, &sp, &e) == LL_OK && sp.valid) {
        tps = sp.tokens_per_s;
        *worst_bytes = sp.ranks[sp.worst].total;
    }
    ll_plan_split_free(&sp);
    free(specs);
    return tps;
}

ll_status sw_check_model(const ll_sweep *s, int mi, sw_check *c, ll_err *err) {
    const ll_sweep_model *sm = &s->models[mi];
    memset(c, 0, sizeof *c);
    c->n_sets = s->n_sets;
    ll_model_files *mf = NULL;
    ll_tokenizer *tk = NULL;
    ll_points pts = {0};
    ll_probs_sel ps = {0};
    ll_prompt_set p = {0};
    char who[256];
    snprintf(who, sizeof who, "%s: models[%d] (%s)", s->file, mi, sm->name);
    ll_status rc = ll_model_files_open(sm->path, &mf, err);
    if (rc) goto fail;
    const ll_config *cfg = &mf->cfg;
    snprintf(c->arch, sizeof c->arch, "%s", cfg->arch);
    c->n_params = mf->n_params;
    if ((rc = ll_shard_check(cfg, sm->tp, sm->pp, err))) goto fail;
    if ((rc = ll_points_parse(s->lens.points, s->lens.layers, cfg->n_layers, &pts, err))) goto fail;
    if (s->lens.topk > cfg->vocab) {
        rc = ll_fail(err, LL_ERR_USAGE, "lens.topk %d is larger than the vocabulary (%lld)", s->lens.topk,
                     (long long)cfg->vocab);
        goto fail;
    }
    if ((rc = ll_probs_sel_parse(s->lens.save_probs, &ps, err))) goto fail;
    /* the tokenizer as run takes it: one it cannot use still runs token-id prompts */
    ll_err terr = {{0}};
    char no_tok[LL_ERR_MSG_MAX + 64];
    ll_status trc = ll_model_files_tokenizer(mf, &tk, &terr);
    if (trc == LL_ERR_NOMEM) {
        rc = ll_fail(err, trc, "%s", terr.msg);
        goto fail;
    }
    if (trc) snprintf(no_tok, sizeof no_tok, "the model's tokenizer cannot be used (%s)", terr.msg);
    else snprintf(no_tok, sizeof no_tok, "the model %s has none", sm->path);
    if (!(c->set_tokens = calloc((size_t)s->n_sets, sizeof *c->set_tokens))) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int64_t max_T = 0, max_rows = 0;
    for (int si = 0; si < s->n_sets; si++) {
        if ((rc = sw_load_set(&s->sets[si], &p, err)) || (rc = ll_prompts_tokenize(&p, tk, no_tok, 1, err)) ||
            (rc = ll_prompts_validate(&p, cfg->vocab, cfg->n_ctx, cfg->sliding_window, err)) ||
            (rc = ll_probs_sel_check(&ps, s->lens.save_probs, &p, err))) {
            snprintf(who, sizeof who, "%s: prompts[%d] (%s) with models[%d] (%s)", s->file, si, s->sets[si].name, mi,
                     sm->name);
            goto fail;
        }
        if (!(c->set_tokens[si] = malloc((size_t)(p.n > 0 ? p.n : 1) * sizeof **c->set_tokens))) {
            rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < p.n; i++) c->set_tokens[si][i] = p.v[i].n;
        plan_batches(&p, s->shard_size, sm->batch_tokens, &ps, &max_T, &max_rows);
        ll_prompts_free(&p);
    }
    c->max_batch = max_T;
    /* the memory plan of the largest batch on the backend the task will likely use */
    c->mem_backend = !strcmp(sm->backend, "cpu") || (!strcmp(sm->backend, "auto") && s->slurm.gpus_per_task == 0)
                         ? "cpu" : "cuda";
    int64_t V = cfg->vocab;
    ll_engine_opts eo = {.topk = s->lens.topk, .probs_nv = ps.mode ? V : 0, .max_probs_rows = max_rows};
    ll_memplan mp;
    ll_shard sh;
    ll_shard_make(cfg, sm->tp, sm->pp, 0, &sh);
    ll_memplan_compute(mf, c->mem_backend, sm->tp * sm->pp > 1 ? &sh : NULL, &pts, &eo, max_T, &mp);
    c->mem_bytes = (double)mp.total;
    double worst = 0;
    c->tokens_per_s = estimate(mf, sm, &pts, s->lens.topk, max_T, &worst);
    if (worst > c->mem_bytes) c->mem_bytes = worst;
    if (s->slurm.mem && !strcmp(c->mem_backend, "cpu")) {
        double have = slurm_mem_bytes(s->slurm.mem), need = c->mem_bytes * sm->tp * sm->pp;
        if (need > have) {
            char a[32], b[32];
            ll_memplan_human(need, a, sizeof a);
            ll_memplan_human(have, b, sizeof b);
            rc = ll_fail(err, LL_ERR_NOMEM, "a task needs %s of host memory (largest batch %lld tokens) but slurm.mem "
                         "is %s (%s); raise slurm.mem or lower batch_tokens", a, (long long)max_T, s->slurm.mem, b);
            goto fail;
        }
    }
    goto done;
fail:
    ll_fail_prefix(err, rc, "%s", who);
    sw_check_free(c);
done:
    ll_prompts_free(&p);
    ll_probs_sel_free(&ps);
    ll_points_free(&pts);
    ll_tokenizer_free(tk);
    ll_model_files_close(mf);
    return rc;
}
