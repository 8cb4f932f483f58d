/* cpu_memory.c: memory and weights of the CPU backend.
 *
 * "Backend memory" is host memory. alloc() returns LL_CPU_ALIGN (64) byte aligned, zero-filled
 * memory: zeroing keeps runs reproducible when a caller reads a buffer before writing it, but the op
 * table does not promise it (the CUDA backend does not zero), so callers must not rely on it.
 * upload_weight() always makes an owned F32 copy, converting F16 and BF16 exactly with ll_math.h
 * (every F16/BF16 value is representable in F32), so every op reads F32 weights. The conversion is
 * elementwise and split over OpenMP threads; it is deterministic. The source needs no alignment. Test: tests/c/test_cpu_ops.c. */
#include "cpu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ll_status ll_cpu_alloc(ll_backend *be, size_t bytes, void **out) {
    if (!out) return ll_cpu_fail(be, LL_ERR_INTERNAL, "alloc", "out is NULL");
    *out = NULL;
    size_t n;
    if (ll_add_size(bytes, LL_CPU_ALIGN - 1, &n))
        return ll_cpu_fail(be, LL_ERR_NOMEM, "alloc", "%zu bytes: size overflows", bytes);
    n -= n % LL_CPU_ALIGN;
    void *p = ll_cpu_aligned_alloc(n, 1);
    if (!p) return ll_cpu_fail(be, LL_ERR_NOMEM, "alloc", "cannot allocate %zu bytes of host memory", bytes);
    memset(p, 0, n ? n : 1);
    *out = p;
    return LL_OK;
}

void ll_cpu_dealloc(ll_backend *be, void *p) {
    (void)be;
    free(p);
}

static ll_status check_copy(ll_backend *be, const char *op, void *dst, const void *src, size_t bytes) {
    if (bytes && (!dst || !src))
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "%zu bytes with a NULL %s pointer", bytes,
                           dst ? "source" : "destination");
    return LL_OK;
}

ll_status ll_cpu_upload(ll_backend *be, void *dst, const void *host_src, size_t bytes) {
    ll_status st = check_copy(be, "upload", dst, host_src, bytes);
    if (st) return st;
    if (bytes) memmove(dst, host_src, bytes);
    return LL_OK;
}

ll_status ll_cpu_download(ll_backend *be, void *host_dst, const void *src, size_t bytes) {
    ll_status st = check_copy(be, "download", host_dst, src, bytes);
    if (st) return st;
    if (bytes) memmove(host_dst, src, bytes);
    return LL_OK;
}

ll_status ll_cpu_copy(ll_backend *be, void *dst, const void *src, size_t bytes) {
    ll_status st = check_copy(be, "copy", dst, src, bytes);
    if (st) return st;
    if (bytes) memmove(dst, src, bytes);
    return LL_OK;
}

ll_status ll_cpu_sync(ll_backend *be) {
    (void)be;
    return LL_OK;
}

/* Reads a "Key:   123 kB" line of /proc/meminfo; returns 0 when absent. */
static size_t meminfo_bytes(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key), val = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (!strncmp(line, key, klen) && line[klen] == ':' && sscanf(line + klen + 1, "%llu", &kb) == 1) {
            val = (size_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return val;
}

ll_status ll_cpu_mem_info(ll_backend *be, size_t *free_bytes, size_t *total_bytes) {
    size_t total = meminfo_bytes("MemTotal"), avail = meminfo_bytes("MemAvailable");
    if (total == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), avpages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || psz <= 0)
            return ll_cpu_fail(be, LL_ERR_BACKEND, "mem_info", "cannot read /proc/meminfo or sysconf");
        total = (size_t)pages * (size_t)psz;
        avail = avpages > 0 ? (size_t)avpages * (size_t)psz : 0;
    }
    if (free_bytes) *free_bytes = avail;
    if (total_bytes) *total_bytes = total;
    return LL_OK;
}

ll_status ll_cpu_upload_weight(ll_backend *be, const void *host_src, ll_dtype src_dtype, int64_t rows,
                               int64_t cols, ll_wt *out) {
    const char *op = "upload_weight";
    if (!out) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "out is NULL");
    memset(out, 0, sizeof *out);
    if (rows < 0 || cols < 0)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "negative shape [%lld, %lld]", (long long)rows,
                           (long long)cols);
    if (src_dtype != LL_DTYPE_F32 && src_dtype != LL_DTYPE_F16 && src_dtype != LL_DTYPE_BF16)
        return ll_cpu_fail(be, LL_ERR_INPUT, op, "unsupported dtype %d", (int)src_dtype);
    size_t n, bytes;
    if (ll_mul_size((size_t)rows, (size_t)cols, &n) || ll_mul_size(n, sizeof(float), &bytes) ||
        (uint64_t)n > (uint64_t)INT64_MAX)
        return ll_cpu_fail(be, LL_ERR_NOMEM, op, "[%lld, %lld] elements overflow the address space",
                           (long long)rows, (long long)cols);
    if (n && !host_src) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "source is NULL");
    float *dst = ll_cpu_aligned_alloc(n, sizeof(float));
    if (!dst)
        return ll_cpu_fail(be, LL_ERR_NOMEM, op, "cannot allocate %zu bytes for a [%lld, %lld] %s tensor", bytes,
                           (long long)rows, (long long)cols, ll_dtype_name(src_dtype));
    int64_t nn = (int64_t)n;
    if (src_dtype == LL_DTYPE_F32) {
        if (n) memcpy(dst, host_src, bytes);
    } else if (src_dtype == LL_DTYPE_F16) {
        /* memcpy per element: a memory-mapped checkpoint gives no alignment guarantee */
        const unsigned char *s = host_src;
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (int64_t i = 0; i < nn; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ll_f16_to_f32(h);
        }
    } else {
        const unsigned char *s = host_src;
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (int64_t i = 0; i < nn; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ll_bf16_to_f32(h);
        }
    }
    out->data = dst;
    out->dtype = LL_DTYPE_F32;
    out->rows = rows;
    out->cols = cols;
    return LL_OK;
}

void ll_cpu_free_weight(ll_backend *be, ll_wt *w) {
    (void)be;
    if (!w) return;
    free(w->data);
    memset(w, 0, sizeof *w);
}
