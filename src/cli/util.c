/* util.c - helpers shared by the subcommands (declared in cli.h). */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fchmod, umask */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

/* Reports an error loading an input file: a file that cannot be read is bad
 * input (exit 2), like any other fault of the config or data set; only
 * running out of memory is a runtime failure. */
int dl_cli_load_error(const detloss_error *err, detloss_status st) {
  const char *hint = dl_cli_limit_hint(err->msg);
  if (err->where[0]) fprintf(stderr, "detloss: %s: %s%s\n", err->where, err->msg, hint);
  else fprintf(stderr, "detloss: %s%s\n", err->msg, hint);
  return st == DETLOSS_ERR_NOMEM ? DL_EXIT_RUNTIME : DL_EXIT_INPUT;
}

/* Writes buf to path through a temporary file renamed when complete. */
int dl_cli_write_atomic(const char *path, const char *buf, size_t len) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
  FILE *f = NULL;
  int fd = mkstemp(tmp);
  if (fd >= 0) {
    /* mkstemp creates 0600; give the file the permissions a plain fopen would */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) { /* keep 0600 */ }
    f = fdopen(fd, "wb");
  }
  if (!f) {
    fprintf(stderr, "detloss: %s: cannot write: %s\n", path, strerror(errno));
    return DL_EXIT_INPUT;
  }
  size_t w = fwrite(buf, 1, len, f);
  int bad = w != len;
  if (fclose(f) != 0) bad = 1;
  if (bad || rename(tmp, path) != 0) {
    fprintf(stderr, "detloss: %s: write error: %s\n", path, strerror(errno));
    remove(tmp);
    return DL_EXIT_RUNTIME;
  }
  return DL_EXIT_OK;
}

