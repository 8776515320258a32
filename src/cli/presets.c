/*
 * presets.c - where the detloss command finds its presets and bundled data
 * (configs/, anchors/, data/), and what a CONFIG argument names.
 *
 * Data directories, in search order (only those that exist):
 *   1. $DETLOSS_DATA_DIR, when set and not empty;
 *   2. the installed data directory, relative to the executable:
 *      <dir of /proc/self/exe>/DETLOSS_EXE_TO_DATADIR ("../share/detloss" for
 *      bin/ and share/), so an installed tree can be moved as a whole;
 *   3. a build tree: <dir of the executable>/share/detloss (CMake links its
 *      configs/, anchors/ and data/ to the source tree's).
 * Nothing absolute is compiled in. Relative file names inside a config are
 * then looked up next to the config, in each data directory (anchors/ and
 * data/ first) and last in the current directory.
 */
#define _XOPEN_SOURCE 700 /* readlink, opendir, realpath */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "internal.h"

#ifndef DETLOSS_EXE_TO_DATADIR
#  define DETLOSS_EXE_TO_DATADIR "../share/detloss"
#endif

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Appends dir (and dir/data, for data sets a config names without a
 * directory) when it exists, is not listed yet and fits. */
static void add_dir(dl_data_dirs *d, const char *given) {
  if (!given || !given[0] || !is_dir(given) || d->num_roots >= DL_DATA_DIRS_MAX) return;
  /* The canonical name ("<prefix>/share/detloss", not "<prefix>/bin/../share/detloss")
   * for messages and for spotting a directory listed twice. */
  char canon[PATH_MAX];
  const char *dir = realpath(given, canon) ? canon : given;
  for (size_t i = 0; i < d->num_roots; i++)
    if (strcmp(d->root[i], dir) == 0) return;
  char *r = d->root[d->num_roots], *s = d->data[d->num_roots];
  int n = snprintf(r, DL_PATH_CAP, "%s", dir);
  if (n < 0 || (size_t)n >= DL_PATH_CAP) return; /* too long to use: skipped */
  n = snprintf(s, DL_PATH_CAP, "%s/data", dir);
  d->search[d->num_search++] = r;
  if (n > 0 && (size_t)n < DL_PATH_CAP && is_dir(s)) d->search[d->num_search++] = s;
  d->num_roots++;
}

void dl_cli_data_dirs(dl_data_dirs *d) {
  memset(d, 0, sizeof *d);
  add_dir(d, getenv("DETLOSS_DATA_DIR"));
  char exe[DL_PATH_CAP], dir[DL_PATH_CAP];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0 && (size_t)n < sizeof exe - 1) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      int k = snprintf(dir, sizeof dir, "%s/%s", exe, DETLOSS_EXE_TO_DATADIR);
      if (k > 0 && (size_t)k < sizeof dir) add_dir(d, dir);
      k = snprintf(dir, sizeof dir, "%s/share/detloss", exe);
      if (k > 0 && (size_t)k < sizeof dir) add_dir(d, dir);
    }
  }
  /* The current directory last, for relative names in a config. */
  d->search[d->num_search++] = ".";
  d->search[d->num_search] = NULL;
}

int dl_cli_is_preset_name(const char *arg) {
  size_t n = strlen(arg);
  return n > 0 && strcmp(arg, "-") != 0 && !strchr(arg, '/') &&
         !(n >= 5 && strcmp(arg + n - 5, ".json") == 0);
}

/* The preset names of configs/ in the data directories and ., sorted, without
 * repeats; malloc'ed strings in *names (free with free_names). */
static size_t list_presets(const dl_data_dirs *d, char ***names) {
  size_t n = 0, cap = 0;
  char **v = NULL;
  char cdir[DL_PATH_CAP];
  for (size_t r = 0; r <= d->num_roots; r++) {
    int k = snprintf(cdir, sizeof cdir, "%s/configs", r < d->num_roots ? d->root[r] : ".");
    if (k < 0 || (size_t)k >= sizeof cdir) continue;
    DIR *dp = opendir(cdir);
    if (!dp) continue;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
      size_t len = strlen(e->d_name);
      if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0 || e->d_name[0] == '.') continue;
      size_t i = 0;
      while (i < n && (strncmp(v[i], e->d_name, len - 5) != 0 || v[i][len - 5] != '\0')) i++;
      if (i < n) continue;
      if (n == cap) {
        size_t nc = cap ? 2 * cap : 16;
        char **nv = realloc(v, nc * sizeof *nv);
        if (!nv) break;
        v = nv;
        cap = nc;
      }
      char *s = malloc(len - 4);
      if (!s) break;
      memcpy(s, e->d_name, len - 5);
      s[len - 5] = '\0';
      v[n++] = s;
    }
    closedir(dp);
  }
  for (size_t i = 1; i < n; i++) /* insertion sort: a handful of names */
    for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
      char *t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  *names = v;
  return n;
}

static void free_names(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* Prints the one-line error for an unknown preset: a suggestion (a near miss,
 * else the one preset that starts with the name), then the presets found. */
static void unknown_preset(const char *name, const dl_data_dirs *d) {
  char **v = NULL;
  size_t n = list_presets(d, &v);
  const char *hint = dl_suggest(name, (const char *const *)v, n);
  for (size_t i = 0; !hint && i < n; i++) {
    if (strncmp(v[i], name, strlen(name)) != 0) continue;
    size_t j = i + 1;
    while (j < n && strncmp(v[j], name, strlen(name)) != 0) j++;
    if (j == n) hint = v[i];
    break;
  }
  fprintf(stderr, "detloss: CONFIG: unknown preset '%s'", name);
  if (hint) fprintf(stderr, " (did you mean '%s'?)", hint);
  if (n == 0) {
    fputs(
        "; no presets found: set DETLOSS_DATA_DIR to a directory with configs/, "
        "or give a file name\n",
        stderr);
  } else {
    fputs("; presets: ", stderr);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%s", i ? ", " : "", v[i]);
    fputc('\n', stderr);
  }
  free_names(v, n);
}

int dl_cli_config_path(const char *arg, const dl_data_dirs *d, char *out, size_t cap) {
  if (!dl_cli_is_preset_name(arg)) {
    int k = snprintf(out, cap, "%s", arg);
    if (k < 0 || (size_t)k >= cap) {
      fprintf(stderr, "detloss: CONFIG: file name longer than %zu bytes\n", cap - 1);
      return DL_EXIT_INPUT;
    }
    return DL_EXIT_OK;
  }
  for (size_t r = 0; r <= d->num_roots; r++) {
    int k = snprintf(out, cap, "%s/configs/%s.json", r < d->num_roots ? d->root[r] : ".", arg);
    if (k > 0 && (size_t)k < cap && is_file(out)) return DL_EXIT_OK;
  }
  unknown_preset(arg, d);
  return DL_EXIT_INPUT;
}
