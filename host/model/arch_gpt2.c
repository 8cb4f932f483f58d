/* arch_gpt2.c: GPT-2. LayerNorm, learned positions, fused c_attn, gelu_new, tied unembedding.
 *
 * Trap: GPT-2's Conv1D stores weights [in, out] (y = x W + b), the transpose of nn.Linear; c_attn's
 * output row is [q | k | v], each d wide. Tensor names appear with or without "transformer.". */
#include "arch_common.h"
#include "config_fields.h"

#include <string.h>

ll_status ll_arch_gpt2_config(const cJSON *root, const char *path, ll_config *c, ll_err *err) {
    int64_t v;
    double eps;
    ll_status rc;
    if ((rc = ll_cfg_int(root, path, "n_layer", 1, 0, 1, 10000, &v, err))) return rc;
    c->n_layers = (int)v;
    if ((rc = ll_cfg_int(root, path, "n_embd", 1, 0, 1, 1 << 20, &c->d_model, err))) return rc;
    if ((rc = ll_cfg_int(root, path, "n_head", 1, 0, 1, 1 << 16, &v, err))) return rc;
    c->n_heads = c->n_kv_heads = (int)v;
    if (c->d_model % c->n_heads)
        return ll_fail(err, LL_ERR_INPUT, "%s: n_embd %lld is not a multiple of n_head %d", path,
                       (long long)c->d_model, c->n_heads);
    c->head_dim = (int)(c->d_model / c->n_heads);
    if ((rc = ll_cfg_int(root, path, "vocab_size", 1, 0, 1, 1 << 26, &c->vocab, err))) return rc;
    const char *ctx_key = ll_cfg_pick(root, (const char *const[]){"n_positions", "n_ctx", NULL});
    if (!ctx_key) return ll_fail(err, LL_ERR_INPUT, "%s: field 'n_positions' is missing (expected an integer)", path);
    if ((rc = ll_cfg_int(root, path, ctx_key, 1, 0, 1, 1 << 24, &c->n_ctx, err))) return rc;
    if ((rc = ll_cfg_int(root, path, "n_inner", 0, 4 * c->d_model, 1, 1 << 24, &c->d_ff, err))) return rc;
    if ((rc = ll_cfg_num(root, path, "layer_norm_epsilon", 0, 1e-5, 0, 1, &eps, err))) return rc;
    c->norm_eps = (float)eps;
    const char *act;
    if ((rc = ll_cfg_str(root, path, "activation_function", "gelu_new", &act, err))) return rc;
    if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
        c->act = LL_ACT_GELU_TANH;
    else if (!strcmp(act, "gelu"))
        c->act = LL_ACT_GELU_ERF;
    else
        return ll_fail(err, LL_ERR_INPUT,
                       "%s: activation_function '%s' is not supported (supported: gelu_new, gelu_pytorch_tanh, gelu)",
                       path, act);
    int flag;
    if ((rc = ll_cfg_bool(root, path, "scale_attn_by_inverse_layer_idx", 0, &flag, err))) return rc;
    if (flag) return ll_fail(err, LL_ERR_INPUT, "%s: scale_attn_by_inverse_layer_idx = true is not supported", path);
    if ((rc = ll_cfg_bool(root, path, "scale_attn_weights", 1, &flag, err))) return rc;
    if (!flag) return ll_fail(err, LL_ERR_INPUT, "%s: scale_attn_weights = false is not supported", path);
    if ((rc = ll_cfg_bool(root, path, "tie_word_embeddings", 1, &c->tied, err))) return rc;
    c->norm = LL_NORM_LAYERNORM;
    c->qkv = LL_QKV_FUSED_GPT2;
    c->mlp = LL_MLP_GELU;
    c->wlayout = LL_WLAYOUT_IN_OUT;
    c->learned_pos = 1;
    c->use_rope = 0;
    c->attn_bias = c->o_bias = c->mlp_bias = c->norm_bias = 1;
    return LL_OK;
}

void ll_arch_gpt2_specs(const ll_config *c, ll_tensor_spec *s, int *n) {
    const char *p = c->prefix; /* "" or "transformer.", detected from the checkpoint */
    int64_t d = c->d_model, f = c->d_ff;
    ll_spec_add(s, n, -1, LL_GW_TOK_EMBED, LL_INIT_EMBED, c->vocab, d, "%swte.weight", p);
    ll_spec_add(s, n, -1, LL_GW_POS_EMBED, LL_INIT_EMBED, c->n_ctx, d, "%swpe.weight", p);
    for (int l = 0; l < c->n_layers; l++) {
        ll_spec_add(s, n, l, LL_LW_NORM1, LL_INIT_NORM, d, 0, "%sh.%d.ln_1.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_NORM1_B, LL_INIT_BIAS, d, 0, "%sh.%d.ln_1.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_QKV, LL_INIT_MATRIX, d, 3 * d, "%sh.%d.attn.c_attn.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_QKV_B, LL_INIT_BIAS, 3 * d, 0, "%sh.%d.attn.c_attn.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_O, LL_INIT_MATRIX, d, d, "%sh.%d.attn.c_proj.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_O_B, LL_INIT_BIAS, d, 0, "%sh.%d.attn.c_proj.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_NORM2, LL_INIT_NORM, d, 0, "%sh.%d.ln_2.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_NORM2_B, LL_INIT_BIAS, d, 0, "%sh.%d.ln_2.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_UP, LL_INIT_MATRIX, d, f, "%sh.%d.mlp.c_fc.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_UP_B, LL_INIT_BIAS, f, 0, "%sh.%d.mlp.c_fc.bias", p, l);
        ll_spec_add(s, n, l, LL_LW_DOWN, LL_INIT_MATRIX, f, d, "%sh.%d.mlp.c_proj.weight", p, l);
        ll_spec_add(s, n, l, LL_LW_DOWN_B, LL_INIT_BIAS, d, 0, "%sh.%d.mlp.c_proj.bias", p, l);
    }
    ll_spec_add(s, n, -1, LL_GW_FINAL_NORM, LL_INIT_NORM, d, 0, "%sln_f.weight", p);
    ll_spec_add(s, n, -1, LL_GW_FINAL_NORM_B, LL_INIT_BIAS, d, 0, "%sln_f.bias", p);
    if (!c->tied) ll_spec_add(s, n, -1, LL_GW_UNEMBED, LL_INIT_MATRIX, c->vocab, d, "lm_head.weight");
}
