/*
 * loss_box.c - IoU-family losses of matched box pairs (1 - IoU, GIoU, DIoU,
 * CIoU) with analytic gradients w.r.t. both boxes.
 *
 * Semantics: torchvision.ops generalized_box_iou_loss, distance_box_iou_loss,
 * complete_box_iou_loss (0.14) and their _loss_inter_union (strict mask for
 * the intersection, areas not clamped, eps = 1e-7 in the denominators, CIoU's
 * alpha detached). Gradients: docs/math/box_losses.md, equations (B1)-(B14),
 * cited below as [Bk].
 *
 * Per box everything is evaluated in double from the float inputs and rounded
 * once: the float64 reference (torch float64 autograd on the same inputs) is
 * then met to ~1e-7 relative, and no intermediate (areas of boxes with
 * coordinates near FLT_MAX, 1/(w^2+h^2) of tiny boxes) overflows.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "box_kernels.h"
#include "loss_internal.h"

/* Boxes per parallel block: fixed (never from the thread count), so the block
 * partial sums, and thus the result bits, do not depend on the threads. */
#define BOX_BLOCK 4096

/* 4 / pi^2, the CIoU aspect-ratio constant (Zheng et al., arXiv:1911.08287, eq. 9). */
#define FOUR_OVER_PI2 0.40528473456935108578
#define HALF_PI 1.57079632679489661923

/* Gradient routing through max(a, b) / min(a, b): the winner gets g, a tie
 * splits it in halves (autograd's rule for torch.maximum / torch.minimum). [B3] */
static void route_max(double a, double b, double g, double *ga, double *gb) {
  if (a > b) {
    *ga += g;
  } else if (a < b) {
    *gb += g;
  } else {
    *ga += 0.5 * g;
    *gb += 0.5 * g;
  }
}
static void route_min(double a, double b, double g, double *ga, double *gb) {
  route_max(-a, -b, g, ga, gb);
}

/* atan(w / h) for the CIoU aspect term, with its limit at h = 0: sign(w)*pi/2
 * (the h -> 0+ limit; IEEE atan(+-Inf) gives the same for w != 0), and 0 at
 * w = h = 0 where the quotient is undefined (torchvision: NaN). [B11] */
static double aspect_atan(double w, double h) {
  if (h == 0.0) return w > 0.0 ? HALF_PI : (w < 0.0 ? -HALF_PI : 0.0);
  return atan(w / h);
}

/* d atan(w/h) / dw = h / (w^2 + h^2), d / dh = -w / (w^2 + h^2): the
 * expressions are finite at h = 0 (w != 0), where they are the h -> 0+
 * limits; at w = h = 0 both are taken as 0. [B12] */
static void aspect_atan_grad(double w, double h, double *dw, double *dh) {
  double r = w * w + h * h;
  if (r == 0.0 || !isfinite(r)) {
    /* r = Inf only for |w| or |h| near DBL_MAX, impossible from floats; kept
       so the quotient below can never be Inf/Inf. */
    *dw = 0.0;
    *dh = 0.0;
    return;
  }
  *dw = h / r;
  *dh = -w / r;
}

typedef struct box_ctx {
  detloss_loss_kind kind;
  const float *pred, *target, *weight;
  float *loss; /* NONE: per box; else NULL */
  float *gp, *gt;
  double eps;
  double gscale; /* 1 for NONE/SUM, 1/n for MEAN */
} box_ctx;

/*
 * One box pair: loss value and, if gp/gt are non-NULL, d loss / d coordinates
 * (times s) into gp[4], gt[4].
 *   I = iw*ih on the mask (min x2 > max x1, min y2 > max y1)        [B1]
 *   U = w h + wg hg - I,  iou = I / (U + eps)                         [B2]
 *   giou: + (C - U)/(C + eps)                                         [B5]
 *   diou: + rho^2 / (cw^2 + ch^2 + eps)                               [B7]
 *   ciou: + alpha v, alpha constant                                   [B10]
 */
static double box_pair(detloss_loss_kind kind, const float *p, const float *g, double eps, double s,
                       float *gp, float *gt) {
  const double x1 = p[0], y1 = p[1], x2 = p[2], y2 = p[3];
  const double u1 = g[0], v1 = g[1], u2 = g[2], v2 = g[3];
  const double w = x2 - x1, h = y2 - y1, wg = u2 - u1, hg = v2 - v1;

  /* Intersection with torchvision's strict mask [B1]. */
  const double xi1 = x1 > u1 ? x1 : u1, yi1 = y1 > v1 ? y1 : v1;
  const double xi2 = x2 < u2 ? x2 : u2, yi2 = y2 < v2 ? y2 : v2;
  const int mask = (yi2 > yi1) && (xi2 > xi1);
  const double iw = xi2 - xi1, ih = yi2 - yi1;
  const double inter = mask ? iw * ih : 0.0;
  const double area = w * h, area_g = wg * hg;
  const double uni = area + area_g - inter;
  /* On the mask both boxes are proper and U >= max(area, area_g) > 0; off it
     I = 0 and IoU is 0 without dividing (U + eps may be 0 for inverted boxes). */
  const double ue = uni + eps;
  const double iou = mask ? inter / ue : 0.0;

  double l = 1.0 - iou;
  /* Partial derivatives of l w.r.t. the intermediate quantities. */
  double d_inter = 0.0, d_area = 0.0, d_area_g = 0.0;  /* I, w h, wg hg */
  double d_w = 0.0, d_h = 0.0, d_wg = 0.0, d_hg = 0.0; /* direct (CIoU) */
  double d_cw = 0.0, d_ch = 0.0;                       /* enclosing sides */
  double d_rho = 0.0;                                  /* rho^2 */
  if (mask) {
    /* d(1 - iou) = -(dI - iou dU)/(U+eps), dU = dA + dAg - dI [B4] */
    d_inter = -(1.0 + iou) / ue;
    d_area = iou / ue;
    d_area_g = iou / ue;
  }

  const double xc1 = x1 < u1 ? x1 : u1, yc1 = y1 < v1 ? y1 : v1;
  const double xc2 = x2 > u2 ? x2 : u2, yc2 = y2 > v2 ? y2 : v2;
  const double cw = xc2 - xc1, ch = yc2 - yc1;
  const double cx = 0.5 * (x1 + x2) - 0.5 * (u1 + u2);
  const double cy = 0.5 * (y1 + y2) - 0.5 * (v1 + v2);

  if (kind == DETLOSS_LOSS_GIOU) {
    const double c = cw * ch, ce = c + eps;
    if (ce != 0.0) { /* ce = 0 only for inverted boxes: penalty 0 there */
      const double pen = (c - uni) / ce;
      l += pen;
      /* dP = ((1 - P) dC - dU)/(C + eps) [B6] */
      const double dc = (1.0 - pen) / ce, du = -1.0 / ce;
      d_cw += dc * ch;
      d_ch += dc * cw;
      d_area += du;
      d_area_g += du;
      if (mask) d_inter -= du;
    }
  } else if (kind == DETLOSS_LOSS_DIOU || kind == DETLOSS_LOSS_CIOU) {
    const double c2 = cw * cw + ch * ch + eps; /* > 0 */
    const double rho2 = cx * cx + cy * cy;
    const double r = rho2 / c2;
    l += r;
    /* dR = drho^2/c2 - R dc2/c2 [B8] */
    d_rho = 1.0 / c2;
    d_cw = -2.0 * r * cw / c2;
    d_ch = -2.0 * r * ch / c2;
    if (kind == DETLOSS_LOSS_CIOU) {
      const double delta = aspect_atan(wg, hg) - aspect_atan(w, h);
      const double v = FOUR_OVER_PI2 * delta * delta;
      /* 1 - iou + v + eps >= v + eps > 0 since iou < 1 */
      const double alpha = v / (1.0 - iou + v + eps);
      l += alpha * v;
      /* alpha is a constant for the gradient (torchvision computes it under
         no_grad); dv/d atan(w/h) = -2 (4/pi^2) delta [B13] */
      const double ga = alpha * 2.0 * FOUR_OVER_PI2 * delta;
      double aw, ah;
      aspect_atan_grad(w, h, &aw, &ah);
      d_w -= ga * aw;
      d_h -= ga * ah;
      aspect_atan_grad(wg, hg, &aw, &ah);
      d_wg += ga * aw;
      d_hg += ga * ah;
    }
  }

  if (gp || gt) {
    double a[4] = {0.0, 0.0, 0.0, 0.0}, b[4] = {0.0, 0.0, 0.0, 0.0};
    /* Areas and direct w, h terms: w = x2 - x1, A = w h [B9] */
    d_w += d_area * h;
    d_h += d_area * w;
    d_wg += d_area_g * hg;
    d_hg += d_area_g * wg;
    a[0] -= d_w;
    a[2] += d_w;
    a[1] -= d_h;
    a[3] += d_h;
    b[0] -= d_wg;
    b[2] += d_wg;
    b[1] -= d_hg;
    b[3] += d_hg;
    /* Intersection through max/min [B3]: dI/dxi2 = ih, dI/dxi1 = -ih, ... */
    if (mask) {
      route_max(x1, u1, -d_inter * ih, &a[0], &b[0]);
      route_max(y1, v1, -d_inter * iw, &a[1], &b[1]);
      route_min(x2, u2, d_inter * ih, &a[2], &b[2]);
      route_min(y2, v2, d_inter * iw, &a[3], &b[3]);
    }
    /* Enclosing box: cw = max(x2, u2) - min(x1, u1) */
    if (d_cw != 0.0) {
      route_min(x1, u1, -d_cw, &a[0], &b[0]);
      route_max(x2, u2, d_cw, &a[2], &b[2]);
    }
    if (d_ch != 0.0) {
      route_min(y1, v1, -d_ch, &a[1], &b[1]);
      route_max(y2, v2, d_ch, &a[3], &b[3]);
    }
    /* Centre distance: d rho^2 / dx1 = d rho^2 / dx2 = cx, target -cx [B8] */
    if (d_rho != 0.0) {
      const double gx = d_rho * cx, gy = d_rho * cy;
      a[0] += gx;
      a[2] += gx;
      a[1] += gy;
      a[3] += gy;
      b[0] -= gx;
      b[2] -= gx;
      b[1] -= gy;
      b[3] -= gy;
    }
    for (int k = 0; k < 4; k++) {
      if (gp) gp[k] = dl_sat_float(s * a[k]);
      if (gt) gt[k] = dl_sat_float(s * b[k]);
    }
  }
  return l;
}

static double box_block(void *vctx, size_t i0, size_t i1) {
  const box_ctx *c = (const box_ctx *)vctx;
  double sum = 0.0;
  for (size_t i = i0; i < i1; i++) {
    const double wi = c->weight ? (double)c->weight[i] : 1.0;
    const double s = wi * c->gscale;
    const double l = box_pair(c->kind, c->pred + 4 * i, c->target + 4 * i, c->eps, s,
                              c->gp ? c->gp + 4 * i : NULL, c->gt ? c->gt + 4 * i : NULL);
    if (c->loss)
      c->loss[i] = dl_sat_float(wi * l);
    else
      sum += wi * l;
  }
  return sum;
}

detloss_status detloss_loss_boxes(detloss_loss_kind kind, const float *pred, const float *target,
                                  const float *weight, size_t n, float *loss, float *grad_pred,
                                  float *grad_target, const detloss_loss_options *opt,
                                  detloss_error *err) {
  DL_RETURN_ERROR_IF(kind != DETLOSS_LOSS_IOU && kind != DETLOSS_LOSS_GIOU &&
                         kind != DETLOSS_LOSS_DIOU && kind != DETLOSS_LOSS_CIOU,
                     err, DETLOSS_ERR_RANGE, "kind",
                     "%d is not a box loss (iou_loss, giou_loss, diou_loss, ciou_loss)", (int)kind);
  const detloss_loss_options o = dl_loss_resolve(kind, opt);
  DL_FORWARD_IF_ERROR(dl_check_reduction(o.reduction, err));
  DL_RETURN_ERROR_IF(!(isfinite(o.eps) && o.eps > 0.0f), err, DETLOSS_ERR_RANGE, "eps",
                     "is %g, expected a finite number > 0", (double)o.eps);
  DL_RETURN_ERROR_IF(n > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE, "n",
                     "%zu boxes is more than can be addressed", n);
  DL_FORWARD_IF_ERROR(dl_check_ptr(loss, dl_loss_out_len(o.reduction, n), "loss", err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(pred, n, "pred", err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(target, n, "target", err));
  if (weight) DL_FORWARD_IF_ERROR(dl_check_finite(weight, n, "weight", err));
  dl_span sp[6] = {dl_span_of(pred, n, 4 * sizeof(float), "pred", 0),
                   dl_span_of(target, n, 4 * sizeof(float), "target", 0),
                   dl_span_of(weight, n, sizeof(float), "weight", 0),
                   dl_span_of(loss, dl_loss_out_len(o.reduction, n), sizeof(float), "loss", 1),
                   dl_span_of(grad_pred, n, 4 * sizeof(float), "grad_pred", 1),
                   dl_span_of(grad_target, n, 4 * sizeof(float), "grad_target", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 6, err));

  box_ctx c;
  c.kind = kind;
  c.pred = pred;
  c.target = target;
  c.weight = weight;
  c.loss = o.reduction == DETLOSS_REDUCTION_NONE ? loss : NULL;
  c.gp = grad_pred;
  c.gt = grad_target;
  c.eps = (double)o.eps;
  c.gscale = dl_loss_grad_scale(o.reduction, n);
  double total = 0.0;
  /* The only failure is the allocation of the block sums, before any output
     is written. */
  DL_FORWARD_IF_ERROR(dl_parallel_sum(n, BOX_BLOCK, o.num_threads, box_block, &c, &total, err));
  if (o.reduction != DETLOSS_REDUCTION_NONE)
    loss[0] = dl_sat_float(o.reduction == DETLOSS_REDUCTION_MEAN ? (n > 0 ? total / (double)n : 0.0)
                                                                 : total);
  return DETLOSS_OK;
}

double dl_box_pair_torchvision(detloss_loss_kind kind, const float *p, const float *g, double eps,
                               double s, float *gp) {
  return box_pair(kind, p, g, eps, s, gp, NULL);
}

/* Gradient routing through a clamp at lo (torch clamp's backward passes the
 * gradient where x >= lo) and through torch.max(x, lo) (maximum: halves at a tie). */
static double clamp_pass(double x, double lo) { return x >= lo ? 1.0 : 0.0; }
static double max_pass(double x, double lo) { return x > lo ? 1.0 : (x == lo ? 0.5 : 0.0); }

/*
 * mmdetection's aligned overlaps (mmdet bbox_overlaps(is_aligned=True, eps), the
 * variant with clamps instead of torchvision's additive eps) and its two losses,
 * docs/math/fcos_loss.md eq. (5)-(8):
 *   iw = max(min(x2,u2) - max(x1,u1), 0), ih alike, I = iw ih
 *   U = max(A_p + A_g - I, eps),  iou = I / U
 *   giou (GIoULoss):      ew = max(max(x2,u2) - min(x1,u1), 0), eh alike,
 *                         E = max(ew eh, eps),  l = 1 - (iou - (E - U) / E)
 *   iou (IoULoss, log):   l = -ln(max(iou, eps))
 * Gradient w.r.t. the first box only (the target is a constant), times s, into
 * gp[4]; max/min route as autograd (route_max / route_min: halves at ties).
 */
double dl_box_pair_mmdet(int giou, const double *p, const double *g, double eps, double s,
                         double *gp) {
  const double x1 = p[0], y1 = p[1], x2 = p[2], y2 = p[3];
  const double u1 = g[0], v1 = g[1], u2 = g[2], v2 = g[3];
  const double ap = (x2 - x1) * (y2 - y1), ag = (u2 - u1) * (v2 - v1);
  const double iwr = (x2 < u2 ? x2 : u2) - (x1 > u1 ? x1 : u1);
  const double ihr = (y2 < v2 ? y2 : v2) - (y1 > v1 ? y1 : v1);
  const double iw = iwr > 0.0 ? iwr : 0.0, ih = ihr > 0.0 ? ihr : 0.0;
  const double inter = iw * ih;
  const double ur = ap + ag - inter, uni = ur > eps ? ur : eps;
  const double iou = inter / uni;
  double l, d_iou, d_uni = 0.0, d_e = 0.0, ewr = 0.0, ehr = 0.0, ew = 0.0, eh = 0.0, er = 0.0;
  if (giou) {
    ewr = (x2 > u2 ? x2 : u2) - (x1 < u1 ? x1 : u1);
    ehr = (y2 > v2 ? y2 : v2) - (y1 < v1 ? y1 : v1);
    ew = ewr > 0.0 ? ewr : 0.0;
    eh = ehr > 0.0 ? ehr : 0.0;
    er = ew * eh;
    const double e = er > eps ? er : eps;
    l = 1.0 - (iou - (e - uni) / e);
    /* l = 2 - iou - U / E */
    d_iou = -1.0;
    d_uni = -1.0 / e;
    d_e = uni / (e * e);
  } else {
    const double c = iou > eps ? iou : eps;
    l = -log(c);
    d_iou = -max_pass(iou, eps) / c;
  }
  if (gp == NULL) return l;
  /* iou = I / U */
  double d_inter = d_iou / uni;
  d_uni += -d_iou * iou / uni;
  const double d_ur = d_uni * max_pass(ur, eps);
  d_inter -= d_ur;
  const double d_ap = d_ur;
  double a[4] = {0.0, 0.0, 0.0, 0.0}, b[4] = {0.0, 0.0, 0.0, 0.0};
  /* A_p = (x2 - x1)(y2 - y1) */
  a[0] -= d_ap * (y2 - y1);
  a[2] += d_ap * (y2 - y1);
  a[1] -= d_ap * (x2 - x1);
  a[3] += d_ap * (x2 - x1);
  /* I = clamp(iwr, 0) clamp(ihr, 0) */
  const double d_iw = d_inter * ih * clamp_pass(iwr, 0.0),
               d_ih = d_inter * iw * clamp_pass(ihr, 0.0);
  route_min(x2, u2, d_iw, &a[2], &b[2]);
  route_max(x1, u1, -d_iw, &a[0], &b[0]);
  route_min(y2, v2, d_ih, &a[3], &b[3]);
  route_max(y1, v1, -d_ih, &a[1], &b[1]);
  if (giou) {
    const double d_er = d_e * max_pass(er, eps);
    const double d_ew = d_er * eh * clamp_pass(ewr, 0.0), d_eh = d_er * ew * clamp_pass(ehr, 0.0);
    route_max(x2, u2, d_ew, &a[2], &b[2]);
    route_min(x1, u1, -d_ew, &a[0], &b[0]);
    route_max(y2, v2, d_eh, &a[3], &b[3]);
    route_min(y1, v1, -d_eh, &a[1], &b[1]);
  }
  for (int k = 0; k < 4; k++) gp[k] = s * a[k];
  return l;
}

/*
 * dl_ciou_ultralytics() - ultralytics bbox_iou(box1, box2, xywh=False, CIoU=True,
 * eps=1e-7) (ultralytics utils/metrics.py, 8.1), in double, and its gradient
 * w.r.t. box1 with the trade-off alpha held constant (the reference computes it
 * under no_grad). It differs from torchvision's CIoU (box_pair above) in where
 * eps enters: both heights carry + eps (so the areas and the aspect angles do),
 * the union is w1 h1 + w2 h2 - inter + eps, the intersection sides are clamped
 * at 0 (not masked), and alpha = v / (v - iou + (1 + eps)):
 *   w_i = x2_i - x1_i, h_i = y2_i - y1_i + eps
 *   I = clamp(min(x2) - max(x1), 0) clamp(min(y2) - max(y1), 0)
 *   U = w1 h1 + w2 h2 - I + eps,  iou = I / U
 *   c2 = cw^2 + ch^2 + eps (enclosing box sides),  rho2 = (dx^2 + dy^2) / 4
 *   v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2,  CIoU = iou - (rho2 / c2 + alpha v)
 * Derivative (docs/math/yolov8_loss.md eq. (Y5)-(Y8)): d iou = ((1 + iou) dI -
 * iou dA1) / U, dA1 = h1 dw1 + w1 dh1; d(rho2/c2) = (drho2 - (rho2/c2) dc2) / c2;
 * d(alpha v) = alpha 8/pi^2 (atan2 - atan1)(-(h1 dw1 - w1 dh1) / (w1^2 + h1^2)).
 * max/min ties split the gradient in halves, as autograd's torch.maximum /
 * torch.minimum; clamp(0) passes it where its argument is >= 0 (torch clamp).
 * atan1 = atan(w1/h1) when the caller has it (a gt seen many times), else NaN.
 * g1 (NULL = skip) gets d CIoU / d box1.
 */
double dl_ciou_ultralytics(const double *b1, const double *b2, double atan1, double *g1) {
  const double eps = 1e-7;
  const double x1 = b1[0], y1 = b1[1], x2 = b1[2], y2 = b1[3];
  const double X1 = b2[0], Y1 = b2[1], X2 = b2[2], Y2 = b2[3];
  const double w1 = x2 - x1, h1 = y2 - y1 + eps, w2 = X2 - X1, h2 = Y2 - Y1 + eps;
  const double iw = (x2 < X2 ? x2 : X2) - (x1 > X1 ? x1 : X1);
  const double ih = (y2 < Y2 ? y2 : Y2) - (y1 > Y1 ? y1 : Y1);
  const double iwc = iw > 0.0 ? iw : 0.0, ihc = ih > 0.0 ? ih : 0.0;
  const double inter = iwc * ihc;
  const double uni = w1 * h1 + w2 * h2 - inter + eps;
  const double iou = inter / uni;
  const double cw = (x2 > X2 ? x2 : X2) - (x1 < X1 ? x1 : X1);
  const double ch = (y2 > Y2 ? y2 : Y2) - (y1 < Y1 ? y1 : Y1);
  const double c2 = cw * cw + ch * ch + eps;
  const double dx = X1 + X2 - x1 - x2, dy = Y1 + Y2 - y1 - y2;
  const double rho2 = (dx * dx + dy * dy) / 4.0;
  const double a1 = isnan(atan1) ? atan(w1 / h1) : atan1;
  const double da = atan(w2 / h2) - a1;
  const double v = FOUR_OVER_PI2 * da * da;
  const double alpha = v / (v - iou + (1.0 + eps));
  const double r = rho2 / c2;
  if (g1 != NULL) {
    double a[4] = {0.0, 0.0, 0.0, 0.0}, unused[4] = {0.0, 0.0, 0.0, 0.0};
    /* iou through I and A1 = w1 h1 */
    const double d_inter = (1.0 + iou) / uni, d_area = -iou / uni;
    double d_w = d_area * h1, d_h = d_area * w1;
    /* - alpha v through atan(w1/h1): dv/da1 = -2 (4/pi^2) da */
    const double ga = alpha * 2.0 * FOUR_OVER_PI2 * da; /* d(-alpha v)/d a1 */
    const double rr = w1 * w1 + h1 * h1;
    if (rr > 0.0) {
      d_w += ga * (h1 / rr);
      d_h += ga * (-w1 / rr);
    }
    a[0] -= d_w;
    a[2] += d_w;
    a[1] -= d_h;
    a[3] += d_h;
    /* I = clamp(iw, 0) clamp(ih, 0), iw = min(x2, X2) - max(x1, X1) */
    if (iw >= 0.0) {
      route_min(x2, X2, d_inter * ihc, &a[2], &unused[2]);
      route_max(x1, X1, -d_inter * ihc, &a[0], &unused[0]);
    }
    if (ih >= 0.0) {
      route_min(y2, Y2, d_inter * iwc, &a[3], &unused[3]);
      route_max(y1, Y1, -d_inter * iwc, &a[1], &unused[1]);
    }
    /* - rho2 / c2 */
    const double d_cw = 2.0 * r * cw / c2, d_ch = 2.0 * r * ch / c2; /* d(-r)/dcw */
    route_max(x2, X2, d_cw, &a[2], &unused[2]);
    route_min(x1, X1, -d_cw, &a[0], &unused[0]);
    route_max(y2, Y2, d_ch, &a[3], &unused[3]);
    route_min(y1, Y1, -d_ch, &a[1], &unused[1]);
    /* d rho2 / dx1 = -dx / 2 (the same for x2): d(-r) = +dx / (2 c2) */
    const double gx = dx / (2.0 * c2), gy = dy / (2.0 * c2);
    a[0] += gx;
    a[2] += gx;
    a[1] += gy;
    a[3] += gy;
    for (int k = 0; k < 4; k++) g1[k] = a[k];
  }
  return iou - (r + v * alpha);
}
