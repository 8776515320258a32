/* test_registry.c - the core's name sets and option descriptor tables
 * (src/registry.c): every name round-trips name -> enum value -> name, the
 * aliases resolve, the descriptor defaults equal the _default() functions,
 * and the JSON layer's matcher reader follows the table's row order. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "json/names.h"
#include "testutil.h"

/* The enum values each set must cover, in order (the enums of detloss.h). */
static const size_t SET_SIZE[DETLOSS_NAME_SET_COUNT] = {DETLOSS_MATCH_MMDET + 1,
                                                        DETLOSS_RPN_PY_FASTER_RCNN + 1,
                                                        DETLOSS_HEAD_BOX_CIOU + 1,
                                                        DETLOSS_RETINA_NORM_CALLER + 1,
                                                        DETLOSS_CIOU + 1,
                                                        DETLOSS_ANCHORS_DETECTRON2 + 1,
                                                        DETLOSS_EVAL_WH_RATIO + 1,
                                                        DETLOSS_ATSS_ORIGINAL + 1,
                                                        DETLOSS_FCOS_TORCHVISION + 1};

static void names_round_trip(void **state) {
  (void)state;
  for (int s = 0; s < DETLOSS_NAME_SET_COUNT; s++) {
    detloss_name_set set = (detloss_name_set)s;
    size_t n = detloss_names_count(set);
    assert_int_equal(n, SET_SIZE[s]);
    assert_true(n <= DLJ_NAMES_MAX);
    assert_non_null(detloss_names_label(set));
    for (size_t i = 0; i < n; i++) {
      const detloss_name_info *r = detloss_names_get(set, i);
      assert_non_null(r);
      assert_int_equal(r->value, (int)i);
      assert_ptr_equal(detloss_names_find(set, r->name), r);
      assert_int_equal(dlj_name_index(set, r->name), (int)i);
      assert_string_equal(detloss_names_get(set, (size_t)r->value)->name, r->name);
      if (r->alias) assert_ptr_equal(detloss_names_find(set, r->alias), r);
      assert_true(r->doc[0] != '\0' && r->reference[0] != '\0');
      for (size_t j = 0; j < i; j++) /* names unique within a set */
        assert_true(strcmp(detloss_names_get(set, j)->name, r->name) != 0);
    }
    assert_null(detloss_names_get(set, n));
    assert_null(detloss_names_find(set, NULL));
    assert_null(detloss_names_find(set, "no-such-name"));
    assert_int_equal(dlj_name_index(set, "no-such-name"), -1);
  }
  assert_int_equal(detloss_names_count((detloss_name_set)DETLOSS_NAME_SET_COUNT), 0);
  assert_null(detloss_names_label((detloss_name_set)-1));
  /* The one alias: the hyphenated spelling of published py-faster-rcnn configs. */
  assert_int_equal(dlj_name_index(DETLOSS_NAMES_RPN_CONVENTION, "py-faster-rcnn"),
                   DETLOSS_RPN_PY_FASTER_RCNN);
  assert_int_equal(dlj_name_index(DETLOSS_NAMES_MATCH_SEMANTICS, "py-faster-rcnn"), -1);
  assert_int_equal(dlj_name_index(DETLOSS_NAMES_RETINA_NORMALIZER, "caller"),
                   DETLOSS_RETINA_NORM_CALLER);
}

static void name_lists_and_messages(void **state) {
  (void)state;
  char buf[128];
  dlj_name_list(buf, sizeof buf, DETLOSS_NAMES_MATCH_SEMANTICS);
  assert_string_equal(buf, "torchvision, detectron2 or mmdet");
  dlj_name_list(buf, sizeof buf, DETLOSS_NAMES_EVAL_METRIC);
  assert_string_equal(buf, "iou or wh_ratio");
  detloss_error e;
  assert_int_equal(dlj_unknown_name(&e, "config.box_loss", DETLOSS_NAMES_HEAD_BOX_LOSS, "gio", 1),
                   DETLOSS_ERR_UNKNOWN);
  assert_string_equal(e.where, "config.box_loss");
  assert_string_equal(e.msg, "unknown box loss 'gio' (did you mean 'giou'?)");
  dlj_unknown_name(&e, "convention", DETLOSS_NAMES_RPN_CONVENTION, "mmdet", 0);
  assert_string_equal(e.msg,
                      "unknown convention 'mmdet' (expected torchvision, detectron2 or "
                      "py_faster_rcnn)");
}

static double field_value(const detloss_option_field *f, const void *base, int elem) {
  const char *p = (const char *)base + f->offset;
  switch (f->type) {
    case DETLOSS_OPTION_F32: {
      float v;
      memcpy(&v, p, sizeof v);
      return v;
    }
    case DETLOSS_OPTION_F64: {
      double v;
      memcpy(&v, p, sizeof v);
      return v;
    }
    case DETLOSS_OPTION_BOOL:
    case DETLOSS_OPTION_ENUM: {
      int v;
      memcpy(&v, p, sizeof v);
      return v;
    }
    case DETLOSS_OPTION_I64: {
      int64_t v;
      memcpy(&v, p, sizeof v);
      return (double)v;
    }
    case DETLOSS_OPTION_U64: {
      uint64_t v;
      memcpy(&v, p, sizeof v);
      return (double)v;
    }
    case DETLOSS_OPTION_SIZE: {
      size_t v;
      memcpy(&v, p, sizeof v);
      return (double)v;
    }
    case DETLOSS_OPTION_F32X4: {
      float v[4];
      memcpy(v, p, sizeof v);
      return v[elem];
    }
  }
  return NAN;
}

/* Each row's default is the field's value in the struct's _default(), exactly
 * (a float field is compared with the row's default rounded to float). */
static void option_defaults_equal_default_functions(void **state) {
  (void)state;
  detloss_match_options m = detloss_match_options_default();
  detloss_sample_options s = detloss_sample_options_default();
  detloss_coder_options c = detloss_coder_options_default();
  detloss_rpn_options rpn = detloss_rpn_options_default();
  detloss_retina_options ret = detloss_retina_options_default();
  detloss_eval_options ev = detloss_eval_options_default();
  detloss_atss_options at = detloss_atss_options_default();
  detloss_fcos_options fc = detloss_fcos_options_default();
  const void *base[DETLOSS_OPTIONS_KIND_COUNT] = {&m, &s, &c, &rpn, &ret, &ev, &ev, &at, &fc};
  const size_t size[DETLOSS_OPTIONS_KIND_COUNT] = {sizeof m,   sizeof s,   sizeof c,
                                                   sizeof rpn, sizeof ret, sizeof ev,
                                                   sizeof ev,  sizeof at,  sizeof fc};
  for (int k = 0; k < DETLOSS_OPTIONS_KIND_COUNT; k++) {
    const detloss_options_info *t = detloss_options_info_get((detloss_options_kind)k);
    assert_non_null(t);
    assert_int_equal(t->size, size[k]);
    assert_true(t->num_fields > 0);
    for (size_t i = 0; i < t->num_fields; i++) {
      const detloss_option_field *f = &t->fields[i];
      assert_true(f->offset < t->size);
      assert_true(f->doc[0] != '\0' && f->field[0] != '\0' && f->key[0] != '\0');
      double want = f->type == DETLOSS_OPTION_F32 || f->type == DETLOSS_OPTION_F32X4
                        ? (double)(float)f->default_value
                        : f->default_value;
      for (int e = 0; e < (f->type == DETLOSS_OPTION_F32X4 ? 4 : 1); e++)
        assert_true(field_value(f, base[k], e) == want);
      if (f->type == DETLOSS_OPTION_ENUM) {
        assert_true(f->names >= 0 && f->names < DETLOSS_NAME_SET_COUNT);
        assert_non_null(detloss_names_get((detloss_name_set)f->names, (size_t)want));
      } else {
        assert_int_equal(f->names, -1);
        /* the default lies in the valid range */
        assert_true(f->lo_open ? want > f->lo : want >= f->lo);
        assert_true(f->hi_open ? want < f->hi : want <= f->hi);
      }
    }
  }
  assert_null(detloss_options_info_get((detloss_options_kind)DETLOSS_OPTIONS_KIND_COUNT));
  /* The RPN table's enum defaults name the default convention's box loss. */
  assert_int_equal(rpn.box_loss, DETLOSS_HEAD_BOX_SMOOTH_L1);
}

/* dlj_match_options walks the match table in dlj_match_keys's member order. */
static void match_table_follows_the_json_key_order(void **state) {
  (void)state;
  static const char *const order[] = {"high",
                                      "low",
                                      "allow_low_quality",
                                      "low_quality_min_iou",
                                      "semantics",
                                      "gt_max_assign_all",
                                      "crowd_ioa_thresh",
                                      "allowed_border"};
  const detloss_options_info *t = detloss_options_info_get(DETLOSS_OPTIONS_MATCH);
  assert_int_equal(t->num_fields, sizeof order / sizeof order[0]);
  assert_int_equal(sizeof(dlj_match_keys), sizeof order);
  for (size_t i = 0; i < t->num_fields; i++) assert_string_equal(t->fields[i].field, order[i]);
  /* Read through the table: renamed keys, absent keys keep their values,
   * a name resolved after the numbers. */
  cJSON *o = cJSON_Parse("{\"fg\": 0.6, \"sem\": \"mmdet\", \"alq\": false}");
  assert_non_null(o);
  dlj_match_keys keys = {"fg", NULL, "alq", NULL, "sem", NULL, NULL, NULL};
  detloss_match_options m = detloss_match_options_default();
  detloss_error e;
  assert_int_equal(dlj_match_options(o, "config", &keys, &m, &e), DETLOSS_OK);
  assert_true(m.high == 0.6f && m.low == 0.3f);
  assert_int_equal(m.allow_low_quality, 0);
  assert_int_equal(m.semantics, DETLOSS_MATCH_MMDET);
  cJSON_Delete(o);
  o = cJSON_Parse("{\"fg\": 0.6, \"sem\": \"mmdetection\"}");
  assert_int_equal(dlj_match_options(o, "config", &keys, &m, &e), DETLOSS_ERR_UNKNOWN);
  assert_string_equal(e.where, "config.sem");
  assert_string_equal(
      e.msg, "unknown semantics 'mmdetection' (expected torchvision, detectron2 or mmdet)");
  cJSON_Delete(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_round_trip),
      cmocka_unit_test(name_lists_and_messages),
      cmocka_unit_test(option_defaults_equal_default_functions),
      cmocka_unit_test(match_table_follows_the_json_key_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
