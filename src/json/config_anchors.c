/*
 * config_anchors.c - anchor sets in JSON (a config's "anchors", a file of
 * anchors/): the levels, strides, boxes and shapes forms, their checks, and
 * the limits an anchor set of a config must keep.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/config_internal.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/names.h"
#include "json/jtree.h"

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
  v = dlj_tree(v);
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
  const cJSON *v = dlj_plain(lv, "stride");
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
  if (!dlj_plain(obj, key)) return DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "not used %s", why);
}

static detloss_status read_level(const cJSON *lv, const char *path, dl_anchor_set *s,
                                 detloss_anchor_level *L, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(lv), err, DETLOSS_ERR_TYPE, path, "expected a level object");
  DL_FORWARD_IF_ERROR(dlj_check_keys(lv, path, LEVEL_KEYS, err));
  /* A level is one of: base, shapes, or sizes with aspect_ratios. */
  if (dlj_plain(lv, "base")) {
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "shapes", "with base", err));
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "sizes", "with base", err));
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "aspect_ratios", "with base", err));
  } else if (dlj_plain(lv, "shapes")) {
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "sizes", "with shapes", err));
    DL_FORWARD_IF_ERROR(unused_key(lv, path, "aspect_ratios", "with shapes", err));
  }
  memset(L, 0, sizeof *L);
  DL_FORWARD_IF_ERROR(read_stride(lv, path, L, err));
  char where[DETLOSS_WHERE_MAX];
  if (dlj_plain(lv, "base")) {
    float *b;
    size_t n;
    DL_FORWARD_IF_ERROR(rows_of(lv, "base", path, 4, 0, s, &b, &n, err));
    L->base = b;
    L->num_base = n;
  } else if (dlj_plain(lv, "shapes")) {
    float *b;
    size_t n;
    DL_FORWARD_IF_ERROR(rows_of(lv, "shapes", path, 2, 1, s, &b, &n, err));
    L->shapes = b;
    L->num_shapes = n;
  } else {
    const cJSON *sz = dlj_plain(lv, "sizes"), *ar = dlj_plain(lv, "aspect_ratios");
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
    int k = conv ? dlj_name_index(DETLOSS_NAMES_ANCHOR_CONVENTION, conv) : 0;
    if (k < 0) {
      dlj_join(where, sizeof where, path, "convention");
      st = dlj_unknown_name(err, where, DETLOSS_NAMES_ANCHOR_CONVENTION, conv, 0);
      goto fail;
    }
    s->grid.convention = (detloss_anchor_convention)k;
  }
  TRY(dlj_float(obj, "offset", path, 0, &s->grid.offset, err));
  if (!(s->grid.offset >= 0.0f && s->grid.offset < 1.0f)) {
    dlj_join(where, sizeof where, path, "offset");
    st = dl_fail(err, DETLOSS_ERR_RANGE, where, "expected a number in [0, 1), got %g",
                 (double)s->grid.offset);
    goto fail;
  }
  if (dlj_plain(obj, "image_size")) {
    float *hw;
    size_t n;
    dlj_join(where, sizeof where, path, "image_size");
    TRY(positive_list(dlj_plain(obj, "image_size"), where, s, &hw, &n, err));
    if (n != 2) {
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [H, W], got %zu numbers", n);
      goto fail;
    }
    s->image_size[0] = hw[0];
    s->image_size[1] = hw[1];
  }
  int has_levels = dlj_plain(obj, "levels") != NULL,
      has_strides = dlj_plain(obj, "strides") != NULL;
  int has_boxes = dlj_plain(obj, "boxes") != NULL, has_shapes = dlj_plain(obj, "shapes") != NULL;
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
    const cJSON *lv = dlj_plain(obj, "levels");
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
    TRY(positive_list(dlj_plain(obj, "strides"), where, s, &strides, &n, err));
    const cJSON *sz = dlj_plain(obj, "sizes"), *ar = dlj_plain(obj, "aspect_ratios");
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
        dlj_path at;
        dlj_path_init(&at, path);
        dlj_locate(err, &at, NULL, 0);
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

/* The limits an anchor set of a config must keep (detloss_config_load_ex):
 * image_size at most max_image_side, and at most max_anchors anchors for it.
 * prefix: "anchors." for an inline set, "" for a file (named by the caller). */
detloss_status dlj_check_set_limits(const dl_anchor_set *set, const char *prefix,
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
