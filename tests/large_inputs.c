/*
 * large_inputs.c - the large-input check (scripts/run-tests.sh large; not in
 * the fast ctest suite): about 2M anchors from a grid config and 1000 gt
 * boxes. The grid matcher must equal the plain matcher bit for bit, for 1
 * and 2 threads, and the extra memory must stay O(A) (bytes per anchor
 * bounded, never A x G). Then (with the peak RSS reset through
 * /proc/self/clear_refs, so that its peak is its own) the task-aligned assigner on about 2M anchor
 * points against 5,000 gt boxes: identical for 1 and 2 threads, memory O(A + G) (bytes per anchor
 * bounded). Then a COCO instances file of about 120 MB (300,000 annotations with polygons)
 * read as a stream: its peak memory must stay far below the file's size. Prints
 * "large: N passed, M failed". After the data set, a compute case of 1 M anchors
 * and 1 M boxes read from a file: its peak memory per input number is bounded.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, mkstemp under strict C11 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detloss/detloss.h"
#include "detloss/detloss_json.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rss_peak_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double v = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) v = atof(line + 6) / 1024.0;
  if (f) fclose(f);
  return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs);
 * returns 0 when that is not possible (the peak then includes earlier sections). */
static int reset_peak(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f) return 0;
  int ok = fputs("5", f) >= 0;
  return (fclose(f) == 0) && ok;
}

static uint64_t s = 42;
static double u01(void) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}

/* Task-aligned assigner: YOLO-style points at strides 4/8/16 on a 4096 x 6144
 * image (1024x1536 + 512x768 + 256x384 = 2,064,384 points), 5,000 small gts
 * (log-uniform 8..128 px, xView-like), one class. ultralytics semantics with
 * 5,000 gts; TOOD (which scans every predicted box per gt) with 200. */
static void large_task_aligned(int *pass, int *fail) {
  const size_t st[3] = {4, 8, 16}, H = 4096, W = 6144;
  size_t A = 0, lc[3];
  for (int l = 0; l < 3; l++) A += lc[l] = (H / st[l]) * (W / st[l]);
  size_t G = 5000;
  float *pts = malloc(A * 2 * sizeof(float)), *sc = malloc(A * sizeof(float));
  float *pred = malloc(A * 4 * sizeof(float)), *gt = malloc(G * 4 * sizeof(float));
  int64_t *lab = calloc(G, sizeof(int64_t));
  int64_t *ag1 = malloc(A * sizeof(int64_t)), *ag2 = malloc(A * sizeof(int64_t));
  float *ts1 = malloc(A * sizeof(float)), *ts2 = malloc(A * sizeof(float));
  size_t a = 0;
  for (int l = 0; l < 3; l++)
    for (size_t i = 0; i < H / st[l]; i++)
      for (size_t j = 0; j < W / st[l]; j++, a++) {
        float x = ((float)j + 0.5f) * (float)st[l], y = ((float)i + 0.5f) * (float)st[l];
        float w = (float)(8 + 56 * u01()), h = (float)(8 + 56 * u01());
        pts[2 * a] = x;
        pts[2 * a + 1] = y;
        pred[4 * a] = x - w / 2;
        pred[4 * a + 1] = y - h / 2;
        pred[4 * a + 2] = x + w / 2;
        pred[4 * a + 3] = y + h / 2;
        sc[a] = (float)u01();
      }
  for (size_t g = 0; g < G; g++) {
    double cx = u01() * (double)W, cy = u01() * (double)H;
    double w = exp(log(8.0) + u01() * log(16.0)), h = exp(log(8.0) + u01() * log(16.0));
    gt[4 * g] = (float)(cx - w / 2);
    gt[4 * g + 1] = (float)(cy - h / 2);
    gt[4 * g + 2] = (float)(cx + w / 2);
    gt[4 * g + 3] = (float)(cy + h / 2);
  }
  memset(ag1, 0, A * sizeof(int64_t));
  memset(ag2, 0, A * sizeof(int64_t));
  memset(ts1, 0, A * sizeof(float));
  memset(ts2, 0, A * sizeof(float));
  if (!reset_peak())
    printf("large: cannot reset the peak RSS: task_aligned's includes the matcher's\n");
  double base = rss_peak_mib();
  for (int tood = 0; tood < 2; tood++) {
    detloss_task_aligned_options o =
        tood ? detloss_task_aligned_options_tood() : detloss_task_aligned_options_default();
    size_t Gs = tood ? 200 : G;
    detloss_error err;
    double t[3];
    detloss_status s1, s2;
    o.num_threads = 1;
    t[0] = now_s();
    s1 = detloss_assign_task_aligned(pts, A, lc, 3, sc, 1, pred, gt, lab, Gs, ag1, NULL, ts1, NULL,
                                     &o, &err);
    t[1] = now_s();
    o.num_threads = 2;
    s2 = detloss_assign_task_aligned(pts, A, lc, 3, sc, 1, pred, gt, lab, Gs, ag2, NULL, ts2, NULL,
                                     &o, &err);
    t[2] = now_s();
    size_t pos = 0;
    for (a = 0; a < A; a++) pos += ag1[a] >= 0;
    int ok = s1 == DETLOSS_OK && s2 == DETLOSS_OK && pos > 0 &&
             memcmp(ag1, ag2, A * sizeof(int64_t)) == 0 && memcmp(ts1, ts2, A * sizeof(float)) == 0;
    printf(
        "large: task_aligned %s, %zu points x %zu gt: 1 thread %.3f s, 2 threads %.3f s, %zu "
        "positives: %s\n",
        tood ? "tood" : "ultralytics", A, Gs, t[1] - t[0], t[2] - t[1], pos,
        ok ? "identical" : "DIFFERENT");
    ok ? (*pass)++ : (*fail)++;
  }
  double extra = rss_peak_mib() - base, per_anchor = extra * 1048576.0 / (double)A;
  int mem_ok = per_anchor < 64.0;
  printf(
      "large: task_aligned scratch %.1f MiB above the inputs and outputs (%.1f bytes per "
      "point, bound 64; A x G floats would be %.0f GiB): %s\n",
      extra, per_anchor, (double)A * (double)G * 4.0 / 1073741824.0,
      mem_ok ? "O(A + G)" : "TOO MUCH");
  mem_ok ? (*pass)++ : (*fail)++;
  free(pts), free(sc), free(pred), free(gt), free(lab), free(ag1), free(ag2), free(ts1), free(ts2);
}

/* A 300,000-annotation instances file read by detloss_dataset_load: the
 * counts and one box, and at most 48 MiB above the peak before (the boxes
 * take 300,000 x 25 bytes; a cJSON tree of the file took over 1 GiB). */
static int dataset_stream_check(void) {
  const size_t ni = 20000, na = 300000;
  char path[] = "/tmp/detloss_large_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) return printf("large: cannot create a temporary file\n"), 0;
  fprintf(f, "{\"info\": {\"description\": \"large_inputs\"}, \"images\": [");
  for (size_t i = 0; i < ni; i++)
    fprintf(f, "%s{\"id\": %zu, \"width\": 640, \"height\": 480, \"file_name\": \"%zu.jpg\"}",
            i ? ",\n" : "", i + 1, i + 1);
  fprintf(f, "], \"annotations\": [");
  for (size_t a = 0; a < na; a++) {
    fprintf(f,
            "%s{\"id\": %zu, \"image_id\": %zu, \"bbox\": [%zu.5, 2.25, 10, 20], "
            "\"segmentation\": [[",
            a ? ",\n" : "", a + 1, 1 + a % ni, a % 600);
    for (int k = 0; k < 40; k++) fprintf(f, "%s%.2f", k ? ", " : "", 100.0 + k * 1.25);
    fprintf(f, "]], \"iscrowd\": 0, \"area\": 200.0, \"category_id\": 1}");
  }
  fprintf(f, "], \"categories\": []}\n");
  long bytes = ftell(f);
  fclose(f);
  double before = rss_peak_mib(), t0 = now_s();
  detloss_dataset *ds = NULL;
  detloss_error err;
  detloss_status st = detloss_dataset_load(path, &ds, &err);
  double secs = now_s() - t0, grew = rss_peak_mib() - before;
  remove(path);
  if (st != DETLOSS_OK) return printf("large: dataset: %s: %s\n", err.where, err.msg), 0;
  /* annotation 0: image 1, bbox [0.5, 2.25, 10, 20] -> [0.5, 2.25, 10.5, 22.25] */
  int ok = ds->num_images == ni && ds->num_boxes == na && ds->boxes[0] == 0.5f &&
           ds->boxes[2] == 10.5f && ds->boxes[3] == 22.25f && grew <= 48.0;
  printf(
      "large: data set of %.0f MB read in %.2f s, peak memory %.1f MiB above before "
      "(bound 48): %s\n",
      (double)bytes / 1e6, secs, grew, ok ? "ok" : "FAILED");
  detloss_dataset_free(ds);
  return ok;
}

/* One `detloss compute` case of op encode with 1 M anchors and 1 M boxes (8 M
 * numbers, about 60 MB of text) read from a file by detloss_compute_json_file:
 * the first and last rows of the result equal detloss_box_encode of those
 * rows, and the peak memory above the RSS before stays under 40 bytes per
 * input number (a cJSON tree took about 100: bench/compute_memory.md). */
static void row_text(char *buf, size_t cap, const float *r) {
  size_t len = 0;
  for (int k = 0; k < 4; k++) {
    if (r[k] == 0.0f)
      len += (size_t)snprintf(buf + len, cap - len, "%s0", k ? "," : "");
    else
      len += (size_t)snprintf(buf + len, cap - len, "%s%.9g", k ? "," : "", (double)r[k]);
  }
}

static int compute_large_check(void) {
  const size_t n = 1000000;
  char path[] = "/tmp/detloss_large_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "w+") : NULL;
  if (!f) return printf("large: cannot create a temporary file\n"), 0;
  float first[2][4], last[2][4];
  fprintf(f, "{\"op\": \"encode\", \"anchors\": [");
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < n; i++) {
      /* anchors: 16.75 x 24.5 px on a 1000-column grid; boxes: shifted, grown */
      double x = (double)(i % 1000) + 0.25 * pass, y = (double)(i / 1000 % 1000) + 0.5;
      double w = 16.75 + (double)(i % 7) * pass, h = 24.5 + (double)(i % 5) * 0.25 * pass;
      fprintf(f, "%s[%.2f,%.2f,%.2f,%.2f]", i ? "," : "", x, y, x + w, y + h);
      float r[4] = {(float)x, (float)y, (float)(x + w), (float)(y + h)};
      if (i == 0) memcpy(first[pass], r, sizeof r);
      if (i == n - 1) memcpy(last[pass], r, sizeof r);
    }
    fprintf(f, pass ? "]}\n" : "], \"boxes\": [");
  }
  long bytes = ftell(f);
  rewind(f);
  int reset = reset_peak();
  double before = rss_peak_mib(), t0 = now_s();
  char *out = NULL;
  size_t out_len = 0;
  detloss_error err;
  detloss_compute_options o = DETLOSS_COMPUTE_OPTIONS_INIT;
  o.num_threads = 2;
  detloss_status st = detloss_compute_json_file(f, path, &out, &out_len, &o, &err);
  double secs = now_s() - t0, grew = rss_peak_mib() - before;
  fclose(f);
  remove(path);
  if (st != DETLOSS_OK) return printf("large: compute: %s: %s\n", err.where, err.msg), 0;
  /* the rows read as floats, parsed from "%.2f" as the reader does */
  float d0[4], d1[4], a[2][4], b[2][4];
  for (int k = 0; k < 4; k++) {
    char t[32];
    snprintf(t, sizeof t, "%.2f", (double)first[0][k]);
    a[0][k] = (float)strtod(t, NULL);
    snprintf(t, sizeof t, "%.2f", (double)first[1][k]);
    b[0][k] = (float)strtod(t, NULL);
    snprintf(t, sizeof t, "%.2f", (double)last[0][k]);
    a[1][k] = (float)strtod(t, NULL);
    snprintf(t, sizeof t, "%.2f", (double)last[1][k]);
    b[1][k] = (float)strtod(t, NULL);
  }
  int ok = detloss_box_encode(a[0], b[0], 1, d0, NULL, NULL) == DETLOSS_OK &&
           detloss_box_encode(a[1], b[1], 1, d1, NULL, NULL) == DETLOSS_OK;
  char want0[160], want1[160], head[200], tail[200];
  row_text(want0, sizeof want0, d0);
  row_text(want1, sizeof want1, d1);
  snprintf(head, sizeof head, "{\"op\":\"encode\",\"deltas\":[[%s],", want0);
  snprintf(tail, sizeof tail, ",[%s]]}\n", want1);
  ok = ok && strncmp(out, head, strlen(head)) == 0 && out_len > strlen(tail) &&
       strcmp(out + out_len - strlen(tail), tail) == 0;
  double per_number = grew * 1048576.0 / (8.0 * (double)n);
  int mem_ok = reset && per_number < 40.0;
  printf(
      "large: compute encode %zu + %zu boxes (%.0f MB of text) in %.2f s, %s, peak memory %.1f "
      "MiB above before (%.1f bytes per input number, bound 40)%s: %s\n",
      n, n, (double)bytes / 1e6, secs, ok ? "rows ok" : "ROWS WRONG", grew, per_number,
      reset ? "" : " [peak reset unavailable]", ok && mem_ok ? "ok" : "FAILED");
  free(out);
  return ok && mem_ok;
}

int main(void) {
  int pass = 0, fail = 0;
  dataset_stream_check() ? pass++ : fail++; /* first: its peak is measured from the start */
  compute_large_check() ? pass++ : fail++;
  /* 2048 x 2048 image, strides 4 and 8, sizes {32, 48} / {64, 96}, ratios
   * 0.5/1/2: 512^2*6 + 256^2*6 = 1,966,080 anchors. */
  const float ratios[3] = {0.5f, 1.0f, 2.0f}, s0[2] = {32, 48}, s1[2] = {64, 96};
  detloss_anchor_level lv[2];
  memset(lv, 0, sizeof lv);
  lv[0].feat_h = lv[0].feat_w = 512;
  lv[0].stride_h = lv[0].stride_w = 4;
  lv[0].sizes = s0;
  lv[0].num_sizes = 2;
  lv[0].ratios = ratios;
  lv[0].num_ratios = 3;
  lv[1] = lv[0];
  lv[1].feat_h = lv[1].feat_w = 256;
  lv[1].stride_h = lv[1].stride_w = 8;
  lv[1].sizes = s1;
  detloss_anchor_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.levels = lv;
  cfg.num_levels = 2;
  cfg.convention = DETLOSS_ANCHORS_TORCHVISION;
  detloss_error err;
  size_t A = 0;
  if (detloss_anchors_count(&cfg, &A, &err) != DETLOSS_OK) {
    printf("anchors_count: %s: %s\n", err.where, err.msg);
    return 1;
  }
  float *anchors = malloc(A * 4 * sizeof(float));
  detloss_anchors_generate(&cfg, anchors, A, &err);
  size_t G = 1000;
  float *gt = malloc(G * 4 * sizeof(float));
  for (size_t g = 0; g < G; g++) {
    double cx = u01() * 2048, cy = u01() * 2048;
    double w = exp(log(8.0) + u01() * log(64.0)), h = exp(log(8.0) + u01() * log(64.0));
    gt[4 * g] = (float)fmax(0, cx - w / 2);
    gt[4 * g + 1] = (float)fmax(0, cy - h / 2);
    gt[4 * g + 2] = (float)fmin(2048, cx + w / 2);
    gt[4 * g + 3] = (float)fmin(2048, cy + h / 2);
  }
  int64_t *m_plain = malloc(A * sizeof(int64_t)), *m_grid = malloc(A * sizeof(int64_t));
  float *v_plain = malloc(A * sizeof(float)), *v_grid = malloc(A * sizeof(float));
  double base = rss_peak_mib();
  for (int threads = 1; threads <= 2; threads++) {
    detloss_match_options o = detloss_match_options_default();
    o.num_threads = threads;
    double t0 = now_s();
    detloss_status st1 = detloss_match(anchors, A, gt, G, NULL, m_plain, v_plain, &o, &err);
    double t1 = now_s();
    detloss_status st2 = detloss_match_grid(&cfg, gt, G, NULL, m_grid, v_grid, A, &o, &err);
    double t2 = now_s();
    int ok = st1 == DETLOSS_OK && st2 == DETLOSS_OK &&
             memcmp(m_plain, m_grid, A * sizeof(int64_t)) == 0 &&
             memcmp(v_plain, v_grid, A * sizeof(float)) == 0;
    size_t pos = 0;
    for (size_t a = 0; a < A; a++) pos += m_grid[a] >= 0;
    printf(
        "large: %zu anchors x %zu gt, %d thread(s): plain %.2f s, grid %.3f s, %zu matched: %s\n",
        A, G, threads, t1 - t0, t2 - t1, pos, ok ? "identical" : "DIFFERENT");
    ok ? pass++ : fail++;
  }
  /* O(A) memory: the inputs and outputs above are ~26 bytes per anchor; the
   * matcher's scratch must not add anything like A x G (2 G floats = 8 GB). */
  double peak = rss_peak_mib(), extra = peak - base;
  double per_anchor = extra * 1048576.0 / (double)A;
  int mem_ok = per_anchor < 64.0;
  printf(
      "large: peak RSS %.0f MiB, %.1f MiB above the inputs, outputs included (%.1f bytes per "
      "anchor, bound 64): %s\n",
      peak, extra, per_anchor, mem_ok ? "O(A)" : "TOO MUCH");
  mem_ok ? pass++ : fail++;

  /* ATSS and FCOS (assign_atss.c, assign_fcos.c) on the same anchors with 5,000 gts: 1 and 2
   * threads identical, and the rise of the peak RSS bounded per anchor (no A x G). */
  size_t G5 = 5000;
  float *gt5 = malloc(G5 * 4 * sizeof(float));
  for (size_t g = 0; g < G5; g++) {
    double cx = u01() * 2048, cy = u01() * 2048;
    double w = exp(log(8.0) + u01() * log(64.0)), h = exp(log(8.0) + u01() * log(64.0));
    gt5[4 * g] = (float)(cx - w / 2);
    gt5[4 * g + 1] = (float)(cy - h / 2);
    gt5[4 * g + 2] = (float)(cx + w / 2);
    gt5[4 * g + 3] = (float)(cy + h / 2);
  }
  size_t lc[2] = {512 * 512 * 6, 256 * 256 * 6};
  double before = rss_peak_mib();
  int same = 1;
  for (int threads = 1; threads <= 2; threads++) {
    detloss_atss_options o = detloss_atss_options_default();
    o.num_threads = threads;
    double t0 = now_s();
    detloss_status st =
        detloss_atss_assign(anchors, A, lc, 2, gt5, G5, NULL, 0, threads == 1 ? m_plain : m_grid,
                            threads == 1 ? v_plain : v_grid, &o, &err);
    size_t pos = 0;
    for (size_t a = 0; a < A; a++) pos += (threads == 1 ? m_plain : m_grid)[a] >= 0;
    printf("large: atss %zu anchors x %zu gt, %d thread(s): %.3f s, %zu positives%s\n", A, G5,
           threads, now_s() - t0, pos, st == DETLOSS_OK ? "" : " ERROR");
    same &= st == DETLOSS_OK;
  }
  same &= memcmp(m_plain, m_grid, A * sizeof(int64_t)) == 0 &&
          memcmp(v_plain, v_grid, A * sizeof(float)) == 0;
  /* FCOS: 1024 x 1024 and 512 x 512 points (strides 2, 4) = 1,310,720, centre sampling */
  size_t P = 1024 * 1024 + 512 * 512, plc[2] = {1024 * 1024, 512 * 512};
  float *pts = malloc(P * 2 * sizeof(float)), *bt = malloc(P * 4 * sizeof(float));
  const float strides[2] = {2, 4}, ranges[4] = {-1, 32, 32, 1e8f};
  size_t k = 0;
  for (int l = 0; l < 2; l++) {
    size_t n = l == 0 ? 1024 : 512;
    for (size_t y = 0; y < n; y++)
      for (size_t x = 0; x < n; x++) {
        pts[2 * k] = ((float)x + 0.5f) * strides[l];
        pts[2 * k + 1] = ((float)y + 0.5f) * strides[l];
        k++;
      }
  }
  for (int threads = 1; threads <= 2; threads++) {
    detloss_fcos_options o = detloss_fcos_options_default();
    o.num_threads = threads;
    o.regress_ranges = ranges;
    o.center_sampling = 1;
    double t0 = now_s();
    detloss_status st =
        detloss_fcos_targets(pts, P, plc, strides, 2, gt5, G5, threads == 1 ? m_plain : m_grid, bt,
                             threads == 1 ? v_plain : v_grid, &o, &err);
    size_t pos = 0;
    for (size_t a = 0; a < P; a++) pos += (threads == 1 ? m_plain : m_grid)[a] >= 0;
    printf("large: fcos %zu points x %zu gt, %d thread(s): %.3f s, %zu positives%s\n", P, G5,
           threads, now_s() - t0, pos, st == DETLOSS_OK ? "" : " ERROR");
    same &= st == DETLOSS_OK;
  }
  same &= memcmp(m_plain, m_grid, P * sizeof(int64_t)) == 0 &&
          memcmp(v_plain, v_grid, P * sizeof(float)) == 0;
  printf("large: atss / fcos for 1 and 2 threads: %s\n", same ? "identical" : "DIFFERENT");
  same ? pass++ : fail++;
  double rise = (rss_peak_mib() - before) * 1048576.0 / (double)A;
  int rise_ok = rise < 64.0;
  printf(
      "large: atss / fcos peak RSS rise %.1f bytes per anchor (bound 64; A x G would be "
      "20,000): %s\n",
      rise, rise_ok ? "O(A)" : "TOO MUCH");
  rise_ok ? pass++ : fail++;
  free(gt5);
  free(pts);
  free(bt);
  printf("large: %d passed, %d failed\n", pass, fail);
  free(anchors);
  free(gt);
  free(m_plain);
  free(m_grid);
  free(v_plain);
  free(v_grid);
  large_task_aligned(&pass, &fail);
  printf("large: %d passed, %d failed\n", pass, fail);
  return fail ? 1 : 0;
}
