/*
 * case_assign.c - compute op `assign` (docs/compute-cases.md, "assign"): the
 * dispatcher from `method` to its handler, the fields common to every method
 * and the outputs common to every method.
 *
 * Common input: method, semantics (read by the handler: each method has its
 * own names and default), gt [G][4] (the method decides the box format and
 * whether it is required), gt_labels [G] (class indices >= 0; the handler
 * checks them against its class count). Common output, after the method's
 * own fields: assigned_gt [A] (gt index, -1 background, -2 ignored),
 * assigned_labels [A] (gt_labels[assigned_gt], -1 elsewhere), num_pos.
 *
 * Adding a method: its handler (dl_assign_method_fn, cases.h) in
 * case_assign_<method>.c, and one row in METHODS below with its own keys.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"

typedef struct method_entry {
  const char *name;
  dl_assign_method_fn fn;
  const char *const *keys; /* the method's own keys, NULL-terminated */
} method_entry;

static const char *const COMMON_KEYS[] = {"op", "method", "semantics", "gt", "gt_labels"};
#define NUM_COMMON (sizeof COMMON_KEYS / sizeof COMMON_KEYS[0])

static const char *const HUNGARIAN_KEYS[] = {"logits",      "pred_boxes", "cost_class",
                                             "cost_bbox",   "cost_giou",  "focal_alpha",
                                             "focal_gamma", "cost",       NULL};

static const char *const TASK_ALIGNED_KEYS[] = {"points", "anchors",    "level_counts",
                                                "scores", "pred_boxes", "topk",
                                                "alpha",  "beta",       NULL};

static const char *const ATSS_KEYS[] = {"anchors", "level_counts",   "topk", "anchors_per_location",
                                        "ignore",  "ignore_iof_thr", NULL};
static const char *const FCOS_KEYS[] = {"points",          "level_counts",
                                        "strides",         "regress_ranges",
                                        "center_sampling", "center_sample_radius",
                                        "norm_on_bbox",    NULL};

static const char *const SIMOTA_KEYS[] = {"points",         "level_counts",
                                          "strides",        "scores",
                                          "pred_boxes",     "center_radius",
                                          "candidate_topk", "iou_weight",
                                          "cls_weight",     NULL};

static const method_entry METHODS[] = {
    {"task_aligned", dl_case_assign_task_aligned, TASK_ALIGNED_KEYS},
    {"hungarian", dl_case_assign_hungarian, HUNGARIAN_KEYS},
    {"atss", dl_case_assign_atss, ATSS_KEYS},
    {"fcos", dl_case_assign_fcos, FCOS_KEYS},
    {"simota", dl_case_assign_simota, SIMOTA_KEYS},
};
#define NUM_METHODS (sizeof METHODS / sizeof METHODS[0])

/* The contract's method names, including those not implemented here. */
static const char *const ALL_METHODS[] = {"atss", "fcos", "simota", "task_aligned", "hungarian"};

static detloss_status find_method(const cJSON *c, const char *path, const method_entry **m,
                                  detloss_error *err) {
  const char *name;
  DL_FORWARD_IF_ERROR(dlj_string(c, "method", path, 1, &name, err));
  for (size_t k = 0; k < NUM_METHODS; k++)
    if (strcmp(METHODS[k].name, name) == 0) {
      *m = &METHODS[k];
      return DETLOSS_OK;
    }
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "method");
  for (size_t k = 0; k < sizeof ALL_METHODS / sizeof ALL_METHODS[0]; k++)
    if (strcmp(ALL_METHODS[k], name) == 0)
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "method '%s' is not implemented yet", name);
  char list[128] = "";
  for (size_t k = 0; k < NUM_METHODS; k++) {
    strncat(list, k ? ", " : "", sizeof list - strlen(list) - 1);
    strncat(list, METHODS[k].name, sizeof list - strlen(list) - 1);
  }
  const char *names[NUM_METHODS];
  for (size_t k = 0; k < NUM_METHODS; k++) names[k] = METHODS[k].name;
  const char *hint = dl_suggest(name, names, NUM_METHODS);
  if (hint)
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown method '%s' (did you mean '%s'?)",
                   name, hint);
  return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown method '%s' (expected %s)", name, list);
}

/* COMMON_KEYS + the method's keys, for dlj_check_keys. */
static detloss_status check_keys(const cJSON *c, const char *path, const method_entry *m,
                                 detloss_error *err) {
  const char *keys[NUM_COMMON + 32];
  size_t n = 0;
  for (size_t k = 0; k < NUM_COMMON; k++) keys[n++] = COMMON_KEYS[k];
  for (size_t k = 0; m->keys[k] && n + 1 < sizeof keys / sizeof keys[0]; k++)
    keys[n++] = m->keys[k];
  keys[n] = NULL;
  return dlj_check_keys(c, path, keys, err);
}

detloss_status dl_case_assign(const cJSON *c, const dlj_path *at, dlj_buf *out,
                              const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  const method_entry *m = NULL;
  DL_FORWARD_IF_ERROR(find_method(c, path, &m, err));
  DL_FORWARD_IF_ERROR(check_keys(c, path, m, err));
  dl_assign_case in;
  memset(&in, 0, sizeof in);
  dl_assign_case_result res;
  memset(&res, 0, sizeof res);
  size_t nl = 0;
  detloss_status st = dlj_int_array(c, "gt_labels", path, 1, 0, DLJ_MAX_EXACT_INT,
                                    (int64_t **)&in.gt_labels, &nl, err);
  in.num_gt = nl;
  if (st == DETLOSS_OK && dlj_field(c, "gt") != NULL) {
    size_t G = 0;
    st = dlj_boxes(c, "gt", path, 1, (float **)&in.gt, &G, err);
    in.has_gt = 1;
    if (st == DETLOSS_OK && G != nl) {
      char where[DETLOSS_WHERE_MAX];
      dlj_join(where, sizeof where, path, "gt_labels");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "has %zu labels for %zu gt boxes", nl, G);
    }
  }
  if (st == DETLOSS_OK) {
    dlj_kv_str(out, "method", m->name);
    st = m->fn(c, path, &in, out, &res, ctx, err);
  }
  if (st == DETLOSS_OK) {
    size_t A = res.num_anchors, pos = 0;
    int64_t *lab = malloc((A ? A : 1) * sizeof *lab);
    if (!lab) {
      st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
    } else {
      for (size_t a = 0; a < A; a++) {
        int64_t g = res.assigned_gt[a];
        lab[a] = g >= 0 ? in.gt_labels[g] : -1;
        pos += g >= 0;
      }
      dlj_key(out, "assigned_gt");
      dlj_int64_tensor(out, res.assigned_gt, &A, 1);
      dlj_key(out, "assigned_labels");
      dlj_int64_tensor(out, lab, &A, 1);
      dlj_kv_int(out, "num_pos", (long long)pos);
      free(lab);
    }
  }
  free(res.assigned_gt);
  free((void *)in.gt_labels);
  free((void *)in.gt);
  return st;
}
