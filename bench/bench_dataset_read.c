/*
 * bench_dataset_read.c - detloss_dataset_load() on a large data set file, e.g.
 * the COCO-train-sized instances file that gen_coco_instances.py writes.
 * Prints one JSON object: wall and CPU seconds of each read, their medians,
 * the counts read, and the process's peak resident memory (getrusage's
 * ru_maxrss, the number /usr/bin/time -v reports).
 * usage: bench_dataset_read FILE [repeats]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "detloss/detloss_json.h"

static double wall_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_dataset_read FILE [repeats]\n");
    return 2;
  }
  int reps = argc > 2 ? atoi(argv[2]) : 3;
  if (reps < 1 || reps > 100) reps = 3;
  double wall[100], cpu[100];
  size_t ni = 0, nb = 0;
  for (int r = 0; r < reps; r++) {
    detloss_dataset *ds = NULL;
    detloss_error err;
    double w0 = wall_s(), c0 = cpu_s();
    if (detloss_dataset_load(argv[1], &ds, &err) != DETLOSS_OK) {
      fprintf(stderr, "bench_dataset_read: %s: %s\n", err.where, err.msg);
      return 1;
    }
    wall[r] = wall_s() - w0;
    cpu[r] = cpu_s() - c0;
    ni = ds->num_images;
    nb = ds->num_boxes;
    detloss_dataset_free(ds);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"file\": \"%s\", \"images\": %zu, \"boxes\": %zu, \"wall_s\": [", argv[1], ni, nb);
  for (int r = 0; r < reps; r++) printf("%s%.3f", r ? ", " : "", wall[r]);
  printf("], \"cpu_s\": [");
  for (int r = 0; r < reps; r++) printf("%s%.3f", r ? ", " : "", cpu[r]);
  qsort(wall, (size_t)reps, sizeof *wall, cmp_d);
  qsort(cpu, (size_t)reps, sizeof *cpu, cmp_d);
  printf("], \"median_wall_s\": %.3f, \"median_cpu_s\": %.3f, \"peak_rss_mb\": %.1f}\n",
         wall[reps / 2], cpu[reps / 2], (double)ru.ru_maxrss / 1024.0);
  return 0;
}
