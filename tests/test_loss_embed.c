/*
 * test_loss_embed.c - verification (Re-ID) losses (detloss_loss_embedding):
 * torch float64 fixtures, hand-worked values, finite-difference gradients
 * against an independent double implementation, extreme inputs, bad input,
 * thread invariance.
 */
#include <cjson/cJSON.h>

#include "testjson.h"
#include "testutil.h"
#include "detloss/detloss.h"

static const detloss_loss_kind KINDS[3] = {DETLOSS_LOSS_CONTRASTIVE, DETLOSS_LOSS_COSINE_EMBEDDING,
                                           DETLOSS_LOSS_TRIPLET_MARGIN};

static detloss_loss_options opts(detloss_loss_kind k, detloss_reduction r) {
  detloss_loss_options o = detloss_loss_options_default(k);
  o.reduction = r;
  return o;
}

/* An independent double reference of one pair / triplet. */

static double ref_pdist(const double *a, const double *b, size_t d, double eps, double p) {
  double s = 0;
  for (size_t k = 0; k < d; k++) s += pow(fabs(a[k] - b[k] + eps), p);
  return pow(s, 1.0 / p);
}

static double ref_loss(detloss_loss_kind kind, const double *a, const double *b, const double *n,
                       double y, size_t d, const detloss_loss_options *o) {
  if (kind == DETLOSS_LOSS_CONTRASTIVE) {
    double dist = ref_pdist(a, b, d, 1e-6, 2.0);
    double h = fmax(0.0, (double)o->margin - dist);
    return 0.5 * (y * dist * dist + (1 - y) * h * h);
  }
  if (kind == DETLOSS_LOSS_COSINE_EMBEDDING) {
    double dot = 0, m1 = 0, m2 = 0;
    for (size_t k = 0; k < d; k++) {
      dot += a[k] * b[k];
      m1 += a[k] * a[k];
      m2 += b[k] * b[k];
    }
    double cs = dot / sqrt((m1 + (double)1e-12f) * (m2 + (double)1e-12f));
    return y > 0 ? 1 - cs : fmax(0.0, cs - (double)o->margin);
  }
  double eps = (double)o->eps, p = (double)o->p;
  double dp = ref_pdist(a, b, d, eps, p), dn = ref_pdist(a, n, d, eps, p);
  if (o->swap) dn = fmin(dn, ref_pdist(b, n, d, eps, p));
  return fmax(0.0, (double)o->margin + dp - dn);
}

/* Every fixture case (torch float64 autograd on float32 inputs): value and the
 * gradients of every input within 1e-5 relative, 1e-6 absolute. Includes the
 * kinks where autograd decides (norm at 0, cos = margin, triplet hinge at 0,
 * swap tie) and p in {1, 2, 3, 0.7}. */
static void values_and_gradients_match_torch_float64(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("loss_embed/torch_embedding_losses.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  assert_non_null(cJSON_GetObjectItem(root, "torch"));
  const cJSON *c;
  int count = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
    detloss_loss_kind kind;
    assert_int_equal(detloss_loss_from_name(cJSON_GetObjectItem(c, "kind")->valuestring, &kind,
                                            NULL),
                     DETLOSS_OK);
    detloss_loss_options o =
        opts(kind, dl_json_reduction(cJSON_GetObjectItem(c, "reduction")->valuestring));
    const cJSON *prm = cJSON_GetObjectItem(c, "params"), *v;
    if ((v = cJSON_GetObjectItem(prm, "margin"))) o.margin = (float)v->valuedouble;
    if ((v = cJSON_GetObjectItem(prm, "p"))) o.p = (float)v->valuedouble;
    if ((v = cJSON_GetObjectItem(prm, "eps"))) o.eps = (float)v->valuedouble;
    if ((v = cJSON_GetObjectItem(prm, "swap"))) o.swap = cJSON_IsTrue(v);
    const cJSON *jx1 = cJSON_GetObjectItem(c, "x1");
    size_t n = (size_t)cJSON_GetArraySize(jx1);
    size_t d = n ? (size_t)cJSON_GetArraySize(cJSON_GetArrayItem(jx1, 0)) : 5;
    size_t cap = n ? n * d : 1;
    float *x[3], *g[3];
    double *eg[3];
    for (int j = 0; j < 3; j++) {
      x[j] = malloc(cap * sizeof(float));
      g[j] = malloc(cap * sizeof(float));
      eg[j] = malloc(cap * sizeof(double));
    }
    float *y = NULL, *w = NULL, *loss = malloc((n ? n : 1) * sizeof(float));
    double *el = malloc((n ? n : 1) * sizeof(double));
    const char *xn[3] = {"x1", "x2", "x3"}, *gn[3] = {"grad_x1", "grad_x2", "grad_x3"};
    for (int j = 0; j < 3; j++) {
      const cJSON *a = cJSON_GetObjectItem(c, xn[j]);
      if (cJSON_IsArray(a)) dl_json_rows(a, d, x[j], NULL);
      a = cJSON_GetObjectItem(c, gn[j]);
      if (cJSON_IsArray(a)) dl_json_rows(a, d, NULL, eg[j]);
    }
    const cJSON *jy = cJSON_GetObjectItem(c, "target"), *jw = cJSON_GetObjectItem(c, "weight");
    if (cJSON_IsArray(jy)) {
      y = malloc((n ? n : 1) * sizeof(float));
      dl_json_rows(jy, 0, y, NULL);
    }
    if (cJSON_IsArray(jw)) {
      w = malloc((n ? n : 1) * sizeof(float));
      dl_json_rows(jw, 0, w, NULL);
    }
    const cJSON *jl = cJSON_GetObjectItem(c, "loss");
    size_t nl = 1;
    if (cJSON_IsArray(jl))
      nl = dl_json_rows(jl, 0, NULL, el);
    else
      el[0] = jl->valuedouble;
    const int trip = kind == DETLOSS_LOSS_TRIPLET_MARGIN;
    detloss_error err;
    assert_int_equal(detloss_loss_embedding(kind, x[0], x[1], trip ? x[2] : NULL, y, w, n, d, loss,
                                            g[0], g[1], trip ? g[2] : NULL, &o, &err),
                     DETLOSS_OK);
    dl_assert_close(loss, el, nl, 1e-5, 1e-6);
    dl_assert_close(g[0], eg[0], n * d, 1e-5, 1e-6);
    dl_assert_close(g[1], eg[1], n * d, 1e-5, 1e-6);
    if (trip) dl_assert_close(g[2], eg[2], n * d, 1e-5, 1e-6);
    for (int j = 0; j < 3; j++) {
      free(x[j]);
      free(g[j]);
      free(eg[j]);
    }
    free(y);
    free(w);
    free(loss);
    free(el);
    count++;
  }
  assert_true(count >= 30); /* as many as the generator writes */
  cJSON_Delete(root);
  free(text);
}

/* By hand:
 *  contrastive x1 = (3, 4), x2 = 0: v = (3 + 1e-6, 4 + 1e-6), D^2 = 25 + 14e-6 + 2e-12;
 *    y = 1: D^2 / 2 = 12.500007;  y = 0, margin 6: (6 - D)^2 / 2, D = 5.0000014 -> 0.4999986.
 *  cosine x1 = (1, 0), x2 = (1, 1): cos = 1/sqrt(2) (eps 1e-12 negligible);
 *    y = 1: 1 - 0.70710678 = 0.29289322;  y = -1, margin 0.5: 0.20710678.
 *  triplet a = 0, p = (3, 4), n = (6, 8), eps 0: dp = 5, dn = 10;
 *    margin 1: max(0, 1 + 5 - 10) = 0;  margin 6: 1. With swap, ds = |p - n| = 5 < dn:
 *    margin 1: max(0, 1 + 5 - 5) = 1. */
static void hand_worked_values_hold(void **state) {
  (void)state;
  const float a[4] = {3, 4, 3, 4}, b[4] = {0, 0, 0, 0}, y[2] = {1, 0};
  detloss_loss_options o = opts(DETLOSS_LOSS_CONTRASTIVE, DETLOSS_REDUCTION_NONE);
  o.margin = 6;
  float l[2];
  assert_int_equal(detloss_loss_embedding(DETLOSS_LOSS_CONTRASTIVE, a, b, NULL, y, NULL, 2, 2, l,
                                          NULL, NULL, NULL, &o, NULL),
                   0);
  double dist = sqrt(25 + 14e-6 + 2e-12);
  const double ec[2] = {12.500007, 0.5 * (6 - dist) * (6 - dist)};
  dl_assert_close(l, ec, 2, 1e-7, 0);

  const float c1[4] = {1, 0, 1, 0}, c2[4] = {1, 1, 1, 1}, yc[2] = {1, -1};
  o = opts(DETLOSS_LOSS_COSINE_EMBEDDING, DETLOSS_REDUCTION_NONE);
  o.margin = 0.5f;
  assert_int_equal(detloss_loss_embedding(DETLOSS_LOSS_COSINE_EMBEDDING, c1, c2, NULL, yc, NULL, 2,
                                          2, l, NULL, NULL, NULL, &o, NULL),
                   0);
  const double ecs[2] = {0.29289322, 0.20710678};
  dl_assert_close(l, ecs, 2, 0, 1e-7);

  const float ta[2] = {0, 0}, tp[2] = {3, 4}, tn[2] = {6, 8};
  o = opts(DETLOSS_LOSS_TRIPLET_MARGIN, DETLOSS_REDUCTION_SUM);
  o.eps = 0;
  const float margins[3] = {1, 6, 1};
  const int swaps[3] = {0, 0, 1};
  const double et[3] = {0, 1, 1};
  for (int i = 0; i < 3; i++) {
    o.margin = margins[i];
    o.swap = swaps[i];
    float lt;
    assert_int_equal(detloss_loss_embedding(DETLOSS_LOSS_TRIPLET_MARGIN, ta, tp, tn, NULL, NULL, 1,
                                            2, &lt, NULL, NULL, NULL, &o, NULL),
                     0);
    dl_assert_close1(lt, et[i], 0, 1e-6);
  }
}

/* Random inputs away from kinks: central differences (step 1e-5, double) of
 * the independent reference against the analytic gradients of every input.
 * Skipped within 1e-3 of a kink: contrastive margin = D, cosine cos = margin,
 * triplet hinge and swap tie, and (p != 2) a component v_k near 0. */
static void gradients_match_central_differences(void **state) {
  (void)state;
  dl_rng rng = {99};
  const size_t d = 5;
  const float ps[5] = {2, 1, 3, 0.7f, 1.5f};
  int checked = 0;
  for (int trial = 0; trial < 300; trial++) {
    detloss_loss_kind kind = KINDS[trial % 3];
    detloss_loss_options o = opts(kind, DETLOSS_REDUCTION_SUM);
    float xf[3][5];
    double xd[3][5];
    for (int j = 0; j < 3; j++)
      for (size_t k = 0; k < d; k++) {
        xf[j][k] = (float)dl_rng_normal(&rng);
        xd[j][k] = xf[j][k];
      }
    float y = 1;
    if (kind == DETLOSS_LOSS_CONTRASTIVE) {
      y = (trial / 3) % 2 ? 1.0f : 0.0f;
      o.margin = 3.0f;
    } else if (kind == DETLOSS_LOSS_COSINE_EMBEDDING) {
      y = (trial / 3) % 2 ? 1.0f : -1.0f;
      o.margin = -0.2f;
    } else {
      o.p = ps[(trial / 3) % 5];
      o.swap = (trial / 15) % 2;
      o.margin = 2.0f;
    }
    /* kink distances */
    double kink = 1.0;
    if (kind == DETLOSS_LOSS_CONTRASTIVE && y == 0) {
      kink = fabs(3.0 - ref_pdist(xd[0], xd[1], d, 1e-6, 2.0));
    } else if (kind == DETLOSS_LOSS_COSINE_EMBEDDING && y < 0) {
      kink = fabs(ref_loss(kind, xd[0], xd[1], NULL, 1.0, d, &o) - 1.0 + 0.2); /* |cos - m| */
    } else if (kind == DETLOSS_LOSS_TRIPLET_MARGIN) {
      double e = (double)o.eps, p = (double)o.p;
      double dp = ref_pdist(xd[0], xd[1], d, e, p), dn = ref_pdist(xd[0], xd[2], d, e, p);
      double ds = ref_pdist(xd[1], xd[2], d, e, p);
      double dneg = o.swap ? fmin(dn, ds) : dn;
      kink = fabs(2.0 + dp - dneg);
      if (o.swap) kink = fmin(kink, fabs(dn - ds));
      for (size_t k = 0; k < d; k++) {
        kink = fmin(kink, fabs(xd[0][k] - xd[1][k]));
        kink = fmin(kink, fabs(xd[0][k] - xd[2][k]));
        kink = fmin(kink, fabs(xd[1][k] - xd[2][k]));
      }
    }
    if (kink < 1e-3) continue;
    float l, g[3][5];
    assert_int_equal(detloss_loss_embedding(kind, xf[0], xf[1], xf[2], &y, NULL, 1, d, &l, g[0],
                                            g[1], g[2], &o, NULL),
                     0);
    double l0 = ref_loss(kind, xd[0], xd[1], xd[2], (double)y, d, &o);
    dl_assert_close1(l, l0, 1e-6, 1e-7);
    const int nin = kind == DETLOSS_LOSS_TRIPLET_MARGIN ? 3 : 2;
    for (int j = 0; j < nin; j++) {
      double fd[5];
      for (size_t k = 0; k < d; k++) {
        const double h = 1e-5, keep = xd[j][k];
        xd[j][k] = keep + h;
        double lp = ref_loss(kind, xd[0], xd[1], xd[2], (double)y, d, &o);
        xd[j][k] = keep - h;
        double lm = ref_loss(kind, xd[0], xd[1], xd[2], (double)y, d, &o);
        xd[j][k] = keep;
        fd[k] = (lp - lm) / (2 * h);
      }
      /* FD truncation ~ h^2 f''' ~ 1e-9 (1e-7 for p = 0.7 near small v_k) */
      dl_assert_close(g[j], fd, d, 1e-5, 1e-6);
    }
    checked++;
  }
  assert_true(checked > 150);
}

/* Reductions: none gives w_i l_i; sum their sum; mean sum / n; gradients 1, 1, 1/n. */
static void reductions_and_weights_follow_the_conventions(void **state) {
  (void)state;
  const size_t n = 3, d = 2;
  const float a[6] = {1, 2, -1, 0.5f, 0, 3}, b[6] = {0.5f, 1, 2, 2, 1, -1};
  const float c[6] = {3, 1, 0, 0, 2, 2}, w[3] = {0.5f, 2, 0};
  const float t01[3] = {1, 0, 0}, tpm[3] = {1, -1, -1};
  for (int kk = 0; kk < 3; kk++) {
    detloss_loss_kind kind = KINDS[kk];
    const float *y = kind == DETLOSS_LOSS_CONTRASTIVE ? t01 : tpm;
    detloss_loss_options on = opts(kind, DETLOSS_REDUCTION_NONE);
    detloss_loss_options os = opts(kind, DETLOSS_REDUCTION_SUM);
    detloss_loss_options om = opts(kind, DETLOSS_REDUCTION_MEAN);
    on.margin = os.margin = om.margin = kind == DETLOSS_LOSS_COSINE_EMBEDDING ? -0.5f : 3.0f;
    float lu[3], ln[3], ls, lm, gu[6], gn[6], gs[6], gm[6];
    assert_int_equal(detloss_loss_embedding(kind, a, b, c, y, NULL, n, d, lu, gu, NULL, NULL, &on,
                                            NULL),
                     0);
    assert_int_equal(detloss_loss_embedding(kind, a, b, c, y, w, n, d, ln, gn, NULL, NULL, &on,
                                            NULL),
                     0);
    assert_int_equal(detloss_loss_embedding(kind, a, b, c, y, w, n, d, &ls, gs, NULL, NULL, &os,
                                            NULL),
                     0);
    assert_int_equal(detloss_loss_embedding(kind, a, b, c, y, w, n, d, &lm, gm, NULL, NULL, &om,
                                            NULL),
                     0);
    double e[3], eg[6], sum = 0;
    for (size_t i = 0; i < n; i++) {
      e[i] = (double)w[i] * (double)lu[i];
      sum += e[i];
      for (size_t k = 0; k < d; k++) eg[i * d + k] = (double)w[i] * (double)gu[i * d + k];
    }
    assert_true(sum > 0.1); /* the case is not trivially zero */
    dl_assert_close(ln, e, 3, 1e-6, 0);
    dl_assert_close1(ls, sum, 1e-6, 0);
    dl_assert_close1(lm, sum / 3, 1e-6, 0);
    dl_assert_close(gn, eg, 6, 1e-6, 0);
    dl_assert_close(gs, eg, 6, 1e-6, 0);
    for (int j = 0; j < 6; j++) eg[j] /= 3;
    dl_assert_close(gm, eg, 6, 1e-6, 0);
  }
}

/* MEAN over no pairs is 0; NULL options are the defaults (margins 1, 0, 1;
 * p 2, eps 1e-6, no swap; MEAN). */
static void empty_mean_is_zero_and_null_options_are_defaults(void **state) {
  (void)state;
  for (int kk = 0; kk < 3; kk++) {
    float l = 5;
    assert_int_equal(detloss_loss_embedding(KINDS[kk], NULL, NULL, NULL, NULL, NULL, 0, 4, &l, NULL,
                                            NULL, NULL, NULL, NULL),
                     0);
    assert_true(l == 0.0f);
    const float a[4] = {1, 2, 0, 1}, b[4] = {0.5f, 0, 1, 1}, c[4] = {0, 1, 2, 2};
    const float y01[2] = {0, 1}, ypm[2] = {-1, 1};
    const float *y = KINDS[kk] == DETLOSS_LOSS_CONTRASTIVE ? y01 : ypm;
    detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_MEAN);
    float l1, l2, g1[4], g2[4];
    assert_int_equal(detloss_loss_embedding(KINDS[kk], a, b, c, y, NULL, 2, 2, &l1, g1, NULL, NULL,
                                            NULL, NULL),
                     0);
    assert_int_equal(detloss_loss_embedding(KINDS[kk], a, b, c, y, NULL, 2, 2, &l2, g2, NULL, NULL,
                                            &o, NULL),
                     0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    dl_assert_bitwise_equal(g1, g2, 4);
  }
}

static int all_finite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* Extreme inputs: identical embeddings (contrastive D = ||1e-6 * 1||, y = 1
 * gives D^2/2 = 1.5e-12; y = 0 gives (1 - D)^2/2), zero vectors in cosine
 * (cos = 0 exactly: 1 for y = 1), coordinates 1e38, tiny and huge p,
 * zero-dimensional embeddings. Never NaN or Inf. */
static void extreme_inputs_stay_finite(void **state) {
  (void)state;
  const float z[6] = {0, 0, 0, 0, 0, 0};
  const float y01[2] = {1, 0}, ypm[2] = {1, -1};
  float l[2], g1[6], g2[6], g3[6];
  detloss_loss_options o = opts(DETLOSS_LOSS_CONTRASTIVE, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_embedding(DETLOSS_LOSS_CONTRASTIVE, z, z, NULL, y01, NULL, 2, 3, l,
                                          g1, g2, NULL, &o, NULL),
                   0);
  double dist = sqrt(3e-12);
  const double ec[2] = {1.5e-12, 0.5 * (1 - dist) * (1 - dist)};
  dl_assert_close(l, ec, 2, 1e-6, 0);
  assert_true(all_finite(g1, 6) && all_finite(g2, 6));

  o = opts(DETLOSS_LOSS_COSINE_EMBEDDING, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_embedding(DETLOSS_LOSS_COSINE_EMBEDDING, z, z, NULL, ypm, NULL, 2,
                                          3, l, g1, g2, NULL, &o, NULL),
                   0);
  const double ez[2] = {1.0, 0.0};
  dl_assert_close(l, ez, 2, 0, 0);
  assert_true(all_finite(g1, 6) && all_finite(g2, 6));

  const float big1[6] = {3e38f, -3e38f, 1e38f, -3e38f, 3e38f, 0};
  const float big2[6] = {-3e38f, 3e38f, 0, 1e-45f, 0, 3e38f};
  const float big3[6] = {0, 0, -3e38f, 3e38f, -3e38f, 1};
  for (int kk = 0; kk < 3; kk++) {
    o = opts(KINDS[kk], DETLOSS_REDUCTION_NONE);
    const float *y = KINDS[kk] == DETLOSS_LOSS_CONTRASTIVE ? y01 : ypm;
    const float ps[4] = {2, 0.3f, 50, 1};
    for (int ip = 0; ip < 4; ip++) {
      o.p = ps[ip];
      o.swap = ip % 2;
      assert_int_equal(detloss_loss_embedding(KINDS[kk], big1, big2, big3, y, NULL, 2, 3, l, g1, g2,
                                              g3, &o, NULL),
                       0);
      assert_true(all_finite(l, 2) && all_finite(g1, 6) && all_finite(g2, 6));
      if (KINDS[kk] == DETLOSS_LOSS_TRIPLET_MARGIN) assert_true(all_finite(g3, 6));
      assert_int_equal(detloss_loss_embedding(KINDS[kk], z, z, z, y, NULL, 2, 3, l, g1, g2, g3, &o,
                                              NULL),
                       0);
      assert_true(all_finite(l, 2) && all_finite(g1, 6) && all_finite(g2, 6));
    }
    /* d = 0: distances 0, cos 0; no gradient entries */
    assert_int_equal(detloss_loss_embedding(KINDS[kk], NULL, NULL, NULL, y, NULL, 2, 0, l, NULL,
                                            NULL, NULL, &o, NULL),
                     0);
    assert_true(all_finite(l, 2));
  }
}

static float extreme_float(dl_rng *r) {
  static const float v[] = {0,      1,     -1,     1e-45f,        -1e-45f,
                            1e-38f, 3e38f, -3e38f, 3.4028235e38f, -3.4028235e38f,
                            0.5f,   2,     1e20f,  -1e20f,        1e-20f};
  uint64_t u = dl_rng_u64(r);
  if (u % 3 == 0) return v[(u >> 8) % (sizeof v / sizeof v[0])];
  int e = (int)((u >> 8) % 251) - 125;
  return (float)ldexp((double)((u >> 20) % 1000000) / 1e6 * ((u >> 40) & 1 ? 1 : -1), e);
}

/* 20,000 random pairs/triplets of dimension 6 from a mix of extreme values
 * (exact ties between inputs one time in four), extreme weights, p from 0.01
 * to 1000, with and without swap: no NaN or Inf in any loss or gradient. */
static void random_extreme_embeddings_never_give_nan_or_inf(void **state) {
  (void)state;
  const size_t n = 20000, d = 6;
  float *x[3], *g[3];
  dl_rng rng = {11};
  for (int j = 0; j < 3; j++) {
    x[j] = malloc(4 * n * d);
    g[j] = malloc(4 * n * d);
    for (size_t i = 0; i < n * d; i++)
      x[j][i] = j && (dl_rng_u64(&rng) & 3) == 0 ? x[0][i] : extreme_float(&rng);
  }
  float *y01 = malloc(4 * n), *ypm = malloc(4 * n), *w = malloc(4 * n), *l = malloc(4 * n);
  for (size_t i = 0; i < n; i++) {
    y01[i] = (float)(dl_rng_u64(&rng) & 1);
    ypm[i] = 2 * y01[i] - 1;
    w[i] = (dl_rng_u64(&rng) & 1) ? 1.0f : extreme_float(&rng);
  }
  const float ps[8] = {2, 1, 0.01f, 0.3f, 1.5f, 3, 50, 1000};
  for (int kk = 0; kk < 3; kk++)
    for (int ip = 0; ip < 8; ip++) {
      detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_NONE);
      o.p = ps[ip];
      o.swap = ip % 2;
      if (KINDS[kk] == DETLOSS_LOSS_CONTRASTIVE) o.margin = ip % 2 ? 1e30f : 1.0f;
      const float *y = KINDS[kk] == DETLOSS_LOSS_CONTRASTIVE ? y01 : ypm;
      assert_int_equal(detloss_loss_embedding(KINDS[kk], x[0], x[1], x[2], y, w, n, d, l, g[0],
                                              g[1], g[2], &o, NULL),
                       0);
      assert_true(all_finite(l, n) && all_finite(g[0], n * d) && all_finite(g[1], n * d));
      if (KINDS[kk] == DETLOSS_LOSS_TRIPLET_MARGIN) assert_true(all_finite(g[2], n * d));
    }
  for (int j = 0; j < 3; j++) {
    free(x[j]);
    free(g[j]);
  }
  free(y01);
  free(ypm);
  free(w);
  free(l);
}

/* Bad input: status, err.where, outputs untouched. */
static void bad_input_is_rejected_with_outputs_untouched(void **state) {
  (void)state;
  float a[4] = {1, 2, 3, 4}, b[4] = {0, 1, 0, 1}, c[4] = {2, 2, 2, 2}, y[2] = {1, 0};
  float w[2] = {1, 1}, l[2] = {-7, -7}, g[4] = {-7, -7, -7, -7};
  detloss_error err;
  detloss_loss_options o = opts(DETLOSS_LOSS_CONTRASTIVE, DETLOSS_REDUCTION_NONE);
#define EXPECT_FAIL(call, status, wh)                                                              \
  do {                                                                                             \
    memset(&err, 0, sizeof err);                                                                   \
    assert_int_equal((call), (status));                                                            \
    assert_string_equal(err.where, (wh));                                                          \
    for (int k_ = 0; k_ < 4; k_++) assert_true(g[k_] == -7.0f);                                    \
    assert_true(l[0] == -7.0f && l[1] == -7.0f);                                                   \
  } while (0)
#define CALL(kind, x1, x2, x3, t)                                                                  \
  detloss_loss_embedding((kind), (x1), (x2), (x3), (t), w, 2, 2, l, g, NULL, NULL, &o, &err)
  EXPECT_FAIL(CALL(DETLOSS_LOSS_CONTRASTIVE, NULL, b, NULL, y), DETLOSS_ERR_NULL, "x1");
  EXPECT_FAIL(CALL(DETLOSS_LOSS_CONTRASTIVE, a, b, NULL, NULL), DETLOSS_ERR_NULL, "target");
  b[3] = NAN;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_CONTRASTIVE, a, b, NULL, y), DETLOSS_ERR_NONFINITE, "x2[1][1]");
  b[3] = 1;
  y[1] = 0.5f;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_CONTRASTIVE, a, b, NULL, y), DETLOSS_ERR_RANGE, "target[1]");
  y[1] = 0;
  w[0] = INFINITY;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_CONTRASTIVE, a, b, NULL, y), DETLOSS_ERR_NONFINITE, "weight[0]");
  w[0] = 1;
  o.margin = -1;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_CONTRASTIVE, a, b, NULL, y), DETLOSS_ERR_RANGE, "margin");
  o = opts(DETLOSS_LOSS_COSINE_EMBEDDING, DETLOSS_REDUCTION_NONE);
  EXPECT_FAIL(CALL(DETLOSS_LOSS_COSINE_EMBEDDING, a, b, NULL, y), DETLOSS_ERR_RANGE,
              "target[1]"); /* 0 is not +-1 */
  o.margin = 1.5f;
  y[1] = -1;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_COSINE_EMBEDDING, a, b, NULL, y), DETLOSS_ERR_RANGE, "margin");
  o = opts(DETLOSS_LOSS_TRIPLET_MARGIN, DETLOSS_REDUCTION_NONE);
  EXPECT_FAIL(CALL(DETLOSS_LOSS_TRIPLET_MARGIN, a, b, NULL, NULL), DETLOSS_ERR_NULL, "x3");
  c[0] = -INFINITY;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_TRIPLET_MARGIN, a, b, c, NULL), DETLOSS_ERR_NONFINITE, "x3[0][0]");
  c[0] = 2;
  const float bad_p[3] = {0, -2, INFINITY};
  for (int i = 0; i < 3; i++) {
    o.p = bad_p[i];
    EXPECT_FAIL(CALL(DETLOSS_LOSS_TRIPLET_MARGIN, a, b, c, NULL), DETLOSS_ERR_RANGE, "p");
  }
  o.p = 2;
  o.eps = -1e-6f;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_TRIPLET_MARGIN, a, b, c, NULL), DETLOSS_ERR_RANGE, "eps");
  o.eps = 1e-6f;
  o.margin = -0.5f;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_TRIPLET_MARGIN, a, b, c, NULL), DETLOSS_ERR_RANGE, "margin");
  o.margin = 1;
  o.reduction = (detloss_reduction)-1;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_TRIPLET_MARGIN, a, b, c, NULL), DETLOSS_ERR_RANGE, "reduction");
  o.reduction = DETLOSS_REDUCTION_NONE;
  EXPECT_FAIL(CALL(DETLOSS_LOSS_GIOU, a, b, c, NULL), DETLOSS_ERR_RANGE, "kind");
  EXPECT_FAIL(detloss_loss_embedding(DETLOSS_LOSS_TRIPLET_MARGIN, a, b, c, NULL, w, SIZE_MAX / 2, 4,
                                     l, g, NULL, NULL, &o, &err),
              DETLOSS_ERR_SHAPE, "n");
#undef CALL
#undef EXPECT_FAIL
}

/* 20,000 pairs of dimension 64 (79 blocks of 256 pairs): losses and every
 * gradient bitwise identical for 1, 2 and 4 threads. */
static void results_are_bitwise_identical_for_any_thread_count(void **state) {
  (void)state;
  const size_t n = 20000, d = 64;
  float *x[3], *g[3][3], *l[3], s[3];
  dl_rng rng = {3};
  for (int j = 0; j < 3; j++) {
    x[j] = malloc(n * d * sizeof(float));
    for (size_t i = 0; i < n * d; i++) x[j][i] = (float)dl_rng_normal(&rng);
  }
  float *y = malloc(n * sizeof(float)), *w = malloc(n * sizeof(float));
  for (int r = 0; r < 3; r++) {
    for (int j = 0; j < 3; j++) g[r][j] = malloc(n * d * sizeof(float));
    l[r] = malloc(n * sizeof(float));
  }
  const int threads[3] = {1, 2, 4};
  for (int kk = 0; kk < 3; kk++) {
    for (size_t i = 0; i < n; i++) {
      int pos = dl_rng_u64(&rng) & 1;
      y[i] = KINDS[kk] == DETLOSS_LOSS_CONTRASTIVE ? (float)pos : (pos ? 1.0f : -1.0f);
      w[i] = (float)dl_rng_uniform(&rng, 0, 2);
    }
    for (int r = 0; r < 3; r++) {
      detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_MEAN);
      o.margin = KINDS[kk] == DETLOSS_LOSS_COSINE_EMBEDDING ? 0.0f : 12.0f;
      o.swap = 1;
      o.num_threads = threads[r];
      assert_int_equal(detloss_loss_embedding(KINDS[kk], x[0], x[1], x[2], y, w, n, d, &s[r],
                                              g[r][0], g[r][1], g[r][2], &o, NULL),
                       0);
      o.reduction = DETLOSS_REDUCTION_NONE;
      assert_int_equal(detloss_loss_embedding(KINDS[kk], x[0], x[1], x[2], y, w, n, d, l[r], NULL,
                                              NULL, NULL, &o, NULL),
                       0);
    }
    for (int r = 1; r < 3; r++) {
      dl_assert_bitwise_equal(&s[0], &s[r], 1);
      dl_assert_bitwise_equal(l[0], l[r], n);
      dl_assert_bitwise_equal(g[0][0], g[r][0], n * d);
      dl_assert_bitwise_equal(g[0][1], g[r][1], n * d);
      if (KINDS[kk] == DETLOSS_LOSS_TRIPLET_MARGIN)
        dl_assert_bitwise_equal(g[0][2], g[r][2], n * d);
    }
  }
  for (int r = 0; r < 3; r++) {
    for (int j = 0; j < 3; j++) free(g[r][j]);
    free(l[r]);
  }
  for (int j = 0; j < 3; j++) free(x[j]);
  free(y);
  free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(values_and_gradients_match_torch_float64),
      cmocka_unit_test(hand_worked_values_hold),
      cmocka_unit_test(gradients_match_central_differences),
      cmocka_unit_test(reductions_and_weights_follow_the_conventions),
      cmocka_unit_test(empty_mean_is_zero_and_null_options_are_defaults),
      cmocka_unit_test(extreme_inputs_stay_finite),
      cmocka_unit_test(random_extreme_embeddings_never_give_nan_or_inf),
      cmocka_unit_test(bad_input_is_rejected_with_outputs_untouched),
      cmocka_unit_test(results_are_bitwise_identical_for_any_thread_count),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
