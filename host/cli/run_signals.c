/* run_signals.c: how a run answers signals (docs/cli.md): one process stops between layers on SIGINT or
 * SIGTERM and after the batch in flight on SIGUSR1, saying so at once; ranks end at once on SIGINT/SIGTERM
 * (the launcher is ending the job), removing rank 0's unfinished output wherever they see it, and
 * checkpoint together on SIGUSR1. Handlers only set flags, write(2) a line or unlink and _exit. */
#include "run_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted = 0, checkpoint_req = 0;
static int signal_notes; /* say at once that a signal was seen (not with --quiet; rank 0 only) */
static char ranks_tmp_path[4096];

static void say(const char *msg) {
    if (signal_notes) (void)!write(2, msg, strlen(msg));
}
static void on_checkpoint(int sig) {
    (void)sig;
    if (!checkpoint_req) say("logitlens run: SIGUSR1: stopping once the batch in flight is committed\n");
    checkpoint_req = 1;
}
static void on_signal(int sig) {
    if (!interrupted) say("logitlens run: stopping (signal received); the committed batches are kept\n");
    interrupted = sig;
}
/* With several ranks a signal usually means the launcher is ending the job (a rank failed or was killed,
 * or the user stopped mpirun/srun, which kill the ranks soon after): this rank may be blocked in a
 * collective that never completes, so it removes its temporary output at once and exits. */
static void on_signal_ranks(int sig) {
    if (ranks_tmp_path[0]) unlink(ranks_tmp_path);
    _exit(128 + sig);
}
/* The MPI library may also end this process from inside a collective when another rank aborted, through
 * exit() without a signal: the temporary output goes then too. */
static void at_exit_ranks(void) {
    if (ranks_tmp_path[0]) unlink(ranks_tmp_path);
}

int run_sig_interrupted(void) { return (int)interrupted; }
int run_sig_checkpoint(void) { return checkpoint_req != 0; }
const volatile sig_atomic_t *run_sig_cancel_flag(void) { return &interrupted; }

void run_sig_ranks_output(const char *tmp_path) {
    if (strlen(tmp_path) >= sizeof ranks_tmp_path) return;
    strcpy(ranks_tmp_path, tmp_path);
    atexit(at_exit_ranks);
    signal(SIGINT, on_signal_ranks); /* from here to the end, loading included */
    signal(SIGTERM, on_signal_ranks);
}

void run_sig_output_done(void) { ranks_tmp_path[0] = 0; }

void run_sig_remove_output(void) {
    if (ranks_tmp_path[0]) unlink(ranks_tmp_path);
}

/* From the output's creation on, signals stop the run cleanly (the loading included): one process stops
 * between layers (SIGINT/SIGTERM) or after the batch in flight (SIGUSR1); ranks end at once on SIGINT/SIGTERM
 * (run_share_tmp_path installed that) and checkpoint together on SIGUSR1. */
void run_sig_install(const run_ctx *r) {
    if (r->env.world == 1) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
    signal_notes = !r->o->quiet && r->env.rank == 0;
    signal(SIGUSR1, on_checkpoint);
}
