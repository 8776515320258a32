/*
 * assign.c - the registry of assigners (assign.h): one row per assigner, read by
 * name. Adding an assigner adds one row here.
 */
#include <stdio.h>
#include "assign.h"

#include <string.h>

static void max_iou_defaults(void *o) {
  *(detloss_match_options *)o = detloss_match_options_default();
}

static void hungarian_defaults(void *o) {
  *(detloss_hungarian_options *)o = detloss_hungarian_options_default();
}

static void atss_defaults(void *o) { *(detloss_atss_options *)o = detloss_atss_options_default(); }

static void fcos_defaults(void *o) { *(detloss_fcos_options *)o = detloss_fcos_options_default(); }

static const dl_assigner assigners[] = {
    {"max_iou", dl_assign_max_iou, "detloss_match_options", sizeof(detloss_match_options),
     max_iou_defaults, dl_match_check_options},
    {"task_aligned", dl_assign_task_aligned, "detloss_task_aligned_options",
     sizeof(detloss_task_aligned_options), dl_task_aligned_options_default,
     dl_task_aligned_check_options},
    {"hungarian", dl_assign_hungarian, "detloss_hungarian_options",
     sizeof(detloss_hungarian_options), hungarian_defaults, dl_hungarian_check_options},
    {"atss", dl_assign_atss, "detloss_atss_options", sizeof(detloss_atss_options), atss_defaults,
     dl_atss_check_options},
    {"fcos", dl_assign_fcos, "detloss_fcos_options", sizeof(detloss_fcos_options), fcos_defaults,
     dl_fcos_check_options},
    {"simota", dl_assign_simota, "detloss_simota_options", sizeof(detloss_simota_options),
     dl_simota_options_default, dl_simota_check_options},
};

#define NUM_ASSIGNERS (sizeof assigners / sizeof assigners[0])

size_t dl_assigner_count(void) { return NUM_ASSIGNERS; }

const dl_assigner *dl_assigner_at(size_t i) { return i < NUM_ASSIGNERS ? &assigners[i] : NULL; }

const dl_assigner *dl_assigner_find(const char *name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < NUM_ASSIGNERS; i++)
    if (strcmp(assigners[i].name, name) == 0) return &assigners[i];
  return NULL;
}

const char *dl_assign_option_where(char *buf, const char *at, const char *name) {
  if (!at[0]) return name;
  snprintf(buf, DETLOSS_WHERE_MAX, "%s.%s", at, name);
  return buf;
}
