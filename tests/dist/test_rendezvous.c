/* test_rendezvous.c: the rendezvous files (host/dist/rendezvous.c) without a GPU: write and wait, a writer
 * that comes later (another process), timeouts, the abort mark (present, and appearing during a wait),
 * files of another job id, truncated or foreign files, a missing directory, bad job ids. One line per case. */
#include "ll_rendezvous.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int g_pass, g_fail;

static void report(const char *name, int ok, const char *detail) {
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, detail && *detail ? ": " : "", detail ? detail : "");
    if (ok) g_pass++;
    else g_fail++;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void fill(unsigned char *p, size_t n, int seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 13 + (size_t)seed);
}

static int file_exists(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* No temporary files may be left behind by the atomic writes. */
static int temp_files_left(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

int main(void) {
    char dir[] = "/tmp/ll-rdv-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    ll_err err;
    unsigned char id[128], got[128];
    char detail[2048];

    /* 1. write, then wait: the payload comes back, under the documented name, with no temporary left */
    fill(id, sizeof id, 1);
    ll_status st = ll_rendezvous_write(dir, "job1", "ncclid", id, sizeof id, &err);
    memset(got, 0, sizeof got);
    ll_status st2 = st ? st : ll_rendezvous_wait(dir, "job1", "ncclid", got, sizeof got, 1.0, &err);
    report("write_then_wait", !st && !st2 && !memcmp(id, got, sizeof id) && file_exists(dir, "logitlens-job1.ncclid") &&
                                  temp_files_left(dir) == 0,
           st || st2 ? err.msg : "");

    /* 2. nothing written: a timeout naming the directory, the file and the wait, after about timeout_s */
    double t0 = now_s();
    st = ll_rendezvous_wait(dir, "job2", "ncclid", got, sizeof got, 0.3, &err);
    double dt = now_s() - t0;
    snprintf(detail, sizeof detail, "%.2f s: %s", dt, st ? err.msg : "ok (unexpected)");
    report("timeout", st && dt >= 0.29 && dt < 2.0 && strstr(err.msg, dir) && strstr(err.msg, "logitlens-job2.ncclid") &&
                          strstr(err.msg, "after waiting"),
           detail);

    /* 3. a stale file of an earlier job is not used: job "old" wrote, job "new" waits and times out */
    fill(id, sizeof id, 2);
    ll_rendezvous_write(dir, "old", "ncclid", id, sizeof id, &err);
    st = ll_rendezvous_wait(dir, "new", "ncclid", got, sizeof got, 0.2, &err);
    report("stale_job_id_ignored", st && strstr(err.msg, "logitlens-new.ncclid"), st ? err.msg : "ok (unexpected)");

    /* 4. a file of another job renamed into this job's name is refused by its header */
    {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/logitlens-old.ncclid", dir);
        snprintf(b, sizeof b, "%s/logitlens-copied.ncclid", dir);
        rename(a, b);
        st = ll_rendezvous_wait(dir, "copied", "ncclid", got, sizeof got, 0.2, &err);
        report("foreign_header_refused", st && strstr(err.msg, "another job"), st ? err.msg : "ok (unexpected)");
    }

    /* 5. the same job's file with another payload size (an older logitlens, a truncated copy) is refused */
    ll_rendezvous_write(dir, "job5", "ncclid", id, 64, &err);
    st = ll_rendezvous_wait(dir, "job5", "ncclid", got, sizeof got, 0.2, &err);
    report("size_mismatch_refused", st && strstr(err.msg, "does not start with"), st ? err.msg : "ok (unexpected)");

    /* 6. garbage under the right name */
    {
        char p[4096];
        snprintf(p, sizeof p, "%s/logitlens-job6.ncclid", dir);
        FILE *f = fopen(p, "w");
        fputs("not a rendezvous file\n", f);
        fclose(f);
        st = ll_rendezvous_wait(dir, "job6", "ncclid", got, sizeof got, 0.2, &err);
        report("garbage_refused", st && strstr(err.msg, "does not start with"), st ? err.msg : "ok (unexpected)");
    }

    /* 7. the abort mark ends a wait at once, and says who and why */
    st = ll_rendezvous_mark_abort(dir, "job7", 1, 3, "boom\nsecond line", &err);
    char why[512] = "";
    int aborted = ll_rendezvous_aborted(dir, "job7", why, sizeof why);
    t0 = now_s();
    ll_status sw = ll_rendezvous_wait(dir, "job7", "ncclid", got, sizeof got, 10.0, &err);
    dt = now_s() - t0;
    snprintf(detail, sizeof detail, "mark '%s', wait %.2f s: %s", why, dt, sw ? err.msg : "ok (unexpected)");
    report("abort_mark", !st && aborted && !strcmp(why, "rank 1 code 3: boom second line") && sw && dt < 0.5 &&
                             strstr(err.msg, "aborted") && strstr(err.msg, "rank 1 code 3"),
           detail);
    report("no_abort_mark", !ll_rendezvous_aborted(dir, "job1", NULL, 0), "");

    /* 8. a writer that comes later (another process, 0.3 s on): the waiter gets its payload */
    fill(id, sizeof id, 8);
    pid_t pid = fork();
    if (pid == 0) {
        sleep_s(0.3);
        _exit(ll_rendezvous_write(dir, "job8", "ncclid", id, sizeof id, NULL) ? 1 : 0);
    }
    memset(got, 0, sizeof got);
    t0 = now_s();
    st = ll_rendezvous_wait(dir, "job8", "ncclid", got, sizeof got, 5.0, &err);
    dt = now_s() - t0;
    int wst = 0;
    waitpid(pid, &wst, 0);
    snprintf(detail, sizeof detail, "%.2f s: %s", dt, st ? err.msg : "ok");
    report("late_writer", !st && !memcmp(id, got, sizeof id) && dt >= 0.25 && dt < 3.0 && WIFEXITED(wst) &&
                              WEXITSTATUS(wst) == 0,
           detail);

    /* 9. an abort mark that appears during the wait ends it within the polling interval */
    pid = fork();
    if (pid == 0) {
        sleep_s(0.3);
        _exit(ll_rendezvous_mark_abort(dir, "job9", 2, 1, "rank 2 could not set up CUDA", NULL) ? 1 : 0);
    }
    t0 = now_s();
    st = ll_rendezvous_wait(dir, "job9", "ncclid", got, sizeof got, 10.0, &err);
    dt = now_s() - t0;
    waitpid(pid, &wst, 0);
    snprintf(detail, sizeof detail, "%.2f s: %s", dt, st ? err.msg : "ok (unexpected)");
    report("abort_during_wait", st && dt < 2.0 && strstr(err.msg, "could not set up CUDA"), detail);

    /* 10. remove: the id file goes (rank 0 at close) */
    ll_rendezvous_remove(dir, "job1", "ncclid");
    report("remove", !file_exists(dir, "logitlens-job1.ncclid"), "");

    /* 11. a missing directory fails at once, naming it */
    t0 = now_s();
    st = ll_rendezvous_wait("/nonexistent/ll-rdv", "job11", "ncclid", got, sizeof got, 10.0, &err);
    dt = now_s() - t0;
    report("missing_directory", st && dt < 0.5 && strstr(err.msg, "/nonexistent/ll-rdv"), st ? err.msg : "ok (unexpected)");
    st = ll_rendezvous_write("/nonexistent/ll-rdv", "job11", "ncclid", id, sizeof id, &err);
    report("missing_directory_write", st && strstr(err.msg, "/nonexistent/ll-rdv"), st ? err.msg : "ok (unexpected)");

    /* 12. job ids that could leave the directory or hide a file are refused */
    const char *bad_ids[] = {"../x", "a/b", "", ".hidden", "sp ace"};
    int all = 1;
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        st = ll_rendezvous_write(dir, bad_ids[i], "ncclid", id, sizeof id, &err);
        if (!st || !strstr(err.msg, "job id")) all = 0;
    }
    report("bad_job_ids", all, all ? "" : err.msg);

    /* 13. a payload over the limit is refused */
    static unsigned char big[LL_RENDEZVOUS_PAYLOAD_MAX + 1];
    st = ll_rendezvous_write(dir, "job13", "ncclid", big, sizeof big, &err);
    report("payload_limit", st != LL_OK, st ? err.msg : "ok (unexpected)");
    report("no_temp_files_left", temp_files_left(dir) == 0, "");

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_rendezvous: could not remove %s\n", dir);
    printf("test_rendezvous: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
