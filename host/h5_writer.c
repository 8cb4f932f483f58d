/* h5_writer.c: ll_h5_create / ll_h5_append / ll_h5_commit / ll_h5_abort (include/ll_h5.h), writing the
 * layout of docs/hdf5-format.md.
 *
 * Every axis of every dataset is a dimension scale (a 1-D int64 dataset holding 0, 1, 2, ... named after
 * the dimension) attached with H5DSattach_scale; that is what h5netcdf/xarray read as dimension names.
 * The growing axes (token, prompt, prompt_edge, probs_row) are unlimited and chunked; each append extends
 * every dataset on such an axis once and writes the whole batch with one hyperslab write per dataset, so
 * the cost of a batch does not depend on how many rows it has. */
#include "h5_util.h"
#include "ll_h5.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Dimensions of the format; the first four grow as batches are appended. */
enum {
    DIM_TOKEN, DIM_PROMPT, DIM_PROMPT_EDGE, DIM_PROBS_ROW,
    DIM_POINT, DIM_K, DIM_VOCAB_ID, DIM_PROBS_VOCAB, DIM_HIDDEN_DIM,
    DIM_COUNT
};
static const char *const dim_names[DIM_COUNT] = {
    "token", "prompt", "prompt_edge", "probs_row", "point", "k", "vocab_id", "probs_vocab", "hidden_dim",
};
#define DIM_GROWS(d) ((d) <= DIM_PROBS_ROW)

/* Datasets on a growing axis, written by every append. */
enum {
    DS_TOKENS, DS_TOKEN_PROMPT, DS_TOKEN_POSITION, DS_TARGET_IDS,
    DS_TOPK_IDS, DS_TOPK_PROBS, DS_ENTROPY, DS_KL_FINAL, DS_TARGET_PROBS, DS_TARGET_LOGPROBS, DS_TARGET_RANKS,
    DS_HIDDEN, DS_PROMPTS, DS_PROMPT_TARGETS, DS_PROMPT_OFFSETS, DS_PROBS, DS_PROBS_TOKEN_INDEX,
    DS_COUNT
};

typedef enum { T_I32, T_I64, T_F32, T_F16, T_STR } elem_kind;

typedef struct ds_spec {
    const char *name; /* dataset name (docs/hdf5-format.md) */
    elem_kind kind;   /* element type */
    int rank;         /* 1..3 */
    int dims[3];      /* DIM_* of each axis; dims[0] grows */
} ds_spec;

static const ds_spec ds_specs[DS_COUNT] = {
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

struct ll_h5_writer {
    char *path;               /* final file name */
    char *tmp_path;           /* "<path>.tmp.<pid>", renamed to path on commit */
    hid_t file;               /* open temporary file */
    hid_t t_utf8;             /* variable-length UTF-8 string type */
    hid_t t_f16_file;         /* little-endian half, as stored */
    hid_t t_f16_mem;          /* native half, as the engine passes it (uint16 bits) */
    hid_t dapl;               /* dataset access list with a chunk cache large enough for one chunk */
    hid_t scale[DIM_COUNT];   /* dimension-scale datasets; -1 where the dimension is absent */
    hid_t ds[DS_COUNT];       /* growing datasets; -1 where absent */
    int64_t dim_len[DIM_COUNT]; /* current length of each dimension */
    int n_points, topk;
    int64_t d_model, n_probs_vocab;
    int save_probs, save_hidden;
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

static hid_t elem_mem_type(const ll_h5_writer *w, elem_kind k) {
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

static ll_status attr_write(ll_h5_writer *w, const char *name, hid_t ftype, hid_t mtype, int n, const void *buf,
                            ll_err *err) {
    ll_status st = LL_OK;
    hid_t space = -1, attr = -1;
    hsize_t dims[1] = {(hsize_t)n};
    LL_H5_TRY(w->tmp_path, space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL));
    LL_H5_TRY(w->tmp_path, attr = H5Acreate2(w->file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT));
    LL_H5_TRY(w->tmp_path, H5Awrite(attr, mtype, buf));
fail:
    if (st) ll_fail_prefix(err, st, "attribute '%s'", name);
    ll_h5_close_id(&attr);
    ll_h5_close_id(&space);
    return st;
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
    if ((st = attr_i64(w, "n_layers", m->n_layers, err))) return st;
    if ((st = attr_i64(w, "d_model", m->d_model, err))) return st;
    if ((st = attr_i64(w, "vocab_size", m->vocab_size, err))) return st;
    if ((st = attr_i64(w, "topk", m->topk, err))) return st;
    if ((st = attr_str(w, "config_sha256", m->config_sha256, err))) return st;
    if ((st = attr_strs(w, "safetensors_files", m->n_st_files, m->st_files, err))) return st;
    return attr_strs(w, "safetensors_header_sha256", m->n_st_files, m->st_header_sha256, err);
}

/* ---- datasets -------------------------------------------------------------------------------------- */

/* Creates a dataset on the given dimensions (current lengths from w->dim_len), attaches the dimension
 * scales and labels its axes. Datasets on a growing axis are chunked and unlimited; numeric ones are
 * compressed (shuffle + deflate 4). Strings are not: only their heap references would be compressed. */
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
        LL_H5_TRY(w->tmp_path, H5Pset_chunk(dcpl, rank, chunk));
        if (kind != T_STR) {
            LL_H5_TRY(w->tmp_path, H5Pset_shuffle(dcpl));
            LL_H5_TRY(w->tmp_path, H5Pset_deflate(dcpl, 4));
        }
    }
    LL_H5_TRY(w->tmp_path, ds = H5Dcreate2(w->file, name, elem_file_type(w, kind), space, H5P_DEFAULT, dcpl,
                                           grows ? w->dapl : H5P_DEFAULT));
    for (int a = 0; a < rank && !is_scale; a++) {
        LL_H5_TRY(w->tmp_path, H5DSattach_scale(ds, w->scale[dims[a]], (unsigned)a));
        LL_H5_TRY(w->tmp_path, H5DSset_label(ds, (unsigned)a, dim_names[dims[a]]));
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
static ll_status append_rows(ll_h5_writer *w, hid_t ds, hid_t mtype, int64_t n_old, int64_t n_new,
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
        if ((st = create_ds(w, dim_names[d], T_I64, 1, dims, 1, &w->scale[d], err))) goto out;
        LL_H5_TRY(w->tmp_path, H5DSset_scale(w->scale[d], dim_names[d]));
        if (w->dim_len[d] == 0) continue;
        ramp = ll_malloc_array((size_t)w->dim_len[d], sizeof *ramp);
        if (!ramp) {
            st = ll_fail(err, LL_ERR_NOMEM, "hdf5 %s: dimension '%s': out of memory", w->path, dim_names[d]);
            goto out;
        }
        for (int64_t i = 0; i < w->dim_len[d]; i++) ramp[i] = i;
        if ((st = write_all(w, w->scale[d], H5T_NATIVE_INT64, ramp, dim_names[d], err))) goto out;
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
    LL_H5_TRY(w->tmp_path, H5DSset_label(ds, 0, dim_names[DIM_VOCAB_ID]));
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
        const ds_spec *s = &ds_specs[i];
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

/* ---- append ---------------------------------------------------------------------------------------- */

static ll_status check_batch(const ll_h5_writer *w, const ll_h5_batch *b, ll_err *err) {
#define BATCH_REQUIRE(cond, fmt, ...)                                                                      \
    do {                                                                                                   \
        if (!(cond)) return ll_fail(err, LL_ERR_INTERNAL, "hdf5 output %s: batch " fmt, w->path, __VA_ARGS__); \
    } while (0)
    BATCH_REQUIRE(b->n_prompts >= 0 && b->n_tokens >= 0, "%s", "counts: expected n_prompts, n_tokens >= 0");
    BATCH_REQUIRE(b->n_prompts == 0 || b->prompt_lengths, "%s", "prompt_lengths: NULL");
    int64_t sum = 0;
    for (int i = 0; i < b->n_prompts; i++) {
        BATCH_REQUIRE(b->prompt_lengths[i] >= 1, "prompt_lengths[%d]: expected >= 1, got %lld", i,
                      (long long)b->prompt_lengths[i]);
        sum += b->prompt_lengths[i];
    }
    BATCH_REQUIRE(sum == b->n_tokens, "prompt_lengths: expected them to sum to n_tokens = %lld, got %lld",
                  (long long)b->n_tokens, (long long)sum);
    BATCH_REQUIRE(w->dim_len[DIM_TOKEN] + b->n_tokens <= INT32_MAX &&
                      w->dim_len[DIM_PROMPT] + b->n_prompts <= INT32_MAX,
                  "%s", "size: more than 2^31 tokens or prompts in one file");
    if (b->n_tokens > 0)
        BATCH_REQUIRE(b->tokens && b->target_ids && b->topk_ids && b->topk_probs && b->entropy && b->kl_final &&
                          b->target_probs && b->target_logprobs && b->target_ranks,
                      "%s", "arrays: expected tokens, targets, top-k and statistics arrays");
    BATCH_REQUIRE(!w->save_hidden || b->n_tokens == 0 || b->hidden, "%s", "hidden: NULL with save_hidden");
    BATCH_REQUIRE(w->save_probs || b->n_probs_rows == 0, "n_probs_rows: %lld rows without save_probs",
                  (long long)b->n_probs_rows);
    BATCH_REQUIRE(b->n_probs_rows >= 0 && (b->n_probs_rows == 0 || (b->probs_token && b->probs)), "%s",
                  "probs: expected probs_token and probs arrays");
    for (int64_t r = 0; r < b->n_probs_rows; r++)
        BATCH_REQUIRE(b->probs_token[r] >= 0 && b->probs_token[r] < b->n_tokens,
                      "probs_token[%lld]: expected a token index in [0, %lld), got %lld", (long long)r,
                      (long long)b->n_tokens, (long long)b->probs_token[r]);
#undef BATCH_REQUIRE
    return LL_OK;
}

/* Grows a dimension scale by n entries (old_len, old_len + 1, ...). */
static ll_status grow_scale(ll_h5_writer *w, int dim, int64_t n, int64_t *scratch, ll_err *err) {
    int64_t old = w->dim_len[dim];
    for (int64_t i = 0; i < n; i++) scratch[i] = old + i;
    return append_rows(w, w->scale[dim], H5T_NATIVE_INT64, old, n, scratch, dim_names[dim], err);
}

static ll_status append_ds(ll_h5_writer *w, int i, int64_t n_old, int64_t n_new, const void *buf, ll_err *err) {
    return append_rows(w, w->ds[i], elem_mem_type(w, ds_specs[i].kind), n_old, n_new, buf, ds_specs[i].name, err);
}

ll_status ll_h5_append(ll_h5_writer *w, const ll_h5_batch *b, ll_err *err) {
    ll_status st;
    if (!w || !b) return ll_fail(err, LL_ERR_INTERNAL, "hdf5 output: ll_h5_append given NULL");
    if ((st = check_batch(w, b, err))) return st;
    if (b->n_prompts == 0) return LL_OK;

    int64_t nt = b->n_tokens, np = b->n_prompts, nr = b->n_probs_rows;
    int64_t tok0 = w->dim_len[DIM_TOKEN], prompt0 = w->dim_len[DIM_PROMPT];
    int64_t edge0 = w->dim_len[DIM_PROMPT_EDGE], row0 = w->save_probs ? w->dim_len[DIM_PROBS_ROW] : 0;
    int64_t big = nt > nr ? nt : nr;
    int32_t *tprompt = ll_malloc_array((size_t)nt, sizeof *tprompt);
    int32_t *tpos = ll_malloc_array((size_t)nt, sizeof *tpos);
    int64_t *offs = ll_malloc_array((size_t)np, sizeof *offs);
    int64_t *scratch = ll_malloc_array((size_t)big, sizeof *scratch);
    const char **texts = ll_malloc_array((size_t)np, sizeof *texts);
    const char **targets = ll_malloc_array((size_t)np, sizeof *targets);
    if (!tprompt || !tpos || !offs || !scratch || !texts || !targets) {
        st = ll_fail(err, LL_ERR_NOMEM, "hdf5 output %s: batch of %lld tokens: out of memory", w->path,
                     (long long)nt);
        goto out;
    }
    int64_t t = 0;
    for (int64_t p = 0; p < np; p++) {
        for (int64_t j = 0; j < b->prompt_lengths[p]; j++, t++) {
            tprompt[t] = (int32_t)(prompt0 + p);
            tpos[t] = (int32_t)j;
        }
        offs[p] = tok0 + t;
        texts[p] = b->prompt_texts && b->prompt_texts[p] ? b->prompt_texts[p] : "";
        targets[p] = b->prompt_targets && b->prompt_targets[p] ? b->prompt_targets[p] : "";
    }

    if ((st = append_ds(w, DS_TOKENS, tok0, nt, b->tokens, err))) goto out;
    if ((st = append_ds(w, DS_TOKEN_PROMPT, tok0, nt, tprompt, err))) goto out;
    if ((st = append_ds(w, DS_TOKEN_POSITION, tok0, nt, tpos, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_IDS, tok0, nt, b->target_ids, err))) goto out;
    if ((st = append_ds(w, DS_TOPK_IDS, tok0, nt, b->topk_ids, err))) goto out;
    if ((st = append_ds(w, DS_TOPK_PROBS, tok0, nt, b->topk_probs, err))) goto out;
    if ((st = append_ds(w, DS_ENTROPY, tok0, nt, b->entropy, err))) goto out;
    if ((st = append_ds(w, DS_KL_FINAL, tok0, nt, b->kl_final, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_PROBS, tok0, nt, b->target_probs, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_LOGPROBS, tok0, nt, b->target_logprobs, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_RANKS, tok0, nt, b->target_ranks, err))) goto out;
    if (w->save_hidden && (st = append_ds(w, DS_HIDDEN, tok0, nt, b->hidden, err))) goto out;
    if ((st = grow_scale(w, DIM_TOKEN, nt, scratch, err))) goto out;
    w->dim_len[DIM_TOKEN] += nt;

    if ((st = append_ds(w, DS_PROMPTS, prompt0, np, texts, err))) goto out;
    if ((st = append_ds(w, DS_PROMPT_TARGETS, prompt0, np, targets, err))) goto out;
    if ((st = grow_scale(w, DIM_PROMPT, np, scratch, err))) goto out;
    w->dim_len[DIM_PROMPT] += np;
    if ((st = append_ds(w, DS_PROMPT_OFFSETS, edge0, np, offs, err))) goto out;
    if ((st = grow_scale(w, DIM_PROMPT_EDGE, np, scratch, err))) goto out;
    w->dim_len[DIM_PROMPT_EDGE] += np;

    if (w->save_probs && nr > 0) {
        if ((st = append_ds(w, DS_PROBS, row0, nr, b->probs, err))) goto out;
        for (int64_t r = 0; r < nr; r++) scratch[r] = tok0 + b->probs_token[r];
        if ((st = append_ds(w, DS_PROBS_TOKEN_INDEX, row0, nr, scratch, err))) goto out;
        if ((st = grow_scale(w, DIM_PROBS_ROW, nr, scratch, err))) goto out;
        w->dim_len[DIM_PROBS_ROW] += nr;
    }
out:
    free(tprompt);
    free(tpos);
    free(offs);
    free(scratch);
    free(texts);
    free(targets);
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
