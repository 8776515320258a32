/*
 * bench_match.c - matching throughput on torchvision's FPN anchors of one 800x1344 image.
 *
 * Workload: AnchorGenerator(sizes ((32,),(64,),(128,),(256,),(512,)),
 * ratios (0.5,1,2)) on feature maps 200x336, 100x168, 50x84, 25x42, 13x21 (strides
 * image // feature, as torchvision: 4, 8, 16, 32 and 61x64), 268,569 anchors; G gt
 * boxes with uniform centres and log-uniform sides in [16, 512], clipped to the image.
 * Matcher(0.7, 0.3, allow_low_quality) semantics.
 *
 *   bench_match [--threads N] [--reps R] [--G n] [--seed s] [--gt FILE] [--dump FILE]
 * --gt reads "G" then 4G numbers (so bench/compare_match.py can feed torch the same
 * boxes); --dump writes the matches, one per line. Prints one JSON object:
 * median milliseconds of the plain path (anchors given) and of the grid path (anchors
 * generated on the fly), the peak extra heap of each call (counted exactly through
 * malloc wrappers), and the growth of the peak RSS (coarse: the kernel updates it lazily).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "detloss/detloss.h"
#include "harness.h"

static long maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}
static bench_rng rng;
static double urand(void) { return bench_rng_u01(&rng); }
/* Heap accounting: the bench links with -Wl,--wrap=malloc,... (bench/CMakeLists.txt), so
 * every allocation of the statically linked library passes through these wrappers, which
 * track the live bytes and their peak. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
static size_t live_bytes, peak_bytes;
#define HDR 16
void *__wrap_malloc(size_t n) {
  char *p = __real_malloc(n + HDR);
  if (!p) return NULL;
  memcpy(p, &n, sizeof n);
  live_bytes += n;
  if (live_bytes > peak_bytes) peak_bytes = live_bytes;
  return p + HDR;
}
void *__wrap_calloc(size_t n, size_t m) {
  void *p = __wrap_malloc(n * m);
  if (p) memset(p, 0, n * m);
  return p;
}
void __wrap_free(void *p) {
  if (!p) return;
  char *q = (char *)p - HDR;
  size_t n;
  memcpy(&n, q, sizeof n);
  live_bytes -= n;
  __real_free(q);
}
void *__wrap_realloc(void *p, size_t n) {
  if (!p) return __wrap_malloc(n);
  size_t old;
  memcpy(&old, (char *)p - HDR, sizeof old);
  void *q = __wrap_malloc(n);
  if (q) memcpy(q, p, old < n ? old : n);
  __wrap_free(p);
  return q;
}

int main(int argc, char **argv) {
  int threads = 2, reps = 21;
  size_t G = 20;
  uint64_t seed = 1;
  const char *gt_file = NULL, *dump = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--threads"))
      threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps"))
      reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--G"))
      G = (size_t)atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--seed"))
      seed = (uint64_t)atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--gt"))
      gt_file = argv[i + 1];
    else if (!strcmp(argv[i], "--dump"))
      dump = argv[i + 1];
  }
  const int H = 800, W = 1344;
  float sizes[5] = {32, 64, 128, 256, 512}, ratios[3] = {0.5f, 1.0f, 2.0f};
  size_t fh[5] = {200, 100, 50, 25, 13}, fw[5] = {336, 168, 84, 42, 21};
  detloss_anchor_level lv[5];
  for (int l = 0; l < 5; l++) {
    memset(&lv[l], 0, sizeof lv[l]);
    lv[l].feat_h = fh[l];
    lv[l].feat_w = fw[l];
    lv[l].stride_h = (float)(H / (int)fh[l]);
    lv[l].stride_w = (float)(W / (int)fw[l]);
    lv[l].sizes = &sizes[l];
    lv[l].num_sizes = 1;
    lv[l].ratios = ratios;
    lv[l].num_ratios = 3;
  }
  detloss_anchor_config cfg = {lv, 5, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  size_t A;
  detloss_error err;
  if (detloss_anchors_count(&cfg, &A, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
  float *anchors = malloc(A * 4 * sizeof(float));
  detloss_anchors_generate(&cfg, anchors, A, NULL);

  float *gt;
  if (gt_file) {
    FILE *f = fopen(gt_file, "r");
    if (!f || fscanf(f, "%zu", &G) != 1) return fprintf(stderr, "bad --gt file\n"), 1;
    gt = malloc((G ? G : 1) * 4 * sizeof(float));
    for (size_t i = 0; i < 4 * G; i++)
      if (fscanf(f, "%f", &gt[i]) != 1) return fprintf(stderr, "bad --gt file\n"), 1;
    fclose(f);
  } else {
    rng.s = seed;
    gt = malloc((G ? G : 1) * 4 * sizeof(float));
    for (size_t g = 0; g < G; g++) {
      double cx = urand() * W, cy = urand() * H;
      double w = exp(log(16.0) + urand() * (log(512.0) - log(16.0)));
      double h = exp(log(16.0) + urand() * (log(512.0) - log(16.0)));
      gt[4 * g + 0] = (float)fmax(0.0, cx - w / 2);
      gt[4 * g + 1] = (float)fmax(0.0, cy - h / 2);
      gt[4 * g + 2] = (float)fmin((double)W, cx + w / 2);
      gt[4 * g + 3] = (float)fmin((double)H, cy + h / 2);
    }
  }
  int64_t *m = malloc(A * sizeof *m), *m2 = malloc(A * sizeof *m2);
  float *mi = malloc(A * sizeof *mi), *mi2 = malloc(A * sizeof *mi2);
  memset(m, 0, A * sizeof *m);
  memset(m2, 0, A * sizeof *m2);
  memset(mi, 0, A * sizeof *mi);
  memset(mi2, 0, A * sizeof *mi2);
  detloss_match_options o = detloss_match_options_default();
  o.num_threads = threads;

  long rss0 = maxrss_kb();
  size_t base_bytes = live_bytes, peak_plain = 0, peak_grid = 0;
  double *tp = malloc((size_t)reps * sizeof(double)), *tg = malloc((size_t)reps * sizeof(double));
  for (int r = 0; r < reps; r++) {
    peak_bytes = live_bytes;
    double t0 = bench_now_ms();
    if (detloss_match(anchors, A, gt, G, NULL, m, mi, &o, &err))
      return fprintf(stderr, "%s\n", err.msg), 1;
    double t1 = bench_now_ms();
    if (peak_bytes - base_bytes > peak_plain) peak_plain = peak_bytes - base_bytes;
    peak_bytes = live_bytes;
    if (detloss_match_grid(&cfg, gt, G, NULL, m2, mi2, A, &o, &err))
      return fprintf(stderr, "%s\n", err.msg), 1;
    double t2 = bench_now_ms();
    if (peak_bytes - base_bytes > peak_grid) peak_grid = peak_bytes - base_bytes;
    tp[r] = t1 - t0;
    tg[r] = t2 - t1;
  }
  long rss1 = maxrss_kb();
  int same = memcmp(m, m2, A * sizeof *m) == 0 && memcmp(mi, mi2, A * sizeof *mi) == 0;
  bench_sort(tp, reps);
  bench_sort(tg, reps);
  size_t npos = 0, nneg = 0;
  for (size_t a = 0; a < A; a++) npos += m[a] >= 0, nneg += m[a] == -1;
  if (dump) {
    FILE *f = fopen(dump, "w");
    for (size_t a = 0; a < A; a++) fprintf(f, "%lld\n", (long long)m[a]);
    fclose(f);
  }
  printf(
      "{\"anchors\": %zu, \"gt\": %zu, \"threads\": %d, \"openmp\": %d, \"reps\": %d, "
      "\"plain_ms\": %.4f, \"grid_ms\": %.4f, \"plain_min_ms\": %.4f, \"grid_min_ms\": %.4f, "
      "\"grid_equals_plain\": %s, \"num_pos\": %zu, \"num_neg\": %zu, "
      "\"peak_rss_growth_kb\": %ld, \"peak_extra_heap_plain_bytes\": %zu, "
      "\"peak_extra_heap_grid_bytes\": %zu, \"outputs_bytes\": %zu}\n",
      A, G, threads, detloss_has_openmp(), reps, tp[reps / 2], tg[reps / 2], tp[0], tg[0],
      same ? "true" : "false", npos, nneg, rss1 - rss0, peak_plain, peak_grid,
      A * (sizeof(int64_t) + sizeof(float)));
  free(tp);
  free(tg);
  free(anchors);
  free(gt);
  free(m);
  free(m2);
  free(mi);
  free(mi2);
  return same ? 0 : 1;
}
