/* cli.h: the subcommands of the logitlens executable. Each takes the arguments after the command
 * name (argv[0] is the command name) and returns a process exit code (docs/cli.md). */
#ifndef LL_CLI_H
#define LL_CLI_H

int ll_cmd_run(int argc, char **argv);
int ll_cmd_show(int argc, char **argv);
int ll_cmd_inspect(int argc, char **argv);
int ll_cmd_synth(int argc, char **argv);
int ll_cmd_tokenize(int argc, char **argv);
int ll_cmd_plan(int argc, char **argv);
int ll_cmd_sweep(int argc, char **argv);
/* plot: runs logitlens-plot (the Python package\'s drawing command) with the same arguments (cli_plot.c). */
int ll_cmd_plot(int argc, char **argv);

/* The full command line, for the HDF5 `command_line` attribute (set by main). */
extern const char *ll_command_line;

#endif
