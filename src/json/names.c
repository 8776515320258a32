/*
 * names.c - the JSON names of the core's enums and the matcher options reader
 * (names.h).
 */
#include "json/names.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "json/jread.h"

const char *const dlj_semantics_names[] = {"torchvision", "detectron2", "mmdet", NULL};
const char *const dlj_rpn_convention_names[] = {"torchvision", "detectron2", "py_faster_rcnn",
                                                NULL};
const char *const dlj_box_loss_names[] = {"l1", "smooth_l1", "giou", "diou", "ciou", NULL};
const char *const dlj_normalizer_names[] = {"torchvision", "detectron2_ema", "caller", NULL};

/* alias -> name */
static const char *const ALIASES[][2] = {{"py-faster-rcnn", "py_faster_rcnn"}};

size_t dlj_name_count(const char *const *names) {
  size_t n = 0;
  while (names[n]) n++;
  return n;
}

int dlj_name_index(const char *const *names, const char *s) {
  for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++)
    if (strcmp(s, ALIASES[a][0]) == 0) s = ALIASES[a][1];
  for (int k = 0; names[k]; k++)
    if (strcmp(s, names[k]) == 0) return k;
  return -1;
}

void dlj_name_list(char *buf, size_t cap, const char *const *names) {
  size_t n = dlj_name_count(names), len = 0;
  if (cap) buf[0] = '\0';
  for (size_t k = 0; k < n && len < cap; k++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%s",
                            k == 0       ? ""
                            : k + 1 == n ? " or "
                                         : ", ",
                            names[k]);
}

static detloss_status read_bool(const cJSON *obj, const char *key, const char *path, int *v,
                                detloss_error *err) {
  return key ? dlj_bool(obj, key, path, 0, v, err) : DETLOSS_OK;
}

static detloss_status read_float(const cJSON *obj, const char *key, const char *path, float *v,
                                 detloss_error *err) {
  return key ? dlj_float(obj, key, path, 0, v, err) : DETLOSS_OK;
}

detloss_status dlj_match_options(const cJSON *obj, const char *path, const dlj_match_keys *keys,
                                 detloss_match_options *m, detloss_error *err) {
  const char *sem = NULL;
  DL_FORWARD_IF_ERROR(read_float(obj, keys->high, path, &m->high, err));
  DL_FORWARD_IF_ERROR(read_float(obj, keys->low, path, &m->low, err));
  DL_FORWARD_IF_ERROR(read_bool(obj, keys->allow_low_quality, path, &m->allow_low_quality, err));
  DL_FORWARD_IF_ERROR(
      read_float(obj, keys->low_quality_min_iou, path, &m->low_quality_min_iou, err));
  if (keys->semantics) DL_FORWARD_IF_ERROR(dlj_string(obj, keys->semantics, path, 0, &sem, err));
  DL_FORWARD_IF_ERROR(read_bool(obj, keys->gt_max_assign_all, path, &m->gt_max_assign_all, err));
  DL_FORWARD_IF_ERROR(read_float(obj, keys->crowd_ioa_thresh, path, &m->crowd_ioa_thresh, err));
  DL_FORWARD_IF_ERROR(read_float(obj, keys->allowed_border, path, &m->allowed_border, err));
  if (sem) {
    int k = dlj_name_index(dlj_semantics_names, sem);
    if (k < 0) {
      char where[DETLOSS_WHERE_MAX], list[96];
      dlj_join(where, sizeof where, path, keys->semantics);
      dlj_name_list(list, sizeof list, dlj_semantics_names);
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown semantics '%s' (expected %s)", sem,
                     list);
    }
    m->semantics = (detloss_match_semantics)k;
  }
  return DETLOSS_OK;
}
