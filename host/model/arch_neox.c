/* arch_neox.c: GPT-NeoX / Pythia. LayerNorm, partial rotary (rotary_pct), exact GELU, untied embed_out,
 * parallel or sequential residual.
 *
 * Trap: query_key_value is an nn.Linear [3d, d] whose output is interleaved per head:
 * [q_0 k_0 v_0 | q_1 k_1 v_1 | ...], each head_dim wide (not [q | k | v] as in GPT-2). */
#include "arch_common.h"
#include "config_fields.h"

#include <string.h>

ll_status ll_arch_neox_config(const cJSON *root, const char *path, ll_config *c, ll_err *err) {
    int64_t v;
    double x;
    ll_status rc;
    if ((rc = ll_cfg_int(root, path, "num_hidden_layers", 1, 0, 1, 10000, &v, err))) return rc;
    c->n_layers = (int)v;
    if ((rc = ll_cfg_int(root, path, "hidden_size", 1, 0, 1, 1 << 20, &c->d_model, err))) return rc;
    if ((rc = ll_cfg_int(root, path, "num_attention_heads", 1, 0, 1, 1 << 16, &v, err))) return rc;
    c->n_heads = c->n_kv_heads = (int)v;
    if (c->d_model % c->n_heads)
        return ll_fail(err, LL_ERR_INPUT, "%s: hidden_size %lld is not a multiple of num_attention_heads %d", path,
                       (long long)c->d_model, c->n_heads);
    c->head_dim = (int)(c->d_model / c->n_heads);
    if ((rc = ll_cfg_int(root, path, "intermediate_size", 1, 0, 1, 1 << 24, &c->d_ff, err))) return rc;
    if ((rc = ll_cfg_int(root, path, "vocab_size", 1, 0, 1, 1 << 26, &c->vocab, err))) return rc;
    if ((rc = ll_cfg_int(root, path, "max_position_embeddings", 1, 0, 1, 1 << 24, &c->n_ctx, err))) return rc;
    if ((rc = ll_cfg_num(root, path, "layer_norm_eps", 0, 1e-5, 0, 1, &x, err))) return rc;
    c->norm_eps = (float)x;
    const char *pct_key = ll_cfg_pick(root, (const char *const[]){"rotary_pct", "partial_rotary_factor", NULL});
    double pct = 0.25;
    if (pct_key && (rc = ll_cfg_num(root, path, pct_key, 0, 0.25, 0, 1, &pct, err))) return rc;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (!pct_key && cJSON_IsObject(rp) &&
        (rc = ll_cfg_num(rp, path, "partial_rotary_factor", 0, 0.25, 0, 1, &pct, err)))
        return rc;
    c->rope.rot_dim = (int)(c->head_dim * pct);
    if ((rc = ll_cfg_rope(root, path, (const char *const[]){"rotary_emb_base", "rope_theta", NULL}, 10000.0, &c->rope,
                          err)))
        return rc;
    const char *act;
    if ((rc = ll_cfg_str(root, path, "hidden_act", "gelu", &act, err))) return rc;
    if (!strcmp(act, "gelu")) c->act = LL_ACT_GELU_ERF;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
        c->act = LL_ACT_GELU_TANH;
    else
        return ll_fail(err, LL_ERR_INPUT, "%s: hidden_act '%s' is not supported (supported: gelu, gelu_new)", path, act);
    if ((rc = ll_cfg_bool(root, path, "use_parallel_residual", 1, &c->parallel_residual, err))) return rc;
    if ((rc = ll_cfg_bool(root, path, "tie_word_embeddings", 0, &c->tied, err))) return rc;
    int bias;
    if ((rc = ll_cfg_bool(root, path, "attention_bias", 1, &bias, err))) return rc;
    c->attn_bias = c->o_bias = bias;
    c->mlp_bias = c->norm_bias = 1;
    c->norm = LL_NORM_LAYERNORM;
    c->qkv = LL_QKV_FUSED_NEOX;
    c->mlp = LL_MLP_GELU;
    c->wlayout = LL_WLAYOUT_OUT_IN;
    c->use_rope = 1;
    return LL_OK;
}

void ll_arch_neox_specs(const ll_config *c, ll_tensor_spec *s, int *n) {
    int64_t d = c->d_model, f = c->d_ff;
    ll_spec_add(s, n, -1, LL_GW_TOK_EMBED, LL_INIT_EMBED, c->vocab, d, "gpt_neox.embed_in.weight");
    for (int l = 0; l < c->n_layers; l++) {
        const char *p = "gpt_neox.layers";
        ll_spec_add(s, n, l, LL_LW_NORM1, LL_INIT_NORM, d, 0, "%s.%d.input_layernorm.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_NORM1_B, LL_INIT_BIAS, d, 0, "%s.%d.input_layernorm.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_QKV, LL_INIT_MATRIX, 3 * d, d, "%s.%d.attention.query_key_value.weight", p, l);
        if (c->attn_bias)
            ll_spec_add(s, n, l, LL_LW_QKV_B, LL_INIT_BIAS, 3 * d, 0, "%s.%d.attention.query_key_value.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_O, LL_INIT_MATRIX, d, d, "%s.%d.attention.dense.weight", p, l);
        if (c->o_bias) ll_spec_add(s, n, l, LL_LW_O_B, LL_INIT_BIAS, d, 0, "%s.%d.attention.dense.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_NORM2, LL_INIT_NORM, d, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_NORM2_B, LL_INIT_BIAS, d, 0, "%s.%d.post_attention_layernorm.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_UP, LL_INIT_MATRIX, f, d, "%s.%d.mlp.dense_h_to_4h.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_UP_B, LL_INIT_BIAS, f, 0, "%s.%d.mlp.dense_h_to_4h.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_DOWN, LL_INIT_MATRIX, d, f, "%s.%d.mlp.dense_4h_to_h.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_DOWN_B, LL_INIT_BIAS, d, 0, "%s.%d.mlp.dense_4h_to_h.bias", p, l);
    }
    ll_spec_add(s, n, -1, LL_GW_FINAL_NORM, LL_INIT_NORM, d, 0, "gpt_neox.final_layer_norm.weight");
    ll_spec_add(s, n, -1, LL_GW_FINAL_NORM_B, LL_INIT_BIAS, d, 0, "gpt_neox.final_layer_norm.bias");
    if (!c->tied) ll_spec_add(s, n, -1, LL_GW_UNEMBED, LL_INIT_MATRIX, c->vocab, d, "embed_out.weight");
}
