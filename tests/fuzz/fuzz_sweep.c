/* fuzz_sweep.c: libFuzzer target: arbitrary bytes as a sweep file, read both as YAML (libyaml,
 * host/sweep/sweep_yaml.c) and as JSON (cJSON), then checked key by key (host/sweep/sweep_file.c). Each parse
 * must either fail with one line that names the file, or give a sweep whose every field is usable: at
 * least one model and one prompt set, distinct non-empty names of letters, digits, '.', '_' and '-', a
 * positive shard size, tp/pp/batch_tokens/topk in range, backends from the three, paths and lines without
 * control characters. Build and run: make fuzz-sweep (mk/fuzz_sweep.mk). */
#include "ll_sweep.h"

#include <stdlib.h>
#include <string.h>

static void check_text(const char *s, int allow_tab) {
    if (!s || !*s) abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && !(allow_tab && *p == '\t')) || *p == 0x7f) abort();
}

static void check_name(const char *s) {
    check_text(s, 0);
    if (strlen(s) > 64 || s[0] == '.') abort();
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p)) abort();
}

static void check_sweep(const ll_sweep *s) {
    check_name(s->name);
    check_text(s->output, 0);
    if (s->shard_size < 1 || s->n_models < 1 || s->n_sets < 1) abort();
    if (s->n_models > LL_SWEEP_MAX_ITEMS || s->n_sets > LL_SWEEP_MAX_ITEMS) abort();
    for (int i = 0; i < s->n_models; i++) {
        const ll_sweep_model *m = &s->models[i];
        check_name(m->name);
        check_text(m->path, 0);
        if (strcmp(m->backend, "cpu") && strcmp(m->backend, "cuda") && strcmp(m->backend, "auto")) abort();
        if (m->tp < 1 || m->pp < 1 || m->batch_tokens < 1 || m->threads < 0) abort();
        for (int j = 0; j < i; j++)
            if (!strcmp(s->models[j].name, m->name)) abort();
    }
    for (int i = 0; i < s->n_sets; i++) {
        const ll_sweep_prompt_set *p = &s->sets[i];
        check_name(p->name);
        if (p->n_files < 1) abort();
        for (int k = 0; k < p->n_files; k++) check_text(p->files[k], 0);
        for (int j = 0; j < i; j++)
            if (!strcmp(s->sets[j].name, p->name)) abort();
    }
    if (s->lens.topk < 1) abort();
    if (s->lens.points) check_text(s->lens.points, 0);
    if (s->lens.layers) check_text(s->lens.layers, 0);
    if (s->lens.save_probs) check_text(s->lens.save_probs, 0);
    const ll_sweep_slurm *u = &s->slurm;
    const char *words[] = {u->job_name, u->partition, u->account, u->qos, u->constraint, u->time, u->mem};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (words[i]) {
            check_text(words[i], 0);
            if (strpbrk(words[i], " '\"\\$`;")) abort();
        }
    if (u->gpus_per_task < 0 || u->cpus_per_task < 0 || u->max_parallel < 0) abort();
    for (int i = 0; i < u->n_extra; i++) {
        check_text(u->extra[i], 1);
        if (u->extra[i][0] != '-') abort();
    }
    for (int i = 0; i < u->n_setup; i++) check_text(u->setup[i], 1);
}

static void one(const char *file, const uint8_t *data, size_t size) {
    ll_sweep s;
    ll_err err = {{0}};
    if (ll_sweep_parse(file, "/base", (const char *)data, size, &s, &err) != LL_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n') || strncmp(err.msg, file, strlen(file))) abort();
    } else {
        check_sweep(&s);
    }
    ll_sweep_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one("fuzz/sweep.yaml", data, size);
    one("fuzz/sweep.json", data, size);
    return 0;
}
