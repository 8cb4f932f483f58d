/* common.c: error formatting, dtype tables, checked allocation. */
#include "ll_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

ll_status ll_fail(ll_err *err, ll_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        for (char *p = err->msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return status;
}

ll_status ll_fail_prefix(ll_err *err, ll_status status, const char *fmt, ...) {
    if (err) {
        char prefix[LL_ERR_MSG_MAX], old[LL_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        size_t n = strlen(prefix);
        if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
        memcpy(err->msg, prefix, n);
        memcpy(err->msg + n, ": ", 2);
        size_t room = sizeof err->msg - n - 3, m = strnlen(old, sizeof old);
        if (m > room) m = room;
        memcpy(err->msg + n + 2, old, m);
        err->msg[n + 2 + m] = 0;
    }
    return status;
}

int ll_status_exit_code(ll_status s) {
    switch (s) {
    case LL_OK: return 0;
    case LL_ERR_USAGE: return 2;
    case LL_ERR_INPUT: return 3;
    case LL_ERR_IO: return 4;
    case LL_ERR_NOMEM: return 5;
    case LL_ERR_BACKEND: return 6;
    case LL_ERR_INTERRUPTED: return 130;
    case LL_STOPPED_CHECKPOINT: return 75;
    default: return 70;
    }
}

size_t ll_dtype_size(ll_dtype t) {
    switch (t) {
    case LL_DTYPE_F32: return 4;
    case LL_DTYPE_F16: return 2;
    case LL_DTYPE_BF16: return 2;
    default: return 0;
    }
}

const char *ll_dtype_name(ll_dtype t) {
    switch (t) {
    case LL_DTYPE_F32: return "F32";
    case LL_DTYPE_F16: return "F16";
    case LL_DTYPE_BF16: return "BF16";
    default: return "?";
    }
}

void *ll_malloc_array(size_t count, size_t elem) {
    size_t n;
    if (ll_mul_size(count, elem, &n)) return NULL;
    return malloc(n ? n : 1);
}

void *ll_calloc_array(size_t count, size_t elem) {
    size_t n;
    if (ll_mul_size(count, elem, &n)) return NULL;
    return calloc(n ? count : 1, n ? elem : 1);
}

void ll_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "logitlens: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

ll_status ll_read_small_file(const char *path, size_t limit, char **text, size_t *len, ll_err *err) {
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ll_fail(err, LL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n < 0) {
        fclose(f);
        return ll_fail(err, LL_ERR_INPUT, "%s: cannot read (not a regular file?)", path);
    }
    if ((size_t)n > limit) {
        fclose(f);
        return ll_fail(err, LL_ERR_INPUT, "%s: size %ld bytes is not plausible (limit %zu bytes)", path, n, limit);
    }
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return ll_fail(err, LL_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    buf[n] = 0;
    *text = buf;
    *len = (size_t)n;
    return LL_OK;
}

void ll_release_pages(const void *data, size_t n) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)data, hi = lo + n;
    lo = (lo + page - 1) & ~(page - 1); /* whole pages inside the range only */
    hi &= ~(page - 1);
    if (n && hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
