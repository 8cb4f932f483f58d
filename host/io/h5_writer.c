/* h5_writer.c: ll_h5_create / ll_h5_commit / ll_h5_abort (include/ll_h5.h; ll_h5_append is in h5_append.c),
 * writing the layout of docs/hdf5-format.md.
 *
 * Every axis of every dataset is a dimension scale (a 1-D int64 dataset holding 0, 1, 2, ... named after
 * the dimension) attached with H5DSattach_scale; that is what h5netcdf/xarray read as dimension names.
 * The growing axes (token, prompt, prompt_edge, probs_row) are unlimited and chunked; each append extends
 * every dataset on such an axis once and writes the whole batch with one hyperslab write per dataset, so
 * the cost of a batch does not depend on how many rows it has. */
#include "h5_writer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const ll_h5w_dim_names[DIM_COUNT] = {
    "token", "prompt", "prompt_edge", "probs_row", "point", "k", "vocab_id", "probs_vocab", "hidden_dim",
};
const ds_spec ll_h5w_specs[DS_COUNT] = {
    [DS_TOKENS] = {"tokens", T_I32, 1, {DIM_TOKEN}},
    [DS_TOKEN_PROMPT] = {"token_prompt", T_I32, 1, {DIM_TOKEN}},
    [DS_TOKEN_POSITION] = {"token_position", T_I32, 1, {DIM_TOKEN}},
    [DS_TARGET_IDS] = {"target_ids", T_I32, 1, {DIM_TOKEN}},
    [DS_TOPK_IDS] = {"topk_ids", T_I32, 3, {DIM_TOKEN, DIM_POINT, DIM_K}},
    [DS_TOPK_PROBS] = {"topk_probs", T_F32, 3, {DIM_TOKEN, DIM_POINT, DIM_K}},
    [DS_ENTROPY] = {"entropy", T_F32, 2, {DIM_TOKEN, DIM_POINT}},
    [DS_KL_FINAL] = {"kl_final", T_F32, 2, {DIM_TOKEN, DIM_POINT}},
    [DS_TARGET_PROBS] = {"target_probs", T_F32, 2, {DIM_TOKEN, DIM_POINT}},
    [DS_TARGET_LOGPROBS] = {"target_logprobs", T_F32, 2, {DIM_TOKEN, DIM_POINT}},
    [DS_TARGET_RANKS] = {"target_ranks", T_I32, 2, {DIM_TOKEN, DIM_POINT}},
    [DS_HIDDEN] = {"hidden", T_F32, 3, {DIM_TOKEN, DIM_POINT, DIM_HIDDEN_DIM}},
    [DS_PROMPTS] = {"prompts", T_STR, 1, {DIM_PROMPT}},
    [DS_PROMPT_TARGETS] = {"prompt_targets", T_STR, 1, {DIM_PROMPT}},
    [DS_PROMPT_OFFSETS] = {"prompt_offsets", T_I64, 1, {DIM_PROMPT_EDGE}},
    [DS_PROBS] = {"probs", T_F16, 3, {DIM_PROBS_ROW, DIM_POINT, DIM_PROBS_VOCAB}},
    [DS_PROBS_TOKEN_INDEX] = {"probs_token_index", T_I64, 1, {DIM_PROBS_ROW}},
};

static hid_t elem_file_type(const ll_h5_writer *w, elem_kind k) {
    switch (k) {
    case T_I32: return H5T_STD_I32LE;
    case T_I64: return H5T_STD_I64LE;
    case T_F32: return H5T_IEEE_F32LE;
    case T_F16: return w->t_f16_file;
    default: return w->t_utf8;
    }
}

hid_t ll_h5w_mem_type(const ll_h5_writer *w, elem_kind k) {
    switch (k) {
    case T_I32: return H5T_NATIVE_INT32;
    case T_I64: return H5T_NATIVE_INT64;
    case T_F32: return H5T_NATIVE_FLOAT;
    case T_F16: return w->t_f16_mem;
    default: return w->t_utf8;
    }
}

static size_t elem_size(elem_kind k) {
    switch (k) {
    case T_I32: case T_F32: return 4;
    case T_F16: return 2;
    case T_I64: return 8;
    default: return sizeof(char *);
    }
}

static void writer_free(ll_h5_writer *w) {
    for (int i = 0; i < DS_COUNT; i++) ll_h5_close_id(&w->ds[i]);
    for (int i = 0; i < DIM_COUNT; i++) ll_h5_close_id(&w->scale[i]);
    ll_h5_close_id(&w->t_utf8);
    ll_h5_close_id(&w->t_f16_file);
    ll_h5_close_id(&w->t_f16_mem);
    ll_h5_close_id(&w->dapl);
    ll_h5_close_id(&w->file);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

/* ---- attributes ------------------------------------------------------------------------------------ */

/* An attribute of loc (the file, or a dataset): a scalar (n < 0) or n values. */
static ll_status attr_write_on(ll_h5_writer *w, hid_t loc, const char *name, hid_t ftype, hid_t mtype, int n,
                               const void *buf, ll_err *err) {
    ll_status st = LL_OK;
    hid_t space = -1, attr = -1;
    hsize_t dims[1] = {(hsize_t)n};
    LL_H5_TRY(w->tmp_path, space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL));
    LL_H5_TRY(w->tmp_path, attr = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT));
    LL_H5_TRY(w->tmp_path, H5Awrite(attr, mtype, buf));
fail:
    if (st) ll_fail_prefix(err, st, "attribute '%s'", name);
    ll_h5_close_id(&attr);
    ll_h5_close_id(&space);
    return st;
}

static ll_status attr_write(ll_h5_writer *w, const char *name, hid_t ftype, hid_t mtype, int n, const void *buf,
                            ll_err *err) {
    return attr_write_on(w, w->file, name, ftype, mtype, n, buf, err);
}

static ll_status attr_str(ll_h5_writer *w, const char *name, const char *v, ll_err *err) {
    const char *s = v ? v : "";
    return attr_write(w, name, w->t_utf8, w->t_utf8, -1, &s, err);
}

static ll_status attr_i64(ll_h5_writer *w, const char *name, int64_t v, ll_err *err) {
    return attr_write(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &v, err);
}

static ll_status attr_strs(ll_h5_writer *w, const char *name, int n, const char *const *v, ll_err *err) {
    const char **s = ll_malloc_array(n > 0 ? (size_t)n : 1, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "hdf5 %s: attribute '%s': out of memory", w->path, name);
    for (int i = 0; i < n; i++) s[i] = v && v[i] ? v[i] : "";
    ll_status st = attr_write(w, name, w->t_utf8, w->t_utf8, n, s, err);
    free(s);
    return st;
}

static ll_status write_root_attrs(ll_h5_writer *w, const ll_h5_meta *m, ll_err *err) {
    ll_status st;
    int32_t version = LL_H5_FORMAT_VERSION;
    if ((st = attr_str(w, "format", LL_H5_FORMAT, err))) return st;
    if ((st = attr_write(w, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, -1, &version, err))) return st;
    if ((st = attr_str(w, "engine_version", LL_VERSION, err))) return st;
    if ((st = attr_str(w, "command_line", m->command_line, err))) return st;
    if ((st = attr_str(w, "created", m->created, err))) return st;
    if ((st = attr_str(w, "model_path", m->model_path, err))) return st;
    if ((st = attr_str(w, "architecture", m->architecture, err))) return st;
    if ((st = attr_str(w, "dtype", m->dtype, err))) return st;
    if ((st = attr_str(w, "backend", m->backend, err))) return st;
    if ((st = attr_i64(w, "allow_tf32", m->allow_tf32 ? 1 : 0, err))) return st;
    if ((st = attr_i64(w, "n_layers", m->n_layers, err))) return st;
    if ((st = attr_i64(w, "d_model", m->d_model, err))) return st;
    if ((st = attr_i64(w, "vocab_size", m->vocab_size, err))) return st;
    if ((st = attr_i64(w, "topk", m->topk, err))) return st;
    if ((st = attr_str(w, "config_sha256", m->config_sha256, err))) return st;
    const char *fmt = m->source_format ? m->source_format : "safetensors";
    int gguf = !strcmp(fmt, "gguf");
    if ((st = attr_str(w, "source_format", fmt, err))) return st;
    if ((st = attr_str(w, "storage_types", m->storage_types, err))) return st;
    if ((st = attr_str(w, "tokenizer", m->tokenizer ? m->tokenizer : "none", err))) return st;
    if (m->tokenizer_error && (st = attr_str(w, "tokenizer_error", m->tokenizer_error, err))) return st;
    /* how the run was split over ranks (1 x 1 for one process) */
    const int world = m->world_size > 0 ? m->world_size : 1;
    if ((st = attr_i64(w, "tp", m->tp > 0 ? m->tp : 1, err))) return st;
    if ((st = attr_i64(w, "pp", m->pp > 0 ? m->pp : 1, err))) return st;
    if ((st = attr_i64(w, "world_size", world, err))) return st;
    const char *one[1] = {m->backend};
    if ((st = attr_strs(w, "rank_devices", world, m->rank_devices ? m->rank_devices : one, err))) return st;
    /* the safetensors attributes stay present (empty for a GGUF model) for readers that expect them */
    if ((st = attr_strs(w, "safetensors_files", gguf ? 0 : m->n_st_files, m->st_files, err))) return st;
    if ((st = attr_strs(w, "safetensors_header_sha256", gguf ? 0 : m->n_st_files, m->st_header_sha256, err)))
        return st;
    if (!gguf) return LL_OK;
    if ((st = attr_strs(w, "gguf_files", m->n_st_files, m->st_files, err))) return st;
    return attr_strs(w, "gguf_header_sha256", m->n_st_files, m->st_header_sha256, err);
}

/* ---- datasets -------------------------------------------------------------------------------------- */

/* Creates a dataset on the given dimensions (current lengths from w->dim_len), attaches the dimension
 * scales and labels its axes. Datasets on a growing axis are chunked and unlimited (chunks of up to 1 MiB,
 * never more rows than the run will write); numeric ones are compressed (shuffle + deflate 4). Strings are
 * not: only their heap references would be compressed. */
static ll_status create_ds(ll_h5_writer *w, const char *name, elem_kind kind, int rank, const int *dims,
                           int is_scale, hid_t *out, ll_err *err) {
    ll_status st = LL_OK;
    hid_t space = -1, dcpl = -1, ds = -1;
    hsize_t cur[3], max[3], chunk[3];
    int grows = DIM_GROWS(dims[0]);
    for (int a = 0; a < rank; a++) {
        cur[a] = (hsize_t)w->dim_len[dims[a]];
        max[a] = a == 0 && grows ? H5S_UNLIMITED : cur[a];
    }
    LL_H5_TRY(w->tmp_path, space = H5Screate_simple(rank, cur, max));
    LL_H5_TRY(w->tmp_path, dcpl = H5Pcreate(H5P_DATASET_CREATE));
    if (grows) {
        ll_h5_chunk_shape(rank, cur + 1, elem_size(kind), chunk);
        /* no larger than the whole dataset will be: a chunk is allocated whole (strings are not compressed) */
        const int64_t expect = w->dim_expect[dims[0]];
        if (expect > 0 && chunk[0] > (hsize_t)expect) chunk[0] = (hsize_t)expect;
        LL_H5_TRY(w->tmp_path, H5Pset_chunk(dcpl, rank, chunk));
        if (kind != T_STR) {
            LL_H5_TRY(w->tmp_path, H5Pset_shuffle(dcpl));
            LL_H5_TRY(w->tmp_path, H5Pset_deflate(dcpl, 4));
        }
    }
    LL_H5_TRY(w->tmp_path, ds = H5Dcreate2(w->file, name, elem_file_type(w, kind), space, H5P_DEFAULT, dcpl,
                                           grows ? w->dapl : H5P_DEFAULT));
    int on_point = 0;
    for (int a = 0; a < rank && !is_scale; a++) {
        LL_H5_TRY(w->tmp_path, H5DSattach_scale(ds, w->scale[dims[a]], (unsigned)a));
        LL_H5_TRY(w->tmp_path, H5DSset_label(ds, (unsigned)a, ll_h5w_dim_names[dims[a]]));
        on_point |= dims[a] == DIM_POINT;
    }
    /* the point names as coordinates of every dataset on the point axis, for readers that follow the CF
     * "coordinates" attribute (xarray: ds.points; ds.set_xindex("points").sel(points="post.3")) */
    if (on_point && strcmp(name, "points") && strcmp(name, "point_layers")) {
        const char *coords = "points point_layers";
        if ((st = attr_write_on(w, ds, "coordinates", w->t_utf8, w->t_utf8, -1, &coords, err))) goto fail;
    }
    *out = ds;
    ds = -1;
fail:
    if (st) ll_fail_prefix(err, st, "dataset '%s'", name);
    ll_h5_close_id(&ds);
    ll_h5_close_id(&dcpl);
    ll_h5_close_id(&space);
    return st;
}

/* Writes a whole fixed-size dataset in one call. */
static ll_status write_all(ll_h5_writer *w, hid_t ds, hid_t mtype, const void *buf, const char *name,
                           ll_err *err) {
    ll_status st = LL_OK;
    LL_H5_TRY(w->tmp_path, H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf));
fail:
    if (st) ll_fail_prefix(err, st, "dataset '%s'", name);
    return st;
}

/* Extends dataset `ds` (growing axis 0, which currently has n_old rows) by n_new rows and writes them from
 * buf (n_new rows, each the dataset's full row) with one hyperslab write. */
ll_status ll_h5w_append_rows(ll_h5_writer *w, hid_t ds, hid_t mtype, int64_t n_old, int64_t n_new,
                             const void *buf, const char *name, ll_err *err) {
    ll_status st = LL_OK;
    hid_t fspace = -1, mspace = -1;
    hsize_t dims[3], start[3] = {0, 0, 0}, count[3];
    if (n_new <= 0) return LL_OK;
    LL_H5_TRY(w->tmp_path, fspace = H5Dget_space(ds));
    int rank = H5Sget_simple_extent_ndims(fspace);
    LL_ASSERT(rank >= 1 && rank <= 3);
    LL_H5_TRY(w->tmp_path, H5Sget_simple_extent_dims(fspace, dims, NULL));
    LL_ASSERT(dims[0] == (hsize_t)n_old);
    ll_h5_close_id(&fspace);
    dims[0] = (hsize_t)(n_old + n_new);
    LL_H5_TRY(w->tmp_path, H5Dset_extent(ds, dims));
    LL_H5_TRY(w->tmp_path, fspace = H5Dget_space(ds));
    start[0] = (hsize_t)n_old;
    memcpy(count, dims, sizeof count);
    count[0] = (hsize_t)n_new;
    LL_H5_TRY(w->tmp_path, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    LL_H5_TRY(w->tmp_path, mspace = H5Screate_simple(rank, count, NULL));
    LL_H5_TRY(w->tmp_path, H5Dwrite(ds, mtype, mspace, fspace, H5P_DEFAULT, buf));
fail:
    if (st) ll_fail_prefix(err, st, "appending to dataset '%s'", name);
    ll_h5_close_id(&mspace);
    ll_h5_close_id(&fspace);
    return st;
}

/* Dimension scales: 1-D int64 datasets named after the dimension, holding 0, 1, 2, ... */
static ll_status create_scales(ll_h5_writer *w, ll_err *err) {
    ll_status st = LL_OK;
    int64_t *ramp = NULL;
    for (int d = 0; d < DIM_COUNT; d++) {
        if (w->dim_len[d] < 0) continue; /* dimension absent from this file */
        int dims[1] = {d};
        if ((st = create_ds(w, ll_h5w_dim_names[d], T_I64, 1, dims, 1, &w->scale[d], err))) goto out;
        LL_H5_TRY(w->tmp_path, H5DSset_scale(w->scale[d], ll_h5w_dim_names[d]));
        if (w->dim_len[d] == 0) continue;
        ramp = ll_malloc_array((size_t)w->dim_len[d], sizeof *ramp);
        if (!ramp) {
            st = ll_fail(err, LL_ERR_NOMEM, "hdf5 %s: dimension '%s': out of memory", w->path, ll_h5w_dim_names[d]);
            goto out;
        }
        for (int64_t i = 0; i < w->dim_len[d]; i++) ramp[i] = i;
        if ((st = write_all(w, w->scale[d], H5T_NATIVE_INT64, ramp, ll_h5w_dim_names[d], err))) goto out;
        free(ramp);
        ramp = NULL;
    }
    goto out;
fail:
    ll_fail_prefix(err, st, "dimension scale");
out:
    free(ramp);
    return st;
}

/* Creates and fills a fixed-size 1-D dataset. */
static ll_status fixed_1d(ll_h5_writer *w, const char *name, elem_kind kind, int dim, hid_t mtype,
                          const void *buf, ll_err *err) {
    hid_t ds = -1;
    int dims[1] = {dim};
    ll_status st = create_ds(w, name, kind, 1, dims, 0, &ds, err);
    if (!st) st = write_all(w, ds, mtype, buf, name, err);
    ll_h5_close_id(&ds);
    return st;
}

static ll_status write_vocab(ll_h5_writer *w, const ll_h5_meta *m, ll_err *err) {
    ll_status st = LL_OK;
    hid_t ftype = -1, mtype = -1, space = -1, ds = -1;
    size_t n = (size_t)m->n_vocab;
    hsize_t cur[1] = {(hsize_t)n};
    const char **disp = ll_malloc_array(n, sizeof *disp);
    hvl_t *bytes = ll_malloc_array(n, sizeof *bytes);
    if (!disp || !bytes) {
        st = ll_fail(err, LL_ERR_NOMEM, "hdf5 %s: vocab of %zu entries: out of memory", w->path, n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        disp[i] = m->vocab_display[i] ? m->vocab_display[i] : "";
        bytes[i].len = m->vocab_bytes_len[i];
        bytes[i].p = (void *)m->vocab_bytes[i]; /* HDF5 only reads through p here */
        if (bytes[i].len && !bytes[i].p) {
            st = ll_fail(err, LL_ERR_INTERNAL, "hdf5 %s: vocab_bytes[%zu]: NULL with length %zu", w->path, i,
                         bytes[i].len);
            goto out;
        }
    }
    if ((st = fixed_1d(w, "vocab", T_STR, DIM_VOCAB_ID, w->t_utf8, disp, err))) goto out;
    LL_H5_TRY(w->tmp_path, ftype = H5Tvlen_create(H5T_STD_U8LE));
    LL_H5_TRY(w->tmp_path, mtype = H5Tvlen_create(H5T_NATIVE_UINT8));
    LL_H5_TRY(w->tmp_path, space = H5Screate_simple(1, cur, NULL));
    LL_H5_TRY(w->tmp_path, ds = H5Dcreate2(w->file, "vocab_bytes", ftype, space, H5P_DEFAULT, H5P_DEFAULT,
                                           H5P_DEFAULT));
    LL_H5_TRY(w->tmp_path, H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes));
    LL_H5_TRY(w->tmp_path, H5DSattach_scale(ds, w->scale[DIM_VOCAB_ID], 0));
    LL_H5_TRY(w->tmp_path, H5DSset_label(ds, 0, ll_h5w_dim_names[DIM_VOCAB_ID]));
    goto out;
fail:
    ll_fail_prefix(err, st, "dataset 'vocab_bytes'");
out:
    ll_h5_close_id(&ds);
    ll_h5_close_id(&space);
    ll_h5_close_id(&mtype);
    ll_h5_close_id(&ftype);
    free(disp);
    free(bytes);
    return st;
}

static ll_status check_meta(const ll_h5_meta *m, ll_err *err) {
    const char *p = m->path ? m->path : "(null)";
#define META_REQUIRE(cond, fmt, ...)                                                             \
    do {                                                                                         \
        if (!(cond)) return ll_fail(err, LL_ERR_INTERNAL, "hdf5 output %s: " fmt, p, __VA_ARGS__); \
    } while (0)
    META_REQUIRE(m->path && m->path[0], "%s", "meta.path: expected a file name");
    META_REQUIRE(m->n_points >= 1 && m->point_names && m->point_layers, "%s", "meta.points: expected at least one point");
    for (int i = 0; i < m->n_points; i++) META_REQUIRE(m->point_names[i], "meta.point_names[%d]: NULL", i);
    META_REQUIRE(m->topk >= 1, "meta.topk: expected >= 1, got %d", m->topk);
    META_REQUIRE(m->n_st_files >= 0, "meta.n_st_files: expected >= 0, got %d", m->n_st_files);
    META_REQUIRE(!m->save_hidden || m->d_model >= 1, "meta.d_model: expected >= 1 with save_hidden, got %lld",
                 (long long)m->d_model);
    META_REQUIRE(!m->save_probs || (m->n_probs_vocab >= 1 && m->probs_vocab),
                 "meta.probs_vocab: expected >= 1 vocabulary ids with save_probs, got %lld",
                 (long long)m->n_probs_vocab);
    META_REQUIRE(m->n_vocab >= 0, "meta.n_vocab: expected >= 0, got %lld", (long long)m->n_vocab);
    META_REQUIRE(m->n_vocab == 0 || (m->vocab_display && m->vocab_bytes && m->vocab_bytes_len),
                 "%s", "meta.vocab_*: expected arrays of n_vocab entries");
#undef META_REQUIRE
    return LL_OK;
}

/* Fails early, with the system's reason, when the output cannot be created where it is asked for. */
static ll_status probe_output(const char *path, const char *tmp_path, ll_err *err) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ll_fail(err, LL_ERR_IO, "cannot create output %s: it is a directory", path);
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return ll_fail(err, LL_ERR_IO, "cannot create output %s: %s", path, strerror(errno));
    close(fd);
    return LL_OK;
}

ll_status ll_h5_create(const ll_h5_meta *m, ll_h5_writer **out, ll_err *err) {
    ll_status st;
    *out = NULL;
    if (!m) return ll_fail(err, LL_ERR_INTERNAL, "hdf5 output: meta is NULL");
    if ((st = check_meta(m, err))) return st;
    ll_h5_quiet();

    ll_h5_writer *w = calloc(1, sizeof *w);
    if (!w) return ll_fail(err, LL_ERR_NOMEM, "hdf5 output %s: out of memory", m->path);
    w->file = w->t_utf8 = w->t_f16_file = w->t_f16_mem = w->dapl = -1;
    for (int i = 0; i < DS_COUNT; i++) w->ds[i] = -1;
    for (int i = 0; i < DIM_COUNT; i++) w->scale[i] = -1;
    hid_t fapl = -1;
    size_t plen = strlen(m->path);
    w->path = strdup(m->path);
    w->tmp_path = malloc(plen + 32);
    if (!w->path || !w->tmp_path) {
        st = ll_fail(err, LL_ERR_NOMEM, "hdf5 output %s: out of memory", m->path);
        goto fail_free;
    }
    snprintf(w->tmp_path, plen + 32, "%s.tmp.%ld", m->path, (long)getpid());
    if ((st = probe_output(w->path, w->tmp_path, err))) goto fail_free;

    w->n_points = m->n_points;
    w->topk = m->topk;
    w->d_model = m->d_model;
    w->save_probs = m->save_probs != 0;
    w->save_hidden = m->save_hidden != 0;
    w->n_probs_vocab = w->save_probs ? m->n_probs_vocab : 0;
    int64_t lens[DIM_COUNT] = {
        [DIM_TOKEN] = 0, [DIM_PROMPT] = 0, [DIM_PROMPT_EDGE] = 1,
        [DIM_PROBS_ROW] = w->save_probs ? 0 : -1,
        [DIM_POINT] = m->n_points, [DIM_K] = m->topk,
        [DIM_VOCAB_ID] = m->n_vocab > 0 ? m->n_vocab : -1,
        [DIM_PROBS_VOCAB] = w->save_probs ? m->n_probs_vocab : -1,
        [DIM_HIDDEN_DIM] = w->save_hidden ? m->d_model : -1,
    };
    memcpy(w->dim_len, lens, sizeof lens);
    w->dim_expect[DIM_TOKEN] = m->expect_tokens > 0 ? m->expect_tokens : 0;
    w->dim_expect[DIM_PROMPT] = m->expect_prompts > 0 ? m->expect_prompts : 0;
    w->dim_expect[DIM_PROMPT_EDGE] = m->expect_prompts > 0 ? m->expect_prompts + 1 : 0;
    w->dim_expect[DIM_PROBS_ROW] = m->expect_probs_rows > 0 ? m->expect_probs_rows : 0;

    /* The strong close degree makes H5Fclose close whatever is still open, so abort cannot leave the
     * file half-open. */
    LL_H5_TRY(w->tmp_path, fapl = H5Pcreate(H5P_FILE_ACCESS));
    LL_H5_TRY(w->tmp_path, H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG));
    LL_H5_TRY(w->tmp_path, w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    ll_h5_close_id(&fapl);
    LL_H5_TRY(w->tmp_path, w->t_utf8 = ll_h5_type_utf8());
    LL_H5_TRY(w->tmp_path, w->t_f16_file = ll_h5_type_f16(0));
    LL_H5_TRY(w->tmp_path, w->t_f16_mem = ll_h5_type_f16(1));
    /* Room for a few chunks per dataset; fully written chunks are evicted first. */
    LL_H5_TRY(w->tmp_path, w->dapl = H5Pcreate(H5P_DATASET_ACCESS));
    LL_H5_TRY(w->tmp_path, H5Pset_chunk_cache(w->dapl, 521, 4 * LL_H5_CHUNK_BYTES, 1.0));

    if ((st = write_root_attrs(w, m, err))) goto fail_abort;
    if ((st = create_scales(w, err))) goto fail_abort;

    const char **pnames = ll_malloc_array((size_t)m->n_points, sizeof *pnames);
    if (!pnames) {
        st = ll_fail(err, LL_ERR_NOMEM, "hdf5 output %s: out of memory", m->path);
        goto fail_abort;
    }
    for (int i = 0; i < m->n_points; i++) pnames[i] = m->point_names[i];
    st = fixed_1d(w, "points", T_STR, DIM_POINT, w->t_utf8, pnames, err);
    free(pnames);
    if (st) goto fail_abort;
    if ((st = fixed_1d(w, "point_layers", T_I32, DIM_POINT, H5T_NATIVE_INT32, m->point_layers, err)))
        goto fail_abort;
    if (w->save_probs &&
        (st = fixed_1d(w, "probs_vocab_index", T_I32, DIM_PROBS_VOCAB, H5T_NATIVE_INT32, m->probs_vocab, err)))
        goto fail_abort;
    if (m->n_vocab > 0 && (st = write_vocab(w, m, err))) goto fail_abort;

    for (int i = 0; i < DS_COUNT; i++) {
        const ds_spec *s = &ll_h5w_specs[i];
        int absent = 0;
        for (int a = 0; a < s->rank; a++) absent |= w->dim_len[s->dims[a]] < 0;
        if (absent) continue;
        if ((st = create_ds(w, s->name, s->kind, s->rank, s->dims, 0, &w->ds[i], err))) goto fail_abort;
    }
    int64_t zero = 0;
    if ((st = write_all(w, w->ds[DS_PROMPT_OFFSETS], H5T_NATIVE_INT64, &zero, "prompt_offsets", err)))
        goto fail_abort;
    *out = w;
    return LL_OK;

fail:
    ll_fail_prefix(err, st, "cannot create output %s", m->path);
fail_abort:
    ll_h5_close_id(&fapl);
    ll_h5_abort(w);
    return st;
fail_free:
    writer_free(w);
    return st;
}

/* ---- commit / abort -------------------------------------------------------------------------------- */

ll_status ll_h5_commit(ll_h5_writer *w, ll_err *err) {
    ll_status st = LL_OK;
    if (!w) return ll_fail(err, LL_ERR_INTERNAL, "hdf5 output: ll_h5_commit given NULL");
    LL_H5_TRY(w->tmp_path, H5Fflush(w->file, H5F_SCOPE_GLOBAL));
    for (int i = 0; i < DS_COUNT; i++) {
        hid_t id = w->ds[i];
        w->ds[i] = -1;
        if (id >= 0) LL_H5_TRY(w->tmp_path, H5Dclose(id));
    }
    for (int i = 0; i < DIM_COUNT; i++) {
        hid_t id = w->scale[i];
        w->scale[i] = -1;
        if (id >= 0) LL_H5_TRY(w->tmp_path, H5Dclose(id));
    }
    hid_t file = w->file;
    w->file = -1;
    LL_H5_TRY(w->tmp_path, H5Fclose(file));
    if (rename(w->tmp_path, w->path) != 0) {
        st = ll_fail(err, LL_ERR_IO, "cannot rename %s to %s: %s", w->tmp_path, w->path, strerror(errno));
        unlink(w->tmp_path);
    }
    writer_free(w);
    return st;
fail:
    ll_fail_prefix(err, st, "cannot finish output %s", w->path);
    ll_h5_abort(w);
    return st;
}

void ll_h5_abort(ll_h5_writer *w) {
    if (!w) return;
    char *tmp = w->tmp_path;
    w->tmp_path = NULL;
    writer_free(w); /* closes every id, the file last */
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    H5Eclear2(H5E_DEFAULT);
}

const char *ll_h5_tmp_path(const ll_h5_writer *w) { return w ? w->tmp_path : NULL; }
