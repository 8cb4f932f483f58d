/* weights.c: uploading a validated model to a backend, tensor by tensor, releasing the mapped pages of
 * each tensor once the backend holds its copy.
 *
 * Safetensors tensors and GGUF F32/F16/BF16 tensors go to the backend as stored. GGUF block-quantized
 * tensors are dequantized one at a time into a host buffer of that tensor only (never a second copy of
 * the model): into F32 for the CPU backend, which computes in F32, and into F16 for a 16-bit backend
 * (CUDA), halving its memory; a value beyond F16's range is refused by name. GGUF q/k rows of llama models
 * are put back from llama.cpp's interleaved rotary order into Hugging Face's half-split order:
 * within each head of R rows, stored row 2i + j holds HF row j*R/2 + i (0 <= i < R/2, j in {0, 1}). */
#include "ll_gguf.h"
#include "ll_math.h"
#include "ll_model.h"
#include "ll_shard.h"

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

/* Rows of a [heads * R, cols] matrix (cols = 1 for a bias) from interleaved to half-split order. */
static void unpermute_rows(const float *src, float *dst, int heads, int R, int64_t cols) {
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < R / 2; i++)
            for (int j = 0; j < 2; j++) {
                const float *s = src + ((int64_t)h * R + 2 * i + j) * cols;
                float *d = dst + ((int64_t)h * R + j * (R / 2) + i) * cols;
                memcpy(d, s, sizeof *d * (size_t)cols);
            }
}

/* A GGUF tensor that needs work on the host (dequantization and/or row order) as a buffer of `want`
 * (F32, F16, or BF16 for a BF16 tensor): *out is malloc'ed. */
static ll_status gguf_host_copy(const ll_model_tensor *t, const ll_tensor_spec *sp, ll_dtype want, void **out,
                                ll_err *err) {
    *out = NULL;
    size_t n = (size_t)t->numel;
    float *f = ll_malloc_array(n ? n : 1, sizeof *f);
    float *tmp = t->unpermute_heads ? ll_malloc_array(n ? n : 1, sizeof *tmp) : NULL;
    if (!f || (t->unpermute_heads && !tmp)) {
        free(f);
        free(tmp);
        return ll_fail(err, LL_ERR_NOMEM, "tensor '%s': cannot allocate %zu bytes to dequantize it", sp->name, n * 4);
    }
    ll_gguf_dequant_f32((uint32_t)t->gguf_type, t->data, t->unpermute_heads ? tmp : f, t->numel);
    if (t->unpermute_heads) {
        int64_t cols = sp->ndim == 2 ? sp->shape[1] : 1;
        unpermute_rows(tmp, f, t->unpermute_heads, t->head_rows, cols);
        free(tmp);
    }
    if (want == LL_DTYPE_F32) {
        *out = f;
        return LL_OK;
    }
    uint16_t *h = ll_malloc_array(n ? n : 1, sizeof *h);
    if (!h) {
        free(f);
        return ll_fail(err, LL_ERR_NOMEM, "tensor '%s': cannot allocate %zu bytes to convert it", sp->name, n * 2);
    }
    if (want == LL_DTYPE_BF16) { /* a BF16 tensor whose rows were reordered: back to its own bits, exactly */
        for (size_t i = 0; i < n; i++) h[i] = ll_f32_to_bf16(f[i]);
        free(f);
        *out = h;
        return LL_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(f[i] >= -65504.0f && f[i] <= 65504.0f)) {
            float bad = f[i];
            free(f);
            free(h);
            return ll_fail(err, LL_ERR_INPUT,
                           "tensor '%s': dequantized value %g at element %zu is outside float16's range; this "
                           "backend holds quantized weights as float16 (use --backend cpu)",
                           sp->name, (double)bad, i);
        }
        h[i] = ll_f32_to_f16(f[i]);
    }
    free(f);
    *out = h;
    return LL_OK;
}

ll_status ll_weights_upload(ll_backend *be, const ll_model_files *m, const ll_shard *shard, ll_weights *w,
                            ll_err *err) {
    memset(w, 0, sizeof *w);
    ll_shard whole;
    if (!shard) {
        ll_shard_whole(&m->cfg, &whole);
        shard = &whole;
    }
    size_t n_layer_slots = (size_t)m->cfg.n_layers * LL_LW_COUNT;
    w->l = ll_calloc_array(n_layer_slots + 1, sizeof *w->l);
    if (!w->l) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    w->l[n_layer_slots].rows = -1; /* end marker for ll_weights_free */
    const int cpu = !strcmp(be->ops->name, "cpu");
    for (int i = 0; i < m->n_specs; i++) {
        const ll_tensor_spec *sp = &m->specs[i];
        const ll_model_tensor *t = &m->bound[i];
        ll_slice sl;
        ll_shard_slice(&m->cfg, shard, sp, &sl);
        if (!sl.held) continue;
        ll_wt *dst = sp->layer < 0 ? &w->g[sp->role] : &w->l[(size_t)sp->layer * LL_LW_COUNT + sp->role];
        int64_t rows = sp->ndim == 2 ? sp->shape[0] : 1, cols = sp->ndim == 2 ? sp->shape[1] : sp->shape[0];
        const void *src = t->data;
        ll_dtype src_dtype = t->dtype;
        void *host = NULL, *part = NULL;
        ll_status rc = LL_OK;
        if (t->quantized || t->unpermute_heads) {
            /* the CPU computes in F32 whatever it is given; other backends keep the stored dtype (quantized
             * tensors: F16), as the memory plan assumes */
            src_dtype = cpu ? LL_DTYPE_F32 : t->dtype;
            rc = gguf_host_copy(t, sp, src_dtype, &host, err);
            src = host;
        }
        /* this rank's slice: an offset into the tensor when it is whole rows, else a copy of its pieces
         * (only the pages under the slice are read) */
        size_t off, es = ll_dtype_size(src_dtype);
        if (!rc && (sl.rows != rows || sl.cols != cols)) {
            if (ll_slice_contiguous(&sl, cols, es, &off)) {
                src = (const char *)src + off;
            } else if (!(part = ll_malloc_array((size_t)(sl.rows * sl.cols), es))) {
                rc = ll_fail(err, LL_ERR_NOMEM, "tensor '%s': cannot allocate its %lld x %lld slice", sp->name,
                             (long long)sl.rows, (long long)sl.cols);
            } else {
                ll_slice_copy(&sl, src, rows, cols, es, part);
                src = part;
            }
        }
        if (!rc) {
            rc = be->ops->upload_weight(be, src, src_dtype, sl.rows, sl.cols, dst);
            if (rc) ll_fail(err, rc, "uploading tensor '%s' to the %s backend: %s", sp->name, be->ops->name, be->err.msg);
        }
        free(part);
        free(host);
        if (rc) {
            ll_weights_free(be, w);
            return rc;
        }
        w->bytes += (size_t)(sl.rows * sl.cols) * ll_dtype_size(dst->dtype);
        ll_release_pages(t->data, t->nbytes);
    }
    w->unembed = w->g[LL_GW_UNEMBED].data ? &w->g[LL_GW_UNEMBED] : &w->g[LL_GW_TOK_EMBED];
    if (!w->g[LL_GW_UNEMBED].data && shard->embed && shard->n_v != m->cfg.vocab) {
        /* tied, with the whole embedding held for the forward pass: the lens reads its rows [v0, v0 + n_v) */
        const ll_wt *e = &w->g[LL_GW_TOK_EMBED];
        w->unembed_view = *e;
        w->unembed_view.data = (char *)e->data + (size_t)shard->v0 * (size_t)e->cols * ll_dtype_size(e->dtype);
        w->unembed_view.rows = shard->n_v;
        w->unembed = &w->unembed_view;
    }
    return LL_OK;
}
