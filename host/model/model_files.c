/* model_files.c: opening a Hugging Face model directory and validating every tensor the architecture
 * needs (presence, dtype, exact shape implied by config.json) before any compute. */
#include "ll_model.h"
#include "ll_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ll_model_files_close(ll_model_files *m) {
    if (!m) return;
    ll_st_close(m->st);
    free(m->specs);
    free(m->bound);
    free(m->dir);
    free(m);
}

ll_status ll_model_files_open(const char *dir, ll_model_files **out, ll_err *err) {
    *out = NULL;
    ll_model_files *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        free(m);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    ll_status rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((rc = ll_read_small_file(path, 16u << 20, &text, &len, err))) goto fail;
    ll_sha256_hex(text, len, m->config_sha256);
    rc = ll_config_parse(path, text, len, &m->cfg, err);
    free(text);
    if (rc) goto fail;
    if ((rc = ll_st_open_dir(dir, &m->st, err))) goto fail;

    ll_config *c = &m->cfg;
    if (!strcmp(c->arch, "gpt2") && ll_st_find(m->st, "transformer.wte.weight"))
        snprintf(c->prefix, sizeof c->prefix, "transformer.");
    if ((rc = ll_config_tensor_specs(c, &m->specs, &m->n_specs, err))) goto fail;
    m->bound = ll_calloc_array((size_t)m->n_specs, sizeof *m->bound);
    if (!m->bound) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int dtype_count[LL_DTYPE_COUNT] = {0};
    for (int i = 0; i < m->n_specs; i++) {
        const ll_tensor_spec *sp = &m->specs[i];
        const ll_st_tensor *t = ll_st_find(m->st, sp->name);
        char want[64], have[64];
        ll_st_shape_str(sp->shape, sp->ndim, want, sizeof want);
        if (!t) {
            rc = ll_fail(err, LL_ERR_INPUT, "model %s: tensor '%s' (shape %s) is missing from the safetensors files",
                         dir, sp->name, want);
            goto fail;
        }
        const char *fname = m->st->files[t->file].name;
        if (!t->dtype_ok) {
            rc = ll_fail(err, LL_ERR_INPUT,
                         "safetensors %s: tensor '%s' has dtype %s, expected F32, F16 or BF16", fname, sp->name,
                         t->dtype_name);
            goto fail;
        }
        int same = t->ndim == sp->ndim;
        for (int d = 0; same && d < sp->ndim; d++) same = t->shape[d] == sp->shape[d];
        if (!same) {
            ll_st_shape_str(t->shape, t->ndim, have, sizeof have);
            rc = ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensor '%s' has shape %s, config.json implies %s", fname,
                         sp->name, have, want);
            goto fail;
        }
        m->bound[i] = t;
        if (sp->ndim == 2) dtype_count[t->dtype]++;
        m->n_params += ll_st_numel(t);
    }
    m->dtype = LL_DTYPE_F32;
    for (int d = 0; d < LL_DTYPE_COUNT; d++)
        if (dtype_count[d] > dtype_count[m->dtype]) m->dtype = (ll_dtype)d;

    /* Tensors nobody asked for: non-weight buffers are expected; anything else is worth a warning (a
     * checkpoint of a variant this architecture file does not know). */
    int n_unexpected = 0;
    const char *first_unexpected = NULL;
    for (int i = 0; i < m->st->n_tensors; i++) {
        const char *name = m->st->tensors[i].name;
        int known = ll_config_is_ignored_buffer(c, name) || (c->tied && !strcmp(name, "lm_head.weight"));
        for (int j = 0; !known && j < m->n_specs; j++) known = m->bound[j] == &m->st->tensors[i];
        if (!known && n_unexpected++ == 0) first_unexpected = name;
    }
    if (n_unexpected)
        fprintf(stderr, "logitlens: warning: model %s: %d tensor(s) not used by the %s architecture (first: '%s')\n",
                dir, n_unexpected, c->arch, first_unexpected);
    *out = m;
    return LL_OK;
fail:
    ll_model_files_close(m);
    return rc;
}
