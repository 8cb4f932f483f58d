/* test_rank_env.c: ll_rank_env_detect over a table of launcher environments (set with setenv in this
 * process; every variable the detection reads is cleared before each case). One line per case. */
#include "ll_ranks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every variable host/dist/ranks.c reads. */
static const char *const k_vars[] = {
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
    "OMPI_MCA_ess_base_jobid", "PMIX_RANK", "PMIX_NAMESPACE", "PMI_RANK", "PMI_SIZE", "PMI_JOBID",
    "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_STEP_NUM_TASKS",
    "SLURM_LOCALID", "SLURM_NODEID", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE",
    "SLURM_JOB_ID", "SLURM_JOBID", "SLURM_STEP_ID", "SLURM_STEPID", "LOGITLENS_JOB_ID",
};

typedef struct rank_case {
    const char *name;
    const char *env[16]; /* "VAR=value", NULL-terminated */
    /* expected on success (error == NULL) */
    int rank, world, local_rank, local_world, local_known, mpi_capable;
    const char *launcher, *job_id;
    /* expected on failure: every '|'-separated piece must occur in the message */
    const char *error;
} rank_case;

static const rank_case k_cases[] = {
    {"no_launcher", {NULL}, 0, 1, 0, 1, 1, 0, "none", "local", NULL},
    {"ompi_mpirun",
     {"OMPI_COMM_WORLD_RANK=2", "OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_LOCAL_RANK=0", "OMPI_COMM_WORLD_LOCAL_SIZE=2",
      "PMIX_RANK=2", "PMIX_NAMESPACE=1675689985", "OMPI_MCA_ess_base_jobid=1675689985", NULL},
     2, 4, 0, 2, 1, 1, "mpirun", "ompi-1675689985", NULL},
    {"ompi_without_local",
     {"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "OMPI_MCA_ess_base_jobid=42", NULL},
     1, 2, 1, 2, 0, 1, "mpirun", "ompi-42", NULL},
    {"mpirun_inside_sbatch_prefers_mpi",
     {"OMPI_COMM_WORLD_RANK=3", "OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_LOCAL_RANK=1", "OMPI_COMM_WORLD_LOCAL_SIZE=2",
      "SLURM_PROCID=0", "SLURM_NTASKS=8", "SLURM_LOCALID=0", "SLURM_JOB_ID=55", "SLURM_TASKS_PER_NODE=4(x2)",
      "PMIX_NAMESPACE=prterun-host-12@1", NULL},
     3, 4, 1, 2, 1, 1, "mpirun", "ompi-prterun-host-12_1", NULL},
    {"srun_step",
     {"SLURM_PROCID=5", "SLURM_STEP_NUM_TASKS=8", "SLURM_NTASKS=8", "SLURM_LOCALID=1", "SLURM_NODEID=1",
      "SLURM_STEP_TASKS_PER_NODE=4(x2)", "SLURM_JOB_ID=777", "SLURM_STEP_ID=3", NULL},
     5, 8, 1, 4, 1, 0, "srun", "777.3", NULL},
    {"srun_pmix_serves_mpi",
     {"SLURM_PROCID=1", "SLURM_STEP_NUM_TASKS=2", "SLURM_LOCALID=1", "SLURM_STEP_TASKS_PER_NODE=2", "SLURM_JOB_ID=8",
      "SLURM_STEP_ID=0", "PMIX_RANK=1", NULL},
     1, 2, 1, 2, 1, 1, "srun", "8.0", NULL},
    {"srun_uneven_nodes",
     {"SLURM_PROCID=3", "SLURM_NTASKS=4", "SLURM_STEP_ID=0", "SLURM_LOCALID=0", "SLURM_NODEID=1",
      "SLURM_TASKS_PER_NODE=3,1", "SLURM_JOB_ID=9", NULL},
     3, 4, 0, 1, 1, 0, "srun", "9.0", NULL},
    {"srun_ntasks_per_node",
     {"SLURM_PROCID=6", "SLURM_STEP_NUM_TASKS=8", "SLURM_LOCALID=2", "SLURM_NTASKS_PER_NODE=4", "SLURM_JOB_ID=10",
      "SLURM_STEP_ID=1", NULL},
     6, 8, 2, 4, 1, 0, "srun", "10.1", NULL},
    {"srun_no_local_info",
     {"SLURM_PROCID=1", "SLURM_STEP_NUM_TASKS=2", "SLURM_JOB_ID=11", NULL}, 1, 2, 1, 2, 0, 0, "srun", "11", NULL},
    {"sbatch_script_is_one_rank",
     {"SLURM_PROCID=0", "SLURM_NTASKS=4", "SLURM_LOCALID=0", "SLURM_JOB_ID=12", "SLURM_TASKS_PER_NODE=4", NULL},
     0, 1, 0, 1, 1, 0, "none", "local", NULL},
    {"batch_step_id_is_one_rank",
     {"SLURM_PROCID=0", "SLURM_NTASKS=4", "SLURM_STEP_ID=4294967291", "SLURM_JOB_ID=13", NULL},
     0, 1, 0, 1, 1, 0, "none", "local", NULL},
    {"pmi_hydra",
     {"PMI_RANK=1", "PMI_SIZE=3", "MPI_LOCALRANKID=1", "MPI_LOCALNRANKS=3", "PMI_JOBID=kvs_77", NULL},
     1, 3, 1, 3, 1, 1, "mpirun", "pmi-kvs_77", NULL},
    {"own_job_id",
     {"SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=2", "SLURM_JOB_ID=14", "LOGITLENS_JOB_ID=my.job-1", NULL},
     0, 2, 0, 2, 0, 0, "srun", "my.job-1", NULL},
    {"empty_value_is_unset", {"OMPI_COMM_WORLD_RANK=", "OMPI_COMM_WORLD_SIZE=", NULL}, 0, 1, 0, 1, 1, 0, "none", "local",
     NULL},
    /* errors */
    {"rank_not_below_size", {"OMPI_COMM_WORLD_RANK=4", "OMPI_COMM_WORLD_SIZE=4", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL,
     "OMPI_COMM_WORLD_RANK=4|OMPI_COMM_WORLD_SIZE=4"},
    {"rank_not_a_number", {"OMPI_COMM_WORLD_RANK=x1", "OMPI_COMM_WORLD_SIZE=4", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL,
     "OMPI_COMM_WORLD_RANK='x1'|not an integer"},
    {"rank_trailing_garbage", {"PMI_RANK=1", "PMI_SIZE=4x", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL, "PMI_SIZE='4x'"},
    {"size_zero", {"SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=0", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL,
     "SLURM_STEP_NUM_TASKS='0'"},
    {"size_huge", {"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=99999999999", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL,
     "OMPI_COMM_WORLD_SIZE='99999999999'"},
    {"rank_without_size", {"OMPI_COMM_WORLD_RANK=1", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL,
     "OMPI_COMM_WORLD_RANK is set ('1')|OMPI_COMM_WORLD_SIZE is not"},
    {"local_rank_not_below_local_size",
     {"SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=4", "SLURM_LOCALID=2", "SLURM_STEP_TASKS_PER_NODE=2(x2)",
      "SLURM_NODEID=0", NULL},
     0, 0, 0, 0, 0, 0, NULL, NULL, "SLURM_LOCALID=2|SLURM_STEP_TASKS_PER_NODE=2(x2)"},
    {"bad_task_list", {"SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=4", "SLURM_LOCALID=0", "SLURM_STEP_TASKS_PER_NODE=2(x", NULL},
     0, 0, 0, 0, 0, 0, NULL, NULL, "SLURM_STEP_TASKS_PER_NODE='2(x'|Slurm task list"},
    {"task_list_node_missing",
     {"SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=4", "SLURM_LOCALID=0", "SLURM_STEP_TASKS_PER_NODE=2(x2)", "SLURM_NODEID=5",
      NULL},
     0, 0, 0, 0, 0, 0, NULL, NULL, "SLURM_NODEID is 5"},
    {"task_list_uneven_without_node",
     {"SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=4", "SLURM_LOCALID=0", "SLURM_STEP_TASKS_PER_NODE=3,1", NULL},
     0, 0, 0, 0, 0, 0, NULL, NULL, "SLURM_STEP_TASKS_PER_NODE='3,1'|SLURM_NODEID"},
    {"local_world_above_world",
     {"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=0", "OMPI_COMM_WORLD_LOCAL_SIZE=3",
      NULL},
     0, 0, 0, 0, 0, 0, NULL, NULL, "3 ranks on this node but 2 in the job"},
    {"pmix_rank_without_size", {"PMIX_RANK=3", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL, "PMIX_RANK='3'|no world size"},
    {"pmi_disagrees_with_slurm", {"SLURM_PROCID=1", "SLURM_STEP_NUM_TASKS=2", "PMI_RANK=0", NULL}, 0, 0, 0, 0, 0, 0,
     NULL, NULL, "PMI_RANK=0 disagrees with SLURM_PROCID=1"},
    {"pmix_disagrees_with_ompi",
     {"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "PMIX_RANK=0", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL,
     "PMIX_RANK=0 disagrees with OMPI_COMM_WORLD_RANK=1"},
    {"srun_without_size", {"SLURM_PROCID=0", "SLURM_STEP_ID=2", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL,
     "SLURM_PROCID='0'|SLURM_NTASKS"},
    {"bad_own_job_id", {"LOGITLENS_JOB_ID=a/b", NULL}, 0, 0, 0, 0, 0, 0, NULL, NULL, "LOGITLENS_JOB_ID='a/b'"},
};

static int contains_all(const char *msg, const char *pieces) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", pieces);
    for (char *save = NULL, *p = strtok_r(buf, "|", &save); p; p = strtok_r(NULL, "|", &save))
        if (!strstr(msg, p)) return 0;
    return 1;
}

int main(void) {
    int pass = 0, fail = 0;
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) {
        const rank_case *c = &k_cases[i];
        for (size_t v = 0; v < sizeof k_vars / sizeof *k_vars; v++) unsetenv(k_vars[v]);
        for (int j = 0; c->env[j]; j++) {
            char kv[256];
            snprintf(kv, sizeof kv, "%s", c->env[j]);
            char *eq = strchr(kv, '=');
            *eq = 0;
            setenv(kv, eq + 1, 1);
        }
        ll_rank_env e;
        ll_err err = {{0}};
        ll_status st = ll_rank_env_detect(&e, &err);
        char got[LL_ERR_MSG_MAX + 400];
        int ok;
        if (c->error) {
            ok = st != LL_OK && contains_all(err.msg, c->error) && !strchr(err.msg, '\n');
            snprintf(got, sizeof got, "%s", st ? err.msg : "succeeded (expected an error)");
        } else {
            ok = st == LL_OK && e.rank == c->rank && e.world == c->world && e.local_rank == c->local_rank &&
                 e.local_world == c->local_world && e.local_known == c->local_known && e.mpi_capable == c->mpi_capable &&
                 !strcmp(e.launcher, c->launcher) && !strcmp(e.job_id, c->job_id);
            if (st) snprintf(got, sizeof got, "%s", err.msg);
            else
                snprintf(got, sizeof got, "rank %d/%d local %d/%d known %d mpi %d launcher %s job %s (%s)", e.rank, e.world,
                         e.local_rank, e.local_world, e.local_known, e.mpi_capable, e.launcher, e.job_id, e.source);
        }
        printf("%s %s: %s\n", ok ? "PASS" : "FAIL", c->name, got);
        if (ok) pass++;
        else fail++;
    }
    printf("test_rank_env: %d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}
