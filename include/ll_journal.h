/* ll_journal.h: the durable record of a run's committed batches, so that a run killed, preempted or
 * interrupted continues where it stopped (`run --resume`) and ends with the file an uninterrupted run
 * writes.
 *
 * A run writing OUT.h5 keeps OUT.h5.journal/ (docs/hdf5-format.md, "Resuming"):
 *   run.json        what the run is (model, its hashes, the prompts' hash, every option that changes the
 *                   results, the batch count) and the created time and command line the final file records;
 *   batch-NNNNNN.bin one file per committed batch: every array the batch appends to OUT.h5, a header of
 *                   sizes and a SHA-256 of the file; written to a temporary name, flushed (fsync) and renamed,
 *                   so a batch file is whole or absent;
 *   progress.json   {"batches_done", "prompts_done", "tokens_done", "tokens_total", "updated"}, replaced the
 *                   same way after each batch file (readers such as `sweep status` poll it).
 * A resumed run rebuilds OUT.h5 from the batch files and computes the rest; the journal is removed once
 * OUT.h5 is complete. Batch files are untrusted input when read back: every size is checked against the
 * run's shape and the file's length, and the checksum must match (fuzzed: tests/fuzz/fuzz_journal.c). */
#ifndef LL_JOURNAL_H
#define LL_JOURNAL_H

#include "ll_common.h"
#include "ll_h5.h"

#include <stdint.h>

/* The shape every batch of a run shares. */
typedef struct ll_journal_shape {
    int64_t points, topk, d_model, probs_vocab; /* probs_vocab: columns of saved rows (0: none saved) */
    int hidden;                                  /* hidden states saved */
} ll_journal_shape;

/* One batch read back: an ll_h5_batch whose arrays the journal owns (ll_journal_batch_free). */
typedef struct ll_journal_batch {
    ll_h5_batch b;
    void *mem;        /* the file's bytes the arrays point into */
    char **texts;     /* [2 n_prompts]: the prompts' texts, then their targets */
    int64_t *lengths; /* [n_prompts] */
    int64_t *rows;    /* [n_probs_rows] */
} ll_journal_batch;
void ll_journal_batch_free(ll_journal_batch *jb);

/* Serializes batch `index` of a run of this shape into a malloc'ed buffer (*buf, *len). */
ll_status ll_journal_encode(const ll_h5_batch *b, const ll_journal_shape *s, int64_t index, uint8_t **buf, size_t *len,
                            ll_err *err);
/* Parses a batch file's bytes (what ll_journal_encode wrote); buf is taken over (freed with the batch, or on
 * error). what names the file in messages. */
ll_status ll_journal_decode(uint8_t *buf, size_t len, const ll_journal_shape *s, int64_t index, const char *what,
                            ll_journal_batch *out, ll_err *err);

typedef struct ll_journal ll_journal;

/* Starts a journal in dir (created; must not exist) with run.json = identity (a JSON object's text). */
ll_status ll_journal_create(const char *dir, const char *identity, ll_journal **out, ll_err *err);
/* Opens an existing journal: its run.json text (*identity, malloc'ed) and the batches committed. */
ll_status ll_journal_open(const char *dir, char **identity, int64_t *batches_done, ll_journal **out, ll_err *err);
/* Commits batch `index` (= the batches done so far) durably, then its progress. */
ll_status ll_journal_append(ll_journal *j, const ll_h5_batch *b, const ll_journal_shape *s, int64_t prompts_done,
                            int64_t tokens_done, int64_t tokens_total, ll_err *err);
/* Reads committed batch `index` back. */
ll_status ll_journal_read(ll_journal *j, int64_t index, const ll_journal_shape *s, ll_journal_batch *out, ll_err *err);
/* Batches committed. */
int64_t ll_journal_batches(const ll_journal *j);
/* Deletes the journal's files and directory (after OUT.h5 is complete). */
ll_status ll_journal_remove(ll_journal *j, ll_err *err);
void ll_journal_close(ll_journal *j);

#endif
