/* case_eval.c - compute op `anchor_eval` (placeholder until the anchor-eval module lands). */
#include "internal.h"
#include "json/cases.h"

detloss_status dl_case_anchor_eval(const cJSON *c, const char *path, dlj_buf *out,
                                   int num_threads, detloss_error *err) {
  (void)c; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "op 'anchor_eval' is not implemented yet");
}
