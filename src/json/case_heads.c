/* case_heads.c - compute ops `rpn_loss` and `retina_loss` (placeholder until the heads module lands). */
#include "internal.h"
#include "json/cases.h"

detloss_status dl_case_rpn_loss(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                                detloss_error *err) {
  (void)c; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "op 'rpn_loss' is not implemented yet");
}
detloss_status dl_case_retina_loss(const cJSON *c, const char *path, dlj_buf *out,
                                   int num_threads, detloss_error *err) {
  (void)c; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "op 'retina_loss' is not implemented yet");
}
