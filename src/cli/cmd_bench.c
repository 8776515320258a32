/* cmd_bench.c - `detloss bench`: the standard workloads (bench/workloads.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "harness.h"

#ifndef DETLOSS_GIT_COMMIT
#  define DETLOSS_GIT_COMMIT "unknown"
#endif

static const char HELP[] =
    "usage: detloss bench [--threads N] [--only W[,W...]] [--repeats R] [--warmup K]\n"
    "                     [--small] [--json] [--list]\n"
    "\n"
    "Runs the standard workloads on deterministic inputs and reports, per stage,\n"
    "the median, minimum and maximum wall time in milliseconds over R timed runs\n"
    "(after K untimed warm-up runs), and each workload's peak resident memory.\n"
    "bench/compare_torchvision.py runs the same workloads on the same inputs in\n"
    "torchvision with the same thread count and prints the ratios.\n"
    "\n"
    "options:\n"
    "  --threads N   threads for the library calls (default 2; 0 = OpenMP default)\n"
    "  --only LIST   comma-separated workload names (see --list)\n"
    "  --repeats R   timed runs per workload (default 11, at most 101)\n"
    "  --warmup K    untimed runs first (default 2)\n"
    "  --small       the smallest configuration of each workload (a smoke test)\n"
    "  --gt G        gt boxes per image instead of the standard 20 / 100 (scaling)\n"
    "  --image-scale S  image sides times S (anchors grow with S^2; scaling)\n"
    "  --classes C   classes for focal_16m and retina_b2 instead of 80 (scaling)\n"
    "  --json        one JSON object: {\"<workload>\": {\"<stage>\": {\"median_ms\",\n"
    "                \"min_ms\", \"max_ms\"}, ..., \"_memory\": {...}, \"_check\": {...}},\n"
    "                \"_meta\": {\"cpu\", \"threads\", \"commit\", \"date\"}}\n"
    "  --list        list the workloads and exit\n"
    "\n"
    "exit status: 0 success, 1 a workload failed (a library error, a non-finite\n"
    "or inconsistent result), 2 usage\n";

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

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < lo || v > hi) return 0;
  *out = (int)v;
  return 1;
}

int dl_cmd_bench(int argc, char **argv) {
  int threads = 2, repeats = 11, warmup = 2, json = 0, small = 0, gt = 0, classes = 0;
  double image_scale = 0;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
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
    } else if (!strcmp(a, "--threads") && v && (threads = dl_cli_parse_threads(v)) >= 0) {
      i++;
    } else if (!strcmp(a, "--repeats") && v && parse_int(v, 1, BENCH_MAX_REPEATS, &repeats)) {
      i++;
    } else if (!strcmp(a, "--warmup") && v && parse_int(v, 0, 100, &warmup)) {
      i++;
    } else if (!strcmp(a, "--gt") && v && parse_int(v, 0, 100000, &gt)) {
      i++;
    } else if (!strcmp(a, "--classes") && v && parse_int(v, 1, 100000, &classes)) {
      i++;
    } else if (!strcmp(a, "--image-scale") && v && (image_scale = atof(v)) > 0 && image_scale <= 16) {
      i++;
    } else if (!strcmp(a, "--only") && v) {
      only = v;
      i++;
    } else {
      fprintf(stderr, "detloss: bench: bad argument '%s' (see detloss bench --help)\n", a);
      return DL_EXIT_INPUT;
    }
  }
  if (only) {
    /* every listed name must exist */
    size_t len = strlen(only) + 1;
    char *copy = malloc(len);
    if (!copy) return DL_EXIT_RUNTIME;
    memcpy(copy, only, len);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
      int found = 0;
      for (size_t k = 0; k < bench_num_workloads; k++)
        found |= strcmp(bench_workloads[k].name, tok) == 0;
      if (!found) {
        fprintf(stderr, "detloss: bench: --only: unknown workload '%s' (see --list)\n", tok);
        free(copy);
        return DL_EXIT_INPUT;
      }
    }
    free(copy);
  }

  char cpu[256], date[64];
  cpu_name(cpu, sizeof cpu);
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  int any_failed = 0, first = 1;
  if (json) printf("{");
  else
    printf("detloss bench: %s, %d thread%s, %d runs (+%d warm-up)%s\n%-16s %-12s %10s %10s %10s\n",
           cpu, threads, threads == 1 ? "" : "s", repeats, warmup, small ? ", small" : "",
           "workload", "stage", "median_ms", "min_ms", "max_ms");
  for (size_t k = 0; k < bench_num_workloads; k++) {
    const bench_workload *w = &bench_workloads[k];
    if (!selected(only, w->name)) continue;
    bench_run *run = calloc(1, sizeof *run);
    if (!run) return DL_EXIT_RUNTIME;
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
      printf("%s\"%s\":{", first ? "" : ",", w->name);
      for (int s = 0; s < run->num_stages; s++) {
        double med, mn, mx;
        bench_stats(&run->stages[s], &med, &mn, &mx);
        printf("\"%s\":{\"median_ms\":%.4f,\"min_ms\":%.4f,\"max_ms\":%.4f},", run->stages[s].name,
               med, mn, mx);
      }
      printf("\"_memory\":{\"peak_rss_mib\":%.1f,\"rss_before_mib\":%.1f},", peak, rss0);
      printf("\"_check\":{\"%s\":%.9g,\"failed\":%s},\"_note\":\"%s\"}",
             run->check_name ? run->check_name : "none", run->check,
             run->failed ? "true" : "false", run->note);
    } else {
      for (int s = 0; s < run->num_stages; s++) {
        double med, mn, mx;
        bench_stats(&run->stages[s], &med, &mn, &mx);
        printf("%-16s %-12s %10.3f %10.3f %10.3f\n", s == 0 ? w->name : "", run->stages[s].name,
               med, mn, mx);
      }
      printf("%-16s %-12s peak RSS %.1f MiB (%.1f before); %s; %s = %.9g%s\n", "", "", peak,
             rss0, run->note, run->check_name ? run->check_name : "check", run->check,
             run->failed ? "  FAILED" : "");
    }
    first = 0;
    free(run);
  }
  if (json)
    printf("%s\"_meta\":{\"cpu\":\"%s\",\"threads\":%d,\"commit\":\"%s\",\"date\":\"%s\","
           "\"repeats\":%d,\"warmup\":%d,\"small\":%s}}\n",
           first ? "" : ",", cpu, threads, DETLOSS_GIT_COMMIT, date, repeats, warmup,
           small ? "true" : "false");
  if (any_failed) fprintf(stderr, "detloss: bench: a workload failed\n");
  return any_failed ? DL_EXIT_RUNTIME : DL_EXIT_OK;
}
