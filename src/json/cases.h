/*
 * cases.h - the op handlers of `detloss compute` (docs/compute-cases.md).
 *
 * A handler reads its fields from the case object `c`, whose JSON path is
 * the path stack `at` ("" or "[2]"; at->buf is the string the getters take),
 * runs the library, and writes its result fields into `out`, which is inside
 * the result object after "op" (and "kind" where given) were written: call
 * dlj_key()/dlj_kv_*() for each field. On error it fills err (where = JSON
 * path of the fault; a library error is put in place by dlj_locate on `at`,
 * with the case keys of the library's argument names) and returns the
 * status; partial output is discarded by the caller. num_threads is passed
 * to every library call.
 * Handlers free everything they allocate on every path.
 */
#ifndef DETLOSS_CASES_H
#define DETLOSS_CASES_H

#include <cjson/cJSON.h>

#include "detloss/detloss.h"
#include "detloss/detloss_json.h"
#include "json/jread.h"
#include "json/jwrite.h"

/* What every handler gets besides its case: the thread count for the library
 * calls and the effective limits (detloss_json_limits, no 0 fields). A handler
 * whose output is not a fixed multiple of its input (iou N x M, anchors from
 * feature maps, anchor_eval's per-image grids) checks max_output_numbers,
 * max_anchors and max_image_side BEFORE it allocates or computes (the other
 * ops return at most as many numbers as they read, so max_input_bytes bounds
 * them). The driver checks every case's output for non-finite numbers. */
typedef struct dl_case_ctx {
  int num_threads;
  detloss_json_limits limits;
} dl_case_ctx;

typedef detloss_status (*dl_case_fn)(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                     const dl_case_ctx *ctx, detloss_error *err);

/* compute.c: detloss_compute_json with numeric arrays of at least pack_min
 * numbers packed (jtree.h; 0: none packed, 1: all). The results and faults
 * are the same for every pack_min (test_jtree.c checks it). */
detloss_status dl_compute_json_packed(const char *text, size_t len, size_t pack_min, char **out,
                                      size_t *out_len, const detloss_compute_options *opt,
                                      detloss_error *err);

/* case_box.c */
detloss_status dl_case_iou(const cJSON *c, const dlj_path *at, dlj_buf *out, const dl_case_ctx *ctx,
                           detloss_error *err);
detloss_status dl_case_encode(const cJSON *c, const dlj_path *at, dlj_buf *out,
                              const dl_case_ctx *ctx, detloss_error *err);
detloss_status dl_case_decode(const cJSON *c, const dlj_path *at, dlj_buf *out,
                              const dl_case_ctx *ctx, detloss_error *err);
/* case_match.c */
detloss_status dl_case_anchors(const cJSON *c, const dlj_path *at, dlj_buf *out,
                               const dl_case_ctx *ctx, detloss_error *err);
detloss_status dl_case_match(const cJSON *c, const dlj_path *at, dlj_buf *out,
                             const dl_case_ctx *ctx, detloss_error *err);
/* case_loss.c: op `loss`; it hands the box losses (iou_loss, giou_loss,
 * diou_loss, ciou_loss) to dl_case_box_loss with the parsed kind. */
detloss_status dl_case_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                            const dl_case_ctx *ctx, detloss_error *err);
/* Shared by the loss ops (case_loss.c). `reduction`: "none" | "sum" | "mean"
 * (default mean). */
detloss_status dl_case_reduction(const cJSON *c, const char *path, detloss_reduction *r,
                                 detloss_error *err);
/* The optional `params` object of a loss case, from the registry row info:
 * its keys are the row's params (any other key is DETLOSS_ERR_UNKNOWN with a
 * did-you-mean: a typo such as "gama" would otherwise run with the default),
 * read in the row's order into their options fields of *o. A FLOATS param
 * (pos_weight) is read into *pw (ndim -1 when absent), for the caller to
 * check against the input's shape. */
#define DL_LOSS_MAX_PARAMS 8
detloss_status dl_case_loss_params(const cJSON *c, const char *path, const detloss_loss_info *info,
                                   detloss_loss_options *o, dlj_tensor *pw, detloss_error *err);
/* info's params as library arguments for dlj_locate: "gamma" was read from
 * "params.gamma" (keys holds those strings). Returns the number written to
 * args (at most DL_LOSS_MAX_PARAMS). */
#define DL_PARAM_KEY_MAX 48
size_t dl_case_loss_param_args(const detloss_loss_info *info, dlj_arg *args,
                               char (*keys)[DL_PARAM_KEY_MAX]);
/* case_loss_box.c: the box losses of op `loss`, and op `embedding_loss`. */
detloss_status dl_case_box_loss(const cJSON *c, const dlj_path *at, detloss_loss_kind kind,
                                dlj_buf *out, const dl_case_ctx *ctx, detloss_error *err);
detloss_status dl_case_embedding_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                      const dl_case_ctx *ctx, detloss_error *err);

/* case_heads.c: ops `rpn_loss` and `retina_loss`. */
detloss_status dl_case_rpn_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                const dl_case_ctx *ctx, detloss_error *err);
detloss_status dl_case_retina_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                   const dl_case_ctx *ctx, detloss_error *err);
/* case_eval.c: op `anchor_eval`. */
detloss_status dl_case_anchor_eval(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                   const dl_case_ctx *ctx, detloss_error *err);

/* case_assign.c: op `assign`, dispatching on `method` to a handler below
 * (compute-assign.md). The dispatcher reads the common fields into a
 * dl_assign_case, writes "method", calls the handler (which reads its own
 * fields and semantics, runs the library and writes its own outputs), then
 * writes the common outputs from the handler's dl_assign_case_result. The
 * method handlers get the case's path as a string (the op's root). */
typedef struct dl_assign_case {
  const float *gt;          /* [G][4] as read (the method knows the format), or NULL */
  int has_gt;               /* `gt` was given */
  const int64_t *gt_labels; /* [G], each >= 0 (the handler checks the class count) */
  size_t num_gt;            /* G = length of gt_labels (= rows of gt when given) */
} dl_assign_case;
typedef struct dl_assign_case_result {
  size_t num_anchors;   /* A */
  int64_t *assigned_gt; /* [A], malloc'ed by the handler, freed by the dispatcher */
} dl_assign_case_result;
typedef detloss_status (*dl_assign_method_fn)(const cJSON *c, const char *path,
                                              const dl_assign_case *in, dlj_buf *out,
                                              dl_assign_case_result *res, const dl_case_ctx *ctx,
                                              detloss_error *err);
detloss_status dl_case_assign(const cJSON *c, const dlj_path *at, dlj_buf *out,
                              const dl_case_ctx *ctx, detloss_error *err);
/* case_assign_hungarian.c: method "hungarian". */
detloss_status dl_case_assign_hungarian(const cJSON *c, const char *path, const dl_assign_case *in,
                                        dlj_buf *out, dl_assign_case_result *res,
                                        const dl_case_ctx *ctx, detloss_error *err);
/* case_assign_task_aligned.c: method "task_aligned". */
detloss_status dl_case_assign_task_aligned(const cJSON *c, const char *path,
                                           const dl_assign_case *in, dlj_buf *out,
                                           dl_assign_case_result *res, const dl_case_ctx *ctx,
                                           detloss_error *err);
/* case_assign_atss.c: method "atss". */
detloss_status dl_case_assign_atss(const cJSON *c, const char *path, const dl_assign_case *in,
                                   dlj_buf *out, dl_assign_case_result *res, const dl_case_ctx *ctx,
                                   detloss_error *err);
/* case_assign_fcos.c: method "fcos". */
detloss_status dl_case_assign_fcos(const cJSON *c, const char *path, const dl_assign_case *in,
                                   dlj_buf *out, dl_assign_case_result *res, const dl_case_ctx *ctx,
                                   detloss_error *err);
/* case_assign_simota.c: method "simota". */
detloss_status dl_case_assign_simota(const cJSON *c, const char *path, const dl_assign_case *in,
                                     dlj_buf *out, dl_assign_case_result *res,
                                     const dl_case_ctx *ctx, detloss_error *err);

/* case_fcos.c: op `fcos_loss` (FCOS head loss). */
detloss_status dl_case_fcos_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                 const dl_case_ctx *ctx, detloss_error *err);
/* case_yolov8.c: op `yolov8_loss` (ultralytics v8DetectionLoss). */
detloss_status dl_case_yolov8_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                   const dl_case_ctx *ctx, detloss_error *err);
/* case_detr.c: op `detr_loss` (DETR SetCriterion + HungarianMatcher). */
detloss_status dl_case_detr_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                 const dl_case_ctx *ctx, detloss_error *err);

#endif /* DETLOSS_CASES_H */
