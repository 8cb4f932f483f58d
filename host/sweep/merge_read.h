/* merge_read.h: what `sweep merge` reads from a shard's result file beyond what the reader
 * (host/io/h5_reader.h: ll_h5_read_rows, ll_h5_read_attr_str) offers: optional and array attributes, string
 * rows, the vocabulary's bytes. The file is opened and checked by ll_h5_run_open, so shapes agree with the
 * format before these read anything. */
#ifndef LL_MERGE_READ_H
#define LL_MERGE_READ_H

#include "io/h5_reader.h"

#include <stdint.h>

/* A string attribute of the root (malloc'ed); *out = NULL without an error when optional and absent. */
ll_status sw_h5_attr_str(const ll_h5_run *r, const char *name, int optional, char **out, ll_err *err);
/* An integer attribute of the root; dflt when optional and absent. */
ll_status sw_h5_attr_i64(const ll_h5_run *r, const char *name, int optional, int64_t dflt, int64_t *out, ll_err *err);
/* A string-array attribute of the root (n malloc'ed strings; *n = 0 and *out = NULL when absent). */
ll_status sw_h5_attr_strs(const ll_h5_run *r, const char *name, char ***out, int *n, ll_err *err);
void sw_strs_free(char **v, int n);

/* Whether the dataset exists, and the length of its first axis (its shape up to 3 axes in dims). */
int sw_h5_has(const ll_h5_run *r, const char *name, int64_t dims[3]);
/* Rows [off, off + n) of a 1-D string dataset (n malloc'ed strings). */
ll_status sw_h5_string_rows(const ll_h5_run *r, const char *name, int64_t off, int64_t n, char ***out, ll_err *err);
/* The whole `vocab_bytes` dataset: n byte strings (bytes[i] of len[i]; one allocation each). */
ll_status sw_h5_vocab_bytes(const ll_h5_run *r, int64_t n, uint8_t ***bytes, size_t **len, ll_err *err);

#endif
