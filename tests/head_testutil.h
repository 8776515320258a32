/*
 * head_testutil.h - helpers shared by test_head_rpn.c and test_head_retina.c:
 * owned per-image batches, reading the torchvision fixtures
 * (the JSON files under tests/fixtures/heads: {"case": <compute case>, "expected": ...}),
 * and random batches.
 */
#ifndef DETLOSS_HEAD_TESTUTIL_H
#define DETLOSS_HEAD_TESTUTIL_H

#include <cjson/cJSON.h>

#include "detloss/detloss.h"
#include "testutil.h"

#define HT_MAX_IMAGES 8

/* A batch whose arrays the test owns. */
typedef struct ht_batch {
  size_t n, C;
  detloss_head_image im[HT_MAX_IMAGES];
  float *anchors[HT_MAX_IMAGES], *gt[HT_MAX_IMAGES], *pred[HT_MAX_IMAGES], *deltas[HT_MAX_IMAGES],
      *gpred[HT_MAX_IMAGES], *gdeltas[HT_MAX_IMAGES];
  int64_t *labels[HT_MAX_IMAGES];
} ht_batch;

static inline void *ht_alloc(size_t bytes) {
  void *p = calloc(bytes ? bytes : 1, 1);
  assert_non_null(p);
  return p;
}

/* Allocates image i: A anchors, G gt, prediction width pw (1 for RPN, C for
 * RetinaNet), gradient buffers; wires the descriptor. */
static inline void ht_image(ht_batch *b, size_t i, size_t A, size_t G, size_t pw, int retina) {
  detloss_head_image *im = &b->im[i];
  memset(im, 0, sizeof *im);
  b->anchors[i] = ht_alloc(A * 4 * sizeof(float));
  b->gt[i] = ht_alloc(G * 4 * sizeof(float));
  b->pred[i] = ht_alloc(A * pw * sizeof(float));
  b->deltas[i] = ht_alloc(A * 4 * sizeof(float));
  b->gpred[i] = ht_alloc(A * pw * sizeof(float));
  b->gdeltas[i] = ht_alloc(A * 4 * sizeof(float));
  b->labels[i] = ht_alloc(G * sizeof(int64_t));
  im->anchors = b->anchors[i];
  im->num_anchors = A;
  im->num_predictions = A;
  im->gt = b->gt[i];
  im->num_gt = G;
  im->labels = retina ? b->labels[i] : NULL;
  im->deltas = b->deltas[i];
  im->grad_deltas = b->gdeltas[i];
  if (retina) {
    im->cls_logits = b->pred[i];
    im->grad_cls_logits = b->gpred[i];
  } else {
    im->objectness = b->pred[i];
    im->grad_objectness = b->gpred[i];
  }
  if (i + 1 > b->n) b->n = i + 1;
}

static inline void ht_free(ht_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->anchors[i]);
    free(b->gt[i]);
    free(b->pred[i]);
    free(b->deltas[i]);
    free(b->gpred[i]);
    free(b->gdeltas[i]);
    free(b->labels[i]);
  }
  memset(b, 0, sizeof *b);
}

/* Number of leaf numbers of a nested JSON array. */
static inline size_t ht_count(const cJSON *v) {
  if (cJSON_IsNumber(v)) return 1;
  size_t n = 0;
  for (const cJSON *e = v ? v->child : NULL; e; e = e->next) n += ht_count(e);
  return n;
}
static inline size_t ht_flatten(const cJSON *v, double *out) {
  if (cJSON_IsNumber(v)) {
    out[0] = v->valuedouble;
    return 1;
  }
  size_t n = 0;
  for (const cJSON *e = v ? v->child : NULL; e; e = e->next) n += ht_flatten(e, out + n);
  return n;
}
/* A nested array as doubles (malloc'ed); *n = its leaf count. */
static inline double *ht_doubles(const cJSON *v, size_t *n) {
  *n = ht_count(v);
  double *d = ht_alloc(*n * sizeof(double));
  ht_flatten(v, d);
  return d;
}
static inline void ht_floats_into(const cJSON *v, float *dst, size_t expect) {
  size_t n;
  double *d = ht_doubles(v, &n);
  assert_int_equal(n, expect);
  for (size_t k = 0; k < n; k++) dst[k] = (float)d[k];
  free(d);
}

/* Loads fixture `name` into b (retina: labels, cls_logits). Returns the parsed
 * root (free with cJSON_Delete); *expected points into it. */
static inline cJSON *ht_load_fixture(const char *path, ht_batch *b, int retina,
                                     const cJSON **expected) {
  char *txt = dl_read_file(path);
  cJSON *root = cJSON_Parse(txt);
  free(txt);
  assert_non_null(root);
  const cJSON *images = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "case"), "images");
  *expected = cJSON_GetObjectItem(root, "expected");
  assert_non_null(images);
  assert_non_null(*expected);
  memset(b, 0, sizeof *b);
  size_t i = 0;
  for (const cJSON *e = images->child; e; e = e->next, i++) {
    assert_true(i < HT_MAX_IMAGES);
    size_t A = ht_count(cJSON_GetObjectItem(e, "anchors")) / 4;
    size_t G = ht_count(cJSON_GetObjectItem(e, "gt")) / 4;
    size_t pw = 1;
    if (retina) {
      const cJSON *cl = cJSON_GetObjectItem(e, "cls_logits");
      if (A > 0) {
        pw = ht_count(cl) / A;
        b->C = pw;
      }
    }
    ht_image(b, i, A, G, pw, retina);
    ht_floats_into(cJSON_GetObjectItem(e, "anchors"), b->anchors[i], 4 * A);
    ht_floats_into(cJSON_GetObjectItem(e, "gt"), b->gt[i], 4 * G);
    ht_floats_into(cJSON_GetObjectItem(e, "deltas"), b->deltas[i], 4 * A);
    ht_floats_into(cJSON_GetObjectItem(e, retina ? "cls_logits" : "objectness"), b->pred[i],
                   A * pw);
    if (retina) {
      size_t nl;
      double *lab = ht_doubles(cJSON_GetObjectItem(e, "labels"), &nl);
      assert_int_equal(nl, G);
      for (size_t g = 0; g < G; g++) b->labels[i][g] = (int64_t)lab[g];
      free(lab);
    }
  }
  return root;
}

/* Compares a ragged expected gradient [images][...] with the batch buffers. */
static inline void ht_check_grad(const cJSON *expected, const char *key, ht_batch *b, int pred,
                                 size_t width, double rtol, double atol) {
  const cJSON *g = cJSON_GetObjectItem(expected, key);
  assert_non_null(g);
  size_t i = 0;
  for (const cJSON *e = g->child; e; e = e->next, i++) {
    size_t n;
    double *d = ht_doubles(e, &n);
    assert_int_equal(n, b->im[i].num_anchors * width);
    dl_assert_close(pred ? b->gpred[i] : b->gdeltas[i], d, n, rtol, atol);
    free(d);
  }
  assert_int_equal(i, b->n);
}

static inline double ht_num(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItem(obj, key);
  assert_non_null(v);
  return v->valuedouble;
}

/* Random boxes in a size x size image: sides in [lo, hi). */
static inline void ht_random_boxes(dl_rng *r, float *b, size_t n, double size, double lo,
                                   double hi) {
  for (size_t k = 0; k < n; k++) {
    double x = dl_rng_uniform(r, 0, size - hi), y = dl_rng_uniform(r, 0, size - hi);
    double w = dl_rng_uniform(r, lo, hi), h = dl_rng_uniform(r, lo, hi);
    b[4 * k] = (float)x;
    b[4 * k + 1] = (float)y;
    b[4 * k + 2] = (float)(x + w);
    b[4 * k + 3] = (float)(y + h);
  }
}

/* Anchors: n_random random boxes, then k jittered copies of each gt box (so
 * that some anchors are positives). */
static inline void ht_random_anchors(dl_rng *r, float *a, size_t n_random, const float *gt,
                                     size_t G, size_t k, double amount) {
  ht_random_boxes(r, a, n_random, 200.0, 8.0, 80.0);
  size_t j = n_random;
  for (size_t g = 0; g < G; g++)
    for (size_t q = 0; q < k; q++, j++) {
      double w = (double)(gt[4 * g + 2] - gt[4 * g]), h = (double)(gt[4 * g + 3] - gt[4 * g + 1]);
      for (int c = 0; c < 4; c++)
        a[4 * j + (size_t)c] = (float)((double)gt[4 * g + (size_t)c] +
                                       dl_rng_uniform(r, -0.5, 0.5) * amount * ((c % 2) ? h : w));
    }
}

/* Fills every gradient buffer with a sentinel (to check "untouched"). */
static inline void ht_fill_grads(ht_batch *b, size_t pw, float v) {
  for (size_t i = 0; i < b->n; i++) {
    for (size_t k = 0; k < b->im[i].num_anchors * pw; k++) b->gpred[i][k] = v;
    for (size_t k = 0; k < b->im[i].num_anchors * 4; k++) b->gdeltas[i][k] = v;
  }
}
static inline void ht_assert_grads_are(const ht_batch *b, size_t pw, float v) {
  for (size_t i = 0; i < b->n; i++) {
    for (size_t k = 0; k < b->im[i].num_anchors * pw; k++) assert_true(b->gpred[i][k] == v);
    for (size_t k = 0; k < b->im[i].num_anchors * 4; k++) assert_true(b->gdeltas[i][k] == v);
  }
}

/* actual[k] and expected[k] have the same bits for every k < n; on failure
 * prints how many differ and the first one (index, both values in %a). */
static inline void ht_assert_bitwise(const float *actual, const float *expected, size_t n,
                                     const char *what) {
  size_t bad = 0, first = n;
  for (size_t k = 0; k < n; k++) {
    if (memcmp(&actual[k], &expected[k], sizeof(float)) != 0) {
      if (bad++ == 0) first = k;
    }
  }
  if (bad) {
    print_error("%s: %zu of %zu elements differ in their bits; first [%zu]: %a, expected %a\n",
                what, bad, n, first, (double)actual[first], (double)expected[first]);
    fail();
  }
}

#endif /* DETLOSS_HEAD_TESTUTIL_H */
