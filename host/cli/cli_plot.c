/* cli_plot.c: `logitlens plot RUN.h5|SWEEPDIR ...`: the pictures are drawn by the Python package (plotly,
 * matplotlib), so this command runs its `logitlens-plot` (found on PATH) with the same arguments; without
 * it, one line says how to install it. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ll_cmd_plot(int argc, char **argv) {
    (void)argc;
    argv[0] = "logitlens-plot";
    execvp("logitlens-plot", argv);
    if (errno == ENOENT)
        fprintf(stderr, "logitlens plot: the logitlens-plot command of the Python package is not on PATH: install "
                        "it with `pip install tools/python[plot]` (docs/python.md)\n");
    else
        fprintf(stderr, "logitlens plot: cannot run logitlens-plot: %s\n", strerror(errno));
    return 4;
}
