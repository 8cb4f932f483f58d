/* weights.c: uploading a validated checkpoint to a backend, tensor by tensor, releasing the mapped
 * pages of each tensor once the backend holds its copy. */
#include "ll_model.h"

#include <stdlib.h>
#include <string.h>

void ll_weights_free(ll_backend *be, ll_weights *w) {
    if (!w) return;
    for (int i = 0; i < LL_GW_COUNT; i++)
        if (w->g[i].data) be->ops->free_weight(be, &w->g[i]);
    if (w->l) {
        /* the layer count is not stored: free until the allocation's end marker */
        for (ll_wt *t = w->l; t->rows >= 0; t++)
            if (t->data) be->ops->free_weight(be, t);
        free(w->l);
    }
    memset(w, 0, sizeof *w);
}

ll_status ll_weights_upload(ll_backend *be, const ll_model_files *m, ll_weights *w, ll_err *err) {
    memset(w, 0, sizeof *w);
    size_t n_layer_slots = (size_t)m->cfg.n_layers * LL_LW_COUNT;
    w->l = ll_calloc_array(n_layer_slots + 1, sizeof *w->l);
    if (!w->l) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    w->l[n_layer_slots].rows = -1; /* end marker for ll_weights_free */
    for (int i = 0; i < m->n_specs; i++) {
        const ll_tensor_spec *sp = &m->specs[i];
        const ll_st_tensor *t = m->bound[i];
        ll_wt *dst = sp->layer < 0 ? &w->g[sp->role] : &w->l[(size_t)sp->layer * LL_LW_COUNT + sp->role];
        int64_t rows = sp->ndim == 2 ? sp->shape[0] : 1, cols = sp->ndim == 2 ? sp->shape[1] : sp->shape[0];
        ll_status rc = be->ops->upload_weight(be, t->data, t->dtype, rows, cols, dst);
        if (rc != LL_OK) {
            ll_fail(err, rc, "uploading tensor '%s' to the %s backend: %s", sp->name, be->ops->name, be->err.msg);
            ll_weights_free(be, w);
            return rc;
        }
        w->bytes += (size_t)(rows * cols) * ll_dtype_size(dst->dtype);
        ll_st_release(m->st, t);
    }
    w->unembed = w->g[LL_GW_UNEMBED].data ? &w->g[LL_GW_UNEMBED] : &w->g[LL_GW_TOK_EMBED];
    return LL_OK;
}
