/* sweep_sbatch.c: OUT/sweep.sbatch, the job array of a sweep. Array task i runs manifest task i, whose
 * command is OUT/tasks/i.args (one argument a line; under srun when the model has tp x pp > 1 ranks). The
 * shell runs it in the background so that it can pass SLURM's USR1 on (--signal=B:USR1@120: two minutes
 * before the time limit, or `scancel --signal=USR1 --batch`); the run then stops at its next committed batch
 * and exits 75, and the shell requeues the array task, which resumes from the run's journal. */
#include "sweep_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The batch shell's part after the #SBATCH lines; $LL, $OUT are set before it. */
static const char script_body[] =
    "TASK=${SLURM_ARRAY_TASK_ID:?submit this script with sbatch: it is a job array}\n"
    "LOG=\"$OUT/logs/task-$TASK.log\"\n"
    "mapfile -t CMD < \"$OUT/tasks/$TASK.args\" || exit 1\n"
    "\n"
    "\"$LL\" sweep record \"$OUT\" \"$TASK\" start || exit 1\n"
    "echo \"== $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): job ${SLURM_JOB_ID:-?} (array ${SLURM_ARRAY_JOB_ID:-?}_$TASK),"
    " restart ${SLURM_RESTART_COUNT:-0}\" >> \"$LOG\"\n"
    "\"${CMD[@]}\" >> \"$LOG\" 2>&1 &\n"
    "PID=$!\n"
    "# SLURM signals this shell only (B:); the task gets them from here\n"
    "trap 'kill -USR1 \"$PID\" 2>/dev/null' USR1\n"
    "trap 'kill -TERM \"$PID\" 2>/dev/null' TERM\n"
    "while :; do\n"
    "    wait \"$PID\"; RC=$?\n"
    "    [ \"$RC\" -le 128 ] && break\n"
    "    # a trapped signal interrupted wait while the task runs on: wait again\n"
    "    kill -0 \"$PID\" 2>/dev/null && continue\n"
    "    # the task ended meanwhile: its own status (127 when wait already gave it)\n"
    "    wait \"$PID\"; R2=$?\n"
    "    [ \"$R2\" -ne 127 ] && RC=$R2\n"
    "    break\n"
    "done\n"
    "trap - USR1 TERM\n"
    "\"$LL\" sweep record \"$OUT\" \"$TASK\" exit \"$RC\"\n"
    "# 75: stopped at a checkpoint; 138: ended by the USR1 itself, before the run could take it (loading)\n"
    "if [ \"$RC\" -eq 75 ] || [ \"$RC\" -eq 138 ]; then\n"
    "    # back into the queue; the next start resumes from the journal\n"
    "    scontrol requeue \"$SLURM_JOB_ID\"\n"
    "    exit 0\n"
    "fi\n"
    "exit \"$RC\"\n";

/* 'text' quoted for the shell. */
static void put_quoted(FILE *f, const char *text) {
    char *argv[1] = {(char *)text};
    char *q = sw_shell_join(argv, 1);
    fputs(q ? q : "''", f);
    free(q);
}

ll_status sw_sbatch_write(const ll_sweep *s, const sw_manifest *m, ll_err *err) {
    char *path = sw_fmt("%s/sweep.sbatch", m->out);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!path || !f) {
        free(path);
        if (f) fclose(f);
        free(text);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    const ll_sweep_slurm *u = &s->slurm;
    int ranks = 1;
    for (int i = 0; i < m->n_models; i++)
        if (m->models[i].ranks > ranks) ranks = m->models[i].ranks;
    const int par = u->max_parallel > 0 && u->max_parallel < m->n_tasks ? u->max_parallel : m->n_tasks;
    fprintf(f, "#!/bin/bash\n");
    fprintf(f, "# The job array of sweep %s, written by `logitlens sweep plan %s` (docs/sweeps.md).\n", m->name,
            m->sweep_file);
    fprintf(f, "# Array task i runs task i of %s/sweep.json: the command in tasks/i.args (one argument a line).\n",
            m->out);
    fprintf(f, "# USR1 (120 s before the time limit, or scancel --signal=USR1 --batch) makes the task stop at a\n"
               "# checkpoint (exit 75); the array task is then requeued and resumes from its journal.\n");
    if (u->job_name) fprintf(f, "#SBATCH --job-name=%s\n", u->job_name);
    else fprintf(f, "#SBATCH --job-name=logitlens-%s\n", m->name);
    fprintf(f, "#SBATCH --array=0-%d%%%d\n", m->n_tasks - 1, par);
    fprintf(f, "#SBATCH --signal=B:USR1@120\n");
    fprintf(f, "#SBATCH --requeue\n");
    fprintf(f, "#SBATCH --open-mode=append\n");
    fprintf(f, "#SBATCH --output=%s/logs/slurm-%%A_%%a.out\n", m->out);
    fprintf(f, "#SBATCH --ntasks=%d\n", ranks);
    if (u->partition) fprintf(f, "#SBATCH --partition=%s\n", u->partition);
    if (u->account) fprintf(f, "#SBATCH --account=%s\n", u->account);
    if (u->qos) fprintf(f, "#SBATCH --qos=%s\n", u->qos);
    if (u->time) fprintf(f, "#SBATCH --time=%s\n", u->time);
    if (u->gpus_per_task) fprintf(f, "#SBATCH --gpus-per-task=%d\n", u->gpus_per_task);
    if (u->cpus_per_task) fprintf(f, "#SBATCH --cpus-per-task=%d\n", u->cpus_per_task);
    if (u->mem) fprintf(f, "#SBATCH --mem=%s\n", u->mem);
    if (u->constraint) fprintf(f, "#SBATCH --constraint=%s\n", u->constraint);
    for (int i = 0; i < u->n_extra; i++) fprintf(f, "#SBATCH %s\n", u->extra[i]);
    fprintf(f, "set -u\n");
    fputs("LL=", f);
    put_quoted(f, m->exe);
    fputs("\nOUT=", f);
    put_quoted(f, m->out);
    fputs("\n", f);
    if (u->n_setup) {
        fprintf(f, "# slurm.setup of the sweep file\n");
        for (int i = 0; i < u->n_setup; i++) fprintf(f, "%s\n", u->setup[i]);
    }
    fputs(script_body, f);
    ll_status rc = LL_OK;
    if (fclose(f)) rc = ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    if (!rc) rc = sw_write_atomic(path, text, len, err);
    free(text);
    free(path);
    return rc;
}
