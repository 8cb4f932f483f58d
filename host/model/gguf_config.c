/* gguf_config.c: a GGUF file's metadata ({arch}.* keys) into the ll_config that config.json builds, and
 * the tensor list under GGUF names.
 *
 * Traps, from how GGUF files are converted from Hugging Face checkpoints:
 * - every matrix is stored in nn.Linear order ([out, in] row-major: ne = [in, out]), GPT-2's Conv1D
 *   weights included (they are transposed on conversion);
 * - GPT-NeoX's fused query_key_value is reordered from per-head [q_h k_h v_h] to [q | k | v];
 * - Llama-architecture q/k rows (and biases) are permuted into interleaved-pair rotary order; model_files_gguf.c
 *   marks them and weights.c puts them back, so that the ops are those of the HF checkpoint;
 * - the activation is not stored: GPT-2 uses the tanh GELU, GPT-NeoX the exact (erf) GELU of its HF config;
 * - Llama 3 rope scaling is stored as a rope_freqs tensor of per-frequency divisors, not as keys: it is
 *   matched here against the llama3 formula (include/ll_math.h) and refused when it does not fit. */
#include "arch_common.h"
#include "ll_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct keyctx {
    const ll_gguf *g;
    const char *arch; /* GGUF spelling: "llama", "qwen2", "gpt2", "gptneox" */
} keyctx;

/* {arch}.suffix as an integer in [lo, hi]; absent: dflt when !required. */
static ll_status key_int(const keyctx *k, const char *suffix, int required, int64_t dflt, int64_t lo, int64_t hi,
                         int64_t *out, ll_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", k->arch, suffix);
    int found = 0;
    int64_t v = dflt;
    ll_status rc = ll_gguf_get_int(k->g, key, &v, &found, err);
    if (rc) return rc;
    if (!found && required)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: metadata key '%s' is missing (expected an integer)", k->g->name,
                       key);
    if (found && (v < lo || v > hi))
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: metadata key '%s' is %lld, expected %lld..%lld", k->g->name, key,
                       (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return LL_OK;
}

static ll_status key_float(const keyctx *k, const char *suffix, int required, double dflt, double lo, double hi,
                           double *out, ll_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", k->arch, suffix);
    int found = 0;
    double v = dflt;
    ll_status rc = ll_gguf_get_float(k->g, key, &v, &found, err);
    if (rc) return rc;
    if (!found && required)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: metadata key '%s' is missing (expected a number)", k->g->name, key);
    if (found && !(v >= lo && v <= hi))
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: metadata key '%s' is %g, expected %g..%g", k->g->name, key, v, lo,
                       hi);
    *out = v;
    return LL_OK;
}

static int has_tensor(const ll_gguf *g, const char *fmt, int layer) {
    char name[96];
    snprintf(name, sizeof name, fmt, layer);
    return ll_gguf_find_tensor(g, name) != NULL;
}

/* Llama 3 scaling from rope_freqs.weight: the divisor of each rotary frequency. The file does not say
 * which parameters made it, so the usual ones are tried and the one that reproduces every divisor (to
 * float32 rounding) is used; anything else is refused rather than run with other positions. */
static ll_status rope_from_freqs(const keyctx *k, ll_rope_params *p, ll_err *err) {
    const ll_gguf *g = k->g;
    const ll_gguf_tensor *t = ll_gguf_find_tensor(g, "rope_freqs.weight");
    if (!t) return LL_OK;
    int64_t n = p->rot_dim / 2;
    if (t->type != LL_GGUF_T_F32 || t->n_dims != 1 || t->ne[0] != n)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: tensor 'rope_freqs.weight' must be F32 [%lld] (one divisor per "
                                          "rotary frequency), found type %s with %lld elements",
                       g->name, (long long)n, ll_gguf_type_name(t->type) ? ll_gguf_type_name(t->type) : "unknown",
                       (long long)ll_gguf_tensor_numel(t));
    float *div = malloc(sizeof *div * (size_t)n);
    if (!div) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    memcpy(div, t->data, sizeof *div * (size_t)n);
    int all_one = 1;
    float maxdiv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (div[i] != 1.0f) all_one = 0;
        if (div[i] > maxdiv) maxdiv = div[i];
    }
    if (all_one) {
        free(div);
        return LL_OK;
    }
    int64_t orig = 0;
    ll_status rc = key_int(k, "rope.scaling.original_context_length", 0, 0, 1, 1 << 24, &orig, err);
    if (rc) {
        free(div);
        return rc;
    }
    const double origs[] = {(double)orig, 8192, 4096, 2048, 16384, 32768, 131072};
    const double lows[] = {1, 2, 0.5}, highs[] = {4, 2, 8, 1};
    for (size_t a = 0; a < sizeof origs / sizeof *origs; a++) {
        if (origs[a] <= 0) continue;
        for (size_t b = 0; b < sizeof lows / sizeof *lows; b++)
            for (size_t h = 0; h < sizeof highs / sizeof *highs; h++) {
                if (highs[h] <= lows[b]) continue;
                ll_rope_params q = *p;
                q.llama3 = 1;
                q.factor = maxdiv;
                q.low_freq_factor = lows[b];
                q.high_freq_factor = highs[h];
                q.original_max_pos = origs[a];
                ll_rope_params plain = *p;
                plain.llama3 = 0;
                int ok = 1;
                for (int64_t i = 0; ok && i < n; i++) {
                    double want = ll_rope_inv_freq(&plain, (int)i) / div[i];
                    double got = ll_rope_inv_freq(&q, (int)i);
                    ok = fabs(got - want) <= 4e-7 * fabs(want);
                }
                if (ok) {
                    *p = q;
                    free(div);
                    return LL_OK;
                }
            }
    }
    free(div);
    return ll_fail(err, LL_ERR_INPUT,
                   "gguf %s: tensor 'rope_freqs.weight' holds rotary frequency divisors that match no llama3 rope "
                   "scaling (factor %g); this rope scaling is not supported",
                   g->name, (double)maxdiv);
}

static ll_status rope_scaling(const keyctx *k, ll_rope_params *p, ll_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", k->arch);
    ll_gguf_str type = {0};
    int found = 0;
    ll_status rc = ll_gguf_get_str(k->g, key, &type, &found, err);
    if (rc) return rc;
    if (found && !(type.len == 4 && !memcmp(type.ptr, "none", 4))) {
        double factor = 1;
        if ((rc = key_float(k, "rope.scaling.factor", 0, 1, 0, 1e9, &factor, err))) return rc;
        if (factor != 1)
            return ll_fail(err, LL_ERR_INPUT,
                           "gguf %s: metadata key '%s' is '%.*s' (factor %g); only llama3 scaling (rope_freqs.weight) "
                           "and none are supported",
                           k->g->name, key, (int)(type.len > 64 ? 64 : type.len), type.ptr, factor);
    }
    return rope_from_freqs(k, p, err);
}

ll_status ll_gguf_config_parse(const ll_gguf *g, ll_config *c, ll_err *err) {
    memset(c, 0, sizeof *c);
    ll_gguf_str a = {0};
    int found = 0;
    ll_status rc = ll_gguf_get_str(g, "general.architecture", &a, &found, err);
    if (rc) return rc;
    if (!found)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: metadata key 'general.architecture' is missing (expected a string)",
                       g->name);
    char arch[32];
    snprintf(arch, sizeof arch, "%.*s", (int)(a.len < 31 ? a.len : 31), a.ptr);
    for (char *s = arch; *s; s++)
        if ((unsigned char)*s < 32 || (unsigned char)*s > 126) *s = '?';
    int llama = !strcmp(arch, "llama"), qwen2 = !strcmp(arch, "qwen2"), gpt2 = !strcmp(arch, "gpt2"),
        neox = !strcmp(arch, "gptneox");
    if (a.len >= 31 || !(llama || qwen2 || gpt2 || neox))
        return ll_fail(err, LL_ERR_INPUT,
                       "gguf %s: general.architecture '%s' is not supported (supported: llama, qwen2, gpt2, gptneox)",
                       g->name, arch);
    keyctx k = {g, arch};
    snprintf(c->arch, sizeof c->arch, "%s", neox ? "gpt_neox" : arch);
    int64_t v;
    if ((rc = key_int(&k, "block_count", 1, 0, 1, 10000, &v, err))) return rc;
    c->n_layers = (int)v;
    if ((rc = key_int(&k, "embedding_length", 1, 0, 1, 1 << 20, &c->d_model, err))) return rc;
    if ((rc = key_int(&k, "feed_forward_length", 1, 0, 1, 1 << 24, &c->d_ff, err))) return rc;
    if ((rc = key_int(&k, "attention.head_count", 1, 0, 1, 1 << 16, &v, err))) return rc;
    c->n_heads = (int)v;
    if ((rc = key_int(&k, "attention.head_count_kv", 0, c->n_heads, 1, c->n_heads, &v, err))) return rc;
    c->n_kv_heads = (int)v;
    if (c->n_heads % c->n_kv_heads)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s.attention.head_count %d is not a multiple of head_count_kv %d",
                       g->name, arch, c->n_heads, c->n_kv_heads);
    if ((gpt2 || neox) && c->n_kv_heads != c->n_heads)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s.attention.head_count_kv %d differs from head_count %d (%s has "
                                          "no grouped-query attention)",
                       g->name, arch, c->n_kv_heads, c->n_heads, arch);
    int64_t dflt_hd = c->d_model / c->n_heads;
    if ((rc = key_int(&k, "attention.key_length", 0, dflt_hd, 1, 1 << 16, &v, err))) return rc;
    if (v == dflt_hd && c->d_model % c->n_heads)
        return ll_fail(err, LL_ERR_INPUT,
                       "gguf %s: %s.embedding_length %lld is not a multiple of attention.head_count %d and no "
                       "attention.key_length is given",
                       g->name, arch, (long long)c->d_model, c->n_heads);
    c->head_dim = (int)v;
    int64_t vl = c->head_dim;
    if ((rc = key_int(&k, "attention.value_length", 0, c->head_dim, 1, 1 << 16, &vl, err))) return rc;
    if (vl != c->head_dim)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s.attention.value_length %lld differs from key_length %d (not "
                                          "supported)",
                       g->name, arch, (long long)vl, c->head_dim);
    if ((gpt2 || neox) && (int64_t)c->head_dim * c->n_heads != c->d_model)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s.attention.key_length %d x head_count %d differs from "
                                          "embedding_length %lld",
                       g->name, arch, c->head_dim, c->n_heads, (long long)c->d_model);
    int64_t experts = 0;
    if ((rc = key_int(&k, "expert_count", 0, 0, 0, 1 << 16, &experts, err))) return rc;
    if (experts > 0)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s.expert_count is %lld: mixture-of-experts models are not "
                                          "supported",
                       g->name, arch, (long long)experts);
    if ((rc = key_int(&k, "context_length", 1, 0, 1, 1 << 24, &c->n_ctx, err))) return rc;

    /* vocabulary: {arch}.vocab_size, else the rows of the token embedding */
    const ll_gguf_tensor *emb = ll_gguf_find_tensor(g, "token_embd.weight");
    int64_t vocab = emb && emb->n_dims == 2 ? emb->ne[1] : 0;
    if ((rc = key_int(&k, "vocab_size", 0, vocab, 1, 1 << 26, &vocab, err))) return rc;
    if (vocab < 1)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: the vocabulary size is unknown (%s.vocab_size is missing and "
                                          "tensor 'token_embd.weight' is absent or not 2-D)",
                       g->name, arch);
    c->vocab = vocab;

    double eps = 0;
    if (llama || qwen2) {
        if ((rc = key_float(&k, "attention.layer_norm_rms_epsilon", 1, 0, 0, 1, &eps, err))) return rc;
        c->norm = LL_NORM_RMSNORM;
        c->qkv = LL_QKV_SEPARATE;
        c->mlp = LL_MLP_SWIGLU;
        c->use_rope = 1;
        c->rope.rot_dim = c->head_dim;
    } else {
        if ((rc = key_float(&k, "attention.layer_norm_epsilon", 1, 0, 0, 1, &eps, err))) return rc;
        c->norm = LL_NORM_LAYERNORM;
        c->norm_bias = 1;
        c->qkv = LL_QKV_FUSED_GPT2; /* [q | k | v]: NeoX's per-head order is undone on conversion */
        c->mlp = LL_MLP_GELU;
        c->act = gpt2 ? LL_ACT_GELU_TANH : LL_ACT_GELU_ERF;
        c->learned_pos = gpt2;
        c->use_rope = neox;
        c->attn_bias = c->o_bias = c->mlp_bias = 1;
        if (neox) {
            int found_pr = 0;
            c->parallel_residual = 1;
            if ((rc = ll_gguf_get_bool(g, "gptneox.use_parallel_residual", &c->parallel_residual, &found_pr, err)))
                return rc;
            c->attn_bias = has_tensor(g, "blk.%d.attn_qkv.bias", 0);
            c->o_bias = has_tensor(g, "blk.%d.attn_output.bias", 0);
        }
    }
    c->norm_eps = (float)eps;
    if (c->use_rope) {
        if ((rc = key_int(&k, "rope.dimension_count", 0, c->head_dim, 2, c->head_dim, &v, err))) return rc;
        if (v % 2)
            return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s.rope.dimension_count %lld is odd (expected an even count)",
                           g->name, arch, (long long)v);
        if (llama && v != c->head_dim)
            return ll_fail(err, LL_ERR_INPUT, "gguf %s: llama.rope.dimension_count %lld differs from the head size %d "
                                              "(partial rotary is not supported for llama)",
                           g->name, (long long)v, c->head_dim);
        c->rope.rot_dim = (int)v;
        if ((rc = key_float(&k, "rope.freq_base", 0, 10000.0, 1e-6, 1e12, &c->rope.theta, err))) return rc;
        if ((rc = rope_scaling(&k, &c->rope, err))) return rc;
    }
    if (llama) {
        c->attn_bias = has_tensor(g, "blk.%d.attn_q.bias", 0);
        c->o_bias = has_tensor(g, "blk.%d.attn_output.bias", 0);
        c->mlp_bias = has_tensor(g, "blk.%d.ffn_up.bias", 0);
    } else if (qwen2) {
        c->attn_bias = 1;
    }
    if (llama || qwen2) {
        int64_t sw = 0;
        if ((rc = key_int(&k, "attention.sliding_window", 0, 0, 0, 1LL << 40, &sw, err))) return rc;
        c->attn_window = sw;
    }
    c->wlayout = LL_WLAYOUT_OUT_IN;
    c->tied = ll_gguf_find_tensor(g, "output.weight") == NULL;
    return LL_OK;
}

/* Tensors under GGUF names; shapes row-major ([rows, cols] = ne[1], ne[0]). */
ll_status ll_gguf_tensor_specs(const ll_config *c, ll_tensor_spec **out, int *n, ll_err *err) {
    size_t cap = 8 + (size_t)c->n_layers * LL_LW_COUNT;
    ll_tensor_spec *s = ll_calloc_array(cap, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    int k = 0;
    const int64_t d = c->d_model, f = c->d_ff, nq = (int64_t)c->n_heads * c->head_dim,
                  nkv = (int64_t)c->n_kv_heads * c->head_dim;
    const int norm_b = c->norm == LL_NORM_LAYERNORM;
    ll_spec_add(s, &k, -1, LL_GW_TOK_EMBED, LL_INIT_EMBED, c->vocab, d, "token_embd.weight");
    if (c->learned_pos) ll_spec_add(s, &k, -1, LL_GW_POS_EMBED, LL_INIT_EMBED, c->n_ctx, d, "position_embd.weight");
    for (int l = 0; l < c->n_layers; l++) {
        ll_spec_add(s, &k, l, LL_LW_NORM1, LL_INIT_NORM, d, 0, "blk.%d.attn_norm.weight", l);
        if (norm_b) ll_spec_add(s, &k, l, LL_LW_NORM1_B, LL_INIT_BIAS, d, 0, "blk.%d.attn_norm.bias", l);
        if (c->qkv == LL_QKV_SEPARATE) {
            ll_spec_add(s, &k, l, LL_LW_Q, LL_INIT_MATRIX, nq, d, "blk.%d.attn_q.weight", l);
            ll_spec_add(s, &k, l, LL_LW_K, LL_INIT_MATRIX, nkv, d, "blk.%d.attn_k.weight", l);
            ll_spec_add(s, &k, l, LL_LW_V, LL_INIT_MATRIX, nkv, d, "blk.%d.attn_v.weight", l);
            if (c->attn_bias) {
                ll_spec_add(s, &k, l, LL_LW_Q_B, LL_INIT_BIAS, nq, 0, "blk.%d.attn_q.bias", l);
                ll_spec_add(s, &k, l, LL_LW_K_B, LL_INIT_BIAS, nkv, 0, "blk.%d.attn_k.bias", l);
                ll_spec_add(s, &k, l, LL_LW_V_B, LL_INIT_BIAS, nkv, 0, "blk.%d.attn_v.bias", l);
            }
        } else {
            ll_spec_add(s, &k, l, LL_LW_QKV, LL_INIT_MATRIX, 3 * d, d, "blk.%d.attn_qkv.weight", l);
            if (c->attn_bias) ll_spec_add(s, &k, l, LL_LW_QKV_B, LL_INIT_BIAS, 3 * d, 0, "blk.%d.attn_qkv.bias", l);
        }
        ll_spec_add(s, &k, l, LL_LW_O, LL_INIT_MATRIX, d, nq, "blk.%d.attn_output.weight", l);
        if (c->o_bias) ll_spec_add(s, &k, l, LL_LW_O_B, LL_INIT_BIAS, d, 0, "blk.%d.attn_output.bias", l);
        ll_spec_add(s, &k, l, LL_LW_NORM2, LL_INIT_NORM, d, 0, "blk.%d.ffn_norm.weight", l);
        if (norm_b) ll_spec_add(s, &k, l, LL_LW_NORM2_B, LL_INIT_BIAS, d, 0, "blk.%d.ffn_norm.bias", l);
        if (c->mlp == LL_MLP_SWIGLU) {
            ll_spec_add(s, &k, l, LL_LW_GATE, LL_INIT_MATRIX, f, d, "blk.%d.ffn_gate.weight", l);
            if (c->mlp_bias) ll_spec_add(s, &k, l, LL_LW_GATE_B, LL_INIT_BIAS, f, 0, "blk.%d.ffn_gate.bias", l);
        }
        ll_spec_add(s, &k, l, LL_LW_UP, LL_INIT_MATRIX, f, d, "blk.%d.ffn_up.weight", l);
        if (c->mlp_bias) ll_spec_add(s, &k, l, LL_LW_UP_B, LL_INIT_BIAS, f, 0, "blk.%d.ffn_up.bias", l);
        ll_spec_add(s, &k, l, LL_LW_DOWN, LL_INIT_MATRIX, d, f, "blk.%d.ffn_down.weight", l);
        if (c->mlp_bias) ll_spec_add(s, &k, l, LL_LW_DOWN_B, LL_INIT_BIAS, d, 0, "blk.%d.ffn_down.bias", l);
    }
    ll_spec_add(s, &k, -1, LL_GW_FINAL_NORM, LL_INIT_NORM, d, 0, "output_norm.weight");
    if (norm_b) ll_spec_add(s, &k, -1, LL_GW_FINAL_NORM_B, LL_INIT_BIAS, d, 0, "output_norm.bias");
    if (!c->tied) ll_spec_add(s, &k, -1, LL_GW_UNEMBED, LL_INIT_MATRIX, c->vocab, d, "output.weight");
    LL_ASSERT((size_t)k <= cap);
    *out = s;
    *n = k;
    return LL_OK;
}
