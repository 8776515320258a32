/* case_match.c - compute ops `anchors` and `match` (placeholder until the matching module lands). */
#include "json/cases.h"
#include "internal.h"

detloss_status dl_case_anchors(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                               detloss_error *err) {
  (void)c; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "op 'anchors' is not implemented yet");
}
detloss_status dl_case_match(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                             detloss_error *err) {
  (void)c; (void)out; (void)num_threads;
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path[0] ? path : "op", "op 'match' is not implemented yet");
}
