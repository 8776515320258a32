/*
 * loss_testutil.h - helpers shared by test_loss_cls.c and test_loss_reg.c:
 * running a JSON reference case (tests/fixtures/loss_cls, loss_reg, loss_quality)
 * through detloss_loss_elementwise / _classes / _rows, and the common assertions.
 */
#ifndef DETLOSS_LOSS_TESTUTIL_H
#define DETLOSS_LOSS_TESTUTIL_H

#include <cjson/cJSON.h>

#include "detloss/detloss.h"
#include "testutil.h"

/* Tolerances of float32 results against a float64 reference. */
#define LT_RTOL 1e-5
#define LT_ATOL 1e-6

typedef struct lt_vec {
  double *v;
  size_t n, cap;
  size_t shape[4];
  int ndim;
} lt_vec;

static inline void lt_push(lt_vec *a, double x) {
  if (a->n == a->cap) {
    a->cap = a->cap ? 2 * a->cap : 64;
    a->v = realloc(a->v, a->cap * sizeof(double));
    assert_non_null(a->v);
  }
  a->v[a->n++] = x;
}

static inline void lt_flatten_rec(const cJSON *j, lt_vec *a, int depth) {
  if (cJSON_IsNumber(j)) {
    lt_push(a, j->valuedouble);
    if (depth > a->ndim) a->ndim = depth;
    return;
  }
  assert_true(cJSON_IsArray(j));
  size_t len = (size_t)cJSON_GetArraySize(j);
  if (depth < 4) a->shape[depth] = len;
  for (const cJSON *e = j->child; e; e = e->next) lt_flatten_rec(e, a, depth + 1);
}

static inline lt_vec lt_flatten(const cJSON *j) {
  lt_vec a;
  memset(&a, 0, sizeof a);
  if (j) lt_flatten_rec(j, &a, 0);
  return a;
}

static inline float *lt_to_float(const lt_vec *a) {
  float *f = malloc((a->n ? a->n : 1) * sizeof(float));
  assert_non_null(f);
  for (size_t i = 0; i < a->n; i++) f[i] = (float)a->v[i];
  return f;
}

static inline detloss_reduction lt_reduction(const char *s) {
  if (strcmp(s, "none") == 0) return DETLOSS_REDUCTION_NONE;
  if (strcmp(s, "sum") == 0) return DETLOSS_REDUCTION_SUM;
  assert_string_equal(s, "mean");
  return DETLOSS_REDUCTION_MEAN;
}

/* Runs one fixture case and compares loss and grad with the float64
 * reference at LT_RTOL / LT_ATOL. pos_weight storage is owned by *pw. */
static inline void lt_run_case(const cJSON *c, int num_threads) {
  const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
  const char *lname = cJSON_GetObjectItemCaseSensitive(c, "loss")->valuestring;
  detloss_loss_kind kind;
  detloss_error err;
  assert_int_equal(detloss_loss_from_name(lname, &kind, &err), DETLOSS_OK);
  detloss_loss_options o = detloss_loss_options_default(kind);
  o.reduction = lt_reduction(cJSON_GetObjectItemCaseSensitive(c, "reduction")->valuestring);
  o.num_threads = num_threads;
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(c, "params");
  float *pw = NULL;
  for (const cJSON *p = params ? params->child : NULL; p; p = p->next) {
    float v = (float)p->valuedouble;
    if (strcmp(p->string, "alpha") == 0)
      o.alpha = v;
    else if (strcmp(p->string, "gamma") == 0)
      o.gamma = v;
    else if (strcmp(p->string, "beta") == 0)
      o.beta = v;
    else if (strcmp(p->string, "delta") == 0)
      o.delta = v;
    else if (strcmp(p->string, "margin") == 0)
      o.margin = v;
    else if (strcmp(p->string, "label_smoothing") == 0)
      o.label_smoothing = v;
    else if (strcmp(p->string, "activated") == 0)
      o.activated = cJSON_IsTrue(p);
    else if (strcmp(p->string, "iou_weighted") == 0)
      o.iou_weighted = cJSON_IsTrue(p);
    else if (strcmp(p->string, "detach_weight") == 0)
      o.detach_weight = cJSON_IsTrue(p);
    else if (strcmp(p->string, "ignore_index") == 0)
      o.ignore_index = (int64_t)p->valuedouble;
    else if (strcmp(p->string, "pos_weight") == 0) {
      lt_vec pv = lt_flatten(p);
      pw = lt_to_float(&pv);
      o.pos_weight = pw;
      o.pos_weight_len = pv.n;
      free(pv.v);
    } else {
      print_error("case %s: unknown param %s\n", name, p->string);
      fail();
    }
  }
  lt_vec x = lt_flatten(cJSON_GetObjectItemCaseSensitive(c, "input"));
  lt_vec y = lt_flatten(cJSON_GetObjectItemCaseSensitive(c, "target"));
  lt_vec w = lt_flatten(cJSON_GetObjectItemCaseSensitive(c, "weight"));
  lt_vec el = lt_flatten(cJSON_GetObjectItemCaseSensitive(c, "expected_loss"));
  lt_vec eg = lt_flatten(cJSON_GetObjectItemCaseSensitive(c, "expected_grad"));
  float *xf = lt_to_float(&x), *wf = w.n ? lt_to_float(&w) : NULL;
  float *loss = malloc((x.n + 1) * sizeof(float)), *grad = malloc((x.n + 1) * sizeof(float));
  assert_non_null(loss);
  assert_non_null(grad);
  size_t nout;
  detloss_status st;
  if (kind == DETLOSS_LOSS_CROSS_ENTROPY || kind == DETLOSS_LOSS_SOFTMAX_FOCAL) {
    size_t n = x.shape[0], cc = x.shape[1];
    int64_t *t = malloc((y.n + 1) * sizeof(int64_t));
    assert_non_null(t);
    for (size_t i = 0; i < y.n; i++) t[i] = (int64_t)y.v[i];
    st = detloss_loss_classes(kind, xf, t, wf, n, cc, loss, grad, &o, &err);
    nout = o.reduction == DETLOSS_REDUCTION_NONE ? n : 1;
    free(t);
  } else if (detloss_loss_info_get(kind)->form == DETLOSS_LOSS_FORM_SOFT_ROWS ||
             detloss_loss_info_get(kind)->form == DETLOSS_LOSS_FORM_DISTRIBUTION) {
    size_t n = x.shape[0], cc = x.shape[1];
    float *yf = lt_to_float(&y);
    st = detloss_loss_rows(kind, xf, yf, wf, n, cc, loss, grad, &o, &err);
    nout = o.reduction == DETLOSS_REDUCTION_NONE ? n : 1;
    free(yf);
  } else {
    float *yf = lt_to_float(&y);
    st = detloss_loss_elementwise(kind, xf, yf, wf, x.n, loss, grad, &o, &err);
    nout = o.reduction == DETLOSS_REDUCTION_NONE ? x.n : 1;
    free(yf);
  }
  if (st != DETLOSS_OK) {
    print_error("case %s: status %d at %s: %s\n", name, (int)st, err.where, err.msg);
    fail();
  }
  assert_int_equal(el.n, nout);
  assert_int_equal(eg.n, x.n);
  print_message("case %s\n", name);
  dl_assert_close(loss, el.v, nout, LT_RTOL, LT_ATOL);
  dl_assert_close(grad, eg.v, x.n, LT_RTOL, LT_ATOL);
  free(x.v);
  free(y.v);
  free(w.v);
  free(el.v);
  free(eg.v);
  free(xf);
  free(wf);
  free(loss);
  free(grad);
  free(pw);
}

/* Runs every case of a fixture file; returns the number of cases. */
static inline size_t lt_run_fixture(const char *path, int num_threads) {
  char *text = dl_read_file(path);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
  assert_true(cJSON_IsArray(cases));
  size_t count = 0;
  for (const cJSON *c = cases->child; c; c = c->next) {
    lt_run_case(c, num_threads);
    count++;
  }
  cJSON_Delete(root);
  free(text);
  return count;
}

/* Fills n floats with a sentinel and checks they still hold it (outputs
 * untouched on error). */
#define LT_SENTINEL 12345.0f
static inline void lt_fill(float *a, size_t n) {
  for (size_t i = 0; i < n; i++) a[i] = LT_SENTINEL;
}
static inline void lt_assert_untouched(const float *a, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i] != LT_SENTINEL) {
      print_error("output[%zu] = %g was written on error\n", i, (double)a[i]);
      fail();
    }
}

static inline int lt_all_finite(const float *a, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(a[i])) return 0;
  return 1;
}

#endif /* DETLOSS_LOSS_TESTUTIL_H */
