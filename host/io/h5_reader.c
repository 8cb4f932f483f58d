/* h5_reader.c: ll_h5_run_open / ll_h5_read_prompt (h5_reader.h). Every shape is checked against the
 * others before anything is read, so a damaged or foreign file gives one line naming the dataset and
 * what was expected, never a crash. */
#include "h5_reader.h"
#include "h5_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ll_h5_run_close(ll_h5_run *r) {
    if (!r) return;
    for (int i = 0; r->point_names && i < r->n_points; i++) free(r->point_names[i]);
    for (int64_t i = 0; r->vocab && i < r->n_vocab; i++) free(r->vocab[i]);
    free(r->point_names);
    free(r->vocab);
    free(r->point_layers);
    free(r->prompt_offsets);
    ll_h5_close_id(&r->file);
    free(r->path);
    free(r);
}

ll_status ll_h5_read_attr_str(const ll_h5_run *r, const char *name, char **out, ll_err *err) {
    ll_status st = LL_OK;
    hid_t attr = -1, type = -1;
    *out = NULL;
    LL_H5_TRY(r->path, attr = H5Aopen(r->file, name, H5P_DEFAULT));
    LL_H5_TRY(r->path, type = H5Aget_type(attr));
    if (H5Tget_class(type) != H5T_STRING) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: attribute '%s': expected a string", r->path, name);
        goto out;
    }
    if (H5Tis_variable_str(type) > 0) {
        char *s = NULL;
        LL_H5_TRY(r->path, H5Aread(attr, type, &s));
        *out = strdup(s ? s : "");
        H5free_memory(s);
    } else {
        size_t n = H5Tget_size(type);
        *out = calloc(n + 1, 1);
        if (*out) LL_H5_TRY(r->path, H5Aread(attr, type, *out));
    }
    if (!*out) st = ll_fail(err, LL_ERR_NOMEM, "%s: attribute '%s': out of memory", r->path, name);
    goto out;
fail:
    ll_fail_prefix(err, st, "attribute '%s'", name);
out:
    ll_h5_close_id(&type);
    ll_h5_close_id(&attr);
    return st;
}

/* Opens dataset `name` and checks its rank, element class and, where want[a] >= 0, each axis length;
 * the actual lengths go to dims. `required` = 0 lets a missing dataset return LL_OK with *out = -1. */
static ll_status ds_open(const ll_h5_run *r, const char *name, int rank, H5T_class_t cls, const int64_t *want,
                         int required, hid_t *out, int64_t *dims, ll_err *err) {
    ll_status st = LL_OK;
    hid_t ds = -1, space = -1, type = -1;
    hsize_t d[8];
    *out = -1;
    htri_t exists = H5Lexists(r->file, name, H5P_DEFAULT);
    if (exists <= 0) {
        H5Eclear2(H5E_DEFAULT);
        if (!required) return LL_OK;
        return ll_fail(err, LL_ERR_INPUT, "%s: dataset '%s' is missing (docs/hdf5-format.md)", r->path, name);
    }
    LL_H5_TRY(r->path, ds = H5Dopen2(r->file, name, H5P_DEFAULT));
    LL_H5_TRY(r->path, space = H5Dget_space(ds));
    LL_H5_TRY(r->path, type = H5Dget_type(ds));
    int nd = H5Sget_simple_extent_ndims(space);
    const char *cname = cls == H5T_INTEGER ? "integer" : cls == H5T_FLOAT ? "float" : "string";
    if (nd != rank || H5Tget_class(type) != cls) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: dataset '%s': expected a %d-D %s array", r->path, name, rank, cname);
        goto out;
    }
    LL_H5_TRY(r->path, H5Sget_simple_extent_dims(space, d, NULL));
    for (int a = 0; a < rank; a++) {
        dims[a] = (int64_t)d[a];
        if (want && want[a] >= 0 && dims[a] != want[a]) {
            st = ll_fail(err, LL_ERR_INPUT, "%s: dataset '%s': axis %d has length %lld, expected %lld", r->path,
                         name, a, (long long)dims[a], (long long)want[a]);
            goto out;
        }
    }
    *out = ds;
    ds = -1;
    goto out;
fail:
    ll_fail_prefix(err, st, "dataset '%s'", name);
out:
    ll_h5_close_id(&type);
    ll_h5_close_id(&space);
    ll_h5_close_id(&ds);
    return st;
}

/* Reads a whole 1-D string dataset (variable or fixed length) into n malloc'ed strings. */
static ll_status read_strings(const ll_h5_run *r, hid_t ds, const char *name, int64_t n, char ***out,
                              ll_err *err) {
    ll_status st = LL_OK;
    hid_t type = -1, space = -1;
    char **s = calloc(n > 0 ? (size_t)n : 1, sizeof *s);
    char *fixed = NULL;
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "%s: dataset '%s': out of memory", r->path, name);
    LL_H5_TRY(r->path, type = H5Dget_type(ds));
    LL_H5_TRY(r->path, space = H5Dget_space(ds));
    if (n == 0) goto out;
    if (H5Tis_variable_str(type) > 0) {
        char **raw = calloc((size_t)n, sizeof *raw);
        if (!raw) {
            st = ll_fail(err, LL_ERR_NOMEM, "%s: dataset '%s': out of memory", r->path, name);
            goto out;
        }
        herr_t rc = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw);
        for (int64_t i = 0; rc >= 0 && i < n; i++)
            if (!(s[i] = strdup(raw[i] ? raw[i] : ""))) st = LL_ERR_NOMEM;
        if (rc >= 0) H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw);
        free(raw);
        LL_H5_TRY(r->path, rc);
        if (st) {
            st = ll_fail(err, LL_ERR_NOMEM, "%s: dataset '%s': out of memory", r->path, name);
            goto out;
        }
    } else {
        size_t w = H5Tget_size(type);
        fixed = ll_malloc_array((size_t)n, w);
        if (!fixed) {
            st = ll_fail(err, LL_ERR_NOMEM, "%s: dataset '%s': out of memory", r->path, name);
            goto out;
        }
        LL_H5_TRY(r->path, H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed));
        for (int64_t i = 0; i < n; i++)
            if (!(s[i] = strndup(fixed + (size_t)i * w, w))) {
                st = ll_fail(err, LL_ERR_NOMEM, "%s: dataset '%s': out of memory", r->path, name);
                goto out;
            }
    }
    goto out;
fail:
    ll_fail_prefix(err, st, "dataset '%s'", name);
out:
    free(fixed);
    ll_h5_close_id(&space);
    ll_h5_close_id(&type);
    if (st) {
        for (int64_t i = 0; i < n; i++) free(s[i]);
        free(s);
        s = NULL;
    }
    *out = s;
    return st;
}

static ll_status check_format(ll_h5_run *r, ll_err *err) {
    ll_status st = LL_OK;
    hid_t attr = -1, type = -1;
    char *fmt = NULL;
    if (H5Aexists(r->file, "format") <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return ll_fail(err, LL_ERR_INPUT, "%s: not a logitlens result file (root attribute 'format' is missing)",
                       r->path);
    }
    if ((st = ll_h5_read_attr_str(r, "format", &fmt, err))) return st;
    if (strcmp(fmt, LL_H5_FORMAT) != 0) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: not a logitlens result file (attribute 'format' is '%.100s', expected '%s')",
                     r->path, fmt, LL_H5_FORMAT);
        goto out;
    }
    if (H5Aexists(r->file, "format_version") <= 0) {
        H5Eclear2(H5E_DEFAULT);
        st = ll_fail(err, LL_ERR_INPUT, "%s: root attribute 'format_version' is missing", r->path);
        goto out;
    }
    LL_H5_TRY(r->path, attr = H5Aopen(r->file, "format_version", H5P_DEFAULT));
    LL_H5_TRY(r->path, type = H5Aget_type(attr));
    if (H5Tget_class(type) != H5T_INTEGER) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: attribute 'format_version': expected an integer", r->path);
        goto out;
    }
    LL_H5_TRY(r->path, H5Aread(attr, H5T_NATIVE_INT32, &r->format_version));
    if (r->format_version != LL_H5_FORMAT_VERSION)
        st = ll_fail(err, LL_ERR_INPUT,
                     "%s: unsupported format_version %d (this logitlens %s reads format version %d%s)", r->path,
                     (int)r->format_version, LL_VERSION, LL_H5_FORMAT_VERSION,
                     r->format_version > LL_H5_FORMAT_VERSION ? "; a newer logitlens wrote it" : "");
    goto out;
fail:
    ll_fail_prefix(err, st, "attribute 'format_version'");
out:
    ll_h5_close_id(&type);
    ll_h5_close_id(&attr);
    free(fmt);
    return st;
}

/* Reads the prompt boundaries and checks that they cut the token axis into non-empty prompts. */
static ll_status read_offsets(ll_h5_run *r, ll_err *err) {
    ll_status st;
    hid_t ds = -1;
    int64_t d[1];
    if ((st = ds_open(r, "prompt_offsets", 1, H5T_INTEGER, NULL, 1, &ds, d, err))) return st;
    if (d[0] < 1) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: dataset 'prompt_offsets': expected at least one entry", r->path);
        goto out;
    }
    r->n_prompts = d[0] - 1;
    r->prompt_offsets = ll_malloc_array((size_t)d[0], sizeof *r->prompt_offsets);
    if (!r->prompt_offsets) {
        st = ll_fail(err, LL_ERR_NOMEM, "%s: prompt_offsets: out of memory", r->path);
        goto out;
    }
    LL_H5_TRY(r->path, H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->prompt_offsets));
    for (int64_t j = 0; j <= r->n_prompts; j++) {
        int64_t o = r->prompt_offsets[j];
        int bad = j == 0 ? o != 0 : o <= r->prompt_offsets[j - 1];
        if (j == r->n_prompts && o != r->n_tokens) bad = 1;
        if (bad) {
            st = ll_fail(err, LL_ERR_INPUT,
                         "%s: dataset 'prompt_offsets': entry %lld is %lld; expected 0 first, increasing, and "
                         "%lld (the token count) last", r->path, (long long)j, (long long)o, (long long)r->n_tokens);
            goto out;
        }
    }
    goto out;
fail:
    ll_fail_prefix(err, st, "dataset 'prompt_offsets'");
out:
    ll_h5_close_id(&ds);
    return st;
}

ll_status ll_h5_run_open(const char *path, ll_h5_run **out, ll_err *err) {
    ll_status st = LL_OK;
    hid_t ds = -1;
    int64_t d[3];
    struct stat sb;
    *out = NULL;
    ll_h5_quiet();
    if (stat(path, &sb) != 0) return ll_fail(err, LL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return ll_fail(err, LL_ERR_IO, "cannot open %s: it is a directory", path);
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        FILE *f = fopen(path, "rb");
        if (!f) return ll_fail(err, LL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        fclose(f);
        return ll_fail(err, LL_ERR_INPUT, "%s: not a logitlens result file (not an HDF5 file)", path);
    }
    ll_h5_run *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return ll_fail(err, LL_ERR_NOMEM, "cannot open %s: out of memory", path);
    }
    r->file = -1;
    LL_H5_TRY(path, r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT));
    if ((st = check_format(r, err))) goto out;

    if ((st = ds_open(r, "tokens", 1, H5T_INTEGER, NULL, 1, &ds, d, err))) goto out;
    r->n_tokens = d[0];
    ll_h5_close_id(&ds);
    if ((st = read_offsets(r, err))) goto out;
    if ((st = ds_open(r, "points", 1, H5T_STRING, NULL, 1, &ds, d, err))) goto out;
    if (d[0] < 1 || d[0] > INT32_MAX) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: dataset 'points': expected at least one point", path);
        goto out;
    }
    r->n_points = (int)d[0];
    if ((st = read_strings(r, ds, "points", r->n_points, &r->point_names, err))) goto out;
    ll_h5_close_id(&ds);
    int64_t want_p[1] = {r->n_points};
    if ((st = ds_open(r, "point_layers", 1, H5T_INTEGER, want_p, 1, &ds, d, err))) goto out;
    if (!(r->point_layers = ll_malloc_array((size_t)r->n_points, sizeof *r->point_layers))) {
        st = ll_fail(err, LL_ERR_NOMEM, "%s: point_layers: out of memory", path);
        goto out;
    }
    LL_H5_TRY(path, H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->point_layers));
    ll_h5_close_id(&ds);

    int64_t want_k[3] = {r->n_tokens, r->n_points, -1};
    if ((st = ds_open(r, "topk_ids", 3, H5T_INTEGER, want_k, 1, &ds, d, err))) goto out;
    ll_h5_close_id(&ds);
    if (d[2] < 1 || d[2] > INT32_MAX) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: dataset 'topk_ids': expected k >= 1", path);
        goto out;
    }
    r->topk = (int)d[2];
    want_k[2] = r->topk;
    if ((st = ds_open(r, "topk_probs", 3, H5T_FLOAT, want_k, 1, &ds, d, err))) goto out;
    ll_h5_close_id(&ds);
    static const char *const per_point[] = {"entropy", "kl_final", "target_probs", "target_ranks"};
    for (int i = 0; i < 4; i++) {
        H5T_class_t cls = i == 3 ? H5T_INTEGER : H5T_FLOAT;
        if ((st = ds_open(r, per_point[i], 2, cls, want_k, 1, &ds, d, err))) goto out;
        ll_h5_close_id(&ds);
    }
    if ((st = ds_open(r, "target_ids", 1, H5T_INTEGER, want_k, 1, &ds, d, err))) goto out;
    ll_h5_close_id(&ds);

    if ((st = ds_open(r, "vocab", 1, H5T_STRING, NULL, 0, &ds, d, err))) goto out;
    if (ds >= 0) {
        r->n_vocab = d[0];
        if ((st = read_strings(r, ds, "vocab", r->n_vocab, &r->vocab, err))) goto out;
    }
    goto out;
fail:
    ll_fail_prefix(err, st, "cannot open %s", path);
out:
    ll_h5_close_id(&ds);
    if (st) {
        ll_h5_run_close(r);
        return st;
    }
    *out = r;
    return LL_OK;
}

ll_status ll_h5_read_rows(const ll_h5_run *r, const char *name, hid_t mtype, int64_t off, int64_t n, void *buf,
                          ll_err *err) {
    ll_status st = LL_OK;
    hid_t ds = -1, fspace = -1, mspace = -1;
    hsize_t dims[3], start[3] = {0, 0, 0};
    if (n == 0) return LL_OK;
    LL_H5_TRY(r->path, ds = H5Dopen2(r->file, name, H5P_DEFAULT));
    LL_H5_TRY(r->path, fspace = H5Dget_space(ds));
    int rank = H5Sget_simple_extent_ndims(fspace);
    if (rank < 1 || rank > 3) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: dataset '%s': expected 1 to 3 axes", r->path, name);
        goto out;
    }
    LL_H5_TRY(r->path, H5Sget_simple_extent_dims(fspace, dims, NULL));
    if (off < 0 || n < 0 || (hsize_t)(off + n) > dims[0]) {
        st = ll_fail(err, LL_ERR_INPUT, "%s: dataset '%s': rows %lld..%lld are outside its %llu rows", r->path, name,
                     (long long)off, (long long)(off + n), (unsigned long long)dims[0]);
        goto out;
    }
    start[0] = (hsize_t)off;
    dims[0] = (hsize_t)n;
    LL_H5_TRY(r->path, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, dims, NULL));
    LL_H5_TRY(r->path, mspace = H5Screate_simple(rank, dims, NULL));
    LL_H5_TRY(r->path, H5Dread(ds, mtype, mspace, fspace, H5P_DEFAULT, buf));
    goto out;
fail:
    ll_fail_prefix(err, st, "dataset '%s'", name);
out:
    ll_h5_close_id(&mspace);
    ll_h5_close_id(&fspace);
    ll_h5_close_id(&ds);
    return st;
}

void ll_h5_prompt_data_free(ll_h5_prompt_data *d) {
    if (!d) return;
    free(d->tokens);
    free(d->target_ids);
    free(d->topk_ids);
    free(d->topk_probs);
    free(d->entropy);
    free(d->kl_final);
    free(d->target_probs);
    free(d->target_ranks);
    memset(d, 0, sizeof *d);
}

ll_status ll_h5_read_prompt(const ll_h5_run *r, int64_t prompt, ll_h5_prompt_data *d, ll_err *err) {
    ll_status st;
    memset(d, 0, sizeof *d);
    if (prompt < 0 || prompt >= r->n_prompts)
        return ll_fail(err, LL_ERR_INPUT, "%s: prompt %lld: expected 0..%lld", r->path, (long long)prompt,
                       (long long)r->n_prompts - 1);
    int64_t n = r->prompt_offsets[prompt + 1] - r->prompt_offsets[prompt];
    size_t np = (size_t)n * (size_t)r->n_points, nk = np * (size_t)r->topk;
    d->offset = r->prompt_offsets[prompt];
    d->length = n;
    d->tokens = ll_malloc_array((size_t)n, sizeof *d->tokens);
    d->target_ids = ll_malloc_array((size_t)n, sizeof *d->target_ids);
    d->topk_ids = ll_malloc_array(nk, sizeof *d->topk_ids);
    d->topk_probs = ll_malloc_array(nk, sizeof *d->topk_probs);
    d->entropy = ll_malloc_array(np, sizeof *d->entropy);
    d->kl_final = ll_malloc_array(np, sizeof *d->kl_final);
    d->target_probs = ll_malloc_array(np, sizeof *d->target_probs);
    d->target_ranks = ll_malloc_array(np, sizeof *d->target_ranks);
    if (!d->tokens || !d->target_ids || !d->topk_ids || !d->topk_probs || !d->entropy || !d->kl_final ||
        !d->target_probs || !d->target_ranks) {
        st = ll_fail(err, LL_ERR_NOMEM, "%s: prompt %lld of %lld tokens: out of memory", r->path, (long long)prompt,
                     (long long)n);
        goto fail;
    }
    if ((st = ll_h5_read_rows(r, "tokens", H5T_NATIVE_INT32, d->offset, n, d->tokens, err)) ||
        (st = ll_h5_read_rows(r, "target_ids", H5T_NATIVE_INT32, d->offset, n, d->target_ids, err)) ||
        (st = ll_h5_read_rows(r, "topk_ids", H5T_NATIVE_INT32, d->offset, n, d->topk_ids, err)) ||
        (st = ll_h5_read_rows(r, "topk_probs", H5T_NATIVE_FLOAT, d->offset, n, d->topk_probs, err)) ||
        (st = ll_h5_read_rows(r, "entropy", H5T_NATIVE_FLOAT, d->offset, n, d->entropy, err)) ||
        (st = ll_h5_read_rows(r, "kl_final", H5T_NATIVE_FLOAT, d->offset, n, d->kl_final, err)) ||
        (st = ll_h5_read_rows(r, "target_probs", H5T_NATIVE_FLOAT, d->offset, n, d->target_probs, err)) ||
        (st = ll_h5_read_rows(r, "target_ranks", H5T_NATIVE_INT32, d->offset, n, d->target_ranks, err)))
        goto fail;
    return LL_OK;
fail:
    ll_h5_prompt_data_free(d);
    return st;
}
