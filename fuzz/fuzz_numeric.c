/*
 * fuzz_numeric.c - libFuzzer target: the numeric API fed adversarial floats
 * (NaN, +-Inf, denormals, huge and tiny values, degenerate and inverted
 * boxes, empty inputs) straight from the fuzzer's bytes.
 *
 * Input: byte 0 picks the function (and, with its top bit, "moderate" mode,
 * where every float is mapped to a finite value of magnitude < 1600 so the
 * deep numeric paths are reached instead of the validation); bytes 1-2 the
 * sizes; bytes 3-7 parameters; the rest is float data (cycled).
 * Functions (byte 0 mod 10): IoU matrices, pairs and areas, encode / decode,
 * matching, element-wise, class-indexed, box and embedding losses, sampling,
 * and 9: the quality losses QFL / DFL / VFL (quality_losses below) or empty
 * inputs.
 *
 * Oracles (the library's documented contract):
 *   - no crash, no sanitizer report;
 *   - the status is OK or an input-fault class, never NOMEM, IO or
 *     UNSUPPORTED, and an error fills err properly (fuzz_oracle.h);
 *   - on error, every output buffer is untouched (sentinel-filled) and err
 *     names a place;
 *   - on success with all-finite inputs, no output is NaN; in moderate mode
 *     no output is NaN or infinite.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss.h"
#include "fuzz_oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SENTINEL 12345.678f
#define MAXN 16
#define MAXM 8

typedef struct src {
  const uint8_t *p;
  size_t n, pos;
  int moderate;
} src;

static float next_float(src *s) {
  uint32_t bits = 0;
  for (int k = 0; k < 4; k++) bits |= (uint32_t)(s->n ? s->p[(s->pos++) % s->n] : 0) << (8 * k);
  if (s->moderate) return (float)((int32_t)(bits % 200001u) - 100000) / 64.0f;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static void fill(src *s, float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = next_float(s);
}

/* floor(|x|) mod k, for any float (0 for NaN/Inf). */
static unsigned small_mod(float x, unsigned k) {
  if (!isfinite(x)) return 0;
  return (unsigned)fmod(fabs((double)x), (double)k);
}

static int all_finite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

static void sentinel(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = SENTINEL;
}

/* The oracle for one call whose outputs are out[0..k) of lengths len[]. */
static void check(detloss_status st, const detloss_error *err, int inputs_finite, int moderate,
                  float *const *out, const size_t *len, int k) {
  fuzz_check_status("fuzz_numeric", "call", st, err, 0);
  for (int j = 0; j < k; j++) {
    if (!out[j]) continue;
    for (size_t i = 0; i < len[j]; i++) {
      float v = out[j][i];
      if (st != DETLOSS_OK) {
        if (memcmp(&v, &(float){SENTINEL}, 4) != 0)
          fuzz_fail("fuzz_numeric", "output %d[%zu] written on error (status %d)", j, i, (int)st);
      } else if (inputs_finite && (isnan(v) || (moderate && !isfinite(v)))) {
        /* NaN from finite input, or Inf from moderate input */
        fuzz_fail("fuzz_numeric", "output %d[%zu] = %g from finite input", j, i, (double)v);
      }
    }
  }
}

/*
 * The quality losses: QFL and DFL (detloss_loss_rows), VFL
 * (detloss_loss_elementwise). which: 0 QFL, 1 DFL, 2 VFL. p1 bit 0: valid
 * targets (QFL / VFL scores in [0, 1] in tenths, DFL bin positions in
 * quarters of [0, c-1]); bit 1: QFL activated (inputs mapped into [0, 1] with
 * bit 0), VFL iou_weighted; bit 2: weights; bit 3: no gradient; bit 4:
 * "bounded" mode, the documented promise of these kernels: logits in
 * [-100, 100], weights in [-4, 4], and then no output may be NaN or infinite
 * for any gamma / beta >= 0, whatever the mode; bit 5: DFL targets just below
 * c-1, VFL detach_weight. gamma and beta (p3) run over [0, 4) in 1/16 steps
 * (0, the kink below 1, the default 2); VFL alpha (p2) over [0, 2).
 */
static void quality_losses(src *s, unsigned which, size_t n, size_t m, uint8_t p1, uint8_t p2,
                           uint8_t p3, float *o1, float *o2) {
  float x[4 * MAXN], y[4 * MAXN], w[4 * MAXN];
  const int bounded = (p1 & 16) != 0;
  detloss_loss_kind k = which == 0   ? DETLOSS_LOSS_QUALITY_FOCAL
                        : which == 1 ? DETLOSS_LOSS_DISTRIBUTION_FOCAL
                                     : DETLOSS_LOSS_VARIFOCAL;
  /* QFL: c classes (1..8); DFL: c bins (2..17: GFL's 17 and ultralytics' 16 included) */
  size_t c = which == 1 ? 2 + (size_t)(p2 >> 2) % 16 : (m ? m : 1);
  size_t rows = which == 2 ? 4 * n : (n < 4 * MAXN / c ? n : 4 * MAXN / c);
  size_t len = which == 2 ? rows : rows * c, ylen = which == 1 ? rows : len;
  fill(s, x, len);
  fill(s, y, ylen);
  fill(s, w, rows);
  if (bounded) {
    for (size_t i = 0; i < len; i++)
      x[i] = isfinite(x[i]) ? (float)fmod((double)x[i], 100.0) : x[i];
    for (size_t i = 0; i < rows; i++) w[i] = isfinite(w[i]) ? (float)fmod((double)w[i], 4.0) : w[i];
  }
  if (p1 & 1) {
    for (size_t i = 0; i < ylen; i++)
      y[i] = which == 1 ? ((p1 & 32) ? nextafterf((float)(c - 1), 0.0f)
                                     : (float)small_mod(y[i], 4 * (unsigned)(c - 1) + 1) / 4.0f)
                        : (float)small_mod(y[i], 11) / 10.0f;
    if (which == 0 && (p1 & 2))
      for (size_t i = 0; i < len; i++) x[i] = (float)small_mod(x[i], 11) / 10.0f;
  }
  detloss_loss_options o = detloss_loss_options_default(k);
  o.num_threads = 1;
  o.reduction = (detloss_reduction)(p2 % 3);
  o.gamma = (float)(p3 % 64) / 16.0f;
  o.beta = (float)(p3 % 64) / 16.0f;
  o.alpha = (float)((p2 >> 2) % 8) / 4.0f;
  o.activated = which == 0 && (p1 & 2);
  o.iou_weighted = (p1 & 2) != 0;
  o.detach_weight = (p1 & 32) != 0;
  const float *wp = (p1 & 4) ? w : NULL;
  float *gp = (p1 & 8) ? NULL : o2;
  size_t outlen = o.reduction == DETLOSS_REDUCTION_NONE ? rows : 1;
  detloss_error err;
  fuzz_error_init(&err);
  detloss_status st = which == 2 ? detloss_loss_elementwise(k, x, y, wp, len, o1, gp, &o, &err)
                                 : detloss_loss_rows(k, x, y, wp, rows, c, o1, gp, &o, &err);
  float *outs[2] = {o1, gp};
  size_t lens[2] = {outlen, len};
  int fin = all_finite(x, len) && all_finite(y, ylen) && (!wp || all_finite(w, rows));
  check(st, &err, fin, s->moderate || bounded, outs, lens, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  src s = {data + 8, size - 8, 0, (data[0] & 0x80) != 0};
  unsigned op = data[0] & 0x7f;
  size_t n = data[1] % (MAXN + 1), m = data[2] % (MAXM + 1);
  uint8_t p0 = data[3], p1 = data[4], p2 = data[5], p3 = data[6];
  int mod = s.moderate;

  float a[4 * MAXN], b[4 * MAXN], c3[4 * MAXN], o1[MAXN * MAXN * 4], o2[4 * MAXN * MAXN],
      o3[4 * MAXN * MAXN], o4[4 * MAXN];
  detloss_error err;
  fuzz_error_init(&err);
  sentinel(o1, sizeof o1 / 4);
  sentinel(o2, sizeof o2 / 4);
  sentinel(o3, sizeof o3 / 4);
  sentinel(o4, sizeof o4 / 4);

  switch (op % 10) {
    case 0: { /* IoU-family matrix */
      fill(&s, a, 4 * n);
      fill(&s, b, 4 * m);
      detloss_iou_options o = detloss_iou_options_default();
      o.num_threads = 1;
      if (p1 & 1) o.eps = next_float(&s);
      detloss_status st = detloss_iou_matrix((detloss_iou_kind)(p0 % 5), a, n, b, m, o1, &o, &err);
      size_t len = n * m;
      float *outs[1] = {o1};
      check(st, &err, all_finite(a, 4 * n) && all_finite(b, 4 * m), mod, outs, &len, 1);
      break;
    }
    case 1: { /* pairs, area */
      fill(&s, a, 4 * n);
      fill(&s, b, 4 * n);
      detloss_status st = detloss_iou_pairs((detloss_iou_kind)(p0 % 4), a, b, n, o1, NULL, &err);
      size_t len = n;
      float *outs[1] = {o1};
      check(st, &err, all_finite(a, 4 * n) && all_finite(b, 4 * n), mod, outs, &len, 1);
      sentinel(o2, n);
      fuzz_error_init(&err);
      st = detloss_box_area(a, n, o2, &err);
      outs[0] = o2;
      check(st, &err, all_finite(a, 4 * n), mod, outs, &len, 1);
      break;
    }
    case 2: { /* encode / decode */
      fill(&s, a, 4 * n);
      fill(&s, b, 4 * n);
      detloss_coder_options o = detloss_coder_options_default();
      o.num_threads = 1;
      if (p0 & 1)
        for (int k = 0; k < 4; k++) o.weights[k] = (float)(1 + (p1 >> k) % 10);
      if (p0 & 2) o.clip = (float)p2 / 16.0f;
      detloss_status st = (p0 & 4) ? detloss_box_decode(a, b, n, o1, &o, &err)
                                   : detloss_box_encode(a, b, n, o1, &o, &err);
      size_t len = 4 * n;
      float *outs[1] = {o1};
      /* decode of finite input may not overflow silently: it is an error */
      check(st, &err, all_finite(a, 4 * n) && all_finite(b, 4 * n), 1, outs, &len, 1);
      break;
    }
    case 3: { /* matching */
      fill(&s, a, 4 * n);
      fill(&s, b, 4 * m);
      detloss_match_options o = detloss_match_options_default();
      o.num_threads = 1;
      o.high = (float)p0 / 255.0f;
      o.low = (float)p1 / 255.0f;
      o.allow_low_quality = p2 & 1;
      o.semantics = (detloss_match_semantics)((p2 >> 1) % 3);
      o.low_quality_min_iou = (p2 & 8) ? 0.1f : 0.0f;
      o.allowed_border = (p2 & 16) ? (float)(p3 % 8) : -1.0f;
      o.image_h = 64.0f;
      o.image_w = 96.0f;
      uint8_t crowd[MAXM];
      for (size_t j = 0; j < m; j++) crowd[j] = (uint8_t)((p3 >> j) & 1);
      int64_t matches[MAXN];
      for (size_t i = 0; i < n; i++) matches[i] = -777;
      detloss_status st =
          detloss_match(a, n, b, m, (p2 & 32) ? crowd : NULL, matches, o1, &o, &err);
      size_t len = n;
      float *outs[1] = {o1};
      check(st, &err, all_finite(a, 4 * n) && all_finite(b, 4 * m), mod, outs, &len, 1);
      for (size_t i = 0; i < n; i++) {
        if (st != DETLOSS_OK && matches[i] != -777)
          fuzz_fail("fuzz_numeric", "matches[%zu] written on error", i);
        if (st == DETLOSS_OK && (matches[i] < -2 || matches[i] >= (int64_t)m))
          fuzz_fail("fuzz_numeric", "matches[%zu] = %lld out of range", i, (long long)matches[i]);
      }
      break;
    }
    case 4: { /* element-wise losses */
      detloss_loss_kind kinds[] =
          {DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_LOSS_BCE,  DETLOSS_LOSS_SIGMOID_FOCAL,
           DETLOSS_LOSS_HINGE,           DETLOSS_LOSS_L1,   DETLOSS_LOSS_MSE,
           DETLOSS_LOSS_SMOOTH_L1,       DETLOSS_LOSS_HUBER};
      detloss_loss_kind k = kinds[p0 % 8];
      size_t len = 4 * n;
      fill(&s, a, len);
      fill(&s, b, len);
      if (p1 & 1) /* valid targets for the classification losses */
        for (size_t i = 0; i < len; i++)
          b[i] = k == DETLOSS_LOSS_HINGE ? (b[i] > 0 ? 1.0f : -1.0f)
                                         : (float)small_mod(b[i], 3) / 2.0f;
      if (k == DETLOSS_LOSS_BCE && (p1 & 2))
        for (size_t i = 0; i < len; i++) a[i] = (float)small_mod(a[i], 11) / 10.0f;
      detloss_loss_options o = detloss_loss_options_default(k);
      o.num_threads = 1;
      o.reduction = (detloss_reduction)(p2 % 3);
      o.gamma = (float)(p3 % 64) / 16.0f;
      o.beta = (float)(p3 % 16) / 8.0f;
      o.delta = 0.125f + (float)(p3 % 16) / 8.0f;
      float w[4 * MAXN];
      fill(&s, w, len);
      size_t outlen = o.reduction == DETLOSS_REDUCTION_NONE ? len : 1;
      detloss_status st = detloss_loss_elementwise(k, a, b, (p1 & 4) ? w : NULL, len, o1,
                                                   (p1 & 8) ? NULL : o2, &o, &err);
      float *outs[2] = {o1, (p1 & 8) ? NULL : o2};
      size_t lens[2] = {outlen, len};
      int fin = all_finite(a, len) && all_finite(b, len) && (!(p1 & 4) || all_finite(w, len));
      check(st, &err, fin, mod, outs, lens, 2);
      break;
    }
    case 5: { /* class-indexed losses */
      size_t cls = m ? m : 1;
      detloss_loss_kind k = (p0 & 1) ? DETLOSS_LOSS_SOFTMAX_FOCAL : DETLOSS_LOSS_CROSS_ENTROPY;
      fill(&s, a, 4 * MAXN);
      size_t rows = n < 4 * MAXN / cls ? n : 4 * MAXN / cls;
      int64_t t[MAXN];
      for (size_t i = 0; i < rows; i++) t[i] = (int64_t)((p1 + 7 * i) % (cls + 2)) - 1;
      detloss_loss_options o = detloss_loss_options_default(k);
      o.num_threads = 1;
      o.ignore_index = -1;
      o.reduction = (detloss_reduction)(p2 % 3);
      o.label_smoothing = (float)(p3 % 11) / 10.0f;
      o.gamma = (float)(p3 % 32) / 8.0f;
      size_t outlen = o.reduction == DETLOSS_REDUCTION_NONE ? rows : 1;
      detloss_status st = detloss_loss_classes(k, a, t, NULL, rows, cls, o1, o2, &o, &err);
      float *outs[2] = {o1, o2};
      size_t lens[2] = {outlen, rows * cls};
      check(st, &err, all_finite(a, rows * cls), mod, outs, lens, 2);
      break;
    }
    case 6: { /* box losses */
      detloss_loss_kind k = (detloss_loss_kind)(DETLOSS_LOSS_IOU + p0 % 4);
      fill(&s, a, 4 * n);
      fill(&s, b, 4 * n);
      detloss_loss_options o = detloss_loss_options_default(k);
      o.num_threads = 1;
      o.reduction = (detloss_reduction)(p2 % 3);
      size_t outlen = o.reduction == DETLOSS_REDUCTION_NONE ? n : 1;
      detloss_status st =
          detloss_loss_boxes(k, a, b, NULL, n, o1, o2, (p1 & 1) ? o3 : NULL, &o, &err);
      float *outs[3] = {o1, o2, (p1 & 1) ? o3 : NULL};
      size_t lens[3] = {outlen, 4 * n, 4 * n};
      check(st, &err, all_finite(a, 4 * n) && all_finite(b, 4 * n), mod, outs, lens, 3);
      break;
    }
    case 7: { /* embedding losses */
      detloss_loss_kind k = (detloss_loss_kind)(DETLOSS_LOSS_CONTRASTIVE + p0 % 3);
      size_t d = m ? m : 1, rows = n < 4 * MAXN / d ? n : 4 * MAXN / d;
      fill(&s, a, rows * d);
      fill(&s, b, rows * d);
      fill(&s, c3, rows * d);
      float t[MAXN];
      for (size_t i = 0; i < rows; i++)
        t[i] = k == DETLOSS_LOSS_CONTRASTIVE ? (float)((p1 >> (i % 8)) & 1)
                                             : (((p1 >> (i % 8)) & 1) ? 1.0f : -1.0f);
      detloss_loss_options o = detloss_loss_options_default(k);
      o.num_threads = 1;
      o.reduction = (detloss_reduction)(p2 % 3);
      o.margin = (float)(p3 % 16) / 8.0f;
      if (k == DETLOSS_LOSS_TRIPLET_MARGIN) o.swap = p3 & 1;
      size_t outlen = o.reduction == DETLOSS_REDUCTION_NONE ? rows : 1;
      detloss_status st =
          detloss_loss_embedding(k, a, b, k == DETLOSS_LOSS_TRIPLET_MARGIN ? c3 : NULL,
                                 k == DETLOSS_LOSS_TRIPLET_MARGIN ? NULL : t, NULL, rows, d, o1, o2,
                                 o3, k == DETLOSS_LOSS_TRIPLET_MARGIN ? o4 : NULL, &o, &err);
      float *outs[4] = {o1, o2, o3, k == DETLOSS_LOSS_TRIPLET_MARGIN ? o4 : NULL};
      size_t lens[4] = {outlen, rows * d, rows * d, rows * d};
      int fin = all_finite(a, rows * d) && all_finite(b, rows * d) &&
                (k != DETLOSS_LOSS_TRIPLET_MARGIN || all_finite(c3, rows * d));
      check(st, &err, fin, mod, outs, lens, 4);
      break;
    }
    case 8: { /* sampling over arbitrary labels */
      int64_t matches[4 * MAXN];
      int8_t sampled[4 * MAXN];
      size_t len = 4 * n;
      for (size_t i = 0; i < len; i++) matches[i] = (int64_t)((p0 + 13 * i * p1) % 7) - 2;
      memset(sampled, 99, sizeof sampled);
      detloss_sample_options o = detloss_sample_options_default();
      o.num_threads = 1;
      o.batch_size_per_image = p2 % 40;
      o.positive_fraction = (double)(p3 % 11) / 10.0;
      o.seed = p1;
      size_t np = 0, nn = 0;
      detloss_status st = detloss_sample_balanced(matches, len, p0, sampled, &np, &nn, &o, &err);
      fuzz_check_status("fuzz_numeric", "detloss_sample_balanced", st, &err, 0);
      if (st == DETLOSS_OK) {
        size_t cp = 0, cn = 0;
        for (size_t i = 0; i < len; i++) {
          if (sampled[i] == 1) {
            if (matches[i] < 0)
              fuzz_fail("fuzz_numeric", "sampled[%zu]: a non-positive sampled as positive", i);
            cp++;
          } else if (sampled[i] == 0) {
            if (matches[i] != -1)
              fuzz_fail("fuzz_numeric", "sampled[%zu]: a non-negative sampled as negative", i);
            cn++;
          }
        }
        if (cp != np || cn != nn || np + nn > (size_t)o.batch_size_per_image)
          fuzz_fail("fuzz_numeric", "sample counts %zu+%zu disagree with the labels", np, nn);
      } else {
        for (size_t i = 0; i < len; i++)
          if (sampled[i] != 99) fuzz_fail("fuzz_numeric", "sampled[%zu] written on error", i);
      }
      break;
    }
    default: { /* 9: the quality losses, or empty inputs everywhere */
      if (p0 % 4 != 3) {
        quality_losses(&s, p0 % 4, n, m, p1, p2, p3, o1, o2);
        break;
      }
      detloss_status st = detloss_iou_matrix(DETLOSS_CIOU, NULL, 0, NULL, 0, NULL, NULL, &err);
      if (st != DETLOSS_OK) fuzz_fail("fuzz_numeric", "empty IoU matrix: status %d", (int)st);
      break;
    }
  }
  return 0;
}
