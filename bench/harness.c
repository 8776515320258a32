/* harness.c - timing, statistics, memory and input generation for `detloss bench`. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under strict C11 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void bench_record(bench_run *run, const char *name, double ms) {
  bench_stage *s = NULL;
  for (int k = 0; k < run->num_stages; k++)
    if (strcmp(run->stages[k].name, name) == 0) s = &run->stages[k];
  if (!s) {
    if (run->num_stages == BENCH_MAX_STAGES) return;
    s = &run->stages[run->num_stages++];
    s->name = name;
    s->n = 0;
  }
  if (s->n < BENCH_MAX_REPEATS) s->ms[s->n++] = ms;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_sort(double *ms, int n) { qsort(ms, (size_t)n, sizeof(double), cmp_double); }

void bench_stats(const bench_stage *s, double *median, double *min, double *max) {
  double v[BENCH_MAX_REPEATS];
  int n = s->n;
  memcpy(v, s->ms, (size_t)n * sizeof(double));
  bench_sort(v, n);
  *min = n ? v[0] : 0;
  *max = n ? v[n - 1] : 0;
  *median = n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double bench_rng_u01(bench_rng *r) {
  uint64_t z = mix64(r->s += 0x9E3779B97F4A7C15ull);
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

double bench_u01(uint64_t seed, uint64_t i) {
  uint64_t z = mix64(((seed << 32) + i) * 0x9E3779B97F4A7C15ull);
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

double bench_normal(uint64_t seed, uint64_t i) {
  double u1 = bench_u01(seed, 2 * i), u2 = bench_u01(seed, 2 * i + 1);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

static double read_status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double v = -1;
  size_t klen = strlen(key);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, klen) == 0) {
      v = atof(line + klen);
      break;
    }
  fclose(f);
  return v;
}

void bench_rss_reset(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f) return;
  fputs("5", f);
  fclose(f);
}

double bench_rss_peak_mib(void) {
  double k = read_status_kib("VmHWM:");
  return k < 0 ? -1 : k / 1024.0;
}

double bench_rss_now_mib(void) {
  double k = read_status_kib("VmRSS:");
  return k < 0 ? -1 : k / 1024.0;
}

void bench_gt_boxes(uint64_t seed, size_t g, float img_h, float img_w, float *out) {
  const double lo = log(16.0), hi = log(512.0), H = (double)img_h, W = (double)img_w;
  for (size_t i = 0; i < g; i++) {
    double cx = bench_u01(seed, 4 * i) * W, cy = bench_u01(seed, 4 * i + 1) * H;
    double w = exp(lo + (hi - lo) * bench_u01(seed, 4 * i + 2));
    double h = exp(lo + (hi - lo) * bench_u01(seed, 4 * i + 3));
    double x1 = cx - w / 2, y1 = cy - h / 2, x2 = cx + w / 2, y2 = cy + h / 2;
    out[4 * i] = (float)(x1 < 0 ? 0 : x1);
    out[4 * i + 1] = (float)(y1 < 0 ? 0 : y1);
    out[4 * i + 2] = (float)(x2 > W ? W : x2);
    out[4 * i + 3] = (float)(y2 > H ? H : y2);
  }
}
