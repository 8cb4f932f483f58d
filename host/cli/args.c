/* args.c: option parsing helpers. */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ll_arg_value(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n)) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n]) return 0;
    if (*i + 1 >= argc) return -1;
    *val = argv[++*i];
    return 1;
}

int ll_arg_flag(char **argv, int i, const char *name) { return !strcmp(argv[i], name); }

int ll_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t **out, int64_t *n, char *bad, size_t badcap) {
    size_t cap = 1;
    for (const char *c = s; *c; c++) cap += *c == ',';
    int64_t *v = malloc(cap * sizeof *v);
    *out = NULL;
    *n = 0;
    if (!v) return -3;
    char buf[32];
    for (const char *c = s; *c;) {
        size_t len = strcspn(c, ",");
        if (len == 0 || len >= sizeof buf) {
            free(v);
            return -1;
        }
        memcpy(buf, c, len);
        buf[len] = 0;
        if (ll_parse_int(buf, lo, hi, &v[*n])) {
            snprintf(bad, badcap, "%s", buf);
            free(v);
            return -2;
        }
        (*n)++;
        c += len;
        if (*c == ',') c++;
    }
    *out = v;
    return 0;
}

int ll_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
