/* cli.h - the detloss command's subcommands (one cmd_<name>.c each). */
#ifndef DETLOSS_CLI_H
#define DETLOSS_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "detloss/detloss.h"
#include "detloss/detloss_json.h"
#include "json/jwrite.h"

/* Exit statuses (documented in --help and the README). */
#define DL_EXIT_OK 0
#define DL_EXIT_RUNTIME 1 /* I/O or system failure: out of memory, a read or write error */
#define DL_EXIT_INPUT 2   /* bad input or usage (a missing input file, any JSON fault) */

/* The exit-status paragraph every --help ends with. */
#define DL_EXIT_HELP                                                                               \
  "exit status: 0 success; 1 I/O or system failure (out of memory, an input that\n"                \
  "             exists but cannot be read, a failed write of standard output or\n"                 \
  "             of any output file); 2 bad input or usage (a missing or malformed\n"               \
  "             input, a value out of range, a bad option). Errors are one line on\n"              \
  "             standard error, \"detloss: <where>: <message>\"; stdout stays empty.\n"

int dl_cmd_compute(int argc, char **argv);
int dl_cmd_anchors(int argc, char **argv);
int dl_cmd_eval(int argc, char **argv);
int dl_cmd_bench(int argc, char **argv);
int dl_cmd_fit(int argc, char **argv);

/* Opens path for reading ("-": stdin); NULL after printing "cannot open" (status 2 for a
 * name that names nothing, else 1). */
FILE *dl_cli_open_input(const char *path, int *status);
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

/* One output file of a command, complete in memory. */
typedef struct dl_cli_output {
  const char *path;
  const char *buf;
  size_t len;
} dl_cli_output;

/* Writes every output or replaces none. A regular file (or a new name) gets a
 * temporary file beside it, renamed over it only after every output has been
 * written; a symbolic link is followed and its target replaced (the link
 * stays); an existing file keeps its mode, a new one gets 0666 & ~umask; a
 * FIFO, a device or a /dev/ or /proc/ name (/dev/stdout) is written in place.
 * On failure prints "detloss: <path>: cannot write|write error: <reason>",
 * removes the temporary files and returns DL_EXIT_RUNTIME; else DL_EXIT_OK. */
int dl_cli_write_outputs(const dl_cli_output *outs, size_t n);
/* The same for one output. */
int dl_cli_write_atomic(const char *path, const char *buf, size_t len);
/* 1 if the two output names lead to the same file (after symbolic links). */
int dl_cli_same_output(const char *a, const char *b);
/* The checks of a command's --plot (SVG only: a name with another extension is
 * refused) and -o outputs (not the same file), either may be NULL; prints the
 * error as "detloss: <cmd>: ..." and returns DL_EXIT_INPUT, else DL_EXIT_OK. */
int dl_cli_check_plot_output(const char *cmd, const char *plot, const char *out);

/* Writes buf to standard output and flushes it; on failure prints
 * "detloss: stdout: write error: <reason>" and returns DL_EXIT_RUNTIME. */
int dl_cli_write_stdout(const char *buf, size_t len);
/* At exit: flushes and closes standard output. A failure (a full disk, a
 * closed descriptor) turns a success rc into DL_EXIT_RUNTIME with the same
 * message; any other rc is returned as it is. */
int dl_cli_close_stdout(int rc);

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

/* The search order, for --help texts and the README. */
#define DL_CLI_DATA_DIRS_HELP                                                                      \
  "CONFIG is a file (a name with a '/' or ending in .json, relative to the\n"                      \
  "current directory) or a preset name: NAME is configs/NAME.json in the first\n"                  \
  "data directory that has it: $DETLOSS_DATA_DIR, then the installed one next\n"                   \
  "to this program (<prefix>/bin/../share/detloss), then the current directory.\n"                 \
  "Relative file names in a config (\"anchors\", \"dataset\") are looked up next\n"                \
  "to it (anchors: ../anchors/ first), then in each data directory (anchors/ and\n"                \
  "data/ first), then in the current directory.\n"

#define DL_PATH_CAP 4096
#define DL_DATA_DIRS_MAX 3

/* The data directories that exist, in search order (see presets.c): root[]
 * holds each one, search[] is the NULL-terminated list for
 * detloss_config_load(): each root, its data/ subdirectory, then ".". */
typedef struct dl_data_dirs {
  char root[DL_DATA_DIRS_MAX][DL_PATH_CAP];
  char data[DL_DATA_DIRS_MAX][DL_PATH_CAP];
  size_t num_roots, num_search;
  const char *search[2 * DL_DATA_DIRS_MAX + 2];
} dl_data_dirs;

void dl_cli_data_dirs(dl_data_dirs *d);

/* 1 when a CONFIG argument is a preset name: not empty, not "-", no '/', no
 * ".json" ending. Anything else is a file name. */
int dl_cli_is_preset_name(const char *arg);

/* The file a CONFIG argument names: a file name as given; a preset name NAME
 * as <dir>/configs/NAME.json of the first data directory that has it, then
 * ./configs/NAME.json. An unknown preset prints one line (a did-you-mean and
 * the presets found) and returns DL_EXIT_INPUT; out (cap bytes) is then
 * unspecified. */
int dl_cli_config_path(const char *arg, const dl_data_dirs *d, char *out, size_t cap);

/* plot_util.c: what eval and fit both draw. */

/* A progress bar on stderr: "detloss LABEL [####....] 42% 10/24 UNIT", drawn
 * only once the run has taken a second (the clock starts at _start), erased at
 * the end. Pass dl_cli_progress_cb and the struct as an options' progress
 * callback and user pointer, when stderr is a terminal. */
typedef struct dl_cli_progress {
  struct timespec t0;
  int drawn;
  const char *label, *unit;
} dl_cli_progress;
void dl_cli_progress_start(dl_cli_progress *p, const char *label, const char *unit);
void dl_cli_progress_cb(void *user, size_t done, size_t total);
void dl_cli_progress_clear(dl_cli_progress *p);

/* Escapes s for SVG text, cut to at most max characters ("..." appended;
 * SIZE_MAX: no cut). Characters, not bytes: a cut never splits a UTF-8
 * sequence. */
void dl_cli_svg_escape(dlj_buf *b, const char *s, size_t max);

/* The config's anchor shapes (w, h) at network scale, with their level (0 for
 * an explicit anchor or shape list): *wh [n][2] and *level [n], malloc'd, the
 * caller frees. Returns DL_EXIT_OK or DL_EXIT_RUNTIME (out of memory). */
int dl_cli_anchor_shapes(const detloss_config *cfg, float **wh, size_t *n, size_t **level);

#endif /* DETLOSS_CLI_H */
