/*
 * config_internal.h - what the pieces of the config reader share: config.c
 * (top level, struct lifecycle), config_anchors.c (anchor sets),
 * config_resolve.c (files) and config_schema.c (descriptor tables). Not installed.
 */
#ifndef DETLOSS_CONFIG_INTERNAL_H
#define DETLOSS_CONFIG_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "detloss/detloss_json.h"
#include "json/evalcfg.h"

/* config_resolve.c */

/* Resolves a relative file name: (anchors: config dir/../anchors,) config dir,
 * then each search dir (anchors: dir/anchors first). A malloc'ed path, or NULL
 * if not found (*tried gets the first candidate for the message). */
char *dlj_resolve(const char *name, const char *cfg_path, const char *const *search, int anchors,
                  char *tried, size_t tried_cap);

/* config_anchors.c */

/* The limits an anchor set of a config must keep (detloss_config_load_ex):
 * image_size at most max_image_side, and at most max_anchors anchors for it.
 * prefix: "anchors." for an inline set, "" for a file (named by the caller). */
detloss_status dlj_check_set_limits(const dl_anchor_set *set, const char *prefix,
                                    const detloss_json_limits *lim, detloss_error *err);

/* config_schema.c */

/* The descriptor table of one config section (JSON key, type, offset, range, doc). */
typedef struct dlj_table dlj_table;
extern const dlj_table dlj_match_table;  /* "matcher": detloss_match_options */
extern const dlj_table dlj_sample_table; /* "sampler": detloss_sample_options */
extern const dlj_table dlj_coder_table;  /* "box_coder": detloss_coder_options */
extern const dlj_table dlj_rpn_table;    /* "loss", head rpn: detloss_rpn_options */
extern const dlj_table dlj_retina_table; /* "loss", head retinanet: detloss_retina_options */
extern const dlj_table dlj_eval_table;   /* "eval": detloss_eval_options */
extern const dlj_table dlj_resize_table; /* "resize": detloss_eval_options */
extern const dlj_table dlj_fcos_table;   /* "assigner" with method fcos: detloss_fcos_options */
extern const dlj_table dlj_atss_table;   /* "assigner" with method atss: detloss_atss_options */

/* Reads obj (at JSON path `path`) into the struct at dst through table t:
 * unknown keys, wrong types and out-of-range values are errors; absent keys
 * leave dst as it was. */
detloss_status dlj_read_table(const cJSON *obj, const char *path, const dlj_table *t, void *dst,
                              detloss_error *err);

#endif
