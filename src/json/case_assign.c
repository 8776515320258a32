/*
 * case_assign.c - compute op `assign` (docs/compute-cases.md, "assign"): the
 * dispatcher from `method` to its handler, and the fields every method shares.
 *
 * Input common to every method: method, optional semantics (checked against the
 * method's list; the first is its default), gt [G][4], gt_labels [G] (integers
 * >= 0; each handler checks them against its class count). Output common to
 * every method: method (echo), semantics (echo of the one used), assigned_gt [A],
 * assigned_labels [A], num_pos; the handler adds its own targets.
 * Adding a method: its handler file (case_assign_<method>.c), one row in
 * METHODS below, and its keys.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/names.h"

static const char *const COMMON_KEYS[] = {"op", "method", "semantics", "gt", "gt_labels"};
#define NUM_COMMON (sizeof COMMON_KEYS / sizeof COMMON_KEYS[0])

static const char *const TAL_SEMANTICS[] = {"ultralytics", "tood", NULL};
static const char *const TAL_KEYS[] = {"points", "anchors", "level_counts", "scores", "pred_boxes",
                                       "topk",   "alpha",   "beta",         NULL};

typedef struct assign_method {
  const char *name;
  const char *const *semantics; /* NULL-terminated; [0] is the default */
  const char *const *keys;      /* the method's own keys, NULL-terminated */
  dl_assign_case_fn fn;
} assign_method;

static const assign_method METHODS[] = {
    {"task_aligned", TAL_SEMANTICS, TAL_KEYS, dl_case_assign_task_aligned},
};
#define NUM_METHODS (sizeof METHODS / sizeof METHODS[0])

/* Every method the contract names, for the message of an unknown one. */
static const char *const CONTRACT_METHODS = "atss, fcos, simota, task_aligned, hungarian";

void dl_assign_write_common(dlj_buf *out, const int64_t *assigned_gt, const int64_t *gt_labels,
                            size_t A) {
  int64_t *labels = malloc((A ? A : 1) * sizeof *labels);
  size_t npos = 0;
  for (size_t a = 0; a < A; a++) {
    int64_t g = assigned_gt[a];
    npos += g >= 0;
    if (labels) labels[a] = g >= 0 ? gt_labels[g] : -1;
  }
  dlj_key(out, "assigned_gt");
  dlj_int64_tensor(out, assigned_gt, &A, 1);
  dlj_key(out, "assigned_labels");
  if (labels) {
    dlj_int64_tensor(out, labels, &A, 1);
  } else { /* out of memory for the copy: write them one by one */
    dlj_arr_begin(out);
    for (size_t a = 0; a < A; a++)
      dlj_intval(out, assigned_gt[a] >= 0 ? (long long)gt_labels[assigned_gt[a]] : -1);
    dlj_arr_end(out);
  }
  dlj_kv_int(out, "num_pos", (long long)npos);
  free(labels);
}

detloss_status dl_case_assign(const cJSON *c, const char *path, dlj_buf *out,
                              const dl_case_ctx *ctx, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const char *method;
  DL_FORWARD_IF_ERROR(dlj_string(c, "method", path, 1, &method, err));
  const assign_method *m = NULL;
  for (size_t k = 0; k < NUM_METHODS; k++)
    if (strcmp(METHODS[k].name, method) == 0) m = &METHODS[k];
  if (m == NULL) {
    dlj_join(where, sizeof where, path, "method");
    const char *names[NUM_METHODS];
    for (size_t k = 0; k < NUM_METHODS; k++) names[k] = METHODS[k].name;
    const char *hint = dl_suggest(method, names, NUM_METHODS);
    if (hint)
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown method '%s' (did you mean '%s'?)",
                     method, hint);
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown or unsupported method '%s' (the contract's methods: %s; this build: "
                   "task_aligned)",
                   method, CONTRACT_METHODS);
  }
  /* the keys: the common ones and the method's */
  const char *allowed[NUM_COMMON + 24];
  size_t n = 0;
  for (size_t k = 0; k < NUM_COMMON; k++) allowed[n++] = COMMON_KEYS[k];
  for (size_t k = 0; m->keys[k] != NULL && n + 1 < sizeof allowed / sizeof allowed[0]; k++)
    allowed[n++] = m->keys[k];
  allowed[n] = NULL;
  DL_FORWARD_IF_ERROR(dlj_check_keys(c, path, allowed, err));
  const char *sem = m->semantics[0];
  DL_FORWARD_IF_ERROR(dlj_string(c, "semantics", path, 0, &sem, err));
  size_t si = 0;
  while (m->semantics[si] != NULL && strcmp(m->semantics[si], sem) != 0) si++;
  if (m->semantics[si] == NULL) {
    dlj_join(where, sizeof where, path, "semantics");
    char list[160] = "";
    for (size_t k = 0; m->semantics[k] != NULL; k++) {
      if (k > 0) strncat(list, " or ", sizeof list - strlen(list) - 1);
      strncat(list, m->semantics[k], sizeof list - strlen(list) - 1);
    }
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown semantics '%s' for method %s (expected %s)", sem, m->name, list);
  }
  dl_assign_common common;
  memset(&common, 0, sizeof common);
  common.semantics = (int)si;
  common.semantics_name = m->semantics[si];
  detloss_status st = dlj_boxes(c, "gt", path, 1, &common.gt, &common.num_gt, err);
  size_t nl = 0;
  if (st == DETLOSS_OK)
    st = dlj_int_array(c, "gt_labels", path, 1, 0, INT64_MAX, &common.gt_labels, &nl, err);
  if (st == DETLOSS_OK && nl != common.num_gt) {
    dlj_join(where, sizeof where, path, "gt_labels");
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "has %zu labels for %zu gt boxes", nl,
                 common.num_gt);
  }
  if (st == DETLOSS_OK) {
    dlj_kv_str(out, "method", m->name);
    dlj_kv_str(out, "semantics", common.semantics_name);
    st = m->fn(c, path, &common, out, ctx, err);
  }
  free(common.gt);
  free(common.gt_labels);
  return st;
}
