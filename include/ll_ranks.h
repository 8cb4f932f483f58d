/* ll_ranks.h: which rank this process is, and the world communicator of a multi-rank run.
 *
 * ll_rank_env_detect reads the launcher's environment (srun, OpenMPI's mpirun, PMI/PMIx launchers; none:
 * one rank). ll_world_open gives the communicator (include/ll_comm.h) the ranks compute with:
 *   world 1                 the one-rank communicator (no module is loaded);
 *   backend "cpu", world>1  the MPI module, $LOGITLENS_MODULE_DIR/liblogitlens_mpi.so (else next to the
 *                           executable), host memory;
 *   backend "cuda", world>1 the NCCL module, liblogitlens_nccl.so, device memory; its unique id goes over
 *                           the MPI module when the launcher serves MPI (e->mpi_capable) and the module
 *                           loads, else through the rendezvous directory (--rendezvous DIR).
 * Both modules are dlopened, so the executable starts where neither MPI nor CUDA is installed.
 * docs/ranks.md has the variables, the files, the timeouts and what happens when a rank fails. */
#ifndef LL_RANKS_H
#define LL_RANKS_H

#include "ll_comm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LL_JOB_ID_MAX 128
#define LL_WORLD_DEFAULT_TIMEOUT_S 600.0 /* ll_world_open's timeout when given <= 0 */
#define LL_MODULE_DIR_ENV "LOGITLENS_MODULE_DIR" /* directory of the MPI and NCCL modules (default: the executable's) */

typedef struct ll_rank_env {
    int rank;             /* this process's rank in the job, 0 <= rank < world */
    int world;            /* ranks in the job (1 without a launcher) */
    int local_rank;       /* rank among the job's ranks on this node, 0 <= local_rank < local_world */
    int local_world;      /* the job's ranks on this node */
    int local_known;      /* 0: the launcher did not say; local_rank = rank, local_world = world (one node) */
    int mpi_capable;      /* 1: MPI_Init can join this job's ranks (OpenMPI's mpirun; srun with PMI/PMIx) */
    const char *launcher; /* "srun", "mpirun" or "none" (static string) */
    char job_id[LL_JOB_ID_MAX]; /* [A-Za-z0-9._-]: $LOGITLENS_JOB_ID, else SLURM_JOB_ID.SLURM_STEP_ID (srun),
                                   PMIX_NAMESPACE / OMPI_MCA_ess_base_jobid / PMI_JOBID (mpirun), else "local" */
    char source[96];      /* the variables rank and world came from, for messages ("OMPI_COMM_WORLD_RANK/SIZE") */
} ll_rank_env;

/* Fills e from the environment. Preference: OpenMPI's OMPI_COMM_WORLD_* (mpirun, also inside an sbatch
 * allocation), then an srun step (SLURM_PROCID with SLURM_STEP_NUM_TASKS or SLURM_STEP_ID), then
 * PMI_RANK/PMI_SIZE (MPICH/Intel MPI), then none: rank 0 of 1. A Slurm batch script or salloc shell
 * (SLURM_PROCID without a step) is one rank. Malformed or inconsistent values (a rank outside the world,
 * "4x", a PMIX_RANK without a size) fail with one line naming the variable and its value. */
ll_status ll_rank_env_detect(ll_rank_env *e, ll_err *err);

typedef struct ll_world {
    ll_comm *comm;      /* the world communicator: comm->rank == e->rank, comm->world == e->world */
    ll_comm *bootstrap; /* the MPI world communicator the NCCL id went over (open until close), or NULL */
    ll_comm single;     /* storage of the one-rank communicator (comm points here when world == 1) */
    void *mpi_dl;       /* dlopen handle of liblogitlens_mpi.so (RTLD_NODELETE), or NULL */
    void *nccl_dl;      /* dlopen handle of liblogitlens_nccl.so (RTLD_NODELETE), or NULL */
} ll_world;

/* Opens the world communicator for a rank computing on backend ("cpu" or "cuda"). device: the CUDA
 * device of this rank, or < 0 for e->local_rank (cuda only). rendezvous_dir: a directory every rank sees,
 * or NULL (cuda without an MPI launcher needs it). timeout_s: longest wait for the rendezvous, the NCCL
 * setup and any one NCCL op (<= 0: LL_WORLD_DEFAULT_TIMEOUT_S). On failure w is left closed (nothing
 * to free) and err says which file, module or rank and why. */
ll_status ll_world_open(const ll_rank_env *e, const char *backend, int device, const char *rendezvous_dir,
                        double timeout_s, ll_world *w, ll_err *err);

/* Closes w->comm, then the bootstrap communicator (MPI_Finalize), then the modules. NULL-safe; a closed
 * or zeroed w is fine. Every rank calls it (MPI_Finalize is collective). */
void ll_world_close(ll_world *w);

#ifdef __cplusplus
}
#endif
#endif
