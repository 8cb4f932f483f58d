/* fuzz_safetensors.c: libFuzzer target: arbitrary bytes as a .safetensors file (written to a temporary
 * file and opened with ll_st_open_file, the path every checkpoint shard takes). Opening must either fail
 * with a one-line message or give tensors that all lie inside the file's data section, with byte lengths
 * that match dtype x shape for the float dtypes, non-negative dimensions and unique sorted names. Every
 * byte of every tensor is read, so a pointer outside the mapping faults here.
 * Build and run: make fuzz-model (short) or make fuzz-model-long (mk/fuzz_model.mk). */
#include "ll_safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[256];

static void write_input(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/ll_fuzz_st_%ld.safetensors", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    write_input(data, size);
    ll_st_set *s;
    ll_err err;
    if (ll_st_open_file(g_path, &s, &err) != LL_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort(); /* errors are one non-empty line */
        return 0;
    }
    if (s->n_files != 1) abort();
    const ll_st_file *f = &s->files[0];
    if (f->size != size || f->header_len > size - 8) abort();
    const uint8_t *lo = f->map + 8 + f->header_len, *hi = f->map + f->size;
    static volatile unsigned sum;
    for (int i = 0; i < s->n_tensors; i++) {
        const ll_st_tensor *t = &s->tensors[i];
        if (!t->name || !t->name[0] || t->file != 0 || t->ndim < 0 || t->ndim > LL_ST_MAX_DIMS) abort();
        if (i > 0 && strcmp(s->tensors[i - 1].name, t->name) >= 0) abort();
        if (ll_st_find(s, t->name) != t) abort();
        for (int j = 0; j < t->ndim; j++)
            if (t->shape[j] < 0) abort();
        if (t->nbytes && (t->data < lo || t->data > hi || t->nbytes > (size_t)(hi - t->data))) abort();
        if (t->dtype_ok) {
            int64_t n = ll_st_numel(t);
            size_t es = t->dtype == LL_DTYPE_F32 ? 4 : 2;
            if (n < 0 || (uint64_t)n > SIZE_MAX / es || (size_t)n * es != t->nbytes) abort();
        }
        for (size_t b = 0; b < t->nbytes; b++) sum += t->data[b];
        char buf[LL_ST_MAX_DIMS * 24];
        ll_st_shape_str(t->shape, t->ndim, buf, sizeof buf);
    }
    (void)sum;
    ll_st_close(s);
    return 0;
}
