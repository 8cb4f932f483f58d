/* ll_progress.h: progress with rate and ETA on stderr for long runs (silent during the first second). */
#ifndef LL_PROGRESS_H
#define LL_PROGRESS_H

#include <stdint.h>

typedef struct ll_progress {
    double t0;          /* start, seconds */
    double last_print;  /* time of the last line */
    int64_t total;      /* units of work (tokens) */
    int quiet;
    int tty;            /* stderr is a terminal: redraw one line */
    int printed;
    const char *what;   /* "tokens" */
    double delay;       /* silent for this long (1 s; LOGITLENS_PROGRESS_DELAY overrides) */
    double interval;    /* seconds between lines when stderr is not a terminal (10 s, or the override) */
} ll_progress;

double ll_now(void);
void ll_progress_start(ll_progress *p, int64_t total, const char *what, int quiet);
void ll_progress_update(ll_progress *p, int64_t done);
void ll_progress_finish(ll_progress *p, int64_t done);

#endif
