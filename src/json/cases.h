/*
 * cases.h - the op handlers of `detloss compute` (../shared/spec/compute-cases.md).
 *
 * A handler reads its fields from the case object `c` (whose JSON path is
 * `path`), runs the library, and writes its result fields into `out`, which
 * is inside the result object after "op" (and "kind" where given) were
 * written: call dlj_key()/dlj_kv_*() for each field. On error it fills err
 * (where = JSON path of the fault) and returns the status; partial output is
 * discarded by the caller. num_threads is passed to every library call.
 * Handlers free everything they allocate on every path.
 */
#ifndef DETLOSS_CASES_H
#define DETLOSS_CASES_H

#include <cjson/cJSON.h>

#include "detloss/detloss.h"
#include "json/jread.h"
#include "json/jwrite.h"

/* The largest output array (in numbers) a compute case may ask for: 2^27
 * floats is 512 MiB in memory and gigabytes of JSON text. Larger requests are
 * DETLOSS_ERR_RANGE, not an allocation that the OS may kill the process for. */
#define DL_CASE_MAX_ELEMS ((size_t)1 << 27)

typedef detloss_status (*dl_case_fn)(const cJSON *c, const char *path, dlj_buf *out,
                                     int num_threads, detloss_error *err);

/* case_box.c */
detloss_status dl_case_iou(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                           detloss_error *err);
detloss_status dl_case_encode(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                              detloss_error *err);
detloss_status dl_case_decode(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                              detloss_error *err);
/* case_match.c */
detloss_status dl_case_anchors(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                               detloss_error *err);
detloss_status dl_case_match(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                             detloss_error *err);
/* case_loss.c: op `loss`; it hands the box losses (iou_loss, giou_loss,
 * diou_loss, ciou_loss) to dl_case_box_loss with the parsed kind. */
detloss_status dl_case_loss(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                            detloss_error *err);
/* case_loss_box.c: the box losses of op `loss`, and op `embedding_loss`. */
detloss_status dl_case_box_loss(const cJSON *c, const char *path, detloss_loss_kind kind,
                                dlj_buf *out, int num_threads, detloss_error *err);
detloss_status dl_case_embedding_loss(const cJSON *c, const char *path, dlj_buf *out,
                                      int num_threads, detloss_error *err);

/* case_heads.c: ops `rpn_loss` and `retina_loss`. */
detloss_status dl_case_rpn_loss(const cJSON *c, const char *path, dlj_buf *out, int num_threads,
                                detloss_error *err);
detloss_status dl_case_retina_loss(const cJSON *c, const char *path, dlj_buf *out,
                                   int num_threads, detloss_error *err);
/* case_eval.c: op `anchor_eval`. */
detloss_status dl_case_anchor_eval(const cJSON *c, const char *path, dlj_buf *out,
                                   int num_threads, detloss_error *err);

#endif /* DETLOSS_CASES_H */
