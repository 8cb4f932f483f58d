/* cuda_probe.c: says whether the CUDA backend can run here, for `make test-gpu`, `make bench-gpu` and
 * tests/gpu/sanitize.sh.
 *
 * usage: cuda_probe MODULE.so | cuda_probe --gpu-present
 * --gpu-present: prints what gpu_present.h found; exit 0 with a GPU, 2 without.
 * MODULE.so: loads the module with dlopen, opens the backend on device 0 and closes it. Prints one line and exits:
 *   0  the device and its free memory: the backend is usable;
 *   2  no GPU here (no /dev/nvidia* node, nvidia-smi lists none: gpu_present.h) and the module cannot
 *      load or finds no device: the caller skips;
 *   1  anything else: the module loads but is broken (no entry point, an unexpected error), or a GPU is
 *      present but the module cannot use it (a driver older than the CUDA runtime the module needs,
 *      libcudart or cuBLAS missing, a device below sm_80). That is a failure, never a skip: the line
 *      starts with "a GPU is present" and gives both what was found and the module's reason.
 * Links only libdl: it needs no CPU backend. */
#include "gpu_present.h"
#include "ll_backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* No usable backend: exit 2 (skip) without a GPU, 1 with one. */
static int unusable(const char *reason) {
    char why[512];
    if (ll_test_gpu_present(why, sizeof why)) {
        printf("a GPU is present (%s) but the CUDA module cannot use it: %s", why, reason);
        return 1;
    }
    printf("%s", reason);
    return 2;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: cuda_probe MODULE.so | cuda_probe --gpu-present\n");
        return 1;
    }
    if (!strcmp(argv[1], "--gpu-present")) {
        char why[512];
        const int present = ll_test_gpu_present(why, sizeof why);
        printf("%s", why);
        return present ? 0 : 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        char reason[1024];
        snprintf(reason, sizeof reason, "cannot load %s: %s", argv[1], dlerror());
        return unusable(reason);
    }
    ll_backend_init_fn init = (ll_backend_init_fn)dlsym(h, LL_CUDA_BACKEND_SYMBOL);
    if (!init) {
        printf("%s has no symbol %s\n", argv[1], LL_CUDA_BACKEND_SYMBOL);
        return 1;
    }
    ll_backend be;
    memset(&be, 0, sizeof be);
    ll_backend_opts opts;
    memset(&opts, 0, sizeof opts);
    ll_status st = init(&be, &opts);
    if (st != LL_OK) {
        /* the module reports a missing device or driver this way; anything else is a failure */
        if (st == LL_ERR_BACKEND && strstr(be.err.msg, "cuda: ") == be.err.msg &&
            (strstr(be.err.msg, "no CUDA device") || strstr(be.err.msg, "not supported") || strstr(be.err.msg, "driver")))
            return unusable(be.err.msg);
        printf("%s", be.err.msg);
        return 1;
    }
    size_t fr = 0, tot = 0;
    if (be.ops->mem_info(&be, &fr, &tot) != LL_OK) {
        printf("mem_info failed: %s", be.err.msg);
        be.ops->close(&be);
        return 1;
    }
    printf("CUDA device 0 usable, %.1f of %.1f GiB free", fr / 1073741824.0, tot / 1073741824.0);
    be.ops->close(&be);
    return 0;
}
