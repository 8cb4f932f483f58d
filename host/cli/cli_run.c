/* cli_run.c: `logitlens run`: model + prompts in, the lens on every captured point out, to HDF5. The
 * options are parsed by run_options.c and the run is carried out by run_runner.c. */
#include "cli.h"
#include "run.h"

#include <stdio.h>

int ll_cmd_run(int argc, char **argv) {
    ll_run_opts o;
    ll_err err = {{0}};
    int help = 0;
    ll_run_opts_init(&o);
    ll_status rc = ll_run_opts_parse(argc, argv, &o, &help, &err);
    if (help) fputs(ll_run_usage, stdout);
    else if (!rc) rc = ll_run_execute(&o, &err);
    if (rc && err.msg[0]) fprintf(stderr, "logitlens run: %s\n", err.msg);
    ll_run_opts_free(&o);
    return ll_status_exit_code(rc);
}
