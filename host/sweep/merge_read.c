/* merge_read.c: root attributes and rows of datasets of a result file opened with ll_h5_run_open
 * (merge_read.h). Every HDF5 call goes through LL_H5_TRY, as in the reader. */
#include "merge_read.h"
#include "io/h5_util.h"

#include <stdlib.h>
#include <string.h>

static int attr_exists(const ll_h5_run *r, const char *name) {
    htri_t e = H5Aexists(r->file, name);
    if (e <= 0) H5Eclear2(H5E_DEFAULT);
    return e > 0;
}

ll_status sw_h5_attr_str(const ll_h5_run *r, const char *name, int optional, char **out, ll_err *err) {
    *out = NULL;
    if (!attr_exists(r, name)) {
        if (optional) return LL_OK;
        return ll_fail(err, LL_ERR_INPUT, "%s: root attribute '%s' is missing", r->path, name);
    }
    return ll_h5_read_attr_str(r, name, out, err);
}

ll_status sw_h5_attr_i64(const ll_h5_run *r, const char *name, int optional, int64_t dflt, int64_t *out, ll_err *err) {
    ll_status st = LL_OK;
    hid_t attr = -1;
    *out = dflt;
    if (!attr_exists(r, name)) {
        if (optional) return LL_OK;
        return ll_fail(err, LL_ERR_INPUT, "%s: root attribute '%s' is missing", r->path, name);
    }
    LL_H5_TRY(r->path, attr = H5Aopen(r->file, name, H5P_DEFAULT));
    LL_H5_TRY(r->path, H5Aread(attr, H5T_NATIVE_INT64, out));
    goto out;
fail:
    ll_fail_prefix(err, st, "attribute '%s'", name);
out:
    ll_h5_close_id(&attr);
    return st;
}

void sw_strs_free(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

ll_status sw_h5_attr_strs(const ll_h5_run *r, const char *name, char ***out, int *n, ll_err *err) {
    ll_status st = LL_OK;
    hid_t attr = -1, type = -1, space = -1;
    char **raw = NULL;
    *out = NULL;
    *n = 0;
    if (!attr_exists(r, name)) return LL_OK;
    LL_H5_TRY(r->path, attr = H5Aopen(r->file, name, H5P_DEFAULT));
    LL_H5_TRY(r->path, type = H5Aget_type(attr));
    LL_H5_TRY(r->path, space = H5Aget_space(attr));
    hssize_t count = H5Sget_simple_extent_npoints(space);
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0 || count < 0 || count > 1 << 20) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: attribute '%s': expected an array of variable-length strings", r->path, name);
        goto out;
    }
    if (count == 0) goto out;
    raw = calloc((size_t)count, sizeof *raw);
    *out = calloc((size_t)count, sizeof **out);
    if (!raw || !*out) {
        st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto out;
    }
    LL_H5_TRY(r->path, H5Aread(attr, type, raw));
    for (hssize_t i = 0; i < count; i++) {
        (*out)[i] = strdup(raw[i] ? raw[i] : "");
        if ((*out)[i]) (*n)++;
        else st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw);
    goto out;
fail:
    ll_fail_prefix(err, st, "attribute '%s'", name);
out:
    free(raw);
    if (st) {
        sw_strs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    ll_h5_close_id(&space);
    ll_h5_close_id(&type);
    ll_h5_close_id(&attr);
    return st;
}

int sw_h5_has(const ll_h5_run *r, const char *name, int64_t dims[3]) {
    htri_t e = H5Lexists(r->file, name, H5P_DEFAULT);
    if (e <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    hid_t ds = H5Dopen2(r->file, name, H5P_DEFAULT), space = ds >= 0 ? H5Dget_space(ds) : -1;
    hsize_t d[3] = {0, 0, 0};
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    int ok = rank >= 1 && rank <= 3 && H5Sget_simple_extent_dims(space, d, NULL) >= 0;
    for (int i = 0; i < 3; i++) dims[i] = (int64_t)d[i];
    ll_h5_close_id(&space);
    ll_h5_close_id(&ds);
    if (!ok) H5Eclear2(H5E_DEFAULT);
    return ok;
}

ll_status sw_h5_string_rows(const ll_h5_run *r, const char *name, int64_t off, int64_t n, char ***out, ll_err *err) {
    ll_status st = LL_OK;
    hid_t type = -1, space = -1;
    char **raw = calloc((size_t)n + 1, sizeof *raw);
    *out = calloc((size_t)n + 1, sizeof **out);
    if (!raw || !*out) {
        free(raw);
        free(*out);
        *out = NULL;
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    LL_H5_TRY(r->path, type = ll_h5_type_utf8());
    if ((st = ll_h5_read_rows(r, name, type, off, n, raw, err))) goto out;
    hsize_t d = (hsize_t)n;
    LL_H5_TRY(r->path, space = H5Screate_simple(1, &d, NULL));
    for (int64_t i = 0; i < n && !st; i++)
        if (!((*out)[i] = strdup(raw[i] ? raw[i] : ""))) st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (n > 0) H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw);
    goto out;
fail:
    ll_fail_prefix(err, st, "dataset '%s'", name);
out:
    free(raw);
    if (st) {
        sw_strs_free(*out, (int)n);
        *out = NULL;
    }
    ll_h5_close_id(&space);
    ll_h5_close_id(&type);
    return st;
}

ll_status sw_h5_vocab_bytes(const ll_h5_run *r, int64_t n, uint8_t ***bytes, size_t **len, ll_err *err) {
    ll_status st = LL_OK;
    hid_t type = -1, space = -1;
    hvl_t *raw = calloc((size_t)n + 1, sizeof *raw);
    *bytes = calloc((size_t)n + 1, sizeof **bytes);
    *len = calloc((size_t)n + 1, sizeof **len);
    if (!raw || !*bytes || !*len) {
        st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto out;
    }
    LL_H5_TRY(r->path, type = H5Tvlen_create(H5T_NATIVE_UINT8));
    if ((st = ll_h5_read_rows(r, "vocab_bytes", type, 0, n, raw, err))) goto out;
    hsize_t d = (hsize_t)n;
    LL_H5_TRY(r->path, space = H5Screate_simple(1, &d, NULL));
    for (int64_t i = 0; i < n && !st; i++) {
        (*len)[i] = raw[i].len;
        if (!((*bytes)[i] = malloc(raw[i].len + 1))) st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        else if (raw[i].len) memcpy((*bytes)[i], raw[i].p, raw[i].len);
    }
    if (n > 0) H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw);
    goto out;
fail:
    ll_fail_prefix(err, st, "dataset 'vocab_bytes'");
out:
    free(raw);
    if (st) {
        for (int64_t i = 0; *bytes && i < n; i++) free((*bytes)[i]);
        free(*bytes);
        free(*len);
        *bytes = NULL;
        *len = NULL;
    }
    ll_h5_close_id(&space);
    ll_h5_close_id(&type);
    return st;
}
