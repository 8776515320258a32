/* main.c - the detloss command: dispatch to subcommands. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "json/jread.h"

/* The subcommands: name, one-line summary, entry point (argv[0] is the name).
 * Each lives in its own cmd_<name>.c and prints its own --help. */
typedef struct dl_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} dl_command;

static const dl_command COMMANDS[] = {
    {"compute", "run JSON cases of the compute contract (FILE|-)", dl_cmd_compute},
    {"bench", "time the standard workloads (see bench/compare_torchvision.py)", dl_cmd_bench},
    /* @@commands: one line per subcommand */
    {"anchors", "show a config's anchor set, write it as JSON (-o)", dl_cmd_anchors},
    {"eval", "evaluate a config's anchors on a data set of gt boxes", dl_cmd_eval},
    {"fit", "fit anchors to a data set (kmeans, evolve, levels), report before/after", dl_cmd_fit},
};
#define NUM_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
  fputs(
      "usage: detloss <command> [options] [arguments]\n"
      "\n"
      "Anchor matching, sampling, box coding and detection losses with gradients.\n"
      "\n"
      "commands:\n",
      f);
  for (size_t k = 0; k < NUM_COMMANDS; k++)
    fprintf(f, "  %-10s %s\n", COMMANDS[k].name, COMMANDS[k].summary);
  fputs(
      "  help [COMMAND]  this text, or a command's help (same as COMMAND --help)\n"
      "\n"
      "options:\n"
      "  -h, --help     show this help and exit\n"
      "  -V, --version  print the version and exit\n"
      "\n"
      "\n" DL_EXIT_HELP,
      f);
}

static const dl_command *find_command(const char *name) {
  for (size_t k = 0; k < NUM_COMMANDS; k++)
    if (strcmp(COMMANDS[k].name, name) == 0) return &COMMANDS[k];
  return NULL;
}

FILE *dl_cli_open_input(const char *path, int *status) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    int e = errno;
    fprintf(stderr, "detloss: %s: cannot open: %s\n", path, strerror(e));
    /* a name that names nothing is bad input; an existing file we may not read is not */
    *status = e == ENOENT || e == ENOTDIR ? DL_EXIT_INPUT : DL_EXIT_RUNTIME;
    return NULL;
  }
  *status = DL_EXIT_OK;
  return f;
}

char *dl_cli_read_input(const char *path, size_t max_bytes, size_t *len, int *status) {
  FILE *f = dl_cli_open_input(path, status);
  if (!f) return NULL;
  char *text = NULL;
  detloss_error err;
  detloss_status st = dlj_read_stream(f, path, max_bytes, &text, len, &err);
  if (f != stdin) fclose(f);
  if (st != DETLOSS_OK) {
    fprintf(stderr, "detloss: %s: %s%s\n", err.where, err.msg, dl_cli_limit_hint(err.msg));
    *status = st == DETLOSS_ERR_NOMEM || st == DETLOSS_ERR_IO ? DL_EXIT_RUNTIME : DL_EXIT_INPUT;
    return NULL;
  }
  *status = DL_EXIT_OK;
  return text;
}

int dl_cli_report(const detloss_error *err, detloss_status st) {
  const char *hint = dl_cli_limit_hint(err->msg);
  if (err->where[0])
    fprintf(stderr, "detloss: %s: %s%s\n", err->where, err->msg, hint);
  else
    fprintf(stderr, "detloss: %s%s\n", err->msg, hint);
  return (st == DETLOSS_ERR_NOMEM || st == DETLOSS_ERR_IO) ? DL_EXIT_RUNTIME : DL_EXIT_INPUT;
}

int dl_cli_parse_threads(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > 4096) return -1;
  return (int)v;
}

static int run(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return DL_EXIT_INPUT;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
    usage(stdout);
    return DL_EXIT_OK;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    printf("detloss %s (%s)\n", detloss_version(),
           detloss_has_openmp() ? "OpenMP" : "serial build");
    return DL_EXIT_OK;
  }
  if (strcmp(cmd, "help") == 0) {
    if (argc < 3) {
      usage(stdout);
      return DL_EXIT_OK;
    }
    const dl_command *c = find_command(argv[2]);
    if (!c) {
      fprintf(stderr, "detloss: help: unknown command '%s'\n", argv[2]);
      return DL_EXIT_INPUT;
    }
    char *sub[] = {argv[2], (char *)"--help", NULL};
    return c->run(2, sub);
  }
  const dl_command *c = find_command(cmd);
  if (c) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "detloss: unknown command '%s' (see detloss --help)\n", cmd);
  return DL_EXIT_INPUT;
}

int main(int argc, char **argv) {
  /* Standard output is checked once at the end: a failed write of it (a full
   * disk, /dev/full, a closed descriptor) is exit 1, never a silent 0. */
  return dl_cli_close_stdout(run(argc, argv));
}
