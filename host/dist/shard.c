/* shard.c: the part of a model one rank holds (include/ll_shard.h): head, KV head, MLP column, vocabulary
 * and layer ranges, and the slice of every stored tensor they imply. */
#include "ll_shard.h"

#include <string.h>

ll_status ll_shard_check(const ll_config *c, int tp, int pp, ll_err *err) {
    if (tp < 1 || pp < 1) return ll_fail(err, LL_ERR_USAGE, "--tp and --pp must be at least 1 (got %d and %d)", tp, pp);
    if (tp > LL_MAX_TP)
        return ll_fail(err, LL_ERR_USAGE, "--tp %d is more than the %d ranks a group may have", tp, LL_MAX_TP);
    if (c->n_heads % tp)
        return ll_fail(err, LL_ERR_USAGE, "--tp %d does not divide the %d attention heads of this %s model", tp,
                       c->n_heads, c->arch);
    if (c->n_kv_heads % tp && tp % c->n_kv_heads)
        return ll_fail(err, LL_ERR_USAGE,
                       "--tp %d neither divides nor is a multiple of the %d key/value heads of this %s model", tp,
                       c->n_kv_heads, c->arch);
    if (c->d_ff % tp)
        return ll_fail(err, LL_ERR_USAGE, "--tp %d does not divide the MLP width %lld of this %s model", tp,
                       (long long)c->d_ff, c->arch);
    if (tp > c->vocab)
        return ll_fail(err, LL_ERR_USAGE, "--tp %d is larger than the vocabulary (%lld)", tp, (long long)c->vocab);
    if (pp > LL_MAX_STAGES)
        return ll_fail(err, LL_ERR_USAGE, "--pp %d is more than the %d stages a run may have", pp, LL_MAX_STAGES);
    if (pp > c->n_layers)
        return ll_fail(err, LL_ERR_USAGE, "--pp %d is more stages than the %d layers of this %s model", pp,
                       c->n_layers, c->arch);
    return LL_OK;
}

void ll_shard_make(const ll_config *c, int tp, int pp, int rank, ll_shard *s) {
    memset(s, 0, sizeof *s);
    s->tp = tp;
    s->pp = pp;
    s->rank = rank;
    s->tp_rank = rank % tp;
    s->pp_rank = rank / tp;
    s->layer0 = (int)((int64_t)s->pp_rank * c->n_layers / pp);
    s->layer1 = (int)((int64_t)(s->pp_rank + 1) * c->n_layers / pp);
    s->n_heads = c->n_heads / tp;
    s->head0 = s->tp_rank * s->n_heads;
    if (c->n_kv_heads % tp == 0) {
        s->n_kv = c->n_kv_heads / tp;
        s->kv0 = s->tp_rank * s->n_kv;
    } else { /* fewer KV heads than ranks: the one KV head this rank's query heads share */
        s->n_kv = 1;
        s->kv0 = s->head0 / (c->n_heads / c->n_kv_heads);
    }
    s->n_ff = c->d_ff / tp;
    s->ff0 = s->tp_rank * s->n_ff;
    s->vocab = c->vocab;
    s->v0 = s->tp_rank * c->vocab / tp;
    s->n_v = (s->tp_rank + 1) * c->vocab / tp - s->v0;
    s->embed = s->pp_rank == 0;
}

void ll_shard_whole(const ll_config *c, ll_shard *s) { ll_shard_make(c, 1, 1, 0, s); }

void ll_shard_local_config(const ll_config *c, const ll_shard *s, ll_config *local) {
    *local = *c;
    local->n_heads = s->n_heads;
    local->n_kv_heads = s->n_kv;
    local->d_ff = s->n_ff;
}

static void add(ll_range *r, int *n, int64_t start, int64_t len) {
    r[*n].start = start;
    r[*n].n = len;
    (*n)++;
}

void ll_shard_slice(const ll_config *c, const ll_shard *s, const ll_tensor_spec *sp, ll_slice *out) {
    memset(out, 0, sizeof *out);
    const int vec = sp->ndim == 1;
    const int64_t rows = vec ? 1 : sp->shape[0], cols = vec ? sp->shape[0] : sp->shape[1];
    out->held = 1;
    out->rows = rows;
    out->cols = cols;
    ll_range od[3], id[3]; /* ranges of the output and input feature dimensions */
    int nod = 0, nid = 0;
    const int64_t hd = c->head_dim, nq = (int64_t)c->n_heads * hd;
    if (sp->layer < 0) {
        switch (sp->role) {
        case LL_GW_TOK_EMBED:
            if (s->embed) return;
            if (!c->tied) { out->held = 0; return; }
            add(out->r, &out->nr, s->v0, s->n_v); /* only the unembedding rows */
            out->rows = s->n_v;
            return;
        case LL_GW_POS_EMBED:
            out->held = s->embed;
            return;
        case LL_GW_UNEMBED:
            add(out->r, &out->nr, s->v0, s->n_v);
            out->rows = s->n_v;
            return;
        case LL_GW_UNEMBED_B:
            add(out->c, &out->nc, s->v0, s->n_v);
            out->cols = s->n_v;
            return;
        default: /* final norm */
            return;
        }
    }
    if (sp->layer < s->layer0 || sp->layer >= s->layer1) {
        out->held = 0;
        return;
    }
    switch (sp->role) {
    case LL_LW_Q: case LL_LW_Q_B:
        add(od, &nod, s->head0 * hd, s->n_heads * hd);
        break;
    case LL_LW_K: case LL_LW_K_B: case LL_LW_V: case LL_LW_V_B:
        add(od, &nod, s->kv0 * hd, s->n_kv * hd);
        break;
    case LL_LW_QKV: case LL_LW_QKV_B:
        if (c->qkv == LL_QKV_FUSED_NEOX) /* per head [q_h k_h v_h] */
            add(od, &nod, s->head0 * 3 * hd, s->n_heads * 3 * hd);
        else /* [q | k | v], each nq wide */
            for (int p = 0; p < 3; p++) add(od, &nod, p * nq + s->head0 * hd, s->n_heads * hd);
        break;
    case LL_LW_UP: case LL_LW_UP_B: case LL_LW_GATE: case LL_LW_GATE_B:
        add(od, &nod, s->ff0, s->n_ff);
        break;
    case LL_LW_O:
        add(id, &nid, s->head0 * hd, s->n_heads * hd);
        break;
    case LL_LW_DOWN:
        add(id, &nid, s->ff0, s->n_ff);
        break;
    default: /* norms, row-parallel biases: whole */
        return;
    }
    if (s->tp == 1) return; /* whole: keep the ranges empty */
    int64_t on = 0, in = 0;
    for (int i = 0; i < nod; i++) on += od[i].n;
    for (int i = 0; i < nid; i++) in += id[i].n;
    if (vec) { /* a bias: its one dimension is the output dimension */
        memcpy(out->c, od, sizeof od);
        out->nc = nod;
        out->cols = on;
        return;
    }
    /* [out, in] for nn.Linear (OUT_IN), [in, out] for GPT-2's Conv1D (IN_OUT) */
    const int out_is_rows = c->wlayout == LL_WLAYOUT_OUT_IN;
    ll_range *rr = out_is_rows ? od : id, *cr = out_is_rows ? id : od;
    int nr = out_is_rows ? nod : nid, nc = out_is_rows ? nid : nod;
    memcpy(out->r, rr, sizeof(ll_range) * (size_t)nr);
    memcpy(out->c, cr, sizeof(ll_range) * (size_t)nc);
    out->nr = nr;
    out->nc = nc;
    if (nr) out->rows = out_is_rows ? on : in;
    if (nc) out->cols = out_is_rows ? in : on;
}

void ll_slice_copy(const ll_slice *sl, const void *src, int64_t rows, int64_t cols, size_t elem, void *dst) {
    ll_range all_r = {0, rows}, all_c = {0, cols};
    const ll_range *rr = sl->nr ? sl->r : &all_r, *cr = sl->nc ? sl->c : &all_c;
    const int nr = sl->nr ? sl->nr : 1, nc = sl->nc ? sl->nc : 1;
    const char *s = src;
    char *d = dst;
    for (int i = 0; i < nr; i++)
        for (int64_t r = rr[i].start; r < rr[i].start + rr[i].n; r++)
            for (int j = 0; j < nc; j++) {
                size_t n = (size_t)cr[j].n * elem;
                memcpy(d, s + ((size_t)r * (size_t)cols + (size_t)cr[j].start) * elem, n);
                d += n;
            }
}

int ll_slice_contiguous(const ll_slice *sl, int64_t cols, size_t elem, size_t *offset) {
    if (sl->nc || sl->nr > 1) return 0;
    *offset = sl->nr ? (size_t)sl->r[0].start * (size_t)cols * elem : 0;
    return 1;
}

size_t ll_shard_weight_bytes(const ll_config *c, const ll_shard *s, const ll_tensor_spec *specs, int n_specs,
                             const double *elem_bytes) {
    double total = 0;
    for (int i = 0; i < n_specs; i++) {
        ll_slice sl;
        ll_shard_slice(c, s, &specs[i], &sl);
        if (sl.held) total += (double)sl.rows * (double)sl.cols * elem_bytes[i];
    }
    return (size_t)total;
}

int ll_shard_points(const ll_shard *s, const int32_t *point_layers, int n_points, int *local) {
    int n = 0;
    for (int i = 0; i < n_points; i++) {
        int l = point_layers[i];
        int mine = l < 0 ? s->embed : (l >= s->layer0 && l < s->layer1);
        if (local) local[i] = mine ? n : -1;
        n += mine;
    }
    return n;
}
