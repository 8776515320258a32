/* cli.h - the detloss command's subcommands (one cmd_<name>.c each). */
#ifndef DETLOSS_CLI_H
#define DETLOSS_CLI_H

#include <stddef.h>

#include "detloss/detloss.h"
#include "detloss/detloss_json.h"

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

/* Reports an error loading an input file (config, data set): a file that
 * cannot be read is bad input (exit 2), like any other fault of its content;
 * only running out of memory is a runtime failure (exit 1). */
int dl_cli_load_error(const detloss_error *err, detloss_status st);

/* Writes buf to path through a temporary file in the same directory, renamed
 * over path when complete (nothing half-written). Returns an exit status. */
int dl_cli_write_atomic(const char *path, const char *buf, size_t len);

/* The limits of the JSON layer (detloss_json_limits): the defaults, each
 * replaced by its environment variable when set (DETLOSS_MAX_INPUT_BYTES,
 * DETLOSS_MAX_OUTPUT_NUMBERS, DETLOSS_MAX_ANCHORS, DETLOSS_MAX_IMAGE_SIDE: a
 * whole number >= 1). Returns DL_EXIT_OK, or DL_EXIT_INPUT after printing
 * "detloss: VAR: expected ..." for a bad value. (limits.c) */
int dl_cli_limits(detloss_json_limits *lim);
/* For a message naming "the limit <field> = N": " (set DETLOSS_<FIELD> to
 * raise it)"; "" for any other message. */
const char *dl_cli_limit_hint(const char *msg);

/* Parses a non-negative thread count; returns -1 when invalid. */
int dl_cli_parse_threads(const char *s);

#endif /* DETLOSS_CLI_H */
