/*
 * limits.c - the JSON layer's bounds on work and memory (detloss_json_limits
 * in detloss_json.h): the defaults, and the checks that run before any work
 * starts. Every failure is DETLOSS_ERR_RANGE with a message ending in
 * "the limit <field> = <value>", which the CLI turns into "set DETLOSS_<FIELD>
 * to raise it".
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "json/evalcfg.h"

detloss_json_limits detloss_json_limits_default(void) {
  detloss_json_limits l = DETLOSS_JSON_LIMITS_INIT;
  return l;
}

detloss_json_limits dl_json_limits(const detloss_json_limits *in) {
  detloss_json_limits l = detloss_json_limits_default();
  if (!in) return l;
  if (in->max_input_bytes) l.max_input_bytes = in->max_input_bytes;
  if (in->max_output_numbers) l.max_output_numbers = in->max_output_numbers;
  if (in->max_anchors) l.max_anchors = in->max_anchors;
  if (in->max_image_side > 0.0) l.max_image_side = in->max_image_side;
  return l;
}

double dl_grid_anchor_count(const detloss_anchor_config *g, double h, double w, size_t *big) {
  double total = 0.0, most = -1.0;
  if (big) *big = 0;
  for (size_t l = 0; l < g->num_levels; l++) {
    size_t k = 0;
    if (detloss_anchors_level_base(g, l, NULL, 0, &k, NULL) != DETLOSS_OK) k = 0;
    /* ceil(size / stride) per axis, as detloss eval and detloss anchors use it;
     * in double, so a stride of 1e-30 gives a large number, not an overflow. */
    double n = ceil(h / (double)g->levels[l].stride_h) * ceil(w / (double)g->levels[l].stride_w) *
               (double)k;
    total += n;
    if (n > most) {
      most = n;
      if (big) *big = l;
    }
  }
  return total;
}

detloss_status dl_check_output(const detloss_json_limits *lim, double numbers, const char *where,
                               const char *what, detloss_error *err) {
  if (numbers <= (double)lim->max_output_numbers) return DETLOSS_OK;
  return dl_fail(err, DETLOSS_ERR_RANGE, where,
                 "%s would return %.15g numbers, more than the limit max_output_numbers = %zu",
                 what, numbers, lim->max_output_numbers);
}

detloss_status dl_check_side(const detloss_json_limits *lim, double side, const char *where,
                             detloss_error *err) {
  if (side <= lim->max_image_side) return DETLOSS_OK;
  return dl_fail(err, DETLOSS_ERR_RANGE, where, "%g px is above the limit max_image_side = %.0f",
                 side, lim->max_image_side);
}

/* The resized size of an H x W image (anchor_eval.c resize_params, in double:
 * the same up to float rounding, which is all a bound needs). */
static void resized(const detloss_eval_options *o, double h, double w, double *nh, double *nw) {
  double mn = (double)o->resize_min_size, mx = (double)o->resize_max_size;
  if (mn > 0.0 && mx > 0.0) {
    double sc = fmin(mn / fmin(h, w), mx / fmax(h, w));
    *nh = floor(h * sc);
    *nw = floor(w * sc);
  } else if (mn > 0.0 || mx > 0.0) {
    double s = mx > 0.0 ? mx / fmax(h, w) : mn / fmin(h, w);
    *nh = h * s;
    *nw = w * s;
  } else {
    *nh = h;
    *nw = w;
  }
}

detloss_status detloss_eval_check_limits(const detloss_eval_dataset *data,
                                         const detloss_eval_anchors *src,
                                         const detloss_eval_options *opt,
                                         const detloss_json_limits *limits, detloss_error *err) {
  DL_RETURN_ERROR_IF(!data, err, DETLOSS_ERR_NULL, "data", "is NULL");
  DL_RETURN_ERROR_IF(!src, err, DETLOSS_ERR_NULL, "src", "is NULL");
  detloss_json_limits lim = dl_json_limits(limits);
  detloss_eval_options o = opt ? *opt : detloss_eval_options_default();
  DL_RETURN_ERROR_IF(data->num_images > 0 && !data->image_hw, err, DETLOSS_ERR_NULL,
                     "data.image_hw", "is NULL");
  const char *rkey = o.resize_max_size > 0.0f ? "resize_max_size" : "resize_min_size";
  double rval = o.resize_max_size > 0.0f ? (double)o.resize_max_size : (double)o.resize_min_size;
  if (isfinite(rval)) DL_FORWARD_IF_ERROR(dl_check_side(&lim, rval, rkey, err));
  for (size_t i = 0; i < data->num_images; i++) {
    double h = (double)data->image_hw[2 * i], w = (double)data->image_hw[2 * i + 1];
    if (!(h > 0.0 && w > 0.0 && isfinite(h) && isfinite(w))) continue; /* the library says so */
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "data.image_hw[%zu]", i);
    DL_FORWARD_IF_ERROR(dl_check_side(&lim, fmax(h, w), where, err));
    double nh, nw;
    resized(&o, h, w, &nh, &nw);
    if (!(fmax(nh, nw) <= lim.max_image_side))
      return dl_fail(err, DETLOSS_ERR_RANGE, rkey,
                     "resizes image %zu (%g x %g px) to %.0f x %.0f px, above the limit "
                     "max_image_side = %.0f",
                     i, h, w, nh, nw, lim.max_image_side);
    if (!src->grid) continue;
    size_t big;
    double n = dl_grid_anchor_count(src->grid, nh, nw, &big);
    if (!(n <= (double)lim.max_anchors)) {
      const detloss_anchor_level *L = &src->grid->levels[big];
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "a %.0f x %.0f px image needs %.15g anchors (level %zu, stride %g: %.15g x "
                     "%.15g cells), more than the limit max_anchors = %zu",
                     nh, nw, n, big, (double)L->stride_h, ceil(nh / (double)L->stride_h),
                     ceil(nw / (double)L->stride_w), lim.max_anchors);
    }
  }
  return DETLOSS_OK;
}

detloss_status dl_eval_check_point_limits(const detloss_eval_dataset *data,
                                          const detloss_eval_assigner *as,
                                          const detloss_eval_options *o,
                                          const detloss_json_limits *lim, detloss_error *err) {
  if (as->method != DETLOSS_EVAL_METHOD_FCOS) return DETLOSS_OK;
  for (size_t i = 0; i < data->num_images; i++) {
    double h = (double)data->image_hw[2 * i], w = (double)data->image_hw[2 * i + 1];
    if (!(h > 0.0 && w > 0.0 && isfinite(h) && isfinite(w))) continue; /* the library says so */
    double nh, nw, n = 0.0;
    resized(o, h, w, &nh, &nw);
    size_t big = 0;
    double most = -1.0;
    for (size_t l = 0; l < as->num_point_levels && l < DETLOSS_EVAL_MAX_LEVELS; l++) {
      double st = (double)as->point_strides[l];
      if (!(st > 0.0)) continue; /* the library says so */
      double k = ceil(nh / st) * ceil(nw / st);
      n += k;
      if (k > most) {
        most = k;
        big = l;
      }
    }
    if (!(n <= (double)lim->max_anchors)) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "data.image_hw[%zu]", i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "a %.0f x %.0f px image has %.15g points (level %zu, stride %g), more than "
                     "the limit max_anchors = %zu",
                     nh, nw, n, big, (double)as->point_strides[big], lim->max_anchors);
    }
  }
  return DETLOSS_OK;
}
