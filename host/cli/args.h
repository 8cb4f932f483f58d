/* args.h: small helpers for the subcommands' option parsing ("--name value" and "--name=value"). */
#ifndef LL_ARGS_H
#define LL_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* If argv[*i] is option `name`, stores its value (the next argument, or the text after '='), advances
 * *i past it and returns 1; returns -1 when the value is missing; 0 when argv[*i] is another option. */
int ll_arg_value(int argc, char **argv, int *i, const char *name, const char **val);
/* 1 when argv[i] is exactly the flag `name`. */
int ll_arg_flag(char **argv, int i, const char *name);
/* Parses a whole decimal integer in [lo, hi]; returns 0 on success. */
int ll_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* Parses a comma list of integers in [lo, hi] into a malloc'ed *out (*n items). Returns 0 on success;
 * -1 for an empty or overlong item; -2 for an item that is not an integer in range (copied into bad);
 * -3 when out of memory. *out is NULL after a failure. */
int ll_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t **out, int64_t *n, char *bad, size_t badcap);

#endif
