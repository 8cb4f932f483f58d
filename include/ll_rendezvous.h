/* ll_rendezvous.h: meeting points of the ranks of one job in a directory that every rank sees
 * (--rendezvous DIR, a shared file system), for launches that give no MPI to bootstrap over.
 *
 * Files, all named after the job id so that an earlier job's files are never read:
 *   DIR/logitlens-<job_id>.<what>   a payload (what = "ncclid": rank 0's NCCL unique id), written
 *                                   atomically (temporary file, fsync, rename, fsync of DIR);
 *   DIR/logitlens-<job_id>.abort    the abort mark: one line "rank R code C: reason", written by a rank
 *                                   that gives up, so that the others stop waiting and fail too.
 * A payload file starts with the line "logitlens-rendezvous 1 <job_id> <what> <bytes>" and a reader
 * accepts it only when that line names its own job id, payload and size (a copied or truncated file is
 * not used). Job ids are 1..127 characters of [A-Za-z0-9._-] (ll_rank_env_detect makes them so).
 *
 * Plain C (no MPI, no CUDA): linked into the main library and compiled into the NCCL module
 * (host/dist/nccl/). Tested by tests/dist/test_rendezvous.c. docs/ranks.md has the whole protocol. */
#ifndef LL_RENDEZVOUS_H
#define LL_RENDEZVOUS_H

#include "ll_common.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LL_RENDEZVOUS_PAYLOAD_MAX 4096 /* largest payload in bytes (an NCCL unique id is 128) */

/* out = "DIR/logitlens-<job_id>.<what>" (what: [a-z]+). Errors: a bad job id or a path longer than cap. */
ll_status ll_rendezvous_path(char *out, size_t cap, const char *dir, const char *job_id, const char *what,
                             ll_err *err);

/* Writes data[0..bytes) as DIR/logitlens-<job_id>.<what>, atomically: readers see the whole file or none.
 * Replaces a file of the same name. Errors name the file and the failing call. */
ll_status ll_rendezvous_write(const char *dir, const char *job_id, const char *what, const void *data, size_t bytes,
                              ll_err *err);

/* Waits until DIR/logitlens-<job_id>.<what> exists with a valid header and reads its payload (exactly
 * bytes bytes) into data. Polls (10 ms at first, then up to every 200 ms); gives up with an error after
 * timeout_s seconds (timeout_s <= 0: one look only), or at once when the job's abort mark appears, when
 * DIR is not a directory, or when the file holds another job's or another payload's header. */
ll_status ll_rendezvous_wait(const char *dir, const char *job_id, const char *what, void *data, size_t bytes,
                             double timeout_s, ll_err *err);

/* Writes the job's abort mark ("rank R code C: reason", one line; reason may be NULL). Best effort:
 * returns non-LL_OK with err filled when it cannot, but the caller is usually on its way out. */
ll_status ll_rendezvous_mark_abort(const char *dir, const char *job_id, int rank, int code, const char *reason,
                                   ll_err *err);

/* 1 when the job's abort mark exists (why, if non-NULL, gets its line, at most cap - 1 bytes), else 0. */
int ll_rendezvous_aborted(const char *dir, const char *job_id, char *why, size_t cap);

/* Removes DIR/logitlens-<job_id>.<what> if present (rank 0 at close: "ncclid"). Never fails. */
void ll_rendezvous_remove(const char *dir, const char *job_id, const char *what);

#ifdef __cplusplus
}
#endif
#endif
