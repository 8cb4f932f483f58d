/* config_fields.h: typed reads of config.json fields with one-line errors naming file and field. */
#ifndef LL_CONFIG_FIELDS_H
#define LL_CONFIG_FIELDS_H

#include "ll_common.h"

#include <cJSON.h>
#include <stdint.h>

/* A field is "absent" when missing or null. Required fields error when absent; optional ones leave
 * *out = dflt. Present fields of the wrong type or out of [lo, hi] are errors either way. */
ll_status ll_cfg_int(const cJSON *obj, const char *path, const char *key, int required, int64_t dflt, int64_t lo,
                     int64_t hi, int64_t *out, ll_err *err);
ll_status ll_cfg_num(const cJSON *obj, const char *path, const char *key, int required, double dflt, double lo,
                     double hi, double *out, ll_err *err);
ll_status ll_cfg_bool(const cJSON *obj, const char *path, const char *key, int dflt, int *out, ll_err *err);
/* *out points into obj (or is dflt); NULL when absent and dflt is NULL. */
ll_status ll_cfg_str(const cJSON *obj, const char *path, const char *key, const char *dflt, const char **out,
                     ll_err *err);
/* First present key of a list of alternative spellings, or NULL. */
const char *ll_cfg_pick(const cJSON *obj, const char *const *keys);
/* Parses rope settings (rope_theta + rope_scaling, or transformers-v5 rope_parameters) into p
 * (p->rot_dim set by the caller). theta_keys: spellings of the base in this family. */
struct ll_rope_params;
ll_status ll_cfg_rope(const cJSON *root, const char *path, const char *const *theta_keys, double theta_dflt,
                      struct ll_rope_params *p, ll_err *err);

#endif
