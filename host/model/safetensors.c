/* safetensors.c: memory-mapped, bounds-checked safetensors reader (single file or sharded). */
#include "ll_safetensors.h"
#include "ll_sha256.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
                 {"I16", 2}, {"I8", 1},  {"U64", 8}, {"U32", 4},  {"U16", 2}, {"U8", 1},
                 {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

static size_t dtype_elem_size(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(st_dtypes[i].name, name)) return st_dtypes[i].size;
    return 0;
}

void ll_st_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "[");
    for (int i = 0; i < ndim; i++)
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%lld", i ? "," : "", (long long)shape[i]);
    snprintf(buf + n, n < cap ? cap - n : 0, "]");
}

int64_t ll_st_numel(const ll_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const ll_st_tensor *)a)->name, ((const ll_st_tensor *)b)->name);
}

const ll_st_tensor *ll_st_find(const ll_st_set *s, const char *name) {
    ll_st_tensor key;
    key.name = (char *)name;
    return bsearch(&key, s->tensors, (size_t)s->n_tensors, sizeof key, cmp_tensor);
}

void ll_st_close(ll_st_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].map) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    for (int i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    free(s->files);
    free(s->tensors);
    free(s);
}

void ll_st_release(const ll_st_set *s, const ll_st_tensor *t) {
    (void)s;
    ll_release_pages(t->data, t->nbytes);
}

/* Maps one file and appends its tensors to s. */
static ll_status st_add_file(ll_st_set *s, const char *path, ll_err *err) {
    ll_st_file *files = realloc(s->files, sizeof *files * (size_t)(s->n_files + 1));
    if (!files) return ll_fail(err, LL_ERR_NOMEM, "safetensors %s: out of memory", path);
    s->files = files;
    ll_st_file *f = &s->files[s->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return ll_fail(err, LL_ERR_NOMEM, "safetensors %s: out of memory", path);
    const char *slash = strrchr(f->path, '/');
    f->name = slash ? slash + 1 : f->path;
    int file_index = s->n_files++;

    int fd = open(path, O_RDONLY);
    if (fd < 0) return ll_fail(err, LL_ERR_INPUT, "safetensors %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ll_fail(err, LL_ERR_INPUT, "safetensors %s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return ll_fail(err, LL_ERR_INPUT,
                       "safetensors %s: file is %lld bytes, too short for the 8-byte header length (truncated?)",
                       f->name, (long long)st.st_size);
    }
    f->size = (size_t)st.st_size;
    void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return ll_fail(err, LL_ERR_IO, "safetensors %s: mmap failed: %s", f->name, strerror(errno));
    f->map = map;

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > LL_ST_MAX_HEADER || hlen > f->size - 8)
        return ll_fail(err, LL_ERR_INPUT,
                       "safetensors %s: header length %llu is impossible (file has %zu bytes after the length; "
                       "limit %u): corrupt or truncated file",
                       f->name, (unsigned long long)hlen, f->size - 8, LL_ST_MAX_HEADER);
    f->header_len = (size_t)hlen;
    ll_sha256_hex(f->map, 8 + f->header_len, f->header_sha256);
    const uint8_t *data = f->map + 8 + f->header_len;
    size_t data_size = f->size - 8 - f->header_len;

    cJSON *root = cJSON_ParseWithLength((const char *)f->map + 8, f->header_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ll_fail(err, LL_ERR_INPUT, "safetensors %s: header is not a valid JSON object", f->name);
    }
    int n_entries = 0;
    for (cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__")) n_entries++;
    ll_st_tensor *tensors = realloc(s->tensors, sizeof *tensors * (size_t)(s->n_tensors + n_entries + 1));
    if (!tensors) {
        cJSON_Delete(root);
        return ll_fail(err, LL_ERR_NOMEM, "safetensors %s: out of memory", f->name);
    }
    s->tensors = tensors;
    int first = s->n_tensors;
    ll_status st_rc = LL_OK;
    for (cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        const char *name = e->string;
        if (!name[0]) {
            st_rc = ll_fail(err, LL_ERR_INPUT, "safetensors %s: a tensor has an empty name (expected a tensor name)",
                            f->name);
            break;
        }
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
            cJSON_GetArraySize(offs) != 2) {
            st_rc = ll_fail(err, LL_ERR_INPUT,
                            "safetensors %s: tensor '%s' entry needs \"dtype\" (string), \"shape\" (array) and "
                            "\"data_offsets\" ([begin, end])",
                            f->name, name);
            break;
        }
        ll_st_tensor *t = &s->tensors[s->n_tensors];
        memset(t, 0, sizeof *t);
        t->file = file_index;
        snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
        size_t esize = dtype_elem_size(dt->valuestring);
        if (esize == 0) {
            st_rc = ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensor '%s' has unknown dtype '%s'", f->name, name,
                            dt->valuestring);
            break;
        }
        t->dtype_ok = 1;
        if (!strcmp(dt->valuestring, "F32")) t->dtype = LL_DTYPE_F32;
        else if (!strcmp(dt->valuestring, "F16")) t->dtype = LL_DTYPE_F16;
        else if (!strcmp(dt->valuestring, "BF16")) t->dtype = LL_DTYPE_BF16;
        else t->dtype_ok = 0;
        t->ndim = cJSON_GetArraySize(shape);
        if (t->ndim > LL_ST_MAX_DIMS) {
            st_rc = ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensor '%s' has %d dimensions (at most %d supported)",
                            f->name, name, t->ndim, LL_ST_MAX_DIMS);
            break;
        }
        size_t numel = 1;
        int bad = 0, i = 0;
        for (cJSON *d = shape->child; d; d = d->next, i++) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9.0e15 ||
                d->valuedouble != (double)(int64_t)d->valuedouble) {
                bad = 1;
                break;
            }
            t->shape[i] = (int64_t)d->valuedouble;
            if (ll_mul_size(numel, (size_t)t->shape[i], &numel)) bad = 1;
        }
        size_t nbytes;
        if (bad || ll_mul_size(numel, esize, &nbytes)) {
            st_rc = ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensor '%s' has an invalid shape", f->name, name);
            break;
        }
        double b0 = cJSON_GetArrayItem(offs, 0)->valuedouble, b1 = cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b0 < 0 ||
            b1 < b0 || b1 > (double)data_size || b0 != (double)(size_t)b0 || b1 != (double)(size_t)b1) {
            st_rc = ll_fail(err, LL_ERR_INPUT,
                            "safetensors %s: tensor '%s' has data_offsets [%.0f, %.0f] outside the data section of "
                            "%zu bytes (truncated or corrupt file)",
                            f->name, name, b0, b1, data_size);
            break;
        }
        size_t begin = (size_t)b0, end = (size_t)b1;
        if (end - begin != nbytes) {
            char sh[128];
            ll_st_shape_str(t->shape, t->ndim, sh, sizeof sh);
            st_rc = ll_fail(err, LL_ERR_INPUT,
                            "safetensors %s: tensor '%s' spans %zu bytes but shape %s x %s (%zu bytes) needs %zu",
                            f->name, name, end - begin, sh, dt->valuestring, esize, nbytes);
            break;
        }
        t->data = data + begin;
        t->nbytes = nbytes;
        t->name = strdup(name);
        if (!t->name) {
            st_rc = ll_fail(err, LL_ERR_NOMEM, "safetensors %s: out of memory", f->name);
            break;
        }
        s->n_tensors++;
    }
    cJSON_Delete(root);
    if (st_rc != LL_OK) return st_rc;

    /* No two tensors of this file may share bytes. */
    int n_new = s->n_tensors - first;
    const ll_st_tensor **by_off = malloc(sizeof *by_off * (size_t)(n_new + 1));
    if (!by_off) return ll_fail(err, LL_ERR_NOMEM, "safetensors %s: out of memory", f->name);
    for (int i = 0; i < n_new; i++) by_off[i] = &s->tensors[first + i];
    for (int i = 1; i < n_new; i++) { /* insertion sort by start offset: headers are usually sorted */
        const ll_st_tensor *x = by_off[i];
        int j = i - 1;
        while (j >= 0 && by_off[j]->data > x->data) {
            by_off[j + 1] = by_off[j];
            j--;
        }
        by_off[j + 1] = x;
    }
    /* each non-empty tensor against the previous non-empty one (an empty tensor between two overlapping
     * ones must not hide the overlap) */
    const ll_st_tensor *a = NULL;
    for (int i = 0; i < n_new; i++) {
        const ll_st_tensor *b = by_off[i];
        if (b->nbytes == 0) continue;
        if (a && a->data + a->nbytes > b->data) {
            st_rc = ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensors '%s' and '%s' have overlapping data_offsets",
                            f->name, a->name, b->name);
            break;
        }
        a = b;
    }
    free(by_off);
    return st_rc;
}

static ll_status st_finish(ll_st_set *s, ll_err *err) {
    qsort(s->tensors, (size_t)s->n_tensors, sizeof *s->tensors, cmp_tensor);
    for (int i = 1; i < s->n_tensors; i++)
        if (!strcmp(s->tensors[i - 1].name, s->tensors[i].name))
            return ll_fail(err, LL_ERR_INPUT, "safetensors %s: tensor '%s' appears twice (also in %s)",
                           s->files[s->tensors[i].file].name, s->tensors[i].name,
                           s->files[s->tensors[i - 1].file].name);
    return LL_OK;
}

ll_status ll_st_open_file(const char *path, ll_st_set **out, ll_err *err) {
    *out = NULL;
    ll_st_set *s = calloc(1, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status rc = st_add_file(s, path, err);
    if (rc == LL_OK) rc = st_finish(s, err);
    if (rc != LL_OK) {
        ll_st_close(s);
        return rc;
    }
    *out = s;
    return LL_OK;
}

ll_status ll_st_open_dir(const char *dir, ll_st_set **out, ll_err *err) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, F_OK) == 0) return ll_st_open_file(path, out, err);

    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir);
    if (access(ipath, F_OK) != 0)
        return ll_fail(err, LL_ERR_INPUT,
                       "model %s: neither model.safetensors nor model.safetensors.index.json found "
                       "(only safetensors checkpoints are supported)",
                       dir);
    size_t len;
    char *text = NULL;
    ll_status rc = ll_read_small_file(ipath, 256u << 20, &text, &len, err);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return ll_fail(err, LL_ERR_INPUT,
                       "model.safetensors.index.json in %s: expected a JSON object with a \"weight_map\" object", dir);
    }
    ll_st_set *s = calloc(1, sizeof *s);
    if (!s) {
        cJSON_Delete(root);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    rc = LL_OK;
    /* Open each distinct shard once, in order of first appearance. */
    for (cJSON *e = wm->child; e && rc == LL_OK; e = e->next) {
        if (!cJSON_IsString(e)) {
            rc = ll_fail(err, LL_ERR_INPUT, "model.safetensors.index.json: weight_map['%s'] is not a file name",
                         e->string);
            break;
        }
        const char *fn = e->valuestring;
        if (!fn[0] || strchr(fn, '/') || !strcmp(fn, "..")) {
            rc = ll_fail(err, LL_ERR_INPUT,
                         "model.safetensors.index.json: weight_map['%s'] = '%s' is not a plain file name", e->string,
                         fn);
            break;
        }
        int seen = 0;
        for (int i = 0; i < s->n_files; i++)
            if (!strcmp(s->files[i].name, fn)) seen = 1;
        if (seen) continue;
        snprintf(path, sizeof path, "%s/%s", dir, fn);
        if (access(path, F_OK) != 0) {
            rc = ll_fail(err, LL_ERR_INPUT, "model.safetensors.index.json: shard '%s' (holding '%s') not found in %s",
                         fn, e->string, dir);
            break;
        }
        rc = st_add_file(s, path, err);
    }
    if (rc == LL_OK) rc = st_finish(s, err);
    /* Every tensor the index names must be in the shard it names. */
    for (cJSON *e = wm->child; e && rc == LL_OK; e = e->next) {
        const ll_st_tensor *t = ll_st_find(s, e->string);
        if (!t || strcmp(s->files[t->file].name, e->valuestring))
            rc = ll_fail(err, LL_ERR_INPUT, "model.safetensors.index.json: tensor '%s' is not in shard '%s'",
                         e->string, e->valuestring);
    }
    cJSON_Delete(root);
    if (rc != LL_OK) {
        ll_st_close(s);
        return rc;
    }
    *out = s;
    return LL_OK;
}
