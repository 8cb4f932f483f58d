/* progress.c: rate and ETA on stderr. A terminal gets one redrawn line; a log file gets a line every
 * ten seconds. Nothing is printed for runs that finish within a second. */
#include "ll_progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

double ll_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ll_progress_start(ll_progress *p, int64_t total, const char *what, int quiet) {
    p->t0 = ll_now();
    p->last_print = p->t0;
    p->total = total;
    p->quiet = quiet;
    p->tty = isatty(2);
    p->printed = 0;
    p->what = what;
    p->delay = 1.0;
    p->interval = 10.0;
    const char *env = getenv("LOGITLENS_PROGRESS_DELAY");
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (!*end && v >= 0) p->delay = p->interval = v;
    }
}

static void fmt_dur(double s, char *buf, size_t cap) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

static void print_line(ll_progress *p, int64_t done, int final) {
    double now = ll_now(), el = now - p->t0;
    double rate = el > 0 ? (double)done / el : 0;
    char eta[32], elapsed[32];
    fmt_dur(rate > 0 ? (double)(p->total - done) / rate : 0, eta, sizeof eta);
    fmt_dur(el, elapsed, sizeof elapsed);
    double pct = p->total ? 100.0 * (double)done / (double)p->total : 100.0;
    if (final)
        fprintf(stderr, "%s%lld/%lld %s (100%%) in %s, %.1f %s/s\n", p->tty ? "\r\033[K" : "", (long long)done,
                (long long)p->total, p->what, elapsed, rate, p->what);
    else
        fprintf(stderr, "%s%lld/%lld %s (%.0f%%)  %.1f %s/s  elapsed %s  ETA %s%s", p->tty ? "\r\033[K" : "",
                (long long)done, (long long)p->total, p->what, pct, rate, p->what, elapsed, eta, p->tty ? "" : "\n");
    fflush(stderr);
    p->last_print = now;
    p->printed = 1;
}

void ll_progress_update(ll_progress *p, int64_t done) {
    if (p->quiet) return;
    double now = ll_now();
    if (now - p->t0 < p->delay) return;
    if (now - p->last_print < (p->tty ? 0.2 : p->interval) && p->printed) return;
    print_line(p, done, 0);
}

void ll_progress_finish(ll_progress *p, int64_t done) {
    if (p->quiet || ll_now() - p->t0 < p->delay) return;
    print_line(p, done, 1);
}
