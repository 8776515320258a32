/*
 * assign.c - the registry of assigners (assign.h): one row per assigner, read by
 * name. Adding an assigner adds one row here.
 */
#include "assign.h"

#include <string.h>

static void max_iou_defaults(void *o) {
  *(detloss_match_options *)o = detloss_match_options_default();
}

static const dl_assigner assigners[] = {
    {"max_iou", dl_assign_max_iou, "detloss_match_options", sizeof(detloss_match_options),
     max_iou_defaults, dl_match_check_options},
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
