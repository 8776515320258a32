/* case_loss.c - compute op `loss` (placeholder until the losses module lands). */
#include "internal.h"
#include "json/cases.h"

detloss_status dl_case_loss(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                            detloss_error *err) {
  (void)c; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "op 'loss' is not implemented yet");
}
