/*
 * registry.c - the one table of each enum's names and the descriptor table of
 * each options struct (detloss.h, "The registry of enumerated names and option
 * structs").
 *
 * The JSON layer (src/json/names.c: name lookups, did-you-mean lists and error
 * messages; src/json/config_schema.c: run config sections and --help-config;
 * the compute ops' matcher reader) and the Python binding (python/detloss/
 * ops.py, through ctypes) read these rows; none restates a name. Adding a
 * name = its enum value and one row here. The default of every field is its
 * value in the struct's _default() function (tests/test_registry.c checks
 * the two agree).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

static const detloss_name_info SEMANTICS[] = {
    {"torchvision", DETLOSS_MATCH_TORCHVISION, NULL,
     "argmax over gt; low-quality anchors keep their own argmax",
     "torchvision models/detection/_utils.py Matcher"},
    {"detectron2", DETLOSS_MATCH_DETECTRON2, NULL,
     "as torchvision; border anchors are matched, then ignored",
     "detectron2 modeling/matcher.py Matcher, rpn.py BOUNDARY_THRESH"},
    {"mmdet", DETLOSS_MATCH_MMDET, NULL,
     "low-quality anchors get the gt itself, later gts overwrite (min_pos_iou)",
     "mmdetection MaxIoUAssigner"},
};
static const detloss_name_info RPN_CONVENTIONS[] = {
    {"torchvision", DETLOSS_RPN_TORCHVISION, NULL,
     "divided by the sampled anchors of the batch; smooth-L1 beta 1/9",
     "torchvision RegionProposalNetwork.compute_loss"},
    {"detectron2", DETLOSS_RPN_DETECTRON2, NULL,
     "divided by batch_size_per_image x images; L1 box loss",
     "detectron2 modeling/proposal_generator/rpn.py RPN.losses"},
    /* The alias is the spelling of the published configs/py_faster_rcnn_vgg16_rpn.json
     * before the names were unified. */
    {"py_faster_rcnn", DETLOSS_RPN_PY_FASTER_RCNN, "py-faster-rcnn",
     "torchvision divisor, beta 1/9, anchors outside the image ignored (allowed_border 0)",
     "py-faster-rcnn anchor_target_layer.py, SmoothL1Loss sigma 3"},
};
static const detloss_name_info BOX_LOSSES[] = {
    {"l1", DETLOSS_HEAD_BOX_L1, NULL, "|d - t| summed over the 4 encoded coordinates",
     "torchvision _utils._box_loss l1"},
    {"smooth_l1", DETLOSS_HEAD_BOX_SMOOTH_L1, NULL, "smooth-L1 with smooth_l1_beta (0 = L1)",
     "torchvision _utils._box_loss smooth_l1"},
    {"giou", DETLOSS_HEAD_BOX_GIOU, NULL, "GIoU loss on decoded boxes",
     "torchvision generalized_box_iou_loss"},
    {"diou", DETLOSS_HEAD_BOX_DIOU, NULL, "DIoU loss on decoded boxes",
     "torchvision distance_box_iou_loss"},
    {"ciou", DETLOSS_HEAD_BOX_CIOU, NULL, "CIoU loss on decoded boxes",
     "torchvision complete_box_iou_loss"},
};
static const detloss_name_info NORMALIZERS[] = {
    {"torchvision", DETLOSS_RETINA_NORM_TORCHVISION, NULL,
     "each image divided by max(1, its positives), then the mean over images",
     "torchvision RetinaNetHead.compute_loss"},
    {"detectron2_ema", DETLOSS_RETINA_NORM_DETECTRON2_EMA, NULL,
     "batch sums divided by an EMA of the positives (caller-owned state)",
     "detectron2 RetinaNet.losses loss_normalizer"},
    {"caller", DETLOSS_RETINA_NORM_CALLER, NULL,
     "batch sums divided by the caller's number (e.g. positives over all ranks)",
     "mmdetection reduce_mean of num_pos"},
};
static const detloss_name_info IOU_KINDS[] = {
    {"iou", DETLOSS_IOU, NULL, "intersection over union", "torchvision box_iou"},
    {"giou", DETLOSS_GIOU, NULL, "generalized IoU", "Rezatofighi et al., CVPR 2019"},
    {"diou", DETLOSS_DIOU, NULL, "distance IoU", "Zheng et al., AAAI 2020"},
    {"ciou", DETLOSS_CIOU, NULL, "complete IoU", "Zheng et al., AAAI 2020"},
};
static const detloss_name_info ANCHOR_CONVENTIONS[] = {
    {"torchvision", DETLOSS_ANCHORS_TORCHVISION, NULL,
     "rounded base anchors, ratio-major, centres at stride * x", "torchvision AnchorGenerator"},
    {"detectron2", DETLOSS_ANCHORS_DETECTRON2, NULL,
     "unrounded base anchors, size-major, centres at (x + offset) * stride",
     "detectron2 DefaultAnchorGenerator"},
};
static const detloss_name_info METRICS[] = {
    {"iou", DETLOSS_EVAL_IOU, NULL, "an anchor fits a gt when IoU >= iou_thresh",
     "torchvision box_iou"},
    {"wh_ratio", DETLOSS_EVAL_WH_RATIO, NULL, "shape ratio r > 1/ratio_thresh, positions ignored",
     "YOLOv5 utils/autoanchor.py metric()"},
};
static const detloss_name_info ATSS_SEMANTICS[] = {
    {"mmdet", DETLOSS_ATSS_MMDET, NULL, "IoU without +1, k = topk per level",
     "mmdetection 3.x ATSSAssigner"},
    {"original", DETLOSS_ATSS_ORIGINAL, NULL, "legacy +1 IoU, k = topk * anchors per location",
     "sfzhang15/ATSS prepare_targets"},
};
static const detloss_name_info FCOS_SEMANTICS[] = {
    {"mmdet", DETLOSS_FCOS_MMDET, NULL, "areas (x2-x1)(y2-y1)", "mmdetection FCOSHead"},
    {"original", DETLOSS_FCOS_ORIGINAL, NULL, "areas (x2-x1+1)(y2-y1+1)",
     "tianzhi0549/FCOS compute_targets_for_locations"},
    {"torchvision", DETLOSS_FCOS_TORCHVISION, NULL,
     "ranges strict at both ends, areas by the float32 key 1e8 - area",
     "torchvision 0.14 FCOS.compute_loss"},
};

#define ROWS(a) a, sizeof a / sizeof a[0]
typedef struct name_set {
  const char *label;
  const detloss_name_info *rows;
  size_t count;
} name_set;
/* Indexed by detloss_name_set. */
static const name_set SETS[DETLOSS_NAME_SET_COUNT] = {
    {"semantics", ROWS(SEMANTICS)},      {"convention", ROWS(RPN_CONVENTIONS)},
    {"box loss", ROWS(BOX_LOSSES)},      {"normalizer", ROWS(NORMALIZERS)},
    {"kind", ROWS(IOU_KINDS)},           {"convention", ROWS(ANCHOR_CONVENTIONS)},
    {"metric", ROWS(METRICS)},           {"semantics", ROWS(ATSS_SEMANTICS)},
    {"semantics", ROWS(FCOS_SEMANTICS)},
};

static const name_set *set_of(detloss_name_set set) {
  return (unsigned)set < DETLOSS_NAME_SET_COUNT ? &SETS[set] : NULL;
}

size_t detloss_names_count(detloss_name_set set) {
  const name_set *s = set_of(set);
  return s ? s->count : 0;
}

const detloss_name_info *detloss_names_get(detloss_name_set set, size_t i) {
  const name_set *s = set_of(set);
  return s && i < s->count ? &s->rows[i] : NULL;
}

const detloss_name_info *detloss_names_find(detloss_name_set set, const char *name) {
  const name_set *s = set_of(set);
  if (!s || !name) return NULL;
  for (size_t i = 0; i < s->count; i++)
    if (strcmp(name, s->rows[i].name) == 0 ||
        (s->rows[i].alias && strcmp(name, s->rows[i].alias) == 0))
      return &s->rows[i];
  return NULL;
}

const char *detloss_names_label(detloss_name_set set) {
  const name_set *s = set_of(set);
  return s ? s->label : NULL;
}

#define INF_ HUGE_VAL
#define NONE -1
#define F(T, key, field, type, lo, hi, lo_open, hi_open, names, def, doc)                          \
  {                                                                                                \
    key, #field, DETLOSS_OPTION_##type, offsetof(T, field), lo, hi, lo_open, hi_open, names, def,  \
        doc                                                                                        \
  }

#define M(key, field, type, lo, hi, lo_open, hi_open, names, def, doc)                             \
  F(detloss_match_options, key, field, type, lo, hi, lo_open, hi_open, names, def, doc)
static const detloss_option_field MATCH_FIELDS[] = {
    M("high", high, F32, 0, 1, 0, 0, NONE, 0.7f, "IoU >= high: positive"),
    M("low", low, F32, 0, 1, 0, 0, NONE, 0.3f,
      "IoU < low: negative; between low and high: ignored (<= high)"),
    M("allow_low_quality", allow_low_quality, BOOL, 0, 1, 0, 0, NONE, 1,
      "each gt's best anchors become positives (torchvision allow_low_quality_matches)"),
    M("low_quality_min_iou", low_quality_min_iou, F32, 0, 1, 0, 0, NONE, 0,
      "promote a gt's best anchors only if their IoU >= this (mmdet min_pos_iou)"),
    M("semantics", semantics, ENUM, 0, 0, 0, 0, DETLOSS_NAMES_MATCH_SEMANTICS,
      DETLOSS_MATCH_TORCHVISION, "matcher semantics: torchvision, detectron2 or mmdet"),
    M("gt_max_assign_all", gt_max_assign_all, BOOL, 0, 1, 0, 0, NONE, 1,
      "mmdet: promote all tied best anchors (else the first)"),
    M("crowd_ioa_thresh", crowd_ioa_thresh, F32, -INF_, 1, 1, 0, NONE, 0.7f,
      "anchors covered by a crowd box more than this are ignored (< 0: never)"),
    M("allowed_border", allowed_border, F32, -INF_, INF_, 1, 1, NONE, -1,
      "ignore anchors more than this outside the image (py-faster-rcnn; < 0: off)"),
};
#define S(key, field, type, lo, hi, def, doc)                                                      \
  F(detloss_sample_options, key, field, type, lo, hi, 0, 0, NONE, def, doc)
static const detloss_option_field SAMPLE_FIELDS[] = {
    S("batch_size_per_image", batch_size_per_image, I64, 0, 1e9, 256, "anchors sampled per image"),
    S("positive_fraction", positive_fraction, F64, 0, 1, 0.5,
      "at most this fraction of the sample is positive"),
    S("seed", seed, U64, 0, 1.8e19, 0, "seed of the counter-based sampler"),
};
static const detloss_option_field CODER_FIELDS[] = {
    F(detloss_coder_options, "weights", weights, F32X4, 0, INF_, 1, 1, NONE, 1,
      "(wx, wy, ww, wh) delta weights"),
    F(detloss_coder_options, "clip", clip, F32, 0, INF_, 1, 1, NONE, DETLOSS_BBOX_XFORM_CLIP,
      "decode: dw, dh clamped to at most this (ln(1000/16))"),
};
#define R(key, field, type, lo, hi, lo_open, hi_open, names, def, doc)                             \
  F(detloss_rpn_options, key, field, type, lo, hi, lo_open, hi_open, names, def, doc)
static const detloss_option_field RPN_FIELDS[] = {
    R("convention", convention, ENUM, 0, 0, 0, 0, DETLOSS_NAMES_RPN_CONVENTION,
      DETLOSS_RPN_TORCHVISION,
      "normalizer convention; also selects that library's defaults (detloss_rpn_options_preset)"),
    R("box_loss", box_loss, ENUM, 0, 0, 0, 0, DETLOSS_NAMES_HEAD_BOX_LOSS,
      DETLOSS_HEAD_BOX_SMOOTH_L1, "box regression loss"),
    R("smooth_l1_beta", smooth_l1_beta, F32, 0, INF_, 0, 1, NONE, 1.0f / 9.0f,
      "smooth-L1 beta (0 = L1)"),
};
#define T(key, field, type, lo, hi, lo_open, hi_open, names, def, doc)                             \
  F(detloss_retina_options, key, field, type, lo, hi, lo_open, hi_open, names, def, doc)
static const detloss_option_field RETINA_FIELDS[] = {
    T("alpha", alpha, F32, -INF_, 1, 1, 0, NONE, 0.25f, "focal alpha (< 0 disables the weighting)"),
    T("gamma", gamma, F32, 0, INF_, 0, 1, NONE, 2, "focal gamma"),
    T("box_loss", box_loss, ENUM, 0, 0, 0, 0, DETLOSS_NAMES_HEAD_BOX_LOSS, DETLOSS_HEAD_BOX_L1,
      "box regression loss"),
    T("smooth_l1_beta", smooth_l1_beta, F32, 0, INF_, 0, 1, NONE, 1, "smooth-L1 beta (0 = L1)"),
    T("normalizer", normalizer, ENUM, 0, 0, 0, 0, DETLOSS_NAMES_RETINA_NORMALIZER,
      DETLOSS_RETINA_NORM_TORCHVISION,
      "per-image max(1, positives) (torchvision), detectron2's EMA, or the caller's number"),
    T("ema_momentum", ema_momentum, F32, 0, 1, 0, 0, NONE, 0.9f, "detectron2_ema momentum"),
    T("caller_normalizer", caller_normalizer, F64, 0, INF_, 1, 1, NONE, 1,
      "caller: the batch sums are divided by this (e.g. the positives of all workers)"),
};
#define E(key, field, type, lo, hi, lo_open, hi_open, names, def, doc)                             \
  F(detloss_eval_options, key, field, type, lo, hi, lo_open, hi_open, names, def, doc)
static const detloss_option_field EVAL_FIELDS[] = {
    E("metric", metric, ENUM, 0, 0, 0, 0, DETLOSS_NAMES_EVAL_METRIC, DETLOSS_EVAL_IOU,
      "iou, or wh_ratio (YOLOv5 autoanchor shape ratio)"),
    E("iou_thresh", iou_thresh, F32, 0, 1, 1, 0, NONE, 0.5f,
      "an anchor fits a gt when IoU >= this"),
    E("ratio_thresh", ratio_thresh, F32, 1, INF_, 0, 1, NONE, 4,
      "wh_ratio: fits when r > 1/ratio_thresh (YOLOv5 anchor_t)"),
    E("positives", count_positives, BOOL, 0, 1, 0, 0, NONE, 1,
      "count each gt's positives under the matcher"),
    E("worst", num_worst, SIZE, 0, DETLOSS_EVAL_MAX_WORST, 0, 0, NONE, 20,
      "worst-covered gts to list"),
};
static const detloss_option_field RESIZE_FIELDS[] = {
    E("min_size", resize_min_size, F32, 0, 1e6, 0, 0, NONE, 0,
      "short side target (with max_size: torchvision min(min/short, max/long)); 0 = off"),
    E("max_size", resize_max_size, F32, 0, 1e6, 0, 0, NONE, 0,
      "long side target (alone: the long side becomes exactly this, YOLO imgsz); 0 = off"),
};
#define A(key, field, type, lo, hi, names, def, doc)                                               \
  F(detloss_atss_options, key, field, type, lo, hi, 0, 0, names, def, doc)
static const detloss_option_field ATSS_FIELDS[] = {
    A("semantics", semantics, ENUM, 0, 0, DETLOSS_NAMES_ATSS_SEMANTICS, DETLOSS_ATSS_MMDET,
      "mmdet (3.x ATSSAssigner) or original (sfzhang15/ATSS, +1 IoU)"),
    A("topk", topk, I64, 1, 1e6, NONE, 9, "candidates per level nearest each gt centre"),
    A("anchors_per_location", anchors_per_location, I64, 1, 1e6, NONE, 1,
      "original only: k = topk * this"),
};
#define FC(key, field, type, lo, hi, names, def, doc)                                              \
  F(detloss_fcos_options, key, field, type, lo, hi, 0, 0, names, def, doc)
static const detloss_option_field FCOS_FIELDS[] = {
    FC("semantics", semantics, ENUM, 0, 0, DETLOSS_NAMES_FCOS_SEMANTICS, DETLOSS_FCOS_MMDET,
       "mmdet (FCOSHead) or original (tianzhi0549/FCOS, +1 areas)"),
    FC("center_sampling", center_sampling, BOOL, 0, 1, NONE, 0,
       "positives only within center_sample_radius strides of the gt centre"),
    FC("center_sample_radius", center_sample_radius, F32, 0, 1e6, NONE, 1.5f,
       "centre sampling radius in strides of the point's level"),
    FC("norm_on_bbox", norm_on_bbox, BOOL, 0, 1, NONE, 0, "bbox targets divided by the stride"),
};

#define TABLE(T, rows)                                                                             \
  { #T, sizeof(T), rows, sizeof rows / sizeof rows[0] }
/* Indexed by detloss_options_kind. */
static const detloss_options_info OPTIONS[DETLOSS_OPTIONS_KIND_COUNT] = {
    TABLE(detloss_match_options, MATCH_FIELDS),   TABLE(detloss_sample_options, SAMPLE_FIELDS),
    TABLE(detloss_coder_options, CODER_FIELDS),   TABLE(detloss_rpn_options, RPN_FIELDS),
    TABLE(detloss_retina_options, RETINA_FIELDS), TABLE(detloss_eval_options, EVAL_FIELDS),
    TABLE(detloss_eval_options, RESIZE_FIELDS),   TABLE(detloss_atss_options, ATSS_FIELDS),
    TABLE(detloss_fcos_options, FCOS_FIELDS),
};

const detloss_options_info *detloss_options_info_get(detloss_options_kind kind) {
  return (unsigned)kind < DETLOSS_OPTIONS_KIND_COUNT ? &OPTIONS[kind] : NULL;
}
