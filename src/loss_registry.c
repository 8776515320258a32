/*
 * loss_registry.c - the one table of loss kinds: contract name, enum kind,
 * input form, parameters (options field, default, domain, doc), the inputs
 * that take gradients, and the reference each kind matches.
 *
 * Everything else derives from it: detloss_loss_options_default(), the name
 * lookups and their error messages, the JSON ops `loss` / `embedding_loss`
 * (which params keys each loss accepts and in which order they are read,
 * src/json/case_loss.c) and the Python binding (python/detloss/ops.py reads
 * the table through detloss_loss_info_get). Adding a loss kind = its kernel,
 * its enum value and one row here.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define OFF(f) offsetof(detloss_loss_options, f)
#define INF_ HUGE_VAL

/* Parameter rows shared by several kinds. The domains are those the loss
 * functions check (loss_cls.c, loss_reg.c, loss_box.c, loss_embed.c, loss_quality.c). */
static const detloss_loss_param P_POS_WEIGHT[] = {
    {"pos_weight", DETLOSS_PARAM_FLOATS, OFF(pos_weight), 0, 0, INF_, 0, 1,
     "weight of the positive term: a number, or one per column (torch broadcast)"}};
static const detloss_loss_param P_CE[] =
    {{"label_smoothing", DETLOSS_PARAM_FLOAT, OFF(label_smoothing), 0, 0, 1, 0, 0,
      "mass spread uniformly over the classes"},
     {"ignore_index", DETLOSS_PARAM_INT, OFF(ignore_index), -100, -INF_, INF_, 1, 1,
      "rows with this target give loss 0 and are not counted by mean"}};
static const detloss_loss_param P_SIGMOID_FOCAL[] =
    {{"alpha", DETLOSS_PARAM_FLOAT, OFF(alpha), 0.25, -INF_, INF_, 1, 1,
      "weight of the positives (< 0 disables the weighting)"},
     {"gamma", DETLOSS_PARAM_FLOAT, OFF(gamma), 2, 0, INF_, 0, 1, "focusing exponent"}};
static const detloss_loss_param P_SOFTMAX_FOCAL[] =
    {{"alpha", DETLOSS_PARAM_FLOAT, OFF(alpha), 1, -INF_, INF_, 1, 1, "weight of every row"},
     {"gamma", DETLOSS_PARAM_FLOAT, OFF(gamma), 2, 0, INF_, 0, 1, "focusing exponent"},
     {"ignore_index", DETLOSS_PARAM_INT, OFF(ignore_index), -100, -INF_, INF_, 1, 1,
      "rows with this target give loss 0 and are not counted by mean"}};
static const detloss_loss_param P_HINGE[] = {
    {"margin", DETLOSS_PARAM_FLOAT, OFF(margin), 1, 0, INF_, 0, 1, "l = max(0, margin - y x)"}};
static const detloss_loss_param P_SMOOTH_L1[] = {{"beta", DETLOSS_PARAM_FLOAT, OFF(beta), 1, 0,
                                                  INF_, 0, 1,
                                                  "quadratic below |d| < beta (0 means L1)"}};
static const detloss_loss_param P_HUBER[] = {
    {"delta", DETLOSS_PARAM_FLOAT, OFF(delta), 1, 0, INF_, 1, 1, "quadratic below |d| < delta"}};
static const detloss_loss_param P_BOX[] = {{"eps", DETLOSS_PARAM_FLOAT, OFF(eps), 1e-7f, 0, INF_, 1,
                                            1, "added to every denominator (torchvision 1e-7)"}};
static const detloss_loss_param P_CONTRASTIVE[] = {
    {"margin", DETLOSS_PARAM_FLOAT, OFF(margin), 1, 0, INF_, 0, 1,
     "dissimilar pairs are pushed to at least this distance"}};
static const detloss_loss_param P_COSINE[] = {{"margin", DETLOSS_PARAM_FLOAT, OFF(margin), 0, -1, 1,
                                               0, 0, "dissimilar pairs: l = max(0, cos - margin)"}};
static const detloss_loss_param P_TRIPLET[] =
    {{"margin", DETLOSS_PARAM_FLOAT, OFF(margin), 1, 0, INF_, 0, 1, "l = max(0, margin + dp - dn)"},
     {"p", DETLOSS_PARAM_FLOAT, OFF(p), 2, 0, INF_, 1, 1, "norm degree of the distances"},
     {"eps", DETLOSS_PARAM_FLOAT, OFF(eps), 1e-6f, 0, INF_, 0, 1,
      "added to the differences before the norm (torch pairwise_distance)"},
     {"swap", DETLOSS_PARAM_BOOL, OFF(swap), 0, 0, 1, 0, 0,
      "distance swap: dn = min(dn, d(positive, negative)) (Balntas et al. 2016)"}};

static const detloss_loss_param P_QFL[] =
    {{"beta", DETLOSS_PARAM_FLOAT, OFF(beta), 2, 0, INF_, 0, 1,
      "exponent of the modulating factor |y - sigmoid(x)|^beta"},
     {"activated", DETLOSS_PARAM_BOOL, OFF(activated), 0, 0, 1, 0, 0,
      "the input is probabilities in [0, 1] (BCE with logs clamped at -100)"}};
static const detloss_loss_param P_VFL[] =
    {{"alpha", DETLOSS_PARAM_FLOAT, OFF(alpha), 0.75, 0, INF_, 0, 1,
      "weight of the negatives (q = 0): alpha sigmoid(x)^gamma"},
     {"gamma", DETLOSS_PARAM_FLOAT, OFF(gamma), 2, 0, INF_, 0, 1, "focusing exponent"},
     {"iou_weighted", DETLOSS_PARAM_BOOL, OFF(iou_weighted), 1, 0, 1, 0, 0,
      "positives (q > 0) weighted by q (false: by 1)"},
     {"detach_weight", DETLOSS_PARAM_BOOL, OFF(detach_weight), 0, 0, 1, 0, 0,
      "the focal weight is a constant for the gradient (RT-DETR's detach)"}};

#define PARAMS(a) a, sizeof a / sizeof a[0]
#define NO_PARAMS NULL, 0
#define ELEM DETLOSS_LOSS_FORM_ELEMENTWISE
#define CLASSES DETLOSS_LOSS_FORM_CLASSES
#define BOXES DETLOSS_LOSS_FORM_BOXES
#define EMBED DETLOSS_LOSS_FORM_EMBEDDING
#define SOFT_ROWS DETLOSS_LOSS_FORM_SOFT_ROWS
#define DISTRIBUTION DETLOSS_LOSS_FORM_DISTRIBUTION

/* Indexed by kind (checked by the tests: LOSSES[k].kind == k). */
static const detloss_loss_info LOSSES[] = {
    {"bce_with_logits", DETLOSS_LOSS_BCE_WITH_LOGITS, ELEM, PARAMS(P_POS_WEIGHT), "input",
     "torch binary_cross_entropy_with_logits"},
    {"bce", DETLOSS_LOSS_BCE, ELEM, NO_PARAMS, "input", "torch binary_cross_entropy"},
    {"cross_entropy", DETLOSS_LOSS_CROSS_ENTROPY, CLASSES, PARAMS(P_CE), "input",
     "torch cross_entropy (class indices)"},
    {"sigmoid_focal", DETLOSS_LOSS_SIGMOID_FOCAL, ELEM, PARAMS(P_SIGMOID_FOCAL), "input",
     "torchvision sigmoid_focal_loss; Lin et al., arXiv:1708.02002"},
    {"softmax_focal", DETLOSS_LOSS_SOFTMAX_FOCAL, CLASSES, PARAMS(P_SOFTMAX_FOCAL), "input",
     "Detectron softmax focal loss per row; Lin et al., arXiv:1708.02002"},
    {"hinge", DETLOSS_LOSS_HINGE, ELEM, PARAMS(P_HINGE), "input", "max(0, margin - y x)"},
    {"l1", DETLOSS_LOSS_L1, ELEM, NO_PARAMS, "input", "torch l1_loss"},
    {"mse", DETLOSS_LOSS_MSE, ELEM, NO_PARAMS, "input", "torch mse_loss"},
    {"smooth_l1", DETLOSS_LOSS_SMOOTH_L1, ELEM, PARAMS(P_SMOOTH_L1), "input",
     "torch smooth_l1_loss"},
    {"huber", DETLOSS_LOSS_HUBER, ELEM, PARAMS(P_HUBER), "input", "torch huber_loss"},
    {"iou_loss", DETLOSS_LOSS_IOU, BOXES, PARAMS(P_BOX), "input,target",
     "1 - I/(U + eps), torchvision _loss_inter_union"},
    {"giou_loss", DETLOSS_LOSS_GIOU, BOXES, PARAMS(P_BOX), "input,target",
     "torchvision generalized_box_iou_loss; Rezatofighi et al., arXiv:1902.09630"},
    {"diou_loss", DETLOSS_LOSS_DIOU, BOXES, PARAMS(P_BOX), "input,target",
     "torchvision distance_box_iou_loss; Zheng et al., arXiv:1911.08287"},
    {"ciou_loss", DETLOSS_LOSS_CIOU, BOXES, PARAMS(P_BOX), "input,target",
     "torchvision complete_box_iou_loss; Zheng et al., arXiv:1911.08287"},
    {"contrastive", DETLOSS_LOSS_CONTRASTIVE, EMBED, PARAMS(P_CONTRASTIVE), "x1,x2",
     "Hadsell, Chopra, LeCun, CVPR 2006"},
    {"cosine_embedding", DETLOSS_LOSS_COSINE_EMBEDDING, EMBED, PARAMS(P_COSINE), "x1,x2",
     "torch cosine_embedding_loss"},
    {"triplet_margin", DETLOSS_LOSS_TRIPLET_MARGIN, EMBED, PARAMS(P_TRIPLET), "x1,x2,x3",
     "torch triplet_margin_loss; Balntas et al., BMVC 2016"},
    {"quality_focal", DETLOSS_LOSS_QUALITY_FOCAL, SOFT_ROWS, PARAMS(P_QFL), "input",
     "mmdetection quality_focal_loss_tensor_target; Li et al., GFL, arXiv:2006.04388"},
    {"distribution_focal", DETLOSS_LOSS_DISTRIBUTION_FOCAL, DISTRIBUTION, NO_PARAMS, "input",
     "mmdetection distribution_focal_loss; Li et al., GFL, arXiv:2006.04388"},
    {"varifocal", DETLOSS_LOSS_VARIFOCAL, ELEM, PARAMS(P_VFL), "input",
     "mmdetection varifocal_loss; Zhang et al., VarifocalNet, arXiv:2008.13367"},
};
#define NUM_LOSS_KINDS (sizeof LOSSES / sizeof LOSSES[0])

size_t detloss_loss_count(void) { return NUM_LOSS_KINDS; }

const detloss_loss_info *detloss_loss_info_get(detloss_loss_kind kind) {
  if ((unsigned)kind >= NUM_LOSS_KINDS) return NULL;
  return &LOSSES[kind];
}

const detloss_loss_info *detloss_loss_info_by_name(const char *name) {
  if (!name) return NULL;
  for (size_t k = 0; k < NUM_LOSS_KINDS; k++)
    if (strcmp(name, LOSSES[k].name) == 0) return &LOSSES[k];
  return NULL;
}

const char *detloss_loss_name(detloss_loss_kind kind) {
  const detloss_loss_info *info = detloss_loss_info_get(kind);
  return info ? info->name : NULL;
}

void dl_loss_list_names(char *buf, size_t cap, int form, const char *last_sep) {
  size_t len = 0, count = 0, seen = 0;
  if (cap) buf[0] = '\0';
  for (size_t k = 0; k < NUM_LOSS_KINDS; k++) count += form < 0 || (int)LOSSES[k].form == form;
  for (size_t k = 0; k < NUM_LOSS_KINDS && len < cap; k++) {
    if (form >= 0 && (int)LOSSES[k].form != form) continue;
    const char *sep = seen == 0 ? "" : seen + 1 == count ? last_sep : ", ";
    len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, LOSSES[k].name);
    seen++;
  }
}

detloss_status detloss_loss_from_name(const char *name, detloss_loss_kind *kind,
                                      detloss_error *err) {
  DL_RETURN_ERROR_IF(name == NULL, err, DETLOSS_ERR_NULL, "name", "is NULL");
  DL_RETURN_ERROR_IF(kind == NULL, err, DETLOSS_ERR_NULL, "kind", "is NULL");
  const detloss_loss_info *info = detloss_loss_info_by_name(name);
  if (info) {
    *kind = info->kind;
    return DETLOSS_OK;
  }
  const char *names[NUM_LOSS_KINDS];
  for (size_t k = 0; k < NUM_LOSS_KINDS; k++) names[k] = LOSSES[k].name;
  const char *hint = dl_suggest(name, names, NUM_LOSS_KINDS);
  if (hint)
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, "loss", "unknown loss '%s' (did you mean '%s'?)", name,
                   hint);
  char list[DETLOSS_MSG_MAX];
  dl_loss_list_names(list, sizeof list, -1, ", ");
  return dl_fail(err, DETLOSS_ERR_UNKNOWN, "loss", "unknown loss '%s' (expected one of %s)", name,
                 list);
}

detloss_loss_options detloss_loss_options_default(detloss_loss_kind kind) {
  /* Fields a kind does not use keep these base values (each the default of
   * the kinds that read it); the kind's own rows of the table then apply. */
  detloss_loss_options o;
  memset(&o, 0, sizeof o);
  o.reduction = DETLOSS_REDUCTION_MEAN;
  o.alpha = 0.25f;
  o.gamma = 2.0f;
  o.beta = 1.0f;
  o.delta = 1.0f;
  o.margin = 1.0f;
  o.label_smoothing = 0.0f;
  o.eps = 1e-7f;
  o.p = 2.0f;
  o.swap = 0;
  o.ignore_index = -100;
  o.pos_weight = NULL;
  o.pos_weight_len = 0;
  o.num_threads = 0;
  o.activated = 0;
  o.iou_weighted = 1;
  o.detach_weight = 0;
  const detloss_loss_info *info = detloss_loss_info_get(kind);
  for (size_t i = 0; info && i < info->num_params; i++) {
    const detloss_loss_param *p = &info->params[i];
    char *field = (char *)&o + p->offset;
    switch (p->type) {
      case DETLOSS_PARAM_FLOAT: {
        float v = (float)p->default_value;
        memcpy(field, &v, sizeof v);
        break;
      }
      case DETLOSS_PARAM_INT: {
        int64_t v = (int64_t)p->default_value;
        memcpy(field, &v, sizeof v);
        break;
      }
      case DETLOSS_PARAM_BOOL: {
        int v = p->default_value != 0.0;
        memcpy(field, &v, sizeof v);
        break;
      }
      case DETLOSS_PARAM_FLOATS: break; /* none */
    }
  }
  return o;
}
