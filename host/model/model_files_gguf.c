/* model_files_gguf.c: a GGUF file: its metadata mapped to an ll_config (gguf_config.c) and every tensor
 * the architecture needs checked for presence, a type that can be dequantized, and the exact shape the
 * metadata implies. */
#include "ll_gguf.h"
#include "ll_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GGUF tensors that are not weights of a spec but are expected. */
static int is_known_extra(const char *name) { return !strcmp(name, "rope_freqs.weight"); }

/* Llama-architecture q/k weights and biases are stored in interleaved-pair rotary order. */
static int permuted_rows(const ll_config *c, const ll_tensor_spec *sp, int *heads) {
    if (strcmp(c->arch, "llama") != 0 || sp->layer < 0) return 0;
    if (sp->role == LL_LW_Q || sp->role == LL_LW_Q_B) *heads = c->n_heads;
    else if (sp->role == LL_LW_K || sp->role == LL_LW_K_B) *heads = c->n_kv_heads;
    else return 0;
    return 1;
}

ll_status ll_model_files_open_gguf(ll_model_files *m, const char *path, ll_err *err) {
    ll_status rc;
    if ((rc = ll_gguf_open(path, &m->gguf, err))) return rc;
    const ll_gguf *g = m->gguf;
    memcpy(m->config_sha256, g->header_sha256, sizeof m->config_sha256);
    m->n_files = 1;
    m->file_names = ll_calloc_array(1, sizeof *m->file_names);
    m->file_sha256 = ll_calloc_array(1, sizeof *m->file_sha256);
    if (!m->file_names || !m->file_sha256) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    m->file_names[0] = g->name;
    m->file_sha256[0] = g->header_sha256;

    ll_config *c = &m->cfg;
    if ((rc = ll_gguf_config_parse(g, c, err))) return rc;
    if ((rc = ll_gguf_tensor_specs(c, &m->specs, &m->n_specs, err))) return rc;
    m->bound = ll_calloc_array((size_t)m->n_specs, sizeof *m->bound);
    if (!m->bound) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_specs; i++) {
        const ll_tensor_spec *sp = &m->specs[i];
        const ll_gguf_tensor *t = ll_gguf_find_tensor(g, sp->name);
        char want[64], have[64];
        ll_st_shape_str(sp->shape, sp->ndim, want, sizeof want);
        if (!t)
            return ll_fail(err, LL_ERR_INPUT, "gguf %s: tensor '%s' (shape %s) is missing; the %s metadata needs it",
                           g->name, sp->name, want, c->arch);
        const char *tname = ll_gguf_type_name(t->type);
        if (!ll_gguf_dequant_supported(t->type))
            return ll_fail(err, LL_ERR_INPUT,
                           "gguf %s: tensor '%s' has type %s, which cannot be read (supported: F32, F16, BF16, Q8_0, "
                           "Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                           g->name, sp->name, tname ? tname : "unknown");
        /* GGUF dims are innermost first: a row-major [rows, cols] matrix has ne = [cols, rows] */
        int64_t shape[LL_GGUF_MAX_DIMS];
        for (int d = 0; d < t->n_dims; d++) shape[d] = t->ne[t->n_dims - 1 - d];
        int same = t->n_dims == sp->ndim;
        for (int d = 0; same && d < sp->ndim; d++) same = shape[d] == sp->shape[d];
        if (!same) {
            ll_st_shape_str(shape, t->n_dims, have, sizeof have);
            return ll_fail(err, LL_ERR_INPUT, "gguf %s: tensor '%s' has shape %s, the metadata implies %s", g->name,
                           sp->name, have, want);
        }
        ll_model_tensor *b = &m->bound[i];
        *b = (ll_model_tensor){.name = t->name, .data = t->data, .nbytes = t->nbytes,
                               .numel = ll_gguf_tensor_numel(t), .file = 0, .type_name = tname,
                               .gguf_type = (int)t->type};
        switch (t->type) {
        case LL_GGUF_T_F32: b->dtype = LL_DTYPE_F32; break;
        case LL_GGUF_T_F16: b->dtype = LL_DTYPE_F16; break;
        case LL_GGUF_T_BF16: b->dtype = LL_DTYPE_BF16; break;
        default: b->dtype = LL_DTYPE_F16; b->quantized = 1; break;
        }
        int heads = 0;
        if (permuted_rows(c, sp, &heads)) {
            int64_t rows = sp->shape[0];
            if (rows % heads || (rows / heads) % 2)
                return ll_fail(err, LL_ERR_INPUT, "gguf %s: tensor '%s' has %lld rows, not %d heads of an even size",
                               g->name, sp->name, (long long)rows, heads);
            b->unpermute_heads = heads;
            b->head_rows = (int)(rows / heads);
        }
    }

    int n_unexpected = 0;
    const char *first_unexpected = NULL;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const char *name = g->tensors[i].name;
        int known = is_known_extra(name);
        for (int j = 0; !known && j < m->n_specs; j++) known = !strcmp(m->specs[j].name, name);
        if (!known && n_unexpected++ == 0) first_unexpected = name;
    }
    if (n_unexpected)
        fprintf(stderr, "logitlens: warning: gguf %s: %d tensor(s) not used by the %s architecture (first: '%s')\n",
                g->name, n_unexpected, c->arch, first_unexpected);
    return LL_OK;
}
