/*
 * detloss.h - the detloss core API: boxes, anchors, matching, coding, losses.
 *
 * Conventions (they hold for every function below):
 *   - One prefix: public names are detloss_*, DETLOSS_*.
 *   - Caller-owned buffers: every output is allocated by the caller; the
 *     documentation of each function gives its size. The library never keeps
 *     a pointer it did not allocate, and frees what it allocates before it
 *     returns.
 *   - No global mutable state: every function is thread-safe; two calls may
 *     run concurrently as long as they do not write the same buffers.
 *   - Errors: every fallible call returns a detloss_status and takes a
 *     detloss_error *err as its last argument (NULL allowed). On error the
 *     status is non-zero, err->where names the argument (or JSON path), and
 *     err->msg says what is wrong. Inputs are validated before any output is
 *     written: on error, outputs are untouched.
 *   - Options: each options struct has a DETLOSS_*_INIT macro and a
 *     detloss_*_default() function; a NULL options pointer means defaults.
 *   - Sizes are size_t. Boxes are float[4] rows (x1, y1, x2, y2) in pixels,
 *     width = x2 - x1 (no "+1"), arrays row-major: "boxes [n][4]" is a
 *     const float * to 4n floats.
 *   - Numbers: data is float32. Per-element kernels evaluate in float32 in the
 *     same operation order as torchvision (so IoUs and thus matches agree to
 *     the bit with torchvision on CPU); reductions over many elements are
 *     accumulated in double per fixed-size block, and the block sums are added
 *     in block order, so every result is bitwise identical for any thread
 *     count.
 *   - Threads: options->num_threads, 0 = the OpenMP default. The library
 *     never calls omp_set_num_threads. Without OpenMP everything runs serially
 *     and gives the same bits.
 *   - Gradients: a NULL gradient pointer means "do not compute it".
 */
#ifndef DETLOSS_H
#define DETLOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define DETLOSS_API
#else
#  define DETLOSS_API __attribute__((visibility("default")))
#endif

#define DETLOSS_VERSION_MAJOR 0
#define DETLOSS_VERSION_MINOR 1
#define DETLOSS_VERSION_PATCH 0
#define DETLOSS_VERSION_STRING "0.1.0"

/* ======================================================================== */
/* Status and errors                                                        */
/* ======================================================================== */

/* Stable numbers: append only. */
typedef enum detloss_status {
  DETLOSS_OK = 0,
  DETLOSS_ERR_NULL = 1,        /* a required pointer is NULL */
  DETLOSS_ERR_SHAPE = 2,       /* sizes disagree, or size arithmetic would overflow */
  DETLOSS_ERR_NONFINITE = 3,   /* NaN or Inf where a finite number is required */
  DETLOSS_ERR_RANGE = 4,       /* a parameter or value outside its domain */
  DETLOSS_ERR_NOMEM = 5,       /* allocation failed */
  DETLOSS_ERR_PARSE = 6,       /* JSON syntax error */
  DETLOSS_ERR_TYPE = 7,        /* JSON value of the wrong type */
  DETLOSS_ERR_MISSING = 8,     /* a required field is missing */
  DETLOSS_ERR_UNKNOWN = 9,     /* unknown op, key or name */
  DETLOSS_ERR_IO = 10,         /* a file could not be read or written */
  DETLOSS_ERR_UNSUPPORTED = 11 /* valid request that this build cannot do */
} detloss_status;

#define DETLOSS_WHERE_MAX 160
#define DETLOSS_MSG_MAX 320

/* Filled on error (untouched on success). where: the argument name or JSON
 * path of the fault ("boxes1", "images[1].gt[3]"); msg: what is wrong. */
typedef struct detloss_error {
  detloss_status status;
  char where[DETLOSS_WHERE_MAX];
  char msg[DETLOSS_MSG_MAX];
} detloss_error;

/* A static string naming the status ("ok", "null pointer", ...). Never NULL. */
DETLOSS_API const char *detloss_status_str(detloss_status status);
/* "0.1.0" */
DETLOSS_API const char *detloss_version(void);
/* 1 if this build runs in parallel (OpenMP), 0 if serial. */
DETLOSS_API int detloss_has_openmp(void);

/* ======================================================================== */
/* Box geometry: area, IoU, GIoU, DIoU, CIoU                                */
/* ======================================================================== */

typedef enum detloss_iou_kind {
  DETLOSS_IOU = 0,  /* intersection over union */
  DETLOSS_GIOU = 1, /* generalized IoU (Rezatofighi et al., CVPR 2019) */
  DETLOSS_DIOU = 2, /* distance IoU (Zheng et al., AAAI 2020) */
  DETLOSS_CIOU = 3  /* complete IoU (Zheng et al., AAAI 2020) */
} detloss_iou_kind;

typedef struct detloss_iou_options {
  float eps;       /* added to c^2 (DIoU, CIoU) and to 1 - IoU + v (CIoU). Default 1e-7
                      (torchvision). Must be > 0. */
  int num_threads; /* 0 = OpenMP default. */
} detloss_iou_options;

#define DETLOSS_IOU_OPTIONS_INIT {1e-7f, 0}
DETLOSS_API detloss_iou_options detloss_iou_options_default(void);

/*
 * detloss_box_area() - area of each box.
 *   area = (x2 - x1) * (y2 - y1)   (not clamped: torchvision box_area)
 * boxes [n][4]; out [n], caller-owned; n may be 0 (then boxes/out may be NULL).
 * Returns DETLOSS_OK, DETLOSS_ERR_NULL, or DETLOSS_ERR_NONFINITE (a coordinate
 * is NaN/Inf; err->where = "boxes[i]"), with out untouched on error.
 * Thread-safe. Matches torchvision.ops.box_area.
 */
DETLOSS_API detloss_status detloss_box_area(const float *boxes, size_t n, float *out,
                                            detloss_error *err);

/*
 * detloss_iou_matrix() - pairwise IoU-family matrix.
 *   iou  = I / U                                     U = area1 + area2 - I
 *   giou = iou - (C - U) / C                         C = enclosing box area
 *   diou = iou - rho^2 / (c^2 + eps)                 rho = centre distance, c = enclosing diagonal
 *   ciou = diou - alpha * v,  v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2,
 *          alpha = v / (1 - iou + v + eps)
 * boxes1 [n][4], boxes2 [m][4] as (x1,y1,x2,y2); out [n][m], caller-owned;
 * n or m may be 0 (nothing written).
 * Degenerate input never gives NaN: where U = 0 the IoU is 0 (detectron2,
 * mmdetection, darknet; torchvision gives NaN), where C = 0 the GIoU penalty
 * is 0, and atan(w/h) with h = 0 is taken as +-pi/2 (0 when w = h = 0).
 * Inverted boxes (x2 < x1) are legal: their intersection is 0.
 * Returns DETLOSS_OK, or DETLOSS_ERR_NULL / _NONFINITE (a coordinate is
 * NaN/Inf) / _RANGE (eps <= 0 or kind unknown) / _SHAPE (n*m overflows),
 * with out untouched. Thread-safe; parallel over rows.
 * Matches torchvision.ops box_iou, generalized_box_iou, distance_box_iou,
 * complete_box_iou (float32, same operation order).
 * Ref: Rezatofighi et al., arXiv:1902.09630; Zheng et al., arXiv:1911.08287.
 */
DETLOSS_API detloss_status detloss_iou_matrix(detloss_iou_kind kind, const float *boxes1,
                                              size_t n, const float *boxes2, size_t m,
                                              float *out, const detloss_iou_options *opt,
                                              detloss_error *err);

/*
 * detloss_iou_pairs() - element-wise IoU-family value of matched pairs.
 *   out[i] = kind(boxes1[i], boxes2[i]), the same formulas and degenerate-case
 *   rules as detloss_iou_matrix (so out[i] equals the matrix's diagonal).
 * boxes1 [n][4], boxes2 [n][4]; out [n]. Returns and errors as the matrix.
 */
DETLOSS_API detloss_status detloss_iou_pairs(detloss_iou_kind kind, const float *boxes1,
                                             const float *boxes2, size_t n, float *out,
                                             const detloss_iou_options *opt,
                                             detloss_error *err);

/* ======================================================================== */
/* Box coding: (dx, dy, dw, dh) deltas                                      */
/* ======================================================================== */

/* ln(1000/16): the dw/dh clamp of torchvision BoxCoder and detectron2
 * Box2BoxTransform (their comment: prevents sending too large values into exp;
 * a 16 px anchor may grow to at most 1000 px). */
#define DETLOSS_BBOX_XFORM_CLIP 4.135166556742356f

typedef struct detloss_coder_options {
  float weights[4];  /* (wx, wy, ww, wh). Default (1,1,1,1): RPN and RetinaNet.
                        ROI heads use (10,10,5,5). Must be finite and > 0. */
  float clip;        /* decode: dw, dh are clamped to at most clip (upper bound only, as
                        torchvision). Default ln(1000/16). Must be > 0 (may be +Inf). */
  int num_threads;   /* 0 = OpenMP default. */
} detloss_coder_options;

#define DETLOSS_CODER_OPTIONS_INIT {{1.0f, 1.0f, 1.0f, 1.0f}, DETLOSS_BBOX_XFORM_CLIP, 0}
DETLOSS_API detloss_coder_options detloss_coder_options_default(void);

/*
 * detloss_box_encode() - regression targets of boxes relative to anchors.
 *   dx = wx (xg - xa) / wa,  dy = wy (yg - ya) / ha,
 *   dw = ww ln(wg / wa),     dh = wh ln(hg / ha)
 *   with w = x2 - x1, centre x = x1 + 0.5 w (same for y).
 * anchors [n][4], boxes [n][4]; deltas [n][4], caller-owned; n may be 0.
 * Every anchor and box must have positive width and height (otherwise the
 * log is -Inf/NaN): DETLOSS_ERR_RANGE naming "anchors[i]" or "boxes[i]".
 * Returns DETLOSS_OK or an error with deltas untouched. Thread-safe.
 * Matches torchvision.models.detection._utils.BoxCoder.encode_single
 * (float32, same operation order). Ref: Girshick et al., R-CNN, CVPR 2014, App. C.
 */
DETLOSS_API detloss_status detloss_box_encode(const float *anchors, const float *boxes,
                                              size_t n, float *deltas,
                                              const detloss_coder_options *opt,
                                              detloss_error *err);

/*
 * detloss_box_decode() - boxes from deltas relative to anchors (the inverse of encode).
 *   dw' = min(dw / ww, clip), dh' likewise;  cx = dx/wx * wa + xa;  w = exp(dw') * wa;
 *   x1 = cx - 0.5 w, x2 = cx + 0.5 w (same for y).
 * anchors [n][4], deltas [n][4]; boxes [n][4], caller-owned.
 * Anchors must be finite (zero-width anchors are legal: they decode to zero
 * width); deltas must be finite. Returns DETLOSS_OK or an error with boxes
 * untouched. Thread-safe. Matches torchvision BoxCoder.decode_single.
 */
DETLOSS_API detloss_status detloss_box_decode(const float *anchors, const float *deltas,
                                              size_t n, float *boxes,
                                              const detloss_coder_options *opt,
                                              detloss_error *err);

/* ======================================================================== */
/* Anchors, matching, sampling                         (issue: matching)    */
/* ======================================================================== */
/* @@SECTION anchors-match-sample BEGIN */
/* @@SECTION anchors-match-sample END */

/* ======================================================================== */
/* Losses with gradients                                   (issue: losses)  */
/* ======================================================================== */
/* @@SECTION losses BEGIN */
/*
 * Common loss conventions (every detloss_loss_* function):
 *   - loss: caller-owned; n floats (one per element, row, box or pair) for
 *     DETLOSS_REDUCTION_NONE, 1 float otherwise.
 *   - grad*: caller-owned, the shape of the corresponding input, or NULL to
 *     skip. It is the gradient of the returned loss; for NONE it is the
 *     gradient of the sum of the per-element losses.
 *   - weight: optional (NULL = all 1), shaped like the per-element loss; it
 *     multiplies the per-element loss before reduction. MEAN divides the
 *     weighted sum by the element count (cross_entropy: by the number of
 *     non-ignored rows), not by the sum of the weights.
 *   - MEAN over zero elements (n = 0, or every row ignored) is 0 with zero
 *     gradient (torch gives NaN).
 *   - Kinks (L1 and smooth-L1 with beta 0 at d = 0; hinge at the margin) have
 *     gradient 0, as torch's sign(0) = 0.
 *   - Sums are accumulated in double per fixed-size block and the blocks are
 *     added in order: bitwise identical for any thread count.
 *   - Outputs are untouched on error. Thread-safe.
 */
typedef enum detloss_reduction {
  DETLOSS_REDUCTION_NONE = 0,
  DETLOSS_REDUCTION_SUM = 1,
  DETLOSS_REDUCTION_MEAN = 2
} detloss_reduction;

/* Stable numbers: append only. The names are those of the compute contract. */
typedef enum detloss_loss_kind {
  DETLOSS_LOSS_BCE_WITH_LOGITS = 0,   /* "bce_with_logits"  element-wise */
  DETLOSS_LOSS_BCE = 1,               /* "bce"              element-wise */
  DETLOSS_LOSS_CROSS_ENTROPY = 2,     /* "cross_entropy"    class-indexed */
  DETLOSS_LOSS_SIGMOID_FOCAL = 3,     /* "sigmoid_focal"    element-wise */
  DETLOSS_LOSS_SOFTMAX_FOCAL = 4,     /* "softmax_focal"    class-indexed */
  DETLOSS_LOSS_HINGE = 5,             /* "hinge"            element-wise */
  DETLOSS_LOSS_L1 = 6,                /* "l1"               element-wise */
  DETLOSS_LOSS_MSE = 7,               /* "mse"              element-wise */
  DETLOSS_LOSS_SMOOTH_L1 = 8,         /* "smooth_l1"        element-wise */
  DETLOSS_LOSS_HUBER = 9,             /* "huber"            element-wise */
  DETLOSS_LOSS_IOU = 10,              /* "iou_loss"         boxes */
  DETLOSS_LOSS_GIOU = 11,             /* "giou_loss"        boxes */
  DETLOSS_LOSS_DIOU = 12,             /* "diou_loss"        boxes */
  DETLOSS_LOSS_CIOU = 13,             /* "ciou_loss"        boxes */
  DETLOSS_LOSS_CONTRASTIVE = 14,      /* "contrastive"      embedding */
  DETLOSS_LOSS_COSINE_EMBEDDING = 15, /* "cosine_embedding" embedding */
  DETLOSS_LOSS_TRIPLET_MARGIN = 16    /* "triplet_margin"   embedding */
} detloss_loss_kind;

/* One options struct for every loss; detloss_loss_options_default(kind)
 * gives the defaults of that loss (listed per field). Fields a loss does not
 * use are ignored. */
typedef struct detloss_loss_options {
  detloss_reduction reduction; /* default MEAN */
  float alpha;           /* sigmoid_focal 0.25 (< 0 disables the weighting); softmax_focal 1.0 */
  float gamma;           /* focal losses: 2. Must be >= 0. */
  float beta;            /* smooth_l1: 1.0 (0 means L1). Must be >= 0. */
  float delta;           /* huber: 1.0. Must be > 0. */
  float margin;          /* hinge 1, contrastive 1, cosine_embedding 0, triplet_margin 1 */
  float label_smoothing; /* cross_entropy: 0, in [0, 1] */
  float eps;             /* box losses 1e-7 (> 0); triplet_margin 1e-6 */
  float p;               /* triplet_margin: norm degree, 2 (> 0) */
  int swap;              /* triplet_margin: distance swap (Balntas et al. 2016), 0 */
  int64_t ignore_index;  /* cross_entropy (and softmax_focal): -100 */
  const float *pos_weight; /* bce_with_logits: NULL = none; else pos_weight_len values broadcast
                              over the last dimension (n must be a multiple of the length) */
  size_t pos_weight_len;
  int num_threads;       /* 0 = OpenMP default */
} detloss_loss_options;

DETLOSS_API detloss_loss_options detloss_loss_options_default(detloss_loss_kind kind);
/* The contract name of a kind ("giou_loss"), or NULL for an unknown kind. */
DETLOSS_API const char *detloss_loss_name(detloss_loss_kind kind);
/* Kind from its contract name; DETLOSS_ERR_UNKNOWN (with a suggestion) otherwise. */
DETLOSS_API detloss_status detloss_loss_from_name(const char *name, detloss_loss_kind *kind,
                                                  detloss_error *err);
/* @@SECTION losses-cls-reg BEGIN (element-wise and class-indexed losses) */
/* @@SECTION losses-cls-reg END */
/* @@SECTION losses-box-embed BEGIN (IoU-family box losses and embedding losses) */
/*
 * detloss_loss_boxes() - IoU-family losses of matched box pairs, with gradients.
 *   With I = intersection (only where min x2 > max x1 and min y2 > max y1, else 0),
 *   U = w*h + wg*hg - I (areas not clamped), iou = I / (U + eps):
 *   iou_loss  = 1 - iou
 *   giou_loss = 1 - iou + (C - U) / (C + eps)         C = enclosing area (not clamped)
 *   diou_loss = 1 - iou + rho^2 / (c^2 + eps)          rho = centre distance,
 *                                                      c = enclosing diagonal
 *   ciou_loss = diou_loss + alpha * v,  v = 4/pi^2 (atan(wg/hg) - atan(w/h))^2,
 *               alpha = v / (1 - iou + v + eps), a constant for the gradient.
 *   kind is DETLOSS_LOSS_IOU, _GIOU, _DIOU or _CIOU.
 * pred [n][4], target [n][4] as (x1,y1,x2,y2); weight [n] or NULL (all 1).
 * loss: n floats for REDUCTION_NONE, else 1 (SUM of weight*loss, or that sum / n
 *   for MEAN; MEAN with n = 0 is 0 with zero gradient).
 * grad_pred, grad_target: [n][4] or NULL; the gradient of the returned loss
 *   (of the sum of the per-box losses for NONE) w.r.t. pred / target. The
 *   losses are symmetric: swapping pred and target swaps the two gradients.
 * Options (NULL = detloss_loss_options_default(kind)): reduction (MEAN),
 *   eps (1e-7, must be finite and > 0; used in every denominator above, also in
 *   CIoU's DIoU part where torchvision always uses 1e-7), num_threads.
 * Edge cases (never NaN or Inf for finite input):
 *   - identical degenerate boxes (0,0,0,0): loss 1 for every kind, as torchvision.
 *   - inverted boxes (x2 < x1 or y2 < y1) are legal: their intersection is 0, the
 *     areas enter U and C signed, as in torchvision; where C + eps = 0 (only
 *     possible with inverted boxes) the GIoU penalty is taken as 0.
 *   - CIoU: atan(w/h) at h = 0 is sign(w)*pi/2 (the h -> 0+ limit) and 0 at
 *     w = h = 0; its derivative is (h, -w)/(w^2 + h^2), i.e. (0, -1/w) at h = 0,
 *     and 0 at w = h = 0 (torchvision gives NaN value or gradient there).
 *   - Subgradients at the switches: where max/min of two coordinates tie, each
 *     side gets half the gradient (autograd's torch.maximum/minimum rule); on
 *     the intersection mask boundary (min x2 = max x1) the intersection term has
 *     gradient 0 (autograd's masked assignment).
 *   - Results beyond the float range (only for pathological inputs, e.g.
 *     subnormal box sizes in CIoU's aspect term) saturate at +-FLT_MAX.
 * Per-box arithmetic is in double, rounded once to float; the sum is
 * accumulated in double per fixed block (bitwise identical for any thread count).
 * Returns DETLOSS_OK, or with outputs untouched: DETLOSS_ERR_NULL (pred, target,
 *   loss NULL while needed), _NONFINITE ("pred[i]", "target[i]", "weight[i]"),
 *   _RANGE (kind not a box loss: "kind"; bad eps: "eps"; bad reduction:
 *   "reduction"), _SHAPE (n too large: "n"). Thread-safe.
 * Matches torchvision.ops generalized_box_iou_loss, distance_box_iou_loss,
 *   complete_box_iou_loss (torchvision 0.14); iou_loss is 1 - I/(U + eps) as in
 *   their shared _loss_inter_union. Ref: Rezatofighi et al., arXiv:1902.09630
 *   (GIoU); Zheng et al., arXiv:1911.08287 (DIoU, CIoU). Derivation:
 *   docs/math/box_losses.md.
 */
DETLOSS_API detloss_status detloss_loss_boxes(detloss_loss_kind kind, const float *pred,
                                              const float *target, const float *weight,
                                              size_t n, float *loss, float *grad_pred,
                                              float *grad_target,
                                              const detloss_loss_options *opt,
                                              detloss_error *err);

/*
 * detloss_loss_embedding() - verification (Re-ID) losses on embeddings, with gradients.
 *   contrastive (kind DETLOSS_LOSS_CONTRASTIVE; Hadsell, Chopra, LeCun, CVPR 2006):
 *     d = ||x1 - x2 + 1e-6||_2 (torch pairwise_distance),
 *     l = 1/2 (y d^2 + (1 - y) max(0, margin - d)^2),  y in {0, 1} (1 = same identity)
 *   cosine_embedding (DETLOSS_LOSS_COSINE_EMBEDDING; torch cosine_embedding_loss):
 *     cos = x1.x2 / sqrt((|x1|^2 + e)(|x2|^2 + e)), e = 1e-12 (float, as torch),
 *     l = 1 - cos for y = 1,  max(0, cos - margin) for y = -1
 *   triplet_margin (DETLOSS_LOSS_TRIPLET_MARGIN; torch triplet_margin_loss,
 *     Balntas et al., BMVC 2016): anchor x1, positive x2, negative x3,
 *     dp = ||x1 - x2 + eps||_p, dn = ||x1 - x3 + eps||_p, with swap
 *     dn = min(dn, ||x2 - x3 + eps||_p);  l = max(0, margin + dp - dn)
 * x1, x2, x3 [n][d] (x3 for triplet only, else ignored and may be NULL);
 * target [n] (contrastive exactly 0 or 1, cosine exactly +1 or -1; ignored and
 *   may be NULL for triplet); weight [n] or NULL (all 1), multiplies l per pair.
 * loss: n floats for NONE, else 1 (SUM, or SUM / n for MEAN; MEAN with n = 0 is 0).
 * grad_x1, grad_x2, grad_x3: [n][d] or NULL (grad_x3 triplet only).
 * d may be 0 (empty embeddings: distance 0, cos 0).
 * Options (NULL = detloss_loss_options_default(kind)): reduction (MEAN),
 *   margin (contrastive 1, >= 0; cosine_embedding 0, in [-1, 1]; triplet 1, >= 0),
 *   triplet: p (2, finite > 0), eps (1e-6, finite >= 0), swap (0); num_threads.
 * Subgradients (autograd's choices): a norm at 0 has gradient 0; a component
 *   v_k = 0 of a p-norm has gradient 0 (also for p < 1 where the derivative is
 *   infinite); at the hinge of cosine (cos = margin) and triplet (margin + dp =
 *   dn) the gradient passes (torch clamp_min's self >= min); swap ties split
 *   the gradient in halves (torch.minimum).
 * Per-pair arithmetic is in double, rounded once to float; sums in double per
 * fixed block, bitwise identical for any thread count.
 * Returns DETLOSS_OK, or with outputs untouched: DETLOSS_ERR_NULL,
 *   _NONFINITE ("x1[i][k]", "target[i]", "weight[i]"), _RANGE (kind: "kind";
 *   target outside its domain: "target[i]"; "margin", "p", "eps",
 *   "reduction"), _SHAPE (n*d overflows: "n"). Thread-safe.
 * Matches torch.nn.functional cosine_embedding_loss, triplet_margin_loss and
 *   pairwise_distance (torch 1.13). Derivation: docs/math/embedding_losses.md.
 */
DETLOSS_API detloss_status detloss_loss_embedding(
    detloss_loss_kind kind, const float *x1, const float *x2, const float *x3,
    const float *target, const float *weight, size_t n, size_t d, float *loss,
    float *grad_x1, float *grad_x2, float *grad_x3, const detloss_loss_options *opt,
    detloss_error *err);
/* @@SECTION losses-box-embed END */
/* @@SECTION losses END */

#ifdef __cplusplus
}
#endif

#endif /* DETLOSS_H */
