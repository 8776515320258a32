/*
 * fuzz_config.c - libFuzzer target: config parsing (the one schema of
 * configs/*.json: anchors inline or from anchors/, head, resize, eval,
 * matcher, sampler, box_coder, loss, dataset). Oracle: no crash, leak, hang
 * or sanitizer report; an error names a place and leaves *out NULL; a parsed
 * config yields a usable anchor source (exactly one kind).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss_json.h"

#ifndef DETLOSS_SOURCE_DIR
#  define DETLOSS_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  const char *const search[] = {DETLOSS_SOURCE_DIR, NULL};
  detloss_config *cfg = NULL;
  detloss_error err;
  memset(&err, 0, sizeof err);
  detloss_status st = detloss_config_parse((const char *)data, size,
                                           DETLOSS_SOURCE_DIR "/configs/fuzz.json", search, &cfg,
                                           &err);
  if (st != DETLOSS_OK) {
    if (cfg != NULL || !err.msg[0]) abort();
    return 0;
  }
  detloss_eval_anchors src = detloss_config_eval_anchors(cfg);
  int kinds = (src.grid != NULL) + (src.anchors != NULL) + (src.shapes != NULL);
  if (kinds != 1) abort();
  detloss_config_free(cfg);
  return 0;
}
