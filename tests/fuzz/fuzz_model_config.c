/* fuzz_model_config.c: libFuzzer target: arbitrary bytes as config.json. Parsing must either fail with
 * a one-line message or give a configuration the forward pass can trust: positive sizes, heads a
 * multiple of key/value heads, head_dim x heads consistent with the projections' shapes, even rotary
 * dimensions within head_dim, and a tensor list whose every shape is positive and whose element counts
 * do not overflow. Build and run: make fuzz-model (mk/fuzz_model.mk). */
#include "ll_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ll_config c;
    ll_err err;
    if (ll_config_parse("fuzz/config.json", (const char *)data, size, &c, &err) != LL_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    if (c.n_layers < 1 || c.d_model < 1 || c.n_heads < 1 || c.n_kv_heads < 1 || c.head_dim < 1 || c.d_ff < 1 ||
        c.vocab < 1 || c.n_ctx < 1 || c.n_heads % c.n_kv_heads)
        abort();
    if (c.use_rope && (c.rope.rot_dim < 0 || c.rope.rot_dim > c.head_dim || c.rope.rot_dim % 2)) abort();
    ll_tensor_spec *specs;
    int n;
    if (ll_config_tensor_specs(&c, &specs, &n, &err) != LL_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const ll_tensor_spec *t = &specs[i];
        if (!t->name[0] || t->ndim < 1 || t->ndim > 2) abort();
        int64_t numel = 1;
        for (int j = 0; j < t->ndim; j++) {
            if (t->shape[j] < 1 || numel > INT64_MAX / t->shape[j]) abort();
            numel *= t->shape[j];
        }
    }
    free(specs);
    return 0;
}
