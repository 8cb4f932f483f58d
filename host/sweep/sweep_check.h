/* sweep_check.h: plan's checks of one model against the sweep's prompts and lens options (sweep_check.c). */
#ifndef LL_SWEEP_CHECK_H
#define LL_SWEEP_CHECK_H

#include "ll_prompts.h"
#include "ll_sweep.h"

typedef struct sw_check {
    int n_sets;
    int64_t **set_tokens;    /* [n_sets][prompts of the set] tokens of each prompt with this model's tokenizer */
    int64_t max_batch;       /* tokens of the largest batch of any shard */
    const char *mem_backend; /* "cpu" or "cuda": the memory plan's backend */
    double mem_bytes;        /* the memory plan of the neediest rank for the largest batch */
    char arch[32];
    int64_t n_params;
    double tokens_per_s;     /* roofline estimate on H200-class GPUs (0: none) */
} sw_check;

/* Every file of a prompt set, in order, as one prompt set (not tokenized). */
ll_status sw_load_set(const ll_sweep_prompt_set *ps, ll_prompt_set *out, ll_err *err);
/* Checks model mi of s as run would (before any task runs); errors start "FILE: models[i] (NAME): ". */
ll_status sw_check_model(const ll_sweep *s, int mi, sw_check *c, ll_err *err);
void sw_check_free(sw_check *c);

#endif
