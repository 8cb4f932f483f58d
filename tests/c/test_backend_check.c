/* test_backend_check.c: the device-memory discipline checker (LOGITLENS_DEVICE_CHECK=1,
 * host/engine/backend_check.c) catches what would break on the CUDA backend and lets correct use through:
 * host pointers given to ops, buffers too short for an op, device pointers given as host memory,
 * non-weights given as weights, and host code reading device memory (in a child process, which must
 * exit with the internal-error code and name the allocation). Correct use round-trips data and gives
 * the CPU backend's results. */
#include "ll_backend.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures = 0;
#define EXPECT(cond, ...)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, "\n");                                                     \
        }                                                                              \
    } while (0)

/* status st is an internal error whose message contains needle */
static void expect_refused(ll_backend *be, ll_status st, const char *needle, const char *what) {
    EXPECT(st == LL_ERR_INTERNAL && strstr(be->err.msg, needle) && strstr(be->err.msg, "device check"),
           "%s: status %d, message '%s' (expected an internal error with '%s')", what, (int)st, be->err.msg, needle);
}

int main(void) {
    setenv("LOGITLENS_DEVICE_CHECK", "1", 1);
    ll_backend *be;
    ll_err err;
    ll_backend_opts o = {.threads = 1};
    if (ll_backend_open("cpu", &o, &be, &err) != LL_OK) {
        fprintf(stderr, "FAIL: cannot open the checked cpu backend: %s\n", err.msg);
        return 1;
    }

    /* correct use: upload, an op, download */
    float h[8] = {1, -2, 3, -4, 0.5f, 6, -7, 8}, back[8];
    float *d = NULL, *e = NULL;
    EXPECT(be->ops->alloc(be, sizeof h, (void **)&d) == LL_OK && d, "alloc: %s", be->err.msg);
    EXPECT(be->ops->alloc(be, sizeof h, (void **)&e) == LL_OK && e, "alloc: %s", be->err.msg);
    EXPECT(be->ops->upload(be, d, h, sizeof h) == LL_OK, "upload: %s", be->err.msg);
    EXPECT(be->ops->upload(be, e, h, sizeof h) == LL_OK, "upload: %s", be->err.msg);
    EXPECT(be->ops->add(be, d, e, 8) == LL_OK, "add: %s", be->err.msg);
    EXPECT(be->ops->download(be, back, d, sizeof back) == LL_OK, "download: %s", be->err.msg);
    for (int i = 0; i < 8; i++) EXPECT(back[i] == 2 * h[i], "add result [%d] = %g, expected %g", i, back[i], 2 * h[i]);

    /* host memory where device memory is needed, and the reverse */
    expect_refused(be, be->ops->add(be, d, h, 8), "not inside a device buffer", "add with a host x");
    expect_refused(be, be->ops->act(be, h, 8, LL_ACT_GELU_TANH), "not inside a device buffer", "act on host memory");
    expect_refused(be, be->ops->upload(be, d, e, sizeof h), "host memory is expected", "upload from device memory");
    expect_refused(be, be->ops->download(be, e, d, sizeof h), "host memory is expected", "download into device memory");
    expect_refused(be, be->ops->upload(be, h, back, sizeof h), "not inside a device buffer", "upload to host memory");
    /* a buffer too short for the op */
    expect_refused(be, be->ops->add(be, d, e + 1, 8), "overrun", "add reading past the end of x");
    expect_refused(be, be->ops->copy(be, d + 4, e, sizeof h), "overrun", "copy writing past the end");

    /* weights: uploaded ones pass, a device buffer posing as a weight does not */
    ll_wt w = {0}, fake = {.data = e, .dtype = LL_DTYPE_F32, .rows = 1, .cols = 8};
    EXPECT(be->ops->upload_weight(be, h, LL_DTYPE_F32, 1, 8, &w) == LL_OK, "upload_weight: %s", be->err.msg);
    EXPECT(be->ops->rmsnorm(be, d, e, &w, 1, 8, 1e-5f) == LL_OK, "rmsnorm with an uploaded weight: %s", be->err.msg);
    expect_refused(be, be->ops->rmsnorm(be, d, e, &fake, 1, 8, 1e-5f), "not an uploaded weight", "rmsnorm, fake weight");
    ll_wt bigger = w;
    bigger.cols = 9;
    expect_refused(be, be->ops->rmsnorm(be, d, e, &bigger, 1, 8, 1e-5f), "not an uploaded weight", "weight overstated");

    /* host code reading device memory: the child faults, the handler names the buffer, exit code 70 */
    int pfd[2];
    EXPECT(pipe(pfd) == 0, "pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        volatile float v = d[3]; /* the mistake: no download */
        (void)v;
        _exit(0);
    }
    close(pfd[1]);
    char msg[512] = {0};
    ssize_t n = read(pfd[0], msg, sizeof msg - 1);
    (void)n;
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 70, "child reading device memory: status 0x%x (expected exit 70)",
           status);
    EXPECT(strstr(msg, "host code touched device memory") && strstr(msg, "byte 12 of a device buffer of 32 bytes"),
           "child's message: '%s'", msg);

    be->ops->free_weight(be, &w);
    be->ops->dealloc(be, d);
    be->ops->dealloc(be, e);
    ll_backend_close(be);
    if (failures) fprintf(stderr, "test_backend_check: %d failures\n", failures);
    else printf("test_backend_check: all passed\n");
    return failures != 0;
}
