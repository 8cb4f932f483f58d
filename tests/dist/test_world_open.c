/* test_world_open.c: ll_world_open's choices and errors without a launcher, a GPU or (for most cases) MPI:
 * one rank gets the single communicator; a multi-rank environment whose module is missing, or CUDA ranks
 * with no way to share the NCCL id, fail at once with one line that says what to do. With the NCCL module
 * built ($DIST_NCCL_MODULE_DIR), a CUDA rank that cannot complete the set-up fails within its timeout and
 * leaves the abort mark for the others. With the MPI module ($DIST_MPI_MODULE_DIR), a launcher environment
 * whose rank variables MPI cannot join (here: OMPI_COMM_WORLD_* alone, so MPI starts as a singleton) is a
 * rank/world mismatch error.
 * The environment of a two-rank srun step is faked with setenv. One line per case. */
#include "ll_ranks.h"
#include "ll_rendezvous.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_pass, g_fail;

static void report(const char *name, int ok, const char *detail) {
    printf("%s %s: %s\n", ok ? "PASS" : "FAIL", name, detail);
    if (ok) g_pass++;
    else g_fail++;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A two-rank srun step without PMI: rank `rank`, so no MPI bootstrap. */
static void fake_srun(int rank, const char *job) {
    char r[16];
    snprintf(r, sizeof r, "%d", rank);
    setenv("SLURM_PROCID", r, 1);
    setenv("SLURM_LOCALID", r, 1);
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    setenv("SLURM_STEP_TASKS_PER_NODE", "2", 1);
    setenv("SLURM_STEP_ID", "0", 1);
    setenv("SLURM_JOB_ID", job, 1);
}

static void clear_launcher(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID",
                          "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_STEP_ID", "SLURM_STEPID", "LOGITLENS_JOB_ID"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
}

int main(void) {
    const char *nccl_dir = getenv("DIST_NCCL_MODULE_DIR"), *mpi_dir = getenv("DIST_MPI_MODULE_DIR");
    ll_rank_env e;
    ll_world w;
    ll_err err;
    char detail[2048];
    ll_status st;

    /* 1. no launcher: the single communicator, nothing loaded */
    clear_launcher();
    setenv(LL_MODULE_DIR_ENV, "/nonexistent-ll-modules", 1);
    st = ll_rank_env_detect(&e, &err);
    if (!st) st = ll_world_open(&e, "cpu", -1, NULL, 0, &w, &err);
    snprintf(detail, sizeof detail, "%s", st ? err.msg : w.comm->kind);
    report("one_rank_single", !st && !strcmp(w.comm->kind, "single") && w.comm->rank == 0 && w.comm->world == 1 &&
                                  !w.mpi_dl && !w.nccl_dl,
           detail);
    if (!st) ll_world_close(&w);
    st = ll_world_open(&e, "cuda", -1, NULL, 0, &w, &err);
    report("one_rank_cuda_single", !st && !strcmp(w.comm->kind, "single"), st ? err.msg : "single");
    if (!st) ll_world_close(&w);

    /* 2. a backend ranks cannot compute on */
    st = ll_world_open(&e, "tpu", -1, NULL, 0, &w, &err);
    report("bad_backend", st == LL_ERR_USAGE && strstr(err.msg, "tpu"), st ? err.msg : "ok (unexpected)");

    /* 3. CPU ranks without the MPI module: which file, why, and what to install */
    fake_srun(0, "101");
    st = ll_rank_env_detect(&e, &err);
    if (!st) st = ll_world_open(&e, "cpu", -1, NULL, 0, &w, &err);
    report("cpu_without_mpi_module",
           st && strstr(err.msg, "/nonexistent-ll-modules/liblogitlens_mpi.so") &&
               strstr(err.msg, "apt-get install openmpi-bin") && strstr(err.msg, "mpirun") && !w.comm && !w.mpi_dl,
           st ? err.msg : "ok (unexpected)");

    /* 4. CUDA ranks under a launcher without MPI and no rendezvous directory: say --rendezvous DIR */
    double t0 = now_s();
    st = ll_world_open(&e, "cuda", -1, NULL, 0, &w, &err);
    report("cuda_needs_rendezvous", st && strstr(err.msg, "--rendezvous DIR") && now_s() - t0 < 1.0,
           st ? err.msg : "ok (unexpected)");

    /* 5. CUDA ranks with a rendezvous directory but no NCCL module */
    char dir[] = "/tmp/ll-world-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    st = ll_world_open(&e, "cuda", -1, dir, 0, &w, &err);
    report("cuda_without_nccl_module", st && strstr(err.msg, "/nonexistent-ll-modules/liblogitlens_nccl.so"),
           st ? err.msg : "ok (unexpected)");

    /* 6. the NCCL module, rank 1 of 2 with nobody else: without a GPU the CUDA set-up fails, with one the
     * wait for rank 0's id times out; either way one line within the timeout, and the abort mark is left */
    if (nccl_dir) {
        setenv(LL_MODULE_DIR_ENV, nccl_dir, 1);
        fake_srun(1, "102");
        st = ll_rank_env_detect(&e, &err);
        t0 = now_s();
        if (!st) st = ll_world_open(&e, "cuda", 0, dir, 2.0, &w, &err);
        double dt = now_s() - t0;
        int marked = ll_rendezvous_aborted(dir, "102.0", NULL, 0);
        snprintf(detail, sizeof detail, "%.1f s, abort mark %s: %s", dt, marked ? "left" : "missing",
                 st ? err.msg : "ok (unexpected)");
        report("nccl_rank_fails_cleanly", st && dt < 20.0 && marked && strstr(err.msg, "nccl") &&
                                              !strchr(err.msg, '\n'),
               detail);
    } else {
        report("nccl_rank_fails_cleanly", 1, "skipped (no NCCL module built)");
    }

    /* 7. the MPI module in a process no launcher started: MPI comes up as a singleton (world 1) while the
     * environment says 2: a mismatch error naming both (last: MPI cannot be started twice in a process) */
    if (mpi_dir) {
        setenv(LL_MODULE_DIR_ENV, mpi_dir, 1);
        clear_launcher(); /* mpirun's rank variables alone, without the ones MPI_Init joins a job by */
        setenv("OMPI_COMM_WORLD_RANK", "1", 1);
        setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
        st = ll_rank_env_detect(&e, &err);
        if (!st) st = ll_world_open(&e, "cpu", -1, NULL, 0, &w, &err);
        report("mpi_world_mismatch", st && strstr(err.msg, "rank 0 of 1") && strstr(err.msg, "rank 1 of 2") &&
                                         !w.comm,
               st ? err.msg : "ok (unexpected)");
    } else {
        report("mpi_world_mismatch", 1, "skipped (no MPI module built)");
    }

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_world_open: could not remove %s\n", dir);
    printf("test_world_open: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
