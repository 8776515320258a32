/* case_loss_box.c - box losses of op `loss`, and op `embedding_loss` (placeholder). */
#include "internal.h"
#include "json/cases.h"

detloss_status dl_case_box_loss(const cJSON *c, const char *path, detloss_loss_kind kind,
                                dlj_buf *out, int num_threads, detloss_error *err) {
  (void)c; (void)kind; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "box losses are not implemented yet");
}
detloss_status dl_case_embedding_loss(const cJSON *c, const char *path, dlj_buf *out,
                                      int num_threads, detloss_error *err) {
  (void)c; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "op 'embedding_loss' is not implemented yet");
}
