/*
 * fuzz_config.c - libFuzzer target: config parsing (the one schema of
 * configs/NAME.json: anchors inline or from anchors/, head, resize, eval,
 * matcher, sampler, box_coder, loss, dataset). Oracle (fuzz_oracle.h):
 *   - no crash, leak, hang or sanitizer report;
 *   - the status is OK or an input-fault class. A config names anchor and
 *     data-set files, resolved against the source tree, so DETLOSS_ERR_IO is
 *     allowed for a file that exists but cannot be read (a directory, say);
 *     a file that does not exist is bad input (DETLOSS_ERR_NOT_FOUND), not
 *     an I/O failure, so IO with "not found" / "No such file" in its message
 *     is a violation;
 *   - an error fills err properly and leaves *out NULL;
 *   - a parsed config yields a usable anchor source (exactly one kind).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss_json.h"
#include "fuzz_oracle.h"

#ifndef DETLOSS_SOURCE_DIR
#  define DETLOSS_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  const char *const search[] = {DETLOSS_SOURCE_DIR, NULL};
  detloss_config *cfg = NULL;
  detloss_error err;
  fuzz_error_init(&err);
  detloss_status st =
      detloss_config_parse((const char *)data, size, DETLOSS_SOURCE_DIR "/configs/fuzz.json",
                           search, &cfg, &err);
  fuzz_check_status("fuzz_config", "detloss_config_parse", st, &err, 1);
  if (st == DETLOSS_ERR_IO && (strstr(err.msg, "not found") || strstr(err.msg, "No such file")))
    fuzz_fail("fuzz_config",
              "a missing file reported as an I/O failure (expected NOT_FOUND): "
              "%s: %s",
              err.where, err.msg);
  if (st != DETLOSS_OK) {
    if (cfg != NULL) fuzz_fail("fuzz_config", "*out set on error");
    return 0;
  }
  if (cfg == NULL) fuzz_fail("fuzz_config", "status OK without a config");
  detloss_eval_anchors src = detloss_config_eval_anchors(cfg);
  int kinds = (src.grid != NULL) + (src.anchors != NULL) + (src.shapes != NULL);
  /* Anchor-based assigners (Max-IoU, ATSS) need exactly one anchor source;
   * point-based and dynamic ones (FCOS, SimOTA, task-aligned, Hungarian) may
   * have none. */
  int anchor_based = cfg->assigner.method == DETLOSS_EVAL_METHOD_MAX_IOU ||
                     cfg->assigner.method == DETLOSS_EVAL_METHOD_ATSS;
  if (anchor_based ? kinds != 1 : kinds > 1)
    fuzz_fail("fuzz_config", "%d anchor sources, expected %s", kinds,
              anchor_based ? "exactly one" : "at most one");
  detloss_config_free(cfg);
  return 0;
}
