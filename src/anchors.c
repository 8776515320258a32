/*
 * anchors.c - anchor generation from a per-level grid config.
 *
 * torchvision AnchorGenerator (models/detection/anchor_utils.py):
 *   h_ratio = sqrt(r), w_ratio = 1 / h_ratio, ws = w_ratio * s, hs = h_ratio * s,
 *   base = round((-ws, -hs, ws, hs) / 2)                         (float32, half to even)
 *   anchors = shift + base, shift = (stride_w x, stride_h y, ...), order (level, y, x, k).
 * detectron2 DefaultAnchorGenerator (modeling/anchor_generator.py):
 *   w = sqrt(s^2 / r), h = r w (Python floats, then float32), base = (-w/2, -h/2, w/2, h/2),
 *   order size-major; shifts from a float32 arange(offset * stride, ..., stride), whose CPU
 *   kernel evaluates start + step * i in double before rounding to float32.
 * Both shift rules are the same expression: (float)((double)offset * stride + (double)stride * x)
 * (dl_cell_shift, box_kernels.h); with offset 0 and an integer stride it is exactly
 * torchvision's int64 shift cast to float.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "anchors_internal.h"
#include "box_kernels.h"

static detloss_status check_positive(const float *v, size_t n, size_t level, const char *field,
                                     detloss_error *err) {
  DL_RETURN_ERROR_IF(n > 0 && v == NULL, err, DETLOSS_ERR_NULL, field, "is NULL");
  for (size_t i = 0; i < n; i++) {
    if (!(v[i] > 0.0f) || !isfinite(v[i])) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "levels[%zu].%s[%zu]", level, field, i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be a finite number > 0, got %g",
                     (double)v[i]);
    }
  }
  return DETLOSS_OK;
}

/* Validates the arrays of level l and returns its number of base anchors in *k. */
static detloss_status level_k_arrays(const detloss_anchor_config *cfg, size_t l, size_t *k,
                                     detloss_error *err) {
  const detloss_anchor_level *lv = &cfg->levels[l];
  char where[DETLOSS_WHERE_MAX];
  if (!(lv->stride_h > 0.0f) || !isfinite(lv->stride_h) || !(lv->stride_w > 0.0f) ||
      !isfinite(lv->stride_w)) {
    snprintf(where, sizeof where, "levels[%zu].stride", l);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be finite and > 0, got (%g, %g)",
                   (double)lv->stride_h, (double)lv->stride_w);
  }
  if (lv->base != NULL || lv->num_base > 0) {
    snprintf(where, sizeof where, "levels[%zu].base", l);
    DL_RETURN_ERROR_IF(lv->base == NULL, err, DETLOSS_ERR_NULL, where, "is NULL");
    DL_FORWARD_IF_ERROR(dl_check_boxes(lv->base, lv->num_base, where, err));
    *k = lv->num_base;
    return DETLOSS_OK;
  }
  if (lv->shapes != NULL || lv->num_shapes > 0) {
    DL_FORWARD_IF_ERROR(check_positive(lv->shapes, 2 * lv->num_shapes, l, "shapes", err));
    *k = lv->num_shapes;
    return DETLOSS_OK;
  }
  DL_FORWARD_IF_ERROR(check_positive(lv->sizes, lv->num_sizes, l, "sizes", err));
  DL_FORWARD_IF_ERROR(check_positive(lv->ratios, lv->num_ratios, l, "ratios", err));
  size_t kk;
  if (dl_mul_overflow(lv->num_sizes, lv->num_ratios, &kk) || kk > DL_MAX_ELEMS / 4) {
    snprintf(where, sizeof where, "levels[%zu].sizes", l);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where,
                   "%zu sizes x %zu ratios is more base anchors than can be indexed", lv->num_sizes,
                   lv->num_ratios);
  }
  *k = kk;
  return DETLOSS_OK;
}

static detloss_status check_level_extent(const detloss_anchor_config *cfg, size_t l, size_t k,
                                         detloss_error *err);

/* Validates level l (arrays, then the coordinate bound of its anchors) and
 * returns its number of base anchors in *k. */
static detloss_status level_k(const detloss_anchor_config *cfg, size_t l, size_t *k,
                              detloss_error *err) {
  size_t kk = 0;
  DL_FORWARD_IF_ERROR(level_k_arrays(cfg, l, &kk, err));
  DL_FORWARD_IF_ERROR(check_level_extent(cfg, l, kk, err));
  *k = kk;
  return DETLOSS_OK;
}

static detloss_status check_config(const detloss_anchor_config *cfg, detloss_error *err) {
  DL_RETURN_ERROR_IF(cfg == NULL, err, DETLOSS_ERR_NULL, "cfg", "is NULL");
  DL_RETURN_ERROR_IF(cfg->num_levels > 0 && cfg->levels == NULL, err, DETLOSS_ERR_NULL, "levels",
                     "is NULL");
  DL_RETURN_ERROR_IF(cfg->convention != DETLOSS_ANCHORS_TORCHVISION &&
                         cfg->convention != DETLOSS_ANCHORS_DETECTRON2,
                     err, DETLOSS_ERR_RANGE, "convention", "unknown convention %d",
                     (int)cfg->convention);
  DL_RETURN_ERROR_IF(!(cfg->offset >= 0.0f && cfg->offset < 1.0f), err, DETLOSS_ERR_RANGE, "offset",
                     "must be in [0, 1), got %g", (double)cfg->offset);
  return DETLOSS_OK;
}

/* Base anchor q of level l (validated sizes, ratios, shapes or base). */
static void one_base(const detloss_anchor_config *cfg, size_t l, size_t q, float *b) {
  const detloss_anchor_level *lv = &cfg->levels[l];
  if (lv->base != NULL || lv->num_base > 0) {
    for (int c = 0; c < 4; c++) b[c] = lv->base[4 * q + (size_t)c];
    return;
  }
  if (lv->shapes != NULL || lv->num_shapes > 0) {
    /* YOLO shape (w, h) centred on the cell point: (-w/2, -h/2, w/2, h/2). */
    float w = lv->shapes[2 * q], h = lv->shapes[2 * q + 1];
    b[0] = -w / 2.0f;
    b[1] = -h / 2.0f;
    b[2] = w / 2.0f;
    b[3] = h / 2.0f;
    return;
  }
  size_t ns = lv->num_sizes, nr = lv->num_ratios;
  if (cfg->convention == DETLOSS_ANCHORS_TORCHVISION) {
    /* float32 throughout, torchvision generate_anchors (index r * ns + s); rintf
     * rounds half to even in the default rounding mode, as torch.round. */
    size_t r = q / ns, s = q % ns;
    float hr = sqrtf(lv->ratios[r]);
    float wr = 1.0f / hr;
    float ws = wr * lv->sizes[s], hs = hr * lv->sizes[s];
    b[0] = rintf(-ws / 2.0f);
    b[1] = rintf(-hs / 2.0f);
    b[2] = rintf(ws / 2.0f);
    b[3] = rintf(hs / 2.0f);
  } else {
    /* detectron2 generate_cell_anchors (index s * nr + r): Python double
     * arithmetic, then float32. */
    size_t s = q / nr, r = q % nr;
    double size = (double)lv->sizes[s], area = size * size;
    double ratio = (double)lv->ratios[r];
    double w = sqrt(area / ratio), h = ratio * w;
    b[0] = (float)(-w / 2.0);
    b[1] = (float)(-h / 2.0);
    b[2] = (float)(w / 2.0);
    b[3] = (float)(h / 2.0);
  }
}

/* Base anchors of a validated level. */
static void level_base(const detloss_anchor_config *cfg, size_t l, size_t k, float *base) {
  for (size_t q = 0; q < k; q++) one_base(cfg, l, q, base + 4 * q);
}

/* Checks that every base anchor of level l (K of them) and every anchor of
 * its feat_h x feat_w grid stays within DL_COORD_MAX: sizes of 3e38 would
 * otherwise give Inf corners (or, later, Inf areas and NaN IoUs). */
static detloss_status check_level_extent(const detloss_anchor_config *cfg, size_t l, size_t k,
                                         detloss_error *err) {
  const detloss_anchor_level *lv = &cfg->levels[l];
  char where[DETLOSS_WHERE_MAX];
  int from_base = lv->base != NULL || lv->num_base > 0;
  int from_shapes = !from_base && (lv->shapes != NULL || lv->num_shapes > 0);
  double bx = 0.0, by = 0.0; /* largest |x| and |y| of a base anchor corner */
  for (size_t q = 0; q < k; q++) {
    float b[4];
    one_base(cfg, l, q, b);
    int bad = 0;
    for (int c = 0; c < 4; c++) bad |= !(fabsf(b[c]) <= DL_COORD_MAX);
    if (bad) {
      if (from_base)
        snprintf(where, sizeof where, "levels[%zu].base[%zu]", l, q);
      else if (from_shapes)
        snprintf(where, sizeof where, "levels[%zu].shapes[%zu]", l, q);
      else
        snprintf(where, sizeof where, "levels[%zu].sizes[%zu]", l,
                 cfg->convention == DETLOSS_ANCHORS_TORCHVISION ? q % lv->num_sizes
                                                                : q / lv->num_ratios);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "gives a base anchor (%g, %g, %g, %g) beyond the coordinate bound 1e18",
                     (double)b[0], (double)b[1], (double)b[2], (double)b[3]);
    }
    for (int c = 0; c < 4; c += 2) bx = fmax(bx, fabs((double)b[c]));
    for (int c = 1; c < 4; c += 2) by = fmax(by, fabs((double)b[c]));
  }
  if (k == 0 || lv->feat_h == 0 || lv->feat_w == 0) return DETLOSS_OK;
  /* The farthest cell's shift, before its rounding to float, plus the base. */
  double ex = dl_cell_shift_unrounded(cfg->offset, lv->stride_w, lv->feat_w - 1) + bx;
  double ey = dl_cell_shift_unrounded(cfg->offset, lv->stride_h, lv->feat_h - 1) + by;
  if (!(ex <= (double)DL_COORD_MAX) || !(ey <= (double)DL_COORD_MAX)) {
    snprintf(where, sizeof where, "levels[%zu].stride", l);
    return dl_fail(err, DETLOSS_ERR_RANGE, where,
                   "(%g, %g) on a %zu x %zu feature map puts anchors at %g, beyond the "
                   "coordinate bound 1e18",
                   (double)lv->stride_h, (double)lv->stride_w, lv->feat_h, lv->feat_w,
                   fmax(ex, ey));
  }
  return DETLOSS_OK;
}

detloss_status detloss_anchors_level_base(const detloss_anchor_config *cfg, size_t level,
                                          float *base, size_t capacity, size_t *count,
                                          detloss_error *err) {
  DL_FORWARD_IF_ERROR(check_config(cfg, err));
  DL_RETURN_ERROR_IF(level >= cfg->num_levels, err, DETLOSS_ERR_RANGE, "level",
                     "is %zu but the config has %zu levels", level, cfg->num_levels);
  DL_RETURN_ERROR_IF(count == NULL, err, DETLOSS_ERR_NULL, "count", "is NULL");
  size_t k;
  DL_FORWARD_IF_ERROR(level_k(cfg, level, &k, err));
  if (base != NULL) {
    DL_RETURN_ERROR_IF(capacity < k, err, DETLOSS_ERR_SHAPE, "capacity",
                       "is %zu but the level has %zu base anchors", capacity, k);
    dl_span out = dl_span_of(base, k, 4 * sizeof(float), "base", 1);
    DL_FORWARD_IF_ERROR(dl_check_grid_overlaps(cfg, "", &out, 1, DL_NO_IMAGE, err));
    level_base(cfg, level, k, base);
  }
  *count = k;
  return DETLOSS_OK;
}

static detloss_status count_all(const detloss_anchor_config *cfg, size_t *count,
                                detloss_error *err) {
  DL_FORWARD_IF_ERROR(check_config(cfg, err));
  size_t total = 0;
  for (size_t l = 0; l < cfg->num_levels; l++) {
    size_t k = 0, cells, n;
    DL_FORWARD_IF_ERROR(level_k(cfg, l, &k, err));
    const detloss_anchor_level *lv = &cfg->levels[l];
    if (dl_mul_overflow(lv->feat_h, lv->feat_w, &cells) || dl_mul_overflow(cells, k, &n) ||
        dl_add_overflow(total, n, &total) || total > DL_MAX_ELEMS / 4) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "levels[%zu].feat_h", l);
      return dl_fail(err, DETLOSS_ERR_SHAPE, where,
                     "%zu x %zu cells x %zu base anchors: the anchor count of levels 0..%zu "
                     "overflows or is more than can be indexed (%zu)",
                     lv->feat_h, lv->feat_w, k, l, (size_t)(DL_MAX_ELEMS / 4));
    }
  }
  *count = total;
  return DETLOSS_OK;
}

detloss_status detloss_anchors_count(const detloss_anchor_config *cfg, size_t *count,
                                     detloss_error *err) {
  DL_RETURN_ERROR_IF(count == NULL, err, DETLOSS_ERR_NULL, "count", "is NULL");
  return count_all(cfg, count, err);
}

void dl_grid_free(dl_grid *g) {
  if (g->lv) {
    for (size_t l = 0; l < g->num_levels; l++) {
      free(g->lv[l].base);
      free(g->lv[l].sx);
      free(g->lv[l].sy);
    }
  }
  free(g->lv);
  g->lv = NULL;
  g->num_levels = 0;
  g->count = 0;
}

detloss_status dl_grid_build(const detloss_anchor_config *cfg, dl_grid *g, detloss_error *err) {
  size_t total = 0;
  DL_FORWARD_IF_ERROR(count_all(cfg, &total, err));
  g->num_levels = cfg->num_levels;
  g->count = total;
  g->lv = cfg->num_levels ? calloc(cfg->num_levels, sizeof *g->lv) : NULL;
  if (cfg->num_levels && !g->lv) {
    g->num_levels = 0;
    return dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
  }
  size_t off = 0;
  for (size_t l = 0; l < cfg->num_levels; l++) {
    const detloss_anchor_level *src = &cfg->levels[l];
    dl_grid_level *lv = &g->lv[l];
    size_t k = 0;
    level_k(cfg, l, &k, NULL);
    lv->h = src->feat_h;
    lv->w = src->feat_w;
    lv->k = k;
    lv->off = off;
    lv->stride_h = src->stride_h;
    lv->stride_w = src->stride_w;
    lv->offset = cfg->offset;
    lv->base = malloc((k ? k : 1) * 4 * sizeof(float));
    lv->sx = malloc((lv->w ? lv->w : 1) * sizeof(float));
    lv->sy = malloc((lv->h ? lv->h : 1) * sizeof(float));
    if (!lv->base || !lv->sx || !lv->sy) {
      dl_grid_free(g);
      return dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
    }
    level_base(cfg, l, k, lv->base);
    for (size_t x = 0; x < lv->w; x++) lv->sx[x] = dl_cell_shift(cfg->offset, lv->stride_w, x);
    for (size_t y = 0; y < lv->h; y++) lv->sy[y] = dl_cell_shift(cfg->offset, lv->stride_h, y);
    off += lv->h * lv->w * k;
  }
  return DETLOSS_OK;
}

detloss_status detloss_anchors_generate(const detloss_anchor_config *cfg, float *anchors,
                                        size_t count, detloss_error *err) {
  size_t total = 0;
  DL_FORWARD_IF_ERROR(count_all(cfg, &total, err));
  DL_RETURN_ERROR_IF(count != total, err, DETLOSS_ERR_SHAPE, "count",
                     "is %zu but the config generates %zu anchors", count, total);
  DL_FORWARD_IF_ERROR(dl_check_ptr(anchors, count, "anchors", err));
  dl_span out = dl_span_of(anchors, count, 4 * sizeof(float), "anchors", 1);
  DL_FORWARD_IF_ERROR(dl_check_grid_overlaps(cfg, "", &out, 1, DL_NO_IMAGE, err));
  dl_grid g;
  DL_FORWARD_IF_ERROR(dl_grid_build(cfg, &g, err));
  for (size_t l = 0; l < g.num_levels; l++) {
    const dl_grid_level *lv = &g.lv[l];
    float *o = anchors + 4 * lv->off;
    for (size_t y = 0; y < lv->h; y++)
      for (size_t x = 0; x < lv->w; x++)
        for (size_t k = 0; k < lv->k; k++, o += 4) {
          const float *b = lv->base + 4 * k;
          o[0] = lv->sx[x] + b[0];
          o[1] = lv->sy[y] + b[1];
          o[2] = lv->sx[x] + b[2];
          o[3] = lv->sy[y] + b[3];
        }
  }
  dl_grid_free(&g);
  return DETLOSS_OK;
}
