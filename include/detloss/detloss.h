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
 *   - Aliasing: no output array may overlap an input array or another output
 *     (byte ranges computed from the documented sizes), except where a
 *     function says it works in place (detloss_box_encode/_decode: the output
 *     may equal an input exactly). An overlap is detected before any work and
 *     returned as DETLOSS_ERR_SHAPE, err->where naming the output and err->msg
 *     "overlaps <input>". Inputs may alias each other freely.
 *   - Coordinates: boxes that enter an IoU (the IoU family, matching, anchor
 *     evaluation, generated anchors) must satisfy |c| <= 1e18, so that no
 *     area or diagonal overflows float; larger ones are DETLOSS_ERR_RANGE.
 *     Finite input never gives a NaN or Inf result with DETLOSS_OK (except
 *     the heads' documented propagation of non-finite predictions).
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

/* DETLOSS_VERSION_MAJOR, _MINOR, _PATCH and DETLOSS_VERSION_STRING ("MAJOR.MINOR.PATCH"),
 * generated from CMakeLists.txt's project(VERSION). */
#include "detloss/detloss_version.h"

/* Stable numbers: append only. */
typedef enum detloss_status {
  DETLOSS_OK = 0,
  DETLOSS_ERR_NULL = 1,         /* a required pointer is NULL */
  DETLOSS_ERR_SHAPE = 2,        /* sizes disagree, size arithmetic would overflow, or an
                                   output overlaps an input (aliasing) */
  DETLOSS_ERR_NONFINITE = 3,    /* NaN or Inf where a finite number is required */
  DETLOSS_ERR_RANGE = 4,        /* a parameter or value outside its domain */
  DETLOSS_ERR_NOMEM = 5,        /* allocation failed */
  DETLOSS_ERR_PARSE = 6,        /* JSON syntax error */
  DETLOSS_ERR_TYPE = 7,         /* JSON value of the wrong type */
  DETLOSS_ERR_MISSING = 8,      /* a required field is missing */
  DETLOSS_ERR_UNKNOWN = 9,      /* unknown op, key or name */
  DETLOSS_ERR_IO = 10,          /* a file that exists could not be read, or an output
                                   could not be written */
  DETLOSS_ERR_UNSUPPORTED = 11, /* valid request that this build cannot do */
  DETLOSS_ERR_NOT_FOUND = 12    /* a named file or preset does not exist (bad input) */
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
/* The library's DETLOSS_VERSION_STRING, "MAJOR.MINOR.PATCH" (compare it with the
 * header's to detect a mismatched libdetloss.so). */
DETLOSS_API const char *detloss_version(void);
/* 1 if this build runs in parallel (OpenMP), 0 if serial. */
DETLOSS_API int detloss_has_openmp(void);

/* Box geometry: area, IoU, GIoU, DIoU, CIoU. */

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

#define DETLOSS_IOU_OPTIONS_INIT                                                                   \
  { 1e-7f, 0 }
DETLOSS_API detloss_iou_options detloss_iou_options_default(void);

/*
 * detloss_box_area() - area of each box.
 *   area = (x2 - x1) * (y2 - y1)   (not clamped: torchvision box_area)
 * boxes [n][4]; out [n], caller-owned; n may be 0 (then boxes/out may be NULL).
 * Returns DETLOSS_OK, DETLOSS_ERR_NULL, DETLOSS_ERR_NONFINITE (a coordinate
 * is NaN/Inf; err->where = "boxes[i]"), _RANGE (|coordinate| > 1e18) or
 * _SHAPE (out overlaps boxes), with out untouched on error.
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
 * Inverted boxes (x2 < x1) are legal: their intersection is 0. Their
 * enclosing box can be far smaller than their centre distance or union, so
 * GIoU's (C - U) / C and DIoU's rho^2 / (c^2 + eps) can exceed the float
 * range (rho^2 / 1e-7 does from rho ~ 6e15; any eps > 0 is allowed, down to
 * 1e-45): such values saturate at -FLT_MAX (never -Inf or NaN). For proper
 * boxes every value is in [-2, 1] and the clamp changes nothing.
 * Returns DETLOSS_OK, or DETLOSS_ERR_NULL / _NONFINITE (a coordinate is
 * NaN/Inf) / _RANGE (eps <= 0 or kind unknown; |coordinate| > 1e18:
 * "boxes1[i]") / _SHAPE (n*m overflows; out overlaps boxes1 or boxes2:
 * where "out"), with out untouched. Thread-safe; parallel over rows.
 * Matches torchvision.ops box_iou, generalized_box_iou, distance_box_iou,
 * complete_box_iou (float32, same operation order).
 * Ref: Rezatofighi et al., arXiv:1902.09630; Zheng et al., arXiv:1911.08287.
 */
DETLOSS_API detloss_status detloss_iou_matrix(detloss_iou_kind kind, const float *boxes1, size_t n,
                                              const float *boxes2, size_t m, float *out,
                                              const detloss_iou_options *opt, detloss_error *err);

/*
 * detloss_iou_pairs() - element-wise IoU-family value of matched pairs.
 *   out[i] = kind(boxes1[i], boxes2[i]), the same formulas and degenerate-case
 *   rules as detloss_iou_matrix (so out[i] equals the matrix's diagonal).
 * boxes1 [n][4], boxes2 [n][4]; out [n], may not overlap boxes1 or boxes2.
 * Returns and errors as the matrix.
 */
DETLOSS_API detloss_status detloss_iou_pairs(detloss_iou_kind kind, const float *boxes1,
                                             const float *boxes2, size_t n, float *out,
                                             const detloss_iou_options *opt, detloss_error *err);

/* Box coding: (dx, dy, dw, dh) deltas. */

/* ln(1000/16): the dw/dh clamp of torchvision BoxCoder and detectron2
 * Box2BoxTransform (their comment: prevents sending too large values into exp;
 * a 16 px anchor may grow to at most 1000 px). */
#define DETLOSS_BBOX_XFORM_CLIP 4.135166556742356f

typedef struct detloss_coder_options {
  float weights[4]; /* (wx, wy, ww, wh). Default (1,1,1,1): RPN and RetinaNet.
                       ROI heads use (10,10,5,5). Must be finite and > 0. */
  float clip;       /* decode: dw, dh are clamped to at most clip (upper bound only, as
                       torchvision). Default ln(1000/16). Must be > 0 (may be +Inf). */
  int num_threads;  /* 0 = OpenMP default. */
} detloss_coder_options;

#define DETLOSS_CODER_OPTIONS_INIT                                                                 \
  { {1.0f, 1.0f, 1.0f, 1.0f}, DETLOSS_BBOX_XFORM_CLIP, 0 }
DETLOSS_API detloss_coder_options detloss_coder_options_default(void);

/*
 * detloss_box_encode() - regression targets of boxes relative to anchors.
 *   dx = wx (xg - xa) / wa,  dy = wy (yg - ya) / ha,
 *   dw = ww ln(wg / wa),     dh = wh ln(hg / ha)
 *   with w = x2 - x1, centre x = x1 + 0.5 w (same for y).
 * anchors [n][4], boxes [n][4]; deltas [n][4], caller-owned; n may be 0.
 * Every anchor and box must have positive width and height (otherwise the
 * log is -Inf/NaN): DETLOSS_ERR_RANGE naming "anchors[i]" or "boxes[i]".
 * In place: deltas may equal anchors or boxes exactly (each row is read
 * before it is written; same bits as out of place); a partial overlap is
 * DETLOSS_ERR_SHAPE ("deltas").
 * Returns DETLOSS_OK or an error with deltas untouched. Thread-safe.
 * Same operations in the same order as
 * torchvision.models.detection._utils.BoxCoder.encode_single in float32; log()
 * may round differently from torch's in the last ulp, so results agree within
 * rtol 2e-6 (tests/fixtures/box_coder), not bit for bit.
 * Ref: Girshick et al., R-CNN, CVPR 2014, App. C.
 */
DETLOSS_API detloss_status detloss_box_encode(const float *anchors, const float *boxes, size_t n,
                                              float *deltas, const detloss_coder_options *opt,
                                              detloss_error *err);

/*
 * detloss_box_decode() - boxes from deltas relative to anchors (the inverse of encode).
 *   dw' = min(dw / ww, clip), dh' likewise;  cx = dx/wx * wa + xa;  w = exp(dw') * wa;
 *   x1 = cx - 0.5 w, x2 = cx + 0.5 w (same for y).
 * anchors [n][4], deltas [n][4]; boxes [n][4], caller-owned.
 * Anchors must be finite (zero-width anchors are legal: they decode to zero
 * width); deltas must be finite. In place: boxes may equal anchors or deltas
 * exactly; a partial overlap is DETLOSS_ERR_SHAPE ("boxes"). Returns
 * DETLOSS_OK or an error with boxes untouched. Thread-safe. Same operations
 * as torchvision BoxCoder.decode_single in float32; exp() may differ from
 * torch's in the last ulp (agreement within rtol 2e-6, tests/fixtures/box_coder).
 */
DETLOSS_API detloss_status detloss_box_decode(const float *anchors, const float *deltas, size_t n,
                                              float *boxes, const detloss_coder_options *opt,
                                              detloss_error *err);

/*
 * Anchors, matching, sampling: overview.
 *   anchors  -> detloss_anchors_generate() from a per-level grid config
 *               (torchvision or detectron2 convention), or any explicit list;
 *   matching -> detloss_match() (any anchor list) or detloss_match_grid()
 *               (anchors of a grid config, generated on the fly: visits only
 *               the cells that can overlap each gt; identical results);
 *   sampling -> detloss_sample_balanced() (torchvision counts, seeded
 *               counter-based choice);
 *   targets  -> detloss_match_targets() (labels, matched gt, encoded deltas).
 * Memory: O(A + G); the A x G IoU matrix is never formed.
 * Aliasing: no output (anchors, base, matches, max_iou, sampled, labels,
 * matched_gt, deltas) may overlap an input or another output
 * (DETLOSS_ERR_SHAPE naming the output): passing the anchors as max_iou would
 * otherwise overwrite anchors before they are read.
 */

/* Base-anchor (cell anchor) convention of a grid config. */
typedef enum detloss_anchor_convention {
  /* torchvision AnchorGenerator: h_ratio = sqrt(r) (r = h/w), w_ratio = 1/h_ratio,
   * ws = w_ratio*s, hs = h_ratio*s, base = round((-ws, -hs, ws, hs) / 2) in float32,
   * rounded half to even; order ratio-major (index = r_idx * n_sizes + s_idx);
   * centres at (stride * x, stride * y). The default. */
  DETLOSS_ANCHORS_TORCHVISION = 0,
  /* detectron2 DefaultAnchorGenerator: w = sqrt(s^2 / r), h = r * w (double),
   * base = (-w/2, -h/2, w/2, h/2) not rounded; order size-major
   * (index = s_idx * n_ratios + r_idx); centres at (x + offset) * stride. */
  DETLOSS_ANCHORS_DETECTRON2 = 1
} detloss_anchor_convention;

/* One pyramid level of a grid config. Anchor (y, x, k) of the level is
 *   shift + base[k],  shift = (sx, sy, sx, sy),  sx = (x + offset) * stride_w,
 * sy = (y + offset) * stride_h (float32 sum, as torchvision's int shift + float base).
 * The base anchors come from, in this order of precedence:
 *   base   [num_base][4]: explicit cell anchors (e.g. py-faster-rcnn's 9,
 *                         anchors/faster_rcnn_classic.json), used as given;
 *   shapes [num_shapes][2]: YOLO-style (w, h): base = (-w/2, -h/2, w/2, h/2);
 *   sizes [num_sizes] x ratios [num_ratios] (ratio = h / w) by the convention. */
typedef struct detloss_anchor_level {
  size_t feat_h, feat_w;    /* feature map rows, columns */
  float stride_h, stride_w; /* pixels per cell, > 0 */
  const float *sizes;       /* anchor side sqrt(w*h), > 0 */
  size_t num_sizes;
  const float *ratios; /* h / w, > 0 */
  size_t num_ratios;
  const float *shapes; /* [num_shapes][2] (w, h), or NULL */
  size_t num_shapes;
  const float *base; /* [num_base][4], or NULL */
  size_t num_base;
} detloss_anchor_level;

typedef struct detloss_anchor_config {
  const detloss_anchor_level *levels;
  size_t num_levels;
  detloss_anchor_convention convention; /* default TORCHVISION */
  float offset; /* cell-centre offset in strides: 0 for torchvision (which has no
                   offset) and detectron2's default; 0.5 for cell centres (YOLO, SSD).
                   Must be in [0, 1). */
} detloss_anchor_config;

/*
 * detloss_anchors_level_base() - the cell anchors of one level.
 *   base [K][4], K = num_base, or num_shapes, or num_sizes * num_ratios.
 * *count receives K; base may be NULL to query K only, else it must hold
 * capacity >= K rows. Errors: DETLOSS_ERR_NULL, _RANGE (a size, ratio, shape
 * or stride <= 0 or non-finite: where = "levels[l].sizes[i]" ...; a base
 * anchor with a corner beyond 1e18 in magnitude or non-finite, e.g. size
 * 3e38: "levels[l].sizes[s]", "levels[l].shapes[i]", "levels[l].base[i]";
 * the level's anchors on its feat_h x feat_w map reaching beyond 1e18:
 * "levels[l].stride"), _SHAPE (capacity < K: where = "capacity"; base
 * overlapping the config's arrays: "base"). Thread-safe.
 */
DETLOSS_API detloss_status detloss_anchors_level_base(const detloss_anchor_config *cfg,
                                                      size_t level, float *base, size_t capacity,
                                                      size_t *count, detloss_error *err);

/*
 * detloss_anchors_count() - number of anchors of a grid config:
 *   A = sum over levels of feat_h * feat_w * K_level.
 * Errors: as detloss_anchors_level_base for every level, plus _SHAPE when
 * the count overflows size_t or exceeds what can be indexed (SIZE_MAX / 64
 * anchors): where = "levels[l].feat_h" of the level where it does. The
 * checked multiplication runs before anything is allocated or written.
 */
DETLOSS_API detloss_status detloss_anchors_count(const detloss_anchor_config *cfg, size_t *count,
                                                 detloss_error *err);

/*
 * detloss_anchors_generate() - the anchors of a grid config.
 * anchors [count][4], caller-owned, in torchvision order: level, then location
 * row-major (y, x), then base anchor. count must equal detloss_anchors_count()
 * (else DETLOSS_ERR_SHAPE, where = "count": anchors and config disagree).
 * Every anchor is finite and within 1e18 (else _RANGE, see
 * detloss_anchors_level_base). anchors may not overlap the config (its
 * struct, levels array, sizes, ratios, shapes or base): _SHAPE "anchors".
 * Outputs untouched on error. Thread-safe.
 * Matches torchvision AnchorGenerator (convention TORCHVISION, offset 0,
 * strides = image size // feature size) bit for bit, and detectron2
 * DefaultAnchorGenerator (convention DETECTRON2) to float32 rounding of its
 * float32 arange.
 */
DETLOSS_API detloss_status detloss_anchors_generate(const detloss_anchor_config *cfg,
                                                    float *anchors, size_t count,
                                                    detloss_error *err);

/* Semantics of the matcher (docs/math/match.md s2). Results are
 * always written in torchvision's vocabulary: matches[a] >= 0 positive (gt
 * index), -1 negative, -2 ignored. */
typedef enum detloss_match_semantics {
  /* torchvision Matcher: (val, idx) = max over gt (lowest gt index on ties);
   * val < low -> -1; low <= val < high -> -2; val >= high -> idx. Low-quality
   * rule: for every gt g with h_g = max_a IoU(g, a), every anchor with
   * IoU(g, a) == h_g (exact float equality, all ties) gets its OWN argmax idx
   * back (not necessarily g). Quirk kept: if h_g == 0 every anchor has IoU 0
   * with g, so every anchor becomes a positive of its own argmax. */
  DETLOSS_MATCH_TORCHVISION = 0,
  /* detectron2 Matcher (RPN thresholds [low, high], labels [0, -1, 1]): the
   * same labels and indices as torchvision (low-quality anchors keep their
   * argmax). Differs only in allowed_border: outside anchors take part in the
   * matching and are relabelled ignored afterwards (rpn.py BOUNDARY_THRESH). */
  DETLOSS_MATCH_DETECTRON2 = 1,
  /* mmdetection MaxIoUAssigner: negatives 0 <= val < low, positives
   * val >= high -> idx; then, for each gt g in index order with
   * h_g >= low_quality_min_iou (min_pos_iou), if gt_max_assign_all every anchor
   * with IoU(g, a) == h_g, else only its first argmax anchor, is assigned g
   * itself; later gts overwrite earlier ones (so the result can differ from
   * the anchor's argmax, and a low-quality match can override an IoU >= high
   * positive). */
  DETLOSS_MATCH_MMDET = 2
} detloss_match_semantics;

typedef struct detloss_match_options {
  float high;            /* >= high: positive. Default 0.7 (RPN). In [0, 1]. */
  float low;             /* < low: negative. Default 0.3. In [0, 1], <= high. */
  int allow_low_quality; /* 1 (torchvision allow_low_quality_matches, mmdet match_low_quality) */
  float low_quality_min_iou;         /* a gt's best anchors are promoted only if h_g >= this
                                      (mmdet min_pos_iou). Default 0 = torchvision: also
                                      promotes h_g = 0 (the quirk). > 0 makes a gt that
                                      overlaps nothing (or a zero-area gt) match nothing. In [0, 1]. */
  detloss_match_semantics semantics; /* default TORCHVISION */
  int gt_max_assign_all;             /* MMDET only: 1 (default) all ties, 0 first argmax only */
  float crowd_ioa_thresh;            /* with gt_is_crowd: anchors whose intersection over
                                        anchor area with a crowd gt is > this are ignored
                                        (-2) and removed from the matching (mmdet
                                        ignore_iof_thr, Detectron CROWD_FILTER_THRESH 0.7).
                                        Default 0.7; < 0: no anchor is ignored (crowd gts
                                        are still never matched). <= 1. */
  float allowed_border;              /* anchors not inside x1 >= -b, y1 >= -b, x2 < W + b,
                                        y2 < H + b are ignored (-2) (py-faster-rcnn
                                        allowed_border, detectron2 BOUNDARY_THRESH).
                                        -1 (default, any value < 0) disables. */
  float image_h, image_w;            /* image size for allowed_border (> 0 when it is enabled) */
  int num_threads;                   /* 0 = OpenMP default */
} detloss_match_options;

#define DETLOSS_MATCH_OPTIONS_INIT                                                                 \
  { 0.7f, 0.3f, 1, 0.0f, DETLOSS_MATCH_TORCHVISION, 1, 0.7f, -1.0f, 0.0f, 0.0f, 0 }
DETLOSS_API detloss_match_options detloss_match_options_default(void);

/*
 * detloss_match() - assign anchors to ground-truth boxes (fused, O(A + G) memory).
 *   IoU(g, a) in float32 exactly as torchvision box_iou(gt, anchors):
 *   area_g = (x2-x1)(y2-y1), inter = max(min x2 - max x1, 0) * max(min y2 - max y1, 0),
 *   iou = inter / ((area_g + area_a) - inter); iou = 0 where inter = 0 (never NaN;
 *   torchvision gives NaN only when both boxes have zero area).
 * anchors [A][4], gt [G][4] (finite; zero-area and inverted gt are legal and
 * overlap nothing); gt_is_crowd [G] (NULL = no crowd; non-zero = crowd: never
 * matched, only used to ignore anchors, see crowd_ioa_thresh).
 * Outputs (caller-owned): matches [A] int64 (gt index >= 0, -1 negative,
 * -2 ignored); max_iou [A] float (best IoU over non-crowd gt; 0 when G = 0;
 * -1 for anchors removed by the crowd or border rule), may be NULL.
 * G = 0 (or only crowd gt): every kept anchor -1. A = 0: nothing written.
 * Ignored anchors (crowd, border) are removed before matching, so they do not
 * count in h_g (mmdet, py-faster-rcnn), except with DETECTRON2 semantics where
 * border anchors are matched and then set to -2 (their max_iou is kept).
 * Errors (outputs untouched): DETLOSS_ERR_NULL; _NONFINITE ("anchors[i]",
 * "gt[j]"); _RANGE ("high", "low" outside [0,1] or low > high,
 * "low_quality_min_iou", "crowd_ioa_thresh", "image_h"/"image_w",
 * "semantics"; a coordinate beyond 1e18 in magnitude: "anchors[i]", "gt[j]",
 * whose area would overflow and make an IoU NaN); _SHAPE (G > INT32_MAX;
 * matches or max_iou overlapping each other or anchors, gt, gt_is_crowd:
 * where "matches" / "max_iou"); _NOMEM.
 * Deterministic: bitwise identical for any num_threads. Thread-safe.
 * Matches torchvision Matcher(high, low, allow_low_quality) applied to
 * box_iou(gt, anchors), bit for bit (tests/fixtures/match).
 */
DETLOSS_API detloss_status detloss_match(const float *anchors, size_t num_anchors, const float *gt,
                                         size_t num_gt, const uint8_t *gt_is_crowd,
                                         int64_t *matches, float *max_iou,
                                         const detloss_match_options *opt, detloss_error *err);

/*
 * detloss_match_grid() - detloss_match() on the anchors of a grid config,
 * without materializing them: for every gt, level and base anchor only the
 * cells whose anchor can intersect the gt are visited (O(A + sum of the gt
 * footprints) work). Bitwise the same outputs as detloss_match() on
 * detloss_anchors_generate(cfg) (tested on random data). num_anchors must
 * equal detloss_anchors_count(cfg) (else DETLOSS_ERR_SHAPE, where =
 * "num_anchors": anchors and config disagree). Other errors: those of
 * detloss_anchors_count() and detloss_match(); matches and max_iou may not
 * overlap the config either. Extra memory: G * K_total * 32
 * bytes of cell rectangles plus G * 12 bytes per block of ~4096 anchors (about
 * 34 KB for G = 20 on the 268,569 FPN anchors of an 800x1344 image).
 * Algorithm and proofs of equality: docs/math/match.md.
 */
DETLOSS_API detloss_status detloss_match_grid(const detloss_anchor_config *cfg, const float *gt,
                                              size_t num_gt, const uint8_t *gt_is_crowd,
                                              int64_t *matches, float *max_iou, size_t num_anchors,
                                              const detloss_match_options *opt, detloss_error *err);

/*
 * Task-aligned assigner (TOOD, YOLOv8): per gt, the anchors with the largest
 * alignment metric t = s^alpha * u^beta (s the predicted probability of the
 * gt's class, u the overlap of the predicted box with the gt) become positive,
 * with a normalised soft target score. docs/math/task_aligned.md.
 */
typedef enum detloss_task_aligned_semantics {
  /* ultralytics TaskAlignedAssigner (YOLOv8 tal.py, without the later STAL and
   * topk2 options): u = CIoU(gt, pred) clamped >= 0 (ultralytics bbox_iou, eps
   * 1e-7), u = t = 0 unless the point is inside the gt by more than 1e-9 (in
   * double); each gt takes its topk anchors by t over all A anchors (no t > 0
   * filter); positives are those inside the gt; an anchor positive for several
   * gts goes to the argmax of u over ALL gts (first on ties; the reference's
   * quirk, kept). target score = t * max_{pos of g} u / (max_{pos of g} t + 1e-9). */
  DETLOSS_TASK_ALIGNED_ULTRALYTICS = 0,
  /* TOOD / mmdetection 3.x TaskAlignedAssigner + TOODHead normalisation:
   * u = IoU(pred, gt) (union >= 1e-6), for every pair; each gt takes its topk
   * anchors by t over all A; positive when t > 0 and the point is inside the gt
   * by more than 0.01 px; conflicts go to the highest u among the gts the anchor
   * is positive for (first on ties). target score = t / (max_{pos of g} t + 1e-7)
   * * max_{pos of g} u. */
  DETLOSS_TASK_ALIGNED_TOOD = 1
} detloss_task_aligned_semantics;

typedef struct detloss_task_aligned_options {
  detloss_task_aligned_semantics semantics; /* default ULTRALYTICS */
  int64_t topk;    /* anchors per gt: 10 (YOLOv8's loss, tal_topk=10); 13 for TOOD. >= 1;
                      min(topk, A) is used. */
  float alpha;     /* score exponent: 0.5 (YOLOv8); 1.0 (TOOD). Finite, >= 0. */
  float beta;      /* overlap exponent: 6.0 (both). Finite, >= 0. */
  int num_threads; /* 0 = OpenMP default; results never depend on it */
} detloss_task_aligned_options;

#define DETLOSS_TASK_ALIGNED_OPTIONS_INIT                                                          \
  { DETLOSS_TASK_ALIGNED_ULTRALYTICS, 10, 0.5f, 6.0f, 0 }
/* The ultralytics defaults (YOLOv8 v8DetectionLoss: topk 10, alpha 0.5, beta 6). */
DETLOSS_API detloss_task_aligned_options detloss_task_aligned_options_default(void);
/* The TOOD / mmdet defaults (semantics TOOD, topk 13, alpha 1, beta 6). */
DETLOSS_API detloss_task_aligned_options detloss_task_aligned_options_tood(void);

/*
 * detloss_assign_task_aligned() - task-aligned assignment of one image.
 *   t(a, g) = scores[a][label_g]^alpha * u(a, g)^beta, computed in double.
 * points [A][2] (x, y) anchor points in pixels (for anchor boxes, their centres
 * (x1+x2)/2, (y1+y2)/2), level-major; level_counts [L] the points per level
 * (sum = A; NULL with L = 0: one level). A level whose points form a row-major
 * tensor-product grid (ultralytics make_anchors, mmdet prior generators) is
 * searched by index ranges (binary search on its x and y coordinates); any
 * other level by one x-sorted index (O(A log A) once): either way a gt visits
 * only the points whose x (and, on a grid, y) lies inside it. TOOD also ranks
 * points outside the gt (their IoU is not 0): it scans all A points per gt,
 * with a 4-compare rejection of non-overlapping predicted boxes (O(A·G) time,
 * as the reference, but O(A + G) memory).
 * scores [A][C] probabilities in [0, 1]; pred_boxes [A][4] decoded (x1,y1,x2,y2)
 * pixels; gt [G][4], gt_labels [G] in [0, C).
 * Outputs (caller-owned, [A] each; only assigned_gt is required):
 * assigned_gt (gt index or -1), assigned_labels (its label or -1), target_scores
 * (the normalised alignment score, 0 at background), align_metrics (t with the
 * assigned gt, 0 at background).
 * Ties: a top-k tie at the k-th place goes to the lowest anchor index (torch.topk
 * leaves it undefined); argmax ties to the lowest gt index (as torch).
 * G = 0 or A = 0: all background, nothing else is an error.
 * Memory O(A + G·topk); never A x G. Bitwise identical for any num_threads.
 * Errors (outputs untouched): DETLOSS_ERR_NULL; _NONFINITE ("points[i]",
 * "scores[i]", "pred_boxes[i]", "gt[j]"); _RANGE ("scores[i]" outside [0, 1],
 * "gt_labels[j]" outside [0, C), "topk" < 1, "alpha"/"beta" < 0 or not
 * finite, "semantics", a coordinate beyond 1e18); _SHAPE ("level_counts" not
 * summing to A, "num_classes" = 0 with G > 0, an output overlapping another
 * argument); _NOMEM. Thread-safe.
 * Matches ultralytics TaskAlignedAssigner (v8.1 tal.py) / mmdet 3.x
 * TaskAlignedAssigner + TOODHead (tests/fixtures/task_aligned).
 * Ref: Feng et al., TOOD, arXiv:2108.07755.
 */
DETLOSS_API detloss_status detloss_assign_task_aligned(
    const float *points, size_t num_points, const size_t *level_counts, size_t num_levels,
    const float *scores, size_t num_classes, const float *pred_boxes, const float *gt,
    const int64_t *gt_labels, size_t num_gt, int64_t *assigned_gt, int64_t *assigned_labels,
    float *target_scores, float *align_metrics, const detloss_task_aligned_options *opt,
    detloss_error *err);

/* One image of detloss_assign_task_aligned_batch(): the arguments of
 * detloss_assign_task_aligned() (num_classes and options are shared). */
typedef struct detloss_task_aligned_image {
  size_t num_points;
  const float *points;        /* [A][2] */
  const size_t *level_counts; /* [L] or NULL */
  size_t num_levels;
  const float *scores;     /* [A][C] */
  const float *pred_boxes; /* [A][4] */
  size_t num_gt;
  const float *gt;          /* [G][4] */
  const int64_t *gt_labels; /* [G] */
  int64_t *assigned_gt;     /* out [A] */
  int64_t *assigned_labels; /* out [A] or NULL */
  float *target_scores;     /* out [A] or NULL */
  float *align_metrics;     /* out [A] or NULL */
} detloss_task_aligned_image;

/*
 * detloss_assign_task_aligned_batch() - detloss_assign_task_aligned() on each
 * of num_images images (no padding to the densest image: each image costs what
 * its own anchors and gts cost). Every image is validated before any output is
 * written; errors name "images[i].<argument>". Images run in parallel (and a
 * single image's gts when the batch has one image); bitwise identical to the
 * per-image calls for any num_threads. Thread-safe.
 */
DETLOSS_API detloss_status detloss_assign_task_aligned_batch(
    const detloss_task_aligned_image *images, size_t num_images, size_t num_classes,
    const detloss_task_aligned_options *opt, detloss_error *err);

/*
 * Set matching (DETR): the linear sum assignment solver and the Hungarian
 * matcher (docs/math/hungarian.md).
 */

/*
 * detloss_linear_sum_assignment() - minimum-cost rectangular assignment.
 *   min over k = min(R, C) pairs (r_i, c_i), distinct rows and columns, of sum_i cost[r_i][c_i]
 * cost [R][C] float64, row-major; +inf marks a forbidden pair; R or C may be 0.
 * Outputs (caller-owned) row_ind [k], col_ind [k] int64, row_ind ascending.
 * Returns the pairs of scipy >= 1.9 scipy.optimize.linear_sum_assignment(cost),
 * including its choice among equal-cost optima (shortest augmenting path,
 * rows in order, transposed when R > C; checked pair for pair on 1,000 random
 * matrices, tests/fixtures/lsa). Ref: D. F. Crouse, "On implementing 2D
 * rectangular assignment algorithms", IEEE TAES 52(4), 2016.
 * Errors (outputs untouched): _NULL; _NONFINITE ("cost[i][j]": NaN or -inf,
 * scipy's "invalid numeric entries"); _RANGE ("cost": no complete matching of
 * finite cost, scipy's "infeasible"); _SHAPE (an output overlaps cost or the
 * other output; R * C overflows); _NOMEM. O(k^2 max(R, C)) time; scratch
 * O(R + C), plus R * C doubles when R > C. Thread-safe.
 */
DETLOSS_API detloss_status detloss_linear_sum_assignment(const double *cost, size_t num_rows,
                                                         size_t num_cols, int64_t *row_ind,
                                                         int64_t *col_ind, detloss_error *err);

/* Class cost of the Hungarian matcher. */
typedef enum detloss_hungarian_semantics {
  /* DETR (facebookresearch/detr HungarianMatcher): logits [Q][K+1], the last
   * column no-object; class cost = -softmax(logits[q])[label]. */
  DETLOSS_HUNGARIAN_DETR = 0,
  /* Deformable-DETR / DINO / RT-DETR: logits [Q][K], p = sigmoid(logit[label]);
   * class cost = a (1-p)^g (-ln(p + 1e-8)) - (1-a) p^g (-ln(1 - p + 1e-8)). */
  DETLOSS_HUNGARIAN_FOCAL = 1
} detloss_hungarian_semantics;

typedef struct detloss_hungarian_options {
  detloss_hungarian_semantics semantics; /* default DETR */
  float cost_class;  /* weight of the class cost: 1 (DETR main.py), 2 with FOCAL. >= 0 */
  float cost_bbox;   /* weight of the L1 cost on (cx, cy, w, h): 5. >= 0 */
  float cost_giou;   /* weight of -GIoU: 2. >= 0 */
  float focal_alpha; /* FOCAL only: 0.25, in [0, 1] */
  float focal_gamma; /* FOCAL only: 2, >= 0 */
  int num_threads;   /* batched call: 0 = OpenMP default; results never depend on it */
} detloss_hungarian_options;

#define DETLOSS_HUNGARIAN_OPTIONS_INIT                                                             \
  { DETLOSS_HUNGARIAN_DETR, 1.0f, 5.0f, 2.0f, 0.25f, 2.0f, 0 }
/* DETR's training defaults (class 1, bbox 5, giou 2; DETR main.py). */
DETLOSS_API detloss_hungarian_options detloss_hungarian_options_default(void);
/* The focal variant's defaults (class 2, bbox 5, giou 2, alpha 0.25, gamma 2;
 * Deformable-DETR main.py, DINO_4scale.py, RT-DETR configs). */
DETLOSS_API detloss_hungarian_options detloss_hungarian_options_focal(void);

/*
 * detloss_hungarian_cost() - the matching cost block of one image, in float64.
 *   C[q][g] = w_bbox |b_q - b_g|_1 + w_class cls(q, label_g) - w_giou GIoU(b_q, b_g)
 * logits [Q][num_logits] (DETR: num_logits = K + 1, labels < K; FOCAL:
 * num_logits = K, labels < K); pred_boxes [Q][4], gt [G][4] as (cx, cy, w, h)
 * (normalised in DETR; any finite scale), w and h > 0; GIoU on the corners
 * (cx -+ w/2, cy -+ h/2), no eps. gt_labels [G]. cost [Q][G] caller-owned.
 * Errors (outputs untouched): _NULL; _NONFINITE ("logits[q][k]",
 * "pred_boxes[q]", "gt[g]"); _RANGE (a box with w or h <= 0, a label outside
 * [0, K): "gt_labels[g]"; num_logits < 2 (DETR) or < 1 (FOCAL): "num_logits";
 * an option out of range: its name); _SHAPE (overlaps, size overflow).
 * Matches DETR's cost matrix (models/matcher.py) computed in float64.
 * Thread-safe.
 */
DETLOSS_API detloss_status detloss_hungarian_cost(const float *logits, size_t num_queries,
                                                  size_t num_logits, const float *pred_boxes,
                                                  const float *gt, const int64_t *gt_labels,
                                                  size_t num_gt, double *cost,
                                                  const detloss_hungarian_options *opt,
                                                  detloss_error *err);

/*
 * detloss_hungarian_match() - DETR's bipartite matching of one image:
 * detloss_hungarian_cost() then detloss_linear_sum_assignment() on the Q x G
 * block. Outputs: pred_index, gt_index [min(Q, G)] int64 (pred_index
 * ascending; DETR's (index_i, index_j)); total_cost (optional, sum of the
 * pairs' costs in pair order); cost_matrix (optional, [Q][G]). Inputs and
 * errors as detloss_hungarian_cost(). Scratch Q x G doubles (twice when
 * Q > G). Thread-safe. Matches facebookresearch/detr HungarianMatcher (and,
 * with FOCAL, Deformable-DETR / DINO / RT-DETR) with scipy >= 1.9, on the
 * same float64 costs.
 */
DETLOSS_API detloss_status detloss_hungarian_match(
    const float *logits, size_t num_queries, size_t num_logits, const float *pred_boxes,
    const float *gt, const int64_t *gt_labels, size_t num_gt, int64_t *pred_index,
    int64_t *gt_index, double *total_cost, double *cost_matrix,
    const detloss_hungarian_options *opt, detloss_error *err);

/*
 * detloss_hungarian_match_batch() - detloss_hungarian_match() on B images,
 * one thread per image (OpenMP), each on its own Q x G_i block (never the
 * batch-wide (B Q) x (sum G) matrix DETR builds).
 * logits [B][Q][num_logits], pred_boxes [B][Q][4]; gt [sum G_i][4] and
 * gt_labels [sum G_i] concatenated in image order, gt_counts [B] = G_i.
 * Outputs pred_index, gt_index [sum_i min(Q, G_i)]: image i's pairs start at
 * sum_{j<i} min(Q, G_j), as DETR's list of (index_i, index_j). Errors as the
 * per-image call, named "logits[b][q]", "pred_boxes[b][q]", "gt[j]",
 * "gt_labels[j]" (j the row of the concatenation); "gt_counts" when its sum
 * overflows. Bitwise identical for any num_threads. Thread-safe.
 */
DETLOSS_API detloss_status detloss_hungarian_match_batch(
    size_t num_images, size_t num_queries, size_t num_logits, const float *logits,
    const float *pred_boxes, const float *gt, const int64_t *gt_labels, const size_t *gt_counts,
    int64_t *pred_index, int64_t *gt_index, const detloss_hungarian_options *opt,
    detloss_error *err);

/*
 * detloss_detr_loss() and its types - DETR's set-prediction loss
 * (facebookresearch/detr SetCriterion + HungarianMatcher; with FOCAL the
 * Deformable-DETR / DINO variant), docs/math/detr_loss.md. Per image the
 * queries are matched to the gt by detloss_hungarian_match's matcher (the
 * Q x G_i cost block only), then:
 *   SOFTMAX: t_q = label of q's gt, or C (no object, the last of K = C + 1 columns);
 *            loss_ce = sum_q w_q CE(x_q, t_q) / sum_q w_q over all B Q queries,
 *            w_q = 1 for an object class, eos_coef for no object (torch
 *            cross_entropy with weight, mean reduction; not divided by nb)
 *   FOCAL:   loss_ce = sum_q sum_k focal(x_qk, [k = t_q]) / nb (K = C columns, torchvision
 *            sigmoid_focal_loss with focal_alpha, focal_gamma; Deformable-DETR's
 *            sigmoid_focal_loss(...) * Q)
 *   loss_bbox = sum over matched pairs of |b_q - b_g|_1 / nb  (cx, cy, w, h)
 *   loss_giou = sum over matched pairs of (1 - GIoU(b_q, b_g)) / nb  (no eps)
 *   loss = weight_ce loss_ce + weight_bbox loss_bbox + weight_giou loss_giou
 *   nb = max(num_boxes if >= 0 else sum_i G_i, 1)
 * Matching is a constant for the gradient (DETR runs it under no_grad).
 */
typedef enum detloss_detr_cls_loss {
  DETLOSS_DETR_SOFTMAX = 0, /* DETR: softmax cross-entropy, no-object column last */
  DETLOSS_DETR_FOCAL = 1    /* Deformable-DETR / DINO: sigmoid focal loss, no background column */
} detloss_detr_cls_loss;

typedef struct detloss_detr_options {
  detloss_detr_cls_loss cls_loss; /* default SOFTMAX */
  float eos_coef;                 /* SOFTMAX: weight of the no-object class, 0.1; finite >= 0 */
  float focal_alpha;              /* 0.25, in [0, 1] (FOCAL: the loss and the matcher) */
  float focal_gamma;              /* 2, finite >= 0 (FOCAL: the loss and the matcher) */
  float cost_class;               /* matcher weights: 1 (FOCAL preset 2), finite >= 0 */
  float cost_bbox;                /* 5 */
  float cost_giou;                /* 2 */
  float weight_ce;                /* loss weights: 1 (FOCAL preset 2), finite >= 0 */
  float weight_bbox;              /* 5 */
  float weight_giou;              /* 2 */
  double num_boxes; /* < 0 (default -1): sum of G_i over the batch; >= 0: the caller's count
                       (DETR: the all-reduced sum / world size), clamped to >= 1 */
  int num_threads;  /* 0 = OpenMP default; results never depend on it */
} detloss_detr_options;

#define DETLOSS_DETR_OPTIONS_INIT                                                                  \
  { DETLOSS_DETR_SOFTMAX, 0.1f, 0.25f, 2.0f, 1.0f, 5.0f, 2.0f, 1.0f, 5.0f, 2.0f, -1.0, 0 }
/* DETR main.py: set_cost_class 1, set_cost_bbox 5, set_cost_giou 2, bbox_loss_coef 5,
 * giou_loss_coef 2, eos_coef 0.1. */
DETLOSS_API detloss_detr_options detloss_detr_options_default(void);
/* Deformable-DETR main.py: FOCAL, set_cost_class 2, cls_loss_coef 2, focal_alpha 0.25
 * (the rest as the default). */
DETLOSS_API detloss_detr_options detloss_detr_options_focal(void);

/* One image. Q and K are the call's (the same for every image). */
typedef struct detloss_detr_image {
  const float *pred_logits; /* [Q][K], finite */
  const float *pred_boxes;  /* [Q][4] (cx, cy, w, h), finite, w > 0, h > 0 */
  const float *boxes;       /* [num_gt][4] gt (cx, cy, w, h), finite, w > 0, h > 0 */
  const int64_t *labels;    /* [num_gt] in [0, C): C = K - 1 (SOFTMAX) or K (FOCAL) */
  size_t num_gt;            /* 0 is normal (every query is no-object) */
  int64_t *matches;         /* out, optional [Q]: the gt matched to each query, or -1 */
  float *grad_pred_logits;  /* out, optional [Q][K]: d loss / d pred_logits */
  float *grad_pred_boxes;   /* out, optional [Q][4]: d loss / d pred_boxes */
  int64_t *argmax;          /* out, optional [Q]: each query's largest logit, the first on
                               ties (torch.argmax): DETR's class_error and
                               cardinality_error without another pass over the logits */
} detloss_detr_image;

typedef struct detloss_detr_result {
  float loss_ce, loss_bbox, loss_giou; /* unweighted, as SetCriterion returns them */
  float loss;                          /* the weighted sum */
  double num_boxes;                    /* nb, the divisor used */
  double ce_weight_sum;                /* SOFTMAX: sum_q w_q (the divisor of loss_ce); FOCAL: nb */
  size_t num_matched;                  /* matched pairs of the batch: sum_i min(Q, G_i) */
  int nonfinite; /* 1 when a loss overflowed float (the predictions are finite) */
} detloss_detr_result;

/*
 * detloss_detr_loss() - DETR's loss of a batch, with gradients (formulas above).
 * images [num_images] (>= 1); num_queries Q >= 1; num_logits K >= 2 (SOFTMAX) or
 * >= 1 (FOCAL). result required; each image's matches and gradients optional.
 * Per-image matching as detloss_hungarian_match (scipy's pairs on the float64
 * cost, ties as scipy >= 1.9), with cost_class/bbox/giou and, for FOCAL, the
 * focal class cost with focal_alpha, focal_gamma and 1e-8 inside the logs.
 * GIoU without eps (torchvision generalized_box_iou, DETR box_ops). The L1
 * kink has gradient 0; at max/min ties of the GIoU corners the gradient is
 * split in halves (autograd's torch.maximum rule). SOFTMAX with no matched
 * query and eos_coef 0 divides 0 by 0 in torch: here loss_ce = 0, gradient 0.
 * Images run in parallel (one per block) when there are at least as many as
 * threads, else one after the other with the class pass on fixed query
 * blocks: bitwise identical for any num_threads. Memory: Q x G_i doubles per
 * image being matched, plus O(B Q); never (B Q) x sum G.
 * Returns DETLOSS_OK, or with every output untouched: _NULL; _SHAPE
 * ("num_images" 0, "num_queries" 0, "num_logits" < 2 (SOFTMAX) or 0, sizes that
 * overflow; an output overlapping an input or another output, named
 * "images[i].grad_pred_logits" ...); _NONFINITE ("images[i].pred_logits[q][k]",
 * "images[i].pred_boxes[q]", "images[i].boxes[g]": DETR's matcher fails there);
 * _RANGE ("images[i].pred_boxes[q]" / "images[i].boxes[g]" with w <= 0 or
 * h <= 0, DETR's generalized_box_iou assert; "images[i].labels[g]" outside
 * [0, C); an option: "eos_coef", "focal_alpha", "focal_gamma", "cost_class",
 * ..., "num_boxes", "cls_loss"); _NOMEM. Thread-safe.
 * Matches facebookresearch/detr SetCriterion (losses labels, boxes) with
 * HungarianMatcher, and with FOCAL Deformable-DETR's SetCriterion
 * (tests/fixtures/detr). Ref: Carion et al., End-to-End Object Detection with
 * Transformers, arXiv:2005.12872; Zhu et al., Deformable DETR, arXiv:2010.04159.
 */
DETLOSS_API detloss_status detloss_detr_loss(const detloss_detr_image *images, size_t num_images,
                                             size_t num_queries, size_t num_logits,
                                             detloss_detr_result *result,
                                             const detloss_detr_options *opt, detloss_error *err);

/*
 * Dense assigners from the anchors' geometry: ATSS and FCOS (docs/math/atss.md,
 * docs/math/fcos_targets.md). Boxes and points are level-major (all of level
 * 0, then level 1, ...); level_counts [L] gives the number per level and must
 * sum to the total. Memory O(A + G) (a bucket grid of each level's centres;
 * no A x G matrix); ties go to the lowest index (docs/math/atss.md s4).
 */

/* Reference of the ATSS assigner. */
typedef enum detloss_atss_semantics {
  /* mmdetection 3.x ATSSAssigner: IoU without +1, union clamped >= 1e-6;
   * k = topk per level; ignore regions. */
  DETLOSS_ATSS_MMDET = 0,
  /* sfzhang15/ATSS prepare_targets: legacy +1 areas and intersection, no eps;
   * k = topk * anchors_per_location per level; no ignore regions. */
  DETLOSS_ATSS_ORIGINAL = 1
} detloss_atss_semantics;

typedef struct detloss_atss_options {
  detloss_atss_semantics semantics; /* default MMDET */
  int64_t topk;                     /* candidates per level: 9 (every ATSS config). >= 1 */
  int64_t anchors_per_location;     /* ORIGINAL only: k = topk * this (1). >= 1 */
  float ignore_iof_thr; /* MMDET only: anchors whose max IoF with an ignore box is > this are
                           ignored; active when > 0 (mmdet's test); -1 = off */
  int num_threads;      /* 0 = OpenMP default; results never depend on it */
} detloss_atss_options;

#define DETLOSS_ATSS_OPTIONS_INIT                                                                  \
  { DETLOSS_ATSS_MMDET, 9, 1, -1.0f, 0 }
/* mmdet's ATSS defaults (topk 9, no ignore). */
DETLOSS_API detloss_atss_options detloss_atss_options_default(void);

/*
 * detloss_atss_assign() - Adaptive Training Sample Selection for one image.
 *   per gt g and level l: C_g,l = the k_l = min(k, n_l) anchors whose centre is
 *   nearest g's centre (Euclidean; ties: lowest anchor index);
 *   t_g = mean + unbiased std of IoU(C_g, g) over all levels (no positive when
 *   |C_g| <= 1); a is positive for g when IoU(a, g) >= t_g and a's centre is
 *   inside g by more than 0.01 (min(l, t, r, b) > 0.01); an anchor positive for
 *   several gts takes the one of highest IoU (ties: lowest gt index).
 * anchors [A][4], level_counts [L] (sum A), gt [G][4], ignore [K][4] (MMDET
 * only; may be NULL with K = 0). Outputs, caller-owned: assigned_gt [A] (gt
 * index, -1 background, -2 ignored), assigned_iou [A] (optional: IoU with the
 * assigned gt, 0 elsewhere). G = 0 or A = 0: all background.
 * The k nearest centres are found in a bucket grid of each level's centres,
 * visiting rings of cells around the gt centre until the k-th distance is
 * proven (widening by itself near borders): O(k) cells per gt and level on a
 * regular grid, at worst O(n_l) for arbitrary anchor lists; only the
 * candidates' IoUs are computed. Everything in float64.
 * Errors (outputs untouched): _NULL; _NONFINITE ("anchors[i]", "gt[g]",
 * "ignore[k]"); _RANGE (topk < 1, anchors_per_location < 1, ignore_iof_thr
 * non-finite, semantics unknown; ignore boxes or ignore_iof_thr >= 0 with
 * ORIGINAL: "ignore" / "ignore_iof_thr"); _SHAPE ("level_counts" not summing
 * to A; outputs overlapping inputs); _NOMEM. Thread-safe.
 * Matches mmdet ATSSAssigner / sfzhang15/ATSS with topk's tie order fixed.
 * Ref: Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free
 * Detection via Adaptive Training Sample Selection", CVPR 2020.
 */
DETLOSS_API detloss_status detloss_atss_assign(const float *anchors, size_t num_anchors,
                                               const size_t *level_counts, size_t num_levels,
                                               const float *gt, size_t num_gt, const float *ignore,
                                               size_t num_ignore, int64_t *assigned_gt,
                                               float *assigned_iou, const detloss_atss_options *opt,
                                               detloss_error *err);

/*
 * detloss_atss_assign_batch() - detloss_atss_assign() on B images sharing one
 * anchor set, one image per thread (OpenMP). gt [sum G_i][4] concatenated in
 * image order with gt_counts [B]; ignore [sum K_i][4] with ignore_counts [B]
 * (both NULL for none). Outputs [B][A]; assigned_gt holds per-image gt
 * indices (0-based within the image). Errors name "gt[j]", "ignore[j]" (j the
 * row of the concatenation). Bitwise identical for any num_threads. With
 * B > 1 the images write staged copies of the outputs (B x A more memory),
 * copied out only when every image succeeded: outputs untouched on _NOMEM.
 */
DETLOSS_API detloss_status detloss_atss_assign_batch(
    size_t num_images, const float *anchors, size_t num_anchors, const size_t *level_counts,
    size_t num_levels, const float *gt, const size_t *gt_counts, const float *ignore,
    const size_t *ignore_counts, int64_t *assigned_gt, float *assigned_iou,
    const detloss_atss_options *opt, detloss_error *err);

/* Reference of the FCOS targets. */
typedef enum detloss_fcos_semantics {
  /* mmdetection FCOSHead._get_targets_single: areas (x2-x1)(y2-y1). */
  DETLOSS_FCOS_MMDET = 0,
  /* tianzhi0549/FCOS compute_targets_for_locations: areas (x2-x1+1)(y2-y1+1),
   * and its shortcut: with centre sampling, no positive when gt 0's centre x is
   * exactly 0. */
  DETLOSS_FCOS_ORIGINAL = 1,
  /* torchvision 0.14 FCOS.compute_loss: ranges strict at both ends (lo < m <
   * hi), smallest area by its float32 key 1e8 - area (areas closer than the
   * float32 spacing at 1e8 tie: lowest index; areas >= 1e8 never match). */
  DETLOSS_FCOS_TORCHVISION = 2
} detloss_fcos_semantics;

typedef struct detloss_fcos_options {
  detloss_fcos_semantics semantics; /* default MMDET */
  const float *regress_ranges;      /* [L][2] (lo, hi), both inclusive, lo <= hi; NULL = FCOS's
                                       [-1,64],[64,128],[128,256],[256,512],[512,1e8] (L = 5) */
  int center_sampling;              /* 0 (mmdet and FCOS default); 1 in the "imprv" configs */
  float center_sample_radius;       /* 1.5 strides of the point's level. >= 0 */
  int norm_on_bbox;                 /* 0; 1: bbox targets divided by the level stride */
  int num_threads;                  /* 0 = OpenMP default; results never depend on it */
} detloss_fcos_options;

#define DETLOSS_FCOS_OPTIONS_INIT                                                                  \
  { DETLOSS_FCOS_MMDET, NULL, 0, 1.5f, 0, 0 }
/* mmdet FCOSHead's defaults (no centre sampling, radius 1.5, FCOS's ranges). */
DETLOSS_API detloss_fcos_options detloss_fcos_options_default(void);

/*
 * detloss_fcos_targets() - FCOS positives and targets for one image.
 *   l = x - x1, t = y - y1, r = x2 - x, b = y2 - y of point (x, y) and gt g;
 *   g is a candidate when min(l, t, r, b) > 0 (with centre sampling: the point
 *   strictly inside [max(cx - rs, x1), max(cy - rs, y1), min(cx + rs, x2),
 *   min(cy + rs, y2)], s its level's stride) and lo <= max(l, t, r, b) <= hi;
 *   the candidate of smallest area wins (ties: lowest gt index).
 *   centerness = sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)).
 * points [A][2] (x, y), level_counts [L] (sum A), strides [L] (> 0), gt [G][4].
 * Outputs, caller-owned: assigned_gt [A] (gt index or -1), bbox_targets [A][4]
 * (optional: l, t, r, b of the assigned gt, / stride with norm_on_bbox; 0 at
 * negatives), centerness [A] (optional; 0 at negatives).
 * Work: each gt visits only the grid cells of each level that its (sampling)
 * box covers, and skips levels whose range it cannot meet; memory O(A + G).
 * A gt whose size misses every level's range (detloss_fcos_out_of_range), or
 * with no point inside it, gets no positive and its points stay background:
 * not an error, as in mmdet and FCOS (which say nothing; the compute op
 * `assign` reports such gts in gt_out_of_range and warnings, detloss eval
 * counts them).
 * Errors (outputs untouched): _NULL; _NONFINITE ("points[i]", "gt[g]",
 * "strides[l]", "regress_ranges[l]"); _RANGE ("strides[l]" <= 0,
 * "regress_ranges[l]" lo > hi, "center_sample_radius" < 0, semantics
 * unknown); _SHAPE ("level_counts" not summing to A, "regress_ranges" NULL
 * with L != 5, outputs overlapping inputs); _NOMEM. Thread-safe.
 * Matches mmdet FCOSHead._get_targets_single / tianzhi0549/FCOS. Ref: Tian et
 * al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019.
 */
DETLOSS_API detloss_status detloss_fcos_targets(const float *points, size_t num_points,
                                                const size_t *level_counts, const float *strides,
                                                size_t num_levels, const float *gt, size_t num_gt,
                                                int64_t *assigned_gt, float *bbox_targets,
                                                float *centerness, const detloss_fcos_options *opt,
                                                detloss_error *err);

/*
 * detloss_fcos_targets_batch() - detloss_fcos_targets() on B images sharing
 * the points, one image per thread. gt [sum G_i][4] with gt_counts [B];
 * outputs [B][A] ([B][A][4]); errors name "gt[j]" (row of the concatenation).
 * Bitwise identical for any num_threads. With B > 1 the outputs are staged
 * (B x A more memory) and copied out when every image succeeded: untouched on
 * _NOMEM.
 */
DETLOSS_API detloss_status detloss_fcos_targets_batch(
    size_t num_images, const float *points, size_t num_points, const size_t *level_counts,
    const float *strides, size_t num_levels, const float *gt, const size_t *gt_counts,
    int64_t *assigned_gt, float *bbox_targets, float *centerness, const detloss_fcos_options *opt,
    detloss_error *err);

/*
 * detloss_fcos_out_of_range() - the gts that no FCOS level can take, by size.
 *   out_of_range[g] = 1 when m = max(x2 - x1, y2 - y1) > 0 and [m/2, m) meets no
 *   level's [lo, hi] (hi < m/2 or lo >= m on every level), else 0.
 * A point strictly inside g has max(l, t, r, b) in [m/2, m) (l + r = w, t + b
 * = h), so such a gt gets no positive from detloss_fcos_targets with these
 * ranges, wherever the points lie. gt [G][4]; regress_ranges [L][2] (NULL:
 * FCOS's five, then L must be 5); out_of_range [G] caller-owned (may be NULL
 * when only the count is wanted); *num_out_of_range (may be NULL) the count.
 * Errors (outputs untouched): _NULL, _NONFINITE ("gt[g]", "regress_ranges[l]"),
 * _RANGE ("regress_ranges[l]" lo > hi), _SHAPE ("regress_ranges" NULL with
 * L != 5). Thread-safe.
 */
DETLOSS_API detloss_status detloss_fcos_out_of_range(const float *gt, size_t num_gt,
                                                     const float *regress_ranges, size_t num_levels,
                                                     uint8_t *out_of_range,
                                                     size_t *num_out_of_range, detloss_error *err);

/*
 * SimOTA (YOLOX): each gt takes its dynamic_k lowest-cost candidate priors,
 * dynamic_k = max(1, trunc(sum of its candidate_topk largest IoUs)).
 * docs/math/simota.md.
 */
typedef enum detloss_simota_semantics {
  /* mmdetection 3.x SimOTAAssigner: candidates are priors in some gt's box or
   * centre region; a pair is good when the prior is in the gt's box AND its
   * centre region; penalty 1e5 for pairs not good; IoU union clamped >= 1e-6,
   * iou cost -ln(IoU + 1e-7); centre radius 2.5. */
  DETLOSS_SIMOTA_MMDET = 0,
  /* YOLOX <= 0.3.0 (the paper's version): as MMDET but IoU without eps
   * (a zero union gives IoU 0 here; the reference gives NaN) and iou cost
   * -ln(IoU + 1e-8). */
  DETLOSS_SIMOTA_YOLOX_030 = 1,
  /* YOLOX after Megvii-BaseDetection/YOLOX#1589: candidates are priors in some
   * gt's centre region only; a pair is good when the prior is in the gt's
   * centre region; penalty 1e6; IoU as YOLOX_030; centre radius 1.5. */
  DETLOSS_SIMOTA_YOLOX = 2
} detloss_simota_semantics;

typedef struct detloss_simota_options {
  detloss_simota_semantics semantics; /* default MMDET */
  float center_radius;                /* half-side of the centre region in strides: 2.5 (MMDET,
                                         YOLOX_030), 1.5 (YOLOX). Finite, >= 0. */
  int64_t candidate_topk; /* IoUs summed for dynamic k: 10. >= 1; min(topk, candidates) used. */
  float iou_weight;       /* 3.0. Finite, >= 0. */
  float cls_weight;       /* 1.0. Finite, >= 0. */
  int num_threads;        /* 0 = OpenMP default; results never depend on it */
} detloss_simota_options;

#define DETLOSS_SIMOTA_OPTIONS_INIT                                                                \
  { DETLOSS_SIMOTA_MMDET, 2.5f, 10, 3.0f, 1.0f, 0 }
/* The mmdet defaults (DETLOSS_SIMOTA_OPTIONS_INIT). */
DETLOSS_API detloss_simota_options detloss_simota_options_default(void);
/* The defaults of one semantics (centre radius 1.5 for YOLOX, else 2.5; the rest
 * as the default); an unknown semantics gives the mmdet defaults. */
DETLOSS_API detloss_simota_options detloss_simota_options_for(detloss_simota_semantics semantics);

/*
 * detloss_assign_simota() - SimOTA assignment of one image.
 *   cost(a, g) = cls_weight * sum_c BCE(scores[a][c], onehot(label_g)_c)
 *              + iou_weight * (-ln(IoU(pred_a, gt_g) + eps)) + P * [pair not good]
 * (BCE logs clamped at -100, as torch binary_cross_entropy; P = 1e5, or 1e6 for
 * YOLOX). The class cost is S_a - L0(a, y) + L1(a, y) with S_a = sum_c L0(a, c)
 * computed once per candidate prior (L0 = -max(ln(1-p), -100), L1 =
 * -max(ln p, -100)): O(A*C + A*G) time instead of the reference's G*A*C.
 * points [A][2] prior centres (x, y) in pixels, level-major; level_counts [L]
 * priors per level (sum A; NULL with L = 0 is not allowed: strides are needed);
 * strides [L] > 0 the stride of each level. In-box: the centre strictly inside
 * the gt; in-centre: strictly inside [cx -+ r*s, cy -+ r*s] (c the gt centre,
 * s the prior's stride). scores [A][C] class probabilities in [0, 1] (YOLOX:
 * sqrt(sigmoid(cls) * sigmoid(obj))); pred_boxes [A][4] decoded (x1,y1,x2,y2);
 * gt [G][4] (x1,y1,x2,y2); gt_labels [G] in [0, C).
 * Each gt takes its dynamic_k lowest-cost candidates; a prior taken by several
 * gts goes to the gt with the lowest cost over ALL gts (the references' quirk).
 * Everything is computed in double.
 * Outputs (caller-owned, [A] each; only assigned_gt is required): assigned_gt
 * (gt index or -1), assigned_labels (its label or -1), assigned_iou (IoU of the
 * prior's predicted box with its gt, 0 at background; the references leave
 * -1e5 there).
 * Ties: a top-k tie at the k-th place goes to the lowest prior index
 * (torch.topk leaves it undefined); conflicts to the lowest gt index (as
 * torch.min). G = 0, A = 0 or no candidate: all background.
 * Memory O(A + G * candidate_topk); never A x G or G x A x C. Bitwise identical
 * for any num_threads (the gts of one image run in parallel).
 * Errors (outputs untouched): DETLOSS_ERR_NULL; _NONFINITE ("points[i]",
 * "strides[l]", "scores[i]", "pred_boxes[i]", "gt[j]"); _RANGE ("scores[i]"
 * outside [0, 1], "gt_labels[j]" outside [0, C), "strides[l]" <= 0,
 * "candidate_topk" < 1, "center_radius" / "iou_weight" / "cls_weight" < 0 or
 * not finite, "semantics", a coordinate beyond 1e18); _SHAPE ("level_counts"
 * not summing to A, "num_classes" = 0 with A, G > 0, an output overlapping
 * another argument); _NOMEM. Thread-safe.
 * Matches mmdet 3.x SimOTAAssigner, YOLOX 0.3.0 and YOLOX HEAD get_assignments
 * (tests/fixtures/simota). Ref: Ge et al., YOLOX, arXiv:2107.08430.
 */
DETLOSS_API detloss_status detloss_assign_simota(
    const float *points, size_t num_points, const size_t *level_counts, const float *strides,
    size_t num_levels, const float *scores, size_t num_classes, const float *pred_boxes,
    const float *gt, const int64_t *gt_labels, size_t num_gt, int64_t *assigned_gt,
    int64_t *assigned_labels, float *assigned_iou, const detloss_simota_options *opt,
    detloss_error *err);

/* One image of detloss_assign_simota_batch(): the arguments of
 * detloss_assign_simota() (num_classes, strides and options are shared). */
typedef struct detloss_simota_image {
  size_t num_points;
  const float *points;        /* [A][2] */
  const size_t *level_counts; /* [L] */
  const float *scores;        /* [A][C] */
  const float *pred_boxes;    /* [A][4] */
  size_t num_gt;
  const float *gt;          /* [G][4] */
  const int64_t *gt_labels; /* [G] */
  int64_t *assigned_gt;     /* out [A] */
  int64_t *assigned_labels; /* out [A] or NULL */
  float *assigned_iou;      /* out [A] or NULL */
} detloss_simota_image;

/*
 * detloss_assign_simota_batch() - detloss_assign_simota() on each of
 * num_images images sharing strides [L] and num_classes. Every image is
 * validated before any output is written; errors name "images[i].<argument>".
 * Images run in parallel; bitwise identical to the per-image calls for any
 * num_threads. Thread-safe.
 */
DETLOSS_API detloss_status detloss_assign_simota_batch(const detloss_simota_image *images,
                                                       size_t num_images, const float *strides,
                                                       size_t num_levels, size_t num_classes,
                                                       const detloss_simota_options *opt,
                                                       detloss_error *err);

typedef struct detloss_sample_options {
  int64_t batch_size_per_image; /* B: 256 (RPN); 512 for ROI heads. >= 0. */
  double positive_fraction;     /* f: 0.5 (RPN); 0.25 for ROI heads. In [0, 1]. */
  uint64_t seed;                /* default 0 */
  int num_threads;              /* 0 = OpenMP default */
} detloss_sample_options;

#define DETLOSS_SAMPLE_OPTIONS_INIT                                                                \
  { 256, 0.5, 0, 0 }
DETLOSS_API detloss_sample_options detloss_sample_options_default(void);

/*
 * detloss_sample_balanced() - balanced positive/negative sampling of one image.
 *   pos = {a : matches[a] >= 0}, neg = {a : matches[a] == -1} (-2 excluded);
 *   n_pos = min(|pos|, floor(B f)), n_neg = min(|neg|, B - n_pos)
 *   (torchvision BalancedPositiveNegativeSampler, detectron2 subsample_labels).
 * Choice: key(a) = hash(seed, image_index, a) (64-bit counter-based, splitmix64
 * finalizer); the n_pos positives (n_neg negatives) with the smallest
 * (key, a) are chosen. Every subset of the right size is equally likely, as
 * with torch.randperm, but the subset itself differs from torch's (whose
 * stream cannot be reproduced); it depends only on (seed, image_index, a):
 * identical for any thread count and platform.
 * matches [A] (values >= -2); sampled [A] int8 out: 1 chosen positive,
 * 0 chosen negative, -1 not chosen / ignored. num_pos, num_neg (may be NULL)
 * receive n_pos, n_neg. Errors (outputs untouched): _NULL; _RANGE
 * ("batch_size_per_image" < 0, "positive_fraction" outside [0,1] or NaN,
 * "matches[i]" < -2); _SHAPE (sampled, num_pos or num_neg overlapping
 * matches or each other); _NOMEM. Thread-safe.
 */
DETLOSS_API detloss_status detloss_sample_balanced(const int64_t *matches, size_t num_anchors,
                                                   uint64_t image_index, int8_t *sampled,
                                                   size_t *num_pos, size_t *num_neg,
                                                   const detloss_sample_options *opt,
                                                   detloss_error *err);

/*
 * detloss_match_targets() - training targets from matches.
 *   labels[a] = 1 if matches[a] >= 0, 0 if -1, -1 if -2 (torchvision RPN
 *   assign_targets_to_anchors, detectron2 labels);
 *   matched_gt[a] = max(matches[a], 0) (torchvision clamp(min=0));
 *   deltas[a] = detloss_box_encode(anchors[a], gt[matched_gt[a]]) for positives,
 *   0 elsewhere.
 * anchors [A][4], gt [G][4], matches [A] (values in [-2, G)); labels [A] int8,
 * matched_gt [A] int64, deltas [A][4]: each may be NULL to skip.
 * G = 0: matches must all be negative or ignored; matched_gt = 0, deltas 0.
 * Errors (outputs untouched): _NULL; _RANGE ("matches[i]" out of range; a
 * positive's anchor or gt with zero or negative width/height: "anchors[i]",
 * "gt[j]", where encoding would give -Inf/NaN); _NONFINITE; coder option errors;
 * _SHAPE (labels, matched_gt or deltas overlapping an input or each other).
 * Thread-safe.
 */
DETLOSS_API detloss_status detloss_match_targets(const float *anchors, size_t num_anchors,
                                                 const float *gt, size_t num_gt,
                                                 const int64_t *matches, int8_t *labels,
                                                 int64_t *matched_gt, float *deltas,
                                                 const detloss_coder_options *coder,
                                                 detloss_error *err);

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
 *   - Aliasing: loss and every grad may not overlap any input (input,
 *     target, weight, pos_weight, logits, pred, x1..x3) or each other:
 *     DETLOSS_ERR_SHAPE naming the output ("grad overlaps input"). In
 *     particular a gradient cannot be written over its input in place.
 */
typedef enum detloss_reduction {
  DETLOSS_REDUCTION_NONE = 0,
  DETLOSS_REDUCTION_SUM = 1,
  DETLOSS_REDUCTION_MEAN = 2
} detloss_reduction;

/* Stable numbers: append only. The names are those of the compute contract. */
typedef enum detloss_loss_kind {
  DETLOSS_LOSS_BCE_WITH_LOGITS = 0,     /* "bce_with_logits"  element-wise */
  DETLOSS_LOSS_BCE = 1,                 /* "bce"              element-wise */
  DETLOSS_LOSS_CROSS_ENTROPY = 2,       /* "cross_entropy"    class-indexed */
  DETLOSS_LOSS_SIGMOID_FOCAL = 3,       /* "sigmoid_focal"    element-wise */
  DETLOSS_LOSS_SOFTMAX_FOCAL = 4,       /* "softmax_focal"    class-indexed */
  DETLOSS_LOSS_HINGE = 5,               /* "hinge"            element-wise */
  DETLOSS_LOSS_L1 = 6,                  /* "l1"               element-wise */
  DETLOSS_LOSS_MSE = 7,                 /* "mse"              element-wise */
  DETLOSS_LOSS_SMOOTH_L1 = 8,           /* "smooth_l1"        element-wise */
  DETLOSS_LOSS_HUBER = 9,               /* "huber"            element-wise */
  DETLOSS_LOSS_IOU = 10,                /* "iou_loss"         boxes */
  DETLOSS_LOSS_GIOU = 11,               /* "giou_loss"        boxes */
  DETLOSS_LOSS_DIOU = 12,               /* "diou_loss"        boxes */
  DETLOSS_LOSS_CIOU = 13,               /* "ciou_loss"        boxes */
  DETLOSS_LOSS_CONTRASTIVE = 14,        /* "contrastive"      embedding */
  DETLOSS_LOSS_COSINE_EMBEDDING = 15,   /* "cosine_embedding" embedding */
  DETLOSS_LOSS_TRIPLET_MARGIN = 16,     /* "triplet_margin"   embedding */
  DETLOSS_LOSS_QUALITY_FOCAL = 17,      /* "quality_focal"    soft rows */
  DETLOSS_LOSS_DISTRIBUTION_FOCAL = 18, /* "distribution_focal" distribution */
  DETLOSS_LOSS_VARIFOCAL = 19           /* "varifocal"        element-wise */
} detloss_loss_kind;

/* One options struct for every loss; detloss_loss_options_default(kind)
 * gives the defaults of that loss (listed per field). Fields a loss does not
 * use are ignored. */
typedef struct detloss_loss_options {
  detloss_reduction reduction; /* default MEAN */
  float alpha;             /* sigmoid_focal 0.25 (< 0 disables the weighting); softmax_focal 1.0;
                              varifocal 0.75 (>= 0) */
  float gamma;             /* focal losses: 2. Must be >= 0. */
  float beta;              /* smooth_l1: 1.0 (0 means L1); quality_focal: 2.0. Must be >= 0. */
  float delta;             /* huber: 1.0. Must be > 0. */
  float margin;            /* hinge 1, contrastive 1, cosine_embedding 0, triplet_margin 1 */
  float label_smoothing;   /* cross_entropy: 0, in [0, 1] */
  float eps;               /* box losses 1e-7 (> 0); triplet_margin 1e-6 */
  float p;                 /* triplet_margin: norm degree, 2 (> 0) */
  int swap;                /* triplet_margin: distance swap (Balntas et al. 2016), 0 */
  int64_t ignore_index;    /* cross_entropy (and softmax_focal): -100 */
  const float *pos_weight; /* bce_with_logits: NULL = none; else pos_weight_len values broadcast
                              over the last dimension (n must be a multiple of the length) */
  size_t pos_weight_len;
  int num_threads;   /* 0 = OpenMP default */
  int activated;     /* quality_focal: 0; 1 = the input is probabilities in [0, 1] */
  int iou_weighted;  /* varifocal: 1 (positives weighted by q); 0 = weight 1 */
  int detach_weight; /* varifocal: 0; 1 = the focal weight is a constant for the gradient
                        (RT-DETR's .detach()) */
} detloss_loss_options;

DETLOSS_API detloss_loss_options detloss_loss_options_default(detloss_loss_kind kind);
/* The contract name of a kind ("giou_loss"), or NULL for an unknown kind. */
DETLOSS_API const char *detloss_loss_name(detloss_loss_kind kind);
/* Kind from its contract name; DETLOSS_ERR_UNKNOWN (with a suggestion) otherwise. */
DETLOSS_API detloss_status detloss_loss_from_name(const char *name, detloss_loss_kind *kind,
                                                  detloss_error *err);

/* The registry of loss kinds (src/loss_registry.c): one row per kind, read by
 * the JSON layer (op `loss` / `embedding_loss`: names, params, defaults), by
 * the error messages and by the Python binding (through ctypes). */
typedef enum detloss_loss_form {
  DETLOSS_LOSS_FORM_ELEMENTWISE = 0, /* input, target of one shape: detloss_loss_elementwise */
  DETLOSS_LOSS_FORM_CLASSES = 1,     /* logits [N][C], class indices [N]: detloss_loss_classes */
  DETLOSS_LOSS_FORM_BOXES = 2,       /* pred, target [N][4]: detloss_loss_boxes */
  DETLOSS_LOSS_FORM_EMBEDDING = 3,   /* x1, x2 (, x3) [N][D], target [N]: detloss_loss_embedding */
  DETLOSS_LOSS_FORM_SOFT_ROWS = 4,   /* logits [N][C], soft target [N][C], loss per row:
                                        detloss_loss_rows */
  DETLOSS_LOSS_FORM_DISTRIBUTION = 5 /* logits [N][n+1], float target [N] in [0, n], loss per
                                        row: detloss_loss_rows */
} detloss_loss_form;

typedef enum detloss_param_type {
  DETLOSS_PARAM_FLOAT = 0, /* float field */
  DETLOSS_PARAM_INT = 1,   /* int64_t field */
  DETLOSS_PARAM_BOOL = 2,  /* int field, 0 or 1 */
  DETLOSS_PARAM_FLOATS = 3 /* const float * + size_t length (pos_weight) */
} detloss_param_type;

/* One parameter of a loss: a field of detloss_loss_options. The domain
 * [lo, hi] (open ends flagged) is the one the loss function checks. */
typedef struct detloss_loss_param {
  const char *key; /* JSON key in `params` and the options field name */
  detloss_param_type type;
  size_t offset;        /* offsetof(detloss_loss_options, field) */
  double default_value; /* default (FLOATS: none) */
  double lo, hi;        /* domain (+-HUGE_VAL: unbounded) */
  int lo_open, hi_open; /* 1: that end is excluded */
  const char *doc;      /* one line */
} detloss_loss_param;

typedef struct detloss_loss_info {
  const char *name; /* contract name ("giou_loss") */
  detloss_loss_kind kind;
  detloss_loss_form form;
  const detloss_loss_param *params; /* num_params rows, in the order they are read */
  size_t num_params;
  const char *grad_inputs; /* inputs with gradients, comma-separated ("input,target") */
  const char *reference;   /* the implementation it matches, and the paper */
} detloss_loss_info;

/* Number of loss kinds: every kind in [0, count) has a row. */
DETLOSS_API size_t detloss_loss_count(void);
/* The row of a kind, or NULL for an unknown kind. Static, read-only; thread-safe. */
DETLOSS_API const detloss_loss_info *detloss_loss_info_get(detloss_loss_kind kind);
/* The row of a contract name, or NULL (name NULL or unknown). */
DETLOSS_API const detloss_loss_info *detloss_loss_info_by_name(const char *name);
/*
 * detloss_loss_elementwise() - element-wise loss and its gradient.
 *   x = input, y = target, d = x - y; per element l_i, then w_i l_i reduced:
 *   bce_with_logits  l = (1-y) x + (1 + (pw-1) y) softplus(-x)      y in [0,1]
 *   bce              l = -(y max(ln x, -100) + (1-y) max(ln(1-x), -100))
 *                    x, y in [0,1]; gradient (x-y) / max(x(1-x), 1e-12) (torch's)
 *   sigmoid_focal    l = a_t (1-p_t)^gamma CE,  p = sigmoid(x), CE = bce_with_logits,
 *                    p_t = p y + (1-p)(1-y), a_t = alpha y + (1-alpha)(1-y)
 *                    (a_t = 1 when alpha < 0); y in [0,1] (soft targets allowed);
 *                    rounded as (CE (1-p_t)^gamma) a_t with CE the bits of
 *                    bce_with_logits (pw 1): l <= that BCE for alpha in [0,1]
 *                    or < 0, and gamma 0, alpha < 0 gives it exactly
 *   hinge            l = max(0, margin - y x),  y in {-1, +1}
 *   varifocal        l = BCEL(x, q) f,  q = y in [0,1], s = sigmoid(x),
 *                    f = q (iou_weighted; 1 otherwise) where q > 0, alpha s^gamma where
 *                    q = 0; gradient of the whole product (mmdetection varifocal_loss),
 *                    or with f held constant when detach_weight is 1 (RT-DETR):
 *                    dl/dx = f (s - q) there (docs/math/quality_losses.md)
 *   l1  |d|     mse  d^2     smooth_l1  0.5 d^2/beta if |d| < beta else |d| - 0.5 beta
 *   huber            0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta)
 * input, target, weight (NULL = 1): [n] (any shape, flattened); loss [n] for
 * NONE, else [1]; grad [n] (d reduced loss / d input) or NULL. n may be 0
 * (MEAN gives 0). pos_weight (bce_with_logits only) has pos_weight_len
 * values, element i uses pos_weight[i % pos_weight_len] (torch broadcast over
 * the last dimension); n must be a multiple of pos_weight_len.
 * Gradients are closed forms evaluated stably (docs/math/losses.md): finite
 * for every finite input, logits +-100 and saturated probabilities included;
 * focal is finite for every gamma >= 0 (autograd gives NaN for gamma < 1).
 * Returns DETLOSS_OK; DETLOSS_ERR_NULL; _SHAPE (pos_weight length); _NONFINITE
 * (NaN/Inf in input, target, weight or pos_weight: where "input[i]" ...);
 * _RANGE (kind not element-wise, reduction, gamma < 0, beta < 0, delta <= 0, alpha < 0
 * (varifocal),
 * margin < 0, pos_weight < 0, "target[i]" outside [0,1] or not +-1,
 * bce "input[i]" outside [0,1]). Outputs untouched on error. Thread-safe;
 * bitwise identical for any thread count.
 * Matches torch binary_cross_entropy_with_logits, binary_cross_entropy,
 * l1_loss, mse_loss, smooth_l1_loss, huber_loss, torchvision
 * sigmoid_focal_loss (Lin et al., Focal Loss, arXiv:1708.02002) and
 * mmdetection varifocal_loss (Zhang et al., VarifocalNet, arXiv:2008.13367).
 */
DETLOSS_API detloss_status detloss_loss_elementwise(detloss_loss_kind kind, const float *input,
                                                    const float *target, const float *weight,
                                                    size_t n, float *loss, float *grad,
                                                    const detloss_loss_options *opt,
                                                    detloss_error *err);

/*
 * detloss_loss_classes() - class-indexed softmax losses and their gradient.
 *   p = softmax(logits_i), t = target[i]
 *   cross_entropy  l_i = (1-eps) (-ln p_t) + (eps/C) sum_c (-ln p_c)   eps = label_smoothing
 *                  grad_i = p - ((1-eps) onehot(t) + eps/C)
 *   softmax_focal  l_i = -alpha (1-p_t)^gamma ln p_t
 * logits [n][c], target [n] class indices in [0, c) or ignore_index;
 * weight [n] per row or NULL; loss [n] for NONE, else [1]; grad [n][c] or NULL.
 * Ignored rows give loss 0 and gradient 0; MEAN divides by the number of
 * non-ignored rows (0, with zero gradient, when every row is ignored: torch
 * gives NaN). An ignore_index equal to a valid class ignores exactly the rows
 * with that target; that class's logit still enters every other row's softmax
 * (as torch, pytorch #63004). c >= 1 unless n = 0. Per-row math in double.
 * Returns DETLOSS_OK; DETLOSS_ERR_NULL; _SHAPE (c = 0 with n > 0, n*c
 * overflow); _NONFINITE ("logits[i]" flat index, "weight[i]"); _RANGE
 * ("target[i]" out of range, reduction, gamma < 0, label_smoothing outside
 * [0,1], kind not class-indexed). Outputs untouched on error. Thread-safe;
 * bitwise identical for any thread count.
 * Matches torch cross_entropy (class-index targets; aten's label smoothing
 * with the same denominator) and the Detectron softmax focal loss per row.
 */
DETLOSS_API detloss_status detloss_loss_classes(detloss_loss_kind kind, const float *logits,
                                                const int64_t *target, const float *weight,
                                                size_t n, size_t c, float *loss, float *grad,
                                                const detloss_loss_options *opt,
                                                detloss_error *err);

/*
 * detloss_loss_rows() - per-row quality losses over logits, float targets.
 *   s = sigmoid(x), BCEL = BCE with logits, CE = -log_softmax:
 *   quality_focal       l_i = sum_c BCEL(x_ic, y_ic) |y_ic - s_ic|^beta
 *                       target [n][c], soft scores in [0, 1] (0 = negative);
 *                       activated: x are probabilities in [0, 1], BCE with its
 *                       logs clamped at -100 replaces BCEL and x replaces s
 *   distribution_focal  l_i = (k+1 - y_i) CE(x_i, k) + (y_i - k) CE(x_i, k+1),
 *                       k = floor(y_i); y_i = c-1 gives CE(x_i, c-1);
 *                       target [n], y_i in [0, c-1] (c = n_bins = reg_max + 1)
 * input [n][c]; weight [n] per row or NULL; loss [n] for NONE, else [1] (MEAN
 * divides by n; n = 0 gives 0); grad [n][c] (d loss / d input) or NULL.
 * Gradients are of the whole expression, no factor detached (as mmdetection):
 *   quality_focal  dl/dx = BCEL beta |y-s|^(beta-1) sgn(s-y) s(1-s) + |y-s|^beta (s-y),
 *                  0^0 = 1 (beta = 0), and the first term is 0 where y = s (the kink);
 *                  activated: d/dp with torch's BCE gradient (p-y)/max(p(1-p), 1e-12)
 *   distribution_focal  dl/dx = softmax(x) - (k+1-y) e_k - (y-k) e_(k+1)
 * Per-row arithmetic in double, rounded once to float; finite for every finite
 * input and every beta >= 0 (logits of +-100 included).
 * Returns DETLOSS_OK, or with outputs untouched: DETLOSS_ERR_NULL; _SHAPE (c = 0
 * with n > 0, n*c overflow); _NONFINITE ("input[i]" flat, "target[i]",
 * "weight[i]"); _RANGE ("target[i]" outside its range, "input[i]" outside
 * [0, 1] when activated, "beta" < 0, "reduction", "kind" not a row loss).
 * Thread-safe; bitwise identical for any thread count.
 * Matches mmdetection quality_focal_loss_tensor_target and
 * distribution_focal_loss (Li et al., Generalized Focal Loss, arXiv:2006.04388).
 * Derivation and the ultralytics / GFL bin conventions: docs/math/quality_losses.md.
 */
DETLOSS_API detloss_status detloss_loss_rows(detloss_loss_kind kind, const float *input,
                                             const float *target, const float *weight, size_t n,
                                             size_t c, float *loss, float *grad,
                                             const detloss_loss_options *opt, detloss_error *err);

/*
 * detloss_sigmoid_focal_loss() - torchvision.ops.sigmoid_focal_loss with its
 * gradient: detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, ...) with
 * the given alpha, gamma, reduction and num_threads (other options default).
 */
DETLOSS_API detloss_status detloss_sigmoid_focal_loss(const float *logits, const float *targets,
                                                      size_t n, float alpha, float gamma,
                                                      detloss_reduction reduction, float *loss,
                                                      float *grad, int num_threads,
                                                      detloss_error *err);
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
                                              const float *target, const float *weight, size_t n,
                                              float *loss, float *grad_pred, float *grad_target,
                                              const detloss_loss_options *opt, detloss_error *err);

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
    detloss_loss_kind kind, const float *x1, const float *x2, const float *x3, const float *target,
    const float *weight, size_t n, size_t d, float *loss, float *grad_x1, float *grad_x2,
    float *grad_x3, const detloss_loss_options *opt, detloss_error *err);

/* Detector losses over anchors: RPN and RetinaNet. */
/*
 * Detector losses over anchors: overview.
 *   detloss_rpn_loss()    Faster R-CNN region proposal network loss
 *   detloss_retina_loss() RetinaNet focal loss + box regression
 * A batch is an array of per-image descriptors (detloss_head_image): the
 * image's anchors (A may differ between images), its ground truth, the
 * network's per-anchor predictions and, optionally, caller-owned gradient
 * buffers laid out like the predictions. One call matches anchors to gt,
 * (RPN) samples, builds the targets, and returns every loss term, the counts
 * and the gradients. Scratch memory is O(A) per image (matches, sampling
 * flags) plus O(positives); no A x C target array and no A x G IoU matrix is
 * ever formed. With at least as many images as threads, the images run in
 * parallel (each one serially inside); otherwise one after the other, with
 * matching and the loss passes over fixed anchor blocks on the threads.
 * Every piece is bitwise invariant to its thread count, so results are
 * bitwise identical for any options->num_threads.
 * Aliasing: inputs (anchors, gt, labels, crowd flags, predictions, anchor
 * configs) may be shared between images, but no output (each image's
 * gradient buffers, result, per_image, options.workspace, ema_state) may
 * overlap any input or another output, also across images (two images
 * cannot share a gradient buffer): DETLOSS_ERR_SHAPE naming the output,
 * e.g. "images[1].grad_deltas", checked in the validation phase. The check
 * costs O(images^2) comparisons.
 */

/* Box regression loss of a head. The element-wise kinds act on the encoded
 * deltas against detloss_box_encode(anchor, matched gt); the IoU kinds act on
 * detloss_box_decode(anchor, deltas) against the matched gt box
 * (torchvision _utils._box_loss; detectron2 _dense_box_regression_loss). */
typedef enum detloss_head_box_loss {
  DETLOSS_HEAD_BOX_L1 = 0,        /* |d - t| summed over the 4 coordinates */
  DETLOSS_HEAD_BOX_SMOOTH_L1 = 1, /* smooth-L1 with smooth_l1_beta (0 = L1) */
  DETLOSS_HEAD_BOX_GIOU = 2,      /* detloss_loss_boxes(GIOU) on decoded boxes, eps 1e-7 */
  DETLOSS_HEAD_BOX_DIOU = 3,
  DETLOSS_HEAD_BOX_CIOU = 4
} detloss_head_box_loss;

/* One image of a batch. Pointers may be NULL when their count is 0. */
typedef struct detloss_head_image {
  const float *anchors; /* [num_anchors][4], finite */
  size_t num_anchors;
  const detloss_anchor_config *anchor_config; /* optional (NULL = none): the grid config
                                 the anchors were generated from (they must equal
                                 detloss_anchors_generate(anchor_config)). Matching then
                                 uses detloss_match_grid, which gives the same matches
                                 but visits only the cells near each gt (much faster
                                 for FPN-sized anchor sets) */
  const float *gt; /* [num_gt][4], finite; num_gt = 0 is normal (all negative) */
  size_t num_gt;
  const int64_t *labels;      /* [num_gt] class indices in [0, num_classes) (RetinaNet only) */
  const uint8_t *gt_is_crowd; /* [num_gt] or NULL; crowd gt are never matched and make
                                 anchors they cover ignored (detloss_match_options) */
  float image_h, image_w;     /* image size; needed (> 0) only when
                                 match.allowed_border >= 0 (border filtering) */
  size_t num_predictions;     /* rows of objectness / cls_logits / deltas; must equal
                                 num_anchors (a check against anchor/head mismatch) */
  const float *objectness;    /* RPN: [num_predictions] logits */
  const float *cls_logits;    /* RetinaNet: [num_predictions][num_classes] logits */
  const float *deltas;        /* [num_predictions][4] predicted (dx, dy, dw, dh) */
  float *grad_objectness;     /* RPN out: [num_predictions] or NULL */
  float *grad_cls_logits;     /* RetinaNet out: [num_predictions][num_classes] or NULL */
  float *grad_deltas;         /* out: [num_predictions][4] or NULL */
} detloss_head_image;

/* Counts and loss contributions of one image (the per_image argument). */
typedef struct detloss_head_image_stats {
  size_t num_pos;         /* anchors matched to a gt (match >= 0) */
  size_t num_neg;         /* anchors below the low threshold (-1) */
  size_t num_ignored;     /* between thresholds, crowd- or border-ignored (-2) */
  size_t num_sampled_pos; /* RPN: sampled positives; RetinaNet: = num_pos */
  size_t num_sampled_neg; /* RPN: sampled negatives; RetinaNet: = num_neg */
  float loss_cls;         /* this image's share of loss_cls (the shares add up to the
                             batch value up to rounding) */
  float loss_box_reg;     /* this image's share of loss_box_reg */
} detloss_head_image_stats;

/* Result of a head loss. */
typedef struct detloss_head_result {
  float loss_cls;     /* RPN: loss_objectness; RetinaNet: loss_cls */
  float loss_box_reg; /* RPN: loss_rpn_box_reg; RetinaNet: loss_box_reg */
  double normalizer;  /* the batch divisor used (RPN: sampled anchors of the batch or
                         B x images; RetinaNet EMA / CALLER: the normalizer; RetinaNet
                         TORCHVISION: the number of images, each image being divided
                         by max(1, its positives) first) */
  size_t num_pos, num_neg, num_ignored;    /* whole batch, as per image */
  size_t num_sampled_pos, num_sampled_neg; /* whole batch */
  int nonfinite;                           /* 1 when loss_cls or loss_box_reg is NaN/Inf (non-finite
                                              predictions of anchors in the loss propagate; never an error) */
} detloss_head_result;

/* Normalizer conventions of the RPN loss. The preset function fills the
 * other fields of each convention; the field itself selects only the divisor. */
typedef enum detloss_rpn_convention {
  /* torchvision RegionProposalNetwork.compute_loss (the default): both terms
   * divided by the number of sampled anchors of the whole batch; objectness is
   * the BCE mean over those anchors, box loss smooth-L1 (beta 1/9) summed over
   * the sampled positives. */
  DETLOSS_RPN_TORCHVISION = 0,
  /* detectron2 RPN.losses: both terms divided by batch_size_per_image x
   * num_images, a fixed normalizer even when fewer anchors are sampled; box
   * loss L1 (SMOOTH_L1_BETA 0) by default, GIoU (or DIoU/CIoU) on decoded boxes
   * as options. */
  DETLOSS_RPN_DETECTRON2 = 1,
  /* py-faster-rcnn anchor_target_layer + SmoothL1Loss(sigma 3): the torchvision
   * divisor, smooth-L1 beta = 1/sigma^2 = 1/9, and anchors not inside the image
   * (allowed_border 0) ignored before matching. Its 2-class softmax on (s0, s1)
   * equals the BCE here on the logit s1 - s0. Its "+1" box widths are not
   * reproduced (no "+1" anywhere in detloss). */
  DETLOSS_RPN_PY_FASTER_RCNN = 2
} detloss_rpn_convention;

typedef struct detloss_rpn_options {
  detloss_match_options match;       /* 0.7 / 0.3, low-quality matches on */
  detloss_sample_options sample;     /* 256 per image, 0.5 positive, seed 0 (image i of the
                                        batch uses image_index i) */
  detloss_rpn_convention convention; /* the divisor, default TORCHVISION */
  detloss_head_box_loss box_loss;    /* default SMOOTH_L1 */
  float smooth_l1_beta;              /* 1/9 (torchvision, py-faster-rcnn sigma 3); >= 0 */
  float box_weights[4];              /* coder weights (1,1,1,1); finite > 0 */
  int num_threads;                   /* 0 = OpenMP default; overrides match/sample num_threads */
  void *workspace;                   /* optional caller scratch (NULL = allocate per call) of */
  size_t workspace_size;             /* >= detloss_rpn_workspace_size() bytes: a training loop
                                        that keeps one avoids fresh pages on every call */
} detloss_rpn_options;

#define DETLOSS_RPN_OPTIONS_INIT                                                                   \
  {                                                                                                \
    DETLOSS_MATCH_OPTIONS_INIT, DETLOSS_SAMPLE_OPTIONS_INIT, DETLOSS_RPN_TORCHVISION,              \
        DETLOSS_HEAD_BOX_SMOOTH_L1, 1.0f / 9.0f, {1.0f, 1.0f, 1.0f, 1.0f}, 0, NULL, 0              \
  }
DETLOSS_API detloss_rpn_options detloss_rpn_options_default(void);
/* The options of a published convention: TORCHVISION = the default;
 * DETECTRON2 = default with convention DETECTRON2 and box_loss SMOOTH_L1 with
 * beta 0 (L1); PY_FASTER_RCNN = default with convention PY_FASTER_RCNN and
 * match.allowed_border 0 (so image_h/image_w are required). */
DETLOSS_API detloss_rpn_options detloss_rpn_options_preset(detloss_rpn_convention convention);

/* Bytes of the per-image scratch of detloss_rpn_loss (matches, sampling flags,
 * block partials: about 9 bytes per anchor), for options.workspace. The box
 * loss of the positives still allocates O(positives). Errors: _NULL, _SHAPE. */
DETLOSS_API detloss_status detloss_rpn_workspace_size(const detloss_head_image *images,
                                                      size_t num_images, size_t *bytes,
                                                      detloss_error *err);

/*
 * detloss_rpn_loss() - Faster R-CNN RPN loss of a batch, with gradients.
 *   per image i: m = detloss_match(anchors, gt) (G = 0: all -1),
 *   S_i = detloss_sample_balanced(m, image_index i): P_i positives, N_i negatives;
 *   loss_cls     = sum_i sum_{a in S_i} bce(objectness[a], [a positive]) / D
 *   loss_box_reg = sum_i sum_{a in S_i positive} box_loss(deltas[a], target[a]) / D
 *   D = sum_i (P_i + N_i) (TORCHVISION, PY_FASTER_RCNN) or B x num_images (DETECTRON2);
 *   target = encode(anchor, gt[m[a]]) with box_weights (or decoded boxes vs gt for IoU kinds).
 * images [num_images] (num_images >= 1); objectness and deltas required;
 * result required; per_image [num_images] or NULL (per-image counts and shares); the
 * grad_* outputs (each may be NULL) receive d loss_cls / d objectness and
 * d loss_box_reg / d deltas; anchors not sampled get exactly 0.
 * D = 0 (nothing sampled anywhere): both losses 0 with zero gradient
 * (torchvision divides 0 by 0). Non-finite logits/deltas of sampled anchors
 * give a non-finite loss and result->nonfinite = 1, never an error.
 * Sampling: torchvision draws with randperm; detloss uses its seeded
 * counter-based choice (detloss_sample_balanced): when an image has at most
 * B f positives and at most B - P_i negatives nothing is dropped and the result
 * equals torchvision's exactly.
 * Returns DETLOSS_OK; DETLOSS_ERR_NULL; _SHAPE ("num_images" = 0: empty batch,
 * "images[i].num_predictions" != num_anchors); _NONFINITE ("images[i].anchors[a]",
 * "images[i].gt[g]"); _RANGE (options: "smooth_l1_beta", "box_weights",
 * "box_loss", "convention", "match.high" ...; "workspace_size" too small;
 * "images[i].image_h" when border
 * filtering needs it; "images[i].gt[g]" a degenerate gt matched by an
 * element-wise box loss, which cannot be encoded); _NOMEM. Outputs (result and
 * gradients) untouched on error. Thread-safe.
 * Matches torchvision RegionProposalNetwork.assign_targets_to_anchors +
 * compute_loss (tests/fixtures/heads). Ref: Ren et al., Faster R-CNN,
 * arXiv:1506.01497, eq. (1).
 */
DETLOSS_API detloss_status detloss_rpn_loss(const detloss_head_image *images, size_t num_images,
                                            detloss_head_result *result,
                                            detloss_head_image_stats *per_image,
                                            const detloss_rpn_options *opt, detloss_error *err);

/* Normalizer of the RetinaNet loss. */
typedef enum detloss_retina_normalizer {
  /* torchvision RetinaNetHead.compute_loss: each image divided by max(1, its
   * positives), then the mean over images. The default. */
  DETLOSS_RETINA_NORM_TORCHVISION = 0,
  /* detectron2 RetinaNet.losses: the batch sums divided by
   * n <- momentum n + (1 - momentum) max(P, 1), P = positives of the whole
   * batch, n the caller-owned *ema_state (initial 100, detectron2's
   * loss_normalizer); *ema_state is updated on success only. */
  DETLOSS_RETINA_NORM_DETECTRON2_EMA = 1,
  /* the batch sums divided by caller_normalizer (> 0), e.g. the positive count
   * all-reduced over the ranks of a distributed step (mmdetection reduce_mean,
   * clamped to >= 1 by the caller as it sees fit). */
  DETLOSS_RETINA_NORM_CALLER = 2
} detloss_retina_normalizer;

typedef struct detloss_retina_options {
  detloss_match_options match;          /* 0.5 / 0.4, low-quality matches on */
  float alpha;                          /* focal alpha 0.25; < 0 disables the weighting */
  float gamma;                          /* focal gamma 2; >= 0 */
  detloss_head_box_loss box_loss;       /* default L1 (torchvision) */
  float smooth_l1_beta;                 /* for SMOOTH_L1: 1.0 (torchvision _box_loss); >= 0 */
  float box_weights[4];                 /* coder weights (1,1,1,1); finite > 0 */
  detloss_retina_normalizer normalizer; /* default TORCHVISION */
  float *ema_state;                     /* DETECTRON2_EMA: in/out, caller-owned (start at 100) */
  float ema_momentum;                   /* DETECTRON2_EMA: 0.9, in [0, 1] */
  double caller_normalizer;             /* CALLER: finite > 0 */
  int num_threads;                      /* 0 = OpenMP default; overrides match.num_threads */
  void *workspace;                      /* optional caller scratch (NULL = allocate per call) of */
  size_t workspace_size;                /* >= detloss_retina_workspace_size() bytes */
} detloss_retina_options;

#define DETLOSS_RETINA_EMA_INIT 100.0f
#define DETLOSS_RETINA_OPTIONS_INIT                                                                \
  {                                                                                                \
    {0.5f, 0.4f, 1, 0.0f, DETLOSS_MATCH_TORCHVISION, 1, 0.7f, -1.0f, 0.0f, 0.0f, 0}, 0.25f, 2.0f,  \
        DETLOSS_HEAD_BOX_L1, 1.0f, {1.0f, 1.0f, 1.0f, 1.0f}, DETLOSS_RETINA_NORM_TORCHVISION,      \
        NULL, 0.9f, 1.0, 0, NULL, 0                                                                \
  }
DETLOSS_API detloss_retina_options detloss_retina_options_default(void);

/* Bytes of the per-image scratch of detloss_retina_loss (about 8 bytes per
 * anchor), for options.workspace. Errors: _NULL, _SHAPE (num_classes = 0). */
DETLOSS_API detloss_status detloss_retina_workspace_size(const detloss_head_image *images,
                                                         size_t num_images, size_t num_classes,
                                                         size_t *bytes, detloss_error *err);

/*
 * detloss_retina_loss() - RetinaNet loss of a batch, with gradients.
 *   per image i: m = detloss_match(anchors, gt) (G = 0: all -1), F_i = {a: m[a] >= 0},
 *   y[a][c] = 1 if a in F_i and c = labels[m[a]], else 0;
 *   cls_i = sum_{a: m[a] != -2} sum_c focal(cls_logits[a][c], y[a][c]; alpha, gamma)
 *   box_i = sum_{a in F_i} box_loss(deltas[a], anchor a, gt[m[a]])
 *   TORCHVISION:  loss_cls = (1/n) sum_i cls_i / max(1, |F_i|)  (n = num_images), same for box;
 *   EMA, CALLER:  loss_cls = sum_i cls_i / Z, loss_box_reg = sum_i box_i / Z.
 *   focal(x, y) = a_t (1 - p_t)^gamma BCE(x, y) (torchvision sigmoid_focal_loss).
 * num_classes C >= 1; images [num_images] (>= 1) with cls_logits and deltas
 * required, labels required when num_gt > 0; result required, per_image
 * [num_images] or NULL. grad_cls_logits [A][C] receives
 * d loss_cls / d logits (rows of ignored anchors exactly 0), grad_deltas
 * d loss_box_reg / d deltas (non-positive rows exactly 0).
 * The focal value and gradient are evaluated per logit with the implicit
 * one-hot target in one vectorized pass (closed-form gradient, finite for
 * every gamma >= 0; the formulas of detloss_loss_elementwise SIGMOID_FOCAL).
 * With box_loss CIOU the trade-off alpha is a constant for the gradient
 * (torchvision), so that gradient is not the exact derivative of the value.
 * Non-finite logits/deltas of anchors in the loss give a non-finite loss and
 * result->nonfinite = 1, never an error.
 * Returns DETLOSS_OK; _NULL; _SHAPE ("num_images" = 0, "num_classes" = 0,
 * "images[i].num_predictions"); _NONFINITE ("images[i].anchors[a]",
 * "images[i].gt[g]"); _RANGE ("images[i].labels[g]" outside [0, C), "alpha",
 * "gamma", "smooth_l1_beta", "box_weights", "box_loss", "normalizer",
 * "ema_state", "ema_momentum", "caller_normalizer", "match.*", "workspace_size",
 * "images[i].gt[g]" degenerate and matched under an element-wise box loss);
 * _NOMEM. Outputs (result, gradients, *ema_state) untouched on error. Thread-safe
 * (the EMA state is the caller's to serialize).
 * Matches torchvision RetinaNet.compute_loss / RetinaNetHead.compute_loss
 * (tests/fixtures/heads) and detectron2 RetinaNet.losses (EMA normalizer).
 * Ref: Lin et al., Focal Loss for Dense Object Detection, arXiv:1708.02002.
 */
DETLOSS_API detloss_status detloss_retina_loss(const detloss_head_image *images, size_t num_images,
                                               size_t num_classes, detloss_head_result *result,
                                               detloss_head_image_stats *per_image,
                                               const detloss_retina_options *opt,
                                               detloss_error *err);

/*
 * Anchor-set evaluation: how well an anchor set covers the ground-truth boxes
 * of a data set, before any training (the question behind YOLOv5's autoanchor
 * check and the "small objects get no anchor" reports, docs/math/anchor_eval.md). Per gt box: the
 * best IoU (or best shape ratio r) over the anchors, the number of fitting anchors, the number of
 * positives the config's matcher gives it, and the pyramid level of its best anchor; aggregated
 * over the data set and split by COCO size class.
 */

#define DETLOSS_EVAL_MAX_LEVELS 16 /* pyramid levels of a grid source */
#define DETLOSS_EVAL_MAX_WORST 100 /* longest worst-covered list */

typedef enum detloss_eval_metric {
  /* IoU of gt and anchor (torchvision box_iou, float32); fits when IoU >= iou_thresh. */
  DETLOSS_EVAL_IOU = 0,
  /* YOLOv5 autoanchor shape metric (utils/autoanchor.py metric(), float32):
   * r = min(w/aw, aw/w, h/ah, ah/h) (as min(q, 1/q) for q = w/aw and h/ah);
   * fits when r > 1/ratio_thresh. Positions are ignored. */
  DETLOSS_EVAL_WH_RATIO = 1
} detloss_eval_metric;

/* Size classes of COCO (cocoeval areaRng), on the box area w*h after clipping
 * and resizing: small < 32^2, medium, large >= 96^2. */
typedef enum detloss_eval_size {
  DETLOSS_EVAL_SMALL = 0,
  DETLOSS_EVAL_MEDIUM = 1,
  DETLOSS_EVAL_LARGE = 2
} detloss_eval_size;

/* A data set of ground-truth boxes, flat. Image i has the boxes with rows
 * box_start[i] .. box_start[i+1]-1 (box_start[0] = 0, non-decreasing), in
 * pixels of the original image (x1, y1, x2, y2). */
typedef struct detloss_eval_dataset {
  size_t num_images;
  const float *image_hw;   /* [num_images][2]: height, width; finite, > 0 */
  const size_t *box_start; /* [num_images + 1] */
  const float *boxes;      /* [box_start[num_images]][4], finite */
  const uint8_t *is_crowd; /* [box_start[num_images]] or NULL; crowd boxes are left out
                              (and counted), as torchvision's COCO loader drops them */
} detloss_eval_dataset;

/* The anchors to evaluate: exactly one of grid, anchors, shapes.
 *  - grid: a grid config; the feat_h / feat_w of its levels are ignored and
 *    set per image to ceil(H / stride_h) x ceil(W / stride_w) of the resized
 *    image (compute-cases.md anchor_eval; the `anchors` op instead takes
 *    stride = size // feature size). The level is reported per gt.
 *  - anchors [num_anchors][4]: the same explicit anchors for every image.
 *  - shapes [num_shapes][2] (w, h): shapes only, for DETLOSS_EVAL_WH_RATIO.
 * With WH_RATIO a grid contributes the shapes of its base anchors (each once,
 * level kept) and explicit anchors their widths and heights. */
typedef struct detloss_eval_anchors {
  const detloss_anchor_config *grid;
  const float *anchors;
  size_t num_anchors;
  const float *shapes;
  size_t num_shapes;
} detloss_eval_anchors;

typedef struct detloss_eval_options {
  detloss_eval_metric metric; /* default IOU */
  float iou_thresh;           /* fit threshold of IOU: 0.5, in (0, 1] */
  float ratio_thresh;         /* WH_RATIO: 4.0 (YOLOv5 anchor_t), >= 1 */
  /* Resizing (0 = off). Both > 0: torchvision GeneralizedRCNNTransform,
   * scale = min(resize_min_size / short side, resize_max_size / long side)
   * in float32, new size floor(H * scale), boxes times new/old size per axis
   * (float32). Only resize_max_size > 0: the long side becomes exactly
   * resize_max_size, boxes times (float)(L / long side) (compute-cases.md
   * resize_long_side; YOLOv5's imgsz). Only resize_min_size > 0: likewise for
   * the short side. */
  float resize_min_size;
  float resize_max_size;
  int count_positives;         /* 1: run the matcher for the positives of each gt (IOU only) */
  detloss_match_options match; /* the matcher (default torchvision RPN 0.7 / 0.3) */
  size_t num_worst;            /* worst-covered gts to report: 20, <= DETLOSS_EVAL_MAX_WORST */
  int num_threads;             /* 0 = OpenMP default */
  /* Optional progress report: called on the calling thread after each chunk of
   * images (and once at the end) with the number of images done. NULL = none. */
  void (*progress)(void *user, size_t images_done, size_t num_images);
  void *progress_user;
} detloss_eval_options;

#define DETLOSS_EVAL_OPTIONS_INIT                                                                  \
  { DETLOSS_EVAL_IOU, 0.5f, 4.0f, 0.0f, 0.0f, 1, DETLOSS_MATCH_OPTIONS_INIT, 20, 0, NULL, NULL }
DETLOSS_API detloss_eval_options detloss_eval_options_default(void);

/* Per gt box (one per input row, in input order). */
typedef struct detloss_eval_gt {
  float w, h;           /* after clipping and resizing */
  float best;           /* best IoU (or best r) over the anchors; 0 if none overlaps */
  uint32_t num_fit;     /* anchors with IoU >= iou_thresh (shapes with r > 1/ratio_thresh) */
  uint32_t num_pos;     /* positives under the matcher (WH_RATIO: = num_fit) */
  int16_t level;        /* level of the best anchor (first in anchor order on ties), -1: none */
  uint8_t size;         /* detloss_eval_size */
  uint8_t status;       /* DETLOSS_EVAL_GT_* */
  uint8_t clipped;      /* 1 if the box poked out of its image and was clipped to it */
  uint8_t out_of_range; /* FCOS: 1 when max(w, h) misses every level's regress range (no point
                           inside the box can be in range: it gets no positive, silently in
                           mmdet and FCOS); 0 otherwise */
} detloss_eval_gt;

#define DETLOSS_EVAL_GT_OK 0         /* evaluated */
#define DETLOSS_EVAL_GT_CROWD 1      /* crowd box: left out */
#define DETLOSS_EVAL_GT_DEGENERATE 2 /* zero width or height after clipping: left out */

/* Aggregates over one set of gts (all, or one size class). */
typedef struct detloss_eval_stats {
  size_t num_gt;
  size_t num_recalled;     /* gts whose best anchor fits */
  double recall;           /* num_recalled / num_gt (0 when num_gt = 0) */
  double mean_best;        /* mean best IoU (or best r) */
  double anchors_per_gt;   /* mean num_fit */
  double positives_per_gt; /* mean num_pos */
  size_t pos_hist[4];      /* gts with 0, 1, 2-4, >= 5 positives */
} detloss_eval_stats;

typedef struct detloss_eval_worst {
  size_t image; /* image index */
  size_t box;   /* row of the box within its image */
  float w, h;   /* after clipping and resizing */
  float best;
} detloss_eval_worst;

typedef struct detloss_eval_report {
  size_t num_images, num_images_empty; /* empty: no evaluated gt */
  size_t num_boxes;                    /* input rows */
  size_t num_crowd;                    /* left out */
  size_t num_clipped;                  /* boxes that poked out of their image, clipped to it */
  size_t num_degenerate;               /* zero width or height after clipping: left out */
  size_t num_anchors;                  /* anchors summed over images (WH_RATIO: shapes) */
  detloss_eval_stats all;
  detloss_eval_stats by_size[3];              /* detloss_eval_size */
  size_t num_levels;                          /* grid levels (1 for explicit anchors or shapes) */
  size_t level_best[DETLOSS_EVAL_MAX_LEVELS]; /* gts whose best anchor is on the level */
  size_t level_pos[DETLOSS_EVAL_MAX_LEVELS];  /* positive anchors on the level */
  size_t num_worst;
  detloss_eval_worst worst[DETLOSS_EVAL_MAX_WORST]; /* lowest best first; ties in data-set order */
  size_t num_out_of_range; /* FCOS: evaluated gts with out_of_range set (0 otherwise) */
} detloss_eval_report;

/*
 * detloss_anchor_eval() - evaluate an anchor set on a data set of gt boxes.
 *   per gt g (after clipping to its image and resizing; crowd and zero-area boxes left out):
 *   best_g = max_a IoU(g, a),  num_fit_g = #{a : IoU(g, a) >= iou_thresh},
 *   num_pos_g = #{a : matches[a] == g} under detloss_match(opt->match) on the image's gts,
 *   level_g = level of argmax_a IoU(g, a)   (WH_RATIO: r instead of IoU, over shapes);
 *   recall = mean_g [best_g fits], mean_best = mean_g best_g, anchors_per_gt = mean_g num_fit_g.
 * data: the data set (its pointers are read only); src: the anchors; per_gt
 * [box_start[num_images]] caller-owned or NULL; report caller-owned.
 * IoUs are torchvision box_iou in float32 (the matcher's own pair IoU), so
 * best_g equals torchvision's max of box_iou bit for bit. The positives of
 * torchvision/detectron2 matchers are counted sparsely (only anchors whose IoU
 * with some gt reaches min(high, h_g) can be positive); other matcher settings
 * (mmdet, allowed_border, high = 0) and images where torchvision's h_g = 0
 * quirk applies run detloss_match / detloss_match_grid on all of the image's
 * anchors. Either way the counts equal those of detloss_match.
 * Memory: O(anchors of one image) per thread at most, O(total gt) for the
 * per-gt records; the A x G IoU matrix is never formed. Parallel over blocks
 * of images; results are reduced in image order: bitwise identical for any
 * thread count. Empty data sets (no images) are an error; images without
 * boxes are fine.
 * Errors (outputs untouched): DETLOSS_ERR_NULL; _SHAPE ("box_start" not
 * non-decreasing from 0, "src" naming no or several sources, too many
 * levels: "grid.levels"; per_gt or report overlapping an input or each
 * other: "per_gt", "report"); _RANGE ("image_hw[i]" not finite > 0,
 * "iou_thresh", "ratio_thresh", "resize_min_size", "resize_max_size",
 * "num_worst", "metric", "shapes[i]", matcher and grid errors, "src.shapes"
 * with the IOU metric; explicit anchors beyond 1e18: "anchors[i]"; an image
 * whose resized size is not finite or beyond 1e18: "data.image_hw[i]"; a
 * grid level whose ceil(H / stride) x ceil(W / stride) feature map on some
 * image has a side or anchor count above 1e15, or anchors beyond 1e18:
 * "grid.levels[l].stride" (a stride of 1e-30); an image needing more than
 * 1e15 anchors in all: "data.image_hw[i]"); _NONFINITE ("boxes[i]",
 * "anchors[i]"); _NOMEM. Every image's geometry is checked before any work,
 * in double, before any conversion to an integer. report and per_gt are
 * written only on success (untouched on every error, _NOMEM included).
 * Thread-safe.
 */
DETLOSS_API detloss_status detloss_anchor_eval(const detloss_eval_dataset *data,
                                               const detloss_eval_anchors *src,
                                               detloss_eval_gt *per_gt, detloss_eval_report *report,
                                               const detloss_eval_options *opt, detloss_error *err);

/* Which assigner counts the positives of detloss_anchor_eval_ex(). */
typedef enum detloss_eval_method {
  DETLOSS_EVAL_METHOD_MAX_IOU = 0, /* the Max-IoU matcher of detloss_eval_options.match */
  DETLOSS_EVAL_METHOD_ATSS = 1,    /* detloss_atss_assign on each image's anchors */
  DETLOSS_EVAL_METHOD_FCOS = 2,    /* detloss_fcos_targets on each image's points */
  /* Named so that configs can describe them; detloss_anchor_eval_ex refuses
   * them (DETLOSS_ERR_UNSUPPORTED at "assigner.method"): they assign from
   * predictions, which a data set of gt boxes does not have. */
  DETLOSS_EVAL_METHOD_SIMOTA = 3,
  DETLOSS_EVAL_METHOD_TASK_ALIGNED = 4,
  DETLOSS_EVAL_METHOD_HUNGARIAN = 5
} detloss_eval_method;

#define DETLOSS_EVAL_RANGE_FLOATS 32 /* 2 x DETLOSS_EVAL_MAX_LEVELS */
typedef struct detloss_eval_assigner {
  detloss_eval_method method; /* default MAX_IOU */
  detloss_atss_options atss;  /* ATSS: its options (num_threads is ignored: one per image) */
  /* FCOS: its options (num_threads is ignored: one per image), the ranges
   * [lo, hi] per point level in regress_ranges (num_ranges rows; 0 = FCOS's
   * five, then num_point_levels must be 5). fcos.regress_ranges stays NULL
   * here: a copy of the struct would carry a pointer into the original; the
   * eval points it at regress_ranges[0] itself. */
  detloss_fcos_options fcos;
  float regress_ranges[DETLOSS_EVAL_RANGE_FLOATS]; /* [num_ranges][2] (lo, hi) */
  size_t num_ranges;
  /* FCOS: the point levels (a config's "points"). On an image of H x W px
   * (after resizing) level l has ceil(H / s_l) x ceil(W / s_l) points at
   * ((x + point_offset) s_l, (y + point_offset) s_l), x fastest, levels in
   * order (mmdet MlvlPointGenerator; FCOS's stride // 2 is offset 0.5). */
  float point_strides[DETLOSS_EVAL_MAX_LEVELS]; /* [num_point_levels], finite, > 0 */
  size_t num_point_levels;                      /* 1 .. DETLOSS_EVAL_MAX_LEVELS */
  float point_offset;                           /* [0, 1), default 0.5 */
} detloss_eval_assigner;

#define DETLOSS_EVAL_ASSIGNER_INIT                                                                 \
  {                                                                                                \
    DETLOSS_EVAL_METHOD_MAX_IOU, DETLOSS_ATSS_OPTIONS_INIT, DETLOSS_FCOS_OPTIONS_INIT, {0}, 0,     \
        {0}, 0, 0.5f                                                                               \
  }
/* The Max-IoU matcher (detloss_anchor_eval's behaviour), ATSS options at mmdet's defaults. */
DETLOSS_API detloss_eval_assigner detloss_eval_assigner_default(void);

/*
 * detloss_anchor_eval_ex() - detloss_anchor_eval() with the positives counted
 * by another assigner (NULL or method MAX_IOU: exactly detloss_anchor_eval).
 *   ATSS: num_pos_g = #{a : assigned_gt[a] == g} under detloss_atss_assign on
 *   the image's anchors (all levels of a grid, level-major as generated; an
 *   explicit anchor list is one level) against the image's evaluated gts
 *   (after clipping and resizing), no ignore boxes. best_g, num_fit_g and
 *   recall are unchanged (IoU geometry); level_pos counts ATSS's positives.
 * ATSS needs the IOU metric with count_positives set (else "assigner.method",
 * DETLOSS_ERR_RANGE); its option errors name "assigner.topk", ... Memory: the
 * image's anchors ([A][4] floats and [A] assignments) per thread.
 *   FCOS: the points of the assigner's point levels replace the anchors (src
 *   is not read and may name no source). Per gt g of an image, against the
 *   image's evaluated gts, under detloss_fcos_targets (the assigner's fcos
 *   options and regress_ranges):
 *     num_pos_g = #{p : assigned_gt[p] == g},
 *     best_g    = max centerness target over g's positive points (0: none),
 *     level_g   = level of that point (first in point order on ties; -1: none),
 *     num_fit_g = points strictly inside g on any level (before the range and
 *                 centre-sampling rules),
 *     out_of_range_g = 1 when [m/2, m) misses [lo_l, hi_l] on every level,
 *                 m = max(w, h) (inside points have max(l,t,r,b) in [m/2, m)).
 *   g "fits" (recall, num_recalled) when num_pos_g >= 1; level_best and
 *   level_pos count best levels and positives per point level; num_anchors
 *   counts points; report.num_out_of_range the gts with out_of_range set.
 *   FCOS needs the IOU metric (WH_RATIO: "assigner.method", _RANGE); errors
 *   name "assigner.num_point_levels", "assigner.point_strides[l]",
 *   "assigner.point_offset", "assigner.regress_ranges" (count) and
 *   "assigner.regress_ranges[l]" (lo > hi, not finite), "assigner.semantics",
 *   "assigner.center_sample_radius"; a level whose ceil(H / s) x ceil(W / s)
 *   points on some image exceed 1e15, or reach beyond 1e18:
 *   "assigner.point_strides[l]". Memory: the image's points ([A][2] floats,
 *   [A] assignments and centerness, and detloss_fcos_targets' O(A)) per thread.
 * Otherwise as detloss_anchor_eval. Thread-safe.
 */
DETLOSS_API detloss_status detloss_anchor_eval_ex(
    const detloss_eval_dataset *data, const detloss_eval_anchors *src,
    const detloss_eval_assigner *assigner, detloss_eval_gt *per_gt, detloss_eval_report *report,
    const detloss_eval_options *opt, detloss_error *err);

/* Name of a size class ("small", "medium", "large"), or NULL. */
DETLOSS_API const char *detloss_eval_size_name(detloss_eval_size size);

/*
 * The registry of enumerated names and option structs (src/registry.c):
 * one row per name of an enum (the spelling the JSON layer, the CLI and the
 * Python binding accept), and one descriptor row per settable field of an
 * options struct. The JSON readers, their error messages, --help-config and
 * the Python binding (through ctypes) all read these tables. Static,
 * read-only; thread-safe.
 */
typedef enum detloss_name_set {
  DETLOSS_NAMES_MATCH_SEMANTICS = 0,   /* detloss_match_semantics ("semantics") */
  DETLOSS_NAMES_RPN_CONVENTION = 1,    /* detloss_rpn_convention ("convention") */
  DETLOSS_NAMES_HEAD_BOX_LOSS = 2,     /* detloss_head_box_loss ("box loss") */
  DETLOSS_NAMES_RETINA_NORMALIZER = 3, /* detloss_retina_normalizer ("normalizer") */
  DETLOSS_NAMES_IOU_KIND = 4,          /* detloss_iou_kind ("kind") */
  DETLOSS_NAMES_ANCHOR_CONVENTION = 5, /* detloss_anchor_convention ("convention") */
  DETLOSS_NAMES_EVAL_METRIC = 6,       /* detloss_eval_metric ("metric") */
  DETLOSS_NAMES_ATSS_SEMANTICS = 7,    /* detloss_atss_semantics ("semantics") */
  DETLOSS_NAMES_FCOS_SEMANTICS = 8     /* detloss_fcos_semantics ("semantics") */
} detloss_name_set;
#define DETLOSS_NAME_SET_COUNT 9

typedef struct detloss_name_info {
  const char *name;      /* the contract name ("py_faster_rcnn") */
  int value;             /* its enum value; row i of a set has value i */
  const char *alias;     /* one more accepted spelling ("py-faster-rcnn"), or NULL */
  const char *doc;       /* one line */
  const char *reference; /* the implementation it follows */
} detloss_name_info;

/* Number of names of a set (0 for an unknown set). */
DETLOSS_API size_t detloss_names_count(detloss_name_set set);
/* Row i of a set (i = the enum value), or NULL. */
DETLOSS_API const detloss_name_info *detloss_names_get(detloss_name_set set, size_t i);
/* The row whose name or alias is name, or NULL (name NULL or unknown). */
DETLOSS_API const detloss_name_info *detloss_names_find(detloss_name_set set, const char *name);
/* What the set names, for messages ("semantics", "box loss"), or NULL. */
DETLOSS_API const char *detloss_names_label(detloss_name_set set);

/* Type of an options field. */
typedef enum detloss_option_type {
  DETLOSS_OPTION_F32 = 0,  /* float */
  DETLOSS_OPTION_F64 = 1,  /* double */
  DETLOSS_OPTION_BOOL = 2, /* int, 0 or 1 */
  DETLOSS_OPTION_I64 = 3,  /* int64_t */
  DETLOSS_OPTION_U64 = 4,  /* uint64_t */
  DETLOSS_OPTION_SIZE = 5, /* size_t */
  DETLOSS_OPTION_ENUM = 6, /* an enum (int-sized), by name from a detloss_name_set */
  DETLOSS_OPTION_F32X4 = 7 /* float[4] */
} detloss_option_type;

/* One settable field of an options struct. */
typedef struct detloss_option_field {
  const char *key;   /* JSON key in a run config section (detloss eval --help-config) */
  const char *field; /* the C field name */
  detloss_option_type type;
  size_t offset;        /* offsetof(struct, field) */
  double lo, hi;        /* valid range (+-HUGE_VAL: unbounded; ENUM: unused) */
  int lo_open, hi_open; /* 1: that end is excluded */
  int names;            /* ENUM: the detloss_name_set; else -1 */
  double default_value; /* the value in the struct's _default() (F32X4: each element) */
  const char *doc;      /* one line */
} detloss_option_field;

typedef enum detloss_options_kind {
  DETLOSS_OPTIONS_MATCH = 0,  /* detloss_match_options */
  DETLOSS_OPTIONS_SAMPLE = 1, /* detloss_sample_options */
  DETLOSS_OPTIONS_CODER = 2,  /* detloss_coder_options */
  DETLOSS_OPTIONS_RPN = 3,    /* detloss_rpn_options (its own fields; match and sample above) */
  DETLOSS_OPTIONS_RETINA = 4, /* detloss_retina_options (its own fields; match above) */
  DETLOSS_OPTIONS_EVAL = 5,   /* detloss_eval_options: metric, thresholds, counts */
  DETLOSS_OPTIONS_RESIZE = 6, /* detloss_eval_options: its resize fields */
  DETLOSS_OPTIONS_ATSS = 7,   /* detloss_atss_options (config "assigner" with method "atss") */
  DETLOSS_OPTIONS_FCOS = 8    /* detloss_fcos_options (config "assigner" with method "fcos") */
} detloss_options_kind;
#define DETLOSS_OPTIONS_KIND_COUNT 9

typedef struct detloss_options_info {
  const char *name;                   /* the struct's name ("detloss_match_options") */
  size_t size;                        /* sizeof the struct */
  const detloss_option_field *fields; /* num_fields rows, in the order they are read */
  size_t num_fields;
} detloss_options_info;

/* The descriptor table of an options struct, or NULL for an unknown kind. */
DETLOSS_API const detloss_options_info *detloss_options_info_get(detloss_options_kind kind);

/*
 * Anchor fitting: new anchor shapes or sizes fitted to a data set's gt boxes
 * (docs/math/fit.md). Three methods:
 *   KMEANS  darknet calc_anchors: k-means on (w, h) with the distance
 *           d = 1 - IoU of two boxes sharing a corner, here with k-means++
 *           seeding and restarts (darknet draws k distinct boxes, time-seeded);
 *           the restart with the highest mean best IoU wins.
 *   EVOLVE  YOLOv5 AutoAnchor (utils/autoanchor.py kmean_anchors): k-means on
 *           whitened (w, h) (scipy kmeans semantics), then a mutation-only
 *           evolution that keeps a mutant when it raises the fitness
 *           f = mean_g best_g [best_g > 1/thr], best_g = max_k min(w/aw, aw/w, h/ah, ah/h).
 *   LEVELS  FPN / RetinaNet grid configs: strides kept, per-level base sizes,
 *           shared scales and shared aspect ratios optimised (Nelder-Mead
 *           with restarts, derivative-free) for the config's own matcher:
 *           first the share of gts with >= 1 positive, then mean best IoU.
 * Every random draw is splitmix64 of a counter keyed by the seed (as in
 * detloss_sample_balanced), so the result is a pure function of the inputs
 * and the seed: bitwise identical for any thread count.
 */
typedef enum detloss_fit_method {
  DETLOSS_FIT_KMEANS = 0,
  DETLOSS_FIT_EVOLVE = 1,
  DETLOSS_FIT_LEVELS = 2
} detloss_fit_method;

typedef struct detloss_fit_options {
  uint64_t seed;       /* 0 */
  size_t restarts;     /* 0 = the method's default. KMEANS: k-means++ restarts (10);
                          EVOLVE: scipy kmeans "iter", independent whitened k-means runs
                          (30, YOLOv5); LEVELS: unused */
  size_t max_iter;     /* KMEANS / EVOLVE k-means: Lloyd iterations per run, 1000 (darknet) */
  size_t generations;  /* EVOLVE: 1000 (YOLOv5 gen) */
  float ratio_thresh;  /* thr of the shape ratio: 4.0 (YOLOv5 anchor_t), >= 1 */
  float mutation_prob; /* EVOLVE: 0.9 (YOLOv5 mp) */
  float sigma;         /* EVOLVE: 0.1 (YOLOv5 s) */
  float min_side;      /* EVOLVE: labels with both sides < min_side are left out of the fit,
                          shapes never go below it: 2.0 (YOLOv5) */
  size_t max_evals;    /* LEVELS: evaluations of the objective, 150 */
  int num_threads;     /* 0 = OpenMP default */
  /* Optional progress report, called on the calling thread: done of total steps. */
  void (*progress)(void *user, size_t done, size_t total);
  void *progress_user;
} detloss_fit_options;

#define DETLOSS_FIT_OPTIONS_INIT                                                                   \
  { 0, 0, 1000, 1000, 4.0f, 0.9f, 0.1f, 2.0f, 150, 0, NULL, NULL }
DETLOSS_API detloss_fit_options detloss_fit_options_default(void);

/* Shape metrics of an anchor shape set on labels (w, h), in double:
 *   mean_iou = mean_g max_k IoU of g and shape k sharing a corner (darknet "avg IoU" / 100);
 *   fitness  = mean_g best_g [best_g > 1/thr]  (YOLOv5 kmean_anchors fitness);
 *   bpr      = mean_g [best_g > 1/thr]         (YOLOv5 best possible recall);
 *   aat      = mean_g #{k : r_gk > 1/thr}      (YOLOv5 anchors above threshold),
 * r_gk = min(w/aw, aw/w, h/ah, ah/h), best_g = max_k r_gk. Over all labels given. */
typedef struct detloss_fit_metrics {
  double mean_iou, fitness, bpr, aat;
} detloss_fit_metrics;

typedef struct detloss_fit_report {
  size_t num_labels;          /* labels given */
  size_t num_used;            /* labels the fit used (EVOLVE: either side >= min_side) */
  size_t iterations;          /* KMEANS: Lloyd steps of the winning restart; EVOLVE: accepted
                                 mutations; LEVELS: objective evaluations */
  int has_before;             /* 1 when old shapes were given */
  detloss_fit_metrics before; /* of the old shapes (zero when none) */
  detloss_fit_metrics after;  /* of the fitted shapes */
} detloss_fit_report;

/*
 * detloss_fit_shapes() - k anchor shapes (w, h) fitted to labels (KMEANS or EVOLVE).
 * wh [n][2]: label widths and heights (after the caller's resize), finite, > 0.
 * old [num_old][2]: the current shapes, for the "before" metrics (NULL, 0 = none).
 * shapes [k][2]: caller-owned output, sorted by area w*h ascending (ties: w).
 * report: caller-owned or NULL.
 * Errors (outputs untouched): DETLOSS_ERR_NULL; _RANGE ("k": k < 1 or k > n, or
 * EVOLVE with k > labels kept by min_side; "method"; "wh[i]" <= 0; "old[i]" <= 0;
 * options: "max_iter" 0, "ratio_thresh" < 1, "mutation_prob" outside
 * [0, 1], "sigma" < 0, "min_side" < 0); _NONFINITE ("wh[i]"); _SHAPE ("wh": n = 0,
 * "a data set without boxes"; outputs overlapping inputs); _NOMEM.
 * Memory O(n + k); time O(n k (restarts x iterations | generations)).
 * Thread-safe; bitwise identical for any num_threads.
 */
DETLOSS_API detloss_status detloss_fit_shapes(detloss_fit_method method, const float *wh, size_t n,
                                              size_t k, const float *old, size_t num_old,
                                              float *shapes, detloss_fit_report *report,
                                              const detloss_fit_options *opt, detloss_error *err);

/* Computes detloss_fit_metrics of shapes [k][2] on wh [n][2] (thr = ratio_thresh).
 * Errors as detloss_fit_shapes. Thread-safe. */
DETLOSS_API detloss_status detloss_fit_metrics_of(const float *wh, size_t n, const float *shapes,
                                                  size_t k, float ratio_thresh, int num_threads,
                                                  detloss_fit_metrics *out, detloss_error *err);

/* The matcher outcome LEVELS maximises. */
typedef struct detloss_fit_levels_outcome {
  size_t num_gt;         /* evaluated gts */
  size_t num_with_pos;   /* gts with >= 1 positive */
  double share_with_pos; /* num_with_pos / num_gt */
  double mean_best;      /* mean best IoU */
  double recall;         /* share of gts whose best IoU >= eval iou_thresh */
} detloss_fit_levels_outcome;

typedef struct detloss_fit_levels_report {
  detloss_fit_levels_outcome before, after;
  size_t evaluations;
} detloss_fit_levels_report;

/*
 * detloss_fit_levels() - LEVELS: per-level sizes and shared ratios of a grid config.
 * grid: every level has num_sizes = S >= 1 sizes and the same num_ratios = R >= 1
 * ratios (no shapes or base); strides, convention and offset are kept.
 * Parameters (log space): base size b_l per level, shared scales c_j (c_0 = 1,
 * j < S) and shared ratios r_i; level l gets sizes b_l c_j and ratios r_i.
 * Start: b_l = level l's first size, c_j = geometric mean of sizes[l][j]/sizes[l][0],
 * r_i = level 0's ratios. Objective (maximised, lexicographic):
 *   F = num_with_pos / N + mean_best / (N + 1),
 * from detloss_anchor_eval(data, grid', eval with count_positives = 1): one more
 * gt with a positive always outweighs any change of mean best IoU.
 * sizes [L * S] (level-major) and ratios [R]: caller-owned outputs.
 * Errors: as detloss_anchor_eval for data, grid and eval (detloss_eval_check_limits
 * is the caller's), plus _SHAPE ("grid.levels[l]": shapes/base levels, a different
 * number of sizes or ratios, "eval.metric" not IOU), _RANGE ("max_evals" 0).
 * Thread-safe; bitwise identical for any num_threads.
 */
DETLOSS_API detloss_status detloss_fit_levels(const detloss_eval_dataset *data,
                                              const detloss_anchor_config *grid,
                                              const detloss_eval_options *eval, float *sizes,
                                              float *ratios, detloss_fit_levels_report *report,
                                              const detloss_fit_options *opt, detloss_error *err);

/*
 * FCOS head loss (docs/math/fcos_loss.md): focal classification over every
 * point, an IoU-family box loss over the positives and BCE on their
 * centerness, over a batch of images that share one point layout. The
 * targets come from detloss_fcos_targets_batch() (the "fcos" assigner).
 */

/* Whose loss (targets, box coding, normalization). */
typedef enum detloss_fcos_loss_variant {
  /* mmdetection 3.x FCOSHead.loss_by_feat (contract op fcos_loss):
   *   N = max(avg_num_pos or npos, 1), D = max(avg_centerness_sum or sum of the
   *   positives' centerness targets, 1e-6), eps = FLT_EPSILON;
   *   loss_cls = sum focal / (N + eps); loss_bbox = sum w_p L_box / (D + eps),
   *   w_p = centerness target; loss_centerness = sum BCE / (N + eps).
   *   bbox_pred in stride units with norm_on_bbox, else pixels; L_box on the
   *   point-relative boxes (-l, -t, r, b): giou 1 - GIoU with the union and
   *   the enclosing area clamped >= 1e-6, iou -ln(max(IoU, 1e-6)). */
  DETLOSS_FCOS_LOSS_MMDET = 0,
  /* torchvision 0.14 FCOSHead.compute_loss after FCOS.compute_loss's matcher:
   *   targets with DETLOSS_FCOS_TORCHVISION semantics (strict ranges, float32
   *   area key); bbox_pred in units of the level's anchor size (the stride:
   *   BoxLinearCoder(normalize_by_size)); L_box = torchvision
   *   generalized_box_iou_loss (eps 1e-7) on the decoded pixel boxes, NOT
   *   weighted; N = max(1, avg_num_pos or npos) without eps; loss_cls = sum
   *   focal / N, loss_bbox = sum L_box / N, loss_centerness = sum BCE / N.
   *   norm_on_bbox is ignored (always stride units); box_loss must be GIOU;
   *   avg_centerness_sum must be unset. */
  DETLOSS_FCOS_LOSS_TORCHVISION = 1
} detloss_fcos_loss_variant;

typedef enum detloss_fcos_box_loss {
  DETLOSS_FCOS_BOX_GIOU = 0, /* 1 - GIoU (mmdet GIoULoss) */
  DETLOSS_FCOS_BOX_IOU = 1   /* -ln IoU (mmdet IoULoss, mode "log") */
} detloss_fcos_box_loss;

typedef struct detloss_fcos_loss_options {
  detloss_fcos_loss_variant variant; /* MMDET */
  const float *regress_ranges;       /* [L][2] (lo, hi); NULL = MMDET: FCOS's five (L = 5);
                                        TORCHVISION: (4 s_l, 8 s_l), lo_0 = 0, hi_last = FLT_MAX
                                        (torchvision's 4x / 8x anchor size, first 0, last inf) */
  int center_sampling;               /* 1 (the center-normbbox-centeronreg-giou config) */
  float center_sample_radius;        /* 1.5 (>= 0) */
  int norm_on_bbox;                  /* 1: bbox_pred and targets in stride units (MMDET) */
  float alpha;                       /* focal alpha 0.25 (< 0 disables alpha_t) */
  float gamma;                       /* focal gamma 2 (>= 0) */
  detloss_fcos_box_loss box_loss;    /* GIOU */
  double avg_num_pos;        /* the caller's positives count (mmdet reduce_mean over the ranks);
                                < 0 (default -1) = this batch's count. Finite. */
  double avg_centerness_sum; /* the caller's centerness-target sum (MMDET); < 0 (default -1) =
                                this batch's sum. Finite. */
  int num_threads;           /* 0 = OpenMP default; results never depend on it */
} detloss_fcos_loss_options;

#define DETLOSS_FCOS_LOSS_OPTIONS_INIT                                                             \
  { DETLOSS_FCOS_LOSS_MMDET, NULL, 1, 1.5f, 1, 0.25f, 2.0f, DETLOSS_FCOS_BOX_GIOU, -1.0, -1.0, 0 }
/* The contract's defaults (mmdet fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou). */
DETLOSS_API detloss_fcos_loss_options detloss_fcos_loss_options_default(void);

/* One image: inputs and (optional) caller-owned outputs, P points, C classes. */
typedef struct detloss_fcos_image {
  size_t num_gt;            /* G (0 allowed: all background) */
  const float *gt;          /* [G][4] (x1, y1, x2, y2) pixels */
  const int64_t *labels;    /* [G] in [0, C) */
  const float *cls_logits;  /* [P][C] logits */
  const float *bbox_pred;   /* [P][4] distances (l, t, r, b), after the head's activation */
  const float *centerness;  /* [P] logits */
  float *grad_cls_logits;   /* optional [P][C]: d(total) / d cls_logits */
  float *grad_bbox_pred;    /* optional [P][4] (0 at non-positives) */
  float *grad_centerness;   /* optional [P] (0 at non-positives) */
  int64_t *assigned_labels; /* optional [P]: class of each point, -1 background */
} detloss_fcos_image;

typedef struct detloss_fcos_result {
  float loss_cls, loss_bbox, loss_centerness;
  size_t num_pos;         /* positives in the batch */
  double num_pos_norm;    /* N as used (after the clamp) */
  double centerness_norm; /* D as used (MMDET), N for TORCHVISION */
  double centerness_sum;  /* this batch's sum of the positives' centerness targets */
  int nonfinite;          /* 1 when a loss is NaN/Inf (non-finite predictions) */
} detloss_fcos_result;

/*
 * detloss_grid_points() - the points of a feature pyramid, level-major.
 *   level l (stride s_l, h_l x w_l): ((x + offset) s_l, (y + offset) s_l),
 *   y in [0, h_l) outer, x in [0, w_l) inner.
 * feature_maps [L][2] (h, w); strides [L] (finite > 0); points [sum h w][2],
 * caller-owned. offset 0.5: mmdet MlvlPointGenerator (FCOS); 0: torchvision's
 * anchor centres (AnchorGenerator with one size-s anchor per cell). Errors:
 * _NULL, _RANGE ("strides[l]", "offset" not finite), _SHAPE (too many points).
 * Thread-safe.
 */
DETLOSS_API detloss_status detloss_grid_points(const size_t *feature_maps, const float *strides,
                                               size_t num_levels, float offset, float *points,
                                               detloss_error *err);

/*
 * detloss_fcos_loss() - FCOS head loss over a batch (variant semantics above).
 * points [P][2] level-major with level_counts [L] (sum P) and strides [L], shared
 * by every image; images [B] (B >= 1), num_classes C >= 1. Targets per image by
 * detloss_fcos_targets_batch() (centre sampling and ranges of opt; ties: lowest
 * gt index). Gradients are those of loss_cls + loss_bbox + loss_centerness with
 * the targets (assignment, centerness targets, N, D) held constant.
 * Predictions are used as given: NaN/Inf give non-finite losses (flagged).
 * Memory O(B P) (targets, no P x G array); images and blocks of points run in
 * parallel; bitwise identical for any num_threads.
 * Errors (every output untouched): _NULL (result, images, an image's arrays);
 * _SHAPE (num_images 0, num_classes 0, level_counts not summing to P, outputs
 * overlapping inputs or each other, "images[i].gt" etc.); _RANGE
 * ("images[i].labels[g]" outside [0, C), options: "variant", "alpha", "gamma",
 * "box_loss", "avg_num_pos", "avg_centerness_sum", "center_sample_radius",
 * "regress_ranges[l]", "strides[l]"; with TORCHVISION, box_loss IOU or an
 * avg_centerness_sum: torchvision's FCOS has neither, a bad option like any other);
 * _NONFINITE ("images[i].gt[g]", "points[k]"); _NOMEM.
 * Thread-safe. Matches mmdet FCOSHead.loss_by_feat / torchvision FCOSHead. Ref:
 * Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019.
 */
DETLOSS_API detloss_status detloss_fcos_loss(
    const float *points, size_t num_points, const size_t *level_counts, const float *strides,
    size_t num_levels, size_t num_classes, const detloss_fcos_image *images, size_t num_images,
    detloss_fcos_result *result, const detloss_fcos_loss_options *opt, detloss_error *err);

/*
 * YOLOv8 detection loss (ultralytics v8DetectionLoss): task-aligned assignment,
 * BCE classification over soft target scores, CIoU and Distribution Focal Loss
 * on the integral box regression, weighted by the target scores, with the
 * ultralytics gains and batch-size scaling. docs/math/yolov8_loss.md.
 */
#define DETLOSS_YOLOV8_MAX_LEVELS 8

typedef struct detloss_yolov8_options {
  float strides[DETLOSS_YOLOV8_MAX_LEVELS]; /* level strides (8, 16, 32); finite > 0 */
  size_t num_levels;                        /* 3; in [1, DETLOSS_YOLOV8_MAX_LEVELS] */
  size_t reg_max;          /* bins per box side: 16 (ultralytics Detect.reg_max); >= 2 */
  int64_t topk;            /* task-aligned assigner: 10 (v8DetectionLoss tal_topk); >= 1, <= A */
  float alpha;             /* 0.5; finite >= 0 */
  float beta;              /* 6.0; finite > 0 */
  float gain_box;          /* hyp.box 7.5; finite >= 0 */
  float gain_cls;          /* hyp.cls 0.5; finite >= 0 */
  float gain_dfl;          /* hyp.dfl 1.5; finite >= 0 */
  double target_score_sum; /* 0 (default): S = max(sum of this batch's target scores, 1);
                              > 0: S = max(target_score_sum, 1), the caller's value (e.g. the
                              sum all-reduced over the ranks of a distributed step) */
  int num_threads;         /* 0 = OpenMP default; results never depend on it */
} detloss_yolov8_options;

#define DETLOSS_YOLOV8_OPTIONS_INIT                                                                \
  { {8.0f, 16.0f, 32.0f}, 3, 16, 10, 0.5f, 6.0f, 7.5f, 0.5f, 1.5f, 0.0, 0 }
DETLOSS_API detloss_yolov8_options detloss_yolov8_options_default(void);

/* One image of detloss_yolov8_loss(). A = number of anchor points of the
 * layout (sum over levels of (H/s)(W/s)); C = num_classes; R = reg_max. */
typedef struct detloss_yolov8_image {
  const float *gt;          /* [num_gt][4] (x1, y1, x2, y2) pixels, finite */
  size_t num_gt;            /* 0 is normal (all background) */
  const int64_t *labels;    /* [num_gt] classes in [0, C) */
  const float *pred_distri; /* [A][4 R] box-side logits: side l (R values), t, r, b */
  const float *pred_scores; /* [A][C] class logits */
  float *grad_pred_distri;  /* out [A][4 R] or NULL: d loss / d pred_distri */
  float *grad_pred_scores;  /* out [A][C] or NULL: d loss / d pred_scores */
  int64_t *assigned_gt;     /* out [A] or NULL: gt index, -1 background */
} detloss_yolov8_image;

typedef struct detloss_yolov8_result {
  float loss;              /* (loss_box + loss_cls + loss_dfl) * num_images: what ultralytics
                              back-propagates (loss.sum() * batch_size, 8.1) */
  float loss_box;          /* gain_box * sum_a w_a (1 - CIoU_a) / S */
  float loss_cls;          /* gain_cls * sum BCE-with-logits(pred_scores, target scores) / S */
  float loss_dfl;          /* gain_dfl * sum_a w_a mean_side DFL / S */
  double target_score_sum; /* this batch's sum of target scores (before any clamp): the
                              value a distributed caller all-reduces */
  double normalizer;       /* S, the divisor used */
  size_t num_fg;           /* foreground anchors of the batch */
  int nonfinite;           /* 1 when loss overflowed float (finite predictions are required:
                              non-finite ones are an error) */
} detloss_yolov8_result;

/*
 * detloss_yolov8_loss() - ultralytics v8DetectionLoss of a batch, with gradients.
 *   anchors: level l (stride s) has an (H/s) x (W/s) grid of points
 *     ((x + 0.5) s, (y + 0.5) s), level-major, y outer, x inner (make_anchors);
 *   decode: d_side = sum_k k softmax(pred_distri side)_k, box = (ax - d_l, ay - d_t,
 *     ax + d_r, ay + d_b) in grid units, times s in pixels;
 *   assign: the task-aligned assigner (ultralytics semantics) on sigmoid(pred_scores) and
 *     the decoded pixel boxes; a gt whose four coordinates sum to <= 0 is padding (no
 *     candidates), as ultralytics' mask_gt;
 *   S = max(sum of target scores, 1) (or the caller's options->target_score_sum);
 *   loss_cls = gain_cls sum BCEL(pred_scores, target scores) / S;
 *   loss_box = gain_box sum_fg w_a (1 - CIoU(box_a, gt/s)) / S, w_a = the anchor's target
 *     score, CIoU of ultralytics bbox_iou (eps 1e-7, alpha a constant for the gradient);
 *   loss_dfl = gain_dfl sum_fg w_a mean_side DFL(side logits, clamp(target, 0, R - 1.01)) / S;
 *   loss = (loss_box + loss_cls + loss_dfl) * num_images.
 * image_h, image_w: the padded input size H, W, each a multiple of every stride.
 * num_classes C >= 1; images [num_images] (>= 1); result required. The gradients are
 * those of `loss` with the assignment, target scores and the CIoU alpha held constant
 * (the reference computes them without gradient).
 * Ties: top-k ties at the k-th place go to the lowest anchor index, argmax ties to the
 * lowest gt index. Memory O(A) per image in flight (no A x G array); bitwise
 * identical for any num_threads.
 * Returns DETLOSS_OK; _NULL; _SHAPE ("num_images" = 0, "num_classes" = 0, "image_h" /
 * "image_w" not a multiple of a stride, "topk" > A); _NONFINITE
 * ("images[i].pred_scores[k]", "images[i].pred_distri[k]", "images[i].gt[g]"); _RANGE
 * (options: "strides", "num_levels", "reg_max", "topk", "alpha", "beta", "gain_*",
 * "target_score_sum"; "images[i].labels[g]" outside [0, C)); _NOMEM. Outputs (result,
 * gradients, assigned_gt) untouched on error. Thread-safe.
 * Matches ultralytics v8DetectionLoss (8.1; utils/loss.py, utils/tal.py), the float64
 * torch reference in tests/fixtures/gen_yolov8.py. Ref: Feng et al., TOOD,
 * arXiv:2108.07755; Li et al., Generalized Focal Loss, arXiv:2006.04388; Zheng et al.,
 * CIoU, arXiv:1911.08287.
 */
DETLOSS_API detloss_status detloss_yolov8_loss(size_t image_h, size_t image_w, size_t num_classes,
                                               const detloss_yolov8_image *images,
                                               size_t num_images, detloss_yolov8_result *result,
                                               const detloss_yolov8_options *opt,
                                               detloss_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DETLOSS_H */
