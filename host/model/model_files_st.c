/* model_files_st.c: a Hugging Face model directory: config.json and the safetensors files, every tensor
 * the architecture needs checked for presence, dtype and the exact shape config.json implies. */
#include "ll_model.h"
#include "ll_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ll_status ll_model_files_open_st(ll_model_files *m, const char *dir, ll_err *err) {
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    ll_status rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((rc = ll_read_small_file(path, 16u << 20, &text, &len, err))) return rc;
    ll_sha256_hex(text, len, m->config_sha256);
    rc = ll_config_parse(path, text, len, &m->cfg, err);
    free(text);
    if (rc) return rc;
    if ((rc = ll_st_open_dir(dir, &m->st, err))) return rc;

    m->n_files = m->st->n_files;
    m->file_names = ll_calloc_array((size_t)m->n_files, sizeof *m->file_names);
    m->file_sha256 = ll_calloc_array((size_t)m->n_files, sizeof *m->file_sha256);
    if (!m->file_names || !m->file_sha256) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_files; i++) {
        m->file_names[i] = m->st->files[i].name;
        m->file_sha256[i] = m->st->files[i].header_sha256;
    }

    ll_config *c = &m->cfg;
    if (!strcmp(c->arch, "gpt2") && ll_st_find(m->st, "transformer.wte.weight"))
        snprintf(c->prefix, sizeof c->prefix, "transformer.");
    if ((rc = ll_config_tensor_specs(c, &m->specs, &m->n_specs, err))) return rc;
    m->bound = ll_calloc_array((size_t)m->n_specs, sizeof *m->bound);
    if (!m->bound) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_specs; i++) {
        const ll_tensor_spec *sp = &m->specs[i];
        const ll_st_tensor *t = ll_st_find(m->st, sp->name);
        char want[64], have[64];
        ll_st_shape_str(sp->shape, sp->ndim, want, sizeof want);
        if (!t)
            return ll_fail(err, LL_ERR_INPUT, "model %s: tensor '%s' (shape %s) is missing from the safetensors files",
                           dir, sp->name, want);
        const char *fname = m->st->files[t->file].name;
        if (!t->dtype_ok)
            return ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensor '%s' has dtype %s, expected F32, F16 or BF16",
                           fname, sp->name, t->dtype_name);
        int same = t->ndim == sp->ndim;
        for (int d = 0; same && d < sp->ndim; d++) same = t->shape[d] == sp->shape[d];
        if (!same) {
            ll_st_shape_str(t->shape, t->ndim, have, sizeof have);
            return ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensor '%s' has shape %s, config.json implies %s", fname,
                           sp->name, have, want);
        }
        m->bound[i] = (ll_model_tensor){.name = t->name, .data = t->data, .nbytes = t->nbytes,
                                        .numel = ll_st_numel(t), .file = t->file, .type_name = t->dtype_name,
                                        .gguf_type = -1, .dtype = t->dtype};
    }

    /* Tensors nobody asked for: non-weight buffers are expected; anything else is worth a warning (a
     * checkpoint of a variant this architecture file does not know). */
    int n_unexpected = 0;
    const char *first_unexpected = NULL;
    for (int i = 0; i < m->st->n_tensors; i++) {
        const char *name = m->st->tensors[i].name;
        int known = ll_config_is_ignored_buffer(c, name) || (c->tied && !strcmp(name, "lm_head.weight"));
        for (int j = 0; !known && j < m->n_specs; j++) known = m->bound[j].data == m->st->tensors[i].data &&
                                                               !strcmp(m->bound[j].name, name);
        if (!known && n_unexpected++ == 0) first_unexpected = name;
    }
    if (n_unexpected)
        fprintf(stderr, "logitlens: warning: model %s: %d tensor(s) not used by the %s architecture (first: '%s')\n",
                dir, n_unexpected, c->arch, first_unexpected);
    return LL_OK;
}
