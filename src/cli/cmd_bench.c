/* cmd_bench.c - `detloss bench`: the standard workloads (bench/workloads.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "harness.h"
#include "json/jwrite.h"

#define BENCH_STR2(x) #x
#define BENCH_STR(x) BENCH_STR2(x)

#ifndef DETLOSS_GIT_COMMIT
#  define DETLOSS_GIT_COMMIT "unknown"
#endif

static const char HELP[] =
    "usage: detloss bench [--threads N] [--only W[,W...]] [--repeats R] [--warmup K]\n"
    "                     [--small] [--gt G] [--image-scale S] [--classes C] [--json]\n"
    "       detloss bench --list\n"
    "\n"
    "Runs the standard workloads on deterministic inputs and reports, per stage,\n"
    "the median, minimum and maximum wall time in milliseconds over R timed runs\n"
    "(after K untimed warm-up runs), and each workload's peak resident memory.\n"
    "bench/compare_torchvision.py runs the same workloads on the same inputs in\n"
    "torchvision with the same thread count and prints the ratios.\n"
    "\n"
    "options (each number is checked against its range; outside it, or not a\n"
    "number, is a usage error, exit 2):\n"
    "  --threads N      threads for the library calls, 0 to 4096 (default 2;\n"
    "                   0 = the OpenMP default)\n"
    "  --only LIST      comma-separated workload names (default: all; see --list)\n"
    "  --repeats R      timed runs per workload, 1 to " BENCH_STR(BENCH_MAX_REPEATS) " (default 11)\n"
    "  --warmup K       untimed runs before them, 0 to 100 (default 2)\n"
    "  --small          the smallest configuration of each workload (a smoke test)\n"
    "  --gt G           gt boxes per image, 1 to 100000, instead of the workload's\n"
    "                   20 or 100 (match_fpn_*, rpn_fpn_b2, retina_b2; scaling)\n"
    "  --image-scale S  image sides times S, a number in (0, 16] (default 1: 800 x\n"
    "                   1344, or 256 x 320 with --small); anchors grow with S^2\n"
    "                   (match_fpn_*, focal_16m, rpn_fpn_b2, retina_b2; scaling)\n"
    "  --classes C      classes, 1 to 100000 (default 80; focal_16m, retina_b2)\n"
    "  --json           one JSON object: {\"<workload>\": {\"<stage>\": {\"median_ms\",\n"
    "                   \"min_ms\", \"max_ms\"}, ..., \"_memory\": {...}, \"_check\": {...}},\n"
    "                   \"_meta\": {\"cpu\", \"threads\", \"commit\", \"date\", ...}}\n"
    "  --list           list the workloads and exit\n"
    "  -h, --help       show this help\n"
    "(eval_coco runs the bundled data set as it is: --gt, --image-scale and\n"
    "--classes do not apply to it.)\n"
    "\n"
    "exit status: 0 success; 1 I/O or system failure (out of memory, a failed\n"
    "             write of standard output) or a workload failed (a library\n"
    "             error, a non-finite or inconsistent result); 2 usage (an\n"
    "             unknown option, a number out of range, an unknown workload),\n"
    "             one line on standard error.\n";

static void cpu_name(char *buf, size_t cap) {
  snprintf(buf, cap, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      const char *p = strchr(line, ':');
      if (p) {
        p++;
        while (*p == ' ') p++;
        snprintf(buf, cap, "%s", p);
        buf[strcspn(buf, "\n")] = '\0';
      }
      break;
    }
  }
  fclose(f);
}

static int selected(const char *only, const char *name) {
  if (!only) return 1;
  size_t len = strlen(name);
  for (const char *p = only; *p;) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    if (l == len && strncmp(p, name, len) == 0) return 1;
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}

/* v with fmt, or null when it is not finite (JSON has no NaN). */
static void json_number(dlj_buf *b, const char *fmt, double v) {
  if (isfinite(v))
    dlj_printf(b, fmt, v);
  else
    dlj_raw(b, "null");
}

/* A whole number in [lo, hi]; anything else (not a number, trailing text,
 * out of range, too large for a long) is 0. */
static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return 0;
  *out = (int)v;
  return 1;
}

/* A finite number in (0, hi]. */
static int parse_scale(const char *s, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0.0 && v <= hi)) return 0;
  *out = v;
  return 1;
}

/* The numeric options: name, range, destination. */
typedef struct int_opt {
  const char *name;
  int lo, hi;
  int *dst;
} int_opt;

int dl_cmd_bench(int argc, char **argv) {
  int threads = 2, repeats = 11, warmup = 2, json = 0, small = 0, gt = 0, classes = 0;
  double image_scale = 0;
  const char *only = NULL;
  const int_opt ints[] = {
      {"--threads", 0, 4096, &threads},   {"--repeats", 1, BENCH_MAX_REPEATS, &repeats},
      {"--warmup", 0, 100, &warmup},      {"--gt", 1, 100000, &gt},
      {"--classes", 1, 100000, &classes},
  };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    const int_opt *io = NULL;
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
      if (!strcmp(a, ints[k].name)) io = &ints[k];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(HELP, stdout);
      return DL_EXIT_OK;
    } else if (!strcmp(a, "--list")) {
      for (size_t k = 0; k < bench_num_workloads; k++)
        printf("%-16s %s\n", bench_workloads[k].name, bench_workloads[k].summary);
      return DL_EXIT_OK;
    } else if (!strcmp(a, "--json")) {
      json = 1;
    } else if (!strcmp(a, "--small")) {
      small = 1;
    } else if (io) {
      if (!v || !parse_int(v, io->lo, io->hi, io->dst)) {
        fprintf(stderr, "detloss: bench: %s: expected a whole number from %d to %d, %s%s%s\n", a,
                io->lo, io->hi, v ? "got '" : "got nothing", v ? v : "", v ? "'" : "");
        return DL_EXIT_INPUT;
      }
      i++;
    } else if (!strcmp(a, "--image-scale")) {
      if (!v || !parse_scale(v, 16.0, &image_scale)) {
        fprintf(stderr, "detloss: bench: --image-scale: expected a number in (0, 16], %s%s%s\n",
                v ? "got '" : "got nothing", v ? v : "", v ? "'" : "");
        return DL_EXIT_INPUT;
      }
      i++;
    } else if (!strcmp(a, "--only")) {
      if (!v) {
        fprintf(stderr, "detloss: bench: --only: expected workload names (see --list)\n");
        return DL_EXIT_INPUT;
      }
      only = v;
      i++;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "detloss: bench: unknown option '%s' (see detloss bench --help)\n", a);
      return DL_EXIT_INPUT;
    } else {
      fprintf(stderr, "detloss: bench: unexpected argument '%s' (see detloss bench --help)\n", a);
      return DL_EXIT_INPUT;
    }
  }
  if (only) {
    /* every listed name must exist, and none may be empty */
    for (const char *p = only;;) {
      size_t l = strcspn(p, ",");
      int found = 0;
      for (size_t k = 0; k < bench_num_workloads; k++)
        found |=
            strlen(bench_workloads[k].name) == l && strncmp(bench_workloads[k].name, p, l) == 0;
      if (!found) {
        fprintf(stderr, "detloss: bench: --only: unknown workload '%.*s' (see --list)\n", (int)l,
                p);
        return DL_EXIT_INPUT;
      }
      if (!p[l]) break;
      p += l + 1;
    }
  }

  char cpu[256], date[64];
  cpu_name(cpu, sizeof cpu);
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  int any_failed = 0, first = 1;
  /* --json: built in memory (strings escaped, non-finite numbers null) and
   * written at the end; the table is printed workload by workload. */
  dlj_buf jb;
  dlj_buf_init(&jb);
  if (json)
    dlj_raw(&jb, "{");
  else
    printf("detloss bench: %s, %d thread%s, %d runs (+%d warm-up)%s\n%-16s %-12s %10s %10s %10s\n",
           cpu, threads, threads == 1 ? "" : "s", repeats, warmup, small ? ", small" : "",
           "workload", "stage", "median_ms", "min_ms", "max_ms");
  for (size_t k = 0; k < bench_num_workloads; k++) {
    const bench_workload *w = &bench_workloads[k];
    if (!selected(only, w->name)) continue;
    bench_run *run = calloc(1, sizeof *run);
    if (!run) {
      fprintf(stderr, "detloss: bench: out of memory\n");
      dlj_buf_free(&jb);
      return DL_EXIT_RUNTIME;
    }
    run->threads = threads;
    run->repeats = repeats;
    run->warmup = warmup;
    run->small = small;
    run->gt = gt;
    run->image_scale = image_scale;
    run->classes = classes;
    double rss0 = bench_rss_now_mib();
    bench_rss_reset();
    w->fn(run);
    double peak = bench_rss_peak_mib();
    any_failed |= run->failed;
    if (json) {
      dlj_printf(&jb, "%s\"%s\":{", first ? "" : ",", w->name);
      for (int s = 0; s < run->num_stages; s++) {
        double med, mn, mx;
        bench_stats(&run->stages[s], &med, &mn, &mx);
        dlj_quoted(&jb, run->stages[s].name);
        dlj_raw(&jb, ":{\"median_ms\":");
        json_number(&jb, "%.4f", med);
        dlj_raw(&jb, ",\"min_ms\":");
        json_number(&jb, "%.4f", mn);
        dlj_raw(&jb, ",\"max_ms\":");
        json_number(&jb, "%.4f", mx);
        dlj_raw(&jb, "},");
      }
      dlj_raw(&jb, "\"_memory\":{\"peak_rss_mib\":");
      json_number(&jb, "%.1f", peak);
      dlj_raw(&jb, ",\"rss_before_mib\":");
      json_number(&jb, "%.1f", rss0);
      dlj_raw(&jb, "},\"_check\":{");
      dlj_quoted(&jb, run->check_name ? run->check_name : "none");
      dlj_raw(&jb, ":");
      json_number(&jb, "%.9g", run->check);
      dlj_printf(&jb, ",\"failed\":%s},\"_note\":", run->failed ? "true" : "false");
      dlj_quoted(&jb, run->note);
      dlj_raw(&jb, "}");
    } else {
      for (int s = 0; s < run->num_stages; s++) {
        double med, mn, mx;
        bench_stats(&run->stages[s], &med, &mn, &mx);
        printf("%-16s %-12s %10.3f %10.3f %10.3f\n", s == 0 ? w->name : "", run->stages[s].name,
               med, mn, mx);
      }
      printf("%-16s %-12s peak RSS %.1f MiB (%.1f before); %s; %s = %.9g%s\n", "", "", peak, rss0,
             run->note, run->check_name ? run->check_name : "check", run->check,
             run->failed ? "  FAILED" : "");
    }
    first = 0;
    free(run);
    /* the table as it grows; a reader gone or a full disk stops the run here */
    if (!json && dl_cli_write_stdout("", 0) != DL_EXIT_OK) {
      dlj_buf_free(&jb);
      return DL_EXIT_RUNTIME;
    }
  }
  int rc = any_failed ? DL_EXIT_RUNTIME : DL_EXIT_OK;
  if (json) {
    dlj_printf(&jb, "%s\"_meta\":{\"cpu\":", first ? "" : ",");
    dlj_quoted(&jb, cpu);
    dlj_printf(&jb, ",\"threads\":%d,\"commit\":", threads);
    dlj_quoted(&jb, DETLOSS_GIT_COMMIT);
    dlj_printf(&jb, ",\"date\":\"%s\",\"repeats\":%d,\"warmup\":%d,\"small\":%s}}\n", date, repeats,
               warmup, small ? "true" : "false");
    if (jb.oom) {
      fprintf(stderr, "detloss: bench: out of memory\n");
      rc = DL_EXIT_RUNTIME;
    } else if (dl_cli_write_stdout(jb.p, jb.len) != DL_EXIT_OK) {
      rc = DL_EXIT_RUNTIME;
    }
  }
  dlj_buf_free(&jb);
  if (any_failed) fprintf(stderr, "detloss: bench: a workload failed\n");
  return rc;
}
