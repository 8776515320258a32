/* case_box.c - being written. */
#include "internal.h"
#include "json/cases.h"
detloss_status dl_case_iou(const cJSON *c, const char *path, dlj_buf *out, int t, detloss_error *err) { (void)c;(void)out;(void)t; return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path, "todo"); }
detloss_status dl_case_encode(const cJSON *c, const char *path, dlj_buf *out, int t, detloss_error *err) { (void)c;(void)out;(void)t; return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path, "todo"); }
detloss_status dl_case_decode(const cJSON *c, const char *path, dlj_buf *out, int t, detloss_error *err) { (void)c;(void)out;(void)t; return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path, "todo"); }
