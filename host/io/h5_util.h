/* h5_util.h: what the result-file writer (h5_writer.c) and reader (h5_reader.c) share: the checked-call
 * macro that turns a failed HDF5 call into one ll_err line, the datatypes of docs/hdf5-format.md and the
 * chunk-shape rule.
 *
 * HDF5 prints its own error stack to stderr by default; ll_h5_quiet() turns that off once per process and
 * every call goes through LL_H5_TRY instead, which reads the innermost message of the stack (the one that
 * says "Permission denied" rather than "unable to open file") into our message. */
#ifndef LL_H5_UTIL_H
#define LL_H5_UTIL_H

#include "ll_common.h"

#include <hdf5.h>
#include <stdint.h>

/* Format identification (root attributes `format` and `format_version`). */
#define LL_H5_FORMAT "logitlens.lens"
#define LL_H5_FORMAT_VERSION 1

/* Upper bound on one chunk's uncompressed size (docs/hdf5-format.md, "Storage"). */
#define LL_H5_CHUNK_BYTES ((size_t)1 << 20)

/* Runs an HDF5 call; on a negative return fills `err` with "hdf5 CTX: STATEMENT failed at FILE:LINE:
 * REASON", stores the status in the local `st` and jumps to the local label `fail`. The enclosing
 * function must have `ll_status st`, `ll_err *err` and a `fail:` label that releases what it owns. */
#define LL_H5_TRY(ctx, expr)                                                      \
    do {                                                                          \
        if ((expr) < 0) {                                                         \
            st = ll_h5_fail_call(err, LL_ERR_IO, (ctx), #expr, __FILE__, __LINE__); \
            goto fail;                                                            \
        }                                                                         \
    } while (0)

/* Turns HDF5's automatic error printing off (idempotent). */
void ll_h5_quiet(void);

/* Formats a failed call's message from HDF5's error stack (then clears the stack); returns status. */
ll_status ll_h5_fail_call(ll_err *err, ll_status status, const char *ctx, const char *stmt, const char *src,
                          int line);

/* Copies the innermost description on HDF5's error stack into buf ("" when the stack is empty) and
 * clears the stack. */
void ll_h5_error_reason(char *buf, size_t cap);

/* New datatype ids (the caller closes them): variable-length UTF-8 string; IEEE half precision (native
 * byte order when native != 0, little-endian otherwise). Negative on failure. */
hid_t ll_h5_type_utf8(void);
hid_t ll_h5_type_f16(int native);

/* Chunk shape of a dataset whose first axis is the token (or other growing) axis: row[0..rank-2] are the
 * lengths of the other axes, elem the element size. Fills chunk[0..rank-1] so that a chunk holds at most
 * LL_H5_CHUNK_BYTES (splitting the later axes only when a single row is larger) and at least one row. */
void ll_h5_chunk_shape(int rank, const hsize_t *row, size_t elem, hsize_t *chunk);

/* Closes an id of any kind if it is valid and sets it to -1. */
void ll_h5_close_id(hid_t *id);

#endif
