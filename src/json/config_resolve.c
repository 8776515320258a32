/*
 * config_resolve.c - files of the config layer: reading a whole file, naming
 * the file in an error's where, and resolving a config's relative anchor and
 * data-set file names through the config's directory and the search dirs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/config_internal.h"
#include "json/evalcfg.h"
#include "json/jread.h"

void dl_where_file(detloss_error *err, const char *file) {
  if (!err || !file || !file[0]) return;
  char tmp[DETLOSS_WHERE_MAX];
  if (err->where[0])
    snprintf(tmp, sizeof tmp, "%s: %s", file, err->where);
  else
    snprintf(tmp, sizeof tmp, "%s", file);
  memcpy(err->where, tmp, sizeof tmp);
}

detloss_status dl_read_file(const char *path, size_t max_bytes, char **text, size_t *len,
                            detloss_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return dl_fail(err,
                   errno == ENOENT || errno == ENOTDIR ? DETLOSS_ERR_NOT_FOUND : DETLOSS_ERR_IO,
                   path, "cannot open: %s", strerror(errno));
  detloss_status st = dlj_read_stream(f, path, max_bytes, text, len, err);
  fclose(f);
  return st;
}

static int file_exists(const char *p) {
  FILE *f = fopen(p, "rb");
  if (!f) return 0;
  fclose(f);
  return 1;
}

/* A candidate path cut short by its buffer could name another file: it is
 * not looked up at all. */
static int fits(int n, size_t cap) { return n >= 0 && (size_t)n < cap; }

/* Resolves a relative file name: (anchors: config dir/../anchors,) config dir,
 * then each search dir (anchors: dir/anchors first). NULL if not found (*tried gets
 * the first candidate for the message). */
char *dlj_resolve(const char *name, const char *cfg_path, const char *const *search, int anchors,
                  char *tried, size_t tried_cap) {
  char buf[4096];
  if (name[0] == '/') {
    snprintf(tried, tried_cap, "%s", name);
    return file_exists(name) ? dlj_dupstr(name) : NULL;
  }
  char dir[4096];
  if (!fits(snprintf(dir, sizeof dir, "%s", cfg_path ? cfg_path : "."), sizeof dir)) return NULL;
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  /* anchors/ first for anchor files: a config may share its anchor file's name. */
  if (anchors) {
    if (fits(snprintf(buf, sizeof buf, "%s/../anchors/%s", dir, name), sizeof buf) &&
        file_exists(buf))
      return dlj_dupstr(buf);
  }
  int ok = fits(snprintf(buf, sizeof buf, "%s/%s", dir, name), sizeof buf);
  snprintf(tried, tried_cap, "%s", buf);
  if (ok && file_exists(buf)) return dlj_dupstr(buf);
  for (size_t i = 0; search && search[i]; i++) {
    if (anchors) {
      if (fits(snprintf(buf, sizeof buf, "%s/anchors/%s", search[i], name), sizeof buf) &&
          file_exists(buf))
        return dlj_dupstr(buf);
    }
    if (fits(snprintf(buf, sizeof buf, "%s/%s", search[i], name), sizeof buf) && file_exists(buf))
      return dlj_dupstr(buf);
  }
  return NULL;
}
