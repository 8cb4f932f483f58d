/* model_files.c: opening a model (a Hugging Face directory or a GGUF file) and what both formats share:
 * the storage summary, the dtype the weights take on a backend and their size there. The format-specific
 * halves are model_files_st.c and model_files_gguf.c. */
#include "ll_gguf.h"
#include "ll_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ll_model_format_name(ll_model_format f) { return f == LL_MODEL_GGUF ? "gguf" : "safetensors"; }

void ll_model_files_close(ll_model_files *m) {
    if (!m) return;
    ll_st_close(m->st);
    ll_gguf_close(m->gguf);
    free(m->file_names);
    free(m->file_sha256);
    free(m->specs);
    free(m->bound);
    free(m->dir);
    free(m);
}

/* "Q4_1 x210, F32 x61, Q8_0 x1": storage types by descending count (ties by first use). */
static void storage_summary(ll_model_files *m) {
    const char *names[64];
    int counts[64], n = 0;
    for (int i = 0; i < m->n_specs; i++) {
        int j = 0;
        while (j < n && strcmp(names[j], m->bound[i].type_name)) j++;
        if (j == n) {
            if (n == 64) continue;
            names[n] = m->bound[i].type_name;
            counts[n++] = 0;
        }
        counts[j]++;
    }
    size_t off = 0;
    m->storage_types[0] = 0;
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int j = 0; j < n; j++)
            if (counts[j] > 0 && (best < 0 || counts[j] > counts[best])) best = j;
        int w = snprintf(m->storage_types + off, sizeof m->storage_types - off, "%s%s x%d", off ? ", " : "",
                         names[best], counts[best]);
        if (w < 0 || (size_t)w >= sizeof m->storage_types - off) break;
        off += (size_t)w;
        counts[best] = 0;
    }
}

ll_status ll_model_files_open(const char *model, ll_model_files **out, ll_err *err) {
    *out = NULL;
    ll_model_files *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(model))) {
        free(m);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    char *path = NULL;
    ll_status rc = ll_model_locate(model, &m->format, &path, err);
    if (!rc)
        rc = m->format == LL_MODEL_GGUF ? ll_model_files_open_gguf(m, path, err) : ll_model_files_open_st(m, path, err);
    free(path);
    if (rc) {
        ll_model_files_close(m);
        return rc;
    }
    int dtype_count[LL_DTYPE_COUNT] = {0};
    for (int i = 0; i < m->n_specs; i++) {
        if (m->specs[i].ndim == 2) dtype_count[m->bound[i].dtype]++;
        m->n_params += m->bound[i].numel;
        m->n_quantized += m->bound[i].quantized;
    }
    m->dtype = LL_DTYPE_F32;
    for (int d = 0; d < LL_DTYPE_COUNT; d++)
        if (dtype_count[d] > dtype_count[m->dtype]) m->dtype = (ll_dtype)d;
    storage_summary(m);
    *out = m;
    return LL_OK;
}

ll_dtype ll_model_weights_dtype(const ll_model_files *m, const char *backend) {
    return !strcmp(backend, "cpu") ? LL_DTYPE_F32 : m->dtype;
}

size_t ll_model_weights_bytes(const ll_model_files *m, const char *backend) {
    int cpu = !strcmp(backend, "cpu");
    size_t total = 0;
    for (int i = 0; i < m->n_specs; i++) {
        const ll_model_tensor *t = &m->bound[i];
        total += cpu ? (size_t)t->numel * 4 : t->quantized ? (size_t)t->numel * 2 : t->nbytes;
    }
    return total;
}
