/* config_fields.c: typed config.json field reads, and the rope settings shared by the RoPE families. */
#include "config_fields.h"
#include "ll_math.h"

#include <math.h>
#include <string.h>

static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

ll_status ll_cfg_int(const cJSON *obj, const char *path, const char *key, int required, int64_t dflt, int64_t lo,
                     int64_t hi, int64_t *out, ll_err *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        if (required)
            return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' is missing (expected an integer)", path, key);
        *out = dflt;
        return LL_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9.0e15)
        return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' must be an integer", path, key);
    int64_t x = (int64_t)v->valuedouble;
    if (x < lo || x > hi)
        return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' is %lld, expected %lld..%lld", path, key, (long long)x,
                       (long long)lo, (long long)hi);
    *out = x;
    return LL_OK;
}

ll_status ll_cfg_num(const cJSON *obj, const char *path, const char *key, int required, double dflt, double lo,
                     double hi, double *out, ll_err *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        if (required) return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' is missing (expected a number)", path, key);
        *out = dflt;
        return LL_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' must be a number", path, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' is %g, expected %g..%g", path, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return LL_OK;
}

ll_status ll_cfg_bool(const cJSON *obj, const char *path, const char *key, int dflt, int *out, ll_err *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = dflt;
        return LL_OK;
    }
    if (!cJSON_IsBool(v)) return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return LL_OK;
}

ll_status ll_cfg_str(const cJSON *obj, const char *path, const char *key, const char *dflt, const char **out,
                     ll_err *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = dflt;
        return LL_OK;
    }
    if (!cJSON_IsString(v)) return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' must be a string", path, key);
    *out = v->valuestring;
    return LL_OK;
}

const char *ll_cfg_pick(const cJSON *obj, const char *const *keys) {
    for (; *keys; keys++)
        if (field(obj, *keys)) return *keys;
    return NULL;
}

/* llama3 scaling fields from an object (rope_scaling or rope_parameters). */
static ll_status rope_llama3(const cJSON *o, const char *path, const char *obj_name, ll_rope_params *p, ll_err *err) {
    ll_status rc;
    p->llama3 = 1;
    if ((rc = ll_cfg_num(o, path, "factor", 1, 0, 1e-6, 1e9, &p->factor, err))) return rc;
    if ((rc = ll_cfg_num(o, path, "low_freq_factor", 1, 0, 1e-9, 1e9, &p->low_freq_factor, err))) return rc;
    if ((rc = ll_cfg_num(o, path, "high_freq_factor", 1, 0, 1e-9, 1e9, &p->high_freq_factor, err))) return rc;
    if ((rc = ll_cfg_num(o, path, "original_max_position_embeddings", 1, 0, 1, 1e12, &p->original_max_pos, err)))
        return rc;
    if (p->high_freq_factor <= p->low_freq_factor)
        return ll_fail(err, LL_ERR_INPUT, "%s: %s.high_freq_factor (%g) must exceed low_freq_factor (%g)", path,
                       obj_name, p->high_freq_factor, p->low_freq_factor);
    return LL_OK;
}

static ll_status rope_type(const cJSON *o, const char *path, const char *obj_name, const char **type, ll_err *err) {
    ll_status rc;
    const char *t = NULL;
    if ((rc = ll_cfg_str(o, path, "rope_type", NULL, &t, err))) return rc;
    if (!t && (rc = ll_cfg_str(o, path, "type", NULL, &t, err))) return rc;
    if (!t) t = "default";
    if (strcmp(t, "default") && strcmp(t, "llama3"))
        return ll_fail(err, LL_ERR_INPUT,
                       "%s: %s.rope_type '%s' is not supported (supported: default, llama3)", path, obj_name, t);
    *type = t;
    return LL_OK;
}

ll_status ll_cfg_rope(const cJSON *root, const char *path, const char *const *theta_keys, double theta_dflt,
                      ll_rope_params *p, ll_err *err) {
    ll_status rc;
    p->llama3 = 0;
    p->factor = 1;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        /* transformers v5: one object with rope_type, rope_theta and the scaling fields */
        if (!cJSON_IsObject(rp)) return ll_fail(err, LL_ERR_INPUT, "%s: field 'rope_parameters' must be an object", path);
        const char *type;
        if ((rc = rope_type(rp, path, "rope_parameters", &type, err))) return rc;
        if ((rc = ll_cfg_num(rp, path, "rope_theta", 0, theta_dflt, 1e-6, 1e12, &p->theta, err))) return rc;
        if (!strcmp(type, "llama3")) return rope_llama3(rp, path, "rope_parameters", p, err);
        return LL_OK;
    }
    const char *tk = ll_cfg_pick(root, theta_keys);
    p->theta = theta_dflt;
    if (tk && (rc = ll_cfg_num(root, path, tk, 0, theta_dflt, 1e-6, 1e12, &p->theta, err))) return rc;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs)) return ll_fail(err, LL_ERR_INPUT, "%s: field 'rope_scaling' must be an object or null", path);
        const char *type;
        if ((rc = rope_type(rs, path, "rope_scaling", &type, err))) return rc;
        if (!strcmp(type, "llama3")) return rope_llama3(rs, path, "rope_scaling", p, err);
    }
    return LL_OK;
}
