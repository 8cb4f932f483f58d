/* sweep_plan.h: the parts of `sweep plan` in other files: the job-array script (sweep_sbatch.c). */
#ifndef LL_SWEEP_PLAN_H
#define LL_SWEEP_PLAN_H

#include "ll_sweep.h"
#include "sweep_int.h"

/* Writes OUT/sweep.sbatch for manifest m with the resources of s.slurm. */
ll_status sw_sbatch_write(const ll_sweep *s, const sw_manifest *m, ll_err *err);

#endif
