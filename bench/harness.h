/*
 * harness.h - the benchmark harness behind `detloss bench`.
 *
 * A workload prepares deterministic inputs (from bench_u01/bench_normal, a
 * counter-based generator that bench/compare_torchvision.py reproduces
 * bit for bit with numpy, so both sides time the same inputs), then runs its
 * stages `repeats` times after `warmup` untimed runs, recording each stage's
 * time with bench_record(). The harness reports median, min and max per
 * stage, and the peak resident memory of the workload.
 */
#ifndef DETLOSS_BENCH_HARNESS_H
#define DETLOSS_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_STAGES 8
#define BENCH_MAX_REPEATS 101

typedef struct bench_stage {
  const char *name;
  double ms[BENCH_MAX_REPEATS];
  int n;
} bench_stage;

typedef struct bench_run {
  int threads; /* passed to every library call */
  int repeats; /* timed runs per stage */
  int warmup;  /* untimed runs first */
  int small;   /* 1: the smallest configuration (CI smoke test) */
  /* Size overrides for scaling studies (0 = the workload's standard size):
   * gt boxes per image (match, heads), image side multiplier (anchors grow
   * with its square), classes (focal_16m, retina_b2). */
  int gt;
  double image_scale;
  int classes;
  bench_stage stages[BENCH_MAX_STAGES];
  int num_stages;
  double check; /* a result value (a loss, a count) for cross-checking */
  const char *check_name;
  char note[256]; /* free text: sizes, derived ratios */
  int failed;     /* set when a library call failed or a result is not finite */
} bench_run;

typedef void (*bench_fn)(bench_run *run);

typedef struct bench_workload {
  const char *name;
  const char *summary;
  bench_fn fn;
} bench_workload;

/* The registry (workloads.c). */
extern const bench_workload bench_workloads[];
extern const size_t bench_num_workloads;

double bench_now_ms(void);
/* Appends one timing of stage `name` (creates it on first use). */
void bench_record(bench_run *run, const char *name, double ms);
/* median / min / max of a stage */
void bench_stats(const bench_stage *s, double *median, double *min, double *max);

/* Sorts ms[0..n) ascending (for medians of raw timing arrays). */
void bench_sort(double *ms, int n);

/* A sequential splitmix64 stream, for programs that draw numbers in order. */
typedef struct bench_rng {
  uint64_t s;
} bench_rng;
double bench_rng_u01(bench_rng *r);

/* Counter-based uniform in [0, 1): splitmix64 finalizer of (seed * 2^32 + i)
 * times the golden ratio increment; top 53 bits. Python mirror in
 * bench/compare_torchvision.py (bench_u01). */
double bench_u01(uint64_t seed, uint64_t i);
/* Standard normal by Box-Muller from bench_u01(seed, 2i) and (seed, 2i+1). */
double bench_normal(uint64_t seed, uint64_t i);

/* Peak resident set size since the last bench_rss_reset(), in MiB (Linux:
 * VmHWM after writing 5 to /proc/self/clear_refs); -1 where unavailable. */
void bench_rss_reset(void);
double bench_rss_peak_mib(void);
double bench_rss_now_mib(void);

/* The gt boxes of the standard workloads: centres uniform in the image, w
 * and h log-uniform in [16, 512], clipped to the image. out [g][4]. */
void bench_gt_boxes(uint64_t seed, size_t g, float img_h, float img_w, float *out);

#endif /* DETLOSS_BENCH_HARNESS_H */
