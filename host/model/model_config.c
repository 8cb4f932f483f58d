/* model_config.c: config.json -> ll_config (dispatching on the architecture), the tensor list of a
 * config, and the checkpoint buffers that are not weights. */
#include "config_fields.h"
#include "ll_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct arch_entry {
    const char *model_type;   /* config.json "model_type" */
    const char *class_name;   /* config.json "architectures"[0] */
    ll_status (*config)(const cJSON *, const char *, ll_config *, ll_err *);
    void (*specs)(const ll_config *, ll_tensor_spec *, int *);
} arch_entry;

static const arch_entry arches[] = {
    {"gpt2", "GPT2LMHeadModel", ll_arch_gpt2_config, ll_arch_gpt2_specs},
    {"gpt_neox", "GPTNeoXForCausalLM", ll_arch_neox_config, ll_arch_neox_specs},
    {"llama", "LlamaForCausalLM", ll_arch_llama_config, ll_arch_llama_specs},
    {"mistral", "MistralForCausalLM", ll_arch_llama_config, ll_arch_llama_specs},
    {"qwen2", "Qwen2ForCausalLM", ll_arch_llama_config, ll_arch_llama_specs},
};
#define N_ARCHES (int)(sizeof arches / sizeof arches[0])

static const arch_entry *find_arch(const char *name) {
    for (int i = 0; i < N_ARCHES; i++)
        if (!strcmp(arches[i].model_type, name)) return &arches[i];
    return NULL;
}

ll_status ll_config_parse(const char *path, const char *text, size_t len, ll_config *c, ll_err *err) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ll_fail(err, LL_ERR_INPUT, "%s: not a valid JSON object", path);
    }
    ll_status rc = LL_OK;
    const char *mt = NULL;
    const arch_entry *a = NULL;
    if ((rc = ll_cfg_str(root, path, "model_type", NULL, &mt, err))) goto done;
    if (mt) {
        a = find_arch(mt);
        if (!a) {
            rc = ll_fail(err, LL_ERR_INPUT,
                         "%s: model_type '%s' is not a supported architecture (supported: gpt2, gpt_neox, llama, "
                         "mistral, qwen2)",
                         path, mt);
            goto done;
        }
    } else {
        const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
        const cJSON *first = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
        if (!cJSON_IsString(first)) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: field 'model_type' is missing (expected e.g. \"gpt2\" or \"llama\")",
                         path);
            goto done;
        }
        for (int i = 0; i < N_ARCHES; i++)
            if (!strcmp(arches[i].class_name, first->valuestring)) a = &arches[i];
        if (!a) {
            rc = ll_fail(err, LL_ERR_INPUT,
                         "%s: architectures[0] '%s' is not supported (supported: GPT2LMHeadModel, GPTNeoXForCausalLM, "
                         "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)",
                         path, first->valuestring);
            goto done;
        }
    }
    snprintf(c->arch, sizeof c->arch, "%s", a->model_type);
    rc = a->config(root, path, c, err);
    if (rc == LL_OK && (c->d_model <= 0 || c->n_heads <= 0 || c->head_dim <= 0 || c->n_kv_heads <= 0 ||
                        c->n_heads % c->n_kv_heads != 0))
        rc = ll_fail(err, LL_ERR_INPUT, "%s: heads (%d) must be a positive multiple of key/value heads (%d)", path,
                     c->n_heads, c->n_kv_heads);
    if (rc == LL_OK && c->use_rope && (c->rope.rot_dim < 0 || c->rope.rot_dim > c->head_dim || c->rope.rot_dim % 2))
        rc = ll_fail(err, LL_ERR_INPUT, "%s: rotary dimensions %d must be even and at most head_dim %d", path,
                     c->rope.rot_dim, c->head_dim);
done:
    cJSON_Delete(root);
    return rc;
}

ll_status ll_config_tensor_specs(const ll_config *c, ll_tensor_spec **out, int *n, ll_err *err) {
    size_t cap = (size_t)c->n_layers * LL_LW_COUNT + LL_GW_COUNT;
    ll_tensor_spec *s = ll_calloc_array(cap, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the tensor list");
    *n = 0;
    const arch_entry *a = find_arch(c->arch);
    LL_ASSERT(a != NULL);
    a->specs(c, s, n);
    LL_ASSERT((size_t)*n <= cap);
    *out = s;
    return LL_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int ll_config_is_ignored_buffer(const ll_config *c, const char *name) {
    (void)c;
    /* causal-mask and rotary caches that some exporters save next to the weights */
    return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") ||
           ends_with(name, ".attention.bias") || ends_with(name, ".attention.masked_bias") ||
           ends_with(name, "rotary_emb.inv_freq");
}
