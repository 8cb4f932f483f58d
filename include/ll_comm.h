/* ll_comm.h: communicators between ranks (processes), for tensor and pipeline parallelism.
 *
 * One process per GPU (CUDA backend: NCCL) or per CPU rank (CPU backend: MPI). Buffers are backend
 * memory of the backend the ranks compute on (host memory for the CPU backend, device memory for CUDA);
 * be is that backend. Every call is blocking for the calling rank: when it returns, buf holds the
 * result (and may be reused). Collectives are called by every rank of the communicator in the same
 * order with the same sizes; send/recv pair with the peer's recv/send of the same size.
 *
 * Implementations: comm_single.c (one rank: all-reduce, all-gather and broadcast copy or do nothing),
 * the MPI module (build/liblogitlens_mpi.so, host/dist/mpi/) and the NCCL module
 * (build/liblogitlens_nccl.so, host/dist/nccl/), both loaded at run time by host/dist/ranks.c, so the
 * executable starts where neither MPI nor CUDA is installed.
 *
 * The MPI communicator also takes be == NULL for plain host memory (the NCCL module's bootstrap uses it).
 *
 * Failure: an op that fails returns non-LL_OK with c->err filled (one line). abort() ends every rank of
 * the job within a bounded time (MPI_Abort; NCCL: ncclCommAbort plus the launcher or the rendezvous
 * directory's abort mark) and does not return. */
#ifndef LL_COMM_H
#define LL_COMM_H

#include "ll_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ll_comm ll_comm;
struct ll_comm {
    int rank;         /* this process's rank within the communicator, 0-based */
    int world;        /* number of ranks in the communicator */
    const char *kind; /* "single", "mpi", "nccl" */
    /* buf[0..n) = sum over ranks of buf[0..n) (float32), in place */
    ll_status (*allreduce_sum)(ll_comm *c, ll_backend *be, float *buf, int64_t n);
    /* recv[i * bytes .. (i + 1) * bytes) = rank i's send[0 .. bytes), for every rank i; recv and send do
     * not overlap */
    ll_status (*allgather)(ll_comm *c, ll_backend *be, void *recv, const void *send, size_t bytes);
    /* buf[0..bytes) = root's buf[0..bytes) on every rank */
    ll_status (*broadcast)(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int root);
    ll_status (*send)(ll_comm *c, ll_backend *be, const void *buf, size_t bytes, int peer);
    ll_status (*recv)(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int peer);
    /* A communicator of the ranks that pass the same color, ordered by key (MPI_Comm_split semantics);
     * every rank of c calls it. The new communicator is closed by the caller before c. */
    ll_status (*split)(ll_comm *c, int color, int key, ll_comm **out);
    /* Ends every rank of the job with exit code `code`; does not return. */
    void (*abort)(ll_comm *c, int code);
    /* Frees c (and, for the world communicator, finalizes the library). NULL-safe through ll_comm_close. */
    void (*close)(ll_comm *c);
    ll_err err;       /* the failing op's message */
    void *ctx;
};

/* The one-rank communicator (static storage: close does nothing). */
void ll_comm_single(ll_comm *c);
static inline void ll_comm_close(ll_comm *c) {
    if (c && c->close) c->close(c);
}

/* LOGITLENS_DEVICE_CHECK=1: a communicator over `inner` that checks every buffer is device memory of the
 * checked CPU backend (host/dist/comm_check.c). Closing it leaves inner open. */
ll_status ll_comm_check_wrap(ll_comm *inner, ll_comm **out);

/* Module entry points (dlsym names), both extern "C":
 *   MPI:  ll_status ll_comm_mpi_init(ll_comm **out, ll_err *err): MPI_Init (thread level FUNNELED) and
 *         the world communicator; buffers are host memory (CPU backend).
 *   NCCL: ll_status ll_comm_nccl_init(const ll_comm_nccl_opts *o, ll_comm **out, ll_err *err). */
#define LL_MPI_MODULE_NAME "liblogitlens_mpi.so"
#define LL_MPI_INIT_SYMBOL "ll_comm_mpi_init"
#define LL_NCCL_MODULE_NAME "liblogitlens_nccl.so"
#define LL_NCCL_INIT_SYMBOL "ll_comm_nccl_init"
typedef ll_status (*ll_comm_mpi_init_fn)(ll_comm **out, ll_err *err);

typedef struct ll_comm_nccl_opts {
    int rank, world;        /* from the launcher's environment (host/dist/ranks.c) */
    int device;             /* CUDA device this rank uses (cudaSetDevice before the NCCL init) */
    ll_comm *bootstrap;     /* an MPI world communicator (host memory) to broadcast the NCCL unique id
                               over, or NULL: then rendezvous_dir is used */
    const char *rendezvous_dir; /* --rendezvous DIR: a directory every rank sees (shared file system) */
    const char *job_id;     /* names the rendezvous files of this job (SLURM_JOB_ID, or "local") */
    double timeout_s;       /* longest wait for the rendezvous or for a collective before giving up */
} ll_comm_nccl_opts;
typedef ll_status (*ll_comm_nccl_init_fn)(const ll_comm_nccl_opts *o, ll_comm **out, ll_err *err);

#ifdef __cplusplus
}
#endif
#endif
