/* cli.h - the detloss command's subcommands (one cmd_<name>.c each). */
#ifndef DETLOSS_CLI_H
#define DETLOSS_CLI_H

#include <stddef.h>

#include "detloss/detloss.h"

/* Exit statuses (documented in --help and the README). */
#define DL_EXIT_OK 0
#define DL_EXIT_RUNTIME 1 /* runtime failure: out of memory, write error */
#define DL_EXIT_INPUT 2   /* bad input or usage */

int dl_cmd_compute(int argc, char **argv);
int dl_cmd_anchors(int argc, char **argv);
int dl_cmd_eval(int argc, char **argv);
int dl_cmd_bench(int argc, char **argv);

/* Reads a whole file (or standard input for "-") into a malloc'ed,
 * NUL-terminated buffer. At most max_bytes. Returns NULL and prints
 * "detloss: <path>: <reason>" on failure; *status gets the exit status. */
char *dl_cli_read_input(const char *path, size_t max_bytes, size_t *len, int *status);

/* Prints "detloss: <where>: <msg>" on stderr and returns the exit status for st. */
int dl_cli_report(const detloss_error *err, detloss_status st);

/* Parses a non-negative thread count; returns -1 when invalid. */
int dl_cli_parse_threads(const char *s);

#endif /* DETLOSS_CLI_H */
