/*
 * config.c - run configs: one JSON schema for anchors, matcher, sampler, box
 * coder, loss and evaluation settings (detloss_json.h documents it).
 *
 * House style (STYLE.md "Options, buffers, threads"): one descriptor table
 * per options struct (JSON key, type, offset, range, doc); the default is
 * read from the struct's own _default() value, so it is written once. The
 * reader, the range checks and detloss_config_describe() (--help-config and
 * docs) all read the tables.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/names.h"

void dl_where_file(detloss_error *err, const char *file) {
  if (!err || !file || !file[0]) return;
  char tmp[DETLOSS_WHERE_MAX];
  if (err->where[0])
    snprintf(tmp, sizeof tmp, "%s: %s", file, err->where);
  else
    snprintf(tmp, sizeof tmp, "%s", file);
  memcpy(err->where, tmp, sizeof tmp);
}

detloss_status dl_read_file(const char *path, size_t max_bytes, char **text, size_t *len,
                            detloss_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return dl_fail(err,
                   errno == ENOENT || errno == ENOTDIR ? DETLOSS_ERR_NOT_FOUND : DETLOSS_ERR_IO,
                   path, "cannot open: %s", strerror(errno));
  detloss_status st = dlj_read_stream(f, path, max_bytes, text, len, err);
  fclose(f);
  return st;
}

static void *set_alloc(dl_anchor_set *s, size_t bytes) {
  if (s->nmem >= sizeof s->mem / sizeof s->mem[0]) return NULL;
  void *p = malloc(bytes ? bytes : 1);
  if (p) s->mem[s->nmem++] = p;
  return p;
}

void dl_anchor_set_free(dl_anchor_set *s) {
  for (size_t i = 0; i < s->nmem; i++) free(s->mem[i]);
  memset(s, 0, sizeof *s);
}

/* A flat array of finite numbers > 0 (sizes, ratios, strides). */
static detloss_status positive_list(const cJSON *v, const char *where, dl_anchor_set *s,
                                    float **out, size_t *n, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of numbers > 0");
  size_t len = (size_t)cJSON_GetArraySize(v), i = 0;
  DL_RETURN_ERROR_IF(len == 0, err, DETLOSS_ERR_SHAPE, where, "expected at least one number");
  float *p = set_alloc(s, len * sizeof(float));
  DL_RETURN_ERROR_IF(!p, err, DETLOSS_ERR_NOMEM, where, "out of memory");
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    char sub[DETLOSS_WHERE_MAX];
    dlj_index(sub, sizeof sub, where, i);
    DL_RETURN_ERROR_IF(!cJSON_IsNumber(e), err, DETLOSS_ERR_TYPE, sub, "expected a number > 0");
    DL_RETURN_ERROR_IF(!isfinite(e->valuedouble) || fabs(e->valuedouble) > (double)FLT_MAX, err,
                       DETLOSS_ERR_NONFINITE, sub, "expected a finite number");
    DL_RETURN_ERROR_IF(!(e->valuedouble > 0.0), err, DETLOSS_ERR_RANGE, sub,
                       "expected a number > 0, got %g", e->valuedouble);
    p[i] = (float)e->valuedouble;
  }
  *out = p;
  *n = len;
  return DETLOSS_OK;
}

/* Rows of `width` finite numbers (shapes: > 0). */
static detloss_status rows_of(const cJSON *obj, const char *key, const char *path, size_t width,
                              int positive, dl_anchor_set *s, float **out, size_t *n,
                              detloss_error *err) {
  float *rows = NULL;
  size_t cnt = 0;
  DL_FORWARD_IF_ERROR(dlj_rows(obj, key, path, 1, width, &rows, &cnt, err));
  if (cnt == 0) {
    free(rows);
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, key);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected at least one row of %zu numbers",
                   width);
  }
  if (s->nmem >= sizeof s->mem / sizeof s->mem[0]) {
    free(rows);
    return dl_fail(err, DETLOSS_ERR_NOMEM, path, "too many arrays");
  }
  s->mem[s->nmem++] = rows;
  if (positive)
    for (size_t i = 0; i < cnt * width; i++)
      if (!(rows[i] > 0.0f)) {
        char where[DETLOSS_WHERE_MAX], w2[DETLOSS_WHERE_MAX];
        dlj_join(w2, sizeof w2, path, key);
        dlj_index(where, sizeof where, w2, i / width);
        return dl_fail(err, DETLOSS_ERR_RANGE, where, "expected numbers > 0, got %g",
                       (double)rows[i]);
      }
  *out = rows;
  *n = cnt;
  return DETLOSS_OK;
}

static detloss_status read_stride(const cJSON *lv, const char *path, detloss_anchor_level *L,
                                  detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "stride");
  const cJSON *v = dlj_field(lv, "stride");
  DL_RETURN_ERROR_IF(!v, err, DETLOSS_ERR_MISSING, where,
                     "missing (expected a number > 0, or [stride_h, stride_w])");
  double h, w;
  if (cJSON_IsArray(v)) {
    DL_RETURN_ERROR_IF(cJSON_GetArraySize(v) != 2 || !cJSON_IsNumber(v->child) ||
                           !cJSON_IsNumber(v->child->next),
                       err, DETLOSS_ERR_SHAPE, where, "expected [stride_h, stride_w]");
    h = v->child->valuedouble;
    w = v->child->next->valuedouble;
  } else {
    DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where,
                       "expected a number > 0, or [stride_h, stride_w]");
    h = w = v->valuedouble;
  }
  DL_RETURN_ERROR_IF(!isfinite(h) || !isfinite(w), err, DETLOSS_ERR_NONFINITE, where,
                     "expected a finite number");
  DL_RETURN_ERROR_IF(!(h > 0.0 && w > 0.0 && h < 1e6 && w < 1e6), err, DETLOSS_ERR_RANGE, where,
                     "expected a stride in (0, 1e6), got %g x %g", h, w);
  L->stride_h = (float)h;
  L->stride_w = (float)w;
  return DETLOSS_OK;
}

static const char *const LEVEL_KEYS[] = {"stride",      "sizes",       "aspect_ratios",
                                         "shapes",      "base",        "base_plus_one",
                                         "shapes_grid", "feature_map", NULL};
static const char *const SET_KEYS[] = {"name",   "source",        "notes",  "convention",
                                       "offset", "image_size",    "levels", "strides",
                                       "sizes",  "aspect_ratios", "boxes",  "shapes",
                                       NULL};

/* A key that the form of the object does not use: an error rather than a
 * silently ignored value ("sizes" next to "base", "sizes" next to "levels"). */
static detloss_status unused_key(const cJSON *obj, const char *path, const char *key,
                                 const char *why, detloss_error *err) {
  if (!dlj_field(obj, key)) return DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "not used %s", why);
}

static detloss_status read_level(const cJSON *lv, const char *path, dl_anchor_set *s,
                                 detloss_anchor_level *L, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(lv), err, DETLOSS_ERR_TYPE, path, "expected a level object");
  DL_FORWARD_IF_ERROR(dlj_check_keys(lv, path, LEVEL_KEYS, err));
  /* A level is one of: base, shapes, or sizes with aspect_ratios. */
  if (dlj_field(lv, "base")) {
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "shapes", "with base", err));
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "sizes", "with base", err));
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "aspect_ratios", "with base", err));
  } else if (dlj_field(lv, "shapes")) {
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "sizes", "with shapes", err));
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "aspect_ratios", "with shapes", err));
  }
  memset(L, 0, sizeof *L);
  DL_FORWARD_IF_ERROR(read_stride(lv, path, L, err));
  char where[DETLOSS_WHERE_MAX];
  if (dlj_field(lv, "base")) {
    float *b;
    size_t n;
    DL_FORWARD_IF_ERROR(rows_of(lv, "base", path, 4, 0, s, &b, &n, err));
    L->base = b;
    L->num_base = n;
  } else if (dlj_field(lv, "shapes")) {
    float *b;
    size_t n;
    DL_FORWARD_IF_ERROR(rows_of(lv, "shapes", path, 2, 1, s, &b, &n, err));
    L->shapes = b;
    L->num_shapes = n;
  } else {
    const cJSON *sz = dlj_field(lv, "sizes"), *ar = dlj_field(lv, "aspect_ratios");
    dlj_join(where, sizeof where, path, sz ? "aspect_ratios" : "sizes");
    DL_RETURN_ERROR_IF(!sz || !ar, err, DETLOSS_ERR_MISSING, where,
                       "missing (a level needs sizes and aspect_ratios, or shapes, or base)");
    float *p;
    size_t n;
    dlj_join(where, sizeof where, path, "sizes");
    DL_FORWARD_IF_ERROR(positive_list(sz, where, s, &p, &n, err));
    L->sizes = p;
    L->num_sizes = n;
    dlj_join(where, sizeof where, path, "aspect_ratios");
    DL_FORWARD_IF_ERROR(positive_list(ar, where, s, &p, &n, err));
    L->ratios = p;
    L->num_ratios = n;
  }
  return DETLOSS_OK;
}

detloss_status dl_anchor_set_read(const cJSON *obj, const char *path, dl_anchor_set *s,
                                  detloss_error *err) {
  memset(s, 0, sizeof *s);
  detloss_status st = DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
#define TRY(x)                                                                                     \
  do {                                                                                             \
    st = (x);                                                                                      \
    if (st != DETLOSS_OK) goto fail;                                                               \
  } while (0)
  if (!cJSON_IsObject(obj)) {
    st = dl_fail(err, DETLOSS_ERR_TYPE, path[0] ? path : "(root)", "expected an anchor set object");
    goto fail;
  }
  TRY(dlj_check_keys(obj, path, SET_KEYS, err));
  TRY(dlj_string(obj, "name", path, 0, &s->name, err));
  TRY(dlj_string(obj, "source", path, 0, &s->source, err));
  {
    const char *notes = NULL;
    TRY(dlj_string(obj, "notes", path, 0, &notes, err));
  }
  s->grid.convention = DETLOSS_ANCHORS_TORCHVISION;
  {
    const char *conv = NULL;
    TRY(dlj_string(obj, "convention", path, 0, &conv, err));
    if (conv && strcmp(conv, "detectron2") == 0) {
      s->grid.convention = DETLOSS_ANCHORS_DETECTRON2;
    } else if (conv && strcmp(conv, "torchvision") != 0) {
      dlj_join(where, sizeof where, path, "convention");
      st = dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown convention '%s' (expected torchvision or detectron2)", conv);
      goto fail;
    }
  }
  TRY(dlj_float(obj, "offset", path, 0, &s->grid.offset, err));
  if (!(s->grid.offset >= 0.0f && s->grid.offset < 1.0f)) {
    dlj_join(where, sizeof where, path, "offset");
    st = dl_fail(err, DETLOSS_ERR_RANGE, where, "expected a number in [0, 1), got %g",
                 (double)s->grid.offset);
    goto fail;
  }
  if (dlj_field(obj, "image_size")) {
    float *hw;
    size_t n;
    dlj_join(where, sizeof where, path, "image_size");
    TRY(positive_list(dlj_field(obj, "image_size"), where, s, &hw, &n, err));
    if (n != 2) {
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [H, W], got %zu numbers", n);
      goto fail;
    }
    s->image_size[0] = hw[0];
    s->image_size[1] = hw[1];
  }
  int has_levels = dlj_field(obj, "levels") != NULL,
      has_strides = dlj_field(obj, "strides") != NULL;
  int has_boxes = dlj_field(obj, "boxes") != NULL, has_shapes = dlj_field(obj, "shapes") != NULL;
  if (has_levels + has_strides + has_boxes + has_shapes != 1) {
    st = dl_fail(err,
                 has_levels + has_strides + has_boxes + has_shapes ? DETLOSS_ERR_SHAPE
                                                                   : DETLOSS_ERR_MISSING,
                 path[0] ? path : "anchors",
                 "expected exactly one of levels, strides (with sizes and aspect_ratios), boxes, "
                 "shapes");
    goto fail;
  }
  if (!has_strides) {
    /* sizes and aspect_ratios at the top belong to the strides form only */
    TRY(unused_key(obj, path, "sizes", "without strides (levels carry their own)", err));
    TRY(unused_key(obj, path, "aspect_ratios", "without strides (levels carry their own)", err));
  }
  if (has_levels) {
    const cJSON *lv = dlj_field(obj, "levels");
    dlj_join(where, sizeof where, path, "levels");
    if (!cJSON_IsArray(lv) || cJSON_GetArraySize(lv) == 0) {
      st = dl_fail(err, cJSON_IsArray(lv) ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_TYPE, where,
                   "expected a non-empty array of level objects");
      goto fail;
    }
    size_t n = (size_t)cJSON_GetArraySize(lv), i = 0;
    detloss_anchor_level *L = set_alloc(s, n * sizeof *L);
    if (!L) {
      st = dl_fail(err, DETLOSS_ERR_NOMEM, where, "out of memory");
      goto fail;
    }
    for (const cJSON *e = lv->child; e; e = e->next, i++) {
      char sub[DETLOSS_WHERE_MAX];
      dlj_index(sub, sizeof sub, where, i);
      TRY(read_level(e, sub, s, &L[i], err));
    }
    s->grid.levels = L;
    s->grid.num_levels = n;
  } else if (has_strides) {
    /* compute-cases.md anchor_config: strides [L], sizes [[...] x L],
     * aspect_ratios [[...] x L] or one list for every level. */
    float *strides;
    size_t n;
    dlj_join(where, sizeof where, path, "strides");
    TRY(positive_list(dlj_field(obj, "strides"), where, s, &strides, &n, err));
    const cJSON *sz = dlj_field(obj, "sizes"), *ar = dlj_field(obj, "aspect_ratios");
    if (!sz || !ar) {
      dlj_join(where, sizeof where, path, sz ? "aspect_ratios" : "sizes");
      st = dl_fail(err, DETLOSS_ERR_MISSING, where, "missing (expected one list per level)");
      goto fail;
    }
    detloss_anchor_level *L = set_alloc(s, n * sizeof *L);
    if (!L) {
      st = dl_fail(err, DETLOSS_ERR_NOMEM, where, "out of memory");
      goto fail;
    }
    int ar_shared = cJSON_IsArray(ar) && ar->child && cJSON_IsNumber(ar->child);
    dlj_join(where, sizeof where, path, "sizes");
    if (!cJSON_IsArray(sz) || (size_t)cJSON_GetArraySize(sz) != n) {
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected %zu lists (one per stride)", n);
      goto fail;
    }
    if (!ar_shared && (!cJSON_IsArray(ar) || (size_t)cJSON_GetArraySize(ar) != n)) {
      dlj_join(where, sizeof where, path, "aspect_ratios");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where,
                   "expected %zu lists (one per stride) or one list of numbers", n);
      goto fail;
    }
    const cJSON *se = sz->child, *ae = ar->child;
    for (size_t l = 0; l < n; l++, se = se->next) {
      char sub[DETLOSS_WHERE_MAX], w2[DETLOSS_WHERE_MAX];
      memset(&L[l], 0, sizeof L[l]);
      L[l].stride_h = L[l].stride_w = strides[l];
      dlj_join(w2, sizeof w2, path, "sizes");
      dlj_index(sub, sizeof sub, w2, l);
      float *p;
      size_t m;
      TRY(positive_list(se, sub, s, &p, &m, err));
      L[l].sizes = p;
      L[l].num_sizes = m;
      dlj_join(w2, sizeof w2, path, "aspect_ratios");
      if (ar_shared) {
        snprintf(sub, sizeof sub, "%s", w2);
        TRY(positive_list(ar, sub, s, &p, &m, err));
      } else {
        dlj_index(sub, sizeof sub, w2, l);
        TRY(positive_list(ae, sub, s, &p, &m, err));
        ae = ae->next;
      }
      L[l].ratios = p;
      L[l].num_ratios = m;
    }
    s->grid.levels = L;
    s->grid.num_levels = n;
    s->from_strides = 1;
  } else if (has_boxes) {
    TRY(rows_of(obj, "boxes", path, 4, 0, s, &s->boxes, &s->num_boxes, err));
  } else {
    TRY(rows_of(obj, "shapes", path, 2, 1, s, &s->shapes, &s->num_shapes, err));
  }
  if (s->grid.num_levels > 0) {
    /* Validate with the library (sizes, ratios, base anchors, counts). */
    size_t k;
    for (size_t l = 0; l < s->grid.num_levels; l++) {
      st = detloss_anchors_level_base(&s->grid, l, NULL, 0, &k, err);
      if (st != DETLOSS_OK) {
        dlj_prefix_where(err, path);
        goto fail;
      }
    }
    if (s->grid.num_levels > DETLOSS_EVAL_MAX_LEVELS) {
      dlj_join(where, sizeof where, path, "levels");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "%zu levels, at most %d", s->grid.num_levels,
                   DETLOSS_EVAL_MAX_LEVELS);
      goto fail;
    }
  }
#undef TRY
  return DETLOSS_OK;
fail:
  dl_anchor_set_free(s);
  return st;
}

typedef enum dtype {
  DT_F32,  /* float */
  DT_F64,  /* double */
  DT_BOOL, /* int, 0 or 1 */
  DT_I64,  /* int64_t */
  DT_U64,  /* uint64_t */
  DT_SIZE, /* size_t */
  DT_ENUM, /* an enum (int-sized), by name */
  DT_F32X4 /* float[4] */
} dtype;

typedef struct desc {
  const char *key;
  dtype type;
  size_t offset;
  double lo, hi; /* range (inclusive unless the open flags say otherwise) */
  int lo_open, hi_open;
  const char *const *names; /* DT_ENUM: names in enum order, NULL-terminated */
  const char *doc;
} desc;

#define INF_ HUGE_VAL
#define SEMANTICS dlj_semantics_names
static const char *const METRICS[] = {"iou", "wh_ratio", NULL};
#define RPN_CONV dlj_rpn_convention_names
#define BOX_LOSS dlj_box_loss_names
#define RETINA_NORM dlj_normalizer_names

#define OFF(T, f) offsetof(T, f)
static const desc MATCH_DESC[] = {
    {"high", DT_F32, OFF(detloss_match_options, high), 0, 1, 0, 0, NULL, "IoU >= high: positive"},
    {"low", DT_F32, OFF(detloss_match_options, low), 0, 1, 0, 0, NULL,
     "IoU < low: negative; between low and high: ignored (<= high)"},
    {"allow_low_quality", DT_BOOL, OFF(detloss_match_options, allow_low_quality), 0, 1, 0, 0, NULL,
     "each gt's best anchors become positives (torchvision allow_low_quality_matches)"},
    {"low_quality_min_iou", DT_F32, OFF(detloss_match_options, low_quality_min_iou), 0, 1, 0, 0,
     NULL, "promote a gt's best anchors only if their IoU >= this (mmdet min_pos_iou)"},
    {"semantics", DT_ENUM, OFF(detloss_match_options, semantics), 0, 0, 0, 0, SEMANTICS,
     "matcher semantics: torchvision, detectron2 or mmdet"},
    {"gt_max_assign_all", DT_BOOL, OFF(detloss_match_options, gt_max_assign_all), 0, 1, 0, 0, NULL,
     "mmdet: promote all tied best anchors (else the first)"},
    {"crowd_ioa_thresh", DT_F32, OFF(detloss_match_options, crowd_ioa_thresh), -INF_, 1, 1, 0, NULL,
     "anchors covered by a crowd box more than this are ignored (< 0: never)"},
    {"allowed_border", DT_F32, OFF(detloss_match_options, allowed_border), -INF_, INF_, 1, 1, NULL,
     "ignore anchors more than this outside the image (py-faster-rcnn; < 0: off)"},
};
static const desc SAMPLE_DESC[] = {
    {"batch_size_per_image", DT_I64, OFF(detloss_sample_options, batch_size_per_image), 0, 1e9, 0,
     0, NULL, "anchors sampled per image"},
    {"positive_fraction", DT_F64, OFF(detloss_sample_options, positive_fraction), 0, 1, 0, 0, NULL,
     "at most this fraction of the sample is positive"},
    {"seed", DT_U64, OFF(detloss_sample_options, seed), 0, 1.8e19, 0, 0, NULL,
     "seed of the counter-based sampler"},
};
static const desc CODER_DESC[] = {
    {"weights", DT_F32X4, OFF(detloss_coder_options, weights), 0, INF_, 1, 1, NULL,
     "(wx, wy, ww, wh) delta weights"},
    {"clip", DT_F32, OFF(detloss_coder_options, clip), 0, INF_, 1, 1, NULL,
     "decode: dw, dh clamped to at most this (ln(1000/16))"},
};
static const desc RPN_DESC[] = {
    {"convention", DT_ENUM, OFF(detloss_rpn_options, convention), 0, 0, 0, 0, RPN_CONV,
     "normalizer convention; also selects that library's defaults (detloss_rpn_options_preset)"},
    {"box_loss", DT_ENUM, OFF(detloss_rpn_options, box_loss), 0, 0, 0, 0, BOX_LOSS,
     "box regression loss"},
    {"smooth_l1_beta", DT_F32, OFF(detloss_rpn_options, smooth_l1_beta), 0, INF_, 0, 1, NULL,
     "smooth-L1 beta (0 = L1)"},
};
static const desc RETINA_DESC[] = {
    {"alpha", DT_F32, OFF(detloss_retina_options, alpha), -INF_, 1, 1, 0, NULL,
     "focal alpha (< 0 disables the weighting)"},
    {"gamma", DT_F32, OFF(detloss_retina_options, gamma), 0, INF_, 0, 1, NULL, "focal gamma"},
    {"box_loss", DT_ENUM, OFF(detloss_retina_options, box_loss), 0, 0, 0, 0, BOX_LOSS,
     "box regression loss"},
    {"smooth_l1_beta", DT_F32, OFF(detloss_retina_options, smooth_l1_beta), 0, INF_, 0, 1, NULL,
     "smooth-L1 beta (0 = L1)"},
    {"normalizer", DT_ENUM, OFF(detloss_retina_options, normalizer), 0, 0, 0, 0, RETINA_NORM,
     "per-image max(1, positives) (torchvision), detectron2's EMA, or the caller's number"},
    {"ema_momentum", DT_F32, OFF(detloss_retina_options, ema_momentum), 0, 1, 0, 0, NULL,
     "detectron2_ema momentum"},
    {"caller_normalizer", DT_F64, OFF(detloss_retina_options, caller_normalizer), 0, INF_, 1, 1,
     NULL, "caller: the batch sums are divided by this (e.g. the positives of all workers)"},
};
static const desc EVAL_DESC[] = {
    {"metric", DT_ENUM, OFF(detloss_eval_options, metric), 0, 0, 0, 0, METRICS,
     "iou, or wh_ratio (YOLOv5 autoanchor shape ratio)"},
    {"iou_thresh", DT_F32, OFF(detloss_eval_options, iou_thresh), 0, 1, 1, 0, NULL,
     "an anchor fits a gt when IoU >= this"},
    {"ratio_thresh", DT_F32, OFF(detloss_eval_options, ratio_thresh), 1, INF_, 0, 1, NULL,
     "wh_ratio: fits when r > 1/ratio_thresh (YOLOv5 anchor_t)"},
    {"positives", DT_BOOL, OFF(detloss_eval_options, count_positives), 0, 1, 0, 0, NULL,
     "count each gt's positives under the matcher"},
    {"worst", DT_SIZE, OFF(detloss_eval_options, num_worst), 0, DETLOSS_EVAL_MAX_WORST, 0, 0, NULL,
     "worst-covered gts to list"},
};
static const desc RESIZE_DESC[] = {
    {"min_size", DT_F32, OFF(detloss_eval_options, resize_min_size), 0, 1e6, 0, 0, NULL,
     "short side target (with max_size: torchvision min(min/short, max/long)); 0 = off"},
    {"max_size", DT_F32, OFF(detloss_eval_options, resize_max_size), 0, 1e6, 0, 0, NULL,
     "long side target (alone: the long side becomes exactly this, YOLO imgsz); 0 = off"},
};
#define NDESC(t) (sizeof t / sizeof t[0])

static const char *type_doc(const desc *d, char *buf, size_t cap) {
  switch (d->type) {
    case DT_BOOL: return "true|false";
    case DT_ENUM: {
      size_t n = 0;
      buf[0] = '\0';
      for (size_t i = 0; d->names[i]; i++) {
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", i ? "|" : "", d->names[i]);
        if (n >= cap) break;
      }
      return buf;
    }
    case DT_F32X4:
      snprintf(buf, cap, "[4 numbers in %s%g, %g%s]", d->lo_open ? "(" : "[", d->lo, d->hi,
               d->hi_open ? ")" : "]");
      return buf;
    case DT_I64:
    case DT_U64:
    case DT_SIZE: snprintf(buf, cap, "integer in [%g, %g]", d->lo, d->hi); return buf;
    default:
      snprintf(buf, cap, "number in %s%g, %g%s", d->lo_open ? "(" : "[", d->lo, d->hi,
               d->hi_open ? ")" : "]");
      return buf;
  }
}

static void value_doc(const desc *d, const void *base, char *buf, size_t cap) {
  const char *p = (const char *)base + d->offset;
  switch (d->type) {
    case DT_F32: {
      float v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%g", (double)v);
      break;
    }
    case DT_F64: {
      double v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%.9g", v);
      break;
    }
    case DT_BOOL: {
      int v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%s", v ? "true" : "false");
      break;
    }
    case DT_I64: {
      int64_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%lld", (long long)v);
      break;
    }
    case DT_U64: {
      uint64_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%llu", (unsigned long long)v);
      break;
    }
    case DT_SIZE: {
      size_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%zu", v);
      break;
    }
    case DT_ENUM: {
      int v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "\"%s\"", d->names[v]);
      break;
    }
    case DT_F32X4: {
      float v[4];
      memcpy(v, p, sizeof v);
      snprintf(buf, cap, "[%g, %g, %g, %g]", (double)v[0], (double)v[1], (double)v[2],
               (double)v[3]);
      break;
    }
  }
}

static detloss_status check_range(const desc *d, double v, const char *where, detloss_error *err) {
  int ok = (d->lo_open ? v > d->lo : v >= d->lo) && (d->hi_open ? v < d->hi : v <= d->hi);
  if (ok) return DETLOSS_OK;
  char t[160];
  return dl_fail(err, DETLOSS_ERR_RANGE, where, "expected a %s, got %g", type_doc(d, t, sizeof t),
                 v);
}

static detloss_status finite_number(const cJSON *v, const char *where, const char *what,
                                    double *out, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where, "expected a %s", what);
  DL_RETURN_ERROR_IF(!isfinite(v->valuedouble), err, DETLOSS_ERR_NONFINITE, where,
                     "expected a finite number");
  *out = v->valuedouble;
  return DETLOSS_OK;
}

/* Reads obj (at JSON path `path`) into the struct at dst through the table. */
static detloss_status read_table(const cJSON *obj, const char *path, const desc *t, size_t n,
                                 void *dst, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(obj), err, DETLOSS_ERR_TYPE, path, "expected an object");
  const char *keys[32];
  for (size_t i = 0; i < n; i++) keys[i] = t[i].key;
  keys[n] = NULL;
  DL_FORWARD_IF_ERROR(dlj_check_keys(obj, path, keys, err));
  for (size_t i = 0; i < n; i++) {
    const desc *d = &t[i];
    const cJSON *v = dlj_field(obj, d->key);
    if (!v) continue;
    char where[DETLOSS_WHERE_MAX], tdoc[160];
    dlj_join(where, sizeof where, path, d->key);
    char *p = (char *)dst + d->offset;
    double x = 0.0;
    switch (d->type) {
      case DT_BOOL: {
        DL_RETURN_ERROR_IF(!cJSON_IsBool(v), err, DETLOSS_ERR_TYPE, where,
                           "expected true or false");
        int b = cJSON_IsTrue(v) ? 1 : 0;
        memcpy(p, &b, sizeof b);
        break;
      }
      case DT_ENUM: {
        DL_RETURN_ERROR_IF(!cJSON_IsString(v), err, DETLOSS_ERR_TYPE, where, "expected one of %s",
                           type_doc(d, tdoc, sizeof tdoc));
        int found = dlj_name_index(d->names, v->valuestring);
        int cnt = (int)dlj_name_count(d->names);
        if (found < 0) {
          const char *hint = dl_suggest(v->valuestring, d->names, (size_t)cnt);
          if (hint)
            return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                           "unknown name '%s' (did you mean '%s'?)", v->valuestring, hint);
          return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown name '%s' (expected %s)",
                         v->valuestring, type_doc(d, tdoc, sizeof tdoc));
        }
        memcpy(p, &found, sizeof found);
        break;
      }
      case DT_F32X4: {
        DL_RETURN_ERROR_IF(!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 4, err,
                           cJSON_IsArray(v) ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_TYPE, where,
                           "expected 4 numbers");
        float w[4];
        int k = 0;
        for (const cJSON *e = v->child; e; e = e->next, k++) {
          char sub[DETLOSS_WHERE_MAX];
          dlj_index(sub, sizeof sub, where, (size_t)k);
          DL_FORWARD_IF_ERROR(finite_number(e, sub, "number", &x, err));
          DL_FORWARD_IF_ERROR(check_range(d, x, sub, err));
          w[k] = (float)x;
        }
        memcpy(p, w, sizeof w);
        break;
      }
      default: {
        DL_FORWARD_IF_ERROR(finite_number(v, where, type_doc(d, tdoc, sizeof tdoc), &x, err));
        DL_FORWARD_IF_ERROR(check_range(d, x, where, err));
        if (d->type == DT_F32) {
          float f = (float)x;
          memcpy(p, &f, sizeof f);
        } else if (d->type == DT_F64) {
          memcpy(p, &x, sizeof x);
        } else {
          DL_RETURN_ERROR_IF(x != floor(x), err, DETLOSS_ERR_TYPE, where,
                             "expected an integer, got %g", x);
          if (d->type == DT_I64) {
            int64_t q = (int64_t)x;
            memcpy(p, &q, sizeof q);
          } else if (d->type == DT_U64) {
            uint64_t q = (uint64_t)x;
            memcpy(p, &q, sizeof q);
          } else {
            size_t q = (size_t)x;
            memcpy(p, &q, sizeof q);
          }
        }
      }
    }
  }
  return DETLOSS_OK;
}

typedef struct table_ref {
  const char *path;
  const desc *t;
  size_t n;
  const void *def_a; /* default value (first head) */
  const void *def_b; /* a second default where heads differ, or NULL */
  const char *name_a, *name_b;
} table_ref;

char *detloss_config_describe(void) {
  detloss_rpn_options rpn = detloss_rpn_options_default();
  detloss_retina_options ret = detloss_retina_options_default();
  detloss_match_options none_match = detloss_match_options_default();
  detloss_sample_options smp = detloss_sample_options_default();
  detloss_coder_options cod = detloss_coder_options_default();
  detloss_eval_options ev = detloss_eval_options_default();
  (void)none_match;
  const table_ref refs[] = {
      {"eval", EVAL_DESC, NDESC(EVAL_DESC), &ev, NULL, NULL, NULL},
      {"resize", RESIZE_DESC, NDESC(RESIZE_DESC), &ev, NULL, NULL, NULL},
      {"matcher", MATCH_DESC, NDESC(MATCH_DESC), &rpn.match, &ret.match, "rpn", "retinanet"},
      {"sampler", SAMPLE_DESC, NDESC(SAMPLE_DESC), &smp, NULL, NULL, NULL},
      {"box_coder", CODER_DESC, NDESC(CODER_DESC), &cod, NULL, NULL, NULL},
      {"loss (head rpn)", RPN_DESC, NDESC(RPN_DESC), &rpn, NULL, NULL, NULL},
      {"loss (head retinanet)", RETINA_DESC, NDESC(RETINA_DESC), &ret, NULL, NULL, NULL},
  };
  dlj_buf b;
  dlj_buf_init(&b);
  dlj_raw(&b,
          "config keys (all optional except \"anchors\"; unknown keys are errors):\n"
          "  name, source, notes            strings\n"
          "  head                           \"rpn\" (default) | \"retinanet\" | \"none\": which "
          "defaults apply\n"
          "  anchors                        file name (anchors/) or an inline anchor set\n"
          "  dataset                        default data set file (relative to the config)\n");
  for (size_t r = 0; r < sizeof refs / sizeof refs[0]; r++) {
    char line[512];
    snprintf(line, sizeof line, "%s:\n", refs[r].path);
    dlj_raw(&b, line);
    for (size_t i = 0; i < refs[r].n; i++) {
      const desc *d = &refs[r].t[i];
      char t[160], da[64], db[64], dflt[160];
      value_doc(d, refs[r].def_a, da, sizeof da);
      if (refs[r].def_b) {
        value_doc(d, refs[r].def_b, db, sizeof db);
        if (strcmp(da, db) != 0)
          snprintf(dflt, sizeof dflt, "%s (%s), %s (%s)", da, refs[r].name_a, db, refs[r].name_b);
        else
          snprintf(dflt, sizeof dflt, "%s", da);
      } else {
        snprintf(dflt, sizeof dflt, "%s", da);
      }
      snprintf(line, sizeof line, "  %-22s %-34s default %s\n  %-22s %s\n", d->key,
               type_doc(d, t, sizeof t), dflt, "", d->doc);
      dlj_raw(&b, line);
    }
  }
  if (b.oom) {
    dlj_buf_free(&b);
    return NULL;
  }
  return b.p;
}

typedef struct cfg_storage {
  dl_anchor_set set;
  int err_has_file; /* the error came from a referenced file and already names it */
  detloss_anchor_level levels[DETLOSS_EVAL_MAX_LEVELS];
} cfg_storage;

void detloss_config_free(detloss_config *c) {
  if (!c) return;
  free(c->path);
  free(c->name);
  free(c->source);
  free(c->notes);
  free(c->anchors_path);
  free(c->anchors_name);
  free(c->anchors_source);
  free(c->dataset_path);
  if (c->storage) {
    cfg_storage *s = c->storage;
    dl_anchor_set_free(&s->set);
    free(s);
  }
  free(c);
}

static char *dupstr(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static int file_exists(const char *p) {
  FILE *f = fopen(p, "rb");
  if (!f) return 0;
  fclose(f);
  return 1;
}

/* A candidate path cut short by its buffer could name another file: it is
 * not looked up at all. */
static int fits(int n, size_t cap) { return n >= 0 && (size_t)n < cap; }

/* Resolves a relative file name: (anchors: config dir/../anchors,) config dir,
 * then each search dir (anchors: dir/anchors first). NULL if not found (*tried gets
 * the first candidate for the message). */
static char *resolve(const char *name, const char *cfg_path, const char *const *search, int anchors,
                     char *tried, size_t tried_cap) {
  char buf[4096];
  if (name[0] == '/') {
    snprintf(tried, tried_cap, "%s", name);
    return file_exists(name) ? dupstr(name) : NULL;
  }
  char dir[4096];
  if (!fits(snprintf(dir, sizeof dir, "%s", cfg_path ? cfg_path : "."), sizeof dir)) return NULL;
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  /* anchors/ first for anchor files: a config may share its anchor file's name. */
  if (anchors) {
    if (fits(snprintf(buf, sizeof buf, "%s/../anchors/%s", dir, name), sizeof buf) &&
        file_exists(buf))
      return dupstr(buf);
  }
  int ok = fits(snprintf(buf, sizeof buf, "%s/%s", dir, name), sizeof buf);
  snprintf(tried, tried_cap, "%s", buf);
  if (ok && file_exists(buf)) return dupstr(buf);
  for (size_t i = 0; search && search[i]; i++) {
    if (anchors) {
      if (fits(snprintf(buf, sizeof buf, "%s/anchors/%s", search[i], name), sizeof buf) &&
          file_exists(buf))
        return dupstr(buf);
    }
    if (fits(snprintf(buf, sizeof buf, "%s/%s", search[i], name), sizeof buf) && file_exists(buf))
      return dupstr(buf);
  }
  return NULL;
}

static const char *const CONFIG_KEYS[] = {"name",      "source", "notes", "head",    "anchors",
                                          "dataset",   "resize", "eval",  "matcher", "sampler",
                                          "box_coder", "loss",   NULL};

/* The limits an anchor set of a config must keep (detloss_config_load_ex):
 * image_size at most max_image_side, and at most max_anchors anchors for it.
 * prefix: "anchors." for an inline set, "" for a file (named by the caller). */
static detloss_status check_set_limits(const dl_anchor_set *set, const char *prefix,
                                       const detloss_json_limits *lim, detloss_error *err) {
  if (!(set->image_size[0] > 0.0f)) return DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  double h = (double)set->image_size[0], w = (double)set->image_size[1];
  snprintf(where, sizeof where, "%simage_size", prefix);
  DL_FORWARD_IF_ERROR(dl_check_side(lim, fmax(h, w), where, err));
  if (set->grid.num_levels == 0) return DETLOSS_OK;
  size_t big;
  double n = dl_grid_anchor_count(&set->grid, h, w, &big);
  if (n <= (double)lim->max_anchors) return DETLOSS_OK;
  if (set->from_strides)
    snprintf(where, sizeof where, "%sstrides[%zu]", prefix, big);
  else
    snprintf(where, sizeof where, "%slevels[%zu].stride", prefix, big);
  return dl_fail(err, DETLOSS_ERR_RANGE, where,
                 "%g gives %.15g anchors for the %g x %g image_size, more than the limit "
                 "max_anchors = %zu",
                 (double)set->grid.levels[big].stride_h, n, h, w, lim->max_anchors);
}

static detloss_status parse_config(const cJSON *root, const char *file, const char *const *search,
                                   const detloss_json_limits *lim, detloss_config *c,
                                   cfg_storage *s, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(root), err, DETLOSS_ERR_TYPE, "(root)",
                     "expected a config object");
  DL_FORWARD_IF_ERROR(dlj_check_keys(root, "", CONFIG_KEYS, err));
  const char *str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "name", "", 0, &str, err));
  c->name = dupstr(str);
  str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "source", "", 0, &str, err));
  c->source = dupstr(str);
  str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "notes", "", 0, &str, err));
  c->notes = dupstr(str);

  /* head */
  c->head = DETLOSS_CONFIG_HEAD_RPN;
  str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "head", "", 0, &str, err));
  if (str) {
    static const char *const HEADS[] = {"none", "rpn", "retinanet"};
    int found = -1;
    for (int i = 0; i < 3; i++)
      if (strcmp(str, HEADS[i]) == 0) found = i;
    if (found < 0) {
      const char *hint = dl_suggest(str, HEADS, 3);
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, "head", "unknown head '%s' (%s%s%s)", str,
                     hint ? "did you mean '" : "expected rpn, retinanet or none", hint ? hint : "",
                     hint ? "'?" : "");
    }
    c->head = (detloss_config_head)found;
  }

  /* anchors: a file name or an inline set */
  const cJSON *an = dlj_field(root, "anchors");
  DL_RETURN_ERROR_IF(!an, err, DETLOSS_ERR_MISSING, "anchors",
                     "missing (expected a file name from anchors/ or an anchor set object)");
  if (cJSON_IsString(an)) {
    char tried[4096];
    c->anchors_path = resolve(an->valuestring, file, search, 1, tried, sizeof tried);
    DL_RETURN_ERROR_IF(!c->anchors_path, err, DETLOSS_ERR_NOT_FOUND, "anchors",
                       "anchor file '%s' not found (looked for %s, ../anchors/ and the source "
                       "tree's anchors/)",
                       an->valuestring, tried);
    char *text;
    size_t len;
    s->err_has_file = 1;
    DL_FORWARD_IF_ERROR(dl_read_file(c->anchors_path, lim->max_input_bytes, &text, &len, err));
    cJSON *ar = NULL;
    detloss_status st = dlj_parse(text, len, c->anchors_path, &ar, err);
    free(text);
    if (st != DETLOSS_OK) return st;
    st = dl_anchor_set_read(ar, "", &s->set, err);
    if (st == DETLOSS_OK) st = check_set_limits(&s->set, "", lim, err);
    if (st != DETLOSS_OK) {
      dl_where_file(err, c->anchors_path);
      cJSON_Delete(ar);
      return st;
    }
    s->err_has_file = 0;
    c->anchors_name = dupstr(s->set.name);
    c->anchors_source = dupstr(s->set.source);
    s->set.name = s->set.source = NULL;
    cJSON_Delete(ar);
  } else if (cJSON_IsObject(an)) {
    DL_FORWARD_IF_ERROR(dl_anchor_set_read(an, "anchors", &s->set, err));
    DL_FORWARD_IF_ERROR(check_set_limits(&s->set, "anchors.", lim, err));
    c->anchors_name = dupstr(s->set.name);
    c->anchors_source = dupstr(s->set.source);
    s->set.name = s->set.source = NULL;
  } else {
    return dl_fail(err, DETLOSS_ERR_TYPE, "anchors",
                   "expected a file name from anchors/ or an anchor set object");
  }
  c->grid = s->set.grid;
  c->image_size[0] = s->set.image_size[0];
  c->image_size[1] = s->set.image_size[1];
  if (c->grid.num_levels > 0) {
    for (size_t l = 0; l < c->grid.num_levels; l++) s->levels[l] = c->grid.levels[l];
    c->grid.levels = s->levels;
  }
  c->anchors = s->set.boxes;
  c->num_anchors = s->set.num_boxes;
  c->shapes = s->set.shapes;
  c->num_shapes = s->set.num_shapes;

  /* dataset */
  const cJSON *ds = dlj_field(root, "dataset");
  if (ds) {
    DL_RETURN_ERROR_IF(!cJSON_IsString(ds), err, DETLOSS_ERR_TYPE, "dataset",
                       "expected a file name");
    char tried[4096];
    c->dataset_path = resolve(ds->valuestring, file, search, 0, tried, sizeof tried);
    DL_RETURN_ERROR_IF(!c->dataset_path, err, DETLOSS_ERR_NOT_FOUND, "dataset",
                       "data set '%s' not found (looked for %s and the search directories)",
                       ds->valuestring, tried);
  }

  /* Defaults of the head, then the head's loss convention preset. */
  c->rpn = detloss_rpn_options_default();
  c->retina = detloss_retina_options_default();
  c->coder = detloss_coder_options_default();
  c->eval = detloss_eval_options_default();
  const cJSON *loss = dlj_field(root, "loss");
  if (loss) {
    DL_RETURN_ERROR_IF(c->head == DETLOSS_CONFIG_HEAD_NONE, err, DETLOSS_ERR_UNKNOWN, "loss",
                       "a config with head \"none\" has no loss settings");
    if (c->head == DETLOSS_CONFIG_HEAD_RPN) {
      /* A "convention" selects that library's defaults (detloss_rpn_options_preset);
       * the other keys then override them. */
      detloss_rpn_options tmp = c->rpn;
      DL_FORWARD_IF_ERROR(read_table(loss, "loss", RPN_DESC, NDESC(RPN_DESC), &tmp, err));
      if (dlj_field(loss, "convention")) c->rpn = detloss_rpn_options_preset(tmp.convention);
      DL_FORWARD_IF_ERROR(read_table(loss, "loss", RPN_DESC, NDESC(RPN_DESC), &c->rpn, err));
    } else {
      DL_FORWARD_IF_ERROR(
          read_table(loss, "loss", RETINA_DESC, NDESC(RETINA_DESC), &c->retina, err));
    }
  }
  detloss_match_options *m = c->head == DETLOSS_CONFIG_HEAD_RPN         ? &c->rpn.match
                             : c->head == DETLOSS_CONFIG_HEAD_RETINANET ? &c->retina.match
                                                                        : &c->eval.match;
  const cJSON *v;
  if ((v = dlj_field(root, "matcher")))
    DL_FORWARD_IF_ERROR(read_table(v, "matcher", MATCH_DESC, NDESC(MATCH_DESC), m, err));
  if (!(m->low <= m->high))
    return dl_fail(err, DETLOSS_ERR_RANGE, "matcher.low", "is %g, above matcher.high (%g)",
                   (double)m->low, (double)m->high);
  if ((v = dlj_field(root, "sampler"))) {
    DL_RETURN_ERROR_IF(c->head != DETLOSS_CONFIG_HEAD_RPN, err, DETLOSS_ERR_UNKNOWN, "sampler",
                       "only a config with head \"rpn\" samples anchors");
    DL_FORWARD_IF_ERROR(
        read_table(v, "sampler", SAMPLE_DESC, NDESC(SAMPLE_DESC), &c->rpn.sample, err));
  }
  if ((v = dlj_field(root, "box_coder"))) {
    if (c->head == DETLOSS_CONFIG_HEAD_RPN)
      memcpy(c->coder.weights, c->rpn.box_weights, sizeof c->coder.weights);
    if (c->head == DETLOSS_CONFIG_HEAD_RETINANET)
      memcpy(c->coder.weights, c->retina.box_weights, sizeof c->coder.weights);
    DL_FORWARD_IF_ERROR(read_table(v, "box_coder", CODER_DESC, NDESC(CODER_DESC), &c->coder, err));
    memcpy(c->rpn.box_weights, c->coder.weights, sizeof c->coder.weights);
    memcpy(c->retina.box_weights, c->coder.weights, sizeof c->coder.weights);
  }
  c->eval.match = *m;
  if ((v = dlj_field(root, "eval")))
    DL_FORWARD_IF_ERROR(read_table(v, "eval", EVAL_DESC, NDESC(EVAL_DESC), &c->eval, err));
  if ((v = dlj_field(root, "resize"))) {
    DL_FORWARD_IF_ERROR(read_table(v, "resize", RESIZE_DESC, NDESC(RESIZE_DESC), &c->eval, err));
    /* The resize target is a side of every resized image: bounded like one. */
    DL_FORWARD_IF_ERROR(
        dl_check_side(lim, (double)c->eval.resize_min_size, "resize.min_size", err));
    DL_FORWARD_IF_ERROR(
        dl_check_side(lim, (double)c->eval.resize_max_size, "resize.max_size", err));
  }
  if (c->num_shapes > 0 && c->eval.metric != DETLOSS_EVAL_WH_RATIO)
    return dl_fail(err, DETLOSS_ERR_RANGE, "eval.metric",
                   "anchor shapes without positions need \"metric\": \"wh_ratio\"");
  return DETLOSS_OK;
}

detloss_status detloss_config_parse(const char *text, size_t len, const char *path,
                                    const char *const *search_dirs, detloss_config **out,
                                    detloss_error *err) {
  return detloss_config_parse_ex(text, len, path, search_dirs, NULL, out, err);
}

detloss_status detloss_config_parse_ex(const char *text, size_t len, const char *path,
                                       const char *const *search_dirs,
                                       const detloss_json_limits *limits, detloss_config **out,
                                       detloss_error *err) {
  DL_RETURN_ERROR_IF(!text || !out, err, DETLOSS_ERR_NULL, !text ? "text" : "out", "is NULL");
  const char *file = path ? path : "(text)";
  detloss_json_limits lim = dl_json_limits(limits);
  DL_RETURN_ERROR_IF(len > lim.max_input_bytes, err, DETLOSS_ERR_RANGE, file,
                     "the input is larger than the limit max_input_bytes = %zu",
                     lim.max_input_bytes);
  cJSON *root = NULL;
  DL_FORWARD_IF_ERROR(dlj_parse(text, len, file, &root, err));
  detloss_config *c = calloc(1, sizeof *c);
  cfg_storage *s = calloc(1, sizeof *s);
  if (!c || !s) {
    free(c);
    free(s);
    cJSON_Delete(root);
    return dl_fail(err, DETLOSS_ERR_NOMEM, file, "out of memory");
  }
  c->storage = s;
  c->path = dupstr(file);
  detloss_status st = parse_config(root, file, search_dirs, &lim, c, s, err);
  cJSON_Delete(root);
  if (st != DETLOSS_OK) {
    /* Errors from a referenced file already name that file. */
    if (!s->err_has_file) dl_where_file(err, file);
    detloss_config_free(c);
    return st;
  }
  *out = c;
  return DETLOSS_OK;
}

detloss_status detloss_config_load(const char *path, const char *const *search_dirs,
                                   detloss_config **out, detloss_error *err) {
  return detloss_config_load_ex(path, search_dirs, NULL, out, err);
}

detloss_status detloss_config_load_ex(const char *path, const char *const *search_dirs,
                                      const detloss_json_limits *limits, detloss_config **out,
                                      detloss_error *err) {
  DL_RETURN_ERROR_IF(!path || !out, err, DETLOSS_ERR_NULL, !path ? "path" : "out", "is NULL");
  detloss_json_limits lim = dl_json_limits(limits);
  char *text;
  size_t len;
  DL_FORWARD_IF_ERROR(dl_read_file(path, lim.max_input_bytes, &text, &len, err));
  detloss_status st = detloss_config_parse_ex(text, len, path, search_dirs, &lim, out, err);
  free(text);
  return st;
}

detloss_eval_anchors detloss_config_eval_anchors(const detloss_config *c) {
  detloss_eval_anchors a;
  memset(&a, 0, sizeof a);
  if (!c) return a;
  if (c->grid.num_levels > 0)
    a.grid = &c->grid;
  else if (c->num_anchors > 0) {
    a.anchors = c->anchors;
    a.num_anchors = c->num_anchors;
  } else {
    a.shapes = c->shapes;
    a.num_shapes = c->num_shapes;
  }
  return a;
}
