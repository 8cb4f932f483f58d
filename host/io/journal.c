/* journal.c: the journal directory of a run (include/ll_journal.h): run.json, one file per committed
 * batch, progress.json. Every file is written to a temporary name, flushed to disk (fsync), renamed into
 * place, and the directory flushed, so that a kill at any moment leaves whole files only. */
#include "ll_journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH_FILE_MAX ((size_t)1 << 40)

struct ll_journal {
    char *dir;
    int64_t batches;
};

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void batch_name(int64_t index, char *buf, size_t cap) { snprintf(buf, cap, "batch-%06lld.bin", (long long)index); }

/* Test hook (tests/test_resume.py): LOGITLENS_TEST_JOURNAL_FAIL_AT=N makes writing batch N fail as a full
 * disk would (ENOSPC). */
static int test_disk_full(const char *name) {
    const char *at = getenv("LOGITLENS_TEST_JOURNAL_FAIL_AT");
    char want[64];
    if (!at || !*at) return 0;
    snprintf(want, sizeof want, "batch-%06lld.bin", atoll(at));
    return !strcmp(name, want);
}

/* Writes data to dir/name durably: a temporary file, fsync, rename, fsync of the directory. */
static ll_status write_durable(const char *dir, const char *name, const void *data, size_t len, ll_err *err) {
    char *path = join(dir, name), tmpname[64];
    snprintf(tmpname, sizeof tmpname, ".%s.tmp", name);
    char *tmp = join(dir, tmpname);
    ll_status rc = LL_OK;
    if (!path || !tmp) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto done;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ll_fail(err, LL_ERR_IO, "journal %s: cannot create %s: %s", dir, tmpname, strerror(errno));
        goto done;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (test_disk_full(name)) w = -1, errno = ENOSPC;
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = ll_fail(err, LL_ERR_IO, "journal %s: writing %s: %s (the batches committed before are intact)", dir,
                         name, w < 0 ? strerror(errno) : "no progress");
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!rc && fsync(fd) != 0)
        rc = ll_fail(err, LL_ERR_IO, "journal %s: flushing %s: %s (the batches committed before are intact)", dir, name,
                     strerror(errno));
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = ll_fail(err, LL_ERR_IO, "journal %s: renaming %s: %s", dir, tmpname, strerror(errno));
    if (rc) {
        unlink(tmp);
        goto done;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
done:
    free(path);
    free(tmp);
    return rc;
}

/* Reads dir/name whole (at most limit bytes) into a malloc'ed buffer. */
static ll_status read_whole(const char *dir, const char *name, size_t limit, uint8_t **out, size_t *len, ll_err *err) {
    char *path = join(dir, name);
    if (!path) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status rc = LL_OK;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        rc = ll_fail(err, LL_ERR_IO, "journal %s: cannot read %s: %s", dir, name, strerror(errno));
    } else if (!S_ISREG(st.st_mode) || (size_t)st.st_size > limit) {
        rc = ll_fail(err, LL_ERR_INPUT, "journal %s: %s is not a regular file of at most %zu bytes", dir, name, limit);
    } else {
        size_t n = (size_t)st.st_size;
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf) rc = ll_fail(err, LL_ERR_NOMEM, "journal %s: cannot allocate %zu bytes for %s", dir, n, name);
        else if (n && fread(buf, 1, n, f) != n) {
            free(buf);
            rc = ll_fail(err, LL_ERR_IO, "journal %s: %s: short read", dir, name);
        } else {
            *out = buf;
            *len = n;
        }
    }
    if (f) fclose(f);
    free(path);
    return rc;
}

ll_status ll_journal_create(const char *dir, const char *identity, ll_journal **out, ll_err *err) {
    *out = NULL;
    if (mkdir(dir, 0755) != 0)
        return ll_fail(err, LL_ERR_IO, "cannot create the journal %s: %s", dir, strerror(errno));
    ll_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->dir = strdup(dir))) {
        free(j);
        rmdir(dir);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    ll_status rc = write_durable(dir, "run.json", identity, strlen(identity), err);
    if (rc) {
        ll_journal_remove(j, NULL);
        ll_journal_close(j);
        return rc;
    }
    *out = j;
    return LL_OK;
}

ll_status ll_journal_open(const char *dir, char **identity, int64_t *batches_done, ll_journal **out, ll_err *err) {
    *out = NULL;
    *identity = NULL;
    uint8_t *id = NULL;
    size_t n = 0;
    ll_status rc = read_whole(dir, "run.json", (size_t)1 << 24, &id, &n, err);
    if (rc) return rc;
    char *text = realloc(id, n + 1);
    if (!text) {
        free(id);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    text[n] = 0;
    /* the batches committed: batch-000000.bin, batch-000001.bin, ... without a gap */
    int64_t k = 0;
    for (;; k++) {
        char name[64], *path;
        batch_name(k, name, sizeof name);
        if (!(path = join(dir, name))) {
            free(text);
            return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        }
        int there = access(path, F_OK) == 0;
        free(path);
        if (!there) break;
    }
    ll_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->dir = strdup(dir))) {
        free(j);
        free(text);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    j->batches = k;
    *identity = text;
    *batches_done = k;
    *out = j;
    return LL_OK;
}

int64_t ll_journal_batches(const ll_journal *j) { return j ? j->batches : 0; }

ll_status ll_journal_append(ll_journal *j, const ll_h5_batch *b, const ll_journal_shape *s, int64_t prompts_done,
                            int64_t tokens_done, int64_t tokens_total, ll_err *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ll_status rc = ll_journal_encode(b, s, j->batches, &buf, &len, err);
    if (rc) return rc;
    char name[64];
    batch_name(j->batches, name, sizeof name);
    rc = write_durable(j->dir, name, buf, len, err);
    free(buf);
    if (rc) return rc;
    j->batches++;
    char when[32], prog[256];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int n = snprintf(prog, sizeof prog,
                     "{\"batches_done\": %lld, \"prompts_done\": %lld, \"tokens_done\": %lld, \"tokens_total\": %lld, "
                     "\"updated\": \"%s\"}\n",
                     (long long)j->batches, (long long)prompts_done, (long long)tokens_done, (long long)tokens_total, when);
    return write_durable(j->dir, "progress.json", prog, (size_t)n, err);
}

ll_status ll_journal_read(ll_journal *j, int64_t index, const ll_journal_shape *s, ll_journal_batch *out, ll_err *err) {
    char name[64], what[PATH_MAX + 80];
    batch_name(index, name, sizeof name);
    snprintf(what, sizeof what, "journal %s/%s", j->dir, name);
    uint8_t *buf = NULL;
    size_t len = 0;
    ll_status rc = read_whole(j->dir, name, BATCH_FILE_MAX, &buf, &len, err);
    if (rc) return rc;
    return ll_journal_decode(buf, len, s, index, what, out, err);
}

ll_status ll_journal_remove(ll_journal *j, ll_err *err) {
    DIR *d = opendir(j->dir);
    if (!d) return ll_fail(err, LL_ERR_IO, "cannot open the journal %s: %s", j->dir, strerror(errno));
    struct dirent *e;
    int bad = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        /* only the journal's own files */
        if (strcmp(e->d_name, "run.json") && strcmp(e->d_name, "progress.json") && strncmp(e->d_name, "batch-", 6) &&
            e->d_name[0] != '.')
            continue;
        char *p = join(j->dir, e->d_name);
        if (!p || unlink(p) != 0) bad = 1;
        free(p);
    }
    closedir(d);
    if (bad || rmdir(j->dir) != 0)
        return ll_fail(err, LL_ERR_IO, "cannot remove the journal %s: %s", j->dir, strerror(errno));
    return LL_OK;
}

void ll_journal_close(ll_journal *j) {
    if (!j) return;
    free(j->dir);
    free(j);
}
