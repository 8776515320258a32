/* util.c - helpers shared by the subcommands (declared in cli.h). */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fchmod, fchown, umask, readlink, lstat */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

/* Reports an error loading an input file: a file that does not exist
 * (DETLOSS_ERR_NOT_FOUND) is bad input (exit 2), like any other fault of the
 * config or data set; a file that exists but cannot be read (DETLOSS_ERR_IO)
 * and running out of memory are runtime failures (exit 1). */
int dl_cli_load_error(const detloss_error *err, detloss_status st) {
  const char *hint = dl_cli_limit_hint(err->msg);
  if (err->where[0])
    fprintf(stderr, "detloss: %s: %s%s\n", err->where, err->msg, hint);
  else
    fprintf(stderr, "detloss: %s%s\n", err->msg, hint);
  return st == DETLOSS_ERR_NOMEM || st == DETLOSS_ERR_IO ? DL_EXIT_RUNTIME : DL_EXIT_INPUT;
}

/* Output files.
 * Every output of a command is complete in memory before any file is
 * touched. A regular file (or a name that does not exist yet) is written to
 * a temporary file beside it, which is renamed over it once every output of
 * the command has been written: a failure anywhere replaces nothing. A
 * symbolic link is followed to its target (the link stays a link), and the
 * target keeps its permission bits. Anything else - a FIFO, a character
 * device such as /dev/null, /dev/stdout or /proc/self/fd/N - is opened and
 * written directly, as a shell redirection would. */

typedef struct out_plan {
  const char *path; /* as given (messages; direct writes open this) */
  char *target;     /* path with every symbolic link resolved */
  char *tmp;        /* the temporary file, while it exists */
  int direct;       /* not a regular file: written in place */
  int exists;
  struct stat st; /* of the target, when it exists */
} out_plan;

static char *dup_n(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* Length of the directory part of p ("a/b/c" -> 3, "c" -> 0, "/c" -> 1). */
static size_t dir_len(const char *p) {
  const char *slash = strrchr(p, '/');
  if (!slash) return 0;
  return slash == p ? 1 : (size_t)(slash - p);
}

/* Paths the kernel makes up (/dev/stdout -> /proc/self/fd/1 -> "pipe:[..]"):
 * never replaced, always written in place. */
static int kernel_path(const char *p) {
  return strncmp(p, "/dev/", 5) == 0 || strncmp(p, "/proc/", 6) == 0;
}

/* The link text of p, malloc'ed (NULL with errno set on failure). */
static char *read_link(const char *p) {
  size_t cap = 256;
  for (;;) {
    char *buf = malloc(cap);
    if (!buf) return NULL;
    ssize_t n = readlink(p, buf, cap);
    if (n < 0) {
      free(buf);
      return NULL;
    }
    if ((size_t)n < cap) {
      buf[n] = '\0';
      return buf;
    }
    free(buf);
    if (cap > ((size_t)1 << 20)) {
      errno = ENAMETOOLONG;
      return NULL;
    }
    cap *= 2;
  }
}

/* Fills o->target, o->direct, o->exists and o->st. Returns 0 or an errno. */
static int resolve(out_plan *o) {
  char *cur = dup_n(o->path, strlen(o->path));
  if (!cur) return ENOMEM;
  for (int hops = 0;; hops++) {
    if (kernel_path(cur)) {
      o->direct = 1;
      break;
    }
    if (lstat(cur, &o->st) != 0) {
      int e = errno;
      if (e != ENOENT) {
        free(cur);
        return e;
      }
      break; /* a new file (a missing directory fails when the file is created) */
    }
    if (!S_ISLNK(o->st.st_mode)) {
      o->exists = 1;
      o->direct = !S_ISREG(o->st.st_mode);
      break;
    }
    if (hops == 40) { /* the kernel's own limit (ELOOP) */
      free(cur);
      return ELOOP;
    }
    char *link = read_link(cur);
    if (!link) {
      int e = errno;
      free(cur);
      return e;
    }
    char *next;
    size_t dl = dir_len(cur);
    if (link[0] == '/' || dl == 0) {
      next = link;
    } else { /* relative to the directory holding the link */
      size_t ll = strlen(link);
      next = malloc(dl + 1 + ll + 1);
      if (next) {
        memcpy(next, cur, dl);
        next[dl] = '/';
        memcpy(next + dl + 1, link, ll + 1);
      }
      free(link);
    }
    free(cur);
    if (!next) return ENOMEM;
    cur = next;
  }
  o->target = cur;
  return 0;
}

static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Creates o->tmp beside o->target with the target's mode (0666 & ~umask for
 * a new file) and writes buf to it. Returns 0 or an errno; *create tells a
 * failure to create the file from a failure to write it. */
static int write_temp(out_plan *o, const char *buf, size_t len, int *create) {
  static const char NAME[] = ".detloss-tmp-XXXXXX";
  size_t dl = dir_len(o->target);
  o->tmp = malloc(dl + 2 + sizeof NAME); /* dir (or "."), '/', NAME, NUL */
  if (!o->tmp) return ENOMEM;
  if (dl)
    memcpy(o->tmp, o->target, dl);
  else
    o->tmp[0] = '.';
  size_t at = dl ? dl : 1;
  if (!(dl == 1 && o->target[0] == '/')) o->tmp[at++] = '/';
  memcpy(o->tmp + at, NAME, sizeof NAME);
  *create = 1;
  int fd = mkstemp(o->tmp);
  if (fd < 0) {
    int e = errno;
    free(o->tmp);
    o->tmp = NULL;
    return e;
  }
  mode_t mode;
  if (o->exists) {
    mode = o->st.st_mode & 07777;
    /* keep the owner too where we may (root writing another user's file) */
    if (fchown(fd, o->st.st_uid, o->st.st_gid) != 0) { /* not permitted: ours it is */
    }
  } else {
    mode_t mask = umask(0);
    umask(mask);
    mode = 0666 & ~mask;
  }
  int e = fchmod(fd, mode) != 0 ? errno : 0;
  *create = 0;
  if (!e) e = write_all(fd, buf, len);
  if (!e && fsync(fd) != 0) e = errno; /* the data is on disk before the rename */
  if (close(fd) != 0 && !e) e = errno;
  return e;
}

/* The standard stream that already is the file at path, if any: -o /dev/stdout
 * with standard output redirected to a file must append to what the command
 * prints there, not reopen the file at offset 0 and overwrite it. */
static FILE *same_stream(const char *path) {
  struct stat a, s;
  if (stat(path, &a) != 0) return NULL;
  if (fstat(STDOUT_FILENO, &s) == 0 && s.st_dev == a.st_dev && s.st_ino == a.st_ino) return stdout;
  if (fstat(STDERR_FILENO, &s) == 0 && s.st_dev == a.st_dev && s.st_ino == a.st_ino) return stderr;
  return NULL;
}

static int write_direct(const out_plan *o, const char *buf, size_t len, int *create) {
  FILE *f = same_stream(o->path);
  if (f) {
    *create = 0;
    errno = 0;
    if (fwrite(buf, 1, len, f) != len || fflush(f) != 0) return errno ? errno : EIO;
    return 0;
  }
  *create = 1;
  int fd = open(o->path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) return errno;
  *create = 0;
  int e = write_all(fd, buf, len);
  if (close(fd) != 0 && !e) e = errno;
  return e;
}

static void cleanup(out_plan *plan, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (plan[i].tmp) unlink(plan[i].tmp);
    free(plan[i].tmp);
    free(plan[i].target);
  }
  free(plan);
}

static int fail(const char *path, int create, int e) {
  fprintf(stderr, "detloss: %s: %s: %s\n", path, create ? "cannot write" : "write error",
          strerror(e));
  return DL_EXIT_RUNTIME;
}

int dl_cli_write_outputs(const dl_cli_output *outs, size_t n) {
  out_plan *plan = calloc(n ? n : 1, sizeof *plan);
  if (!plan) {
    fprintf(stderr, "detloss: out of memory\n");
    return DL_EXIT_RUNTIME;
  }
  int e = 0, create = 1;
  size_t i = 0;
  /* 1. where each output goes */
  for (i = 0; i < n && !e; i++) {
    plan[i].path = outs[i].path;
    e = resolve(&plan[i]);
    if (!e && plan[i].exists && !plan[i].direct && access(plan[i].target, W_OK) != 0)
      e = errno; /* a read-only file stays as it is, as it would for a plain write */
  }
  /* 2. every regular output into its temporary file */
  for (size_t k = 0; k < n && !e; k++)
    if (!plan[k].direct && (e = write_temp(&plan[k], outs[k].buf, outs[k].len, &create)) != 0)
      i = k + 1;
  /* 3. the outputs written in place (nothing was replaced yet if one fails) */
  for (size_t k = 0; k < n && !e; k++)
    if (plan[k].direct && (e = write_direct(&plan[k], outs[k].buf, outs[k].len, &create)) != 0)
      i = k + 1;
  /* 4. replace the targets */
  for (size_t k = 0; k < n && !e; k++) {
    if (plan[k].direct) continue;
    if (rename(plan[k].tmp, plan[k].target) != 0) {
      e = errno;
      create = 0;
      i = k + 1;
      break;
    }
    free(plan[k].tmp);
    plan[k].tmp = NULL;
  }
  int rc = e ? fail(outs[i - 1].path, create, e) : DL_EXIT_OK;
  cleanup(plan, n);
  return rc;
}

int dl_cli_write_atomic(const char *path, const char *buf, size_t len) {
  dl_cli_output o = {path, buf, len};
  return dl_cli_write_outputs(&o, 1);
}

int dl_cli_same_output(const char *a, const char *b) {
  out_plan pa, pb;
  memset(&pa, 0, sizeof pa);
  memset(&pb, 0, sizeof pb);
  pa.path = a;
  pb.path = b;
  int same = 0; /* devices and FIFOs may take two outputs (/dev/null) */
  if (resolve(&pa) == 0 && resolve(&pb) == 0 && !pa.direct && !pb.direct) {
    if (pa.exists && pb.exists)
      same = pa.st.st_dev == pb.st.st_dev && pa.st.st_ino == pb.st.st_ino;
    else
      same = strcmp(pa.target, pb.target) == 0;
  }
  free(pa.target);
  free(pb.target);
  return same;
}

int dl_cli_check_plot_output(const char *cmd, const char *plot, const char *out) {
  if (plot) { /* SVG is the one format written: refuse any other extension up front */
    const char *base = strrchr(plot, '/');
    base = base ? base + 1 : plot;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base && strcasecmp(dot, ".svg") != 0) {
      fprintf(stderr, "detloss: %s: --plot %s: only SVG is written; give a name ending in .svg\n",
              cmd, plot);
      return DL_EXIT_INPUT;
    }
  }
  if (plot && out && dl_cli_same_output(plot, out)) {
    fprintf(stderr, "detloss: %s: --plot and -o name the same file '%s'\n", cmd, out);
    return DL_EXIT_INPUT;
  }
  return DL_EXIT_OK;
}

int dl_cli_write_stdout(const char *buf, size_t len) {
  errno = 0;
  if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
    int e = errno;
    fprintf(stderr, "detloss: stdout: write error%s%s\n", e ? ": " : "", e ? strerror(e) : "");
    return DL_EXIT_RUNTIME;
  }
  return DL_EXIT_OK;
}

int dl_cli_close_stdout(int rc) {
  errno = 0;
  int bad = fflush(stdout) != 0;
  int e = errno;
  if (ferror(stdout)) bad = 1;
  if (fclose(stdout) != 0) {
    bad = 1;
    if (!e) e = errno;
  }
  if (bad && rc == DL_EXIT_OK) {
    fprintf(stderr, "detloss: stdout: write error%s%s\n", e ? ": " : "", e ? strerror(e) : "");
    rc = DL_EXIT_RUNTIME;
  }
  return rc;
}
