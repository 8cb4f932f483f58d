/* ll_comm.h: the tensor-parallel seam of the forward pass.
 *
 * A tensor-parallel rank runs the same forward as one device except for a sum over ranks (all-reduce)
 * of the attention output and of the MLP output; row-parallel biases are added by rank 0 only. At one
 * rank the all-reduce is the identity. Multi-rank communicators (NCCL) plug in here. */
#ifndef LL_COMM_H
#define LL_COMM_H

#include "ll_backend.h"

typedef struct ll_comm ll_comm;
struct ll_comm {
    int rank;  /* this process's rank, 0-based */
    int world; /* number of ranks */
    /* buf[0..n) = sum over ranks of buf[0..n), in place, on backend memory */
    ll_status (*allreduce_sum)(ll_comm *c, ll_backend *be, float *buf, int64_t n);
    void *ctx;
};

/* The one-rank communicator: all-reduce is a no-op. */
void ll_comm_single(ll_comm *c);

#endif
