/*
 * fuzz_dataset.c - libFuzzer target: data-set loading in both formats (the
 * common format of data/README.md and COCO instances_*.json), then the
 * anchor evaluation of every loaded data set against a small fixed anchor
 * set (clipping, skipping, resizing and size classes on hostile boxes).
 * Oracle (fuzz_oracle.h): no crash, leak, hang or sanitizer report; both
 * calls end in OK or an input-fault class (never NOMEM, IO, UNSUPPORTED); an
 * error fills err properly and leaves *out NULL; a report's counts add up.
 * Differential oracle: the stream reader (detloss_dataset_parse) agrees with
 * the tree reader (dlj_parse + dl_dataset_read, still used for data sets
 * inside compute cases): the same status, where and message, or the same
 * arrays; except for the faults only the file reader checks (an inverted box,
 * an image side above max_image_side).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss_json.h"
#include "fuzz_oracle.h"
#include "json/evalcfg.h"
#include "json/jread.h"

static void same_as_tree(const uint8_t *data, size_t size, detloss_status st,
                         const detloss_error *err, const detloss_dataset *ds) {
  if (st != DETLOSS_OK &&
      (strstr(err->msg, "x2 < x1") || strstr(err->msg, "y2 < y1") ||
       strstr(err->msg, "negative width") || strstr(err->msg, "negative height") ||
       strstr(err->msg, "max_image_side")))
    return;
  cJSON *root = NULL;
  detloss_error e2;
  fuzz_error_init(&e2);
  detloss_dataset t;
  memset(&t, 0, sizeof t);
  detloss_status s2 = dlj_parse((const char *)data, size, "fuzz.json", &root, &e2);
  if (s2 == DETLOSS_OK) {
    s2 = dl_dataset_read(root, "", &t, &e2);
    cJSON_Delete(root);
    if (s2 != DETLOSS_OK) dl_where_file(&e2, "fuzz.json");
  }
  if (s2 != st)
    fuzz_fail("fuzz_dataset", "stream status %d (%s: %s), tree %d (%s: %s)", (int)st,
              st ? err->where : "", st ? err->msg : "", (int)s2, e2.where, e2.msg);
  if (st != DETLOSS_OK) {
    if (strcmp(err->where, e2.where) != 0 || strcmp(err->msg, e2.msg) != 0)
      fuzz_fail("fuzz_dataset", "stream '%s: %s', tree '%s: %s'", err->where, err->msg, e2.where,
                e2.msg);
    return;
  }
  if (t.num_images != ds->num_images || t.num_boxes != ds->num_boxes || t.is_coco != ds->is_coco ||
      memcmp(t.image_hw, ds->image_hw, 2 * t.num_images * sizeof(float)) != 0 ||
      memcmp(t.box_start, ds->box_start, (t.num_images + 1) * sizeof(size_t)) != 0 ||
      memcmp(t.image_id, ds->image_id, t.num_images * sizeof(int64_t)) != 0 ||
      (t.num_boxes && (memcmp(t.boxes, ds->boxes, 4 * t.num_boxes * sizeof(float)) != 0 ||
                       memcmp(t.is_crowd, ds->is_crowd, t.num_boxes) != 0)))
    fuzz_fail("fuzz_dataset", "stream and tree readers read different data sets");
  dl_dataset_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  detloss_dataset *ds = NULL;
  detloss_error err;
  fuzz_error_init(&err);
  detloss_status st = detloss_dataset_parse((const char *)data, size, "fuzz.json", &ds, &err);
  fuzz_check_status("fuzz_dataset", "detloss_dataset_parse", st, &err, 0);
  same_as_tree(data, size, st, &err, ds);
  if (st != DETLOSS_OK) {
    if (ds != NULL) fuzz_fail("fuzz_dataset", "*out set on error");
    return 0;
  }
  if (ds == NULL) fuzz_fail("fuzz_dataset", "status OK without a data set");
  /* 9 anchors: 3 sizes x 3 ratios around (64, 64) */
  static const float anchors[9][4] = {{40, 52, 88, 76},    {48, 48, 80, 80}, {52, 40, 76, 88},
                                      {16, 40, 112, 88},   {32, 32, 96, 96}, {40, 16, 88, 112},
                                      {-32, 16, 160, 112}, {0, 0, 128, 128}, {16, -32, 112, 160}};
  detloss_eval_dataset view = detloss_dataset_view(ds);
  detloss_eval_anchors src = {NULL, &anchors[0][0], 9, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  o.num_threads = 1;
  o.resize_min_size = (size & 1) ? 800.0f : 0.0f;
  o.resize_max_size = (size & 2) ? 1333.0f : 0.0f;
  detloss_eval_gt *gt = malloc((ds->num_boxes ? ds->num_boxes : 1) * sizeof *gt);
  detloss_eval_report *rep = malloc(sizeof *rep);
  if (gt && rep) {
    fuzz_error_init(&err);
    st = detloss_anchor_eval(&view, &src, gt, rep, &o, &err);
    fuzz_check_status("fuzz_dataset", "detloss_anchor_eval", st, &err, 0);
    if (st == DETLOSS_OK) {
      if (rep->all.num_gt > ds->num_boxes) fuzz_fail("fuzz_dataset", "more gt than boxes");
      if (rep->all.num_recalled > rep->all.num_gt)
        fuzz_fail("fuzz_dataset", "more recalled than gt");
      size_t by = rep->by_size[0].num_gt + rep->by_size[1].num_gt + rep->by_size[2].num_gt;
      if (by != rep->all.num_gt)
        fuzz_fail("fuzz_dataset", "size classes hold %zu gt, the total is %zu", by,
                  rep->all.num_gt);
    }
  }
  free(gt);
  free(rep);
  detloss_dataset_free(ds);
  return 0;
}
