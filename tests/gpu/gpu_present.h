/* gpu_present.h: whether this machine has an NVIDIA GPU, whatever the CUDA module makes of it.
 *
 * cuda_probe.c and test_backend_ops.c skip (exit 0, "skipped") only where there is no GPU at all. Where a
 * GPU is present but the module cannot use it (a driver older than the CUDA runtime the module was
 * built with, libcudart or cuBLAS missing, a device below sm_80), `make test-gpu` must fail and say so:
 * a skip there would read as a pass.
 *
 * Present: a device node /dev/nvidia0 .. /dev/nvidia63 exists, or `nvidia-smi -L` lists a GPU.
 * LL_TEST_GPU_NODES (colon-separated paths; present when one of them exists) replaces both checks, so
 * that tests/gpu (mk/gpu_harness.mk) can fake either answer with a temporary file or a missing path.
 * Needs _GNU_SOURCE (popen). */
#ifndef LL_TEST_GPU_PRESENT_H
#define LL_TEST_GPU_PRESENT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* 1 when a GPU is present; why (cap bytes) says what was found or looked for. */
static int ll_test_gpu_present(char *why, size_t cap) {
    struct stat sb;
    const char *env = getenv("LL_TEST_GPU_NODES");
    if (env) {
        char path[4096];
        for (const char *p = env; *p;) {
            const char *q = strchr(p, ':');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            if (n > 0 && n < sizeof path) {
                memcpy(path, p, n);
                path[n] = 0;
                if (stat(path, &sb) == 0) {
                    snprintf(why, cap, "%.400s exists (LL_TEST_GPU_NODES)", path);
                    return 1;
                }
            }
            if (!q) break;
            p = q + 1;
        }
        snprintf(why, cap, "none of LL_TEST_GPU_NODES=%.400s exists", env);
        return 0;
    }
    for (int i = 0; i < 64; i++) {
        char path[32];
        snprintf(path, sizeof path, "/dev/nvidia%d", i);
        if (stat(path, &sb) == 0) {
            snprintf(why, cap, "%s exists", path);
            return 1;
        }
    }
    FILE *f = popen("nvidia-smi -L 2>/dev/null", "r");
    if (f) {
        char line[512];
        int found = 0;
        while (fgets(line, sizeof line, f))
            if (!found && !strncmp(line, "GPU ", 4)) {
                line[strcspn(line, "\n")] = 0;
                snprintf(why, cap, "nvidia-smi lists %.400s", line);
                found = 1;
            }
        pclose(f);
        if (found) return 1;
    }
    snprintf(why, cap, "no /dev/nvidia* device node, nvidia-smi lists no GPU");
    return 0;
}

#endif
