/* ll_common.h: status codes, error messages and dtypes shared by every part of logitlens.
 *
 * Library code returns an ll_status and fills an ll_err with one line that names the action, the
 * object and the reason ("safetensors model.safetensors: tensor 'wte.weight' ..."). Only main.c,
 * tests and benches turn a status into a process exit code (see docs/cli.md, "Exit codes"). */
#ifndef LL_COMMON_H
#define LL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ll_status {
    LL_OK = 0,
    LL_ERR_USAGE = 1,    /* bad command line */
    LL_ERR_INPUT = 2,    /* bad model files, prompts or other input data */
    LL_ERR_IO = 3,       /* cannot read or write a file */
    LL_ERR_NOMEM = 4,    /* host or device memory exhausted */
    LL_ERR_BACKEND = 5,  /* backend not available or failed (CUDA, cuBLAS, ...) */
    LL_ERR_INTERNAL = 6, /* invariant broken: a bug */
    LL_ERR_INTERRUPTED = 7, /* stopped by SIGINT or SIGTERM */
    LL_STOPPED_CHECKPOINT = 8, /* stopped after a committed batch on request (SIGUSR1): resumable */
} ll_status;

#define LL_ERR_MSG_MAX 1024
typedef struct ll_err {
    char msg[LL_ERR_MSG_MAX]; /* one line, no trailing newline */
} ll_err;

/* Formats the message into err (if non-NULL) and returns status, so that callers can write
 * `return ll_fail(err, LL_ERR_INPUT, "config %s: ...", path);`. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
ll_status ll_fail(ll_err *err, ll_status status, const char *fmt, ...);

/* Prefixes an existing message: "context: old message". Returns status. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
ll_status ll_fail_prefix(ll_err *err, ll_status status, const char *fmt, ...);

/* Maps a status to the documented process exit code. */
int ll_status_exit_code(ll_status s);

/* Storage dtypes of checkpoint tensors. */
typedef enum ll_dtype {
    LL_DTYPE_F32 = 0,
    LL_DTYPE_F16 = 1,
    LL_DTYPE_BF16 = 2,
    LL_DTYPE_COUNT
} ll_dtype;

size_t ll_dtype_size(ll_dtype t);
const char *ll_dtype_name(ll_dtype t); /* "F32", "F16", "BF16" (safetensors spelling) */

/* Reads a whole file of at most limit bytes into a malloc'ed, NUL-terminated *text (for JSON files:
 * config.json, index files). Errors name the path. */
ll_status ll_read_small_file(const char *path, size_t limit, char **text, size_t *len, ll_err *err);

/* Tells the OS that the whole pages inside [data, data + n) of a read-only file mapping are no longer
 * needed (madvise MADV_DONTNEED): after a backend copied a tensor, its file pages leave memory. */
void ll_release_pages(const void *data, size_t n);

/* Checked allocation helpers: return NULL on overflow or exhaustion. */
void *ll_malloc_array(size_t count, size_t elem);
void *ll_calloc_array(size_t count, size_t elem);

/* Overflow-checked size arithmetic: return 0 on success, -1 on overflow. */
static inline int ll_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}
static inline int ll_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

/* An always-on assertion: invariants stay checked in release builds (a wrong probability is worse
 * than a crash). */
void ll_assert_fail(const char *expr, const char *file, int line);
#define LL_ASSERT(e) ((e) ? (void)0 : ll_assert_fail(#e, __FILE__, __LINE__))

#define LL_VERSION "0.1.0"

#ifdef __cplusplus
}
#endif
#endif
