/* test_assign.c - the assign interface (src/assign.h): the registry of assigners
 * by name, and its first implementation, "max_iou", giving the bits of
 * detloss_match / detloss_match_grid through the interface, plain and grid. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "assign.h"
#include "detloss/detloss.h"

static void the_registry_finds_max_iou_by_name_and_nothing_else(void **state) {
  (void)state;
  assert_true(dl_assigner_count() >= 1);
  const dl_assigner *a = dl_assigner_find("max_iou");
  assert_non_null(a);
  assert_ptr_equal(a->fn, dl_assign_max_iou);
  assert_string_equal(a->options_type, "detloss_match_options");
  assert_int_equal(a->options_size, sizeof(detloss_match_options));
  detloss_match_options o;
  memset(&o, 0xff, sizeof o);
  a->options_default(&o);
  detloss_match_options d = detloss_match_options_default();
  assert_memory_equal(&o, &d, sizeof o);
  for (size_t i = 0; i < dl_assigner_count(); i++)
    assert_ptr_equal(dl_assigner_find(dl_assigner_at(i)->name), dl_assigner_at(i));
  assert_null(dl_assigner_at(dl_assigner_count()));
  assert_null(dl_assigner_find("maxiou"));
  assert_null(dl_assigner_find(NULL));
}

/* A two-level torchvision grid on a 64x96 image, 3 ratios (1008 anchors). */
typedef struct grid {
  float sizes[2], ratios[3];
  detloss_anchor_level lv[2];
  detloss_anchor_config cfg;
} grid;

static void make_grid(grid *g) {
  memset(g, 0, sizeof *g);
  g->sizes[0] = 16.0f;
  g->sizes[1] = 40.0f;
  g->ratios[0] = 0.5f;
  g->ratios[1] = 1.0f;
  g->ratios[2] = 2.0f;
  size_t fh[2] = {8, 4}, fw[2] = {12, 6};
  for (int l = 0; l < 2; l++) {
    g->lv[l].feat_h = fh[l];
    g->lv[l].feat_w = fw[l];
    g->lv[l].stride_h = (float)(64 / fh[l]);
    g->lv[l].stride_w = (float)(96 / fw[l]);
    g->lv[l].sizes = &g->sizes[l];
    g->lv[l].num_sizes = 1;
    g->lv[l].ratios = g->ratios;
    g->lv[l].num_ratios = 3;
  }
  g->cfg.levels = g->lv;
  g->cfg.num_levels = 2;
  g->cfg.convention = DETLOSS_ANCHORS_TORCHVISION;
}

/* For each semantics, with crowd boxes, the border rule and the low-quality rule:
 * the assigner's gt_index and quality are bitwise detloss_match's matches and
 * max_iou (plain) and detloss_match_grid's (grid), and labels[a] is
 * gt_labels[gt_index[a]] for assigned anchors, -1 for the others. */
static void max_iou_through_the_interface_is_bitwise_detloss_match(void **state) {
  (void)state;
  grid g;
  make_grid(&g);
  size_t A;
  assert_int_equal(detloss_anchors_count(&g.cfg, &A, NULL), DETLOSS_OK);
  float *anchors = malloc(A * 4 * sizeof(float));
  assert_int_equal(detloss_anchors_generate(&g.cfg, anchors, A, NULL), DETLOSS_OK);
  enum { G = 7 };
  float gt[4 * G];
  uint8_t crowd[G];
  int64_t labels[G];
  dl_rng r = {11};
  for (size_t j = 0; j < G; j++) {
    float x = (float)dl_rng_uniform(&r, -8.0, 80.0), y = (float)dl_rng_uniform(&r, -8.0, 50.0);
    float w = (float)dl_rng_uniform(&r, 4.0, 40.0), h = (float)dl_rng_uniform(&r, 4.0, 30.0);
    gt[4 * j] = x;
    gt[4 * j + 1] = y;
    gt[4 * j + 2] = x + w;
    gt[4 * j + 3] = y + h;
    crowd[j] = j == 3;
    labels[j] = (int64_t)(10 + j);
  }
  int64_t *m = malloc(A * sizeof(int64_t)), *ma = malloc(A * sizeof(int64_t));
  int64_t *la = malloc(A * sizeof(int64_t));
  float *mi = malloc(A * sizeof(float)), *qa = malloc(A * sizeof(float));
  for (int s = 0; s < 3; s++)
    for (int border = 0; border < 2; border++)
      for (int path = 0; path < 2; path++) {
        detloss_match_options o = detloss_match_options_default();
        o.semantics = (detloss_match_semantics)s;
        o.crowd_ioa_thresh = 0.5f;
        o.allowed_border = border ? 0.0f : -1.0f;
        o.image_h = 64.0f;
        o.image_w = 96.0f;
        o.num_threads = 2;
        dl_assign_input in;
        memset(&in, 0, sizeof in);
        in.num_anchors = A;
        in.anchors = path ? NULL : anchors;
        in.anchor_config = path ? &g.cfg : NULL;
        in.num_gt = G;
        in.gt = gt;
        in.gt_labels = labels;
        in.gt_is_crowd = crowd;
        in.image_h = 64.0f;
        in.image_w = 96.0f;
        in.num_threads = 1;
        dl_assign_result out = {.gt_index = ma, .labels = la, .quality = qa};
        assert_int_equal(dl_assign_max_iou(&in, &o, &out, NULL), DETLOSS_OK);
        if (path)
          assert_int_equal(detloss_match_grid(&g.cfg, gt, G, crowd, m, mi, A, &o, NULL),
                           DETLOSS_OK);
        else
          assert_int_equal(detloss_match(anchors, A, gt, G, crowd, m, mi, &o, NULL), DETLOSS_OK);
        assert_memory_equal(ma, m, A * sizeof(int64_t));
        assert_memory_equal(qa, mi, A * sizeof(float));
        size_t npos = 0;
        for (size_t a = 0; a < A; a++) {
          assert_int_equal(la[a], m[a] >= 0 ? labels[m[a]] : -1);
          npos += m[a] >= 0;
        }
        assert_true(npos > 0);
      }
  free(anchors);
  free(m);
  free(ma);
  free(la);
  free(mi);
  free(qa);
}

/* Labels asked for without gt labels, a bad option, an output overlapping an
 * input: an error naming it, outputs untouched. */
static void errors_name_the_fault_and_leave_the_outputs_untouched(void **state) {
  (void)state;
  float anchors[8] = {0, 0, 10, 10, 5, 5, 15, 15}, gt[4] = {0, 0, 10, 10};
  int64_t labels[1] = {3}, m[2] = {77, 77}, la[2] = {77, 77};
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.num_anchors = 2;
  in.anchors = anchors;
  in.num_gt = 1;
  in.gt = gt;
  dl_assign_result out = {.gt_index = m, .labels = la};
  detloss_error e;
  assert_int_equal(dl_assign_max_iou(&in, NULL, &out, &e), DETLOSS_ERR_NULL);
  assert_string_equal(e.where, "gt_labels");
  in.gt_labels = labels;
  detloss_match_options o = detloss_match_options_default();
  o.high = 2.0f;
  assert_int_equal(dl_assign_max_iou(&in, &o, &out, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "high");
  dl_assign_result alias = {.gt_index = m, .labels = (int64_t *)(void *)anchors};
  assert_int_equal(dl_assign_max_iou(&in, NULL, &alias, &e), DETLOSS_ERR_SHAPE);
  assert_string_equal(e.where, "labels");
  for (int a = 0; a < 2; a++) {
    assert_int_equal(m[a], 77);
    assert_int_equal(la[a], 77);
  }
  /* and with valid inputs: anchor 0 has IoU 1 (positive), anchor 1 IoU 25/175 */
  assert_int_equal(dl_assign_max_iou(&in, NULL, &out, &e), DETLOSS_OK);
  assert_int_equal(m[0], 0);
  assert_int_equal(la[0], 3);
  assert_int_equal(m[1], DL_ASSIGN_BACKGROUND);
  assert_int_equal(la[1], -1);
}

/* The options check of a registry row names a fault where it is: under the
 * caller's path ("match.low" for a head's match options), or the bare option
 * for a top-level call; NULL options are the defaults, always valid. */
static void options_checks_name_the_option_under_the_callers_path(void **state) {
  (void)state;
  for (size_t i = 0; i < dl_assigner_count(); i++)
    assert_non_null(dl_assigner_at(i)->check_options);
  const dl_assigner *a = dl_assigner_find("max_iou");
  detloss_error err;
  assert_int_equal(a->check_options(NULL, "match", &err), DETLOSS_OK);
  detloss_match_options o = detloss_match_options_default();
  assert_int_equal(a->check_options(&o, "match", &err), DETLOSS_OK);
  o.low = 0.9f; /* above high = 0.7 */
  assert_int_equal(a->check_options(&o, "match", &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "match.low");
  assert_string_equal(err.msg, "is 0.9, above high (0.7)");
  assert_int_equal(a->check_options(&o, "", &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "low");
  o = detloss_match_options_default();
  o.allowed_border = NAN;
  assert_int_equal(a->check_options(&o, "cfg.matcher", &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "cfg.matcher.allowed_border");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(the_registry_finds_max_iou_by_name_and_nothing_else),
      cmocka_unit_test(max_iou_through_the_interface_is_bitwise_detloss_match),
      cmocka_unit_test(errors_name_the_fault_and_leave_the_outputs_untouched),
      cmocka_unit_test(options_checks_name_the_option_under_the_callers_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
