/* rendezvous.c: files in a shared directory through which the ranks of one job meet (include/ll_rendezvous.h).
 *
 * Atomicity: a payload is written to a temporary name unique to this process
 * (.logitlens-<job>.<what>.tmp.<pid>), fsynced, renamed over the final name, and the directory is
 * fsynced, so a reader on any node sees either nothing or the whole file. Readers poll with stat(),
 * which on NFS may lag a new file by the attribute-cache time (seconds): the timeout covers it. */
#include "ll_rendezvous.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RDV_MAGIC "logitlens-rendezvous 1"
#define RDV_HEADER_MAX 256

static int job_id_ok(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 127) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                 ch == '_' || ch == '-';
        if (!ok) return 0;
    }
    return id[0] != '.'; /* no hidden files, no ".." */
}

static int what_ok(const char *what) {
    if (!what || !*what || strlen(what) > 32) return 0;
    for (const char *p = what; *p; p++)
        if (*p < 'a' || *p > 'z') return 0;
    return 1;
}

ll_status ll_rendezvous_path(char *out, size_t cap, const char *dir, const char *job_id, const char *what,
                             ll_err *err) {
    if (!dir || !*dir) return ll_fail(err, LL_ERR_USAGE, "rendezvous: no directory given");
    if (!job_id_ok(job_id))
        return ll_fail(err, LL_ERR_USAGE, "rendezvous %s: job id '%s' is not 1..127 characters of [A-Za-z0-9._-]", dir,
                       job_id ? job_id : "(null)");
    if (!what_ok(what)) return ll_fail(err, LL_ERR_INTERNAL, "rendezvous %s: bad file kind '%s'", dir, what ? what : "(null)");
    size_t dl = strlen(dir);
    int slash = dir[dl - 1] != '/';
    int n = snprintf(out, cap, "%s%slogitlens-%s.%s", dir, slash ? "/" : "", job_id, what);
    if (n < 0 || (size_t)n >= cap) return ll_fail(err, LL_ERR_USAGE, "rendezvous %s: path too long", dir);
    return LL_OK;
}

static ll_status dir_check(const char *dir, ll_err *err) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return ll_fail(err, LL_ERR_IO, "rendezvous directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return ll_fail(err, LL_ERR_IO, "rendezvous directory %s: not a directory", dir);
    return LL_OK;
}

static ll_status write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return LL_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return LL_OK;
}

/* Writes [head][data] under path atomically through a temporary file in the same directory. */
static ll_status write_atomic(const char *dir, const char *path, const char *head, size_t head_len, const void *data,
                              size_t bytes, ll_err *err) {
    char tmp[PATH_MAX + 64];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t dl = strlen(dir);
    int n = snprintf(tmp, sizeof tmp, "%s%s.%s.tmp.%ld", dir, dir[dl - 1] == '/' ? "" : "/", base, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return ll_fail(err, LL_ERR_USAGE, "rendezvous %s: path too long", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ll_fail(err, LL_ERR_IO, "rendezvous: cannot create %s: %s", tmp, strerror(errno));
    const char *what = NULL;
    if (write_all(fd, head, head_len) || (bytes && write_all(fd, data, bytes))) what = "write";
    else if (fsync(fd) != 0) what = "fsync";
    int e = errno;
    if (close(fd) != 0 && !what) {
        what = "close";
        e = errno;
    }
    if (!what && rename(tmp, path) != 0) {
        what = "rename";
        e = errno;
    }
    if (what) {
        unlink(tmp);
        return ll_fail(err, LL_ERR_IO, "rendezvous: cannot write %s (%s: %s)", path, what, strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* make the rename durable; some file systems refuse fsync on a directory: harmless */
        (void)fsync(dfd);
        close(dfd);
    }
    return LL_OK;
}

ll_status ll_rendezvous_write(const char *dir, const char *job_id, const char *what, const void *data, size_t bytes,
                              ll_err *err) {
    char path[PATH_MAX];
    ll_status st = ll_rendezvous_path(path, sizeof path, dir, job_id, what, err);
    if (st) return st;
    if (bytes > LL_RENDEZVOUS_PAYLOAD_MAX)
        return ll_fail(err, LL_ERR_INTERNAL, "rendezvous %s: payload of %zu bytes (at most %d)", path, bytes,
                       LL_RENDEZVOUS_PAYLOAD_MAX);
    if ((st = dir_check(dir, err))) return st;
    char head[RDV_HEADER_MAX];
    int hl = snprintf(head, sizeof head, RDV_MAGIC " %s %s %zu\n", job_id, what, bytes);
    LL_ASSERT(hl > 0 && (size_t)hl < sizeof head);
    return write_atomic(dir, path, head, (size_t)hl, data, bytes, err);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reads the payload file at path. 1: read into data; 0: absent (or vanished under us); -1: error in err. */
static int read_payload(const char *path, const char *job_id, const char *what, void *data, size_t bytes, ll_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        ll_fail(err, LL_ERR_IO, "rendezvous: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[RDV_HEADER_MAX + LL_RENDEZVOUS_PAYLOAD_MAX + 1];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            ll_fail(err, LL_ERR_IO, "rendezvous: cannot read %s: %s", path, strerror(e));
            return -1;
        }
        if (r == 0 || got + (size_t)r == sizeof buf) {
            got += (size_t)r;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    char want[RDV_HEADER_MAX];
    int wl = snprintf(want, sizeof want, RDV_MAGIC " %s %s %zu\n", job_id, what, bytes);
    LL_ASSERT(wl > 0 && (size_t)wl < sizeof want);
    const char *nl = memchr(buf, '\n', got < RDV_HEADER_MAX ? got : RDV_HEADER_MAX);
    size_t hl = nl ? (size_t)(nl - buf) : 0;
    if (!nl || hl + 1 != (size_t)wl || memcmp(buf, want, (size_t)wl) != 0) {
        ll_fail(err, LL_ERR_INPUT, "rendezvous: %s does not start with '%.*s' (a file of another job or an older "
                "logitlens; remove it)", path, wl - 1, want);
        return -1;
    }
    if (got != (size_t)wl + bytes) {
        ll_fail(err, LL_ERR_INPUT, "rendezvous: %s holds %zu payload bytes, its header says %zu", path,
                got - (size_t)wl, bytes);
        return -1;
    }
    memcpy(data, buf + wl, bytes);
    return 1;
}

ll_status ll_rendezvous_wait(const char *dir, const char *job_id, const char *what, void *data, size_t bytes,
                             double timeout_s, ll_err *err) {
    char path[PATH_MAX];
    ll_status st = ll_rendezvous_path(path, sizeof path, dir, job_id, what, err);
    if (st) return st;
    if (bytes > LL_RENDEZVOUS_PAYLOAD_MAX)
        return ll_fail(err, LL_ERR_INTERNAL, "rendezvous %s: payload of %zu bytes (at most %d)", path, bytes,
                       LL_RENDEZVOUS_PAYLOAD_MAX);
    if ((st = dir_check(dir, err))) return st;
    double t0 = now_s(), pause = 0.01;
    for (;;) {
        char why[512];
        if (ll_rendezvous_aborted(dir, job_id, why, sizeof why))
            return ll_fail(err, LL_ERR_BACKEND, "rendezvous %s: job %s was aborted while waiting for %s (%s)", dir,
                           job_id, path, why);
        int r = read_payload(path, job_id, what, data, bytes, err);
        if (r > 0) return LL_OK;
        if (r < 0) return LL_ERR_INPUT;
        double waited = now_s() - t0;
        if (waited >= timeout_s)
            return ll_fail(err, LL_ERR_BACKEND,
                           "rendezvous %s: no %s after waiting %.1f s (rank 0 writes it: is rank 0 running, with the "
                           "same --rendezvous directory and job id, and does every node see %s?)",
                           dir, path, waited, dir);
        double left = timeout_s - waited;
        sleep_s(pause < left ? pause : left);
        if (pause < 0.2) pause *= 2;
    }
}

ll_status ll_rendezvous_mark_abort(const char *dir, const char *job_id, int rank, int code, const char *reason,
                                   ll_err *err) {
    char path[PATH_MAX];
    ll_status st = ll_rendezvous_path(path, sizeof path, dir, job_id, "abort", err);
    if (st) return st;
    char line[512];
    int n = snprintf(line, sizeof line, "rank %d code %d: %s", rank, code, reason && *reason ? reason : "aborted");
    if (n < 0) return ll_fail(err, LL_ERR_INTERNAL, "rendezvous: cannot format the abort mark");
    size_t len = strlen(line); /* truncated by snprintf when long */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[len++] = '\n';
    return write_atomic(dir, path, line, len, NULL, 0, err);
}

int ll_rendezvous_aborted(const char *dir, const char *job_id, char *why, size_t cap) {
    char path[PATH_MAX];
    if (ll_rendezvous_path(path, sizeof path, dir, job_id, "abort", NULL)) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    if (why && cap) {
        ssize_t r = read(fd, why, cap - 1);
        size_t n = r > 0 ? (size_t)r : 0;
        why[n] = 0;
        char *nl = strchr(why, '\n');
        if (nl) *nl = 0;
        if (!why[0]) snprintf(why, cap, "empty abort mark %s", path);
    }
    close(fd);
    return 1;
}

void ll_rendezvous_remove(const char *dir, const char *job_id, const char *what) {
    char path[PATH_MAX];
    if (ll_rendezvous_path(path, sizeof path, dir, job_id, what, NULL) == LL_OK) (void)unlink(path);
}
