/*
 * assign.c - the registry of assigners (assign.h): one row per assigner, read by
 * name. Adding an assigner adds one row here.
 */
#include "assign.h"

#include <string.h>

static void max_iou_defaults(void *o) {
  *(detloss_match_options *)o = detloss_match_options_default();
}

static void atss_defaults(void *o) { *(detloss_atss_options *)o = detloss_atss_options_default(); }

static void fcos_defaults(void *o) { *(detloss_fcos_options *)o = detloss_fcos_options_default(); }

static const dl_assigner assigners[] = {
    {"max_iou", dl_assign_max_iou, "detloss_match_options", sizeof(detloss_match_options),
     max_iou_defaults},
    {"atss", dl_assign_atss, "detloss_atss_options", sizeof(detloss_atss_options), atss_defaults},
    {"fcos", dl_assign_fcos, "detloss_fcos_options", sizeof(detloss_fcos_options), fcos_defaults},
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
