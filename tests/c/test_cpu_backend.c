/* test_cpu_backend.c: opening backends by name (host/engine/backend.c) and the CPU backend's options.
 *
 * Checks "cpu", an unknown name, and every way "cuda" can fail: no module in the directory
 * ($LOGITLENS_CUDA_MODULE_DIR, or the executable's own directory), a file that is not a shared object,
 * a shared object without ll_backend_cuda_init; "auto" must fall back to the CPU silently in each case.
 * When the real module was built (build/liblogitlens_cuda.so, next to this test's directory), "cuda"
 * must either open (a GPU is present) or fail with LL_ERR_BACKEND and a message (no GPU, no runtime),
 * and "auto" must always give a working backend. One line per case; exit 1 on any failure. */
#include "ll_backend.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_cases, n_failed;

static void report(int ok, const char *desc, const char *detail) {
    n_cases++;
    if (!ok) n_failed++;
    printf("%-4s %-60s %s\n", ok ? "ok" : "FAIL", desc, detail);
    fflush(stdout);
}

/* Opens name and expects status want; when needle is set the message must contain it; when the open
 * succeeds the backend's name must be want_name. */
static void expect_open(const char *desc, const char *name, const ll_backend_opts *opts, ll_status want,
                        const char *needle, const char *want_name) {
    ll_backend *be = NULL;
    ll_err err;
    err.msg[0] = 0;
    ll_status st = ll_backend_open(name, opts, &be, &err);
    int ok = st == want;
    char detail[LL_ERR_MSG_MAX + 64];
    if (st == LL_OK) {
        ok = ok && be && be->ops && (!want_name || !strcmp(be->ops->name, want_name));
        snprintf(detail, sizeof detail, "opened '%s'", be && be->ops ? be->ops->name : "?");
        if (be) ll_backend_close(be);
    } else {
        ok = ok && be == NULL && err.msg[0] && (!needle || strstr(err.msg, needle));
        snprintf(detail, sizeof detail, "status %d: %s", (int)st, err.msg);
    }
    report(ok, desc, detail);
}

/* A working backend: one op through the table. */
static void check_usable(const char *desc, const char *name) {
    ll_backend *be = NULL;
    ll_err err;
    ll_backend_opts opts = {1, 0, 0};
    if (ll_backend_open(name, &opts, &be, &err) != LL_OK) {
        report(0, desc, err.msg);
        return;
    }
    float h[4] = {1, 2, 3, 4}, g[4] = {0};
    float *x = NULL, *y = NULL;
    int ok = be->ops->alloc(be, sizeof h, (void **)&x) == LL_OK && be->ops->alloc(be, sizeof h, (void **)&y) == LL_OK &&
             be->ops->upload(be, x, h, sizeof h) == LL_OK && be->ops->upload(be, y, h, sizeof h) == LL_OK &&
             be->ops->add(be, y, x, 4) == LL_OK && be->ops->download(be, g, y, sizeof g) == LL_OK &&
             be->ops->sync(be) == LL_OK && g[0] == 2 && g[3] == 8;
    if (x) be->ops->dealloc(be, x);
    if (y) be->ops->dealloc(be, y);
    char detail[64];
    snprintf(detail, sizeof detail, "backend '%s': add %s", be->ops->name, ok ? "works" : "failed");
    ll_backend_close(be);
    report(ok, desc, detail);
}

int main(void) {
    ll_backend_opts opts = {0, 0, 0};
    char tmpl[] = "/tmp/logitlens_backend_XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    char path[4096 + 64]; /* a directory of up to 4095 bytes plus the module name */

    expect_open("cpu", "cpu", &opts, LL_OK, NULL, "cpu");
    expect_open("cpu, NULL options", "cpu", NULL, LL_OK, NULL, "cpu");
    ll_backend_opts one = {1, 0, 0}, neg = {-1, 0, 0};
    expect_open("cpu, 1 thread", "cpu", &one, LL_OK, NULL, "cpu");
    expect_open("cpu, -1 threads", "cpu", &neg, LL_ERR_USAGE, "threads", NULL);
    expect_open("unknown name", "tpu", &opts, LL_ERR_USAGE, "unknown backend 'tpu'", NULL);
    check_usable("cpu runs an op", "cpu");

    /* an empty module directory */
    setenv("LOGITLENS_CUDA_MODULE_DIR", dir, 1);
    snprintf(path, sizeof path, "%s/%s", dir, LL_CUDA_MODULE_NAME);
    expect_open("cuda, no module in $LOGITLENS_CUDA_MODULE_DIR", "cuda", &opts, LL_ERR_BACKEND, path, NULL);
    expect_open("auto, no module: CPU", "auto", &opts, LL_OK, NULL, "cpu");

    /* a file that is not a shared object */
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fputs("not an ELF file\n", f);
    fclose(f);
    expect_open("cuda, module is not a shared object", "cuda", &opts, LL_ERR_BACKEND, "cannot load", NULL);
    expect_open("auto, broken module: CPU", "auto", &opts, LL_OK, NULL, "cpu");
    unlink(path);

    /* a shared object without the entry point: the math library */
    Dl_info info;
    if (dladdr((void *)&cos, &info) && info.dli_fname && info.dli_fname[0] == '/') {
        if (symlink(info.dli_fname, path) == 0) {
            expect_open("cuda, module lacks ll_backend_cuda_init", "cuda", &opts, LL_ERR_BACKEND, LL_CUDA_BACKEND_SYMBOL,
                        NULL);
            expect_open("auto, module lacks the entry point: CPU", "auto", &opts, LL_OK, NULL, "cpu");
            unlink(path);
        } else {
            report(0, "cuda, module lacks ll_backend_cuda_init", "cannot create the symlink");
        }
    } else {
        report(0, "cuda, module lacks ll_backend_cuda_init", "cannot locate libm with dladdr");
    }
    rmdir(dir);

    /* default lookup: the executable's own directory (build/tests has no module) */
    unsetenv("LOGITLENS_CUDA_MODULE_DIR");
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        *slash = 0;
        snprintf(path, sizeof path, "%s/%s", exe, LL_CUDA_MODULE_NAME);
        struct stat sb;
        if (stat(path, &sb) != 0) expect_open("cuda, looked up next to the executable", "cuda", &opts, LL_ERR_BACKEND, path, NULL);

        /* the real module, when it was built: build/liblogitlens_cuda.so, one level up */
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, sizeof path, "%s/%s", exe, LL_CUDA_MODULE_NAME);
            if (stat(path, &sb) == 0) {
                setenv("LOGITLENS_CUDA_MODULE_DIR", exe, 1);
                ll_backend *be = NULL;
                ll_err err;
                err.msg[0] = 0;
                ll_status st = ll_backend_open("cuda", &opts, &be, &err);
                char detail[LL_ERR_MSG_MAX + 32];
                if (st == LL_OK) {
                    snprintf(detail, sizeof detail, "opened '%s'", be->ops->name);
                    report(!strcmp(be->ops->name, "cuda"), "cuda, the built module", detail);
                    ll_backend_close(be);
                } else {
                    snprintf(detail, sizeof detail, "status %d: %s", (int)st, err.msg);
                    report(st == LL_ERR_BACKEND && be == NULL && !strncmp(err.msg, "cuda backend: ", 14),
                           "cuda, the built module (fails cleanly without a GPU)", detail);
                }
                check_usable("auto with the built module runs an op", "auto");
                unsetenv("LOGITLENS_CUDA_MODULE_DIR");
            }
        }
    } else {
        report(0, "cuda, looked up next to the executable", "readlink /proc/self/exe failed");
    }

    printf("test_cpu_backend: %d cases, %d failed\n", n_cases, n_failed);
    return n_failed ? 1 : 0;
}
