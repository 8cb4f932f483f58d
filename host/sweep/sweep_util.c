/* sweep_util.c: small helpers of the sweep commands: formatted paths, directories, atomic file writes,
 * JSON files, shell quoting, times. */
#include "sweep_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

char *sw_fmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

ll_status sw_mkdirs(const char *dir, ll_err *err) {
    char *p = strdup(dir);
    if (!p) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != 0) continue;
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST) {
            ll_status rc = ll_fail(err, LL_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return ll_fail(err, LL_ERR_IO, "cannot create directory %s: a file of that name is in the way", dir);
    return LL_OK;
}

int sw_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

ll_status sw_write_atomic(const char *path, const char *data, size_t len, ll_err *err) {
    char *tmp = sw_fmt("%s.tmp.%ld", path, (long)getpid());
    if (!tmp) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status rc = LL_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        rc = ll_fail(err, LL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    size_t done = 0;
    while (done < len && !rc) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = ll_fail(err, LL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        else done += (size_t)w;
    }
    if (close(fd) && !rc) rc = ll_fail(err, LL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if (!rc && rename(tmp, path)) rc = ll_fail(err, LL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

ll_status sw_write_json(const char *path, const cJSON *j, ll_err *err) {
    char *text = cJSON_Print(j);
    if (!text) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    }
    t2[n] = '\n';
    t2[n + 1] = 0;
    ll_status rc = sw_write_atomic(path, t2, n + 1, err);
    free(t2);
    return rc;
}

ll_status sw_read_json(const char *path, size_t limit, cJSON **out, ll_err *err) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    ll_status rc = ll_read_small_file(path, limit, &text, &len, err);
    if (rc) return rc;
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!*out) return ll_fail(err, LL_ERR_INPUT, "%s: not valid JSON", path);
    return LL_OK;
}

/* Arguments made only of these characters need no quotes. */
static int shell_safe(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("@%+=:,./_-", *s)))
            return 0;
    return 1;
}

char *sw_shell_join(char *const *argv, int argc) {
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += 4 * strlen(argv[i]) + 3;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < argc; i++) {
        if (i) *p++ = ' ';
        if (shell_safe(argv[i])) {
            p = stpcpy(p, argv[i]);
            continue;
        }
        *p++ = '\'';
        for (const char *a = argv[i]; *a; a++) {
            if (*a == '\'') p = stpcpy(p, "'\\''");
            else *p++ = *a;
        }
        *p++ = '\'';
    }
    *p = 0;
    return s;
}

void sw_iso_time(double unix_s, char *buf, size_t cap) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

double sw_time_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

void sw_duration(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 1e9) snprintf(buf, cap, "unknown");
    else if (s < 120) snprintf(buf, cap, "%.0f s", s);
    else if (s < 7200) snprintf(buf, cap, "%.0f min", s / 60);
    else if (s < 172800) snprintf(buf, cap, "%.1f h", s / 3600);
    else snprintf(buf, cap, "%.1f days", s / 86400);
}

void sw_host(char *buf, size_t cap) {
    if (gethostname(buf, cap - 1)) snprintf(buf, cap, "unknown");
    buf[cap - 1] = 0;
    char *dot = strchr(buf, '.');
    if (dot) *dot = 0;
}

const char *sw_jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double sw_jnum(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}
