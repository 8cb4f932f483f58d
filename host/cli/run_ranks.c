/* run_ranks.c: the parts of a run that concern its ranks (docs/scale-out.md): the backend on each rank's
 * device, the world communicator opened before anything else, small exchanges of host values between ranks
 * (devices, the output's temporary name, checkpoint requests), and how a failing rank ends them all. */
#include "cli.h"
#include "run_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The backend this rank computes on: --device, else the rank's local index on its node. The CPU threads of
 * several ranks on one node share its cores. */
ll_status run_backend(run_ctx *r, ll_err *err) {
    ll_run_opts *o = r->o;
    int threads = o->threads;
    if (threads == 0 && r->env.local_world > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > r->env.local_world ? (int)(cores / r->env.local_world) : 1;
    }
    ll_backend_opts bo = {.threads = threads, .device = o->device >= 0 ? o->device : r->env.local_rank,
                          .allow_tf32 = o->tf32};
    return ll_backend_open(o->backend, &bo, &r->be, err);
}

/* all[i * bytes ..] = rank i's mine[0 .. bytes), host memory, through the backend (the communicator works on
 * backend memory). One rank: a copy. */
ll_status run_allgather_host(run_ctx *r, const void *mine, size_t bytes, void *all, ll_err *err) {
    if (r->env.world == 1 || !r->world_open) {
        memcpy(all, mine, bytes);
        return LL_OK;
    }
    ll_backend *be = r->be;
    ll_status rc;
    if (bytes > r->xg_bytes) { /* kept between calls (one a batch): grown when a larger exchange comes */
        if (r->xg_send) be->ops->dealloc(be, r->xg_send);
        if (r->xg_recv) be->ops->dealloc(be, r->xg_recv);
        r->xg_send = r->xg_recv = NULL;
        r->xg_bytes = 0;
        if ((rc = be->ops->alloc(be, bytes, &r->xg_send)) ||
            (rc = be->ops->alloc(be, bytes * (size_t)r->env.world, &r->xg_recv)))
            return ll_fail(err, rc, "%s", be->err.msg);
        r->xg_bytes = bytes;
    }
    if ((rc = be->ops->upload(be, r->xg_send, mine, bytes))) return ll_fail(err, rc, "%s", be->err.msg);
    if (r->wc->allgather(r->wc, be, r->xg_recv, r->xg_send, bytes))
        return ll_fail(err, LL_ERR_BACKEND, "all-gather over the ranks: %s", r->wc->err.msg);
    if ((rc = be->ops->download(be, all, r->xg_recv, bytes * (size_t)r->env.world)))
        return ll_fail(err, rc, "%s", be->err.msg);
    return LL_OK;
}

/* Every rank's device, "cuda:1 on node7" (an array of world strings in one allocation). */
ll_status run_gather_devices(run_ctx *r, char ***out, ll_err *err) {
    enum { W = 96 };
    const int n = r->env.world;
    char me[W] = {0}, host[64] = "";
    gethostname(host, sizeof host - 1);
    int dev = r->o->device >= 0 ? r->o->device : r->env.local_rank;
    if (!strcmp(r->be->ops->name, "cpu")) snprintf(me, W, "cpu on %s", host);
    else snprintf(me, W, "%s:%d on %s", r->be->ops->name, dev, host);
    char **v = calloc((size_t)n, sizeof *v + W);
    if (!v) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    char *txt = (char *)(v + n);
    ll_status rc = run_allgather_host(r, me, W, txt, err);
    if (rc) {
        free(v);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        v[i] = txt + (size_t)i * W;
        v[i][W - 1] = 0;
    }
    *out = v;
    return LL_OK;
}

/* Every rank learns rank 0's temporary output file, so that whichever rank fails or is ended first removes
 * it (where it sees the same file system): the MPI library may end rank 0 itself without a signal. */
ll_status run_share_tmp_path(run_ctx *r, ll_err *err) {
    if (r->env.world < 2) return LL_OK;
    char mine[4096] = {0};
    const char *tmp = ll_h5_tmp_path(r->h5);
    if (tmp && strlen(tmp) < sizeof mine) strcpy(mine, tmp);
    char *all = malloc(sizeof mine * (size_t)r->env.world);
    if (!all) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status rc = run_allgather_host(r, mine, sizeof mine, all, err);
    if (!rc) {
        all[sizeof mine - 1] = 0;
        run_sig_ranks_output(all); /* rank 0's */
    }
    free(all);
    return rc;
}

/* Whether a checkpoint was asked for (SIGUSR1; with several ranks, on any rank: every rank stops after the
 * same batch). */
ll_status run_checkpoint_requested(run_ctx *r, int *stop, ll_err *err) {
    *stop = run_sig_checkpoint();
    if (r->env.world == 1) return LL_OK;
    int64_t mine = run_sig_checkpoint(), *all = malloc(sizeof mine * (size_t)r->env.world);
    if (!all) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status rc = run_allgather_host(r, &mine, sizeof mine, all, err);
    for (int i = 0; !rc && i < r->env.world; i++) *stop |= all[i] != 0;
    free(all);
    return rc;
}

/* Opens the ranks of a multi-process launch before anything else, so that every later failure of any rank
 * can end all of them: the backend on this rank's device, then the world communicator. */
ll_status run_ranks(run_ctx *r, ll_err *err) {
    ll_run_opts *o = r->o;
    ll_status rc;
    if ((rc = ll_rank_env_detect(&r->env, err))) return rc;
    const int want = o->tp * o->pp;
    if (r->env.world != want) {
        if (r->env.world == 1)
            return ll_fail(err, LL_ERR_USAGE,
                           "--tp %d x --pp %d needs %d ranks but this is one process: launch it with "
                           "`srun -n %d` or `mpirun -np %d` (docs/scale-out.md)",
                           o->tp, o->pp, want, want, want);
        return ll_fail(err, LL_ERR_USAGE, "--tp %d x --pp %d = %d ranks, but %s started %d (rank %d); give --tp and "
                       "--pp whose product is the number of ranks", o->tp, o->pp, want, r->env.launcher,
                       r->env.world, r->env.rank);
    }
    if (r->env.world == 1) return LL_OK;
    if (r->env.rank != 0) o->quiet = 1; /* notes and progress from rank 0 only */
    if ((rc = run_backend(r, err))) return rc;
    int dev = o->device >= 0 ? o->device : r->env.local_rank;
    if ((rc = ll_world_open(&r->env, r->be->ops->name, dev, o->rendezvous, o->comm_timeout, &r->world, err)))
        return rc;
    r->world_open = 1;
    r->wc = r->world.comm;
    const char *chk = getenv("LOGITLENS_DEVICE_CHECK");
    if (chk && !strcmp(chk, "1") && ll_comm_check_wrap(r->world.comm, &r->wc))
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    return LL_OK;
}

/* A failed rank of a multi-rank run ends every rank with one line on stderr: from rank 0 when every rank
 * failed alike (bad input, a split that does not fit the model), since the others wait a moment for rank
 * 0's abort first; else from the failing rank. Then the job is aborted (before the world communicator
 * exists, this rank exits and the launcher ends the others). No output file is left. */
void run_fail_ranks(run_ctx *r, ll_status rc, const ll_err *err) {
    if (r->env.world < 2) return;
    run_sig_remove_output(); /* rank 0's, before anything else */
    if (r->env.rank != 0) sleep(2);
    fprintf(stderr, "logitlens run: rank %d of %d: %s\n", r->env.rank, r->env.world, err->msg);
    fflush(stderr);
    ll_h5_abort(r->h5);
    r->h5 = NULL;
    if (r->world_open) r->wc->abort(r->wc, ll_status_exit_code(rc));
    _exit(ll_status_exit_code(rc));
}
