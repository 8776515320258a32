/*
 * compute.c - the `detloss compute` driver: parse, dispatch each case to its
 * op handler (cases.h), collect the results, and return them only when every
 * case succeeded (nothing half-written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss_json.h"
#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"
#include "json/jtree.h"

/* Each op with the keys its case object may have (compute-cases.md); any
 * other key is an error with a did-you-mean, so that a typo ("kidn") cannot
 * silently run with a default. Nested objects (params, config, images[i],
 * matcher, dataset, anchor_config) are checked by the handlers. */
typedef struct op_entry {
  const char *name;
  dl_case_fn fn;
  const char *const *keys; /* NULL-terminated */
} op_entry;

static const char *const IOU_KEYS[] = {"op", "kind", "boxes1", "boxes2", "eps", NULL};
static const char *const ENCODE_KEYS[] = {"op", "anchors", "boxes", "weights", NULL};
static const char *const DECODE_KEYS[] = {"op", "anchors", "deltas", "weights", "clip", NULL};
static const char *const ANCHORS_KEYS[] =
    {"op", "image_size", "feature_maps", "sizes", "aspect_ratios", "convention", "offset", NULL};
static const char *const MATCH_KEYS[] = {"op",
                                         "anchors",
                                         "gt",
                                         "high",
                                         "low",
                                         "allow_low_quality",
                                         "low_quality_min_iou",
                                         "semantics",
                                         "gt_max_assign_all",
                                         "is_crowd",
                                         "crowd_ioa_thresh",
                                         "allowed_border",
                                         "image_size",
                                         NULL};
static const char *const LOSS_KEYS[] = {"op",        "loss",   "input", "target", "weight",
                                        "reduction", "params", "grad",  NULL};
static const char *const EMBED_KEYS[] = {"op",     "loss",      "x1",     "x2",   "x3", "target",
                                         "weight", "reduction", "params", "grad", NULL};
static const char *const FCOS_KEYS[] = {"op", "config", "feature_maps", "images", "grad", NULL};
static const char *const HEAD_KEYS[] = {"op", "config", "images", "grad", NULL};
static const char *const YOLOV8_KEYS[] = {"op", "config", "image_size", "images", "grad", NULL};
static const char *const EVAL_KEYS[] = {"op",
                                        "dataset",
                                        "resize_long_side",
                                        "resize_min_size",
                                        "anchor_config",
                                        "anchors",
                                        "anchor_shapes",
                                        "metric",
                                        "iou_thresh",
                                        "ratio_thresh",
                                        "matcher",
                                        "worst",
                                        NULL};

/* `assign` checks its keys per method (case_assign.c): NULL here. */
static const op_entry OPS[] = {
    {"iou", dl_case_iou, IOU_KEYS},
    {"encode", dl_case_encode, ENCODE_KEYS},
    {"decode", dl_case_decode, DECODE_KEYS},
    {"anchors", dl_case_anchors, ANCHORS_KEYS},
    {"match", dl_case_match, MATCH_KEYS},
    {"loss", dl_case_loss, LOSS_KEYS},
    {"embedding_loss", dl_case_embedding_loss, EMBED_KEYS},
    {"rpn_loss", dl_case_rpn_loss, HEAD_KEYS},
    {"retina_loss", dl_case_retina_loss, HEAD_KEYS},
    {"anchor_eval", dl_case_anchor_eval, EVAL_KEYS},
    /* assign: the keys depend on the method; case_assign.c checks them */
    {"assign", dl_case_assign, NULL},
    {"fcos_loss", dl_case_fcos_loss, FCOS_KEYS},
    {"yolov8_loss", dl_case_yolov8_loss, YOLOV8_KEYS},
    {"detr_loss", dl_case_detr_loss, HEAD_KEYS},
};
#define NUM_OPS (sizeof OPS / sizeof OPS[0])

void detloss_free(void *p) { free(p); }

/* The driver's guarantee: a case whose input is finite never
 * returns a non-finite number. The writer turns one into null (JSON has no
 * NaN), and no op writes null otherwise, so a null in the case's text is an
 * overflow somewhere in float32: the case fails, naming the element. */
static detloss_status check_finite(const dlj_buf *out, size_t start, const char *path,
                                   const char *op, detloss_error *err) {
  if (out->oom || out->len <= start) return DETLOSS_OK;
  const char *seg = out->p + start;
  size_t n = out->len - start;
  if (seg[0] == ',') {
    seg++;
    n--;
  }
  char elem[DETLOSS_WHERE_MAX];
  if (!dlj_find_nonfinite(seg, n, elem, sizeof elem)) return DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  if (elem[0])
    dlj_join(where, sizeof where, path, elem);
  else
    snprintf(where, sizeof where, "%s", path[0] ? path : "(output)");
  return dl_fail(err, DETLOSS_ERR_RANGE, where,
                 "result is not finite (op %s: the finite input overflows float32)", op);
}

static detloss_status run_case(const cJSON *c, const dlj_path *at, dlj_buf *out,
                               const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  DL_RETURN_ERROR_IF(!cJSON_IsObject(c), err, DETLOSS_ERR_TYPE, path[0] ? path : "(root)",
                     "expected a case object");
  const char *op;
  DL_FORWARD_IF_ERROR(dlj_string(c, "op", path, 1, &op, err));
  const op_entry *e = NULL;
  for (size_t k = 0; k < NUM_OPS; k++)
    if (strcmp(OPS[k].name, op) == 0) e = &OPS[k];
  if (!e) {
    const char *names[NUM_OPS];
    for (size_t k = 0; k < NUM_OPS; k++) names[k] = OPS[k].name;
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "op");
    const char *hint = dl_suggest(op, names, NUM_OPS);
    if (hint)
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown op '%s' (did you mean '%s'?)", op,
                     hint);
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown op '%s' (expected iou, encode, decode, anchors, match, loss, "
                   "embedding_loss, rpn_loss, retina_loss, anchor_eval, assign, fcos_loss, "
                   "yolov8_loss, detr_loss)",
                   op);
  }
  if (e->keys != NULL) DL_FORWARD_IF_ERROR(dlj_check_keys(c, path, e->keys, err));
  size_t start = out->len;
  dlj_obj_begin(out);
  dlj_kv_str(out, "op", op);
  const cJSON *kind = dlj_field(c, "kind");
  if (cJSON_IsString(kind)) dlj_kv_str(out, "kind", kind->valuestring);
  DL_FORWARD_IF_ERROR(e->fn(c, at, out, ctx, err));
  dlj_obj_end(out);
  return check_finite(out, start, path, op, err);
}

/* Runs the cases of a parsed input and frees it. */
static detloss_status run_all(cJSON *root, const dl_case_ctx *ctx, char **out, size_t *out_len,
                              detloss_error *err) {
  dlj_buf buf;
  dlj_buf_init(&buf);
  detloss_status st = DETLOSS_OK;
  dlj_path at;
  dlj_path_init(&at, "");
  const cJSON *top = dlj_tree(root); /* a bare array of numbers: "expected a case object" */
  if (cJSON_IsArray(top)) {
    dlj_arr_begin(&buf);
    size_t i = 0;
    for (const cJSON *c = top->child; c && st == DETLOSS_OK; c = c->next, i++) {
      size_t mark = dlj_path_index(&at, i);
      st = run_case(c, &at, &buf, ctx, err);
      dlj_path_pop(&at, mark);
    }
    dlj_arr_end(&buf);
  } else {
    st = run_case(root, &at, &buf, ctx, err);
  }
  dlj_tree_delete(root);
  if (st == DETLOSS_OK && buf.oom)
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "(output)", "cannot allocate the result text");
  if (st == DETLOSS_OK) {
    dlj_raw(&buf, "\n");
    if (buf.oom)
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "(output)", "cannot allocate the result text");
  }
  if (st != DETLOSS_OK) {
    dlj_buf_free(&buf);
    return st;
  }
  *out = buf.p;
  if (out_len) *out_len = buf.len;
  return DETLOSS_OK;
}

static void init_ctx(dl_case_ctx *ctx, const detloss_compute_options *opt) {
  ctx->num_threads = opt ? opt->num_threads : 0;
  ctx->limits = dl_json_limits(opt ? opt->limits : NULL);
}

/* The input is read with the stream reader into a tree whose arrays of
 * numbers are packed (jtree.h): 8 bytes a number instead of a cJSON node. */
detloss_status detloss_compute_json(const char *text, size_t len, char **out, size_t *out_len,
                                    const detloss_compute_options *opt, detloss_error *err) {
  return dl_compute_json_packed(text, len, DLJ_PACK_MIN, out, out_len, opt, err);
}

detloss_status dl_compute_json_packed(const char *text, size_t len, size_t pack_min, char **out,
                                      size_t *out_len, const detloss_compute_options *opt,
                                      detloss_error *err) {
  DL_RETURN_ERROR_IF(!text, err, DETLOSS_ERR_NULL, "text", "is NULL");
  DL_RETURN_ERROR_IF(!out, err, DETLOSS_ERR_NULL, "out", "is NULL");
  dl_case_ctx ctx;
  init_ctx(&ctx, opt);
  DL_RETURN_ERROR_IF(len > ctx.limits.max_input_bytes, err, DETLOSS_ERR_RANGE, "(input)",
                     "the input is larger than the limit max_input_bytes = %zu",
                     ctx.limits.max_input_bytes);
  dljs j;
  DL_FORWARD_IF_ERROR(dlj_stream_open_mem(&j, text, len, NULL, err));
  j.anon = 1;
  cJSON *root = NULL;
  detloss_status st = dlj_parse_packed(&j, pack_min, &root, err);
  dlj_stream_close(&j);
  if (st != DETLOSS_OK) return st;
  return run_all(root, &ctx, out, out_len, err);
}

detloss_status detloss_compute_json_file(FILE *in, const char *name, char **out, size_t *out_len,
                                         const detloss_compute_options *opt, detloss_error *err) {
  DL_RETURN_ERROR_IF(!in, err, DETLOSS_ERR_NULL, "in", "is NULL");
  DL_RETURN_ERROR_IF(!out, err, DETLOSS_ERR_NULL, "out", "is NULL");
  dl_case_ctx ctx;
  init_ctx(&ctx, opt);
  dljs j;
  DL_FORWARD_IF_ERROR(
      dlj_stream_open_file(&j, in, name ? name : "(input)", ctx.limits.max_input_bytes, err));
  j.anon = 1;
  cJSON *root = NULL;
  detloss_status st = dlj_parse_packed(&j, DLJ_PACK_MIN, &root, err);
  dlj_stream_close(&j);
  if (st != DETLOSS_OK) return st;
  return run_all(root, &ctx, out, out_len, err);
}
